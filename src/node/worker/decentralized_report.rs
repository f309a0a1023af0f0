//! What a decentralized worker tells the rendezvous between iterations: its progress after
//! each, a report (counters and parameters) when one is due, and its state when a rejoining peer
//! needs it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use quinn::Connection;

use super::decentralized_loop::{Inputs, LoopSpec};
use crate::decen::{NodeDriver, NodeStats};
use crate::net::send;
use crate::proto::Message;

/// The counters of the current reporting window.
#[derive(Default)]
pub(super) struct Window {
    pub(super) iterations: u64,
    pub(super) loss: f64,
    pub(super) compute_s: f64,
    pub(super) wait_s: f64,
    pub(super) theta: f64,
    pub(super) thetas: u64,
    pub(super) refused: u64,
    pub(super) started: Option<Instant>,
}

/// Sends the node's parameters after the iterations it completed to the rendezvous, for a
/// rejoining peer (a lost connection shows on the next read).
pub(super) async fn send_state(spec: &LoopSpec, driver: &NodeDriver<f32>, conn: &Connection) {
    let message = Message::State {
        worker: spec.worker as u32,
        iteration: driver.iteration(),
        shared: driver.node().shared_state(),
        params: driver.node().params(),
    };
    tracing::info!(
        "worker {}: state after iteration {} sent for a rejoining peer",
        spec.worker,
        driver.iteration()
    );
    let _ = send(conn, message).await;
}

/// Tells the rendezvous how far this node got, and reports when `report` says one is due.
pub(super) async fn finish_iteration(
    spec: &LoopSpec,
    driver: &NodeDriver<f32>,
    conn: &Connection,
    inputs: &Inputs,
    window: &mut Window,
    completed: u64,
    report: bool,
) -> Result<()> {
    // Progress is monitoring only: a lost server shows on the next read.
    let _ = send(
        conn,
        Message::Progress {
            worker: spec.worker as u32,
            iteration: completed,
        },
    )
    .await;
    if !report {
        return Ok(());
    }
    let w = std::mem::take(window);
    let n = w.iterations.max(1) as f64;
    let counts = driver.counts();
    let stats = NodeStats {
        iterations: w.iterations,
        loss: w.loss / n,
        weight: f64::from(driver.node().weight()),
        bytes_sent: inputs.sent.swap(0, Ordering::Relaxed),
        bytes_received: inputs.received.swap(0, Ordering::Relaxed),
        wall_s: w.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        compute_s: w.compute_s,
        wait_s: w.wait_s,
        given_up: counts.given_up,
        absorbed_late: counts.absorbed_late,
        theta: (w.thetas > 0).then(|| w.theta / w.thetas as f64),
        refused: w.refused,
    };
    send(
        conn,
        Message::Report {
            worker: spec.worker as u32,
            iteration: completed,
            stats,
            params: driver.node().params(),
        },
    )
    .await
    .context("cannot send the report")?;
    Ok(())
}
