//! The central detector's loop over the stream, independent of what detection is: warm-up
//! from the checkpoint, the durable consumer, skipping what was applied, the `event_id` de-dup
//! window, the reorder buffer, alerts written once, checkpoints, acks after checkpoints.
//! `pacstap detect --from nats://` plugs the real detector in through [`Detection`]; the tests
//! plug a small counting one in.
//!
//! # Reorder buffer and watermark
//!
//! Sensors publish in their own packet-time order, but the stream interleaves them as their
//! publishes arrive: one sensor's event at 10:00:05 may be stored after another's at 10:00:07.
//! Detection wants packet-time order. Events wait in a buffer ordered by (packet time, stream
//! sequence) and are released when their time is at or below the **watermark** = the newest
//! packet time seen minus `reorder_lag`: a sensor may lag the others by up to `reorder_lag`
//! without reordering being visible to detection. Later than that, an event is applied when it
//! arrives (counted in `late`). The buffer also releases its oldest event when it holds
//! `reorder_cap` events, or when nothing arrived for `reorder_idle` (wall clock: input
//! stopped, no newer packet time will come to move the watermark).
//!
//! # Checkpoints
//!
//! See [`crate::checkpoint`] for the design. Here: a checkpoint is taken within
//! `alert_checkpoint_gap` (200 ms) after alerts were written and flushed, every
//! `checkpoint_events` events, every `checkpoint_interval` of wall time, and at the end; then
//! the messages it covers are acked.

use crate::checkpoint::{BoundedSet, Checkpoint, CheckpointStore, Raised, Rewinder, Snapshot, CHECKPOINT_VERSION};
use crate::consume::{Consumer, ConsumerSettings, Delivery, Replay};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One decoded event.
pub struct Decoded<E> {
    /// The sensor's per-run unique id (`event_id`), empty when the event has none.
    pub event_id: String,
    /// Packet time, ns since the epoch.
    pub ts_ns: i64,
    pub event: E,
}

