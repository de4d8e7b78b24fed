//! A process-wide count that many threads change often and few read: the live pixel buffers
//! behind `pixcache_live_pixmaps` (`pixmap.rs`).
//!
//! Every pixmap made and freed changes that count. With one shared atomic, each pixmap paid two
//! locked instructions (~7 ns of the Qt adapter's ~90 ns key insert, measured: it made that
//! insert slower than Qt's own), and threads making pixmaps at once moved the counter's line
//! between their cores. A [`Tally`] instead gives each thread a cell of its own, which it
//! changes with a plain load and store; reading the count sums the cells.
//!
//! - A thread finds its cell by hashing its token (`token.rs`) and probing [`PROBES`] cells. An
//!   unclaimed cell is claimed for the token with one compare-and-swap and kept for good. The
//!   tokens are kept apart from the counts, on lines that are only read once claimed, so probing
//!   past other threads' cells does not pull their hot lines.
//! - A thread that finds no cell of its own (more than [`CELLS`] tokens have claimed cells, or
//!   its probes are all taken), or whose token lasts one call only ([`token::EPHEMERAL`]),
//!   counts in a shared atomic instead: correct, just as slow as before.
//! - A pixmap made on one thread and freed on another adds 1 to one cell and takes 1 from
//!   another: cells go negative, only the sum means anything.
//!
//! Why a plain load and store is enough: only the thread whose token a cell holds writes its
//! count, and no two live threads have the same token. A thread given a dead thread's token
//! (glibc reuses thread control blocks) carries on with the dead thread's cell; the dead
//! thread's last store happens-before its exit, which happens-before its control block is
//! handed out again (`pthread_join` or the exiting thread itself returns it to glibc's cache under
//! a lock that `pthread_create` takes too).
//!
//! The count is exact when read after the threads that made and freed pixmaps have stopped
//! doing so and synchronized with the reader (joined, or a lock or message since). A read racing
//! them sums cells read at different moments and can be off in either direction, even below any
//! count there was (a pixmap made on one thread and freed on another between two cell reads);
//! below zero it reads as 0.
//!
//! A signal handler that made or freed a pixmap between a thread's load and store of its cell
//! would lose that change; neither is allowed in a signal handler anyway (both call `malloc` or
//! `free`).

use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

use crate::sync::token;

/// How many threads can count in a cell of their own.
pub const CELLS: usize = 64;

/// How many cells a thread tries, from the one its token hashes to, before it counts in the
/// shared atomic.
pub const PROBES: usize = 4;

/// A count kept per thread; see the module documentation.
pub struct Tally {
    /// The token that claimed each cell, 0 while unclaimed: written once per cell, then only
    /// read (by probing threads).
    tokens: [AtomicU64; CELLS],
    counts: [Count; CELLS],
    shared: AtomicIsize,
}

/// One thread's part of a [`Tally`], alone on its cache lines (128 bytes: adjacent-line
/// prefetching pairs lines). Written only by the thread whose token claimed the cell.
#[repr(align(128))]
struct Count(AtomicIsize);

impl Tally {
    /// A tally of 0.
    #[allow(clippy::new_without_default)] // const: the process-wide tally is a static
    pub const fn new() -> Self {
        Tally {
            tokens: [const { AtomicU64::new(0) }; CELLS],
            counts: [const { Count(AtomicIsize::new(0)) }; CELLS],
            shared: AtomicIsize::new(0),
        }
    }

    /// Adds `delta` (negative to take away) for the calling thread.
    #[inline]
    pub fn add(&self, delta: isize) {
        match self.own_cell(token::current()) {
            Some(cell) => {
                // Only this thread writes this count (see the module documentation): no
                // read-modify-write needed. Release pairs with `sum`'s acquire.
                let count = &self.counts[cell].0;
                count.store(
                    count.load(Ordering::Relaxed).wrapping_add(delta),
                    Ordering::Release,
                );
            }
            None => {
                self.shared.fetch_add(delta, Ordering::AcqRel);
            }
        }
    }

