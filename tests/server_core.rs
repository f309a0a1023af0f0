//! The server core's bookkeeping: a gradient is applied at most once, bad gradients change
//! nothing, membership changes never hang a synchronous round.

use lagom::algo::{self, AlgorithmConfig, AlgorithmName, LrSchedule, Scheduler};
use lagom::server::{
    Action, Event, GradientIn, RejectReason, ServerCore, ServerCoreConfig, NEW_PROCESS,
};

fn core(k: usize, scheduler: Scheduler, max_updates: Option<u64>) -> ServerCore<f32> {
    let cfg = AlgorithmConfig {
        name: AlgorithmName::Ormo,
        lr: 0.1,
        ..Default::default()
    };
    ServerCore::new(
        ServerCoreConfig {
            workers: k,
            scheduler,
            max_updates,
            lr: LrSchedule::constant(0.1),
        },
        algo::build(&cfg, k, vec![1.0, 2.0]).unwrap(),
    )
}

fn join(c: &mut ServerCore<f32>, worker: usize, incarnation: u64) -> Vec<Action<Vec<f32>>> {
    c.handle(Event::Join {
        worker,
        incarnation,
    })
}

fn grad(
    c: &mut ServerCore<f32>,
    worker: usize,
    incarnation: u64,
    seq: u64,
    ite: u64,
    g: Vec<f32>,
) -> Vec<Action<Vec<f32>>> {
    c.handle(Event::Gradient(GradientIn {
        worker,
        incarnation,
        seq,
        ite,
        grad: g,
    }))
}

fn sends(actions: &[Action<Vec<f32>>]) -> Vec<(usize, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendParams { worker, index, .. } => Some((*worker, *index)),
            _ => None,
        })
        .collect()
}

fn rejection(actions: &[Action<Vec<f32>>]) -> Option<&RejectReason> {
    actions.iter().find_map(|a| match a {
        Action::Rejected { reason, .. } => Some(reason),
        _ => None,
    })
}

#[test]
fn a_resent_gradient_is_never_applied_twice() {
    let mut c = core(2, Scheduler::Async, None);
    join(&mut c, 0, NEW_PROCESS);
    join(&mut c, 1, NEW_PROCESS);
    let first = grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0]);
    assert!(matches!(first[0], Action::Applied { t: 0, .. }));
    let after_first = c.params().to_vec();
    let again = grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0]);
    assert!(matches!(
        rejection(&again),
        Some(RejectReason::Duplicate { seq: 1, last: 1 })
    ));
    assert!(
        sends(&again).is_empty(),
        "a duplicate gets no new parameters"
    );
    assert_eq!(c.params(), after_first.as_slice());
    assert_eq!(c.updates(), 1);
    assert_eq!(c.workers()[0].applied, 1);
    assert_eq!(c.rejections().get("duplicate"), Some(&1));
}

#[test]
fn nan_and_wrong_size_gradients_change_nothing_and_the_worker_keeps_working() {
    let mut c = core(1, Scheduler::Async, None);
    join(&mut c, 0, NEW_PROCESS);
    let before = c.params().to_vec();
    let a = grad(&mut c, 0, 1, 1, 0, vec![f32::NAN, 1.0]);
    assert_eq!(rejection(&a), Some(&RejectReason::NonFinite));
    assert_eq!(
        sends(&a),
        vec![(0, 0)],
        "fresh parameters so the worker is not stranded"
    );
    let b = grad(&mut c, 0, 1, 2, 0, vec![1.0, 1.0, 1.0]);
    assert_eq!(
        rejection(&b),
        Some(&RejectReason::WrongSize {
            got: 3,
            expected: 2
        })
    );
    let inf = grad(&mut c, 0, 1, 3, 0, vec![f32::INFINITY, 0.0]);
    assert_eq!(rejection(&inf), Some(&RejectReason::NonFinite));
    assert_eq!(c.params(), before.as_slice(), "nothing learned is lost");
    assert_eq!(c.updates(), 0);
    let ok = grad(&mut c, 0, 1, 4, 0, vec![1.0, 1.0]);
    assert!(matches!(ok[0], Action::Applied { .. }));
}

#[test]
fn gradients_on_parameters_the_worker_does_not_hold_are_refused() {
    let mut c = core(2, Scheduler::Async, None);
    join(&mut c, 0, NEW_PROCESS);
    join(&mut c, 1, NEW_PROCESS);
    let a = grad(&mut c, 0, 1, 1, 5, vec![1.0, 1.0]);
    assert!(matches!(
        rejection(&a),
        Some(RejectReason::UnexpectedIndex {
            got: 5,
            expected: Some(0)
        })
    ));
    let unknown = grad(&mut c, 7, 1, 1, 0, vec![1.0, 1.0]);
    assert!(matches!(
        rejection(&unknown),
        Some(RejectReason::UnknownWorker {
            worker: 7,
            workers: 2
        })
    ));
    assert!(matches!(
        rejection(&join(&mut c, 9, NEW_PROCESS)),
        Some(RejectReason::UnknownWorker { .. })
    ));
}

