//! The cache's locks.
//!
//! - [`BrLock`], the cache's lock: a "big-reader" lock. Lookups take one of [`READER_SLOTS`]
//!   reader slots (each thread has its own slot, on its own cache line), so two threads looking
//!   things up at once write no cache line in common; writers take the whole lock. A reader pays
//!   one atomic on its own slot; a writer one atomic plus a read of every slot.
//!
//! Why not `std::sync::Mutex`/`RwLock` or `parking_lot`: a mutex makes every lookup write the
//! same lock word (two threads then move that line between their cores on every call, which
//! measured 0.37x the throughput of one thread), a reader-writer lock writes one shared reader
//! count, and both release with an atomic read-modify-write (to learn whether a waiter must be
//! woken), so a lock/unlock pair costs two locked instructions; a profile of
//! `pixcache_find_key` (docs/PERFORMANCE.md) showed those were 80% of the operation. This lock
//! releases with a plain release store (free on x86). Critical sections are tens of
//! nanoseconds (payloads are dropped after unlocking), which is what spinning suits; a waiter
//! that spins too long yields its time slice, so an oversubscribed machine does not burn whole
//! slices behind a descheduled holder.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins (with `spin_loop` hints) this many times before yielding.
const SPINS_BEFORE_YIELD: u32 = 64;

/// One step of waiting: spin a little, then yield the time slice.
fn backoff(spins: &mut u32) {
    if *spins < SPINS_BEFORE_YIELD {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// How many reader slots a [`BrLock`] has. Threads are spread over them round robin; threads
/// that share a slot take turns on it (correct, just not parallel).
pub const READER_SLOTS: usize = 8;

/// This thread's reader slot, `0..READER_SLOTS`: assigned round robin on a thread's first
/// lookup, then fixed for the thread's life.
pub fn reader_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        let mut s = slot.get();
        if s == usize::MAX {
            s = NEXT.fetch_add(1, Ordering::Relaxed) % READER_SLOTS;
            slot.set(s);
        }
        s
    })
}

/// A reader slot: its lock word and the per-slot data `R`, alone on their cache lines (128
/// bytes: adjacent-line prefetching pairs lines).
#[repr(align(128))]
struct ReaderSlot<R> {
    busy: AtomicBool,
    data: UnsafeCell<R>,
}

/// A big-reader lock around a `T`, with per-slot data `R`.
///
/// - [`BrLock::read`] locks one reader slot and gives shared access to the `T` plus exclusive
///   access to that slot's `R` (where a reader records what it must tell the writers);
/// - [`BrLock::write`] gives exclusive access to the `T` and to every slot's `R`.
///
/// Protocol (Dekker's, with sequentially consistent atomics): a reader sets its slot's `busy`
/// flag, then checks `writer`; a writer sets `writer`, then waits until no slot is busy. Of two
/// such racing threads at least one sees the other's flag, so a reader and a writer are never
/// inside together; readers in different slots never write the same line. Writers are
/// preferred: a reader that sees `writer` set steps back out of its slot and waits.
pub struct BrLock<T, R> {
    writer: Padded<AtomicBool>,
    value: UnsafeCell<T>,
    slots: [ReaderSlot<R>; READER_SLOTS],
}

#[repr(align(128))]
struct Padded<T>(T);

// SAFETY: readers on different slots share `&T` concurrently (hence `T: Sync`); a writer, and the
// one reader holding a slot, get `&mut` access to `T` or to that slot's `R` from whichever thread
// holds the lock (hence `Send`). `BrLock::read`/`BrLock::write` make the accesses exclusive as
// documented on the type.
unsafe impl<T: Send + Sync, R: Send> Sync for BrLock<T, R> {}
// SAFETY: moving the lock moves the `T` and the `R`s.
unsafe impl<T: Send, R: Send> Send for BrLock<T, R> {}

impl<T, R> BrLock<T, R> {
    /// An unlocked lock around `value`, with `slot()` making each slot's data.
    pub fn new(value: T, mut slot: impl FnMut() -> R) -> Self {
        BrLock {
            writer: Padded(AtomicBool::new(false)),
            value: UnsafeCell::new(value),
            slots: std::array::from_fn(|_| ReaderSlot {
                busy: AtomicBool::new(false),
                data: UnsafeCell::new(slot()),
            }),
        }
    }

    /// Locks reader slot `slot % READER_SLOTS` (normally [`reader_slot()`]), waiting while a
    /// writer is in or another thread holds the slot. Never call it while holding a guard of the
    /// same lock.
    pub fn read(&self, slot: usize) -> ReadGuard<'_, T, R> {
        let s = &self.slots[slot % READER_SLOTS];
        let mut spins = 0;
        loop {
            if s.busy
                .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                if !self.writer.0.load(Ordering::SeqCst) {
                    return ReadGuard {
                        lock: self,
                        slot: s,
                    };
                }
                s.busy.store(false, Ordering::Release);
            }
            while s.busy.load(Ordering::Relaxed) || self.writer.0.load(Ordering::Relaxed) {
                backoff(&mut spins);
            }
        }
    }

    /// Locks the whole lock, waiting for the other writer and for every reader to leave. Never
    /// call it while holding a guard of the same lock.
    pub fn write(&self) -> WriteGuard<'_, T, R> {
        let mut spins = 0;
        while self
            .writer
            .0
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            while self.writer.0.load(Ordering::Relaxed) {
                backoff(&mut spins);
            }
        }
        for s in &self.slots {
            while s.busy.load(Ordering::SeqCst) {
                backoff(&mut spins);
            }
        }
        WriteGuard { lock: self }
    }
}

