//! The configuration of the decentralized family: `[algorithm.gossip]`, `[algorithm.local_sgd]`,
//! `[algorithm.slowmo]`, `[algorithm.lookahead]`, `[algorithm.bmuf]` and `[algorithm.pc_asgd]`.

use serde::{Deserialize, Serialize};

use super::{AlgorithmConfig, AlgorithmName};

/// The communication graph of the gossip algorithms (spec §11–§13, §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyName {
    /// SGP's default: one peer per iteration, `i + 2^(k mod L)` with `L = ⌊log2(n−1)⌋ + 1`.
    #[default]
    Exponential,
    /// Symmetric ring: both neighbours every iteration, weight 1/3 each (1/2 for n = 2).
    Ring,
    /// Time-varying perfect matching between even and odd nodes (D-PSGD's bipartite exchange),
    /// odd offsets 1, 3, 5, … cycled; weight 1/2. Needs an even number of nodes.
    Bipartite,
    /// Everyone with everyone, weight 1/n (the exact average J).
    Complete,
}

impl TopologyName {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyName::Exponential => "exponential",
            TopologyName::Ring => "ring",
            TopologyName::Bipartite => "bipartite",
            TopologyName::Complete => "complete",
        }
    }
}

/// Which D-PSGD recursion (spec §13: the two are not equivalent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DpsgdForm {
    /// Adapt-then-combine, the SGP repository's form: `x_i ← Σ_j W_ij (x_j − γ d_j)`.
    #[default]
    Atc,
    /// Combine-then-adapt, the paper's form: `x_i ← Σ_j W_ij x_j − γ ∇F_i(x_i)`.
    Cta,
}

/// `[algorithm.gossip]`: SGP, OSGP and D-PSGD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipParams {
    /// The graph (D-PSGD needs a symmetric one: ring, bipartite or complete).
    pub topology: TopologyName,
    /// D-PSGD's recursion.
    pub form: DpsgdForm,
    /// OSGP: a message may arrive up to this many iterations late (0 = always the next
    /// iteration, i.e. one-step-delayed); a node blocks once its oldest message is this late.
    pub synch_freq: u64,
}

impl Default for GossipParams {
    fn default() -> Self {
        GossipParams {
            topology: TopologyName::Exponential,
            form: DpsgdForm::Atc,
            synch_freq: 0,
        }
    }
}

/// What happens to the local optimizer's momentum buffers at an exact average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BufferStrategy {
    /// Set to zero (SlowMo's best for image classification).
    #[default]
    Reinit,
    /// Left as they are (local, never communicated).
    Maintain,
    /// Replaced by their exact average (costs one more vector per average).
    Sync,
}

impl BufferStrategy {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            BufferStrategy::Reinit => "reinit",
            BufferStrategy::Maintain => "maintain",
            BufferStrategy::Sync => "sync",
        }
    }
}

/// `[algorithm.local_sgd]`: Local SGD and double averaging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSgdParams {
    /// Average the models after every `period` local steps (after step k when
    /// `(k + 1) mod period == 0`, fairscale's convention).
    pub period: u64,
    /// The local momentum buffers at an average: `maintain` (Local SGD's default), `reinit`,
    /// or `sync` (what `double-averaging` always does).
    pub buffers: BufferStrategy,
}

impl Default for LocalSgdParams {
    fn default() -> Self {
        LocalSgdParams {
            period: 3,
            buffers: BufferStrategy::Maintain,
        }
    }
}

/// The base algorithm SlowMo wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SlowMoBase {
    /// Local SGD with `[algorithm.local_sgd] period`.
    #[default]
    LocalSgd,
    /// AllReduce SGD.
    AllreduceSgd,
    /// Stochastic gradient push.
    Sgp,
    /// Overlap SGP.
    Osgp,
    /// D-PSGD.
    Dpsgd,
    /// Double averaging.
    DoubleAveraging,
}

/// `[algorithm.slowmo]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowMoParams {
    /// The base algorithm.
    pub base: SlowMoBase,
    /// Slow learning rate α.
    pub alpha: f64,
    /// Slow momentum β.
    pub beta: f64,
    /// Outer period τ: the slow step follows base step k when `(k + 1) mod τ == 0`.
    pub period: u64,
    /// The base optimizer's buffers at each slow step.
    pub buffers: BufferStrategy,
}

impl Default for SlowMoParams {
    fn default() -> Self {
        SlowMoParams {
            base: SlowMoBase::LocalSgd,
            alpha: 1.0,
            beta: 0.7,
            period: 12,
            buffers: BufferStrategy::Reinit,
        }
    }
}

/// `[algorithm.lookahead]`: SlowMo with β = 0, τ = k over Local SGD averaging every k steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LookaheadParams {
    /// Inner steps per slow update.
    pub k: u64,
    /// Slow step size.
    pub alpha: f64,
}

