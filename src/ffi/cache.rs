//! `PixcacheCache`: the `QPixmapCache` operations for C, on the global cache or on independent
//! caches. This file translates arguments and results only; the rules live in `crate::cache`.

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

use super::boundary::{
    call, call_keeping_error, call_reporting, into_raw, try_bytes, try_bytes_n, try_mut, try_ref,
    try_str, try_str_n, utf8, Handle,
};
use super::key::PixcacheKey;
use super::pixmap::{foreign_owned, PixcacheFormat, PixcachePixmap, PixcacheReleaseFn};
use super::removal::PIXCACHE_REMOVAL_REASON_COUNT;
use crate::cache::{invalid_key_error, Cache, Stats, TrimLevel};
use crate::error::Error;
use crate::global::global;
use crate::key::Key;
use crate::pixmap::Pixmap;

/// A pixmap cache: size-bounded (in KB), least recently used first out, safe to use from any
/// number of threads at once. Behind the handle is a Rust `Cache` (an `Arc<Cache>` from
/// `pixcache_cache_new`, which the `fork(2)` handlers also reach, or the global cache from
/// `pixcache_global`).
pub struct PixcacheCache {
    _opaque: [u8; 0],
}

impl Handle for PixcacheCache {
    type Target = Cache;
}

/// Counters and sizes of a cache, read together in one consistent snapshot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixcacheStats {
    /// Entries in the cache.
    pub entries: usize,
    /// Sum of their costs, in KB (what `pixcache_total_used` returns).
    pub total_kb: i32,
    /// The limit in KB, as set.
    pub limit_kb: i32,
    /// Lookups (`pixcache_find`, `pixcache_find_key`) that found a pixmap.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Successful inserts (string, key and replace).
    pub inserts: u64,
    /// Entries evicted for room, by a lowered limit or by a trim (removes and clears not counted).
    pub evictions: u64,
    /// Inserts refused because the pixmap cost more than the whole limit.
    pub refused: u64,
    /// Entries that left the cache, by reason: `removals[PIXCACHE_REMOVAL_EVICTED]` and so on.
    pub removals: [u64; PIXCACHE_REMOVAL_REASON_COUNT],
    /// The highest `total_kb` since the cache was made or `pixcache_reset_stats`.
    pub peak_kb: i32,
    /// Live images (`pixcache_set_live_images`): the sum of their costs in KB, outside
    /// `total_kb` and the limit.
    pub live_kb: i32,
    /// How many live images there are (outside `entries`).
    pub live_entries: usize,
    /// The count limit (`pixcache_set_count_limit`; 0: none).
    pub count_limit: usize,
}

impl From<Stats> for PixcacheStats {
    fn from(s: Stats) -> Self {
        PixcacheStats {
            entries: s.entries,
            total_kb: clamp_kb(s.total_kb),
            limit_kb: s.limit_kb,
            hits: s.hits,
            misses: s.misses,
            inserts: s.inserts,
            evictions: s.evictions,
            refused: s.refused,
            removals: s.removals,
            peak_kb: clamp_kb(s.peak_kb),
            live_kb: clamp_kb(s.live_kb),
            live_entries: s.live_entries,
            count_limit: s.count_limit,
        }
    }
}

fn clamp_kb(kb: i64) -> i32 {
    kb.clamp(0, i64::from(i32::MAX)) as i32
}

/// # Safety
/// `cache` is NULL, the global cache, or a live cache from `pixcache_cache_new` (caches are only
/// ever shared, never borrowed mutably, so concurrent use is fine).
pub(crate) unsafe fn cache<'a>(cache: *const PixcacheCache) -> Result<&'a Cache, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { try_ref(cache, "cache") }
}

/// # Safety
/// `pm` is NULL or a live pixmap handle no other thread modifies during the call.
unsafe fn pixmap<'a>(pm: *const PixcachePixmap) -> Result<&'a Pixmap, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { try_ref(pm, "pm") }
}

/// # Safety
/// `key` is NULL or a NUL-terminated string.
unsafe fn key_str<'a>(key: *const c_char) -> Result<&'a str, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { try_str(key, "key") }
}

/// The process-wide cache that `QPixmapCache`'s static functions use. Never NULL; made on first
/// use with a limit of 10240 KB (Qt's default); lives until the process ends (nothing runs at
/// exit). `pixcache_cache_free` ignores it. Leaves the last error as it was.
#[no_mangle]
pub extern "C" fn pixcache_global() -> *mut PixcacheCache {
    // Cannot fail or panic (making the global cache allocates nothing), so no boundary and no
    // thread-local access: the Qt adapter calls this on every operation.
    global_handle()
}

fn global_handle() -> *mut PixcacheCache {
    (global() as *const Cache)
        .cast_mut()
        .cast::<PixcacheCache>()
}

/// A new, independent cache holding at most `limit_kb` KB (nothing at all if `limit_kb <= 0`).
/// Free it with `pixcache_cache_free`.
#[no_mangle]
pub extern "C" fn pixcache_cache_new(limit_kb: i32) -> *mut PixcacheCache {
    call(ptr::null_mut(), || {
        Ok(Arc::into_raw(Cache::new_shared(limit_kb))
            .cast_mut()
            .cast::<PixcacheCache>())
    })
}

/// Frees a cache from `pixcache_cache_new`, dropping its shares of its pixmaps (handles that
/// share them stay valid). NULL and the global cache are ignored. No other thread may be using
/// the cache; using it afterwards is undefined behaviour. Leaves the last error as it was.
///
/// The cache is emptied first, while it is still whole, so the release callbacks of its
/// foreign pixmaps may use it (even insert into it again: what they put back is cleared too, up
/// to 64 rounds; entries still there after that are dropped with the cache, and their release
/// callbacks must not use it).
#[no_mangle]
pub unsafe extern "C" fn pixcache_cache_free(cache: *mut PixcacheCache) {
    call_keeping_error(|| {
        if cache.is_null() || cache.cast_const() == global_handle().cast_const() {
            return;
        }
        // SAFETY: C API contract: `cache` is a live cache from `pixcache_cache_new` (NULL and the
        // global cache were excluded above); no other thread uses it.
        if let Ok(whole) = unsafe { self::cache(cache) } {
            // Freeing is not a removal the callback is told of (pixcache_set_removal_callback).
            whole.set_removal_callback(None);
            for _ in 0..FREE_DRAIN_ROUNDS {
                if whole.stats().entries == 0 {
                    break;
                }
                // Releases run after `clear` unlocks, with the cache still whole.
                whole.clear();
            }
        }
        // SAFETY: as above; C gives the cache up here, and no borrow of it is left. Caches from
        // `pixcache_cache_new` come from `Arc::into_raw`, each given back once.
        drop(unsafe { Arc::from_raw(cache.cast_const().cast::<Cache>()) });
    })
}

