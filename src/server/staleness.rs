//! An exact histogram of gradient staleness (`τ = t − ite`), for the run summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts of each staleness value seen; exact percentiles at a memory cost of one entry per
/// distinct value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StalenessHistogram {
    counts: BTreeMap<u64, u64>,
    total: u64,
    sum: u128,
}

/// `staleness` in `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalenessSummary {
    /// Mean staleness over applied gradients (0 when none).
    pub mean: f64,
    /// Median (the smallest value with at least half of the gradients at or below it).
    pub p50: u64,
    /// 99th percentile, same convention.
    pub p99: u64,
    /// The largest staleness seen.
    pub max: u64,
}

impl StalenessHistogram {
    /// Records one gradient of staleness `tau`.
    pub fn record(&mut self, tau: u64) {
        *self.counts.entry(tau).or_insert(0) += 1;
        self.total += 1;
        self.sum += u128::from(tau);
    }

    /// How many gradients were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest recorded value `v` such that at least a fraction `q` of the values are ≤ `v`.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (&value, &count) in &self.counts {
            seen += count;
            if seen >= rank {
                return value;
            }
        }
        self.counts.keys().next_back().copied().unwrap_or(0)
    }

    /// `(staleness, count)` pairs in increasing staleness (for checkpoints).
    pub fn counts(&self) -> Vec<(u64, u64)> {
        self.counts.iter().map(|(&v, &c)| (v, c)).collect()
    }

    /// The histogram with these `(staleness, count)` pairs.
    pub fn from_counts(pairs: &[(u64, u64)]) -> Self {
        let mut h = StalenessHistogram::default();
        for &(value, count) in pairs {
            *h.counts.entry(value).or_insert(0) += count;
            h.total += count;
            h.sum += u128::from(value) * u128::from(count);
        }
        h
    }

    /// Mean, median, 99th percentile and maximum.
    pub fn summary(&self) -> StalenessSummary {
        StalenessSummary {
            mean: if self.total == 0 {
                0.0
            } else {
                self.sum as f64 / self.total as f64
            },
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.counts.keys().next_back().copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_order_statistics() {
        let mut h = StalenessHistogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!((s.p50, s.p99, s.max), (50, 99, 100));
        assert!((s.mean - 50.5).abs() < 1e-12);
        assert_eq!(StalenessHistogram::default().summary().max, 0);
    }
}
