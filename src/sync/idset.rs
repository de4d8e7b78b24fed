//! A set of 64-bit ids that one thread changes and any thread may read, with no lock: how the
//! thread-affine cache (`local.rs`) answers "is this generated key valid?" on every thread, as
//! Qt's `QPixmapCache::Key::isValid()` does, while its table belongs to one thread.
//!
//! Shape: an open-addressing table of `AtomicU64` (linear probing, the id's own bits as its
//! hash: ids are scrambled serials), at most half full counting tombstones. Only the
//! [`IdWriter`] (one per set, reached by `&mut`) stores into it; readers load. When the table
//! must grow or shed tombstones, the writer builds a new one, publishes it, and keeps the old
//! one until no reader can still be in it.
//!
//! Why it is sound:
//! - every slot is an atomic, so a reader racing the writer sees each slot either before or
//!   after a store: a racing `contains` answers as of some moment during the call (Qt's own
//!   answer from another thread is a plain racy read);
//! - a table is freed only when `readers` is 0 *after* it was unpublished: a reader increments
//!   `readers` before loading the table pointer, both sequentially consistent, so a reader that
//!   could have loaded the old pointer is counted in that check (it either loaded it after the
//!   increment, which precedes the unpublishing in the single total order, or it loaded the new
//!   one). A reader's decrement (release) happens before the writer's check that reads it, so
//!   its loads happen before the free;
//! - the writer reads its own table without counting itself: it is the only thread that frees.
//!
//! Cost: to the writer, a probe and a store per id added or removed; to a reader on another
//! thread, two atomic increments around a probe. Retired tables pile up only while readers keep
//! overlapping every rebuild; they are freed at the next rebuild that finds no reader, or with
//! the set.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// An empty slot (ids are never 0).
const EMPTY: u64 = 0;
/// A removed id's slot: probes go past it.
const TOMB: u64 = u64::MAX;
/// The smallest table.
const MIN_CAPACITY: usize = 16;

struct Table {
    slots: Box<[AtomicU64]>,
}

impl Table {
    fn new(capacity: usize) -> Box<Table> {
        debug_assert!(capacity.is_power_of_two());
        Box::new(Table {
            slots: (0..capacity).map(|_| AtomicU64::new(EMPTY)).collect(),
        })
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `id`, probing from its home; `None` at an empty slot or after a whole
    /// lap.
    #[inline]
    fn find(&self, id: u64, order: Ordering) -> Option<usize> {
        let mask = self.mask();
        let mut i = id as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots[i].load(order) {
                v if v == id => return Some(i),
                EMPTY => return None,
                _ => i = (i + 1) & mask,
            }
        }
        None
    }
}

/// The shared side: what any thread reads.
pub struct IdSet {
    table: AtomicPtr<Table>,
    readers: AtomicUsize,
}

/// The writing side; one per set.
pub struct IdWriter {
    set: Arc<IdSet>,
    /// Ids in the table, and tombstones.
    live: usize,
    tombs: usize,
    /// Unpublished tables some reader may still be in.
    retired: Vec<Table>,
}

impl IdSet {
    /// An empty set, its reading side and its one writer.
    pub fn new() -> (Arc<IdSet>, IdWriter) {
        let set = Arc::new(IdSet {
            table: AtomicPtr::new(Box::into_raw(Table::new(MIN_CAPACITY))),
            readers: AtomicUsize::new(0),
        });
        let writer = IdWriter {
            set: Arc::clone(&set),
            live: 0,
            tombs: 0,
            retired: Vec::new(),
        };
        (set, writer)
    }

    /// True when `id` is in the set, from any thread.
    pub fn contains(&self, id: u64) -> bool {
        if id == EMPTY || id == TOMB {
            return false;
        }
        self.readers.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the published table is freed only after it is unpublished and `readers` is
        // then seen at 0 (module documentation); this reader is counted from before its load
        // until after its last access.
        let found = unsafe { &*self.table.load(Ordering::SeqCst) }
            .find(id, Ordering::Acquire)
            .is_some();
        self.readers.fetch_sub(1, Ordering::Release);
        found
    }
}

