//! A value only one thread at a time may reach, with no lock: the owner's calls cost one
//! thread-pointer compare, and another thread's calls are refused, never raced.
//!
//! This is what makes the thread-affine cache (`local.rs`, `pixcache_local_*`) safe to hand to
//! C, which cannot express "this handle belongs to one thread". A value belongs to the thread
//! that made it; its owner may [`Affine::release`] it (a Qt application object that goes away,
//! say), and then a thread may [`Affine::claim`] it. Nothing else changes the owner: a call
//! from another thread, even on an unowned value, is refused rather than taking it over (a
//! stray call from a worker must not carry the cache away from the thread that uses it).
//!
//! Why it is sound: the value is reached only inside [`Affine::with`], only by the thread whose
//! token is in `owner`. Claiming is a compare-and-swap from "unowned" (acquire), releasing a
//! store of "unowned" (release), so everything the previous owner did happens before the next
//! owner's first access. A thread that exits while owning hands its token, and so the value, to
//! whichever thread glibc gives its thread control block next (token.rs): the dead thread
//! makes no more accesses, and glibc's reuse of the block is itself synchronised.
//! `with` is not re-entrant: a nested call is refused (`busy`), and so is a release while
//! the owner is inside, or has said it is still finishing a call ([`Affine::finishing`]).

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
    /// How deep the owner is in [`Affine::finishing`] sections: no release meanwhile.
    finishing: Cell<u32>,
    value: UnsafeCell<T>,
}

// SAFETY: `value`, `busy` and `finishing` are reached only by the owning thread, and
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
    /// A value the calling thread owns.
    pub fn new(value: T) -> Self {
        Affine {
            owner: AtomicU64::new(token::current()),
            busy: Cell::new(false),
            finishing: Cell::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value if this thread owns it.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Refusal> {
        if self.owner.load(Ordering::Relaxed) != token::current() {
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

    /// Runs `f` (which does not reach the value: it may call [`Affine::with`]) as the end of an
    /// owner's call, during which [`Affine::release`] is refused: for work that must find the
    /// value still owned when it is done (dropping what a call let go of, whose release
    /// callbacks may call back). Only the owner may call it.
    pub fn finishing<R>(&self, f: impl FnOnce() -> R) -> R {
        debug_assert!(self.is_mine());
        if !self.is_mine() {
            return f();
        }
        self.finishing.set(self.finishing.get() + 1);
        struct Done<'a>(&'a Cell<u32>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        let _done = Done(&self.finishing);
        f()
    }

    /// Gives the value up so that another thread may [`Affine::claim`] it. Refused (nothing
    /// changes) when the calling thread is not its owner, or is inside [`Affine::with`] or
    /// [`Affine::finishing`] (`Nested`).
    pub fn release(&self) -> Result<(), Refusal> {
        self.may_release()?;
        self.owner.store(UNOWNED, Ordering::Release);
        Ok(())
    }

    /// Whether [`Affine::release`] would succeed now, without releasing.
    pub fn may_release(&self) -> Result<(), Refusal> {
        if !self.is_mine() {
            return Err(Refusal::OtherThread);
        }
        if self.busy.get() || self.finishing.get() != 0 {
            return Err(Refusal::Nested);
        }
        Ok(())
    }

    /// Makes the calling thread the owner of a value no thread owns; true also when it owns it
    /// already, false when another thread does.
    pub fn claim(&self) -> bool {
        let me = token::current();
        self.owner.load(Ordering::Relaxed) == me
            || self
                .owner
                .compare_exchange(UNOWNED, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_maker_owns_it_and_others_are_refused() {
        let a = Arc::new(Affine::new(0u32));
        assert_eq!(a.with(|v| *v += 1), Ok(()));
        assert!(a.is_mine());
        let other = Arc::clone(&a);
        let r = std::thread::spawn(move || {
            (
                other.with(|v| *v += 1),
                other.release().is_ok(),
                other.claim(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(r, (Err(Refusal::OtherThread), false, false));
        assert_eq!(a.with(|v| *v), Ok(1));
    }

    #[test]
    fn an_unowned_value_is_not_taken_by_a_call_only_by_a_claim() {
        let a = Arc::new(Affine::new(Vec::<u32>::new()));
        a.with(|v| v.extend(0..100)).unwrap();
        assert!(a.release().is_ok());
        assert_eq!(
            a.with(|v| v.len()),
            Err(Refusal::OtherThread),
            "released: not the maker's"
        );
        let other = Arc::clone(&a);
        let (refused, sum, mine) = std::thread::spawn(move || {
            let refused = other.with(|v| v.len()).is_err();
            assert!(
                other.claim() && other.claim(),
                "claim, and again while owning"
            );
            let sum = other.with(|v| v.iter().sum::<u32>()).unwrap();
            (refused, sum, other.is_mine())
        })
        .join()
        .unwrap();
        assert_eq!((refused, sum, mine), (true, 4950, true));
        // The other thread exited owning it: this live thread's token differs, so it is refused.
        assert!(!a.is_mine() && !a.claim());
    }

    #[test]
    fn a_nested_call_is_refused_and_the_value_stays_usable() {
        let a = Affine::new(1u8);
        let inner = a.with(|_| a.with(|v| *v)).unwrap();
        assert_eq!(inner, Err(Refusal::Nested));
        assert_eq!(a.with(|_| a.release()).unwrap(), Err(Refusal::Nested));
        assert_eq!(a.with(|v| *v), Ok(1));
    }

    #[test]
    fn no_release_while_finishing_but_calls_are_fine() {
        let a = Affine::new(1u8);
        let (released, value) = a.finishing(|| (a.release(), a.with(|v| *v)));
        assert_eq!((released, value), (Err(Refusal::Nested), Ok(1)));
        assert!(a.release().is_ok());
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
