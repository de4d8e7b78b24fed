//! Sleeping until a lock word changes: how every wait of the cache's lock ends when a short spin
//! did not (`lock.rs`).
//!
//! On Linux this is a futex: [`wait`] sleeps in the kernel while the word still holds the value
//! the waiter saw, and [`wake_all`] wakes every thread sleeping on it. The kernel keeps the queue,
//! so a sleeping waiter costs no CPU, a real-time waiter lets a lower-priority holder run (a
//! `sched_yield` loop does not), and nothing about the queue lives in the process's memory: a
//! child made by `fork(2)` inherits no half-taken queue lock (a user-space parking table, such as
//! `parking_lot_core`'s, would have one).
//!
//! Every sleep has a time limit (at most 1 ms), after which the waiter looks again: a safety net
//! on Linux, where whoever frees a word wakes its announced sleepers, and the whole mechanism
//! elsewhere (no futex): a waiter sleeps for that limit and looks again, no CPU burnt, at the
//! price of up to the limit of extra latency.

use std::sync::atomic::AtomicU32;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Sleeps while `word` holds `expected` (returns at once if it does not), for at most `limit`.
/// May return early (a wake-up, a signal, a spurious return): callers look again and wait again
/// as they need.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn wait(word: &AtomicU32, expected: u32, limit: Duration) {
    let timeout = libc::timespec {
        tv_sec: limit.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: limit.subsec_nanos().into(),
    };
    // SAFETY: FUTEX_WAIT reads the 4 aligned bytes at `word` (an `AtomicU32`, live for the
    // call) atomically and sleeps only if they still equal `expected`, for at most the relative
    // `timeout` (a live `timespec`). It writes no memory of ours. Errors (EAGAIN: the word
    // changed; EINTR; ETIMEDOUT) only mean "look again", which every caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes every thread sleeping in [`wait`] on `word`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses `word`'s address to find the sleepers; it reads and writes no
    // memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Sleeps for `limit` if `word` holds `expected` (no futex on this target: the caller's limit,
/// at most a millisecond, is how late it notices a change).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn wait(word: &AtomicU32, expected: u32, limit: Duration) {
    if word.load(Ordering::Acquire) == expected {
        std::thread::sleep(limit);
    }
}

/// Nothing to do: waiters look again after each nap.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn wake_all(_word: &AtomicU32) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_at_its_limit() {
        let word = AtomicU32::new(1);
        let start = std::time::Instant::now();
        wait(&word, 1, Duration::from_millis(5));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once() {
        let word = AtomicU32::new(1);
        wait(&word, 0, Duration::from_secs(10));
    }

    #[test]
    fn a_waiter_sleeps_until_woken() {
        let word = Arc::new(AtomicU32::new(1));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 1 {
                    wait(&word, 1, Duration::from_secs(10));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(0, Ordering::Release);
        wake_all(&word);
        waiter.join().unwrap();
    }
}
