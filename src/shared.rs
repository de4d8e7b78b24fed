//! [`Shared`]: how pixmaps share their pixels. A thread-safe reference-counted box: `Arc`
//! without weak references, whose allocation can fail without aborting the host.
//!
//! Why not `Arc`, measured on the Qt adapter's key insert (every entry is a new pixmap):
//! - `Arc::new` aborts when the allocator refuses. Pixmaps used to ask the allocator for a block
//!   of the same layout first, fallibly, and give it back: a second `malloc`/`free` per pixmap.
//! - The last `Arc` to go also takes its weak count down, a second locked instruction that
//!   pixmaps, which never use weak references, pay for nothing.
//!
//! Together ~10% of that insert. [`Shared`] has one count: a further share is one `lock xadd` to
//! make and one `lock dec` to drop, and the last drop frees the block.

use std::alloc::{alloc, dealloc, Layout};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A share of a `T` on the heap; the `T` is dropped, and its block freed, with the last share.
pub struct Shared<T> {
    block: NonNull<Block<T>>,
    /// Tells the drop checker that dropping a `Shared<T>` may drop a `T` (as `Arc` does).
    _owns: PhantomData<Block<T>>,
}

struct Block<T> {
    /// How many `Shared`s point here; never 0 while one exists.
    count: AtomicUsize,
    value: T,
}

// SAFETY: as for `Arc`: shares on different threads all reach the same `T` (hence `T: Sync`),
// and whichever thread drops the last share drops the `T` (hence `T: Send`). The count is atomic.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above; `&Shared<T>` only gives `&T` or a new share.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

/// More shares than this is a count about to overflow (as `Arc`, which aborts there too): every
/// share is a live handle or cache entry of its own, so memory runs out long before.
const MAX_SHARES: usize = isize::MAX as usize;

impl<T> Shared<T> {
    /// The first share of `value`, or `value` back if the allocator refuses the block.
    pub fn try_new(value: T) -> Result<Self, T> {
        let layout = Layout::new::<Block<T>>();
        // SAFETY: the layout has a non-zero size (it holds the count).
        let raw = unsafe { alloc(layout) }.cast::<Block<T>>();
        let Some(block) = NonNull::new(raw) else {
            return Err(value);
        };
        // SAFETY: `block` is a fresh allocation of `Block<T>`'s layout, so it is valid for a
        // write of one `Block<T>` and suitably aligned.
        unsafe {
            block.as_ptr().write(Block {
                count: AtomicUsize::new(1),
                value,
            })
        };
        Ok(Shared {
            block,
            _owns: PhantomData,
        })
    }

    fn block(&self) -> &Block<T> {
        // SAFETY: while this share exists the count is at least 1, so the block is allocated and
        // initialized; it is only ever mutated through `get_mut`, which needs `&mut self`.
        unsafe { self.block.as_ref() }
    }

    /// True when this is the only share.
    pub fn is_unique(this: &Self) -> bool {
        this.block().count.load(Ordering::Acquire) == 1
    }

    /// The `T`, mutably, when this is the only share.
    pub fn get_mut(this: &mut Self) -> Option<&mut T> {
        // Acquire pairs with the release decrement of every share dropped before: their uses of
        // the `T` happen-before the mutation. No share can be made meanwhile: making one needs
        // a share, and this is the only one, borrowed mutably.
        if this.block().count.load(Ordering::Acquire) == 1 {
            // SAFETY: the only share, borrowed mutably for the result's lifetime: nothing else
            // can reach the value until the borrow ends. The reference covers the value only,
            // not the count, which a share dropped on another thread may still be inside its
            // `fetch_sub` of (as `Arc::get_mut` takes care to do).
            Some(unsafe { &mut (*this.block.as_ptr()).value })
        } else {
            None
        }
    }

