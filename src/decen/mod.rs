//! The communication-efficient and decentralized family (spec §9–§16): AR-SGD, Local SGD, double
//! averaging, SGP, OSGP, D-PSGD, SlowMo (with Lookahead and BMUF) and PC-ASGD.
//!
//! Every algorithm is a pure per-node state machine ([`DecentralizedNode`]); the node cores know
//! nothing of sockets or clocks. [`Engine`] runs all nodes of a run in one process (the simulator
//! and the exact tests); a networked worker drives one node the same way.

mod driver;
mod engine;
mod family;
mod gossip_node;
mod node;
mod params;
mod pc_asgd;
mod slowmo;
mod topology;

pub use driver::{DriverCounts, NodeDriver, ReceiveError, MAX_AHEAD};
pub use engine::{consensus_distance, node_mean, Engine, GradientOracle, IterationReport};
pub use family::{
    build_node, build_nodes, delayed_nodes, topology, validate_for_nodes, validate_params,
};
pub use gossip_node::{GossipNode, GossipSpec, MixTiming};
pub use node::{DecentralizedNode, GossipMessage, Incoming, Outgoing, Reduction};
pub use params::{
    BmufParams, BufferStrategy, DpsgdForm, GossipParams, LocalSgdParams, LookaheadParams,
    PcAsgdParams, SlowMoBase, SlowMoParams, Theta, ThetaRule, TopologyName,
};
pub use pc_asgd::{clipped_mixing, PcAsgdNode, PcAsgdSpec};
pub use slowmo::{apply_buffer_strategy, SlowMo};
pub use topology::{Mixing, Topology};
