//! The thread-affine cache: `QPixmapCache`'s operations on one [`Lru`] for one thread, with no
//! lock.
//!
//! Qt's own cache serves one thread only (the application's), so a host that keeps Qt's rule
//! needs none of [`Cache`](crate::Cache)'s locking: no reader slots, no recency logs, no
//! atomic instruction on a lookup. That is what lets the Qt replacement (`qt6/`) answer an
//! unmodified Qt program faster than Qt does (docs/PERFORMANCE.md §7). This type is the
//! algorithm only; being reachable by one thread at a time is `sync/affine.rs`'s job, and the C
//! functions (`pixcache_local_*`) are `ffi/local.rs`'s.
//!
//! The rules are [`Cache`](crate::Cache)'s, operation for operation (`tests/local.rs` runs the
//! two side by side on random operations and compares every result and statistic):
//! - a string insert first removes the entry under that string, and a refused insert (costlier
//!   than the whole limit) leaves it removed;
//! - `replace` removes the old entry and inserts under a new generated key;
//! - generated keys come from the process-wide serial space, so they are never reused and never
//!   equal another cache's;
//! - the idle trim and `flushDetachedPixmaps` are Qt 6.4's.
//!
//! Each generated key names the map slot its entry went to ([`seal_slot`]), so generated keys
//! stay out of the map's hash table ([`Lru::with_placed_ids`]): a key is found by unsealing it
//! and checking that its slot holds it, not by hashing and probing. Cell `slot` of a
//! [`SlotTable`] holds the key while it is valid: any thread may ask
//! ([`LocalCache::valid_keys`]), as Qt answers `Key::isValid()` on every thread, with one load.
//!
//! What differs: string keys are any bytes (the Qt replacement passes a `QString`'s UTF-16
//! code units, with no conversion), values are any `V` (the replacement's are `QPixmap`s), the
//! caller computes each entry's cost, and at most [`MAX_ENTRIES`] (2^24) entries are held at
//! once. Values the cache lets go of are handed to the caller's
//! [`Garbage`] bag, to drop after the call: a value's drop may call back into the cache.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crate::cache::{idle_trim_target, refusal_error, Stats};
use crate::error::{Error, ErrorKind, Result};
use crate::garbage::Garbage;
use crate::key::{seal_slot, slot_of, Key, KeySource, SLOT_KEY_SLOTS};
use crate::lru::{EntryKey, KeyRef, Lru, RefuseReason, Sink};
use crate::name::Name;
use crate::removal::Reason;
use crate::sync::slots::SlotTable;

/// The most entries a thread-affine cache holds at once, 2^24 (16,777,216): a generated key names
/// its entry's map slot in 24 bits. Past it an insert evicts the least recently used entry, as a
/// count limit does (Qt's cache would need 16 GB of pixmaps to get there: each costs 1 KB or
/// more).
pub const MAX_ENTRIES: usize = SLOT_KEY_SLOTS as usize;

/// A cost-bounded, exact-LRU cache of `V`s for one thread. See the module documentation.
pub struct LocalCache<V> {
    lru: Lru<V>,
    stats: Stats,
    /// Total at the previous [`LocalCache::tick`] (Qt's `ps`).
    tick_total: i64,
    hasher: rapidhash::fast::RandomState,
    keys: KeyCells,
}

/// Which generated keys of a thread-affine cache are valid, for any thread to ask.
pub struct ValidKeys {
    /// Cell `slot_of(key)` holds `key` while it is valid (0 or another key otherwise).
    cells: SlotTable,
}

impl ValidKeys {
    /// True while `key` is valid in its cache. From another thread than the cache's, the answer
    /// is as of some moment during the call.
    #[inline]
    pub fn contains(&self, key: Key) -> bool {
        slot_of(key).is_some_and(|slot| self.cells.get(slot as usize) == key.to_raw())
    }
}

