//! `lagom sweep --config GRID.toml`: runs a grid of configurations (axes over any keys, named
//! variants, a key tuned per cell), each as its own `lagom sim` or `lagom train` process in a
//! directory named by its effective configuration, resumable, `--jobs N` at a time; then writes
//! `results.csv` (one row per run) and `table.md` (mean ± std over seeds per cell, the tuned
//! value, and the papers' table shape when `algorithm.name` is an axis).

mod grid;
mod plan;
mod results;
mod runner;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use grid::{label, Axis, Criterion, Grid, PlannedRun, RunCommand, Tune, SEED_KEY};
pub use plan::{finished, identify, identity_text, IdentifiedRun};
pub use results::{from_csv, read_result, to_csv, RunResult};
pub use runner::{run_all, run_dir, RunnerOptions, RunnerReport};
pub use table::{cells, table_md, CellStats};

/// The files a sweep writes in its directory.
pub const RESULTS_FILE: &str = "results.csv";
/// The summary table.
pub const TABLE_FILE: &str = "table.md";

/// What a finished sweep produced.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep directory.
    pub dir: PathBuf,
    /// What the runner did.
    pub report: RunnerReport,
    /// Every run's result, in grid order.
    pub results: Vec<RunResult>,
}

/// Carries out `grid`'s `runs` (from [`identify`], which checks every configuration first)
/// under `out`, and writes `results.csv` and `table.md` there (also when some runs failed: their
/// rows say so).
pub fn sweep(
    grid: &Grid,
    runs: &[IdentifiedRun],
    out: &Path,
    options: &RunnerOptions,
) -> Result<SweepOutcome> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::copy(&grid.path, out.join("grid.toml"))
        .with_context(|| format!("cannot copy {} into {}", grid.path.display(), out.display()))?;
    let report = run_all(out, runs, options)?;
    let results = runs
        .iter()
        .map(|r| read_result(out, grid, r))
        .collect::<Result<Vec<_>>>()?;
    write(out, RESULTS_FILE, &to_csv(grid, &results))?;
    write(out, TABLE_FILE, &table_md(grid, &results))?;
    Ok(SweepOutcome {
        dir: out.to_path_buf(),
        report,
        results,
    })
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
