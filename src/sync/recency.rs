//! Recency without a shared write per lookup.
//!
//! Exact LRU makes every hit a write to one global order. If lookups made that write themselves
//! they would all write the same cache lines (the list's head, the lock), and two threads would
//! spend their time moving those lines between cores. Instead a lookup runs under its thread's
//! reader slot (`lock.rs`) and *records* the slot number of the entry it hit in that reader
//! slot's [`ReaderLog`]; whoever next holds the write lock [`replay`]s every log, in the order
//! the hits happened, before doing anything that depends on the order. Replaying the same
//! sequence of "move to front" steps gives exactly the list that doing them at once would have.
//!
//! Ordering the logs: hits recorded in one log are in order (its slot's lock orders them). Hits
//! in different logs need a global order, so while more than one thread looks things up, each
//! hit takes a stamp from the [`Clock`] (clock.rs), and [`replay`] merges the logs by stamp. While one thread is alone (the usual GUI case) its hits
//! are not stamped at all: the [`Order`] names the one slot allowed to record without a stamp,
//! and any other slot's first hit first switches the cache to stamping (under the write lock,
//! after replaying, so stamped and unstamped records never meet). After
//! [`Order::QUIET_REPLAYS`] replays in a row that found only one slot's records, the cache
//! switches back.
//!
//! Why records stay valid: a record names a slot number of the LRU. Slots are freed (and reused)
//! only by writers, and every writer replays the logs before anything else, so a slot named in a
//! log is still the entry that was hit.
//!
//! A thread whose log is full need not hold the other threads up for the whole replay: under the
//! write lock it takes every log's hits as a [`Batch`] (swapping buffers), and replays that after
//! turning the write lock into its reader slot, beside the lookups (which never read the recency
//! list). No writer gets in before the batch is replayed, and its hits are older than any
//! recorded since, so the order is the same as replaying it under the write lock.

use crate::sync::clock::Clock;
use crate::sync::prefetch;

/// How many hits a log holds before its thread replays all logs itself. Every replay is a
/// write-lock section (the other threads' lookups wait, and its lines move between cores), so
/// fewer, longer replays serve threads better: 1024 measured 5–8% more 2-thread read-mostly
/// throughput than 256. The cost is memory: 16 KiB per log, allocated on its slot's first
/// record (so up to 128 KiB for a cache that 8 threads use, 16 KiB for one that a single thread
/// uses).
pub const LOG_CAPACITY: usize = 1024;

/// How far ahead of its end a log asks for the line it will write ([`prefetch::for_write`]):
/// 16 hits, 4 lines, at least a few hundred nanoseconds of lookups ahead. 32 and 64 measured
/// the same.
const PREFETCH_AHEAD: usize = 16;

/// One recorded hit: when (0 while unstamped) and which LRU slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    stamp: u64,
    slot: u32,
}

/// A reader slot's data: its log of hits not yet replayed, and its lookup counters. The log's
/// buffer is allocated on the slot's first record ([`Order::record`]): a cache that only one
/// thread uses, or one made and dropped quickly, never pays for eight logs.
#[derive(Debug, Default)]
pub struct ReaderLog {
    hits_to_replay: Vec<Hit>,
    /// A full log set aside, older than `hits_to_replay`, while another slot's thread does the
    /// replays ([`Order::must_replay`]); allocated the first time one is set aside.
    set_aside: Vec<Hit>,
    /// The last stamp this log took (stamps in a log always increase).
    last_stamp: u64,
    /// Lookups through this reader slot that found an entry.
    pub hits: u64,
    /// Lookups through this reader slot that found nothing.
    pub misses: u64,
}

impl ReaderLog {
    /// True when the log must be replayed before it can record more.
    pub fn is_full(&self) -> bool {
        self.hits_to_replay.len() >= LOG_CAPACITY
    }

    /// True when there is nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.hits_to_replay.is_empty() && self.set_aside.is_empty()
    }

    /// Forgets everything: the recorded hits (when the slots they name are all gone, with the
    /// state they belonged to) and the counters.
    pub fn reset(&mut self) {
        self.hits_to_replay.clear();
        self.set_aside.clear();
        self.hits = 0;
        self.misses = 0;
    }
}

/// Whether hits are stamped, and which reader slot may record without a stamp. Changed only
/// under the write lock; read by readers.
#[derive(Debug, Default)]
pub struct Order {
    stamped: bool,
    /// The reader slot allowed to record unstamped hits (while `!stamped`).
    owner: Option<usize>,
    /// Replays in a row, while stamped, that found records from only one slot.
    quiet: u32,
    /// The reader slot whose thread replayed the last full log (see [`Order::must_replay`]).
    replayer: Option<usize>,
}

