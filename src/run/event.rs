//! Every line of every `metrics.jsonl`: one tagged enum, the only definition of the format.
//!
//! A line is a JSON object whose `event` field names the variant; the other fields are those of
//! the shape the writer used. Some tags have one shape per run kind (an `eval` of `sim` holds the
//! objective's `loss`, one of a server the test accuracy): their shapes form an untagged enum, tried
//! in order with unknown fields refused, so a line reads back as the shape that wrote it.

use serde::{Deserialize, Serialize};

use crate::server::AppliedStats;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// A run (or a supervised worker process) started.
    Start(Start),
    /// A run continued from its checkpoint.
    Resume(Resume),
    /// The parameter server's training loss over the last window of updates.
    Progress(ServerProgress),
    /// The parameters were evaluated.
    Eval(Eval),
    /// `lagom train`'s training figures over the last window of steps.
    Train(TrainWindow),
    /// A checkpoint was written.
    Checkpoint(CheckpointWritten),
    /// The server refused a gradient.
    Rejected(Rejected),
    /// The run stopped as diverged.
    Diverged(Diverged),
    /// A worker joined.
    Join(Join),
    /// A worker left (closed, timed out or was replaced).
    Leave(Leave),
    /// The run ended.
    End(End),
    /// A supervised worker process exited.
    Exit(Exit),
    /// The supervisor will restart a worker.
    Restart(Restart),
    /// The supervisor stopped restarting a worker.
    GiveUp(GiveUp),
    /// Chaos killed a worker (SIGKILL).
    ChaosKill(ChaosSignal),
    /// Chaos paused a worker (SIGSTOP).
    ChaosPause(ChaosPause),
    /// A paused worker was continued (SIGCONT).
    ChaosResume(ChaosSignal),
    /// A slow worker was placed in a cgroup with a CPU quota.
    CpuQuota(CpuQuota),
    /// A worker finished cleanly: the run is over, no more faults or restarts.
    RunOver(WorkerOnly),
    /// A stop signal (supervisor: also the end of the run) ends the run early.
    Shutdown(Shutdown),
}

/// The shapes of `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Start {
    /// `lagom train`.
    Train(TrainStart),
    /// `lagom sim` (both families).
    Sim(SimStart),
    /// The decentralized rendezvous.
    Rendezvous(RendezvousStart),
    /// The supervisor started a worker process.
    Worker(WorkerStart),
}

/// The shapes of `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Resume {
    /// The decentralized rendezvous (the same fields as its `start`).
    Rendezvous(RendezvousStart),
    /// The parameter server.
    Server(ServerResume),
}

/// The shapes of `eval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Eval {
    /// The decentralized rendezvous: the node average, evaluated, and the round's report.
    Rendezvous(RendezvousEval),
    /// `lagom sim`, decentralized family.
    DecentralizedSim(DecentralizedSimEval),
    /// `lagom train`.
    Train(TrainEval),
    /// The parameter server.
    Server(ServerEval),
    /// `lagom sim`, parameter-server family.
    Sim(SimEval),
}

/// The shapes of `diverged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Diverged {
    /// A node of the cluster: why, in words.
    Cluster(ClusterDiverged),
    /// `lagom sim` and `lagom train`: the loss that did it.
    Loss(LossDiverged),
}

/// The shapes of `join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Join {
    /// A parameter-server worker.
    Server(ServerJoin),
    /// A decentralized node, at the rendezvous.
    Rendezvous(RendezvousJoin),
}

/// The shapes of `leave`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Leave {
    /// A parameter-server worker.
    Server(ServerLeave),
    /// A decentralized node, at the rendezvous.
    Rendezvous(WorkerOnly),
}

/// The shapes of `end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum End {
    /// `lagom train`.
    Train(TrainEnd),
    /// The parameter server and the rendezvous.
    Cluster(ClusterEnd),
    /// `lagom sim`.
    Sim(SimEnd),
    /// The supervisor.
    Supervisor(SupervisorEnd),
}

/// The shapes of `exit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Exit {
    /// While the run goes on.
    Running(WorkerExit),
    /// While the supervisor shuts down.
    Shutdown(ShutdownExit),
}

/// `start` of `lagom sim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimStart {
    /// Seconds since the start (0).
    pub t_s: f64,
    /// Updates so far (0).
    pub updates: u64,
    /// `sim`.
    pub kind: String,
    /// The algorithm's configuration name.
    pub algorithm: String,
    /// `async`, `sync` or `decentralized`.
    pub scheduler: String,
    /// K.
    pub workers: usize,
    /// Each worker's relative speed.
    pub speeds: Vec<f64>,
    /// The objective's name.
    pub objective: String,
    /// Its dimension.
    pub dim: usize,
    /// The run seed.
    pub seed: u64,
}

