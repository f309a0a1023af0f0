//! Training data: readers for the IDX (MNIST, Fashion-MNIST) and CIFAR binary formats, a generated
//! data set, per-worker sharding with seeded per-epoch shuffling, augmentation and normalization.

mod augment;
pub mod cifar;
mod config;
mod dataset;
mod error;
pub mod idx;
mod pixel_store;
mod sampler;
mod selection;
mod stream;
mod synthetic;

pub use augment::Batch;
pub use config::DataConfig;
pub use dataset::{load, load_lean, load_test, load_train, Dataset, DatasetName, Split};
pub use error::DataError;
pub use pixel_store::{PixelStore, RecordFiles};
pub use sampler::{Sampler, Sharding};
pub use selection::Selection;
pub use synthetic::synthetic;
