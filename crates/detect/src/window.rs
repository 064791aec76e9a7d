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
//!
//! Most windows hold a handful of items (a user's studies of the last half hour, an account's
//! failed logins), and with 10^5 entities every separate allocation is a cache miss. So a
//! window starts *small*: one vector sorted by time, scanned linearly. Past `SMALL` items it
//! becomes *indexed*: a time-ordered deque plus a key → latest-sighting map, where a
//! re-sighting appends a new entry and leaves the old one stale (skipped, and compacted away
//! when stale entries outnumber live ones). Both give the same counts.

use pacstap_core::FlowId;
use std::collections::{HashMap, VecDeque};

/// What [`SlidingWindow::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new live item (a new distinct key, or any event in events mode).
    New,
    /// A key already live in the window: its latest sighting moved (or stayed) — count unchanged.
    Repeat,
    /// Older than the window (or than everything kept at the cap): ignored.
    Expired,
}

/// Items a small window holds before it becomes indexed: 16 × 40 bytes is ten cache lines,
/// scanned faster than a hash probe costs in misses.
const SMALL: usize = 16;

/// A live item, as handed out for evidence (and as taken in by a large window's `add`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowItem<'a> {
    pub ts: i64,
    pub key: u64,
    pub label: Option<&'a str>,
    pub flow: FlowId,
}

#[derive(Debug, Clone)]
struct SmallItem {
    ts: i64,
    key: u64,
    flow: FlowId,
    label: Option<Box<str>>,
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

/// The indexed representation.
#[derive(Debug, Clone, Default)]
struct Big {
    /// Sorted by `ts`. In distinct mode an entry is live only if the index points at its `seq`;
    /// in events mode every entry is live.
    entries: VecDeque<Entry>,
    /// Distinct mode: key → its live (latest) sighting. Keys are hashes of wire names, so the
    /// map takes `ahash`'s randomly seeded state like every other wire-keyed map (no custom
    /// hasher to keep): nothing iterates it, so the seed never reaches output.
    index: HashMap<u64, Live, ahash::RandomState>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    span: i64,
    cap: usize,
    distinct: bool,
    /// Small mode: live items sorted by `ts` (ties in arrival order).
    small: Vec<SmallItem>,
    /// Indexed mode, once more than `SMALL` items were live at once.
    big: Option<Box<Big>>,
    /// Items dropped at the cap (saturation), since the last `take_dropped`.
    dropped: u64,
    /// Time of the first entry (`i64::MAX` when empty), so `expire` on a window with nothing
    /// to expire reads no heap memory.
    front_ts: i64,
}

impl Big {
    fn live(&self, distinct: bool, e: &Entry) -> bool {
        !distinct || self.index.get(&e.key).is_some_and(|l| l.seq == e.seq)
    }

    fn count(&self, distinct: bool) -> usize {
        if distinct {
            self.index.len()
        } else {
            self.entries.len()
        }
    }

    /// Remove the index entry if `e` is its live sighting; whether it was live.
    fn unlink(&mut self, distinct: bool, e: &Entry) -> bool {
        if !distinct {
            return true;
        }
        if self.index.get(&e.key).is_some_and(|l| l.seq == e.seq) {
            self.index.remove(&e.key);
            true
        } else {
            false
        }
    }

    fn expire(&mut self, distinct: bool, cutoff: i64) {
        while self.entries.front().is_some_and(|e| e.ts <= cutoff) {
            if let Some(e) = self.entries.pop_front() {
                self.unlink(distinct, &e);
            }
        }
    }

    fn oldest_live_ts(&self, distinct: bool) -> Option<i64> {
        self.entries.iter().find(|e| self.live(distinct, e)).map(|e| e.ts)
    }

    /// Drop the oldest live item; true if one was dropped.
    fn drop_oldest(&mut self, distinct: bool) -> bool {
        while let Some(e) = self.entries.pop_front() {
            if self.unlink(distinct, &e) {
                return true;
            }
        }
        false
    }

    fn insert_entry(&mut self, e: Entry) {
        match self.entries.back() {
            Some(b) if b.ts > e.ts => {
                let at = self.entries.partition_point(|x| x.ts <= e.ts);
                self.entries.insert(at, e);
            }
            _ => self.entries.push_back(e),
        }
    }

