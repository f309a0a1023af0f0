//! `[monitor]`: live metrics for Prometheus. When `monitor.listen` is set, a server, rendezvous,
//! `local` or supervisor process serves its metrics at `http://LISTEN/metrics` (the
//! `metrics-exporter-prometheus` HTTP listener); when it is not, every recording below is a no-op.
//! Metric names are the constants here; `deploy/grafana-lagom.json` charts them.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use serde::{Deserialize, Serialize};

/// `[monitor]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Address of the Prometheus endpoint (`127.0.0.1:9464`); unset: no endpoint (the default).
    pub listen: Option<SocketAddr>,
}

/// Gradients that arrived, before any check (counter).
pub const GRADIENTS_RECEIVED: &str = "lagom_gradients_received_total";
/// Gradients applied, by worker (counter).
pub const GRADIENTS_APPLIED: &str = "lagom_gradients_applied_total";
/// Gradients refused, by reason (counter).
pub const GRADIENTS_REJECTED: &str = "lagom_gradients_rejected_total";
/// Updates applied so far (gauge; a resumed run starts from its checkpoint's count).
pub const UPDATES: &str = "lagom_updates";
/// Updates per second since the run (or this process) started (gauge).
pub const UPDATES_PER_SECOND: &str = "lagom_updates_per_second";
/// Staleness of each applied gradient, in updates (histogram).
pub const STALENESS: &str = "lagom_staleness";
/// A worker's applied gradients relative to the most productive worker's (gauge, by worker).
pub const EFFECTIVE_SPEED: &str = "lagom_worker_effective_speed";
/// Test accuracy of the last evaluation, 0–1 (gauge).
pub const TEST_ACCURACY: &str = "lagom_test_accuracy";
/// Test loss of the last evaluation (gauge; absent until a finite one).
pub const TEST_LOSS: &str = "lagom_test_loss";
/// The update count of the last evaluation (gauge).
pub const EVALUATED_UPDATE: &str = "lagom_evaluated_update";
/// Bytes of messages sent over QUIC (counter).
pub const BYTES_SENT: &str = "lagom_bytes_sent_total";
/// Bytes of messages received over QUIC (counter).
pub const BYTES_RECEIVED: &str = "lagom_bytes_received_total";
/// Lines written to a `metrics.jsonl`, by `event` — joins, leaves, restarts, give-ups, chaos
/// kills and pauses, checkpoints… (counter).
pub const EVENTS: &str = "lagom_events_total";

/// Staleness histogram bucket bounds.
const STALENESS_BUCKETS: [f64; 11] = [
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
];

/// Starts the Prometheus endpoint when `config.listen` is set (call once per process, inside a
/// Tokio runtime or not); an address that cannot be bound is an error naming it.
pub fn start(config: &MonitorConfig) -> Result<()> {
    let Some(listen) = config.listen else {
        return Ok(());
    };
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Full(STALENESS.to_string()), &STALENESS_BUCKETS)
        .context("bad staleness buckets")?
        .install()
        .with_context(|| format!("monitor.listen = {listen}: cannot serve metrics there"))?;
    tracing::info!("metrics for Prometheus at http://{listen}/metrics");
    Ok(())
}

/// Records a received gradient.
pub fn gradient_received() {
    metrics::counter!(GRADIENTS_RECEIVED).increment(1);
}

/// Records an applied gradient of `worker` that was `staleness` updates old; `updates` is the
/// count after it, `elapsed_s` the run's seconds so far.
pub fn gradient_applied(worker: usize, staleness: u64, updates: u64, elapsed_s: f64) {
    metrics::counter!(GRADIENTS_APPLIED, "worker" => worker.to_string()).increment(1);
    metrics::histogram!(STALENESS).record(staleness as f64);
    metrics::gauge!(UPDATES).set(updates as f64);
    if elapsed_s > 0.0 {
        metrics::gauge!(UPDATES_PER_SECOND).set(updates as f64 / elapsed_s);
    }
}

/// Records a refused gradient (or message) and why (`reason`: the rejection's code).
pub fn gradient_rejected(reason: &str) {
    metrics::counter!(GRADIENTS_REJECTED, "reason" => reason.to_string()).increment(1);
}

/// Records `worker`'s effective speed (its gradients over the most productive worker's, as
/// `summary.json`'s `per_worker` computes it).
pub fn effective_speed(worker: usize, speed: f64) {
    metrics::gauge!(EFFECTIVE_SPEED, "worker" => worker.to_string()).set(speed);
}

/// Records an evaluation of the parameters after `updates` updates.
pub fn evaluated(updates: u64, accuracy: f64, loss: f64) {
    metrics::gauge!(TEST_ACCURACY).set(accuracy);
    if loss.is_finite() {
        metrics::gauge!(TEST_LOSS).set(loss);
    }
    metrics::gauge!(EVALUATED_UPDATE).set(updates as f64);
}

/// Records a message of `bytes` sent.
pub fn bytes_sent(bytes: usize) {
    metrics::counter!(BYTES_SENT).increment(bytes as u64);
}

/// Records a message of `bytes` received.
pub fn bytes_received(bytes: usize) {
    metrics::counter!(BYTES_RECEIVED).increment(bytes as u64);
}

/// Records a `metrics.jsonl` line of kind `event`.
pub fn event(event: &str) {
    metrics::counter!(EVENTS, "event" => event.to_string()).increment(1);
}
