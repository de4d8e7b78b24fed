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

/// The tests compare the process-wide live count: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_refused_shared_block_is_an_error_that_counts_nothing_and_runs_no_release() {
    let _one = one_at_a_time();
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

/// The C API's wrapped insert, whose foreign pixmap is made inside the call with a C release
/// function: when the allocator refuses its shared block, the insert reports OUT_OF_MEMORY and
/// `release(user_data)` has run exactly once before it returns (ownership passed to pixcache).
#[test]
fn a_refused_wrapped_insert_releases_its_user_data_once() {
    use pixcache::ffi::cache::{
        pixcache_cache_free, pixcache_cache_new, pixcache_insert_key_wrapped,
    };
    use pixcache::ffi::error::{pixcache_last_error, pixcache_last_result, PixcacheResult};
    use std::ffi::{c_void, CStr};

    static RELEASES: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn release(user_data: *mut c_void) {
        assert_eq!(user_data as usize, 0x5eed);
        RELEASES.fetch_add(1, Ordering::SeqCst);
    }

    let _one = one_at_a_time();
    let cache = pixcache_cache_new(10_240);
    assert!(!cache.is_null());
    let before = live_pixel_buffers();
    refuse_next();
    // SAFETY: a live cache; `release` may be called once with this `user_data`, from any thread.
    let key = unsafe {
        pixcache_insert_key_wrapped(cache, 8, 8, 32, 0x5eed as *mut c_void, Some(release))
    };
    assert_eq!(key.id, 0);
    assert_eq!(pixcache_last_result(), PixcacheResult::OutOfMemory);
    // SAFETY: the last error is a NUL-terminated string valid until this thread's next call.
    let message = unsafe { CStr::from_ptr(pixcache_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(
        message.contains("shared block"),
        "another allocation was refused: {message}"
    );
    assert_eq!(RELEASES.load(Ordering::SeqCst), 1);
    assert_eq!(live_pixel_buffers(), before);

    // The same call with the allocator willing: cached, released when the cache goes.
    // SAFETY: as above.
    let key = unsafe {
        pixcache_insert_key_wrapped(cache, 8, 8, 32, 0x5eed as *mut c_void, Some(release))
    };
    assert_ne!(key.id, 0);
    assert_eq!(live_pixel_buffers(), before + 1);
    // SAFETY: a live cache from `pixcache_cache_new`, not used again.
    unsafe { pixcache_cache_free(cache) };
    assert_eq!(RELEASES.load(Ordering::SeqCst), 2);
    assert_eq!(live_pixel_buffers(), before);
}
