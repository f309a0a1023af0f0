//! Fuzz target of a decentralized node's driver over arbitrary inputs from the network, the
//! compute thread and the rendezvous.

use std::sync::Arc;

use super::input::Input;
use crate::algo::{AlgorithmConfig, AlgorithmName};
use crate::decen::{
    build_node, delayed_nodes, topology, DriverAction, GossipMessage, NodeDriver, ReduceKind,
    MAX_WAITING,
};

/// Nodes of the fuzzed run.
const NODES: usize = 3;
/// Parameters of the fuzzed model.
const DIM: usize = 3;

/// The driver of node 0 of any decentralized algorithm, fed arbitrary gossip (any sender,
/// iteration, lateness, length, values, weight), gradients, losses and averages (right or
/// wrong iteration and size), presence changes, taken-back messages and clock readings: it never
/// panics and never holds more than `MAX_WAITING` messages.
pub fn decen_driver_inputs(data: &[u8]) {
    let mut input = Input::new(data);
    let config = AlgorithmConfig {
        name: AlgorithmName::DECENTRALIZED[input.below(AlgorithmName::DECENTRALIZED.len())],
        ..AlgorithmConfig::default()
    };
    let Ok(topo) = topology(&config, NODES) else {
        return;
    };
    let delayed = Arc::new(delayed_nodes(&config, NODES, &[1]));
    let Ok(node) = build_node(
        &config,
        false,
        0,
        &Arc::new(topo),
        &delayed,
        vec![0.5f32; DIM],
    ) else {
        return;
    };
    let mut driver = NodeDriver::new(0, NODES, DIM, node, 0, 1.0);
    let mut now = 0.0;
    // What the driver asked for last: (iteration, losses wanted, average kind).
    let mut asked: (u64, usize, ReduceKind) = (0, 0, ReduceKind::Params);
    while !input.is_empty() {
        let k = driver.iteration();
        match input.u8() % 9 {
            0 => driver.start(0.1),
            1 | 2 => {
                now += f64::from(input.u8()) / 16.0;
                for action in driver.poll(now) {
                    match action {
                        DriverAction::ComputeGradient { iteration, .. } => asked.0 = iteration,
                        DriverAction::ComputeLosses { iteration, points } => {
                            asked = (iteration, points.len(), asked.2);
                        }
                        DriverAction::Reduce {
                            iteration, kind, ..
                        } => asked = (iteration, asked.1, kind),
                        _ => {}
                    }
                }
            }
            3 => {
                let iteration = if input.u8() % 4 == 0 {
                    input.iteration(k)
                } else {
                    asked.0
                };
                let len = if input.u8() % 8 == 0 {
                    input.below(2 * DIM)
                } else {
                    DIM
                };
                let _ = driver.on_gradient(iteration, input.values(len));
            }
            4 => {
                let losses = (0..asked.1).map(|_| f64::from(input.value())).collect();
                let _ = driver.on_losses(asked.0, losses);
            }
            5 => {
                let len = asked.2.len(DIM) + usize::from(input.u8() % 8 == 0);
                let _ = driver.on_reduced(asked.0, asked.2, input.values(len));
            }
            6 => {
                let present: Vec<bool> = (0..NODES).map(|_| input.u8() % 4 != 0).collect();
                driver.set_present(&present);
            }
            _ => {
                let len = if input.u8() % 16 == 0 {
                    input.below(2 * DIM)
                } else {
                    DIM
                };
                let message = GossipMessage {
                    from: input.below(NODES + 1),
                    iteration: input.iteration(k),
                    x: input.values(len),
                    weight: input.value(),
                };
                if input.u8() % 8 == 0 && message.x.len() == DIM {
                    driver.take_back(&message);
                } else {
                    let _ = driver.receive(u64::from(input.u8() % 3), message);
                }
            }
        }
        assert!(
            driver.waiting() <= MAX_WAITING,
            "{} waiting",
            driver.waiting()
        );
    }
}
