//! Every algorithm's saved state restores exactly: a fresh instance loaded from a snapshot
//! continues bit for bit like the original. Wrongly sized state is refused and changes nothing.

use lagom::algo::{self, AlgorithmConfig, AlgorithmName, ServerAlgorithm, Update};

const K: usize = 3;
const D: usize = 5;

fn config(name: AlgorithmName) -> AlgorithmConfig {
    let mut c = AlgorithmConfig {
        name,
        momentum: 0.9,
        weight_decay: 0.01,
        ..AlgorithmConfig::default()
    };
    c.dcasgd.adaptive = true;
    c.dcasgd.lambda = 0.5;
    c
}

/// The workers of a fixed heterogeneous schedule: what each holds and its index.
#[derive(Clone)]
struct Workers(Vec<(Vec<f64>, u64)>);

impl Workers {
    /// Every worker gets the initial parameters (index 0).
    fn start(a: &mut dyn ServerAlgorithm<f64>) -> Self {
        Workers(
            (0..K)
                .map(|w| {
                    let mut out = Vec::new();
                    a.dispatch(w, &mut out).expect("dispatch");
                    (out, 0)
                })
                .collect(),
        )
    }

    /// Iterations `range`: a worker delivers a gradient computed on what it holds, then gets
    /// the new parameters.
    fn drive(&mut self, a: &mut dyn ServerAlgorithm<f64>, range: std::ops::Range<u64>) {
        for t in range {
            let worker = (t as usize * 7 + t as usize / 3) % K;
            let (held, ite) = &self.0[worker];
            let grad: Vec<f64> = held
                .iter()
                .enumerate()
                .map(|(j, w)| 0.5 * w + (t as f64 + 1.0) * 0.01 * (j as f64 - 2.0))
                .collect();
            let update = Update {
                worker,
                t,
                ite: *ite,
                grad: &grad,
                round_start: true,
                lr: 0.05,
            };
            a.apply(&update).expect("apply");
            let mut out = Vec::new();
            a.dispatch(worker, &mut out).expect("dispatch");
            self.0[worker] = (out, t + 1);
        }
    }
}

#[test]
fn a_restored_algorithm_continues_bit_for_bit() {
    let w0: Vec<f64> = (0..D).map(|j| 1.0 - 0.3 * j as f64).collect();
    for name in AlgorithmName::ALL {
        let cfg = config(name);
        let mut original = algo::build::<f64>(&cfg, K, w0.clone()).unwrap();
        let mut workers = Workers::start(original.as_mut());
        workers.drive(original.as_mut(), 0..11);
        let saved = original.save_state();
        assert!(saved.vectors.values().all(|v| v.len() == D), "{name:?}");

        let mut restored = algo::build::<f64>(&cfg, K, vec![7.0; D]).unwrap();
        restored.load_state(&saved).expect("load");
        assert_eq!(
            restored.save_state(),
            saved,
            "{name:?}: state after loading"
        );
        let mut same_workers = workers.clone();
        workers.drive(original.as_mut(), 11..23);
        same_workers.drive(restored.as_mut(), 11..23);
        let bits = |a: &dyn ServerAlgorithm<f64>| {
            a.params().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(
            bits(original.as_ref()),
            bits(restored.as_ref()),
            "{name:?}: parameters after continuing"
        );
        assert_eq!(original.save_state(), restored.save_state(), "{name:?}");
    }
}

#[test]
fn state_of_another_size_is_refused_and_changes_nothing() {
    for name in AlgorithmName::ALL {
        let cfg = config(name);
        let mut small = algo::build::<f64>(&cfg, K, vec![1.0; D - 1]).unwrap();
        Workers::start(small.as_mut()).drive(small.as_mut(), 0..4);
        let mut a = algo::build::<f64>(&cfg, K, vec![2.0; D]).unwrap();
        Workers::start(a.as_mut()).drive(a.as_mut(), 0..4);
        let before = a.save_state();
        let err = a.load_state(&small.save_state()).expect_err("wrong size");
        assert!(err.contains("values, the model has 5"), "{name:?}: {err}");
        assert_eq!(a.save_state(), before, "{name:?}");
    }
}