/// How many times `pixcache_cache_free` empties a cache whose release callbacks keep putting
/// entries back before it gives up and drops what is left with the cache.
const FREE_DRAIN_ROUNDS: usize = 64;

/// The limit in KB (`QPixmapCache::cacheLimit`), as set: even a negative or `INT_MAX` limit is
/// reported as given. 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn pixcache_cache_limit(cache: *const PixcacheCache) -> i32 {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(0, || Ok(unsafe { self::cache(cache) }?.limit()))
}

/// Sets the limit in KB (`QPixmapCache::setCacheLimit`). Lowering it evicts least recently used
/// entries at once until the total fits; raising it evicts nothing. A limit of 0 or less holds
/// nothing.
#[no_mangle]
pub unsafe extern "C" fn pixcache_set_cache_limit(cache: *mut PixcacheCache, limit_kb: i32) {
    call((), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        unsafe { self::cache(cache) }?.set_limit(limit_kb);
        Ok(())
    })
}

/// Looks up a string key (`QPixmapCache::find(QString, QPixmap*)`). On a hit, `out` (if not
/// NULL) becomes a share of the cached pixmap, the entry becomes the most recently used, and it
/// returns true. On a miss it returns false and leaves `out` untouched. `out` may be NULL: a
/// presence test that still refreshes recency.
///
/// A miss is not an error (the last error is empty); a NULL `cache` or `key`, or a `key` that is
/// not UTF-8, is (false, with the last error set).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find(
    cache: *mut PixcacheCache,
    key: *const c_char,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        find_str(cache, try_bytes(key, "key")?, out)
    })
}

/// `pixcache_find` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated, may contain
/// NUL bytes): for C++ `std::string_view` and Qt `QByteArray` keys without a copy.
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        find_str(cache, try_bytes_n(key, len, "key")?, out)
    })
}

/// # Safety
/// `cache` and `out` as in the module contract.
///
/// The key is looked up before it is checked: every stored key is UTF-8, so bytes that are not
/// can only miss, and a hit proves the key valid. Only a miss pays for the check (the core's,
/// once, at word speed for ASCII keys); then this builds the error, with the bad byte's offset.
///
/// Inlined into both callers: the call itself was ~1 ns of a 17 ns hit.
#[inline(always)]
unsafe fn find_str(
    cache: *mut PixcacheCache,
    key: &[u8],
    out: *mut PixcachePixmap,
) -> Result<bool, Error> {
    // SAFETY: forwarded to the caller.
    let cache = unsafe { self::cache(cache) }?;
    let found = if out.is_null() {
        cache.touch_bytes(key)
    } else {
        // SAFETY: forwarded to the caller. What `out` held is dropped by `settle`, once the
        // borrow of `out` has ended: its release callback may use the caller's handle.
        cache
            .find_bytes_swap(key, unsafe { try_mut(out, "out") }?)
            .settle()
    };
    match found {
        Some(found) => Ok(found),
        None => utf8(key, "key").map(|_| false),
    }
}

/// Looks up a generated key (`QPixmapCache::find(Key, QPixmap*)`), as `pixcache_find` does.
/// A key that is not valid in this cache returns false with `PIXCACHE_RESULT_INVALID_KEY` as the
/// last error (stale, removed, replaced, cleared, from another cache, or forged).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_key(
    cache: *mut PixcacheCache,
    key: PixcacheKey,
    out: *mut PixcachePixmap,
) -> bool {
    call(false, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let cache = unsafe { self::cache(cache) }?;
        let key = Key::from(key);
        let found = if out.is_null() {
            cache.touch_key(key)
        } else {
            // SAFETY: C API contract: a non-NULL `out` is a live handle no other thread uses now.
            // What it held is dropped by `settle`, with no borrow of it left (see `find_str`).
            cache
                .find_key_swap(key, unsafe { try_mut(out, "out") }?)
                .settle()
                == Some(true)
        };
        if found {
            Ok(true)
        } else {
            Err(invalid_key_error(key))
        }
    })
}

/// What the `pixcache_find_*_visit` functions call with the pixmap they found, while the cache
/// is locked. `user_data` is the caller's pointer, passed through. `found` is the cached pixmap
/// itself, borrowed for the length of the call: read it with the `pixcache_pixmap_*` query
/// functions, or take a share of it with `pixcache_pixmap_clone`; never free, assign to or
/// write through it, or keep it after returning. `foreign_data` is
/// `pixcache_pixmap_user_data(found)`, passed to save that call (NULL unless `found` is foreign).
///
/// The callback runs with the cache locked: keep it short (copy a handle, read a few fields).
/// It must not throw a C++ exception or `longjmp` out, and must not let go of a pixmap's last
/// share (that would run its release callback there). Calling this cache from inside it fails
/// with `PIXCACHE_RESULT_REENTRANT` (the call does nothing) instead of deadlocking; a
/// `pixcache_*_wrapped` insert failing so runs its `release` right there, still under the lock.
/// Calling another cache from inside it may deadlock if that cache's own visit calls back into
/// this one.
pub type PixcacheVisitFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        found: *const PixcachePixmap,
        foreign_data: *mut c_void,
    ),
>;

