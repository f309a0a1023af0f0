//! Carries out the supervisor's rules on real processes: starts each worker as a child process
//! of this binary, waits for exits, restarts by the [`RestartPolicy`](super::RestartPolicy),
//! injects the [`ChaosSchedule`]'s faults, and passes SIGTERM/SIGINT on to the workers.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::cgroup::CpuQuota;
use super::SupervisionSetup;
use super::{ChaosSchedule, Fault, RestartDecision, RestartState, SupervisedWorker};
use crate::heterogeneity::SlowdownMechanism;
use crate::run::event::{
    ChaosPause, ChaosSignal, End, Exit, GiveUp, Restart, Shutdown, ShutdownExit, Start,
    SupervisorEnd, WorkerExit, WorkerOnly, WorkerStart,
};
use crate::run::{MetricsWriter, RunEvent};

/// Exit code of a worker whose configuration cannot be used (restarting cannot help).
pub const EXIT_CONFIG: i32 = 2;
/// Exit code of a worker the server refused (layout, role or slot: restarting cannot help).
pub const EXIT_REFUSED: i32 = 3;
/// Exit code of a supervisor that gave up on a worker (its restart budget was spent): a service
/// manager must not start it again by itself (the units say `RestartPreventExitStatus=2 4`).
pub const EXIT_GAVE_UP: i32 = 4;

/// The supervisor gave up on these workers; the process exits with [`EXIT_GAVE_UP`].
#[derive(Debug, thiserror::Error)]
#[error("gave up on worker(s) {workers:?} (see the supervisor's log and metrics.jsonl)")]
pub struct GaveUpOnWorkers {
    /// Their slots.
    pub workers: Vec<usize>,
}

/// How supervision ended (giving up on a worker is an error instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisionEnd {
    /// Every worker finished (the server ended the run).
    Finished,
    /// A signal (named) stopped the workers.
    Signalled(String),
}

/// Where a worker slot stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Running { pid: u32, since: Instant },
    Waiting { until: Instant },
    Finished,
    GaveUp,
}

struct Slot {
    spec: SupervisedWorker,
    /// Relative speed, and the cores the worker would use at full speed (for `cpu-quota`).
    speed: f64,
    cores: usize,
    args: Vec<String>,
    state: State,
    restart: RestartState,
    /// Bumped at every start: an exit report from an older start is stale.
    generation: u64,
    starts: u64,
    paused_until: Option<Instant>,
    killed_by_chaos: bool,
}

/// A child's exit report: slot index, generation, status.
type ExitReport = (usize, u64, std::io::Result<ExitStatus>);