/// The cache's generated keys: where fresh ones come from and which are valid.
struct KeyCells {
    source: KeySource,
    /// Cell `slot` holds the key of the entry in map slot `slot`, while it is there.
    valid: Arc<ValidKeys>,
}

impl KeyCells {
    /// A serial for the next generated key, for a map with `slots` slots (the entry goes to one
    /// of them or to a new one, numbered `slots`; never past [`SLOT_KEY_SLOTS`], the map's
    /// count limit), or why the key cannot be inserted: with the serial when one was taken
    /// (its key is still unique, for a refused insert to return).
    #[inline]
    fn prepare(&mut self, slots: usize) -> std::result::Result<u64, (Option<u64>, Error)> {
        let Some(serial) = self.source.slot_serial() else {
            return Err((
                None,
                Error::new(
                    ErrorKind::TooLarge,
                    "this process has handed out all its generated keys",
                ),
            ));
        };
        if !self
            .valid
            .cells
            .reserve(slots.min(SLOT_KEY_SLOTS as usize - 1))
        {
            return Err((
                Some(serial),
                Error::new(
                    ErrorKind::OutOfMemory,
                    "cannot grow the table of valid keys",
                ),
            ));
        }
        Ok(serial)
    }

    /// Marks `key`, whose entry is in map slot `slot`, valid.
    #[inline]
    fn settle(&mut self, key: Key, slot: u32) {
        self.valid.cells.set(slot as usize, key.to_raw());
    }

    /// A key whose entry left: no longer valid.
    #[inline]
    fn forget(&mut self, id: u64) {
        if let Some(slot) = slot_of(Key::from_raw(id)) {
            self.valid.cells.set(slot as usize, 0);
        }
    }
}

/// Where an operation's departing entries go: the values to the caller's bag, the generated
/// keys out of the valid ones.
struct Departing<'a, V> {
    gone: &'a mut Garbage<V>,
    keys: &'a mut KeyCells,
}

impl<V> Sink<V> for Departing<'_, V> {
    #[inline]
    fn take(&mut self, key: EntryKey, _hash: u64, value: V, _cost: i64) {
        if let EntryKey::Id(id) = key {
            self.keys.forget(id);
        }
        self.gone.push(value);
    }

    #[inline]
    fn wants_keys(&self) -> bool {
        false
    }

    #[inline]
    fn departed_id(&mut self, id: u64) {
        self.keys.forget(id);
    }

    #[inline]
    fn take_value(&mut self, value: V) {
        self.gone.push(value);
    }

    fn reserve(&mut self, additional: usize) {
        self.gone.reserve(additional);
    }
}

impl<V> LocalCache<V> {
    /// An empty cache holding at most `limit_kb` KB (and [`MAX_ENTRIES`] entries).
    pub fn new(limit_kb: i32) -> Self {
        let mut lru = Lru::with_placed_ids(i64::from(limit_kb));
        // Every slot a generated key can name, and no more: an empty map evicts nothing.
        lru.set_count_limit(MAX_ENTRIES, &mut Garbage::new());
        LocalCache {
            keys: KeyCells {
                source: KeySource::new(),
                valid: Arc::new(ValidKeys {
                    cells: SlotTable::new(),
                }),
            },
            lru,
            stats: Stats {
                limit_kb,
                ..Stats::default()
            },
            tick_total: 0,
            hasher: rapidhash::fast::RandomState::default(),
        }
    }

    /// Which generated keys are valid, for any thread to ask.
    pub fn valid_keys(&self) -> &Arc<ValidKeys> {
        &self.keys.valid
    }

    /// Puts an empty cache with the same limit in this one's place and returns the old one, for
    /// a cache a panic left half changed (dropped whole, not cleared: its order may be half
    /// changed). The valid keys stay the same table, which others may hold: every key of the old
    /// cache becomes invalid in it.
    pub fn renew(&mut self) -> LocalCache<V> {
        let mut fresh = LocalCache::new(self.limit());
        let valid = Arc::clone(&self.keys.valid);
        for slot in 0..self.lru.slot_count() {
            valid.cells.set(slot, 0);
        }
        fresh.keys.valid = valid;
        std::mem::replace(self, fresh)
    }