/// What the loop needs from detection.
pub trait Detection {
    type Event;
    type Alert;
    /// Parse one message; `None` = malformed (counted, acked, skipped).
    fn decode(&mut self, payload: &[u8]) -> Option<Decoded<Self::Event>>;
    /// Start over from this learned state (`None`: the state detection was built with).
    fn reset(&mut self, learned: Option<serde_json::Value>) -> Result<(), String>;
    /// Apply one event; alerts go to `out`.
    fn apply(&mut self, ev: Self::Event, out: &mut Vec<Self::Alert>);
    /// End of input (`--idle-exit`): held exports attributed, grown incidents reported.
    fn finish(&mut self, out: &mut Vec<Self::Alert>);
    /// The key that recognises this alert when raised again ([`Raised::key`]).
    fn alert_key(&self, alert: &Self::Alert) -> String;
    /// Write the alerts (and flush): they must be out before the checkpoint that follows.
    fn emit(&mut self, alerts: Vec<Self::Alert>) -> Result<(), String>;
    /// Learned state now, as JSON (for the checkpoint and the rewind snapshots).
    fn learned(&self) -> serde_json::Value;
    /// Detection's packet time now (ns), `i64::MIN` before any event.
    fn now_ns(&self) -> i64;
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct CentralSettings {
    pub consumer: ConsumerSettings,
    /// Checkpoint file; none = no checkpoints (a restart resumes at the ack floor with empty
    /// windows, and acks follow each event).
    pub checkpoint: Option<PathBuf>,
    /// The longest window any rule looks back over: how far the warm-up re-reads.
    pub lookback: Duration,
    pub checkpoint_events: u64,
    pub checkpoint_interval: Duration,
    /// After alerts were written, the checkpoint that records them comes within this much
    /// wall time (0: at once). A checkpoint costs an fsync and the learned state's
    /// serialisation; alert bursts (one per incident update) would otherwise pay it per alert.
    pub alert_checkpoint_gap: Duration,
    pub reorder_lag: Duration,
    pub reorder_cap: usize,
    pub reorder_idle: Duration,
    /// `event_id`s remembered for de-duplication.
    pub dedup_cap: usize,
    /// Stop when nothing arrived for this long after the consumer was bound (then finish,
    /// checkpoint, return).
    pub idle_exit: Option<Duration>,
    /// Set by the SIGINT / SIGTERM handler: checkpoint and return (no finish: a restart goes on).
    pub stop: Arc<AtomicBool>,
    /// Test hook: return (no checkpoint, no finish: as if killed) after this many events were
    /// applied live.
    pub crash_after: Option<u64>,
}

impl CentralSettings {
    pub fn new(consumer: ConsumerSettings) -> Self {
        CentralSettings {
            consumer,
            checkpoint: None,
            lookback: Duration::from_secs(30 * 60),
            checkpoint_events: 10_000,
            checkpoint_interval: Duration::from_secs(5),
            alert_checkpoint_gap: Duration::from_millis(200),
            reorder_lag: Duration::from_secs(5),
            // Below the consumer's max_ack_pending (65 536): buffered events are not acked.
            reorder_cap: 16_384,
            reorder_idle: Duration::from_secs(1),
            // Sensors' retries beyond JetStream's own duplicate window: 2^17 ids, ~40 B each.
            dedup_cap: 131_072,
            idle_exit: None,
            stop: Arc::new(AtomicBool::new(false)),
            crash_after: None,
        }
    }
}

/// What the loop did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CentralStats {
    /// Events applied live (after warm-up).
    pub applied: u64,
    /// Events re-applied silently by the warm-up.
    pub warmed: u64,
    /// Warm-up messages the stream no longer held.
    pub warm_missing: u64,
    /// Deliveries already covered by the checkpoint (redeliveries): acked, skipped.
    pub skipped: u64,
    /// Same `event_id` seen again: skipped.
    pub duplicates: u64,
    pub malformed: u64,
    /// Events older than the watermark when they arrived.
    pub late: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Alerts recognised as already written (same key), not written again.
    pub suppressed: u64,
    pub checkpoints: u64,
    /// Sequences stepped over that never came (no longer in the stream).
    pub holes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error(transparent)]
    Consume(#[from] crate::consume::ConsumeError),
    #[error("detection: {0}")]
    Detection(String),
}

/// Packet-time reorder buffer (see the module doc).
struct Reorder<E> {
    items: BTreeMap<(i64, u64), E>,
    /// Buffered sequences, with their packet time.
    seqs: BTreeMap<u64, i64>,
    newest: i64,
    lag: i64,
    cap: usize,
}

impl<E> Reorder<E> {
    fn new(lag: Duration, cap: usize) -> Self {
        Reorder {
            items: BTreeMap::new(),
            seqs: BTreeMap::new(),
            newest: i64::MIN,
            lag: i64::try_from(lag.as_nanos()).unwrap_or(i64::MAX),
            cap: cap.max(1),
        }
    }

    /// Returns whether the event was already below the watermark.
    fn push(&mut self, ts: i64, seq: u64, ev: E) -> bool {
        let late = ts < self.watermark();
        self.newest = self.newest.max(ts);
        self.items.insert((ts, seq), ev);
        self.seqs.insert(seq, ts);
        late
    }

    fn watermark(&self) -> i64 {
        self.newest.saturating_sub(self.lag)
    }

    /// The next event to release, if one is due (or `all`). An event whose sequence is more
    /// than `cap` behind the newest buffered goes first whatever its time (a sensor clock far
    /// ahead must not hold the checkpoint floor back without bound).
    fn pop(&mut self, all: bool) -> Option<(u64, E)> {
        if let (Some((&low, &ts)), Some((&high, _))) = (self.seqs.first_key_value(), self.seqs.last_key_value()) {
            if high.saturating_sub(low) > self.cap as u64 {
                let ev = self.items.remove(&(ts, low))?;
                self.seqs.remove(&low);
                return Some((low, ev));
            }
        }
        let due = {
            let (&(ts, _), _) = self.items.first_key_value()?;
            all || ts <= self.watermark() || self.items.len() > self.cap
        };
        if !due {
            return None;
        }
        let ((_, seq), ev) = self.items.pop_first()?;
        self.seqs.remove(&seq);
        Some((seq, ev))
    }

