//! From `[algorithm]` to node cores: what each configuration name of the decentralized family
//! means (spec §9–§16), including the Lookahead and BMUF mappings onto SlowMo.

use std::sync::Arc;

use crate::algo::{AlgorithmConfig, AlgorithmName, LocalSgd, Real};

use super::gossip_node::{GossipNode, GossipSpec, MixTiming};
use super::node::DecentralizedNode;
use super::pc_asgd::{PcAsgdNode, PcAsgdSpec};
use super::slowmo::SlowMo;
use super::{BufferStrategy, DpsgdForm, SlowMoBase, Topology, TopologyName};

/// The base algorithm and the SlowMo settings (α, β, τ, buffers) a name stands for.
fn resolve(config: &AlgorithmConfig) -> (AlgorithmName, Option<(f64, f64, u64, BufferStrategy)>) {
    match config.name {
        AlgorithmName::Slowmo => {
            let s = &config.slowmo;
            let base = match s.base {
                SlowMoBase::LocalSgd => AlgorithmName::LocalSgd,
                SlowMoBase::AllreduceSgd => AlgorithmName::AllreduceSgd,
                SlowMoBase::Sgp => AlgorithmName::Sgp,
                SlowMoBase::Osgp => AlgorithmName::Osgp,
                SlowMoBase::Dpsgd => AlgorithmName::Dpsgd,
                SlowMoBase::DoubleAveraging => AlgorithmName::DoubleAveraging,
            };
            (base, Some((s.alpha, s.beta, s.period, s.buffers)))
        }
        AlgorithmName::Lookahead => {
            let l = &config.lookahead;
            (
                AlgorithmName::LocalSgd,
                Some((l.alpha, 0.0, l.k, BufferStrategy::Maintain)),
            )
        }
        AlgorithmName::Bmuf => {
            let b = &config.bmuf;
            (
                AlgorithmName::LocalSgd,
                Some((
                    b.block_lr,
                    b.block_momentum,
                    b.block_size,
                    BufferStrategy::Maintain,
                )),
            )
        }
        name => (name, None),
    }
}

/// The Local SGD period in force: Lookahead and BMUF average once per slow step.
fn local_period(config: &AlgorithmConfig) -> u64 {
    match config.name {
        AlgorithmName::Lookahead => config.lookahead.k,
        AlgorithmName::Bmuf => config.bmuf.block_size,
        _ => config.local_sgd.period,
    }
}

/// The graph the configured algorithm gossips over, if it gossips.
fn graph(config: &AlgorithmConfig) -> Option<TopologyName> {
    match resolve(config).0 {
        AlgorithmName::Sgp | AlgorithmName::Osgp | AlgorithmName::Dpsgd => {
            Some(config.gossip.topology)
        }
        AlgorithmName::PcAsgd => Some(config.pc_asgd.topology),
        _ => None,
    }
}

/// True when the graph must be symmetric and doubly stochastic (D-PSGD, PC-ASGD).
fn needs_symmetric(config: &AlgorithmConfig) -> bool {
    matches!(
        resolve(config).0,
        AlgorithmName::Dpsgd | AlgorithmName::PcAsgd
    )
}

/// The topology of a run of `n` nodes (a one-node complete graph for the non-gossip ones),
/// checked for the stochasticity the algorithm needs.
pub fn topology(config: &AlgorithmConfig, n: usize) -> Result<Topology, String> {
    let name = graph(config).unwrap_or(TopologyName::Complete);
    let t = Topology::new(name, n)?;
    if needs_symmetric(config) && !t.is_symmetric_doubly_stochastic() {
        return Err(format!(
            "`{}` needs a symmetric doubly stochastic mixing matrix; the `{}` graph is not (use ring, bipartite or complete)",
            config.name,
            name.as_str()
        ));
    }
    Ok(t)
}

/// The delayed nodes of PC-ASGD: the configured ones, else the slow nodes of the run.
pub fn delayed_nodes(config: &AlgorithmConfig, n: usize, slow_nodes: &[usize]) -> Vec<bool> {
    let chosen = if config.pc_asgd.delayed_nodes.is_empty() {
        slow_nodes
    } else {
        &config.pc_asgd.delayed_nodes
    };
    (0..n).map(|i| chosen.contains(&i)).collect()
}

/// Length of the state every node of `config`'s algorithm holds alike, for a model of `dim`
/// parameters (what [`DecentralizedNode::shared_state`] returns): SlowMo, Lookahead and BMUF
/// keep their outer point and slow momentum (`2 × dim`), the others nothing.
pub fn shared_state_len(config: &AlgorithmConfig, dim: usize) -> usize {
    if resolve(config).1.is_some() {
        2 * dim
    } else {
        0
    }
}

/// Values in the largest tensor a decentralized worker and its rendezvous exchange for a model of
/// `dim` parameters: an exact average of parameters and buffers (`2 × dim`), or a peer's state
/// with its shared part.
pub fn rendezvous_message_len(config: &AlgorithmConfig, dim: usize) -> usize {
    (2 * dim).max(dim + shared_state_len(config, dim))
}

