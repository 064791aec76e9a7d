//! A map bounded by insertion order: past its cap the oldest key goes. For the detector's
//! small memories keyed by what the wire names (flows, AE titles), where losing the oldest
//! entry costs precision (a destination named without its address, a flow's fingerprint or
//! identity wait forgotten), never unbounded memory.
//!
//! A thin cap over `hashlink::LinkedHashMap` (one hash table threaded in insertion order), so
//! no hand-kept key queue can disagree with the map.

use hashlink::LinkedHashMap;

/// A FIFO-bounded map.
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    map: LinkedHashMap<K, V, ahash::RandomState>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq, V> BoundedMap<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        BoundedMap {
            map: LinkedHashMap::with_hasher(ahash::RandomState::new()),
            cap,
        }
    }

    /// Insert or replace; a replaced key keeps its place (it does not become younger).
    pub(crate) fn insert(&mut self, k: K, v: V) {
        if self.map.replace(k, v).is_none() {
            while self.map.len() > self.cap {
                if self.map.pop_front().is_none() {
                    break;
                }
            }
        }
    }

    pub(crate) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.map.get(k)
    }

    /// Entries held (never above the cap).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_cap_the_oldest_key_goes() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        // Re-inserting a present key replaces its value and does not make it younger.
        m.insert("a", 10);
        assert_eq!(m.get("a"), Some(&10));
        m.insert("c", 3);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(m.get("c"), Some(&3));
        assert_eq!(m.map.len(), 2);
    }

    #[test]
    fn a_zero_cap_holds_nothing() {
        let mut m = BoundedMap::new(0);
        m.insert(1u64, ());
        assert_eq!(m.get(&1), None);
        assert_eq!(m.map.len(), 0);
    }
}
