//! What the over-the-wire benches share: a run with a ResNet-20-sized model on synthetic data
//! that does nothing but exchange tensors (no evaluation, no checkpoints), and its server or
//! rendezvous on loopback with a cluster CA that issues the workers' certificates.

use std::time::Duration;

use candle_core::Device;
use lagom::algo::AlgorithmName;
use lagom::config::Config;
use lagom::data::DatasetName;
use lagom::model::ModelName;
use lagom::net::{ClusterCa, NodeIdentity, SlotGrant};
use lagom::node::{load_split, start_server_node, ServerNode};
use lagom::run::RunDir;

/// `algorithm` with `workers` workers for `updates` updates (or iterations) of ResNet-20 on
/// synthetic data, nothing evaluated or checkpointed on the way.
pub fn config(algorithm: AlgorithmName, workers: usize, updates: u64) -> Config {
    let mut config = Config::default();
    config.algorithm.name = algorithm;
    config.algorithm.lr = 0.01;
    config.cluster.workers = workers;
    config.data.name = DatasetName::Synthetic;
    config.model.name = ModelName::Resnet20;
    config.model.bn_batches = 1;
    config.server.updates = updates;
    config.server.eval_every = 0;
    config.server.checkpoint_every = 0;
    config.server.checkpoint_every_s = 0.0;
    config
}

/// A server (or rendezvous) on loopback and the CA its workers' certificates come from.
pub struct Loopback {
    /// The running node.
    pub node: ServerNode,
    ca: ClusterCa,
}

impl Loopback {
    /// Starts `config`'s server or rendezvous on a free loopback port, writing into `run`. Call
    /// inside an actix `System`.
    pub fn start(config: &Config, run: &RunDir) -> anyhow::Result<Self> {
        let ca = ClusterCa::generate("bench", Duration::from_secs(86_400))?;
        let server_id = ca.issue_server("bench-server")?.0;
        let split = load_split(config)?;
        let bind = ([127, 0, 0, 1], 0).into();
        let node = start_server_node(config, split, &Device::Cpu, run, &server_id, bind)?;
        Ok(Loopback { node, ca })
    }

    /// A certificate and key for worker slot `w`.
    pub fn worker_identity(&self, w: usize) -> anyhow::Result<NodeIdentity> {
        Ok(self
            .ca
            .issue_worker(&format!("bench-{w}"), &SlotGrant::Slots(vec![w]))?
            .0)
    }
}
