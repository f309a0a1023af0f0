//! The parameter server's shell: the actor over `ServerCore`, the network side that checks and
//! reads each worker, and the checkpoint a restarted server resumes from.

mod actor;
mod checkpoint;
mod evaluation;
mod handlers;
mod net;
mod record;
mod round;

pub use actor::{Checkpointing, Resumed, ServerActor, ServerRunInfo};
pub use checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_VERSION};
pub use handlers::{Deliver, Disconnected, Register, RegisterResult, Registered};
pub use net::accept_loop;
