//! The roles: `server`, `worker`, and `local` (a server and K in-process workers on loopback
//! QUIC, with ephemeral certificates made in memory).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, SyncArbiter};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use serde_json::json;
use tokio::sync::oneshot;

use super::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use super::compute_actor::ComputeActor;
use super::decen_worker::{run_decen_worker, DecenWorkerSpec};
use super::eval_actor::EvalActor;
use super::rendezvous::{DecenCheckpoint, RendezvousActor, RendezvousSetup, DECEN_CHECKPOINT_FILE};
use super::rendezvous_net::rendezvous_accept_loop;
use super::server_actor::{Checkpointing, Resumed, ServerActor, ServerRunInfo};
use super::server_net::{accept_loop, PeerRequirements};
use super::worker::{run_worker, WorkerExit, WorkerSpec};
use crate::algo;
use crate::compute::{describe, Engine};
use crate::config::{Config, ConfigError};
use crate::data::{self, Dataset, Sampler, Split};
use crate::decen::RendezvousCore;
use crate::heterogeneity::SlowdownMechanism;
use crate::model::{InputSpec, Network};
use crate::net::{load_identity, server_endpoint, write_cluster, NodeIdentity, TransportSettings};
use crate::run::{RunDir, Summary};
use crate::server::{ServerCore, ServerCoreConfig};
use crate::supervisor::SupervisionEnd;
use crate::train::bn_batches;

/// Seed stream of the workers' augmentation draws.
const AUGMENT_STREAM: u64 = 0x5752_4b41;

fn input_of(d: &Dataset) -> InputSpec {
    InputSpec {
        channels: d.channels,
        height: d.height,
        width: d.width,
        classes: d.classes,
    }
}

fn transport(config: &Config, params_len: usize) -> TransportSettings {
    let mut t = TransportSettings::for_params(params_len);
    t.keep_alive = Duration::from_secs_f64(config.net.keep_alive_s);
    t.idle_timeout = Duration::from_secs_f64(config.net.idle_timeout_s);
    t
}

/// A new incarnation: milliseconds since the epoch, so a restarted worker always has a larger
/// one than before.
fn fresh_incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

fn resolve(addr: &str, key: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("{key} = `{addr}` is not a HOST:PORT address"))?
        .next()
        .ok_or_else(|| anyhow!("{key} = `{addr}` resolves to no address"))
}

/// A started server actor, before any transport: what peers must match, its end-of-run signal,
/// and its address for `Register`/`Deliver`/`Disconnected`.
pub struct StartedServer {
    /// What every peer must match.
    pub requirements: PeerRequirements,
    /// Receives the summary when the run ends.
    pub done: oneshot::Receiver<Summary>,
    /// The server actor.
    pub actor: Addr<ServerActor>,
}