/// The node cores of a run of `n` nodes, all starting from `x0`; `slow_nodes` are the nodes the
/// heterogeneity model slows down (PC-ASGD's delayed nodes unless configured).
pub fn build_nodes<T: Real>(
    config: &AlgorithmConfig,
    nesterov: bool,
    n: usize,
    slow_nodes: &[usize],
    x0: &[T],
) -> Result<Vec<Box<dyn DecentralizedNode<T>>>, String> {
    let topology = Arc::new(topology(config, n)?);
    let delayed = Arc::new(delayed_nodes(config, n, slow_nodes));
    (0..n)
        .map(|id| build_node(config, nesterov, id, &topology, &delayed, x0.to_vec()))
        .collect()
}

/// Node `id` of the run whose graph is `topology` and whose delayed nodes are `delayed`.
pub fn build_node<T: Real>(
    config: &AlgorithmConfig,
    nesterov: bool,
    id: usize,
    topology: &Arc<Topology>,
    delayed: &Arc<Vec<bool>>,
    x0: Vec<T>,
) -> Result<Box<dyn DecentralizedNode<T>>, String> {
    if !config.name.is_decentralized() {
        return Err(format!(
            "`{}` is a parameter-server algorithm, not a decentralized one",
            config.name
        ));
    }
    if id >= topology.nodes() {
        return Err(format!("node {id} is outside 0..{}", topology.nodes()));
    }
    let (base, slow) = resolve(config);
    if base == AlgorithmName::PcAsgd {
        let p = &config.pc_asgd;
        let spec = PcAsgdSpec {
            topology: topology.clone(),
            delayed: delayed.clone(),
            delay: p.delay,
            lambda: p.lambda,
            theta: p.theta,
            weight_decay: config.weight_decay,
        };
        return Ok(Box::new(PcAsgdNode::new(id, spec, x0)));
    }
    let period = local_period(config);
    let (timing, push_sum, reduce_gradients, local_average) = match base {
        AlgorithmName::AllreduceSgd => (MixTiming::Never, false, true, None),
        AlgorithmName::LocalSgd => (
            MixTiming::Never,
            false,
            false,
            Some((period, config.local_sgd.buffers)),
        ),
        AlgorithmName::DoubleAveraging => (
            MixTiming::Never,
            false,
            false,
            Some((period, BufferStrategy::Sync)),
        ),
        AlgorithmName::Sgp => (MixTiming::AfterStep, true, false, None),
        AlgorithmName::Osgp => (
            MixTiming::BeforeStep {
                jitter: config.gossip.synch_freq,
            },
            true,
            false,
            None,
        ),
        AlgorithmName::Dpsgd => match config.gossip.form {
            DpsgdForm::Atc => (MixTiming::AfterStep, false, false, None),
            DpsgdForm::Cta => (MixTiming::BeforeStep { jitter: 0 }, false, false, None),
        },
        other => return Err(format!("`{other}` cannot be a SlowMo base")),
    };
    let spec = GossipSpec {
        topology: topology.clone(),
        timing,
        push_sum,
        reduce_gradients,
        local_average,
    };
    let opt = LocalSgd::new(x0.len(), config.momentum, nesterov, config.weight_decay);
    let slow =
        slow.map(|(alpha, beta, tau, buffers)| SlowMo::new(x0.clone(), alpha, beta, tau, buffers));
    Ok(Box::new(GossipNode::new(id, spec, x0, opt, slow)))
}

/// Checks what depends on the number of nodes (graph shape, delayed node ids).
pub fn validate_for_nodes(config: &AlgorithmConfig, n: usize) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if !config.name.is_decentralized() {
        return problems;
    }
    if let Err(e) = topology(config, n) {
        let key = if resolve(config).0 == AlgorithmName::PcAsgd {
            "algorithm.pc_asgd.topology"
        } else {
            "algorithm.gossip.topology"
        };
        problems.push((key, e));
    }
    if let Some(bad) = config.pc_asgd.delayed_nodes.iter().find(|&&i| i >= n) {
        problems.push((
            "algorithm.pc_asgd.delayed_nodes",
            format!("node {bad} is outside 0..{n}"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_state_length_is_what_each_node_hands_over() {
        let dim = 5;
        for name in AlgorithmName::DECENTRALIZED {
            let mut config = AlgorithmConfig {
                name,
                ..AlgorithmConfig::default()
            };
            // A graph every family accepts (D-PSGD and PC-ASGD need a symmetric one).
            config.gossip.topology = crate::algo::TopologyName::Ring;
            let nodes = build_nodes::<f32>(&config, false, 4, &[], &[1.0; 5]).unwrap();
            let len = shared_state_len(&config, dim);
            assert_eq!(nodes[0].shared_state().len(), len, "{name:?}");
            assert!(rendezvous_message_len(&config, dim) >= dim + len);
            assert!(rendezvous_message_len(&config, dim) >= 2 * dim);
            // A fresh node takes another's shared state; a wrong length is refused.
            let mut fresh = build_nodes::<f32>(&config, false, 4, &[], &[0.0; 5]).unwrap();
            assert!(fresh[1]
                .adopt_shared_state(&nodes[0].shared_state())
                .is_ok());
            assert_eq!(fresh[1].shared_state(), nodes[0].shared_state());
            assert!(fresh[1].adopt_shared_state(&[0.0; 3]).is_err(), "{name:?}");
        }
    }
}
