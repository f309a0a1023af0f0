//! One row per run of a sweep — its axis values and what it achieved — read from the run's
//! `summary.json` and `metrics.jsonl`, and written as `results.csv`.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};

use super::grid::Grid;
use super::plan::IdentifiedRun;
use super::runner::run_dir;
use crate::run::event::Eval;
use crate::run::{RunEvent, Summary};

/// What one run achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// The run's identity (its directory under `runs/`).
    pub id: String,
    /// `(axis, value)` per axis, in axis order.
    pub labels: Vec<(String, String)>,
    /// `ok`, `diverged`, or `failed` (no summary: the process failed or never ran).
    pub status: String,
    /// Final test accuracy (models).
    pub final_test_accuracy: Option<f64>,
    /// Mean mini-batch loss of the last evaluation window (simulated models).
    pub final_train_loss: Option<f64>,
    /// The last evaluated loss (the objective, or a model's test loss).
    pub final_loss: Option<f64>,
    /// Updates (or iterations) run.
    pub updates: Option<u64>,
    /// Seconds the run took: virtual for `lagom sim`, wall-clock otherwise.
    pub time_s: Option<f64>,
    /// Updates at the first evaluation that reached the grid's target.
    pub updates_to_target: Option<u64>,
    /// Seconds (same clock as `time_s`) at that evaluation.
    pub time_to_target_s: Option<f64>,
}

/// `(updates, t_s, test accuracy, loss)` of an `eval` line, for every run kind.
fn eval_point(e: &Eval) -> (u64, f64, Option<f64>, Option<f64>) {
    match e {
        Eval::Server(s) => (s.updates, s.t_s, Some(s.test_accuracy), s.test_loss),
        Eval::Rendezvous(r) => (r.updates, r.t_s, r.test_accuracy, r.test_loss),
        Eval::Sim(s) => (s.updates, s.t_s, s.test_accuracy, s.loss),
        Eval::DecentralizedSim(d) => (d.updates, d.t_s, d.test_accuracy, d.loss),
        Eval::Train(t) => (t.updates, t.t_s, Some(t.test_accuracy), t.test_loss),
    }
}

/// The first evaluation of `metrics` at or past the targets: `(updates, t_s)`.
fn first_at_target(
    metrics: &Path,
    accuracy: Option<f64>,
    loss: Option<f64>,
) -> Result<Option<(u64, f64)>> {
    if accuracy.is_none() && loss.is_none() {
        return Ok(None);
    }
    let file = std::fs::File::open(metrics)
        .with_context(|| format!("cannot read {}", metrics.display()))?;
    for line in BufReader::new(file).lines() {
        let line = line?;
        let Ok(RunEvent::Eval(e)) = serde_json::from_str::<RunEvent>(&line) else {
            continue;
        };
        let (updates, t_s, acc, l) = eval_point(&e);
        let acc_ok = accuracy.is_none_or(|target| acc.is_some_and(|a| a >= target));
        let loss_ok = loss.is_none_or(|target| l.is_some_and(|x| x <= target));
        if acc_ok && loss_ok {
            return Ok(Some((updates, t_s)));
        }
    }
    Ok(None)
}

/// The result of `run` under the sweep directory `out`.
pub fn read_result(out: &Path, grid: &Grid, run: &IdentifiedRun) -> Result<RunResult> {
    let dir = run_dir(out, &run.id);
    let mut result = RunResult {
        id: run.id.clone(),
        labels: run.planned.labels.clone(),
        status: "failed".into(),
        final_test_accuracy: None,
        final_train_loss: None,
        final_loss: None,
        updates: None,
        time_s: None,
        updates_to_target: None,
        time_to_target_s: None,
    };
    let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) else {
        return Ok(result);
    };
    let summary: Summary = serde_json::from_str(&text)
        .with_context(|| format!("{}/summary.json is not a lagom summary", dir.display()))?;
    result.status = if summary.diverged { "diverged" } else { "ok" }.into();
    result.final_test_accuracy = summary.details.final_test_accuracy();
    result.final_train_loss = summary.details.final_train_loss();
    result.final_loss = summary.final_loss;
    result.updates = Some(summary.updates);
    result.time_s = Some(summary.wall_s);
    if let Some((u, t)) = first_at_target(
        &dir.join("metrics.jsonl"),
        grid.target_accuracy,
        grid.target_loss,
    )? {
        result.updates_to_target = Some(u);
        result.time_to_target_s = Some(t);
    }
    Ok(result)
}

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: a header, then one row per run: id, the axes, status and the figures.
pub fn to_csv(grid: &Grid, results: &[RunResult]) -> String {
    let mut header: Vec<String> = vec!["run".into()];
    header.extend(grid.axes.iter().map(|a| a.name.clone()));
    header.extend(
        [
            "status",
            "final_test_accuracy",
            "final_train_loss",
            "final_loss",
            "updates",
            "time_s",
            "updates_to_target",
            "time_to_target_s",
        ]
        .map(String::from),
    );
    let mut out = header
        .iter()
        .map(|h| field(h))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for r in results {
        let mut row = vec![r.id.clone()];
        row.extend(r.labels.iter().map(|(_, v)| v.clone()));
        row.extend([
            r.status.clone(),
            cell(r.final_test_accuracy),
            cell(r.final_train_loss),
            cell(r.final_loss),
            cell(r.updates),
            cell(r.time_s),
            cell(r.updates_to_target),
            cell(r.time_to_target_s),
        ]);
        out += &(row.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}
