//! Events in, instead of packets: detection over EVE lines that pacstap wrote (issue 15).
//!
//! `pacstap detect --from FILE.jsonl[.gz]...` re-runs detection over archived events (a new
//! threshold tried on last month, without last month's pcaps); the central detector runs it
//! over the events that sensors publish. Both are an [`EventSource`] feeding [`Ingest`]:
//!
//! ```text
//! EventSource (file.rs; a NATS source beside it) → skip derived lines (alerts, posture, stats)
//!   → dedup.rs (event_id seen already? skip) → reorder.rs (packet-time order, watermark)
//!   → DetectionClock / Detection::tick + Detection::events (the same as replay)
//! ```
//!
//! Alerts, posture findings and stats in the input are skipped: detection derives its own from
//! the protocol events, with this run's config. What an EVE line cannot carry back (the DICOM
//! accept signal, sub-microsecond times) is listed in `pacstap_output::eve_in`.

mod dedup;
mod file;
pub mod nats;
mod reorder;

pub use dedup::{id_hash, DedupState, DedupWindow, DEFAULT_DEDUP_AGE, DEFAULT_DEDUP_IDS};
pub use file::FileSource;
pub use reorder::{ReorderBuffer, ReorderStats, DEFAULT_REORDER_CAP, DEFAULT_REORDER_WINDOW};

use crate::detection::{stats_snapshot, Detection, DetectionClock, METRICS_EVERY};
use crate::shard::ShardStats;
use anyhow::Result;
use pacstap_core::Timestamp;
use pacstap_output::{EveKind, EveLine};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a source hands out next. Not boxed: a line moves once, from source to reorder buffer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SourceNext {
    /// One parsed line.
    Line(EveLine),
    /// Nothing for now (a live source waited its poll interval): [`Ingest`] flushes its reorder
    /// buffer when the source stays idle, since nothing earlier can still come.
    Idle,
    /// No more input.
    End,
}

/// Counts a source keeps about its input (the run's summary says them).
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    /// Lines (messages) read, blank lines aside.
    pub lines: u64,
    /// Lines that are not events: skipped.
    pub unreadable: u64,
    /// Where and why the first one was (`path:line: reason`).
    pub first_unreadable: Option<String>,
    /// Inputs that stopped early (read errors), said once each.
    pub warnings: Vec<String>,
}

impl SourceStats {
    fn note_unreadable(&mut self, path: &Path, line: u64, why: &str) {
        self.unreadable += 1;
        if self.first_unreadable.is_none() {
            self.first_unreadable = Some(format!("{}:{line}: {why}", path.display()));
        }
    }
}

/// A line [`Ingest`] is done with (see [`EventSource::applied`]): its envelope's ids.
#[derive(Debug, Clone, Copy)]
pub struct Done<'a> {
    pub host: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

impl<'a> Done<'a> {
    fn of(line: &'a EveLine) -> Self {
        Done {
            host: line.host.as_deref(),
            event_id: line.event_id.as_deref(),
        }
    }
}

/// Where events come from: archived files ([`FileSource`]), or a stream (the central
/// detector's NATS source, in its own file).
pub trait EventSource {
    /// The next line, [`SourceNext::Idle`] when none is ready now, [`SourceNext::End`] when
    /// there will be none. An `Err` ends the run (a source that cannot go on at all).
    fn next_line(&mut self) -> Result<SourceNext>;

    /// The line with this `host` / `event_id` went through detection (or was skipped as a
    /// duplicate or a derived line): a stream may acknowledge it now. Called once per line
    /// handed out, in the order lines are applied (packet time), not the order they came.
    /// Files have nothing to do.
    fn applied(&mut self, _done: Done<'_>) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> SourceStats;
}

/// `--from` values as a source: files (`nats://` is the central detector's, in its own file).
pub fn open_source(from: &[String]) -> Result<Box<dyn EventSource>> {
    if let Some(url) = from.iter().find(|f| f.starts_with("nats://")) {
        anyhow::bail!("{url}: this build reads event files only (nats:// sources come with the central detector)");
    }
    let paths: Vec<PathBuf> = from.iter().map(PathBuf::from).collect();
    Ok(Box::new(FileSource::open(&paths)?))
}

/// The bounds of [`Ingest`] (`--reorder-window` and friends).
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub reorder_window: Duration,
    pub reorder_cap: usize,
    pub dedup_ids: usize,
    pub dedup_age: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            reorder_window: DEFAULT_REORDER_WINDOW,
            reorder_cap: DEFAULT_REORDER_CAP,
            dedup_ids: DEFAULT_DEDUP_IDS,
            dedup_age: DEFAULT_DEDUP_AGE,
        }
    }
}

