//! The running roles: thin actix shells that own sockets, threads and clocks and execute what the
//! pure cores decide. `server/` is the parameter server (the actor over `server::ServerCore`, its
//! network side, its checkpoint); `rendezvous/` is the decentralized run's server (the actor over
//! `decen::RendezvousCore`); `worker/` holds both kinds of worker and the peer links; `roles/`
//! assembles them into `--role server | worker | local`. `hello` is the first exchange (both
//! sides), `serve` the accept/read/write loops the server and the rendezvous share, `compute` and
//! `eval` the candle threads off the network arbiter, `shutdown` the early end on a stop signal.

mod compute;
mod eval;
mod hello;
mod rendezvous;
mod roles;
mod round_deadline;
mod serve;
mod server;
mod shutdown;
mod warn_limit;
mod worker;

pub use compute::{ComputeActor, ComputeGradient, ComputeLoss, ComputedGradient};
pub use eval::{EvalActor, Evaluate};
pub use hello::{HelloAnswer, PeerRequirements, WorkerHello};
pub use rendezvous::{DecenCheckpoint, DECEN_CHECKPOINT_FILE};
pub use roles::{
    load_split, run_local, run_server, run_worker_role, start_server, start_server_node,
    worker_compute, ServerNode, StartedServer, WorkerShard,
};
pub use serve::Queued;
pub use server::{
    accept_loop, Checkpoint, Deliver, Disconnected, Register, RegisterResult, Registered,
    ServerActor, ServerRunInfo, CHECKPOINT_FILE, CHECKPOINT_VERSION,
};
pub use shutdown::{Shutdown, StopSignals};
pub use worker::{run_worker, WorkerExit, WorkerSpec};
