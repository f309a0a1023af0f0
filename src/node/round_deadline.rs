//! The round deadline shared by the server and the rendezvous: a worker that a synchronous round
//! (or an exact average, or a report) has waited for longer than `net.round_timeout_s` is
//! overdue. Heartbeats prove a worker's network task alive, not its compute; this catches the
//! worker whose compute hangs while its heartbeats go on. The caller says who is waited for and
//! what time it is; the deadline remembers since when.

use std::time::{Duration, Instant};

/// Since when each slot has been waited for (see the module docs).
#[derive(Debug, Clone)]
pub struct RoundDeadline {
    timeout: Duration,
    since: Vec<Option<Instant>>,
}

impl RoundDeadline {
    /// A deadline of `timeout` over `workers` slots.
    pub fn new(workers: usize, timeout: Duration) -> Self {
        RoundDeadline {
            timeout,
            since: vec![None; workers],
        }
    }

    /// How often the caller should look (a quarter of the timeout, between 50 ms and 5 s).
    pub fn check_every(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// `waited_for` are the slots waited for at `now`; returns those waited for since at least
    /// the timeout (and forgets them: they are dropped). A slot no longer waited for starts over.
    pub fn overdue(&mut self, waited_for: &[usize], now: Instant) -> Vec<usize> {
        let mut overdue = Vec::new();
        for (slot, since) in self.since.iter_mut().enumerate() {
            if !waited_for.contains(&slot) {
                *since = None;
                continue;
            }
            let start = *since.get_or_insert(now);
            if now.saturating_duration_since(start) >= self.timeout {
                *since = None;
                overdue.push(slot);
            }
        }
        overdue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_overdue_only_after_being_waited_for_the_whole_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = RoundDeadline::new(3, 10 * s);
        assert!(d.overdue(&[0, 1], t0).is_empty());
        // Slot 1 delivers (no longer waited for), then is waited for again from 6 s.
        assert!(d.overdue(&[0], t0 + 5 * s).is_empty());
        assert!(d.overdue(&[0, 1], t0 + 6 * s).is_empty());
        assert_eq!(d.overdue(&[0, 1], t0 + 10 * s), vec![0]);
        assert!(d.overdue(&[1], t0 + 15 * s).is_empty());
        assert_eq!(d.overdue(&[1, 2], t0 + 16 * s), vec![1]);
        assert!(d.overdue(&[], t0 + 100 * s).is_empty());
        assert_eq!(d.check_every(), Duration::from_millis(2500));
    }
}
