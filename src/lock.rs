//! The cache's lock.
//!
//! [`BrLock`] is a "big-reader" lock with a bias:
//! - Lookups take one of [`READER_SLOTS`] reader slots (each thread has its own slot, on its own
//!   cache line), so two threads looking things up at once write no cache line in common;
//!   writers take the whole lock. A reader pays one atomic on its own slot; a writer one atomic
//!   plus a read of every slot. A writer may turn its guard into its reader slot
//!   ([`WriteGuard::downgrade`]) to go on reading what it wrote while other readers come in.
//! - While one thread has been the only one using the lock for a while, the lock is *biased* to
//!   it: that thread then gets exclusive access, for lookups and writes alike, with no atomic
//!   read-modify-write at all (a plain store, a compiler fence and a load; see `barrier.rs`). The
//!   first other thread to come revokes the bias, paying one `membarrier(2)` (a few
//!   microseconds), and the lock works as above until one thread is alone again for long enough.
//!   A bias revoked before it paid for itself doubles how long that is, so threads that keep
//!   alternating stop the lock from biasing at all; one that paid resets it ([`BIAS_AFTER`]).
//! - A thread that calls the lock again while it holds one of its guards (code running under a
//!   guard: a lookup's visit callback) gives up with an [`ErrorKind::Reentrant`] error instead
//!   of waiting for itself or getting a second guard (`wait`, `enter_biased`).
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::barrier;
use crate::error::{Error, ErrorKind};
use crate::token;

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

/// How many write-lock acquisitions in a row one thread must make, with no other thread using
/// the lock, before the lock is biased to it. A revocation costs a few microseconds (a
/// `membarrier`), about what 256 writes take. A bias revoked before it served
/// [`PROFITABLE_USES`] operations doubles this for the next one (up to
/// `BIAS_AFTER << MAX_BIAS_DOUBLINGS`), so threads that keep alternating stop paying for it; a
/// bias that did serve that many resets it, and so does [`BIAS_DECAY`] without a revocation, so
/// a thread that is alone again after a busy spell (a GUI thread once its start-up workers are
/// done) soon gets the bias back.
pub const BIAS_AFTER: u32 = 256;

/// How long without a revocation makes the lock forget its doublings (see [`BIAS_AFTER`]):
/// threads alternating more slowly than this pay at most one revocation (a few microseconds)
/// per period, nothing next to it.
pub const BIAS_DECAY: Duration = Duration::from_secs(1);

/// How many operations a bias must serve for its revocation to have been worth it (at ~10–50 ns
/// an operation, a millisecond or more of work against a revocation's few microseconds).
pub const PROFITABLE_USES: u64 = 1 << 16;

/// Every this many reads through a slot, one is made under the write lock instead, so that a
/// thread that only reads can earn the bias too.
pub const READS_PER_WRITE_PROBE: u32 = 1024;
/// [`READS_PER_WRITE_PROBE`] while the last write section saw another thread in the lock: a
/// probe then cannot earn the bias, and each one stops every other reader (in a 2-thread
/// read-mostly run, 8% of the throughput). Once the other threads are gone, the next write
/// section sees it and probes come at the usual rate again.
pub const READS_PER_CROWDED_PROBE: u32 = 16 * READS_PER_WRITE_PROBE;
const MAX_BIAS_DOUBLINGS: u32 = 12;

/// `Bias::owner` while a thread is revoking the bias (no cell's number).
const REVOKING: u64 = u64::MAX;

/// Who is calling: a token that no other live thread has, and the thread's reader slot.
///
/// The token is what the bias is granted to. Only *live* threads need distinct tokens: a thread
/// that exits has left every section (guards do not outlive calls), so a new thread that is
/// given the same token (the thread pointer of a reused thread control block) and finds the
/// lock biased to it is simply the one thread the bias admits, and no other live thread can
/// match it. At worst it inherits a streak or a bias it did not earn, which costs one
/// revocation, never exclusion.
///
/// Not `Send`: a `Me` names the thread that made it, and two threads using one `Me` would both
/// match the bias (two guards at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Me {
    /// Never 0 (which marks an unclaimed [`BiasCell`]).
    token: u64,
    /// [`SLOT_UNKNOWN`] until needed: see [`Me::slot`].
    slot: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

const SLOT_UNKNOWN: usize = usize::MAX;

/// The calling thread's [`Me`]. Cheap: the bias owner's path needs nothing else.
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

/// A reader slot: its lock word, the token of the last thread that read through it, and the
/// per-slot data `R`, alone on their cache lines (128 bytes: adjacent-line prefetching pairs
/// lines).
#[repr(align(128))]
struct ReaderSlot<R> {
    busy: AtomicBool,
    /// Written by the slot's holder, read and cleared by writers (to tell whether any other
    /// thread is using the lock).
    last_reader: UnsafeCell<u64>,
    /// Reads through this slot since the last write probe ([`READS_PER_WRITE_PROBE`]); touched
    /// only by the slot's holder.
    reads: UnsafeCell<u32>,
    /// The token of the thread holding `busy` as a reader, 0 when none: set after taking the
    /// slot, cleared before leaving it, so a thread that finds its own token here while waiting
    /// for the slot is waiting for itself (see [`reentered`]).
    holder: AtomicU64,
    data: UnsafeCell<R>,
}

/// The writer's lock word and what writers remember between them, on their own line.
#[repr(align(128))]
struct WriterSide {
    busy: AtomicBool,
    /// The token of the thread holding `busy`, 0 when none (as [`ReaderSlot::holder`]).
    holder: AtomicU64,
    /// Touched only by the holder of `busy`.
    streak: UnsafeCell<Streak>,
    /// Touched only by the holder of `busy`.
    quiet: UnsafeCell<Quiet>,
    /// Whether the last unbiased write section saw a thread other than its own use the lock
    /// since the one before (set by the holder of `busy`, read by readers: a hint that only
    /// spaces write probes out).
    crowded: AtomicBool,
}

/// Since when no revocation has been seen (for [`BIAS_DECAY`]): the revocation count the
/// granter last saw, and when it first saw it. Kept by the granter under the write lock, with
/// its guard alive (reading the clock could panic, in theory: unwinding then releases the lock),
/// so the revoker, which holds [`REVOKING`] with no guard, never reads a clock.
#[derive(Default)]
struct Quiet {
    revocations: u32,
    since: Option<Instant>,
}

