//! The vector registers' upper halves, which a caller's AVX code may leave dirty.
//!
//! pixcache is compiled for baseline x86-64, so its vector instructions (hashbrown's group
//! probes, moves of small structs) are legacy-SSE encoded. When the code that calls pixcache has
//! used 256- or 512-bit registers and left their upper halves dirty (no `vzeroupper` after it),
//! each of those SSE instructions carries a dependency on the stale upper bits, for as long as
//! the state stays dirty. Measured on the project's machine (AMD EPYC with AVX-512), in a Qt
//! program: once `QPixmapCache::insert(QString, ...)` had run, `pixcache_insert_key` took
//! 45–57 ns instead of 38–40 ns for the rest of the process, and `vzeroupper` before the loop
//! brought it back (measured here). That was the "bimodal between processes" key
//! insert of earlier measurements.
//!
//! So every entry point starts with `vzeroupper` on CPUs that have AVX: one cheap instruction,
//! what compilers themselves emit when leaving AVX code, and allowed to any function by the C
//! ABI (the vector registers are all caller-saved).

/// Clears the upper halves of vector registers 0–15 if the CPU has AVX; nothing elsewhere.
#[inline(always)]
pub(crate) fn clear_upper_halves() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `vzeroupper` exists on every CPU with AVX, checked just above (std's check also
        // requires the OS to save the YMM state). It zeroes bits 128 and up of vector registers
        // 0–15 and touches nothing else; `clobber_abi("C")` tells the compiler that every
        // caller-saved register is gone, so it keeps nothing of ours in them across the
        // instruction, whatever target features the library is built with.
        unsafe {
            std::arch::asm!(
                "vzeroupper",
                clobber_abi("C"),
                options(nostack, nomem, preserves_flags)
            );
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::arch::x86_64::*;

    /// A 256-bit value the compiler holds in a register across the clear survives it: the
    /// asm's clobbers make the compiler keep it elsewhere. (Without `clobber_abi`, this loses
    /// the value's upper half.)
    ///
    /// # Safety
    /// The CPU has AVX.
    #[target_feature(enable = "avx")]
    unsafe fn add_across_a_clear(x: [f64; 4]) -> [f64; 4] {
        // SAFETY: AVX per the contract; unaligned loads and stores of four f64s from and to
        // arrays of four f64s.
        unsafe {
            let v = _mm256_loadu_pd(x.as_ptr());
            let v = _mm256_add_pd(v, v);
            clear_upper_halves();
            let v = _mm256_add_pd(v, v);
            let mut out = [0.0; 4];
            _mm256_storeu_pd(out.as_mut_ptr(), v);
            out
        }
    }

    #[test]
    fn clearing_keeps_what_the_caller_holds() {
        if !std::arch::is_x86_feature_detected!("avx") {
            return; // nothing to clear, nothing to test
        }
        let x = std::hint::black_box([1.5, -2.25, 3.0, 1e300]);
        // SAFETY: the CPU has AVX (checked above).
        let y = unsafe { add_across_a_clear(x) };
        assert_eq!(y, [6.0, -9.0, 12.0, 4e300]);
    }
}
