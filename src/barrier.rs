//! Asymmetric memory barriers: a free one for the hot side, an expensive one for the rare side.
//!
//! Dekker-style handshakes (set my flag, then read yours) need a full barrier between the store
//! and the load on *both* sides; on x86 that is a locked instruction, which costs 5–10 ns when
//! the store buffer has to drain. When one side runs millions of times and the other almost
//! never, Linux's `membarrier(2)` moves the whole cost to the rare side: [`heavy`] makes every
//! running thread of the process execute a full barrier (by inter-processor interrupt) before it
//! returns, so the hot side only needs [`light`], which stops the *compiler* from reordering.
//! Either the hot side's store is visible to the rare side after [`heavy`], or the hot side's
//! later load sees the rare side's store made before [`heavy`]: the same guarantee as two
//! full fences. This is the pairing of folly's `asymmetricLightBarrier`/`asymmetricHeavyBarrier`,
//! liburcu's `urcu-memb` flavour and crossbeam's `membarrier` module.
//!
//! [`available`] says whether the kernel provides it (Linux 4.14+, and not blocked by a seccomp
//! filter); the lock (`lock.rs`) never uses the light side when it does not.

use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::OnceLock;

/// The hot side's barrier: orders this thread's accesses against a concurrent [`heavy`] call.
#[inline(always)]
pub fn light() {
    compiler_fence(Ordering::SeqCst);
}

/// True when [`heavy`] works in this process. Registers the process for expedited barriers on
/// first call (once; later calls read a cached answer).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(sys::register)
}

/// The rare side's barrier: returns after every thread of this process that is running has
/// executed a full memory barrier. Call only after [`available`] returned true; returns false
/// (having done nothing it can promise) if the kernel refused even after registering again
/// (registration survives `fork`, but a kernel that forgot it gets a second chance).
pub fn heavy() -> bool {
    sys::expedited() || sys::register()
}

#[cfg(target_os = "linux")]
mod sys {
    // From <linux/membarrier.h>.
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: membarrier(cmd, flags = 0, cpu_id = 0) takes no pointers and touches no memory
        // of ours; an unknown or refused command only returns -1 (ENOSYS, EINVAL or EPERM).
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            ) == 0
        }
    }

    pub fn register() -> bool {
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) && expedited()
    }

    pub fn expedited() -> bool {
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn register() -> bool {
        false
    }

    pub fn expedited() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
    use std::sync::Arc;

    /// The store-buffering litmus test: the hot thread stores `x` then loads `y` with only a
    /// [`light`] barrier between; the rare thread stores `y`, calls [`heavy`], loads `x`. Both
    /// loads seeing 0 is what Dekker's protocol must exclude. With a compiler fence on both
    /// sides, x86 shows that outcome within a few hundred rounds (its store buffer delays the
    /// stores); with [`heavy`] it must never appear.
    #[test]
    fn heavy_and_light_exclude_store_buffering() {
        if !available() {
            eprintln!(
                "membarrier(2) is not available here: the lock runs unbiased; nothing to test"
            );
            return;
        }
        const ROUNDS: u32 = 20_000;
        let x = Arc::new(AtomicBool::new(false));
        let y = Arc::new(AtomicBool::new(false));
        // Round number each side has reached (a two-party barrier per round).
        let go = Arc::new(AtomicU32::new(0));
        let done = Arc::new(AtomicU32::new(0));
        let hot = {
            let (x, y, go, done) = (x.clone(), y.clone(), go.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen_zero = Vec::new();
                for round in 1..=ROUNDS {
                    while go.load(Ordering::Acquire) < round {
                        std::hint::spin_loop();
                    }
                    x.store(true, Relaxed);
                    light();
                    seen_zero.push(!y.load(Relaxed));
                    done.store(round, Ordering::Release);
                }
                seen_zero
            })
        };
        let mut both_zero = 0;
        let mut hot_zero = Vec::new();
        for round in 1..=ROUNDS {
            x.store(false, Relaxed);
            y.store(false, Relaxed);
            go.store(round, Ordering::Release);
            // The hot thread sees `go` a few hundred cycles later: vary when this side stores so
            // that some rounds have the two stores in flight together.
            for _ in 0..round % 1024 {
                std::hint::black_box(());
            }
            y.store(true, Relaxed);
            assert!(heavy());
            let rare_saw_zero = !x.load(Relaxed);
            while done.load(Ordering::Acquire) < round {
                std::hint::spin_loop();
            }
            hot_zero.push(rare_saw_zero);
        }
        let hot_saw = hot.join().unwrap();
        for (rare, hot) in hot_zero.iter().zip(&hot_saw) {
            if *rare && *hot {
                both_zero += 1;
            }
        }
        assert_eq!(both_zero, 0, "both sides missed each other's store");
    }
}
