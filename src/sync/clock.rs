//! Stamps that order hits recorded by different threads (see recency.rs).
//!
//! While several threads look things up, every hit takes a stamp, and replay merges the threads'
//! logs by stamp. Two sources:
//! - **the processor's time-stamp counter** (x86-64, when CPUID says it is invariant — it ticks
//!   at a constant rate in every power state — *and* the kernel uses it as its clocksource: Linux
//!   checks at boot and while running that the cores' counters agree, and switches to another
//!   clocksource when they do not, as on some VMs and multi-socket machines). Reading
//!   it writes nothing shared, so threads stamping at once do not slow each other down. This is
//!   how `perf`, ftrace and LTTng merge per-CPU event buffers into one time order. On the 2-core
//!   benchmark machine it took two threads' shared lookups from 0.47x to 1.3x the throughput of
//!   one (docs/PERFORMANCE.md).
//! - **a shared counter** (`fetch_add`) everywhere else: exact, but every stamp moves the
//!   counter's cache line between the cores that stamp.
//!
//! What each guarantees: the counter orders hits exactly as they happened (its modification
//! order is consistent with happens-before). The time-stamp counter orders hits of one thread
//! exactly (each log also forces its stamps to increase, [`Clock::stamp_after`]), and hits of
//! different threads by when they read the counter: two hits by different threads less than the
//! cores' counter skew apart (nanoseconds) may be ordered either way, which no program can tell
//! from the hits having overlapped in time. Single-threaded use never stamps at all.

use std::sync::atomic::{AtomicU64, Ordering};

/// The kernel's current clocksource, as Linux names it.
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// Where stamps come from; see the module documentation.
pub struct Clock {
    counter: AtomicU64,
    tsc: bool,
}

impl Clock {
    /// The fastest exact-enough source this machine has.
    pub fn new() -> Self {
        Clock {
            counter: AtomicU64::new(0),
            tsc: tsc_is_trusted(),
        }
    }

    /// A clock that always uses the shared counter (tests, and machines without an invariant
    /// time-stamp counter).
    pub fn counter() -> Self {
        Clock {
            counter: AtomicU64::new(0),
            tsc: false,
        }
    }

    /// True when stamps come from the time-stamp counter.
    pub fn uses_tsc(&self) -> bool {
        self.tsc
    }

    /// The time now: of two reads ordered by happens-before (in one thread or through a
    /// release and an acquire), the later is the greater or equal.
    pub fn now(&self) -> u64 {
        if self.tsc {
            read_tsc()
        } else {
            // Relaxed is enough: all stamps come from one atomic's modification order, and
            // reads ordered by happens-before get increasing values (coherence).
            self.counter.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    /// A stamp greater than `previous` (the last stamp of the log it goes into).
    pub fn stamp_after(&self, previous: u64) -> u64 {
        self.now().max(previous.saturating_add(1))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Whether stamps may come from the time-stamp counter: CPUID says it is invariant, and the
/// kernel keeps it as its clocksource (it trusts the cores' counters to agree). Asked once per
/// process (a file read), then remembered.
pub fn tsc_is_trusted() -> bool {
    static TRUSTED: crate::sync::once::Flag = crate::sync::once::Flag::new();
    TRUSTED.get_or(|| {
        invariant_tsc() && std::fs::read_to_string(CLOCKSOURCE).is_ok_and(|s| kernel_trusts_tsc(&s))
    })
}

/// Whether the contents of [`CLOCKSOURCE`] name the time-stamp counter.
fn kernel_trusts_tsc(clocksource: &str) -> bool {
    clocksource.trim() == "tsc"
}

#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    use std::arch::x86_64::__cpuid;
    // CPUID leaf 0x8000_0007, EDX bit 8: "invariant TSC" (constant rate, runs in every
    // power state; Linux's `nonstop_tsc`). Ask for the leaf only if it exists.
    // SAFETY: CPUID exists on every x86-64 processor. (Newer Rust declares `__cpuid` safe; the
    // block keeps the minimum supported Rust, Cargo.toml's `rust-version`, building.)
    #[allow(unused_unsafe)]
    let cpuid = |leaf| unsafe { __cpuid(leaf) };
    let highest = cpuid(0x8000_0000).eax;
    highest >= 0x8000_0007 && cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

/// Reads the time-stamp counter after everything before it in program order has completed.
///
/// `rdtsc` alone may execute before earlier loads complete: a hit's stamp could then be taken
/// before the lookup that acquired another thread's release, and be smaller than the stamp of a
/// hit that happened before it. `lfence` first makes `rdtsc` wait for every earlier instruction
/// (Intel documents this; Linux sets AMD processors' `lfence` to be dispatch-serialising too).
/// A later release store cannot become visible before the `rdtsc` (it retires after it), so of
/// two hits ordered by happens-before the earlier always has the smaller stamp.
#[cfg(target_arch = "x86_64")]
fn read_tsc() -> u64 {
    // SAFETY: `lfence` (SSE2) and `rdtsc` exist on every x86-64 processor; they read a counter,
    // order instructions and have no other effect (user-space `rdtsc` is allowed unless the OS
    // sets CR4.TSD, which no mainstream OS does; it is used here only when CPUID reported an
    // invariant counter and the kernel uses it as its clock).
    unsafe {
        std::arch::x86_64::_mm_lfence();
        std::arch::x86_64::_rdtsc()
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_tsc() -> u64 {
    unreachable!("the time-stamp counter is only used on x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counter is used only where the kernel uses it as its clock, and only with CPUID's
    /// invariant bit: on a machine whose kernel switched away from the TSC (an unstable TSC),
    /// stamps come from the shared counter.
    #[test]
    fn the_tsc_is_used_only_where_the_kernel_trusts_it() {
        assert!(kernel_trusts_tsc("tsc\n"));
        for other in ["hpet\n", "kvm-clock\n", "acpi_pm", "", "tsc-early"] {
            assert!(!kernel_trusts_tsc(other), "{other:?}");
        }
        let kernel = std::fs::read_to_string(CLOCKSOURCE).unwrap_or_default();
        assert_eq!(
            Clock::new().uses_tsc(),
            invariant_tsc() && kernel.trim() == "tsc",
            "clocksource {kernel:?}"
        );
    }

    #[test]
    fn stamps_increase_within_a_log_whatever_the_source() {
        for clock in [Clock::new(), Clock::counter()] {
            let mut last = 0;
            for _ in 0..10_000 {
                let s = clock.stamp_after(last);
                assert!(s > last);
                last = s;
            }
            // A log whose last stamp is ahead of the clock still gets a greater one.
            assert_eq!(clock.stamp_after(u64::MAX - 1), u64::MAX);
        }
    }

    #[test]
    fn counter_stamps_follow_happens_before_across_threads() {
        let clock = std::sync::Arc::new(Clock::counter());
        let a = clock.stamp_after(0);
        let c = std::sync::Arc::clone(&clock);
        let b = std::thread::spawn(move || c.stamp_after(0)).join().unwrap();
        assert!(b > a);
        assert!(clock.stamp_after(0) > b);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tsc_stamps_follow_happens_before_across_threads() {
        let clock = std::sync::Arc::new(Clock::new());
        if !clock.uses_tsc() {
            eprintln!("no invariant TSC here: nothing to check");
            return;
        }
        for _ in 0..100 {
            let a = clock.stamp_after(0);
            let c = std::sync::Arc::clone(&clock);
            let b = std::thread::spawn(move || c.stamp_after(0)).join().unwrap();
            assert!(b > a, "a later thread's stamp {b} is not after {a}");
            assert!(clock.stamp_after(0) > b);
        }
    }
}
