//! The messages nodes exchange. Tensors travel as raw little-endian bytes (`bin`).

use serde::{Deserialize, Serialize};

use super::WireDtype;
use crate::decen::{NodeStats, PeerEntry, ReduceKind};

/// What a node is, as it claims in `Hello` and as its certificate names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The parameter server.
    Server,
    /// A training worker.
    Worker,
}

impl Role {
    /// The configuration / certificate name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Worker => "worker",
        }
    }
}

/// Why a server refused a peer or a message, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    /// The frame's protocol version is not this server's.
    ProtocolVersion,
    /// The peer's model layout hash differs from the server's.
    LayoutHash,
    /// The peer claims a role its certificate does not give it, or the wrong role.
    Role,
    /// The worker id is outside `0..K` or does not match its certificate.
    WorkerId,
    /// The message was not valid here (e.g. a gradient before `Hello`).
    Unexpected,
    /// The run is over.
    Finished,
    /// The peer sends tensors in another precision than the server's `net.wire_dtype`.
    WireDtype,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// First message of a client: who it is and what model it trains.
    Hello {
        /// The role it claims.
        role: Role,
        /// Worker slot (0-based).
        worker: u32,
        /// 0 for a new process; else the incarnation the server issued this process (in
        /// `Welcome`) before its connection broke. The server decides, never the worker.
        incarnation: u64,
        /// `ParamLayout::hash` of its model.
        layout_hash: u64,
        /// Number of trainable parameters.
        params_len: u64,
        /// The compute device, for logs and the summary (`cpu`, `cuda:0`).
        device: String,
        /// The UDP port it takes connections from other workers on (decentralized runs); 0 when
        /// it takes none.
        peer_port: u16,
        /// The precision it sends tensors in (`net.wire_dtype`; absent from older builds: f32).
        #[serde(default)]
        wire_dtype: WireDtype,
    },
    /// First message on a worker-to-worker connection: who dials, as which process, and whom.
    PeerHello {
        /// The dialling worker's slot.
        worker: u32,
        /// The dialling worker's incarnation, as the rendezvous issued it.
        incarnation: u64,
        /// The slot the dialler means to reach.
        to: u32,
        /// `ParamLayout::hash` of its model.
        layout_hash: u64,
    },
    /// The rendezvous's go for a decentralized worker: start at `iteration` from `params`.
    Start {
        /// The first iteration this worker runs.
        iteration: u64,
        /// Every slot's address and incarnation, `None` for a slot not present.
        peers: Vec<Option<PeerEntry>>,
        /// A live peer's shared state to take (SlowMo's outer point and slow momentum); empty
        /// when starting from the initial or the combined parameters.
        #[serde(with = "super::f32_bytes")]
        shared: Vec<f32>,
        /// The parameters to start from (the initial ones, a live peer's, or the last combined).
        #[serde(with = "super::f32_bytes")]
        params: Vec<f32>,
    },
    /// Who is present now (sent to every worker when a slot joins or leaves).
    Members {
        /// Every slot's address and incarnation, `None` for a slot not present.
        peers: Vec<Option<PeerEntry>>,
    },
    /// A gossip message between workers (push-sum share or plain parameters).
    Gossip {
        /// The sender's slot.
        from: u32,
        /// The sender's iteration when it sent.
        iteration: u64,
        /// The sender's lateness (see `decen::Outgoing`).
        lateness: u64,
        /// The push-sum weight share.
        weight: f32,
        /// The parameters.
        #[serde(with = "super::f32_bytes")]
        x: Vec<f32>,
    },
    /// A worker's part of an exact average.
    Reduce {
        /// The sender's slot.
        worker: u32,
        /// The iteration the average belongs to.
        iteration: u64,
        /// What is averaged.
        kind: ReduceKind,
        /// The values (for `params-and-buffers`: the parameters, then the buffers).
        #[serde(with = "super::f32_bytes")]
        values: Vec<f32>,
    },
    /// The exact average of the present workers' `Reduce`s.
    Reduced {
        /// The iteration it belongs to.
        iteration: u64,
        /// What was averaged.
        kind: ReduceKind,
        /// How many workers it averages.
        contributors: u32,
        /// The mean values, laid out as in `Reduce`.
        #[serde(with = "super::f32_bytes")]
        values: Vec<f32>,
    },
    /// A decentralized worker's iteration count (after each iteration; tiny).
    Progress {
        /// The sender's slot.
        worker: u32,
        /// Iterations it has completed.
        iteration: u64,
    },
    /// A decentralized worker's state for evaluation and metrics.
    Report {
        /// The sender's slot.
        worker: u32,
        /// Iterations it has completed.
        iteration: u64,
        /// Its counters since its previous report.
        stats: NodeStats,
        /// Its de-biased parameters.
        #[serde(with = "super::f32_bytes")]
        params: Vec<f32>,
    },
    /// The server's acceptance of a `Hello`.
    Welcome {
        /// The worker slot accepted.
        worker: u32,
        /// Number of worker slots K.
        workers: u32,
        /// The incarnation the server issued this process: its later messages and redials say
        /// it.
        incarnation: u64,
        /// The server's update count at the time.
        updates: u64,
        /// L2 weight decay the worker adds to its gradients (0 when the server applies it).
        weight_decay: f64,
    },
    /// A refusal; the peer is disconnected after it.
    Refuse {
        /// Stable reason code.
        code: RefusalCode,
        /// Human-readable detail.
        detail: String,
    },
    /// Parameters for a worker to compute its next gradient on.
    Params {
        /// The server iteration these parameters belong to (the gradient's `ite`).
        index: u64,
        /// The flat parameters.
        #[serde(with = "super::f32_bytes")]
        params: Vec<f32>,
    },
    /// A gradient computed on the parameters of iteration `ite`.
    Gradient {
        /// Worker slot.
        worker: u32,
        /// The worker's incarnation.
        incarnation: u64,
        /// Per-incarnation sequence number (exactly-once application).
        seq: u64,
        /// The `index` of the parameters it was computed on.
        ite: u64,
        /// Mean training loss of the batch.
        loss: f32,
        /// Examples in the batch.
        samples: u32,
        /// The flat gradient.
        #[serde(with = "super::f32_bytes")]
        grad: Vec<f32>,
    },
    /// Liveness, in both directions.
    Heartbeat {
        /// Sender's monotonic milliseconds (for round-trip estimates).
        at_ms: u64,
    },
    /// The run is over; the receiver should finish and exit.
    Stop {
        /// Why.
        reason: String,
    },
    /// The rendezvous asks a decentralized worker for its state after its current iteration
    /// (a rejoining peer starts from it).
    StateRequest {},
    /// A decentralized worker's answer to `StateRequest`.
    State {
        /// The sender's slot.
        worker: u32,
        /// Iterations it has completed.
        iteration: u64,
        /// The state every node holds alike (SlowMo's outer point and slow momentum; else empty).
        #[serde(with = "super::f32_bytes")]
        shared: Vec<f32>,
        /// Its de-biased parameters.
        #[serde(with = "super::f32_bytes")]
        params: Vec<f32>,
    },
    /// A gradient with only its largest coordinates (`net.compress = "topk"`): `values[i]` at
    /// coordinate `indices[i]`, every other coordinate 0. Otherwise as `Gradient`.
    SparseGradient {
        /// Worker slot.
        worker: u32,
        /// The worker's incarnation.
        incarnation: u64,
        /// Per-incarnation sequence number (exactly-once application).
        seq: u64,
        /// The `index` of the parameters it was computed on.
        ite: u64,
        /// Mean training loss of the batch.
        loss: f32,
        /// Examples in the batch.
        samples: u32,
        /// Coordinates, strictly increasing, each below the model's parameter count.
        #[serde(with = "super::u32_bytes")]
        indices: Vec<u32>,
        /// Their values.
        #[serde(with = "super::f32_bytes")]
        values: Vec<f32>,
    },
}

