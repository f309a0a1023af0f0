//! `--role worker`: one worker of either family, its compute thread and its spec.

use std::net::SocketAddr;
use std::time::Duration;

use actix::Addr;
use anyhow::Result;
use candle_core::Device;

use crate::compute::describe;
use crate::config::Config;
use crate::decen::rendezvous_message_len;
use crate::heterogeneity::SlowdownMechanism;
use crate::net::NodeIdentity;
use crate::node::compute::ComputeActor;
use crate::node::worker::{run_decen_worker, run_worker, DecenWorkerSpec, WorkerExit, WorkerSpec};

use super::setup::{identity_from_config, resolve, start_compute, transport, WorkerShard};

/// A worker's compute thread and its spec for joining the server at `server`; `speed` is its
/// relative speed (1 = nominal; 0.25 = four times slower).
pub(super) fn start_worker(
    config: &Config,
    shard: WorkerShard,
    worker: usize,
    device: &Device,
    speed: f64,
    server: SocketAddr,
    identity: NodeIdentity,
) -> Result<(Addr<ComputeActor>, WorkerSpec)> {
    let (compute, layout_hash, params_len) =
        start_compute(config, shard, worker, device, 1.0 / speed)?;
    let spec = WorkerSpec {
        worker: worker as u32,
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
pub(super) fn decen_worker_spec(
    config: &Config,
    shard: WorkerShard,
    worker: usize,
    device: &Device,
    speed: f64,
    server: SocketAddr,
    identity: NodeIdentity,
) -> Result<(Addr<ComputeActor>, DecenWorkerSpec)> {
    let (compute, layout_hash, params_len) =
        start_compute(config, shard, worker, device, 1.0 / speed)?;
    let n = config.cluster.workers;
    let speeds = config.heterogeneity.speeds(n, config.run.seed);
    let spec = DecenWorkerSpec {
        worker,
        workers: n,
        server,
        peer_listen: resolve(&config.net.peer_listen, "net.peer_listen")?,
        identity,
        layout_hash,
        params_len,
        device: describe(device),
        transport: transport(
            config,
            rendezvous_message_len(&config.algorithm, params_len),
        ),
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

/// `--role worker`: one worker (slot `net.worker`) of the server at `net.server`.
pub fn run_worker_role(config: &Config) -> Result<WorkerExit> {
    let config = config.clone();
    actix::System::new().block_on(async move {
        let identity = identity_from_config(&config)?;
        let device = config.compute.device.open()?;
        let worker = config.net.worker;
        // Only this worker's shard is read into memory; the server evaluates, so no test set.
        let shard = WorkerShard::load(&config, worker)?;
        if let Some(m) = crate::compute::resident_memory() {
            tracing::info!(
                "worker {worker}: shard loaded, resident memory {:.1} MiB (peak {:.1})",
                m.current as f64 / 1048576.0,
                m.peak as f64 / 1048576.0
            );
        }
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
            let (compute, spec) =
                decen_worker_spec(&config, shard, worker, &device, speed, server, identity)?;
            return run_decen_worker(spec, compute).await;
        }
        let (compute, spec) =
            start_worker(&config, shard, worker, &device, speed, server, identity)?;
        run_worker(spec, compute).await
    })
}