/// Looks up a string key like `pixcache_find`, but on a hit, instead of making a share of the
/// cached pixmap, calls `visit(user_data, found, foreign_data)` with the cached pixmap itself
/// while the cache is locked (see `PixcacheVisitFn` for what it may do). Returns true on a hit
/// (after `visit` returns), false on a miss (`visit` is not called; not an error) or with the
/// last error set on a bad argument. The entry becomes the most recently used and the lookup is
/// counted, exactly as with `pixcache_find`.
///
/// Made for adapters that keep their own object in a foreign pixmap (the Qt adapter keeps a
/// `QPixmap`): copying it out inside `visit` costs no reference count of pixcache's at all,
/// where `pixcache_find` takes a share (an atomic increment, and a decrement when it is let go;
/// with several threads, a find into the same handle again and again usually reuses a share the
/// cache kept back instead, and touches no count either).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_visit(
    cache: *mut PixcacheCache,
    key: *const c_char,
    visit: PixcacheVisitFn,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        visit_str(cache, try_bytes(key, "key")?, visit, user_data)
    })
}

/// `pixcache_find_visit` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_visit_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    visit: PixcacheVisitFn,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        visit_str(cache, try_bytes_n(key, len, "key")?, visit, user_data)
    })
}

/// `pixcache_find_visit` for a generated key. A key that is not valid in this cache returns
/// false with `PIXCACHE_RESULT_INVALID_KEY`, as `pixcache_find_key` does.
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_key_visit(
    cache: *mut PixcacheCache,
    key: PixcacheKey,
    visit: PixcacheVisitFn,
    user_data: *mut c_void,
) -> bool {
    call(false, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let cache = unsafe { self::cache(cache) }?;
        let visit = visit.ok_or_else(|| super::boundary::null_error("visit"))?;
        let key = Key::from(key);
        // SAFETY: the caller promised `visit` may be called with `user_data`; `found` is valid
        // for the length of the call (the cache is locked meanwhile).
        match cache.visit_key(key, |pm| unsafe { call_visit(visit, user_data, pm) }) {
            Some(()) => Ok(true),
            None => Err(invalid_key_error(key)),
        }
    })
}

/// # Safety
/// `cache` as in the module contract; `visit` callable with `user_data`.
#[inline(always)]
unsafe fn visit_str(
    cache: *mut PixcacheCache,
    key: &[u8],
    visit: PixcacheVisitFn,
    user_data: *mut c_void,
) -> Result<bool, Error> {
    // SAFETY: forwarded to the caller.
    let cache = unsafe { self::cache(cache) }?;
    let visit = visit.ok_or_else(|| super::boundary::null_error("visit"))?;
    // SAFETY: forwarded to the caller; `found` is valid while the cache is locked.
    match cache.visit_bytes(key, |pm| unsafe { call_visit(visit, user_data, pm) }) {
        Some(found) => Ok(found.is_some()),
        None => utf8(key, "key").map(|_| false),
    }
}

/// Calls a visit callback with a cached pixmap, borrowed for the call.
///
/// # Safety
/// `visit` must be callable with `user_data` (the caller's promise).
#[inline(always)]
unsafe fn call_visit(
    visit: unsafe extern "C" fn(*mut c_void, *const PixcachePixmap, *mut c_void),
    user_data: *mut c_void,
    pm: &Pixmap,
) {
    let foreign = pm
        .foreign_token()
        .map_or(ptr::null_mut(), |t| t as *mut c_void);
    let found = ptr::from_ref(pm).cast::<PixcachePixmap>();
    // SAFETY: forwarded to the caller. `found` points to a live `Pixmap` (what handles point
    // to) for the length of the call, which the visit contract limits it to, and only for
    // reading.
    unsafe { visit(user_data, found, foreign) }
}

/// Inserts `pm` under a string key (`QPixmapCache::insert(QString, QPixmap)`), as the most
/// recently used entry, sharing its pixels (writes to `pm` afterwards detach it). Any previous
/// entry under `key` is removed first; then least recently used entries are evicted until the
/// new one fits. The empty string is a valid key.
///
/// Returns false when the pixmap costs more than the whole limit (`PIXCACHE_RESULT_REFUSED`:
/// nothing is evicted for it, and the key is left empty, as in Qt), or on a bad argument.
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert(
    cache: *mut PixcacheCache,
    key: *const c_char,
    pm: *const PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe { insert_str(cache, key_str(key)?, pm) })
}

/// `pixcache_insert` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    pm: *const PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        insert_str(cache, try_str_n(key, len, "key")?, pm)
    })
}

/// # Safety
/// `cache` and `pm` as in the module contract.
unsafe fn insert_str(
    cache: *mut PixcacheCache,
    key: &str,
    pm: *const PixcachePixmap,
) -> Result<bool, Error> {
    // SAFETY: forwarded to the caller.
    let cache = unsafe { self::cache(cache) }?;
    // A share of its own (the cache takes one anyway), so that no borrow of the caller's handle
    // is alive while the insert's evictions run release callbacks, which may use it.
    // SAFETY: forwarded to the caller.
    let pm = unsafe { pixmap(pm) }?.clone();
    cache.insert(key, pm)?;
    Ok(true)
}

