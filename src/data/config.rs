//! `[data]`: which data set, where it lives, and how workers share it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{DatasetName, Sharding};

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Which data set.
    pub name: DatasetName,
    /// Its directory; absent means the data set's default (e.g. the Debian package's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Disjoint shards per worker, or seeded independent sampling of the whole set.
    pub sharding: Sharding,
    /// Random crop and flip on data sets that take them (CIFAR); ignored elsewhere.
    pub augment: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            name: DatasetName::FashionMnist,
            dir: None,
            sharding: Sharding::default(),
            augment: true,
        }
    }
}
