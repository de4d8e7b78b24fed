//! A growable array of `u64` cells that never move: any thread may read a cell while another
//! writes one, with no lock. The thread-affine cache (`local.rs`) keeps each valid generated key
//! in the cell its key names, so that `Key::isValid()` is answered on every thread, as Qt
//! answers it, with one load.
//!
//! Cells live in chunks that double in size (64, 128, 256, ... cells) and are allocated on first
//! use and freed only with the table, so a reader never meets a freed or moved cell: there is
//! nothing to reclaim. A chunk is published with a compare-and-swap (a loser frees its own
//! allocation), so even two writers could not corrupt the table; the cache has one.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Cells in the first chunk, as a power of two.
const FIRST_SHIFT: u32 = 6;
/// Chunks: enough for [`SlotTable::CAPACITY`] cells, the last one cut short at the capacity
/// (whole, it would be 128 MiB for 64 cells).
const CHUNKS: usize = 19;

/// The table. See the module documentation.
pub struct SlotTable {
    chunks: [AtomicPtr<AtomicU64>; CHUNKS],
}

/// The chunk holding cell `i`, and the cell's place in it.
#[inline]
fn locate(i: usize) -> (usize, usize) {
    let n = (i >> FIRST_SHIFT) + 1;
    let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize;
    let start = ((1usize << chunk) - 1) << FIRST_SHIFT;
    (chunk, i - start)
}

/// Cells in chunk `chunk`: 64 × 2^chunk, but none at or past [`SlotTable::CAPACITY`].
#[inline]
fn chunk_len(chunk: usize) -> usize {
    let start = ((1usize << chunk) - 1) << FIRST_SHIFT;
    (1usize << (FIRST_SHIFT as usize + chunk)).min(SlotTable::CAPACITY - start)
}

impl SlotTable {
    /// Cells a table can hold: 2^24.
    pub const CAPACITY: usize = 1 << 24;

    /// An empty table (allocates nothing).
    pub fn new() -> Self {
        SlotTable {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// The value of cell `i` (0 for a cell never written), from any thread.
    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        if i >= Self::CAPACITY {
            return 0;
        }
        let (chunk, at) = locate(i);
        let base = self.chunks[chunk].load(Ordering::Acquire);
        if base.is_null() {
            return 0;
        }
        // SAFETY: a published chunk holds `chunk_len(chunk)` cells (`at` is below that, by
        // `locate` and `i < CAPACITY`), is never moved, and is freed only when the table is
        // dropped, which cannot happen while `self` is borrowed.
        unsafe { &*base.add(at) }.load(Ordering::Acquire)
    }

    /// Makes sure cells `0..=i` exist; false when `i` is beyond the capacity or the allocator
    /// refuses a chunk. (Chunks are made in order, so the ones that exist are always the first
    /// few: when `i`'s exists, so do all before it.)
    #[inline]
    pub fn reserve(&self, i: usize) -> bool {
        if i >= Self::CAPACITY {
            return false;
        }
        let (last, _) = locate(i);
        if !self.chunks[last].load(Ordering::Acquire).is_null() {
            return true;
        }
        (0..=last).all(|chunk| self.make_chunk(chunk))
    }

    /// Makes chunk `chunk` if it does not exist; false when the allocator refuses.
    #[cold]
    fn make_chunk(&self, chunk: usize) -> bool {
        if !self.chunks[chunk].load(Ordering::Acquire).is_null() {
            return true;
        }
        let len = chunk_len(chunk);
        let mut cells: Vec<AtomicU64> = Vec::new();
        if cells.try_reserve_exact(len).is_err() {
            return false;
        }
        cells.extend((0..len).map(|_| AtomicU64::new(0)));
        let fresh = Box::into_raw(cells.into_boxed_slice()).cast::<AtomicU64>();
        if self.chunks[chunk]
            .compare_exchange(
                std::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `fresh` was never published; it is the boxed slice of `len` cells made
            // above.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, len)) });
        }
        true
    }

    /// Sets cell `i`, which [`SlotTable::reserve`] made; a cell that does not exist is left
    /// alone (returns false).
    #[inline]
    pub fn set(&self, i: usize, value: u64) -> bool {
        if i >= Self::CAPACITY {
            return false;
        }
        let (chunk, at) = locate(i);
        let base = self.chunks[chunk].load(Ordering::Acquire);
        if base.is_null() {
            return false;
        }
        // SAFETY: as in `get`.
        unsafe { &*base.add(at) }.store(value, Ordering::Release);
        true
    }
}

impl Default for SlotTable {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for (chunk, ptr) in self.chunks.iter_mut().enumerate() {
            let base = *ptr.get_mut();
            if !base.is_null() {
                // SAFETY: a published chunk is a boxed slice of `chunk_len(chunk)` cells, and
                // dropping the table means no reader is left.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, chunk_len(chunk)))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn chunks_tile_the_index_space() {
        let mut expected = 0;
        for chunk in 0..CHUNKS {
            assert_eq!(locate(expected), (chunk, 0));
            let last = expected + chunk_len(chunk) - 1;
            assert_eq!(locate(last), (chunk, chunk_len(chunk) - 1));
            expected = last + 1;
        }
        assert_eq!(
            expected,
            SlotTable::CAPACITY,
            "the last chunk ends at the capacity"
        );
        assert_eq!(chunk_len(CHUNKS - 1), 64);
    }

    #[test]
    fn cells_keep_their_values_as_the_table_grows() {
        let t = SlotTable::new();
        assert_eq!(t.get(5), 0);
        assert!(!t.set(5, 1), "no cell before reserve");
        let n = if cfg!(miri) { 300 } else { 5000 };
        for i in 0..n {
            assert!(t.reserve(i));
            assert!(t.set(i, i as u64 + 1));
        }
        assert!((0..n).all(|i| t.get(i) == i as u64 + 1));
        assert_eq!(t.get(n), 0);
        assert!(!t.reserve(SlotTable::CAPACITY) && t.get(SlotTable::CAPACITY) == 0);
        assert!(!t.set(SlotTable::CAPACITY, 1));
    }

    #[test]
    fn reserving_a_cell_makes_every_cell_before_it() {
        let t = SlotTable::new();
        let last = if cfg!(miri) { 700 } else { 70_000 };
        assert!(t.reserve(last));
        assert!((0..=last).step_by(61).all(|i| t.set(i, 1)) && t.set(last, 1));
    }

    #[test]
    fn readers_see_every_cell_while_the_writer_grows_the_table() {
        let t = Arc::new(SlotTable::new());
        assert!(t.reserve(63) && t.set(0, 7) && t.set(63, 9));
        let n = if cfg!(miri) { 500 } else { 200_000 };
        let reader = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for _ in 0..n {
                    assert_eq!((t.get(0), t.get(63)), (7, 9));
                    let _ = t.get(100_000);
                }
            })
        };
        for i in 64..n {
            assert!(t.reserve(i) && t.set(i, 1));
        }
        reader.join().unwrap();
    }
}
