//! Asking for a cache line before writing to it.
//!
//! A reader slot's log of hits (`recency.rs`) is written by the thread that looks things up and
//! read by the thread that replays it, usually on the other core. So the lines a thread writes
//! its next records to are lines another core read last, and the first write to each must take
//! the line back from that core. A plain store would wait for that in the store buffer, out of
//! the way; but every lookup takes its reader slot with a locked `cmpxchg` (`lock.rs`), which
//! drains the store buffer, so each lookup that started a new line of its log waited for the
//! whole transfer. How long that is depends on where the host puts the two cores: on the test
//! machine one cache-line transfer takes either 40–100 ns or 190–330 ns, changing every few
//! minutes, and at the latter those waits cost a 2-thread read-mostly run a fifth of its
//! throughput (docs/PERFORMANCE.md §6).
//!
//! [`for_write`] asks for a line a few records ahead with `PREFETCHW`, so the transfer is done
//! before the store. Elsewhere (no `PREFETCHW`, not x86-64, or under Miri, which runs no
//! assembly) it does nothing.

/// Starts taking the cache line at `p` into this core's cache for writing, without waiting for
/// it. Any address may be given: a prefetch neither faults nor changes memory.
#[inline(always)]
pub fn for_write<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if has_prefetchw() {
        // SAFETY: the CPU has the instruction (CPUID said so), and a prefetch is only a hint: it
        // reads and writes no memory that the program can see, and never faults, whatever the
        // address (null, unmapped, freed).
        unsafe {
            std::arch::asm!(
                "prefetchw [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

/// True when this CPU has `PREFETCHW` (CPUID leaf 0x8000_0001, ECX bit 8: "PRFCHW", which AMD
/// calls "3DNowPrefetch"). Asked once: CPUID exits to the hypervisor in a virtual machine.
#[cfg(target_arch = "x86_64")]
pub fn has_prefetchw() -> bool {
    static HAS: crate::sync::once::Flag = crate::sync::once::Flag::new();
    HAS.get_or(|| {
        use std::arch::x86_64::__cpuid;
        // SAFETY: CPUID exists on every x86-64 processor. (Newer Rust declares `__cpuid` safe;
        // the block keeps the minimum supported Rust, Cargo.toml's `rust-version`, building.)
        #[allow(unused_unsafe)]
        let cpuid = |leaf| unsafe { __cpuid(leaf) };
        cpuid(0x8000_0000).eax >= 0x8000_0001 && cpuid(0x8000_0001).ecx & (1 << 8) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_may_be_prefetched() {
        // A load from these would crash the test; a prefetch must not.
        for p in [
            std::ptr::null::<u64>(),
            std::ptr::dangling::<u64>(),
            usize::MAX as *const u64,
        ] {
            for_write(p);
        }
        let freed = Box::into_raw(Box::new(7u64));
        // SAFETY: `freed` came from `Box::into_raw` just above and is dropped once.
        drop(unsafe { Box::from_raw(freed) });
        for_write(freed);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn prefetchw_is_found_when_the_kernel_lists_it() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let flags = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .expect("a flags line in /proc/cpuinfo");
        let listed = flags.split_whitespace().any(|f| f == "3dnowprefetch");
        assert_eq!(has_prefetchw(), listed, "{flags}");
        assert_eq!(has_prefetchw(), listed, "asked a second time");
    }
}
