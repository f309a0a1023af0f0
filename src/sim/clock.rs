//! The simulator's virtual clock: a queue of worker completions ordered by virtual time, ties
//! broken by the order they were scheduled (so equal speeds give round-robin arrivals).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Completion {
    at: f64,
    order: u64,
    worker: usize,
}

impl PartialEq for Completion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Completion {}
impl PartialOrd for Completion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Completion {
    // Reversed: BinaryHeap is a max-heap and we want the earliest completion first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.order.cmp(&self.order))
    }
}

/// Virtual time plus the pending worker completions.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: f64,
    scheduled: u64,
    pending: BinaryHeap<Completion>,
}

impl VirtualClock {
    /// The current virtual time in seconds.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Schedules `worker` to finish `duration` seconds from now.
    pub fn schedule(&mut self, worker: usize, duration: f64) {
        self.pending.push(Completion {
            at: self.now + duration,
            order: self.scheduled,
            worker,
        });
        self.scheduled += 1;
    }

    /// Advances to the earliest completion and returns its worker, or `None` when none is pending.
    pub fn advance(&mut self) -> Option<usize> {
        let c = self.pending.pop()?;
        self.now = c.at;
        Some(c.worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut clock = VirtualClock::default();
        clock.schedule(2, 1.0);
        clock.schedule(0, 1.0);
        clock.schedule(1, 0.5);
        assert_eq!(clock.advance(), Some(1));
        assert_eq!(clock.now(), 0.5);
        assert_eq!(clock.advance(), Some(2));
        assert_eq!(clock.advance(), Some(0));
        assert_eq!(clock.advance(), None);
    }
}
