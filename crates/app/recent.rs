//! A bounded map of the most recently seen keys: how the flow shard remembers ended flows for
//! live evidence, and detection the flows its alerts name.

use hashlink::LruCache;
use pacstap_core::{FlowId, FlowKey, FlowMeta};

/// The most recently inserted keys and their values, at most [`RECENT_FLOWS`]: a key is found
/// for at least [`RECENT_FLOWS`] insertions of other keys after its own. `hashlink`'s LRU
/// (the crate behind detect's and the evidence ring's bounded maps, issue 11 item 5); looking a
/// key up does not refresh it, only inserting does.
pub(crate) struct Recent<K, V> {
    entries: LruCache<K, V, ahash::RandomState>,
}

impl<K: std::hash::Hash + Eq, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            entries: LruCache::with_hasher(RECENT_FLOWS, ahash::RandomState::default()),
        }
    }
}

/// 2^17: what the two 2^16-entry generations this replaced could hold at most, so every key
/// they found is still found.
const RECENT_FLOWS: usize = 1 << 17;

impl<K: std::hash::Hash + Eq, V: Copy> Recent<K, V> {
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.entries.insert(key, value);
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.entries.peek(key).copied()
    }
}

/// Flow ids of recent events → their endpoints, so an alert's evidence can name the packets
/// (an alert's flows are nearly always among the last few thousand that produced events).
pub(crate) type RecentFlows = Recent<FlowId, FlowMeta>;

/// Canonical flow key → the id of the flow last seen with it.
pub(crate) type RecentKeys = Recent<FlowKey, FlowId>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_inserted_keys_and_no_more() {
        let mut r: Recent<u32, u32> = Recent::default();
        let n = RECENT_FLOWS as u32;
        for k in 0..n + 10 {
            r.insert(k, k * 2);
        }
        assert_eq!(r.get(&9), None, "the oldest ten are gone");
        assert_eq!(r.get(&10), Some(20));
        assert_eq!(r.get(&(n + 9)), Some(2 * (n + 9)));
        // Inserting again refreshes; looking up does not.
        r.insert(10, 1);
        r.insert(n + 10, 0);
        assert_eq!(r.get(&10), Some(1));
        assert_eq!(r.get(&11), None);
        assert_eq!(r.entries.len(), RECENT_FLOWS);
    }
}
