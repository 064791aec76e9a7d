//! A bounded reorder buffer: events from several sensors (or several archived files) back into
//! packet-time order before detection, whose windows and clock assume it.
//!
//! # Watermark
//! The buffer holds each event until the newest packet time seen so far (`max_seen`) is at
//! least `window` past it: an event at `ts` is released once `ts <= max_seen - window`. So an
//! event may arrive up to `window` later (in packet time) than the newest one already seen and
//! still be applied in order; that is the watermark. Events with equal times keep their
//! arrival order. Default 5 s ([`DEFAULT_REORDER_WINDOW`]): sensors' clocks are NTP-synced to
//! well under a second, and a publisher's queue and a consumer's batch add about a second;
//! detection's shortest window is minutes long, so 5 s of holding costs nothing it can see.
//!
//! # Bounds and what breaks order
//! - At most `cap` events are held ([`DEFAULT_REORDER_CAP`]); past it the oldest is released
//!   early and counted (`overflowed`): order may then break for events later than it.
//! - An event older than one already released is applied anyway (dropping it would lose an
//!   export) and counted (`late`).
//! - [`ReorderBuffer::flush`] releases everything, in order: at the end of input, or when the
//!   source has been idle long enough that nothing earlier can still come.

use pacstap_core::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Default watermark (`--reorder-window`); see the module docs for why 5 s.
pub const DEFAULT_REORDER_WINDOW: Duration = Duration::from_secs(5);

/// Default most events held. A busy site writes a few hundred events per second; 100 000 is
/// minutes of them, far more than a 5 s watermark needs, at about 1 KiB each (100 MB at worst).
pub const DEFAULT_REORDER_CAP: usize = 100_000;

/// What the buffer did that breaks (or risks) packet-time order: the run's report says these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Events pushed.
    pub pushed: u64,
    /// Events released because the buffer was full (before their watermark).
    pub overflowed: u64,
    /// Events older than one already released (applied anyway, out of order).
    pub late: u64,
    /// Most events held at once.
    pub peak: usize,
}

/// One held event; ordered by time, then arrival.
struct Held<T> {
    ts: Timestamp,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// See the module docs.
pub struct ReorderBuffer<T> {
    window_ns: i64,
    cap: usize,
    heap: BinaryHeap<Reverse<Held<T>>>,
    seq: u64,
    max_seen: Option<Timestamp>,
    /// Time of the last event released.
    released: Option<Timestamp>,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// `window`: the watermark; `cap`: most events held (at least 1).
    pub fn new(window: Duration, cap: usize) -> Self {
        ReorderBuffer {
            window_ns: i64::try_from(window.as_nanos()).unwrap_or(i64::MAX),
            cap: cap.max(1),
            heap: BinaryHeap::new(),
            seq: 0,
            max_seen: None,
            released: None,
            stats: ReorderStats::default(),
        }
    }

    /// Take `item` at packet time `ts`; append what may now be applied to `out`, in order.
    pub fn push(&mut self, ts: Timestamp, item: T, out: &mut Vec<(Timestamp, T)>) {
        self.stats.pushed += 1;
        if self.released.is_some_and(|r| ts < r) {
            // Too late to be in order: apply it now rather than lose it.
            self.stats.late += 1;
            out.push((ts, item));
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Reverse(Held {
            ts,
            seq: self.seq,
            item,
        }));
        self.max_seen = Some(self.max_seen.map_or(ts, |m| m.max(ts)));
        while self.heap.len() > self.cap {
            self.stats.overflowed += 1;
            self.pop_into(out);
        }
        self.stats.peak = self.stats.peak.max(self.heap.len());
        let due = self.max_seen.map_or(i64::MIN, |m| m.0.saturating_sub(self.window_ns));
        while self.heap.peek().is_some_and(|Reverse(h)| h.ts.0 <= due) {
            self.pop_into(out);
        }
    }

    /// Release everything held, in order (end of input, or the source idle).
    pub fn flush(&mut self, out: &mut Vec<(Timestamp, T)>) {
        while !self.heap.is_empty() {
            self.pop_into(out);
        }
    }

