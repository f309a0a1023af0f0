//! The `[sim]` configuration section.

use serde::{Deserialize, Serialize};

/// What the virtual workers compute gradients of: an analytic objective or a real model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveName {
    /// `½ Σ h_j w_j²` with chosen curvatures plus Gaussian gradient noise.
    #[default]
    Quadratic,
    /// Mean logistic loss on a generated, seeded data set, mini-batch gradients.
    Logistic,
    /// `[model]` trained on `[data]` with `train.batch_size` mini-batches: real forward and
    /// backward passes, evaluated on the test set.
    Model,
}

impl ObjectiveName {
    /// The configuration name (`quadratic`, `logistic`, `model`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectiveName::Quadratic => "quadratic",
            ObjectiveName::Logistic => "logistic",
            ObjectiveName::Model => "model",
        }
    }
}

/// `[sim.quadratic]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuadraticParams {
    /// Dimension (ignored when `curvatures` is given).
    pub dim: usize,
    /// Explicit curvatures `h_j`; empty means log-spaced from 1 down to `1/condition`.
    pub curvatures: Vec<f64>,
    /// Condition number of the generated curvatures.
    pub condition: f64,
    /// Standard deviation of the Gaussian noise added to each gradient element.
    pub noise: f64,
    /// Every coordinate of the initial point.
    pub init: f64,
}

impl Default for QuadraticParams {
    fn default() -> Self {
        QuadraticParams {
            dim: 16,
            curvatures: Vec::new(),
            condition: 10.0,
            noise: 0.1,
            init: 1.0,
        }
    }
}

/// `[sim.logistic]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticParams {
    /// Number of generated examples.
    pub samples: usize,
    /// Number of features (a bias feature is added).
    pub features: usize,
    /// Mini-batch size of one gradient.
    pub batch_size: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            samples: 2000,
            features: 20,
            batch_size: 16,
        }
    }
}

/// `[sim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// The objective.
    pub objective: ObjectiveName,
    /// Stop after this many server updates.
    pub updates: u64,
    /// Also stop when the virtual clock passes this many seconds (absent: no time limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_budget_s: Option<f64>,
    /// Virtual seconds one gradient takes on a worker of speed 1.
    pub step_time_s: f64,
    /// Evaluate the loss (and write a metrics line) every this many updates.
    pub eval_every: u64,
    /// Decentralized runs: the bandwidth of every node's link, in Gbit/s.
    pub bandwidth_gbps: f64,
    /// Decentralized runs: the one-way latency of a message, in milliseconds.
    pub latency_ms: f64,
    /// Parameters of the quadratic objective.
    pub quadratic: QuadraticParams,
    /// Parameters of the logistic-regression objective.
    pub logistic: LogisticParams,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            objective: ObjectiveName::Quadratic,
            updates: 2000,
            time_budget_s: None,
            step_time_s: 1.0,
            eval_every: 50,
            bandwidth_gbps: 10.0,
            latency_ms: 0.05,
            quadratic: QuadraticParams::default(),
            logistic: LogisticParams::default(),
        }
    }
}

impl SimConfig {
    /// Checks value ranges; returns every problem as (key, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.updates == 0 {
            problems.push(("sim.updates", "must be ≥ 1, got 0".to_string()));
        }
        if let Some(b) = self.time_budget_s {
            if b.is_nan() || b <= 0.0 {
                problems.push(("sim.time_budget_s", format!("must be > 0, got {b}")));
            }
        }
        if !(self.step_time_s.is_finite() && self.step_time_s > 0.0) {
            problems.push((
                "sim.step_time_s",
                format!("must be > 0, got {}", self.step_time_s),
            ));
        }
        if self.eval_every == 0 {
            problems.push(("sim.eval_every", "must be ≥ 1, got 0".to_string()));
        }
        if !(self.bandwidth_gbps.is_finite() && self.bandwidth_gbps > 0.0) {
            problems.push((
                "sim.bandwidth_gbps",
                format!("must be > 0, got {}", self.bandwidth_gbps),
            ));
        }
        if !(self.latency_ms.is_finite() && self.latency_ms >= 0.0) {
            problems.push((
                "sim.latency_ms",
                format!("must be ≥ 0, got {}", self.latency_ms),
            ));
        }
        let q = &self.quadratic;
        if q.curvatures.is_empty() && q.dim == 0 {
            problems.push(("sim.quadratic.dim", "must be ≥ 1, got 0".to_string()));
        }
        if let Some(bad) = q.curvatures.iter().find(|h| !(h.is_finite() && **h >= 0.0)) {
            problems.push((
                "sim.quadratic.curvatures",
                format!("must be finite and ≥ 0, got {bad}"),
            ));
        }
        if !(q.condition.is_finite() && q.condition >= 1.0) {
            problems.push((
                "sim.quadratic.condition",
                format!("must be ≥ 1, got {}", q.condition),
            ));
        }
        if !(q.noise.is_finite() && q.noise >= 0.0) {
            problems.push((
                "sim.quadratic.noise",
                format!("must be ≥ 0, got {}", q.noise),
            ));
        }
        let l = &self.logistic;
        if l.samples == 0 {
            problems.push(("sim.logistic.samples", "must be ≥ 1, got 0".to_string()));
        }
        if l.features == 0 {
            problems.push(("sim.logistic.features", "must be ≥ 1, got 0".to_string()));
        }
        if l.batch_size == 0 {
            problems.push(("sim.logistic.batch_size", "must be ≥ 1, got 0".to_string()));
        }
        problems
    }
}
