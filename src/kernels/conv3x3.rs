//! Direct 3×3 convolution with padding 1 and stride 1 or 2 — the shape of all but two layers of
//! ResNet-20 — on AVX2 + FMA (4 × 2 register tiles) and the same code with AVX-512's 32
//! registers (8 × 3 tiles), without im2col and without `gemm`'s packing: each image is copied
//! once into a zero-bordered buffer and the kernel reads the nine shifted taps straight from it.
//! With stride 2 each bordered row is stored as its even columns then its odd ones, so the taps
//! of 8 consecutive outputs are 8 consecutive floats (forward and weight gradient); the stride-2
//! input gradient is four small correlations, one per parity class of input positions,
//! interleaved into place.
//!
//! - **Forward** `y[co][p] = Σ_ci Σ_tap w[co][ci][tap] · xpad[ci][p + tap]`: a register tile of
//!   `CB` output channels × `NV` vectors of 8 output positions accumulates over every input
//!   channel and tap (weights repacked once per call so a tile's `CB` weights are adjacent).
//! - **Input gradient**: the same kernel over the zero-bordered output gradient with the weight
//!   transposed (`cin ↔ cout`) and its taps flipped — a "full" correlation, no col2im; with
//!   stride 2, one such correlation per parity class of input positions.
//! - **Weight gradient** `dw[co][ci][ky][kx] = Σ_images Σ_p g[co][p] · xpad[ci][p + (ky, kx)]`: a
//!   tile of `CB` output channels × the 3 horizontal taps of one (input channel, kernel row)
//!   accumulates over the positions of a group of images, then is summed across its lanes.
//!
//! Rows are cut into vectors of 8 positions; a width that is not a multiple of 8 computes its
//! last vector in full into a scratch row of whole vectors (the padded input is wide enough that
//! every load stays inside it) and copies the valid part back. Images are spread over rayon's
//! threads; each image's sums run in a fixed order, so results do not depend on the thread count
//! except for the weight gradient's sum over images (per-thread partial sums, as the `gemm` path).

use rayon::prelude::*;

use super::conv::images_per_task;
use super::ConvShape;

/// Floats per vector.
const LANES: usize = 8;

/// True when the direct kernels compute `s` (forward, input gradient, weight gradient): a 3×3
/// kernel, padding 1, stride 1 or 2, on an x86-64 CPU whose kernels may use AVX2 + FMA
/// (`LAGOM_SIMD=baseline` keeps the `gemm` path).
pub(super) fn handles(s: &ConvShape) -> bool {
    cfg!(target_arch = "x86_64")
        && s.kh == 3
        && s.kw == 3
        && (s.stride == 1 || s.stride == 2)
        && s.pad == 1
        && super::has_avx2_fma()
}

/// True when the direct kernels compute the input gradient of `s`: the same shapes as
/// [`handles`] (stride 2 through its four parity classes).
pub(super) fn handles_input_grad(s: &ConvShape) -> bool {
    handles(s)
}

/// One image plane's geometry in the zero-bordered layout the kernels read: `h + 2` rows, the
/// data at rows `1..=h` and bordered columns `1..=w`, zeros around it and to the right. With
/// stride 1 a row is the bordered columns in order; with stride 2 it is the even bordered
/// columns then the odd ones (two phases), so that the taps of 8 consecutive outputs are 8
/// consecutive floats either way.
#[derive(Debug, Clone, Copy)]
struct Padded {
    /// Input height and width.
    h: usize,
    w: usize,
    /// Output height and width.
    oh: usize,
    ow: usize,
    /// 1 or 2.
    stride: usize,
    /// Vectors per output row (`⌈ow / 8⌉`).
    vw: usize,
    /// Floats per phase of a row: `8·vw + 2` with stride 1 (the last vector's taps stay
    /// inside), `8·vw + 1` with stride 2.
    phase: usize,
    /// Floats per bordered row (one phase, or two).
    row: usize,
    /// Floats per bordered plane.
    plane: usize,
}

impl Padded {
    /// The layout of an `h × w` input convolved with stride 1 or 2 (3×3 kernel, padding 1).
    fn new(h: usize, w: usize, stride: usize) -> Self {
        let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
        let vw = ow.div_ceil(LANES);
        let (phase, row) = if stride == 1 {
            (vw * LANES + 2, vw * LANES + 2)
        } else {
            (vw * LANES + 1, 2 * (vw * LANES + 1))
        };
        Padded {
            h,
            w,
            oh,
            ow,
            stride,
            vw,
            phase,
            row,
            plane: (h + 2) * row,
        }
    }

    /// Output position vectors per plane.
    fn vectors(&self) -> usize {
        self.oh * self.vw
    }

