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

use std::sync::atomic::{compiler_fence, AtomicBool, Ordering};
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
    *AVAILABLE.get_or_init(|| {
        let works = sys::register();
        if works {
            // While the process can still look: the fallback's page and whether this machine's
            // TLB shootdowns interrupt the other CPUs.
            sys::prepare_shootdown();
        }
        works
    }) && !LOST.load(Ordering::Relaxed)
}

/// Set when `membarrier` stopped working after [`available`] said it worked (a seccomp filter
/// installed later, as sandboxes do): [`available`] says false from then on, so the lock grants
/// no new bias, and [`heavy`] falls back to a TLB shootdown for the biases already granted.
static LOST: AtomicBool = AtomicBool::new(false);

/// The rare side's barrier: returns after every thread of this process that is running has
/// executed a full memory barrier. Call only after [`available`] returned true. If `membarrier`
/// refuses even after registering again (registration survives `fork`, but a kernel that forgot
/// it gets a second chance; a seccomp filter may forbid it later), it falls back to a TLB
/// shootdown where that is a barrier (x86 Linux); returns false, having done nothing it can
/// promise, only when that fails too.
pub fn heavy() -> bool {
    if sys::expedited() || sys::register() {
        return true;
    }
    LOST.store(true, Ordering::Relaxed);
    sys::shootdown()
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

    /// A process-wide barrier without `membarrier`: taking write access away from a page this
    /// process has dirty makes the kernel shoot its TLB entry down on every CPU that may be
    /// running one of the process's threads, by inter-processor interrupt, and on x86 taking an
    /// interrupt drains the store buffer (a CPU not running the process has no store of it in
    /// flight: the context switch drained it; under a hypervisor, a vCPU is stopped by a VM exit,
    /// which serialises it too). The .NET runtime's `FlushProcessWriteBuffers` does this on
    /// Linux where `membarrier` is missing.
    ///
    /// Not a barrier where remote TLBs are flushed without interrupting the CPUs: ARM (broadcast
    /// invalidation), and x86 CPUs with AMD's INVLPGB or Intel's Remote Action Request, which
    /// recent kernels use for exactly that. So it is used only on x86 when `/proc/cpuinfo` lists
    /// neither (`invlpgb`, `rar`), checked by [`prepare_shootdown`] when the process registers
    /// for `membarrier` (before a sandbox could hide `/proc`).
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn shootdown() -> bool {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Mutex, PoisonError};
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let Some(Some(page)) = SHOOTDOWN_PAGE.get().copied() else {
            return false;
        };
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: `page` is the page `prepare_shootdown` mapped, never unmapped and used by
        // nothing else: changing its protection affects no other memory, and it is written only
        // here, between making it writable and taking that away, under `ONE_AT_A_TIME`. The
        // write is an atomic add on the page's first word (page-aligned, so aligned for it).
        unsafe {
            let p = page as *mut libc::c_void;
            if libc::mprotect(p, page_size(), libc::PROT_READ | libc::PROT_WRITE) != 0 {
                return false;
            }
            // Dirty it, so that its TLB entry exists and the downgrade must be shot down.
            (*(page as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
            libc::mprotect(p, page_size(), libc::PROT_NONE) == 0
        }
    }

    /// The page [`shootdown`] changes, if this machine's shootdowns are barriers (`None` if not,
    /// or if it could not be mapped). Set once, by [`prepare_shootdown`].
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    static SHOOTDOWN_PAGE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    fn page_size() -> usize {
        // SAFETY: sysconf takes no pointers.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    /// Decides whether [`shootdown`] can be a barrier here and maps its page.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn prepare_shootdown() {
        SHOOTDOWN_PAGE.get_or_init(|| {
            if flushes_without_interrupts() != Some(false) {
                return None;
            }
            // SAFETY: an anonymous private mapping of one page at an address of the kernel's
            // choosing: no memory of ours is touched; failure is MAP_FAILED, checked.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page_size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            (p != libc::MAP_FAILED).then_some(p as usize)
        });
    }

    /// Whether `/proc/cpuinfo` lists a way to flush remote TLBs without interrupting the CPUs
    /// (`invlpgb`, `rar`); `None` if it cannot be read. Reads through a buffer on the stack:
    /// this runs when the first lock is made, e.g. inside `pixcache_global`, which allocates
    /// nothing.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    fn flushes_without_interrupts() -> Option<bool> {
        lists_remote_flush(std::fs::File::open("/proc/cpuinfo").ok()?)
    }

    /// [`flushes_without_interrupts`] over any reader (the tests feed it a byte at a time).
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub(super) fn lists_remote_flush(mut file: impl std::io::Read) -> Option<bool> {
        const KEEP: usize = 16; // longer than a token and its two delimiters
        let mut buf = [0u8; 4096 + KEEP];
        let (mut carried, mut read) = (0, 0);
        loop {
            let n = file.read(&mut buf[carried..]).ok()?;
            if n == 0 {
                return (read > 0).then_some(false);
            }
            read += n;
            let window = &buf[..carried + n];
            if has_flag(window, b"invlpgb") || has_flag(window, b"rar") {
                return Some(true);
            }
            // A flag cut at the end of this read is found with the next one.
            let keep = window.len().min(KEEP);
            let end = window.len();
            buf.copy_within(end - keep..end, 0);
            carried = keep;
        }
    }

    /// Whether `text` holds `flag` as a whole word of a cpuinfo `flags` line.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    fn has_flag(text: &[u8], flag: &[u8]) -> bool {
        text.windows(flag.len() + 2).any(|w| {
            matches!(w[0], b' ' | b'\t')
                && &w[1..=flag.len()] == flag
                && matches!(w[flag.len() + 1], b' ' | b'\n')
        })
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    pub fn shootdown() -> bool {
        false
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    pub fn prepare_shootdown() {}
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn register() -> bool {
        false
    }

    pub fn expedited() -> bool {
        false
    }

    pub fn shootdown() -> bool {
        false
    }

    pub fn prepare_shootdown() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
    use std::sync::Arc;

    /// The store-buffering litmus test: the hot thread stores `x` then loads `y` with only a
    /// [`light`] barrier between; the rare thread stores `y`, calls `rare_barrier`, loads `x`.
    /// Returns how many of `ROUNDS` rounds had both loads see 0, which is what Dekker's protocol
    /// must exclude. With no barrier on the rare side x86 shows that outcome (its store buffer
    /// delays the stores: the control test below); with [`heavy`] it must never appear.
    fn store_buffering_rounds(rare_barrier: fn() -> bool) -> usize {
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
                    spin_until(|| go.load(Ordering::Acquire) >= round);
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
            assert!(rare_barrier());
            let rare_saw_zero = !x.load(Relaxed);
            spin_until(|| done.load(Ordering::Acquire) >= round);
            hot_zero.push(rare_saw_zero);
        }
        let hot_saw = hot.join().unwrap();
        for (rare, hot) in hot_zero.iter().zip(&hot_saw) {
            if *rare && *hot {
                both_zero += 1;
            }
        }
        both_zero
    }

    /// Spins until `done`, yielding now and then: on a host with fewer CPUs than threads the
    /// other side needs the CPU to make progress.
    fn spin_until(done: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !done() {
            spins += 1;
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// The litmus tests need the two sides running at once, on two CPUs.
    fn two_cpus() -> bool {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n < 2 {
            eprintln!("one CPU: the two sides never run at once; nothing to test");
        }
        n >= 2
    }

    #[test]
    fn heavy_and_light_exclude_store_buffering() {
        if !two_cpus() {
            return;
        }
        if !available() {
            eprintln!(
                "membarrier(2) is not available here: the lock runs unbiased; nothing to test"
            );
            return;
        }
        assert_eq!(
            store_buffering_rounds(heavy),
            0,
            "both sides missed each other's store"
        );
    }

    /// The fallback when `membarrier` is taken away (`sys::shootdown`) is a barrier too.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
    #[test]
    fn a_tlb_shootdown_excludes_store_buffering() {
        if !two_cpus() {
            return;
        }
        sys::prepare_shootdown();
        if !sys::shootdown() {
            eprintln!("TLB shootdowns are not used as a barrier on this machine: nothing to test");
            return;
        }
        assert_eq!(
            store_buffering_rounds(sys::shootdown),
            0,
            "both sides missed each other's store"
        );
    }

    /// The cpuinfo scan finds `invlpgb` and `rar` as whole flags only, also when a read ends in
    /// the middle of one, and reports an empty or unreadable file as unknown.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
    #[test]
    fn the_cpuinfo_scan_finds_interrupt_free_flushes() {
        /// Hands out its text a few bytes per read.
        struct Trickle<'a>(&'a [u8], usize);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let filler = "processor\t: 0\nmodel name\t: x\n".repeat(300);
        let cases = [
            ("flags\t\t: fpu vme invlpgb sse\n", Some(true)),
            ("flags\t\t: fpu sse rar\n", Some(true)),
            ("flags\t\t: fpu invlpgbx prar rare sse\n", Some(false)),
            ("flags\t\t: fpu sse\n", Some(false)),
            ("", None),
        ];
        for (flags, want) in cases {
            let text = if flags.is_empty() {
                String::new()
            } else {
                format!("{filler}{flags}")
            };
            for per_read in [1, 3, 7, 4096] {
                assert_eq!(
                    sys::lists_remote_flush(Trickle(text.as_bytes(), per_read)),
                    want,
                    "{flags:?}, {per_read} bytes per read"
                );
            }
        }
    }

    /// The control: the litmus test does see store buffering when the rare side has no barrier
    /// (a compiler fence only), so the two tests above can fail.
    ///
    /// It needs both threads running at the same moment. A VM whose two vCPUs the hypervisor
    /// runs one at a time for a while shows none: it gets up to 10 seconds, and a host that
    /// never shows it then is reported, not failed (`PIXCACHE_LITMUS_STRICT=1` fails it), since
    /// that says nothing about the library. In CI it failed that way once in 100,000 rounds.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    #[test]
    fn without_a_barrier_the_litmus_test_sees_store_buffering() {
        if !two_cpus() {
            return;
        }
        let no_barrier = || {
            light();
            true
        };
        let start = std::time::Instant::now();
        let mut rounds = 0;
        let seen = loop {
            if store_buffering_rounds(no_barrier) > 0 {
                break true;
            }
            rounds += 20_000;
            if start.elapsed() > std::time::Duration::from_secs(10) {
                break false;
            }
        };
        if !seen && std::env::var_os("PIXCACHE_LITMUS_STRICT").is_none() {
            eprintln!(
                "NOTE: no store buffering seen in {rounds} rounds without a barrier: the two \
                 threads seem not to run at once on this host now, so the barrier tests could \
                 not have failed either"
            );
            return;
        }
        assert!(
            seen,
            "no store buffering seen in {rounds} rounds without a barrier"
        );
    }
}