/// Which thread took the write lock last, and how many times in a row with no other thread
/// using the lock.
#[derive(Default)]
struct Streak {
    token: u64,
    run: u32,
}

/// How many threads can hold a [`BiasCell`] of one lock, and so be granted its bias. A cell is
/// claimed by a thread's token for good: a new thread given a dead one's token (glibc reuses
/// thread control blocks, and with them thread pointers, from its cache of stacks) reuses its
/// cell, but a process that keeps making threads with new tokens (counted tokens, stacks beyond
/// glibc's cache, custom stack sizes) and lets more than this many of them earn the bias of one
/// cache stops getting that cache's bias: slower, never wrong. Cells cannot be recycled: a
/// thread that found its cell owning the bias just before being descheduled would, on waking,
/// mark the cell's next thread as inside and then clear it (the bug the cells exist to avoid).
pub const BIAS_CELLS: usize = 64;

/// The bias, on its own line: which thread has it.
#[repr(align(128))]
struct Bias {
    /// Which [`BiasCell`] the lock is biased to, as its index + 1; [`REVOKING`] while a thread
    /// takes it away; 0 when none. Set only by a thread holding the write lock, to its own cell,
    /// and only from 0.
    owner: AtomicU64,

    /// How many times in a row a bias was revoked before it served [`PROFITABLE_USES`]
    /// operations: the next one takes `2^doublings` times longer to earn. Written by the revoker
    /// (while it holds [`REVOKING`]), read by the granter (under the write lock, after every
    /// revocation ended).
    doublings: AtomicU32,
    /// How many times a bias was revoked (also how the granter notices new revocations).
    revocations: AtomicU32,
}

/// Where one thread says that it is inside through the bias, on its own line: written only by
/// the thread whose token it holds. A shared flag would not do: a thread that read the owner
/// just before losing the bias, then slept through its revocation and a new grant, would set and
/// clear the new owner's flag while the new owner was inside, letting a revoker in beside it.
/// With a cell per thread it sets and clears its own, which nobody is waiting for.
#[repr(align(128))]
struct BiasCell {
    /// The token of the thread that claimed it, 0 while unclaimed. Set once, under the write lock.
    token: AtomicU64,
    /// Set while that thread is inside through the bias.
    inside: AtomicBool,
    /// Operations the thread made through the bias since it was granted (on the line it writes
    /// anyway). Written only by that thread while inside (a plain load and store: no
    /// read-modify-write), read by the revoker after it left, reset by the granter.
    uses: AtomicU64,
}

/// A big-reader lock around a `T`, with per-slot data `R`, biased to a thread that is alone.
///
/// - [`BrLock::read`] gives either shared access to the `T` plus exclusive access to the
///   caller's slot's `R` (where a reader records what it must tell the writers), or, to the
///   thread the lock is biased to, exclusive access to everything;
/// - [`BrLock::write`] gives exclusive access to the `T` and to every slot's `R`.
///
/// Protocol (Dekker's, with sequentially consistent atomics): a reader sets its slot's `busy`
/// flag, then checks the writer's; a writer sets its flag, then waits until no slot is busy. Of
/// two such racing threads at least one sees the other's flag, so a reader and a writer are
/// never inside together; readers in different slots never write the same line. Writers are
/// preferred: a reader that sees the writer's flag set steps back out of its slot and waits.
///
/// The bias is the same handshake with asymmetric barriers: the owner sets its [`BiasCell`]'s
/// `inside`, then (after a compiler fence only) checks that it still owns the bias; a revoker
/// replaces `bias.owner`, runs `membarrier`, waits for the owner's cell to clear, then clears
/// `bias.owner`.
/// Every thread that gets in without the bias (reader or writer) first revokes it, or waits for
/// the revocation under way to end, so the owner's exclusive access excludes everyone.
pub struct BrLock<T, R> {
    /// [`BIAS_AFTER`] and [`MAX_BIAS_DOUBLINGS`] (smaller in tests, to exercise many grants
    /// and revocations).
    bias_after: u32,
    max_doublings: u32,
    /// [`BIAS_DECAY`] (shorter in tests).
    decay: Duration,
    writer: WriterSide,
    bias: Bias,
    value: UnsafeCell<T>,
    slots: [ReaderSlot<R>; READER_SLOTS],
    cells: [BiasCell; BIAS_CELLS],
}

// SAFETY: readers on different slots share `&T` concurrently (hence `T: Sync`); a writer, the
// bias owner, and the one reader holding a slot, get `&mut` access to `T` or to that slot's `R`
// from whichever thread holds the lock (hence `Send`). `BrLock::read`/`BrLock::write` make the
// accesses exclusive as documented on the type.
unsafe impl<T: Send + Sync, R: Send> Sync for BrLock<T, R> {}
// SAFETY: moving the lock moves the `T` and the `R`s.
unsafe impl<T: Send, R: Send> Send for BrLock<T, R> {}