    /// Row stride of an output plane the kernels write: the width itself when it is a whole
    /// number of vectors, else whole vectors (a scratch plane, compacted afterwards).
    fn out_stride(&self) -> usize {
        self.vw * LANES
    }

    /// True when output rows can be written in place (no partial last vector).
    fn exact(&self) -> bool {
        self.ow % LANES == 0
    }

    /// Where in a bordered plane the top-left tap of output row `y`'s first vector is.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn row_start(&self, y: usize) -> usize {
        y * self.stride * self.row
    }

    /// Copies the `channels × h × w` image `src` into the interiors of `dst` (`channels` bordered
    /// planes whose borders are already zero and stay so).
    fn fill(&self, src: &[f32], channels: usize, dst: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        for c in 0..channels {
            let s = &src[c * h * w..(c + 1) * h * w];
            let d = &mut dst[c * self.plane..(c + 1) * self.plane];
            for (y, src_row) in s.chunks_exact(w).enumerate() {
                let row = &mut d[(y + 1) * self.row..(y + 2) * self.row];
                if self.stride == 1 {
                    row[1..=w].copy_from_slice(src_row);
                } else {
                    // Bordered column x + 1: even ones first, odd ones after `phase`.
                    let (even, odd) = row.split_at_mut(self.phase);
                    for (pair, out) in src_row.chunks(2).zip(0..) {
                        odd[out] = pair[0];
                        if let Some(&v) = pair.get(1) {
                            even[out + 1] = v;
                        }
                    }
                }
            }
        }
    }
}

/// `weights[out][in][tap]` for `taps` taps rearranged as blocks of `cb` outputs:
/// `[block][in][tap][cb]`, the outputs past `outs` zero. `at(o, i, tap)` reads the logical weight.
fn pack(
    outs: usize,
    ins: usize,
    taps: usize,
    cb: usize,
    at: impl Fn(usize, usize, usize) -> f32,
) -> Vec<f32> {
    let blocks = outs.div_ceil(cb);
    let mut packed = vec![0.0f32; blocks * ins * taps * cb];
    for (b, block) in packed.chunks_exact_mut(ins * taps * cb).enumerate() {
        for i in 0..ins {
            for tap in 0..taps {
                for c in 0..cb {
                    let o = b * cb + c;
                    if o < outs {
                        block[(i * taps + tap) * cb + c] = at(o, i, tap);
                    }
                }
            }
        }
    }
    packed
}

/// Output channels per register tile on the path the CPU takes: 8 with AVX-512's 32 registers,
/// 4 with AVX2's 16.
fn channel_block() -> usize {
    if super::simd_path() >= super::SimdPath::Avx512 {
        8
    } else {
        4
    }
}

/// `out` (`batch × outs × oh × ow`) = the correlation of the bordered images of `src` (`batch ×
/// ins × h × w`) with the packed weights — the forward and, with transposed flipped weights, the
/// input gradient. The output is never zero-filled: every value is written once, by the tasks
/// in parallel (a zero-fill first is a serial pass over megabytes).
fn correlate(
    src: &[f32],
    ins: usize,
    outs: usize,
    packed: &[f32],
    cb: usize,
    g: Padded,
) -> Vec<f32> {
    let (in_image, out_image) = (ins * g.h * g.w, outs * g.oh * g.ow);
    let batch = src.len() / in_image;
    let len = batch * out_image;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let per_task = images_per_task(batch);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(per_task * out_image)
        .zip(src.par_chunks(per_task * in_image))
        .for_each(|(out, src)| {
            let mut bordered = vec![0.0f32; ins * g.plane];
            let mut scratch = if g.exact() {
                Vec::new()
            } else {
                vec![0.0f32; outs * g.oh * g.out_stride()]
            };
            for (o, s) in out.chunks_mut(out_image).zip(src.chunks(in_image)) {
                g.fill(s, ins, &mut bordered);
                if g.exact() {
                    // `o` is `outs` planes of `h` rows of `w = out_stride()` floats: the values
                    // `correlate_image` writes, every one of them.
                    let dst = o.as_mut_ptr().cast::<f32>();
                    correlate_image(&bordered, ins, outs, packed, cb, g, dst, o.len());
                } else {
                    let (dst, len) = (scratch.as_mut_ptr(), scratch.len());
                    correlate_image(&bordered, ins, outs, packed, cb, g, dst, len);
                    let (w, stride) = (g.ow, g.out_stride());
                    for (row, full) in o.chunks_exact_mut(w).zip(scratch.chunks_exact(stride)) {
                        for (d, v) in row.iter_mut().zip(&full[..w]) {
                            d.write(*v);
                        }
                    }
                }
            }
        });
    // SAFETY: the tasks above wrote all `len` values — every image's every plane, row and
    // column, directly or through the scratch rows.
    unsafe { out.set_len(len) };
    out
}