/// `pixcache_insert_n` of a foreign pixmap made on the spot, as `pixcache_pixmap_wrap(width,
/// height, depth, user_data, release)` makes it, without a handle: for adapters that wrap each
/// toolkit pixmap they insert (the Qt adapter wraps a `QPixmap` copy), it saves allocating,
/// sharing and freeing the handle, and two calls.
///
/// Ownership of `user_data` passes to pixcache in every case: `release(user_data)` (if `release`
/// is not NULL) runs exactly once, outside every lock of pixcache, when the entry is dropped, or
/// before this returns if it fails (bad argument, refused, out of memory). Returns what
/// `pixcache_insert_n` returns.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn pixcache_insert_wrapped_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> bool {
    call(false, || {
        // SAFETY: C API contract (`release` callable once with `user_data`). Made first: every
        // failure below drops it, running `release`.
        let pm = unsafe { foreign_owned(width, height, depth, user_data, release) }?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` bytes.
        let (cache, key) = unsafe { (self::cache(cache)?, try_str_n(key, len, "key")?) };
        cache.insert(key, pm)?;
        Ok(true)
    })
}

/// Inserts `pm` under a new generated key (`QPixmapCache::insert(QPixmap)`) and returns it.
///
/// When the pixmap costs more than the whole limit it is refused (`PIXCACHE_RESULT_REFUSED`) and,
/// as in Qt, the returned key is a fresh one that is not valid (and never will be) yet is not
/// equal to the all-zero key. Test the result with `pixcache_key_is_valid`. On a bad argument
/// the all-zero key is returned.
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_key(
    cache: *mut PixcacheCache,
    pm: *const PixcachePixmap,
) -> PixcacheKey {
    call_reporting(PixcacheKey { id: 0 }, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        let cache = unsafe { self::cache(cache) }?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        // An owned share, so that no borrow of `pm` is alive while evictions run release
        // callbacks (see `insert_str`).
        Ok(insert_key(cache, unsafe { pixmap(pm) }?.clone()))
    })
}

/// `pixcache_insert_key` of a foreign pixmap made on the spot, without a handle, as
/// `pixcache_insert_wrapped_n` (and with the same ownership: `release(user_data)` runs exactly
/// once, when the entry is dropped or before this returns if it fails).
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_key_wrapped(
    cache: *mut PixcacheCache,
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> PixcacheKey {
    call_reporting(PixcacheKey { id: 0 }, || {
        // SAFETY: as in `pixcache_insert_wrapped_n`.
        let pm = unsafe { foreign_owned(width, height, depth, user_data, release) }?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or a live handle.
        Ok(insert_key(unsafe { self::cache(cache) }?, pm))
    })
}

/// `Cache::insert_key` as `pixcache_insert_key` reports it: the key, and the error of a refused
/// insert (which still returns its fresh, never-valid key).
fn insert_key(cache: &Cache, pm: impl Into<Pixmap>) -> (PixcacheKey, Option<Error>) {
    match cache.insert_key(pm) {
        Ok(key) => (key.into(), None),
        Err((never_valid, error)) => (never_valid.into(), Some(error)),
    }
}

/// `pixcache_replace` with a foreign pixmap made on the spot, without a handle, as
/// `pixcache_insert_wrapped_n` (and with the same ownership: `release(user_data)` runs exactly
/// once, when the entry is dropped or before this returns if it fails, `*key` not valid
/// included).
#[no_mangle]
pub unsafe extern "C" fn pixcache_replace_wrapped(
    cache: *mut PixcacheCache,
    key: *mut PixcacheKey,
    width: u32,
    height: u32,
    depth: u32,
    user_data: *mut c_void,
    release: PixcacheReleaseFn,
) -> bool {
    call(false, || {
        // SAFETY: as in `pixcache_insert_wrapped_n`.
        let pm = unsafe { foreign_owned(width, height, depth, user_data, release) }?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; see `replace`.
        unsafe { replace(self::cache(cache)?, key, pm) }
    })
}

/// Replaces the pixmap of a valid generated key (`QPixmapCache::replace`): the old entry is
/// removed, `pm` is inserted under a new key, and `*key` is updated to that key. Copies of the
/// old key become invalid and no longer equal `*key`.
///
/// Returns false, inserting nothing, when `*key` is not valid in this cache
/// (`PIXCACHE_RESULT_INVALID_KEY`). Returns false when `pm` costs more than the limit
/// (`PIXCACHE_RESULT_REFUSED`): the old entry is then gone and `*key` is unchanged and invalid.
#[no_mangle]
pub unsafe extern "C" fn pixcache_replace(
    cache: *mut PixcacheCache,
    key: *mut PixcacheKey,
    pm: *const PixcachePixmap,
) -> bool {
    call(false, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings
        // (checked in their order: `cache`, `pm`, then `key`).
        // `pm` as an owned share: see `insert_str`.
        unsafe { replace(self::cache(cache)?, key, pixmap(pm)?.clone()) }
    })
}

/// # Safety
/// `key` NULL or pointing to a `PixcacheKey` the caller owns.
unsafe fn replace(
    cache: &Cache,
    key: *mut PixcacheKey,
    pm: impl Into<Pixmap>,
) -> Result<bool, Error> {
    if key.is_null() {
        return Err(super::boundary::null_error("key"));
    }
    // Read and written back by value, with no reference kept across the call: the release
    // callbacks it runs (the old entry's) may read `*key` through C.
    // SAFETY: forwarded to the caller; `key` is not NULL, and `PixcacheKey` is a plain `u64`
    // (any bit pattern is valid).
    let mut k = Key::from(unsafe { key.read() });
    cache.replace(&mut k, pm)?;
    // SAFETY: as above.
    unsafe { key.write(k.into()) };
    Ok(true)
}

/// Removes the entry under a string key (`QPixmapCache::remove(QString)`). Returns whether there
/// was one; a missing key is not an error. Does not touch other entries' recency.
#[no_mangle]
pub unsafe extern "C" fn pixcache_remove(cache: *mut PixcacheCache, key: *const c_char) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || {
        Ok(unsafe { self::cache(cache)?.remove(key_str(key)?) })
    })
}

/// `pixcache_remove` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_remove_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || {
        Ok(unsafe { self::cache(cache)?.remove(try_str_n(key, len, "key")?) })
    })
}

/// Removes the entry of a generated key (`QPixmapCache::remove(Key)`); the key and all its
/// copies become invalid. A key that is not valid here returns false with
/// `PIXCACHE_RESULT_INVALID_KEY` as the last error, and removes nothing.
#[no_mangle]
pub unsafe extern "C" fn pixcache_remove_key(cache: *mut PixcacheCache, key: PixcacheKey) -> bool {
    call(false, || {
        let key = Key::from(key);
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        if unsafe { self::cache(cache) }?.remove_key(key) {
            Ok(true)
        } else {
            Err(invalid_key_error(key))
        }
    })
}

/// Removes every entry (`QPixmapCache::clear`); every generated key of this cache becomes invalid.
#[no_mangle]
pub unsafe extern "C" fn pixcache_clear(cache: *mut PixcacheCache) {
    call((), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        unsafe { self::cache(cache) }?.clear();
        Ok(())
    })
}

/// True while `key`'s entry is in `cache` (`QPixmapCache::Key::isValid`, which Qt asks of the
/// global cache). Does not touch recency. An invalid key is not an error: the answer is false.
#[no_mangle]
pub unsafe extern "C" fn pixcache_key_is_valid(
    cache: *const PixcacheCache,
    key: PixcacheKey,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || {
        Ok(unsafe { self::cache(cache) }?.key_is_valid(key.into()))
    })
}

/// The sum of the entries' costs in KB, exactly (a deliberate fix: Qt 6.4's `totalUsed`
/// divides by 1024 once too often). 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn pixcache_total_used(cache: *const PixcacheCache) -> i32 {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(0, || {
        Ok(clamp_kb(unsafe { self::cache(cache) }?.total_used()))
    })
}

/// `QPixmapCache::flushDetachedPixmaps()`, Qt's idle trim: evicts least recently used entries
/// until the total is at most three quarters of what it was (100 entries of 16 KB become 75).
/// Call it from the host's own idle timer: pixcache runs no timers, and no threads of its own
/// unless a memory-pressure watcher is started (`pixcache_watch_memory_pressure`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_flush_detached(cache: *mut PixcacheCache) {
    call((), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        unsafe { self::cache(cache) }?.flush_detached();
        Ok(())
    })
}

/// One tick of Qt 6.4's 30-second idle timer, for hosts that want Qt's exact idle behaviour:
/// if the total is unchanged since the previous tick, trims to three quarters; otherwise evicts
/// only the least recently used entry. Returns how many entries went (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_tick(cache: *mut PixcacheCache) -> usize {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(0, || Ok(unsafe { self::cache(cache) }?.tick()))
}

/// Counters and sizes of `cache` in one snapshot. All zero for NULL (with the last error set).
///
/// Call it as `pixcache_stats(cache)`: the header defines `pixcache_stats` as this function.
/// (`PixcacheStats` grew in 0.2; programs built against 0.1's header call the exported
/// `pixcache_stats` symbol, which still returns 0.1's shorter struct, so they keep working.)
#[no_mangle]
pub unsafe extern "C" fn pixcache_stats_v2(cache: *const PixcacheCache) -> PixcacheStats {
    call(PixcacheStats::default(), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        Ok(unsafe { self::cache(cache) }?.stats().into())
    })
}

/// Sets the statistics' counters (hits, misses, inserts, evictions, refused, removals) to zero
/// and `peak_kb` to the current total; sizes and limits are unchanged.
#[no_mangle]
pub unsafe extern "C" fn pixcache_reset_stats(cache: *mut PixcacheCache) {
    call((), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        unsafe { self::cache(cache) }?.reset_stats();
        Ok(())
    })
}

/// True when a string key is in the cache (or is a live image), without touching recency or
/// the statistics (a look that is not a use). False on a miss (not an error), and with the last
/// error set for a NULL `cache` or `key` or a key that is not UTF-8.
#[no_mangle]
pub unsafe extern "C" fn pixcache_contains(
    cache: *const PixcacheCache,
    key: *const c_char,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        Ok(self::cache(cache)?.contains(key_str(key)?))
    })
}

/// `pixcache_contains` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_contains_n(
    cache: *const PixcacheCache,
    key: *const c_char,
    len: usize,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        Ok(self::cache(cache)?.contains(try_str_n(key, len, "key")?))
    })
}

/// True while a generated key's entry is in the cache (or is a live image); touches neither
/// recency nor the statistics. The same answer as `pixcache_key_is_valid`: an invalid key is
/// false, not an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_contains_key(
    cache: *const PixcacheCache,
    key: PixcacheKey,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
    call(false, || {
        Ok(unsafe { self::cache(cache) }?.contains_key(key.into()))
    })
}

/// Looks a string key up like `pixcache_find` (on a hit `out` shares the pixmap; on a miss it
/// is untouched), but touches neither recency nor the statistics. `out` may be NULL (then it is
/// `pixcache_contains`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_peek(
    cache: *const PixcacheCache,
    key: *const c_char,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        let found = self::cache(cache)?.peek(key_str(key)?);
        give(found, out)
    })
}

/// `pixcache_peek` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_peek_n(
    cache: *const PixcacheCache,
    key: *const c_char,
    len: usize,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        let found = self::cache(cache)?.peek(try_str_n(key, len, "key")?);
        give(found, out)
    })
}

/// `pixcache_peek` for a generated key. A key that is not valid in this cache returns false with
/// `PIXCACHE_RESULT_INVALID_KEY`, as `pixcache_find_key` does.
#[no_mangle]
pub unsafe extern "C" fn pixcache_peek_key(
    cache: *const PixcacheCache,
    key: PixcacheKey,
    out: *mut PixcachePixmap,
) -> bool {
    call(false, || {
        let key = Key::from(key);
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let found = unsafe { self::cache(cache) }?.peek_key(key);
        // SAFETY: as above.
        unsafe { give(Some(found.ok_or_else(|| invalid_key_error(key))?), out) }
    })
}

/// Takes the entry under a string key out of the cache and gives its pixmap to `out` (which
/// then holds it; NULL: the pixmap is let go of, as `pixcache_remove` does). The removal
/// callback hears of it as `PIXCACHE_REMOVAL_TAKEN`. False when there was no such entry (not
/// an error), and with the last error set on a bad argument.
#[no_mangle]
pub unsafe extern "C" fn pixcache_take(
    cache: *mut PixcacheCache,
    key: *const c_char,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        let found = self::cache(cache)?.take(key_str(key)?);
        give(found, out)
    })
}

/// `pixcache_take` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_take_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        let found = self::cache(cache)?.take(try_str_n(key, len, "key")?);
        give(found, out)
    })
}

/// `pixcache_take` for a generated key, which becomes invalid. A key that is not valid in this
/// cache returns false with `PIXCACHE_RESULT_INVALID_KEY`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_take_key(
    cache: *mut PixcacheCache,
    key: PixcacheKey,
    out: *mut PixcachePixmap,
) -> bool {
    call(false, || {
        let key = Key::from(key);
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let found = unsafe { self::cache(cache) }?.take_key(key);
        // SAFETY: as above.
        unsafe { give(Some(found.ok_or_else(|| invalid_key_error(key))?), out) }
    })
}

/// Puts a found pixmap into the caller's handle (if any); true when something was found. What
/// the handle held before is dropped after it holds the new one, with no borrow of it left (its
/// release callback may use the handle).
///
/// # Safety
/// `out` is NULL or a live handle no other thread uses during the call.
unsafe fn give(found: Option<Pixmap>, out: *mut PixcachePixmap) -> Result<bool, Error> {
    let Some(found) = found else {
        return Ok(false);
    };
    if !out.is_null() {
        // SAFETY: forwarded to the caller.
        let old = std::mem::replace(unsafe { try_mut(out, "out") }?, found);
        drop(old);
    }
    Ok(true)
}

/// Inserts `pm` under a string key like `pixcache_insert`, costing `cost_kb` KB instead of
/// width × height × depth (for pixmaps whose memory is elsewhere or otherwise sized: GPU
/// textures, foreign pixmaps). A negative cost is `PIXCACHE_RESULT_INVALID_ARGUMENT` (nothing
/// changes); a cost above the limit is refused as `pixcache_insert` refuses. A cost of 0 is
/// allowed (such entries are bounded only by the count limit).
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_with_cost(
    cache: *mut PixcacheCache,
    key: *const c_char,
    pm: *const PixcachePixmap,
    cost_kb: i32,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe {
        let cache = self::cache(cache)?;
        let key = key_str(key)?;
        let pm = pixmap(pm)?.clone();
        cache.insert_with_cost(key, pm, i64::from(cost_kb))?;
        Ok(true)
    })
}

/// `pixcache_insert_with_cost` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_with_cost_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    pm: *const PixcachePixmap,
    cost_kb: i32,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes.
    call(false, || unsafe {
        let cache = self::cache(cache)?;
        let key = try_str_n(key, len, "key")?;
        let pm = pixmap(pm)?.clone();
        cache.insert_with_cost(key, pm, i64::from(cost_kb))?;
        Ok(true)
    })
}

/// `pixcache_insert_key` costing `cost_kb` KB (see `pixcache_insert_with_cost`). A negative cost
/// returns the all-zero key with `PIXCACHE_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_insert_key_with_cost(
    cache: *mut PixcacheCache,
    pm: *const PixcachePixmap,
    cost_kb: i32,
) -> PixcacheKey {
    call_reporting(PixcacheKey { id: 0 }, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let cache = unsafe { self::cache(cache) }?;
        // SAFETY: as above; an owned share (see `pixcache_insert_key`).
        let pm = unsafe { pixmap(pm) }?.clone();
        Ok(match cache.insert_key_with_cost(pm, i64::from(cost_kb)) {
            Ok(key) => (key.into(), None),
            Err((key, error)) => (key.into(), Some(error)),
        })
    })
}

/// The count limit (0: none, the default).
#[no_mangle]
pub unsafe extern "C" fn pixcache_count_limit(cache: *const PixcacheCache) -> usize {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
    call(0, || Ok(unsafe { self::cache(cache) }?.count_limit()))
}

/// Limits the number of entries to `n` beside the KB limit (0: no count limit, the default,
/// as in Qt). Lowering it evicts least recently used entries at once
/// (`PIXCACHE_REMOVAL_LIMIT_LOWERED`); an insert evicts until both limits hold. Returns how
/// many entries went.
#[no_mangle]
pub unsafe extern "C" fn pixcache_set_count_limit(cache: *mut PixcacheCache, n: usize) -> usize {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
    call(0, || Ok(unsafe { self::cache(cache) }?.set_count_limit(n)))
}

/// How much `pixcache_trim` lets go of. Each level keeps a fraction of the cache's *current*
/// total (under memory pressure memory is released even from a cache below its limit), least
/// recently used entries first; the limit is unchanged.
///
/// | level | keeps | Android `onTrimMemory` | Glide `trimMemory` / Flutter |
/// |---|---|---|---|
/// | `PIXCACHE_TRIM_MODERATE` | 1/2 | `RUNNING_MODERATE`, `UI_HIDDEN` | `UI_HIDDEN`: half |
/// | `PIXCACHE_TRIM_LOW` | 1/4 | `RUNNING_LOW`, `BACKGROUND` | |
/// | `PIXCACHE_TRIM_CRITICAL` | 1/8 | `RUNNING_CRITICAL`, `MODERATE` | |
/// | `PIXCACHE_TRIM_COMPLETE` | nothing | `COMPLETE` | `clearMemory`; Flutter `clear` |
pub type PixcacheTrimLevel = u32;

/// Keep half of the current total.
pub const PIXCACHE_TRIM_MODERATE: PixcacheTrimLevel = 1;
/// Keep a quarter.
pub const PIXCACHE_TRIM_LOW: PixcacheTrimLevel = 2;
/// Keep an eighth.
pub const PIXCACHE_TRIM_CRITICAL: PixcacheTrimLevel = 3;
/// Keep nothing.
pub const PIXCACHE_TRIM_COMPLETE: PixcacheTrimLevel = 4;

pub(crate) fn trim_level(level: PixcacheTrimLevel) -> Result<TrimLevel, Error> {
    match level {
        PIXCACHE_TRIM_MODERATE => Ok(TrimLevel::Moderate),
        PIXCACHE_TRIM_LOW => Ok(TrimLevel::Low),
        PIXCACHE_TRIM_CRITICAL => Ok(TrimLevel::Critical),
        PIXCACHE_TRIM_COMPLETE => Ok(TrimLevel::Complete),
        other => Err(Error::new(
            crate::error::ErrorKind::InvalidArgument,
            format!("unknown trim level {other} (PIXCACHE_TRIM_MODERATE..PIXCACHE_TRIM_COMPLETE are 1..4)"),
        )),
    }
}

/// Trims for memory pressure at `level` (see `PixcacheTrimLevel`); evicted entries are reported
/// as `PIXCACHE_REMOVAL_TRIMMED`. Returns how many entries went; 0 with
/// `PIXCACHE_RESULT_INVALID_ARGUMENT` for an unknown level.
#[no_mangle]
pub unsafe extern "C" fn pixcache_trim(
    cache: *mut PixcacheCache,
    level: PixcacheTrimLevel,
) -> usize {
    call(0, || {
        let level = trim_level(level)?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        Ok(unsafe { self::cache(cache) }?.trim(level))
    })
}

/// Evicts least recently used entries until the total is at most `kb` KB (0 or less: empty),
/// leaving the limit as it is. Returns how many entries went.
#[no_mangle]
pub unsafe extern "C" fn pixcache_trim_to(cache: *mut PixcacheCache, kb: i32) -> usize {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
    call(0, || {
        Ok(unsafe { self::cache(cache) }?.trim_to(i64::from(kb)))
    })
}

/// Live images, off by default: while on, an entry evicted (for room, by a trim or a lowered
/// limit) whose pixmap some handle still shares stays findable under its key for as long as it
/// is shared, without counting against the limit (`PixcacheStats::live_kb`), as Flutter's
/// `ImageCache` keeps live images. A find that meets one puts it back into the cache as the most
/// recently used entry (if it fits); `pixcache_contains` and `pixcache_peek` see it without
/// moving it; remove, take, clear and an insert under its key forget it. Turning it off lets go
/// of every live image. Pixels nobody shares any more are freed at the cache's next write.
#[no_mangle]
pub unsafe extern "C" fn pixcache_set_live_images(cache: *mut PixcacheCache, on: bool) {
    call((), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        unsafe { self::cache(cache) }?.set_live_images(on);
        Ok(())
    })
}

