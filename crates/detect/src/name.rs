//! Entity names (user names, AE titles, addresses) stored inline when short.
//!
//! Entity look-ups are the detector's hot path, and with 10^5 entities each one is a cache
//! miss on the hash bucket; a boxed key adds a second miss to compare it. AE titles are at
//! most 16 characters (PS3.5 §6.2) and most user names and addresses fit in 30 bytes, so those
//! live in the bucket itself.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

const INLINE: usize = 30;

#[derive(Clone)]
pub(crate) enum Name {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<str>),
}

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            if let Some(dst) = buf.get_mut(..b.len()) {
                dst.copy_from_slice(b);
            }
            Name::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Name::Heap(s.into())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Name::Inline { len, buf } => buf
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            Name::Heap(s) => s,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

/// Hashes as `str` does, so maps keyed by `Name` can be queried with `&str`.
impl Hash for Name {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn inline_and_heap_names_look_up_by_str() {
        let long = "x".repeat(100);
        let mut m: HashMap<Name, u32> = HashMap::new();
        m.insert(Name::new("PACS1"), 1);
        m.insert(Name::new(&long), 2);
        m.insert(Name::new(""), 3);
        m.insert(Name::new("é✓"), 4);
        assert_eq!(m.get("PACS1"), Some(&1));
        assert_eq!(m.get(long.as_str()), Some(&2));
        assert_eq!(m.get(""), Some(&3));
        assert_eq!(m.get("é✓"), Some(&4));
        assert_eq!(m.get("PACS"), None);
        assert!(matches!(Name::new("PACS1"), Name::Inline { .. }));
        assert_eq!(Name::new(&long).as_str(), long);
    }
}
