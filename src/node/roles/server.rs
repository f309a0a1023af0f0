//! `--role server` for the parameter-server family, and the server actor without a transport
//! (what the capacity benchmark drives).

use std::net::SocketAddr;
use std::time::Duration;

use actix::{Actor, Addr};
use anyhow::{anyhow, Result};
use candle_core::Device;
use tokio::sync::oneshot;

use crate::algo;
use crate::config::Config;
use crate::data::Split;
use crate::memory_return::start_returning_freed_memory;
use crate::net::{server_endpoint, NodeIdentity};
use crate::node::hello::PeerRequirements;
use crate::node::server::{
    accept_loop, Checkpoint, Checkpointing, Resumed, ServerActor, ServerRunInfo, CHECKPOINT_FILE,
};
use crate::node::shutdown::{Shutdown, StopSignals};
use crate::run::event::{Resume, ServerResume};
use crate::run::{RunDir, RunEvent, Summary};
use crate::server::{ServerCore, ServerCoreConfig};

use super::rendezvous::start_rendezvous_node;
use super::setup::{
    identity_from_config, load_split, resolve, served_model, transport, ServedModel, ServerNode,
};

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

/// Starts the server actor for `config` (its evaluator, which keeps `split`'s test set,
/// checkpointing into `dir`, resuming when `[server] resume` is set) with no transport attached.
/// Call inside an actix `System`.
pub fn start_server(
    config: &Config,
    split: Split,
    device: &Device,
    dir: &RunDir,
) -> Result<StartedServer> {
    let k = config.cluster.workers;
    let seed = config.run.seed;
    let ServedModel {
        layout_hash,
        params: w0,
        evaluator,
        facts,
    } = served_model(config, split, device, dir)?;
    let params_len = w0.len();
    let scheduler = config.algorithm.scheduler();
    // The parameters each worker gets are encoded for the wire as the algorithm hands them over
    // (a half precision straight from the master copy, without copying it first).
    let wire_dtype = config.net.wire_dtype;
    let mut core = ServerCore::with_params_form(
        ServerCoreConfig {
            workers: k,
            scheduler,
            max_updates: Some(config.server.updates),
            lr: config.algorithm.lr_schedule(),
        },
        algo::build::<f32>(&config.algorithm, k, w0).map_err(|e| anyhow!("{e}"))?,
        Box::new(move |values| wire_dtype.wire_tensor(values)),
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
        metrics.write(&RunEvent::Resume(Resume::Server(ServerResume {
            t_s: resumed.wall_s,
            updates: core.updates(),
        })))?;
    }
    let info = ServerRunInfo {
        algorithm: config.algorithm.name.as_str().into(),
        scheduler: scheduler.as_str().into(),
        speeds: config.heterogeneity.speeds(k, seed),
        seed,
        facts,
        policy: config.server_policy(k),
        round_timeout: Duration::from_secs_f64(config.net.round_timeout_s),
    };
    let (tx, done) = oneshot::channel();
    let checkpointing = Checkpointing {
        dir: RunDir::create(dir.path())?,
        layout_hash,
        writer: None,
        recorded: None,
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
            message_len: params_len,
            hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
            heartbeat_timeout: Duration::from_secs_f64(config.net.heartbeat_timeout_s),
            wire_dtype: config.net.wire_dtype,
        },
        done,
        actor,
    })
}

/// Starts the server actor (or the rendezvous) for `config` on `bind` with `identity`,
/// checkpointing into `dir`; `split` goes to its evaluator. Call inside an actix `System`.
pub fn start_server_node(
    config: &Config,
    split: Split,
    device: &Device,
    dir: &RunDir,
    identity: &NodeIdentity,
    bind: SocketAddr,
) -> Result<ServerNode> {
    // A server serves for hours: its resident size should follow what it holds, not the peak of
    // a moment it was starved of CPU.
    start_returning_freed_memory();
    if config.algorithm.name.is_decentralized() {
        return start_rendezvous_node(config, split, device, dir, identity, bind);
    }
    let server = start_server(config, split, device, dir)?;
    let req = server.requirements;
    let endpoint = server_endpoint(bind, identity, &transport(config, req.params_len))?;
    let addr = endpoint.local_addr()?;
    let stop = server.actor.clone().recipient();
    actix::spawn(accept_loop(endpoint.clone(), server.actor, req));
    Ok(ServerNode {
        addr,
        requirements: req,
        done: server.done,
        endpoint,
        stop,
    })
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
        let server = start_server_node(&config, split, &device, &dir, &identity, listen)?;
        tracing::info!(
            "server listening on {} for {} workers",
            server.addr,
            server.requirements.workers
        );
        let mut signals = StopSignals::watch()?;
        let mut done = server.done;
        let summary = loop {
            tokio::select! {
                summary = &mut done => {
                    break summary.map_err(|_| anyhow!("the server stopped without a summary"))?;
                }
                signal = signals.next() => server.stop.do_send(Shutdown { signal: signal.into() }),
            }
        };
        // Give the Stop messages a moment to reach the workers before the endpoint goes away.
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.endpoint.close(0u32.into(), b"done");
        Ok(summary)
    })
}