/// What [`BrLock::read`] gave.
pub enum Access<'a, T, R> {
    /// Exclusive access to everything: the lock is biased to the caller, or this read is one of
    /// the write probes that let a thread that only reads earn the bias.
    Exclusive(WriteGuard<'a, T, R>),
    /// Shared access through the caller's reader slot.
    Shared(ReadGuard<'a, T, R>),
}

impl<T, R> BrLock<T, R> {
    /// An unlocked, unbiased lock around `value`, with `slot()` making each slot's data.
    pub fn new(value: T, slot: impl FnMut() -> R) -> Self {
        Self::with_bias_after(BIAS_AFTER, MAX_BIAS_DOUBLINGS, value, slot)
    }

    /// [`BrLock::new`] that biases after `bias_after` write locks in a row (0: never), doubled by
    /// each revocation at most `max_doublings` times.
    pub fn with_bias_after(
        bias_after: u32,
        max_doublings: u32,
        value: T,
        mut slot: impl FnMut() -> R,
    ) -> Self {
        if bias_after > 0 {
            // The first call registers for `membarrier` and reads `/proc/cpuinfo` (barrier.rs):
            // made here, it is not made later under the write lock.
            barrier::available();
        }
        BrLock {
            bias_after,
            max_doublings,
            decay: BIAS_DECAY,
            writer: WriterSide {
                busy: AtomicBool::new(false),
                holder: AtomicU64::new(0),
                streak: UnsafeCell::new(Streak::default()),
                quiet: UnsafeCell::new(Quiet::default()),
                crowded: AtomicBool::new(false),
            },
            bias: Bias {
                owner: AtomicU64::new(0),
                doublings: AtomicU32::new(0),
                revocations: AtomicU32::new(0),
            },
            value: UnsafeCell::new(value),
            slots: std::array::from_fn(|_| ReaderSlot {
                busy: AtomicBool::new(false),
                last_reader: UnsafeCell::new(0),
                reads: UnsafeCell::new(0),
                holder: AtomicU64::new(0),
                data: UnsafeCell::new(slot()),
            }),
            cells: std::array::from_fn(|_| BiasCell {
                token: AtomicU64::new(0),
                inside: AtomicBool::new(false),
                uses: AtomicU64::new(0),
            }),
        }
    }

    /// The same lock with doublings forgotten after `decay` instead of [`BIAS_DECAY`] (tests).
    #[cfg(test)]
    fn with_decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// True while the lock is biased to the calling thread `me` (for tests and statistics).
    pub fn is_biased_to(&self, me: Me) -> bool {
        self.owned_cell(self.bias.owner.load(Ordering::Relaxed), me)
            .is_some()
    }

    /// The cell `owner` (a value of `bias.owner`) names, if it is `me`'s.
    #[inline(always)]
    fn owned_cell(&self, owner: u64, me: Me) -> Option<&BiasCell> {
        let cell = self.cells.get((owner as usize).wrapping_sub(1))?;
        (cell.token.load(Ordering::Relaxed) == me.token).then_some(cell)
    }

    /// How many times a bias was revoked.
    pub fn revocations(&self) -> u32 {
        self.bias.revocations.load(Ordering::Relaxed)
    }

    /// Enters through the bias if the lock is biased to `me` (the first thing [`BrLock::read`]
    /// and [`BrLock::write`] try; a caller may try it alone to keep its fast path small). Never
    /// call it while holding a guard of the same lock.
    #[inline]
    pub fn enter_biased(&self, me: Me) -> Option<WriteGuard<'_, T, R>> {
        let owner = self.bias.owner.load(Ordering::Relaxed);
        let cell = self.owned_cell(owner, me)?;
        // Only this thread sets its cell: finding it set, this thread is inside already, and
        // this call comes from code running under its own guard.
        if cell.inside.load(Ordering::Relaxed) {
            reentered();
        }
        #[cfg(test)]
        tests::before_entering_through_the_bias();
        cell.inside.store(true, Ordering::Relaxed);
        // Pairs with the revoker's `barrier::heavy` (see `barrier.rs`): either the revoker sees
        // `inside` set and waits, or this load sees the owner changed.
        barrier::light();
        if self.bias.owner.load(Ordering::Relaxed) == owner {
            let uses = &cell.uses;
            uses.store(uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return Some(WriteGuard {
                lock: self,
                biased: Some(cell),
                grant: None,
            });
        }
        cell.inside.store(false, Ordering::Release);
        None
    }

    /// If the lock is biased (or being revoked), takes the bias away and waits until its owner
    /// has left. Called only by a thread that holds a reader slot or the write lock, so no bias
    /// is granted meanwhile.
    ///
    /// Several threads may come here at once (readers in different slots): one of them moves
    /// the owner to [`REVOKING`], runs the heavy barrier, waits for the owner to leave, then
    /// clears it; the others wait for it to be cleared. So `owner == 0` always means that no
    /// bias owner is inside or can enter (a reader that merely saw the owner's cell number replaced
    /// could otherwise go in while the owner was still inside).
    #[inline]
    fn revoke(&self, me: Me) {
        if self.bias.owner.load(Ordering::SeqCst) != 0 {
            self.revoke_slow(me);
        }
    }

    #[cold]
    fn revoke_slow(&self, me: Me) {
        let mut spins = 0;
        // A thread holding a guard already (the owner itself, inside, come by a path that
        // skipped `enter_biased`'s check: `read_unbiased` called directly) would wait for itself.
        if self.held_by(me) {
            reentered();
        }
        loop {
            let owner = self.bias.owner.load(Ordering::SeqCst);
            if owner == 0 {
                return;
            }
            if owner == REVOKING
                || self
                    .bias
                    .owner
                    .compare_exchange(owner, REVOKING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                // Another thread is revoking, and may be waiting for this one to leave.
                self.wait(me, &mut spins);
                continue;
            }
            if !barrier::heavy() {
                // `membarrier` refused (a seccomp filter installed after the bias was granted)
                // and no fallback works here (x86 Linux falls back to a TLB shootdown, unless
                // the CPU can flush remote TLBs without interrupts: barrier.rs, tested by
                // c-tests/test_sandbox.c). Without a barrier the owner may be inside unseen, and
                // nothing can be promised; stop rather than race. No new bias is granted once
                // `membarrier` has failed.
                std::process::abort();
            }
            // The owner inside is never this thread (stopped above, or in `enter_biased`).
            // `owner` names a cell: it is neither 0 nor `REVOKING`, and only cell numbers are
            // granted.
            let cell = &self.cells[owner as usize - 1];
            while cell.inside.load(Ordering::Acquire) {
                backoff(&mut spins);
            }
            self.bias.revocations.fetch_add(1, Ordering::Relaxed);
            let doublings = if cell.uses.load(Ordering::Relaxed) >= PROFITABLE_USES {
                0
            } else {
                self.bias
                    .doublings
                    .load(Ordering::Relaxed)
                    .saturating_add(1)
            };
            self.bias.doublings.store(doublings, Ordering::Relaxed);
            // Release: the owner's last section (acquired above) happens-before whoever sees 0.
            self.bias.owner.store(0, Ordering::Release);
            return;
        }
    }

    /// Locks `me`'s reader slot, or, if the lock is biased to `me`, the whole lock (through the
    /// bias), waiting while a writer is in or another thread holds the slot. Never call it while
    /// holding a guard of the same lock.
    #[inline]
    pub fn read(&self, me: Me) -> Access<'_, T, R> {
        match self.enter_biased(me) {
            Some(guard) => Access::Exclusive(guard),
            None => self.read_unbiased(me),
        }
    }

    /// [`BrLock::read`] for a caller that has just tried [`BrLock::enter_biased`] and was
    /// refused (the bias is only ever granted by its owner to itself, under the write lock, so
    /// it cannot have become `me`'s since). Never call it while holding a guard of the same lock.
    pub fn read_unbiased(&self, me: Me) -> Access<'_, T, R> {
        let index = me.slot() % READER_SLOTS;
        let s = &self.slots[index];
        let mut spins = 0;
        loop {
            if s.busy
                .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                if !self.writer.busy.load(Ordering::SeqCst) {
                    break;
                }
                s.busy.store(false, Ordering::Release);
            }
            while s.busy.load(Ordering::Relaxed) || self.writer.busy.load(Ordering::Relaxed) {
                self.wait(me, &mut spins);
            }
        }
        // The guard first: it leaves the slot if anything below unwinds.
        let guard = ReadGuard {
            slot: s,
            lock: self,
            index,
        };
        // Not biased to `me`: the bias is only ever granted by its owner to itself, and
        // `enter_biased` found it was not `me` (or saw it revoked).
        self.revoke(me);
        // SAFETY: this thread holds the slot (see `ReadGuard::parts`), and unbiased writers, the
        // only other users of `last_reader`, are excluded; `reads` is only the holder's.
        let probe = unsafe {
            *s.last_reader.get() = me.token;
            let reads = &mut *s.reads.get();
            *reads += 1;
            *reads >= READS_PER_WRITE_PROBE
                && (*reads >= READS_PER_CROWDED_PROBE
                    || !self.writer.crowded.load(Ordering::Relaxed))
                && {
                    *reads = 0;
                    true
                }
        };
        if probe && self.bias_after > 0 {
            drop(guard);
            return Access::Exclusive(self.write(me));
        }
        s.holder.store(me.token, Ordering::Relaxed);
        Access::Shared(guard)
    }

    /// One step of waiting for another thread to leave the lock, by a thread that holds nothing
    /// of this call yet. If it holds a guard of this lock from an outer call (code running under
    /// a guard, such as a visit callback, called the lock again), it would wait for itself,
    /// directly or through a thread that waits for it: it gives up instead ([`reentered`]).
    /// Checked only after the spins, so an uncontended wait pays nothing for it.
    fn wait(&self, me: Me, spins: &mut u32) {
        if *spins >= SPINS_BEFORE_YIELD && self.held_by(me) {
            reentered();
        }
        backoff(spins);
    }

    /// True when `me` holds a guard of this lock from an outer call: the writer's flag, its
    /// reader slot, or the bias (its cell marked inside). Only `me` sets these to its own token
    /// and clears them before leaving, so this is never true of a call that holds nothing. Read
    /// only on slow paths (it touches every cell); a call's own flag or slot is marked only
    /// after its last wait.
    fn held_by(&self, me: Me) -> bool {
        self.writer.holder.load(Ordering::Relaxed) == me.token
            || self.cells.iter().any(|c| {
                c.token.load(Ordering::Relaxed) == me.token && c.inside.load(Ordering::Relaxed)
            })
            || self.slots[me.slot() % READER_SLOTS]
                .holder
                .load(Ordering::Relaxed)
                == me.token
    }

    /// Locks the whole lock (through the bias if it is biased to `me`), waiting for the other
    /// writer and for every reader to leave. Never call it while holding a guard of the same
    /// lock.
    pub fn write(&self, me: Me) -> WriteGuard<'_, T, R> {
        if let Some(guard) = self.enter_biased(me) {
            return guard;
        }
        let mut spins = 0;
        while self
            .writer
            .busy
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            while self.writer.busy.load(Ordering::Relaxed) {
                self.wait(me, &mut spins);
            }
        }
        // The guard first: it releases the lock if anything below unwinds (`consider_bias` reads
        // the clock; a thread that would wait for itself gives up).
        let mut guard = WriteGuard {
            lock: self,
            biased: None,
            grant: None,
        };
        self.revoke(me);
        for s in &self.slots {
            while s.busy.load(Ordering::SeqCst) {
                self.wait(me, &mut spins);
            }
        }
        // Only now: `wait` above must not take this call's own flag for an outer call's.
        self.writer.holder.store(me.token, Ordering::Relaxed);
        guard.grant = self.consider_bias(me);
        guard
    }

    /// Under the write lock (not biased): counts how long `me` has been the only thread using the
    /// lock, and when that is long enough returns the cell to bias the lock to (`me`'s, claimed
    /// now if need be). The guard grants the bias as it leaves (see [`WriteGuard::grant`]).
    fn consider_bias(&self, me: Me) -> Option<usize> {
        // SAFETY: the caller holds the write lock and every reader slot is free, so nothing
        // else touches the streak, the quiet spell or any slot's `last_reader`.
        let (streak, quiet, alone) = unsafe {
            let mut alone = true;
            for s in &self.slots {
                let last = &mut *s.last_reader.get();
                if *last != 0 && *last != me.token {
                    alone = false;
                    *last = 0;
                }
            }
            (
                &mut *self.writer.streak.get(),
                &mut *self.writer.quiet.get(),
                alone,
            )
        };
        // A new revocation starts a new quiet spell (the first write section after it notices:
        // one clock read per revocation).
        let revocations = self.bias.revocations.load(Ordering::Relaxed);
        if quiet.since.is_none() || quiet.revocations != revocations {
            *quiet = Quiet {
                revocations,
                since: Some(Instant::now()),
            };
        }
        self.writer.crowded.store(!alone, Ordering::Relaxed);
        if streak.token != me.token || !alone {
            *streak = Streak {
                token: me.token,
                run: 0,
            };
            return None;
        }
        // Saturating: without `membarrier` no bias is ever granted and the run never resets.
        streak.run = streak.run.saturating_add(1);
        let mut doublings = self
            .bias
            .doublings
            .load(Ordering::Relaxed)
            .min(self.max_doublings);
        // A doubled streak at a multiple of the base one: forget the doublings once the quiet
        // spell is long enough (one clock read per base streak, only while doubled).
        if doublings > 0
            && self.bias_after > 0
            && streak.run % self.bias_after == 0
            && quiet
                .since
                .is_some_and(|since| since.elapsed() >= self.decay)
        {
            doublings = 0;
            self.bias.doublings.store(0, Ordering::Relaxed);
        }
        // A token that lasts one call (`token::EPHEMERAL`) would waste a cell for good.
        if self.bias_after > 0
            && streak.run >= self.bias_after << doublings
            && me.token & token::EPHEMERAL == 0
            && barrier::available()
        {
            streak.run = 0;
            // `me`'s cell, or a free one (claimed under the write lock, which this thread holds);
            // none left: no bias (and the streak starts again, so this scan stays rare).
            let cell = self
                .cells
                .iter()
                .position(|c| c.token.load(Ordering::Relaxed) == me.token)
                .or_else(|| {
                    let free = self
                        .cells
                        .iter()
                        .position(|c| c.token.load(Ordering::Relaxed) == 0)?;
                    self.cells[free].token.store(me.token, Ordering::Relaxed);
                    Some(free)
                })?;
            self.cells[cell].uses.store(0, Ordering::Relaxed);
            return Some(cell);
        }
        None
    }
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
        // SAFETY: this guard holds `slot.busy` and saw the writer's flag clear after setting it
        // (see `read`; or it was a write guard, downgraded while holding the flag), and revoked
        // any bias, and no writer gets in while `busy` is set, so no `&mut` to `value` exists
        // while the guard lives: readers only read it, or change what `T` keeps behind a lock
        // of its own (the cache's replay beside lookups, through a `Mutex`). The slot's
        // data is touched only by the holder of `busy` (this guard) or by a writer or bias owner
        // (excluded), and `&mut self` makes this the only borrow through the guard.
        unsafe { (&*self.lock.value.get(), &mut *self.slot.data.get()) }
    }
}

