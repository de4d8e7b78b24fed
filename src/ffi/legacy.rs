//! Exported symbols kept for programs built against an earlier header, with the layouts that
//! header declared. Not in today's header (cbindgen ignores this module): a program built now
//! calls the current functions.

use super::boundary::call;
use super::cache::{cache, PixcacheCache};

/// 0.1's `PixcacheStats`: what a program built against 0.1's header expects back from
/// `pixcache_stats` (a struct returned by value: the caller sets aside room for exactly this).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixcacheStatsV1 {
    /// As today's `entries`.
    pub entries: usize,
    /// As today's `total_kb`.
    pub total_kb: i32,
    /// As today's `limit_kb`.
    pub limit_kb: i32,
    /// As today's `hits`.
    pub hits: u64,
    /// As today's `misses`.
    pub misses: u64,
    /// As today's `inserts`.
    pub inserts: u64,
    /// As today's `evictions`.
    pub evictions: u64,
    /// As today's `refused`.
    pub refused: u64,
}

/// 0.1's `pixcache_stats`, for programs built against 0.1's header (today's header names
/// `pixcache_stats_v2` `pixcache_stats`).
#[no_mangle]
pub unsafe extern "C" fn pixcache_stats(cache: *const PixcacheCache) -> PixcacheStatsV1 {
    call(PixcacheStatsV1::default(), || {
        // SAFETY: C API contract (module docs of `ffi`): NULL or live handles.
        let s = unsafe { self::cache(cache) }?.stats();
        let now = super::cache::PixcacheStats::from(s);
        Ok(PixcacheStatsV1 {
            entries: now.entries,
            total_kb: now.total_kb,
            limit_kb: now.limit_kb,
            hits: now.hits,
            misses: now.misses,
            inserts: now.inserts,
            evictions: now.evictions,
            refused: now.refused,
        })
    })
}