/// One image of [`correlate`]: writes every value of `dst` (`len` floats: `outs` planes of `h`
/// rows of `out_stride()` floats), reading nothing there.
#[allow(clippy::too_many_arguments)]
fn correlate_image(
    bordered: &[f32],
    ins: usize,
    outs: usize,
    packed: &[f32],
    cb: usize,
    g: Padded,
    dst: *mut f32,
    len: usize,
) {
    assert!(bordered.len() >= ins * g.plane);
    assert!(packed.len() >= outs.div_ceil(cb) * ins * 9 * cb);
    assert_eq!(len, outs * g.oh * g.out_stride());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `handles` admitted this shape only on a CPU with AVX2 + FMA (and `cb` is 8
        // only when the path is AVX-512); the assertions bound every index the kernel reaches,
        // and `dst` is `len` writable floats the caller lends exclusively.
        unsafe {
            if cb == 8 {
                x86::correlate_avx512(bordered, ins, outs, packed, g, dst)
            } else {
                x86::correlate_avx2(bordered, ins, outs, packed, g, dst)
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bordered, ins, outs, packed, cb, g, dst, len);
        unreachable!("`handles` admits the direct 3×3 kernels only on x86-64");
    }
}

/// The output `batch × cout × h × w` of the 3×3, stride-1, padding-1 convolution of `x` with `w`.
pub(super) fn forward(x: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    let cb = channel_block();
    let packed = pack(s.cout, s.cin, 9, cb, |o, i, tap| {
        w[(o * s.cin + i) * 9 + tap]
    });
    correlate(
        x,
        s.cin,
        s.cout,
        &packed,
        cb,
        Padded::new(s.h, s.w, s.stride),
    )
}

/// The gradient with respect to the input, given the output gradient `g`: the correlation of
/// the bordered `g` with the weight transposed and its taps flipped (stride 2: per parity class).
pub(super) fn input_grad(g: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    if s.stride == 2 {
        return input_grad_stride2(g, w, s);
    }
    let cb = channel_block();
    let packed = pack(s.cin, s.cout, 9, cb, |i, o, tap| {
        w[(o * s.cin + i) * 9 + 8 - tap]
    });
    correlate(g, s.cout, s.cin, &packed, cb, Padded::new(s.h, s.w, 1))
}

/// The most taps a parity class of the stride-2 input gradient has (2 rows × 2 columns).
const MAX_CLASS_TAPS: usize = 4;

/// One parity class of a stride-2 input gradient: the input positions `(2a + py, 2b + px)`, each
/// the sum over output channels of `w[co][ci][ky][kx] · g[co][a + dy][b + dx]` for the class's
/// taps — one tap along an axis for even positions (`k = 1, d = 0`), two for odd ones (`k = 0,
/// d = 1` and `k = 2, d = 0`).
#[derive(Debug, Clone, Copy)]
struct ParityClass {
    py: usize,
    px: usize,
    /// Rows and columns of the class (`a < rows`, `b < cols`).
    rows: usize,
    cols: usize,
    /// Vectors per class row (`⌈cols / 8⌉`).
    vw: usize,
    /// Tap count, offsets in the gradient's plane (`dy·row + dx`) and kernel taps (`3·ky + kx`).
    taps: usize,
    offsets: [usize; MAX_CLASS_TAPS],
    kernel: [usize; MAX_CLASS_TAPS],
}

impl ParityClass {
    /// The four classes of an `h × w` input whose output gradient rows are `row` floats apart
    /// (empty classes of 1-row or 1-column inputs left out).
    fn all(h: usize, w: usize, row: usize) -> Vec<ParityClass> {
        // (d, k) per axis: even positions, then odd ones.
        let axis = |parity: usize| -> &'static [(usize, usize)] {
            if parity == 0 {
                &[(0, 1)]
            } else {
                &[(1, 0), (0, 2)]
            }
        };
        let mut classes = Vec::new();
        for (py, px) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let (rows, cols) = ((h + 1 - py) / 2, (w + 1 - px) / 2);
            if rows == 0 || cols == 0 {
                continue;
            }
            let (mut offsets, mut kernel, mut taps) = ([0; MAX_CLASS_TAPS], [0; MAX_CLASS_TAPS], 0);
            for &(dy, ky) in axis(py) {
                for &(dx, kx) in axis(px) {
                    offsets[taps] = dy * row + dx;
                    kernel[taps] = 3 * ky + kx;
                    taps += 1;
                }
            }
            classes.push(ParityClass {
                py,
                px,
                rows,
                cols,
                vw: cols.div_ceil(LANES),
                taps,
                offsets,
                kernel,
            });
        }
        classes
    }
}

