//! `pixcache_local_*`: thread-affine caches, for hosts that call their cache from one thread
//! (as Qt's own `QPixmapCache` is called) and want no lock at all.
//!
//! A `PixcacheLocal` belongs to the thread that made it; a call from any other thread does
//! nothing and reports `PIXCACHE_RESULT_WRONG_THREAD` (never a data race). The owner can give
//! it up (`pixcache_local_release_thread`) and another thread take it
//! (`pixcache_local_claim`); nothing else moves it. Its values are not pixmaps but
//! //! `PixcacheValue`s: 32 bytes of the caller's that the cache moves with `memcpy` and hands to
//! the cache's release function when their entry leaves (a C++ `QPixmap` constructed in place,
//! a pointer with its length, a handle). The algorithm is `local.rs`; the ownership rule is
//! `sync/affine.rs`; this file only translates.

use std::ffi::c_char;
use std::sync::Arc;

use super::boundary::{call, free, into_raw, null_error, try_bytes_n, try_ref, Handle};
use super::cache::PixcacheStats;
use super::key::PixcacheKey;
use crate::cache::check_cost;
use crate::error::{Error, ErrorKind, Result};
use crate::garbage::Garbage;
use crate::key::Key;
use crate::local::{LocalCache, ValidKeys};
use crate::sync::affine::{Affine, Refusal};

/// A value held by a thread-affine cache: 32 bytes, 8-byte aligned, that are the caller's to
/// interpret. The cache moves values with `memcpy` (so a value must not point into itself: a C++
/// type must be trivially relocatable, as Qt's implicitly shared classes are) and never reads
/// them; each value it accepted is handed to the cache's release function exactly once.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixcacheValue {
    /// Opaque to pixcache.
    pub words: [u64; 4],
}

/// Called once for each value a thread-affine cache lets go of (evicted, removed, replaced,
/// cleared, refused, or left when the cache is freed), on the thread making the call that let it
/// go, after the cache is consistent again: it may call the cache (except
/// `pixcache_local_free`). `value` is valid only during the call.
pub type PixcacheReleaseValue = Option<unsafe extern "C" fn(value: *mut PixcacheValue)>;

/// A thread-affine cache (`pixcache_local_new`). Opaque.
pub struct PixcacheLocal {
    _opaque: [u8; 0],
}

impl Handle for PixcacheLocal {
    type Target = Local;
}

/// What a `PixcacheLocal` handle points to.
pub struct Local {
    engine: Affine<Engine>,
    release: unsafe extern "C" fn(*mut PixcacheValue),
    /// The engine's valid generated keys, for `pixcache_local_key_is_valid` on any thread.
    valid_keys: Arc<ValidKeys>,
}

struct Engine {
    cache: LocalCache<Owned>,
    /// Set during an operation: still set when the next one comes, a panic interrupted it, and
    /// the cache is reset rather than trusted.
    dirty: bool,
}

impl Engine {
    /// Replaces a cache a panic left half changed by an empty one with the same limit (and the
    /// same valid-key table, which `Local` shares). The old one is dropped whole, so its values
    /// are released here, inside the call: a release function that calls the cache then is
    /// refused (`WRONG_THREAD`). Only after a bug.
    #[cold]
    fn reset(&mut self) {
        drop(self.cache.renew());
    }
}

/// A value the cache holds, with the function that releases it.
#[repr(C)]
struct Owned {
    value: PixcacheValue,
    release: unsafe extern "C" fn(*mut PixcacheValue),
}

// SAFETY: a value is only ever reached by its cache's owning thread (sync/affine.rs), which is
// also the thread that frees the cache (`pixcache_local_free` is refused on any other).
unsafe impl Send for Owned {}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: `release` is the cache's release function, called once per value (this
        // drop), with a pointer valid for the call, per `pixcache_local_new`'s contract.
        unsafe { (self.release)(&mut self.value) }
    }
}

fn wrong_thread(refusal: Refusal) -> Error {
    Error::new(
        ErrorKind::WrongThread,
        match refusal {
            Refusal::OtherThread => "the thread-affine cache belongs to another thread",
            Refusal::Nested => "the thread-affine cache is already inside a call on this thread",
        },
    )
}

