//! The top-level configuration and the small sections that have no module of their own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::algo::AlgorithmConfig;
use crate::compute::ComputeConfig;
use crate::data::DataConfig;
use crate::heterogeneity::HeterogeneityConfig;
use crate::model::ModelConfig;
use crate::monitor::MonitorConfig;
use crate::net::NetConfig;
use crate::sim::SimConfig;
use crate::supervisor::{ChaosConfig, SupervisorConfig};
use crate::train::TrainConfig;

/// The whole configuration. Every section rejects keys it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[algorithm]`: the server's update rule.
    pub algorithm: AlgorithmConfig,
    /// `[cluster]`: how many workers.
    pub cluster: ClusterConfig,
    /// `[heterogeneity]`: slow workers and jitter.
    pub heterogeneity: HeterogeneityConfig,
    /// `[sim]`: the virtual-clock simulator.
    pub sim: SimConfig,
    /// `[data]`: the data set and its sharding.
    pub data: DataConfig,
    /// `[model]`: the network.
    pub model: ModelConfig,
    /// `[compute]`: device and threads.
    pub compute: ComputeConfig,
    /// `[train]`: single-process training and the mini-batch size.
    pub train: TrainConfig,
    /// `[net]`: addresses, certificates, timeouts.
    pub net: NetConfig,
    /// `[server]`: evaluation and stopping of a cluster run.
    pub server: ServerRunConfig,
    /// `[run]`: output directory and seed.
    pub run: RunConfig,
    /// `[supervisor]`: the workers of one host and their restart rules.
    pub supervisor: SupervisorConfig,
    /// `[chaos]`: fault injection by the supervisor (off by default).
    pub chaos: ChaosConfig,
    /// `[monitor]`: the Prometheus endpoint (off by default).
    pub monitor: MonitorConfig,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The number of worker slots K.
    pub workers: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { workers: 4 }
    }
}

/// `[server]`: what the parameter server of a cluster run does besides applying gradients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerRunConfig {
    /// Stop after this many applied updates.
    pub updates: u64,
    /// Evaluate the server's parameters on the test set every this many updates (0 = only at
    /// the end). Evaluation runs on its own thread and never delays updates.
    pub eval_every: u64,
    /// Also evaluate at least every this many seconds (0 = not by time).
    pub eval_every_s: f64,
    /// Checkpoint every this many updates (0 = never by count).
    pub checkpoint_every: u64,
    /// Checkpoint at least every this many seconds (0 = never by time).
    pub checkpoint_every_s: f64,
    /// Continue from the run directory's checkpoint instead of starting afresh (`--resume`);
    /// an error when there is none.
    pub resume: bool,
    /// Continue from the run directory's checkpoint when there is one, start afresh otherwise
    /// (for a service manager that restarts the server).
    pub auto_resume: bool,
}

impl Default for ServerRunConfig {
    fn default() -> Self {
        ServerRunConfig {
            updates: 2000,
            eval_every: 500,
            eval_every_s: 0.0,
            checkpoint_every: 500,
            checkpoint_every_s: 60.0,
            resume: false,
            auto_resume: false,
        }
    }
}

impl ServerRunConfig {
    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.updates == 0 {
            problems.push(("server.updates", "must be ≥ 1, got 0".to_string()));
        }
        if !(self.eval_every_s.is_finite() && self.eval_every_s >= 0.0) {
            problems.push((
                "server.eval_every_s",
                format!("must be ≥ 0 seconds, got {}", self.eval_every_s),
            ));
        }
        if !(self.checkpoint_every_s.is_finite() && self.checkpoint_every_s >= 0.0) {
            problems.push((
                "server.checkpoint_every_s",
                format!("must be ≥ 0 seconds, got {}", self.checkpoint_every_s),
            ));
        }
        problems
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Where `metrics.jsonl` and `summary.json` go.
    pub dir: PathBuf,
    /// The run's seed: initial parameters, data, noise, heterogeneity.
    pub seed: u64,
    /// A loss above this (or non-finite) marks the run diverged and stops it.
    pub divergence_loss: f64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            dir: PathBuf::from("runs/latest"),
            seed: 0,
            divergence_loss: 1e6,
        }
    }
}

impl Config {
    /// Checks every value range; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = self.algorithm.validate();
        if self.cluster.workers == 0 {
            problems.push(("cluster.workers", "must be ≥ 1, got 0".to_string()));
        }
        problems.extend(crate::decen::validate_for_nodes(
            &self.algorithm,
            self.cluster.workers.max(1),
        ));
        problems.extend(self.heterogeneity.validate(self.cluster.workers));
        problems.extend(self.sim.validate());
        problems.extend(self.model.validate());
        problems.extend(self.train.validate());
        problems.extend(self.net.validate());
        if self.net.compress == crate::net::Compression::Topk
            && self.algorithm.name.is_decentralized()
        {
            problems.push((
                "net.compress",
                format!(
                    "topk compresses a parameter-server worker's gradients; {} workers exchange \
                     parameters, which it does not apply to (use \"none\")",
                    self.algorithm.name.as_str()
                ),
            ));
        }
        problems.extend(self.server.validate());
        problems.extend(self.supervisor.validate(self.cluster.workers));
        problems.extend(self.chaos.validate());
        if self.run.divergence_loss.is_nan() || self.run.divergence_loss <= 0.0 {
            problems.push((
                "run.divergence_loss",
                format!("must be > 0, got {}", self.run.divergence_loss),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Compression;

    #[test]
    fn top_k_is_refused_for_the_decentralized_family() {
        let mut config = Config::default();
        config.net.compress = Compression::Topk;
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        config.algorithm.name = crate::algo::AlgorithmName::AllreduceSgd;
        let p = config.validate();
        assert!(
            p.iter()
                .any(|(k, m)| *k == "net.compress" && m.contains("exchange parameters")),
            "{p:?}"
        );
    }
}
