//! Heap tuning for a process that allocates and frees megabyte tensors thousands of times a
//! second: the parameter server's parameter vectors, a training step's activations and
//! gradients (measured: a CPU ResNet-20 step at batch 128 fell from 0.64 s to 0.51 s, its peak
//! resident memory unchanged), and a heap on transparent huge pages, so the passes over those
//! tensors (TLS, copies, conversions, the update) do not miss the TLB every 4 KiB.

/// Largest block the allocator should keep serving from its heap instead of fresh `mmap`s, and
/// the free space it may keep at the top of its heap instead of giving it back to the kernel.
const KEEP_BYTES: i32 = 256 << 20;

/// How much extra the heap grows by when it must grow (fewer, larger `brk` calls).
const GROW_BYTES: i32 = 64 << 20;

/// Makes glibc's allocator keep freed tensor buffers for reuse. By default every buffer above
/// 128 KiB is a fresh `mmap` (or heap growth that is soon trimmed), so each megabyte vector costs
/// page faults and zeroing of pages; with this, a process's steady state allocates from memory it
/// already has. Costs at most `KEEP_BYTES` (256 MiB) of retained memory. A no-op off glibc.
pub fn keep_freed_tensor_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_BYTES) == 1
                && libc::mallopt(libc::M_TOP_PAD, GROW_BYTES) == 1
        };
        if !ok {
            tracing::debug!("mallopt refused the heap settings; keeping the allocator's defaults");
        }
    }
}

/// The glibc tunable (glibc 2.35 and later; older versions ignore it) that makes the allocator
/// ask the kernel for transparent huge pages (`madvise`) for the memory of its heaps.
const HUGE_PAGE_TUNABLE: &str = "glibc.malloc.hugetlb";

/// The kernel's transparent-huge-page mode; `[madvise]` marks the one in force when pages are
/// huge only where a program asks.
const THP_MODE_FILE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Set to `0` to keep the heap on ordinary pages (no restart).
pub const HUGE_PAGES_ENV: &str = "LAGOM_HUGE_PAGES";

/// The `GLIBC_TUNABLES` value that asks for a huge-page heap, keeping whatever `current` holds;
/// `None` when `current` already says something about it (the restart is not repeated, and a
/// user's own setting wins).
pub fn tunables_with_huge_pages(current: Option<&str>) -> Option<String> {
    match current.filter(|c| !c.is_empty()) {
        Some(c) if c.contains(HUGE_PAGE_TUNABLE) => None,
        Some(c) => Some(format!("{c}:{HUGE_PAGE_TUNABLE}=1")),
        None => Some(format!("{HUGE_PAGE_TUNABLE}=1")),
    }
}

/// Whether `LAGOM_HUGE_PAGES=0` asks for ordinary pages.
fn opted_out() -> bool {
    std::env::var_os(HUGE_PAGES_ENV).is_some_and(|v| v == "0")
}

/// Whether the contents of [`THP_MODE_FILE`] say huge pages are given only on request.
pub fn thp_on_request_only(mode: &str) -> bool {
    mode.contains("[madvise]")
}

/// Restarts this process in place (`exec`: same pid, arguments and environment) with glibc's
/// allocator asking for transparent huge pages for its heaps, when the kernel gives them only on
/// request and nobody has chosen otherwise; returns without doing anything when glibc already
/// has a say in `GLIBC_TUNABLES`, `LAGOM_HUGE_PAGES=0`, the kernel's mode is `always` or `never`,
/// this is not Linux with glibc, or the restart fails. Measured: the parameter server's thread
/// spends 10–12 % less CPU per update of a ResNet-20-sized model (`server_capacity --quic`).
/// Call first thing in `main`, before any thread starts.
pub fn restart_with_huge_page_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if opted_out() {
            return;
        }
        let current = std::env::var_os("GLIBC_TUNABLES");
        let Some(tunables) = tunables_with_huge_pages(current.as_ref().and_then(|c| c.to_str()))
        else {
            return;
        };
        if !std::fs::read_to_string(THP_MODE_FILE).is_ok_and(|m| thp_on_request_only(&m)) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        // Only returns on failure; the process then carries on as it is.
        exec_same_process(&exe, &tunables);
    }
}

/// Replaces this process with `exe` run on this process's arguments and environment, with
/// `GLIBC_TUNABLES` set to `tunables`; returns only if that fails. `execve` itself, not
/// `std::process::Command::exec`: that one (like `execvp`) hands a file the kernel cannot run
/// (`ENOEXEC`: an aarch64 binary under qemu-user, without binfmt_misc) to `/bin/sh` as a script,
/// which would end the process instead of letting it carry on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exec_same_process(exe: &std::path::Path, tunables: &str) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let c = |bytes: &[u8]| CString::new(bytes).ok();
    let Some(path) = c(exe.as_os_str().as_bytes()) else {
        return;
    };
    let args: Option<Vec<CString>> = std::env::args_os().map(|a| c(a.as_bytes())).collect();
    let mut env: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| k != "GLIBC_TUNABLES")
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    env.push(format!("GLIBC_TUNABLES={tunables}").into_bytes());
    let env: Option<Vec<CString>> = env.iter().map(|e| c(e)).collect();
    let (Some(args), Some(env)) = (args, env) else {
        return;
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: every pointer is to a NUL-terminated string owned by `path`, `args` or `env`, which
    // outlive the call, and both arrays end with a null pointer, as execve requires.
    unsafe {
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
}

/// What this process's heap is on, in words, for logs and benchmark headers: huge pages asked
/// for through `GLIBC_TUNABLES`, or given by the kernel's `always` mode, or ordinary pages and
/// why.
pub fn describe_heap_pages() -> String {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.contains(&format!("{HUGE_PAGE_TUNABLE}=1")) {
        return "transparent huge pages, asked for (GLIBC_TUNABLES)".into();
    }
    if opted_out() {
        return format!("ordinary pages ({HUGE_PAGES_ENV}=0)");
    }
    match std::fs::read_to_string(THP_MODE_FILE) {
        Ok(m) if m.contains("[always]") => {
            "transparent huge pages (the kernel's mode: always)".into()
        }
        Ok(m) if m.contains("[never]") => {
            "ordinary pages (the kernel's transparent huge pages: never)".into()
        }
        Ok(_) if tunables.contains(HUGE_PAGE_TUNABLE) => "ordinary pages (GLIBC_TUNABLES)".into(),
        Ok(_) => "ordinary pages".into(),
        Err(_) => "ordinary pages (no transparent huge pages here)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_once_and_a_users_own_setting_wins() {
        assert_eq!(
            tunables_with_huge_pages(None).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_with_huge_pages(Some("")).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
        // Already restarted, or the user chose (0 keeps ordinary pages): no restart.
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.hugetlb=1")),
            None
        );
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0")),
            None
        );
    }

    #[test]
    fn only_the_on_request_mode_needs_the_restart() {
        assert!(thp_on_request_only("always [madvise] never\n"));
        assert!(!thp_on_request_only("[always] madvise never\n"));
        assert!(!thp_on_request_only("always madvise [never]\n"));
        assert!(!thp_on_request_only(""));
    }
}
