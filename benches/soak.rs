//! Soak: one `lagom --role server` process and many light workers (precomputed gradients of the
//! `mlp` on the synthetic data set, sent at a fixed rate) over real QUIC with mutual TLS, for a
//! configurable time, with chaos: a worker is killed (its connection dropped without a word) and
//! started again as a new process every few seconds, and now and then a worker sends a NaN
//! gradient. Every 10 s it prints updates/s and the server's resident memory; at the end it stops
//! the server with SIGTERM and checks the summary: every gradient received was applied or
//! rejected, and the server's RSS at the end against its RSS after the first minute.
//!
//! `cargo bench --bench soak -- [--duration-s 3600] [--workers 64] [--rate 2] [--kill-every-s 5]`
//! (a benchmark, not a test; the README reports a one-hour run). `SOAK_SERVER_WRAPPER=heaptrack`
//! runs the server under a memory profiler.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use lagom::data::DatasetName;
use lagom::model::{InputSpec, ModelName, Network};
use lagom::net::{client_endpoint, connect, load_identity, recv, send, TransportSettings};
use lagom::proto::{frame_limit, Message, Role};
use lagom::server::NEW_PROCESS;

/// The soak's settings, from the command line.
#[derive(Debug, Clone, Copy)]
struct Settings {
    duration: Duration,
    workers: usize,
    rate: f64,
    kill_every: Duration,
}

fn settings() -> Result<Settings> {
    let mut s = Settings {
        duration: Duration::from_secs(120),
        workers: 64,
        rate: 2.0,
        kill_every: Duration::from_secs(5),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .ok_or_else(|| anyhow!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--duration-s" => s.duration = Duration::from_secs_f64(value()?.parse()?),
            "--workers" => s.workers = value()?.parse()?,
            "--rate" => s.rate = value()?.parse()?,
            "--kill-every-s" => s.kill_every = Duration::from_secs_f64(value()?.parse()?),
            // `cargo bench` passes --bench; anything else is a mistake.
            "--bench" => {
                i += 1;
                continue;
            }
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    if s.workers == 0 || s.rate.is_nan() || s.rate <= 0.0 {
        bail!("--workers and --rate must be positive");
    }
    Ok(s)
}

/// What the light workers did, together.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    nan_sent: AtomicU64,
    kills: AtomicU64,
    joins: AtomicU64,
}

/// The server process's resident memory, kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn_server(dir: &Path, certs: &Path, port: u16, workers: usize) -> Result<Child> {
    let set = |s: String| vec!["--set".to_string(), s];
    let mut args: Vec<String> = ["--role", "server", "--run-dir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(dir.join("run").display().to_string());
    args.extend(["--workers".into(), workers.to_string()]);
    args.extend(["--algorithm".into(), "asgd".into()]);
    for s in [
        "data.name=\"synthetic\"".to_string(),
        "model.name=\"mlp\"".to_string(),
        format!("net.certs=\"{}\"", certs.display()),
        "net.node=\"head\"".to_string(),
        format!("net.listen=\"127.0.0.1:{port}\""),
        "server.updates=1000000000000".to_string(),
        "server.eval_every=0".to_string(),
        "server.checkpoint_every=5000".to_string(),
    ] {
        args.extend(set(s));
    }
    // SOAK_SERVER_WRAPPER runs the server under a tool (`heaptrack`, `valgrind --tool=massif`).
    let mut command = match std::env::var("SOAK_SERVER_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or("env"));
            c.args(words).arg(env!("CARGO_BIN_EXE_lagom"));
            c
        }
        _ => Command::new(env!("CARGO_BIN_EXE_lagom")),
    };
    command
        .args(&args)
        .env("RUST_LOG", "error")
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the server")
}

/// One light worker process: joins as `slot`, answers every `Params` with the precomputed
/// gradient (one in 500 a NaN one) at most `rate` times a second, until `until` or the server
/// ends the run.
async fn light_worker(
    slot: usize,
    addr: SocketAddr,
    certs: Arc<lagom::net::NodeIdentity>,
    layout: (u64, usize),
    rate: f64,
    until: Instant,
    counts: Arc<Counts>,
) -> Result<()> {
    let (hash, len) = layout;
    let endpoint = client_endpoint(&certs, &TransportSettings::for_params(len))?;
    let conn = loop {
        match connect(&endpoint, addr).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e),
        }
    };
    let hello = Message::Hello {
        role: Role::Worker,
        worker: slot as u32,
        incarnation: NEW_PROCESS,
        layout_hash: hash,
        params_len: len as u64,
        device: "soak".into(),
        peer_port: 0,
        wire_dtype: lagom::proto::WireDtype::F32,
    };
    send(&conn, hello).await?;
    let grad: Vec<f32> = (0..len).map(|i| ((i % 7) as f32 - 3.0) * 1e-4).collect();
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut incarnation = NEW_PROCESS;
    let mut seq = 0u64;
    let mut next = Instant::now();
    while Instant::now() < until {
        match recv(&conn, frame_limit(len)).await? {
            Some(Message::Welcome { incarnation: i, .. }) => {
                incarnation = i;
                counts.joins.fetch_add(1, Ordering::Relaxed);
            }
            Some(Message::Params { index, .. }) => {
                tokio::time::sleep_until(next.into()).await;
                next = Instant::now().max(next) + every;
                seq += 1;
                let mut g = grad.clone();
                if seq % 500 == 0 {
                    g[seq as usize % len] = f32::NAN;
                    counts.nan_sent.fetch_add(1, Ordering::Relaxed);
                }
                let gradient = Message::Gradient {
                    worker: slot as u32,
                    incarnation,
                    seq,
                    ite: index,
                    loss: 1.0,
                    samples: 32,
                    grad: g,
                };
                send(&conn, gradient).await?;
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            Some(Message::Stop { .. }) | None => break,
            Some(_) => {}
        }
    }
    Ok(())
}

