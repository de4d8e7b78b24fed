//! The cache's lock: a test-and-test-and-set spin lock that yields the CPU when it cannot get
//! in after a short spin.
//!
//! Why not `std::sync::Mutex` or `parking_lot::Mutex`: both release with an atomic
//! read-modify-write (to learn whether a waiter must be woken), so a lock/unlock pair costs two
//! locked instructions. A profile of `pixcache_find_key` (docs/PERFORMANCE.md) showed those two
//! instructions were 80% of the operation (~7 ns each on the benchmark machine). This lock
//! releases with a plain release store (free on x86), so a lookup pays one atomic. Critical
//! sections are tens of nanoseconds (table probe, list splice, one reference-count increment;
//! payloads are dropped after unlocking), which is what spinning suits; a waiter that spins too
//! long yields its time slice, so an oversubscribed machine does not burn whole slices spinning
//! behind a descheduled holder.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins (with `spin_loop` hints) this many times before yielding.
const SPINS_BEFORE_YIELD: u32 = 64;

/// A mutual-exclusion lock around a `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time (see `lock`), so sharing
// a `SpinLock<T>` between threads is sound whenever `T` itself may be sent between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock and returns a guard giving exclusive access until it is dropped.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let mut spins = 0;
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return SpinGuard { lock: self };
            }
            // Wait with plain loads (no cache-line ping-pong) until the lock looks free.
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// Exclusive access to a [`SpinLock`]'s value; unlocks when dropped (also during unwinding).
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while `locked` is held by this thread (it was set by
        // the successful compare-exchange in `lock` and is cleared only by this guard's drop),
        // so no other reference to `value` exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // Release: every write made under the lock happens-before the next holder's acquire.
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_across_threads() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        // A non-atomic read-modify-write: lost updates would show a race.
                        let mut g = lock.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 8 * 20_000);
    }

    #[test]
    fn unlocks_when_a_holder_panics() {
        let lock = SpinLock::new(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.lock();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 1);
    }
}
