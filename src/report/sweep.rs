//! A sweep directory in `lagom report`: its table, and per setting (each combination of the cell
//! axes other than the algorithm) a chart with one line per algorithm at its tuned value, the
//! mean over seeds of test accuracy — or of the loss, for analytic objectives — against updates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::chart::{LineChart, Series};
use super::figures::mean_curve;
use super::runs::RunData;
use crate::sweep::{cells, from_csv, run_dir, Grid, RESULTS_FILE, SEED_KEY, TABLE_FILE};

/// Whether `dir` is a sweep directory (it holds a grid and results).
pub fn is_sweep(dir: &Path) -> bool {
    dir.join("grid.toml").is_file() && dir.join(RESULTS_FILE).is_file()
}

/// A file-name-safe version of a label.
fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// The sweep in `dir`: `table.md` copied and one chart per setting, into `out`.
pub fn sweep_figures(dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let grid = Grid::load(&dir.join("grid.toml"))?;
    let csv = std::fs::read_to_string(dir.join(RESULTS_FILE))
        .with_context(|| format!("cannot read {}/{RESULTS_FILE}", dir.display()))?;
    let results = from_csv(&grid, &csv)?;
    let name = dir
        .file_name()
        .map_or("sweep".into(), |n| slug(&n.to_string_lossy()));
    let mut files = Vec::new();
    let table = out.join(format!("{name}-{TABLE_FILE}"));
    std::fs::copy(dir.join(TABLE_FILE), &table)
        .with_context(|| format!("cannot copy {}/{TABLE_FILE}", dir.display()))?;
    files.push(table);

    let cell_axes: Vec<String> = grid.cell_axes().iter().map(|a| a.name.clone()).collect();
    let line_axis = cell_axes
        .iter()
        .position(|a| a == "algorithm.name")
        .unwrap_or(0);
    let tuned_key = grid.tune.as_ref().map(|t| t.key.clone());
    // setting (labels of the other cell axes) → (line name, mean curve)
    let mut settings: Vec<(Vec<String>, Vec<Series>)> = Vec::new();
    let mut accuracy = false;
    for (labels, stats) in cells(&grid, &results) {
        let runs: Vec<RunData> = results
            .iter()
            .filter(|r| {
                let cell: Vec<&String> = r
                    .labels
                    .iter()
                    .filter(|(a, _)| cell_axes.contains(a))
                    .map(|(_, v)| v)
                    .collect();
                let tuned_ok = tuned_key
                    .as_ref()
                    .is_none_or(|k| r.labels.iter().any(|(a, v)| a == k && *v == stats.tuned));
                cell.iter().copied().eq(labels.iter()) && tuned_ok && r.status != "failed"
            })
            .filter_map(|r| RunData::load(&run_dir(dir, &r.id)).ok())
            .collect();
        let has_accuracy = runs
            .iter()
            .any(|r| r.evals.iter().any(|p| p.test_accuracy.is_some()));
        accuracy |= has_accuracy;
        let curves: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|r| {
                r.curve(false, |p| {
                    if has_accuracy {
                        p.test_accuracy.map(|a| 100.0 * a)
                    } else {
                        p.loss
                    }
                })
            })
            .collect();
        let setting: Vec<String> = labels
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != line_axis)
            .map(|(_, l)| l.clone())
            .collect();
        let mut line = labels.get(line_axis).cloned().unwrap_or_default();
        if tuned_key.is_some() {
            line += &format!(" ({})", stats.tuned);
        }
        let series = Series {
            name: line,
            points: mean_curve(&curves),
        };
        match settings.iter_mut().find(|(s, _)| *s == setting) {
            Some((_, lines)) => lines.push(series),
            None => settings.push((setting, vec![series])),
        }
    }
    let seeds = grid
        .axes
        .iter()
        .find(|a| a.name == SEED_KEY)
        .map_or(1, |a| a.values.len());
    let others: Vec<&String> = cell_axes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != line_axis)
        .map(|(_, a)| a)
        .collect();
    for (setting, series) in settings {
        let what = if accuracy { "Test accuracy" } else { "Loss" };
        let title = if setting.is_empty() {
            format!("{what}, mean of {seeds} seed(s)")
        } else {
            let pairs: Vec<String> = others
                .iter()
                .zip(&setting)
                .map(|(a, v)| format!("{a} = {v}"))
                .collect();
            format!("{what}: {}, mean of {seeds} seed(s)", pairs.join(", "))
        };
        let stem = if setting.is_empty() {
            format!("{name}-curves")
        } else {
            format!("{name}-{}", slug(&setting.join("-")))
        };
        files.extend(
            LineChart {
                title,
                x_label: "updates (iterations for decentralized runs)".into(),
                y_label: if accuracy {
                    "test accuracy (%)".into()
                } else {
                    "loss (log scale)".into()
                },
                log_y: !accuracy,
                series,
            }
            .draw(&out.join(stem))?,
        );
    }
    Ok(files)
}