/// What a reader must do instead of recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Recorded (the log may now be full: see [`ReaderLog::is_full`]).
    Done,
    /// This slot may not record yet (or its log could not be allocated): do the lookup under the
    /// write lock, calling [`Order::admit`] first.
    NotAdmitted,
}

impl Order {
    /// After this many replays in a row found one slot's records only, stamping stops.
    pub const QUIET_REPLAYS: u32 = 64;

    /// Records a hit on LRU slot `lru_slot` by reader slot `reader` into its `log` (the caller
    /// holds that reader slot, so `self` cannot change meanwhile).
    pub fn record(
        &self,
        clock: &Clock,
        reader: usize,
        log: &mut ReaderLog,
        lru_slot: u32,
    ) -> Record {
        self.record_at(clock, None, reader, log, lru_slot)
    }

    /// [`Order::record`] with the time already read (`now`, from `clock`) earlier in the same
    /// call, if it was: a lookup reads it before taking its slot, where waiting for everything
    /// before the read (`clock.rs`) costs least (`Cache::lookup_reading` says why that orders
    /// it right). Without it the time is read here.
    pub fn record_at(
        &self,
        clock: &Clock,
        now: Option<u64>,
        reader: usize,
        log: &mut ReaderLog,
        lru_slot: u32,
    ) -> Record {
        let stamp = if self.stamped {
            // Read while holding the reader slot, and after the log's last stamp, so each log
            // is in stamp order.
            let now = now.unwrap_or_else(|| clock.now());
            log.last_stamp = now.max(log.last_stamp.saturating_add(1));
            log.last_stamp
        } else if self.owner == Some(reader) {
            0
        } else {
            return Record::NotAdmitted;
        };
        // The log's buffer is allocated once, fallibly, and a full log is not written (the
        // thread that filled it replays it next, but a thread sharing the slot may come first),
        // so the push below never allocates.
        if log.is_full()
            || (log.hits_to_replay.capacity() == 0
                && log.hits_to_replay.try_reserve_exact(LOG_CAPACITY).is_err())
        {
            return Record::NotAdmitted;
        }
        log.hits_to_replay.push(Hit {
            stamp,
            slot: lru_slot,
        });
        // The log's next lines were last read by the thread that replayed them, likely on
        // another core: ask for them early (prefetch.rs).
        if let Some(ahead) = log.hits_to_replay.spare_capacity_mut().get(PREFETCH_AHEAD) {
            prefetch::for_write(ahead.as_ptr());
        }
        Record::Done
    }

    /// After a record by reader slot `reader`: true when its `log` is full and its thread must
    /// replay every log now (under the write lock, then [`Order::replayed_by`]).
    ///
    /// The thread that did the last such replay does the next one too: any other sets its full
    /// log aside, once, and goes on recording. So while threads keep looking things up, one of
    /// them does all the replays, and the lines of the LRU's links that a replay writes stay in
    /// its core's cache instead of moving to whichever core replays next (in a 2-thread
    /// read-mostly run, most of what those replays cost). A thread whose log is full again
    /// before the replayer came round (it is idle, or slower) replays itself and takes over.
    pub fn must_replay(&self, reader: usize, log: &mut ReaderLog) -> bool {
        if !log.is_full() {
            return false;
        }
        if self.replayer.is_none_or(|r| r == reader)
            || !log.set_aside.is_empty()
            || (log.set_aside.capacity() == 0
                && log.set_aside.try_reserve_exact(LOG_CAPACITY).is_err())
        {
            return true;
        }
        std::mem::swap(&mut log.hits_to_replay, &mut log.set_aside);
        false
    }

    /// Under the write lock: reader slot `reader`'s thread just replayed its full log.
    pub fn replayed_by(&mut self, reader: usize) {
        self.replayer = Some(reader);
    }

    /// Lets reader slot `reader` record from now on (under the write lock, after a [`replay`]
    /// emptied every log): it becomes the owner if there is none, otherwise hits are stamped.
    pub fn admit(&mut self, reader: usize) {
        if self.stamped || self.owner == Some(reader) {
            return;
        }
        if self.owner.is_none() {
            self.owner = Some(reader);
        } else {
            self.stamped = true;
            self.quiet = 0;
        }
    }

    /// True while hits are stamped (more than one thread has been looking things up).
    pub fn is_stamped(&self) -> bool {
        self.stamped
    }
}

