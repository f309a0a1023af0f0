//! The `[algorithm]` configuration section: which algorithm, its hyper-parameters and its own
//! sub-tables, with the names the spec uses.

use serde::{Deserialize, Serialize};

use super::decen_params::{
    validate_decentralized_params, BmufParams, GossipParams, LocalSgdParams, LookaheadParams,
    PcAsgdParams, SlowMoParams,
};
use super::{DelayRule, LrSchedule};

/// The parameter-server algorithms, by their configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmName {
    /// Asynchronous SGD (Algorithm 1, option II).
    #[default]
    Asgd,
    /// Synchronous SGD (Algorithm 1, option I), per-gradient learning rate.
    Ssgd,
    /// Synchronous SGD with heavy-ball momentum over rounds (§2).
    Ssgdm,
    /// Asynchronous SGD with one server momentum buffer fed stale gradients (§3).
    NaiveAsgdm,
    /// One momentum buffer per worker (§4).
    ShiftedMomentum,
    /// One buffer updated per cycle, workers get a future-position estimate (§5).
    Smega2,
    /// Ordered momentum (§6).
    Ormo,
    /// Ordered momentum with a delay-adaptive learning rate (§7).
    OrmoDa,
    /// Delay-compensated ASGD (§8).
    Dcasgd,
    /// AllReduce SGD: every step on the exact mean gradient (§9).
    AllreduceSgd,
    /// Local SGD: local steps, an exact model average every `local_sgd.period` (§10).
    LocalSgd,
    /// Stochastic gradient push over `gossip.topology` (§11).
    Sgp,
    /// Overlap SGP: one-step-delayed push-sum messages (§12).
    Osgp,
    /// Decentralized parallel SGD with symmetric doubly stochastic mixing (§13).
    Dpsgd,
    /// Local SGD that averages the momentum buffers with the models (§15).
    DoubleAveraging,
    /// SlowMo over `slowmo.base` (§14).
    Slowmo,
    /// Lookahead: SlowMo with β = 0 over Local SGD (§14).
    Lookahead,
    /// Blockwise model-update filtering: SlowMo over Local SGD (§14).
    Bmuf,
    /// Predicting-clipping asynchronous SGD with delayed neighbours (§16).
    PcAsgd,
}

impl AlgorithmName {
    /// Every parameter-server algorithm, in the spec's order.
    pub const ALL: [AlgorithmName; 9] = [
        AlgorithmName::Asgd,
        AlgorithmName::Ssgd,
        AlgorithmName::Ssgdm,
        AlgorithmName::NaiveAsgdm,
        AlgorithmName::ShiftedMomentum,
        AlgorithmName::Smega2,
        AlgorithmName::Ormo,
        AlgorithmName::OrmoDa,
        AlgorithmName::Dcasgd,
    ];

    /// The decentralized family, in the spec's order.
    pub const DECENTRALIZED: [AlgorithmName; 10] = [
        AlgorithmName::AllreduceSgd,
        AlgorithmName::LocalSgd,
        AlgorithmName::Sgp,
        AlgorithmName::Osgp,
        AlgorithmName::Dpsgd,
        AlgorithmName::DoubleAveraging,
        AlgorithmName::Slowmo,
        AlgorithmName::Lookahead,
        AlgorithmName::Bmuf,
        AlgorithmName::PcAsgd,
    ];

    /// The algorithm whose configuration name is `name`, if any.
    pub fn from_name(name: &str) -> Option<AlgorithmName> {
        Self::ALL
            .into_iter()
            .chain(Self::DECENTRALIZED)
            .find(|a| a.as_str() == name)
    }

    /// True for the decentralized family (nodes hold the model; no server update rule).
    pub fn is_decentralized(self) -> bool {
        Self::DECENTRALIZED.contains(&self)
    }

