//! The roles, assembled from the shells: `server` (the parameter server or, for the decentralized
//! family, the rendezvous), `worker` (either kind), and `local` (a server in this process and a
//! supervisor running worker processes of this binary on loopback QUIC).

mod local;
mod rendezvous;
mod server;
mod setup;
mod worker;

pub use local::run_local;
pub use server::{run_server, start_server, start_server_node, StartedServer};
pub use setup::load_split;
pub use setup::{worker_compute, ServerNode, WorkerShard};
pub use worker::run_worker_role;
