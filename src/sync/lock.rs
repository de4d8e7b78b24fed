//! The cache's lock.
//!
//! [`BrLock`] is a "big-reader" lock: lookups take one of [`READER_SLOTS`] reader slots (each
//! thread has its own slot, on its own cache line), so two threads looking things up at once
//! write no cache line in common; writers take the whole lock. A reader pays one atomic to take
//! its slot and one to leave it; a writer the same on the writer's word plus a read of every
//! slot. A writer may turn its guard into its reader slot ([`WriteGuard::downgrade`]) to go on
//! reading what it wrote while other readers come in.
//!
//! Waiting spins briefly ([`SPINS`], a few microseconds: most sections last tens of
//! nanoseconds), then sleeps on the word it waits for (`park.rs`: a futex), for readers and
//! writers alike. A sleeping waiter burns no CPU, and a real-time waiter lets a lower-priority
//! holder on its CPU finish (a `sched_yield` loop would not). Each word has three values: free,
//! held, and held with sleepers announced; whoever frees a word wakes the sleepers only if they
//! announced themselves, so an uncontended pair of calls makes no system call (see [`free`]).
//!
//! A thread that calls the lock again while it holds one of its guards (code running under a
//! guard: a lookup's visit callback) gives up with an [`ErrorKind::Reentrant`] error instead of
//! waiting for itself or getting a second guard (`wait_for`).
//!
//! Why not `std::sync::Mutex` or `RwLock`: a mutex makes every lookup write the same lock word
//! (two threads then move that line between their cores on every call: 0.37x the throughput of
//! one thread, measured), and a reader-writer lock writes one shared reader count. Here the
//! word a lookup writes is its own slot's, so read-mostly work scales with threads
//! (docs/PERFORMANCE.md).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::sync::fork::Taken;
use crate::sync::{park, token};

/// How many times a waiter looks again (with a spin-loop hint) before it sleeps: about 2–5 µs
/// here, longer than almost every section (a lookup takes tens of nanoseconds, a write section
/// with a full replay a few microseconds), far shorter than a time slice.
pub const SPINS: u32 = 200;

/// How many reader slots a [`BrLock`] has. Threads are spread over them round robin; threads
/// that share a slot take turns on it (correct, just not parallel).
pub const READER_SLOTS: usize = 8;

/// A lock word: free.
const FREE: u32 = 0;
/// A lock word: held, nobody asleep waiting for it.
const HELD: u32 = 1;
/// A lock word: held, and some thread may be asleep waiting for it (whoever frees it wakes them).
const HELD_SLEEPERS: u32 = 2;

/// Who is calling: a token that no other live thread has (for telling a call from under the
/// thread's own guard), and the thread's reader slot.
///
/// Not `Send`: a `Me` names the thread that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Me {
    /// Never 0 (which marks a word nobody holds).
    token: u64,
    /// [`SLOT_UNKNOWN`] until needed: see [`Me::slot`].
    slot: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

const SLOT_UNKNOWN: usize = usize::MAX;

/// The calling thread's [`Me`].
#[inline]
pub fn me() -> Me {
    Me {
        token: token::current(),
        slot: SLOT_UNKNOWN,
        _not_send: std::marker::PhantomData,
    }
}

impl Me {
    /// This thread's reader slot, `0..READER_SLOTS`: round robin in the order threads first
    /// ask (the thread's counted token), then fixed for its life.
    #[inline]
    pub fn slot(self) -> usize {
        if self.slot != SLOT_UNKNOWN {
            return self.slot;
        }
        ((token::counted() - 1) % READER_SLOTS as u64) as usize
    }
}

/// A reader slot: its lock word, its holder, and the per-slot data `R`, alone on their cache
/// lines (128 bytes: adjacent-line prefetching pairs lines).
#[repr(align(128))]
struct ReaderSlot<R> {
    word: AtomicU32,
    /// The token of the thread holding `word` as a reader, 0 when none: set after taking the
    /// slot, cleared before leaving it, so a thread that finds its own token here while waiting
    /// is waiting for itself (see [`reentered`]).
    holder: AtomicU64,
    data: UnsafeCell<R>,
}

/// The writer's lock word and its holder (as [`ReaderSlot::holder`]), on their own line.
#[repr(align(128))]
struct WriterSide {
    word: AtomicU32,
    holder: AtomicU64,
}

