//! Generated keys: the `QPixmapCache::Key` twin.
//!
//! A key is a 64-bit value. Every key pixcache hands out, in any cache, is distinct from every
//! other key handed out in the same process: keys are a never-reused serial number passed through
//! a secret, per-process bijection. So
//! - a stale key (its entry evicted, removed, replaced or cleared) can never find an entry inserted
//!   later, however many keys were made since: nothing else will ever carry its value;
//! - a key from one cache is never valid in another;
//! - a forged value (0, 1, 2, ... or any guess) matches a live key only with probability
//!   live_entries / 2^64: forged keys find nothing.
//!
//! All-zero is the invalid key, never issued.

use crate::sync::once::Word;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A generated cache key. `Key::INVALID` (all zero) is never valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Key(u64);

impl Key {
    /// The invalid key, as a default-constructed `QPixmapCache::Key`.
    pub const INVALID: Key = Key(0);

    /// The raw value, for the C ABI.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// A key from its raw value (which may be stale or forged: the cache checks).
    pub const fn from_raw(raw: u64) -> Self {
        Key(raw)
    }

    /// True for the all-zero key.
    pub const fn is_invalid(self) -> bool {
        self.0 == 0
    }

    /// A key never handed out before in this process (tests: caches use a [`KeySource`], which
    /// takes serials a block at a time).
    #[cfg(test)]
    pub fn fresh() -> Key {
        KeySource::new().fresh()
    }
}

/// The process-wide serial space keys are drawn from; never reused.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Hands out fresh keys from blocks of the process-wide serial space, so a cache touches the
/// shared atomic once per [`KeySource::BLOCK`] keys instead of once per key. Keys stay unique
/// across every source in the process.
#[derive(Debug, Default)]
pub struct KeySource {
    next: u64,
    end: u64,
}

impl KeySource {
    /// Serials taken from the process-wide counter at a time.
    pub const BLOCK: u64 = 4096;

    /// A source that takes its first block on first use.
    pub const fn new() -> Self {
        KeySource { next: 0, end: 0 }
    }

    /// A key never handed out before in this process.
    pub fn fresh(&mut self) -> Key {
        loop {
            if self.next == self.end {
                self.next = NEXT_SERIAL.fetch_add(Self::BLOCK, Ordering::Relaxed);
                self.end = self.next + Self::BLOCK;
            }
            let serial = self.next;
            self.next += 1;
            let id = scramble(serial ^ secret());
            // 0 is the invalid key; u64::MAX marks a removed id in `sync/idset.rs`.
            if id != 0 && id != u64::MAX {
                return Key(id);
            }
        }
    }
}

/// A random per-process secret, so key values cannot be predicted from one run to the next.
fn secret() -> u64 {
    static SECRET: Word = Word::new();
    SECRET.get_or(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x7069_7863_6163_6865); // "pixcache"
        h.finish()
    })
}

/// A bijection on u64 (the SplitMix64 finaliser: xor-shifts and odd multipliers are invertible),
/// so distinct serials always give distinct keys.
fn scramble(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_keys_are_distinct_and_never_invalid() {
        let keys: HashSet<Key> = (0..100_000).map(|_| Key::fresh()).collect();
        assert_eq!(keys.len(), 100_000);
        assert!(!keys.contains(&Key::INVALID));
    }

    #[test]
    fn sources_never_collide() {
        let mut a = KeySource::new();
        let mut b = KeySource::new();
        let keys: HashSet<Key> = (0..3 * KeySource::BLOCK)
            .flat_map(|_| [a.fresh(), b.fresh(), Key::fresh()])
            .collect();
        assert_eq!(keys.len() as u64, 9 * KeySource::BLOCK);
    }

    #[test]
    fn keys_do_not_look_like_small_integers() {
        let k = Key::fresh();
        assert!(k.to_raw() > 1 << 20, "key {k:?} is guessable");
    }
}
