//! Removal callbacks for C: `pixcache_set_removal_callback` and what the callback is told. This
//! file translates a core [`Removal`](crate::removal::Removal) into a `PixcacheRemoval`; when and
//! why callbacks run is decided in `crate::removal` and `crate::cache`.

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

use super::boundary::call;
use super::cache::{cache, PixcacheCache};
use super::key::PixcacheKey;
use super::pixmap::PixcachePixmap;
use crate::removal::{Reason, Removal, RemovedKey};

/// Why an entry left a cache (`PixcacheRemoval::reason`, and the index into
/// `PixcacheStats::removals`).
pub type PixcacheRemovalReason = u32;

/// Evicted to make room for an insert (the KB limit or the count limit).
pub const PIXCACHE_REMOVAL_EVICTED: PixcacheRemovalReason = 0;
/// Trimmed: `pixcache_trim`, `pixcache_trim_to`, `pixcache_tick`, `pixcache_flush_detached`, or
/// the memory-pressure watcher.
pub const PIXCACHE_REMOVAL_TRIMMED: PixcacheRemovalReason = 1;
/// Evicted because `pixcache_set_cache_limit` or `pixcache_set_count_limit` lowered a limit.
pub const PIXCACHE_REMOVAL_LIMIT_LOWERED: PixcacheRemovalReason = 2;
/// Removed by `pixcache_remove` / `pixcache_remove_key`.
pub const PIXCACHE_REMOVAL_REMOVED: PixcacheRemovalReason = 3;
/// Replaced: an insert under the same string key (which removes the old entry first, even when
/// the new pixmap is then refused), or `pixcache_replace` of a generated key.
pub const PIXCACHE_REMOVAL_REPLACED: PixcacheRemovalReason = 4;
/// Cleared by `pixcache_clear` (least recently used first).
pub const PIXCACHE_REMOVAL_CLEARED: PixcacheRemovalReason = 5;
/// Taken out by `pixcache_take` / `pixcache_take_key` (its pixmap went to the caller).
pub const PIXCACHE_REMOVAL_TAKEN: PixcacheRemovalReason = 6;
/// How many reasons there are: the length of `PixcacheStats::removals`.
pub const PIXCACHE_REMOVAL_REASON_COUNT: usize = 7;

/// What a removal callback is told about one entry that left the cache. Everything it points to
/// is borrowed for the length of the call.
#[repr(C)]
pub struct PixcacheRemoval {
    /// Why it left (`PIXCACHE_REMOVAL_*`).
    pub reason: PixcacheRemovalReason,
    /// What it cost, in KB.
    pub cost_kb: i32,
    /// Its string key, NUL-terminated (a key given with a length may hold NUL bytes: use
    /// `key_len`); NULL for an entry under a generated key.
    pub key: *const c_char,
    /// The string key's length in bytes (0 for a generated key).
    pub key_len: usize,
    /// Its generated key (no longer valid), or the all-zero key for a string key.
    pub generated_key: PixcacheKey,
    /// Its pixmap: read it, or keep a share with `pixcache_pixmap_clone`; never free it or
    /// assign to it.
    pub pixmap: *const PixcachePixmap,
}

/// A removal callback: `removal` describes one entry that left the cache. Called once per entry,
/// in the order they left, after the cache is unlocked, on the thread whose call made them leave
/// (for evictions: the inserting thread). It may call pixcache, this cache included. It must not
/// throw a C++ exception or `longjmp` out. `user_data` is the pointer given with it.
pub type PixcacheRemovalFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, removal: *const PixcacheRemoval)>;

/// The C callback and its pointer, shared with the threads that trigger removals.
struct CCallback {
    f: unsafe extern "C" fn(*mut c_void, *const PixcacheRemoval),
    user_data: *mut c_void,
}

// SAFETY: the C caller promises (pixcache_set_removal_callback's contract) that the callback may
// be called with `user_data` from any thread that uses the cache, also several at once.
unsafe impl Send for CCallback {}
// SAFETY: as above; the struct itself is never written after it is made.
unsafe impl Sync for CCallback {}

impl CCallback {
    fn call(&self, r: &Removal<'_>) {
        // Short keys are made NUL-terminated on the stack; longer ones in a heap copy.
        let mut stack = [0u8; 128];
        let mut heap = Vec::new();
        let (key, key_len, generated_key) = match r.key {
            RemovedKey::Name(name) => {
                let bytes = name.as_bytes();
                let buf: &mut [u8] = if bytes.len() < stack.len() {
                    &mut stack[..=bytes.len()]
                } else {
                    heap.resize(bytes.len() + 1, 0);
                    &mut heap
                };
                buf[..bytes.len()].copy_from_slice(bytes);
                buf[bytes.len()] = 0;
                (
                    buf.as_ptr().cast::<c_char>(),
                    bytes.len(),
                    PixcacheKey { id: 0 },
                )
            }
            RemovedKey::Key(k) => (ptr::null(), 0, PixcacheKey::from(k)),
        };
        let removal = PixcacheRemoval {
            reason: reason_code(r.reason),
            cost_kb: r.cost_kb.clamp(0, i64::from(i32::MAX)) as i32,
            key,
            key_len,
            generated_key,
            pixmap: ptr::from_ref(r.pixmap).cast::<PixcachePixmap>(),
        };
        // SAFETY: the caller of pixcache_set_removal_callback promised `f` may be called with
        // `user_data` from this thread; `removal` and what it points to (the key buffer, the
        // pixmap the departure holds) live until `f` returns, and handles point to `Pixmap`s.
        unsafe { (self.f)(self.user_data, &removal) }
    }
}

/// The C code of a reason.
pub(crate) fn reason_code(reason: Reason) -> PixcacheRemovalReason {
    reason as u8 as PixcacheRemovalReason
}

/// Sets the function called for every entry that leaves `cache` from now on (see
/// `PixcacheRemovalFn`), replacing any previous one; `callback` NULL removes it. Off by default:
/// without a callback pixcache keeps no keys for it and behaves exactly as before. Never called
/// for the pixmap of a failed insert (it never was an entry), nor when the cache is freed.
///
/// `user_data` must stay usable for as long as the callback is set, and a little longer: a call
/// already under way on another thread when this returns still gets the old pointer (with a
/// memory-pressure watcher on the cache, that thread is the watcher's: keep `user_data` until
/// `pixcache_pressure_watch_stop` has returned). Returns
/// false (with the last error) only for a NULL `cache`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_set_removal_callback(
    cache: *mut PixcacheCache,
    callback: PixcacheRemovalFn,
    user_data: *mut c_void,
) -> bool {
    call(false, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let cache = unsafe { self::cache(cache) }?;
        let callback = callback.map(|f| {
            let c = CCallback { f, user_data };
            Arc::new(move |r: &Removal<'_>| c.call(r)) as crate::removal::RemovalCallback
        });
        cache.set_removal_callback(callback);
        Ok(true)
    })
}
