//! A data set in memory (raw `u8` pixels, labels, shape, normalization) and loading one by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cifar::{self, Cifar100Label};
use super::pixel_store::PixelStore;
use super::selection::Selection;
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
    /// `len × channels × height × width` bytes, channel-major per image: in memory, or in the
    /// data files (a worker's CIFAR shard).
    pub pixels: PixelStore,
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

    /// The examples at `indices`, in that order, as a data set of their own (same shape,
    /// classes and normalization); an index past the end is an error naming it.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let selection = Selection::only(self.len(), indices)?;
        Ok(Dataset {
            pixels: self.pixels.pick(&selection, self.image_len()),
            labels: selection.pick(&self.labels, 1),
            mean: self.mean.clone(),
            std: self.std.clone(),
            ..*self
        })
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

/// Loads `name` from `dir` (or its default folder) into memory; `seed` fixes the synthetic set.
pub fn load(name: DatasetName, dir: Option<&Path>, seed: u64) -> Result<Split, DataError> {
    load_split(name, dir, seed, false)
}

/// [`load`], but CIFAR's training pixels stay in the files (read per image when a batch is
/// made): for a process that draws few training batches, such as a server recomputing
/// batch-norm statistics.
pub fn load_lean(name: DatasetName, dir: Option<&Path>, seed: u64) -> Result<Split, DataError> {
    load_split(name, dir, seed, true)
}

fn load_split(
    name: DatasetName,
    dir: Option<&Path>,
    seed: u64,
    cifar_in_files: bool,
) -> Result<Split, DataError> {
    let (dir, hint) = locate_set(name, dir)?;
    let train = train_part(name, &dir, hint, seed, cifar_in_files, |n| {
        Ok(Selection::all(n))
    })?;
    let test = test_part(name, &dir, hint, seed)?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::Inconsistent {
            path: dir,
            what: format!(
                "training images are {}x{} but test images are {}x{}",
                train.height, train.width, test.height, test.width
            ),
        });
    }
    Ok(Split { train, test })
}

/// Loads only the training examples of `name` that `select` keeps (it is given the training
/// set's size), in the selection's order, streaming the files so that only those are ever
/// held: what a worker trains on. No test set. CIFAR's pixels stay in its files (fixed-size
/// records, read per image when a batch is made); the IDX formats, often compressed, are held.
pub fn load_train(
    name: DatasetName,
    dir: Option<&Path>,
    seed: u64,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<Dataset, DataError> {
    let (dir, hint) = locate_set(name, dir)?;
    train_part(name, &dir, hint, seed, true, select)
}

/// Loads only the test examples of `name`: what evaluating a saved model needs.
pub fn load_test(name: DatasetName, dir: Option<&Path>, seed: u64) -> Result<Dataset, DataError> {
    let (dir, hint) = locate_set(name, dir)?;
    test_part(name, &dir, hint, seed)
}

/// The folder of `name` (configured or default) and how to get the data, checked to exist.
fn locate_set(name: DatasetName, dir: Option<&Path>) -> Result<(PathBuf, &'static str), DataError> {
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
    Ok((dir, hint))
}

const CIFAR10_NORM: ([f32; 3], [f32; 3]) = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]);
const CIFAR100_NORM: ([f32; 3], [f32; 3]) = ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]);

