//! A bounded window of recently applied `event_id`s: an event delivered twice (a JetStream
//! redelivery after a lost ack, a detector restarted from its checkpoint, the same archive
//! given twice) is recognised and applied once.
//!
//! Bounded two ways: at most `max_ids` ids ([`DEFAULT_DEDUP_IDS`]), and none older (in packet
//! time) than `max_age` behind the newest ([`DEFAULT_DEDUP_AGE`]); the oldest go first. A
//! re-delivery older than both is applied again: the window must cover what a source can
//! redeliver (JetStream redelivers unacked messages, and acks follow application promptly).
//!
//! Ids are kept as 128-bit FNV-1a hashes, not strings: 24 bytes an id whatever its length, and
//! the same in every run, so the window can be saved in a checkpoint ([`DedupState`]) and read
//! back by another process. Two distinct ids collide with probability about n²/2¹²⁹: never in
//! practice. (FNV is not collision-resistant against someone choosing ids; whoever can publish
//! events to the stream can do worse than suppress one, so that is not the threat here.)

use pacstap_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

/// Default most ids kept: a million events is hours of a busy site's events, at 24 bytes an
/// id plus the set's overhead (about 60 MB at most).
pub const DEFAULT_DEDUP_IDS: usize = 1_000_000;

/// Default oldest id kept, in packet time behind the newest: an hour, well past JetStream's
/// default ack wait (30 s) times its redeliveries, and past a restart from a checkpoint.
pub const DEFAULT_DEDUP_AGE: Duration = Duration::from_secs(3600);

/// The stable 128-bit FNV-1a hash of an id (fixed constants: the same across runs and builds).
pub fn id_hash(id: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    id.bytes().fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct DedupWindow {
    max_ids: usize,
    max_age_ns: i64,
    /// Ids in the order they were applied, with their packet time.
    order: VecDeque<(u128, Timestamp)>,
    set: HashSet<u128>,
    newest: Option<Timestamp>,
    duplicates: u64,
}

/// What a checkpoint saves of a [`DedupWindow`]: its bounds and ids, oldest first (ids as 32
/// hex digits; JSON numbers cannot carry 128 bits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupState {
    pub max_ids: usize,
    pub max_age_secs: u64,
    /// `(id hash, packet time in ns)`, oldest first.
    pub ids: Vec<(String, i64)>,
}