/// A reader-writer lock with one reader word per slot (see the module documentation).
///
/// Readers and writers exclude each other by Dekker's handshake with sequentially consistent
/// atomics: a reader sets its slot's word, then checks the writer's; a writer sets the writer's
/// word, then waits until every slot's is free. Of a racing reader and writer at least one sees
/// the other, and the reader is the one that gives way: a reader that sees the writer's word
/// held frees its slot again and waits.
pub struct BrLock<T, R> {
    writer: WriterSide,
    value: UnsafeCell<T>,
    slots: [ReaderSlot<R>; READER_SLOTS],
}

// SAFETY: readers on different slots share `&T` concurrently (hence `T: Sync`); a writer, and
// the one reader holding a slot, get `&mut` access to `T` or to that slot's `R` from whichever
// thread holds the lock (hence `Send`). `BrLock::read`/`BrLock::write` make the accesses
// exclusive as documented on the type.
unsafe impl<T: Send + Sync, R: Send> Sync for BrLock<T, R> {}
// SAFETY: moving the lock moves the `T` and the `R`s.
unsafe impl<T: Send, R: Send> Send for BrLock<T, R> {}

/// Frees `word`, waking its sleepers if any announced themselves. Release: everything done
/// under it happens-before the next holder's acquire.
///
/// An atomic swap, not a plain store (which would save ~5 ns a call here): a plain store after
/// reading the word misses a waiter that announces itself between the two, and a review
/// measured that happening hundreds of times in 6 s of contended use, each costing the missed
/// waiter its whole sleep (writers' throughput 0.4–0.65x of the swap's). With the swap a waiter
/// that announced itself is always seen.
#[inline]
fn free(word: &AtomicU32) {
    if word.swap(FREE, Ordering::Release) == HELD_SLEEPERS {
        park::wake_all(word);
    }
}

impl<T, R> BrLock<T, R> {
    /// An unlocked lock around `value`, with `slot()` making each slot's data.
    pub fn new(value: T, mut slot: impl FnMut() -> R) -> Self {
        BrLock {
            writer: WriterSide {
                word: AtomicU32::new(FREE),
                holder: AtomicU64::new(0),
            },
            value: UnsafeCell::new(value),
            slots: std::array::from_fn(|_| ReaderSlot {
                word: AtomicU32::new(FREE),
                holder: AtomicU64::new(0),
                data: UnsafeCell::new(slot()),
            }),
        }
    }

