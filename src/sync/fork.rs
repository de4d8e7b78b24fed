//! `fork(2)` from a multi-threaded process: the child gets usable caches.
//!
//! The child of a multi-threaded process has one thread, the one that forked; every lock another
//! thread held at that moment stays held for good in the child, and data it was changing stays
//! half changed. glibc's `malloc` solves this with `pthread_atfork` handlers, and so does this
//! module: before the fork, the forking thread takes every registered object's locks (so nothing
//! is half changed and no other thread is inside); after it, the parent frees them, and the child
//! frees them and resets what the lost threads left behind (`BrLock::after_fork_in_child`, the
//! cache's flights in progress).
//!
//! Objects register as [`AtFork`] trait objects behind a `Weak`, so registering keeps nothing
//! alive; the handlers are installed once, on the first registration. The prepare handler takes
//! all objects or none, never waiting while it holds any (see [`prepare`]). A thread that forks
//! from code running under an object's lock (a visit callback) cannot take that object's lock:
//! that object is skipped, and in the child it is left as the forking thread's guard leaves it
//! (its other threads' reader slots are not reset). Documented for users in the C header.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// What [`AtFork::before_fork`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// Every lock of the object is now the forking thread's.
    All,
    /// None: another thread holds one (the prepare handler frees everything it took, lets the
    /// other threads run a little, and tries again).
    Busy,
    /// None, and none will be: the forking thread holds one already (it forks from code running
    /// under the object's lock). The object is left as it is.
    HeldHere,
}

/// What the fork handlers do with one registered object.
pub trait AtFork: Send + Sync {
    /// Before the fork, in the forking thread: take every lock of the object without waiting
    /// for another thread (beyond a short spin), or none.
    fn before_fork(&self) -> Taken;
    /// After the fork, in the parent, if [`AtFork::before_fork`] took them all: free them.
    fn after_fork_in_parent(&self);
    /// After the fork, in the child (the forking thread alone), if [`AtFork::before_fork`] took
    /// them all: free them, and reset what the threads that did not survive left behind.
    fn after_fork_in_child(&self);
}

/// Every registered object (dead ones are pruned on each registration).
static REGISTERED: Mutex<Vec<Weak<dyn AtFork>>> = Mutex::new(Vec::new());

/// What `prepare` took, kept by the forking thread until `parent` or `child` (all three run in
/// the thread that calls `fork`).
struct Held {
    _registry: MutexGuard<'static, Vec<Weak<dyn AtFork>>>,
    locked: Vec<Arc<dyn AtFork>>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers `object` for the fork handlers, installing them on the first call.
pub fn register(object: Weak<dyn AtFork>) {
    // Not a `std::sync::Once`: a fork while another thread ran it would leave the child's copy
    // "running", and every registration in the child would wait for ever.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        // SAFETY: the three handlers are `extern "C"` functions that never unwind (each catches
        // panics) and live as long as the process.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    }
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    registered.retain(|w| w.strong_count() > 0);
    registered.push(object);
}

/// `pthread_atfork`'s prepare handler: takes every registered object's locks, all or none.
///
/// All or none, never waiting while holding: objects are taken in registration order, but a
/// thread inside one object's lock may be about to use another (a visit callback on cache A
/// finding in cache B, or making a cache, which registers it). Waiting for A while holding B (or
/// the registry) would wait for ever. So when an object is busy, everything taken so far is
/// freed, the registry too, and the handler sleeps (50 µs, doubling to 1 ms) before it tries
/// again; the other threads finish their calls meanwhile.
///
/// A thread whose thread-locals are gone (a fork from a thread-local's destructor) takes
/// nothing: it could not keep what it took for the other two handlers.
extern "C" fn prepare() {
    let _ = std::panic::catch_unwind(|| {
        let _ = HELD.try_with(|h| {
            let mut nap = std::time::Duration::from_micros(50);
            loop {
                let registry = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
                let objects: Vec<_> = registry.iter().filter_map(Weak::upgrade).collect();
                let mut locked = Vec::with_capacity(objects.len());
                let mut busy = false;
                for object in objects {
                    match object.before_fork() {
                        Taken::All => locked.push(object),
                        Taken::HeldHere => {}
                        Taken::Busy => {
                            busy = true;
                            break;
                        }
                    }
                }
                if !busy {
                    *h.borrow_mut() = Some(Held {
                        _registry: registry,
                        locked,
                    });
                    return;
                }
                for object in locked.iter().rev() {
                    object.after_fork_in_parent();
                }
                drop(registry);
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(1));
            }
        });
    });
}

/// What `prepare` took on this thread, if anything.
fn take_held() -> Option<Held> {
    HELD.try_with(|h| h.borrow_mut().take()).ok().flatten()
}

/// `pthread_atfork`'s handler in the parent.
extern "C" fn parent() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(held) = take_held() {
            for object in &held.locked {
                object.after_fork_in_parent();
            }
        }
    });
}

/// `pthread_atfork`'s handler in the child.
extern "C" fn child() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(held) = take_held() {
            for object in &held.locked {
                object.after_fork_in_child();
            }
            // Not dropped here: were this the last reference (its owner let go during the
            // fork), dropping it would run release callbacks inside the fork handler, in a child
            // whose other threads, and what they held, are gone.
            // (The vector itself is freed; the objects stay reachable through the registry.)
            held.locked.into_iter().for_each(std::mem::forget);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Records which handlers ran, as digits.
    #[derive(Default)]
    struct Recorder(AtomicU32, std::sync::atomic::AtomicBool);

    impl AtFork for Recorder {
        fn before_fork(&self) -> Taken {
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1.load(Ordering::SeqCst) {
                Taken::HeldHere
            } else {
                Taken::All
            }
        }
        fn after_fork_in_parent(&self) {
            self.0.fetch_add(10, Ordering::SeqCst);
        }
        fn after_fork_in_child(&self) {
            self.0.fetch_add(100, Ordering::SeqCst);
        }
    }

    /// The handlers reach every live registered object, in the parent and in the child (which
    /// reports what it saw through its exit status); an object that declines in `before_fork`
    /// gets neither half; dropped objects are skipped.
    #[test]
    fn handlers_reach_every_live_object() {
        let taken = Arc::new(Recorder::default());
        let declines = Arc::new(Recorder::default());
        declines.1.store(true, Ordering::SeqCst);
        let dropped: Arc<dyn AtFork> = Arc::new(Recorder::default());
        for object in [&taken, &declines] {
            let object: Arc<dyn AtFork> = object.clone();
            register(Arc::downgrade(&object));
        }
        register(Arc::downgrade(&dropped));
        drop(dropped);
        // SAFETY: the child only reads atomics and calls `_exit`, both async-signal-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if taken.0.load(Ordering::SeqCst) == 101
                && declines.0.load(Ordering::SeqCst) == 1
            {
                0
            } else {
                1
            };
            // SAFETY: ends the child at once, running nothing of the test harness's.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child made above; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child saw other handlers run"
        );
        assert_eq!(taken.0.load(Ordering::SeqCst), 11);
        assert_eq!(declines.0.load(Ordering::SeqCst), 1);
    }
}