impl Local {
    /// Runs `f` on the cache if the calling thread owns it (binding it if no thread does).
    /// Whatever `f` lets go of is released after the cache is consistent again and no longer
    /// borrowed, so a release function may call the cache.
    #[inline(always)]
    fn with<R>(
        &self,
        f: impl FnOnce(&mut LocalCache<Owned>, &mut Garbage<Owned>) -> R,
    ) -> Result<R> {
        let mut gone = Garbage::new();
        let result = self.engine.with(|e| {
            if e.dirty {
                e.reset();
            }
            e.dirty = true;
            let r = f(&mut e.cache, &mut gone);
            e.dirty = false;
            r
        });
        // Only the owner gets here with values to release (a refused call let go of nothing).
        // Meanwhile the owner cannot let the cache go or free it from a release function.
        if !gone.is_empty() {
            self.engine.finishing(|| gone.drop_all());
        }
        result.map_err(wrong_thread)
    }

    /// [`Local::with`] for a lookup, which lets go of nothing: no bag to make and empty. (A
    /// lookup that finds the cache broken by an earlier panic goes the long way.)
    #[inline(always)]
    fn lookup<R>(&self, f: impl FnOnce(&mut LocalCache<Owned>) -> R) -> Result<R> {
        let mut f = Some(f);
        let result = self.engine.with(|e| match e.dirty {
            false => f.take().map(|f| f(&mut e.cache)),
            true => None,
        });
        match (result, f) {
            (Ok(Some(r)), _) => Ok(r),
            (Ok(None), Some(f)) => self.lookup_renewing(f),
            (Ok(None), None) => unreachable!("a lookup's closure runs once"),
            (Err(refusal), _) => Err(wrong_thread(refusal)),
        }
    }

    /// [`Local::lookup`] on a cache an earlier panic left broken, which [`Local::with`] renews
    /// first. Out of line: its bag and frame would otherwise weigh on every lookup (~0.5 ns).
    #[cold]
    #[inline(never)]
    fn lookup_renewing<R>(&self, f: impl FnOnce(&mut LocalCache<Owned>) -> R) -> Result<R> {
        self.with(|c, _| f(c))
    }

    /// The value a caller passes in, owned: from here on it is released exactly once.
    ///
    /// # Safety
    /// `value` is NULL or points to a readable `PixcacheValue`.
    unsafe fn own(&self, value: *const PixcacheValue) -> Result<Owned> {
        // SAFETY: per this function's contract.
        let value = *unsafe { value.as_ref() }.ok_or_else(|| null_error("value"))?;
        Ok(Owned {
            value,
            release: self.release,
        })
    }
}

/// # Safety
/// `local` is NULL or a live handle (the module contract, `ffi/mod.rs`). Every access to the
/// cache behind it goes through `Affine`, which admits one thread at a time.
#[inline(always)]
unsafe fn local<'a>(local: *const PixcacheLocal) -> Result<&'a Local> {
    // SAFETY: per this function's contract.
    unsafe { try_ref(local, "local") }
}

/// A name: `len` bytes at `key` (any bytes, not only UTF-8; the Qt replacement passes UTF-16
/// code units).
///
/// # Safety
/// As `try_bytes_n`.
#[inline(always)]
unsafe fn name<'a>(key: *const c_char, len: usize) -> Result<&'a [u8]> {
    // SAFETY: per this function's contract.
    unsafe { try_bytes_n(key, len, "key") }
}

/// The value a closure passed to [`Local::with`] inserts. The closure borrows it rather than
/// capturing it: moving a value into the closure, and the closure into `with`, copied it with
/// wide loads of narrow stores (a store-forwarding stall, ~2 ns an insert). When `with` refuses,
/// the value stays in the `Option`, which releases it.
#[inline(always)]
fn take(owned: &mut Option<Owned>) -> Owned {
    owned.take().expect("a closure given to `with` runs once")
}

/// A pointer to a found value, valid until the next call on the cache.
fn found(value: Option<&Owned>) -> *const PixcacheValue {
    value.map_or(std::ptr::null(), |o| &o.value)
}

