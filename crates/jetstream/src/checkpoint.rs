//! Checkpoints of the central detector, so that `kill -9` and a restart lose no alert and raise
//! none twice (issue 15 item 2).
//!
//! # The problem
//!
//! Acked messages are never delivered again, but detection's sliding windows (bulk_export's
//! distinct studies over 30 minutes, login failures over 10, …) live in memory. A detector that
//! restarts at the durable consumer's ack floor starts with empty windows: a user who exported
//! 10 studies before the crash and 10 after never crosses 15. Saving the windows themselves
//! would tie the checkpoint to every rule's private layout; the stream already holds the
//! events that filled them.
//!
//! # The design: rewind and warm up
//!
//! A checkpoint ([`Checkpoint`], one JSON file written atomically) holds
//! - `at`: the stream position detection has applied — every sequence `<= at.seq`, plus the
//!   few above it the reorder buffer already let through (`at.above`) — and the packet time;
//! - `learned`: the learned state at `at` (what `--state` holds; written there too);
//! - `rewind`: an older position and **the learned state as it was there**, at least
//!   `lookback` (the longest rule window) of packet time before `at` ([`Rewinder`]);
//! - `recent_ids`: the `event_id` de-dup window, and `raised`: keys of the alerts already
//!   written (bounded, newest kept).
//!
//! A restart builds the detector from `rewind.learned`, re-reads the stream from
//! `rewind.seq + 1` through `at` **silently** (its alerts were written before the checkpoint),
//! which refills every window exactly as it was, and then continues with the durable
//! consumer, skipping what `at` covers. Learned state is applied once per event (the rewind
//! snapshot predates the re-read events), so baselines are not counted twice.
//!
//! The order of the live loop makes this sufficient: events are applied, their alerts written
//! and flushed, then the checkpoint is saved (fsync, rename), and only then are the covered
//! messages acked. Written alerts are followed by a checkpoint within
//! `alert_checkpoint_gap` (200 ms), so a crash can repeat an alert only if it lands in that
//! gap; and then the repeat has the same `incident_id` and `count` (ids are a hash of rule,
//! entity and first_seen), which Alertmanager and a SIEM fold.
//!
//! # Limits
//!
//! - The stream must still hold `rewind.seq + 1 ..= at.seq` (limits retention: keep the stream
//!   longer than the longest window plus the longest outage). Messages it dropped are counted
//!   as missing at warm-up; the windows are then short by those events.
//! - Duplicates (same `event_id`) that straddle the rewind point are applied twice during the
//!   warm-up only if JetStream's own `Nats-Msg-Id` window missed them too.
//! - Warm-up costs reading up to `lookback` (+ one snapshot spacing) of events: with the
//!   default 30-minute bulk window and 24-hour baseline window, the baseline window dominates.

use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Layout version of the checkpoint file.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Keys of alerts already written, kept at most (newest first out of the set). An alert key is
/// small (`incident_id:count`); 65 536 of them cover far more than one lookback of alerts.
pub const MAX_RAISED: usize = 65_536;

/// Snapshots the [`Rewinder`] holds in memory, at most: candidates are spaced `lookback / 8`
/// apart, so warm-up re-reads at most 9/8 of the lookback.
const SNAPSHOT_DIVISIONS: i64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path} is not valid: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("checkpoint {path} has version {found}, this pacstap reads up to {CHECKPOINT_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// A stream position plus, optionally, the learned state at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Every stream sequence `<= seq` had been applied.
    pub seq: u64,
    /// Sequences `> seq` applied too (out of stream order, through the reorder buffer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub above: Vec<u64>,
    /// Detection's packet time then (ns since the epoch; `i64::MIN` before any event).
    pub ns: i64,
    /// The detector's learned state then (`pacstap_detect::LearnedState` as JSON), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<serde_json::Value>,
}

impl Snapshot {
    /// Whether the message with this sequence was applied at this position.
    pub fn covers(&self, seq: u64) -> bool {
        seq <= self.seq || self.above.contains(&seq)
    }

