//! Exact averages per second through the rendezvous: the decentralized family's all-reduce (what
//! AR-SGD does every iteration), 8 workers, a ResNet-20-sized vector (272 186 values), loopback
//! QUIC with mutual TLS. Each worker sends its part (`Reduce`), waits for the average
//! (`Reduced`) and says it completed the iteration (`Progress`); no model is computed. The
//! rendezvous runs on one thread, the 8 workers on another.
//!
//! `cargo bench --bench exact_average -- [DTYPE]` (f32, bf16, f16); benches/wire_vs_torch.sh runs
//! it beside PyTorch's gloo all-reduce of the same vector (benches/torch_allreduce.py).

mod loopback_cluster;

use std::time::{Duration, Instant};

use loopback_cluster::Loopback;

use lagom::algo::AlgorithmName;
use lagom::decen::ReduceKind;
use lagom::net::{client_endpoint, connect, recv, send, send_as};
use lagom::net::{NodeIdentity, TransportSettings};
use lagom::proto::{frame_limit, Message, Role, WireDtype};
use lagom::run::RunDir;
use lagom::server::NEW_PROCESS;

const WORKERS: usize = 8;
/// Averages not timed (connections warming up).
const WARMUP: u64 = 20;
/// Averages timed.
const ROUNDS: u64 = 400;

/// One worker: joins, then contributes to `WARMUP + ROUNDS` averages; returns when the timed
/// ones started and ended.
async fn member(
    identity: NodeIdentity,
    addr: std::net::SocketAddr,
    worker: u32,
    layout_hash: u64,
    params_len: usize,
    dtype: WireDtype,
) -> anyhow::Result<(Instant, Instant)> {
    let mut transport = TransportSettings::for_params(params_len);
    transport.wire_dtype = dtype;
    let endpoint = client_endpoint(&identity, &transport)?;
    let conn = connect(&endpoint, addr).await?;
    let hello = Message::Hello {
        role: Role::Worker,
        worker,
        incarnation: NEW_PROCESS,
        layout_hash,
        params_len: params_len as u64,
        device: "bench".into(),
        peer_port: 1,
        wire_dtype: dtype,
    };
    send(&conn, hello).await?;
    let limit = frame_limit(3 * params_len);
    let mut iteration = loop {
        match recv(&conn, limit).await? {
            Some(Message::Start { iteration, .. }) => break iteration,
            Some(Message::Stop { reason }) => anyhow::bail!("stopped before the start: {reason}"),
            Some(_) => {}
            None => anyhow::bail!("the rendezvous closed the connection"),
        }
    };
    let mut part: Vec<f32> = (0..params_len).map(|i| (i % 13) as f32 * 1e-3).collect();
    let mut started = Instant::now();
    for round in 0..WARMUP + ROUNDS {
        if round == WARMUP {
            started = Instant::now();
        }
        let reduce = Message::Reduce {
            worker,
            iteration,
            kind: ReduceKind::Gradients,
            values: part,
        };
        send_as(&conn, reduce, dtype).await?;
        part = loop {
            match recv(&conn, limit).await? {
                Some(Message::Reduced {
                    iteration: i,
                    values,
                    ..
                }) if i == iteration => break values,
                Some(Message::Stop { reason }) => anyhow::bail!("stopped: {reason}"),
                Some(_) => {}
                None => anyhow::bail!("the rendezvous closed the connection"),
            }
        };
        iteration += 1;
        let progress = Message::Progress { worker, iteration };
        send(&conn, progress).await?;
    }
    let ended = Instant::now();
    conn.close(0u32.into(), b"done");
    Ok((started, ended))
}

/// Averages per second over loopback QUIC with mutual TLS, parts and averages in `dtype`.
fn measure(dtype: WireDtype) -> anyhow::Result<f64> {
    let mut config = loopback_cluster::config(AlgorithmName::AllreduceSgd, WORKERS, 1_000_000);
    config.net.wire_dtype = dtype;
    let dir = tempfile::tempdir()?;
    let run = RunDir::create(dir.path())?;
    actix::System::new().block_on(async move {
        let cluster = Loopback::start(&config, &run)?;
        let identities = (0..WORKERS)
            .map(|w| cluster.worker_identity(w))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let node = cluster.node;
        let req = node.requirements;
        let members = actix::Arbiter::new();
        let mut results = Vec::new();
        for (w, id) in identities.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr, hash, len) = (node.addr, req.layout_hash, req.params_len);
            members.spawn(async move {
                let _ = tx.send(member(id, addr, w as u32, hash, len, dtype).await);
            });
            results.push(rx);
        }
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for r in results {
            let (s, e) = r.await??;
            first = Some(first.map_or(s, |f| f.min(s)));
            last = Some(last.map_or(e, |l| l.max(e)));
        }
        members.stop();
        let stop = lagom::node::Shutdown {
            signal: "the end of the bench".into(),
        };
        let _ = node.stop.send(stop).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), node.done).await;
        node.endpoint.close(0u32.into(), b"done");
        let (Some(first), Some(last)) = (first, last) else {
            anyhow::bail!("no worker finished");
        };
        Ok(ROUNDS as f64 / (last - first).as_secs_f64())
    })
}

fn main() -> anyhow::Result<()> {
    // The heap of the `lagom` binary: on transparent huge pages (its main restarts itself so).
    lagom::compute::restart_with_huge_page_heap();
    let dtype = std::env::args()
        .skip(1)
        .find_map(|a| WireDtype::ALL.into_iter().find(|d| d.as_str() == a))
        .unwrap_or(WireDtype::F32);
    println!("{}", lagom::kernels::describe_cpu());
    println!("heap: {}", lagom::compute::describe_heap_pages());
    lagom::compute::set_cpu_threads(1);
    // The heap settings of the `lagom` binary (its main sets them for every role).
    lagom::compute::keep_freed_tensor_buffers();
    let rate = measure(dtype)?;
    println!(
        "exact average over QUIC+TLS, wire {dtype}: {rate:.1} averages/s ({WORKERS} workers, \
         272186 values, {ROUNDS} averages)"
    );
    Ok(())
}
