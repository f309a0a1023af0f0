//! The geometry of a 2-D convolution over NCHW images (no bias, no dilation, one group), and the
//! im2col / col2im maps between one image and its patch matrix.
//!
//! The patch matrix of an image has one row per (input channel, kernel row, kernel column) — the
//! order of a `Cout × Cin × KH × KW` weight's last three dimensions — and one column per output
//! position, row-major: `col[(ci·KH + ky)·KW + kx][oy·OW + ox] = x[ci][oy·s + ky − p][ox·s + kx − p]`,
//! zero where that falls in the padding.

/// The shapes of one convolution: input `batch × cin × h × w`, weight `cout × cin × kh × kw`,
/// stride and zero padding the same along both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both axes, both sides).
    pub pad: usize,
}

impl ConvShape {
    /// Checks that the shape describes a convolution with at least one output per image.
    pub fn check(&self) -> Result<(), String> {
        if self.stride == 0 {
            return Err("convolution stride must be ≥ 1".into());
        }
        if [self.cin, self.h, self.w, self.cout, self.kh, self.kw].contains(&0) {
            return Err(format!("convolution with an empty dimension: {self:?}"));
        }
        if self.h + 2 * self.pad < self.kh || self.w + 2 * self.pad < self.kw {
            return Err(format!(
                "a {}×{} kernel does not fit a {}×{} input with padding {}",
                self.kh, self.kw, self.h, self.w, self.pad
            ));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }

    /// Output positions per channel (`out_h · out_w`): the columns of the patch matrix.
    pub fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Input values per image.
    pub fn in_image(&self) -> usize {
        self.cin * self.h * self.w
    }

    /// Output values per image.
    pub fn out_image(&self) -> usize {
        self.cout * self.out_plane()
    }

    /// Rows of the patch matrix (`cin · kh · kw`): the inner dimension of the matrix products.
    pub fn patch(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    /// Weight values (`cout · cin · kh · kw`).
    pub fn weight_len(&self) -> usize {
        self.cout * self.patch()
    }

    /// True when the patch matrix is the image itself (1×1 kernel, stride 1, no padding), so no
    /// im2col copy is needed.
    pub fn is_identity_patch(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// The output columns `lo..hi` whose input column `ox·s + k − p` lies inside the image, for
    /// kernel offset `k` along an axis of input size `size` and output size `out`.
    fn valid_range(&self, k: usize, size: usize, out: usize) -> (usize, usize) {
        let lo = if self.pad > k {
            (self.pad - k).div_ceil(self.stride)
        } else {
            0
        };
        let hi = if size + self.pad > k {
            ((size - 1 + self.pad - k) / self.stride + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Fills `col` (`patch() × out_plane()`) with the patches of one image `x` (`cin × h × w`).
    pub fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let plane = self.h * self.w;
        let cols = oh * ow;
        for ci in 0..self.cin {
            let src_plane = &x[ci * plane..(ci + 1) * plane];
            for ky in 0..self.kh {
                let (oy_lo, oy_hi) = self.valid_range(ky, self.h, oh);
                for kx in 0..self.kw {
                    let (ox_lo, ox_hi) = self.valid_range(kx, self.w, ow);
                    let r = (ci * self.kh + ky) * self.kw + kx;
                    let row = &mut col[r * cols..(r + 1) * cols];
                    row[..oy_lo * ow].fill(0.0);
                    row[oy_hi * ow..].fill(0.0);
                    for oy in oy_lo..oy_hi {
                        let iy = oy * self.stride + ky - self.pad;
                        let src = &src_plane[iy * self.w..(iy + 1) * self.w];
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        dst[..ox_lo].fill(0.0);
                        dst[ox_hi..].fill(0.0);
                        if self.stride == 1 {
                            let start = ox_lo + kx - self.pad;
                            dst[ox_lo..ox_hi].copy_from_slice(&src[start..start + ox_hi - ox_lo]);
                        } else {
                            for (ox, d) in dst[ox_lo..ox_hi].iter_mut().enumerate() {
                                *d = src[(ox + ox_lo) * self.stride + kx - self.pad];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the patch matrix `col` (`patch() × out_plane()`) back onto one image `dx`
    /// (`cin × h × w`): the transpose of [`ConvShape::im2col`].
    pub fn col2im_add(&self, col: &[f32], dx: &mut [f32]) {
        let (oh, ow) = (self.out_h(), self.out_w());
        let plane = self.h * self.w;
        let cols = oh * ow;
        for ci in 0..self.cin {
            let dst_plane = &mut dx[ci * plane..(ci + 1) * plane];
            for ky in 0..self.kh {
                let (oy_lo, oy_hi) = self.valid_range(ky, self.h, oh);
                for kx in 0..self.kw {
                    let (ox_lo, ox_hi) = self.valid_range(kx, self.w, ow);
                    let r = (ci * self.kh + ky) * self.kw + kx;
                    let row = &col[r * cols..(r + 1) * cols];
                    for oy in oy_lo..oy_hi {
                        let iy = oy * self.stride + ky - self.pad;
                        let dst = &mut dst_plane[iy * self.w..(iy + 1) * self.w];
                        let src = &row[oy * ow + ox_lo..oy * ow + ox_hi];
                        if self.stride == 1 {
                            let start = ox_lo + kx - self.pad;
                            for (d, s) in dst[start..start + src.len()].iter_mut().zip(src) {
                                *d += *s;
                            }
                        } else {
                            for (ox, s) in src.iter().enumerate() {
                                dst[(ox + ox_lo) * self.stride + kx - self.pad] += *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(h: usize, w: usize, k: usize, stride: usize, pad: usize) -> ConvShape {
        ConvShape {
            batch: 1,
            cin: 2,
            h,
            w,
            cout: 1,
            kh: k,
            kw: k,
            stride,
            pad,
        }
    }

    /// The definition, index by index.
    fn im2col_naive(s: &ConvShape, x: &[f32]) -> Vec<f32> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut col = vec![0.0; s.patch() * oh * ow];
        for ci in 0..s.cin {
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                            let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w;
                            let r = (ci * s.kh + ky) * s.kw + kx;
                            col[r * oh * ow + oy * ow + ox] = if inside {
                                x[ci * s.h * s.w + iy as usize * s.w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_transpose() {
        for (h, w, k, stride, pad) in [
            (5, 7, 3, 1, 1),
            (6, 6, 3, 2, 1),
            (7, 5, 3, 2, 1),
            (4, 4, 1, 2, 0),
            (5, 5, 1, 1, 0),
            (3, 8, 3, 1, 0),
            (2, 3, 3, 1, 2),
            (9, 9, 5, 3, 2),
        ] {
            let s = shape(h, w, k, stride, pad);
            s.check().unwrap();
            let x: Vec<f32> = (0..s.in_image()).map(|i| i as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; s.patch() * s.out_plane()];
            s.im2col(&x, &mut col);
            assert_eq!(col, im2col_naive(&s, &x), "im2col {s:?}");
            // <im2col(x), c> = <x, col2im(c)> for any c: col2im is the exact transpose.
            let c: Vec<f32> = (0..col.len())
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect();
            let mut back = vec![0.0; x.len()];
            s.col2im_add(&c, &mut back);
            let lhs: f32 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "col2im {s:?}");
        }
    }

    #[test]
    fn shapes_that_cannot_convolve_are_refused() {
        assert!(shape(2, 2, 3, 1, 0).check().is_err());
        assert!(shape(4, 4, 3, 0, 1).check().is_err());
        assert!(
            shape(0, 4, 1, 1, 1).check().is_err(),
            "an empty image, even padded"
        );
        assert_eq!(shape(32, 32, 3, 2, 1).out_h(), 16);
        assert_eq!(shape(32, 32, 1, 2, 0).out_w(), 16);
    }
}