/// The gradient with respect to the input of a stride-2 convolution, given the output gradient
/// `g`: each of the four parity classes of input positions is a small correlation of the output
/// gradient (bordered with a zero row and zero columns after it) with 1, 2 or 4 of the kernel's
/// taps, computed into a scratch plane of whole vectors and interleaved into place — no
/// col2im and none of the multiplications by zero a transposed convolution would do.
fn input_grad_stride2(g: &[f32], w: &[f32], s: &ConvShape) -> Vec<f32> {
    let cb = channel_block();
    let (oh, ow) = (s.out_h(), s.out_w());
    // A gradient row holds every class's last vector and its one-column shift.
    let row = ow.div_ceil(LANES) * LANES + 1;
    let plane = (oh + 1) * row;
    let classes = ParityClass::all(s.h, s.w, row);
    let packed: Vec<Vec<f32>> = classes
        .iter()
        .map(|c| {
            pack(s.cin, s.cout, c.taps, cb, |ci, co, t| {
                w[(co * s.cin + ci) * 9 + c.kernel[t]]
            })
        })
        .collect();
    let (in_image, out_image) = (s.in_image(), s.out_image());
    let len = s.batch * in_image;
    let mut dx: Vec<f32> = Vec::with_capacity(len);
    let per_task = images_per_task(s.batch);
    let geo = ClassGeometry { plane, row };
    dx.spare_capacity_mut()[..len]
        .par_chunks_mut(per_task * in_image)
        .zip(g.par_chunks(per_task * out_image))
        .for_each(|(dx, g)| {
            let mut bordered = vec![0.0f32; s.cout * plane];
            // One scratch per class: `cin` planes of `rows` rows of whole vectors.
            let mut scratch: Vec<Vec<f32>> = classes
                .iter()
                .map(|c| vec![0.0f32; s.cin * c.rows * c.vw * LANES])
                .collect();
            for (dxi, gi) in dx.chunks_mut(in_image).zip(g.chunks(out_image)) {
                // Rows `0..oh`, columns `0..ow` of each plane; the zero row and columns after
                // them are never written.
                for (src, dst) in gi
                    .chunks_exact(oh * ow)
                    .zip(bordered.chunks_exact_mut(plane))
                {
                    for (r, src_row) in src.chunks_exact(ow).enumerate() {
                        dst[r * row..r * row + ow].copy_from_slice(src_row);
                    }
                }
                for ((class, packed), out) in classes.iter().zip(&packed).zip(&mut scratch) {
                    class_correlate(&bordered, s.cout, s.cin, packed, cb, class, geo, out);
                }
                interleave(&classes, &scratch, s, dxi);
            }
        });
    // SAFETY: `interleave` wrote every value of every image: the four parity classes cover each
    // input position once (an empty class has no positions).
    unsafe { dx.set_len(len) };
    dx
}

/// Writes one image's input gradient `dx` (`cin × h × w`, every value) from its classes' scratch
/// planes: an input row `y` interleaves the rows `y / 2` of classes `(y % 2, 0)` and `(y % 2, 1)`.
fn interleave(
    classes: &[ParityClass],
    scratch: &[Vec<f32>],
    s: &ConvShape,
    dx: &mut [std::mem::MaybeUninit<f32>],
) {
    let find = |py: usize, px: usize| classes.iter().position(|c| c.py == py && c.px == px);
    for y in 0..s.h {
        let (py, a) = (y % 2, y / 2);
        // A row of parity `py` exists, so class `(py, 0)` has rows and ⌈w/2⌉ ≥ 1 columns.
        let Some(even) = find(py, 0) else {
            unreachable!("input row {y} has no parity class")
        };
        let odd = find(py, 1);
        let (ce, stride_e) = (&classes[even], classes[even].vw * LANES);
        for ci in 0..s.cin {
            let dst = &mut dx[(ci * s.h + y) * s.w..(ci * s.h + y + 1) * s.w];
            let at_e = (ci * ce.rows + a) * stride_e;
            let even_row = &scratch[even][at_e..at_e + ce.cols];
            match odd {
                Some(odd) => {
                    let co = &classes[odd];
                    let at_o = (ci * co.rows + a) * co.vw * LANES;
                    let odd_row = &scratch[odd][at_o..at_o + co.cols];
                    for (pair, (e, o)) in dst.chunks_exact_mut(2).zip(even_row.iter().zip(odd_row))
                    {
                        pair[0].write(*e);
                        pair[1].write(*o);
                    }
                    if s.w % 2 == 1 {
                        dst[s.w - 1].write(even_row[ce.cols - 1]);
                    }
                }
                None => {
                    dst[0].write(even_row[0]);
                }
            }
        }
    }
}

