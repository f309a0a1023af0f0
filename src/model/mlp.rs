//! A multilayer perceptron: flatten, one hidden ReLU layer, a linear classifier. The fastest
//! model, for tests and tiny nodes.

use candle_core::{Result, Tensor};
use candle_nn::{linear, Linear, Module, VarBuilder};

/// `input → hidden (ReLU) → classes`.
#[derive(Debug, Clone)]
pub struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    /// Creates the layers under `vb` (names `hidden.*`, `out.*`).
    pub fn new(vb: VarBuilder, input: usize, hidden: usize, classes: usize) -> Result<Self> {
        Ok(Mlp {
            hidden: linear(input, hidden, vb.pp("hidden"))?,
            out: linear(hidden, classes, vb.pp("out"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.flatten_from(1)?
            .apply(&self.hidden)?
            .relu()?
            .apply(&self.out)
    }
}