    #[inline]
    fn hash(&self, name: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(name);
        h.finish()
    }

    /// The value under a string key, made the most recently used; counts a hit or a miss.
    #[inline]
    pub fn find(&mut self, name: &[u8]) -> Option<&V> {
        let hash = self.hash(name);
        Self::counted(&mut self.stats, self.lru.get(hash, KeyRef::Name(name)))
    }

    /// The value of a generated key, made the most recently used; counts a hit or a miss.
    #[inline(always)]
    pub fn find_key(&mut self, key: Key) -> Option<&V> {
        let found = slot_of(key).and_then(|slot| self.lru.get_at(slot, key.to_raw()));
        Self::counted(&mut self.stats, found)
    }

    #[inline(always)]
    fn counted<'a>(stats: &mut Stats, found: Option<&'a V>) -> Option<&'a V> {
        match found {
            Some(_) => stats.hits += 1,
            None => stats.misses += 1,
        }
        found
    }

    /// Inserts `value` under a string key, costing `cost` KB (the entry already under it is
    /// removed first). Refused when it costs more than the limit: `value` then goes to `gone`
    /// and the old entry stays removed, as in Qt.
    #[inline]
    pub fn insert(
        &mut self,
        name: &[u8],
        value: V,
        cost: i64,
        gone: &mut Garbage<V>,
    ) -> Result<()> {
        let hash = self.hash(name);
        if let Some((_, old, _)) = self.lru.remove(hash, KeyRef::Name(name)) {
            self.stats.removals[Reason::Replaced as usize] += 1;
            gone.push(old);
        }
        let stored = match Name::from_bytes(name) {
            Ok(stored) => EntryKey::Name(stored),
            Err(_) => {
                gone.push(value);
                return Err(Error::new(
                    ErrorKind::OutOfMemory,
                    "cannot allocate the key",
                ));
            }
        };
        self.put(hash, |_| stored, value, cost, gone).map(drop)
    }

    /// Inserts `value` under a new generated key and returns it. When refused, the error comes
    /// with a fresh key, which was never valid (the invalid key when no key could be had).
    #[inline]
    pub fn insert_key(
        &mut self,
        value: V,
        cost: i64,
        gone: &mut Garbage<V>,
    ) -> std::result::Result<Key, (Key, Error)> {
        match self.insert_fresh(value, cost, gone) {
            Ok(key) => Ok(key),
            Err((serial, e)) => Err((serial.map_or(Key::INVALID, |s| seal_slot(s, 0)), e)),
        }
    }

    /// Inserts `value` under a new generated key, which names the slot the entry goes to, and
    /// marks it valid. Refused: the serial the key would have had, if one was taken.
    #[inline(always)]
    fn insert_fresh(
        &mut self,
        value: V,
        cost: i64,
        gone: &mut Garbage<V>,
    ) -> std::result::Result<Key, (Option<u64>, Error)> {
        let serial = match self.keys.prepare(self.lru.slot_count()) {
            Ok(serial) => serial,
            Err(refused) => {
                gone.push(value);
                return Err(refused);
            }
        };
        let mut key = Key::INVALID;
        let made = |slot| {
            key = seal_slot(serial, slot);
            EntryKey::Id(key.to_raw())
        };
        match self.put(0, made, value, cost, gone) {
            Ok(slot) => {
                self.keys.settle(key, slot);
                Ok(key)
            }
            Err(e) => Err((Some(serial), e)),
        }
    }

    /// Replaces the entry of a valid generated key: the old entry is removed, `value` inserted
    /// under a new key, and `*key` updated to it. An invalid key inserts nothing
    /// ([`ErrorKind::InvalidKey`]); a refused value leaves the old entry removed and `*key` as
    /// it was.
    #[inline]
    pub fn replace(
        &mut self,
        key: &mut Key,
        value: V,
        cost: i64,
        gone: &mut Garbage<V>,
    ) -> Result<()> {
        let old = *key;
        let previous = self.take_entry(old);
        let Some((_, previous, _)) = previous else {
            gone.push(value);
            return Err(crate::cache::invalid_key_error(old));
        };
        self.keys.forget(old.to_raw());
        self.stats.removals[Reason::Replaced as usize] += 1;
        gone.push(previous);
        *key = self.insert_fresh(value, cost, gone).map_err(|(_, e)| e)?;
        Ok(())
    }

    /// Inserts under a key known to be absent, made from the map slot the entry goes to; counts
    /// the outcome. Returns the slot.
    #[inline(always)]
    fn put(
        &mut self,
        hash: u64,
        key: impl FnOnce(u32) -> EntryKey,
        value: V,
        cost: i64,
        gone: &mut Garbage<V>,
    ) -> Result<u32> {
        let before = self.lru.len();
        let mut departing = Departing {
            gone,
            keys: &mut self.keys,
        };
        let result = self.lru.insert_with(hash, key, value, cost, &mut departing);
        let evicted = before + usize::from(result.is_ok()) - self.lru.len();
        self.evicted(Reason::Evicted, evicted);
        match result {
            Ok(slot) => {
                self.stats.inserts += 1;
                self.stats.peak_kb = self.stats.peak_kb.max(self.lru.total());
                Ok(slot)
            }
            Err(refused) => {
                gone.push(refused.value);
                if refused.reason == RefuseReason::TooCostly {
                    self.stats.refused += 1;
                }
                Err(refusal_error(refused.reason, cost, self.lru.limit()))
            }
        }
    }

    fn evicted(&mut self, reason: Reason, n: usize) {
        self.stats.evictions += n as u64;
        self.stats.removals[reason as usize] += n as u64;
    }

    /// Removes the entry under a string key; false when there was none.
    pub fn remove(&mut self, name: &[u8], gone: &mut Garbage<V>) -> bool {
        let hash = self.hash(name);
        self.remove_ref(hash, KeyRef::Name(name), gone)
    }

    /// Removes the entry of a generated key; false when the key is not valid here.
    pub fn remove_key(&mut self, key: Key, gone: &mut Garbage<V>) -> bool {
        let removed = self.take_entry(key);
        self.removed(removed, gone)
    }

    /// Takes the entry of a generated key out of the map, from the slot the key names; `None`
    /// when the key is not valid here.
    fn take_entry(&mut self, key: Key) -> Option<(EntryKey, V, i64)> {
        slot_of(key).and_then(|slot| self.lru.remove_at(slot, key.to_raw()))
    }

    fn remove_ref(&mut self, hash: u64, key: KeyRef<'_>, gone: &mut Garbage<V>) -> bool {
        let removed = self.lru.remove(hash, key);
        self.removed(removed, gone)
    }

    /// Counts and lets go of a removed entry; false when there was none.
    fn removed(&mut self, removed: Option<(EntryKey, V, i64)>, gone: &mut Garbage<V>) -> bool {
        match removed {
            Some((stored, value, _)) => {
                if let EntryKey::Id(id) = stored {
                    self.keys.forget(id);
                }
                self.stats.removals[Reason::Removed as usize] += 1;
                gone.push(value);
                true
            }
            None => false,
        }
    }

    /// Removes every entry; every generated key becomes invalid.
    pub fn clear(&mut self, gone: &mut Garbage<V>) {
        self.stats.removals[Reason::Cleared as usize] += self.lru.len() as u64;
        let mut departing = Departing {
            gone,
            keys: &mut self.keys,
        };
        self.lru.clear(&mut departing);
    }

    /// True while the entry of `key` is in the cache. Touches neither recency nor statistics.
    pub fn key_is_valid(&self, key: Key) -> bool {
        self.keys.valid.contains(key)
    }

    /// True while an entry is under the string key. Touches neither recency nor statistics.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.lru.contains(self.hash(name), KeyRef::Name(name))
    }

    /// The limit, in KB, as set.
    pub fn limit(&self) -> i32 {
        self.stats.limit_kb
    }

    /// Sets the limit, evicting least recently used entries until the total fits it.
    pub fn set_limit(&mut self, limit_kb: i32, gone: &mut Garbage<V>) {
        self.stats.limit_kb = limit_kb;
        let mut departing = Departing {
            gone,
            keys: &mut self.keys,
        };
        let n = self.lru.set_limit(i64::from(limit_kb), &mut departing);
        self.evicted(Reason::LimitLowered, n);
    }

    /// Sum of the entries' costs, in KB.
    pub fn total_used(&self) -> i64 {
        self.lru.total()
    }

    fn trim(&mut self, target: i64, gone: &mut Garbage<V>) -> usize {
        let mut departing = Departing {
            gone,
            keys: &mut self.keys,
        };
        let n = self.lru.trim(target, &mut departing);
        self.evicted(Reason::Trimmed, n);
        self.tick_total = self.lru.total();
        n
    }

    /// One tick of Qt 6.4's idle timer (see [`Cache::tick`](crate::Cache::tick)). Returns how
    /// many entries went.
    pub fn tick(&mut self, gone: &mut Garbage<V>) -> usize {
        let total = self.lru.total();
        self.trim(idle_trim_target(total, total == self.tick_total), gone)
    }

    /// `QPixmapCache::flushDetachedPixmaps()`: trims to three quarters of the total. Returns how
    /// many entries went.
    pub fn flush_detached(&mut self, gone: &mut Garbage<V>) -> usize {
        self.trim(idle_trim_target(self.lru.total(), true), gone)
    }

    /// The counters and sizes (the fields of opt-in extras this cache does not have are 0).
    pub fn stats(&self) -> Stats {
        Stats {
            entries: self.lru.len(),
            total_kb: self.lru.total(),
            ..self.stats
        }
    }

    /// Entries from most to least recently used: `Ok(name bytes)` or `Err(generated key)`.
    pub fn keys_by_recency(&self) -> Vec<std::result::Result<Vec<u8>, Key>> {
        self.lru
            .keys_by_recency()
            .into_iter()
            .map(|k| match k {
                EntryKey::Name(n) => Ok(n.as_bytes().to_vec()),
                EntryKey::Id(id) => Err(Key::from_raw(id)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(limit: i32) -> (LocalCache<u32>, Garbage<u32>) {
        (LocalCache::new(limit), Garbage::new())
    }

    #[test]
    fn least_recently_used_goes_first_and_a_find_refreshes() {
        let (mut c, mut g) = cache(3);
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            c.insert(*k, i as u32, 1, &mut g).unwrap();
        }
        assert_eq!(c.find(b"a"), Some(&0));
        c.insert(b"d", 3, 1, &mut g).unwrap();
        assert!(c.contains(b"a") && !c.contains(b"b"));
        assert_eq!(g.into_vec(), vec![1]);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.evictions), (1, 0, 4, 1));
    }

    #[test]
    fn a_refused_string_insert_leaves_the_old_entry_removed() {
        let (mut c, mut g) = cache(10);
        c.insert(b"k", 1, 5, &mut g).unwrap();
        let e = c.insert(b"k", 2, 11, &mut g).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(!c.contains(b"k"));
        assert_eq!(g.into_vec(), vec![1, 2]);
        assert_eq!(c.stats().refused, 1);
    }

    #[test]
    fn replace_re_keys_and_stale_keys_find_nothing() {
        let (mut c, mut g) = cache(10);
        let k = c.insert_key(1, 1, &mut g).unwrap();
        let mut k2 = k;
        c.replace(&mut k2, 2, 1, &mut g).unwrap();
        assert_ne!(k, k2);
        assert!(!c.key_is_valid(k) && c.key_is_valid(k2));
        assert_eq!(c.find_key(k), None);
        assert_eq!(c.find_key(k2), Some(&2));
        let mut stale = k;
        assert_eq!(
            c.replace(&mut stale, 3, 1, &mut g).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(stale, k);
        assert_eq!(g.into_vec(), vec![1, 3]);
    }

    #[test]
    fn a_stale_key_whose_cell_and_slot_were_reused_finds_nothing() {
        // One entry fits: each insert evicts the previous one and takes its map slot, which its
        // key names.
        let (mut c, mut g) = cache(1);
        let old = c.insert_key(1, 1, &mut g).unwrap();
        c.insert_key(0, 1, &mut g).unwrap();
        let new = c.insert_key(2, 1, &mut g).unwrap();
        assert_eq!(slot_of(old), slot_of(new), "the slot is reused");
        assert_eq!(c.find_key(old), None);
        assert!(!c.key_is_valid(old));
        assert!(!c.remove_key(old, &mut g));
        let mut stale = old;
        assert_eq!(
            c.replace(&mut stale, 3, 1, &mut g).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(c.find_key(new), Some(&2));
        assert!(c.remove_key(new, &mut g));
        assert_eq!(c.find_key(new), None);
        assert_eq!(g.into_vec(), vec![1, 0, 3, 2]);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 2, 0));
    }

    #[test]
    fn at_most_max_entries_at_once() {
        let (c, _) = cache(10);
        assert_eq!(c.lru.count_limit(), MAX_ENTRIES);
        assert_eq!(MAX_ENTRIES, SLOT_KEY_SLOTS as usize);
        // The stats report a count limit set by the caller, and this one's is not.
        assert_eq!(c.stats().count_limit, 0);
    }

    #[test]
    fn names_are_bytes_not_text() {
        let (mut c, mut g) = cache(10);
        // UTF-16 code units as bytes, with a lone surrogate: any bytes are a name.
        let name: Vec<u8> = [0x0061u16, 0xD800]
            .iter()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        c.insert(&name, 7, 1, &mut g).unwrap();
        assert_eq!(c.find(&name), Some(&7));
        assert_eq!(c.find(&name[..2]), None);
        assert_eq!(c.keys_by_recency(), vec![Ok(name)]);
    }

    #[test]
    fn a_renewed_cache_keeps_its_valid_key_table_and_forgets_every_key() {
        let (mut c, mut g) = cache(10);
        let valid = Arc::clone(c.valid_keys());
        let old = c.insert_key(1, 1, &mut g).unwrap();
        drop(c.renew());
        assert!(Arc::ptr_eq(&valid, c.valid_keys()));
        assert!(!valid.contains(old) && !c.key_is_valid(old));
        let new = c.insert_key(2, 1, &mut g).unwrap();
        assert!(valid.contains(new) && c.key_is_valid(new));
        assert_eq!(c.find_key(new), Some(&2));
    }

    #[test]
    fn the_idle_tick_is_qt_s() {
        let (mut c, mut g) = cache(100);
        for i in 0..8u32 {
            c.insert(&i.to_le_bytes(), i, 10, &mut g).unwrap();
        }
        // Busy since the last tick: only the least recently used entry goes.
        assert_eq!(c.tick(&mut g), 1);
        // Idle: down to three quarters.
        assert_eq!(c.tick(&mut g), 2);
        assert_eq!(c.total_used(), 50);
        assert_eq!(c.flush_detached(&mut g), 2);
        assert_eq!(c.stats().removals[Reason::Trimmed as usize], 5);
    }
}
