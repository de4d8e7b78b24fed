//! Spare shares: how a lookup from one of several threads hands out a share of a cached pixmap
//! without writing its reference count.
//!
//! `find` makes the caller's handle share the cached pixels, and lets go of what the handle held
//! before: one reference count up, another down. Alone, a thread pays two uncontended atomics for
//! that. With two threads finding the same hot pixmaps, each of those atomics writes a line the
//! other core wrote last, and the hot pixmaps' counts took a quarter of the time of a 2-thread
//! read-mostly run (docs/PERFORMANCE.md §6).
//!
//! So each reader slot of the lock (`lock.rs`) keeps [`Spares`]: for each LRU slot, at most one
//! share of the pixmap cached there, which only threads holding that reader slot touch. A lookup
//! through the reader slot:
//! - hands out the spare share of the entry it found if it has one (a move: no count changes),
//!   else a new one (a clone, as before);
//! - takes back the share the caller's handle held, when that is a share of the entry the reader
//!   slot last handed one out from (the usual case: a thread finds into the same handle again and
//!   again), and keeps it as that entry's spare.
//!
//! In steady state a hit then writes nothing another core uses. The count of a pixmap stays
//! exact: a spare is a share like any other, it just sits in the reader slot instead of in a
//! handle.
//!
//! The invariant: a spare in LRU slot `s` is a share of the pixmap the entry in slot `s` holds.
//! Taking one back checks that with a pointer comparison; a writer that frees an LRU slot takes
//! its spares out of every reader slot (`Cache::with_guard`, with the slots `Lru` reports freed),
//! and they are dropped after the lock is released with the entry's own share. So a spare never
//! keeps an evicted pixmap alive, and a release callback never runs under the lock.

use crate::garbage::Garbage;
use crate::pixmap::Pixmap;

/// LRU slots at or above this are handed out by cloning, as without spares: keeps a reader slot's
/// spares to at most 512 KiB however large the cache grows.
const MAX_SLOTS: usize = 1 << 16;

/// A reader slot's spare shares, indexed by LRU slot. See the module documentation.
#[derive(Default)]
pub struct Spares {
    /// Indexed by LRU slot; a cell without pixel data (`Pixmap::null()`) holds no spare. (An
    /// `Option<Pixmap>` would take 16 bytes a cell, not 8: the cells are read on every hit.)
    cells: Vec<Pixmap>,
    /// The LRU slot the last share handed out came from.
    last: Option<u32>,
    /// How many cells hold a share.
    held: usize,
    /// No cell past this one holds a share (so that letting go of them all scans no further).
    highest: usize,
    /// Spares found not to be shares of their slot's pixmap (see [`Spares::share`]): always 0
    /// unless a write path broke the invariant.
    mismatches: u64,
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares")
            .field("cells", &self.cells.len())
            .field("held", &self.held)
            .finish()
    }
}

impl Spares {
    /// A share of `cached`, the pixmap in LRU slot `slot`: the spare if there is one, else a new
    /// share.
    #[inline]
    pub fn share(&mut self, slot: u32, cached: &Pixmap) -> Pixmap {
        self.last = Some(slot);
        match self.cells.get(slot as usize) {
            // The invariant checked in every build, with one pointer comparison: were a write
            // path ever to free an LRU slot without reporting it, its spare would be a share of
            // the pixmap that was there before, and handing it out would give the caller another
            // key's pixels. Such a spare stays in its cell (dropping it here could run a release
            // callback under the lock) until a writer lets go of the slot's spares, and the
            // caller gets a new share of the right pixmap.
            Some(cell) if cell.has_pixel_data() => {
                if cell.shares_pixels_with(cached) {
                    self.held -= 1;
                    return std::mem::replace(&mut self.cells[slot as usize], Pixmap::null());
                }
                self.mismatches += 1;
                cached.clone()
            }
            _ => cached.clone(),
        }
    }

