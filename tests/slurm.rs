//! deploy/slurm/lagom.sbatch on a real one-node Slurm (Debian's slurm-wlm, started by
//! deploy/slurm/local-slurm.sh): the job makes its certificates, runs the server and a supervisor
//! with two workers, takes the node's speed from NODE_SPEEDS, and trains to completion. Skipped,
//! with a notice, where Slurm is not installed (CI installs it) or cannot start here.

mod cli_support;
use cli_support::summary;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A TCP port nobody listens on now.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Stops the local Slurm when the test ends, passing or not.
struct LocalSlurm(PathBuf);

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        let _ = Command::new(root().join("deploy/slurm/local-slurm.sh"))
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_lagom_job_trains_to_completion_on_a_one_node_slurm() {
    if Command::new("sbatch").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "sbatch is missing (.ci/run installs slurm-wlm)"
        );
        eprintln!("skipping: Slurm is not installed (apt-get install slurm-wlm)");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let slurm_dir = work.path().join("slurm");
    let started = Command::new(root().join("deploy/slurm/local-slurm.sh"))
        .arg("start")
        .arg(&slurm_dir)
        .arg(free_tcp_port().to_string())
        .arg(free_tcp_port().to_string())
        .output()
        .expect("local-slurm.sh runs");
    let _stop = LocalSlurm(slurm_dir.clone());
    if !started.status.success() {
        eprintln!(
            "skipping: Slurm cannot start here: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        return;
    }
    let run = work.path().join("run");
    let host = hostname();
    let out = Command::new("timeout")
        .arg("300")
        .arg("sbatch")
        .arg("--wait")
        .arg(format!(
            "--output={}",
            work.path().join("job-%j.out").display()
        ))
        .arg(root().join("deploy/slurm/lagom.sbatch"))
        .arg(root().join("config/quickstart.toml"))
        .args([
            "--set",
            "data.name=\"synthetic\"",
            "--set",
            "model.name=\"mlp\"",
        ])
        // Enough updates that the second worker, started a moment after the first, joins before
        // the run ends (200 took 0.7 s and one run finished on the first worker alone).
        .args(["--set", "server.updates=2000"])
        .current_dir(work.path())
        .env("SLURM_CONF", slurm_dir.join("slurm.conf"))
        .env("LAGOM", env!("CARGO_BIN_EXE_lagom"))
        .env("RUN_DIR", &run)
        .env("PORT", cli_support::free_port().to_string())
        .env("WORKERS_PER_NODE", "2")
        .env("NODE_SPEEDS", format!("{host}=0.5"))
        .output()
        .expect("sbatch runs");
    let job_output = std::fs::read_dir(work.path())
        .expect("work dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "out"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<String>();
    assert!(
        out.status.success(),
        "the job failed: {}{}{job_output}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&run);
    assert_eq!(s["workers"], 2, "{s}");
    assert_eq!(s["updates"], 2000, "{s}");
    for w in s["per_worker"].as_array().expect("per_worker") {
        assert_eq!(
            w["speed"], 0.5,
            "NODE_SPEEDS reached every worker of the node: {s}"
        );
        assert!(w["gradients"].as_u64().expect("gradients") > 0, "{s}");
    }
    assert!(
        s["final_test_accuracy"].as_f64().expect("accuracy") > 0.5,
        "{s}"
    );
    assert!(Path::new(&run.join(format!("certs/w-{host}.pem"))).is_file());
    assert!(run.join("model.safetensors").is_file());
    assert!(run.join("node-0/supervisor/metrics.jsonl").is_file());
}
