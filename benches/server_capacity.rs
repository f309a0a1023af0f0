//! Server capacity: how many updates per second the parameter server absorbs for a ResNet-20-sized
//! vector (≈ 0.27 M values) from 8 workers that answer every `Params` at once with a precomputed
//! gradient, for ASGD and OrMo, measured two ways:
//!
//! - **server path** — the 8 senders are tasks on the server's own thread that hand the actor
//!   exactly what its network tasks would: each gradient is decoded from an encoded frame, and each
//!   `Params` the actor sends is encoded into a frame. Everything the server does per update
//!   (decode, checks, the algorithm, copying and encoding parameters) on one thread, without the
//!   transport (target: ≥ 2 000 updates/s on the 2-core machine).
//! - **over QUIC** — real clients over loopback QUIC with mutual TLS (8 connections, 1.1 MB each
//!   way per update in `f32`, half that in `bf16`), each answering with the parameters it just
//!   received as its gradient (a vector it owns, as a real worker owns its fresh gradient, so no
//!   copy is made for the send). This is bounded by the transport, not by the
//!   server; it also prints the packet size the connections ended at and the packets they
//!   declared lost.
//!
//! `cargo bench --bench server_capacity` (both ways, ASGD and OrMo, `f32` and `bf16` on the wire);
//! `cargo bench --bench server_capacity -- --quic bf16` (only the wire, one dtype).

mod loopback_cluster;

use std::time::{Duration, Instant};

use loopback_cluster::Loopback;

use candle_core::Device;
use lagom::algo::AlgorithmName;
use lagom::config::Config;
use lagom::net::{client_endpoint, connect, recv, send, send_as, TransportSettings};
use lagom::node::{load_split, start_server, Deliver, Queued, Register};
use lagom::proto::{
    decode_payload, encode, encode_chunks_with, frame_limit, frame_size, Message, Role, WireDtype,
};
use lagom::run::RunDir;
use lagom::server::{GradientIn, NEW_PROCESS};

const WORKERS: usize = 8;
const UPDATES: u64 = 6000;
const REPEATS: usize = 5;

/// What one over-the-wire worker did: gradients sent, and its connection's transport figures.
struct WireWorker {
    sent: u64,
    mtu: u16,
    lost_packets: u64,
}

async fn fast_worker(
    identity: lagom::net::NodeIdentity,
    addr: std::net::SocketAddr,
    worker: u32,
    layout_hash: u64,
    params_len: usize,
    dtype: WireDtype,
) -> anyhow::Result<WireWorker> {
    let mut transport = TransportSettings::for_params(params_len);
    transport.wire_dtype = dtype;
    let endpoint = client_endpoint(&identity, &transport)?;
    let conn = connect(&endpoint, addr).await?;
    send(
        &conn,
        Message::Hello {
            role: Role::Worker,
            worker,
            incarnation: NEW_PROCESS,
            layout_hash,
            params_len: params_len as u64,
            device: "bench".into(),
            peer_port: 0,
            wire_dtype: dtype,
        },
    )
    .await?;
    let mut seq = 0;
    let mut incarnation = NEW_PROCESS;
    loop {
        match recv(&conn, frame_limit(params_len)).await? {
            Some(Message::Welcome { incarnation: i, .. }) => incarnation = i,
            Some(Message::Params { index, params }) => {
                seq += 1;
                // The parameters just received go back as the gradient: a vector of the right
                // size that this worker owns, as a real worker owns the gradient it just computed
                // (no copy here; PyTorch's anchor resends one tensor). The server then scales its
                // parameters by 1 − lr each update: finite, and the same work as any gradient.
                let grad = params;
                send_as(
                    &conn,
                    Message::Gradient {
                        worker,
                        incarnation,
                        seq,
                        ite: index,
                        loss: 1.0,
                        samples: 128,
                        grad,
                    },
                    dtype,
                )
                .await?;
            }
            Some(Message::Stop { .. }) | None => {
                let path = conn.stats().path;
                return Ok(WireWorker {
                    sent: seq,
                    mtu: path.current_mtu,
                    lost_packets: path.lost_packets,
                });
            }
            Some(_) => {}
        }
    }
}

