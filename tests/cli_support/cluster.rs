//! A cluster of `lagom` processes on loopback for tests: certificates for `head`, `w0` and `w1`,
//! a run directory, a free port, and the flags every node of the run shares; then server and
//! worker processes started with their role's flags and anything a test adds.

use std::path::Path;
use std::process::Child;

use tempfile::TempDir;

use super::{free_port, spawn_lagom, strings, summary, write_certs};

/// A test cluster's shared set-up (see the module docs). The directories live as long as it.
pub struct TestCluster {
    /// The certificates' directory.
    pub certs: TempDir,
    /// The server's run directory.
    pub run: TempDir,
    /// The server's UDP port on 127.0.0.1.
    pub port: u16,
    common: Vec<String>,
}

impl TestCluster {
    /// Two workers of `algorithm` training the `mlp` on the synthetic data set, with `extra`
    /// flags for every node.
    pub fn new(algorithm: &str, extra: &[&str]) -> Self {
        Self::with(2, "synthetic", algorithm, extra)
    }

    /// `workers` workers of `algorithm` training the `mlp` on the data set `data`, with `extra`
    /// flags for every node.
    pub fn with(workers: usize, data: &str, algorithm: &str, extra: &[&str]) -> Self {
        let certs = tempfile::tempdir().expect("certs");
        write_certs(certs.path());
        let run = tempfile::tempdir().expect("run");
        let port = free_port();
        let mut common = strings(&[
            "--set",
            &format!("data.name=\"{data}\""),
            "--set",
            "model.name=\"mlp\"",
            "--workers",
            &workers.to_string(),
            "--algorithm",
            algorithm,
            "--set",
            &format!("net.certs=\"{}\"", certs.path().display()),
        ]);
        common.extend(strings(extra));
        TestCluster {
            certs,
            run,
            port,
            common,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's run directory.
    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    /// The server's flags: its role, run directory, certificate name and address, the shared
    /// flags, then `extra`.
    pub fn server_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&[
            "--role",
            "server",
            "--run-dir",
            &self.run.path().display().to_string(),
            "--set",
            "net.node=\"head\"",
            "--set",
            &format!("net.listen=\"{}\"", self.addr()),
        ]);
        args.extend(self.common.iter().cloned());
        args.extend(strings(extra));
        args
    }

    /// Worker `w`'s flags: its role, the server, its slot and certificate, the shared flags, then
    /// `extra`.
    pub fn worker_args(&self, w: usize, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&[
            "--role",
            "worker",
            "--server",
            &self.addr(),
            "--worker",
            &w.to_string(),
            "--set",
            &format!("net.node=\"w{w}\""),
        ]);
        args.extend(self.common.iter().cloned());
        args.extend(strings(extra));
        args
    }

    /// A supervisor's flags: its role, the run directory it shares with the server, the server,
    /// certificate `w0` (its workers use it too), the shared flags, then `extra`.
    pub fn supervisor_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = strings(&[
            "--role",
            "supervisor",
            "--run-dir",
            &self.run.path().display().to_string(),
            "--server",
            &self.addr(),
            "--set",
            "net.node=\"w0\"",
        ]);
        args.extend(self.common.iter().cloned());
        args.extend(strings(extra));
        args
    }

    /// Starts a supervisor of every worker slot with `extra` flags.
    pub fn spawn_supervisor(&self, extra: &[&str]) -> Child {
        spawn_lagom(&self.supervisor_args(extra))
    }

    /// Starts the server with `extra` flags.
    pub fn spawn_server(&self, extra: &[&str]) -> Child {
        spawn_lagom(&self.server_args(extra))
    }

    /// Starts worker `w` with `extra` flags.
    pub fn spawn_worker(&self, w: usize, extra: &[&str]) -> Child {
        spawn_lagom(&self.worker_args(w, extra))
    }

    /// The run's `summary.json`.
    pub fn summary(&self) -> serde_json::Value {
        summary(self.run.path())
    }
}
