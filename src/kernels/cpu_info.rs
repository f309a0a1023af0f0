//! What CPU a benchmark ran on: its model name and the vector instructions it has, printed by
//! every benchmark so figures from different machines are never compared unknowingly.

/// The CPU's model name (`/proc/cpuinfo`; `unknown` where it cannot be read).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The widest vector instruction sets this CPU executes, e.g. `avx512f avx2 fma` or `neon`.
pub fn simd_level() -> String {
    let mut have: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            have.push("avx512f");
        }
        if std::is_x86_feature_detected!("avx2") {
            have.push("avx2");
        }
        if std::is_x86_feature_detected!("fma") {
            have.push("fma");
        }
        if have.is_empty() {
            have.push("sse2");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            have.push("neon");
        }
    }
    if have.is_empty() {
        have.push("scalar");
    }
    have.join(" ")
}

/// One line for a benchmark's header: `cpu: MODEL; simd: LEVEL; lagom's elementwise kernels use:
/// PATH; 3×3 convolutions: KERNEL; gemm: ...`.
pub fn describe_cpu() -> String {
    let gemm = if cfg!(feature = "avx512-gemm") {
        "gemm: avx512 kernels compiled in"
    } else {
        "gemm: built without its avx512 kernels"
    };
    let conv = if super::has_avx2_fma() {
        "3×3 convolutions: direct kernel"
    } else {
        "3×3 convolutions: im2col + gemm"
    };
    format!(
        "cpu: {}; simd: {}; lagom's elementwise kernels use: {}; {conv}; {gemm}",
        cpu_model(),
        simd_level(),
        super::simd_path().as_str()
    )
}
