//! The systemd units in `deploy/` pass `systemd-analyze verify` (run through `deploy/verify.sh`,
//! against this build's binary), and the verification really fails on a bad unit.

use std::path::Path;
use std::process::Command;

/// Whether `systemd-analyze` can run here; under CI its absence is a failure.
fn systemd_analyze_present() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (.ci/run installs the systemd package)"
        );
        eprintln!("skipping: systemd-analyze is not installed");
    }
    found
}

fn verify(deploy: &Path) -> std::process::Output {
    Command::new("sh")
        .arg(deploy.join("verify.sh"))
        .env("LAGOM_BIN", env!("CARGO_BIN_EXE_lagom"))
        .output()
        .expect("run verify.sh")
}

#[test]
fn the_deploy_units_pass_systemd_analyze_verify() {
    if !systemd_analyze_present() {
        return;
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let out = verify(&deploy);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("lagom-worker@0.service"), "{said}");
    assert!(said.contains("also with gpu.conf"), "{said}");
}

/// `verify.sh` over a copy of deploy/ in which `file` has `line` added after `after`.
fn verify_with_typo(file: &str, after: &str, line: &str) -> std::process::Output {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&deploy).expect("deploy/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            continue; // deploy/slurm: not units
        }
        let name = path.file_name().expect("name");
        let mut text = std::fs::read_to_string(&path).expect("read");
        if name == file {
            assert!(text.contains(after), "{file} has {after}");
            text = text.replace(after, &format!("{after}\n{line}"));
        }
        std::fs::write(copy.path().join(name), text).expect("write");
    }
    verify(copy.path())
}

#[test]
fn verification_fails_on_a_unit_or_the_gpu_drop_in_with_an_unknown_key() {
    if !systemd_analyze_present() {
        return;
    }
    let out = verify_with_typo(
        "lagom-server.service",
        "Restart=on-failure",
        "RestartTypo=1",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RestartTypo"));
    let out = verify_with_typo(
        "gpu.conf",
        "DevicePolicy=closed",
        "DeviceAlow=/dev/nvidia0 rw",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DeviceAlow"));
}
