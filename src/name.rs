//! A stored string key. Names of up to [`INLINE`] bytes (icon names, theme paths: most keys)
//! are kept inside the entry itself, so a lookup compares them without following a pointer to
//! another cache line, and an insert allocates nothing for them; longer names are copied to the
//! heap, fallibly.
//!
//! Measured in the Qt benchmark (`benches/qt_vs_pixcache.cpp`): string find hit 19.0–19.3 → 17.8–18.1
//! ns, string insert with eviction 71 → 64–66 ns, and 32 bytes less per entry.

use std::collections::TryReserveError;

use crate::bytes;

/// The longest name kept inline: what fits beside its length and the enum tag in the 24 bytes a
/// boxed `str` takes anyway.
pub const INLINE: usize = 22;

/// A string key owned by the cache: UTF-8 when made by [`Name::new`] (every name of a [`Cache`]),
/// any bytes when made by [`Name::from_bytes`] (the thread-affine cache's, `local.rs`, whose Qt
/// keys are UTF-16 code units).
///
/// [`Cache`]: crate::Cache
#[derive(Clone, PartialEq, Eq)]
pub struct Name(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// `bytes[..len]` is the name; the rest is zero.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A name longer than [`INLINE`] bytes.
    Heap(Box<[u8]>),
}

impl Name {
    /// A copy of `name`. Only a name longer than [`INLINE`] bytes allocates, and then an
    /// allocation failure is reported instead of aborting.
    pub fn new(name: &str) -> Result<Name, TryReserveError> {
        Name::from_bytes(name.as_bytes())
    }

    /// A copy of `name`, whatever its bytes ([`Name::new`] otherwise).
    pub fn from_bytes(name: &[u8]) -> Result<Name, TryReserveError> {
        let len = name.len();
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..len].copy_from_slice(name);
            return Ok(Name(Repr::Inline {
                len: len as u8,
                bytes,
            }));
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(len)?;
        copy.extend_from_slice(name);
        Ok(Name(Repr::Heap(copy.into_boxed_slice())))
    }

    /// The name's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(name) => name,
        }
    }

    /// Whether this is the name `probe` (the lookup's compare).
    #[inline]
    pub fn is(&self, probe: &[u8]) -> bool {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let n = probe.len();
                n <= INLINE && usize::from(*len) == n && bytes::eq(&bytes[..n], probe)
            }
            Repr::Heap(name) => bytes::eq(name, probe),
        }
    }

    /// The name, for one made by [`Name::new`]; panics for other bytes (only the
    /// thread-affine cache makes those, and it never asks).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a name is made from a str")
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        String::from_utf8_lossy(self.as_bytes()).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_inline_up_to_the_limit_and_on_the_heap_beyond() {
        for len in 0..=3 * INLINE {
            // Multi-byte characters too, so lengths in bytes step over the limit unevenly.
            let text: String = "é-pixcache/🖼".chars().cycle().take(len).collect();
            let name = Name::new(&text).unwrap();
            assert_eq!(name.as_str(), text);
            assert_eq!(name.as_bytes(), text.as_bytes());
            assert_eq!(format!("{name:?}"), format!("{text:?}"));
            assert_eq!(
                matches!(name.0, Repr::Inline { .. }),
                text.len() <= INLINE,
                "{} bytes",
                text.len()
            );
            assert_eq!(name.clone(), name);
        }
        assert_ne!(Name::new("ab").unwrap(), Name::new("abc").unwrap());
        assert_ne!(Name::new("").unwrap(), Name::new("\0").unwrap());
    }

    #[test]
    fn a_name_is_as_small_as_the_boxed_str_it_replaces() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        assert_eq!(
            std::mem::size_of::<crate::lru::EntryKey>(),
            24,
            "a name or an id"
        );
    }
}
