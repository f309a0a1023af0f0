//! candle models and the flat parameter layout every node shares.

mod activation_memory;
mod batch_norm;
mod cnn;
mod config;
mod export;
mod layout;
mod mlp;
mod network;
mod pool;
mod resnet;
mod resnet_step;
mod tensor_copy;

pub use activation_memory::ActivationMemory;
pub use batch_norm::{BatchNorm2d, BnMomentum, DEFAULT_BN_MOMENTUM};
pub use cnn::Cnn;
pub use config::{BnEval, ModelConfig};
pub use export::{load_safetensors, to_safetensors, MAX_MODEL_FILE_BYTES, MODEL_FILE};
pub use layout::{fnv1a, is_running_stat, ParamLayout, FNV_OFFSET};
pub use mlp::Mlp;
pub use network::{InputSpec, ModelName, Network, TrainStep, MLP_HIDDEN};
pub use pool::max_pool2x2;
pub use resnet::ResNet20;
pub use tensor_copy::{copy_values, set_var};