/// What an ingest did with its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Events handed to detection.
    pub applied: u64,
    /// Alerts, posture findings and stats lines skipped (detection derives its own).
    pub derived: u64,
    /// Lines whose `event_id` was applied already (or is held to be applied).
    pub duplicates: u64,
    pub reorder: ReorderStats,
}

/// What [`Ingest`] calls with each line it is done with ([`EventSource::applied`] in [`run`]).
pub type AppliedFn<'a> = dyn FnMut(Done<'_>) -> Result<()> + 'a;

/// Lines in, detection out: de-duplication, reordering, and detection's clock. One per run;
/// [`Ingest::offer`] each line, [`Ingest::flush`] at the end (or when the source is idle).
///
/// The de-duplication window holds the ids of events *applied*, never of events still held
/// in the reorder buffer (those are in `held_ids`): a checkpoint that saves the window
/// ([`Ingest::dedup`]) while events are held does not make their redelivery after a restart
/// look like a duplicate.
pub struct Ingest {
    reorder: ReorderBuffer<EveLine>,
    dedup: DedupWindow,
    /// Hashes of the ids of events in the reorder buffer (at most its cap).
    held_ids: HashSet<u128>,
    clock: DetectionClock,
    released: Vec<(Timestamp, EveLine)>,
    counts: IngestCounts,
    /// Packet time of the newest event applied.
    last_applied: Option<Timestamp>,
}

impl Ingest {
    pub fn new(opts: IngestOptions) -> Self {
        Ingest::with_dedup(opts, DedupWindow::new(opts.dedup_ids, opts.dedup_age))
    }

    /// With a de-duplication window restored from a checkpoint ([`DedupWindow::restore`]).
    pub fn with_dedup(opts: IngestOptions, dedup: DedupWindow) -> Self {
        Ingest {
            reorder: ReorderBuffer::new(opts.reorder_window, opts.reorder_cap),
            dedup,
            held_ids: HashSet::new(),
            clock: DetectionClock::default(),
            released: Vec::new(),
            counts: IngestCounts::default(),
            last_applied: None,
        }
    }

    /// Take one line: skip it (derived, duplicate) or hold it until its watermark, then apply
    /// what is due. `applied` hears of every line once it is done with (see
    /// [`EventSource::applied`]).
    pub fn offer(&mut self, line: EveLine, detection: &mut Detection, applied: &mut AppliedFn<'_>) -> Result<()> {
        if line.is_derived() {
            self.counts.derived += 1;
            return applied(Done::of(&line));
        }
        let Some(ts) = line.event().map(|e| e.ts) else {
            return applied(Done::of(&line));
        };
        if let Some(id) = line.event_id.as_deref() {
            if self.dedup.contains(id) || !self.held_ids.insert(id_hash(id)) {
                self.counts.duplicates += 1;
                return applied(Done::of(&line));
            }
        }
        self.reorder.push(ts, line, &mut self.released);
        self.apply_released(detection, applied)
    }

    /// Apply everything held, in order (end of input; an idle source).
    pub fn flush(&mut self, detection: &mut Detection, applied: &mut AppliedFn<'_>) -> Result<()> {
        self.reorder.flush(&mut self.released);
        self.apply_released(detection, applied)
    }

    fn apply_released(&mut self, detection: &mut Detection, applied: &mut AppliedFn<'_>) -> Result<()> {
        for (ts, line) in std::mem::take(&mut self.released) {
            // As replay does per frame: advance the windows first, then observe.
            if self.clock.ticks_at(ts) {
                detection.tick(ts);
            }
            let EveLine { host, event_id, kind } = line;
            if let Some(id) = event_id.as_deref() {
                self.held_ids.remove(&id_hash(id));
                self.dedup.insert(id, ts);
            }
            if let EveKind::Event(ev) = kind {
                detection.events(std::iter::once(ev))?;
                self.counts.applied += 1;
                self.last_applied = Some(self.last_applied.map_or(ts, |l| l.max(ts)));
            }
            applied(Done {
                host: host.as_deref(),
                event_id: event_id.as_deref(),
            })?;
        }
        Ok(())
    }

    /// The de-duplication window (for a checkpoint: [`DedupWindow::save`]).
    pub fn dedup(&self) -> &DedupWindow {
        &self.dedup
    }

    /// Packet time of the newest event applied so far.
    pub fn last_applied(&self) -> Option<Timestamp> {
        self.last_applied
    }

    /// Events held in the reorder buffer.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    pub fn counts(&self) -> IngestCounts {
        IngestCounts {
            reorder: self.reorder.stats(),
            ..self.counts
        }
    }
}

