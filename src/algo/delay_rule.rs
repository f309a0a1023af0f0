//! OrMo-DA's delay-adaptive learning rate (spec §7). The paper's exact rule is unconfirmed, so the
//! rule is pluggable; every rule keeps `η_t ≤ η` and is non-increasing in the delay.

/// Maps a gradient's delay to the learning rate it is applied with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DelayRule {
    /// `η_t = η` (plain OrMo).
    Constant,
    /// `η_t = η · min(1, c·K / τ)`.
    InverseDelay {
        /// Delays up to `c·K` keep the full rate.
        c: f64,
    },
    /// `η_t = η` if `τ ≤ c·K`, else 0 (the gradient is dropped).
    Threshold {
        /// Delays up to `c·K` keep the full rate.
        c: f64,
    },
}

impl DelayRule {
    /// The learning rate for a gradient of delay `tau` with `workers` workers and base rate `lr`.
    pub fn lr(&self, lr: f64, tau: u64, workers: usize) -> f64 {
        let limit = |c: f64| c * workers as f64;
        match *self {
            DelayRule::Constant => lr,
            DelayRule::InverseDelay { c } => {
                if (tau as f64) <= limit(c) {
                    lr
                } else {
                    lr * limit(c) / tau as f64
                }
            }
            DelayRule::Threshold { c } => {
                if (tau as f64) <= limit(c) {
                    lr
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_bounded_by_eta_and_non_increasing_in_delay() {
        let rules = [
            DelayRule::Constant,
            DelayRule::InverseDelay { c: 1.0 },
            DelayRule::InverseDelay { c: 0.5 },
            DelayRule::Threshold { c: 2.0 },
        ];
        for rule in rules {
            let mut previous = f64::INFINITY;
            for tau in 0..200 {
                let lr = rule.lr(0.1, tau, 8);
                assert!((0.0..=0.1).contains(&lr), "{rule:?} τ={tau}");
                assert!(lr <= previous, "{rule:?} increases at τ={tau}");
                previous = lr;
            }
            assert_eq!(rule.lr(0.1, 0, 8), 0.1, "delay 0 keeps η for {rule:?}");
        }
        assert_eq!(DelayRule::InverseDelay { c: 1.0 }.lr(0.1, 16, 8), 0.05);
        assert_eq!(DelayRule::Threshold { c: 1.0 }.lr(0.1, 9, 8), 0.0);
    }
}
