//! `table.md` of a sweep: per cell (every axis but the seeds and the tuned key), mean ± standard
//! deviation over seeds at the tuned key's best value; and the table the papers print: one row per
//! algorithm (the `algorithm.name` axis, else the first cell axis, e.g. a `method` variant group),
//! one column per combination of the others.

use std::collections::BTreeMap;

use super::grid::{Criterion, Grid, SEED_KEY};
use super::results::RunResult;

/// Mean and sample standard deviation (0 for one value); `None` for no values.
fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// The runs of one cell at one value of the tuned key (one per seed).
#[derive(Debug, Clone, Default)]
pub struct CellStats {
    /// The tuned key's value (empty without tuning).
    pub tuned: String,
    /// Runs (seeds) in the cell.
    pub runs: usize,
    /// Runs that diverged or failed.
    pub bad: usize,
    /// Final test accuracy, mean and std.
    pub accuracy: Option<(f64, f64)>,
    /// Final training loss, mean and std.
    pub train_loss: Option<(f64, f64)>,
    /// Final evaluated loss, mean and std.
    pub loss: Option<(f64, f64)>,
    /// Mean time to the target over the runs that reached it, and how many did.
    pub time_to_target: Option<(f64, usize)>,
}

impl CellStats {
    fn of(tuned: &str, runs: &[&RunResult]) -> Self {
        let finite = |f: fn(&RunResult) -> Option<f64>| -> Vec<f64> {
            runs.iter()
                .filter_map(|r| f(r))
                .filter(|x| x.is_finite())
                .collect()
        };
        let reached: Vec<f64> = runs.iter().filter_map(|r| r.time_to_target_s).collect();
        CellStats {
            tuned: tuned.to_string(),
            runs: runs.len(),
            bad: runs.iter().filter(|r| r.status != "ok").count(),
            accuracy: mean_std(&finite(|r| r.final_test_accuracy)),
            train_loss: mean_std(&finite(|r| r.final_train_loss)),
            loss: mean_std(&finite(|r| r.final_loss)),
            time_to_target: mean_std(&reached).map(|(m, _)| (m, reached.len())),
        }
    }

    /// The criterion's value for choosing among tuned values: a cell with a diverged or failed
    /// run, or without the figure, ranks last.
    fn score(&self, by: Criterion) -> f64 {
        let value = match by {
            Criterion::FinalTestAccuracy => self.accuracy,
            Criterion::FinalTrainLoss => self.train_loss,
            Criterion::FinalLoss => self.loss,
        };
        match value {
            Some((m, _)) if self.bad == 0 => {
                if by.maximize() {
                    m
                } else {
                    -m
                }
            }
            _ => f64::NEG_INFINITY,
        }
    }
}

/// Per cell (its labels on the cell axes), the statistics at the chosen tuned value.
pub fn cells(grid: &Grid, results: &[RunResult]) -> Vec<(Vec<String>, CellStats)> {
    let cell_axes: Vec<&str> = grid.cell_axes().iter().map(|a| a.name.as_str()).collect();
    let tuned_key = grid.tune.as_ref().map(|t| t.key.as_str());
    // cell labels → tuned value → runs, in the order the grid lists them.
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut groups: BTreeMap<Vec<String>, Vec<(String, Vec<&RunResult>)>> = BTreeMap::new();
    for r in results {
        let key: Vec<String> = r
            .labels
            .iter()
            .filter(|(a, _)| cell_axes.contains(&a.as_str()))
            .map(|(_, v)| v.clone())
            .collect();
        let tuned = r
            .labels
            .iter()
            .find(|(a, _)| Some(a.as_str()) == tuned_key)
            .map_or(String::new(), |(_, v)| v.clone());
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        let by_tuned = groups.entry(key).or_default();
        match by_tuned.iter_mut().find(|(t, _)| *t == tuned) {
            Some((_, runs)) => runs.push(r),
            None => by_tuned.push((tuned, vec![r])),
        }
    }
    order
        .into_iter()
        .map(|key| {
            let candidates: Vec<CellStats> = groups[&key]
                .iter()
                .map(|(t, runs)| CellStats::of(t, runs))
                .collect();
            let best = match &grid.tune {
                Some(t) => candidates
                    .iter()
                    .max_by(|a, b| a.score(t.by).total_cmp(&b.score(t.by)))
                    .cloned()
                    .unwrap_or_default(),
                None => candidates.into_iter().next().unwrap_or_default(),
            };
            (key, best)
        })
        .collect()
}

fn pm(v: Option<(f64, f64)>, scale: f64, digits: usize) -> String {
    v.map_or("–".to_string(), |(m, s)| {
        format!("{:.d$} ± {:.d$}", m * scale, s * scale, d = digits)
    })
}

fn plain(v: Option<(f64, f64)>, digits: usize) -> String {
    v.map_or("–".to_string(), |(m, _)| format!("{m:.digits$}"))
}

