//! lagom: distributed training for heterogeneous clusters.
//!
//! Layers, from the bottom: [`algo`] (pure update rules), [`server`] (the parameter server's pure
//! core), [`heterogeneity`] (worker speed model), [`sim`] (virtual-clock driver of the cores),
//! [`run`] (outputs), [`config`] (layered configuration), and the command line in `main.rs`.

pub mod algo;
pub mod compress;
pub mod compute;
pub mod config;
pub mod data;
pub mod decen;
pub mod fuzzing;
pub mod heterogeneity;
pub mod kernels;
pub mod logging;
pub mod memory_return;
pub mod model;
pub mod monitor;
pub mod net;
pub mod node;
pub mod proto;
pub mod report;
pub mod run;
pub mod server;
pub mod sim;
pub mod supervisor;
pub mod sweep;
pub mod train;