/// Starts the server actor for `config` (its evaluator, checkpointing into `dir`, resuming when
/// `[server] resume` is set) with no transport attached. Call inside an actix `System`.
pub fn start_server(
    config: &Config,
    split: &Split,
    device: &Device,
    dir: &RunDir,
) -> Result<StartedServer> {
    crate::compute::keep_freed_tensor_buffers();
    let k = config.cluster.workers;
    let seed = config.run.seed;
    let net = Network::with_kernels(
        config.model.name,
        input_of(&split.train),
        device,
        seed,
        config.compute.cpu_kernels,
    )?;
    let layout_hash = net.layout().hash();
    let w0 = net.layout().flatten()?;
    let params_len = w0.len();
    let scheduler = config.algorithm.scheduler();
    let mut core = ServerCore::new(
        ServerCoreConfig {
            workers: k,
            scheduler,
            max_updates: Some(config.server.updates),
            lr: config.algorithm.lr_schedule(),
        },
        algo::build::<f32>(&config.algorithm, k, w0).map_err(|e| anyhow!("{e}"))?,
    );
    let mut resumed = Resumed::default();
    let resume = config.server.resume
        || (config.server.auto_resume && dir.path().join(CHECKPOINT_FILE).is_file());
    let mut metrics = if resume {
        let cp = Checkpoint::load(dir.path(), layout_hash, config.algorithm.name.as_str())?;
        core.restore(&cp.core)
            .map_err(|e| anyhow!("cannot restore the checkpoint: {e}"))?;
        resumed = Resumed {
            received: cp.received,
            wall_s: cp.wall_s,
        };
        tracing::info!("resuming from the checkpoint at update {}", cp.core.t);
        dir.metrics_append()?
    } else {
        dir.metrics()?
    };
    if resume {
        metrics.write(&json!({
            "event": "resume", "t_s": resumed.wall_s, "updates": core.updates(),
        }))?;
    }
    let calibration = bn_batches(
        &split.train,
        config.model.bn_batches,
        config.train.batch_size,
        seed,
    );
    let evaluator = EvalActor::new(
        Engine::new(net),
        split.test.clone(),
        calibration,
        config.train.eval_batch_size,
    );
    let evaluator = SyncArbiter::start(1, move || evaluator.clone());
    let mut extra = BTreeMap::new();
    extra.insert("model".into(), json!(config.model.name.as_str()));
    extra.insert("params".into(), json!(params_len));
    extra.insert("dataset".into(), json!(config.data.name));
    extra.insert("batch_size".into(), json!(config.train.batch_size));
    let info = ServerRunInfo {
        algorithm: config.algorithm.name.as_str().into(),
        scheduler: scheduler.as_str().into(),
        speeds: config.heterogeneity.speeds(k, seed),
        seed,
        extra,
        policy: config.server_policy(k),
    };
    let (tx, done) = oneshot::channel();
    let checkpointing = Checkpointing {
        dir: RunDir::create(dir.path())?,
        layout_hash,
    };
    let actor = ServerActor::new(
        core,
        metrics,
        evaluator,
        info,
        Some(checkpointing),
        resumed,
        tx,
    )
    .start();
    Ok(StartedServer {
        requirements: PeerRequirements {
            workers: k,
            layout_hash,
            params_len,
            hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
            heartbeat_timeout: Duration::from_secs_f64(config.net.heartbeat_timeout_s),
        },
        done,
        actor,
    })
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
}

/// Starts the server actor for `config` on `bind` with `identity`, checkpointing into `dir`.
/// Call inside an actix `System`.
pub fn start_server_node(
    config: &Config,
    split: &Split,
    device: &Device,
    dir: &RunDir,
    identity: &NodeIdentity,
    bind: SocketAddr,
) -> Result<ServerNode> {
    if config.algorithm.name.is_decentralized() {
        return start_rendezvous_node(config, split, device, dir, identity, bind);
    }
    let server = start_server(config, split, device, dir)?;
    let req = server.requirements;
    let endpoint = server_endpoint(bind, identity, &transport(config, req.params_len))?;
    let addr = endpoint.local_addr()?;
    actix::spawn(accept_loop(endpoint.clone(), server.actor, req));
    Ok(ServerNode {
        addr,
        requirements: req,
        done: server.done,
        endpoint,
    })
}