/// `start` of `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainStart {
    /// Seconds since the start (0).
    pub t_s: f64,
    /// Steps so far (0).
    pub updates: u64,
    /// `train`.
    pub kind: String,
    /// The model's name.
    pub model: String,
    /// Its parameter count.
    pub params: usize,
    /// Its layout hash, 16 hex digits.
    pub layout_hash: String,
    /// The data set's name.
    pub dataset: String,
    /// Training examples.
    pub train_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// The compute device, in words.
    pub device: String,
    /// Whether the fast CPU kernels are used.
    pub fast_kernels: bool,
    /// Examples per step.
    pub batch_size: usize,
    /// Steps per pass over the training set.
    pub steps_per_epoch: u64,
    /// The run seed.
    pub seed: u64,
}

/// `start` and `resume` of the rendezvous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendezvousStart {
    /// Seconds since the start (a resumed run's earlier time included).
    pub t_s: f64,
    /// Completed iterations.
    pub updates: u64,
    /// `server`.
    pub kind: String,
    /// The algorithm's configuration name.
    pub algorithm: String,
    /// Nodes.
    pub workers: usize,
}

/// `resume` of the parameter server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerResume {
    /// Seconds of the run before the restart.
    pub t_s: f64,
    /// Updates in the checkpoint.
    pub updates: u64,
}

/// `start` of a worker process (supervisor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerStart {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Worker slot.
    pub worker: usize,
    /// Its process id.
    pub pid: u32,
    /// How many times this slot has been started, this one included.
    pub start: u64,
}

/// `progress` of the parameter server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerProgress {
    /// Seconds since the start.
    pub t_s: f64,
    /// Applied updates.
    pub updates: u64,
    /// Mean of the losses reported with the window's gradients (`null` when none was finite).
    pub train_loss: Option<f64>,
    /// The learning rate now.
    pub lr: f64,
    /// Gradients received so far.
    pub gradients_received: u64,
}

/// `eval` of the parameter server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEval {
    /// Seconds since the start.
    pub t_s: f64,
    /// Updates of the evaluated parameters.
    pub updates: u64,
    /// Test loss (`null` when not finite).
    pub test_loss: Option<f64>,
    /// Test accuracy in [0, 1].
    pub test_accuracy: f64,
    /// The gradients applied between the previous evaluation's start and this one's.
    pub applied: AppliedStats,
}

/// `eval` of the rendezvous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendezvousEval {
    /// Seconds since the start.
    pub t_s: f64,
    /// The iteration of the exact average.
    pub updates: u64,
    /// Test loss of the average (`null` when not finite or not evaluated).
    pub test_loss: Option<f64>,
    /// Test accuracy of the average (`null` when not evaluated).
    pub test_accuracy: Option<f64>,
    /// Mean training loss the nodes reported (`null` when not finite).
    pub train_loss: Option<f64>,
    /// Nodes that reported.
    pub nodes: usize,
    /// Mean squared distance of the nodes from their average (`null` when not finite).
    pub consensus_distance: Option<f64>,
    /// Gossip bytes sent per node and iteration over the window.
    pub bytes_sent_per_node_iteration: f64,
    /// Gossip bytes received per node and iteration over the window.
    pub bytes_received_per_node_iteration: f64,
    /// Seconds per iteration over the window.
    pub iteration_s: f64,
    /// Share of the time spent computing.
    pub compute_share: f64,
    /// Sum of the push-sum weights (1 per node when nothing was lost).
    pub weight_sum: f64,
    /// Messages given up after the deadline.
    pub given_up: u64,
    /// Messages absorbed after their iteration.
    pub absorbed_late: u64,
    /// Peer messages the nodes refused over the window.
    pub refused: u64,
    /// PC-ASGD's mean θ (`null` for other algorithms).
    pub theta_mean: Option<f64>,
}

/// `eval` of `lagom sim`, parameter-server family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEval {
    /// Virtual seconds.
    pub t_s: f64,
    /// Applied updates.
    pub updates: u64,
    /// The objective at the server's parameters — a model's test loss (`null` when not finite).
    pub loss: Option<f64>,
    /// A model's test accuracy at the server's parameters (`null` for analytic objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// A model's mean mini-batch loss over the window's gradients (`null` for analytic ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// The learning rate now.
    pub lr: f64,
    /// The gradients applied since the previous `eval`.
    pub applied: AppliedStats,
}

/// `eval` of `lagom sim`, decentralized family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecentralizedSimEval {
    /// Virtual seconds.
    pub t_s: f64,
    /// Iterations.
    pub updates: u64,
    /// The objective at the node average — a model's test loss (`null` when not finite).
    pub loss: Option<f64>,
    /// A model's test accuracy at the node average (`null` for analytic objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// A model's mean mini-batch loss over the window's gradients (`null` for analytic ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// The learning rate now.
    pub lr: f64,
    /// Mean squared distance of the nodes from their average (`null` when not finite).
    pub consensus_distance: Option<f64>,
    /// Gossip bytes sent per node and iteration over the window.
    pub bytes_sent_per_node_iteration: f64,
    /// Gossip bytes received per node and iteration over the window.
    pub bytes_received_per_node_iteration: f64,
    /// Virtual seconds per iteration over the window.
    pub iteration_s: f64,
}

/// `eval` of `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainEval {
    /// Seconds since the start.
    pub t_s: f64,
    /// Steps.
    pub updates: u64,
    /// Passes over the training set.
    pub epoch: f64,
    /// Test loss (`null` when not finite).
    pub test_loss: Option<f64>,
    /// Test accuracy in [0, 1].
    pub test_accuracy: f64,
}

