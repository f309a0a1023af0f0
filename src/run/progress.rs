//! Progress of long work: a bar on a terminal, a log line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports progress toward a known total.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    last_log: Instant,
    every: Duration,
}

impl Progress {
    /// A bar when stderr is a terminal, else periodic `tracing` log lines.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            last_log: Instant::now(),
            every: Duration::from_secs(5),
        }
    }

    /// Sets the position and a short status message.
    pub fn update(&mut self, position: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message.to_string());
            }
            None => {
                if self.last_log.elapsed() >= self.every {
                    self.last_log = Instant::now();
                    tracing::info!("{} {}/{} {}", self.label, position, self.total, message);
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
