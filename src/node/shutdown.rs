//! Ending a run early on SIGTERM or SIGINT (what `systemctl stop` and Ctrl-C send): the server or
//! rendezvous tells its workers, evaluates once more, writes its final checkpoint and
//! `summary.json`, and the process exits 0. A second signal skips the evaluation.

use actix::Message as ActixMessage;
use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Ends the run of a server or rendezvous actor now, because of `signal`.
#[derive(ActixMessage, Debug, Clone)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// The signal's name (`SIGTERM`, `SIGINT`).
    pub signal: String,
}

/// The stop signals of this process, watched from the moment this is made.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Starts watching SIGTERM and SIGINT (call inside the runtime).
    pub fn watch() -> Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Waits for the next stop signal and names it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