    /// Add one sighting under the window's `cap` and mode; items dropped at the cap are
    /// counted in `dropped`.
    fn add(&mut self, cap: usize, distinct: bool, item: WindowItem<'_>, dropped: &mut u64) -> Added {
        let WindowItem { ts, key, label, flow } = item;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut added = Added::New;
        if distinct {
            let at_cap = self.index.len() >= cap;
            let oldest = if at_cap { self.oldest_live_ts(distinct) } else { None };
            match self.index.get_mut(&key) {
                Some(live) if live.ts >= ts => return Added::Repeat,
                Some(live) => {
                    live.seq = seq;
                    live.ts = ts;
                    added = Added::Repeat;
                }
                None => {
                    if oldest.is_some_and(|o| ts < o) {
                        *dropped += 1;
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
        } else if self.entries.len() >= cap && self.entries.front().is_some_and(|f| ts < f.ts) {
            *dropped += 1;
            return Added::Expired;
        }
        self.insert_entry(Entry { ts, seq, key, flow });
        if added == Added::New {
            while self.count(distinct) > cap {
                if !self.drop_oldest(distinct) {
                    break;
                }
                *dropped += 1;
            }
        }
        if distinct && self.entries.len() > 2 * self.index.len() + 32 {
            let index = &self.index;
            self.entries
                .retain(|e| index.get(&e.key).is_some_and(|l| l.seq == e.seq));
        }
        added
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
            small: Vec::new(),
            big: None,
            dropped: 0,
            front_ts: i64::MAX,
        }
    }

    fn refresh_front(&mut self) {
        self.front_ts = match &self.big {
            None => self.small.first().map_or(i64::MAX, |i| i.ts),
            Some(b) => b.entries.front().map_or(i64::MAX, |e| e.ts),
        };
    }

    /// Items dropped at the cap since the last call (for the detector's counters).
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    pub(crate) fn span(&self) -> i64 {
        self.span
    }

    /// A new window length (config reload): the items are kept; a shorter window drops the
    /// older ones at the next [`SlidingWindow::expire`], a longer one counts them longer.
    pub(crate) fn set_span(&mut self, span_nanos: i64) {
        self.span = span_nanos.max(1);
    }

    fn cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(self.span)
    }

    /// Live items (call [`SlidingWindow::expire`] first).
    pub(crate) fn count(&self) -> u64 {
        match &self.big {
            Some(b) => b.count(self.distinct) as u64,
            None => self.small.len() as u64,
        }
    }

    /// Live items newer than `cutoff` (a shorter window over the same items).
    pub(crate) fn count_after(&self, cutoff: i64) -> u64 {
        match &self.big {
            None => (self.small.len() - self.small.partition_point(|i| i.ts <= cutoff)) as u64,
            Some(b) if !self.distinct => (b.entries.len() - b.entries.partition_point(|e| e.ts <= cutoff)) as u64,
            Some(b) => b.entries.iter().filter(|e| e.ts > cutoff && b.live(true, e)).count() as u64,
        }
    }

    /// Drop what fell out of `(now - span, now]`.
    pub(crate) fn expire(&mut self, now: i64) {
        let cutoff = self.cutoff(now);
        if self.front_ts > cutoff {
            return;
        }
        match &mut self.big {
            None => {
                let n = self.small.partition_point(|i| i.ts <= cutoff);
                if n > 0 {
                    self.small.drain(..n);
                }
            }
            Some(b) => {
                b.expire(self.distinct, cutoff);
                if b.count(self.distinct) == 0 {
                    // Back to small: frees the index and deque.
                    self.big = None;
                }
            }
        }
        self.refresh_front();
    }

    /// Add a sighting at `ts` (with `now` the newest packet time). `key` identifies the thing
    /// in distinct mode (ignored in events mode); `label` is kept for evidence.
    pub(crate) fn add(&mut self, now: i64, ts: i64, key: u64, label: Option<&str>, flow: FlowId) -> Added {
        if ts <= self.cutoff(now) {
            return Added::Expired;
        }
        let (cap, distinct) = (self.cap, self.distinct);
        if let Some(b) = &mut self.big {
            let r = b.add(cap, distinct, WindowItem { ts, key, label, flow }, &mut self.dropped);
            self.refresh_front();
            return r;
        }
        let mut item = SmallItem {
            ts,
            key,
            flow,
            label: None,
        };
        let mut added = Added::New;
        if distinct {
            if let Some(pos) = self.small.iter().position(|i| i.key == key) {
                if self.small.get(pos).is_some_and(|i| i.ts >= ts) {
                    return Added::Repeat;
                }
                // Re-sighted later: move it to its new place in time.
                let old = self.small.remove(pos);
                item.label = old.label;
                added = Added::Repeat;
            }
        }
        if added == Added::New {
            if self.small.len() >= cap {
                if self.small.first().is_some_and(|f| ts < f.ts) {
                    self.dropped += 1;
                    return Added::Expired;
                }
                self.small.remove(0);
                self.dropped += 1;
            }
            item.label = label.map(Box::from);
        }
        let at = self.small.partition_point(|i| i.ts <= ts);
        self.small.insert(at, item);
        if self.small.len() > SMALL {
            self.grow();
        }
        self.refresh_front();
        added
    }

    /// Small → indexed.
    fn grow(&mut self) {
        let mut big = Big::default();
        for item in self.small.drain(..) {
            let seq = big.next_seq;
            big.next_seq += 1;
            if self.distinct {
                big.index.insert(
                    item.key,
                    Live {
                        seq,
                        ts: item.ts,
                        label: item.label,
                    },
                );
            }
            big.entries.push_back(Entry {
                ts: item.ts,
                seq,
                key: item.key,
                flow: item.flow,
            });
        }
        self.small = Vec::new();
        self.big = Some(Box::new(big));
    }

    /// Time of the oldest live item.
    #[cfg(test)]
    pub(crate) fn first_ts(&self) -> Option<i64> {
        match &self.big {
            None => self.small.first().map(|i| i.ts),
            Some(b) => b.oldest_live_ts(self.distinct),
        }
    }

    /// Live items, oldest first.
    pub(crate) fn items(&self) -> Vec<WindowItem<'_>> {
        match &self.big {
            None => self
                .small
                .iter()
                .map(|i| WindowItem {
                    ts: i.ts,
                    key: i.key,
                    label: i.label.as_deref(),
                    flow: i.flow,
                })
                .collect(),
            Some(b) => b
                .entries
                .iter()
                .filter(|e| b.live(self.distinct, e))
                .map(|e| WindowItem {
                    ts: e.ts,
                    key: e.key,
                    label: if self.distinct {
                        b.index.get(&e.key).and_then(|l| l.label.as_deref())
                    } else {
                        None
                    },
                    flow: e.flow,
                })
                .collect(),
        }
    }
}

/// One connection's bytes in a [`ByteWindow`].
#[derive(Debug, Clone)]
pub(crate) struct ByteItem {
    pub ts: i64,
    pub bytes: u64,
    pub flow: FlowId,
    /// What served them (`pacs.example.test (10.20.0.10:443)`), for evidence.
    pub label: Option<Box<str>>,
}

/// A sum of bytes over `(now - span, now]`: volumes per client for the HTTPS half of
/// `bulk_export`, where the studies inside the encryption cannot be counted.
///
/// At most `cap` items. Past the cap the two oldest merge into one dated at the newer of them
/// (keeping the newer's flow and label), so the sum never drops bytes that are still in the
/// window: it stays exact until the merged item expires, and then errs towards counting
/// (the older bytes leave a little late) rather than missing a download. Merges are counted.
#[derive(Debug, Clone)]
pub(crate) struct ByteWindow {
    span: i64,
    cap: usize,
    /// Sorted by `ts`.
    items: VecDeque<ByteItem>,
    sum: u64,
    merged: u64,
}

impl ByteWindow {
    pub(crate) fn new(span_nanos: i64, cap: usize) -> Self {
        ByteWindow {
            span: span_nanos.max(1),
            cap: cap.max(2),
            items: VecDeque::new(),
            sum: 0,
            merged: 0,
        }
    }

