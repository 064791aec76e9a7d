//! A bounded map of the most recently seen keys: how the flow shard remembers ended flows for
//! live evidence, and detection the flows its alerts name.

use pacstap_core::{FlowId, FlowKey, FlowMeta};
use std::collections::HashMap;

/// The most recently inserted keys and their values: two generations of at most
/// [`RECENT_FLOWS`] each, so bounded and O(1) with no per-entry bookkeeping; a key is found for
/// at least [`RECENT_FLOWS`] insertions of other keys after its own.
pub(crate) struct Recent<K, V> {
    current: HashMap<K, V, ahash::RandomState>,
    previous: HashMap<K, V, ahash::RandomState>,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            current: HashMap::default(),
            previous: HashMap::default(),
        }
    }
}

const RECENT_FLOWS: usize = 1 << 16;

impl<K: std::hash::Hash + Eq, V: Copy> Recent<K, V> {
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= RECENT_FLOWS && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.current.get(key).or_else(|| self.previous.get(key)).copied()
    }
}

/// Flow ids of recent events → their endpoints, so an alert's evidence can name the packets
/// (an alert's flows are nearly always among the last few thousand that produced events).
pub(crate) type RecentFlows = Recent<FlowId, FlowMeta>;

/// Canonical flow key → the id of the flow last seen with it.
pub(crate) type RecentKeys = Recent<FlowKey, FlowId>;
