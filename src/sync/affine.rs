//! A value only one thread at a time may reach, with no lock: the owner's calls cost one
//! thread-pointer compare, and another thread's calls are refused, never raced.
//!
//! This is what makes the thread-affine cache (`local.rs`, `pixcache_local_*`) safe to hand to
//! C, which cannot express "this handle belongs to one thread": the first thread that uses an
//! unowned value binds it; it stays that thread's until the owner [`Affine::release`]s it (a
//! Qt application object that goes away, say), and then the next thread to use it binds it.
//!
//! Why it is sound: the value is reached only inside [`Affine::with`], only by the thread whose
//! token is in `owner`. Binding is a compare-and-swap from "unowned" (acquire), releasing a
//! store of "unowned" (release), so everything the previous owner did happens before the next
//! owner's first access. A thread that exits while owning hands its token, and so the value, to
//! whichever thread glibc gives its thread control block next (token.rs): the dead thread
//! makes no more accesses, and glibc's reuse of the block is itself synchronised.
//! `with` is not re-entrant: its closure must not call `with` on the same value (the closures
//! of `local.rs`'s callers run Rust code only; release callbacks run after `with` returns).

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicU64, Ordering};

use super::token;

/// No thread owns the value.
const UNOWNED: u64 = 0;

/// A value reachable by one thread at a time. See the module documentation.
pub struct Affine<T> {
    owner: AtomicU64,
    /// Set while the owner is inside [`Affine::with`]: a nested call is refused.
    busy: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: `value` and `busy` are reached only by the owning thread, inside `with`, and
// ownership moves between threads with acquire/release ordering (module documentation). So
// sharing an `Affine` is sound whenever moving a `T` to another thread is.
unsafe impl<T: Send> Sync for Affine<T> {}

/// Why [`Affine::with`] refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another thread owns the value.
    OtherThread,
    /// The owner is already inside `with` (a callback called back).
    Nested,
}

impl<T> Affine<T> {
    /// A value no thread owns yet.
    pub const fn new(value: T) -> Self {
        Affine {
            owner: AtomicU64::new(UNOWNED),
            busy: Cell::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value if this thread owns it, or binds it first if no thread does.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Refusal> {
        let me = token::current();
        if self.owner.load(Ordering::Relaxed) != me
            && self
                .owner
                .compare_exchange(UNOWNED, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return Err(Refusal::OtherThread);
        }
        // Only the owner gets here, so `busy` is read and written by one thread.
        if self.busy.replace(true) {
            return Err(Refusal::Nested);
        }
        struct Done<'a>(&'a Cell<bool>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _done = Done(&self.busy);
        // SAFETY: this thread owns the value (checked above) and is not already inside `with`
        // (`busy`), so this is the only reference to it until `f` returns.
        Ok(f(unsafe { &mut *self.value.get() }))
    }

    /// True when the calling thread owns the value.
    pub fn is_mine(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == token::current()
    }

    /// Gives the value up so that another thread may bind it; false (and nothing changes) when
    /// the calling thread is not its owner, or is inside [`Affine::with`].
    pub fn release(&self) -> bool {
        let me = token::current();
        if self.owner.load(Ordering::Relaxed) != me || self.busy.get() {
            return false;
        }
        self.owner.store(UNOWNED, Ordering::Release);
        true
    }

    /// The value, for its owner being dropped (`&mut self`: no other thread can hold it).
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_first_thread_binds_and_others_are_refused() {
        let a = Arc::new(Affine::new(0u32));
        assert_eq!(a.with(|v| *v += 1), Ok(()));
        assert!(a.is_mine());
        let other = Arc::clone(&a);
        let r = std::thread::spawn(move || (other.with(|v| *v += 1), other.release()))
            .join()
            .unwrap();
        assert_eq!(r, (Err(Refusal::OtherThread), false));
        assert_eq!(a.with(|v| *v), Ok(1));
    }

    #[test]
    fn a_released_value_is_bound_by_the_next_thread_and_sees_every_write() {
        let a = Arc::new(Affine::new(Vec::<u32>::new()));
        a.with(|v| v.extend(0..100)).unwrap();
        assert!(a.release());
        let other = Arc::clone(&a);
        let (sum, mine) = std::thread::spawn(move || {
            let sum = other.with(|v| v.iter().sum::<u32>()).unwrap();
            (sum, other.is_mine())
        })
        .join()
        .unwrap();
        assert_eq!((sum, mine), (4950, true));
        // The other thread has exited without releasing: its token may be reused, but this
        // live thread's differs, so it is refused.
        assert!(!a.is_mine());
    }

    #[test]
    fn a_nested_call_is_refused_and_the_value_stays_usable() {
        let a = Affine::new(1u8);
        let inner = a.with(|_| a.with(|v| *v)).unwrap();
        assert_eq!(inner, Err(Refusal::Nested));
        assert!(!a.with(|_| a.release()).unwrap(), "no release from inside");
        assert_eq!(a.with(|v| *v), Ok(1));
    }

    #[test]
    fn a_panic_inside_leaves_the_value_usable() {
        let a = Affine::new(5u8);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.with(|_| panic!("inside")).unwrap();
        }));
        assert!(r.is_err());
        assert_eq!(a.with(|v| *v), Ok(5));
    }
}
