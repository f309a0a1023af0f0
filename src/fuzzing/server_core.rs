//! Fuzz target of the parameter server's core over arbitrary event sequences.

use std::collections::BTreeSet;

use super::input::Input;
use crate::algo::{self, AlgorithmConfig, AlgorithmName, LrSchedule, Scheduler};
use crate::server::{Action, Event, GradientIn, ServerCore, ServerCoreConfig};

/// Worker slots of the fuzzed server.
const WORKERS: usize = 3;
/// Parameters of the fuzzed model.
const DIM: usize = 4;

/// `ServerCore` of any parameter-server algorithm and either scheduler over an arbitrary sequence
/// of joins, leaves, gradients (any incarnation, sequence number, index, length, values) and
/// starts: it never panics, its update counter only grows by one per applied gradient, a
/// (worker, incarnation, sequence number) is applied at most once, and nothing is applied after
/// the update budget.
pub fn server_core_events(data: &[u8]) {
    let mut input = Input::new(data);
    let name = AlgorithmName::ALL[input.below(AlgorithmName::ALL.len())];
    let scheduler = if input.u8() % 2 == 0 {
        Scheduler::Async
    } else {
        Scheduler::Sync
    };
    let budget = 1 + u64::from(input.u8() % 64);
    let config = AlgorithmConfig {
        name,
        lr: 0.1,
        ..AlgorithmConfig::default()
    };
    let Ok(algorithm) = algo::build(&config, WORKERS, vec![0.5f32; DIM]) else {
        return;
    };
    let mut core = ServerCore::new(
        ServerCoreConfig {
            workers: WORKERS,
            scheduler,
            max_updates: Some(budget),
            lr: LrSchedule::constant(0.1),
        },
        algorithm,
    );
    let mut applied = BTreeSet::new();
    while !input.is_empty() {
        let before = core.updates();
        let worker = input.below(WORKERS + 1);
        let (event, sent) = match input.u8() % 8 {
            0 => {
                let incarnation = match input.u8() % 3 {
                    0 => 0,
                    1 => core.workers().get(worker).map_or(0, |r| r.incarnation),
                    _ => input.u64(),
                };
                let e = Event::Join {
                    worker,
                    incarnation,
                };
                (e, None)
            }
            1 => (Event::Leave { worker }, None),
            2 => (Event::StartWithPresent, None),
            _ => {
                let current = core.workers().get(worker).map_or(0, |r| r.incarnation);
                let incarnation = if input.u8() % 8 == 0 {
                    input.u64()
                } else {
                    current
                };
                let seq = u64::from(input.u8() % 16);
                let ite = input.iteration(core.updates());
                let len = if input.u8() % 16 == 0 {
                    input.below(2 * DIM)
                } else {
                    DIM
                };
                let grad = input.values(len);
                let g = GradientIn {
                    worker,
                    incarnation,
                    seq,
                    ite,
                    grad,
                };
                (Event::Gradient(g), Some((worker, incarnation, seq)))
            }
        };
        let actions = core.handle(event);
        let applied_now = actions
            .iter()
            .filter(|a| matches!(a, Action::Applied { .. }))
            .count() as u64;
        assert_eq!(
            core.updates(),
            before + applied_now,
            "updates move by applied"
        );
        assert!(applied_now <= 1, "one gradient, {applied_now} updates");
        if applied_now == 1 {
            let key = sent.expect("only a gradient is applied");
            assert!(applied.insert(key), "{key:?} applied twice");
            assert!(core.updates() <= budget, "applied past the budget");
        }
    }
}
