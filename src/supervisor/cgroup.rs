//! The `cpu-quota` slowdown: each slow worker process in a cgroup v2 of its own whose `cpu.max`
//! grants `speed ×` the CPU time it would otherwise use. Needs cgroup v2 with the cpu controller
//! delegated to the supervisor (under systemd: `Delegate=yes`); anything else is a clear error
//! before any worker starts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// The cgroup v2 mount point.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// `cpu.max` period in microseconds.
const PERIOD_US: u64 = 100_000;

/// The `cpu.max` line for a worker of relative `speed` that would use `cores` cores at full speed.
pub fn cpu_max(speed: f64, cores: usize) -> String {
    let quota = (speed.clamp(0.0, 1.0) * cores.max(1) as f64 * PERIOD_US as f64).round() as u64;
    format!("{} {PERIOD_US}", quota.max(1000))
}

/// The supervisor's cgroup, prepared for one child cgroup per slowed worker.
#[derive(Debug)]
pub struct CpuQuota {
    base: PathBuf,
}

impl CpuQuota {
    /// Checks that cgroup v2 and its cpu controller are usable here, moves the supervisor into a
    /// leaf of its own cgroup (v2 lets only leaves hold processes) and enables `cpu` for the
    /// workers' cgroups. Every failure names the file and what to change.
    pub fn prepare() -> Result<CpuQuota> {
        let root = Path::new(CGROUP_ROOT);
        if !root.join("cgroup.controllers").is_file() {
            bail!(
                "heterogeneity.mechanism = \"cpu-quota\" needs cgroup v2 mounted at {CGROUP_ROOT}; \
                 this host uses cgroup v1 or a hybrid layout (use mechanism = \"delay\")"
            );
        }
        let own =
            fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| anyhow!("/proc/self/cgroup has no cgroup v2 entry"))?;
        let base = root.join(rel.trim_start_matches('/'));
        let controllers = read(&base.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            bail!(
                "heterogeneity.mechanism = \"cpu-quota\": the cpu controller is not available in \
                 {} (controllers: {controllers:?}); delegate it to the supervisor (systemd: \
                 Delegate=yes in its unit) or use mechanism = \"delay\"",
                base.display()
            );
        }
        let own_leaf = base.join("lagom-supervisor");
        mkdir(&own_leaf)?;
        write(
            &own_leaf.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        write(&base.join("cgroup.subtree_control"), "+cpu")?;
        Ok(CpuQuota { base })
    }

    /// Puts process `pid` (worker `worker`) in its own cgroup limited by [`cpu_max`].
    pub fn place(&self, worker: usize, pid: u32, speed: f64, cores: usize) -> Result<()> {
        let dir = self.base.join(format!("lagom-worker-{worker}"));
        mkdir(&dir)?;
        write(&dir.join("cpu.max"), &cpu_max(speed, cores))?;
        write(&dir.join("cgroup.procs"), &pid.to_string())
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn mkdir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create the cgroup {}", path.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_grants_speed_times_the_cores() {
        assert_eq!(cpu_max(1.0, 1), "100000 100000");
        assert_eq!(cpu_max(0.25, 1), "25000 100000");
        assert_eq!(cpu_max(0.25, 4), "100000 100000");
        assert_eq!(cpu_max(0.5, 0), "50000 100000", "0 cores counts as one");
        assert_eq!(
            cpu_max(0.001, 1),
            "1000 100000",
            "the kernel's minimum quota"
        );
    }
}