    fn pop_into(&mut self, out: &mut Vec<(Timestamp, T)>) {
        if let Some(Reverse(h)) = self.heap.pop() {
            self.released = Some(self.released.map_or(h.ts, |r| r.max(h.ts)));
            out.push((h.ts, h.item));
        }
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    fn run(window: Duration, cap: usize, input: &[i64]) -> (Vec<(i64, usize)>, ReorderBuffer<usize>) {
        let mut b = ReorderBuffer::new(window, cap);
        let mut out = Vec::new();
        for (i, t) in input.iter().enumerate() {
            b.push(Timestamp(*t), i, &mut out);
            assert!(b.len() <= cap);
        }
        b.flush(&mut out);
        (out.into_iter().map(|(t, i)| (t.0, i)).collect(), b)
    }

    #[test]
    fn releases_at_the_watermark_and_sorts_what_came_within_it() {
        let mut b = ReorderBuffer::new(Duration::from_secs(5), 100);
        let mut out = Vec::new();
        b.push(Timestamp(10 * S), "a", &mut out);
        b.push(Timestamp(8 * S), "b", &mut out);
        b.push(Timestamp(12 * S), "c", &mut out);
        assert!(out.is_empty(), "nothing is 5 s behind 12 s yet");
        b.push(Timestamp(15 * S), "d", &mut out);
        // 15 - 5 = 10: "b" (8) and "a" (10) are due, in time order.
        assert_eq!(out.iter().map(|(_, x)| *x).collect::<Vec<_>>(), ["b", "a"]);
        b.push(Timestamp(9 * S), "late", &mut out);
        assert_eq!(out.last().unwrap().1, "late", "applied at once");
        assert_eq!(b.stats().late, 1);
        b.flush(&mut out);
        assert_eq!(
            out.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
            ["b", "a", "late", "c", "d"]
        );
        assert!(b.is_empty());
        assert_eq!(b.stats().pushed, 5);
    }

    #[test]
    fn a_full_buffer_releases_its_oldest_early_and_counts_it() {
        let (out, b) = run(Duration::from_secs(60), 2, &[5 * S, 3 * S, 4 * S, S]);
        assert_eq!(b.stats().overflowed, 1);
        assert_eq!(b.stats().peak, 2);
        // 3 s leaves when 4 s arrives (overflow); 1 s is then late.
        assert_eq!(out.iter().map(|(t, _)| t / S).collect::<Vec<_>>(), [3, 1, 4, 5]);
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn equal_times_keep_arrival_order() {
        let (out, _) = run(Duration::from_secs(1), 10, &[S, S, S, 0, 5 * S, 5 * S]);
        assert_eq!(out.iter().map(|(_, i)| *i).collect::<Vec<_>>(), [3, 0, 1, 2, 4, 5]);
    }

    /// Input whose every event is at most `window` behind the newest before it.
    fn within_watermark() -> impl Strategy<Value = (u64, Vec<i64>)> {
        (0u64..10).prop_flat_map(|w| {
            let w_ns = i64::try_from(w).unwrap() * S;
            (Just(w), prop::collection::vec((0i64..3 * S, 0i64..=w_ns), 0..200)).prop_map(move |(w, steps)| {
                let mut max = 0i64;
                let v = steps
                    .into_iter()
                    .map(|(advance, behind)| {
                        max += advance;
                        (max - behind).max(0)
                    })
                    .collect();
                (w, v)
            })
        })
    }

    proptest! {
        #[test]
        fn sorted_when_lateness_is_within_the_watermark((w, input) in within_watermark()) {
            let (out, b) = run(Duration::from_secs(w), 1_000, &input);
            prop_assert!(out.windows(2).all(|p| p[0].0 <= p[1].0), "{out:?}");
            prop_assert_eq!(b.stats().late, 0);
            prop_assert_eq!(out.len(), input.len());
        }

        #[test]
        fn nothing_lost_and_bounded_whatever_the_input(
            input in prop::collection::vec(-100i64..100, 0..300),
            cap in 1usize..20,
            w in 0u64..5,
        ) {
            let input: Vec<i64> = input.into_iter().map(|t| t * S).collect();
            let (out, b) = run(Duration::from_secs(w), cap, &input);
            let mut got: Vec<usize> = out.iter().map(|(_, i)| *i).collect();
            got.sort_unstable();
            prop_assert_eq!(got, (0..input.len()).collect::<Vec<_>>());
            prop_assert!(b.stats().peak <= cap);
            for (t, i) in &out {
                prop_assert_eq!(*t, input[*i]);
            }
        }
    }
}