#[test]
fn a_restarted_worker_gets_fresh_parameters_and_its_old_incarnation_is_refused() {
    let mut c = core(2, Scheduler::Async, None);
    join(&mut c, 0, NEW_PROCESS);
    join(&mut c, 1, NEW_PROCESS);
    grad(&mut c, 1, 1, 1, 0, vec![1.0, 1.0]);
    // Worker 0 crashes while computing on index 0 and comes back as a new process: incarnation 2.
    let rejoin = join(&mut c, 0, NEW_PROCESS);
    assert_eq!(sends(&rejoin), vec![(0, 1)], "fresh parameters w_1");
    let stale = grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0]);
    assert_eq!(
        rejection(&stale),
        Some(&RejectReason::WrongIncarnation { got: 1, current: 2 })
    );
    // Sequence numbers restart with the new incarnation.
    let fresh = grad(&mut c, 0, 2, 1, 1, vec![1.0, 1.0]);
    assert!(matches!(fresh[0], Action::Applied { t: 1, .. }));
    assert_eq!(c.workers()[0].joins, 2);
    let older = join(&mut c, 0, 1);
    assert!(matches!(
        rejection(&older),
        Some(RejectReason::WrongIncarnation { .. })
    ));
}

#[test]
fn incarnations_are_issued_by_the_server_so_no_claim_locks_a_slot_and_a_redial_keeps_its_place() {
    let mut c = core(1, Scheduler::Async, None);
    join(&mut c, 0, NEW_PROCESS);
    assert_eq!(c.workers()[0].incarnation, 1);
    assert!(matches!(
        grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0])[0],
        Action::Applied { .. }
    ));
    // The same process redials (a lost connection) with what it was issued: its sequence
    // numbers carry on, so a gradient it sends again is not applied twice.
    assert!(rejection(&join(&mut c, 0, 1)).is_none());
    assert_eq!(c.workers()[0].incarnation, 1);
    assert!(matches!(
        rejection(&grad(&mut c, 0, 1, 1, 1, vec![1.0, 1.0])),
        Some(RejectReason::Duplicate { .. })
    ));
    // A claim the server never issued (a huge one, or one from before a server restart that
    // lost its state) is a new process: the next incarnation, not the claim.
    assert!(rejection(&join(&mut c, 0, u64::MAX)).is_none());
    assert_eq!(c.workers()[0].incarnation, 2);
    // So the next new process still gets in, and the old one is superseded.
    assert!(rejection(&join(&mut c, 0, NEW_PROCESS)).is_none());
    assert_eq!(c.workers()[0].incarnation, 3);
    assert!(matches!(
        rejection(&join(&mut c, 0, 2)),
        Some(RejectReason::WrongIncarnation { got: 2, current: 3 })
    ));
}

#[test]
fn a_synchronous_round_completes_without_a_worker_that_left_and_it_rejoins_the_next() {
    let mut c = core(3, Scheduler::Sync, None);
    assert!(
        sends(&join(&mut c, 0, NEW_PROCESS)).is_empty(),
        "sync waits for all K before round 0"
    );
    join(&mut c, 1, NEW_PROCESS);
    let start = join(&mut c, 2, NEW_PROCESS);
    assert_eq!(sends(&start), vec![(0, 0), (1, 0), (2, 0)]);
    grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0]);
    grad(&mut c, 1, 1, 1, 0, vec![1.0, 1.0]);
    // Worker 2 dies: the round completes with the two live workers.
    let released = c.handle(Event::Leave { worker: 2 });
    assert_eq!(sends(&released), vec![(0, 2), (1, 2)]);
    // It comes back mid-round and waits for the next broadcast.
    assert!(sends(&join(&mut c, 2, 1)).is_empty());
    grad(&mut c, 0, 1, 2, 2, vec![1.0, 1.0]);
    let next = grad(&mut c, 1, 1, 2, 2, vec![1.0, 1.0]);
    assert_eq!(sends(&next), vec![(0, 4), (1, 4), (2, 4)]);
    // The mid-round joiner did not hide the round's start from OrMo: nothing was refused.
    assert!(c.rejections().is_empty(), "{:?}", c.rejections());
}

