//! A string kept inline when short: user ids and identities in the simulator's long-lived maps.
//!
//! A map of a million sessions keyed by `String` holds a million small heap blocks between the
//! short-lived blocks of every request, and glibc's allocator pays for that interleaving on each
//! free (`unlink_chunk`, `malloc_consolidate` grew to a tenth of a new user's request). Ids up to
//! [`INLINE`] bytes, which is every id a load test makes, live in the map's own table instead.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest string kept inline.
pub const INLINE: usize = 30;

/// A string, inline up to [`INLINE`] bytes. Hashes, compares and borrows as `str`, so a map
/// keyed by it is looked up with `&str`.
#[derive(Clone)]
pub struct ShortStr(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl ShortStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // The bytes are a copy of a `&str`'s first `len` bytes (see `From<&str>`).
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            ShortStr(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            ShortStr(Repr::Heap(s.into()))
        }
    }
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for ShortStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for ShortStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortStr {}

impl std::fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for ShortStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_and_long_strings_read_hash_and_compare_as_str() {
        let long = "x".repeat(INLINE + 1);
        for s in ["", "u-1-2", "é—ü", &"y".repeat(INLINE), long.as_str()] {
            let k = ShortStr::from(s);
            assert_eq!(k.as_str(), s);
            assert_eq!(&*k, s);
            assert_eq!(hash_of(&k), hash_of(s), "a map looks it up by &str");
            assert_eq!(k, ShortStr::from(s));
            assert_eq!(format!("{k:?}"), format!("{s:?}"));
        }
        assert!(matches!(
            ShortStr::from("y".repeat(INLINE).as_str()).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(ShortStr::from(long.as_str()).0, Repr::Heap(_)));
        assert_ne!(ShortStr::from("a"), ShortStr::from("b"));
        let mut m = hashbrown::HashMap::<ShortStr, u8>::new();
        m.insert(ShortStr::from("u-7"), 1);
        *m.get_mut("u-7").expect("found by &str") += 1;
        assert_eq!(m.get("u-7"), Some(&2));
    }
}
