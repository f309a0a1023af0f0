//! A test harness that plays K workers against a `ServerCore<f64>`: each worker holds the last
//! parameters it was sent and delivers a gradient computed on exactly those.
#![allow(dead_code)]

use lagom::algo::{self, AlgorithmConfig, AlgorithmName, LrSchedule, Scheduler};
use lagom::server::{Action, Event, GradientIn, ServerCore, ServerCoreConfig};

/// Workers that hold parameters sent by the core.
pub struct Harness {
    pub core: ServerCore<f64>,
    pub held: Vec<Option<(Vec<f64>, u64)>>,
    seq: Vec<u64>,
    /// Every `Applied` action so far: (worker, t, staleness).
    pub applied: Vec<(usize, u64, u64)>,
    /// Every `SendParams` so far: (worker, index).
    pub sent: Vec<(usize, u64)>,
}

impl Harness {
    /// A core over `algorithm` with K workers, all joined as new processes.
    pub fn new(
        algorithm: Box<dyn algo::ServerAlgorithm<f64>>,
        k: usize,
        scheduler: Scheduler,
        lr: f64,
    ) -> Self {
        let core = ServerCore::new(
            ServerCoreConfig {
                workers: k,
                scheduler,
                max_updates: None,
                lr: LrSchedule::constant(lr),
            },
            algorithm,
        );
        let mut h = Harness {
            core,
            held: vec![None; k],
            seq: vec![0; k],
            applied: Vec::new(),
            sent: Vec::new(),
        };
        for id in 0..k {
            let actions = h.core.handle(Event::Join {
                worker: id,
                incarnation: 0,
            });
            h.take(actions);
        }
        h
    }

    /// Builds the named algorithm with these settings and wraps it.
    pub fn with(
        name: AlgorithmName,
        k: usize,
        lr: f64,
        beta: f64,
        w0: Vec<f64>,
        scheduler: Option<Scheduler>,
    ) -> Self {
        let cfg = AlgorithmConfig {
            name,
            lr,
            momentum: beta,
            scheduler,
            ..Default::default()
        };
        let sched = cfg.scheduler();
        Harness::new(algo::build(&cfg, k, w0).unwrap(), k, sched, lr)
    }

    /// Records the core's actions.
    pub fn take(&mut self, actions: Vec<Action<Vec<f64>>>) -> Vec<Action<Vec<f64>>> {
        for a in &actions {
            match a {
                Action::SendParams {
                    worker,
                    index,
                    params,
                } => {
                    self.held[*worker] = Some((params.clone(), *index));
                    self.sent.push((*worker, *index));
                }
                Action::Applied {
                    worker,
                    t,
                    staleness,
                    ..
                } => self.applied.push((*worker, *t, *staleness)),
                _ => {}
            }
        }
        actions
    }

    /// Whether worker `k` holds parameters (is computing).
    pub fn busy(&self, k: usize) -> bool {
        self.held[k].is_some()
    }

    /// Worker `k` delivers the gradient `oracle(its parameters)`.
    pub fn deliver(
        &mut self,
        k: usize,
        oracle: impl Fn(&[f64]) -> Vec<f64>,
    ) -> Vec<Action<Vec<f64>>> {
        let (params, index) = self.held[k].take().expect("worker holds no parameters");
        let g = oracle(&params);
        self.send(k, index, g)
    }

    /// Worker `k` delivers an injected gradient for the parameters it holds.
    pub fn deliver_grad(&mut self, k: usize, g: Vec<f64>) -> Vec<Action<Vec<f64>>> {
        let (_, index) = self.held[k].take().expect("worker holds no parameters");
        self.send(k, index, g)
    }

    /// The index of the parameters worker `k` holds.
    pub fn index_of(&self, k: usize) -> u64 {
        self.held[k]
            .as_ref()
            .map(|(_, i)| *i)
            .expect("worker holds no parameters")
    }

    fn send(&mut self, k: usize, ite: u64, grad: Vec<f64>) -> Vec<Action<Vec<f64>>> {
        self.seq[k] += 1;
        let incarnation = self.core.workers()[k].incarnation;
        let actions = self.core.handle(Event::Gradient(GradientIn {
            worker: k,
            incarnation,
            seq: self.seq[k],
            ite,
            grad,
        }));
        self.take(actions)
    }

    /// The server parameters.
    pub fn w(&self) -> Vec<f64> {
        self.core.params().to_vec()
    }
}

/// Gradient of `½ Σ h_j w_j²`.
pub fn quad(h: &[f64]) -> impl Fn(&[f64]) -> Vec<f64> + '_ {
    move |w| h.iter().zip(w).map(|(a, b)| a * b).collect()
}

/// Relative closeness with the spec's tolerance (1e-9).
pub fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs() + y.abs()))
}

/// Heavy ball in PyTorch convention: `buf = β buf + g; w −= lr·buf`, for `steps` steps.
pub fn heavy_ball(
    w0: &[f64],
    lr: f64,
    beta: f64,
    steps: usize,
    grad: impl Fn(&[f64]) -> Vec<f64>,
) -> Vec<f64> {
    let mut w = w0.to_vec();
    let mut buf = vec![0.0; w.len()];
    for _ in 0..steps {
        let g = grad(&w);
        for j in 0..w.len() {
            buf[j] = beta * buf[j] + g[j];
            w[j] -= lr * buf[j];
        }
    }
    w
}
