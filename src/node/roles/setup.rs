//! What every role sets up alike: the data split, the node's identity and transport, the
//! model a server serves (layout, initial parameters, evaluator), a worker's compute thread.

use tokio::sync::oneshot;

use crate::node::eval::EvalActor;
use crate::node::hello::PeerRequirements;
use crate::node::shutdown::Shutdown;
use crate::run::{ModelFacts, RunDir, Summary};
use crate::train::bn_batches;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use actix::{Addr, SyncArbiter};
use anyhow::{anyhow, Context, Result};
use candle_core::Device;

use crate::compress::TopK;
use crate::compute::Engine;
use crate::compute::{augment_seed, WorkerCompute};
use crate::config::{Config, ConfigError};
use crate::data::{self, Dataset, Sampler, Selection, Split};
use crate::model::{InputSpec, Network};
use crate::net::{load_identity, Compression, NodeIdentity, TransportSettings};
use crate::node::compute::ComputeActor;

/// QUIC settings for a model of `params_len` parameters, with `[net]`'s timeouts.
pub(super) fn transport(config: &Config, params_len: usize) -> TransportSettings {
    let mut t = TransportSettings::for_params(params_len);
    t.keep_alive = Duration::from_secs_f64(config.net.keep_alive_s);
    t.idle_timeout = Duration::from_secs_f64(config.net.idle_timeout_s);
    t.mtu = (config.net.mtu != 0).then_some(config.net.mtu);
    t.wire_dtype = config.net.wire_dtype;
    t
}

/// `addr` (the value of config key `key`) as a socket address, or an error naming the key.
pub(super) fn resolve(addr: &str, key: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("{key} = `{addr}` is not a HOST:PORT address"))?
        .next()
        .ok_or_else(|| anyhow!("{key} = `{addr}` resolves to no address"))
}

/// Starts worker `worker`'s compute thread (stretched to `slowdown ×` its step time); returns it
/// with the model's layout hash and parameter count.
pub(super) fn start_compute(
    config: &Config,
    shard: WorkerShard,
    worker: usize,
    device: &Device,
    slowdown: f64,
) -> Result<(Addr<ComputeActor>, u64, usize)> {
    let (compute, hash, len) = worker_compute(config, shard, worker, device)?;
    let mut actor = ComputeActor::new(compute, slowdown);
    if config.net.compress == Compression::Topk && !config.algorithm.name.is_decentralized() {
        let topk = TopK::new(config.net.topk_fraction, config.net.wire_dtype)
            .with_warmup(config.net.topk_warmup);
        actor = actor.with_compression(topk);
    }
    Ok((SyncArbiter::start(1, move || actor.clone()), hash, len))
}

/// A worker's own training examples (its shard, nothing else) and the sampler that draws
/// from them, in the order [`Sampler::new`] gives for that worker.
pub struct WorkerShard {
    data: Dataset,
    sampler: Sampler,
}

impl WorkerShard {
    /// Worker `worker`'s shard cut from a training set already in memory.
    pub fn cut(config: &Config, train: &Dataset, worker: usize) -> Result<Self> {
        let (shard, sampler) = worker_sampler(config, train.len(), worker);
        Ok(WorkerShard {
            data: train.subset(&shard)?,
            sampler,
        })
    }

    /// Worker `worker`'s shard read from the configured data set: the files are streamed and
    /// only its examples are kept (no test set).
    pub fn load(config: &Config, worker: usize) -> Result<Self> {
        let mut sampler = None;
        let data = data::load_train(
            config.data.name,
            config.data.dir.as_deref(),
            config.run.seed,
            |len| {
                let (shard, s) = worker_sampler(config, len, worker);
                sampler = Some(s);
                Selection::only(len, &shard)
            },
        )?;
        let sampler = sampler.ok_or_else(|| anyhow!("the data set was read without a shard"))?;
        Ok(WorkerShard { data, sampler })
    }
}

fn worker_sampler(config: &Config, len: usize, worker: usize) -> (Vec<usize>, Sampler) {
    Sampler::local(
        len,
        worker,
        config.cluster.workers,
        config.data.sharding,
        config.run.seed,
    )
}

