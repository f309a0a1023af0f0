//! One flat parameter layout for every node: trainable tensors sorted by name and concatenated
//! into one `Vec<f32>`, with a hash of (names, shapes, dtype) that nodes compare at handshake.
//! Batch-norm running statistics are kept apart: they are state, not parameters, and never enter
//! gradients or the optimizer.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;

use super::tensor_copy::{copy_values, set_var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Whether a variable name is a batch-norm running statistic (not trained by gradients).
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
    var: Var,
}

/// The sorted trainable variables of a model and where each lives in the flat vector.
#[derive(Debug, Clone)]
pub struct ParamLayout {
    entries: Vec<Entry>,
    stats: Vec<(String, Var)>,
    total: usize,
    hash: u64,
}

/// FNV-1a's 64-bit offset basis: the `h` to start [`fnv1a`] from.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, continuing from `h`: a hash that is the same in every process and on every
/// platform.
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl ParamLayout {
    /// Reads the variables of `varmap`, sorted by name (never in `HashMap` order).
    pub fn from_varmap(varmap: &VarMap) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| anyhow!("the model's variable map is poisoned"))?;
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        drop(data);
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut entries = Vec::new();
        let mut stats = Vec::new();
        let mut offset = 0;
        let mut hash = FNV_OFFSET;
        for (name, var) in named {
            if is_running_stat(&name) {
                stats.push((name, var));
                continue;
            }
            let shape = var.dims().to_vec();
            let len = shape.iter().product();
            hash = fnv1a(
                format!("{name}:{shape:?}:{:?};", var.dtype()).as_bytes(),
                hash,
            );
            entries.push(Entry {
                name,
                shape,
                offset,
                len,
                var,
            });
            offset += len;
        }
        Ok(ParamLayout {
            entries,
            stats,
            total: offset,
            hash,
        })
    }

    /// Number of trainable values.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when the model has no trainable values.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The layout hash: equal iff names, shapes and dtypes are equal.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Trainable tensor names in layout order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Every variable of the model — trainable tensors in layout order, then the running
    /// statistics — with its name.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), &e.var))
            .chain(self.stats.iter().map(|(n, v)| (n.as_str(), v)))
    }

    /// Names of the batch-norm running statistics (kept out of the flat vector).
    pub fn running_stat_names(&self) -> Vec<&str> {
        self.stats.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The current parameters as one flat vector.
    pub fn flatten(&self) -> Result<Vec<f32>> {
        let mut flat = Vec::with_capacity(self.total);
        for e in &self.entries {
            flat.extend(e.var.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(flat)
    }

    /// Sets every parameter from a flat vector of exactly [`len`](Self::len) values.
    pub fn load(&self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.total {
            bail!(
                "parameter vector has {} values, the model has {}",
                flat.len(),
                self.total
            );
        }
        for e in &self.entries {
            set_var(&e.var, &flat[e.offset..e.offset + e.len])
                .with_context(|| format!("cannot set {}", e.name))?;
        }
        Ok(())
    }

    /// The gradient of every parameter as one flat vector (zeros where a tensor got none).
    pub fn gradients(&self, grads: &GradStore) -> Result<Vec<f32>> {
        let mut flat = vec![0.0f32; self.total];
        self.fill_gradients(grads, &mut flat)?;
        Ok(flat)
    }

    /// Writes `values`, the gradient of the parameter `param` (one of the layout's variables,
    /// matched by identity), into its place in `flat`; an error for a tensor that is not one of
    /// them or a length that is not its.
    pub fn write_gradient(&self, param: &Tensor, values: &[f32], flat: &mut [f32]) -> Result<()> {
        let e = self
            .entries
            .iter()
            .find(|e| e.var.as_tensor().id() == param.id())
            .context("a gradient for a tensor that is not one of the model's parameters")?;
        if values.len() != e.len || flat.len() != self.total {
            bail!(
                "the gradient of {} has {} values (expected {}), the flat vector {} (expected {})",
                e.name,
                values.len(),
                e.len,
                flat.len(),
                self.total
            );
        }
        flat[e.offset..e.offset + e.len].copy_from_slice(values);
        Ok(())
    }

    /// Writes the gradient of every variable that `grads` holds into its place in `flat` (a
    /// vector of the layout's length) and leaves the other places as they are: a backward pass
    /// split into segments, each over its own variables, fills one vector.
    pub fn fill_gradients(&self, grads: &GradStore, flat: &mut [f32]) -> Result<()> {
        if flat.len() != self.total {
            bail!(
                "gradient vector has {} values, the layout {}",
                flat.len(),
                self.total
            );
        }
        for e in &self.entries {
            if let Some(g) = grads.get(e.var.as_tensor()) {
                copy_values(g, &mut flat[e.offset..e.offset + e.len])
                    .with_context(|| format!("cannot read the gradient of {}", e.name))?;
            }
        }
        Ok(())
    }

    /// Number of batch-norm running-statistic values.
    pub fn stats_len(&self) -> usize {
        self.stats.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The batch-norm running statistics, in name order, as one flat vector.
    pub fn flatten_stats(&self) -> Result<Vec<f32>> {
        let mut flat = Vec::with_capacity(self.stats_len());
        for (_, v) in &self.stats {
            flat.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(flat)
    }

    /// Sets every running statistic from a flat vector of exactly
    /// [`stats_len`](Self::stats_len) values.
    pub fn load_stats(&self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.stats_len() {
            bail!(
                "running-statistics vector has {} values, the model has {}",
                flat.len(),
                self.stats_len()
            );
        }
        let mut offset = 0;
        for (name, v) in &self.stats {
            let n = v.elem_count();
            let t = Tensor::from_slice(&flat[offset..offset + n], v.dims(), v.device())?;
            v.set(&t).with_context(|| format!("cannot set {name}"))?;
            offset += n;
        }
        Ok(())
    }

    /// Resets running means to 0 and running variances to 1.
    pub fn reset_running_stats(&self) -> Result<()> {
        for (name, v) in &self.stats {
            let t = if name.ends_with("running_var") {
                v.as_tensor().ones_like()?
            } else {
                v.as_tensor().zeros_like()?
            };
            v.set(&t).with_context(|| format!("cannot reset {name}"))?;
        }
        Ok(())
    }

    /// Deterministic initialisation from `seed`: Kaiming-normal (fan-in, gain √2) for
    /// convolution kernels (rank 4), PyTorch's default uniform ±1/√fan-in for linear weights
    /// (rank 2), ones for 1-D `weight` (batch-norm scale), zeros for biases.
    pub fn init_seeded(&self, seed: u64) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flat = Vec::with_capacity(self.total);
        for e in &self.entries {
            let fan_in: usize = e.shape.iter().skip(1).product::<usize>().max(1);
            if e.shape.len() >= 3 {
                let std = (2.0 / fan_in as f32).sqrt();
                let normal = Normal::new(0.0f32, std).map_err(|err| anyhow!("{err}"))?;
                flat.extend((0..e.len).map(|_| normal.sample(&mut rng)));
            } else if e.shape.len() == 2 {
                let bound = 1.0 / (fan_in as f32).sqrt();
                flat.extend((0..e.len).map(|_| rng.random_range(-bound..bound)));
            } else if e.name.ends_with("weight") {
                flat.extend(std::iter::repeat_n(1.0, e.len));
            } else {
                flat.extend(std::iter::repeat_n(0.0, e.len));
            }
        }
        self.load(&flat)
    }
}
