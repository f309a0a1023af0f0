//! Which device a node computes on: `auto`, `cpu` or `cuda:N` in the configuration.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// `[compute] device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The first CUDA device when this binary has CUDA and the machine a GPU, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (needs a binary built with `--features cuda`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: expected auto, cpu or cuda:N")),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// True when this binary was built with the `cuda` feature.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

impl DeviceSpec {
    /// Opens the device. `auto` falls back to the CPU (with a log line) when CUDA is not built
    /// in or no GPU answers; an explicit `cuda:N` that cannot be opened is an error.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(n),
            DeviceSpec::Auto => {
                if !CUDA_BUILT {
                    return Ok(Device::Cpu);
                }
                match open_cuda(0) {
                    Ok(d) => Ok(d),
                    Err(e) => {
                        tracing::info!("device auto: no CUDA device ({e:#}); using the CPU");
                        Ok(Device::Cpu)
                    }
                }
            }
        }
    }
}

fn open_cuda(n: usize) -> Result<Device> {
    if !CUDA_BUILT {
        bail!(
            "device cuda:{n} asked for, but this lagom was built without CUDA; \
             rebuild with `cargo build --release --features cuda` or use device = \"cpu\""
        );
    }
    Device::new_cuda(n).map_err(|e| anyhow::anyhow!("cannot open CUDA device {n}: {e}"))
}

/// A short name of an open device for logs and summaries (`cpu`, `cuda:0`).
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for (s, d) in [
            ("auto", DeviceSpec::Auto),
            ("cpu", DeviceSpec::Cpu),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>(), Ok(d));
            assert_eq!(d.to_string(), s);
        }
        for bad in ["gpu", "cuda", "cuda:x", "cuda:-1", ""] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains("auto, cpu or cuda:N"), "{err}");
        }
    }

    #[test]
    fn cpu_and_auto_open_without_cuda() {
        assert!(DeviceSpec::Cpu.open().is_ok_and(|d| d.is_cpu()));
        if !CUDA_BUILT {
            assert!(DeviceSpec::Auto.open().is_ok_and(|d| d.is_cpu()));
            let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
