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
    assert!(String::from_utf8_lossy(&out.stdout).contains("lagom-worker@0.service"));
}

#[test]
fn verification_fails_on_a_unit_with_an_unknown_key() {
    if !systemd_analyze_present() {
        return;
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&deploy).expect("deploy/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name");
        let mut text = std::fs::read_to_string(&path).expect("read");
        if name == "lagom-server.service" {
            text = text.replace("Restart=on-failure", "Restart=on-failure\nRestartTypo=1");
        }
        std::fs::write(copy.path().join(name), text).expect("write");
    }
    let out = verify(copy.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RestartTypo"));
}
