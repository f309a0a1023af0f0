//! Fuzz target of checkpoint loading: the envelope, both checkpoint kinds, and restoring a
//! server core from what decodes.

use crate::algo::{self, AlgorithmConfig, AlgorithmName, LrSchedule, Scheduler};
use crate::node::{Checkpoint, DecenCheckpoint};
use crate::run::generations;
use crate::server::{ServerCore, ServerCoreConfig};

/// Arbitrary bytes as a checkpoint file (sealed or not): opening the envelope, decoding either
/// checkpoint kind and restoring an OrMo server core from it never panic; a restored core is
/// usable.
pub fn checkpoint_bytes(data: &[u8]) {
    let payload = generations::open(data).unwrap_or(data);
    let config = AlgorithmConfig {
        name: AlgorithmName::Ormo,
        ..AlgorithmConfig::default()
    };
    if let Ok(cp) = Checkpoint::decode(payload, 7, config.name.as_str()) {
        let Ok(algorithm) = algo::build(&config, 2, vec![0.0f32; 3]) else {
            return;
        };
        let mut core = ServerCore::new(
            ServerCoreConfig {
                workers: 2,
                scheduler: Scheduler::Async,
                max_updates: None,
                lr: LrSchedule::constant(0.1),
            },
            algorithm,
        );
        if core.restore(&cp.core).is_ok() {
            let _ = core.snapshot();
            let _ = core.handle(crate::server::Event::Join {
                worker: 1,
                incarnation: 0,
            });
        }
    }
    let _ = DecenCheckpoint::decode(payload, 7, 3, "sgp");
}
