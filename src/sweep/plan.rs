//! From a grid to runs with identities: each planned run's effective configuration (the base
//! file, the environment and the run's settings, loaded exactly as `lagom sim --config BASE --set
//! KEY=VALUE…` would), and the run's identity — a hash of that configuration — which names its
//! directory, so a resumed sweep recognises the runs it already finished.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use super::grid::{Grid, PlannedRun};
use crate::config::{self, CliOverrides, Config};
use crate::model::{fnv1a, FNV_OFFSET};

/// A run with its effective configuration and identity.
#[derive(Debug, Clone)]
pub struct IdentifiedRun {
    /// The grid point.
    pub planned: PlannedRun,
    /// Hex hash of `config_text`.
    pub id: String,
    /// The effective configuration as TOML, with `run.dir` left empty.
    pub config_text: String,
    /// The effective configuration.
    pub config: Config,
}

/// The effective configuration of `config` as identity text: TOML with `run.dir` empty (where a
/// run is written is not what it is).
pub fn identity_text(config: &Config) -> Result<String> {
    let mut c = config.clone();
    c.run.dir = PathBuf::new();
    toml::to_string(&c).map_err(|e| anyhow!("cannot encode the configuration as TOML: {e}"))
}

/// The `--set` flags that apply `run`'s settings.
pub fn set_flags(run: &PlannedRun) -> Vec<String> {
    run.settings
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// Loads every run's configuration — the base file, the grid's `[set]`, then `extra` (`KEY=VALUE`
/// settings for every run, e.g. a shorter budget), then the run's own settings; the first bad one (an unknown key, a
/// wrong type, a value out of range) is an error naming the run and the key, before anything runs.
pub fn identify(grid: &Grid, extra: &[String]) -> Result<Vec<IdentifiedRun>> {
    grid.runs()
        .into_iter()
        .map(|planned| {
            let cli = CliOverrides {
                config: Some(grid.base.clone()),
                set: grid
                    .set
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(extra.iter().cloned())
                    .chain(set_flags(&planned))
                    .collect(),
                ..CliOverrides::default()
            };
            let (config, _) = config::load(&cli).map_err(|e| {
                let point: Vec<String> = planned
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                anyhow!(
                    "grid file {}: the run [{}] has a bad configuration: {e}",
                    grid.path.display(),
                    point.join(", ")
                )
            })?;
            let config_text = identity_text(&config)?;
            let id = format!("{:016x}", fnv1a(config_text.as_bytes(), FNV_OFFSET));
            Ok(IdentifiedRun {
                planned,
                id,
                config_text,
                config,
            })
        })
        .collect()
}

/// Whether `dir` holds a finished run of exactly `run`'s configuration: its summary exists and
/// reads as a summary, and the configuration it recorded is the same.
pub fn finished(dir: &Path, run: &IdentifiedRun) -> bool {
    let summary = std::fs::read_to_string(dir.join("summary.json"));
    if !summary.is_ok_and(|t| serde_json::from_str::<crate::run::Summary>(&t).is_ok()) {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(dir.join("config.toml")) else {
        return false;
    };
    let Ok(recorded) = toml::from_str::<Config>(&text) else {
        return false;
    };
    identity_text(&recorded).is_ok_and(|t| t == run.config_text)
}