impl<T, R> Drop for ReadGuard<'_, T, R> {
    fn drop(&mut self) {
        self.slot.holder.store(0, Ordering::Relaxed);
        self.slot.busy.store(false, Ordering::Release);
    }
}

/// Exclusive access to a [`BrLock`]'s value and to every slot's data; unlocks when dropped.
pub struct WriteGuard<'a, T, R> {
    lock: &'a BrLock<T, R>,
    /// The cell it entered through, if it came in through the bias (then the cell's `inside`
    /// is what it holds, not the writer's flag).
    biased: Option<&'a BiasCell>,
    /// The cell to bias the lock to when this guard leaves. Granted on the way out, not when
    /// decided, so that while a write guard is held the lock is never biased, not even to its
    /// holder: code running under the guard that calls the lock again finds the writer's flag
    /// held by itself (and gives up) instead of entering through a fresh bias.
    grant: Option<usize>,
}

impl<'a, T, R> WriteGuard<'a, T, R> {
    /// True when this guard came in through the bias. No reader slot has been used since the
    /// bias was granted (every other thread revokes it first, and its owner reads through
    /// write guards), so the slots' data is as the last unbiased write guard left it.
    pub fn is_biased(&self) -> bool {
        self.biased.is_some()
    }

    /// True when the lock will be biased to this guard's thread as the guard leaves.
    pub fn grants_bias(&self) -> bool {
        self.grant.is_some()
    }