impl DedupWindow {
    pub fn new(max_ids: usize, max_age: Duration) -> Self {
        DedupWindow {
            max_ids: max_ids.max(1),
            max_age_ns: i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX),
            order: VecDeque::new(),
            set: HashSet::new(),
            newest: None,
            duplicates: 0,
        }
    }

    /// Record `id` seen at `ts`. `true`: first time in the window, apply the event; `false`: a
    /// duplicate (counted), skip it.
    pub fn insert(&mut self, id: &str, ts: Timestamp) -> bool {
        let h = id_hash(id);
        if self.set.contains(&h) {
            self.duplicates += 1;
            return false;
        }
        self.set.insert(h);
        self.order.push_back((h, ts));
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
        self.evict();
        true
    }

    /// Whether `id` is in the window (without recording it).
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&id_hash(id))
    }

    fn evict(&mut self) {
        let oldest_kept = self.newest.map_or(i64::MIN, |n| n.0.saturating_sub(self.max_age_ns));
        while let Some(&(h, ts)) = self.order.front() {
            if self.order.len() <= self.max_ids && ts.0 >= oldest_kept {
                break;
            }
            self.order.pop_front();
            self.set.remove(&h);
        }
    }

    /// Ids in the window.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Duplicates recognised so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// For a checkpoint.
    pub fn save(&self) -> DedupState {
        DedupState {
            max_ids: self.max_ids,
            max_age_secs: u64::try_from(self.max_age_ns / 1_000_000_000).unwrap_or(0),
            ids: self.order.iter().map(|(h, ts)| (format!("{h:032x}"), ts.0)).collect(),
        }
    }

    /// From a checkpoint, with this run's bounds (a smaller bound drops the oldest ids).
    /// Entries that are not 32 hex digits are skipped (a damaged checkpoint loses only them).
    pub fn restore(state: &DedupState, max_ids: usize, max_age: Duration) -> Self {
        let mut w = DedupWindow::new(max_ids, max_age);
        for (hex, ns) in &state.ids {
            let Some(h) = (hex.len() == 32).then(|| u128::from_str_radix(hex, 16).ok()).flatten() else {
                continue;
            };
            if w.set.insert(h) {
                w.order.push_back((h, Timestamp(*ns)));
                w.newest = Some(w.newest.map_or(Timestamp(*ns), |n| n.max(Timestamp(*ns))));
            }
        }
        w.evict();
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn recognises_redelivery_within_the_window() {
        let mut w = DedupWindow::new(10, Duration::from_secs(60));
        assert!(w.insert("site-a-1-1", Timestamp(0)));
        assert!(w.insert("site-b-1-1", Timestamp(S)));
        assert!(!w.insert("site-a-1-1", Timestamp(2 * S)));
        assert_eq!(w.duplicates(), 1);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn forgets_the_oldest_by_count_and_by_age() {
        let mut w = DedupWindow::new(3, Duration::from_secs(60));
        for i in 0..5 {
            assert!(w.insert(&format!("e{i}"), Timestamp(i * S)));
        }
        assert_eq!(w.len(), 3);
        assert!(!w.contains("e0") && !w.contains("e1") && w.contains("e2"));
        // 70 s later: everything older than 10 s is past the 60 s age.
        assert!(w.insert("late", Timestamp(70 * S)));
        assert_eq!(w.len(), 1);
        assert!(w.insert("e4", Timestamp(70 * S)), "forgotten: applied again");
    }

    #[test]
    fn saves_and_restores_through_json() {
        let mut w = DedupWindow::new(100, Duration::from_secs(600));
        for i in 0..20 {
            w.insert(&format!("site-a-7-{i}"), Timestamp(i * S));
        }
        let json = serde_json::to_string(&w.save()).unwrap();
        let state: DedupState = serde_json::from_str(&json).unwrap();
        let mut back = DedupWindow::restore(&state, 100, Duration::from_secs(600));
        assert_eq!(back.len(), 20);
        assert!(!back.insert("site-a-7-3", Timestamp(30 * S)));
        assert!(back.insert("site-a-7-20", Timestamp(30 * S)));
        // A smaller bound keeps the newest; damaged entries are skipped.
        let mut damaged = state.clone();
        damaged.ids.push(("zz".into(), 0));
        let small = DedupWindow::restore(&damaged, 5, Duration::from_secs(600));
        assert_eq!(small.len(), 5);
        assert!(small.contains("site-a-7-19") && !small.contains("site-a-7-14"));
    }

    #[test]
    fn the_hash_is_fixed() {
        // FNV-1a 128 of the empty string is its offset basis.
        assert_eq!(id_hash(""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_ne!(id_hash("site-a-1-1"), id_hash("site-a-1-2"));
    }

    proptest! {
        #[test]
        fn bounded_and_exact_within_its_bounds(ids in prop::collection::vec(0u16..200, 0..500), cap in 1usize..50) {
            let mut w = DedupWindow::new(cap, Duration::from_secs(3600));
            let mut recent: VecDeque<u16> = VecDeque::new();
            for id in ids {
                let fresh = w.insert(&format!("id-{id}"), Timestamp(0));
                // A model: the last `cap` distinct ids accepted.
                prop_assert_eq!(fresh, !recent.contains(&id));
                if fresh {
                    recent.push_back(id);
                    if recent.len() > cap {
                        recent.pop_front();
                    }
                }
                prop_assert!(w.len() <= cap);
            }
        }
    }
}
