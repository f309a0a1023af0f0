//! The format of the run outputs, written out from the types themselves: one example of every
//! shape of [`RunEvent`] and [`RunDetails`], each named, and the tables of docs/outputs.md
//! rendered from them (a test keeps them equal to [`format_tables`]).

use super::details::{
    DecentralizedSimDetails, IncarnationApplied, RendezvousDetails, RunDetails, ServerDetails,
    SimDetails, TrainDetails,
};
use super::event::*;
use crate::server::{AppliedStats, AppliedWindow};

/// Every shape's name, in the order of docs/outputs.md's table.
pub const EVENT_SHAPES: &[&str] = &[
    "start/sim",
    "start/train",
    "start/rendezvous",
    "start/worker",
    "resume/server",
    "resume/rendezvous",
    "progress",
    "eval/server",
    "eval/rendezvous",
    "eval/sim",
    "eval/decentralized-sim",
    "eval/train",
    "train",
    "checkpoint",
    "rejected",
    "diverged/cluster",
    "diverged/loss",
    "join/server",
    "join/rendezvous",
    "leave/server",
    "leave/rendezvous",
    "end/cluster",
    "end/sim",
    "end/train",
    "end/supervisor",
    "exit/running",
    "exit/shutdown",
    "restart",
    "give_up",
    "chaos_kill",
    "chaos_pause",
    "chaos_resume",
    "cpu_quota",
    "run_over",
    "shutdown",
];

impl RunEvent {
    /// The name of this event's shape (`eval/server`, `restart`, …), one of [`EVENT_SHAPES`].
    pub fn shape(&self) -> &'static str {
        match self {
            RunEvent::Start(Start::Sim(_)) => "start/sim",
            RunEvent::Start(Start::Train(_)) => "start/train",
            RunEvent::Start(Start::Rendezvous(_)) => "start/rendezvous",
            RunEvent::Start(Start::Worker(_)) => "start/worker",
            RunEvent::Resume(Resume::Server(_)) => "resume/server",
            RunEvent::Resume(Resume::Rendezvous(_)) => "resume/rendezvous",
            RunEvent::Progress(_) => "progress",
            RunEvent::Eval(Eval::Server(_)) => "eval/server",
            RunEvent::Eval(Eval::Rendezvous(_)) => "eval/rendezvous",
            RunEvent::Eval(Eval::Sim(_)) => "eval/sim",
            RunEvent::Eval(Eval::DecentralizedSim(_)) => "eval/decentralized-sim",
            RunEvent::Eval(Eval::Train(_)) => "eval/train",
            RunEvent::Train(_) => "train",
            RunEvent::Checkpoint(_) => "checkpoint",
            RunEvent::Rejected(_) => "rejected",
            RunEvent::Diverged(Diverged::Cluster(_)) => "diverged/cluster",
            RunEvent::Diverged(Diverged::Loss(_)) => "diverged/loss",
            RunEvent::Join(Join::Server(_)) => "join/server",
            RunEvent::Join(Join::Rendezvous(_)) => "join/rendezvous",
            RunEvent::Leave(Leave::Server(_)) => "leave/server",
            RunEvent::Leave(Leave::Rendezvous(_)) => "leave/rendezvous",
            RunEvent::End(End::Cluster(_)) => "end/cluster",
            RunEvent::End(End::Sim(_)) => "end/sim",
            RunEvent::End(End::Train(_)) => "end/train",
            RunEvent::End(End::Supervisor(_)) => "end/supervisor",
            RunEvent::Exit(Exit::Running(_)) => "exit/running",
            RunEvent::Exit(Exit::Shutdown(_)) => "exit/shutdown",
            RunEvent::Restart(_) => "restart",
            RunEvent::GiveUp(_) => "give_up",
            RunEvent::ChaosKill(_) => "chaos_kill",
            RunEvent::ChaosPause(_) => "chaos_pause",
            RunEvent::ChaosResume(_) => "chaos_resume",
            RunEvent::CpuQuota(_) => "cpu_quota",
            RunEvent::RunOver(_) => "run_over",
            RunEvent::Shutdown(_) => "shutdown",
        }
    }
}