    fn lowest_seq(&self) -> Option<u64> {
        self.seqs.first_key_value().map(|(s, _)| *s)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

struct Loop<'a, D: Detection> {
    d: &'a mut D,
    s: &'a CentralSettings,
    store: Option<CheckpointStore>,
    rewinder: Rewinder,
    raised: Raised,
    ids: BoundedSet,
    /// Buffered events with their `event_id`.
    reorder: Reorder<(String, D::Event)>,
    /// Every sequence <= floor is applied (or was skipped on purpose).
    floor: u64,
    /// Applied sequences above `floor`.
    above: BTreeSet<u64>,
    /// No checkpoint and nothing received yet: the floor starts below the first delivery
    /// (the stream may no longer hold its first messages).
    fresh: bool,
    /// Sequences to ack at the next checkpoint.
    to_ack: Vec<u64>,
    stats: CentralStats,
    since_checkpoint: u64,
    last_checkpoint: Instant,
}

impl<D: Detection> Loop<'_, D> {
    /// `seq` is applied (or skipped on purpose): move the floor over the contiguous prefix.
    fn mark_done(&mut self, seq: u64) {
        if seq > self.floor {
            self.above.insert(seq);
        }
        self.advance_floor();
        self.to_ack.push(seq);
    }

    fn advance_floor(&mut self) {
        loop {
            while self.above.first() == Some(&self.floor.saturating_add(1)) {
                self.above.pop_first();
                self.floor = self.floor.saturating_add(1);
            }
            // A hole that stays open while max_ack_pending later messages were applied is a
            // message the stream no longer holds (limits retention, purge): an unacked message
            // comes back within ack_wait, and the server delivers at most max_ack_pending
            // meanwhile. Step over it, counted.
            let missing = self.floor.saturating_add(1);
            let limit = usize::try_from(self.s.consumer.max_ack_pending.max(1)).unwrap_or(usize::MAX);
            if self.above.len() > limit && !self.reorder.seqs.contains_key(&missing) {
                let next = self
                    .reorder
                    .lowest_seq()
                    .into_iter()
                    .chain(self.above.first().copied())
                    .min();
                if let Some(next) = next {
                    self.stats.holes += 1;
                    self.floor = next.saturating_sub(1);
                    continue;
                }
            }
            break;
        }
    }

    /// Release what the watermark allows (or everything), applying it; alerts written
    /// unless `silent`. Returns whether alerts were written.
    fn release(&mut self, all: bool, silent: bool) -> Result<bool, CentralError> {
        let mut wrote = false;
        let mut out = Vec::new();
        while let Some((seq, (id, ev))) = self.reorder.pop(all) {
            self.mark_done(seq);
            // De-duplicated when applied, not when buffered: the window saved in a checkpoint
            // must hold only ids of applied events (buffered ones come again after a restart).
            if !id.is_empty() && !self.ids.insert(id) {
                self.stats.duplicates += 1;
                continue;
            }
            self.d.apply(ev, &mut out);
            if silent {
                self.stats.warmed += 1;
                for a in out.drain(..) {
                    let k = self.d.alert_key(&a);
                    self.raised.insert(k);
                }
            } else {
                self.stats.applied += 1;
                self.since_checkpoint += 1;
                wrote |= self.write(&mut out)?;
            }
        }
        Ok(wrote)
    }

    fn write(&mut self, out: &mut Vec<D::Alert>) -> Result<bool, CentralError> {
        if out.is_empty() {
            return Ok(false);
        }
        let mut fresh = Vec::new();
        for a in out.drain(..) {
            if self.raised.insert(self.d.alert_key(&a)) {
                fresh.push(a);
            } else {
                self.stats.suppressed += 1;
            }
        }
        if fresh.is_empty() {
            return Ok(false);
        }
        self.stats.alerts += fresh.len() as u64;
        self.d.emit(fresh).map_err(CentralError::Detection)?;
        Ok(true)
    }

