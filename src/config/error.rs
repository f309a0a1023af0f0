//! Configuration errors that say which key is wrong and which source (file or variable) set it.

use std::path::PathBuf;

/// A configuration that cannot be used. The binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that does not exist or cannot be read.
    #[error("configuration file {path} cannot be read: {reason}")]
    FileUnreadable {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// Unknown keys, wrong types or unparsable files, one line per problem.
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// A `--set KEY=VALUE` flag without `=`.
    #[error("--set expects KEY=VALUE (e.g. --set algorithm.lr=0.05), got `{0}`")]
    BadSetFlag(String),
}