impl Drop for IdSet {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` and, the set being dropped, no reader
        // or writer is left (the writer holds an `Arc` of the set).
        drop(unsafe { Box::from_raw(*self.table.get_mut()) });
    }
}

impl IdWriter {
    /// The table, as the writer sees it (it never frees a table it is reading). Borrows only
    /// the `set` field, so the counts can change while the table is in hand.
    #[inline]
    fn table(&self) -> &Table {
        Self::table_of(&self.set)
    }

    #[inline]
    fn table_of(set: &IdSet) -> &Table {
        // SAFETY: only the writer unpublishes and frees tables, and not while it reads one.
        unsafe { &*set.table.load(Ordering::Relaxed) }
    }

    /// True when `id` is in the set (the writer's own question: no reader count).
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        id != EMPTY && id != TOMB && self.table().find(id, Ordering::Relaxed).is_some()
    }

    /// Adds `id` (not 0, not `u64::MAX`, not present).
    pub fn insert(&mut self, id: u64) {
        debug_assert!(id != EMPTY && id != TOMB && !self.contains(id));
        if (self.live + self.tombs + 1) * 2 > self.table().slots.len() {
            self.rebuild(self.live + 1);
        }
        let table = Self::table_of(&self.set);
        let mask = table.mask();
        let mut i = id as usize & mask;
        loop {
            match table.slots[i].load(Ordering::Relaxed) {
                EMPTY => break,
                TOMB => {
                    self.tombs -= 1;
                    break;
                }
                _ => i = (i + 1) & mask,
            }
        }
        table.slots[i].store(id, Ordering::Release);
        self.live += 1;
    }

    /// Removes `id`; false when it was not there.
    pub fn remove(&mut self, id: u64) -> bool {
        if id == EMPTY || id == TOMB {
            return false;
        }
        let table = Self::table_of(&self.set);
        match table.find(id, Ordering::Relaxed) {
            Some(i) => {
                table.slots[i].store(TOMB, Ordering::Release);
                self.live -= 1;
                self.tombs += 1;
                true
            }
            None => false,
        }
    }

    /// Removes every id.
    pub fn clear(&mut self) {
        if self.live + self.tombs == 0 {
            return;
        }
        self.rebuild(0);
    }

    /// How many ids the set holds.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when the set holds no id.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Publishes a new table sized for `want` ids holding the current ids (none when `want` is
    /// 0), and retires the old one.
    #[cold]
    fn rebuild(&mut self, want: usize) {
        let capacity = (want * 4).next_power_of_two().max(MIN_CAPACITY);
        let new = Table::new(capacity);
        let mask = new.mask();
        if want > 0 {
            for slot in self.table().slots.iter() {
                let id = slot.load(Ordering::Relaxed);
                if id != EMPTY && id != TOMB {
                    let mut i = id as usize & mask;
                    while new.slots[i].load(Ordering::Relaxed) != EMPTY {
                        i = (i + 1) & mask;
                    }
                    new.slots[i].store(id, Ordering::Relaxed);
                }
            }
        } else {
            self.live = 0;
        }
        self.tombs = 0;
        let old = self.set.table.swap(Box::into_raw(new), Ordering::SeqCst);
        // SAFETY: `old` came from `Box::into_raw` and is no longer published; it is freed only
        // below, once no reader can be in it.
        // (Moving a `Table` out of its box leaves its slots where readers see them.)
        self.retired.push(*unsafe { Box::from_raw(old) });
        if self.set.readers.load(Ordering::SeqCst) == 0 {
            self.retired.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_removes_and_grows() {
        let (set, mut w) = IdSet::new();
        let ids: Vec<u64> = (1..=1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for &id in &ids {
            w.insert(id);
        }
        assert_eq!(w.len(), 1000);
        assert!(ids.iter().all(|&id| set.contains(id) && w.contains(id)));
        for &id in ids.iter().step_by(2) {
            assert!(w.remove(id));
        }
        assert!(!w.remove(ids[0]));
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(set.contains(id), n % 2 == 1, "id {n}");
        }
        assert!(!set.contains(0) && !set.contains(u64::MAX) && !set.contains(12345));
        w.clear();
        assert!(w.is_empty() && ids.iter().all(|&id| !set.contains(id)));
    }

    #[test]
    fn churn_does_not_fill_the_table_with_tombstones() {
        let (set, mut w) = IdSet::new();
        for i in 1..100_000u64 {
            w.insert(i);
            if i > 8 {
                assert!(w.remove(i - 8));
            }
        }
        assert_eq!(w.len(), 8);
        // SAFETY: this thread is the writer: nothing frees the table while it looks.
        let capacity = unsafe { &*set.table.load(Ordering::Relaxed) }.slots.len();
        assert!(capacity <= 64, "capacity {capacity} for 8 ids");
        assert!(w.retired.is_empty(), "no reader: retired tables are freed");
    }

    #[test]
    fn readers_on_other_threads_see_every_id_that_stays() {
        use std::sync::atomic::AtomicBool;
        let (set, mut w) = IdSet::new();
        for id in 1..=64 {
            w.insert(id);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (set, stop, passes) =
                    (Arc::clone(&set), Arc::clone(&stop), Arc::clone(&passes));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Ids 1..=64 are always present; ids from 1000 up come and go, growing
                        // and rebuilding the table under the readers.
                        for id in 1..=64 {
                            assert!(set.contains(id), "a permanent id went missing");
                        }
                        passes.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut round = 0u64;
        // Churn until the readers have made many passes over it (and at least 2000 rounds).
        while round < 2000 || (passes.load(Ordering::Relaxed) < 10_000 && round < 10_000_000) {
            let base = 1000 + round * 100;
            for id in base..base + 50 {
                w.insert(id);
            }
            for id in base..base + 50 {
                assert!(w.remove(id));
            }
            round += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(
            passes.load(Ordering::Relaxed) >= 10_000,
            "the readers hardly ran"
        );
        assert!(
            w.retired.len() <= 64,
            "{} retired tables kept",
            w.retired.len()
        );
    }
}