/// Prints the server's RSS after the first minute against the end: single samples, and the
/// medians of the second and of the last minute's samples (the allocator hands freed pages back
/// every few seconds, so one sample may fall just before that).
fn print_rss(samples: &[(f64, u64)]) {
    let Some(&(_, first)) = samples.iter().find(|(t, _)| *t >= 60.0) else {
        return;
    };
    let Some(&(end, last)) = samples.last() else {
        return;
    };
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "server RSS: {:.1} MB after the first minute, {:.1} MB at the end: ratio {:.3}",
        mb(first),
        mb(last),
        last as f64 / first.max(1) as f64
    );
    let median = |from: f64, to: f64| {
        let mut v: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|&(_, r)| r)
            .collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    if let (Some(second), Some(final_minute)) = (median(60.0, 120.0), median(end - 60.0, end + 1.0))
    {
        let peak = samples.iter().map(|&(_, r)| r).max().unwrap_or(0);
        println!(
            "server RSS, medians: {:.1} MB in the second minute, {:.1} MB in the last: ratio {:.3} \
             (peak {:.1} MB)",
            mb(second),
            mb(final_minute),
            final_minute as f64 / second.max(1) as f64,
            mb(peak)
        );
    }
}

fn main() -> Result<()> {
    let s = settings()?;
    println!("{}", lagom::kernels::describe_cpu());
    println!(
        "soak: {} workers at {} gradients/s each for {:?}, one killed every {:?}",
        s.workers, s.rate, s.duration, s.kill_every
    );
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let grant = format!("soak:0-{}", s.workers - 1);
    let status = Command::new(env!("CARGO_BIN_EXE_lagom"))
        .args(["certs", "--dir", certs.to_str().unwrap_or("certs")])
        .args(["--server", "head", "--workers", &grant])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("lagom certs failed");
    }
    let identity = Arc::new(load_identity(&certs, "soak")?);
    let (channels, height, width, classes) = DatasetName::Synthetic.shape();
    let input = InputSpec {
        channels,
        height,
        width,
        classes,
    };
    let net = Network::new(ModelName::Mlp, input, &Device::Cpu, 0)?;
    let layout = (net.layout().hash(), net.layout().len());
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = spawn_server(dir.path(), &certs, port, s.workers)?;
    let pid = server.id();

    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let until = started + s.duration;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // (seconds since the start, server RSS in kB), every 10 s.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    runtime.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let spawn = |slot: usize| {
                    let (identity, counts) = (identity.clone(), counts.clone());
                    tokio::task::spawn_local(async move {
                        let _ =
                            light_worker(slot, addr, identity, layout, s.rate, until, counts).await;
                    })
                };
                let mut tasks: Vec<_> = (0..s.workers).map(spawn).collect();
                let mut next_kill = started + s.kill_every;
                let mut next_report = started + Duration::from_secs(10);
                let mut last_sent = 0;
                let mut victim = 0usize;
                while Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let now = Instant::now();
                    if now >= next_kill {
                        // Kill: the task (and its connection) vanishes without a word; a new
                        // process takes the slot.
                        victim = (victim * 7 + 13) % s.workers;
                        tasks[victim].abort();
                        tasks[victim] = spawn(victim);
                        counts.kills.fetch_add(1, Ordering::Relaxed);
                        next_kill += s.kill_every;
                    }
                    // Samples only while the workers run (at `until` they hang up, and the
                    // server's memory then is teardown, not the soak).
                    if now >= next_report && now < until {
                        let sent = counts.sent.load(Ordering::Relaxed);
                        // No resident memory: the server is gone (its exit says why, below).
                        let Some(rss) = rss_kb(pid) else {
                            println!(
                                "the server is gone after {:.1} s",
                                now.duration_since(started).as_secs_f64()
                            );
                            break;
                        };
                        let t = now.duration_since(started).as_secs_f64();
                        println!(
                            "t {t:7.1} s  gradients/s {:8.1}  server RSS {:7.1} MB  kills {}",
                            (sent - last_sent) as f64 / 10.0,
                            rss as f64 / 1024.0,
                            counts.kills.load(Ordering::Relaxed)
                        );
                        samples.push((t, rss));
                        last_sent = sent;
                        next_report += Duration::from_secs(10);
                    }
                }
                for t in tasks {
                    t.abort();
                }
            })
            .await;
    });
    // SIGTERM: the server writes its final checkpoint and summary and exits 0.
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is our child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let out = server.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the server exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.path().join("run/summary.json"),
    )?)?;
    let received = summary["gradients_received"].as_u64().unwrap_or(0);
    let applied = summary["gradients_applied"].as_u64().unwrap_or(0);
    let rejected = summary["gradients_rejected_total"].as_u64().unwrap_or(0);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "sent {} gradients ({} NaN), {} kills, {} joins in {wall:.0} s: {:.1} updates/s",
        counts.sent.load(Ordering::Relaxed),
        counts.nan_sent.load(Ordering::Relaxed),
        counts.kills.load(Ordering::Relaxed),
        counts.joins.load(Ordering::Relaxed),
        applied as f64 / wall
    );
    println!(
        "server: received {received} = applied {applied} + rejected {rejected} ({}) — {}",
        summary["gradients_rejected"],
        if received == applied + rejected {
            "every gradient accounted for"
        } else {
            "MISMATCH"
        }
    );
    print_rss(&samples);
    if received != applied + rejected {
        bail!("gradients unaccounted for");
    }
    Ok(())
}