    /// Locks `me`'s reader slot, waiting while a writer is in or another thread holds the slot.
    /// Never call it while holding a guard of the same lock (it gives up: [`reentered`]).
    #[inline]
    pub fn read(&self, me: Me) -> ReadGuard<'_, T, R> {
        let index = me.slot() % READER_SLOTS;
        let s = &self.slots[index];
        let (mut spins, mut nap) = (0, FIRST_NAP);
        loop {
            if s.word
                .compare_exchange(FREE, HELD, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                if self.writer.word.load(Ordering::SeqCst) == FREE {
                    break;
                }
                // A writer is in or coming: give way.
                free(&s.word);
                self.wait_for(&self.writer.word, me, &mut spins, &mut nap);
            } else {
                self.wait_for(&s.word, me, &mut spins, &mut nap);
            }
        }
        s.holder.store(me.token, Ordering::Relaxed);
        ReadGuard {
            slot: s,
            lock: self,
            index,
        }
    }

    /// Waits until `word` is free: spins [`SPINS`] times, then sleeps on it. Returns without
    /// taking it (the caller tries again). A thread that holds a guard of this lock from an outer
    /// call (code running under a guard, such as a visit callback, called the lock again) would
    /// wait for itself, directly or through a thread that waits for it: it gives up instead
    /// ([`reentered`]). Checked only after the spins, so an uncontended wait pays nothing for it.
    #[cold]
    fn wait_for(&self, word: &AtomicU32, me: Me, spins: &mut u32, nap: &mut Duration) {
        loop {
            let seen = word.load(Ordering::SeqCst);
            if seen == FREE {
                return;
            }
            if *spins < SPINS {
                *spins += 1;
                std::hint::spin_loop();
                continue;
            }
            if self.held_by(me) {
                reentered();
            }
            sleep_on(word, seen, nap);
        }
    }

    /// True when `me` holds a guard of this lock from an outer call: the writer's word or its
    /// reader slot. Only `me` sets these to its own token, and clears them before leaving, so
    /// this is never true of a call that holds nothing (a call's own word is marked only after
    /// its last wait).
    fn held_by(&self, me: Me) -> bool {
        self.writer.holder.load(Ordering::Relaxed) == me.token
            || self.slots[me.slot() % READER_SLOTS]
                .holder
                .load(Ordering::Relaxed)
                == me.token
    }

    /// Locks the whole lock, waiting for the other writer and for every reader to leave. Never
    /// call it while holding a guard of the same lock (it gives up: [`reentered`]).
    pub fn write(&self, me: Me) -> WriteGuard<'_, T, R> {
        let (mut spins, mut nap) = (0, FIRST_NAP);
        while self
            .writer
            .word
            .compare_exchange(FREE, HELD, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            self.wait_for(&self.writer.word, me, &mut spins, &mut nap);
        }
        // The guard first: it frees the writer's word if a wait below gives up.
        let guard = WriteGuard { lock: self };
        for s in &self.slots {
            if s.word.load(Ordering::SeqCst) != FREE {
                self.wait_for(&s.word, me, &mut spins, &mut nap);
            }
        }
        // Only now: `wait_for` above must not take this call's own word for an outer call's.
        self.writer.holder.store(me.token, Ordering::Relaxed);
        guard
    }

    /// Before `fork(2)` (`fork.rs`): takes the whole lock for the forking thread if it can
    /// without sleeping ([`SPINS`] looks at a slot still held, for readers about to leave), or
    /// takes nothing: `Busy` if another thread holds it, `HeldHere` if the forking thread does
    /// (it forks from a visit callback: waiting would be for itself). After the fork,
    /// [`BrLock::after_fork_in_parent`] or [`BrLock::after_fork_in_child`] must be called exactly
    /// once if this returned `All`.
    pub fn before_fork(&self) -> Taken {
        let me = me();
        if self.held_by(me) {
            return Taken::HeldHere;
        }
        if self
            .writer
            .word
            .compare_exchange(FREE, HELD, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Taken::Busy;
        }
        for s in &self.slots {
            let mut spins = 0;
            while s.word.load(Ordering::SeqCst) != FREE {
                if spins == SPINS {
                    free(&self.writer.word);
                    return Taken::Busy;
                }
                spins += 1;
                std::hint::spin_loop();
            }
        }
        self.writer.holder.store(me.token, Ordering::Relaxed);
        Taken::All
    }

    /// After `fork(2)`, in the parent: frees what [`BrLock::before_fork`] took.
    pub fn after_fork_in_parent(&self) {
        drop(WriteGuard { lock: self });
    }

    /// After `fork(2)`, in the child, where the forking thread is the only thread: frees what
    /// [`BrLock::before_fork`] took, and every word the threads that did not survive the fork
    /// left behind (a reader that had just set its slot's word, seen the writer and not yet
    /// freed it again; sleepers announced in a word). Nobody was inside: the forking thread held
    /// the whole lock.
    pub fn after_fork_in_child(&self) {
        for s in &self.slots {
            s.holder.store(0, Ordering::Relaxed);
            s.word.store(FREE, Ordering::Relaxed);
        }
        self.writer.holder.store(0, Ordering::Relaxed);
        self.writer.word.store(FREE, Ordering::Release);
    }
}

/// How long a waiter sleeps at first before looking again even if nobody woke it (a safety net:
/// [`free`] wakes every announced sleeper; and where there is no futex, `park.rs` naps); each
/// further sleep of the same wait doubles it, up to [`MAX_NAP`].
const FIRST_NAP: Duration = Duration::from_micros(50);
/// The longest a waiter sleeps without looking again.
const MAX_NAP: Duration = Duration::from_millis(1);

/// Sleeps while `word` still holds `seen` (held), first announcing a sleeper in it so that
/// whoever frees it wakes this thread; for at most `nap`, which then doubles (up to
/// [`MAX_NAP`]).
fn sleep_on(word: &AtomicU32, seen: u32, nap: &mut Duration) {
    if seen == HELD
        && word
            .compare_exchange(HELD, HELD_SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        // Changed meanwhile (freed, or announced by another sleeper): look again.
        return;
    }
    park::wait(word, HELD_SLEEPERS, *nap);
    *nap = (*nap * 2).min(MAX_NAP);
}

