//! Fuzz target of the rendezvous core over arbitrary member inputs.

use super::input::Input;
use crate::decen::{NodeStats, ReduceKind, RendezvousAction, RendezvousCore, MAX_PENDING};

/// Slots of the fuzzed run.
const NODES: usize = 3;
/// Parameters of the fuzzed model.
const DIM: usize = 2;
/// Shared state a peer's state carries (SlowMo's: outer point and slow momentum).
const SHARED: usize = 2 * DIM;

/// `RendezvousCore` over arbitrary joins, leaves, progress, averages' parts, reports, states and
/// state timeouts (any slot, iteration, kind, length, values, counters): it never panics, stores
/// at most `MAX_PENDING` pending iterations of each kind and a state wait per slot, its progress
/// never decreases, an average never counts more contributors than slots, and a start hands a
/// shared state of the configured length or none.
pub fn rendezvous_events(data: &[u8]) {
    let mut input = Input::new(data);
    let mut core = RendezvousCore::new(NODES, vec![0.0f32; DIM], u64::from(input.u8()))
        .with_shared_state(SHARED);
    let mut incarnations = [0u64; NODES + 1];
    while !input.is_empty() {
        let before = core.progress();
        let worker = input.below(NODES + 1);
        let it = input.iteration(core.progress());
        let actions = match input.u8() % 8 {
            0 => {
                if worker < NODES {
                    let (inc, actions) = core.join(worker, format!("h:{worker}"));
                    assert!(inc > incarnations[worker], "incarnations grow");
                    incarnations[worker] = inc;
                    actions
                } else {
                    Vec::new()
                }
            }
            1 => {
                let inc = if input.u8() % 2 == 0 {
                    incarnations[worker]
                } else {
                    input.u64()
                };
                core.leave(worker, inc)
            }
            2 => core.on_progress(worker, it).unwrap_or_default(),
            3 | 4 => {
                let kind = [
                    ReduceKind::Gradients,
                    ReduceKind::Params,
                    ReduceKind::ParamsAndBuffers,
                    ReduceKind::Losses,
                ][input.below(4)];
                let len = kind.len(DIM) + usize::from(input.u8() % 16 == 0);
                let values = input.values(len);
                core.on_reduce(worker, it, kind, values).unwrap_or_default()
            }
            6 => {
                let len = if input.u8() % 16 == 0 { 1 } else { DIM };
                let params = input.values(len);
                let shared_len = if input.u8() % 16 == 0 { 1 } else { SHARED };
                let shared = input.values(shared_len);
                core.on_state(worker, it, params, shared)
                    .unwrap_or_default()
            }
            7 => core.state_timed_out(worker),
            _ => {
                let stats = NodeStats {
                    iterations: input.u64(),
                    bytes_sent: input.u64(),
                    bytes_received: input.u64(),
                    ..NodeStats::default()
                };
                let len = if input.u8() % 16 == 0 { 1 } else { DIM };
                let params = input.values(len);
                core.on_report(worker, it, stats, params)
                    .unwrap_or_default()
            }
        };
        assert!(core.progress() >= before, "progress went back");
        assert!(core.awaiting_state() <= NODES, "state waits");
        assert!(
            core.pending() <= 2 * MAX_PENDING,
            "{} pending",
            core.pending()
        );
        for a in &actions {
            match a {
                RendezvousAction::Reduced { contributors, .. } => {
                    assert!(*contributors <= NODES, "{contributors} contributors");
                }
                RendezvousAction::Start { shared, .. } => {
                    assert!(shared.is_empty() || shared.len() == SHARED, "{shared:?}");
                }
                _ => {}
            }
        }
    }
}
