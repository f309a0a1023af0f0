//! Runs a sweep's runs as child `lagom` processes, `jobs` at a time, each in its own directory
//! named by its identity, skipping those a previous invocation finished; progress with an ETA over
//! the whole grid. A child dies with the sweep (so an interrupted sweep leaves no run behind to
//! race a resumed one); a run that was interrupted is started again from scratch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::grid::RunCommand;
use super::plan::{finished, IdentifiedRun};
use crate::run::Progress;

/// How the runs are carried out.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The `lagom` executable the runs use.
    pub exe: PathBuf,
    /// The command every run uses.
    pub command: RunCommand,
    /// Runs at a time.
    pub jobs: usize,
    /// CPU threads per run (`RAYON_NUM_THREADS`, `CANDLE_NUM_THREADS`).
    pub threads: usize,
    /// Draw progress (a bar on a terminal, log lines otherwise).
    pub progress: bool,
}

/// What the runner did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerReport {
    /// Runs finished by an earlier invocation and skipped.
    pub skipped: usize,
    /// Runs carried out now and finished.
    pub completed: usize,
    /// Identities of runs whose process failed (see their `lagom.log`).
    pub failed: Vec<String>,
}

/// The directory of run `id` in the sweep directory `out`.
pub fn run_dir(out: &Path, id: &str) -> PathBuf {
    out.join("runs").join(id)
}

/// Starts run `run` in `dir`: its effective configuration is written there first, the child's
/// output goes to `dir/lagom.log`.
fn start(options: &RunnerOptions, run: &IdentifiedRun, dir: &Path) -> Result<Child> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the unfinished run {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join("config.toml");
    std::fs::write(&config, &run.config_text)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = std::fs::File::create(dir.join("lagom.log"))
        .with_context(|| format!("cannot create {}/lagom.log", dir.display()))?;
    let mut command = Command::new(&options.exe);
    command
        .arg(options.command.as_str())
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(dir)
        .arg("--quiet")
        .env("RAYON_NUM_THREADS", options.threads.to_string())
        .env("CANDLE_NUM_THREADS", options.threads.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    crate::supervisor::exit_with_parent(&mut command);
    command
        .spawn()
        .with_context(|| format!("cannot start {}", options.exe.display()))
}

/// Carries out `runs` (duplicates by identity run once) under `out`.
pub fn run_all(
    out: &Path,
    runs: &[IdentifiedRun],
    options: &RunnerOptions,
) -> Result<RunnerReport> {
    let mut seen = BTreeSet::new();
    let unique: Vec<&IdentifiedRun> = runs.iter().filter(|r| seen.insert(r.id.clone())).collect();
    let mut report = RunnerReport::default();
    let mut todo = Vec::new();
    for run in unique.iter().copied() {
        if finished(&run_dir(out, &run.id), run) {
            report.skipped += 1;
        } else {
            todo.push(run);
        }
    }
    let total = unique.len() as u64;
    let mut progress = options.progress.then(|| Progress::new("sweep", total));
    let started = Instant::now();
    let mut running: Vec<(String, Child)> = Vec::new();
    let mut queue = todo.into_iter();
    let done_before = report.skipped;
    loop {
        while running.len() < options.jobs.max(1) {
            let Some(run) = queue.next() else { break };
            let dir = run_dir(out, &run.id);
            running.push((run.id.clone(), start(options, run, &dir)?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut still = Vec::new();
        for (id, mut child) in running {
            match child.try_wait()? {
                None => still.push((id, child)),
                Some(status) if status.success() => report.completed += 1,
                Some(status) => {
                    tracing::warn!(
                        "run {id} failed ({status}); see {}",
                        run_dir(out, &id).join("lagom.log").display()
                    );
                    report.failed.push(id);
                }
            }
        }
        running = still;
        if let Some(p) = progress.as_mut() {
            let now_done = report.completed + report.failed.len();
            let left = total as usize - done_before - now_done;
            let eta = (now_done > 0)
                .then(|| started.elapsed().as_secs_f64() / now_done as f64 * left as f64);
            let msg = format!(
                "{} running, {} failed{}",
                running.len(),
                report.failed.len(),
                eta.map_or(String::new(), |s| format!(", about {s:.0} s left"))
            );
            p.update((done_before + now_done) as u64, &msg);
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }
    Ok(report)
}
