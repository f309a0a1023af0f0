//! Server capacity: how many updates per second the parameter server absorbs for a ResNet-20-sized
//! vector (≈ 0.27 M values) from 8 workers that answer every `Params` at once with a precomputed
//! gradient, over loopback QUIC with mutual TLS — the whole server path (framing, decoding,
//! checks, the algorithm, re-encoding parameters) without any training. For ASGD and OrMo.
//!
//! `cargo bench --bench server_capacity` (target: ≥ 2 000 updates/s on the 2-core machine).

use std::time::{Duration, Instant};

use candle_core::Device;
use lagom::algo::AlgorithmName;
use lagom::cluster::{load_split, start_server_node};
use lagom::config::Config;
use lagom::data::DatasetName;
use lagom::model::ModelName;
use lagom::net::{client_endpoint, connect, recv, send, ClusterCa, TransportSettings};
use lagom::proto::{frame_limit, Message, Role};
use lagom::run::RunDir;

const WORKERS: usize = 8;
const UPDATES: u64 = 6000;

async fn fast_worker(
    identity: lagom::net::NodeIdentity,
    addr: std::net::SocketAddr,
    worker: u32,
    layout_hash: u64,
    params_len: usize,
) -> anyhow::Result<u64> {
    let endpoint = client_endpoint(&identity, &TransportSettings::for_params(params_len))?;
    let conn = connect(&endpoint, addr).await?;
    send(
        &conn,
        &Message::Hello {
            role: Role::Worker,
            worker,
            incarnation: 1,
            layout_hash,
            params_len: params_len as u64,
            device: "bench".into(),
        },
    )
    .await?;
    let grad: Vec<f32> = (0..params_len)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-9)
        .collect();
    let mut seq = 0;
    loop {
        match recv(&conn, frame_limit(params_len)).await? {
            Some(Message::Params { index, .. }) => {
                seq += 1;
                send(
                    &conn,
                    &Message::Gradient {
                        worker,
                        incarnation: 1,
                        seq,
                        ite: index,
                        loss: 1.0,
                        samples: 128,
                        grad: grad.clone(),
                    },
                )
                .await?;
            }
            Some(Message::Stop { .. }) | None => return Ok(seq),
            Some(_) => {}
        }
    }
}

fn measure(algorithm: AlgorithmName) -> anyhow::Result<(f64, usize)> {
    let mut config = Config::default();
    config.algorithm.name = algorithm;
    config.algorithm.lr = 0.01;
    config.cluster.workers = WORKERS;
    config.data.name = DatasetName::Synthetic;
    config.model.name = ModelName::Resnet20;
    config.model.bn_batches = 1;
    config.server.updates = UPDATES;
    config.server.eval_every = 0;
    config.server.checkpoint_every = 0;
    config.server.checkpoint_every_s = 0.0;
    let dir = tempfile::tempdir()?;
    let run = RunDir::create(dir.path())?;
    actix::System::new().block_on(async move {
        let split = load_split(&config)?;
        let ca = ClusterCa::generate("bench")?;
        let server_id = ca.issue("bench-server", Role::Server)?.0;
        let node = start_server_node(
            &config,
            &split,
            &Device::Cpu,
            &run,
            &server_id,
            ([127, 0, 0, 1], 0).into(),
        )?;
        let req = node.requirements;
        // The workers run on a thread of their own (as they would in other processes), so the
        // server's thread does only the server's work.
        let clients = actix::Arbiter::new();
        let started = Instant::now();
        let mut results = Vec::new();
        for w in 0..WORKERS {
            let id = ca.issue(&format!("bench-{w}"), Role::Worker)?.0;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr, hash, len) = (node.addr, req.layout_hash, req.params_len);
            clients.spawn(async move {
                let _ = tx.send(fast_worker(id, addr, w as u32, hash, len).await);
            });
            results.push(rx);
        }
        let mut sent = 0;
        for r in results {
            sent += r.await??;
        }
        clients.stop();
        let elapsed = started.elapsed().as_secs_f64();
        let _ = tokio::time::timeout(Duration::from_secs(120), node.done).await;
        node.endpoint.close(0u32.into(), b"done");
        anyhow::ensure!(sent >= UPDATES, "only {sent} gradients were sent");
        Ok((UPDATES as f64 / elapsed, req.params_len))
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    for algorithm in [AlgorithmName::Asgd, AlgorithmName::Ormo] {
        let (rate, len) = measure(algorithm)?;
        println!(
            "server capacity, {}: {rate:.0} updates/s ({WORKERS} workers, {len} parameters, {UPDATES} updates)",
            algorithm.as_str()
        );
    }
    Ok(())
}