/// Whether live images are on (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn pixcache_live_images(cache: *const PixcacheCache) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
    call(false, || Ok(unsafe { self::cache(cache) }?.live_images()))
}

/// Produces the pixmap for a key `pixcache_find_or_insert_with` did not find: writes it into
/// `pixmap` (a null pixmap handle owned by pixcache, valid only during the call: assign to it, or
/// write its pixels) and returns true; or returns false to fail. To say why it failed, leave an
/// error as its last pixcache call: a failed call's (e.g. `pixcache_pixmap_load`'s
/// `PIXCACHE_RESULT_IO`) or one of its own (`pixcache_set_error`). It runs outside every pixcache
/// lock and may call pixcache (for other keys). It must not throw or `longjmp` out.
pub type PixcacheProduceFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, pixmap: *mut PixcachePixmap) -> bool>;

/// Finds `key`, or produces, caches and returns its pixmap — once. On a hit it is
/// `pixcache_find`. On a miss it calls `produce(user_data, pixmap)` and inserts the result; other
/// threads asking for the same key meanwhile wait for that one call instead of producing again,
/// and threads asking for other keys are never blocked by it. `out` (may be NULL) then shares
/// the pixmap, even if it was too large to cache.
///
/// Returns false with the last error set when an argument is bad or the producer fails. When
/// the producer returns false, this call and every caller waiting on the same production (on
/// any thread) fail with the same code and message, nothing is inserted, and a later call
/// produces again. The code is the producer's own: the result its thread was left with when it
/// returned (a producer whose `pixcache_pixmap_load` failed gives `PIXCACHE_RESULT_IO` for a
/// missing file and `PIXCACHE_RESULT_DECODE` for a corrupt one; a producer may also set one with
/// `pixcache_set_error`), and the message names the key, then gives that error's message. A
/// producer that returns false with no error set (its last result `PIXCACHE_RESULT_OK`; an
/// error left before this call does not count) gives `PIXCACHE_RESULT_PRODUCER_FAILED`, with a
/// message naming the key.
///
/// `PIXCACHE_RESULT_INVALID_ARGUMENT` is the caller's own mistake: a producer asking for its
/// own key gets it rather than a deadlock, and so does a producer whose wait would close a
/// cycle of producers waiting for each other (A's producer asks for B's key while B's asks for
/// A's, in the same cache or not); the productions in the cycle then fail (with that code, if
/// their producers return false right after the failed call).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_or_insert_with(
    cache: *mut PixcacheCache,
    key: *const c_char,
    produce: PixcacheProduceFn,
    user_data: *mut c_void,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings; `produce`
    // may be called with `user_data`.
    call(false, || unsafe {
        produce_str(cache, key_str(key)?, produce, user_data, out)
    })
}