/// Makes a thread-affine cache holding at most `limit_kb` KB (Qt's default is 10240), whose
/// values are released by `release`, owned by the calling thread. It also holds at most
/// 16,777,216 (2^24) entries at once: past that, an insert evicts the least recently used entry,
/// as a count limit would (each generated key names its entry's place in 24 bits). NULL with `NULL_ARGUMENT`
/// when `release` is NULL, `INVALID_ARGUMENT` when the limit is negative.
///
/// Only the owning thread may use it: calls from other threads do nothing and report
/// `PIXCACHE_RESULT_WRONG_THREAD` (except `pixcache_local_key_is_valid`). The owner may give it
/// up with `pixcache_local_release_thread`, and another thread then take it with
/// `pixcache_local_claim`. `release` is called once for each value passed to an insert or
/// replace with a non-NULL cache: on the owning thread when its entry leaves, or on the calling
/// thread when the call does not insert it (refused, invalid, wrong thread). A thread that ends
/// while it owns the cache should free it or release it first: otherwise no other thread can
/// use or free it.
#[no_mangle]
pub extern "C" fn pixcache_local_new(
    limit_kb: i32,
    release: PixcacheReleaseValue,
) -> *mut PixcacheLocal {
    call(std::ptr::null_mut(), || {
        let release = release.ok_or_else(|| null_error("release"))?;
        if limit_kb < 0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("limit_kb {limit_kb} is negative"),
            ));
        }
        let cache = LocalCache::new(limit_kb);
        let valid_keys = Arc::clone(cache.valid_keys());
        into_raw(Local {
            engine: Affine::new(Engine {
                cache,
                dirty: false,
            }),
            release,
            valid_keys,
        })
    })
}

/// Frees a thread-affine cache, releasing every value it holds, on the calling thread, which
/// must own it: otherwise nothing is freed, and false with `WRONG_THREAD` (also from inside a
/// release function the cache is running). NULL does nothing and returns true. The values are
/// released while the cache still exists (a release function may call it, but not free it);
/// values inserted meanwhile are released as the cache goes, and those releases must not call
/// it.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_free(local: *mut PixcacheLocal) -> bool {
    call(false, || {
        if local.is_null() {
            return Ok(true);
        }
        // SAFETY: non-NULL, and a live handle per the module contract.
        let l = unsafe { self::local(local) }?;
        // Refused, changing nothing, off the owner or inside a release function (`finishing`):
        // then an outer call is still using the cache.
        l.engine.may_release().map_err(wrong_thread)?;
        l.with(|c, gone| c.clear(gone))?;
        l.engine.release().map_err(wrong_thread)?;
        // SAFETY: a live handle from `pixcache_local_new`, which C gives back here; this thread
        // owned it until just now, no call of this thread is inside it, and the contract says no
        // other thread uses a handle being freed.
        unsafe { free(local) };
        Ok(true)
    })
}

/// Gives up the calling thread's ownership of the cache (its entries stay), so that another
/// thread can `pixcache_local_claim` it. For a host whose one cache-using thread changes (Qt's
/// application object made again on another thread). False with `WRONG_THREAD` when the
/// calling thread does not own it or is inside one of its release functions; NULL: false with
/// `NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_release_thread(local: *const PixcacheLocal) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.engine.release().map_err(wrong_thread)?;
        Ok(true)
    })
}

/// Makes the calling thread the owner of a cache no thread owns (one given up with
/// `pixcache_local_release_thread`); true also when it owns it already. False with
/// `WRONG_THREAD` when another thread owns it; NULL: false with `NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_claim(local: *const PixcacheLocal) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        if l.engine.claim() {
            Ok(true)
        } else {
            Err(wrong_thread(Refusal::OtherThread))
        }
    })
}

/// Finds the value under the string key `key[0..len]` (any bytes; NULL with `len` 0 is the
/// empty key) and makes it the most recently used. Returns a pointer to the value inside the
/// cache, valid until the next `pixcache_local_*` call on this cache (copy it out at once), or
/// NULL: a miss (`pixcache_last_result()` is `OK`) or an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_find_n(
    local: *const PixcacheLocal,
    key: *const c_char,
    len: usize,
) -> *const PixcacheValue {
    call(std::ptr::null(), || {
        // SAFETY: the module contract.
        let (l, key) = unsafe { (self::local(local)?, name(key, len)?) };
        l.lookup(|c| found(c.find(key)))
    })
}