    /// The configuration name (`"naive-asgdm"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AlgorithmName::Asgd => "asgd",
            AlgorithmName::Ssgd => "ssgd",
            AlgorithmName::Ssgdm => "ssgdm",
            AlgorithmName::NaiveAsgdm => "naive-asgdm",
            AlgorithmName::ShiftedMomentum => "shifted-momentum",
            AlgorithmName::Smega2 => "smega2",
            AlgorithmName::Ormo => "ormo",
            AlgorithmName::OrmoDa => "ormo-da",
            AlgorithmName::Dcasgd => "dcasgd",
            AlgorithmName::AllreduceSgd => "allreduce-sgd",
            AlgorithmName::LocalSgd => "local-sgd",
            AlgorithmName::Sgp => "sgp",
            AlgorithmName::Osgp => "osgp",
            AlgorithmName::Dpsgd => "dpsgd",
            AlgorithmName::DoubleAveraging => "double-averaging",
            AlgorithmName::Slowmo => "slowmo",
            AlgorithmName::Lookahead => "lookahead",
            AlgorithmName::Bmuf => "bmuf",
            AlgorithmName::PcAsgd => "pc-asgd",
        }
    }

    /// The scheduler the algorithm is defined with: synchronous for SSGD and SSGDm, else async.
    pub fn default_scheduler(self) -> Scheduler {
        match self {
            AlgorithmName::Ssgd | AlgorithmName::Ssgdm => Scheduler::Sync,
            _ => Scheduler::Async,
        }
    }
}

impl std::fmt::Display for AlgorithmName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When the server sends parameters back (Algorithm 1's two options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// Option II: the worker that delivered gets fresh parameters at once.
    Async,
    /// Option I: parameters go out only when every live worker is waiting.
    Sync,
}

impl Scheduler {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Async => "async",
            Scheduler::Sync => "sync",
        }
    }
}

/// Which future-position estimate SMEGA² sends to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Smega2Estimate {
    /// θ after N further arrivals of zero gradients (the reference code's default).
    #[default]
    Advanced,
    /// `θ − ηβNv`.
    Naive,
}

/// `[algorithm.smega2]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smega2Params {
    /// The estimate sent to workers.
    pub estimate: Smega2Estimate,
    /// Momentum cycle N; 0 means "the number of workers" (the reference code's choice).
    pub cycle: usize,
    /// Dampening of the buffer update (0 in practice).
    pub dampening: f64,
}

impl Default for Smega2Params {
    fn default() -> Self {
        Smega2Params {
            estimate: Smega2Estimate::Advanced,
            cycle: 0,
            dampening: 0.0,
        }
    }
}

/// The delay-adaptive rule of OrMo-DA, by configuration name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DelayRuleName {
    /// `η_t = η · min(1, cK/τ_t)` (the spec's default).
    #[default]
    InverseDelay,
    /// `η_t = η` if `τ_t ≤ cK`, else the gradient is dropped.
    Threshold,
    /// `η_t = η` (plain OrMo).
    Constant,
}

/// `[algorithm.ormo_da]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrmoDaParams {
    /// Which rule maps a delay to a learning rate.
    pub rule: DelayRuleName,
    /// The constant `c` of the rule (delays up to `c·K` keep the full learning rate).
    pub c: f64,
}

impl Default for OrmoDaParams {
    fn default() -> Self {
        OrmoDaParams {
            rule: DelayRuleName::InverseDelay,
            c: 1.0,
        }
    }
}

impl OrmoDaParams {
    /// The configured rule as the core uses it.
    pub fn rule(&self) -> DelayRule {
        match self.rule {
            DelayRuleName::InverseDelay => DelayRule::InverseDelay { c: self.c },
            DelayRuleName::Threshold => DelayRule::Threshold { c: self.c },
            DelayRuleName::Constant => DelayRule::Constant,
        }
    }
}

/// `[algorithm.dcasgd]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcAsgdParams {
    /// λ (DC-ASGD-c) or λ0 (DC-ASGD-a).
    pub lambda: f64,
    /// DC-ASGD-a: `λ_t = λ0 / √(ms + ε)` with a running mean square of the gradient.
    pub adaptive: bool,
    /// Decay `m` of the running mean square (adaptive only).
    pub ms_decay: f64,
    /// ε of the adaptive rule.
    pub epsilon: f64,
}

impl Default for DcAsgdParams {
    fn default() -> Self {
        DcAsgdParams {
            lambda: 0.04,
            adaptive: false,
            ms_decay: 0.95,
            epsilon: 1e-7,
        }
    }
}