/// The text of `table.md`.
pub fn table_md(grid: &Grid, results: &[RunResult]) -> String {
    let cell_axes: Vec<String> = grid.cell_axes().iter().map(|a| a.name.clone()).collect();
    let cells = cells(grid, results);
    let seeds = grid
        .axes
        .iter()
        .find(|a| a.name == SEED_KEY)
        .map_or(1, |a| a.values.len());
    let mut out = format!("# Sweep: {}\n\n", grid.path.display());
    out += &format!(
        "{} runs; mean ± standard deviation over {seeds} seed(s) per cell",
        results.len()
    );
    if let Some(t) = &grid.tune {
        out += &format!(
            "; `{}` tuned per cell from {} values by the best mean `{}` (cells with a diverged run rank last)",
            t.key,
            t.values.len(),
            t.by.column()
        );
    }
    out += ".\n\n";
    if !cell_axes.is_empty() {
        let row_axis = cell_axes
            .iter()
            .position(|a| a == "algorithm.name")
            .unwrap_or(0);
        out += &paper_table(grid, &cell_axes, row_axis, &cells);
    }
    out += "## Every cell\n\n|";
    for a in &cell_axes {
        out += &format!(" {a} |");
    }
    if let Some(t) = &grid.tune {
        out += &format!(" {} |", t.key);
    }
    out += " runs | diverged/failed | test accuracy (%) | train loss | final loss | time to target |\n|";
    let columns = cell_axes.len() + usize::from(grid.tune.is_some()) + 6;
    out += &"---|".repeat(columns);
    out += "\n";
    for (labels, s) in &cells {
        out += "|";
        for l in labels {
            out += &format!(" {l} |");
        }
        if grid.tune.is_some() {
            out += &format!(" {} |", s.tuned);
        }
        out += &format!(
            " {} | {} | {} | {} | {} | {} |\n",
            s.runs,
            s.bad,
            pm(s.accuracy, 100.0, 2),
            plain(s.train_loss, 3),
            pm(s.loss, 1.0, 4),
            s.time_to_target.map_or("–".to_string(), |(t, n)| {
                format!("{t:.1} s ({n}/{})", s.runs)
            }),
        );
    }
    out
}

/// How a row axis is named in headings: `algorithm` for `algorithm.name`, else the axis.
fn row_name(axis: &str) -> &str {
    if axis == "algorithm.name" {
        "algorithm"
    } else {
        axis
    }
}

/// Rows: algorithms; columns: the other cell axes' combinations; a cell: training loss / test
/// accuracy ± std (or the loss ± std without an accuracy), with the tuned value.
fn paper_table(
    grid: &Grid,
    cell_axes: &[String],
    row_axis: usize,
    cells: &[(Vec<String>, CellStats)],
) -> String {
    let column_of = |labels: &[String]| -> String {
        labels
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != row_axis)
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows: Vec<String> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (labels, _) in cells {
        if !rows.contains(&labels[row_axis]) {
            rows.push(labels[row_axis].clone());
        }
        let c = column_of(labels);
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    let others: Vec<&str> = cell_axes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != row_axis)
        .map(|(_, a)| a.as_str())
        .collect();
    let with_accuracy = cells.iter().any(|(_, s)| s.accuracy.is_some());
    let mut out = format!(
        "## By {}\n\nColumns: {}. A cell: {}{}.\n\n| {} |",
        row_name(&cell_axes[row_axis]),
        if others.is_empty() {
            "—".to_string()
        } else {
            others.join(", ")
        },
        if with_accuracy {
            "final training loss / test accuracy (%) ± std"
        } else {
            "final loss ± std"
        },
        if grid.tune.is_some() {
            ", and the tuned value"
        } else {
            ""
        },
        row_name(&cell_axes[row_axis]),
    );
    for c in &columns {
        out += &format!(" {} |", if c.is_empty() { "result" } else { c });
    }
    out += "\n|---|";
    out += &"---|".repeat(columns.len());
    out += "\n";
    for row in &rows {
        out += &format!("| {row} |");
        for c in &columns {
            let stats = cells
                .iter()
                .find(|(l, _)| &l[row_axis] == row && &column_of(l) == c)
                .map(|(_, s)| s);
            let text = stats.map_or("–".to_string(), |s| {
                let result = match s.accuracy {
                    Some(_) => format!("{} / {}", plain(s.train_loss, 2), pm(s.accuracy, 100.0, 2)),
                    None => pm(s.loss, 1.0, 4),
                };
                let tuned = if grid.tune.is_some() {
                    format!(" ({})", s.tuned)
                } else {
                    String::new()
                };
                let bad = if s.bad > 0 {
                    format!(" [{} diverged]", s.bad)
                } else {
                    String::new()
                };
                format!("{result}{tuned}{bad}")
            });
            out += &format!(" {text} |");
        }
        out += "\n";
    }
    out + "\n"
}