/// Replays every log into `touch`, oldest hit first, and empties them (under the write lock).
/// Also decides whether stamping can stop (see the module documentation).
pub fn replay(order: &mut Order, logs: &mut [&mut ReaderLog], touch: impl FnMut(u32)) {
    let Some(several) = settle(order, logs) else {
        return;
    };
    merge(
        logs.iter()
            .map(|l| [&l.set_aside[..], &l.hits_to_replay[..]]),
        several,
        touch,
    );
    for log in logs.iter_mut() {
        log.set_aside.clear();
        log.hits_to_replay.clear();
    }
}

/// Every log's hits, taken out of the reader slots under the write lock ([`Batch::take`]) and
/// replayed after it, while lookups go on ([`Batch::replay`]). A lookup never reads what a
/// replay writes (the LRU's links), so only the taking needs the readers out: the replay itself
/// then no longer makes them wait.
#[derive(Debug, Default)]
pub struct Batch {
    /// Per reader slot: its log's set-aside part and the rest (buffers swapped with the log's).
    parts: [[Vec<Hit>; 2]; crate::sync::lock::READER_SLOTS],
    /// More than one log had hits: they are merged by stamp.
    several: bool,
}

impl Batch {
    /// Under the write lock, with this batch empty: takes every log's hits (handing each log
    /// this batch's empty buffers) and decides whether stamping can stop, as [`replay`] does.
    /// The batch must be replayed before the logs are again: its hits are older.
    pub fn take(&mut self, order: &mut Order, logs: &mut [&mut ReaderLog]) {
        debug_assert!(self.is_empty(), "a batch taken over another");
        let Some(several) = settle(order, logs) else {
            return;
        };
        self.several = several;
        for (log, [set_aside, rest]) in logs.iter_mut().zip(&mut self.parts) {
            if !log.is_empty() {
                std::mem::swap(&mut log.set_aside, set_aside);
                std::mem::swap(&mut log.hits_to_replay, rest);
            }
        }
    }

    /// Replays the hits taken, oldest first, and empties the batch (keeping its buffers).
    pub fn replay(&mut self, touch: impl FnMut(u32)) {
        merge(
            self.parts.iter().map(|[a, b]| [&a[..], &b[..]]),
            self.several,
            touch,
        );
        self.clear();
    }

    /// True when there is nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().flatten().all(Vec::is_empty)
    }

    /// Forgets the hits taken (with the state whose slots they name).
    pub fn clear(&mut self) {
        self.parts.iter_mut().flatten().for_each(Vec::clear);
    }
}

/// Before replaying `logs`: `None` when they are all empty, else whether more than one has hits.
/// Counts the replays that found one log's hits only, and after [`Order::QUIET_REPLAYS`] of them
/// in a row stops stamping (every log is empty after this replay, so no records are mixed).
fn settle(order: &mut Order, logs: &[&mut ReaderLog]) -> Option<bool> {
    let mut busy = logs.iter().enumerate().filter(|(_, l)| !l.is_empty());
    let (first, _) = busy.next()?;
    let several = busy.next().is_some();
    if several {
        debug_assert!(order.stamped, "unstamped records in more than one log");
        order.quiet = 0;
    } else if order.stamped {
        order.quiet += 1;
        if order.quiet >= Order::QUIET_REPLAYS {
            // Only `first` has been recording for a while: it records unstamped from now on.
            order.stamped = false;
            order.owner = Some(first);
            order.quiet = 0;
        }
    }
    Some(several)
}

