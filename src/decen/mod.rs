//! The communication-efficient and decentralized family (spec §9–§16): AR-SGD, Local SGD, double
//! averaging, SGP, OSGP, D-PSGD, SlowMo (with Lookahead and BMUF) and PC-ASGD.
//!
//! Every algorithm is a pure per-node state machine ([`DecentralizedNode`]); a [`NodeDriver`]
//! runs one node's iteration protocol as inputs in, actions out, and [`RendezvousCore`] is the
//! run's membership and exact averages. [`InProcessCluster`] connects N drivers and one
//! rendezvous in memory (the simulator, the exact tests); a networked worker executes the same
//! driver's actions over QUIC. Nothing here knows of sockets, clocks or threads.

mod driver;
mod family;
mod gossip_node;
mod in_process;
mod mailbox;
mod mean;
mod node;
mod pc_asgd;
mod rendezvous;
mod report;
mod slowmo;
mod topology;

/// The family's `[algorithm]` sub-tables live with the rest of that section in `algo`.
pub use crate::algo::{
    BmufParams, BufferStrategy, DpsgdForm, GossipParams, LocalSgdParams, LookaheadParams,
    PcAsgdParams, SlowMoBase, SlowMoParams, Theta, ThetaRule, TopologyName,
};
pub use driver::{DriverAction, InputError, NodeDriver};
pub use family::{
    build_node, build_nodes, delayed_nodes, rendezvous_message_len, shared_state_len, topology,
    validate_for_nodes,
};
pub use gossip_node::{GossipNode, GossipSpec, MixTiming};
pub use in_process::{GradientOracle, InProcessCluster, IterationReport};
pub use mailbox::{
    look_ahead, DriverCounts, ReceiveError, LOOK_AHEAD_SLACK, MAX_AHEAD, MAX_WAITING,
};
pub use mean::{consensus_distance, node_mean};
pub use node::{
    DecentralizedNode, GossipMessage, Incoming, Outgoing, ReduceKind, Reduction, LOSS_NOT_COMPUTED,
    LOSS_POINTS,
};
pub use pc_asgd::{clipped_mixing, PcAsgdNode, PcAsgdSpec};
pub use rendezvous::{
    PeerEntry, RendezvousAction, RendezvousCore, RendezvousError, MAX_LEAD, MAX_PENDING,
};
pub use report::{combine_reports, NodeStats, RoundReport, RunTotals};
pub use slowmo::{apply_buffer_strategy, SlowMo};
pub use topology::{Mixing, Topology};
