//! Which examples of a data set a node keeps, and where each goes: a worker keeps only its shard,
//! so readers stream a file and copy out just the selected records, in the shard's order.

use super::DataError;

/// The examples kept of a set of `len`, in the order they are to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every example, in file order.
    All {
        /// Examples in the set.
        len: usize,
    },
    /// The examples at these indexes, in this order.
    Only {
        /// `slots[i]`: where example `i` goes in the result, or `u32::MAX` when it is not kept.
        slots: Vec<u32>,
        /// How many are kept.
        kept: usize,
    },
}

impl Selection {
    /// Every example of a set of `len`.
    pub fn all(len: usize) -> Self {
        Selection::All { len }
    }

    /// The examples at `indices` of a set of `len`, stored in that order; an index past the end
    /// or given twice is an error.
    pub fn only(len: usize, indices: &[usize]) -> Result<Self, DataError> {
        let mut slots = vec![u32::MAX; len];
        for (pos, &i) in indices.iter().enumerate() {
            match slots.get_mut(i) {
                None => return Err(DataError::OutOfRange { index: i, len }),
                Some(slot) if *slot != u32::MAX => {
                    return Err(DataError::Duplicate { index: i });
                }
                Some(slot) => *slot = pos as u32,
            }
        }
        Ok(Selection::Only {
            slots,
            kept: indices.len(),
        })
    }

    /// Examples in the set it selects from.
    pub fn source_len(&self) -> usize {
        match self {
            Selection::All { len } => *len,
            Selection::Only { slots, .. } => slots.len(),
        }
    }

    /// Examples kept.
    pub fn kept(&self) -> usize {
        match self {
            Selection::All { len } => *len,
            Selection::Only { kept, .. } => *kept,
        }
    }

    /// Where example `i` goes, or `None` when it is not kept (or past the end).
    pub fn slot(&self, i: usize) -> Option<usize> {
        match self {
            Selection::All { len } => (i < *len).then_some(i),
            Selection::Only { slots, .. } => match slots.get(i) {
                Some(&s) if s != u32::MAX => Some(s as usize),
                _ => None,
            },
        }
    }

    /// The kept items of `items` (one per example, `item` values each), in the stored order.
    pub fn pick<T: Copy + Default>(&self, items: &[T], item: usize) -> Vec<T> {
        let mut out = vec![T::default(); self.kept() * item];
        for (i, chunk) in items.chunks_exact(item).enumerate() {
            if let Some(s) = self.slot(i) {
                out[s * item..(s + 1) * item].copy_from_slice(chunk);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_places_each_kept_example_at_its_position() {
        let s = Selection::only(6, &[4, 1, 5]).unwrap();
        assert_eq!((s.source_len(), s.kept()), (6, 3));
        assert_eq!(
            (0..7).map(|i| s.slot(i)).collect::<Vec<_>>(),
            [None, Some(1), None, None, Some(0), Some(2), None]
        );
        let items: Vec<u8> = (0..12).collect();
        assert_eq!(s.pick(&items, 2), [8, 9, 2, 3, 10, 11]);
        let all = Selection::all(3);
        assert_eq!(all.pick(&[7u8, 8, 9], 1), [7, 8, 9]);
        assert_eq!(all.slot(3), None);
    }

    #[test]
    fn out_of_range_and_repeated_indexes_are_errors() {
        let e = Selection::only(3, &[0, 3]).unwrap_err();
        assert_eq!(e.to_string(), "example 3 asked for, but the data set has 3");
        let e = Selection::only(3, &[2, 2]).unwrap_err();
        assert_eq!(e.to_string(), "example 2 asked for twice");
    }
}
