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
//!
//! A thread-affine cache's keys (`local.rs`) also name a slot, where any thread reads whether
//! the key is valid: they seal (a marker bit, a 39-bit serial, a 24-bit slot) through the same
//! bijection, and [`slot_of`] opens them. The marker keeps them apart from every other key, and
//! the serial keeps each one unique; past 2^39 serials such a cache stops handing keys out
//! rather than repeat one.

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
            let id = scramble(self.serial() ^ secret());
            if id != 0 {
                return Key(id);
            }
        }
    }

    /// A serial never handed out before in this process (below 2^63: the counter would need
    /// centuries to get there).
    #[inline]
    fn serial(&mut self) -> u64 {
        if self.next == self.end {
            self.next = NEXT_SERIAL.fetch_add(Self::BLOCK, Ordering::Relaxed);
            self.end = self.next + Self::BLOCK;
        }
        let serial = self.next;
        self.next += 1;
        serial
    }

    /// A serial never handed out before in this process, for one slot key ([`seal_slot`]):
    /// taken before the slot is known (a cache whose keys name the slot their entry went to,
    /// `local.rs`). `None` once the serials have passed 2^39 (half a trillion keys), so that no
    /// key is ever handed out twice.
    pub fn slot_serial(&mut self) -> Option<u64> {
        loop {
            let serial = self.serial();
            if serial >= 1 << (63 - SLOT_BITS) {
                return None;
            }
            // Sealing gives the invalid key (0) only for the one value equal to the secret; the
            // serial that could make it, with some slot, is skipped.
            if ((SLOT_KEY | serial << SLOT_BITS) ^ secret()) >> SLOT_BITS != 0 {
                return Some(serial);
            }
        }
    }
}

/// The key of `serial` (from [`KeySource::slot_serial`]) naming `slot` (below
/// [`SLOT_KEY_SLOTS`]): [`slot_of`] gives the slot back. Never the invalid key; distinct
/// serials give distinct keys, whatever their slots.
#[inline]
pub fn seal_slot(serial: u64, slot: u32) -> Key {
    debug_assert!(slot < SLOT_KEY_SLOTS && serial < 1 << (63 - SLOT_BITS));
    Key(scramble(
        (SLOT_KEY | serial << SLOT_BITS | u64::from(slot)) ^ secret(),
    ))
}

/// Bits of a slot in a slot key.
const SLOT_BITS: u32 = 24;
/// How many slots a slot key can name: 2^24.
pub const SLOT_KEY_SLOTS: u32 = 1 << SLOT_BITS;
/// Marks a slot key before sealing. Other keys seal serials below 2^63, so the two kinds never
/// share a value.
const SLOT_KEY: u64 = 1 << 63;

/// The slot a key from [`seal_slot`] names; `None` for any other key (the
/// invalid key, other caches' keys, a forged value: most values are not slot keys).
#[inline]
pub fn slot_of(key: Key) -> Option<u32> {
    if key.is_invalid() {
        return None;
    }
    let plain = unscramble(key.0) ^ secret();
    (plain & SLOT_KEY != 0).then_some((plain & u64::from(SLOT_KEY_SLOTS - 1)) as u32)
}

/// A random per-process secret, so key values cannot be predicted from one run to the next.
/// Inline: every generated key and every validity check reads it (an out-of-line call here
/// was 3% of a C key insert's profile).
#[inline]
fn secret() -> u64 {
    static SECRET: Word = Word::new();
    SECRET.get_or(new_secret)
}

#[cold]
#[inline(never)]
fn new_secret() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7069_7863_6163_6865); // "pixcache"
    h.finish()
}

/// [`scramble`]'s inverse: each step undone in reverse order (an xor-shift by `s` is undone by
/// xoring the shifts by `s`, `2s`, ...; a multiplication by the multiplier's inverse mod 2^64).
#[inline]
fn unscramble(mut x: u64) -> u64 {
    x ^= x >> 31 ^ x >> 62;
    x = x.wrapping_mul(0x3196_42b2_d24d_8ec3);
    x ^= x >> 27 ^ x >> 54;
    x = x.wrapping_mul(0x96de_1b17_3f11_9089);
    x ^ x >> 30 ^ x >> 60
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
    fn unscramble_inverts_scramble() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..10_000 {
            assert_eq!(unscramble(scramble(x)), x);
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        assert_eq!(unscramble(scramble(u64::MAX)), u64::MAX);
    }

    #[test]
    fn slot_keys_name_their_slot_and_no_other_key_does() {
        let mut source = KeySource::new();
        let mut seen = HashSet::new();
        for slot in [0, 1, 63, 4096, SLOT_KEY_SLOTS - 1] {
            for _ in 0..100 {
                let k = seal_slot(source.slot_serial().unwrap(), slot);
                assert_eq!(slot_of(k), Some(slot));
                assert!(!k.is_invalid() && seen.insert(k), "a slot key repeated");
            }
        }
        // One serial names every slot with a different key.
        let serial = source.slot_serial().unwrap();
        let keys: HashSet<Key> = (0..1000).map(|slot| seal_slot(serial, slot)).collect();
        assert_eq!(keys.len(), 1000);
        assert!(keys.iter().all(|k| !k.is_invalid() && !seen.contains(k)));
        // Ordinary keys and the invalid key are not slot keys.
        for _ in 0..10_000 {
            let k = source.fresh();
            assert_eq!(slot_of(k), None);
            assert!(seen.insert(k));
        }
        assert_eq!(slot_of(Key::INVALID), None);
    }

    #[test]
    fn keys_do_not_look_like_small_integers() {
        let k = Key::fresh();
        assert!(k.to_raw() > 1 << 20, "key {k:?} is guessable");
    }
}