/// Touches the hits of `logs` (each a set-aside part, then the rest), oldest first: in order
/// when only one log has hits (stamped or not), else merged by stamp.
fn merge<'a>(
    logs: impl Iterator<Item = [&'a [Hit]; 2]>,
    several: bool,
    mut touch: impl FnMut(u32),
) {
    if !several {
        for hit in logs.flatten().flatten() {
            touch(hit.slot);
        }
        return;
    }
    // Merge the logs by stamp: each is sorted (a slot's set-aside part, then the rest: a log's
    // stamps always increase). Only the parts with records take part (usually two or three,
    // however many slots there are), and a part runs on as long as its stamps stay below the
    // next one's head, so a replay costs little more than its touches.
    let mut heads = [&[][..]; 2 * crate::sync::lock::READER_SLOTS];
    let mut n = 0;
    for part in logs.flatten() {
        if !part.is_empty() && n < heads.len() {
            heads[n] = part;
            n += 1;
        }
    }
    let heads = &mut heads[..n];
    loop {
        // Heads ordered by (stamp, part number): equal stamps (two cores may read the same
        // time-stamp counter value) go by slot number, as before runs existed. `best` is the
        // oldest head, `second` the oldest of the others.
        let mut best = (u64::MAX, usize::MAX);
        let mut second = (u64::MAX, usize::MAX);
        for (i, head) in heads.iter().enumerate() {
            if let Some(hit) = head.first() {
                let key = (hit.stamp, i);
                if key < best {
                    second = best;
                    best = key;
                } else if key < second {
                    second = key;
                }
            }
        }
        let (_, i) = best;
        if i == usize::MAX {
            break;
        }
        let head = heads[i];
        // Its head comes before `second`, so the run holds at least that hit.
        let run = head
            .iter()
            .take_while(|hit| (hit.stamp, i) < second)
            .count();
        for hit in &head[..run] {
            touch(hit.slot);
        }
        heads[i] = &head[run..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> Vec<ReaderLog> {
        (0..crate::sync::lock::READER_SLOTS)
            .map(|_| ReaderLog::default())
            .collect()
    }

    /// A counter clock, an order with slots 0 and 1 admitted (so hits are stamped), and empty
    /// logs.
    fn stamped() -> (Clock, Order, Vec<ReaderLog>) {
        let mut order = Order::default();
        order.admit(0);
        order.admit(1);
        (Clock::counter(), order, logs())
    }

    fn replayed(order: &mut Order, logs: &mut [ReaderLog]) -> Vec<u32> {
        let mut refs: Vec<&mut ReaderLog> = logs.iter_mut().collect();
        let mut out = Vec::new();
        replay(order, &mut refs, |s| out.push(s));
        assert!(logs.iter().all(ReaderLog::is_empty), "replay empties logs");
        out
    }

    #[test]
    fn the_first_reader_owns_and_others_must_be_admitted() {
        let clock = Clock::counter();
        let mut order = Order::default();
        let mut logs = logs();
        assert_eq!(
            order.record(&clock, 3, &mut logs[3], 7),
            Record::NotAdmitted
        );
        order.admit(3);
        assert_eq!(order.record(&clock, 3, &mut logs[3], 7), Record::Done);
        assert_eq!(order.record(&clock, 3, &mut logs[3], 8), Record::Done);
        assert_eq!(clock.stamp_after(0), 1, "owner records unstamped");
        assert_eq!(
            order.record(&clock, 5, &mut logs[5], 1),
            Record::NotAdmitted
        );
        assert_eq!(replayed(&mut order, &mut logs), vec![7, 8]);
        order.admit(5);
        assert!(order.is_stamped());
    }

    /// A log takes its buffer on its first record, exactly once, and refuses records when full
    /// (so a thread sharing the slot with the one that must replay never makes it reallocate).
    #[test]
    fn a_log_allocates_once_and_refuses_when_full() {
        let clock = Clock::counter();
        let mut order = Order::default();
        let mut logs = logs();
        assert_eq!(logs[2].hits_to_replay.capacity(), 0);
        order.admit(2);
        for i in 0..LOG_CAPACITY as u32 {
            assert_eq!(order.record(&clock, 2, &mut logs[2], i), Record::Done);
            assert_eq!(logs[2].hits_to_replay.capacity(), LOG_CAPACITY);
        }
        assert!(logs[2].is_full());
        assert_eq!(
            order.record(&clock, 2, &mut logs[2], 9),
            Record::NotAdmitted
        );
        assert_eq!(logs[2].hits_to_replay.len(), LOG_CAPACITY);
        assert_eq!(replayed(&mut order, &mut logs).len(), LOG_CAPACITY);
        assert_eq!(order.record(&clock, 2, &mut logs[2], 9), Record::Done);
        assert_eq!(logs[2].hits_to_replay.capacity(), LOG_CAPACITY);
        assert!(logs
            .iter()
            .enumerate()
            .all(|(i, l)| i == 2 || l.hits_to_replay.capacity() == 0));
    }

    #[test]
    fn stamped_logs_replay_in_stamp_order() {
        let (clock, mut order, mut logs) = stamped();
        for (reader, slot) in [(0, 10), (1, 20), (1, 21), (0, 11), (2, 30), (0, 12)] {
            if order.record(&clock, reader, &mut logs[reader], slot) == Record::NotAdmitted {
                let _ = replayed(&mut order, &mut logs);
                order.admit(reader);
                assert_eq!(
                    order.record(&clock, reader, &mut logs[reader], slot),
                    Record::Done
                );
            }
        }
        assert_eq!(
            replayed(&mut order, &mut logs),
            vec![10, 20, 21, 11, 30, 12]
        );
    }

    #[test]
    fn stamping_stops_after_quiet_replays() {
        let (clock, mut order, mut logs) = stamped();
        for i in 0..Order::QUIET_REPLAYS {
            assert!(order.is_stamped(), "still stamped after {i} quiet replays");
            assert_eq!(order.record(&clock, 1, &mut logs[1], i), Record::Done);
            assert_eq!(replayed(&mut order, &mut logs), vec![i]);
        }
        assert!(!order.is_stamped());
        let before = clock.stamp_after(0);
        assert_eq!(order.record(&clock, 1, &mut logs[1], 99), Record::Done);
        assert_eq!(
            clock.stamp_after(0),
            before + 1,
            "the new owner is unstamped"
        );
        assert_eq!(
            order.record(&clock, 0, &mut logs[0], 1),
            Record::NotAdmitted
        );
    }

    #[test]
    fn a_busy_second_log_resets_the_quiet_count() {
        let (clock, mut order, mut logs) = stamped();
        for i in 0..Order::QUIET_REPLAYS * 2 {
            order.record(&clock, 0, &mut logs[0], i);
            if i % 10 == 0 {
                order.record(&clock, 1, &mut logs[1], i);
            }
            replayed(&mut order, &mut logs);
        }
        assert!(order.is_stamped());
    }

    /// Logs with runs of any length, interleaved, with equal stamps across logs (two cores may
    /// read the same time-stamp counter value), in any subset of slots: replay gives every hit
    /// once, by stamp, ties broken by log (reader slot) number. Compared with a sort, over many
    /// shapes.
    /// One thread does the replays: another sets its full log aside once, and replays itself
    /// (taking over) only when its log is full again first. Set-aside hits replay first.
    #[test]
    fn full_logs_are_set_aside_while_another_thread_replays() {
        for stamped in [false, true] {
            let clock = Clock::counter();
            let mut order = Order {
                stamped,
                owner: (!stamped).then_some(1),
                ..Order::default()
            };
            let mut logs = logs();
            // Records hits on LRU slots numbered in the order of the hits.
            let mut hits = 0;
            let mut fill = |order: &Order, log: &mut ReaderLog, reader: usize| {
                while !log.is_full() {
                    assert_eq!(order.record(&clock, reader, log, hits), Record::Done);
                    hits += 1;
                }
            };
            // Nobody has replayed yet: a full log is replayed by its own thread.
            fill(&order, &mut logs[1], 1);
            assert!(order.must_replay(1, &mut logs[1]));
            order.replayed_by(0);
            // Slot 0's thread does the replays: slot 1 sets its full log aside and goes on...
            assert!(!order.must_replay(1, &mut logs[1]));
            assert!(!logs[1].is_full() && !logs[1].is_empty());
            assert!(!order.must_replay(1, &mut logs[1]), "not full");
            // ...until it is full again before slot 0 replayed: then it replays, alone.
            fill(&order, &mut logs[1], 1);
            assert!(order.must_replay(1, &mut logs[1]));
            let expected: Vec<u32> = (0..2 * LOG_CAPACITY as u32).collect();
            assert_eq!(replayed(&mut order, &mut logs), expected);
            if !stamped {
                continue;
            }
            // The replayer itself never sets aside; with several slots the merge puts slot 1's
            // set-aside hits first too.
            order.replayed_by(0);
            fill(&order, &mut logs[1], 1);
            assert!(!order.must_replay(1, &mut logs[1]));
            fill(&order, &mut logs[0], 0);
            assert!(order.must_replay(0, &mut logs[0]));
            fill(&order, &mut logs[1], 1);
            let expected: Vec<u32> = (2 * LOG_CAPACITY as u32..hits).collect();
            // Slot 0's hits came between slot 1's two logs.
            assert_eq!(replayed(&mut order, &mut logs), expected);
            assert_eq!(expected.len(), 3 * LOG_CAPACITY);
        }
    }

    /// A batch takes every log's hits (their set-aside parts first), counts as a replay for the
    /// quiet count, and hands the logs empty buffers: what they record next is replayed after
    /// the batch, and buffers keep going round without being allocated again.
    #[test]
    fn a_batch_takes_the_logs_and_replays_them_first() {
        let (clock, mut order, mut logs) = stamped();
        let mut batch = Batch::default();
        let hits = std::cell::Cell::new(0);
        let record = |order: &Order, logs: &mut [ReaderLog], reader: usize, n: u32| {
            for _ in 0..n {
                assert_eq!(
                    order.record(&clock, reader, &mut logs[reader], hits.get()),
                    Record::Done
                );
                hits.set(hits.get() + 1);
            }
        };
        record(&order, &mut logs, 0, LOG_CAPACITY as u32);
        order.replayed_by(1);
        assert!(!order.must_replay(0, &mut logs[0]), "set aside");
        record(&order, &mut logs, 1, 10);
        record(&order, &mut logs, 0, 5);
        let mut refs: Vec<&mut ReaderLog> = logs.iter_mut().collect();
        batch.take(&mut order, &mut refs);
        assert!(logs.iter().all(ReaderLog::is_empty));
        assert!(!batch.is_empty());
        // Recorded after the take: replayed after the batch.
        record(&order, &mut logs, 1, 3);
        let mut out = Vec::new();
        batch.replay(|s| out.push(s));
        assert!(batch.is_empty());
        out.extend(replayed(&mut order, &mut logs));
        assert_eq!(out, (0..hits.get()).collect::<Vec<_>>());
        // The buffers went round: no log was left without one, nor the batch.
        let capacities = |logs: &[ReaderLog]| -> usize {
            logs.iter()
                .map(|l| l.hits_to_replay.capacity() + l.set_aside.capacity())
                .sum()
        };
        let all = |logs: &[ReaderLog], batch: &Batch| {
            capacities(logs)
                + batch
                    .parts
                    .iter()
                    .flatten()
                    .map(Vec::capacity)
                    .sum::<usize>()
        };
        // The three buffers taken, and the one log 1 took for what it recorded since.
        assert_eq!(all(&logs, &batch), 4 * LOG_CAPACITY);
        // Taking one log's hits, replay after replay, stops stamping as `replay` does.
        // (The replay of the logs above was the first quiet one.)
        for i in 1..Order::QUIET_REPLAYS {
            assert!(order.is_stamped(), "still stamped after {i} quiet replays");
            record(&order, &mut logs, 1, 1);
            let mut refs: Vec<&mut ReaderLog> = logs.iter_mut().collect();
            batch.take(&mut order, &mut refs);
            batch.replay(|_| ());
        }
        assert!(!order.is_stamped());
        assert_eq!(
            all(&logs, &batch),
            4 * LOG_CAPACITY,
            "a buffer was allocated again"
        );
    }

    #[test]
    fn the_merge_matches_a_sort_by_stamp_then_slot() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..500 {
            let mut order = Order {
                stamped: true,
                ..Order::default()
            };
            let mut logs = logs();
            let mut expected = Vec::new();
            let mut stamp = 0;
            let mut last = [0u64; crate::sync::lock::READER_SLOTS];
            for hit in 0..next(200) as u32 {
                // Mostly long runs in one log; sometimes a stamp shared with the previous hit.
                let reader = if next(4) == 0 {
                    next(crate::sync::lock::READER_SLOTS as u64)
                } else {
                    u64::from(hit) / 37 % 3
                } as usize;
                if next(5) != 0 || stamp == 0 {
                    stamp += 1 + next(3);
                }
                if last[reader] >= stamp {
                    continue; // a log's own stamps strictly increase
                }
                last[reader] = stamp;
                let slot = round * 1000 + hit;
                let log = &mut logs[reader];
                // Sometimes what a log holds so far is set aside (`Order::must_replay`).
                if log.set_aside.is_empty() && next(30) == 0 {
                    std::mem::swap(&mut log.hits_to_replay, &mut log.set_aside);
                }
                log.hits_to_replay.push(Hit { stamp, slot });
                expected.push((stamp, reader, slot));
            }
            expected.sort_unstable();
            let expected: Vec<u32> = expected.into_iter().map(|(_, _, slot)| slot).collect();
            if round % 2 == 0 {
                assert_eq!(replayed(&mut order, &mut logs), expected, "round {round}");
            } else {
                // The same through a batch (taken, then replayed).
                let mut batch = Batch::default();
                batch.take(&mut order, &mut logs.iter_mut().collect::<Vec<_>>());
                assert!(
                    logs.iter().all(ReaderLog::is_empty),
                    "taking empties the logs"
                );
                let mut out = Vec::new();
                batch.replay(|s| out.push(s));
                assert!(batch.is_empty());
                assert_eq!(out, expected, "round {round}, through a batch");
            }
        }
    }
}
