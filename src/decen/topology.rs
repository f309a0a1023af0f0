//! Communication graphs and their mixing matrices (spec §11–§13): who sends to whom at
//! iteration k, with which weight, and checks of the stochasticity each algorithm needs.
//!
//! Weights are chosen by the sender (uniform over itself and its out-peers), so every matrix is
//! column-stochastic by construction; `P[j][i]` is the share of node i's mass that goes to j.

use super::TopologyName;

/// A graph over `n` nodes, possibly changing with the iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    n: usize,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Named(TopologyName),
    /// Fixed out-peer lists (tests and irregular graphs).
    Custom(Vec<Vec<usize>>),
}

impl Topology {
    /// The named graph over `n ≥ 1` nodes; `bipartite` needs an even `n` (or 1).
    pub fn new(name: TopologyName, n: usize) -> Result<Self, String> {
        if n == 0 {
            return Err("a topology needs at least one node".to_string());
        }
        if name == TopologyName::Bipartite && n > 1 && n % 2 == 1 {
            return Err(format!(
                "the bipartite topology pairs even with odd nodes and needs an even number of nodes, got {n}"
            ));
        }
        Ok(Topology {
            n,
            kind: Kind::Named(name),
        })
    }

    /// A fixed graph given by each node's out-peers (no self, no duplicates, all `< n`).
    pub fn custom(out_peers: Vec<Vec<usize>>) -> Result<Self, String> {
        let n = out_peers.len();
        if n == 0 {
            return Err("a topology needs at least one node".to_string());
        }
        for (i, peers) in out_peers.iter().enumerate() {
            for (a, &j) in peers.iter().enumerate() {
                if j >= n || j == i || peers[..a].contains(&j) {
                    return Err(format!(
                        "node {i}: out-peer {j} is out of range, itself or repeated"
                    ));
                }
            }
        }
        Ok(Topology {
            n,
            kind: Kind::Custom(out_peers),
        })
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// After how many iterations the sequence of graphs repeats.
    pub fn period(&self) -> u64 {
        match &self.kind {
            Kind::Named(TopologyName::Exponential) => exponential_levels(self.n) as u64,
            Kind::Named(TopologyName::Bipartite) => (self.n / 2).max(1) as u64,
            _ => 1,
        }
    }

    /// The nodes `i` sends to at iteration `k` (never `i` itself, no repeats).
    pub fn out_peers(&self, i: usize, k: u64) -> Vec<usize> {
        let n = self.n;
        if n == 1 {
            return Vec::new();
        }
        match &self.kind {
            Kind::Custom(peers) => peers[i].clone(),
            Kind::Named(TopologyName::Exponential) => {
                let level = (k % exponential_levels(n) as u64) as u32;
                vec![(i + (1usize << level) % n) % n]
            }
            Kind::Named(TopologyName::Ring) => {
                let (next, prev) = ((i + 1) % n, (i + n - 1) % n);
                if next == prev {
                    vec![next]
                } else {
                    vec![prev, next]
                }
            }
            Kind::Named(TopologyName::Bipartite) => {
                let offset = 2 * (k % (n as u64 / 2)) as usize + 1;
                if i % 2 == 0 {
                    vec![(i + offset) % n]
                } else {
                    vec![(i + n - offset) % n]
                }
            }
            Kind::Named(TopologyName::Complete) => (0..n).filter(|&j| j != i).collect(),
        }
    }

    /// The nodes that send to `i` at iteration `k`, in increasing order.
    pub fn in_peers(&self, i: usize, k: u64) -> Vec<usize> {
        (0..self.n)
            .filter(|&j| j != i && self.out_peers(j, k).contains(&i))
            .collect()
    }

    /// The share of its mass node `i` keeps (and sends to each out-peer) at iteration `k`:
    /// `1 / (out-degree + 1)`.
    pub fn share(&self, i: usize, k: u64) -> f64 {
        1.0 / (self.out_peers(i, k).len() as f64 + 1.0)
    }

    /// The mixing matrix of iteration `k`.
    pub fn mixing(&self, k: u64) -> Mixing {
        let mut m = Mixing::zeros(self.n);
        for i in 0..self.n {
            let p = self.share(i, k);
            m.add(i, i, p);
            for j in self.out_peers(i, k) {
                m.add(j, i, p);
            }
        }
        m
    }

    /// True when every matrix of the sequence is symmetric and doubly stochastic (what D-PSGD
    /// and PC-ASGD need).
    pub fn is_symmetric_doubly_stochastic(&self) -> bool {
        (0..self.period()).all(|k| {
            let m = self.mixing(k);
            m.is_symmetric(1e-12) && m.is_doubly_stochastic(1e-12)
        })
    }
}

/// `L = ⌊log2(n − 1)⌋ + 1`: the exponential graph's number of distinct peer offsets.
fn exponential_levels(n: usize) -> usize {
    if n <= 2 {
        1
    } else {
        (usize::BITS - (n - 1).leading_zeros()) as usize
    }
}

/// A dense `n × n` matrix of mixing weights; `get(j, i)` is what node i gives node j.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixing {
    n: usize,
    values: Vec<f64>,
}

