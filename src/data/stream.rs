//! A data file read front to back without holding it whole — gunzipped on the fly when it
//! starts with the gzip magic — with the readers' errors: a short file is `Truncated` with the
//! bytes found, trailing bytes are `Inconsistent`, corrupt gzip data says so.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::DataError;

/// Deflate expands at most about 1032:1, so a gzip file of N bytes holds at most this many
/// times N: a header that claims more is refused before anything is allocated for it.
const GZIP_MAX_RATIO: u64 = 1032;

/// An open data file, read in order.
pub struct DataStream {
    path: PathBuf,
    gz: bool,
    file_len: u64,
    inner: Box<dyn Read>,
    read: u64,
}

impl DataStream {
    /// Opens `path`; a missing file is `Missing` with `hint`.
    pub fn open(path: &Path, hint: &str) -> Result<Self, DataError> {
        let io = |e| DataError::opening(path, hint, e);
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let gz = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        let inner: Box<dyn Read> = if gz {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        Ok(DataStream {
            path: path.to_path_buf(),
            gz,
            file_len,
            inner,
            read: 0,
        })
    }

    /// The most bytes the file can hold once decompressed.
    pub fn max_len(&self) -> u64 {
        if self.gz {
            self.file_len
                .saturating_mul(GZIP_MAX_RATIO)
                .saturating_add(1 << 10)
        } else {
            self.file_len
        }
    }

    /// Reads up to `buf.len()` bytes, stopping early only at the end of the data; returns how
    /// many were read.
    pub fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        self.read += got as u64;
        Ok(got)
    }

    /// Everything left, to the end of the data.
    pub fn read_to_end(&mut self) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = self.read_up_to(&mut chunk)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Fills `buf`; a file that ends first is `Truncated` against `expected` bytes in all.
    pub fn fill(&mut self, buf: &mut [u8], expected: u64, hint: &str) -> Result<(), DataError> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(self.truncated(expected, hint));
        }
        Ok(())
    }

    /// Checks that the data ends at `expected` bytes (counting what is left, if not).
    pub fn finish(&mut self, expected: u64) -> Result<(), DataError> {
        let mut rest = [0u8; 1 << 12];
        while self.read_up_to(&mut rest)? > 0 {}
        if self.read > expected {
            return Err(DataError::Inconsistent {
                path: self.path.clone(),
                what: format!("{} bytes, but the header describes {expected}", self.read),
            });
        }
        Ok(())
    }

    /// `Truncated` at what was read so far.
    pub fn truncated(&self, expected: u64, hint: &str) -> DataError {
        DataError::Truncated {
            path: self.path.clone(),
            expected,
            found: self.read,
            hint: hint.to_string(),
        }
    }

    /// Refuses a header that describes more bytes than the file can hold: `Truncated` for a
    /// plain file (its size is what was found), `Inconsistent` for a gzip file.
    pub fn check_room(&self, expected: u64, hint: &str) -> Result<(), DataError> {
        if expected <= self.max_len() {
            return Ok(());
        }
        Err(if self.gz {
            DataError::Inconsistent {
                path: self.path.clone(),
                what: format!(
                    "the header describes {expected} bytes, more than a {}-byte gzip file \
                     can hold",
                    self.file_len
                ),
            }
        } else {
            DataError::Truncated {
                path: self.path.clone(),
                expected,
                found: self.file_len,
                hint: hint.to_string(),
            }
        })
    }

    fn error(&self, e: std::io::Error) -> DataError {
        if self.gz {
            DataError::Inconsistent {
                path: self.path.clone(),
                what: format!("corrupt gzip data: {e}"),
            }
        } else {
            DataError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }
}
