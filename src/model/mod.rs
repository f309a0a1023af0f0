//! candle models and the flat parameter layout every node shares.

mod layout;
mod mlp;

pub use layout::{is_running_stat, ParamLayout};
pub use mlp::Mlp;