/// `pixcache_find_or_insert_with` with a key of `len` bytes at `key` (UTF-8, not NUL-terminated,
/// so it may contain NUL bytes).
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_or_insert_with_n(
    cache: *mut PixcacheCache,
    key: *const c_char,
    len: usize,
    produce: PixcacheProduceFn,
    user_data: *mut c_void,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles; `len` readable bytes;
    // `produce` may be called with `user_data`.
    call(false, || unsafe {
        produce_str(cache, try_str_n(key, len, "key")?, produce, user_data, out)
    })
}

/// # Safety
/// `cache` and `out` as in the module contract; `produce` may be called with `user_data` and a
/// live pixmap handle.
unsafe fn produce_str(
    cache: *mut PixcacheCache,
    key: &str,
    produce: PixcacheProduceFn,
    user_data: *mut c_void,
    out: *mut PixcachePixmap,
) -> Result<bool, Error> {
    // SAFETY: forwarded to the caller.
    let cache = unsafe { self::cache(cache) }?;
    let produce = produce.ok_or_else(|| super::boundary::null_error("produce"))?;
    let producer = || {
        let handle = into_raw::<PixcachePixmap>(Pixmap::null())?;
        // So that a failure report carries only what the producer itself set.
        super::error::clear_last_error();
        // SAFETY: the caller promised `produce` may be called with `user_data` and a live
        // pixmap handle; `handle` is one, owned by us for the duration of the call.
        let ok = unsafe { produce(user_data, handle) };
        // SAFETY: `handle` came from `into_raw` above and the producer only borrowed it.
        let produced = unsafe { Box::from_raw(handle.cast::<Pixmap>()) };
        if ok {
            Ok(*produced)
        } else {
            Err(producer_failed(key))
        }
    };
    // SAFETY: C API contract: `out` is NULL or a live handle no other thread uses now.
    unsafe { find_or_insert(cache, key, out, producer) }
}

