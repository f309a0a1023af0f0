//! This process's resident memory, current and peak, as Linux reports it in `/proc/self/status`.

/// Resident set size now and its peak since the process started, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentMemory {
    /// `VmRSS`.
    pub current: u64,
    /// `VmHWM` (the high-water mark).
    pub peak: u64,
}

/// Reads `/proc/self/status`; `None` where it or its fields are missing (not Linux).
pub fn resident_memory() -> Option<ResidentMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(ResidentMemory {
        current: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_at_least_the_current_and_grows_with_a_touched_allocation() {
        let before = resident_memory().expect("Linux /proc/self/status");
        assert!(before.peak >= before.current && before.current > 0);
        // black_box: without it the optimizer may drop the unused allocation entirely.
        let big = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = resident_memory().expect("Linux /proc/self/status");
        assert!(
            after.peak >= before.current + (60 << 20),
            "{before:?} → {after:?}"
        );
        drop(big);
    }
}
