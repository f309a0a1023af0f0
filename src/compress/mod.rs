//! Gradient compression for the wire (`net.compress`): top-k sparsification with error feedback.

mod topk;

pub use topk::{densify, SparseGradient, TopK};