/// `pixcache_find_or_insert_with` for an image file: finds it, or decodes it
/// (`pixcache_pixmap_load`, bounded by `pixcache_set_decode_limits`) and caches it, once however
/// many threads ask for it at the same time. The key is the file's identity, as Qt's
/// `QPixmap::load` makes it (its absolute path, size and modification time) and also its device,
/// inode and status-change time (`pixcache_file_key`): a file edited since it was cached, or
/// replaced by another of the same size and time, is loaded again (the stale entry goes the way
/// of any unused entry). The path is made absolute, not canonical: the same file through a
/// symbolic link or `..` is another entry. The path is any bytes (need not be UTF-8).
///
/// False with the last error set if it cannot be read (`PIXCACHE_RESULT_IO`, e.g. a missing
/// file) or decoded (`PIXCACHE_RESULT_DECODE`, `PIXCACHE_RESULT_TOO_LARGE`): the loader's code
/// and message, for this caller and every caller waiting for the same file.
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_or_load(
    cache: *mut PixcacheCache,
    path: *const c_char,
    out: *mut PixcachePixmap,
) -> bool {
    // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
    call(false, || unsafe { find_or_load(cache, path, None, out) })
}

/// `pixcache_find_or_load` converting the image to `format` (`PIXCACHE_FORMAT_*`, as
/// `pixcache_pixmap_load_as`; `PIXCACHE_FORMAT_INVALID`: the file's own format, as
/// `pixcache_find_or_load`). The format is part of the key: the same file in two formats is two
/// entries.
#[no_mangle]
pub unsafe extern "C" fn pixcache_find_or_load_as(
    cache: *mut PixcacheCache,
    path: *const c_char,
    format: PixcacheFormat,
    out: *mut PixcachePixmap,
) -> bool {
    call(false, || {
        let format = super::pixmap::optional_format(format)?;
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles and strings.
        unsafe { find_or_load(cache, path, format, out) }
    })
}

