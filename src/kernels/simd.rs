//! Runtime choice of vector instructions for lagom's own elementwise kernels. Binaries stay
//! portable (built for the baseline x86-64, as a heterogeneous cluster needs), and a function
//! defined with [`simd_fn!`](crate::simd_fn) runs a copy of its body compiled for AVX-512 (F, BW,
//! VL), for AVX2 + FMA, or for the baseline — the widest the CPU executes, unless a narrower
//! path is forced (`LAGOM_SIMD`, or [`force_simd_path`] in tests and benchmarks, so every path
//! can be checked on one machine). The matrix products dispatch on their own (`gemm`; its
//! AVX-512 kernels are compiled in only with lagom's `avx512-gemm` feature).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// An instruction set lagom's elementwise kernels can be compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdPath {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64): portable loops the compiler
    /// vectorizes.
    Baseline,
    /// AVX2 + FMA: 8 floats per instruction.
    Avx2Fma,
    /// AVX-512 F/BW/VL (with AVX2 + FMA): 16 floats per instruction.
    Avx512,
}

impl SimdPath {
    /// The name `LAGOM_SIMD` takes and the benchmarks print.
    pub fn as_str(self) -> &'static str {
        match self {
            SimdPath::Baseline => "baseline",
            SimdPath::Avx2Fma => "avx2",
            SimdPath::Avx512 => "avx512",
        }
    }

    /// The path named `name` (`baseline`, `avx2`, `avx512`); an error listing them otherwise.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "baseline" => Ok(SimdPath::Baseline),
            "avx2" => Ok(SimdPath::Avx2Fma),
            "avx512" => Ok(SimdPath::Avx512),
            other => Err(format!(
                "LAGOM_SIMD={other:?} is not a path: use baseline, avx2 or avx512"
            )),
        }
    }
}

/// The widest path this CPU executes (std caches the detection).
pub fn best_simd_path() -> SimdPath {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let avx512 = std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl");
        if avx2 && avx512 {
            return SimdPath::Avx512;
        }
        if avx2 {
            return SimdPath::Avx2Fma;
        }
    }
    SimdPath::Baseline
}

/// Every path this CPU executes, narrowest first.
pub fn available_simd_paths() -> Vec<SimdPath> {
    [SimdPath::Baseline, SimdPath::Avx2Fma, SimdPath::Avx512]
        .into_iter()
        .filter(|p| *p <= best_simd_path())
        .collect()
}

/// The environment variable that caps the path: `baseline`, `avx2` or `avx512`.
pub const SIMD_ENV: &str = "LAGOM_SIMD";

/// No path forced (the cap's value then).
const UNFORCED: u8 = u8::MAX;

/// The forced path, as `SimdPath as u8`, or [`UNFORCED`].
static FORCED: AtomicU8 = AtomicU8::new(UNFORCED);

/// `LAGOM_SIMD`, read once: the path it names, `None` when unset or invalid (invalid values are
/// refused at startup by [`simd_path_from_env`]).
fn env_cap() -> Option<SimdPath> {
    static CAP: OnceLock<Option<SimdPath>> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var(SIMD_ENV)
            .ok()
            .and_then(|v| SimdPath::parse(&v).ok())
    })
}

/// Checks `LAGOM_SIMD` (unset, or a path this CPU executes): what the process calls at startup so
/// that a bad value is an error naming it, not a silent fallback.
pub fn simd_path_from_env() -> Result<Option<SimdPath>, String> {
    let Ok(value) = std::env::var(SIMD_ENV) else {
        return Ok(None);
    };
    let path = SimdPath::parse(&value)?;
    if path > best_simd_path() {
        return Err(format!(
            "LAGOM_SIMD={value}: this CPU executes at most {}",
            best_simd_path().as_str()
        ));
    }
    Ok(Some(path))
}

/// Forces the elementwise kernels onto `path` (capped at what the CPU executes), or back to the
/// default with `None`. Process-wide: for tests and benchmarks that compare paths.
pub fn force_simd_path(path: Option<SimdPath>) {
    FORCED.store(path.map_or(UNFORCED, |p| p as u8), Ordering::Relaxed);
}

/// The path the elementwise kernels take now: the forced one, else `LAGOM_SIMD`'s, else the
/// widest the CPU executes — never wider than that.
#[inline]
pub fn simd_path() -> SimdPath {
    let best = best_simd_path();
    let wanted = match FORCED.load(Ordering::Relaxed) {
        0 => Some(SimdPath::Baseline),
        1 => Some(SimdPath::Avx2Fma),
        2 => Some(SimdPath::Avx512),
        _ => env_cap(),
    };
    wanted.map_or(best, |w| w.min(best))
}

/// True when the kernels take the AVX2 + FMA path or a wider one.
#[inline]
pub fn has_avx2_fma() -> bool {
    simd_path() >= SimdPath::Avx2Fma
}

/// Defines a function whose body is compiled three times — for AVX-512, for AVX2 + FMA and for
/// the baseline — and runs the copy [`simd_path`] picks on each call. Helpers the body calls must
/// be `#[inline(always)]` to share its instruction set.
#[macro_export]
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn body_avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            unsafe fn body_avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::kernels::simd_path() {
                // SAFETY: simd_path never names a path the CPU does not execute.
                $crate::kernels::SimdPath::Avx512 => return unsafe { body_avx512($($arg),*) },
                // SAFETY: as above.
                $crate::kernels::SimdPath::Avx2Fma => return unsafe { body_avx2($($arg),*) },
                $crate::kernels::SimdPath::Baseline => {}
            }
            body($($arg),*)
        }
    };
}
