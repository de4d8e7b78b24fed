//! `PixcacheKey`: generated keys as plain values (the `QPixmapCache::Key` twin).

use crate::key::Key;

/// A generated key, returned by `pixcache_insert_key` and updated by `pixcache_replace`. A plain
/// value: copy it freely, compare with `pixcache_key_equal`, never free it. All-zero (`{0}`) is
/// the invalid key, like a default-constructed `QPixmapCache::Key`.
///
/// A key is valid exactly while its entry is in the cache that issued it (see
/// `pixcache_key_is_valid`). Key values are never reused within a process, so a stale key can
/// never reach a pixmap inserted later, and a key from another cache, or a forged value, finds
/// nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixcacheKey {
    /// Opaque; 0 means invalid.
    pub id: u64,
}

impl From<Key> for PixcacheKey {
    fn from(key: Key) -> Self {
        PixcacheKey { id: key.to_raw() }
    }
}

impl From<PixcacheKey> for Key {
    fn from(key: PixcacheKey) -> Self {
        Key::from_raw(key.id)
    }
}

/// True when `a` and `b` are the same key (`QPixmapCache::Key::operator==`): two invalid
/// (all-zero) keys are equal; keys from two inserts never are; after `pixcache_replace`, the
/// updated key differs from copies of the old one.
#[no_mangle]
pub extern "C" fn pixcache_key_equal(a: PixcacheKey, b: PixcacheKey) -> bool {
    a.id == b.id
}
