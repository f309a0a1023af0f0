//! The learned state of a server algorithm (parameters, momentum buffers, counters), in a form
//! a checkpoint can store and a fresh instance can be restored from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Named vectors and numbers; what each algorithm puts here is listed in its `save_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlgorithmState<T> {
    /// Vectors by name (`w`, `u`, `buffer.3`, …).
    pub vectors: BTreeMap<String, Vec<T>>,
    /// Numbers by name (counters, the last learning rate, …).
    pub numbers: BTreeMap<String, f64>,
}

impl<T: Clone> AlgorithmState<T> {
    /// The state of a momentum method: its parameters `w` and one momentum buffer `u`.
    pub fn momentum(w: &[T], u: &[T]) -> Self {
        let mut s = AlgorithmState {
            vectors: BTreeMap::new(),
            numbers: BTreeMap::new(),
        };
        s.put("w", w);
        s.put("u", u);
        s
    }

    /// Restores a momentum method's `w` and `u` (of their current lengths); on an error neither
    /// changes.
    pub fn load_momentum(&self, w: &mut Vec<T>, u: &mut Vec<T>) -> Result<(), String> {
        let new_w = self.vector("w", w.len())?;
        let new_u = self.vector("u", u.len())?;
        *w = new_w;
        *u = new_u;
        Ok(())
    }

    /// Stores a vector.
    pub fn put(&mut self, name: &str, v: &[T]) {
        self.vectors.insert(name.to_string(), v.to_vec());
    }

    /// Stores a number.
    pub fn put_number(&mut self, name: &str, x: f64) {
        self.numbers.insert(name.to_string(), x);
    }

    /// The vector `name`, which must have `len` values.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<T>, String> {
        let v = self
            .vectors
            .get(name)
            .ok_or_else(|| format!("the saved state has no `{name}`"))?;
        if v.len() != len {
            return Err(format!(
                "saved `{name}` has {} values, the model has {len}",
                v.len()
            ));
        }
        Ok(v.clone())
    }

    /// The vector `name` if saved (with `len` values), else `None`.
    pub fn optional_vector(&self, name: &str, len: usize) -> Result<Option<Vec<T>>, String> {
        if self.vectors.contains_key(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The number `name`.
    pub fn number(&self, name: &str) -> Result<f64, String> {
        self.numbers
            .get(name)
            .copied()
            .ok_or_else(|| format!("the saved state has no `{name}`"))
    }
}
