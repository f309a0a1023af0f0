//! lagom's configuration: the sections every role and tool shares, and how they are layered
//! (defaults < TOML file < `LAGOM_` environment < command-line flags).

mod error;
mod load;
mod sections;
mod views;

pub use error::ConfigError;
pub use load::{load, CliOverrides, ConfigSources};
pub use sections::{ClusterConfig, Config, RunConfig, ServerRunConfig};
