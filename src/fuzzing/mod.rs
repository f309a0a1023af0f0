//! Fuzz targets: each takes arbitrary bytes and panics only when a property is broken. The
//! `fuzz/` crate runs them under libFuzzer (`cargo +nightly fuzz run TARGET`); `tests/fuzz_replay.rs`
//! runs each over its saved corpus and a few thousand generated inputs on every `cargo test`.

mod checkpoints;
mod driver;
mod input;
mod rendezvous;
mod server_core;
mod wire;

pub use checkpoints::checkpoint_bytes;
pub use driver::decen_driver_inputs;
pub use input::Input;
pub use rendezvous::rendezvous_events;
pub use server_core::server_core_events;
pub use wire::{frame_reader, message_codec};

/// A fuzz target: panics only when a property is broken.
pub type FuzzTarget = fn(&[u8]);

/// Every target by its name in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, FuzzTarget); 6] = [
    ("frame_reader", frame_reader),
    ("message_codec", message_codec),
    ("server_core", server_core_events),
    ("rendezvous", rendezvous_events),
    ("decen_driver", decen_driver_inputs),
    ("checkpoint", checkpoint_bytes),
];