/// Worker `worker`'s compute for `config` on `device` (its model, `shard`, sampler and
/// augmentation stream), with the model's layout hash and parameter count: what its process
/// computes with.
pub fn worker_compute(
    config: &Config,
    shard: WorkerShard,
    worker: usize,
    device: &Device,
) -> Result<(WorkerCompute, u64, usize)> {
    let seed = config.run.seed;
    let WorkerShard { data, sampler } = shard;
    let net = Network::with_kernels(
        config.model.name,
        InputSpec::of(&data),
        device,
        seed,
        config.compute.cpu_kernels,
    )?;
    let (hash, len) = (net.layout().hash(), net.layout().len());
    let augment = (config.data.augment && data.augmentable).then(|| augment_seed(seed, worker));
    let compute = WorkerCompute::new(
        Engine::new(net).with_activations(config.compute.activations),
        data,
        sampler,
        augment,
        config.train.batch_size,
    );
    Ok((compute, hash, len))
}

/// Loads the configured data set for a server ([`data::load_lean`]: CIFAR's training pixels
/// stay in the files; the server reads only the batches that recompute batch-norm statistics).
pub fn load_split(config: &Config) -> Result<Split> {
    Ok(data::load_lean(
        config.data.name,
        config.data.dir.as_deref(),
        config.run.seed,
    )?)
}

/// This node's certificate, key and the cluster CA, from `net.certs` and `net.node`.
pub(super) fn identity_from_config(config: &Config) -> Result<NodeIdentity> {
    let Some(dir) = &config.net.certs else {
        // A configuration problem (exit code 2): restarting the node cannot fix it.
        return Err(ConfigError::Invalid(vec![
            "net.certs is not set: point it at a directory made by `lagom certs` \
             (or use --role local, which makes its own)"
                .into(),
        ])
        .into());
    };
    load_identity(dir, &config.net.node)
}

/// A running server node: where it listens, what peers must match, and its end-of-run signal.
pub struct ServerNode {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What every peer must match.
    pub requirements: PeerRequirements,
    /// Receives the summary when the run ends.
    pub done: oneshot::Receiver<Summary>,
    /// The QUIC endpoint (close it after the run).
    pub endpoint: quinn::Endpoint,
    /// Ends the run early (a stop signal): final checkpoint and summary, then `done`.
    pub stop: actix::Recipient<Shutdown>,
}

/// What a server (or rendezvous) serves: the model's layout hash and initial parameters, the
/// evaluator of its test set on a thread of its own, and the summary fields that name them.
pub(super) struct ServedModel {
    /// The layout hash every worker must match.
    pub layout_hash: u64,
    /// The initial parameters (flat layout).
    pub params: Vec<f32>,
    /// The evaluator.
    pub evaluator: Addr<EvalActor>,
    /// What the summary says of the model.
    pub facts: ModelFacts,
}

/// Builds the model `config` names for `split` on `device`, and starts its evaluator, which
/// takes the test set and the batch-norm calibration batches; the rest of `split` is dropped
/// here, so a server holds no training data while it runs. Every evaluated model is written to
/// `dir/model.safetensors`.
pub(super) fn served_model(
    config: &Config,
    split: Split,
    device: &Device,
    dir: &RunDir,
) -> Result<ServedModel> {
    crate::compute::keep_freed_tensor_buffers();
    let seed = config.run.seed;
    let net = Network::with_kernels(
        config.model.name,
        InputSpec::of(&split.train),
        device,
        seed,
        config.compute.cpu_kernels,
    )?;
    let layout_hash = net.layout().hash();
    let params = net.layout().flatten()?;
    let params_len = params.len();
    let calibration = bn_batches(
        &split.train,
        config.model.bn_batches,
        config.train.batch_size,
        seed,
    )?;
    let evaluator = EvalActor::new(
        Engine::new(net),
        split.test,
        calibration,
        config.train.eval_batch_size,
    )
    .writing_model_to(dir.clone());
    let evaluator = SyncArbiter::start(1, move || evaluator.clone());
    let facts = ModelFacts {
        batch_size: config.train.batch_size,
        dataset: config.data.name.as_str().into(),
        model: config.model.name.as_str().into(),
        params: params_len,
    };
    Ok(ServedModel {
        layout_hash,
        params,
        evaluator,
        facts,
    })
}
