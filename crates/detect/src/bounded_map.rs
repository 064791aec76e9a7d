//! A map bounded by insertion order: past its cap the oldest key goes. For the detector's
//! small memories keyed by what the wire names (flows, AE titles), where losing the oldest
//! entry costs precision (a destination named without its address, a flow's fingerprint or
//! identity wait forgotten), never unbounded memory.

use std::collections::{HashMap, VecDeque};

/// A FIFO-bounded map.
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    map: HashMap<K, V, ahash::RandomState>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.map.len() > self.cap {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
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
        m.insert("c", 3);
        assert_eq!(m.get("a"), None);
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(m.get("c"), Some(&3));
        assert_eq!(m.map.len(), 2);
        assert_eq!(m.order.len(), 2);
    }

    #[test]
    fn a_zero_cap_holds_nothing() {
        let mut m = BoundedMap::new(0);
        m.insert(1u64, ());
        assert_eq!(m.get(&1), None);
    }
}
