//! Children that must not outlive the lagom process that started them.

use std::os::unix::process::CommandExt;

/// Makes the child `command` starts receive SIGTERM from the kernel when this process dies, even
/// by SIGKILL (Linux's `PR_SET_PDEATHSIG`); the child is not started if that cannot be set.
pub fn exit_with_parent(command: &mut std::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
