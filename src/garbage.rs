//! Garbage: what a cache operation lets go of (evicted, removed, replaced or refused values),
//! carried out of the lock and dropped after it is released, so that dropping a value (freeing
//! pixels, running a foreign release callback that may call back into the cache) never happens
//! under the lock.
//!
//! Most operations let go of zero to a few values, so the first [`INLINE`] live inline, on the
//! stack: an eviction costs no allocation. More spill into a `Vec`.

/// How many values are kept without allocating.
pub const INLINE: usize = 4;

/// A bag of values to drop later. Dropping the bag drops them, first in, first dropped.
pub struct Garbage<V> {
    inline: [Option<V>; INLINE],
    len: usize,
    spill: Vec<V>,
}

impl<V> Garbage<V> {
    /// An empty bag (does not allocate).
    pub fn new() -> Self {
        Garbage {
            inline: Default::default(),
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Adds a value to drop later.
    pub fn push(&mut self, value: V) {
        if self.len < INLINE {
            self.inline[self.len] = Some(value);
        } else {
            self.spill.push(value);
        }
        self.len += 1;
    }

    /// Makes room for `additional` more values (only the spill allocates).
    pub fn reserve(&mut self, additional: usize) {
        let inline_room = INLINE.saturating_sub(self.len);
        self.spill.reserve(additional.saturating_sub(inline_room));
    }

    /// Drops the values now, first in, first dropped, and leaves the bag empty: the same as
    /// dropping the bag, without moving it (a bag is a few hundred bytes; moving it into a
    /// closure to drop it cost a `memcpy` call on every evicting insert).
    pub fn drop_all(&mut self) {
        // Emptied first: a drop that panics leaves the values not yet dropped in the array,
        // which still drops them when the bag goes.
        self.len = 0;
        for value in &mut self.inline {
            drop(value.take());
        }
        self.spill.clear();
    }

    /// How many values the bag holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values, in the order they were pushed (tests and diagnostics).
    pub fn into_vec(self) -> Vec<V> {
        let mut out: Vec<V> = self.inline.into_iter().flatten().collect();
        out.extend(self.spill);
        out
    }
}

impl<V> Default for Garbage<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_the_spill() {
        let mut g = Garbage::new();
        for i in 0..7 {
            g.push(i);
        }
        assert_eq!(g.len(), 7);
        assert_eq!(g.into_vec(), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn drops_everything() {
        use std::rc::Rc;
        let probe = Rc::new(());
        let mut g = Garbage::new();
        for _ in 0..6 {
            g.push(Rc::clone(&probe));
        }
        assert_eq!(Rc::strong_count(&probe), 7);
        drop(g);
        assert_eq!(Rc::strong_count(&probe), 1);
    }
}