impl Mixing {
    /// The zero matrix.
    pub fn zeros(n: usize) -> Self {
        Mixing {
            n,
            values: vec![0.0; n * n],
        }
    }

    /// The identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Mixing::zeros(n);
        for i in 0..n {
            m.set(i, i, 1.0);
        }
        m
    }

    /// The size n.
    pub fn size(&self) -> usize {
        self.n
    }

    /// Entry (row, column).
    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.values[row * self.n + col]
    }

    /// Sets entry (row, column).
    pub fn set(&mut self, row: usize, col: usize, v: f64) {
        self.values[row * self.n + col] = v;
    }

    /// Adds to entry (row, column).
    pub fn add(&mut self, row: usize, col: usize, v: f64) {
        self.values[row * self.n + col] += v;
    }

    /// `a·self + b·other`, element-wise.
    pub fn combine(&self, a: f64, other: &Mixing, b: f64) -> Mixing {
        Mixing {
            n: self.n,
            values: self
                .values
                .iter()
                .zip(&other.values)
                .map(|(x, y)| a * x + b * y)
                .collect(),
        }
    }

    /// The row sums.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.n)
            .map(|r| (0..self.n).map(|c| self.get(r, c)).sum())
            .collect()
    }

    /// The column sums.
    pub fn column_sums(&self) -> Vec<f64> {
        (0..self.n)
            .map(|c| (0..self.n).map(|r| self.get(r, c)).sum())
            .collect()
    }

    /// Non-negative with columns summing to 1 (within `tol`): push-sum's requirement.
    pub fn is_column_stochastic(&self, tol: f64) -> bool {
        self.values.iter().all(|&v| v >= 0.0)
            && self.column_sums().iter().all(|s| (s - 1.0).abs() <= tol)
    }

    /// Column-stochastic and rows summing to 1 as well.
    pub fn is_doubly_stochastic(&self, tol: f64) -> bool {
        self.is_column_stochastic(tol) && self.row_sums().iter().all(|s| (s - 1.0).abs() <= tol)
    }

    /// Equal to its transpose (within `tol`).
    pub fn is_symmetric(&self, tol: f64) -> bool {
        (0..self.n).all(|r| (0..r).all(|c| (self.get(r, c) - self.get(c, r)).abs() <= tol))
    }

    /// `self · x` for a vector of node values.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        (0..self.n)
            .map(|r| (0..self.n).map(|c| self.get(r, c) * x[c]).sum())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_graph_peers_follow_powers_of_two() {
        let t = Topology::new(TopologyName::Exponential, 8).unwrap();
        assert_eq!(t.period(), 3);
        let peers: Vec<_> = (0..4).map(|k| t.out_peers(5, k)[0]).collect();
        assert_eq!(peers, vec![6, 7, 1, 6]);
        assert_eq!(t.in_peers(0, 2), vec![4]);
        assert!(t.mixing(1).is_doubly_stochastic(0.0));
        assert!(!t.mixing(1).is_symmetric(0.0));
        assert!(!t.is_symmetric_doubly_stochastic());
    }

    #[test]
    fn symmetric_graphs_pass_the_check_and_bipartite_needs_even_n() {
        for name in [
            TopologyName::Ring,
            TopologyName::Bipartite,
            TopologyName::Complete,
        ] {
            for n in [1, 2, 4, 6] {
                let t = Topology::new(name, n).unwrap();
                assert!(t.is_symmetric_doubly_stochastic(), "{name:?} n={n}");
            }
        }
        assert!(Topology::new(TopologyName::Bipartite, 5).is_err());
        let ring = Topology::new(TopologyName::Ring, 5).unwrap().mixing(0);
        assert_eq!(ring.get(0, 4), 1.0 / 3.0);
        // Bipartite: every even node is matched to an odd one, and the offsets cycle.
        let b = Topology::new(TopologyName::Bipartite, 6).unwrap();
        assert_eq!(b.out_peers(0, 0), vec![1]);
        assert_eq!(b.out_peers(0, 1), vec![3]);
        assert_eq!(b.out_peers(3, 1), vec![0]);
    }

    #[test]
    fn custom_graphs_are_validated() {
        assert!(Topology::custom(vec![vec![1], vec![1]]).is_err());
        assert!(Topology::custom(vec![vec![2], vec![0]]).is_err());
        let t = Topology::custom(vec![vec![1, 2], vec![0], vec![0]]).unwrap();
        let m = t.mixing(0);
        assert!(m.is_column_stochastic(1e-15));
        assert!(!m.is_doubly_stochastic(1e-15));
    }
}
