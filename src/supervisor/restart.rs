//! When to restart a worker that exited: exponential backoff, and a budget of restarts per time
//! window after which the supervisor gives up on that worker. Pure: times are passed in.

use std::collections::VecDeque;

/// The restart rules of one supervisor (the same for all its workers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// Wait before the first restart, in seconds; doubles with each failure in a row.
    pub backoff_s: f64,
    /// Longest wait between restarts, in seconds.
    pub backoff_max_s: f64,
    /// A worker that ran at least this long before exiting starts over at `backoff_s`.
    pub stable_s: f64,
    /// At most this many restarts within `window_s`; one more and the supervisor gives up.
    pub budget: usize,
    /// The sliding window of the budget, in seconds.
    pub window_s: f64,
}

/// What to do about a worker that just exited with a failure.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartDecision {
    /// Start it again after this many seconds.
    After(f64),
    /// Stop restarting it: the budget is spent.
    GiveUp {
        /// Restarts within the window so far.
        restarts: usize,
        /// The window, in seconds.
        window_s: f64,
    },
}

/// One worker's restart bookkeeping under a [`RestartPolicy`].
#[derive(Debug, Clone)]
pub struct RestartState {
    policy: RestartPolicy,
    /// Times of the restarts inside the current window.
    recent: VecDeque<f64>,
    /// Failures in a row, each after a short run.
    streak: u32,
}

impl RestartState {
    /// Bookkeeping for a worker that has not failed yet.
    pub fn new(policy: RestartPolicy) -> Self {
        RestartState {
            policy,
            recent: VecDeque::new(),
            streak: 0,
        }
    }

    /// The worker failed at time `now` after running for `ran_s` seconds: restart it (after how
    /// long) or give up. A restart decided here counts against the budget.
    pub fn on_failure(&mut self, now: f64, ran_s: f64) -> RestartDecision {
        let p = self.policy;
        while self.recent.front().is_some_and(|&t| now - t > p.window_s) {
            self.recent.pop_front();
        }
        if self.recent.len() >= p.budget {
            return RestartDecision::GiveUp {
                restarts: self.recent.len(),
                window_s: p.window_s,
            };
        }
        if ran_s >= p.stable_s {
            self.streak = 0;
        }
        let wait = (p.backoff_s * 2f64.powi(self.streak.min(30) as i32)).min(p.backoff_max_s);
        self.streak += 1;
        self.recent.push_back(now);
        RestartDecision::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            backoff_s: 0.5,
            backoff_max_s: 4.0,
            stable_s: 10.0,
            budget: 5,
            window_s: 60.0,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_while_failures_are_quick() {
        let mut s = RestartState::new(RestartPolicy {
            budget: 100,
            ..policy()
        });
        let waits: Vec<f64> = (0..6)
            .map(|i| match s.on_failure(i as f64, 0.1) {
                RestartDecision::After(w) => w,
                other => panic!("gave up: {other:?}"),
            })
            .collect();
        assert_eq!(waits, vec![0.5, 1.0, 2.0, 4.0, 4.0, 4.0]);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut s = RestartState::new(policy());
        assert_eq!(s.on_failure(0.0, 0.1), RestartDecision::After(0.5));
        assert_eq!(s.on_failure(1.0, 0.1), RestartDecision::After(1.0));
        assert_eq!(s.on_failure(30.0, 25.0), RestartDecision::After(0.5));
    }

    #[test]
    fn the_budget_gives_up_inside_the_window_and_recovers_outside_it() {
        let mut s = RestartState::new(policy());
        for i in 0..5 {
            assert!(matches!(
                s.on_failure(i as f64, 0.1),
                RestartDecision::After(_)
            ));
        }
        assert_eq!(
            s.on_failure(5.0, 0.1),
            RestartDecision::GiveUp {
                restarts: 5,
                window_s: 60.0
            }
        );
        // Long after the window, the old restarts no longer count.
        assert!(matches!(
            s.on_failure(200.0, 0.1),
            RestartDecision::After(_)
        ));
    }

    #[test]
    fn a_zero_budget_never_restarts() {
        let mut s = RestartState::new(RestartPolicy {
            budget: 0,
            ..policy()
        });
        assert!(matches!(
            s.on_failure(0.0, 100.0),
            RestartDecision::GiveUp { restarts: 0, .. }
        ));
    }
}
