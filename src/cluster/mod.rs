//! The cluster: actix shells around the pure cores — the server actor, the worker's network
//! loop and compute thread, evaluation off the update path — and the roles that assemble them.

mod checkpoint;
mod compute_actor;
mod decen_loop;
mod decen_worker;
mod eval_actor;
mod hello;
mod peer_net;
mod rendezvous;
mod rendezvous_net;
mod roles;
mod server_actor;
mod server_net;
mod worker;

pub use checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_VERSION};
pub use compute_actor::{ComputeActor, ComputeGradient, ComputeLoss, ComputedGradient};
pub use eval_actor::{EvalActor, Evaluate};
pub use rendezvous::{DecenCheckpoint, DECEN_CHECKPOINT_FILE};
pub use roles::{
    load_split, run_local, run_server, run_worker_role, start_server, start_server_node,
    ServerNode, StartedServer,
};
pub use server_actor::{
    Deliver, Disconnected, Register, RegisterResult, ServerActor, ServerRunInfo,
};
pub use server_net::{accept_loop, PeerRequirements};
pub use worker::{run_worker, WorkerExit, WorkerSpec};
