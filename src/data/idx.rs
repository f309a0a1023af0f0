//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic 2051 for images with
//! count, rows, cols; magic 2049 for labels with count) followed by `u8` values. Files may be
//! gzipped; the reader looks for `NAME` and then `NAME.gz`.

use std::path::{Path, PathBuf};

use super::selection::Selection;
use super::stream::DataStream;
use super::DataError;

/// Magic number of an IDX image file (unsigned bytes, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (unsigned bytes, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images of one IDX file: `count` images of `rows × cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count × rows × cols` pixel bytes.
    pub pixels: Vec<u8>,
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    DataStream::open(path, "")?.read_to_end()
}

/// Finds `dir/name` or `dir/name.gz`.
pub fn locate(dir: &Path, name: &str, hint: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Missing {
        path: plain,
        hint: format!("looked for {name} and {name}.gz; {hint}"),
    })
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_len(path: &Path, bytes: &[u8], expected: u64, hint: &str) -> Result<(), DataError> {
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
            hint: hint.to_string(),
        });
    }
    if found > expected {
        return Err(DataError::Inconsistent {
            path: path.to_path_buf(),
            what: format!("{found} bytes, but the header describes {expected}"),
        });
    }
    Ok(())
}

fn check_magic(
    path: &Path,
    bytes: &[u8],
    kind: &'static str,
    expected: u32,
    hint: &str,
) -> Result<(), DataError> {
    check_min(path, bytes, 4, hint)?;
    let found = be_u32(bytes, 0);
    if found != expected {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind,
            expected,
            found,
        });
    }
    Ok(())
}

fn check_min(path: &Path, bytes: &[u8], header: u64, hint: &str) -> Result<(), DataError> {
    if (bytes.len() as u64) < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            found: bytes.len() as u64,
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Reads an IDX image file (raw or gzipped).
pub fn read_images(path: &Path, hint: &str) -> Result<IdxImages, DataError> {
    read_images_selected(path, hint, |count| Ok(Selection::all(count)))
}

/// Reads the images of an IDX file that `select` keeps (it is given the header's count), in
/// the selection's order, streaming the file: only the kept images are ever held.
pub fn read_images_selected(
    path: &Path,
    hint: &str,
    select: impl FnOnce(usize) -> Result<Selection, DataError>,
) -> Result<IdxImages, DataError> {
    let mut stream = DataStream::open(path, hint)?;
    let mut header = [0u8; 16];
    let got = stream.read_up_to(&mut header)?;
    check_magic(path, &header[..got], "images", IMAGES_MAGIC, hint)?;
    check_min(path, &header[..got], 16, hint)?;
    let count = be_u32(&header, 4) as usize;
    let rows = be_u32(&header, 8) as usize;
    let cols = be_u32(&header, 12) as usize;
    // Each factor is below 2^32 and the product of two fits a u64; the third may not.
    let expected = (rows as u64 * cols as u64)
        .checked_mul(count as u64)
        .and_then(|n| n.checked_add(16))
        .unwrap_or(u64::MAX);
    stream.check_room(expected, hint)?;
    let selection = select(count)?;
    if selection.source_len() != count {
        return Err(DataError::Inconsistent {
            path: path.to_path_buf(),
            what: format!(
                "{count} images, but {} were expected",
                selection.source_len()
            ),
        });
    }
    let image = rows * cols;
    let mut pixels = vec![0u8; selection.kept() * image];
    match selection {
        Selection::All { .. } => stream.fill(&mut pixels, expected, hint)?,
        Selection::Only { .. } => {
            let mut buf = vec![0u8; image];
            for i in 0..count {
                stream.fill(&mut buf, expected, hint)?;
                if let Some(slot) = selection.slot(i) {
                    pixels[slot * image..(slot + 1) * image].copy_from_slice(&buf);
                }
            }
        }
    }
    stream.finish(expected)?;
    Ok(IdxImages {
        count: selection.kept(),
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX label file (raw or gzipped).
pub fn read_labels(path: &Path, hint: &str) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    check_magic(path, &bytes, "labels", LABELS_MAGIC, hint)?;
    check_min(path, &bytes, 8, hint)?;
    let count = be_u32(&bytes, 4) as u64;
    check_len(path, &bytes, 8 + count, hint)?;
    Ok(bytes[8..].to_vec())
}

/// Encodes images in the IDX format (for tests and tools that write data sets).
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for v in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels in the IDX format.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}
