//! A data set in memory (raw `u8` pixels, labels, shape, normalization) and loading one by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cifar::{self, Cifar100Label};
use super::{idx, synthetic, DataError};

/// The data sets lagom reads, by configuration name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// Zalando's Fashion-MNIST (IDX files; Debian package `dataset-fashion-mnist`).
    FashionMnist,
    /// MNIST handwritten digits (IDX files).
    Mnist,
    /// CIFAR-10 binary version.
    Cifar10,
    /// CIFAR-100 binary version (fine labels).
    Cifar100,
    /// A generated, learnable, seeded data set for tests and smoke runs.
    Synthetic,
}

impl DatasetName {
    /// The configuration name (`"fashion-mnist"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist => "mnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
            DatasetName::Synthetic => "synthetic",
        }
    }

    /// `(channels, height, width, classes)` of the data set's examples, known without reading it.
    pub fn shape(self) -> (usize, usize, usize, usize) {
        match self {
            DatasetName::FashionMnist | DatasetName::Mnist => (1, 28, 28, 10),
            DatasetName::Cifar10 => (3, 32, 32, 10),
            DatasetName::Cifar100 => (3, 32, 32, 100),
            DatasetName::Synthetic => (1, 16, 16, 10),
        }
    }
}

/// Images of one split, as raw bytes plus what is needed to turn them into tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// `len × channels × height × width` bytes, channel-major per image.
    pub pixels: Vec<u8>,
    /// One label per image, `< classes`.
    pub labels: Vec<u8>,
    /// Per-channel mean of pixel/255, subtracted before training.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of pixel/255, divided by before training.
    pub std: Vec<f32>,
    /// Whether random crop + flip suit this data (natural images).
    pub augmentable: bool,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A training split and a test split of the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training examples.
    pub train: Dataset,
    /// Held-out examples.
    pub test: Dataset,
}

/// Where each data set is looked for when no directory is configured.
pub fn default_dir(name: DatasetName) -> PathBuf {
    match name {
        DatasetName::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
        DatasetName::Mnist => PathBuf::from("/usr/share/datasets/mnist"),
        DatasetName::Cifar10 => PathBuf::from("data/cifar-10-batches-bin"),
        DatasetName::Cifar100 => PathBuf::from("data/cifar-100-binary"),
        DatasetName::Synthetic => PathBuf::new(),
    }
}

fn hint(name: DatasetName) -> &'static str {
    match name {
        DatasetName::FashionMnist => {
            "install it with `apt-get install dataset-fashion-mnist` (files land in \
             /usr/share/datasets/fashion-mnist) or set [data] dir to a folder with the four IDX files"
        }
        DatasetName::Mnist => {
            "put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and \
             t10k-labels-idx1-ubyte (optionally .gz) in the folder and set [data] dir"
        }
        DatasetName::Cifar10 => {
            "download the CIFAR-10 binary version (cifar-10-binary.tar.gz from the CIFAR page), \
             unpack it and set [data] dir to its cifar-10-batches-bin folder"
        }
        DatasetName::Cifar100 => {
            "download the CIFAR-100 binary version (cifar-100-binary.tar.gz from the CIFAR page), \
             unpack it and set [data] dir to its cifar-100-binary folder"
        }
        DatasetName::Synthetic => "",
    }
}

/// Loads `name` from `dir` (or its default folder); `seed` fixes the synthetic set.
pub fn load(name: DatasetName, dir: Option<&Path>, seed: u64) -> Result<Split, DataError> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_dir(name));
    let hint = hint(name);
    if name != DatasetName::Synthetic && !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir,
            hint: hint.to_string(),
        });
    }
    match name {
        DatasetName::FashionMnist => load_idx(&dir, hint, 0.2860, 0.3530),
        DatasetName::Mnist => load_idx(&dir, hint, 0.1307, 0.3081),
        DatasetName::Cifar10 => {
            let mut train = cifar::CifarRecords::default();
            for i in 1..=5 {
                let part =
                    cifar::read_records(&dir.join(format!("data_batch_{i}.bin")), None, hint)?;
                train.pixels.extend(part.pixels);
                train.labels.extend(part.labels);
            }
            let test = cifar::read_records(&dir.join("test_batch.bin"), None, hint)?;
            let norm = (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]);
            Ok(cifar_split(train, test, 10, norm))
        }
        DatasetName::Cifar100 => {
            let fine = Some(Cifar100Label::Fine);
            let train = cifar::read_records(&dir.join("train.bin"), fine, hint)?;
            let test = cifar::read_records(&dir.join("test.bin"), fine, hint)?;
            let norm = (vec![0.5071, 0.4865, 0.4409], vec![0.2673, 0.2564, 0.2762]);
            Ok(cifar_split(train, test, 100, norm))
        }
        DatasetName::Synthetic => Ok(synthetic::synthetic(seed, 2000, 500)),
    }
}

fn cifar_split(
    train: cifar::CifarRecords,
    test: cifar::CifarRecords,
    classes: usize,
    norm: (Vec<f32>, Vec<f32>),
) -> Split {
    let make = |r: cifar::CifarRecords| Dataset {
        channels: 3,
        height: 32,
        width: 32,
        classes,
        pixels: r.pixels,
        labels: r.labels,
        mean: norm.0.clone(),
        std: norm.1.clone(),
        augmentable: true,
    };
    Split {
        train: make(train),
        test: make(test),
    }
}

fn load_idx(dir: &Path, hint: &str, mean: f32, std: f32) -> Result<Split, DataError> {
    let part = |images: &str, labels: &str| -> Result<Dataset, DataError> {
        let images_path = idx::locate(dir, images, hint)?;
        let labels_path = idx::locate(dir, labels, hint)?;
        let img = idx::read_images(&images_path, hint)?;
        let lab = idx::read_labels(&labels_path, hint)?;
        if lab.len() != img.count {
            return Err(DataError::Inconsistent {
                path: labels_path,
                what: format!(
                    "{} labels for {} images in {}",
                    lab.len(),
                    img.count,
                    images_path.display()
                ),
            });
        }
        if let Some(i) = lab.iter().position(|&l| l >= 10) {
            return Err(DataError::Inconsistent {
                path: labels_path,
                what: format!("label {} at position {i} is not a class 0..10", lab[i]),
            });
        }
        Ok(Dataset {
            channels: 1,
            height: img.rows,
            width: img.cols,
            classes: 10,
            pixels: img.pixels,
            labels: lab,
            mean: vec![mean],
            std: vec![std],
            augmentable: false,
        })
    };
    let train = part("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = part("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::Inconsistent {
            path: dir.to_path_buf(),
            what: format!(
                "training images are {}x{} but test images are {}x{}",
                train.height, train.width, test.height, test.width
            ),
        });
    }
    Ok(Split { train, test })
}