    /// True when [`WriteGuard::downgrade`] would take this guard: it came in neither through the
    /// bias nor grants it as it leaves (the bias excludes readers, and it is granted only by a
    /// write guard leaving).
    pub fn can_downgrade(&self) -> bool {
        self.biased.is_none() && self.grant.is_none()
    }

    /// Turns this write guard into `me`'s reader slot without letting any writer in between: what
    /// was written under it stays as it is until the read guard leaves, while other readers come
    /// in. Refused (the guard is handed back) unless [`WriteGuard::can_downgrade`].
    pub fn downgrade(self, me: Me) -> Result<ReadGuard<'a, T, R>, Self> {
        if !self.can_downgrade() {
            return Err(self);
        }
        let lock = self.lock;
        let index = me.slot() % READER_SLOTS;
        let s = &lock.slots[index];
        // Every slot was free when this guard came in, and a reader that sets `busy` since sees
        // the writer's flag and clears it again at once, so this takes a few tries at most. Not
        // `BrLock::wait`: this thread holds the writer's flag, which that would take for a call
        // from under its own guard.
        let mut spins = 0;
        while s
            .busy
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            backoff(&mut spins);
        }
        // The read guard first: it leaves the slot if anything below unwinds. The write guard is
        // not dropped (it would clear the writer's flag before the slot is recorded as this
        // thread's); the flag is cleared by hand below.
        let guard = ReadGuard {
            slot: s,
            lock,
            index,
        };
        std::mem::forget(self);
        // SAFETY: this thread holds the writer's flag (every other user of `last_reader` is
        // excluded) and the slot.
        unsafe { *s.last_reader.get() = me.token };
        s.holder.store(me.token, Ordering::Relaxed);
        lock.writer.holder.store(0, Ordering::Relaxed);
        // Release: every write made under the write guard happens-before the next holder's
        // acquire, as in `WriteGuard::drop`. Writers that come now wait for this slot.
        lock.writer.busy.store(false, Ordering::Release);
        Ok(guard)
    }

    /// The value, and every slot's data (in slot order).
    pub fn parts(&mut self) -> (&mut T, [&mut R; READER_SLOTS]) {
        // SAFETY: either this guard holds the writer's flag and saw every slot's `busy` clear
        // after setting it, with any bias revoked (see `write`): readers that come later see the
        // flag and step back without touching anything, other writers wait for the flag, and the
        // bias cannot be granted again while the flag is held; or it entered through the bias
        // (see `enter_biased`): every other thread revokes the bias and waits for this guard to
        // leave before touching anything. Either way this guard is the only one with any access
        // to `value` and to the slots' data; the slots' data are distinct cells, and `&mut self`
        // makes this the only borrow through the guard.
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
        if let Some(cell) = self.biased {
            cell.inside.store(false, Ordering::Release);
        } else {
            if let Some(cell) = self.grant {
                // Published by the release below: every thread that gets in later sees it.
                self.lock
                    .bias
                    .owner
                    .store(cell as u64 + 1, Ordering::Relaxed);
            }
            self.lock.writer.holder.store(0, Ordering::Relaxed);
            self.lock.writer.busy.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    thread_local! {
        /// Run by `enter_biased` on this thread between finding the bias its own and saying it
        /// is inside: where a thread can be descheduled for as long as the scheduler likes.
        static BEFORE_ENTERING: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
            const { std::cell::RefCell::new(None) };
    }

    pub(super) fn before_entering_through_the_bias() {
        BEFORE_ENTERING.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook();
            }
        });
    }

    /// Every live thread that earns the bias claims a cell for good; once all are claimed, later
    /// threads simply never get the bias (and everything still works), while the threads that
    /// hold cells still do.
    #[test]
    fn threads_beyond_the_cells_work_without_the_bias() {
        use std::sync::mpsc::channel;
        if !barrier::available() {
            eprintln!("membarrier(2) is not available here: the lock never biases");
            return;
        }
        let lock = Arc::new(BrLock::with_bias_after(2, 0, 0u64, || 0u64));
        let n = BIAS_CELLS + 3;
        // All alive at once (so no two share a token), each earning the bias in turn.
        let mut turns = Vec::new();
        let mut threads = Vec::new();
        let (done, results) = channel::<(usize, bool, bool)>();
        for t in 0..n {
            let (go, turn) = channel::<()>();
            turns.push(go);
            let (lock, done) = (Arc::clone(&lock), done.clone());
            threads.push(std::thread::spawn(move || {
                let me = super::me();
                for round in 0..2 {
                    turn.recv().unwrap();
                    for _ in 0..3 {
                        *lock.write(me).parts().0 += 1;
                    }
                    let biased = lock.is_biased_to(me);
                    let through_bias = lock.write(me).is_biased();
                    done.send((t + round * n, biased, through_bias)).unwrap();
                }
            }));
        }
        for round in 0..2 {
            for (t, go) in turns.iter().enumerate() {
                go.send(()).unwrap();
                let (who, biased, through_bias) = results.recv().unwrap();
                assert_eq!(who, t + round * n);
                assert_eq!(biased, t < BIAS_CELLS, "thread {t}, round {round}");
                assert_eq!(through_bias, biased);
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.write(me()).parts().0, 2 * 3 * n as u64);
    }

    /// A thread that found the bias its own, then slept while the bias was revoked and granted
    /// to another thread that went in, must not break that thread's exclusion when it wakes up:
    /// a third thread must still wait for the new owner to leave. With one `busy` flag for every
    /// owner (before this test), the sleeper set and cleared the new owner's flag, and the third
    /// thread got in beside it.
    #[test]
    fn an_owner_that_slept_through_losing_the_bias_excludes_nobody() {
        use std::sync::mpsc::channel;
        if !barrier::available() {
            eprintln!("membarrier(2) is not available here: the lock never biases");
            return;
        }
        let lock = Arc::new(BrLock::with_bias_after(4, 0, 0u64, || 0u64));
        let earn = |lock: &BrLock<u64, u64>, me: Me| {
            for _ in 0..5 {
                *lock.write(me).parts().0 += 1;
            }
            assert!(lock.is_biased_to(me));
        };
        let (in_window, window) = channel::<()>();
        let (wake, woken) = channel::<()>();
        let sleeper = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let me = super::me();
                earn(&lock, me);
                let mut once = Some((in_window, woken));
                BEFORE_ENTERING.with(|hook| {
                    *hook.borrow_mut() = Some(Box::new(move || {
                        if let Some((in_window, woken)) = once.take() {
                            in_window.send(()).unwrap();
                            woken.recv().unwrap();
                        }
                    }));
                });
                // Finds the bias its own, then sleeps in the window; when it wakes, the bias is
                // another thread's: it must back out and wait like anyone else.
                *lock.write(me).parts().0 += 100;
            })
        };
        window.recv().unwrap();
        // The new owner: takes the bias away from the sleeper, earns it, and goes in.
        let (owner_in, owner_is_in) = channel::<()>();
        let (leave, told_to_leave) = channel::<()>();
        let owner = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let me = super::me();
                earn(&lock, me);
                let mut guard = lock.write(me);
                assert!(guard.is_biased());
                owner_in.send(()).unwrap();
                told_to_leave.recv().unwrap();
                *guard.parts().0 += 1000;
            })
        };
        owner_is_in.recv().unwrap();
        wake.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // A third thread must wait for the owner inside.
        let got_in = Arc::new(AtomicBool::new(false));
        let third = {
            let (lock, got_in) = (Arc::clone(&lock), Arc::clone(&got_in));
            std::thread::spawn(move || {
                let value = *lock.write(super::me()).parts().0;
                got_in.store(true, Ordering::SeqCst);
                value
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !got_in.load(Ordering::SeqCst),
            "a third thread got in while the bias owner was inside"
        );
        leave.send(()).unwrap();
        owner.join().unwrap();
        sleeper.join().unwrap();
        third.join().unwrap();
        assert_eq!(*lock.write(me()).parts().0, 5 + 5 + 100 + 1000);
    }

    /// The calling thread as if its reader slot were `slot`.
    fn on_slot(slot: usize) -> Me {
        Me { slot, ..me() }
    }

    /// Reads through `me`'s access: the pair must be whole (both halves of a write or neither),
    /// and the slot's count goes up by a non-atomic read-modify-write (two holders of a slot at
    /// once would lose counts).
    fn check_and_count(lock: &BrLock<(u64, u64), u64>, me: Me) {
        let mut g = lock.read(me);
        let (value, count) = shared(&mut g, me);
        let (a, b) = std::hint::black_box(*value);
        assert_eq!(a, b, "a reader saw a write half done");
        let c = *count;
        std::hint::black_box(&c);
        *count = c + 1;
    }

    /// The shared value and `me`'s slot data, whichever access `read` gave.
    fn shared<'g, T, R>(access: &'g mut Access<'_, T, R>, me: Me) -> (&'g T, &'g mut R) {
        match access {
            Access::Shared(g) => g.parts(),
            Access::Exclusive(g) => {
                let (value, slots) = g.parts();
                (
                    &*value,
                    slots.into_iter().nth(me.slot % READER_SLOTS).unwrap(),
                )
            }
        }
    }

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
                        let (_, count) = shared(&mut g, me);
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
        let lock = Arc::new(BrLock::with_bias_after(0, 0, (0u64, 0u64), || 0u64));
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
                        let Ok(mut g) = g.downgrade(me) else {
                            panic!("an unbiased write guard was refused its downgrade");
                        };
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
        let held = lock.write(me).downgrade(me).ok().expect("downgraded");
        let reader = {
            let lock = Arc::clone(&lock);
            let slot = me.slot() + 1;
            std::thread::spawn(move || match lock.read(on_slot(slot)) {
                Access::Shared(mut g) => *g.parts().0,
                Access::Exclusive(_) => panic!("read through a write guard"),
            })
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

    /// While another thread reads too, write probes are spaced out (they cannot earn the bias,
    /// and each stops every reader); once it is gone, the next write section notices and they
    /// come at the usual rate again.
    #[test]
    fn probes_are_spaced_out_while_another_thread_reads() {
        let lock = BrLock::new(0u64, || 0u64);
        // Two callers as two threads would be (tokens are all the lock tells threads apart by).
        let caller = |token, slot| Me {
            token,
            slot,
            ..me()
        };
        let (a, b) = (caller(0x1000, 0), caller(0x2000, 1));
        let probe = |who| matches!(lock.read(who), Access::Exclusive(_));
        let turns = 4 * READS_PER_CROWDED_PROBE;
        let mut probes = 0;
        for _ in 0..turns {
            probes += usize::from(probe(a)) + usize::from(probe(b));
        }
        let most = 2 * (turns / READS_PER_CROWDED_PROBE + 1) as usize;
        assert!(
            (2..=most).contains(&probes),
            "{probes} probes in {turns} turns of two threads"
        );
        // `a` alone: its next probe (at the crowded rate at worst) finds nobody else, and from
        // then on they come every `READS_PER_WRITE_PROBE` reads.
        let alone = 2 * READS_PER_CROWDED_PROBE;
        let probes = (0..alone).filter(|_| probe(a)).count();
        let least = ((alone - READS_PER_CROWDED_PROBE) / READS_PER_WRITE_PROBE) as usize;
        assert!(probes >= least, "{probes} probes in {alone} reads alone");
    }

    /// The bias excludes readers, and is granted by a write guard leaving: a guard that came in
    /// through it, or that grants it, is not downgraded.
    #[test]
    fn a_write_guard_under_or_granting_the_bias_is_not_downgraded() {
        if !barrier::available() {
            eprintln!("membarrier(2) is not available here: the lock never biases");
            return;
        }
        let lock = BrLock::with_bias_after(2, MAX_BIAS_DOUBLINGS, 0u64, || 0u64);
        let me = me();
        drop(lock.write(me)); // starts the streak
        let first = lock.write(me);
        assert!(!first.grants_bias());
        let first = first
            .downgrade(me)
            .ok()
            .expect("an ordinary guard downgrades");
        drop(first);
        let granting = lock.write(me);
        assert!(granting.grants_bias());
        let granting = granting
            .downgrade(me)
            .err()
            .expect("a granting guard stays");
        drop(granting);
        assert!(lock.is_biased_to(me));
        let biased = lock.write(me);
        assert!(biased.is_biased());
        assert!(biased.downgrade(me).is_err());
    }

    #[test]
    fn a_thread_alone_gets_the_bias_and_another_takes_it_away() {
        if !barrier::available() {
            eprintln!("membarrier(2) is not available here: the lock never biases");
            return;
        }
        let lock = Arc::new(BrLock::with_bias_after(4, MAX_BIAS_DOUBLINGS, 0u64, || {
            0u64
        }));
        let me = me();
        let write = |n: u32| {
            for _ in 0..n {
                *lock.write(me).parts().0 += 1;
            }
        };
        // The first write starts the streak; four more in a row earn the bias.
        write(4);
        assert!(!lock.is_biased_to(me));
        write(1);
        assert!(lock.is_biased_to(me));
        assert!(matches!(lock.read(me), Access::Exclusive(_)));

        // Another thread comes: it revokes the bias and reads through its slot.
        let other = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let them = super::me();
                match lock.read(them) {
                    Access::Shared(mut g) => *g.parts().0,
                    Access::Exclusive(_) => panic!("got in through somebody else's bias"),
                }
            })
        };
        assert_eq!(other.join().unwrap(), 5);
        assert_eq!(lock.revocations(), 1);
        assert!(!lock.is_biased_to(me));
        assert!(matches!(lock.read(me), Access::Shared(_)));

        // The other thread's read ends the streak; after a revocation it takes twice as long.
        write(8);
        assert!(!lock.is_biased_to(me));
        write(1);
        assert!(lock.is_biased_to(me));
        assert_eq!(*lock.write(me).parts().0, 14);

        // A bias that served enough operations before its revocation was worth it: the next one
        // takes the base streak again (not four times it).
        write(PROFITABLE_USES as u32);
        std::thread::scope(|s| {
            s.spawn(|| drop(lock.read(super::me())));
        });
        assert_eq!(lock.revocations(), 2);
        write(4);
        assert!(!lock.is_biased_to(me));
        write(1);
        assert!(lock.is_biased_to(me));
    }

    /// Quick revocations make the next bias take longer and longer to earn; once none has come
    /// for the decay period, a thread alone earns it in the base streak again.
    #[test]
    fn doublings_are_forgotten_after_a_quiet_spell() {
        if !barrier::available() {
            eprintln!("membarrier(2) is not available here: the lock never biases");
            return;
        }
        let decay = Duration::from_millis(200);
        let lock = BrLock::with_bias_after(4, MAX_BIAS_DOUBLINGS, 0u64, || 0u64).with_decay(decay);
        let me = me();
        let write = |n: u32| {
            for _ in 0..n {
                *lock.write(me).parts().0 += 1;
            }
        };
        let revoke = || {
            std::thread::scope(|s| {
                s.spawn(|| drop(lock.read(super::me())));
            })
        };
        // Earn the bias and lose it at once, four times: 4, 8, 16 and 32 writes after the first.
        let start = Instant::now();
        for doublings in 0..4 {
            write(1 + (4 << doublings));
            assert!(
                lock.is_biased_to(me),
                "earned after {} writes",
                4 << doublings
            );
            revoke();
        }
        assert!(
            start.elapsed() < decay,
            "the machine is too slow for this test's timing"
        );
        // Now it takes 64 writes: 8 are not enough...
        write(1 + 8);
        assert!(!lock.is_biased_to(me));
        // ...until a quiet spell: then the next base streak earns it.
        std::thread::sleep(decay + Duration::from_millis(50));
        write(4);
        assert!(
            lock.is_biased_to(me),
            "doublings forgotten after the quiet spell"
        );
        assert_eq!(lock.revocations(), 4);
    }

    /// The owner writes through the bias (two numbers with a gap between them) while other
    /// threads keep coming in to read and write, revoking it; nobody may ever see a write half
    /// done, and non-atomic counts in the slots must add up.
    #[test]
    fn the_bias_excludes_everyone_else() {
        const WRITES: u64 = 20_000;
        const REVOCATIONS: u32 = 20_000;
        let lock = Arc::new(BrLock::with_bias_after(1, 0, (0u64, 0u64), || 0u64));
        let owner_done = Arc::new(AtomicBool::new(false));
        let owner = {
            let (lock, owner_done) = (lock.clone(), owner_done.clone());
            std::thread::spawn(move || {
                let me = me();
                let (mut biased, mut i, mut reads) = (0, 0, 0);
                let start = std::time::Instant::now();
                // At least WRITES writes, and (time allowing) until the others took the bias
                // away often enough: a busy test machine may not schedule them for a while.
                while i < WRITES
                    || (lock.revocations() < REVOCATIONS
                        && start.elapsed() < std::time::Duration::from_secs(10))
                {
                    i += 1;
                    if i % 16 == 0 {
                        check_and_count(&lock, me);
                        reads += 1;
                    }
                    let mut g = lock.write(me);
                    biased += u64::from(g.is_biased());
                    let (value, _) = g.parts();
                    value.0 += 1;
                    // Some sections outlast a revoker's membarrier (microseconds), so revokers
                    // do arrive while the owner is half way.
                    for _ in 0..if i % 8 == 0 { 20_000 } else { 50 } {
                        std::hint::black_box(&*value);
                    }
                    value.1 += 1;
                }
                owner_done.store(true, Ordering::Relaxed);
                (biased, i, reads)
            })
        };
        let others: Vec<_> = (0..2)
            .map(|n| {
                let (lock, owner_done) = (lock.clone(), owner_done.clone());
                std::thread::spawn(move || {
                    let me = me();
                    let (mut reads, mut writes) = (0u64, 0u64);
                    while !owner_done.load(Ordering::Relaxed) {
                        if n == 1 && reads % 8 == 0 {
                            let mut g = lock.write(me);
                            let (value, _) = g.parts();
                            value.0 += 1;
                            std::hint::black_box(&*value);
                            value.1 += 1;
                            writes += 1;
                        }
                        check_and_count(&lock, me);
                        reads += 1;
                        // Leave the owner alone for a while, so it earns the bias again.
                        for _ in 0..(reads % 8) * 100 {
                            std::hint::spin_loop();
                        }
                    }
                    (reads, writes)
                })
            })
            .collect();
        let (biased, mut writes, mut reads) = owner.join().unwrap();
        for t in others {
            let (r, w) = t.join().unwrap();
            reads += r;
            writes += w;
        }
        let mut g = lock.write(me());
        let (value, counts) = g.parts();
        assert_eq!(*value, (writes, writes));
        assert_eq!(counts.iter().map(|c| **c).sum::<u64>(), reads);
        if barrier::available() {
            // REVOCATIONS in about a second natively (which is what catches a reader
            // slipping past a revocation under way); a loaded or instrumented run may stop at the
            // time limit first, and must still have handed the bias over many times.
            let revocations = lock.revocations();
            eprintln!("{revocations} revocations");
            assert!(revocations >= 100, "only {revocations} revocations");
            assert!(biased > 0);
        }
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
    /// with a `Reentrant` error, whatever the guard: never a second guard, never a wait for itself.
    /// Afterwards the outer guard still works and the lock is free again once it leaves. A lock
    /// without these checks fails this test by hanging (the waits) or by handing out a second
    /// biased guard (the `Exclusive` arm).
    #[test]
    fn a_call_from_under_its_own_guard_gives_up() {
        let lock = BrLock::with_bias_after(4, 0, 7u64, || 0u64);
        let me = on_slot(3);
        let inner_calls = |lock: &BrLock<u64, u64>| {
            assert_eq!(reentry(|| drop(lock.read(me))), Some(ErrorKind::Reentrant));
            assert_eq!(reentry(|| drop(lock.write(me))), Some(ErrorKind::Reentrant));
            assert_eq!(
                reentry(|| drop(lock.enter_biased(me))),
                None,
                "not biased to me: nothing to enter, nothing to wait for"
            );
        };

        // Under a shared read guard.
        let mut access = lock.read(me);
        assert!(matches!(access, Access::Shared(_)));
        inner_calls(&lock);
        assert_eq!(*shared(&mut access, me).0, 7);
        drop(access);

        // Under an unbiased write guard, including the one that decides to grant the bias: the
        // grant waits until the guard leaves, so code under it cannot enter through the bias.
        for n in 0..5 {
            let mut guard = lock.write(me);
            assert!(!guard.is_biased());
            assert!(
                !lock.is_biased_to(me),
                "biased while a write guard is held ({n})"
            );
            inner_calls(&lock);
            *guard.parts().0 += 1;
        }
        if barrier::available() {
            assert!(
                lock.is_biased_to(me),
                "granted when the fifth write guard left"
            );
            // Under the biased guard: entering through the bias again is refused too.
            let mut guard = lock.write(me);
            assert!(guard.is_biased());
            assert_eq!(
                reentry(|| drop(lock.enter_biased(me))),
                Some(ErrorKind::Reentrant)
            );
            assert_eq!(reentry(|| drop(lock.read(me))), Some(ErrorKind::Reentrant));
            assert_eq!(reentry(|| drop(lock.write(me))), Some(ErrorKind::Reentrant));
            // Even past `enter_biased` (its precondition broken): revoking its own bias would
            // wait for itself.
            assert_eq!(
                reentry(|| drop(lock.read_unbiased(me))),
                Some(ErrorKind::Reentrant)
            );
            *guard.parts().0 += 1;
        }
        // Everything was released: another thread gets in (revoking any bias) and sees every write.
        let seen = std::thread::scope(|s| {
            s.spawn(|| *lock.write(super::me()).parts().0)
                .join()
                .unwrap()
        });
        assert_eq!(seen, if barrier::available() { 13 } else { 12 });
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
        assert_eq!(*shared(&mut lock.read(on_slot(0)), on_slot(0)).0, 1);
    }

    #[test]
    fn each_thread_keeps_its_slot_and_token() {
        let mine = me();
        assert!(mine.slot() < READER_SLOTS);
        assert!(mine.token != 0 && mine.token != REVOKING);
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
