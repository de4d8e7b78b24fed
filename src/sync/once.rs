//! Values computed once per process, with no "being computed" state a `fork(2)` could copy.
//!
//! `std::sync::OnceLock` and `LazyLock` make every other thread wait while one computes the
//! value. A fork in that moment copies the "running" state into a child where the computing
//! thread does not exist: in the child every later use waits for ever. These instead let racing
//! threads each compute the value and keep the first one published (the values here are cheap
//! to compute twice, and identical or interchangeable), so nothing is ever left half done.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// A `bool` computed once.
pub struct Flag(AtomicU8);

impl Flag {
    /// Not computed yet.
    pub const fn new() -> Self {
        Flag(AtomicU8::new(0))
    }

    /// The value, computing it with `compute` if no thread has yet (racing threads may each
    /// compute it: `compute` must give the same answer every time).
    pub fn get_or(&self, compute: impl FnOnce() -> bool) -> bool {
        match self.0.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let value = compute();
                self.0.store(1 + u8::from(value), Ordering::Relaxed);
                value
            }
        }
    }
}

/// A non-zero `u64` computed once; every caller gets the first one published.
pub struct Word(AtomicU64);

impl Word {
    /// Not computed yet.
    pub const fn new() -> Self {
        Word(AtomicU64::new(0))
    }

    /// The value, publishing `compute()` (made non-zero) if none is yet.
    #[inline]
    pub fn get_or(&self, compute: impl FnOnce() -> u64) -> u64 {
        let seen = self.0.load(Ordering::Relaxed);
        if seen != 0 {
            return seen;
        }
        let mine = compute().max(1);
        match self
            .0
            .compare_exchange(0, mine, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => mine,
            Err(first) => first,
        }
    }
}

/// A value made once and kept for the life of the process (a `static`'s).
pub struct Published<T>(AtomicPtr<T>);

impl<T> Published<T> {
    /// Nothing published yet.
    pub const fn new() -> Self {
        Published(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// The published value, making and publishing one with `make` if there is none; a thread
    /// that loses the race to publish drops its own and returns the winner's.
    pub fn get_or(&'static self, make: impl FnOnce() -> T) -> &'static T {
        let seen = self.0.load(Ordering::Acquire);
        if !seen.is_null() {
            // SAFETY: only `Box::into_raw` pointers are published, never freed or replaced (the
            // value lives as long as the static), and the acquire load pairs with the release
            // compare-and-swap that published it, so the value is fully written.
            return unsafe { &*seen };
        }
        let mine = Box::into_raw(Box::new(make()));
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            mine,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: as above; `mine` is now the published value.
            Ok(_) => unsafe { &*mine },
            Err(first) => {
                // SAFETY: `mine` came from `Box::into_raw` above and was not published.
                drop(unsafe { Box::from_raw(mine) });
                // SAFETY: as above, for the winner's value.
                unsafe { &*first }
            }
        }
    }
}

impl Default for Flag {
    fn default() -> Self {
        Flag::new()
    }
}

impl Default for Word {
    fn default() -> Self {
        Word::new()
    }
}

impl<T> Default for Published<T> {
    fn default() -> Self {
        Published::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn racing_threads_all_get_the_first_value_published() {
        static VALUE: Published<u64> = Published::new();
        static WORD: Word = Word::new();
        let got: Vec<(u64, u64)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u64)
                .map(|i| s.spawn(move || (*VALUE.get_or(|| i + 10), WORD.get_or(|| i + 1))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.iter().all(|g| *g == got[0]), "{got:?}");
        assert_eq!(*VALUE.get_or(|| 99), got[0].0);
        assert_eq!(WORD.get_or(|| 99), got[0].1);
        let flag = Flag::new();
        assert!(flag.get_or(|| true));
        assert!(flag.get_or(|| false), "computed once");
        assert_eq!(Word::new().get_or(|| 0), 1, "never 0");
    }
}