/// # Safety
/// As the module contract: `cache`, `path` and `out` NULL or live.
unsafe fn find_or_load(
    cache: *mut PixcacheCache,
    path: *const c_char,
    format: Option<crate::images::format::Format>,
    out: *mut PixcachePixmap,
) -> Result<bool, Error> {
    // SAFETY: forwarded to the caller.
    let (cache, path) = unsafe {
        (
            self::cache(cache)?,
            super::boundary::try_path(path, "path")?,
        )
    };
    let key = crate::images::file_key::file_key(path, format)?;
    let producer = || match format {
        None => crate::images::decode::load(path),
        Some(f) => crate::images::decode::load_as(path, f),
    };
    // SAFETY: forwarded to the caller.
    unsafe { find_or_insert(cache, &key, out, producer) }
}

/// Writes the key under which `pixcache_find_or_load` (`format` = `PIXCACHE_FORMAT_INVALID`) or
/// `pixcache_find_or_load_as` caches the file `path` now (its absolute path, size, modification
/// time and the format), NUL-terminated, into `buf` of `buf_len` bytes, as `snprintf` does: the
/// return value is the key's length without the NUL, and if it is `buf_len` or more the key was
/// cut (`buf` may be NULL when `buf_len` is 0, to ask for the length). With it, the entry can be
/// found, peeked at or removed with the string-key functions. 0 with the last error set if the
/// file's metadata cannot be read (`PIXCACHE_RESULT_IO`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_file_key(
    path: *const c_char,
    format: PixcacheFormat,
    buf: *mut c_char,
    buf_len: usize,
) -> usize {
    call(0, || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or NUL-terminated strings.
        let path = unsafe { super::boundary::try_path(path, "path") }?;
        let key = crate::images::file_key::file_key(path, super::pixmap::optional_format(format)?)?;
        if buf_len > 0 {
            if buf.is_null() {
                return Err(super::boundary::null_error("buf"));
            }
            let n = key.len().min(buf_len - 1);
            // SAFETY: the caller gives `buf_len` writable bytes at `buf` (checked non-NULL);
            // `n + 1 <= buf_len`.
            unsafe {
                ptr::copy_nonoverlapping(key.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        Ok(key.len())
    })
}

unsafe fn find_or_insert(
    cache: &Cache,
    key: &str,
    out: *mut PixcachePixmap,
    producer: impl FnOnce() -> Result<Pixmap, Error>,
) -> Result<bool, Error> {
    // Found or produced into a pixmap of our own, then swapped into `out`: what `out` held is
    // dropped with no borrow of it left (its release callback may use the caller's handle), and
    // on failure `out` is untouched.
    let mut value = Pixmap::null();
    cache.find_or_insert_with(key, &mut value, producer)?;
    // SAFETY: forwarded to the caller.
    unsafe { give(Some(value), out) }
}

/// The error of a producer that returned false, made on its own thread right after it returned:
/// its last pixcache error (a failed call's, or `pixcache_set_error`'s), code and message, with
/// the key added to the message; `PIXCACHE_RESULT_PRODUCER_FAILED` if it left none. The flight
/// hands this value to every waiter, so they get the producer thread's error, not their own.
fn producer_failed(key: &str) -> Error {
    match super::error::last_error() {
        Some(why) => Error::new(
            why.kind(),
            format!("the producer for \"{key}\" failed: {}", why.message()),
        ),
        None => Error::new(
            crate::error::ErrorKind::ProducerFailed,
            format!("the producer for \"{key}\" failed without setting an error"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_is_stable_and_never_freed() {
        let g = pixcache_global();
        assert!(!g.is_null());
        assert_eq!(g, pixcache_global());
        // SAFETY: `g` is the global cache, which free ignores and which stays valid.
        unsafe {
            pixcache_cache_free(g);
            assert!(pixcache_cache_limit(g) != 0);
        }
    }

    #[test]
    fn null_cache_is_an_error() {
        // SAFETY: NULL handles are part of the contract; the key is a C string literal.
        let found = unsafe { pixcache_find(ptr::null_mut(), c"a".as_ptr(), ptr::null_mut()) };
        assert!(!found);
        assert_eq!(
            super::super::error::pixcache_last_result(),
            super::super::error::PixcacheResult::NullArgument
        );
    }
}
