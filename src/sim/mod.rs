//! `lagom sim`: K virtual workers drive the real [`ServerCore`](crate::server::ServerCore) (or n
//! nodes the real decentralized cores) with a virtual clock and modelled worker speeds, on analytic
//! objectives with noise or on a real model and data set. Deterministic: the same configuration,
//! seed and thread count give byte-identical outputs.

mod clock;
mod config;
mod decentralized;
mod driver;
mod host_time;
mod logistic;
mod model;
mod objective;
mod quadratic;
mod setup;
mod source;

pub use clock::VirtualClock;
pub use config::{LogisticParams, ObjectiveName, QuadraticParams, SimConfig};
pub use driver::{run, SimResult};
pub use host_time::{HostTime, TimedSource};
pub use logistic::Logistic;
pub use model::ModelSource;
pub use objective::{build_objective, build_source, Objective};
pub use quadratic::Quadratic;
pub use setup::SimSetup;
pub use source::{AnalyticSource, Evaluation, GradientSource};