/// One example of every event shape with who writes it, in the order of [`EVENT_SHAPES`].
pub fn event_examples() -> Vec<(&'static str, RunEvent)> {
    let (t_s, updates, worker, pid) = (1.5, 100, 2, 4242);
    vec![
        (
            "`lagom sim` (both families)",
            RunEvent::Start(Start::Sim(SimStart {
                t_s: 0.0,
                updates: 0,
                kind: "sim".into(),
                algorithm: "ormo".into(),
                scheduler: "async".into(),
                workers: 2,
                speeds: vec![1.0, 0.25],
                objective: "quadratic".into(),
                dim: 10,
                seed: 7,
            })),
        ),
        (
            "`lagom train`",
            RunEvent::Start(Start::Train(TrainStart {
                t_s: 0.0,
                updates: 0,
                kind: "train".into(),
                model: "cnn".into(),
                params: 1000,
                layout_hash: "00000000deadbeef".into(),
                dataset: "fashion-mnist".into(),
                train_examples: 60000,
                test_examples: 10000,
                device: "cpu".into(),
                fast_kernels: true,
                batch_size: 128,
                steps_per_epoch: 469,
                seed: 7,
            })),
        ),
        (
            "rendezvous",
            RunEvent::Start(Start::Rendezvous(rendezvous_start())),
        ),
        (
            "supervisor: a worker process started",
            RunEvent::Start(Start::Worker(WorkerStart {
                t_s,
                worker,
                pid,
                start: 1,
            })),
        ),
        (
            "parameter server",
            RunEvent::Resume(Resume::Server(ServerResume { t_s, updates })),
        ),
        (
            "rendezvous",
            RunEvent::Resume(Resume::Rendezvous(rendezvous_start())),
        ),
        (
            "parameter server, every 100 updates",
            RunEvent::Progress(ServerProgress {
                t_s,
                updates,
                train_loss: Some(0.5),
                lr: 0.1,
                gradients_received: 104,
            }),
        ),
        (
            "parameter server",
            RunEvent::Eval(Eval::Server(ServerEval {
                t_s,
                updates,
                test_loss: Some(0.4),
                test_accuracy: 0.88,
                applied: applied_example(),
            })),
        ),
        (
            "rendezvous: the nodes' average and the round's report",
            RunEvent::Eval(Eval::Rendezvous(RendezvousEval {
                t_s,
                updates,
                test_loss: Some(0.4),
                test_accuracy: Some(0.88),
                train_loss: Some(0.5),
                nodes: 4,
                consensus_distance: Some(0.01),
                bytes_sent_per_node_iteration: 4000.0,
                bytes_received_per_node_iteration: 4000.0,
                iteration_s: 0.02,
                compute_share: 0.9,
                weight_sum: 4.0,
                given_up: 0,
                absorbed_late: 1,
                refused: 0,
                theta_mean: None,
            })),
        ),
        (
            "`lagom sim` (`test_accuracy`, `train_loss`: `objective = \"model\"` only)",
            RunEvent::Eval(Eval::Sim(SimEval {
                t_s,
                updates,
                loss: Some(0.4),
                test_accuracy: Some(0.88),
                train_loss: Some(0.5),
                lr: 0.1,
                applied: applied_example(),
            })),
        ),
        (
            "`lagom sim`, decentralized",
            RunEvent::Eval(Eval::DecentralizedSim(DecentralizedSimEval {
                t_s,
                updates,
                loss: Some(0.4),
                test_accuracy: Some(0.88),
                train_loss: Some(0.5),
                lr: 0.1,
                consensus_distance: Some(0.01),
                bytes_sent_per_node_iteration: 4000.0,
                bytes_received_per_node_iteration: 4000.0,
                iteration_s: 0.02,
            })),
        ),
        (
            "`lagom train`",
            RunEvent::Eval(Eval::Train(TrainEval {
                t_s,
                updates,
                epoch: 0.5,
                test_loss: None,
                test_accuracy: 0.5,
            })),
        ),
        (
            "`lagom train`, every `train.log_every` steps",
            RunEvent::Train(TrainWindow {
                t_s,
                updates,
                epoch: 0.5,
                lr: 0.1,
                train_loss: 0.7,
                train_accuracy: 0.75,
                images_per_s: 900.0,
            }),
        ),
        (
            "parameter server, rendezvous",
            RunEvent::Checkpoint(CheckpointWritten { t_s, updates }),
        ),
        (
            "parameter server, rendezvous, `lagom sim`",
            RunEvent::Rejected(Rejected {
                t_s,
                updates,
                worker,
                reason: "non_finite".into(),
                detail: "the gradient holds non-finite values".into(),
            }),
        ),
        (
            "parameter server, rendezvous",
            RunEvent::Diverged(Diverged::Cluster(ClusterDiverged {
                t_s,
                updates,
                reason: "8 training losses in a row above 1e6 or not finite".into(),
            })),
        ),
        (
            "`lagom sim`, `lagom train`",
            RunEvent::Diverged(Diverged::Loss(LossDiverged {
                t_s,
                updates,
                loss: None,
            })),
        ),
        (
            "parameter server",
            RunEvent::Join(Join::Server(ServerJoin {
                t_s,
                updates,
                worker,
                incarnation: 17,
                device: "cpu".into(),
            })),
        ),
        (
            "rendezvous",
            RunEvent::Join(Join::Rendezvous(RendezvousJoin {
                t_s,
                worker,
                incarnation: 17,
            })),
        ),
        (
            "parameter server",
            RunEvent::Leave(Leave::Server(ServerLeave {
                t_s,
                updates,
                worker,
            })),
        ),
        (
            "rendezvous",
            RunEvent::Leave(Leave::Rendezvous(WorkerOnly { t_s, worker })),
        ),
        (
            "parameter server, rendezvous",
            RunEvent::End(End::Cluster(ClusterEnd {
                t_s,
                updates,
                test_accuracy: Some(0.9),
            })),
        ),
        (
            "`lagom sim`",
            RunEvent::End(End::Sim(SimEnd {
                t_s,
                updates,
                loss: Some(0.1),
                test_accuracy: Some(0.9),
            })),
        ),
        (
            "`lagom train`",
            RunEvent::End(End::Train(TrainEnd {
                t_s,
                updates,
                loss: Some(0.3),
                test_accuracy: 0.9,
                images_per_s: 950.0,
            })),
        ),
        (
            "supervisor",
            RunEvent::End(End::Supervisor(SupervisorEnd {
                t_s,
                gave_up: vec![3],
            })),
        ),
        (
            "supervisor",
            RunEvent::Exit(Exit::Running(WorkerExit {
                t_s,
                worker,
                pid,
                code: None,
                signal: Some(9),
                ran_s: 12.0,
                chaos: true,
            })),
        ),
        (
            "supervisor, while shutting down",
            RunEvent::Exit(Exit::Shutdown(ShutdownExit {
                t_s,
                worker,
                code: Some(0),
                shutdown: true,
            })),
        ),
        (
            "supervisor",
            RunEvent::Restart(Restart {
                t_s,
                worker,
                after_s: 0.5,
                chaos: false,
            }),
        ),
        (
            "supervisor",
            RunEvent::GiveUp(GiveUp {
                t_s,
                worker,
                reason: "restart budget spent".into(),
                restarts: Some(5),
                window_s: Some(600.0),
            }),
        ),
        (
            "supervisor (chaos)",
            RunEvent::ChaosKill(ChaosSignal { t_s, worker, pid }),
        ),
        (
            "supervisor (chaos)",
            RunEvent::ChaosPause(ChaosPause {
                t_s,
                worker,
                pid,
                for_s: 5.0,
            }),
        ),
        (
            "supervisor (chaos)",
            RunEvent::ChaosResume(ChaosSignal { t_s, worker, pid }),
        ),
        (
            "supervisor",
            RunEvent::CpuQuota(CpuQuota {
                t_s,
                worker,
                cpu_max: "25000 100000".into(),
            }),
        ),
        ("supervisor", RunEvent::RunOver(WorkerOnly { t_s, worker })),
        (
            "supervisor, parameter server, rendezvous: a stop signal",
            RunEvent::Shutdown(Shutdown {
                t_s,
                signal: "SIGTERM".into(),
            }),
        ),
    ]
}

