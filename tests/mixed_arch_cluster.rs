//! A mixed-architecture cluster on loopback (scripts/mixed-arch-cluster.sh): an x86-64 server and
//! two x86-64 workers, and one aarch64 worker — lagom cross-built for aarch64, run under qemu's
//! user-mode emulation — train the quick start's model to the end of its update budget. The
//! aarch64 worker must join (same protocol version, same layout hash), send gradients the
//! server applies, and show up as the slow worker it is. Runs where the aarch64 build and qemu
//! exist (`.ci/run` makes both with scripts/aarch64.sh before the tests); skipped with a notice
//! elsewhere, and failing instead when `CI` is set.

mod cli_support;
use cli_support::summary;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The aarch64 binary: `ARM_LAGOM`, or where scripts/aarch64.sh builds it.
fn arm_binary() -> PathBuf {
    std::env::var_os("ARM_LAGOM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/aarch64-unknown-linux-gnu/release/lagom"))
}

#[test]
fn an_emulated_aarch64_worker_trains_beside_x86_64_ones() {
    let qemu = Command::new("qemu-aarch64").arg("--version").output();
    let arm = arm_binary();
    if !cfg!(target_arch = "x86_64") || qemu.is_err() || !arm.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must build the aarch64 binary and install qemu-user first \
             (scripts/aarch64.sh setup && scripts/aarch64.sh build); {} missing",
            if qemu.is_err() {
                "qemu-aarch64"
            } else {
                "the aarch64 build"
            }
        );
        eprintln!(
            "skipping: needs an x86-64 host, qemu-aarch64 and {} (scripts/aarch64.sh setup, build)",
            arm.display()
        );
        return;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(root().join("scripts/mixed-arch-cluster.sh"))
        .env("X86_LAGOM", env!("CARGO_BIN_EXE_lagom"))
        .env("ARM_LAGOM", &arm)
        .env("OUT_DIR", out_dir.path())
        .env("UPDATES", "240")
        .output()
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mixed-arch-cluster.sh failed (a stale aarch64 build? rebuild it with \
         scripts/aarch64.sh build)\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    // Checked here from the run's own summary, not only by the script.
    let s = summary(&out_dir.path().join("run"));
    assert_eq!(s["updates"], 240, "{s}");
    assert_eq!(s["gradients_applied"], 240, "{s}");
    let workers = s["per_worker"].as_array().expect("per_worker");
    let gradients = |id: u64| {
        workers
            .iter()
            .find(|w| w["id"] == id)
            .and_then(|w| w["gradients"].as_u64())
            .unwrap_or(0)
    };
    let (x86a, x86b, arm) = (gradients(0), gradients(1), gradients(2));
    assert!(arm >= 1, "the aarch64 worker's gradients were applied: {s}");
    assert!(
        arm < x86a.min(x86b),
        "the emulated worker is the slow one: {arm} against {x86a} and {x86b}"
    );
    let arm_log = std::fs::read_to_string(out_dir.path().join("arm.log")).expect("arm.log");
    assert!(
        arm_log.contains("joined the server"),
        "the aarch64 worker's log shows it joined:\n{arm_log}"
    );
}
