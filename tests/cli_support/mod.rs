//! Running the `lagom` binary from tests, and the data the tests may need.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

mod cluster;
// Not every test binary that includes this module starts a cluster.
#[allow(unused_imports)]
pub use cluster::TestCluster;

/// Runs `lagom ARGS` in the repository root with no inherited `LAGOM_*` variables plus `env`.
pub fn lagom(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagom"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LAGOM_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("lagom runs")
}

/// The arguments of a short `--role local` run into `run`: 2 workers training the `mlp` on the
/// synthetic set, then `extra`.
pub fn local_mlp_args(run: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&[
        "--role",
        "local",
        "--workers",
        "2",
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
        "--set",
    ]);
    args.push(format!("run.dir={:?}", run.display().to_string()));
    args.extend(strings(extra));
    args
}

/// The process's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The process's standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `DIR/summary.json`, parsed; it and every line of `DIR/metrics.jsonl` (and of the supervisor's,
/// if there is one) must also read back as lagom's own types, so every cluster test checks the
/// output format.
pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json exists");
    if let Err(e) = serde_json::from_str::<lagom::run::Summary>(&text) {
        panic!("{}: not a lagom summary: {e}\n{text}", dir.display());
    }
    for file in ["metrics.jsonl", "supervisor/metrics.jsonl"] {
        if dir.join(file).is_file() {
            events(&dir.join(file));
        }
    }
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The `updates` of the last event of kind `kind` in `DIR/metrics.jsonl` (`None` before one).
pub fn last_event_updates(dir: &Path, kind: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == kind)
        .filter_map(|v| v["updates"].as_u64())
        .next_back()
}

/// Waits (up to `limit`) until `DIR/metrics.jsonl` has a `kind` event at `at_least` updates or
/// more, while `child` — the process that writes it — keeps running.
pub fn wait_for_event(
    dir: &Path,
    kind: &str,
    at_least: u64,
    child: &mut std::process::Child,
    limit: std::time::Duration,
) {
    let started = std::time::Instant::now();
    while last_event_updates(dir, kind).is_none_or(|u| u < at_least) {
        assert!(
            started.elapsed() < limit,
            "no {kind} event at {at_least} updates within {limit:?}"
        );
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the run ended before reaching {kind} at {at_least} updates (make it longer)"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The lines of a `metrics.jsonl`, each checked to read back as a `lagom::run::RunEvent`.
pub fn events(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            if let Err(e) = serde_json::from_str::<lagom::run::RunEvent>(l) {
                panic!("{}: not a lagom event: {e}: {l}", path.display());
            }
            serde_json::from_str(l).expect("a JSON line")
        })
        .collect()
}

/// Where the Debian package `dataset-fashion-mnist` puts the data.
pub const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// True when Fashion-MNIST is installed. Under CI (`CI` set; `.ci/run` installs the package) its
/// absence fails the test; elsewhere the test is skipped with a notice.
pub fn fashion_mnist_present(test: &str) -> bool {
    if Path::new(FASHION_MNIST).is_dir() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install dataset-fashion-mnist"
    );
    eprintln!("{test} skipped: {FASHION_MNIST} is absent (apt-get install dataset-fashion-mnist)");
    false
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Owned strings from string slices (argument lists).
pub fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// Starts `lagom ARGS` in the background with one CPU thread, warnings-only logs (so its piped
/// output never fills up) and no inherited `LAGOM_*` variables.
pub fn spawn_lagom(args: &[String]) -> std::process::Child {
    spawn_lagom_under(&[], args)
}

/// [`spawn_lagom`] run by a wrapper command (e.g. `ip netns exec NS`): `WRAPPER... lagom ARGS`.
pub fn spawn_lagom_under(wrapper: &[String], args: &[String]) -> std::process::Child {
    let bin = env!("CARGO_BIN_EXE_lagom");
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("LAGOM_") {
            cmd.env_remove(k);
        }
    }
    cmd.spawn().expect("lagom starts")
}

/// Waits for `child` at most `limit`; kills it and fails the test if it takes longer.
pub fn wait_for(mut child: std::process::Child, limit: std::time::Duration, what: &str) -> Output {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!("{what} did not finish within {limit:?}: {}", stderr(&out));
}

/// `lagom certs --dir DIR --server head --workers w0:*,w1:1` (w0 may take any slot, w1 only 1).
pub fn write_certs(dir: &Path) {
    let out = lagom(
        &[
            "certs",
            "--dir",
            dir.to_str().expect("utf-8"),
            "--server",
            "head",
            "--workers",
            "w0:*,w1:1",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Layout hash and parameter count of the `mlp` on the synthetic data set (what a hand-made
/// worker must announce in `Hello`).
pub fn synthetic_mlp_layout() -> (u64, usize) {
    let (channels, height, width, classes) = lagom::data::DatasetName::Synthetic.shape();
    let net = lagom::model::Network::new(
        lagom::model::ModelName::Mlp,
        lagom::model::InputSpec {
            channels,
            height,
            width,
            classes,
        },
        &candle_core::Device::Cpu,
        0,
    )
    .expect("model");
    (net.layout().hash(), net.layout().len())
}
