//! The convolution kernels on every instruction-set path this CPU executes (forced in turn), on
//! shapes that leave every remainder — widths that are not whole vectors, channel counts that are
//! not whole register tiles, single rows and columns, odd batches — against the definition
//! summed in f64: values, input gradient and weight gradient, and the output and input gradient
//! bit for bit the same on 1 and 3 threads. The baseline path is the
//! im2col + gemm kernel; AVX2 and AVX-512 take the direct 3×3 kernel for padding 1 and stride 1
//! or 2.
//! One test in its own binary: the forced path is process-wide.

use lagom::kernels::{self, ConvShape, SimdPath};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Output, input gradient and weight gradient of the convolution by its definition, in f64:
/// `y[n][co][oy][ox] = Σ w[co][ci][ky][kx] · x[n][ci][oy·s + ky − p][ox·s + kx − p]` and the
/// two gradients of `Σ y·g`.
fn reference(x: &[f32], w: &[f32], g: &[f32], s: &ConvShape) -> [Vec<f64>; 3] {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0.0f64; s.batch * s.out_image()];
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    for n in 0..s.batch {
        for co in 0..s.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * s.cout + co) * oh + oy) * ow + ox;
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
                                    continue;
                                }
                                let xi = ((n * s.cin + ci) * s.h + iy as usize) * s.w + ix as usize;
                                let wi = ((co * s.cin + ci) * s.kh + ky) * s.kw + kx;
                                y[yi] += f64::from(w[wi]) * f64::from(x[xi]);
                                dx[xi] += f64::from(w[wi]) * f64::from(g[yi]);
                                dw[wi] += f64::from(x[xi]) * f64::from(g[yi]);
                            }
                        }
                    }
                }
            }
        }
    }
    [y, dx, dw]
}

/// The largest difference from the reference relative to the reference's largest magnitude.
fn rel_diff(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths");
    let scale = want.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
    assert!(diff.is_finite(), "a non-finite value");
    diff / scale
}

#[test]
fn every_path_computes_the_convolution_and_its_gradients_by_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    // (batch, cin, h, w, cout, k, stride, pad)
    let cases = [
        (3, 3, 7, 5, 4, 3, 1, 1),
        (1, 1, 1, 1, 1, 3, 1, 1),
        (2, 2, 1, 9, 3, 3, 1, 1),
        (2, 5, 9, 1, 9, 3, 1, 1),
        (3, 4, 8, 8, 8, 3, 1, 1),
        (1, 7, 6, 15, 17, 3, 1, 1),
        (2, 3, 5, 16, 12, 3, 1, 1),
        (5, 6, 4, 17, 5, 3, 1, 1),
        (1, 16, 28, 28, 16, 3, 1, 1),
        (7, 16, 8, 8, 32, 3, 1, 1),
        (2, 8, 3, 24, 3, 3, 1, 1),
        // Stride 2: the input gradient through its four parity classes.
        (3, 5, 8, 8, 6, 3, 2, 1),
        (2, 3, 7, 9, 9, 3, 2, 1),
        (1, 2, 1, 1, 3, 3, 2, 1),
        (2, 4, 5, 2, 5, 3, 2, 1),
        (3, 16, 32, 32, 32, 3, 2, 1),
        (2, 6, 33, 17, 4, 3, 2, 1),
        (1, 3, 15, 31, 8, 3, 2, 1),
        // Shapes the direct kernel does not take: the gemm path on every instruction set.
        (2, 4, 9, 7, 3, 1, 2, 0),
        (2, 3, 6, 6, 2, 3, 1, 0),
        (2, 3, 7, 9, 4, 5, 1, 2),
    ];
    let paths = kernels::available_simd_paths();
    assert_eq!(paths.first(), Some(&SimdPath::Baseline));
    for &path in &paths {
        kernels::force_simd_path(Some(path));
        assert_eq!(kernels::simd_path(), path, "the forced path is taken");
        for (batch, cin, h, w, cout, k, stride, pad) in cases {
            let s = ConvShape {
                batch,
                cin,
                h,
                w,
                cout,
                kh: k,
                kw: k,
                stride,
                pad,
            };
            s.check().expect("a valid case");
            let direct = k == 3 && stride <= 2 && pad == 1 && path >= SimdPath::Avx2Fma;
            let names = kernels::conv_kernel_names(&s);
            let want = |direct: bool| if direct { "direct-3x3" } else { "im2col-gemm" };
            let expected = [want(direct); 3];
            assert_eq!(names, expected, "{} {s:?}", path.as_str());
            let kernel = names.join("/");
            let x = random(batch * s.in_image(), &mut rng);
            let wt = random(s.weight_len(), &mut rng);
            let g = random(batch * s.out_image(), &mut rng);
            let [y, dx, dw] = reference(&x, &wt, &g, &s);
            let case = format!("{} {kernel} {s:?}", path.as_str());
            let d = rel_diff(&kernels::conv2d_forward(&x, &wt, &s), &y);
            assert!(d <= 1e-6, "{case}: output differs by {d:e}");
            let d = rel_diff(&kernels::conv2d_input_grad(&g, &wt, &s), &dx);
            assert!(d <= 1e-6, "{case}: input gradient differs by {d:e}");
            let d = rel_diff(&kernels::conv2d_weight_grad(&x, &g, &s), &dw);
            assert!(d <= 1e-6, "{case}: weight gradient differs by {d:e}");
            // Each image's sums run in a fixed order: the output and the input gradient are the
            // same bits on 1 thread and on 3.
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool")
                    .install(|| {
                        (
                            kernels::conv2d_forward(&x, &wt, &s),
                            kernels::conv2d_input_grad(&g, &wt, &s),
                        )
                    })
            };
            assert!(
                on(1) == on(3),
                "{case}: the result depends on the thread count"
            );
        }
        println!("simd path {} checked", path.as_str());
    }
    kernels::force_simd_path(None);
}
