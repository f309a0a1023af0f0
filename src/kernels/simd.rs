//! Runtime choice of vector instructions for the elementwise kernels. Binaries stay portable
//! (built for the baseline x86-64, as a heterogeneous cluster needs), and a function defined
//! with [`simd_fn!`](crate::simd_fn) runs a copy of its body compiled for AVX2 + FMA on CPUs that
//! have them — 8 floats per instruction instead of SSE2's 4. The matrix products need no help:
//! `gemm` dispatches on its own.

/// True when this CPU executes AVX2 and FMA instructions (std caches the answer).
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines a function whose body is compiled twice — for AVX2 + FMA and for the baseline — and
/// picks the copy the CPU can run on each call. Helpers the body calls must be
/// `#[inline(always)]` to share its instruction set.
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
            if $crate::kernels::has_avx2_fma() {
                // SAFETY: the CPU executes the instructions body_avx2 is compiled for.
                return unsafe { body_avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
