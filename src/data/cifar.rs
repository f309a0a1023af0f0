//! The CIFAR binary distributions. CIFAR-10: `data_batch_1.bin`…`data_batch_5.bin` and
//! `test_batch.bin`, records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
//! CIFAR-100: `train.bin` and `test.bin`, records of a coarse label, a fine label and 3072 bytes.

use std::path::Path;

use super::DataError;

/// Pixel bytes of one CIFAR image (3 × 32 × 32, channel-major).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR-100 label to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Label {
    /// The 100 fine classes.
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// Records of one CIFAR file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CifarRecords {
    /// `count × 3072` pixel bytes.
    pub pixels: Vec<u8>,
    /// One label per record.
    pub labels: Vec<u8>,
}

/// Reads one CIFAR-10 file (`label_bytes = 1`) or CIFAR-100 file (`label_bytes = 2`; `which`
/// picks the label), checking that it holds whole records and that labels are in range.
pub fn read_records(
    path: &Path,
    cifar100: Option<Cifar100Label>,
    hint: &str,
) -> Result<CifarRecords, DataError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let label_bytes = if cifar100.is_some() { 2 } else { 1 };
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || bytes.len() % record != 0 {
        let whole = (bytes.len() / record + 1) * record;
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: whole as u64,
            found: bytes.len() as u64,
            hint: format!("records are {record} bytes; {hint}"),
        });
    }
    let (classes, offset) = match cifar100 {
        None => (10u8, 0),
        Some(Cifar100Label::Coarse) => (20u8, 0),
        Some(Cifar100Label::Fine) => (100u8, 1),
    };
    let count = bytes.len() / record;
    let mut out = CifarRecords {
        pixels: Vec::with_capacity(count * IMAGE_BYTES),
        labels: Vec::with_capacity(count),
    };
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[offset];
        if label >= classes {
            return Err(DataError::Inconsistent {
                path: path.to_path_buf(),
                what: format!(
                    "record {i} has label {label}, but this format has {classes} classes \
                     (is this a CIFAR-{} file?)",
                    if cifar100.is_some() { "10" } else { "100" }
                ),
            });
        }
        out.labels.push(label);
        out.pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(out)
}

/// Encodes records in the CIFAR-10 format, or CIFAR-100 with `(coarse, fine)` labels.
pub fn encode_records(pixels: &[u8], labels: &[(u8, u8)], cifar100: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (img, &(coarse, fine)) in pixels.chunks_exact(IMAGE_BYTES).zip(labels) {
        if cifar100 {
            out.push(coarse);
            out.push(fine);
        } else {
            out.push(fine);
        }
        out.extend_from_slice(img);
    }
    out
}