/// `[algorithm]`: the server's update rule and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlgorithmConfig {
    /// Which algorithm.
    pub name: AlgorithmName,
    /// Base learning rate η (applied per gradient).
    pub lr: f64,
    /// Momentum β (ignored by ASGD, SSGD).
    pub momentum: f64,
    /// Weight decay (L2 coefficient).
    pub weight_decay: f64,
    /// Scheduler override; absent means the algorithm's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Scheduler>,
    /// Linear warm-up length in server updates (0 = none).
    pub warmup_updates: u64,
    /// The warm-up starts at `lr × warmup_start_factor`.
    pub warmup_start_factor: f64,
    /// Server updates at which the learning rate is multiplied by `lr_decay_factor`.
    pub lr_decay_at: Vec<u64>,
    /// The step-decay factor.
    pub lr_decay_factor: f64,
    /// SMEGA²'s own parameters.
    pub smega2: Smega2Params,
    /// OrMo-DA's own parameters.
    pub ormo_da: OrmoDaParams,
    /// DC-ASGD's own parameters.
    pub dcasgd: DcAsgdParams,
    /// SGP's, OSGP's and D-PSGD's graph and timing.
    pub gossip: GossipParams,
    /// Local SGD's and double averaging's period and buffers.
    pub local_sgd: LocalSgdParams,
    /// SlowMo's base, α, β, τ and buffer strategy.
    pub slowmo: SlowMoParams,
    /// Lookahead's k and α.
    pub lookahead: LookaheadParams,
    /// BMUF's block momentum, block learning rate and block size.
    pub bmuf: BmufParams,
    /// PC-ASGD's delay, λ, θ and graph.
    pub pc_asgd: PcAsgdParams,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig {
            name: AlgorithmName::Asgd,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            scheduler: None,
            warmup_updates: 0,
            warmup_start_factor: 0.1,
            lr_decay_at: Vec::new(),
            lr_decay_factor: 0.1,
            smega2: Smega2Params::default(),
            ormo_da: OrmoDaParams::default(),
            dcasgd: DcAsgdParams::default(),
            gossip: GossipParams::default(),
            local_sgd: LocalSgdParams::default(),
            slowmo: SlowMoParams::default(),
            lookahead: LookaheadParams::default(),
            bmuf: BmufParams::default(),
            pc_asgd: PcAsgdParams::default(),
        }
    }
}

impl AlgorithmConfig {
    /// The scheduler in force: the override, else the algorithm's own.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
            .unwrap_or_else(|| self.name.default_scheduler())
    }

    /// The learning-rate schedule these settings describe.
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule {
            base: self.lr,
            warmup_updates: self.warmup_updates,
            warmup_start_factor: self.warmup_start_factor,
            decay_at: self.lr_decay_at.clone(),
            decay_factor: self.lr_decay_factor,
        }
    }

    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            problems.push((
                "algorithm.lr",
                format!("must be a finite number ≥ 0, got {}", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            problems.push((
                "algorithm.momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            problems.push((
                "algorithm.weight_decay",
                format!("must be a finite number ≥ 0, got {}", self.weight_decay),
            ));
        }
        if !(self.warmup_start_factor > 0.0 && self.warmup_start_factor <= 1.0) {
            problems.push((
                "algorithm.warmup_start_factor",
                format!("must be in (0, 1], got {}", self.warmup_start_factor),
            ));
        }
        if !(self.lr_decay_factor > 0.0 && self.lr_decay_factor.is_finite()) {
            problems.push((
                "algorithm.lr_decay_factor",
                format!("must be a finite number > 0, got {}", self.lr_decay_factor),
            ));
        }
        if !(self.ormo_da.c > 0.0 && self.ormo_da.c.is_finite()) {
            problems.push((
                "algorithm.ormo_da.c",
                format!("must be > 0, got {}", self.ormo_da.c),
            ));
        }
        if !(0.0..1.0).contains(&self.smega2.dampening) {
            problems.push((
                "algorithm.smega2.dampening",
                format!("must be in [0, 1), got {}", self.smega2.dampening),
            ));
        }
        if !(self.dcasgd.lambda.is_finite() && self.dcasgd.lambda >= 0.0) {
            problems.push((
                "algorithm.dcasgd.lambda",
                format!("must be a finite number ≥ 0, got {}", self.dcasgd.lambda),
            ));
        }
        if !(0.0..1.0).contains(&self.dcasgd.ms_decay) {
            problems.push((
                "algorithm.dcasgd.ms_decay",
                format!("must be in [0, 1), got {}", self.dcasgd.ms_decay),
            ));
        }
        if self.dcasgd.epsilon.is_nan() || self.dcasgd.epsilon <= 0.0 {
            problems.push((
                "algorithm.dcasgd.epsilon",
                format!("must be > 0, got {}", self.dcasgd.epsilon),
            ));
        }
        problems.extend(validate_decentralized_params(self));
        problems
    }
}