    /// The highest sequence applied.
    pub fn high(&self) -> u64 {
        self.above.iter().copied().max().unwrap_or(0).max(self.seq)
    }
}

/// One checkpoint file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub stream: String,
    pub durable: String,
    /// Where detection stood (its `learned` is the learned state there).
    pub at: Snapshot,
    /// Where a restart re-reads from, with the learned state there.
    pub rewind: Snapshot,
    /// The `event_id` de-dup window, oldest first.
    #[serde(default)]
    pub recent_ids: Vec<String>,
    /// Keys of the alerts written, oldest first (see [`Raised`]).
    #[serde(default)]
    pub raised: Vec<String>,
}

/// Reads and writes the checkpoint file (atomically: temporary file, fsync, rename, mode 0600,
/// never through a symbolic link — the learned state names users and devices).
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub fn new(path: &Path) -> Self {
        CheckpointStore {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint, or none when there is no file yet. A file that does not parse is
    /// an error (not set aside): restarting without it would repeat or lose alerts, and the
    /// operator should decide (delete it to start over at the durable's ack floor).
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Invalid {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        if cp.version > CHECKPOINT_VERSION {
            return Err(CheckpointError::Version {
                path: self.path.clone(),
                found: cp.version,
            });
        }
        Ok(Some(cp))
    }

    pub fn save(&self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        let _ = pacstap_safefile::remove_stale_temps(&self.path);
        pacstap_safefile::write_atomic(&self.path, |w| {
            serde_json::to_writer(&mut *w, cp).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })
        .map_err(|source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Keeps the rewind point: the newest snapshot at least `lookback` before the current position,
/// plus a few spaced candidates that will become it. Memory: at most
/// `SNAPSHOT_DIVISIONS + 1` learned states.
#[derive(Debug, Clone)]
pub struct Rewinder {
    lookback_ns: i64,
    spacing_ns: i64,
    base: Snapshot,
    candidates: VecDeque<Snapshot>,
}

impl Rewinder {
    /// `base`: where the run started (the checkpoint's rewind point, or the start of the stream
    /// with the `--state` learned state on a first run).
    pub fn new(lookback: Duration, base: Snapshot) -> Self {
        let lookback_ns = i64::try_from(lookback.as_nanos()).unwrap_or(i64::MAX);
        Rewinder {
            lookback_ns,
            spacing_ns: (lookback_ns / SNAPSHOT_DIVISIONS).max(1),
            base,
            candidates: VecDeque::new(),
        }
    }

    /// Whether a snapshot at packet time `ns` would be kept (so the caller builds the learned
    /// state, which costs a copy, only then).
    pub fn wants(&self, ns: i64) -> bool {
        match self.candidates.back() {
            None => true,
            Some(last) => ns.saturating_sub(last.ns) >= self.spacing_ns,
        }
    }

    /// Record a checkpoint position `now` (its learned state present when [`Self::wants`] said
    /// so) and return the rewind point to save with it.
    pub fn offer(&mut self, now: Snapshot) -> &Snapshot {
        let horizon = now.ns.saturating_sub(self.lookback_ns);
        if now.learned.is_some() && self.wants(now.ns) {
            self.candidates.push_back(now);
        }
        // Promote: the newest candidate old enough becomes the base.
        while self.candidates.front().is_some_and(|c| c.ns <= horizon) {
            if let Some(c) = self.candidates.pop_front() {
                self.base = c;
            }
        }
        &self.base
    }

    pub fn base(&self) -> &Snapshot {
        &self.base
    }
}

/// Keys of alerts already written, bounded ([`MAX_RAISED`]), oldest evicted first.
pub type Raised = BoundedSet;

/// A set of strings that remembers the newest `cap` (insertion order), for the alert keys
/// already written and the `event_id` de-dup window.
#[derive(Debug, Clone)]
pub struct BoundedSet {
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Default for BoundedSet {
    fn default() -> Self {
        BoundedSet::with_cap(MAX_RAISED)
    }
}

impl BoundedSet {
    pub fn with_cap(cap: usize) -> Self {
        BoundedSet {
            cap: cap.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    pub fn from_list(list: Vec<String>) -> Self {
        let mut r = BoundedSet::default();
        for k in list {
            r.insert(k);
        }
        r
    }

    /// The key of an alert: `incident_id:count:update` — the same alert raised again after a
    /// restart has the same key (incident ids hash rule, entity and first_seen).
    pub fn key(incident_id: &str, count: u64, update: bool) -> String {
        format!("{incident_id}:{count}:{}", u8::from(update))
    }

    /// Returns false when the key was already there.
    pub fn insert(&mut self, key: String) -> bool {
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }

    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    pub fn to_list(&self) -> Vec<String> {
        self.order.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn snap(seq: u64, secs: i64) -> Snapshot {
        Snapshot {
            seq,
            above: vec![],
            ns: secs * S,
            learned: Some(serde_json::json!({ "at": seq })),
        }
    }

    #[test]
    fn rewind_point_is_at_least_the_lookback_behind() {
        let start = Snapshot {
            seq: 0,
            ns: i64::MIN,
            ..Default::default()
        };
        let mut r = Rewinder::new(Duration::from_secs(800), start.clone());
        // Every 10 s a checkpoint; spacing is 100 s.
        for i in 1..=200i64 {
            let now = 1_000 + i * 10;
            let keep = r.wants(now * S);
            let mut s = snap(i as u64 * 5, now);
            if !keep {
                s.learned = None;
            }
            let base = r.offer(s).clone();
            if now < 1_000 + 10 + 800 {
                assert_eq!(base, start, "nothing is old enough at {now}");
            } else {
                // At least the lookback behind, at most lookback + spacing + one interval.
                let age = now - base.ns / S;
                assert!((800..=910).contains(&age), "age {age} at {now}");
                assert!(base.learned.is_some());
            }
            assert!(r.candidates.len() <= 9, "{} candidates", r.candidates.len());
        }
    }

    #[test]
    fn snapshot_covers_the_floor_and_the_ones_above() {
        let s = Snapshot {
            seq: 10,
            above: vec![12, 15],
            ns: 0,
            learned: None,
        };
        assert!(s.covers(1) && s.covers(10) && s.covers(12) && s.covers(15));
        assert!(!s.covers(11) && !s.covers(13) && !s.covers(16));
        assert_eq!(s.high(), 15);
    }

    #[test]
    fn raised_is_bounded_and_remembers() {
        let mut r = Raised::default();
        assert!(r.insert(Raised::key("abc", 16, false)));
        assert!(!r.insert(Raised::key("abc", 16, false)));
        assert!(r.insert(Raised::key("abc", 16, true)));
        for i in 0..MAX_RAISED {
            r.insert(format!("k{i}"));
        }
        assert_eq!(r.len(), MAX_RAISED);
        assert!(!r.contains("abc:16:0"), "the oldest went first");
        assert!(r.contains(&format!("k{}", MAX_RAISED - 1)));
        let back = Raised::from_list(r.to_list());
        assert_eq!(back.len(), MAX_RAISED);
    }

    #[test]
    fn checkpoint_round_trips_atomically_and_refuses_newer_versions() {
        let dir = std::env::temp_dir().join(format!("pacstap-cp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = CheckpointStore::new(&dir.join("checkpoint.json"));
        assert!(store.load().unwrap().is_none());
        let cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            stream: "PACSTAP".into(),
            durable: "pacstap-detect".into(),
            at: snap(42, 2_000),
            rewind: snap(7, 1_000),
            recent_ids: vec!["a-1".into(), "b-2".into()],
            raised: vec![Raised::key("ff", 16, false)],
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp.clone()));
        let mut newer = cp;
        newer.version = CHECKPOINT_VERSION + 1;
        store.save(&newer).unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Version { found, .. }) if found == CHECKPOINT_VERSION + 1));
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