/// Gives up a call made by a thread that already holds this lock (from code that runs under one
/// of its guards, such as a lookup's visit callback): waiting would never end, and entering again
/// would give two guards at once. Unwinds with an [`ErrorKind::Reentrant`] error as the payload,
/// without the panic hook (nothing is printed); the C boundary reports it as that error. Called
/// before the call holds anything, or with only a guard that unwinding releases.
#[cold]
#[inline(never)]
fn reentered() -> ! {
    std::panic::resume_unwind(Box::new(Error::new(
        ErrorKind::Reentrant,
        "called the cache from code running under its own lock (a visit callback); nothing was done",
    )))
}

/// Shared access to a [`BrLock`]'s value and exclusive access to one slot's data; leaves the
/// slot when dropped (also during unwinding).
pub struct ReadGuard<'a, T, R> {
    lock: &'a BrLock<T, R>,
    slot: &'a ReaderSlot<R>,
    index: usize,
}

impl<T, R> ReadGuard<'_, T, R> {
    /// The number of the slot this guard holds (the reader's [`Me::slot`]).
    pub fn slot(&self) -> usize {
        self.index
    }

    /// The shared value, and this slot's data.
    pub fn parts(&mut self) -> (&T, &mut R) {
        // SAFETY: this guard holds the slot's word and saw the writer's word free after setting
        // it (see `read`; or it was a write guard, downgraded while holding the writer's word),
        // and no writer gets in while the slot's word is held, so no `&mut` to `value` exists
        // while the guard lives: readers only read it, or change what `T` keeps behind a lock
        // of its own (the cache's replay beside lookups, through a `Mutex`). The slot's data is
        // touched only by the holder of its word (this guard) or by a writer (excluded), and
        // `&mut self` makes this the only borrow through the guard.
        unsafe { (&*self.lock.value.get(), &mut *self.slot.data.get()) }
    }
}

impl<T, R> Drop for ReadGuard<'_, T, R> {
    #[inline]
    fn drop(&mut self) {
        self.slot.holder.store(0, Ordering::Relaxed);
        free(&self.slot.word);
    }
}

/// Exclusive access to a [`BrLock`]'s value and to every slot's data; unlocks when dropped.
pub struct WriteGuard<'a, T, R> {
    lock: &'a BrLock<T, R>,
}

impl<'a, T, R> WriteGuard<'a, T, R> {
    /// Turns this write guard into `me`'s reader slot without letting any writer in between: what
    /// was written under it stays as it is until the read guard leaves, while other readers come
    /// in.
    pub fn downgrade(self, me: Me) -> ReadGuard<'a, T, R> {
        let lock = self.lock;
        let index = me.slot() % READER_SLOTS;
        let s = &lock.slots[index];
        // Every slot was free when this guard came in, and a reader that sets its word since
        // sees the writer's and frees it again at once, so this waits for such a reader at
        // most. Not `BrLock::wait_for`: this thread holds the writer's word, which that would
        // take for a call from under its own guard.
        let mut nap = FIRST_NAP;
        while s
            .word
            .compare_exchange(FREE, HELD, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            let seen = s.word.load(Ordering::Relaxed);
            if seen != FREE {
                sleep_on(&s.word, seen, &mut nap);
            }
        }
        // The read guard first: it leaves the slot if anything below unwinds. The write guard is
        // not dropped (it would free the writer's word before the slot is recorded as this
        // thread's); the word is freed by hand below.
        let guard = ReadGuard {
            slot: s,
            lock,
            index,
        };
        std::mem::forget(self);
        s.holder.store(me.token, Ordering::Relaxed);
        lock.writer.holder.store(0, Ordering::Relaxed);
        // Everything written under the write guard happens-before the next holder's acquire, as
        // in `WriteGuard::drop`. Writers that come now wait for this slot.
        free(&lock.writer.word);
        guard
    }

    /// The value, and every slot's data (in slot order).
    pub fn parts(&mut self) -> (&mut T, [&mut R; READER_SLOTS]) {
        // SAFETY: this guard holds the writer's word and saw every slot's word free after
        // setting it (see `write`): readers that come later see the writer's word and step back
        // without touching anything, and other writers wait for it. So this guard is the only
        // one with any access to `value` and to the slots' data; the slots' data are distinct
        // cells, and `&mut self` makes this the only borrow through the guard.
        unsafe {
            let slots = &self.lock.slots;
            (
                &mut *self.lock.value.get(),
                std::array::from_fn(|i| &mut *slots[i].data.get()),
            )
        }
    }
}