    /// Take in one delivery: skip it if applied, de-duplicate, buffer it. Returns false for a
    /// redelivery (which must not count as input for the idle timers: a buffered event is
    /// redelivered every `ack_wait` and would keep them from ever running out).
    fn take(&mut self, dl: Delivery) -> bool {
        if self.fresh {
            self.fresh = false;
            self.floor = self.floor.max(dl.seq.saturating_sub(1));
        }
        if dl.seq <= self.floor || self.above.contains(&dl.seq) || self.reorder.seqs.contains_key(&dl.seq) {
            self.stats.skipped += 1;
            if !self.reorder.seqs.contains_key(&dl.seq) {
                self.to_ack.push(dl.seq);
            }
            return false;
        }
        let Some(dec) = self.d.decode(&dl.payload) else {
            self.stats.malformed += 1;
            self.mark_done(dl.seq);
            return true;
        };
        if !dec.event_id.is_empty() && self.ids.contains(&dec.event_id) {
            self.stats.duplicates += 1;
            self.mark_done(dl.seq);
            return true;
        }
        if self.reorder.push(dec.ts_ns, dl.seq, (dec.event_id, dec.event)) {
            self.stats.late += 1;
        }
        true
    }

    /// The position detection has applied: the contiguous prefix of stream sequences, plus
    /// what was applied past its first hole (reordered, or redelivered late).
    fn position(&mut self) -> Snapshot {
        Snapshot {
            seq: self.floor,
            above: self.above.iter().copied().collect(),
            ns: self.d.now_ns(),
            learned: None,
        }
    }

