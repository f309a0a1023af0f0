//! Handing freed memory back: after a process frees most of a fragmented heap, the call a
//! long-running server makes every few seconds lowers its resident size to what it still holds,
//! and what it holds is untouched. (Its own process, so no other test's allocations blur the
//! resident size.)

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_pages_go_back_to_the_operating_system_and_live_blocks_are_kept() {
    use lagom::compute::resident_memory;
    use lagom::memory_return::return_freed_memory;

    let resident_kib =
        || resident_memory().expect("Linux /proc/self/status").current as usize / 1024;

    const BLOCK: usize = 64 << 10; // below glibc's mmap threshold: served from the heap
    const BLOCKS: usize = 2048; // 128 MiB
    let blocks: Vec<Vec<u8>> = (0..BLOCKS)
        .map(|i| vec![(i % 251) as u8 + 1; BLOCK])
        .collect();
    // Keep every 8th block: the heap stays fragmented, so trimming its top alone frees little.
    let kept: Vec<(usize, Vec<u8>)> = blocks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 8 == 0)
        .collect();
    let before = resident_kib();
    let started = std::time::Instant::now();
    assert!(return_freed_memory(), "the allocator returned nothing");
    println!("handed back in {:?}", started.elapsed());
    let after = resident_kib();
    let freed_kib = (BLOCKS - kept.len()) * BLOCK / 1024;
    assert!(
        before.saturating_sub(after) > freed_kib / 2,
        "resident {before} KiB -> {after} KiB after freeing {freed_kib} KiB"
    );
    for (i, block) in &kept {
        let value = (i % 251) as u8 + 1;
        assert!(block.iter().all(|&b| b == value), "block {i} changed");
    }
}
