//! The server learning-rate schedule: linear warm-up, then step decay, as a function of the
//! update counter alone (never of wall-clock time).

/// `lr(t) = base × warm-up(t) × decay_factor^(number of milestones ≤ t)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// The learning rate after warm-up, before any decay.
    pub base: f64,
    /// Updates over which the rate climbs linearly from `base × warmup_start_factor` to `base`.
    pub warmup_updates: u64,
    /// Where the warm-up starts, as a fraction of `base`.
    pub warmup_start_factor: f64,
    /// Update counts at which the rate is multiplied by `decay_factor`.
    pub decay_at: Vec<u64>,
    /// The step-decay multiplier.
    pub decay_factor: f64,
}

impl LrSchedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        LrSchedule {
            base: lr,
            warmup_updates: 0,
            warmup_start_factor: 1.0,
            decay_at: Vec::new(),
            decay_factor: 1.0,
        }
    }

    /// The learning rate of server iteration `t`.
    pub fn at(&self, t: u64) -> f64 {
        let warm = if t < self.warmup_updates {
            let progress = t as f64 / self.warmup_updates as f64;
            self.warmup_start_factor + (1.0 - self.warmup_start_factor) * progress
        } else {
            1.0
        };
        let decays = self.decay_at.iter().filter(|&&m| t >= m).count();
        let decay = self
            .decay_factor
            .powi(i32::try_from(decays).unwrap_or(i32::MAX));
        self.base * warm * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_linear_and_decay_steps_at_milestones() {
        let s = LrSchedule {
            base: 1.0,
            warmup_updates: 4,
            warmup_start_factor: 0.2,
            decay_at: vec![10, 20],
            decay_factor: 0.1,
        };
        assert_eq!(s.at(0), 0.2);
        assert!((s.at(2) - 0.6).abs() < 1e-15);
        assert_eq!(s.at(4), 1.0);
        assert_eq!(s.at(9), 1.0);
        assert!((s.at(10) - 0.1).abs() < 1e-15);
        assert!((s.at(25) - 0.01).abs() < 1e-15);
        assert_eq!(LrSchedule::constant(0.3).at(1_000_000), 0.3);
    }
}
