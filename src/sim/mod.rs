//! `lagom sim`: K virtual workers drive the real [`ServerCore`](crate::server::ServerCore) with a
//! virtual clock and modelled worker speeds, on analytic objectives with noise. Deterministic: the
//! same configuration and seed give byte-identical outputs.

mod clock;
mod config;
mod decentralized;
mod driver;
mod logistic;
mod objective;
mod quadratic;
mod setup;

pub use clock::VirtualClock;
pub use config::{LogisticParams, ObjectiveName, QuadraticParams, SimConfig};
pub use driver::{run, SimResult};
pub use logistic::Logistic;
pub use objective::{build_objective, Objective};
pub use quadratic::Quadratic;
pub use setup::SimSetup;
