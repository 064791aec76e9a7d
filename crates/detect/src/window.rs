//! Sliding windows over packet time: exact, bounded counts of events or of distinct things.
//!
//! A window covers `(now - span, now]`. It keeps at most `cap` live items, the most recent
//! ones (by their latest sighting); past the cap the oldest is dropped. Because the items in a
//! window are always a suffix in time order, keeping the `cap` most recent makes the count
//! exactly `min(true count, cap)` at every instant: exact below the cap, saturated at it. The
//! config requires every threshold to be below the cap, so firing decisions are exact.
//!
//! Items normally arrive in time order (packet time); an item that arrives late (held for an
//! association's user identity, or reordered by the pipeline) is inserted at its place, and one
//! already older than the window is ignored.

use pacstap_core::FlowId;
use std::collections::{HashMap, VecDeque};

/// What [`SlidingWindow::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new live item (a new distinct key, or any event in events mode).
    New,
    /// A key already live in the window: its latest sighting moved (or stayed) — count unchanged.
    Repeat,
    /// Older than the window: ignored.
    Expired,
}

#[derive(Debug, Clone)]
struct Entry {
    ts: i64,
    seq: u64,
    key: u64,
    flow: FlowId,
}

#[derive(Debug, Clone)]
struct Live {
    seq: u64,
    ts: i64,
    label: Option<Box<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    span: i64,
    cap: usize,
    distinct: bool,
    /// Sorted by `ts`. In distinct mode an entry is live only if the index points at its `seq`.
    entries: VecDeque<Entry>,
    /// Distinct mode: key → its live (latest) sighting.
    index: HashMap<u64, Live, FixedState>,
    next_seq: u64,
    /// Items dropped at the cap (saturation).
    pub dropped: u64,
}

/// A fixed hasher for keys that are already hashes: deterministic and cheap.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedState;

impl std::hash::BuildHasher for FixedState {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// Keys are 64-bit hashes already; mix once so low bits are well spread for the table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // splitmix64 finaliser.
        let mut z = v.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

impl SlidingWindow {
    /// Count every event.
    pub(crate) fn events(span_nanos: i64, cap: usize) -> Self {
        Self::new(span_nanos, cap, false)
    }

    /// Count distinct keys.
    pub(crate) fn distinct(span_nanos: i64, cap: usize) -> Self {
        Self::new(span_nanos, cap, true)
    }

    fn new(span: i64, cap: usize, distinct: bool) -> Self {
        SlidingWindow {
            span: span.max(1),
            cap: cap.max(1),
            distinct,
            entries: VecDeque::new(),
            index: HashMap::with_hasher(FixedState),
            next_seq: 0,
            dropped: 0,
        }
    }

    /// Items dropped at the cap since the last call (for the detector's counters).
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    pub(crate) fn span(&self) -> i64 {
        self.span
    }

    fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.span)
    }

    /// Live items (call [`SlidingWindow::expire`] first).
    pub(crate) fn count(&self) -> u64 {
        if self.distinct {
            self.index.len() as u64
        } else {
            self.entries.len() as u64
        }
    }

    /// Events mode: live items newer than `cutoff` (a shorter window over the same items).
    pub(crate) fn count_after(&self, cutoff: i64) -> u64 {
        if self.distinct {
            return self.live_entries().filter(|e| e.ts > cutoff).count() as u64;
        }
        let i = self.entries.partition_point(|e| e.ts <= cutoff);
        (self.entries.len() - i) as u64
    }

    /// Drop what fell out of `(now - span, now]`.
    pub(crate) fn expire(&mut self, now: i64) {
        let cutoff = self.cutoff(now);
        while self.entries.front().is_some_and(|e| e.ts <= cutoff) {
            if let Some(e) = self.entries.pop_front() {
                self.unlink(&e);
            }
        }
    }

    /// Remove the index entry if `e` is its live sighting.
    fn unlink(&mut self, e: &Entry) -> bool {
        if !self.distinct {
            return true;
        }
        if self.index.get(&e.key).is_some_and(|l| l.seq == e.seq) {
            self.index.remove(&e.key);
            true
        } else {
            false
        }
    }

    /// Add a sighting at `ts` (with `now` the newest packet time). `key` identifies the thing
    /// in distinct mode (ignored in events mode); `label` is kept for evidence.
    pub(crate) fn add(&mut self, now: i64, ts: i64, key: u64, label: Option<&str>, flow: FlowId) -> Added {
        let cutoff = self.cutoff(now);
        if ts <= cutoff {
            return Added::Expired;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut added = Added::New;
        if self.distinct {
            match self.index.get_mut(&key) {
                Some(live) if live.ts >= ts => return Added::Repeat,
                Some(live) => {
                    live.seq = seq;
                    live.ts = ts;
                    added = Added::Repeat;
                }
                None => {
                    if self.index.len() >= self.cap && self.oldest_live_ts().is_some_and(|o| ts < o) {
                        // Older than every item kept at the cap: it would be dropped at once.
                        self.dropped += 1;
                        return Added::Expired;
                    }
                    self.index.insert(
                        key,
                        Live {
                            seq,
                            ts,
                            label: label.map(Box::from),
                        },
                    );
                }
            }
        } else if self.entries.len() >= self.cap && self.entries.front().is_some_and(|f| ts < f.ts) {
            self.dropped += 1;
            return Added::Expired;
        }
        let entry = Entry { ts, seq, key, flow };
        if self.entries.back().map_or(true, |b| b.ts <= ts) {
            self.entries.push_back(entry);
        } else {
            let at = self.entries.partition_point(|e| e.ts <= ts);
            self.entries.insert(at, entry);
        }
        if added == Added::New {
            while self.count() > self.cap as u64 {
                self.drop_oldest();
            }
        }
        if self.distinct && self.entries.len() > 2 * self.index.len() + 32 {
            self.compact();
        }
        added
    }

    fn drop_oldest(&mut self) {
        while let Some(e) = self.entries.pop_front() {
            if self.unlink(&e) {
                self.dropped += 1;
                return;
            }
        }
    }

    fn compact(&mut self) {
        let index = &self.index;
        self.entries
            .retain(|e| index.get(&e.key).is_some_and(|l| l.seq == e.seq));
    }

    fn live_entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .iter()
            .filter(move |e| !self.distinct || self.index.get(&e.key).is_some_and(|l| l.seq == e.seq))
    }

    fn oldest_live_ts(&self) -> Option<i64> {
        self.live_entries().next().map(|e| e.ts)
    }

    /// Time of the oldest live item.
    #[cfg(test)]
    pub(crate) fn first_ts(&self) -> Option<i64> {
        self.oldest_live_ts()
    }

    /// Live items oldest first: (time, label, flow).
    pub(crate) fn items(&self) -> impl Iterator<Item = (i64, Option<&str>, FlowId)> + '_ {
        self.live_entries().map(move |e| {
            let label = if self.distinct {
                self.index.get(&e.key).and_then(|l| l.label.as_deref())
            } else {
                None
            };
            (e.ts, label, e.flow)
        })
    }

    /// Live keys (distinct mode) with their labels, oldest first.
    pub(crate) fn keyed_items(&self) -> impl Iterator<Item = (u64, Option<&str>, FlowId)> + '_ {
        self.live_entries().map(move |e| {
            let label = self.index.get(&e.key).and_then(|l| l.label.as_deref());
            (e.key, label, e.flow)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: FlowId = FlowId(1);

    #[test]
    fn counts_distinct_and_expires() {
        let mut w = SlidingWindow::distinct(100, 10);
        assert_eq!(w.add(0, 0, 1, Some("a"), F), Added::New);
        assert_eq!(w.add(10, 10, 1, Some("a"), F), Added::Repeat);
        assert_eq!(w.add(20, 20, 2, Some("b"), F), Added::New);
        assert_eq!(w.count(), 2);
        // Key 1's latest sighting (10) keeps it alive past 100.
        w.expire(105);
        assert_eq!(w.count(), 2);
        w.expire(110);
        assert_eq!(w.count(), 1);
        assert_eq!(w.items().map(|i| i.1).collect::<Vec<_>>(), vec![Some("b")]);
        assert_eq!(w.add(200, 50, 3, None, F), Added::Expired);
    }

    #[test]
    fn saturates_at_cap_keeping_the_newest() {
        let mut w = SlidingWindow::events(1000, 3);
        for t in 0..10 {
            w.add(t, t, 0, None, F);
        }
        assert_eq!(w.count(), 3);
        assert_eq!(w.dropped, 7);
        assert_eq!(w.first_ts(), Some(7));
    }

    #[test]
    fn late_items_are_inserted_in_place() {
        let mut w = SlidingWindow::events(100, 10);
        w.add(50, 50, 0, None, F);
        w.add(50, 20, 0, None, F);
        w.add(50, 40, 0, None, F);
        assert_eq!(w.first_ts(), Some(20));
        w.expire(125);
        assert_eq!(w.count(), 2);
        assert_eq!(w.count_after(45), 1);
        w.expire(145);
        assert_eq!(w.count(), 1);
    }

    /// Naive recount: distinct keys (or events) whose latest sighting in `(now-span, now]`.
    fn naive(events: &[(i64, u64)], now: i64, span: i64, cap: usize, distinct: bool) -> u64 {
        let live: Vec<&(i64, u64)> = events.iter().filter(|(t, _)| *t > now - span && *t <= now).collect();
        let n = if distinct {
            let mut keys: Vec<u64> = live.iter().map(|(_, k)| *k).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len()
        } else {
            live.len()
        };
        n.min(cap) as u64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The window count equals a naive recount over the same events after every step,
        /// including late (out-of-order) arrivals and saturation at the cap.
        #[test]
        fn matches_naive_recount(
            steps in prop::collection::vec((0i64..40, -30i64..=0, 0u64..12), 1..200),
            span in 1i64..120,
            cap in 1usize..16,
            distinct in any::<bool>(),
        ) {
            let mut w = if distinct { SlidingWindow::distinct(span, cap) } else { SlidingWindow::events(span, cap) };
            let mut now = 0i64;
            let mut seen: Vec<(i64, u64)> = Vec::new();
            for (dt, late, key) in steps {
                now += dt;
                let ts = (now + late).max(0);
                w.expire(now);
                let r = w.add(now, ts, key, None, F);
                if r != Added::Expired || ts > now - span {
                    seen.push((ts, key));
                }
                w.expire(now);
                prop_assert_eq!(w.count(), naive(&seen, now, span, cap, distinct), "now={} ts={}", now, ts);
            }
            // And as time runs on with no new items.
            for extra in [1, span / 2, span, span + 1] {
                let t = now + extra;
                w.expire(t);
                prop_assert_eq!(w.count(), naive(&seen, t, span, cap, distinct));
            }
        }
    }
}