impl Message {
    /// The tensor a message carries as its last field, if any.
    pub fn tensor(&self) -> Option<&Vec<f32>> {
        match self {
            Message::Params { params, .. }
            | Message::Start { params, .. }
            | Message::Report { params, .. }
            | Message::State { params, .. } => Some(params),
            Message::Gradient { grad, .. } => Some(grad),
            Message::Gossip { x, .. } => Some(x),
            Message::Reduce { values, .. }
            | Message::Reduced { values, .. }
            | Message::SparseGradient { values, .. } => Some(values),
            _ => None,
        }
    }

    /// The tensor a message carries as its last field, mutably.
    pub fn tensor_mut(&mut self) -> Option<&mut Vec<f32>> {
        match self {
            Message::Params { params, .. }
            | Message::Start { params, .. }
            | Message::Report { params, .. }
            | Message::State { params, .. } => Some(params),
            Message::Gradient { grad, .. } => Some(grad),
            Message::Gossip { x, .. } => Some(x),
            Message::Reduce { values, .. }
            | Message::Reduced { values, .. }
            | Message::SparseGradient { values, .. } => Some(values),
            _ => None,
        }
    }

    /// The message kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Welcome { .. } => "welcome",
            Message::Refuse { .. } => "refuse",
            Message::Params { .. } => "params",
            Message::Gradient { .. } => "gradient",
            Message::SparseGradient { .. } => "sparse-gradient",
            Message::Heartbeat { .. } => "heartbeat",
            Message::PeerHello { .. } => "peer-hello",
            Message::Start { .. } => "start",
            Message::Members { .. } => "members",
            Message::Gossip { .. } => "gossip",
            Message::Reduce { .. } => "reduce",
            Message::Reduced { .. } => "reduced",
            Message::Progress { .. } => "progress",
            Message::Report { .. } => "report",
            Message::Stop { .. } => "stop",
            Message::StateRequest { .. } => "state-request",
            Message::State { .. } => "state",
        }
    }
}
