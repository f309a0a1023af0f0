//! One row per run of a sweep — its axis values and what it achieved — read from the run's
//! `summary.json` and `metrics.jsonl`, and written as `results.csv`.

use std::path::Path;

use anyhow::{Context, Result};

use super::grid::Grid;
use super::plan::IdentifiedRun;
use super::runner::run_dir;
use crate::run::{eval_points, Summary};

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

/// The first evaluation of `metrics` at or past the targets: `(updates, t_s)`.
fn first_at_target(
    metrics: &Path,
    accuracy: Option<f64>,
    loss: Option<f64>,
) -> Result<Option<(u64, f64)>> {
    if accuracy.is_none() && loss.is_none() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("cannot read {}", metrics.display()))?;
    Ok(eval_points(&text)
        .into_iter()
        .find(|p| {
            let acc_ok = accuracy.is_none_or(|t| p.test_accuracy.is_some_and(|a| a >= t));
            let loss_ok = loss.is_none_or(|t| p.loss.is_some_and(|x| x <= t));
            acc_ok && loss_ok
        })
        .map(|p| (p.updates, p.t_s)))
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
    let summary: Summary = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            // One damaged run must not hide the others: its row says failed, and the next
            // invocation runs it again (`plan::finished` refuses the same summary).
            tracing::warn!("{}/summary.json is not a lagom summary: {e}", dir.display());
            return Ok(result);
        }
    };
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

/// The fields of one CSV line as [`to_csv`] writes them (quoted fields unquoted).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Reads `results.csv` back: the rows [`to_csv`] wrote for `grid`; an error names the line that
/// does not fit.
pub fn from_csv(grid: &Grid, text: &str) -> Result<Vec<RunResult>> {
    let axes = grid.axes.len();
    let parse = |s: &str| -> Option<f64> { s.parse().ok() };
    let count = |s: &str| -> Option<u64> { s.parse().ok() };
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, line)| {
            let f = split_csv_line(line);
            if f.len() != axes + 9 {
                anyhow::bail!(
                    "{}: line {} has {} fields, the grid's results have {}",
                    super::RESULTS_FILE,
                    i + 1,
                    f.len(),
                    axes + 9
                );
            }
            let labels = grid
                .axes
                .iter()
                .zip(&f[1..=axes])
                .map(|(a, v)| (a.name.clone(), v.clone()))
                .collect();
            let rest = &f[axes + 1..];
            Ok(RunResult {
                id: f[0].clone(),
                labels,
                status: rest[0].clone(),
                final_test_accuracy: parse(&rest[1]),
                final_train_loss: parse(&rest[2]),
                final_loss: parse(&rest[3]),
                updates: count(&rest[4]),
                time_s: parse(&rest[5]),
                updates_to_target: count(&rest[6]),
                time_to_target_s: parse(&rest[7]),
            })
        })
        .collect()
}