    /// The number of the calling thread's cell (`me` is its token), claimed now if need be;
    /// `None` when every cell it may use belongs to another token, or `me` lasts one call.
    #[inline]
    fn own_cell(&self, me: u64) -> Option<usize> {
        if me & token::EPHEMERAL != 0 {
            return None;
        }
        // Fibonacci hashing: thread pointers differ in their middle bits (stacks are
        // page-aligned mappings); the multiply spreads them into the top bits kept.
        let start =
            (me.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CELLS.trailing_zeros())) as usize;
        (0..PROBES).map(|i| (start + i) % CELLS).find(|&cell| {
            let token = &self.tokens[cell];
            let owner = token.load(Ordering::Relaxed);
            owner == me
                || (owner == 0
                    && token
                        .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok())
        })
    }

    /// The count: the sum of every thread's part (exact once the threads changing it have
    /// stopped and synchronized with the caller; 0 if a racing read sums below 0).
    pub fn sum(&self) -> usize {
        let cells = self.counts.iter().fold(0isize, |sum, c| {
            sum.wrapping_add(c.0.load(Ordering::Acquire))
        });
        cells
            .wrapping_add(self.shared.load(Ordering::Acquire))
            .max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changes per thread (fewer under Miri, which runs the same races far slower).
    const PER_THREAD: usize = if cfg!(miri) { 20 } else { 5_000 };
    use std::sync::mpsc;

    #[test]
    fn counts_across_threads_including_what_one_makes_and_another_frees() {
        let tally = Tally::new();
        tally.add(3);
        assert_eq!(tally.sum(), 3);
        // Four threads each add 2 x PER_THREAD and send PER_THREAD "frees" to the next thread, which takes
        // them off its own cell.
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..4).map(|_| mpsc::channel::<u32>()).unzip();
        std::thread::scope(|s| {
            for (i, rx) in rxs.into_iter().enumerate() {
                let tx = txs[(i + 1) % 4].clone();
                let tally = &tally;
                s.spawn(move || {
                    for n in 0..2 * PER_THREAD {
                        tally.add(1);
                        if n % 2 == 0 {
                            tx.send(1).unwrap();
                        }
                    }
                    drop(tx);
                    for _ in 0..PER_THREAD {
                        tally.add(-(rx.recv().unwrap() as isize));
                    }
                });
            }
            drop(txs);
        });
        assert_eq!(tally.sum(), 3 + 4 * PER_THREAD);
        tally.add(-3);
        assert_eq!(tally.sum(), 4 * PER_THREAD);
    }

    /// More live threads than cells: the ones left over count in the shared atomic, and the
    /// sum stays exact.
    #[test]
    fn threads_beyond_the_cells_count_in_the_shared_atomic() {
        const THREADS: usize = CELLS + 36;
        let tally = Tally::new();
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    // All alive at once, so every thread has a distinct token.
                    barrier.wait();
                    for _ in 0..PER_THREAD {
                        tally.add(2);
                    }
                    tally.add(-(PER_THREAD as isize));
                    barrier.wait();
                });
            }
        });
        // At most `CELLS` threads own a cell: the others' net 1,000 each went to the atomic.
        assert!(tally.shared.load(Ordering::Relaxed) >= (PER_THREAD * (THREADS - CELLS)) as isize);
        assert_eq!(tally.sum(), THREADS * PER_THREAD);
    }

    #[test]
    fn a_token_that_lasts_one_call_claims_no_cell() {
        let tally = Tally::new();
        for n in 1..=(2 * CELLS as u64) {
            assert_eq!(tally.own_cell(token::EPHEMERAL | n), None);
        }
        assert!(tally.tokens.iter().all(|t| t.load(Ordering::Relaxed) == 0));
        assert_eq!(tally.own_cell(12345 << 12), tally.own_cell(12345 << 12));
        assert!(tally.own_cell(12345 << 12).is_some());
    }

    #[test]
    fn a_sum_below_zero_reads_as_zero() {
        let tally = Tally::new();
        tally.add(-5);
        assert_eq!(tally.sum(), 0);
        tally.add(7);
        assert_eq!(tally.sum(), 2);
    }
}