/// Runs the supervisor until every worker has finished or been given up on, or until SIGTERM or
/// SIGINT (which are passed on). `config_file` is the effective configuration the workers read.
/// Errors when the supervisor gave up on any worker.
pub async fn supervise(
    config: &SupervisionSetup,
    config_file: PathBuf,
    metrics: &mut MetricsWriter,
) -> Result<SupervisionEnd> {
    let exe = std::env::current_exe().context("cannot find this program's own executable")?;
    let sup = &config.supervisor;
    let workers = sup.resolved(config.workers);
    let mut speeds = config.heterogeneity.speeds(config.workers, config.seed);
    for w in &workers {
        if let (Some(s), Some(slot)) = (w.speed, speeds.get_mut(w.worker)) {
            *slot = s;
        }
    }
    let speeds_toml = format!(
        "heterogeneity.speeds=[{}]",
        speeds
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let quota = match config.heterogeneity.mechanism {
        SlowdownMechanism::CpuQuota => Some(CpuQuota::prepare()?),
        SlowdownMechanism::Delay => None,
    };
    let mut slots: Vec<Slot> = workers
        .into_iter()
        .map(|spec| {
            let mut args = vec![
                "--role".to_string(),
                "worker".into(),
                "--config".into(),
                config_file.display().to_string(),
                "--worker".into(),
                spec.worker.to_string(),
                "--set".into(),
                speeds_toml.clone(),
            ];
            if let Some(d) = &spec.device {
                args.extend(["--set".into(), format!("compute.device={d:?}")]);
            }
            if let Some(t) = spec.threads {
                args.extend(["--set".into(), format!("compute.threads={t}")]);
            }
            let threads = spec.threads.unwrap_or(config.threads);
            Slot {
                speed: speeds.get(spec.worker).copied().unwrap_or(1.0),
                cores: if threads > 0 { threads } else { cores },
                spec,
                args,
                state: State::Waiting {
                    until: Instant::now(),
                },
                restart: RestartState::new(sup.policy()),
                generation: 0,
                starts: 0,
                paused_until: None,
                killed_by_chaos: false,
            }
        })
        .collect();

    let started = Instant::now();
    let t_s = |now: Instant| now.duration_since(started).as_secs_f64();
    let mut chaos = ChaosSchedule::new(&config.chaos, config.seed);
    let (tx, mut rx) = mpsc::unbounded_channel::<ExitReport>();
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tracing::info!(
        "supervising {} worker(s): {:?}",
        slots.len(),
        slots.iter().map(|s| s.spec.worker).collect::<Vec<_>>()
    );

    // Set once a worker finished cleanly: the server said the run is over.
    let mut run_over: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(at) = run_over {
            if now >= at + secs(sup.grace_s) {
                // Whoever has not had its Stop by now (say it was restarting when the run ended and
                // the server has gone) is stopped: the run is complete.
                let why = "the run is over";
                shutdown(&mut slots, &mut rx, why, sup.grace_s, metrics, started).await?;
                return Ok(SupervisionEnd::Finished);
            }
        }
        // Start whatever is due.
        for (i, slot) in slots.iter_mut().enumerate() {
            if matches!(slot.state, State::Waiting { until } if until <= now) {
                start(&exe, slot, i, &tx, quota.as_ref(), metrics, t_s(now))?;
            }
        }
        // Resume paused workers whose pause is over.
        for slot in slots.iter_mut() {
            if slot.paused_until.is_some_and(|t| t <= now) {
                slot.paused_until = None;
                if let State::Running { pid, .. } = slot.state {
                    send_signal(pid, libc::SIGCONT);
                    metrics.write(&RunEvent::ChaosResume(ChaosSignal {
                        t_s: t_s(now),
                        worker: slot.spec.worker,
                        pid,
                    }))?;
                }
            }
        }
        // Faults that are due.
        let running: Vec<usize> = slots
            .iter()
            .filter(|s| matches!(s.state, State::Running { .. }) && s.paused_until.is_none())
            .map(|s| s.spec.worker)
            .collect();
        while let Some(fault) = run_over
            .is_none()
            .then(|| chaos.due(t_s(now), &running))
            .flatten()
        {
            inject(fault, &mut slots, metrics, t_s(now), now)?;
        }
        metrics.flush()?;
        if slots
            .iter()
            .all(|s| matches!(s.state, State::Finished | State::GaveUp))
        {
            break;
        }
        let mut wake = next_wake(&slots, chaos.next_at().map(|t| started + secs(t)));
        if let Some(at) = run_over {
            wake = wake.min(at + secs(sup.grace_s));
        }
        tokio::select! {
            Some((i, generation, status)) = rx.recv() => {
                let finished =
                    on_exit(&mut slots[i], generation, status, run_over.is_some(), metrics, t_s(Instant::now()))?;
                if finished && run_over.is_none() {
                    run_over = Some(Instant::now());
                    tracing::info!(
                        "worker {}: finished, so the run is over: no more restarts or faults; the \
                         others have {} s (supervisor.grace_s) to finish",
                        slots[i].spec.worker,
                        sup.grace_s
                    );
                    metrics.write(&RunEvent::RunOver(WorkerOnly {
                        t_s: t_s(Instant::now()),
                        worker: slots[i].spec.worker,
                    }))?;
                    for slot in slots.iter_mut() {
                        if matches!(slot.state, State::Waiting { .. }) {
                            slot.state = State::Finished;
                        }
                        // A paused worker must be able to hear that the run is over.
                        if slot.paused_until.take().is_some() {
                            if let State::Running { pid, .. } = slot.state {
                                send_signal(pid, libc::SIGCONT);
                                metrics.write(&RunEvent::ChaosResume(ChaosSignal {
                                    t_s: t_s(Instant::now()),
                                    worker: slot.spec.worker,
                                    pid,
                                }))?;
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = sigterm.recv() => return shutdown(&mut slots, &mut rx, "SIGTERM", sup.grace_s, metrics, started).await,
            _ = sigint.recv() => return shutdown(&mut slots, &mut rx, "SIGINT", sup.grace_s, metrics, started).await,
        }
    }
    let gave_up: Vec<usize> = slots
        .iter()
        .filter(|s| s.state == State::GaveUp)
        .map(|s| s.spec.worker)
        .collect();
    metrics.write(&RunEvent::End(End::Supervisor(SupervisorEnd {
        t_s: t_s(Instant::now()),
        gave_up: gave_up.clone(),
    })))?;
    metrics.flush()?;
    if gave_up.is_empty() {
        Ok(SupervisionEnd::Finished)
    } else {
        Err(GaveUpOnWorkers { workers: gave_up }.into())
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The earliest moment something is due: a restart, the end of a pause, or a fault.
fn next_wake(slots: &[Slot], chaos: Option<Instant>) -> Instant {
    let far = Instant::now() + Duration::from_secs(3600);
    slots
        .iter()
        .filter_map(|s| match s.state {
            State::Waiting { until } => Some(until),
            _ => s.paused_until,
        })
        .chain(chaos)
        .fold(far, Instant::min)
}

fn start(
    exe: &PathBuf,
    slot: &mut Slot,
    index: usize,
    tx: &mpsc::UnboundedSender<ExitReport>,
    quota: Option<&CpuQuota>,
    metrics: &mut MetricsWriter,
    t_s: f64,
) -> Result<()> {
    slot.generation += 1;
    slot.starts += 1;
    slot.killed_by_chaos = false;
    slot.paused_until = None;
    let generation = slot.generation;
    let worker = slot.spec.worker;
    let mut command = Command::new(exe);
    command.args(&slot.args);
    // A worker must not outlive its supervisor (killed, it cannot pass SIGTERM on).
    super::exit_with_parent(command.as_std_mut());
    match command.spawn() {
        Ok(mut child) => {
            let pid = child.id().unwrap_or(0);
            slot.state = State::Running {
                pid,
                since: Instant::now(),
            };
            tracing::info!(
                "worker {worker}: started (pid {pid}, start {})",
                slot.starts
            );
            metrics.write(&RunEvent::Start(Start::Worker(WorkerStart {
                t_s,
                worker,
                pid,
                start: slot.starts,
            })))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                let _ = tx.send((index, generation, status));
            });
            if let (Some(quota), true) = (quota, slot.speed < 1.0) {
                if let Err(e) = quota.place(worker, pid, slot.speed, slot.cores) {
                    send_signal(pid, libc::SIGKILL);
                    return Err(e.context(format!("cannot slow worker {worker} with cpu.max")));
                }
                metrics.write(&RunEvent::CpuQuota(crate::run::event::CpuQuota {
                    t_s,
                    worker,
                    cpu_max: super::cgroup::cpu_max(slot.speed, slot.cores),
                }))?;
            }
        }
        Err(e) => {
            // Reported like an exit, so the restart rules (and budget) apply.
            slot.state = State::Running {
                pid: 0,
                since: Instant::now(),
            };
            let _ = tx.send((index, generation, Err(e)));
        }
    }
    Ok(())
}

/// Records a worker's exit and decides what follows; `run_over`: a worker already finished, so
/// nothing is restarted. Returns true when this worker finished cleanly (the server stopped it).
fn on_exit(
    slot: &mut Slot,
    generation: u64,
    status: std::io::Result<ExitStatus>,
    run_over: bool,
    metrics: &mut MetricsWriter,
    t_s: f64,
) -> Result<bool> {
    use std::os::unix::process::ExitStatusExt;
    let State::Running { pid, since } = slot.state else {
        return Ok(false);
    };
    if generation != slot.generation {
        return Ok(false);
    }
    let worker = slot.spec.worker;
    let ran_s = since.elapsed().as_secs_f64();
    let (code, sig, how) = match &status {
        Ok(s) => (
            s.code(),
            s.signal(),
            match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit code {c}"),
                (_, Some(sig)) => format!("signal {sig}"),
                _ => "unknown status".into(),
            },
        ),
        Err(e) => (None, None, format!("could not start: {e}")),
    };
    metrics.write(&RunEvent::Exit(Exit::Running(WorkerExit {
        t_s,
        worker,
        pid,
        code,
        signal: sig,
        ran_s,
        chaos: slot.killed_by_chaos,
    })))?;
    if code == Some(0) {
        tracing::info!("worker {worker}: finished");
        slot.state = State::Finished;
        return Ok(true);
    }
    if run_over {
        tracing::info!("worker {worker}: {how} after the run ended; not restarted");
        slot.state = State::Finished;
        return Ok(false);
    }
    if matches!(code, Some(EXIT_CONFIG | EXIT_REFUSED)) {
        let why = if code == Some(EXIT_CONFIG) {
            "its configuration is unusable"
        } else {
            "the server refused it"
        };
        tracing::error!("worker {worker}: {how} — {why}; restarting cannot help, giving up on it");
        metrics.write(&RunEvent::GiveUp(GiveUp {
            t_s,
            worker,
            reason: why.into(),
            restarts: None,
            window_s: None,
        }))?;
        slot.state = State::GaveUp;
        return Ok(false);
    }
    let decision = if slot.killed_by_chaos {
        // An injected fault is not the worker's failure: restart it without spending budget.
        RestartDecision::After(0.0)
    } else {
        slot.restart.on_failure(t_s, ran_s)
    };
    match decision {
        RestartDecision::After(wait) => {
            tracing::warn!("worker {worker}: {how} after {ran_s:.1} s; restarting in {wait:.1} s");
            metrics.write(&RunEvent::Restart(Restart {
                t_s,
                worker,
                after_s: wait,
                chaos: slot.killed_by_chaos,
            }))?;
            slot.state = State::Waiting {
                until: Instant::now() + secs(wait),
            };
        }
        RestartDecision::GiveUp { restarts, window_s } => {
            tracing::error!(
                "worker {worker}: {how}; it was restarted {restarts} times in the last \
                 {window_s} s (supervisor.restart_budget) — giving up on it"
            );
            metrics.write(&RunEvent::GiveUp(GiveUp {
                t_s,
                worker,
                reason: "restart budget spent".into(),
                restarts: Some(restarts),
                window_s: Some(window_s),
            }))?;
            slot.state = State::GaveUp;
        }
    }
    Ok(false)
}

fn inject(
    fault: Fault,
    slots: &mut [Slot],
    metrics: &mut MetricsWriter,
    t_s: f64,
    now: Instant,
) -> Result<()> {
    let target = match fault {
        Fault::Kill { worker } | Fault::Pause { worker, .. } => worker,
    };
    let Some(slot) = slots.iter_mut().find(|s| s.spec.worker == target) else {
        return Ok(());
    };
    let State::Running { pid, .. } = slot.state else {
        return Ok(());
    };
    match fault {
        Fault::Kill { worker } => {
            tracing::warn!("chaos: killing worker {worker} (pid {pid})");
            slot.killed_by_chaos = true;
            send_signal(pid, libc::SIGKILL);
            metrics.write(&RunEvent::ChaosKill(ChaosSignal { t_s, worker, pid }))?;
        }
        Fault::Pause { worker, for_s } => {
            tracing::warn!("chaos: pausing worker {worker} (pid {pid}) for {for_s} s");
            send_signal(pid, libc::SIGSTOP);
            slot.paused_until = Some(now + secs(for_s));
            metrics.write(&RunEvent::ChaosPause(ChaosPause {
                t_s,
                worker,
                pid,
                for_s,
            }))?;
        }
    }
    Ok(())
}

/// Sends `sig` to process `pid` (a child of this process that has not been reaped).
fn send_signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) has no memory effects; `pid` is a positive process id.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        tracing::debug!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Passes `signal_name` on as SIGTERM, waits up to `grace_s` for the workers, kills the rest.
async fn shutdown(
    slots: &mut [Slot],
    rx: &mut mpsc::UnboundedReceiver<ExitReport>,
    signal_name: &str,
    grace_s: f64,
    metrics: &mut MetricsWriter,
    started: Instant,
) -> Result<SupervisionEnd> {
    let t_s = |now: Instant| now.duration_since(started).as_secs_f64();
    tracing::info!("{signal_name}: stopping the workers (grace {grace_s} s)");
    metrics.write(&RunEvent::Shutdown(Shutdown {
        t_s: t_s(Instant::now()),
        signal: signal_name.into(),
    }))?;
    for slot in slots.iter_mut() {
        match slot.state {
            State::Running { pid, .. } => {
                send_signal(pid, libc::SIGCONT);
                send_signal(pid, libc::SIGTERM);
            }
            State::Waiting { .. } => slot.state = State::Finished,
            _ => {}
        }
    }
    let deadline = Instant::now() + secs(grace_s);
    let running = |slots: &[Slot]| {
        slots
            .iter()
            .any(|s| matches!(s.state, State::Running { .. }))
    };
    let mut killed = false;
    while running(slots) {
        let timeout = if killed {
            Instant::now() + Duration::from_secs(5)
        } else {
            deadline
        };
        match tokio::time::timeout_at(timeout.into(), rx.recv()).await {
            Ok(Some((i, generation, status))) => {
                if generation == slots[i].generation {
                    let worker = slots[i].spec.worker;
                    let code = status.as_ref().ok().and_then(|s| s.code());
                    metrics.write(&RunEvent::Exit(Exit::Shutdown(ShutdownExit {
                        t_s: t_s(Instant::now()),
                        worker,
                        code,
                        shutdown: true,
                    })))?;
                    slots[i].state = State::Finished;
                }
            }
            Ok(None) => break,
            Err(_) if killed => break,
            Err(_) => {
                for slot in slots.iter() {
                    if let State::Running { pid, .. } = slot.state {
                        tracing::warn!("worker {}: still running; killing it", slot.spec.worker);
                        send_signal(pid, libc::SIGKILL);
                    }
                }
                killed = true;
            }
        }
    }
    metrics.write(&RunEvent::End(End::Supervisor(SupervisorEnd {
        t_s: t_s(Instant::now()),
        gave_up: Vec::new(),
    })))?;
    metrics.flush()?;
    Ok(SupervisionEnd::Signalled(signal_name.to_string()))
}
