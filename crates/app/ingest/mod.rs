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
mod reorder;

pub use dedup::{id_hash, DedupState, DedupWindow, DEFAULT_DEDUP_AGE, DEFAULT_DEDUP_IDS};
pub use file::FileSource;
pub use reorder::{ReorderBuffer, ReorderStats, DEFAULT_REORDER_CAP, DEFAULT_REORDER_WINDOW};

use crate::detection::{Detection, DetectionClock};
use anyhow::Result;
use pacstap_core::Timestamp;
use pacstap_output::EveLine;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Where events come from: archived files ([`FileSource`]), or a stream (the central
/// detector's NATS source, in its own file).
pub trait EventSource {
    /// The next line, [`SourceNext::Idle`] when none is ready now, [`SourceNext::End`] when
    /// there will be none. An `Err` ends the run (a source that cannot go on at all).
    fn next_line(&mut self) -> Result<SourceNext>;

    /// `line` went through detection (or was skipped as a duplicate or derived line): a stream
    /// may acknowledge it now. Files have nothing to do.
    fn applied(&mut self, _line: &EveLine) -> Result<()> {
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
    /// Lines whose `event_id` was applied already.
    pub duplicates: u64,
    pub reorder: ReorderStats,
}

/// Lines in, detection out: de-duplication, reordering, and detection's clock. One per run;
/// [`Ingest::offer`] each line, [`Ingest::flush`] at the end (or when the source is idle).
pub struct Ingest {
    reorder: ReorderBuffer<EveLine>,
    dedup: DedupWindow,
    clock: DetectionClock,
    released: Vec<(Timestamp, EveLine)>,
    counts: IngestCounts,
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
            clock: DetectionClock::default(),
            released: Vec::new(),
            counts: IngestCounts::default(),
        }
    }

    /// Take one line: skip it (derived, duplicate) or hold it until its watermark, then apply
    /// what is due. `applied` hears of every line once it is done with (see
    /// [`EventSource::applied`]).
    pub fn offer(
        &mut self,
        line: EveLine,
        detection: &mut Detection,
        applied: &mut dyn FnMut(&EveLine) -> Result<()>,
    ) -> Result<()> {
        if line.is_derived() {
            self.counts.derived += 1;
            return applied(&line);
        }
        let Some(ts) = line.event().map(|e| e.ts) else {
            return applied(&line);
        };
        if let Some(id) = line.event_id.as_deref() {
            if !self.dedup.insert(id, ts) {
                self.counts.duplicates += 1;
                return applied(&line);
            }
        }
        self.reorder.push(ts, line, &mut self.released);
        self.apply_released(detection, applied)
    }

    /// Apply everything held, in order (end of input; an idle source).
    pub fn flush(&mut self, detection: &mut Detection, applied: &mut dyn FnMut(&EveLine) -> Result<()>) -> Result<()> {
        self.reorder.flush(&mut self.released);
        self.apply_released(detection, applied)
    }

    fn apply_released(
        &mut self,
        detection: &mut Detection,
        applied: &mut dyn FnMut(&EveLine) -> Result<()>,
    ) -> Result<()> {
        for (ts, line) in std::mem::take(&mut self.released) {
            // As replay does per frame: advance the windows first, then observe.
            if self.clock.ticks_at(ts) {
                detection.tick(ts);
            }
            if let Some(ev) = line.event() {
                detection.events(std::iter::once(ev.clone()))?;
                self.counts.applied += 1;
            }
            applied(&line)?;
        }
        Ok(())
    }

    /// The de-duplication window (for a checkpoint: [`DedupWindow::save`]).
    pub fn dedup(&self) -> &DedupWindow {
        &self.dedup
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
    loop {
        match source.next_line()? {
            SourceNext::Line(line) => {
                idle = 0;
                ingest.offer(line, detection, &mut |l| source.applied(l))?;
            }
            SourceNext::Idle => {
                idle = idle.saturating_add(1);
                if idle == IDLE_FLUSH_AFTER {
                    ingest.flush(detection, &mut |l| source.applied(l))?;
                }
            }
            SourceNext::End => break,
        }
    }
    ingest.flush(detection, &mut |l| source.applied(l))?;
    detection.finish()
}
