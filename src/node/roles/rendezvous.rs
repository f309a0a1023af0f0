//! The server role of a decentralized run: the rendezvous on `net.listen`.

use std::net::SocketAddr;
use std::time::Duration;

use actix::Actor;
use anyhow::Result;
use candle_core::Device;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::data::Split;
use crate::decen::{rendezvous_message_len, shared_state_len, RendezvousCore};
use crate::net::{server_endpoint, NodeIdentity};
use crate::node::hello::PeerRequirements;
use crate::node::rendezvous::{
    rendezvous_accept_loop, DecenCheckpoint, RendezvousActor, RendezvousSetup,
    DECEN_CHECKPOINT_FILE,
};
use crate::run::event::{RendezvousStart, Resume, Start};
use crate::run::{RunDir, RunEvent};

use super::setup::{served_model, transport, ServedModel, ServerNode};

/// Starts the rendezvous of a decentralized run on `bind` (see `rendezvous.rs`): membership,
/// exact averages, evaluation of the reported mean model, checkpoints (`--resume` continues from
/// the last one). Call inside an actix `System`.
pub(super) fn start_rendezvous_node(
    config: &Config,
    split: Split,
    device: &Device,
    dir: &RunDir,
    identity: &NodeIdentity,
    bind: SocketAddr,
) -> Result<ServerNode> {
    let k = config.cluster.workers;
    let seed = config.run.seed;
    let ServedModel {
        layout_hash,
        mut params,
        evaluator,
        facts,
    } = served_model(config, split, device, dir)?;
    let params_len = params.len();
    let name = config.algorithm.name.as_str();
    let resume = config.server.resume
        || (config.server.auto_resume && dir.path().join(DECEN_CHECKPOINT_FILE).is_file());
    let (mut iteration, mut wall_s) = (0, 0.0);
    let mut metrics = if resume {
        let cp = DecenCheckpoint::load(dir.path(), layout_hash, params_len, name)?;
        tracing::info!("resuming from the checkpoint at iteration {}", cp.iteration);
        (params, iteration, wall_s) = (cp.params, cp.iteration, cp.wall_s);
        dir.metrics_append()?
    } else {
        dir.metrics()?
    };
    let opened = RendezvousStart {
        t_s: wall_s,
        updates: iteration,
        kind: "server".into(),
        algorithm: name.into(),
        workers: k,
    };
    metrics.write(&if resume {
        RunEvent::Resume(Resume::Rendezvous(opened))
    } else {
        RunEvent::Start(Start::Rendezvous(opened))
    })?;
    let setup = RendezvousSetup {
        iterations: config.server.updates,
        algorithm: name.into(),
        speeds: config.heterogeneity.speeds(k, seed),
        seed,
        facts,
        checkpoint: Some((RunDir::create(dir.path())?, layout_hash)),
        resumed_wall_s: wall_s,
        policy: config.server_policy(k),
        round_timeout: Duration::from_secs_f64(config.net.round_timeout_s),
        wire_dtype: config.net.wire_dtype,
    };
    let (tx, done) = oneshot::channel();
    let core = RendezvousCore::new(k, params, iteration)
        .with_shared_state(shared_state_len(&config.algorithm, params_len));
    let message_len = rendezvous_message_len(&config.algorithm, params_len);
    let actor = RendezvousActor::new(core, setup, metrics, evaluator, tx).start();
    let requirements = PeerRequirements {
        workers: k,
        layout_hash,
        params_len,
        message_len,
        hello_timeout: Duration::from_secs_f64(config.net.hello_timeout_s),
        heartbeat_timeout: Duration::from_secs_f64(config.net.heartbeat_timeout_s),
        wire_dtype: config.net.wire_dtype,
    };
    let endpoint = server_endpoint(bind, identity, &transport(config, message_len))?;
    let addr = endpoint.local_addr()?;
    let stop = actor.clone().recipient();
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
        stop,
    })
}
