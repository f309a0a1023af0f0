//! `lagom report RUN_DIR|SWEEP_DIR... [--out DIR]`: charts of finished runs (overlaid, one legend
//! entry per run) and of sweeps (the table and one chart per setting), as SVG and PNG, drawn in
//! Rust with an embedded font.

mod chart;
mod figures;
mod runs;
mod sweep;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use chart::{LineChart, Series};
pub use figures::{mean_curve, run_figures};
pub use runs::RunData;
pub use sweep::{is_sweep, sweep_figures};

/// Draws the charts of `inputs` (run directories, overlaid, and sweep directories) into `out`;
/// returns the files written. An input that is neither is an error naming it.
pub fn report(inputs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    if inputs.is_empty() {
        bail!("give at least one run or sweep directory");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut runs = Vec::new();
    let mut files = Vec::new();
    for input in inputs {
        if is_sweep(input) {
            files.extend(sweep_figures(input, out)?);
        } else {
            runs.push(RunData::load(input)?);
        }
    }
    if !runs.is_empty() {
        files.extend(run_figures(&runs, out)?);
    }
    Ok(files)
}