/// Starts the rendezvous of a decentralized run on `bind` (see `rendezvous.rs`): membership,
/// exact averages, evaluation of the reported mean model, checkpoints (`--resume` continues from
/// the last one). Call inside an actix `System`.
fn start_rendezvous_node(
    config: &Config,
    split: &Split,
    device: &Device,
    dir: &RunDir,
    identity: &NodeIdentity,
    bind: SocketAddr,
) -> Result<ServerNode> {
    crate::compute::keep_freed_tensor_buffers();
    let k = config.cluster.workers;
    let seed = config.run.seed;
    let net = Network::with_kernels(
        config.model.name,
        input_of(&split.train),
        device,
        seed,
        config.compute.cpu_kernels,
    )?;
    let layout_hash = net.layout().hash();
    let mut params = net.layout().flatten()?;
    let params_len = params.len();
    let name = config.algorithm.name.as_str();
    let resume = config.server.resume
        || (config.server.auto_resume && dir.path().join(DECEN_CHECKPOINT_FILE).is_file());
    let (mut iteration, mut wall_s) = (0, 0.0);
    let mut metrics = if resume {
        let cp = DecenCheckpoint::load(dir.path(), layout_hash, name)?;
        tracing::info!("resuming from the checkpoint at iteration {}", cp.iteration);
        (params, iteration, wall_s) = (cp.params, cp.iteration, cp.wall_s);
        dir.metrics_append()?
    } else {
        dir.metrics()?
    };
    metrics.write(&json!({
        "event": if resume { "resume" } else { "start" }, "t_s": wall_s, "updates": iteration,
        "kind": "server", "algorithm": name, "workers": k,
    }))?;
    let calibration = bn_batches(
        &split.train,
        config.model.bn_batches,
        config.train.batch_size,
        seed,
    );
    let evaluator = EvalActor::new(
        Engine::new(net),
        split.test.clone(),
        calibration,
        config.train.eval_batch_size,
    );
    let evaluator = SyncArbiter::start(1, move || evaluator.clone());
    let mut extra = BTreeMap::new();
    extra.insert("model".into(), json!(config.model.name.as_str()));
    extra.insert("params".into(), json!(params_len));
    extra.insert("dataset".into(), json!(config.data.name));
    extra.insert("batch_size".into(), json!(config.train.batch_size));
    let setup = RendezvousSetup {
        iterations: config.server.updates,
        algorithm: name.into(),
        speeds: config.heterogeneity.speeds(k, seed),
        seed,
        extra,
        checkpoint: Some((RunDir::create(dir.path())?, layout_hash)),
        resumed_wall_s: wall_s,
        policy: config.server_policy(k),
    };
    let (tx, done) = oneshot::channel();
    let core = RendezvousCore::new(k, params, iteration);
    let actor = RendezvousActor::new(core, setup, metrics, evaluator, tx).start();
    let requirements = PeerRequirements {
        workers: k,
        layout_hash,
        params_len,
        hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
        heartbeat_timeout: Duration::from_secs_f64(config.net.heartbeat_timeout_s),
    };
    // Parameters and buffers together are the largest frame.
    let endpoint = server_endpoint(bind, identity, &transport(config, 2 * params_len))?;
    let addr = endpoint.local_addr()?;
    actix::spawn(rendezvous_accept_loop(
        endpoint.clone(),
        actor,
        requirements,
    ));
    Ok(ServerNode {
        addr,
        requirements,
        done,
        endpoint,
    })
}

fn start_compute(
    config: &Config,
    train: &Dataset,
    worker: usize,
    device: &Device,
    slowdown: f64,
) -> Result<(Addr<ComputeActor>, u64, usize)> {
    let seed = config.run.seed;
    let net = Network::with_kernels(
        config.model.name,
        input_of(train),
        device,
        seed,
        config.compute.cpu_kernels,
    )?;
    let (hash, len) = (net.layout().hash(), net.layout().len());
    let sampler = Sampler::new(
        train.len(),
        worker,
        config.cluster.workers,
        config.data.sharding,
        seed,
    );
    let augment = (config.data.augment && train.augmentable)
        .then(|| seed ^ AUGMENT_STREAM ^ (worker as u64).wrapping_mul(0x9e37_79b9));
    let actor = ComputeActor::new(
        Engine::new(net),
        train.clone(),
        sampler,
        augment,
        config.train.batch_size,
        slowdown,
    );
    Ok((SyncArbiter::start(1, move || actor.clone()), hash, len))
}

/// A worker's compute thread and its spec for joining the server at `server`; `speed` is its
/// relative speed (1 = nominal; 0.25 = four times slower).
fn start_worker(
    config: &Config,
    train: &Dataset,
    worker: usize,
    device: &Device,
    speed: f64,
    server: SocketAddr,
    identity: NodeIdentity,
) -> Result<(Addr<ComputeActor>, WorkerSpec)> {
    let (compute, layout_hash, params_len) =
        start_compute(config, train, worker, device, 1.0 / speed)?;
    let spec = WorkerSpec {
        worker: worker as u32,
        incarnation: fresh_incarnation(),
        server,
        identity,
        layout_hash,
        params_len,
        device: describe(device),
        transport: transport(config, params_len),
        hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
        reconnect_max: Duration::from_secs_f64(config.net.reconnect_max_s),
        heartbeat: Duration::from_secs_f64(config.net.heartbeat_s),
    };
    Ok((compute, spec))
}