/// The bordered output gradient a parity class reads: floats per plane and per row.
#[derive(Debug, Clone, Copy)]
struct ClassGeometry {
    plane: usize,
    row: usize,
}

/// One parity class of one image: `dst` (`outs` planes of `rows` rows of `8·vw` floats) = the
/// correlation of the `ins` bordered gradient planes with the class's packed taps.
#[allow(clippy::too_many_arguments)]
fn class_correlate(
    bordered: &[f32],
    ins: usize,
    outs: usize,
    packed: &[f32],
    cb: usize,
    class: &ParityClass,
    geo: ClassGeometry,
    dst: &mut [f32],
) {
    assert!(bordered.len() >= ins * geo.plane);
    // The last vector's furthest tap stays inside its plane.
    assert!(class.rows * geo.row + class.vw * LANES <= geo.plane);
    assert!(class.offsets[..class.taps]
        .iter()
        .all(|&o| o <= geo.row + 1));
    assert!(packed.len() >= outs.div_ceil(cb) * ins * class.taps * cb);
    assert_eq!(dst.len(), outs * class.rows * class.vw * LANES);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `handles_input_grad` admitted this shape only on a CPU with AVX2 + FMA (`cb`
        // is 8 only on the AVX-512 path); the assertions bound every index the kernel reaches.
        unsafe {
            if cb == 8 {
                x86::class_correlate_avx512(bordered, ins, outs, packed, class, geo, dst)
            } else {
                x86::class_correlate_avx2(bordered, ins, outs, packed, class, geo, dst)
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bordered, ins, outs, packed, cb, class, geo, dst);
        unreachable!("`handles_input_grad` admits the direct 3×3 kernels only on x86-64");
    }
}

/// The gradient `cout × cin × 3 × 3` with respect to the weight, summed over the batch.
pub(super) fn weight_grad(x: &[f32], g: &[f32], s: &ConvShape) -> Vec<f32> {
    let geo = Padded::new(s.h, s.w, s.stride);
    let cb = channel_block();
    let (in_image, out_image) = (s.in_image(), s.out_image());
    // Enough images per group that a tile accumulates over ≥ 64 vectors before its lane sums.
    let group = 64usize.div_ceil(geo.vectors()).max(1);
    let per_task = s.batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    x.par_chunks(per_task * in_image)
        .zip(g.par_chunks(per_task * out_image))
        .map(|(x, g)| {
            let mut dw = vec![0.0f32; s.weight_len()];
            let mut bordered = vec![0.0f32; group * s.cin * geo.plane];
            let mut grads = if geo.exact() {
                Vec::new()
            } else {
                vec![0.0f32; group * s.cout * geo.oh * geo.out_stride()]
            };
            for (xs, gs) in x.chunks(group * in_image).zip(g.chunks(group * out_image)) {
                let images = xs.len() / in_image;
                for (i, xi) in xs.chunks_exact(in_image).enumerate() {
                    let at = i * s.cin * geo.plane;
                    geo.fill(xi, s.cin, &mut bordered[at..at + s.cin * geo.plane]);
                }
                let gsrc: &[f32] = if geo.exact() {
                    gs
                } else {
                    let stride = geo.out_stride();
                    for (full, row) in grads.chunks_exact_mut(stride).zip(gs.chunks_exact(geo.ow)) {
                        full[..geo.ow].copy_from_slice(row);
                    }
                    &grads
                };
                weight_grad_group(&bordered, gsrc, images, s.cin, s.cout, cb, geo, &mut dw);
            }
            dw
        })
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
            a
        })
        .unwrap_or_else(|| vec![0.0f32; s.weight_len()])
}

