//! A pixmap whose shared block the allocator refuses: the error is reported, nothing is counted,
//! and a foreign pixmap's release callback is dropped without being run (the caller still owns
//! what it would release). An allocator that refuses on request makes the failure happen exactly
//! where it is tested; scripts/test-oom.sh covers running out of memory for real.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pixcache::pixmap::{live_pixel_buffers, Release, ReleaseFn};
use pixcache::{ErrorKind, Format, Pixmap};

/// The system allocator, except that it refuses the calling thread's next allocation after
/// [`refuse_next`].
struct Refusing;

thread_local! {
    static REFUSE_NEXT: Cell<bool> = const { Cell::new(false) };
}

fn refuse_next() {
    REFUSE_NEXT.with(|r| r.set(true));
}

// SAFETY: forwards to the system allocator, or returns null (a refusal, which callers of
// `alloc` must handle).
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if REFUSE_NEXT.try_with(|r| r.replace(false)).unwrap_or(false) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's obligations are the same as `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: every pointer handed out came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Refusing = Refusing;

#[test]
fn a_refused_shared_block_is_an_error_that_counts_nothing_and_runs_no_release() {
    // Something live, so that counting a buffer down by mistake would show.
    let keep = Pixmap::new(4, 4, Format::Rgba8888).unwrap();
    let before = live_pixel_buffers();
    assert!(before >= 1);

    let released = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let release: ReleaseFn = {
        let released = released.clone();
        let guard = OnDrop(dropped.clone());
        Box::new(move || {
            let _keep_until_run = &guard;
            released.fetch_add(1, Ordering::SeqCst);
        })
    };
    // Boxed before refusing: the next allocation is the pixmap's shared block.
    let release = Release::from(release);
    refuse_next();
    let Err(err) = Pixmap::foreign_with(8, 8, 32, 7, Some(release)) else {
        panic!("the allocator refused the block, yet a pixmap was made");
    };
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    assert_eq!(released.load(Ordering::SeqCst), 0, "release ran");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "release not dropped");
    assert_eq!(live_pixel_buffers(), before);

    // And the allocator's next answer is a pixmap again.
    let fine = Pixmap::foreign(8, 8, 32, 7, None).unwrap();
    assert_eq!(live_pixel_buffers(), before + 1);
    drop(fine);
    drop(keep);
    assert_eq!(live_pixel_buffers(), before - 1);
}