fn train_part(
    name: DatasetName,
    dir: &Path,
    hint: &str,
    seed: u64,
    cifar_in_files: bool,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<Dataset, DataError> {
    let cifar = |files: &[PathBuf], labels, select| {
        if cifar_in_files {
            cifar::index_records_selected(files, labels, hint, select)
        } else {
            cifar::read_records_selected(files, labels, hint, select).map(in_memory)
        }
    };
    match name {
        DatasetName::FashionMnist => idx_part(dir, hint, IDX_TRAIN, (0.2860, 0.3530), select),
        DatasetName::Mnist => idx_part(dir, hint, IDX_TRAIN, (0.1307, 0.3081), select),
        DatasetName::Cifar10 => {
            let files: Vec<PathBuf> = (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect();
            let train = cifar(&files, None, select)?;
            Ok(cifar_set(train, 10, CIFAR10_NORM))
        }
        DatasetName::Cifar100 => {
            let files = [dir.join("train.bin")];
            let fine = Some(Cifar100Label::Fine);
            let train = cifar(&files, fine, select)?;
            Ok(cifar_set(train, 100, CIFAR100_NORM))
        }
        DatasetName::Synthetic => {
            let train = synthetic::synthetic(seed, 2000, 500).train;
            let selection = select(train.len())?;
            Ok(Dataset {
                pixels: train.pixels.pick(&selection, train.image_len()),
                labels: selection.pick(&train.labels, 1),
                ..train
            })
        }
    }
}

fn test_part(name: DatasetName, dir: &Path, hint: &str, seed: u64) -> Result<Dataset, DataError> {
    let all = |n| Ok(Selection::all(n));
    match name {
        DatasetName::FashionMnist => idx_part(dir, hint, IDX_TEST, (0.2860, 0.3530), all),
        DatasetName::Mnist => idx_part(dir, hint, IDX_TEST, (0.1307, 0.3081), all),
        DatasetName::Cifar10 => {
            let test = cifar::read_records(&dir.join("test_batch.bin"), None, hint)?;
            Ok(cifar_set(in_memory(test), 10, CIFAR10_NORM))
        }
        DatasetName::Cifar100 => {
            let fine = Some(Cifar100Label::Fine);
            let test = cifar::read_records(&dir.join("test.bin"), fine, hint)?;
            Ok(cifar_set(in_memory(test), 100, CIFAR100_NORM))
        }
        DatasetName::Synthetic => Ok(synthetic::synthetic(seed, 2000, 500).test),
    }
}

fn in_memory(r: cifar::CifarRecords) -> (Vec<u8>, PixelStore) {
    (r.labels, PixelStore::Memory(r.pixels))
}

fn cifar_set(
    (labels, pixels): (Vec<u8>, PixelStore),
    classes: usize,
    norm: ([f32; 3], [f32; 3]),
) -> Dataset {
    Dataset {
        channels: 3,
        height: 32,
        width: 32,
        classes,
        pixels,
        labels,
        mean: norm.0.to_vec(),
        std: norm.1.to_vec(),
        augmentable: true,
    }
}

/// The image and label files of the IDX training and test parts.
const IDX_TRAIN: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
const IDX_TEST: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

fn idx_part(
    dir: &Path,
    hint: &str,
    (images, labels): (&str, &str),
    (mean, std): (f32, f32),
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<Dataset, DataError> {
    let images_path = idx::locate(dir, images, hint)?;
    let labels_path = idx::locate(dir, labels, hint)?;
    let lab = idx::read_labels(&labels_path, hint)?;
    if let Some(i) = lab.iter().position(|&l| l >= 10) {
        return Err(DataError::Inconsistent {
            path: labels_path,
            what: format!("label {} at position {i} is not a class 0..10", lab[i]),
        });
    }
    let mut chosen = None;
    let img = idx::read_images_selected(&images_path, hint, |count| {
        if lab.len() != count {
            return Err(DataError::Inconsistent {
                path: labels_path.clone(),
                what: format!(
                    "{} labels for {count} images in {}",
                    lab.len(),
                    images_path.display()
                ),
            });
        }
        let selection = select(count)?;
        chosen = Some(selection.clone());
        Ok(selection)
    })?;
    let labels = match chosen {
        Some(selection) => selection.pick(&lab, 1),
        None => lab,
    };
    Ok(Dataset {
        channels: 1,
        height: img.rows,
        width: img.cols,
        classes: 10,
        pixels: PixelStore::Memory(img.pixels),
        labels,
        mean: vec![mean],
        std: vec![std],
        augmentable: false,
    })
}