    /// True when both are shares of the same `T`.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.block == b.block
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.block().value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        // Relaxed, as `Arc`: a new share is made from an existing one, which keeps the block
        // alive; nothing is published by counting up.
        let before = self.block().count.fetch_add(1, Ordering::Relaxed);
        if before >= MAX_SHARES {
            // Unreachable: see MAX_SHARES. Going on would let the count wrap to 0 and free the
            // block under live shares.
            std::process::abort();
        }
        Shared {
            block: self.block,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Release: this share's uses of the `T` happen-before the last share's drop of it.
        if self.block().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Pairs with every other share's release decrement: this load reads the value the
        // decrement above wrote, which is in the release sequence of each of them. (`Arc::drop`
        // uses an acquire fence; a load is as cheap on x86, a plain `mov`, and ThreadSanitizer,
        // which ignores fences, understands it: with the fence it reported every last drop as a
        // race with the other shares' decrements.)
        self.block().count.load(Ordering::Acquire);
        // SAFETY: the count went from 1 to 0, so this was the last share and nothing else can
        // reach the block: drop the value in place, then free the block with the layout it was
        // allocated with (`try_new`). If the value's drop unwinds, the block leaks (it is not
        // freed twice).
        unsafe {
            std::ptr::drop_in_place(&mut (*self.block.as_ptr()).value);
            dealloc(self.block.as_ptr().cast(), Layout::new::<Block<T>>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its drops.
    struct Probe<'a>(&'a AtomicUsize, u64);

    impl Drop for Probe<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_value_is_dropped_once_with_the_last_share() {
        let drops = AtomicUsize::new(0);
        let a = Shared::try_new(Probe(&drops, 7)).ok().unwrap();
        let b = a.clone();
        let c = b.clone();
        assert!(Shared::ptr_eq(&a, &c));
        assert_eq!(c.1, 7);
        drop(a);
        drop(c);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        assert!(Shared::is_unique(&b));
        drop(b);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn get_mut_only_for_the_only_share() {
        let mut a = Shared::try_new(vec![1u8, 2]).ok().unwrap();
        Shared::get_mut(&mut a).unwrap().push(3);
        let b = a.clone();
        assert!(!Shared::is_unique(&a));
        assert!(Shared::get_mut(&mut a).is_none());
        drop(b);
        assert_eq!(Shared::get_mut(&mut a).unwrap(), &mut vec![1, 2, 3]);
        let other = Shared::try_new(vec![1u8, 2, 3]).ok().unwrap();
        assert!(!Shared::ptr_eq(&a, &other));
    }

    /// A value that checks itself as it is dropped.
    struct Checked<'a> {
        drops: &'a AtomicUsize,
        words: [u64; 4],
    }

    impl Drop for Checked<'_> {
        fn drop(&mut self) {
            assert!(self.words.iter().all(|&w| w == self.words[0]));
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Shares cloned, read and dropped on four threads at once, the last one on whichever
    /// thread finishes last (not the one that made the value): the value is dropped exactly
    /// once. Natively this checks the count; the ordering (every thread's reads of the value
    /// happen before the drop and the free) is what Miri checks: with the release decrement or
    /// the acquire load weakened to relaxed, it reports the free racing another thread's read.
    #[test]
    fn shares_on_many_threads_drop_the_value_once_wherever_the_last_goes() {
        let drops = AtomicUsize::new(0);
        let (rounds, clones) = if cfg!(miri) { (5, 20) } else { (200, 500) };
        for round in 0..rounds {
            let first = Shared::try_new(Checked {
                drops: &drops,
                words: [round as u64; 4],
            })
            .ok()
            .unwrap();
            let shares: Vec<_> = (0..4).map(|_| first.clone()).collect();
            drop(first);
            std::thread::scope(|s| {
                for mine in shares {
                    s.spawn(move || {
                        let mut held = Vec::new();
                        for _ in 0..clones {
                            held.push(mine.clone());
                            assert_eq!(held.last().unwrap().words[3], round as u64);
                            if held.len() > 8 {
                                held.clear();
                            }
                        }
                    });
                }
            });
        }
        assert_eq!(drops.load(Ordering::Relaxed), rounds);
    }
}