fn rendezvous_start() -> RendezvousStart {
    RendezvousStart {
        t_s: 0.0,
        updates: 0,
        kind: "server".into(),
        algorithm: "sgp".into(),
        workers: 4,
    }
}

/// The `applied` window of the examples: 6 gradients from 3 workers.
fn applied_example() -> AppliedStats {
    let mut w = AppliedWindow::new(3);
    for (worker, tau) in [(0, 0), (1, 2), (2, 5), (0, 1), (1, 3), (0, 0)] {
        w.record(worker, tau);
    }
    w.take()
}

/// One example of every kind of summary details, named by the run kind that writes it.
pub fn details_examples() -> Vec<(&'static str, RunDetails)> {
    vec![
        (
            "`lagom sim`",
            RunDetails::Sim(SimDetails {
                dim: 10,
                objective: "model".into(),
                final_test_accuracy: Some(0.9),
                final_train_loss: Some(0.3),
            }),
        ),
        (
            "`lagom sim`, decentralized",
            RunDetails::DecentralizedSim(DecentralizedSimDetails {
                bytes_received_per_node_iteration: 4000.0,
                bytes_sent_per_node_iteration: 4000.0,
                consensus_distance: Some(0.01),
                dim: 10,
                exact_averages: 3,
                iteration_s: 0.02,
                objective: "quadratic".into(),
                slow_steps: 0,
                final_test_accuracy: None,
                final_train_loss: None,
                theta_mean: Some(0.5),
            }),
        ),
        (
            "`lagom train`",
            RunDetails::Train(TrainDetails {
                batch_size: 128,
                dataset: "fashion-mnist".into(),
                device: "cpu".into(),
                epochs: 2.0,
                fast_kernels: true,
                final_test_accuracy: 0.9,
                final_test_loss: Some(0.3),
                images_per_s: 950.0,
                model: "cnn".into(),
                params: 1000,
            }),
        ),
        (
            "parameter server",
            RunDetails::Server(ServerDetails {
                applied_before_start: 0,
                applied_by_incarnation: vec![IncarnationApplied {
                    applied: 10,
                    incarnation: 17,
                    worker: 0,
                }],
                batch_size: 128,
                dataset: "fashion-mnist".into(),
                final_test_accuracy: Some(0.9),
                gradients_applied: 10,
                gradients_received: 11,
                gradients_rejected_total: 1,
                model: "cnn".into(),
                params: 1000,
            }),
        ),
        (
            "rendezvous (decentralized server)",
            RunDetails::Rendezvous(RendezvousDetails {
                batch_size: 128,
                bytes_received_per_node_iteration: 4000.0,
                bytes_sent_per_node_iteration: 4000.0,
                consensus_distance: Some(0.01),
                dataset: "fashion-mnist".into(),
                exact_averages: 0,
                final_test_accuracy: Some(0.9),
                iteration_s: 0.02,
                messages_absorbed_late: 0,
                messages_refused: 0,
                messages_given_up: 0,
                model: "cnn".into(),
                params: 1000,
                theta_mean: Some(0.5),
            }),
        ),
    ]
}

/// The keys of `value` as a JSON object, `event` left out, each in backquotes.
fn keys(value: &serde_json::Value) -> String {
    value
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| *k != "event")
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The tables (docs/outputs.md) of `metrics.jsonl` events and `summary.json` fields per run kind.
pub fn format_tables() -> String {
    let mut out = String::from("| `event` | written by | fields |\n|---|---|---|\n");
    for (writer, event) in event_examples() {
        let value = serde_json::to_value(&event).unwrap_or_default();
        let tag = value["event"].as_str().unwrap_or("?");
        out += &format!("| `{tag}` | {writer} | {} |\n", keys(&value));
    }
    out += "\n| run kind | `summary.json` fields besides the common ones |\n|---|---|\n";
    for (kind, details) in details_examples() {
        let value = serde_json::to_value(&details).unwrap_or_default();
        out += &format!("| {kind} | {} |\n", keys(&value));
    }
    out
}