    /// A new window length (config reload), as [`SlidingWindow::set_span`].
    pub(crate) fn set_span(&mut self, span_nanos: i64) {
        self.span = span_nanos.max(1);
    }

    /// Bytes of the live items (call [`ByteWindow::expire`] first).
    pub(crate) fn sum(&self) -> u64 {
        self.sum
    }

    /// Live items, oldest first.
    pub(crate) fn items(&self) -> impl Iterator<Item = &ByteItem> {
        self.items.iter()
    }

    /// Items merged at the cap since the last call (for the detector's counters).
    pub(crate) fn take_merged(&mut self) -> u64 {
        std::mem::take(&mut self.merged)
    }

    /// Drop what fell out of `(now - span, now]`.
    pub(crate) fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.span);
        while let Some(f) = self.items.front() {
            if f.ts > cutoff {
                break;
            }
            self.sum = self.sum.saturating_sub(f.bytes);
            self.items.pop_front();
        }
    }

    /// Add `bytes` at `ts` (with `now` the newest packet time); false when `ts` is already
    /// older than the window (ignored).
    pub(crate) fn add(&mut self, now: i64, ts: i64, bytes: u64, flow: FlowId, label: Option<&str>) -> bool {
        if ts <= now.saturating_sub(self.span) {
            return false;
        }
        let item = ByteItem {
            ts,
            bytes,
            flow,
            label: label.map(Box::from),
        };
        let at = self.items.partition_point(|i| i.ts <= ts);
        self.items.insert(at, item);
        self.sum = self.sum.saturating_add(bytes);
        while self.items.len() > self.cap {
            let (Some(a), Some(b)) = (self.items.pop_front(), self.items.pop_front()) else {
                break;
            };
            self.items.push_front(ByteItem {
                bytes: a.bytes.saturating_add(b.bytes),
                ..b
            });
            self.merged += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_window_sums_and_expires() {
        let mut w = ByteWindow::new(100, 8);
        assert!(w.add(0, 0, 10, FlowId(1), Some("a")));
        assert!(w.add(50, 50, 20, FlowId(2), None));
        // Late, but inside the window: inserted at its place.
        assert!(w.add(50, 30, 5, FlowId(3), None));
        assert_eq!(w.sum(), 35);
        assert_eq!(w.items().map(|i| i.flow.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        w.expire(100);
        assert_eq!(w.sum(), 25, "the item at 0 left (0 <= 100 - 100)");
        assert!(!w.add(140, 30, 99, FlowId(4), None), "older than the window");
        w.expire(200);
        assert_eq!(w.sum(), 0);
        assert_eq!(w.items().count(), 0);
    }

    #[test]
    fn byte_window_merges_at_the_cap_and_never_undercounts() {
        let mut w = ByteWindow::new(1000, 4);
        for i in 0..10 {
            w.add(i * 10, i * 10, 100, FlowId(i as u64), None);
        }
        assert_eq!(w.items().count(), 4);
        assert_eq!(w.sum(), 1000, "every byte is still inside the window");
        assert_eq!(w.take_merged(), 6);
        assert_eq!(w.take_merged(), 0);
        // The merged item is dated at its newest part: it leaves no earlier than that.
        w.expire(1000 + 60);
        assert_eq!(w.sum(), 300);
    }

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
        assert_eq!(w.items().iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some("b")]);
        assert_eq!(w.add(200, 50, 3, None, F), Added::Expired);
    }

    #[test]
    fn saturates_at_cap_keeping_the_newest() {
        for cap in [3, 30] {
            let mut w = SlidingWindow::events(1000, cap);
            for t in 0..100 {
                w.add(t, t, 0, None, F);
            }
            assert_eq!(w.count(), cap as u64);
            assert_eq!(w.take_dropped(), 100 - cap as u64);
            assert_eq!(w.first_ts(), Some(100 - cap as i64));
        }
    }

    #[test]
    fn grows_indexed_and_shrinks_back() {
        let mut w = SlidingWindow::distinct(100, 512);
        for k in 0..40u64 {
            w.add(k as i64, k as i64, k, Some("s"), F);
        }
        assert!(w.big.is_some());
        assert_eq!(w.count(), 40);
        assert_eq!(w.add(41, 41, 3, None, F), Added::Repeat);
        assert_eq!(w.items().last().map(|i| i.key), Some(3));
        w.expire(500);
        assert_eq!(w.count(), 0);
        assert!(w.big.is_none());
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
            steps in prop::collection::vec((0i64..40, -30i64..=0, 0u64..48), 1..300),
            span in 1i64..400,
            cap in 1usize..40,
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
            // And as time runs on with no new items (in order: packet time never goes back,
            // and `span / 2` is 0 for a span of 1).
            let mut extras = [1, span / 2, span, span + 1];
            extras.sort_unstable();
            for extra in extras {
                let t = now + extra;
                w.expire(t);
                prop_assert_eq!(w.count(), naive(&seen, t, span, cap, distinct));
            }
        }
    }
}
