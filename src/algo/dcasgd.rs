//! DC-ASGD (spec §8, Zheng et al.): the stale gradient is corrected towards the current parameters
//! with a diagonal Hessian approximation, `g + λ g⊙g⊙(w − backup[k])`, where `backup[k]` is exactly
//! what worker k computed on.

use std::borrow::Cow;

use super::{AlgorithmError, AlgorithmState, Applied, DcAsgdParams, Real, ServerAlgorithm, Update};
use crate::algo::vector::{axpby, axpy};

/// DC-ASGD server state: `w`, one backup per worker, the optional momentum and, for DC-ASGD-a,
/// the running mean square of the gradient.
#[derive(Debug, Clone)]
pub struct DcAsgd<T> {
    w: Vec<T>,
    backups: Vec<Option<Vec<T>>>,
    momentum: Option<(T, Vec<T>)>,
    mean_square: Option<Vec<T>>,
    params: DcAsgdParams,
    weight_decay: T,
    scratch: Vec<T>,
}

impl<T: Real> DcAsgd<T> {
    /// Starts from `w0` for `workers` workers; `momentum > 0` enables the MXNet momentum form.
    /// Weight decay is applied on the server, to the current `w`.
    pub fn new(
        w0: Vec<T>,
        workers: usize,
        momentum: f64,
        weight_decay: f64,
        params: DcAsgdParams,
    ) -> Self {
        let d = w0.len();
        DcAsgd {
            w: w0,
            backups: vec![None; workers],
            momentum: (momentum > 0.0).then(|| (T::of(momentum), vec![T::zero(); d])),
            mean_square: params.adaptive.then(|| vec![T::zero(); d]),
            params,
            weight_decay: T::of(weight_decay),
            scratch: Vec::new(),
        }
    }

    /// Writes the compensated gradient `g + λ g⊙g⊙(w − backup)` into `out` (constant λ).
    pub fn compensate(g: &[T], w: &[T], backup: &[T], lambda: T, out: &mut Vec<T>) {
        out.clear();
        out.extend(
            g.iter()
                .zip(w)
                .zip(backup)
                .map(|((&gi, &wi), &bi)| gi + lambda * gi * gi * (wi - bi)),
        );
    }
}

impl<T: Real> ServerAlgorithm<T> for DcAsgd<T> {
    fn params(&self) -> &[T] {
        &self.w
    }

    fn apply(&mut self, update: &Update<'_, T>) -> Result<Applied, AlgorithmError> {
        let workers = self.backups.len();
        let backup = self
            .backups
            .get(update.worker)
            .ok_or(AlgorithmError::UnknownWorker {
                worker: update.worker,
                workers,
            })?;
        let mut gdc = std::mem::take(&mut self.scratch);
        let g = update.grad;
        match (&mut self.mean_square, backup) {
            (_, None) => {
                // Never dispatched to (cannot happen through the server core): no correction.
                gdc.clear();
                gdc.extend_from_slice(g);
            }
            (None, Some(backup)) => {
                Self::compensate(g, &self.w, backup, T::of(self.params.lambda), &mut gdc);
            }
            (Some(ms), Some(backup)) => {
                let decay = T::of(self.params.ms_decay);
                let lambda0 = T::of(self.params.lambda);
                let eps = T::of(self.params.epsilon);
                gdc.clear();
                for i in 0..g.len() {
                    let gi = g[i];
                    ms[i] = decay * ms[i] + (T::one() - decay) * gi * gi;
                    let lambda = lambda0 / (ms[i] + eps).sqrt();
                    gdc.push(gi + lambda * gi * gi * (self.w[i] - backup[i]));
                }
            }
        }
        // g_dc + wd·w, with the current w.
        axpy(&mut gdc, self.weight_decay, &self.w);
        let lr = update.lr;
        match &mut self.momentum {
            None => axpy(&mut self.w, -lr, &gdc),
            Some((mu, m)) => {
                axpby(m, *mu, -lr, &gdc);
                axpy(&mut self.w, T::one(), m);
            }
        }
        self.scratch = gdc;
        Ok(Applied::FULL)
    }

    fn dispatch_view(&mut self, worker: usize) -> Result<Cow<'_, [T]>, AlgorithmError> {
        let workers = self.backups.len();
        let slot = self
            .backups
            .get_mut(worker)
            .ok_or(AlgorithmError::UnknownWorker { worker, workers })?;
        match slot {
            Some(b) => {
                b.clear();
                b.extend_from_slice(&self.w);
            }
            None => *slot = Some(self.w.clone()),
        }
        Ok(Cow::Borrowed(&self.w))
    }

    fn worker_weight_decay(&self) -> f64 {
        0.0
    }
    fn save_state(&self) -> AlgorithmState<T> {
        let mut s = AlgorithmState::default();
        s.put("w", &self.w);
        for (i, b) in self.backups.iter().enumerate() {
            if let Some(b) = b {
                s.put(&format!("backup.{i}"), b);
            }
        }
        if let Some((_, m)) = &self.momentum {
            s.put("momentum", m);
        }
        if let Some(ms) = &self.mean_square {
            s.put("mean_square", ms);
        }
        s
    }

    fn load_state(&mut self, state: &AlgorithmState<T>) -> Result<(), String> {
        let d = self.w.len();
        let w = state.vector("w", d)?;
        let backups = (0..self.backups.len())
            .map(|i| state.optional_vector(&format!("backup.{i}"), d))
            .collect::<Result<Vec<_>, _>>()?;
        let momentum = match &self.momentum {
            Some(_) => Some(state.vector("momentum", d)?),
            None => None,
        };
        let mean_square = match &self.mean_square {
            Some(_) => Some(state.vector("mean_square", d)?),
            None => None,
        };
        self.w = w;
        self.backups = backups;
        if let (Some((_, m)), Some(saved)) = (&mut self.momentum, momentum) {
            *m = saved;
        }
        if let (Some(ms), Some(saved)) = (&mut self.mean_square, mean_square) {
            *ms = saved;
        }
        Ok(())
    }
}