impl Default for LookaheadParams {
    fn default() -> Self {
        LookaheadParams { k: 5, alpha: 0.5 }
    }
}

/// `[algorithm.bmuf]`: SlowMo with α = ζ (block learning rate), β = η_b (block momentum),
/// τ = block size, over Local SGD averaging once per block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BmufParams {
    /// η_b.
    pub block_momentum: f64,
    /// ζ.
    pub block_lr: f64,
    /// Local steps per block.
    pub block_size: u64,
}

impl Default for BmufParams {
    fn default() -> Self {
        BmufParams {
            block_momentum: 0.75,
            block_lr: 1.0,
            block_size: 12,
        }
    }
}

/// PC-ASGD's tradeoff θ between the predicting and the clipping candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Theta {
    /// A fixed θ ∈ [0, 1].
    Fixed(f64),
    /// A named rule of the practical variant, θ ∈ {0, 1} per iteration (see [`ThetaRule`]).
    Named(ThetaRule),
}

/// The named θ rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThetaRule {
    /// `"adaptive"`: one θ_k for the network, 1 when the nodes' mean local mini-batch loss at
    /// the predicting candidates is at most that at the clipping candidates (the paper's θ_k).
    Adaptive,
    /// `"adaptive-per-node"`: each node keeps its own lower-loss candidate (no reduction; the
    /// effective mixing is then only row-stochastic).
    AdaptivePerNode,
}

/// `[algorithm.pc_asgd]` (spec §16; the reconstruction is UNCONFIRMED, see the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcAsgdParams {
    /// The delay τ in iterations of a delayed node's messages and gradients.
    pub delay: u64,
    /// The delayed nodes; empty means the slow nodes of `[heterogeneity]`.
    pub delayed_nodes: Vec<usize>,
    /// The delay-compensation scale λ of the predicting step.
    pub lambda: f64,
    /// The tradeoff θ: a number in [0, 1], `"adaptive"` or `"adaptive-per-node"`.
    pub theta: Theta,
    /// The mixing graph (symmetric: ring, bipartite or complete).
    pub topology: TopologyName,
}

impl Default for PcAsgdParams {
    fn default() -> Self {
        PcAsgdParams {
            delay: 2,
            delayed_nodes: Vec::new(),
            lambda: 0.04,
            theta: Theta::Fixed(0.5),
            topology: TopologyName::Ring,
        }
    }
}

/// Checks the decentralized family's parameters; returns every problem as (key, message).
pub fn validate_decentralized_params(config: &AlgorithmConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, key: &'static str, message: String| {
        if !ok {
            problems.push((key, message));
        }
    };
    check(
        config.local_sgd.period >= 1,
        "algorithm.local_sgd.period",
        "must be ≥ 1, got 0".to_string(),
    );
    let s = &config.slowmo;
    check(
        s.period >= 1,
        "algorithm.slowmo.period",
        "must be ≥ 1, got 0".to_string(),
    );
    check(
        s.alpha.is_finite() && s.alpha > 0.0,
        "algorithm.slowmo.alpha",
        format!("must be a finite number > 0, got {}", s.alpha),
    );
    check(
        (0.0..1.0).contains(&s.beta),
        "algorithm.slowmo.beta",
        format!("must be in [0, 1), got {}", s.beta),
    );
    let l = &config.lookahead;
    check(
        l.k >= 1,
        "algorithm.lookahead.k",
        "must be ≥ 1, got 0".to_string(),
    );
    check(
        (0.0..=1.0).contains(&l.alpha),
        "algorithm.lookahead.alpha",
        format!("must be in [0, 1], got {}", l.alpha),
    );
    let b = &config.bmuf;
    check(
        b.block_size >= 1,
        "algorithm.bmuf.block_size",
        "must be ≥ 1, got 0".to_string(),
    );
    check(
        (0.0..1.0).contains(&b.block_momentum),
        "algorithm.bmuf.block_momentum",
        format!("must be in [0, 1), got {}", b.block_momentum),
    );
    check(
        b.block_lr.is_finite() && b.block_lr > 0.0,
        "algorithm.bmuf.block_lr",
        format!("must be a finite number > 0, got {}", b.block_lr),
    );
    let p = &config.pc_asgd;
    check(
        p.lambda.is_finite() && p.lambda >= 0.0,
        "algorithm.pc_asgd.lambda",
        format!("must be a finite number ≥ 0, got {}", p.lambda),
    );
    if let Theta::Fixed(t) = p.theta {
        check(
            (0.0..=1.0).contains(&t),
            "algorithm.pc_asgd.theta",
            format!("must be in [0, 1], \"adaptive\" or \"adaptive-per-node\", got {t}"),
        );
    }
    if config.name == AlgorithmName::PcAsgd {
        check(
            config.momentum == 0.0,
            "algorithm.momentum",
            format!(
                "pc-asgd's update is a plain gradient step (spec §16); set momentum = 0, got {}",
                config.momentum
            ),
        );
    }
    problems
}
