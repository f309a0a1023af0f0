//! Log lines on standard error: plain text (ANSI colours only when standard error is a terminal
//! and `NO_COLOR` is unset) or one JSON object per line for log collectors, at a chosen level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL TARGET: message`, coloured on a terminal only.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// other fields.
    Json,
}

/// The environment variable behind `--log-format`; set for child processes (a supervisor's
/// workers log as it does).
pub const LOG_FORMAT_ENV: &str = "LAGOM_LOG_FORMAT";

/// The environment variable behind `--log-level`, likewise passed on to child processes.
pub const LOG_LEVEL_ENV: &str = "LAGOM_LOG_LEVEL";

/// The level when neither `--log-level` nor `RUST_LOG` says one.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The filter for `level` (a level such as `debug`, or directives such as
/// `info,lagom::net=debug`); without one, `RUST_LOG`, else [`DEFAULT_LOG_LEVEL`]. An error names
/// what could not be parsed.
pub fn log_filter(level: Option<&str>) -> Result<EnvFilter, String> {
    match level {
        Some(level) => EnvFilter::try_new(level)
            .map_err(|e| format!("--log-level {level:?} is not a level or filter: {e}")),
        None => {
            Ok(EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_LEVEL)))
        }
    }
}

/// True when text logs may carry colour escapes: standard error is a terminal and `NO_COLOR`
/// is unset or empty.
pub fn colour_allowed() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the process's log subscriber (once, at start, before any thread is spawned) and
/// records the choice in the environment for child processes.
pub fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let filter = log_filter(level)?;
    std::env::set_var(
        LOG_FORMAT_ENV,
        match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        },
    );
    if let Some(level) = level {
        std::env::set_var(LOG_LEVEL_ENV, level);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour_allowed()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}
