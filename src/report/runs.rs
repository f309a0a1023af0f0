//! A run directory as `lagom report` reads it: its summary and the points of its `eval` lines.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::run::{eval_points, EvalPoint, RunDetails, Summary};

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Its name in legends.
    pub label: String,
    /// `summary.json`.
    pub summary: Summary,
    /// The `eval` lines of `metrics.jsonl`, in order.
    pub evals: Vec<EvalPoint>,
}

impl RunData {
    /// Reads the run in `dir`; the error names the file that is missing or damaged.
    pub fn load(dir: &Path) -> Result<RunData> {
        let summary_path = dir.join("summary.json");
        let text = std::fs::read_to_string(&summary_path).with_context(|| {
            format!(
                "{} is not a finished run: cannot read {}",
                dir.display(),
                summary_path.display()
            )
        })?;
        let summary: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a lagom summary", summary_path.display()))?;
        let metrics_path = dir.join("metrics.jsonl");
        let metrics = std::fs::read_to_string(&metrics_path)
            .with_context(|| format!("cannot read {}", metrics_path.display()))?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(RunData {
            dir: dir.to_path_buf(),
            label: format!("{} ({name})", summary.algorithm),
            evals: eval_points(&metrics),
            summary,
        })
    }

    /// Whether time is virtual (a simulation).
    pub fn virtual_time(&self) -> bool {
        self.summary.kind == "sim"
    }

    /// Whether the run is decentralized (iterations of every node, not server updates).
    pub fn decentralized(&self) -> bool {
        matches!(
            self.summary.details,
            RunDetails::DecentralizedSim(_) | RunDetails::Rendezvous(_)
        )
    }

    /// `(x, y)` for each evaluation where `y` has a value; `x` is updates, or seconds with
    /// `by_time`.
    pub fn curve(&self, by_time: bool, y: impl Fn(&EvalPoint) -> Option<f64>) -> Vec<(f64, f64)> {
        self.evals
            .iter()
            .filter_map(|p| {
                let x = if by_time { p.t_s } else { p.updates as f64 };
                y(p).map(|v| (x, v))
            })
            .collect()
    }
}
