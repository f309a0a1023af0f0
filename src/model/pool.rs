//! 2×2 max-pooling with stride 2 and a correct gradient.
//!
//! candle 0.11.1's `max_pool2d` backward multiplies the gradient by the fraction of maxima in a
//! window (¼ for a unique maximum) instead of dividing by their count, so every layer below a
//! pooling layer learns 4× too slowly, and it misplaces gradients for odd sizes. This version is
//! built from a reshape and two `max` reductions, whose backward sends the whole gradient to the
//! maximum. Odd trailing rows and columns are dropped, as in PyTorch (floor mode).

use candle_core::{Result, Tensor};

/// `N × C × H × W → N × C × ⌊H/2⌋ × ⌊W/2⌋`, each output the maximum of its 2×2 window.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(2, 0, 2 * h2)?.narrow(3, 0, 2 * w2)?
    } else {
        x.clone()
    };
    x.reshape((n, c, h2, 2, w2, 2))?.max(5)?.max(3)
}
