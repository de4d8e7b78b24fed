//! Which thread is calling: a token that no other live thread has.
//!
//! The lock tells a call from under the thread's own guard by its token (`lock.rs`), the flights
//! table tells a producer by it (`flight.rs`), and the live-pixmap count gives each token a cell
//! of its own (`tally.rs`). Only *live* threads need distinct tokens: a thread that exits
//! can hand its token to a new thread (glibc reuses thread control blocks), which then simply
//! carries on where the dead one left off. Everything that keys state by token must be correct
//! under that reuse; each user says why it is.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The calling thread's token, never 0: its thread pointer where reading it is one instruction,
/// a [`counted`] thread-local elsewhere.
#[inline]
pub fn current() -> u64 {
    // Miri cannot run the inline assembly: it checks the counted tokens instead.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    return thread_pointer();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
    return counted();
}

/// The thread pointer: the address of the thread's control block, which the x86-64 TLS ABI
/// (variant II) requires to hold its own address at `%fs:0`. No two live threads share it, and
/// reading it is one load, where a thread-local in a shared library costs a call to
/// `__tls_get_addr` (~1 ns a call, measured with the Qt benchmark).
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
#[inline]
fn thread_pointer() -> u64 {
    let tp: u64;
    // SAFETY: on x86-64 Linux every thread's `%fs` base is its thread control block, whose first
    // word is the block's own address (x86-64 psABI, TLS variant II; glibc and musl alike). The
    // load reads that word only, and touches neither the stack nor the flags. `nomem` and `pure`:
    // the word is fixed for the thread's whole life and is no memory Rust code can see, so the
    // compiler may treat the read as a constant of the thread.
    unsafe {
        std::arch::asm!(
            "mov {}, qword ptr fs:[0]",
            out(reg) tp,
            options(nostack, nomem, preserves_flags, pure)
        );
    }
    tp
}

/// Marks a token that lasts for one call only: see [`counted`]. Users that keep state per token
/// keep none for these.
pub const EPHEMERAL: u64 = 1 << 63;

/// A number from a counter, 1, 2, 3… in the order threads first ask, kept in a thread-local:
/// the token where the thread pointer is not used, and the lock's reader slot everywhere.
///
/// On targets without native thread-locals (Android, OpenBSD, windows-gnu), a thread-local can
/// be gone while the thread still runs code: its own destructors, or other thread-locals' (a
/// pixmap freed at thread exit). Asking then gets a fresh number with [`EPHEMERAL`] set: unique,
/// so still distinct among live threads, but a different one at every call.
pub fn counted() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }
    TOKEN
        .try_with(|cell| {
            if cell.get() == 0 {
                cell.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            cell.get()
        })
        .unwrap_or_else(|_| NEXT.fetch_add(1, Ordering::Relaxed) | EPHEMERAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fixed_per_thread_and_distinct_among_live_threads() {
        let mine = current();
        assert_ne!(mine, 0);
        assert_eq!(current(), mine);
        // This thread is alive while the other one asks: their tokens differ.
        let other = std::thread::spawn(current).join().unwrap();
        assert!(other != 0 && other != mine);
    }

    #[test]
    fn counted_tokens_are_fixed_per_thread_and_distinct() {
        let mine = counted();
        assert_ne!(mine, 0);
        assert_eq!(counted(), mine);
        let other = std::thread::spawn(counted).join().unwrap();
        assert!(other != 0 && other != mine);
    }

    /// The token read from `%fs:0` is the thread pointer, which glibc also hands out as the
    /// thread's `pthread_t`: a check that the assembly reads the right word.
    #[cfg(all(
        target_arch = "x86_64",
        target_os = "linux",
        target_env = "gnu",
        not(miri)
    ))]
    #[test]
    fn the_token_is_the_thread_pointer() {
        // SAFETY: `pthread_self` has no preconditions.
        let own = unsafe { libc::pthread_self() } as u64;
        assert_eq!(current(), own);
        let (token, id) = std::thread::spawn(|| {
            // SAFETY: as above.
            (current(), unsafe { libc::pthread_self() } as u64)
        })
        .join()
        .unwrap();
        assert_eq!(token, id);
        assert_ne!(token, own);
    }
}
