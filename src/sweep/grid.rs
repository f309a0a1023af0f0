//! The grid file of `lagom sweep`: a base configuration, axes over any configuration keys,
//! named variants (several keys at once), an optional tuned key, and the runs they expand to.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use toml::{Table, Value};

/// The configuration key whose values are repetitions of one cell, not a cell of their own.
pub const SEED_KEY: &str = "run.seed";

/// Which lagom command runs each configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RunCommand {
    /// `lagom sim`.
    #[default]
    Sim,
    /// `lagom train`.
    Train,
}

impl RunCommand {
    /// The subcommand's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunCommand::Sim => "sim",
            RunCommand::Train => "train",
        }
    }
}

/// What a tuned key's best value is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// The highest mean final test accuracy over seeds.
    FinalTestAccuracy,
    /// The lowest mean final training loss (models) over seeds.
    FinalTrainLoss,
    /// The lowest mean final evaluated loss (the objective, or a model's test loss) over seeds.
    FinalLoss,
}

impl Criterion {
    /// The results column it reads.
    pub fn column(self) -> &'static str {
        match self {
            Criterion::FinalTestAccuracy => "final_test_accuracy",
            Criterion::FinalTrainLoss => "final_train_loss",
            Criterion::FinalLoss => "final_loss",
        }
    }

    /// Whether larger is better.
    pub fn maximize(self) -> bool {
        self == Criterion::FinalTestAccuracy
    }
}

/// `[tune]`: a key whose best value is chosen per cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tune {
    /// The key, e.g. `algorithm.lr`.
    pub key: String,
    /// The candidate values.
    pub values: Vec<Value>,
    /// What "best" means.
    pub by: Criterion,
}

/// A grid file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    base: PathBuf,
    #[serde(default)]
    command: RunCommand,
    #[serde(default)]
    target_accuracy: Option<f64>,
    #[serde(default)]
    target_loss: Option<f64>,
    #[serde(default)]
    set: Table,
    #[serde(default)]
    axes: Table,
    #[serde(default)]
    variants: Table,
    #[serde(default)]
    tune: Option<Tune>,
}

/// One axis: its name and its values, each a label and the keys it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The key (`algorithm.name`) or the variant group's name (`setting`).
    pub name: String,
    /// `(label, [(key, value)])` per value, in the file's order.
    pub values: Vec<(String, Vec<(String, Value)>)>,
}

/// A parsed, checked grid.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The grid file.
    pub path: PathBuf,
    /// The base configuration, resolved against the grid file's folder.
    pub base: PathBuf,
    /// The command every run uses.
    pub command: RunCommand,
    /// Time and updates to this test accuracy are reported.
    pub target_accuracy: Option<f64>,
    /// Time and updates to this loss (or lower) are reported.
    pub target_loss: Option<f64>,
    /// `[set]`: keys every run sets (over the base, under `--set` and the axes).
    pub set: Vec<(String, Value)>,
    /// Axes in file order: `[axes]`, then `[variants]`, then the tuned key.
    pub axes: Vec<Axis>,
    /// The tuned key, if any (also the last axis).
    pub tune: Option<Tune>,
}

/// One run of the grid: its value on every axis and the configuration keys it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// `(axis name, value label)` per axis, in axis order.
    pub labels: Vec<(String, String)>,
    /// The keys and values this run sets over the base.
    pub settings: Vec<(String, Value)>,
}

/// A TOML value as a label: strings without quotes, everything else as TOML writes it.
pub fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `table` with nested tables flattened to dotted keys (`algorithm.name`), leaves kept.
fn flatten(prefix: &str, table: &Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => flatten(&key, t, out),
            leaf => out.push((key, leaf.clone())),
        }
    }
}

