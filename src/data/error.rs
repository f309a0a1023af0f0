//! Errors of the dataset readers: each names the file, what was expected and how to get the data.

use std::path::PathBuf;

/// A data set that cannot be read. No reader panics on bad input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A required file (or the directory) does not exist.
    #[error("{path}: not found ({hint})")]
    Missing {
        /// The file looked for (without `.gz` when both forms were tried).
        path: PathBuf,
        /// How to get the data.
        hint: String,
    },
    /// The file ends before the header says it should.
    #[error("{path}: truncated: expected {expected} bytes, found {found} ({hint})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the format requires.
        expected: u64,
        /// Bytes present (after decompression).
        found: u64,
        /// How to get an intact copy.
        hint: String,
    },
    /// The file does not start with the format's magic number.
    #[error(
        "{path}: not an IDX {kind} file: magic number {found:#010x}, expected {expected:#010x}"
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// `images` or `labels`.
        kind: &'static str,
        /// The magic number of the format.
        expected: u32,
        /// What the file starts with.
        found: u32,
    },
    /// Headers or contents that contradict each other.
    #[error("{path}: {what}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// An example asked for by index that the data set does not have.
    #[error("example {index} asked for, but the data set has {len}")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// Examples in the data set.
        len: usize,
    },
    /// An example asked for twice in one selection.
    #[error("example {index} asked for twice")]
    Duplicate {
        /// The index.
        index: usize,
    },
    /// The operating system refused to read the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl DataError {
    /// The error of failing to open or inspect `path`: `Missing` (with `hint`) when it does not
    /// exist, `Io` otherwise.
    pub fn opening(path: &std::path::Path, hint: &str, source: std::io::Error) -> Self {
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
    }
}
