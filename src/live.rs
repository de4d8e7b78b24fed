//! Live images (opt-in per cache, as Flutter's `ImageCache` keeps them): an entry the cache
//! evicted (for room, a trim or a lowered limit) whose pixmap a caller still holds stays
//! findable under its key, without a decode, for as long as someone holds it. Live entries are
//! outside the budget: they cost the cache nothing it could free (the caller keeps the pixels
//! alive anyway), and are counted apart (`live_kb`).
//!
//! A live entry holds a share of the pixmap, so "a caller still holds it" means "the pixmap has
//! another share": the set is pruned of entries whose share is the last one at every write
//! section of the cache (cache.rs), so pixels nobody holds are freed at the next write at the
//! latest, and a lookup never returns an entry found to be the last share.

use hashbrown::HashTable;

use crate::garbage::Garbage;
use crate::lru::{EntryKey, KeyRef};
use crate::pixmap::Pixmap;

/// An evicted entry still held by a caller.
pub(crate) struct LiveEntry {
    pub key: EntryKey,
    pub hash: u64,
    pub pixmap: Pixmap,
    pub cost: i64,
}

/// The live set of one cache.
#[derive(Default)]
pub(crate) struct Live {
    table: HashTable<LiveEntry>,
    kb: i64,
}

impl Live {
    /// Entries in the set.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Sum of their costs, in KB.
    pub fn kb(&self) -> i64 {
        self.kb
    }

    /// Keeps an evicted entry (a fresh share of its pixmap), replacing one under the same key.
    pub fn keep(&mut self, entry: LiveEntry, garbage: &mut Garbage<Pixmap>) {
        if let Some(old) = self.take(entry.hash, entry.key.as_key_ref()) {
            garbage.push(old.pixmap);
        }
        self.kb += entry.cost;
        self.table
            .insert_unique(entry.hash, entry, |e: &LiveEntry| e.hash);
    }

    /// The entry under `key`, if a caller still holds its pixmap.
    pub fn get(&self, hash: u64, key: KeyRef<'_>) -> Option<&LiveEntry> {
        self.table
            .find(hash, |e| e.key.as_key_ref() == key)
            .filter(|e| held_elsewhere(&e.pixmap))
    }

    /// Takes the entry under `key` out of the set (held or not).
    pub fn take(&mut self, hash: u64, key: KeyRef<'_>) -> Option<LiveEntry> {
        let entry = self
            .table
            .find_entry(hash, |e| e.key.as_key_ref() == key)
            .ok()?;
        let (e, _) = entry.remove();
        self.kb -= e.cost;
        Some(e)
    }

    /// Lets go of the entries nobody else holds any more.
    pub fn prune(&mut self, garbage: &mut Garbage<Pixmap>) {
        let mut freed = 0;
        self.table.retain(|e| {
            let held = held_elsewhere(&e.pixmap);
            if !held {
                freed += e.cost;
                garbage.push(std::mem::replace(&mut e.pixmap, Pixmap::null()));
            }
            held
        });
        self.kb -= freed;
    }

    /// Lets go of every entry.
    pub fn clear(&mut self, garbage: &mut Garbage<Pixmap>) {
        for e in self.table.drain() {
            garbage.push(e.pixmap);
        }
        self.kb = 0;
    }
}

/// True when `pm` (a share the cache or the live set holds) has pixels someone else holds too.
pub(crate) fn held_elsewhere(pm: &Pixmap) -> bool {
    pm.has_pixel_data() && !pm.is_detached()
}