#[test]
fn start_with_present_begins_a_synchronous_run_without_the_missing_workers() {
    let mut c = core(3, Scheduler::Sync, None);
    join(&mut c, 0, NEW_PROCESS);
    join(&mut c, 1, NEW_PROCESS);
    let start = c.handle(Event::StartWithPresent);
    assert_eq!(sends(&start), vec![(0, 0), (1, 0)]);
}

#[test]
fn the_update_budget_stops_training_and_refuses_later_gradients() {
    let mut c = core(2, Scheduler::Async, Some(2));
    join(&mut c, 0, NEW_PROCESS);
    join(&mut c, 1, NEW_PROCESS);
    grad(&mut c, 0, 1, 1, 0, vec![1.0, 1.0]);
    let last = grad(&mut c, 1, 1, 1, 0, vec![1.0, 1.0]);
    assert!(last.contains(&Action::Stop));
    assert!(c.stopped());
    let late = grad(&mut c, 0, 1, 2, 1, vec![1.0, 1.0]);
    assert_eq!(rejection(&late), Some(&RejectReason::Stopped));
    assert_eq!(c.updates(), 2);
}

/// What a params form was handed: whether the values were borrowed from the algorithm (no copy
/// before the shell's encoding), and the values.
type Handed = (bool, Vec<f32>);

/// A sent parameter copy: worker, index, values.
type Sent = (usize, u64, Vec<f32>);

fn core_of(name: AlgorithmName) -> ServerCore<f32> {
    ServerCore::new(
        core_config(),
        algo::build(&config_of(name), 2, w0()).unwrap(),
    )
}

fn config_of(name: AlgorithmName) -> AlgorithmConfig {
    AlgorithmConfig {
        name,
        lr: 0.1,
        momentum: 0.5,
        ..Default::default()
    }
}

fn core_config() -> ServerCoreConfig {
    ServerCoreConfig {
        workers: 2,
        scheduler: Scheduler::Async,
        max_updates: None,
        lr: LrSchedule::constant(0.1),
    }
}

fn w0() -> Vec<f32> {
    vec![1.0, 2.0, -3.0]
}

/// Drives both cores with the same events and records what each sent; the formed core's form
/// must have been handed borrowed values exactly when `borrowed`.
struct Twins {
    plain: ServerCore<f32>,
    formed: ServerCore<f32, Handed>,
    borrowed: bool,
    sent_plain: Vec<Sent>,
    sent_formed: Vec<Sent>,
}

impl Twins {
    fn handle(&mut self, e: Event<f32>) {
        for a in self.plain.handle(e.clone()) {
            if let Action::SendParams {
                worker,
                index,
                params,
            } = a
            {
                self.sent_plain.push((worker, index, params));
            }
        }
        for a in self.formed.handle(e) {
            if let Action::SendParams {
                worker,
                index,
                params: (was_borrowed, params),
            } = a
            {
                assert_eq!(was_borrowed, self.borrowed, "borrowed");
                self.sent_formed.push((worker, index, params));
            }
        }
    }
}

#[test]
fn the_params_form_gets_the_dispatched_values_borrowed_unless_the_algorithm_computes_them() {
    for (name, borrowed) in [
        (AlgorithmName::Asgd, true),
        (AlgorithmName::Ormo, true),
        (AlgorithmName::Dcasgd, true),
        (AlgorithmName::Smega2, false),
    ] {
        let mut t = Twins {
            plain: core_of(name),
            formed: ServerCore::with_params_form(
                core_config(),
                algo::build(&config_of(name), 2, w0()).unwrap(),
                Box::new(|v| (matches!(v, std::borrow::Cow::Borrowed(_)), v.into_owned())),
            ),
            borrowed,
            sent_plain: Vec::new(),
            sent_formed: Vec::new(),
        };
        for worker in 0..2 {
            t.handle(Event::Join {
                worker,
                incarnation: NEW_PROCESS,
            });
        }
        for step in 0..6u64 {
            let worker = (step % 2) as usize;
            let ite = t
                .sent_plain
                .iter()
                .rev()
                .find(|(w, _, _)| *w == worker)
                .map(|(_, index, _)| *index)
                .expect("the worker holds parameters");
            t.handle(Event::Gradient(GradientIn {
                worker,
                incarnation: 1,
                seq: step / 2 + 1,
                ite,
                grad: vec![0.5 * step as f32, -1.0, 0.25],
            }));
        }
        assert_eq!(
            t.sent_plain.len(),
            8,
            "{name:?}: every gradient applied and answered"
        );
        assert_eq!(
            t.sent_formed, t.sent_plain,
            "{name:?}: the form saw other values"
        );
        assert_eq!(t.formed.params(), t.plain.params(), "{name:?}");
    }
}