/// Shared access to a [`BrLock`]'s value and exclusive access to one slot's data; leaves the
/// slot when dropped (also during unwinding).
pub struct ReadGuard<'a, T, R> {
    lock: &'a BrLock<T, R>,
    slot: &'a ReaderSlot<R>,
}

impl<T, R> ReadGuard<'_, T, R> {
    /// The shared value, and this slot's data.
    pub fn parts(&mut self) -> (&T, &mut R) {
        // SAFETY: this guard holds `slot.busy` and saw `writer` clear after setting it (see
        // `read`), and no writer gets in while `busy` is set, so nothing writes `value` while the
        // guard lives; other readers only read it. The slot's data is touched only by the holder
        // of `busy` (this guard) or by a writer (excluded), and `&mut self` makes this the only
        // borrow through the guard.
        unsafe { (&*self.lock.value.get(), &mut *self.slot.data.get()) }
    }
}

impl<T, R> Drop for ReadGuard<'_, T, R> {
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Release);
    }
}

/// Exclusive access to a [`BrLock`]'s value and to every slot's data; unlocks when dropped.
pub struct WriteGuard<'a, T, R> {
    lock: &'a BrLock<T, R>,
}

impl<T, R> WriteGuard<'_, T, R> {
    /// The value, and every slot's data (in slot order).
    pub fn parts(&mut self) -> (&mut T, [&mut R; READER_SLOTS]) {
        // SAFETY: this guard holds `writer` and saw every slot's `busy` clear after setting it
        // (see `write`); readers that come later see `writer` and step back without touching
        // anything, and other writers wait for `writer`. So this guard is the only one with any
        // access to `value` and to the slots' data; the slots' data are distinct cells, and
        // `&mut self` makes this the only borrow through the guard.
        unsafe {
            let slots = &self.lock.slots;
            (
                &mut *self.lock.value.get(),
                std::array::from_fn(|i| &mut *slots[i].data.get()),
            )
        }
    }
}

impl<T, R> Drop for WriteGuard<'_, T, R> {
    fn drop(&mut self) {
        // Release: every write made under the lock happens-before the next holder's acquire.
        self.lock.writer.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Writers update two numbers with a gap between them (a torn read would see them differ);
    /// readers, running until the writers are done, check them and count in their slot's data;
    /// every slot's count must add up.
    #[test]
    fn readers_never_see_a_writer_half_way_and_slots_are_private() {
        use std::sync::atomic::AtomicU64;
        const WRITES: u64 = 20_000;
        let lock = Arc::new(BrLock::new((0u64, 0u64), || 0u64));
        let writers_left = Arc::new(AtomicUsize::new(2));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..4)
            .map(|slot| {
                let (lock, writers_left, reads) =
                    (lock.clone(), writers_left.clone(), reads.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while writers_left.load(Ordering::Relaxed) > 0 || n < 1000 {
                        let mut g = lock.read(slot);
                        let (value, count) = g.parts();
                        let (a, b) = std::hint::black_box(*value);
                        assert_eq!(a, b, "a reader saw a write half done");
                        // A non-atomic read-modify-write: two holders of a slot at once would
                        // lose counts.
                        let c = *count;
                        std::hint::black_box(&c);
                        *count = c + 1;
                        n += 1;
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, writers_left) = (lock.clone(), writers_left.clone());
                std::thread::spawn(move || {
                    for _ in 0..WRITES {
                        let mut g = lock.write();
                        let (value, _) = g.parts();
                        value.0 += 1;
                        for _ in 0..100 {
                            std::hint::black_box(&*value);
                        }
                        value.1 += 1;
                    }
                    writers_left.fetch_sub(1, Ordering::Relaxed);
                })
            })
            .collect();
        for t in readers.into_iter().chain(writers) {
            t.join().unwrap();
        }
        let mut g = lock.write();
        let (value, counts) = g.parts();
        assert_eq!(*value, (2 * WRITES, 2 * WRITES));
        let total = reads.load(Ordering::Relaxed);
        assert_eq!(counts.iter().map(|c| **c).sum::<u64>(), total);
        assert!(total >= 4000);
    }

    #[test]
    fn threads_sharing_a_slot_take_turns() {
        let lock = Arc::new(BrLock::new((), || 0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                // Every thread uses slot 3 (and READER_SLOTS + 3 is the same slot).
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let mut g = lock.read(3 + (i % 2) * READER_SLOTS);
                        let (_, count) = g.parts();
                        let c = *count;
                        std::hint::black_box(&c);
                        *count = c + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.write().parts().1[3], 4 * 20_000);
    }

    #[test]
    fn guards_unlock_when_a_holder_panics() {
        let lock = BrLock::new(1, || 0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.read(0);
            panic!("boom");
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.write();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(*lock.write().parts().0, 1);
        assert_eq!(*lock.read(0).parts().0, 1);
    }

    #[test]
    fn each_thread_keeps_its_reader_slot() {
        let mine = reader_slot();
        assert!(mine < READER_SLOTS);
        assert_eq!(reader_slot(), mine);
        let other = std::thread::spawn(reader_slot).join().unwrap();
        assert!(other < READER_SLOTS);
    }
}
