//! Compact strings for the tables that grow with the input (the study ledger).
//!
//! At 10^6 events the ledger holds ~300 000 studies and ~350 000 rows; with a `String` per
//! field (AE titles, addresses, users, timestamps) the strings were most of the report's
//! memory, though a handful of systems repeat in every row. [`Shared`] is one interned copy per
//! distinct string ([`Interner`]); [`Ts`] keeps an event timestamp inline (no heap block).

use serde::{Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An interned string: cloning it is a reference count, and it reads as a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shared(Arc<str>);

impl Shared {
    pub fn new(s: &str) -> Self {
        Shared(Arc::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Shared {
    fn eq(&self, o: &str) -> bool {
        &*self.0 == o
    }
}

impl PartialEq<&str> for Shared {
    fn eq(&self, o: &&str) -> bool {
        &*self.0 == *o
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One [`Shared`] per distinct string. It grows only with the distinct strings of the rows
/// and studies kept, which are capped (`ledger::MAX_STUDIES`, `MAX_LEDGER_ROWS`).
#[derive(Default)]
pub struct Interner(ahash::AHashSet<Shared>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Shared {
        if let Some(x) = self.0.get(s) {
            return x.clone();
        }
        let x = Shared::new(s);
        self.0.insert(x.clone());
        x
    }
}

/// Longest timestamp kept inline: pacstap writes 27 bytes (`2026-11-28T07:09:52.825841Z`);
/// a longer one (nanoseconds, an offset) goes to the heap.
const INLINE: usize = 32;

/// An event timestamp as the event wrote it, inline when it fits.
#[derive(Clone, PartialEq, Eq)]
pub enum Ts {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<str>),
}

impl Ts {
    pub fn new(s: &str) -> Self {
        let mut buf = [0u8; INLINE];
        match (buf.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(s.as_bytes());
                Ts::Inline { len, buf }
            }
            _ => Ts::Heap(s.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Only `new` writes `buf`, from a whole `&str` of `len` bytes.
            Ts::Inline { len, buf } => buf
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            Ts::Heap(s) => s,
        }
    }
}

impl Default for Ts {
    fn default() -> Self {
        Ts::new("")
    }
}

impl Deref for Ts {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Ts {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_inline_or_not() {
        let t = "2026-11-28T07:09:52.825841Z";
        assert!(matches!(Ts::new(t), Ts::Inline { len: 27, .. }));
        assert_eq!(Ts::new(t), t);
        let long = "2026-11-28T07:09:52.825841123+00:00:00:00";
        assert!(matches!(Ts::new(long), Ts::Heap(_)));
        assert_eq!(Ts::new(long).as_str(), long);
        assert_eq!(serde_json::to_string(&Ts::new(t)).unwrap(), format!("\"{t}\""));
    }

    #[test]
    fn interned_strings_are_one_copy() {
        let mut i = Interner::default();
        let a = i.get("ORTHANC@10.20.0.10");
        let b = i.get("ORTHANC@10.20.0.10");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "ORTHANC@10.20.0.10");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"ORTHANC@10.20.0.10\"");
    }
}
