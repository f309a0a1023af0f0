//! `--role local`: the whole cluster on one machine.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::Config;
use crate::net::{load_identity, write_cluster, SlotGrant};
use crate::node::shutdown::Shutdown;
use crate::run::{RunDir, Summary};
use crate::supervisor::SupervisionEnd;

use super::server::start_server_node;
use super::setup::load_split;

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
    let every_slot = SlotGrant::Slots((0..config.cluster.workers).collect());
    write_cluster(
        &certs,
        LOCAL_SERVER,
        &[(LOCAL_WORKERS.to_string(), every_slot)],
        LOCAL_CERT_VALIDITY,
    )?;
    actix::System::new().block_on(async move {
        let device = config.compute.device.open()?;
        let split = load_split(&config)?;
        let server_id = load_identity(&certs, LOCAL_SERVER)?;
        let server = start_server_node(
            &config,
            split,
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
            crate::supervisor::supervise(
                &workers_config.supervision_setup(),
                config_file,
                &mut metrics,
            )
            .await
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
                        // The workers are stopped; the server ends its run as on a signal of its own.
                        Ok(Ok(SupervisionEnd::Signalled(signal))) => {
                            server.stop.do_send(Shutdown { signal: signal.clone() });
                            supervisor_result = Some(ended);
                            continue;
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
/// The local run's certificates are made afresh for every run; a week outlasts any run.
const LOCAL_CERT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

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