impl<T, R> std::ops::Deref for WriteGuard<'_, T, R> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: as in `WriteGuard::parts`; `&self` gives out only shared access.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T, R> std::ops::DerefMut for WriteGuard<'_, T, R> {
    fn deref_mut(&mut self) -> &mut T {
        self.parts().0
    }
}

impl<T, R> Drop for WriteGuard<'_, T, R> {
    fn drop(&mut self) {
        self.lock.writer.holder.store(0, Ordering::Relaxed);
        free(&self.lock.writer.word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    use std::time::Instant;

    /// The calling thread as if its reader slot were `slot`.
    fn on_slot(slot: usize) -> Me {
        Me { slot, ..me() }
    }

    /// Reads through `me`'s slot: the pair must be whole (both halves of a write or neither),
    /// and the slot's count goes up by a non-atomic read-modify-write (two holders of a slot at
    /// once would lose counts).
    fn check_and_count(lock: &BrLock<(u64, u64), u64>, me: Me) {
        let mut g = lock.read(me);
        let (value, count) = g.parts();
        let (a, b) = std::hint::black_box(*value);
        assert_eq!(a, b, "a reader saw a write half done");
        let c = *count;
        std::hint::black_box(&c);
        *count = c + 1;
    }

    /// Writers update two numbers with a gap between them (a torn read would see them differ);
    /// readers, running until the writers are done, check them and count in their slot's data;
    /// every slot's count must add up.
    #[test]
    fn readers_never_see_a_writer_half_way_and_slots_are_private() {
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
                        check_and_count(&lock, on_slot(slot));
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
                        let mut g = lock.write(me());
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
        let mut g = lock.write(me());
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
                        let me = on_slot(3 + (i % 2) * READER_SLOTS);
                        let mut g = lock.read(me);
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
        assert_eq!(*lock.write(me()).parts().1[3], 4 * 20_000);
    }

    /// A downgraded write guard keeps writers out until it leaves (what it wrote stays as it
    /// was), lets readers in meanwhile, and holds the thread's reader slot (the slot's count,
    /// bumped non-atomically by readers and downgraded writers alike, adds up).
    #[test]
    fn a_downgraded_writer_keeps_writers_out_and_lets_readers_in() {
        const WRITES: u64 = 5_000;
        let lock = Arc::new(BrLock::new((0u64, 0u64), || 0u64));
        let writers_left = Arc::new(AtomicUsize::new(2));
        let readers: Vec<_> = (0..2)
            .map(|slot| {
                let (lock, writers_left) = (lock.clone(), writers_left.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while writers_left.load(Ordering::Relaxed) > 0 || n < 1000 {
                        check_and_count(&lock, on_slot(slot));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (lock, writers_left) = (lock.clone(), writers_left.clone());
                std::thread::spawn(move || {
                    // Counted out even if this writer panics, so that the readers stop.
                    struct Done(Arc<AtomicUsize>);
                    impl Drop for Done {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    let _done = Done(writers_left);
                    // Writer 0 shares slot 1 with a reader.
                    let me = on_slot(1 + w);
                    for _ in 0..WRITES {
                        let mut g = lock.write(me);
                        let (value, _) = g.parts();
                        value.0 += 1;
                        value.1 += 1;
                        let written = *value;
                        let mut g = g.downgrade(me);
                        assert_eq!(g.slot(), (1 + w) % READER_SLOTS);
                        for _ in 0..20 {
                            let (value, count) = g.parts();
                            assert_eq!(*std::hint::black_box(value), written, "a writer got in");
                            let c = *count;
                            std::hint::black_box(&c);
                            *count = c + 1;
                        }
                    }
                })
            })
            .collect();
        let reads: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
        writers.into_iter().for_each(|t| t.join().unwrap());
        let mut g = lock.write(me());
        let (value, counts) = g.parts();
        assert_eq!(*value, (2 * WRITES, 2 * WRITES));
        assert_eq!(
            counts.iter().map(|c| **c).sum::<u64>(),
            reads + 2 * WRITES * 20
        );

        // While a downgraded guard is held a reader gets in, and a writer does not.
        drop(g);
        let me = me();
        let held = lock.write(me).downgrade(me);
        let reader = {
            let lock = Arc::clone(&lock);
            let slot = me.slot() + 1;
            std::thread::spawn(move || *lock.read(on_slot(slot)).parts().0)
        };
        assert_eq!(reader.join().unwrap(), (2 * WRITES, 2 * WRITES));
        let wrote = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lock, wrote) = (Arc::clone(&lock), Arc::clone(&wrote));
            std::thread::spawn(move || {
                lock.write(super::me()).parts().0 .0 += 1;
                wrote.store(true, Ordering::Relaxed);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !wrote.load(Ordering::Relaxed),
            "a writer got past a read guard"
        );
        drop(held);
        writer.join().unwrap();
        assert!(wrote.load(Ordering::Relaxed));
    }

    /// The scheduler state of thread `tid` of this process ('R' running, 'S' sleeping, ...).
    #[cfg(target_os = "linux")]
    fn thread_state(tid: i32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // "tid (comm) S ...": the state follows the last ')'.
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        after.trim_start().chars().next().unwrap()
    }

    /// Waits for `tid` to be asleep (state 'S') for 20 samples in a row, for at most 2 s; returns
    /// whether it was. A waiter that spins or yields stays 'R' (runnable) and fails this.
    #[cfg(target_os = "linux")]
    fn settles_asleep(tid: i32) -> bool {
        let until = Instant::now() + Duration::from_secs(2);
        let mut asleep = 0;
        while Instant::now() < until {
            if thread_state(tid) == 'S' {
                asleep += 1;
                if asleep == 20 {
                    return true;
                }
            } else {
                asleep = 0;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Readers, writers and a downgrading writer that wait for a holder that takes its time go
    /// to sleep (a futex) instead of spinning or yielding, and wake when it leaves. A lock that
    /// spins or calls `sched_yield` keeps the waiter runnable and fails this.
    #[cfg(target_os = "linux")]
    #[test]
    fn waiters_sleep_until_the_holder_leaves() {
        // SAFETY: `gettid` has no preconditions.
        let tid = || unsafe { libc::gettid() };
        let lock = Arc::new(BrLock::new(0u64, || 0u64));
        // (what the holder takes, what the waiter takes)
        for (holder_writes, waiter_writes) in [(true, false), (false, true), (true, true)] {
            let held = Arc::new(AtomicBool::new(false));
            let (tx, rx) = std::sync::mpsc::channel();
            let holder = {
                let (lock, held) = (Arc::clone(&lock), Arc::clone(&held));
                std::thread::spawn(move || {
                    let me = on_slot(1);
                    if holder_writes {
                        let mut g = lock.write(me);
                        held.store(true, Ordering::Release);
                        rx.recv().unwrap();
                        *g.parts().0 += 1;
                    } else {
                        let _g = lock.read(me);
                        held.store(true, Ordering::Release);
                        rx.recv().unwrap();
                    }
                })
            };
            while !held.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let waiter = {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    tid_tx.send(tid()).unwrap();
                    let me = on_slot(2);
                    if waiter_writes {
                        *lock.write(me).parts().0 += 10;
                    } else {
                        drop(lock.read(me));
                    }
                })
            };
            let waiter_tid = tid_rx.recv().unwrap();
            assert!(
                settles_asleep(waiter_tid),
                "a waiter (writes: {waiter_writes}, holder writes: {holder_writes}) did not sleep"
            );
            tx.send(()).unwrap();
            holder.join().unwrap();
            waiter.join().unwrap();
        }
        assert_eq!(*lock.write(me()).parts().0, 2 + 20);
    }

    /// What a call that re-enters the lock unwinds with, or `None` if it did not unwind.
    fn reentry(f: impl FnOnce()) -> Option<ErrorKind> {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
        Some(
            payload
                .downcast_ref::<Error>()
                .expect("an Error payload")
                .kind(),
        )
    }

    /// Code running under a guard (a lookup's visit callback) that calls the lock again gives up
    /// with a `Reentrant` error, whatever the guard: never a second guard, never a wait for
    /// itself. Afterwards the outer guard still works and the lock is free again once it leaves.
    /// A lock without these checks fails this test by hanging.
    #[test]
    fn a_call_from_under_its_own_guard_gives_up() {
        let lock = BrLock::new(7u64, || 0u64);
        // The thread's own slot: `before_fork` looks at that one.
        let me = me();
        let inner_calls = |lock: &BrLock<u64, u64>| {
            assert_eq!(reentry(|| drop(lock.read(me))), Some(ErrorKind::Reentrant));
            assert_eq!(reentry(|| drop(lock.write(me))), Some(ErrorKind::Reentrant));
            assert_eq!(
                lock.before_fork(),
                Taken::HeldHere,
                "a fork from under a guard"
            );
        };
        let mut guard = lock.read(me);
        inner_calls(&lock);
        assert_eq!(*guard.parts().0, 7);
        drop(guard);
        let mut guard = lock.write(me);
        inner_calls(&lock);
        *guard.parts().0 += 1;
        let mut guard = guard.downgrade(me);
        inner_calls(&lock);
        assert_eq!(*guard.parts().0, 8);
        drop(guard);
        // Everything was released: another thread gets in and sees every write.
        let seen = std::thread::scope(|s| {
            s.spawn(|| *lock.write(super::me()).parts().0)
                .join()
                .unwrap()
        });
        assert_eq!(seen, 8);
    }

    #[test]
    fn guards_unlock_when_a_holder_panics() {
        let lock = BrLock::new(1, || 0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.read(on_slot(0));
            panic!("boom");
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.write(me());
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(*lock.write(me()).parts().0, 1);
        assert_eq!(*lock.read(on_slot(0)).parts().0, 1);
    }

    /// What the fork handlers do, without a fork: `before_fork` takes the whole lock (a reader
    /// waits), the parent's half frees it; in the child's half, words that threads lost in the
    /// fork left held (a reader that had set its slot's word, sleepers announced) are freed too.
    #[test]
    fn fork_halves_free_what_the_lost_threads_held() {
        let lock = Arc::new(BrLock::new(0u64, || 0u64));
        // Busy while another thread holds a slot: nothing taken.
        let held = lock.read(on_slot(2));
        assert_eq!(
            std::thread::scope(|s| s.spawn(|| lock.before_fork()).join().unwrap()),
            Taken::Busy
        );
        drop(held);
        assert_eq!(lock.before_fork(), Taken::All);
        let reader = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || *lock.read(on_slot(5)).parts().0)
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished(), "a reader got in past before_fork");
        // SAFETY: this thread holds the writer's word (before_fork) and no guard: nobody else
        // reads or writes the value.
        unsafe { *lock.value.get() = 3 };
        lock.after_fork_in_parent();
        assert_eq!(reader.join().unwrap(), 3);

        // As a child would find it: the whole lock held by the forking thread, a slot's word set
        // by a thread that is gone, sleepers announced in the writer's word.
        assert_eq!(lock.before_fork(), Taken::All);
        lock.slots[4].word.store(HELD, Ordering::Relaxed);
        lock.slots[4].holder.store(12345, Ordering::Relaxed);
        lock.writer.word.store(HELD_SLEEPERS, Ordering::Relaxed);
        lock.after_fork_in_child();
        *lock.read(on_slot(4)).parts().1 += 1;
        *lock.write(me()).parts().0 += 1;
        assert_eq!(*lock.read(on_slot(4)).parts().0, 4);
    }

    #[test]
    fn each_thread_keeps_its_slot_and_token() {
        let mine = me();
        assert!(mine.slot() < READER_SLOTS);
        assert_ne!(mine.token, 0);
        assert_eq!(me(), mine);
        assert_eq!(me().slot(), mine.slot());
        // This thread is alive while the other one asks: their tokens differ.
        let (token, slot) = std::thread::spawn(|| (me().token, me().slot()))
            .join()
            .unwrap();
        assert!(slot < READER_SLOTS);
        assert_ne!(token, mine.token);
    }
}
