//! Gives freed memory back to the operating system while a long-running node serves peers.
//!
//! glibc's allocator keeps the pages of freed blocks inside its heaps. After a moment when the
//! server was starved of CPU — its bounded queues and QUIC's receive buffers full — the resident
//! size stays at that high-water mark although the memory is free again (measured: +3–6 MB per
//! starved moment on the soak benchmark's server). A thread asks the allocator every
//! [`RETURN_EVERY`] to hand whole free pages back (`malloc_trim`), so the resident size follows
//! what the process holds. With another C library it does nothing.

use std::sync::Once;
use std::time::{Duration, Instant};

/// How often the freed pages are handed back.
pub const RETURN_EVERY: Duration = Duration::from_secs(2);

/// Starts the thread that hands freed pages back every [`RETURN_EVERY`]; once per process, later
/// calls do nothing.
pub fn start_returning_freed_memory() {
    static START: Once = Once::new();
    START.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("lagom-memory-return".into())
            .spawn(|| loop {
                std::thread::sleep(RETURN_EVERY);
                let started = Instant::now();
                let returned = return_freed_memory();
                tracing::trace!(
                    "freed memory handed back: {returned} in {:?}",
                    started.elapsed()
                );
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the thread that hands freed memory back: {e}");
        }
    });
}

/// Asks the allocator to hand whole free pages back to the operating system now; true when it
/// returned any (always false where the C library has no such call).
pub fn return_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a padding size and touches only the allocator's own state,
        // under its own locks; it has no preconditions.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
