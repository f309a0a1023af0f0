//! Bias, ReLU and 2×2 max-pooling (stride 2, odd trailing rows and columns dropped) fused after
//! a convolution: the forward keeps, per pooled output, only which of its four inputs was the
//! maximum (one byte), so the full-size activation never outlives the forward pass.
//!
//! `relu(max(window)) = max(relu(window))` (ReLU is monotone), so the output is the window's
//! maximum clipped at zero, and its gradient flows to the maximum's position when the output
//! is positive and nowhere otherwise — what ReLU then max-pooling give.

use rayon::prelude::*;

/// `z` (`batch × channels × h × w`, channel planes contiguous) plus `bias[channel]`, ReLU,
/// then 2×2 max-pooling: returns the `batch × channels × ⌊h/2⌋ × ⌊w/2⌋` output and, for each
/// output, the index 0‥3 (row-major in its window) of the first maximum.
pub fn bias_relu_pool_forward(
    z: &[f32],
    bias: &[f32],
    channels: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let planes = z.len() / (h * w).max(1);
    let mut y = vec![0.0f32; planes * oh * ow];
    let mut arg = vec![0u8; planes * oh * ow];
    if oh * ow == 0 {
        return (y, arg);
    }
    y.par_chunks_mut(oh * ow)
        .zip(arg.par_chunks_mut(oh * ow))
        .zip(z.par_chunks(h * w))
        .enumerate()
        .for_each(|(plane, ((y, arg), z))| {
            let b = bias[plane % channels];
            for r in 0..oh {
                for c in 0..ow {
                    let at = |dy: usize, dx: usize| z[(2 * r + dy) * w + 2 * c + dx];
                    let mut best = at(0, 0);
                    let mut which = 0u8;
                    for (k, (dy, dx)) in [(0, 1), (1, 0), (1, 1)].into_iter().enumerate() {
                        let v = at(dy, dx);
                        if v > best {
                            best = v;
                            which = k as u8 + 1;
                        }
                    }
                    y[r * ow + c] = (best + b).max(0.0);
                    arg[r * ow + c] = which;
                }
            }
        });
    (y, arg)
}

/// The gradient with respect to the pre-bias input `z` (`batch × channels × h × w`) given the
/// output gradient `g`, the output `y` and the maxima's positions `arg` of the forward; with the
/// bias gradient (per channel, summed over the batch and the plane).
pub fn bias_relu_pool_backward(
    g: &[f32],
    y: &[f32],
    arg: &[u8],
    channels: usize,
    h: usize,
    w: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (oh, ow) = (h / 2, w / 2);
    let planes = g.len() / (oh * ow).max(1);
    let mut dz = vec![0.0f32; planes * h * w];
    if oh * ow == 0 {
        return (dz, vec![0.0; channels]);
    }
    let plane_sums: Vec<f32> = dz
        .par_chunks_mut(h * w)
        .zip(g.par_chunks(oh * ow))
        .zip(y.par_chunks(oh * ow).zip(arg.par_chunks(oh * ow)))
        .map(|((dz, g), (y, arg))| {
            let mut sum = 0.0f32;
            for i in 0..oh * ow {
                if y[i] > 0.0 {
                    let (r, c) = (i / ow, i % ow);
                    let (dy, dx) = (arg[i] as usize / 2, arg[i] as usize % 2);
                    dz[(2 * r + dy) * w + 2 * c + dx] = g[i];
                    sum += g[i];
                }
            }
            sum
        })
        .collect();
    let mut dbias = vec![0.0f32; channels];
    for (plane, s) in plane_sums.iter().enumerate() {
        dbias[plane % channels] += s;
    }
    (dz, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_the_biased_maximum_and_clips_at_zero() {
        // One plane 3×5 (odd: the last row and column are dropped), two channels' bias.
        #[rustfmt::skip]
        let z = [
            1.0, 5.0, -1.0, -2.0, 9.0,
            2.0, 3.0, -3.0, -0.5, 9.0,
            9.0, 9.0,  9.0,  9.0, 9.0,
        ];
        let (y, arg) = bias_relu_pool_forward(&z, &[0.5, 100.0], 2, 3, 5);
        assert_eq!(y, [5.5, 0.0]);
        assert_eq!(arg, [1, 3]);
        let (dz, db) = bias_relu_pool_backward(&[2.0, 7.0], &y, &arg, 2, 3, 5);
        let mut want = [0.0f32; 15];
        want[1] = 2.0;
        assert_eq!(dz, want);
        assert_eq!(db, [2.0, 0.0]);
    }
}
