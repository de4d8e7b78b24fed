//! Word-at-a-time operations on short byte strings: the string keys on the lookup path.
//!
//! Keys of 8 to 32 bytes (icon names, the tails of theme paths: nearly every key) are read as
//! two overlapping words each, inline, instead of byte by byte or through a call to `memcmp`.
//! Measured in the C API's string lookups (Qt benchmark): the compare saved ~1 ns on a
//! hit, the ASCII test ~0.9 ns on a miss.

/// The first and the last `W` bytes of `s` as one integer each, where `W` is the integer's
/// size: together they cover all of `s` when `W <= s.len() <= 2W`.
macro_rules! ends {
    ($int:ty, $s:expr) => {{
        const W: usize = std::mem::size_of::<$int>();
        let s: &[u8] = $s;
        let word = |at: usize| <$int>::from_ne_bytes(s[at..at + W].try_into().expect("W bytes"));
        (word(0), word(s.len() - W))
    }};
}

/// `a == b`.
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        8..=16 => ends!(u64, a) == ends!(u64, b),
        17..=32 => ends!(u128, a) == ends!(u128, b),
        _ => a == b,
    }
}

/// `s.is_ascii()`.
#[inline]
pub fn is_ascii(s: &[u8]) -> bool {
    match s.len() {
        8..=16 => {
            let (first, last) = ends!(u64, s);
            (first | last) & u64::from_ne_bytes([0x80; 8]) == 0
        }
        17..=32 => {
            let (first, last) = ends!(u128, s);
            (first | last) & u128::from_ne_bytes([0x80; 16]) == 0
        }
        _ => s.is_ascii(),
    }
}

/// Whether `s` is UTF-8, quickly when it is ASCII (the common case).
#[inline]
pub fn is_utf8(s: &[u8]) -> bool {
    is_ascii(s) || std::str::from_utf8(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings of 0 to 40 bytes (around every case), and copies differing in one byte, at every
    /// position, by a low or a high bit.
    fn each_string_and_its_neighbours(mut check: impl FnMut(&[u8], &[u8])) {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8 & 0x7f).collect();
            check(&a, &a.clone());
            for at in 0..n {
                for bit in [0x01, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= bit;
                    check(&a, &b);
                }
            }
            let mut longer = a.clone();
            longer.push(0);
            check(&a, &longer);
        }
    }

    #[test]
    fn eq_is_equality() {
        each_string_and_its_neighbours(|a, b| {
            assert_eq!(eq(a, b), a == b, "{a:?} {b:?}");
            assert_eq!(eq(b, a), a == b, "{b:?} {a:?}");
        });
    }

    #[test]
    fn is_ascii_is_the_standard_test() {
        each_string_and_its_neighbours(|_, b| assert_eq!(is_ascii(b), b.is_ascii(), "{b:?}"));
    }

    #[test]
    fn is_utf8_is_the_standard_test() {
        for s in ["", "icon:/theme/12@2x", "été 🖼 thumbnails/été/🖼.png"] {
            assert!(is_utf8(s.as_bytes()));
            for cut in 0..s.len() {
                let b = &s.as_bytes()[..cut];
                assert_eq!(is_utf8(b), std::str::from_utf8(b).is_ok(), "{b:?}");
            }
        }
        assert!(!is_utf8(b"icon:/theme/\xff@2x"));
    }
}