/// Adds one group of `images` to `dw`: `bordered` holds their bordered inputs, `g` their output
/// gradients as planes of `h` rows of `out_stride()` floats (zero past the width).
#[allow(clippy::too_many_arguments)]
fn weight_grad_group(
    bordered: &[f32],
    g: &[f32],
    images: usize,
    cin: usize,
    cout: usize,
    cb: usize,
    geo: Padded,
    dw: &mut [f32],
) {
    assert!(bordered.len() >= images * cin * geo.plane);
    assert!(g.len() >= images * cout * geo.oh * geo.out_stride());
    assert!(dw.len() >= cout * cin * 9);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `correlate_image`: AVX2 + FMA present (AVX-512 when `cb` is 8), every
        // index bounded by the assertions above.
        unsafe {
            if cb == 8 {
                x86::weight_grad_avx512(bordered, g, images, cin, cout, geo, dw)
            } else {
                x86::weight_grad_avx2(bordered, g, images, cin, cout, geo, dw)
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (bordered, g, images, cin, cout, cb, geo, dw);
        unreachable!("`handles` admits the direct 3×3 kernels only on x86-64");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register tiles, written once with AVX2 intrinsics and compiled for AVX2 + FMA and for
    //! AVX-512 (whose 32 registers hold the wider tile).

    use std::arch::x86_64::*;

    use super::{ClassGeometry, Padded, ParityClass, LANES};

    /// Offsets of the three horizontal taps from a vector's first: adjacent floats with stride
    /// 1, even phase / odd phase / even phase one further with stride 2.
    #[inline(always)]
    fn columns<const STRIDE: usize>(g: &Padded) -> [usize; 3] {
        if STRIDE == 1 {
            [0, 1, 2]
        } else {
            [0, g.phase, 1]
        }
    }

    /// `acc[c][v]` for `CB` channels and `N` position vectors: one forward tile. `src` points at
    /// the bordered input's first plane, `offs[v]` is vector `v`'s top-left tap in a plane,
    /// `wts` the tile's packed weights `[in][tap][CB]`, `dst[v]` vector `v`'s output in the
    /// tile's first channel (channel stride `oplane`); only the first `valid` channels are
    /// stored.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const CB: usize, const N: usize, const STRIDE: usize>(
        src: *const f32,
        ins: usize,
        g: &Padded,
        offs: [usize; N],
        wts: *const f32,
        dst: [*mut f32; N],
        oplane: usize,
        valid: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); N]; CB];
        let cols = columns::<STRIDE>(g);
        for i in 0..ins {
            let plane = src.add(i * g.plane);
            let wi = wts.add(i * 9 * CB);
            for ky in 0..3 {
                for (kx, col) in cols.iter().enumerate() {
                    let mut xv = [_mm256_setzero_ps(); N];
                    for v in 0..N {
                        xv[v] = _mm256_loadu_ps(plane.add(offs[v] + ky * g.row + col));
                    }
                    let wt = wi.add((ky * 3 + kx) * CB);
                    for (c, row) in acc.iter_mut().enumerate() {
                        let wc = _mm256_broadcast_ss(&*wt.add(c));
                        for v in 0..N {
                            row[v] = _mm256_fmadd_ps(wc, xv[v], row[v]);
                        }
                    }
                }
            }
        }
        for (c, row) in acc.iter().enumerate().take(valid) {
            for v in 0..N {
                _mm256_storeu_ps(dst[v].add(c * oplane), row[v]);
            }
        }
    }

    /// Every tile of one image: position vectors outermost (their input rows stay in L1 across
    /// the channel blocks), `N`-vector tiles then the remainder.
    #[inline(always)]
    unsafe fn correlate<const CB: usize, const NV: usize, const STRIDE: usize>(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        g: Padded,
        dst: *mut f32,
    ) {
        let stride = g.out_stride();
        let oplane = g.oh * stride;
        let vectors = g.vectors();
        let (src, packed) = (src.as_ptr(), packed.as_ptr());
        let place = |v: usize| {
            let (y, xv) = (v / g.vw, v % g.vw);
            (g.row_start(y) + xv * LANES, y * stride + xv * LANES)
        };
        let mut v0 = 0;
        while v0 < vectors {
            let n = NV.min(vectors - v0);
            for (b, o0) in (0..outs).step_by(CB).enumerate() {
                let wts = packed.add(b * ins * 9 * CB);
                let valid = CB.min(outs - o0);
                let out = dst.add(o0 * oplane);
                if n == NV {
                    let p: [(usize, usize); NV] = std::array::from_fn(|k| place(v0 + k));
                    let offs = p.map(|(i, _)| i);
                    let outp = p.map(|(_, o)| out.add(o));
                    tile::<CB, NV, STRIDE>(src, ins, &g, offs, wts, outp, oplane, valid);
                } else if n == 2 {
                    let p: [(usize, usize); 2] = std::array::from_fn(|k| place(v0 + k));
                    let offs = p.map(|(i, _)| i);
                    let outp = p.map(|(_, o)| out.add(o));
                    tile::<CB, 2, STRIDE>(src, ins, &g, offs, wts, outp, oplane, valid);
                } else {
                    let (i, o) = place(v0);
                    tile::<CB, 1, STRIDE>(src, ins, &g, [i], wts, [out.add(o)], oplane, valid);
                }
            }
            v0 += n;
        }
    }

    /// [`correlate`] with 4-channel tiles, for AVX2 + FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn correlate_avx2(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        g: Padded,
        dst: *mut f32,
    ) {
        if g.stride == 1 {
            correlate::<4, 2, 1>(src, ins, outs, packed, g, dst)
        } else {
            correlate::<4, 2, 2>(src, ins, outs, packed, g, dst)
        }
    }

    /// [`correlate`] with 8-channel tiles, for AVX-512's 32 registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn correlate_avx512(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        g: Padded,
        dst: *mut f32,
    ) {
        if g.stride == 1 {
            correlate::<8, 3, 1>(src, ins, outs, packed, g, dst)
        } else {
            correlate::<8, 3, 2>(src, ins, outs, packed, g, dst)
        }
    }

    /// A tile of [`class_correlate`]: like [`tile`], over `T` taps at the given offsets.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn class_tile<const CB: usize, const N: usize, const T: usize>(
        src: *const f32,
        ins: usize,
        plane: usize,
        offs: [usize; N],
        taps: [usize; T],
        wts: *const f32,
        dst: [*mut f32; N],
        oplane: usize,
        valid: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); N]; CB];
        for i in 0..ins {
            let p = src.add(i * plane);
            let wi = wts.add(i * T * CB);
            for (t, tap) in taps.iter().enumerate() {
                let mut xv = [_mm256_setzero_ps(); N];
                for v in 0..N {
                    xv[v] = _mm256_loadu_ps(p.add(offs[v] + tap));
                }
                let wt = wi.add(t * CB);
                for (c, row) in acc.iter_mut().enumerate() {
                    let wc = _mm256_broadcast_ss(&*wt.add(c));
                    for v in 0..N {
                        row[v] = _mm256_fmadd_ps(wc, xv[v], row[v]);
                    }
                }
            }
        }
        for (c, row) in acc.iter().enumerate().take(valid) {
            for v in 0..N {
                _mm256_storeu_ps(dst[v].add(c * oplane), row[v]);
            }
        }
    }

    /// Every tile of one parity class of one image, `T` taps.
    #[inline(always)]
    unsafe fn class_correlate<const CB: usize, const NV: usize, const T: usize>(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        class: &ParityClass,
        geo: ClassGeometry,
        dst: &mut [f32],
    ) {
        let stride = class.vw * LANES;
        let oplane = class.rows * stride;
        let vectors = class.rows * class.vw;
        let taps: [usize; T] = std::array::from_fn(|t| class.offsets[t]);
        let (src, packed, dst) = (src.as_ptr(), packed.as_ptr(), dst.as_mut_ptr());
        let place = |v: usize| {
            let (a, xv) = (v / class.vw, v % class.vw);
            (a * geo.row + xv * LANES, a * stride + xv * LANES)
        };
        let mut v0 = 0;
        while v0 < vectors {
            let n = NV.min(vectors - v0);
            for (b, o0) in (0..outs).step_by(CB).enumerate() {
                let wts = packed.add(b * ins * T * CB);
                let valid = CB.min(outs - o0);
                let out = dst.add(o0 * oplane);
                if n == NV {
                    let p: [(usize, usize); NV] = std::array::from_fn(|k| place(v0 + k));
                    let offs = p.map(|(i, _)| i);
                    let outp = p.map(|(_, o)| out.add(o));
                    class_tile::<CB, NV, T>(
                        src, ins, geo.plane, offs, taps, wts, outp, oplane, valid,
                    );
                } else if n == 2 {
                    let p: [(usize, usize); 2] = std::array::from_fn(|k| place(v0 + k));
                    let offs = p.map(|(i, _)| i);
                    let outp = p.map(|(_, o)| out.add(o));
                    class_tile::<CB, 2, T>(
                        src, ins, geo.plane, offs, taps, wts, outp, oplane, valid,
                    );
                } else {
                    let (i, o) = place(v0);
                    let outp = [out.add(o)];
                    class_tile::<CB, 1, T>(
                        src,
                        ins,
                        geo.plane,
                        [i],
                        taps,
                        wts,
                        outp,
                        oplane,
                        valid,
                    );
                }
            }
            v0 += n;
        }
    }

    /// [`class_correlate`] with 4 × 2 tiles, for AVX2 + FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn class_correlate_avx2(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        class: &ParityClass,
        geo: ClassGeometry,
        dst: &mut [f32],
    ) {
        match class.taps {
            1 => class_correlate::<4, 2, 1>(src, ins, outs, packed, class, geo, dst),
            2 => class_correlate::<4, 2, 2>(src, ins, outs, packed, class, geo, dst),
            _ => class_correlate::<4, 2, 4>(src, ins, outs, packed, class, geo, dst),
        }
    }

    /// [`class_correlate`] with 8 × 3 tiles, for AVX-512's 32 registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn class_correlate_avx512(
        src: &[f32],
        ins: usize,
        outs: usize,
        packed: &[f32],
        class: &ParityClass,
        geo: ClassGeometry,
        dst: &mut [f32],
    ) {
        match class.taps {
            1 => class_correlate::<8, 3, 1>(src, ins, outs, packed, class, geo, dst),
            2 => class_correlate::<8, 3, 2>(src, ins, outs, packed, class, geo, dst),
            _ => class_correlate::<8, 3, 4>(src, ins, outs, packed, class, geo, dst),
        }
    }

    /// The sum of a vector's lanes, in lane order.
    #[inline(always)]
    unsafe fn lane_sum(v: __m256) -> f32 {
        let mut lanes = [0.0f32; LANES];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }

    /// The weight gradient of one group of images, tile by tile: for each block of `CB` output
    /// channels (their gradient planes stay in L1), each input channel and kernel row, the
    /// `CB × 3` sums over every position of every image of the group.
    #[inline(always)]
    unsafe fn weight_grad<const CB: usize, const STRIDE: usize>(
        bordered: &[f32],
        g: &[f32],
        images: usize,
        cin: usize,
        cout: usize,
        geo: Padded,
        dw: &mut [f32],
    ) {
        let stride = geo.out_stride();
        let gplane = geo.oh * stride;
        let cols = columns::<STRIDE>(&geo);
        let (xs, gs) = (bordered.as_ptr(), g.as_ptr());
        for o0 in (0..cout).step_by(CB) {
            // Channels past `cout` reread the last one; their sums are not stored.
            let chan: [usize; CB] = std::array::from_fn(|c| (o0 + c).min(cout - 1));
            for ci in 0..cin {
                for ky in 0..3 {
                    let mut acc = [[_mm256_setzero_ps(); 3]; CB];
                    for img in 0..images {
                        let xplane = xs.add((img * cin + ci) * geo.plane + ky * geo.row);
                        let gimg = gs.add(img * cout * gplane);
                        let grows: [*const f32; CB] =
                            std::array::from_fn(|c| gimg.add(chan[c] * gplane));
                        for y in 0..geo.oh {
                            let xrow = xplane.add(geo.row_start(y));
                            let at = y * stride;
                            for x in (0..geo.vw * LANES).step_by(LANES) {
                                let taps = [
                                    _mm256_loadu_ps(xrow.add(x + cols[0])),
                                    _mm256_loadu_ps(xrow.add(x + cols[1])),
                                    _mm256_loadu_ps(xrow.add(x + cols[2])),
                                ];
                                for (c, row) in acc.iter_mut().enumerate() {
                                    let gv = _mm256_loadu_ps(grows[c].add(at + x));
                                    for kx in 0..3 {
                                        row[kx] = _mm256_fmadd_ps(gv, taps[kx], row[kx]);
                                    }
                                }
                            }
                        }
                    }
                    for (c, row) in acc.iter().enumerate() {
                        let co = o0 + c;
                        if co < cout {
                            let base = ((co * cin + ci) * 3 + ky) * 3;
                            for kx in 0..3 {
                                dw[base + kx] += lane_sum(row[kx]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`weight_grad`] with 4-channel tiles, for AVX2 + FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad_avx2(
        bordered: &[f32],
        g: &[f32],
        images: usize,
        cin: usize,
        cout: usize,
        geo: Padded,
        dw: &mut [f32],
    ) {
        if geo.stride == 1 {
            weight_grad::<4, 1>(bordered, g, images, cin, cout, geo, dw)
        } else {
            weight_grad::<4, 2>(bordered, g, images, cin, cout, geo, dw)
        }
    }

    /// Bytes of output gradient an 8-channel weight-gradient tile may reread from L1 (half of
    /// a 32 KiB L1D: the input rows need the rest).
    const WIDE_TILE_GRADIENT_BYTES: usize = 16 << 10;

    /// [`weight_grad`] for AVX-512's 32 registers: 8-channel tiles where the 8 gradient planes of
    /// the group fit half of L1 (stage 2 and 3 of ResNet-20), 4-channel ones where they would
    /// not (32 × 32 planes: 3.5 ms instead of 4.0 at batch 128).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn weight_grad_avx512(
        bordered: &[f32],
        g: &[f32],
        images: usize,
        cin: usize,
        cout: usize,
        geo: Padded,
        dw: &mut [f32],
    ) {
        let wide_bytes = 8 * images * geo.oh * geo.out_stride() * std::mem::size_of::<f32>();
        match (wide_bytes <= WIDE_TILE_GRADIENT_BYTES, geo.stride == 1) {
            (true, true) => weight_grad::<8, 1>(bordered, g, images, cin, cout, geo, dw),
            (true, false) => weight_grad::<8, 2>(bordered, g, images, cin, cout, geo, dw),
            (false, true) => weight_grad::<4, 1>(bordered, g, images, cin, cout, geo, dw),
            (false, false) => weight_grad::<4, 2>(bordered, g, images, cin, cout, geo, dw),
        }
    }
}