/// `train` of `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainWindow {
    /// Seconds since the start.
    pub t_s: f64,
    /// Steps.
    pub updates: u64,
    /// Passes over the training set.
    pub epoch: f64,
    /// The learning rate now.
    pub lr: f64,
    /// Mean training loss over the window.
    pub train_loss: f64,
    /// Training accuracy over the window.
    pub train_accuracy: f64,
    /// Images per second of compute over the window.
    pub images_per_s: f64,
}

/// `checkpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointWritten {
    /// Seconds since the start.
    pub t_s: f64,
    /// Updates (or iterations) in the checkpoint.
    pub updates: u64,
}

/// `rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// Seconds since the start.
    pub t_s: f64,
    /// Applied updates.
    pub updates: u64,
    /// The sender's slot.
    pub worker: usize,
    /// The reason's code (the key of `gradients_rejected` in the summary).
    pub reason: String,
    /// The reason in words.
    pub detail: String,
}

/// `diverged` of a cluster node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDiverged {
    /// Seconds since the start.
    pub t_s: f64,
    /// Updates (or iterations).
    pub updates: u64,
    /// Why, in words.
    pub reason: String,
}

/// `diverged` of `lagom sim` and `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossDiverged {
    /// Seconds since the start (virtual for `sim`).
    pub t_s: f64,
    /// Updates (or iterations, or steps).
    pub updates: u64,
    /// The loss (`null` when not finite).
    pub loss: Option<f64>,
}

/// `join` of a parameter-server worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerJoin {
    /// Seconds since the start.
    pub t_s: f64,
    /// Applied updates.
    pub updates: u64,
    /// Its slot.
    pub worker: usize,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its compute device, in words.
    pub device: String,
}

/// `join` at the rendezvous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendezvousJoin {
    /// Seconds since the start.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Its incarnation.
    pub incarnation: u64,
}

/// `leave` of a parameter-server worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerLeave {
    /// Seconds since the start.
    pub t_s: f64,
    /// Applied updates.
    pub updates: u64,
    /// Its slot.
    pub worker: usize,
}

/// An event about one worker and nothing else (`run_over`, `leave` at the rendezvous).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerOnly {
    /// Seconds since the start.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
}

/// `end` of the parameter server and the rendezvous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEnd {
    /// Seconds since the start.
    pub t_s: f64,
    /// Updates (or iterations).
    pub updates: u64,
    /// The last test accuracy (`null` when never evaluated).
    pub test_accuracy: Option<f64>,
}

/// `end` of `lagom sim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEnd {
    /// Virtual seconds.
    pub t_s: f64,
    /// Updates (or iterations).
    pub updates: u64,
    /// The last evaluated objective (`null` when not finite).
    pub loss: Option<f64>,
    /// A model's test accuracy at the end (absent for analytic objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
}

/// `end` of `lagom train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainEnd {
    /// Seconds since the start.
    pub t_s: f64,
    /// Steps.
    pub updates: u64,
    /// The last training loss (`null` when not finite).
    pub loss: Option<f64>,
    /// The final test accuracy.
    pub test_accuracy: f64,
    /// Images per second of compute over the whole run.
    pub images_per_s: f64,
}

/// `end` of the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorEnd {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// The slots it gave up on.
    pub gave_up: Vec<usize>,
}

/// `exit` of a worker while the run goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerExit {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Its process id (0 when it could not start).
    pub pid: u32,
    /// Its exit code (`null` when a signal ended it).
    pub code: Option<i32>,
    /// The signal that ended it (`null` when it exited).
    pub signal: Option<i32>,
    /// Seconds it ran.
    pub ran_s: f64,
    /// Whether chaos killed it.
    pub chaos: bool,
}

/// `exit` of a worker during the supervisor's shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownExit {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Its exit code (`null` when a signal ended it).
    pub code: Option<i32>,
    /// Always true.
    pub shutdown: bool,
}

/// `restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Seconds until the restart.
    pub after_s: f64,
    /// Whether chaos killed it (such restarts spend no budget).
    pub chaos: bool,
}

/// `give_up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiveUp {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Why, in words.
    pub reason: String,
    /// Restarts within the budget's window (present when the budget was spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<usize>,
    /// The budget's window in seconds (present when the budget was spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<f64>,
}

/// `chaos_kill` and `chaos_resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosSignal {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Its process id.
    pub pid: u32,
}

/// `chaos_pause`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosPause {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// Its process id.
    pub pid: u32,
    /// Seconds it stays paused.
    pub for_s: f64,
}

/// `cpu_quota`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuQuota {
    /// Seconds since the supervisor started.
    pub t_s: f64,
    /// Its slot.
    pub worker: usize,
    /// What was written to the cgroup's `cpu.max` ("quota period" in µs).
    pub cpu_max: String,
}

/// `shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// Seconds since the start (of the run, or of the supervisor).
    pub t_s: f64,
    /// The signal's name, or why the run is over.
    pub signal: String,
}
