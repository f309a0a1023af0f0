//! The parameter server's core: iteration counter, waiting set, the two schedulers, per-worker
//! bookkeeping and membership, as a pure state machine (events in, actions out, no I/O).

mod core;
mod membership;
mod snapshot;
mod staleness;
mod window;

pub use self::core::{
    Action, Event, GradientIn, ParamsForm, RejectReason, ServerCore, ServerCoreConfig, NEW_PROCESS,
};
pub use membership::WorkerRecord;
pub use snapshot::CoreSnapshot;
pub use staleness::{StalenessHistogram, StalenessSummary};
pub use window::{AppliedStats, AppliedWindow};
