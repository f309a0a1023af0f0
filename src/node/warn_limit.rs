//! Warnings that could repeat at a peer's pace (a failed handshake per connection attempt, a
//! peer counted absent every iteration) are logged at most once per period, with the count of
//! those held back; the rest go to the debug log. A misbehaving or absent peer cannot flood the
//! log (or, with a piped stderr nobody reads, block the process on a full pipe).

use std::time::{Duration, Instant};

/// How often a repeated warning is logged at most.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// One kind of repeated warning (see the module docs).
#[derive(Debug, Default)]
pub struct WarnLimit {
    last_warned: Option<Instant>,
    held_back: u64,
}

impl WarnLimit {
    /// Logs `message` at WARN if the last one was at least [`WARN_EVERY`] ago (saying how many
    /// were held back since), else at DEBUG.
    pub fn warn(&mut self, message: &str) {
        let due = self.last_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            let held = std::mem::take(&mut self.held_back);
            if held > 0 {
                tracing::warn!("{message} ({held} more like it since the last warning)");
            } else {
                tracing::warn!("{message}");
            }
            self.last_warned = Some(Instant::now());
        } else {
            self.held_back += 1;
            tracing::debug!("{message}");
        }
    }
}
