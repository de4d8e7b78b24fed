//! `PixcachePressureWatch`: the opt-in memory-pressure watcher for C. This file translates
//! arguments and results only; the watcher lives in `crate::pressure`.

use std::ffi::c_char;
use std::ptr;
use std::sync::Arc;

use super::boundary::{
    call, call_keeping_error, call_reporting, free, into_raw, null_error, try_path, try_ref, Handle,
};
use super::cache::PixcacheCache;
use crate::cache::Cache;
use crate::global::global;
use crate::pressure::{PressureSource, WatchedCache, Watcher};

/// A running memory-pressure watcher (`pixcache_watch_memory_pressure`): one thread of
/// pixcache's own that trims one cache when memory runs short. Stop and free it with
/// `pixcache_pressure_watch_stop`. Behind the handle is a Rust `Box<Watcher>`.
pub struct PixcachePressureWatch {
    _opaque: [u8; 0],
}

impl Handle for PixcachePressureWatch {
    type Target = Watcher;
}

/// Opt-in: starts a thread that trims `cache` when the system runs short of memory, until
/// `pixcache_pressure_watch_stop`. Returns NULL on failure (with the last error set). Without a
/// watcher pixcache runs no threads of its own.
///
/// `source` NULL, or a path under `/proc/pressure/`, watches Linux PSI (pressure stall
/// information; NULL means `/proc/pressure/memory`). Two triggers are registered, each reported
/// by the kernel at most once per 2 s window:
/// - `some 300000 2000000` (some task stalled on memory 15% of the time): a moderate trim,
///   keeping half of the cache's current total;
/// - `full 200000 2000000` (all non-idle tasks stalled at once 10% of the time): a critical
///   trim, keeping an eighth. Both at once trim once, critically.
///
/// (2 s is the shortest window kernels since 6.5 accept without `CAP_SYS_RESOURCE`.) Where PSI
/// is unavailable (no such file: kernels before 4.20, or built without it, or booted with
/// `psi=0`; or the kernel refuses the trigger with `EINVAL`, `EPERM`, `EACCES` or `EOPNOTSUPP`,
/// as in some containers) this fails with `PIXCACHE_RESULT_UNSUPPORTED`, and the message names the
/// file and the OS error; other failures are `PIXCACHE_RESULT_IO`.
///
/// Any other `source` is a line source, for tests or for hosts that learn of pressure their own
/// way: a FIFO (or a regular file, followed like `tail -f`, checked every 100 ms: appended lines
/// are read, and a file rewritten shorter is read again from its start) of which each
/// line is one level word: `moderate` (keep 1/2 of the current total), `low` (keep 1/4),
/// `critical` (keep 1/8) or `complete` (keep nothing). ASCII case and surrounding blanks are
/// ignored and empty lines skipped; other lines trim nothing. Writers of a FIFO may come and go.
/// A source that cannot be opened fails with `PIXCACHE_RESULT_IO` naming it; one that is neither
/// a FIFO nor a regular file (a device such as `/dev/zero`) with
/// `PIXCACHE_RESULT_INVALID_ARGUMENT`.
///
/// The trims run on the watcher's thread, as do the release callbacks of the foreign pixmaps
/// they evict and the cache's removal callback (`pixcache_set_removal_callback`): keep the
/// callback's `user_data` valid until the watcher is stopped. The watcher holds a reference to
/// `cache`: `pixcache_cache_free` while it runs is safe (the cache is emptied then, the removal
/// callback is removed, and the cache is really dropped when the watcher is stopped; a trim
/// already under way may still call the old callback until then); the global
/// cache (`pixcache_global()`) is never dropped. Several watchers may watch one cache. A
/// watcher whose source fails stops trimming by itself (`pixcache_pressure_watch_trims` then
/// reports why). In the child of a `fork` the watcher's thread does not exist: nothing is
/// trimmed there, and `pixcache_pressure_watch_stop` only frees the handle.
///
/// `cache` NULL fails with `PIXCACHE_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_watch_memory_pressure(
    cache: *mut PixcacheCache,
    source: *const c_char,
) -> *mut PixcachePressureWatch {
    call(ptr::null_mut(), || {
        if cache.is_null() {
            return Err(null_error("cache"));
        }
        let path = if source.is_null() {
            None
        } else {
            // SAFETY: C API contract (module docs of `ffi`): a string is NULL or NUL-terminated.
            Some(unsafe { try_path(source, "source") }?)
        };
        let raw = cache.cast_const().cast::<Cache>();
        let watched = if ptr::eq(raw, global()) {
            WatchedCache::Static(global())
        } else {
            // SAFETY: C API contract: a non-NULL cache that is not the global one is a live cache
            // from `pixcache_cache_new`, i.e. `Arc::into_raw` of an `Arc<Cache>` whose strong
            // count C's handle holds one of. Incrementing it and taking that new count back as
            // an `Arc` gives the watcher a reference of its own: the cache outlives
            // `pixcache_cache_free` until the watcher drops it (on stop, or right here if
            // starting fails), and C's count is left untouched.
            unsafe {
                Arc::increment_strong_count(raw);
                WatchedCache::Shared(Arc::from_raw(raw))
            }
        };
        let watcher = Watcher::start(watched, &PressureSource::from_path(path))?;
        into_raw::<PixcachePressureWatch>(watcher)
    })
}