/// Idle polls in a row after which the reorder buffer is flushed: the source has had nothing
/// for that long, so nothing earlier than what is held can still be on its way.
pub const IDLE_FLUSH_AFTER: u32 = 3;

/// Run `source` to its end through `ingest` into `detection`, then finish detection (final
/// alerts, learned state saved, outputs flushed).
pub fn run(source: &mut dyn EventSource, ingest: &mut Ingest, detection: &mut Detection) -> Result<()> {
    let mut idle = 0u32;
    // `--metrics-listen`: the snapshot-derived gauges (studies exported, last packet time)
    // refreshed every METRICS_EVERY of wall time, as replay does; event counters move per event.
    let mut next_metrics = Instant::now();
    loop {
        if detection.metrics().is_some() && Instant::now() >= next_metrics {
            next_metrics = Instant::now() + METRICS_EVERY;
            refresh_metrics(ingest, detection);
        }
        match source.next_line()? {
            SourceNext::Line(line) => {
                idle = 0;
                ingest.offer(line, detection, &mut |d| source.applied(d))?;
            }
            SourceNext::Idle => {
                idle = idle.saturating_add(1);
                if idle == IDLE_FLUSH_AFTER {
                    ingest.flush(detection, &mut |d| source.applied(d))?;
                }
            }
            SourceNext::End => break,
        }
    }
    ingest.flush(detection, &mut |d| source.applied(d))?;
    detection.finish()?;
    refresh_metrics(ingest, detection);
    Ok(())
}

fn refresh_metrics(ingest: &Ingest, detection: &Detection) {
    if let Some(m) = detection.metrics() {
        let mut snap = stats_snapshot(&ShardStats::default(), detection);
        snap.last_packet_time = ingest.last_applied().map(Timestamp::as_secs_f64);
        m.update(&snap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::DetectionSettings;
    use pacstap_output::parse_line;

    fn detection() -> Detection {
        Detection::new(DetectionSettings {
            config: Config::default(),
            state: None,
            evidence_dir: None,
            events: None,
            alerts_only: false,
            collect: true,
            metrics: None,
            alertmanager: None,
        })
        .unwrap()
    }

    fn line(secs: u32, id: &str) -> EveLine {
        let text = format!(
            r#"{{"host":"site-a","event_id":"{id}","timestamp":"2026-11-27T10:00:{secs:02}Z","flow_id":{secs},"event_type":"anomaly","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP","anomaly":{{"proto":"tcp","name":"tcp.test"}}}}"#
        );
        parse_line(text.as_bytes()).unwrap()
    }

    /// The window holds applied ids only: an event still held when a checkpoint is taken is
    /// not a duplicate when redelivered after a restart, and every line is reported done once.
    #[test]
    fn the_dedup_window_holds_applied_ids_only() {
        let mut det = detection();
        let mut ingest = Ingest::new(IngestOptions {
            reorder_window: Duration::from_secs(5),
            ..IngestOptions::default()
        });
        let mut done = Vec::new();
        let mut note = |d: Done<'_>| {
            done.push(d.event_id.unwrap().to_owned());
            Ok(())
        };
        ingest.offer(line(10, "a-1"), &mut det, &mut note).unwrap();
        ingest.offer(line(20, "a-2"), &mut det, &mut note).unwrap();
        // a-1 applied (20 - 5 >= 10), a-2 held.
        assert_eq!(ingest.held(), 1);
        assert!(ingest.dedup().contains("a-1") && !ingest.dedup().contains("a-2"));
        // A redelivery of either, now, is a duplicate (a-2 is known as held).
        ingest.offer(line(10, "a-1"), &mut det, &mut note).unwrap();
        ingest.offer(line(20, "a-2"), &mut det, &mut note).unwrap();
        assert_eq!(ingest.counts().duplicates, 2);
        // A checkpoint now saves a-1 only: after a restart, a-2 is applied when redelivered.
        let saved = ingest.dedup().save();
        let mut restarted = Ingest::with_dedup(
            IngestOptions::default(),
            DedupWindow::restore(&saved, DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_AGE),
        );
        let mut det2 = detection();
        restarted.offer(line(10, "a-1"), &mut det2, &mut |_| Ok(())).unwrap();
        restarted.offer(line(20, "a-2"), &mut det2, &mut |_| Ok(())).unwrap();
        restarted.flush(&mut det2, &mut |_| Ok(())).unwrap();
        assert_eq!(restarted.counts().duplicates, 1);
        assert_eq!(restarted.counts().applied, 1);
        ingest.flush(&mut det, &mut note).unwrap();
        assert_eq!(done, ["a-1", "a-1", "a-2", "a-2"], "each line reported done once");
        assert_eq!(ingest.counts().applied, 2);
    }
}