/// A decentralized worker's compute thread and spec (see [`start_worker`]).
fn decen_worker_spec(
    config: &Config,
    train: &Dataset,
    worker: usize,
    device: &Device,
    speed: f64,
    server: SocketAddr,
    identity: NodeIdentity,
) -> Result<(Addr<ComputeActor>, DecenWorkerSpec)> {
    let (compute, layout_hash, params_len) =
        start_compute(config, train, worker, device, 1.0 / speed)?;
    let n = config.cluster.workers;
    let speeds = config.heterogeneity.speeds(n, config.run.seed);
    let spec = DecenWorkerSpec {
        worker,
        workers: n,
        incarnation: fresh_incarnation(),
        server,
        peer_listen: resolve(&config.net.peer_listen, "net.peer_listen")?,
        identity,
        layout_hash,
        params_len,
        device: describe(device),
        transport: transport(config, 2 * params_len),
        hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
        heartbeat: Duration::from_secs_f64(config.net.heartbeat_s),
        peer_wait: Duration::from_secs_f64(config.net.peer_wait_s),
        algorithm: config.algorithm.clone(),
        nesterov: config.train.nesterov,
        slow_nodes: (0..n).filter(|&i| speeds[i] < 1.0).collect(),
        iterations: config.server.updates,
        eval_every: config.server.eval_every,
    };
    Ok((compute, spec))
}

/// Loads the configured data set.
pub fn load_split(config: &Config) -> Result<Split> {
    Ok(data::load(
        config.data.name,
        config.data.dir.as_deref(),
        config.run.seed,
    )?)
}

fn identity_from_config(config: &Config) -> Result<NodeIdentity> {
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

/// `--role local`: a server in this process and a supervisor that runs `cluster.workers` worker
/// processes of this binary against it over loopback QUIC, with certificates made for this run
/// (in `RUN_DIR/certs`). Heterogeneity, restarts and `[chaos]` work as on a cluster.
pub fn run_local(config: &Config, dir: &RunDir) -> Result<Summary> {
    let config = config.clone();
    let dir = RunDir::create(dir.path())?;
    let certs = dir.path().join("certs");
    if certs.exists() {
        std::fs::remove_dir_all(&certs).with_context(|| {
            format!("cannot replace the old certificates in {}", certs.display())
        })?;
    }
    write_cluster(&certs, LOCAL_SERVER, &[LOCAL_WORKERS.to_string()])?;
    actix::System::new().block_on(async move {
        let device = config.compute.device.open()?;
        let split = load_split(&config)?;
        let server_id = load_identity(&certs, LOCAL_SERVER)?;
        let server = start_server_node(
            &config,
            &split,
            &device,
            &dir,
            &server_id,
            ([127, 0, 0, 1], 0).into(),
        )?;
        let addr = server.addr;
        tracing::info!("server listening on {addr} (loopback); starting the supervisor");

        let workers_config = local_workers_config(&config, addr, &certs);
        let sup_dir = RunDir::create(&dir.path().join("supervisor"))?;
        let effective =
            toml::to_string(&workers_config).context("cannot encode the configuration as TOML")?;
        sup_dir.write_atomically("config.toml", effective.as_bytes())?;
        let config_file = sup_dir.path().join("config.toml");
        let mut metrics = sup_dir.metrics()?;
        let mut supervisor = actix::spawn(async move {
            crate::supervisor::supervise(&workers_config, config_file, &mut metrics).await
        });
        let mut done = server.done;
        let mut supervisor_result = None;
        let summary = loop {
            tokio::select! {
                summary = &mut done => {
                    break summary.map_err(|_| anyhow!("the server stopped without a summary"))?;
                }
                ended = &mut supervisor, if supervisor_result.is_none() => {
                    let why = match &ended {
                        // Every worker was told to stop: the server is finishing its run.
                        Ok(Ok(SupervisionEnd::Finished)) => {
                            supervisor_result = Some(ended);
                            continue;
                        }
                        Ok(Ok(SupervisionEnd::Signalled(signal))) => {
                            format!("{signal} stopped the workers")
                        }
                        Ok(Err(e)) => format!("{e:#}"),
                        Err(e) => format!("the supervisor failed: {e}"),
                    };
                    server.endpoint.close(0u32.into(), b"interrupted");
                    bail!(
                        "the run ended before its last update: {why}; the last checkpoint is in \
                         {} (continue with --resume)",
                        dir.path().display()
                    );
                }
            }
        };
        let ended = match supervisor_result {
            Some(ended) => Ok(ended),
            None => tokio::time::timeout(Duration::from_secs(60), supervisor).await,
        };
        match ended {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("supervisor: {e:#}"),
            Ok(Err(e)) => tracing::warn!("the supervisor failed: {e}"),
            Err(_) => tracing::warn!("the workers did not stop within 60 s"),
        }
        server.endpoint.close(0u32.into(), b"done");
        Ok(summary)
    })
}

/// Certificate names of `--role local`'s server and of its workers.
const LOCAL_SERVER: &str = "local-server";
const LOCAL_WORKERS: &str = "local-workers";

/// The configuration `--role local`'s worker processes run with: the server's loopback address,
/// the run's certificates, all slots unless `[supervisor]` lists workers, and a share of this
/// machine's cores each unless `compute.threads` is set.
fn local_workers_config(config: &Config, addr: SocketAddr, certs: &std::path::Path) -> Config {
    let mut c = config.clone();
    c.net.server = addr.to_string();
    c.net.certs = Some(certs.to_path_buf());
    c.net.node = LOCAL_WORKERS.to_string();
    if c.supervisor.workers.is_empty() {
        c.supervisor.count = 0;
        c.supervisor.first_worker = 0;
    }
    if c.compute.threads == 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        c.compute.threads = (cores / c.cluster.workers.max(1)).max(1);
    }
    c
}

