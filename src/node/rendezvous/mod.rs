//! The decentralized run's server: the actor over `decen::RendezvousCore` (membership, exact
//! averages, evaluation of the reported mean model, checkpoints) and its network side.

mod actor;
mod checkpoint;
mod handlers;
mod net;
mod outgoing;
mod rejoin;
mod round;

pub use actor::{RendezvousActor, RendezvousSetup};
pub use checkpoint::{DecenCheckpoint, DECEN_CHECKPOINT_FILE};
pub use net::rendezvous_accept_loop;