impl Grid {
    /// Reads and checks `path` (the shape only: keys are checked against the configuration
    /// when the runs are planned).
    pub fn load(path: &Path) -> Result<Grid> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the grid file {}", path.display()))?;
        let file: GridFile = toml::from_str(&text)
            .with_context(|| format!("grid file {} is not a valid grid", path.display()))?;
        let at = |what: String| format!("grid file {}: {what}", path.display());
        let mut axes = Vec::new();
        let mut leaves = Vec::new();
        flatten("", &file.axes, &mut leaves);
        for (key, value) in leaves {
            let Value::Array(values) = value else {
                bail!(at(format!("axes.\"{key}\" must be a list of values")));
            };
            if values.is_empty() {
                bail!(at(format!(
                    "axes.\"{key}\" is empty: an axis needs ≥ 1 value"
                )));
            }
            let values = values
                .into_iter()
                .map(|v| (label(&v), vec![(key.clone(), v)]))
                .collect();
            axes.push(Axis { name: key, values });
        }
        for (group, variants) in &file.variants {
            let Value::Table(variants) = variants else {
                bail!(at(format!(
                    "variants.{group} must be a table of named variants"
                )));
            };
            if variants.is_empty() {
                bail!(at(format!(
                    "variants.{group} is empty: an axis needs ≥ 1 value"
                )));
            }
            let mut values = Vec::new();
            for (name, keys) in variants {
                let Value::Table(keys) = keys else {
                    bail!(at(format!(
                        "variants.{group}.{name} must be a table of keys, e.g. {{ \"cluster.workers\" = 16 }}"
                    )));
                };
                let mut settings = Vec::new();
                flatten("", keys, &mut settings);
                values.push((name.clone(), settings));
            }
            axes.push(Axis {
                name: group.clone(),
                values,
            });
        }
        if let Some(t) = &file.tune {
            if t.values.is_empty() {
                bail!(at(format!("tune.values for `{}` is empty", t.key)));
            }
            if axes.iter().any(|a| a.name == t.key) {
                bail!(at(format!("`{}` is both an axis and the tuned key", t.key)));
            }
            axes.push(Axis {
                name: t.key.clone(),
                values: t
                    .values
                    .iter()
                    .map(|v| (label(v), vec![(t.key.clone(), v.clone())]))
                    .collect(),
            });
        }
        let mut set = Vec::new();
        flatten("", &file.set, &mut set);
        let base = match path.parent() {
            Some(dir) => dir.join(&file.base),
            None => file.base.clone(),
        };
        Ok(Grid {
            path: path.to_path_buf(),
            base,
            command: file.command,
            target_accuracy: file.target_accuracy,
            target_loss: file.target_loss,
            set,
            axes,
            tune: file.tune,
        })
    }

    /// Every combination of the axes' values, the last axis varying fastest.
    pub fn runs(&self) -> Vec<PlannedRun> {
        let mut runs = vec![PlannedRun {
            labels: Vec::new(),
            settings: Vec::new(),
        }];
        for axis in &self.axes {
            runs = runs
                .into_iter()
                .flat_map(|run| {
                    axis.values.iter().map(move |(label, settings)| {
                        let mut next = run.clone();
                        next.labels.push((axis.name.clone(), label.clone()));
                        next.settings.extend(settings.iter().cloned());
                        next
                    })
                })
                .collect();
        }
        runs
    }

    /// The axes that make a table cell: all but the seeds and the tuned key.
    pub fn cell_axes(&self) -> Vec<&Axis> {
        let tuned = self.tune.as_ref().map(|t| t.key.as_str());
        self.axes
            .iter()
            .filter(|a| a.name != SEED_KEY && Some(a.name.as_str()) != tuned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(text: &str) -> Result<Grid> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.toml");
        std::fs::write(&path, text).unwrap();
        Grid::load(&path)
    }

    #[test]
    fn axes_variants_and_the_tuned_key_expand_to_their_product_in_file_order() {
        let g = grid(
            r#"
            base = "base.toml"
            [axes]
            "algorithm.name" = ["ormo", "asgd"]
            run.seed = [1, 2]
            [variants.setting]
            hom = { "heterogeneity.slow_fraction" = 0.0 }
            het = { "heterogeneity.slow_fraction" = 0.25, heterogeneity.slowdown = 4.0 }
            [tune]
            key = "algorithm.lr"
            values = [0.01, 0.1]
            by = "final_test_accuracy"
            "#,
        )
        .unwrap();
        let runs = g.runs();
        assert_eq!(runs.len(), 2 * 2 * 2 * 2);
        assert_eq!(
            runs[0].labels,
            vec![
                ("algorithm.name".to_string(), "ormo".to_string()),
                ("run.seed".into(), "1".into()),
                ("setting".into(), "hom".into()),
                ("algorithm.lr".into(), "0.01".into()),
            ]
        );
        let het = &runs[3];
        assert_eq!(het.labels[2].1, "het");
        assert!(het
            .settings
            .contains(&("heterogeneity.slowdown".to_string(), Value::Float(4.0))));
        let names: Vec<&str> = g.cell_axes().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["algorithm.name", "setting"]);
    }

    #[test]
    fn an_empty_axis_or_an_unknown_grid_key_is_refused_naming_it() {
        let e = grid("base = \"b.toml\"\n[axes]\n\"run.seed\" = []\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("axes.\"run.seed\" is empty"),
            "{e:#}"
        );
        let e = grid("base = \"b.toml\"\nsteps = 3\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `steps`"), "{e:#}");
        let e = grid("base = \"b.toml\"\n[axes]\n\"run.seed\" = 3\n").unwrap_err();
        assert!(format!("{e:#}").contains("must be a list"), "{e:#}");
    }
}