/// `--role server`: the parameter server on `net.listen`, for workers of other processes.
pub fn run_server(config: &Config, dir: &RunDir) -> Result<Summary> {
    let config = config.clone();
    let dir = RunDir::create(dir.path())?;
    actix::System::new().block_on(async move {
        let identity = identity_from_config(&config)?;
        let device = config.compute.device.open()?;
        let split = load_split(&config)?;
        let listen = resolve(&config.net.listen, "net.listen")?;
        let server = start_server_node(&config, &split, &device, &dir, &identity, listen)?;
        tracing::info!(
            "server listening on {} for {} workers",
            server.addr,
            server.requirements.workers
        );
        let summary = server
            .done
            .await
            .map_err(|_| anyhow!("the server stopped without a summary"))?;
        // Give the Stop messages a moment to reach the workers before the endpoint goes away.
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.endpoint.close(0u32.into(), b"done");
        Ok(summary)
    })
}

/// `--role worker`: one worker (slot `net.worker`) of the server at `net.server`.
pub fn run_worker_role(config: &Config) -> Result<WorkerExit> {
    let config = config.clone();
    actix::System::new().block_on(async move {
        let identity = identity_from_config(&config)?;
        let device = config.compute.device.open()?;
        let split = load_split(&config)?;
        let worker = config.net.worker;
        // Under `cpu-quota` the supervisor's cgroup slows this process; no delay on top.
        let speed = match config.heterogeneity.mechanism {
            SlowdownMechanism::Delay => config
                .heterogeneity
                .speeds(config.cluster.workers, config.run.seed)
                .get(worker)
                .copied()
                .unwrap_or(1.0),
            SlowdownMechanism::CpuQuota => 1.0,
        };
        let server = resolve(&config.net.server, "net.server")?;
        if config.algorithm.name.is_decentralized() {
            let (compute, spec) = decen_worker_spec(
                &config,
                &split.train,
                worker,
                &device,
                speed,
                server,
                identity,
            )?;
            return run_decen_worker(spec, compute).await;
        }
        let (compute, spec) = start_worker(
            &config,
            &split.train,
            worker,
            &device,
            speed,
            server,
            identity,
        )?;
        run_worker(spec, compute).await
    })
}
