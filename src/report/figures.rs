//! Which charts `lagom report` draws: for overlaid runs, accuracy and losses against updates and
//! time, staleness over time and per worker, effective speed per worker, and for decentralized
//! runs consensus distance and bytes per iteration; for a sweep, one accuracy (or loss) chart per
//! setting with a line per algorithm at its tuned value, averaged over seeds.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::chart::{LineChart, Series};
use super::runs::RunData;
use crate::run::EvalPoint;

/// A chart of one quantity for every run that has it (skipped when none has).
struct Quantity {
    file: &'static str,
    title: &'static str,
    y_label: &'static str,
    log_y: bool,
    by_time: bool,
    value: fn(&EvalPoint) -> Option<f64>,
}

fn accuracy(p: &EvalPoint) -> Option<f64> {
    p.test_accuracy.map(|a| 100.0 * a)
}
fn loss(p: &EvalPoint) -> Option<f64> {
    p.loss
}
fn train_loss(p: &EvalPoint) -> Option<f64> {
    p.train_loss
}
fn staleness_mean(p: &EvalPoint) -> Option<f64> {
    p.applied
        .as_ref()
        .filter(|a| a.gradients > 0)
        .map(|a| a.staleness.mean)
}
fn staleness_p99(p: &EvalPoint) -> Option<f64> {
    p.applied
        .as_ref()
        .filter(|a| a.gradients > 0)
        .map(|a| a.staleness.p99 as f64)
}
fn consensus(p: &EvalPoint) -> Option<f64> {
    p.consensus_distance
}
fn bytes(p: &EvalPoint) -> Option<f64> {
    p.bytes_sent_per_node_iteration
}

/// The x axis' title for `runs`.
fn x_title(runs: &[RunData], by_time: bool) -> String {
    let all_virtual = runs.iter().all(RunData::virtual_time);
    let none_virtual = !runs.iter().any(RunData::virtual_time);
    match (by_time, all_virtual, none_virtual) {
        (true, true, _) => "virtual time (s)".into(),
        (true, _, true) => "wall-clock time (s)".into(),
        (true, _, _) => "time (s; virtual for simulations)".into(),
        (false, _, _) if runs.iter().all(RunData::decentralized) => "iterations".into(),
        (false, _, _) => "updates (applied gradients; iterations for decentralized runs)".into(),
    }
}

/// Draws `q` for `runs` into `out`; returns the files (none when no run has the quantity).
fn draw_quantity(runs: &[RunData], q: &Quantity, out: &Path) -> Result<Vec<PathBuf>> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| Series {
            name: r.label.clone(),
            points: r.curve(q.by_time, q.value),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(Vec::new());
    }
    LineChart {
        title: q.title.into(),
        x_label: x_title(runs, q.by_time),
        y_label: q.y_label.into(),
        log_y: q.log_y,
        series,
    }
    .draw(&out.join(q.file))
}

/// Every chart of `runs` (overlaid) into `out`.
pub fn run_figures(runs: &[RunData], out: &Path) -> Result<Vec<PathBuf>> {
    let quantities = [
        Quantity {
            file: "test-accuracy-vs-updates",
            title: "Test accuracy",
            y_label: "test accuracy (%)",
            log_y: false,
            by_time: false,
            value: accuracy,
        },
        Quantity {
            file: "test-accuracy-vs-time",
            title: "Test accuracy over time",
            y_label: "test accuracy (%)",
            log_y: false,
            by_time: true,
            value: accuracy,
        },
        Quantity {
            file: "loss-vs-updates",
            title: "Evaluated loss (test loss, or the objective)",
            y_label: "loss (log scale)",
            log_y: true,
            by_time: false,
            value: loss,
        },
        Quantity {
            file: "loss-vs-time",
            title: "Evaluated loss over time",
            y_label: "loss (log scale)",
            log_y: true,
            by_time: true,
            value: loss,
        },
        Quantity {
            file: "train-loss-vs-updates",
            title: "Training loss (mean mini-batch loss per window)",
            y_label: "training loss (log scale)",
            log_y: true,
            by_time: false,
            value: train_loss,
        },
        Quantity {
            file: "train-loss-vs-time",
            title: "Training loss over time",
            y_label: "training loss (log scale)",
            log_y: true,
            by_time: true,
            value: train_loss,
        },
        Quantity {
            file: "staleness-mean-vs-updates",
            title: "Mean staleness of applied gradients per window",
            y_label: "staleness (updates)",
            log_y: false,
            by_time: false,
            value: staleness_mean,
        },
        Quantity {
            file: "staleness-p99-vs-updates",
            title: "99th-percentile staleness per window",
            y_label: "staleness (updates)",
            log_y: false,
            by_time: false,
            value: staleness_p99,
        },
        Quantity {
            file: "consensus-distance-vs-iterations",
            title: "Consensus distance of the nodes",
            y_label: "mean squared distance from the average (log scale)",
            log_y: true,
            by_time: false,
            value: consensus,
        },
        Quantity {
            file: "bytes-per-iteration",
            title: "Bytes sent per node and iteration",
            y_label: "bytes per node and iteration",
            log_y: false,
            by_time: false,
            value: bytes,
        },
    ];
    let mut files = Vec::new();
    for q in &quantities {
        files.extend(draw_quantity(runs, q, out)?);
    }
    files.extend(per_worker(runs, out)?);
    Ok(files)
}

/// Effective speed and mean staleness per worker slot (parameter-server runs).
fn per_worker(runs: &[RunData], out: &Path) -> Result<Vec<PathBuf>> {
    let ps: Vec<&RunData> = runs.iter().filter(|r| !r.decentralized()).collect();
    if ps.is_empty() || ps.iter().all(|r| r.summary.per_worker.is_empty()) {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for (file, title, y_label, value) in [
        (
            "effective-speed-per-worker",
            "Effective speed per worker (share of the fastest worker's gradients)",
            "effective speed (1 = fastest)",
            (|w: &crate::run::PerWorker| w.effective_speed) as fn(&crate::run::PerWorker) -> f64,
        ),
        (
            "staleness-per-worker",
            "Mean staleness per worker",
            "mean staleness (updates)",
            |w: &crate::run::PerWorker| w.mean_staleness,
        ),
        (
            "gradients-per-worker",
            "Gradients applied per worker",
            "gradients",
            |w: &crate::run::PerWorker| w.gradients as f64,
        ),
    ] {
        let series = ps
            .iter()
            .map(|r| Series {
                name: r.label.clone(),
                points: r
                    .summary
                    .per_worker
                    .iter()
                    .map(|w| (w.id as f64, value(w)))
                    .collect(),
            })
            .collect();
        files.extend(
            LineChart {
                title: title.into(),
                x_label: "worker slot".into(),
                y_label: y_label.into(),
                log_y: false,
                series,
            }
            .draw(&out.join(file))?,
        );
    }
    Ok(files)
}

/// The mean of several runs' curves, point by point over their common length.
pub fn mean_curve(curves: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let n = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|i| {
            let k = curves.len() as f64;
            let x = curves.iter().map(|c| c[i].0).sum::<f64>() / k;
            let y = curves.iter().map(|c| c[i].1).sum::<f64>() / k;
            (x, y)
        })
        .collect()
}
