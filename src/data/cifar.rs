//! The CIFAR binary distributions. CIFAR-10: `data_batch_1.bin`…`data_batch_5.bin` and
//! `test_batch.bin`, records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
//! CIFAR-100: `train.bin` and `test.bin`, records of a coarse label, a fine label and 3072 bytes.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::pixel_store::{PixelStore, RecordFiles};
use super::selection::Selection;
use super::stream::DataStream;
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

/// Reads one CIFAR-10 file (`cifar100` = `None`) or CIFAR-100 file (`Some(which label)`),
/// checking that it holds whole records and that labels are in range.
pub fn read_records(
    path: &Path,
    cifar100: Option<Cifar100Label>,
    hint: &str,
) -> Result<CifarRecords, DataError> {
    read_records_selected(&[path.to_path_buf()], cifar100, hint, |n| {
        Ok(Selection::all(n))
    })
}

/// Reads the records of `paths`, taken as one set in that order, that `select` keeps (it is
/// given the number of records), in the selection's order. Every record's label is checked;
/// the files are streamed, so only the kept records are ever held.
pub fn read_records_selected(
    paths: &[PathBuf],
    cifar100: Option<Cifar100Label>,
    hint: &str,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<CifarRecords, DataError> {
    let mut out = CifarRecords::default();
    stream_records(
        paths,
        cifar100,
        hint,
        select,
        |kept, slot, _, label, pixels| {
            if out.labels.len() != kept {
                out.pixels = vec![0u8; kept * IMAGE_BYTES];
                out.labels = vec![0u8; kept];
            }
            out.labels[slot] = label;
            out.pixels[slot * IMAGE_BYTES..(slot + 1) * IMAGE_BYTES].copy_from_slice(pixels);
        },
    )?;
    Ok(out)
}

/// Like [`read_records_selected`], but keeps only the labels in memory: the pixels stay in the
/// files and are read per image ([`PixelStore::Files`]). Every record's label is checked.
pub fn index_records_selected(
    paths: &[PathBuf],
    cifar100: Option<Cifar100Label>,
    hint: &str,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<(Vec<u8>, PixelStore), DataError> {
    let (mut labels, mut locations) = (Vec::new(), Vec::new());
    let counts = stream_records(
        paths,
        cifar100,
        hint,
        select,
        |kept, slot, record, label, _| {
            if labels.len() != kept {
                labels = vec![0u8; kept];
                locations = vec![0usize; kept];
            }
            labels[slot] = label;
            locations[slot] = record;
        },
    )?;
    let files: Vec<(PathBuf, usize)> = paths.iter().cloned().zip(counts).collect();
    let label_bytes = if cifar100.is_some() { 2 } else { 1 };
    let store = RecordFiles::open(
        &files,
        label_bytes + IMAGE_BYTES,
        label_bytes,
        IMAGE_BYTES,
        locations,
        hint,
    )?;
    Ok((labels, PixelStore::Files(Arc::new(store))))
}

/// Streams the records of `paths` (one set, in order), checking every label, and calls
/// `keep(records kept in all, slot, record number, label, pixels)` for each record `select`
/// keeps. Returns the number of records of each file.
fn stream_records(
    paths: &[PathBuf],
    cifar100: Option<Cifar100Label>,
    hint: &str,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
    mut keep: impl FnMut(usize, usize, usize, u8, &[u8]),
) -> Result<Vec<usize>, DataError> {
    let label_bytes = if cifar100.is_some() { 2 } else { 1 };
    let record = label_bytes + IMAGE_BYTES;
    let mut counts = Vec::with_capacity(paths.len());
    for path in paths {
        let len = std::fs::metadata(path)
            .map_err(|e| DataError::opening(path, hint, e))?
            .len() as usize;
        if len == 0 || len % record != 0 {
            let whole = (len / record + 1) * record;
            return Err(DataError::Truncated {
                path: path.clone(),
                expected: whole as u64,
                found: len as u64,
                hint: format!("records are {record} bytes; {hint}"),
            });
        }
        counts.push(len / record);
    }
    let selection = select(counts.iter().sum())?;
    let kept = selection.kept();
    let (classes, offset) = match cifar100 {
        None => (10u8, 0),
        Some(Cifar100Label::Coarse) => (20u8, 0),
        Some(Cifar100Label::Fine) => (100u8, 1),
    };
    let mut rec = vec![0u8; record];
    let mut first = 0;
    for (path, &count) in paths.iter().zip(&counts) {
        let mut stream = DataStream::open(path, hint)?;
        let expected = (count * record) as u64;
        for i in 0..count {
            stream.fill(&mut rec, expected, hint)?;
            let label = rec[offset];
            if label >= classes {
                return Err(DataError::Inconsistent {
                    path: path.clone(),
                    what: format!(
                        "record {i} has label {label}, but this format has {classes} classes \
                         (is this a CIFAR-{} file?)",
                        if cifar100.is_some() { "10" } else { "100" }
                    ),
                });
            }
            if let Some(slot) = selection.slot(first + i) {
                keep(kept, slot, first + i, label, &rec[label_bytes..]);
            }
        }
        stream.finish(expected)?;
        first += count;
    }
    Ok(counts)
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
