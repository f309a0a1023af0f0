//! Where a data set's pixel bytes are: in memory, or left in the data files — fixed-size
//! records read by position, one image at a time, when a batch is made — so that a worker's
//! memory does not grow with its shard (the page cache, shared by every process on the host and
//! given back under pressure, holds what is read often).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::selection::Selection;
use super::DataError;

/// The pixel bytes of a data set's examples, `image_len` bytes each, channel-major.
#[derive(Debug, Clone)]
pub enum PixelStore {
    /// `len × image_len` bytes in memory.
    Memory(Vec<u8>),
    /// The examples' records in the data files, read per image.
    Files(Arc<RecordFiles>),
}

/// Files of fixed-size records taken as one sequence, and which record holds each example.
#[derive(Debug)]
pub struct RecordFiles {
    /// Each file, open, with its number of records (shared by the subsets picked from it).
    files: Arc<[(PathBuf, File, usize)]>,
    /// Bytes per record.
    record: usize,
    /// Bytes before the pixels in each record (the labels).
    skip: usize,
    /// Pixel bytes per record.
    image: usize,
    /// Per example, its record's number in the sequence.
    locations: Vec<usize>,
}

impl RecordFiles {
    /// Opens `files` (path and record count, in order) whose records are `record` bytes with
    /// the `image` pixel bytes after `skip` label bytes; example `i` is record `locations[i]`.
    /// Each file must hold exactly its records (an error naming it otherwise).
    pub fn open(
        files: &[(PathBuf, usize)],
        record: usize,
        skip: usize,
        image: usize,
        locations: Vec<usize>,
        hint: &str,
    ) -> Result<Self, DataError> {
        let total: usize = files.iter().map(|f| f.1).sum();
        if let Some(&bad) = locations.iter().find(|&&l| l >= total) {
            return Err(DataError::OutOfRange {
                index: bad,
                len: total,
            });
        }
        let mut open = Vec::with_capacity(files.len());
        for (path, count) in files {
            let file = File::open(path).map_err(|e| DataError::opening(path, hint, e))?;
            let len = file
                .metadata()
                .map_err(|e| DataError::opening(path, hint, e))?
                .len();
            let expected = (count * record) as u64;
            if len != expected {
                return Err(DataError::Truncated {
                    path: path.clone(),
                    expected,
                    found: len,
                    hint: format!("the file changed since it was read; {hint}"),
                });
            }
            open.push((path.clone(), file, *count));
        }
        Ok(RecordFiles {
            files: open.into(),
            record,
            skip,
            image,
            locations,
        })
    }

    /// Reads example `i`'s pixels into `buf` (`image` bytes).
    fn read(&self, i: usize, buf: &mut [u8]) -> Result<(), DataError> {
        let mut rec = *self.locations.get(i).ok_or(DataError::OutOfRange {
            index: i,
            len: self.locations.len(),
        })?;
        for (path, file, count) in self.files.iter() {
            if rec < *count {
                let at = (rec * self.record + self.skip) as u64;
                return read_at(file, &mut buf[..self.image], at).map_err(|source| DataError::Io {
                    path: path.clone(),
                    source,
                });
            }
            rec -= count;
        }
        Err(DataError::OutOfRange {
            index: i,
            len: self.locations.len(),
        })
    }

    /// The same open files holding the examples `selection` keeps, in its order.
    fn pick(&self, selection: &Selection) -> RecordFiles {
        RecordFiles {
            files: Arc::clone(&self.files),
            locations: selection.pick(&self.locations, 1),
            ..*self
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

impl PixelStore {
    /// Example `i`'s `image_len` pixel bytes: a slice of the memory, or read from its file into
    /// `scratch` (at least `image_len` long).
    pub fn image<'a>(
        &'a self,
        i: usize,
        image_len: usize,
        scratch: &'a mut [u8],
    ) -> Result<&'a [u8], DataError> {
        match self {
            PixelStore::Memory(bytes) => {
                let len = bytes.len() / image_len.max(1);
                bytes
                    .get(i * image_len..(i + 1) * image_len)
                    .ok_or(DataError::OutOfRange { index: i, len })
            }
            PixelStore::Files(files) => {
                files.read(i, scratch)?;
                Ok(&scratch[..image_len])
            }
        }
    }

    /// The bytes, when they are in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            PixelStore::Memory(bytes) => Some(bytes),
            PixelStore::Files(_) => None,
        }
    }

    /// The examples `selection` keeps, in its order, stored the same way.
    pub fn pick(&self, selection: &Selection, image_len: usize) -> Self {
        match self {
            PixelStore::Memory(bytes) => PixelStore::Memory(selection.pick(bytes, image_len)),
            PixelStore::Files(files) => PixelStore::Files(Arc::new(files.pick(selection))),
        }
    }
}

impl PartialEq for PixelStore {
    /// Equal bytes in memory, or the same records of the same files.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PixelStore::Memory(a), PixelStore::Memory(b)) => a == b,
            (PixelStore::Files(a), PixelStore::Files(b)) => {
                a.locations == b.locations
                    && a.files
                        .iter()
                        .map(|f| (&f.0, f.2))
                        .eq(b.files.iter().map(|f| (&f.0, f.2)))
            }
            _ => false,
        }
    }
}
