//! The supervisor: runs the workers of one host as child processes, restarts those that die
//! (with backoff and a budget), injects faults on request, and passes shutdown signals on.
//! The rules are pure (`restart`, `chaos`); `shell` carries them out on real processes.

mod cgroup;
mod chaos;
mod config;
mod parent_death;
mod restart;
mod setup;
mod shell;

pub use cgroup::{cpu_max, CpuQuota};
pub use chaos::{ChaosConfig, ChaosSchedule, Fault};
pub use config::{SupervisedWorker, SupervisorConfig};
pub use parent_death::exit_with_parent;
pub use restart::{RestartDecision, RestartPolicy, RestartState};
pub use setup::SupervisionSetup;
pub use shell::{
    supervise, GaveUpOnWorkers, SupervisionEnd, EXIT_CONFIG, EXIT_GAVE_UP, EXIT_REFUSED,
};