/// Stops a watcher from `pixcache_watch_memory_pressure` and frees it: wakes its thread, waits
/// for it (a trim under way finishes first; otherwise this is prompt), then lets go of its
/// cache (dropping it if it was freed meanwhile). NULL is ignored. The handle must not be used
/// afterwards. May be called from any thread, also from a release callback the watcher's own
/// trim runs (the thread then ends when that trim returns). Leaves the last error as it was.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pressure_watch_stop(watch: *mut PixcachePressureWatch) {
    call_keeping_error(|| {
        // SAFETY: C API contract (module docs of `ffi`): `watch` is NULL or a live watcher
        // handle (from `into_raw`) that C gives up here.
        unsafe { free(watch) }
    })
}

/// How many trims the watcher has run (one per event, even on an empty cache): for tests and
/// diagnostics. 0 for NULL (with the last error set). If the watcher has stopped by itself
/// because its source failed (PSI reported an error, a read failed), the count is still
/// returned and the last error says why; otherwise the last error is cleared.
#[no_mangle]
pub unsafe extern "C" fn pixcache_pressure_watch_trims(
    watch: *const PixcachePressureWatch,
) -> usize {
    call_reporting(0, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or a live watcher handle; the
        // watcher is only ever shared (its counters are atomic).
        let watcher = unsafe { try_ref(watch, "watch") }?;
        Ok((watcher.trims(), watcher.error()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::cache::{pixcache_cache_free, pixcache_cache_new, pixcache_global};
    use crate::ffi::error::{last_error_message, pixcache_last_result, PixcacheResult};

    #[test]
    fn null_cache_and_missing_source() {
        // SAFETY: NULL is allowed; the strings are NUL-terminated.
        unsafe {
            let w = pixcache_watch_memory_pressure(ptr::null_mut(), c"/tmp/x".as_ptr());
            assert!(w.is_null());
            assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
            let cache = pixcache_cache_new(100);
            let w = pixcache_watch_memory_pressure(cache, c"/nonexistent/pixcache".as_ptr());
            assert!(w.is_null());
            assert_eq!(pixcache_last_result(), PixcacheResult::Io);
            assert!(last_error_message().contains("/nonexistent/pixcache"));
            assert_eq!(pixcache_pressure_watch_trims(ptr::null()), 0);
            assert_eq!(pixcache_last_result(), PixcacheResult::NullArgument);
            pixcache_pressure_watch_stop(ptr::null_mut());
            pixcache_cache_free(cache);
        }
    }

    /// A watcher on a cache C frees keeps it alive until it is stopped; one on the global cache
    /// takes no count (there is none).
    #[test]
    fn the_watcher_holds_a_reference() {
        let dir =
            std::env::temp_dir().join(format!("pixcache-ffi-pressure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("levels");
        std::fs::write(&file, "").unwrap();
        let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: live handles from pixcache; each freed once, after its last use.
        unsafe {
            let cache = pixcache_cache_new(100);
            let w = pixcache_watch_memory_pressure(cache, path.as_ptr());
            assert!(!w.is_null(), "{}", last_error_message());
            let arc = cache.cast_const().cast::<Cache>();
            Arc::increment_strong_count(arc);
            let probe = Arc::from_raw(arc);
            assert_eq!(Arc::strong_count(&probe), 3); // C, the watcher, the probe
            pixcache_cache_free(cache);
            assert_eq!(Arc::strong_count(&probe), 2);
            assert_eq!(pixcache_pressure_watch_trims(w), 0);
            assert_eq!(pixcache_last_result(), PixcacheResult::Ok);
            pixcache_pressure_watch_stop(w);
            assert_eq!(Arc::strong_count(&probe), 1);

            let w = pixcache_watch_memory_pressure(pixcache_global(), path.as_ptr());
            assert!(!w.is_null(), "{}", last_error_message());
            pixcache_pressure_watch_stop(w);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