    fn checkpoint(&mut self, consumer: Option<&Consumer>) -> Result<(), CentralError> {
        let mut at = self.position();
        if let Some(store) = &self.store {
            let learned = self.d.learned();
            let mut snap = at.clone();
            if self.rewinder.wants(at.ns) {
                snap.learned = Some(learned.clone());
            }
            let rewind = self.rewinder.offer(snap).clone();
            at.learned = Some(learned);
            let cp = Checkpoint {
                version: CHECKPOINT_VERSION,
                stream: self.s.consumer.stream.name.clone(),
                durable: self.s.consumer.durable.clone(),
                at,
                rewind,
                recent_ids: self.ids.to_list(),
                raised: self.raised.to_list(),
            };
            store.save(&cp)?;
        }
        self.stats.checkpoints += 1;
        if let Some(c) = consumer {
            c.ack(std::mem::take(&mut self.to_ack));
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Run central detection until `idle_exit`, `stop` or `crash_after`.
pub fn run<D: Detection>(d: &mut D, s: &CentralSettings) -> Result<CentralStats, CentralError> {
    let store = s.checkpoint.as_deref().map(CheckpointStore::new);
    let saved = match &store {
        Some(st) => st.load()?,
        None => None,
    };
    let (base, raised) = match &saved {
        Some(cp) => {
            d.reset(cp.rewind.learned.clone()).map_err(CentralError::Detection)?;
            (cp.rewind.clone(), Raised::from_list(cp.raised.clone()))
        }
        None => {
            d.reset(None).map_err(CentralError::Detection)?;
            let base = Snapshot {
                seq: 0,
                above: vec![],
                ns: i64::MIN,
                learned: Some(d.learned()),
            };
            (base, Raised::default())
        }
    };
    let mut lp = Loop {
        d,
        s,
        store,
        rewinder: Rewinder::new(s.lookback, base.clone()),
        raised,
        ids: BoundedSet::with_cap(s.dedup_cap),
        reorder: Reorder::new(s.reorder_lag, s.reorder_cap),
        floor: base.seq,
        above: base.above.iter().copied().collect(),
        fresh: saved.is_none(),
        to_ack: Vec::new(),
        stats: CentralStats::default(),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
    };

    // Warm-up: what the checkpoint covers since the rewind point, silently.
    if let Some(cp) = &saved {
        let (from, to) = (base.seq.saturating_add(1), cp.at.high());
        let mut wanted = 0u64;
        let mut failed: Option<CentralError> = None;
        let n = Replay::range(
            &s.consumer.servers,
            &s.consumer.stream,
            from,
            to,
            Duration::from_secs(10),
            |dl| {
                if failed.is_some() || !cp.at.covers(dl.seq) || base.covers(dl.seq) {
                    return;
                }
                wanted += 1;
                match lp.d.decode(&dl.payload) {
                    Some(dec) => {
                        lp.reorder.push(dec.ts_ns, dl.seq, (dec.event_id, dec.event));
                    }
                    None => lp.mark_done(dl.seq),
                }
                if let Err(e) = lp.release(false, true) {
                    failed = Some(e);
                }
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        lp.release(true, true)?;
        // Covered by the checkpoint, not yet by the rewind point: what the warm-up must read.
        let expected = (from..=cp.at.seq).count() as u64
            - base.above.iter().filter(|q| (from..=cp.at.seq).contains(q)).count() as u64
            + cp.at
                .above
                .iter()
                .filter(|q| **q > cp.at.seq && !base.covers(**q))
                .count() as u64;
        lp.stats.warm_missing = expected.saturating_sub(wanted.min(n));
        for id in &cp.recent_ids {
            lp.ids.insert(id.clone());
        }
        lp.floor = cp.at.seq;
        lp.above = cp.at.above.iter().copied().collect();
        lp.to_ack.clear();
    }

    let mut consumer_settings = s.consumer.clone();
    if saved.is_some() {
        // Restarted from a checkpoint: redeliver everything after its floor, in order.
        consumer_settings.start_seq = Some(lp.floor.saturating_add(1));
    }
    let consumer = Consumer::start(consumer_settings)?;
    let mut last_msg = Instant::now();
    let mut alerts_unrecorded = false;
    loop {
        if s.stop.load(Ordering::Relaxed) {
            lp.checkpoint(Some(&consumer))?;
            break;
        }
        let got = consumer.recv_timeout(Duration::from_millis(50));
        let mut wrote = false;
        match got {
            Some(dl) => {
                if lp.take(dl) {
                    last_msg = Instant::now();
                }
                wrote |= lp.release(false, false)?;
            }
            None => {
                // Idle counts from the first bind: a server away, or a degraded cluster slow to
                // create the consumer, is not "nothing arrived".
                if consumer.stats().binds.load(Ordering::Relaxed) == 0 {
                    last_msg = Instant::now();
                }
                if lp.reorder.len() > 0 && last_msg.elapsed() >= s.reorder_idle {
                    wrote |= lp.release(true, false)?;
                }
                if s.idle_exit.is_some_and(|idle| last_msg.elapsed() >= idle) {
                    lp.release(true, false)?;
                    let mut out = Vec::new();
                    lp.d.finish(&mut out);
                    lp.write(&mut out)?;
                    lp.checkpoint(Some(&consumer))?;
                    break;
                }
            }
        }
        if let Some(k) = s.crash_after {
            if lp.stats.applied >= k {
                // As if killed: nothing saved, nothing acked, no finish.
                return Ok(lp.stats);
            }
        }
        alerts_unrecorded |= wrote;
        if (alerts_unrecorded && lp.last_checkpoint.elapsed() >= s.alert_checkpoint_gap)
            || lp.since_checkpoint >= s.checkpoint_events
            || (lp.since_checkpoint > 0 && lp.last_checkpoint.elapsed() >= s.checkpoint_interval)
            || (lp.store.is_none() && !lp.to_ack.is_empty())
        {
            lp.checkpoint(Some(&consumer))?;
            alerts_unrecorded = false;
        }
    }
    consumer.stop();
    Ok(lp.stats)
}