/// `pixcache_local_find_n` for a generated key. A stale, forged or foreign key finds nothing.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_find_key(
    local: *const PixcacheLocal,
    key: PixcacheKey,
) -> *const PixcacheValue {
    call(std::ptr::null(), || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        // Inlined: a call to the lookup closure was ~1 ns of a hit.
        l.lookup(
            #[inline(always)]
            |c| found(c.find_key(Key::from(key))),
        )
    })
}

/// Inserts the value `*value` (copied with `memcpy`; the cache owns it from now on) under the
/// string key `key[0..len]`, costing `cost_kb` KB, as `QPixmapCache::insert(QString, QPixmap)`:
/// the entry already under the key is removed first. False when refused (`REFUSED`: it costs
/// more than the whole limit; the old entry stays removed) or on an error; every value passed
/// is released, inserted or not (with a NULL `local` there is no release function to call: the value stays yours).
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_insert_n(
    local: *const PixcacheLocal,
    key: *const c_char,
    len: usize,
    value: *const PixcacheValue,
    cost_kb: i64,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        // SAFETY: as above; owned from here on, so released on every path below.
        let mut owned = Some(unsafe { l.own(value) }?);
        // SAFETY: the module contract.
        let key = unsafe { name(key, len) }?;
        check_cost(cost_kb)?;
        l.with(|c, gone| c.insert(key, take(&mut owned), cost_kb, gone))??;
        Ok(true)
    })
}

/// Inserts `*value` under a new generated key and returns it (`QPixmapCache::insert(QPixmap)`).
/// Refused: a key that was never valid, with `REFUSED` (the value is released); an error: the
/// invalid key `{0}`.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_insert_key(
    local: *const PixcacheLocal,
    value: *const PixcacheValue,
    cost_kb: i64,
) -> PixcacheKey {
    // A refused insert still returns its (never valid) key, beside the error. Kept out of the
    // closure's result: a (key, error) pair carried through `call_reporting` cost a key insert
    // store-forwarding stalls.
    let mut refused = PixcacheKey { id: 0 };
    let key = call(PixcacheKey { id: 0 }, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        // SAFETY: as above.
        let mut owned = Some(unsafe { l.own(value) }?);
        check_cost(cost_kb)?;
        match l.with(|c, gone| c.insert_key(take(&mut owned), cost_kb, gone))? {
            Ok(key) => Ok(PixcacheKey::from(key)),
            Err((key, error)) => {
                refused = key.into();
                Err(error)
            }
        }
    });
    if key.id == 0 {
        refused
    } else {
        key
    }
}

/// `QPixmapCache::replace`: when `*key` is valid here, removes its entry, inserts `*value` under
/// a new key and stores that key in `*key`. False with `INVALID_KEY` (nothing inserted) for a
/// key that is not valid, `REFUSED` when the value costs more than the limit (the old entry is
/// gone, `*key` unchanged). The value is released whenever it is not inserted.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_replace(
    local: *const PixcacheLocal,
    key: *mut PixcacheKey,
    value: *const PixcacheValue,
    cost_kb: i64,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        // SAFETY: as above.
        let mut owned = Some(unsafe { l.own(value) }?);
        // SAFETY: `key` is NULL or points to a key the caller lets this call update.
        let key = unsafe { key.as_mut() }.ok_or_else(|| null_error("key"))?;
        check_cost(cost_kb)?;
        let mut k = Key::from(*key);
        l.with(|c, gone| c.replace(&mut k, take(&mut owned), cost_kb, gone))??;
        *key = k.into();
        Ok(true)
    })
}

/// Removes the entry under the string key `key[0..len]`, releasing its value; false when there
/// was none (`OK`) or on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_remove_n(
    local: *const PixcacheLocal,
    key: *const c_char,
    len: usize,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let (l, key) = unsafe { (self::local(local)?, name(key, len)?) };
        l.with(|c, gone| c.remove(key, gone))
    })
}

/// Removes the entry of a generated key; false when the key is not valid here.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_remove_key(
    local: *const PixcacheLocal,
    key: PixcacheKey,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.with(|c, gone| c.remove_key(Key::from(key), gone))
    })
}