    /// Keeps `old` (what a caller's handle held before a lookup) as a spare if it is a share of
    /// the pixmap `cached_at` finds in the LRU slot the last share went out from; otherwise
    /// hands it back, for the caller to drop after unlocking.
    #[inline]
    pub fn take_back<'a>(
        &mut self,
        old: Pixmap,
        cached_at: impl FnOnce(u32) -> Option<&'a Pixmap>,
    ) -> Option<Pixmap> {
        let Some(slot) = self.last else {
            return Some(old);
        };
        if !old.has_pixel_data() || !cached_at(slot).is_some_and(|c| old.shares_pixels_with(c)) {
            return Some(old);
        }
        if slot as usize >= self.cells.len() && !self.grow(slot) {
            return Some(old);
        }
        let cell = &mut self.cells[slot as usize];
        if cell.has_pixel_data() {
            return Some(old);
        }
        *cell = old;
        self.held += 1;
        self.highest = self.highest.max(slot as usize);
        None
    }

    /// The spare in `slot`, if any, leaving the cell empty.
    #[inline]
    fn take(&mut self, slot: u32) -> Option<Pixmap> {
        let cell = self.cells.get_mut(slot as usize)?;
        if !cell.has_pixel_data() {
            return None;
        }
        self.held -= 1;
        Some(std::mem::replace(cell, Pixmap::null()))
    }

    /// Gives `slot` a cell, growing the cells fallibly; false if it cannot.
    #[cold]
    fn grow(&mut self, slot: u32) -> bool {
        let slot = slot as usize;
        if slot >= MAX_SLOTS {
            return false;
        }
        let len = (slot + 1).next_power_of_two().clamp(1024, MAX_SLOTS);
        if self
            .cells
            .try_reserve_exact(len - self.cells.len())
            .is_err()
        {
            return false;
        }
        self.cells.resize_with(len, Pixmap::null);
        true
    }

    /// Moves the spare of LRU slot `slot` (being freed) into `garbage`.
    #[inline]
    pub fn release(&mut self, slot: u32, garbage: &mut Garbage<Pixmap>) {
        if let Some(spare) = self.take(slot) {
            garbage.push(spare);
        }
    }

    /// Moves every spare into `garbage` (the LRU was cleared, or lost track of what it freed).
    pub fn release_all(&mut self, garbage: &mut Garbage<Pixmap>) {
        if self.held == 0 {
            return;
        }
        garbage.reserve(self.held);
        for cell in self.cells[..=self.highest]
            .iter_mut()
            .filter(|c| c.has_pixel_data())
        {
            garbage.push(std::mem::replace(cell, Pixmap::null()));
        }
        self.held = 0;
        self.highest = 0;
    }

    /// True when no cell holds a share.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// How many spares were found not to be shares of their slot's pixmap (0 unless a write path
    /// broke the invariant; see [`Spares::share`]).
    pub fn mismatches(&self) -> u64 {
        self.mismatches
    }

    /// How many cells hold a share.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::format::Format;

    fn pm() -> Pixmap {
        Pixmap::new(2, 2, Format::Rgba8888).unwrap()
    }

    #[test]
    fn a_share_taken_back_is_handed_out_again_without_a_new_count() {
        let cached = [pm(), pm()];
        let at = |slot: u32| cached.get(slot as usize);
        let mut spares = Spares::default();
        let first = spares.share(0, &cached[0]);
        assert!(first.shares_pixels_with(&cached[0]) && !cached[0].is_detached());
        // Back from the handle it went to: kept as slot 0's spare (the count stays at 2).
        assert!(spares.take_back(first, at).is_none());
        assert!(!spares.is_empty() && !cached[0].is_detached());
        let again = spares.share(0, &cached[0]);
        assert!(again.shares_pixels_with(&cached[0]) && spares.is_empty());
        drop(again);
        assert!(
            cached[0].is_detached(),
            "the spare was the only other share"
        );
    }

    #[test]
    fn only_a_share_of_the_entry_last_handed_out_is_kept() {
        let cached = [pm(), pm()];
        let at = |slot: u32| cached.get(slot as usize);
        let mut spares = Spares::default();
        // Nothing handed out yet: nothing to match.
        assert!(spares.take_back(cached[0].clone(), at).is_some());
        let from_one = spares.share(1, &cached[1]);
        // A share of slot 0's pixmap does not match slot 1's entry.
        assert!(spares.take_back(cached[0].clone(), at).is_some());
        // The entry in the last slot is gone (or holds another pixmap): not kept.
        assert!(spares.take_back(from_one.clone(), |_| None).is_some());
        assert!(spares
            .take_back(from_one.clone(), |_| Some(&cached[0]))
            .is_some());
        assert!(spares.take_back(from_one.clone(), at).is_none());
        // One spare per slot: a second is handed back.
        assert!(spares.take_back(from_one, at).is_some());
        assert_eq!(spares.held, 1);
    }

    /// A spare that is not a share of its slot's pixmap (a write path that freed the slot without
    /// reporting it) is never handed out: the caller gets a new share of the right pixmap, the
    /// mismatch is counted, and the stale spare waits in its cell for a writer to let it go.
    #[test]
    fn a_spare_of_another_pixmap_is_never_handed_out() {
        let (old, new) = (pm(), pm());
        let mut spares = Spares::default();
        let share = spares.share(0, &old);
        assert!(spares.take_back(share, |_| Some(&old)).is_none());
        // Slot 0 now holds `new`, and nobody told the spares.
        let got = spares.share(0, &new);
        assert!(
            got.shares_pixels_with(&new),
            "another entry's pixels handed out"
        );
        assert_eq!(spares.mismatches(), 1);
        assert!(
            !old.is_detached(),
            "the stale spare is kept, not dropped under the lock"
        );
        let mut garbage = Garbage::new();
        spares.release(0, &mut garbage);
        drop(garbage);
        assert!(old.is_detached());
    }

    #[test]
    fn released_spares_go_to_the_garbage() {
        let cached: Vec<Pixmap> = (0..3).map(|_| pm()).collect();
        let at = |slot: u32| cached.get(slot as usize);
        let mut spares = Spares::default();
        for slot in 0..3 {
            let share = spares.share(slot, &cached[slot as usize]);
            assert!(spares.take_back(share, at).is_none());
        }
        let mut garbage = Garbage::new();
        spares.release(1, &mut garbage);
        spares.release(1, &mut garbage); // nothing left there
        spares.release(7, &mut garbage); // never had a cell
        assert_eq!(garbage.len(), 1);
        assert!(!cached[1].is_detached(), "still in the garbage");
        drop(garbage);
        assert!(cached[1].is_detached() && !cached[0].is_detached());
        let mut garbage = Garbage::new();
        spares.release_all(&mut garbage);
        assert_eq!(garbage.len(), 2);
        assert!(spares.is_empty());
        drop(garbage);
        assert!(cached.iter().all(Pixmap::is_detached));
        // Letting go of them all again finds the one kept since, in a higher cell.
        let far = 5000;
        let share = spares.share(far, &cached[0]);
        assert!(spares.take_back(share, |_| Some(&cached[0])).is_none());
        let mut garbage = Garbage::new();
        spares.release_all(&mut garbage);
        assert_eq!(garbage.len(), 1);
        assert!(spares.is_empty());
    }

    #[test]
    fn slots_past_the_maximum_are_not_kept() {
        let cached = pm();
        let far = MAX_SLOTS as u32;
        let mut spares = Spares::default();
        let share = spares.share(far, &cached);
        assert!(spares.take_back(share, |_| Some(&cached)).is_some());
        let share = spares.share(far - 1, &cached);
        assert!(spares.take_back(share, |_| Some(&cached)).is_none());
        assert_eq!(spares.cells.len(), MAX_SLOTS);
    }
}