/// One in-process sender: registers, then answers every `Params` with a gradient decoded from a
/// precomputed frame, encoding each `Params` frame as the server's network task would.
async fn in_process_worker(
    server: actix::Addr<lagom::node::ServerActor>,
    worker: usize,
    params_len: usize,
) -> anyhow::Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let registered = server
        .send(Register {
            worker,
            incarnation: NEW_PROCESS,
            device: "bench".into(),
            connection: worker as u64,
            tx,
        })
        .await?
        .map_err(|(_, why)| anyhow::anyhow!("refused: {why}"))?;
    let frame = encode(&Message::Gradient {
        worker: worker as u32,
        incarnation: registered.incarnation,
        seq: 0,
        ite: 0,
        loss: 1.0,
        samples: 128,
        grad: gradient(params_len),
    })?;
    let mut seq = 0;
    while let Some(out) = rx.recv().await {
        let Queued::Encoded(header, tensor) = out else {
            break;
        };
        let Message::Params { index, .. } = header else {
            break;
        };
        // What the server's sending task does with it (the tensor is not copied).
        drop(std::hint::black_box(encode_chunks_with(header, tensor)?));
        let Message::Gradient { grad, loss, .. } = decode_payload(&frame[4..])? else {
            anyhow::bail!("the precomputed frame is not a gradient");
        };
        seq += 1;
        let g = GradientIn {
            worker,
            incarnation: 1,
            seq,
            ite: index,
            grad,
        };
        if server.send(Deliver(g, loss)).await.is_err() {
            break;
        }
    }
    Ok(seq)
}

/// A fixed, small gradient (the algorithm's arithmetic is the same for any values).
fn gradient(params_len: usize) -> Vec<f32> {
    (0..params_len)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-9)
        .collect()
}

fn bench_config(algorithm: AlgorithmName) -> Config {
    loopback_cluster::config(algorithm, WORKERS, UPDATES)
}

/// CPU time this thread has used (user + system), in seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is unavailable");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Updates per wall-clock second and per CPU-second of the one thread that does all the server
/// path's work (the second does not count time the thread waited for a core on a shared machine).
fn measure_server_path(algorithm: AlgorithmName, updates: u64) -> anyhow::Result<(f64, f64)> {
    let mut config = bench_config(algorithm);
    config.server.updates = updates;
    let dir = tempfile::tempdir()?;
    let run = RunDir::create(dir.path())?;
    actix::System::new().block_on(async move {
        let split = load_split(&config)?;
        let server = start_server(&config, split, &Device::Cpu, &run)?;
        let len = server.requirements.params_len;
        let started = Instant::now();
        let cpu_started = thread_cpu_s();
        let senders: Vec<_> = (0..WORKERS)
            .map(|w| actix::spawn(in_process_worker(server.actor.clone(), w, len)))
            .collect();
        let mut sent = 0;
        for s in senders {
            sent += s.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - cpu_started;
        let _ = tokio::time::timeout(Duration::from_secs(120), server.done).await;
        anyhow::ensure!(sent >= updates, "only {sent} gradients were sent");
        Ok((updates as f64 / elapsed, updates as f64 / cpu))
    })
}

/// What one over-the-wire run measured.
struct WireRun {
    updates_per_s: f64,
    params_len: usize,
    /// Bytes of one gradient frame plus one parameters frame.
    bytes_per_update: usize,
    /// The smallest packet size any worker's connection ended at.
    mtu: u16,
    /// Packets the workers' connections declared lost.
    lost_packets: u64,
    /// CPU time of the server's thread per update, in microseconds.
    server_cpu_us: f64,
    /// CPU time of the workers' thread per update, in microseconds.
    workers_cpu_us: f64,
}

/// Updates per second over loopback QUIC with mutual TLS, tensors in `dtype` both ways.
fn measure_quic(algorithm: AlgorithmName, dtype: WireDtype) -> anyhow::Result<WireRun> {
    let mut config = bench_config(algorithm);
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
        // The workers run on a thread of their own (as they would in other processes), so the
        // server's thread does only the server's work.
        let clients = actix::Arbiter::new();
        let (cpu_tx, cpu_rx) = tokio::sync::oneshot::channel();
        clients.spawn(async move {
            let _ = cpu_tx.send(thread_cpu_s());
        });
        let workers_cpu_started = cpu_rx.await?;
        let started = Instant::now();
        let server_cpu_started = thread_cpu_s();
        let mut results = Vec::new();
        for (w, id) in identities.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr, hash, len) = (node.addr, req.layout_hash, req.params_len);
            clients.spawn(async move {
                let _ = tx.send(fast_worker(id, addr, w as u32, hash, len, dtype).await);
            });
            results.push(rx);
        }
        let (mut sent, mut mtu, mut lost_packets) = (0, u16::MAX, 0);
        for r in results {
            let worker = r.await??;
            sent += worker.sent;
            mtu = mtu.min(worker.mtu);
            lost_packets += worker.lost_packets;
        }
        let server_cpu = thread_cpu_s() - server_cpu_started;
        let (cpu_tx, cpu_rx) = tokio::sync::oneshot::channel();
        clients.spawn(async move {
            let _ = cpu_tx.send(thread_cpu_s());
        });
        let workers_cpu = cpu_rx.await? - workers_cpu_started;
        clients.stop();
        let elapsed = started.elapsed().as_secs_f64();
        let _ = tokio::time::timeout(Duration::from_secs(120), node.done).await;
        node.endpoint.close(0u32.into(), b"done");
        anyhow::ensure!(sent >= UPDATES, "only {sent} gradients were sent");
        let len = req.params_len;
        let mut grad = Message::Gradient {
            worker: 0,
            incarnation: 1,
            seq: 1,
            ite: 1,
            loss: 1.0,
            samples: 128,
            grad: vec![0.0; len],
        };
        let mut params = Message::Params {
            index: 1,
            params: vec![0.0; len],
        };
        Ok(WireRun {
            updates_per_s: UPDATES as f64 / elapsed,
            params_len: len,
            bytes_per_update: frame_size(&mut grad, dtype)? + frame_size(&mut params, dtype)?,
            mtu,
            lost_packets,
            server_cpu_us: server_cpu * 1e6 / UPDATES as f64,
            workers_cpu_us: workers_cpu * 1e6 / UPDATES as f64,
        })
    })
}

