//! Turning examples into a normalized `f32` batch, with the standard CIFAR augmentation (random
//! crop from the image padded by 4 zero pixels, and a horizontal flip with probability ½).

use rand::Rng;

use super::{DataError, Dataset};

/// Padding of the random crop, in pixels.
pub const CROP_PADDING: usize = 4;

/// A mini-batch ready for a model: `len × C × H × W` normalized values and class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalized pixels, channel-major per image.
    pub images: Vec<f32>,
    /// Labels as `u32` (what candle's cross-entropy takes).
    pub labels: Vec<u32>,
    /// `(channels, height, width)` of each image.
    pub shape: (usize, usize, usize),
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Dataset {
    /// The examples at `indices`, normalized per channel; with `augment`, each image is randomly
    /// cropped and flipped using that random stream (only for data sets marked augmentable).
    /// An error for an index past the end or an image its file no longer yields.
    pub fn batch<R: Rng>(
        &self,
        indices: &[usize],
        mut augment: Option<&mut R>,
    ) -> Result<Batch, DataError> {
        let (c, h, w) = (self.channels, self.height, self.width);
        let plane = h * w;
        let mut images = Vec::with_capacity(indices.len() * c * plane);
        let mut labels = Vec::with_capacity(indices.len());
        let mut scratch = vec![0u8; c * plane];
        for &i in indices {
            let src = self.pixels.image(i, c * plane, &mut scratch)?;
            let label = self.labels.get(i).ok_or(DataError::OutOfRange {
                index: i,
                len: self.len(),
            })?;
            labels.push(u32::from(*label));
            let (dy, dx, flip) = match augment.as_deref_mut() {
                Some(rng) if self.augmentable => {
                    let span = 2 * CROP_PADDING + 1;
                    (
                        rng.random_range(0..span) as isize - CROP_PADDING as isize,
                        rng.random_range(0..span) as isize - CROP_PADDING as isize,
                        rng.random_bool(0.5),
                    )
                }
                _ => (0, 0, false),
            };
            for ch in 0..c {
                let (mean, std) = (self.mean[ch], self.std[ch]);
                let src = &src[ch * plane..(ch + 1) * plane];
                for y in 0..h {
                    for x in 0..w {
                        let sx = if flip { w - 1 - x } else { x } as isize + dx;
                        let sy = y as isize + dy;
                        let raw = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                            src[sy as usize * w + sx as usize]
                        } else {
                            0
                        };
                        images.push((f32::from(raw) / 255.0 - mean) / std);
                    }
                }
            }
        }
        Ok(Batch {
            images,
            labels,
            shape: (c, h, w),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn tiny(augmentable: bool) -> Dataset {
        Dataset {
            channels: 1,
            height: 2,
            width: 3,
            classes: 2,
            pixels: crate::data::PixelStore::Memory(vec![0, 51, 102, 153, 204, 255]),
            labels: vec![1],
            mean: vec![0.5],
            std: vec![0.25],
            augmentable,
        }
    }

    #[test]
    fn normalization_is_per_channel_and_exact() {
        let b = tiny(false).batch::<ChaCha8Rng>(&[0], None).unwrap();
        assert_eq!(b.labels, vec![1]);
        assert_eq!(b.images[0], -2.0);
        assert_eq!(b.images[5], 2.0);
        assert!((b.images[1] - (0.2 - 0.5) / 0.25).abs() < 1e-6);
    }

    #[test]
    fn augmentation_only_moves_and_mirrors_pixels_of_natural_images() {
        let d = tiny(true);
        let plain = d.batch::<ChaCha8Rng>(&[0], None).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pad = (0.0 - 0.5) / 0.25;
        let mut changed = false;
        for _ in 0..50 {
            let a = d.batch(&[0], Some(&mut rng)).unwrap();
            // Every value is an original pixel or the zero padding.
            assert!(a
                .images
                .iter()
                .all(|v| plain.images.contains(v) || *v == pad));
            changed |= a.images != plain.images;
        }
        assert!(changed, "random crops and flips change some batches");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(
            tiny(false).batch(&[0], Some(&mut rng)).unwrap(),
            plain,
            "no augmentation for digits"
        );
    }
}