/// Removes every entry, releasing their values; every generated key becomes invalid. False
/// only on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_clear(local: *const PixcacheLocal) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.with(|c, gone| c.clear(gone))?;
        Ok(true)
    })
}

/// True while the entry of `key` is in this cache (`QPixmapCache::Key::isValid`). Touches
/// neither recency nor statistics. The one `pixcache_local_*` function any thread may call: from
/// a thread other than the owner it answers as of some moment during the call.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_key_is_valid(
    local: *const PixcacheLocal,
    key: PixcacheKey,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        // One load, on any thread: no need to own the cache.
        Ok(l.valid_keys.contains(Key::from(key)))
    })
}

/// The limit in KB; -1 on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_cache_limit(local: *const PixcacheLocal) -> i32 {
    call(-1, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.lookup(|c| c.limit())
    })
}

/// Sets the limit in KB, evicting least recently used entries until the total fits (a limit of
/// 0 or less empties the cache and holds nothing, as in Qt). False only on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_set_cache_limit(
    local: *const PixcacheLocal,
    limit_kb: i32,
) -> bool {
    call(false, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.with(|c, gone| c.set_limit(limit_kb, gone))?;
        Ok(true)
    })
}

/// Sum of the entries' costs in KB; -1 on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_total_used(local: *const PixcacheLocal) -> i64 {
    call(-1, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.lookup(|c| c.total_used())
    })
}

/// One tick of Qt 6.4's idle timer (as `pixcache_tick`): trims to three quarters when the total
/// is unchanged since the previous tick, else evicts the least recently used entry. Returns how
/// many entries went; 0 on an error too.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_tick(local: *const PixcacheLocal) -> usize {
    call(0, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.with(|c, gone| c.tick(gone))
    })
}

/// `QPixmapCache::flushDetachedPixmaps()`: trims to three quarters of the total. Returns how
/// many entries went; 0 on an error too.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_flush_detached(local: *const PixcacheLocal) -> usize {
    call(0, || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.with(|c, gone| c.flush_detached(gone))
    })
}

/// The cache's counters and sizes (the fields for opt-in extras a thread-affine cache does not
/// have are 0). All zero on an error.
#[no_mangle]
pub unsafe extern "C" fn pixcache_local_stats(local: *const PixcacheLocal) -> PixcacheStats {
    call(PixcacheStats::default(), || {
        // SAFETY: the module contract.
        let l = unsafe { self::local(local) }?;
        l.lookup(|c| PixcacheStats::from(c.stats()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RELEASED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_release(_value: *mut PixcacheValue) {
        RELEASED.fetch_add(1, Ordering::Relaxed);
    }

    /// A lookup that finds the cache left broken by a panic (its `dirty` flag still set) renews
    /// it first: every value released once, every key invalid, the cache usable again.
    #[test]
    fn a_lookup_after_an_interrupted_call_renews_the_cache() {
        let value = PixcacheValue {
            words: [1, 2, 3, 4],
        };
        let l = pixcache_local_new(100, Some(count_release));
        assert!(!l.is_null());
        // SAFETY: `l` is live until the free below; `value` outlives each call.
        unsafe {
            let keys: Vec<PixcacheKey> = (0..3)
                .map(|_| pixcache_local_insert_key(l, &value, 1))
                .collect();
            assert!(!pixcache_local_find_key(l, keys[0]).is_null());
            // What a panic inside an operation leaves behind.
            local(l).unwrap().engine.with(|e| e.dirty = true).unwrap();
            let before = RELEASED.load(Ordering::Relaxed);
            assert!(pixcache_local_find_key(l, keys[1]).is_null());
            assert_eq!(RELEASED.load(Ordering::Relaxed) - before, 3);
            assert!(keys.iter().all(|&k| !pixcache_local_key_is_valid(l, k)));
            let fresh = pixcache_local_insert_key(l, &value, 1);
            assert!(!pixcache_local_find_key(l, fresh).is_null());
            assert_eq!(pixcache_local_stats(l).entries, 1);
            assert!(pixcache_local_free(l));
        }
        // Other tests of this binary make no thread-affine caches with this release function.
        assert_eq!(RELEASED.load(Ordering::Relaxed), 4);
    }
}