/// Prints one over-the-wire run in the form benches/wire_vs_torch.sh reads.
fn print_wire(algorithm: AlgorithmName, dtype: WireDtype) -> anyhow::Result<f64> {
    let w = measure_quic(algorithm, dtype)?;
    println!(
        "over QUIC+TLS, {}, wire {dtype}: {:.1} updates/s ({WORKERS} workers, {} parameters, \
         {UPDATES} updates; {} bytes per update, packets of {} bytes, {} declared lost; CPU per \
         update: server thread {:.0} µs, workers' thread {:.0} µs)",
        algorithm.as_str(),
        w.updates_per_s,
        w.params_len,
        w.bytes_per_update,
        w.mtu,
        w.lost_packets,
        w.server_cpu_us,
        w.workers_cpu_us
    );
    Ok(w.updates_per_s)
}

fn main() -> anyhow::Result<()> {
    // The heap of the `lagom` binary: on transparent huge pages (its main restarts itself so).
    lagom::compute::restart_with_huge_page_heap();
    // `cargo bench` passes `--bench`; `--quic DTYPE` measures only the transport with tensors in
    // DTYPE (f32, bf16, f16), as benches/wire_vs_torch.sh runs it.
    let args: Vec<String> = std::env::args().collect();
    println!("{}", lagom::kernels::describe_cpu());
    println!("heap: {}", lagom::compute::describe_heap_pages());
    lagom::compute::set_cpu_threads(1);
    // The heap settings of the `lagom` binary (its main sets them for every role).
    lagom::compute::keep_freed_tensor_buffers();
    if let Some(at) = args.iter().position(|a| a == "--quic") {
        let name = args.get(at + 1).map_or("f32", String::as_str);
        let dtype = WireDtype::ALL
            .into_iter()
            .find(|d| d.as_str() == name)
            .ok_or_else(|| anyhow::anyhow!("--quic {name}: expected f32, bf16 or f16"))?;
        print_wire(AlgorithmName::Asgd, dtype)?;
        return Ok(());
    }
    // Evaluation (once, after each run) needs no second core; an idle rayon pool that spins
    // after it would take the core the measured thread runs on.
    lagom::compute::set_cpu_threads(1);
    // The process's first run pays for growing the heap and faulting its pages in; measure the
    // steady state that a long-running server is in.
    measure_server_path(AlgorithmName::Asgd, UPDATES / 4)?;
    for algorithm in [AlgorithmName::Asgd, AlgorithmName::Ormo] {
        // The median of a few runs: one run on a shared machine can lose its core for a while.
        let runs = (0..REPEATS)
            .map(|_| measure_server_path(algorithm, UPDATES))
            .collect::<anyhow::Result<Vec<(f64, f64)>>>()?;
        let median = |pick: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (path, path_cpu) = (median(|r| r.0), median(|r| r.1));
        println!(
            "server capacity, {}: server path {path:.0} updates/s, {path_cpu:.0} per CPU-second \
             (target 2000; {WORKERS} workers, {UPDATES} updates, median of {REPEATS})",
            algorithm.as_str()
        );
        for dtype in [WireDtype::F32, WireDtype::Bf16] {
            print_wire(algorithm, dtype)?;
        }
    }
    Ok(())
}
