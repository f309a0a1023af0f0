//! Running the `lagom` binary from tests, and the data the tests may need.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

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

/// The process's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The process's standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `DIR/summary.json`, parsed.
pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json exists");
    serde_json::from_str(&text).expect("summary.json is JSON")
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
