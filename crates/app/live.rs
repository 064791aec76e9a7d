//! `pacstap capture`: the same pipeline as `replay`, fed by a live interface.
//!
//! # Threads
//!
//! ```text
//! capture thread ──(bounded channel of frame batches)──▶ processing thread (Pipeline) ──▶ sinks
//!   libpcap, copies frames into batches          decode, reassemble, detect, write events
//!        ▲                                                  │
//!        └───────────── empty batches come back (pool) ◀────┘
//! ```
//!
//! One processing thread runs [`Pipeline::frame`], exactly what `replay` runs, so the same
//! packets give the same events. (Sharding flows over N workers by `FlowKey::symmetric_hash` is
//! the next step: the channel carries batches so that the capture thread can split them per
//! worker without changing anything else.)
//!
//! # Back-pressure: drop newest, never block the capture thread
//!
//! The capture thread never waits for the processing thread. When the channel is full, the
//! batch it was about to send is dropped and its frames are counted in
//! `pacstap_pipeline_drops_total`. Blocking instead would only move the loss into the kernel
//! ring (`pacstap_kernel_drops_total`), where it is invisible until libpcap's counters are read,
//! and would stall the shutdown path. Dropped frames become reassembly gaps downstream, which
//! the decoders already handle (and count).
//!
//! The channel holds [`QUEUE_BATCHES`] batches of at most [`BATCH_FRAMES`] frames /
//! [`BATCH_BYTES`] bytes: ≤ 64 MiB in flight, ~16 k frames, which is about 50 ms of a saturated
//! 10 Gbit/s link — the same order as the kernel ring, so a processing hiccup of that length is
//! absorbed twice before anything is lost.
//!
//! # Clocks
//!
//! Packet time stays the only clock for decoding and detection. Wall time is used here only for
//! housekeeping: flushing the events file, refreshing metrics, saving state, and the latency
//! histogram.

use crate::pipeline::{apply_ports, Pipeline, PipelineSettings, ReplayReport, METRICS_EVERY};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use pacstap_capture::{LiveConfig, LiveError, LiveSource, LiveStats, RawFrame};
use pacstap_core::Timestamp;
use pacstap_detect::Config;
use pacstap_flow::FlowConfig;
use pacstap_output::Metrics;
use pacstap_proto::ProtoConfig;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Batches in flight between the capture and the processing thread. See the module docs.
pub const QUEUE_BATCHES: usize = 64;
/// A batch is sent when it holds this many frames…
pub const BATCH_FRAMES: usize = 256;
/// …or this many bytes (a frame larger than this, up to the snaplen, travels alone)…
pub const BATCH_BYTES: usize = 1 << 20;
/// …or its first frame is this old (a quiet link still sees its frames promptly).
pub const BATCH_AGE: Duration = Duration::from_millis(20);
/// After the stop flag, keep reading this long: the kernel hands over its last, partly filled
/// block within one libpcap timeout (100 ms), so what arrived just before the signal is
/// processed.
pub const DRAIN_AFTER_STOP: Duration = Duration::from_millis(250);
/// Learned state is also saved this often (wall time), so a crash loses little.
pub const SAVE_STATE_EVERY: Duration = Duration::from_secs(300);

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsTarget {
    Stdout,
    /// Appended to; reopened on SIGHUP (log rotation).
    File(PathBuf),
    /// Nowhere (benchmarks).
    Discard,
}

impl EventsTarget {
    fn open(&self) -> Result<Box<dyn Write>> {
        Ok(match self {
            EventsTarget::Stdout => Box::new(std::io::stdout()),
            EventsTarget::File(p) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot open events file {}", p.display()))?,
            ),
            EventsTarget::Discard => Box::new(std::io::sink()),
        })
    }
}

/// What `pacstap capture` was asked to do.
pub struct CaptureOptions {
    pub live: LiveConfig,
    pub events: EventsTarget,
    pub alerts_only: bool,
    pub config: Config,
    /// Reloaded on SIGHUP when set.
    pub config_path: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
    pub metrics: Option<Arc<Metrics>>,
    /// Set (e.g. by SIGINT / SIGTERM) to stop: flows are flushed, state saved, outputs closed.
    pub stop: Arc<AtomicBool>,
    /// Set (by SIGHUP) to reopen the events file and reload the config.
    pub reload: Arc<AtomicBool>,
}

impl CaptureOptions {
    pub fn new(live: LiveConfig) -> Self {
        CaptureOptions {
            live,
            events: EventsTarget::Stdout,
            alerts_only: false,
            config: Config::default(),
            config_path: None,
            state: None,
            flow: FlowConfig::default(),
            proto: ProtoConfig::default(),
            metrics: None,
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Use `config` for detection and for the decoders' port hints (as `ReplayOptions` does).
    pub fn with_config(mut self, config: Config) -> Self {
        apply_ports(&mut self.proto, &config);
        self.config = config;
        self
    }
}

/// What a capture run did.
pub struct CaptureReport {
    /// The pipeline's numbers, as for a replay (no damages, no evidence).
    pub pipeline: ReplayReport,
    pub live: LiveStats,
    /// Frames dropped because the processing thread fell behind.
    pub pipeline_drops: u64,
    /// Why the capture stopped on its own (interface gone…), when it did.
    pub capture_error: Option<String>,
    /// Config reloads refused (bad file), with the reason.
    pub reload_errors: Vec<String>,
}

impl CaptureReport {
    pub fn render_summary(&self) -> String {
        let mut s = self
            .pipeline
            .render_summary()
            .replacen("pacstap replay summary", "pacstap capture summary", 1);
        s.push_str(&format!(
            "Capture: {} frames from libpcap, {} dropped by the kernel, {} by the interface, {} by pacstap (queue full)\n",
            self.live.frames, self.live.dropped, self.live.if_dropped, self.pipeline_drops
        ));
        s
    }
}

/// Counters the capture thread shares with the processing thread (for metrics).
#[derive(Default)]
struct Shared {
    pipeline_drops: AtomicU64,
    kernel_drops: AtomicU64,
    if_drops: AtomicU64,
}

/// Frames copied out of libpcap's ring, sent as one message.
struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameMeta>,
}

struct FrameMeta {
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    start: usize,
    len: usize,
    received: Instant,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_FRAMES),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    fn has_room(&self, len: usize) -> bool {
        self.frames.is_empty() || (self.frames.len() < BATCH_FRAMES && self.data.len() + len <= BATCH_BYTES)
    }

    fn push(&mut self, f: &RawFrame<'_>, received: Instant) {
        let start = self.data.len();
        self.data.extend_from_slice(f.data);
        self.frames.push(FrameMeta {
            ts: f.ts,
            linktype: f.linktype,
            orig_len: f.orig_len,
            start,
            len: f.data.len(),
            received,
        });
    }

    fn frame(&self, m: &FrameMeta) -> RawFrame<'_> {
        RawFrame {
            ts: m.ts,
            source: 0,
            linktype: m.linktype,
            data: self.data.get(m.start..m.start.saturating_add(m.len)).unwrap_or(&[]),
            orig_len: m.orig_len,
        }
    }
}

/// The capture thread's side of the channel.
struct Sending {
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
    batch: Batch,
    shared: Arc<Shared>,
    /// The processing thread is gone.
    closed: bool,
}

impl Sending {
    fn fresh(&self) -> Batch {
        self.pool.try_recv().unwrap_or_else(|_| Batch::new())
    }

    /// Send the current batch (if any) without blocking; drop it when the channel is full.
    fn send(&mut self) {
        if self.batch.frames.is_empty() || self.closed {
            return;
        }
        let next = self.fresh();
        let full = std::mem::replace(&mut self.batch, next);
        match self.tx.try_send(full) {
            Ok(()) => {}
            Err(TrySendError::Full(mut b)) => {
                self.shared
                    .pipeline_drops
                    .fetch_add(b.frames.len() as u64, Ordering::Relaxed);
                b.clear();
                self.batch = b;
            }
            Err(TrySendError::Disconnected(_)) => self.closed = true,
        }
    }
}

/// The capture thread: read frames, batch them, hand them over; stop on the flag (after a
/// short drain) or on a capture error. Returns the final libpcap counters.
fn capture_loop(mut src: LiveSource, mut out: Sending, stop: Arc<AtomicBool>) -> (LiveStats, Option<LiveError>) {
    let mut stop_seen: Option<Instant> = None;
    let mut next_stats = Instant::now() + METRICS_EVERY;
    let mut error = None;
    loop {
        if stop_seen.is_none() && stop.load(Ordering::Relaxed) {
            stop_seen = Some(Instant::now());
        }
        if out.closed || stop_seen.is_some_and(|t| t.elapsed() >= DRAIN_AFTER_STOP) {
            break;
        }
        let now = match src.next_frame_or_idle() {
            Ok(Some(f)) => {
                let now = Instant::now();
                if !out.batch.has_room(f.data.len()) {
                    out.send();
                }
                out.batch.push(&f, now);
                if out.batch.frames.len() >= BATCH_FRAMES {
                    out.send();
                }
                now
            }
            Ok(None) => {
                // Nothing ready: hand over what we hold, so a quiet link's frames are not kept.
                out.send();
                src.wait_idle();
                Instant::now()
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        if out
            .batch
            .frames
            .first()
            .is_some_and(|f| now.duration_since(f.received) >= BATCH_AGE)
        {
            out.send();
        }
        if now >= next_stats {
            next_stats = now + METRICS_EVERY;
            publish(&mut src, &out.shared);
        }
    }
    out.send();
    let stats = publish(&mut src, &out.shared);
    (stats, error)
}

fn publish(src: &mut LiveSource, shared: &Shared) -> LiveStats {
    let s = src.stats();
    shared.kernel_drops.store(s.dropped, Ordering::Relaxed);
    shared.if_drops.store(s.if_dropped, Ordering::Relaxed);
    s
}

/// Checks that learned state can be written where asked, before hours of capture depend on it.
pub fn check_state_dir(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(anyhow!(
            "state directory {} does not exist: create it (the systemd unit's StateDirectory= does) or pass --state PATH",
            dir.display()
        ));
    }
    let mut probe = path.as_os_str().to_os_string();
    probe.push(".tmp");
    let probe = PathBuf::from(probe);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .with_context(|| format!("cannot write learned state next to {}", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Opens the interface (errors: it cannot be opened, the filter does not compile).
pub fn open_capture(live: &LiveConfig) -> Result<LiveSource, LiveError> {
    LiveSource::open(live)
}

/// Runs a live capture until `opts.stop` is set or the capture fails, on an already opened
/// source (so the caller can report open errors before starting servers).
pub fn capture(opts: CaptureOptions, src: LiveSource) -> Result<CaptureReport> {
    if let Some(path) = &opts.state {
        check_state_dir(path)?;
    }
    let events = opts.events.open()?;
    let metrics = opts.metrics.clone();
    let mut pipeline = Pipeline::new(PipelineSettings {
        flow: opts.flow.clone(),
        proto: opts.proto.clone(),
        config: opts.config.clone(),
        state: opts.state.clone(),
        evidence_dir: None,
        events: Some(events),
        alerts_only: opts.alerts_only,
        collect: false,
        metrics: metrics.clone(),
    })?;
    for w in pipeline.state_warnings() {
        eprintln!("pacstap: warning: {w}");
    }

    let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
    let (pool_tx, pool_rx) = bounded::<Batch>(QUEUE_BATCHES + 4);
    let shared = Arc::new(Shared::default());
    let sending = Sending {
        tx,
        pool: pool_rx,
        batch: Batch::new(),
        shared: Arc::clone(&shared),
        closed: false,
    };
    let stop = Arc::clone(&opts.stop);
    let capture_thread = thread::Builder::new()
        .name("pacstap-capture".into())
        .spawn(move || capture_loop(src, sending, stop))
        .context("starting the capture thread")?;

    let result = process(&opts, &mut pipeline, &rx, &pool_tx, &shared);
    // Whatever happened, the capture thread must end: on an error here it would otherwise
    // capture into a channel nobody reads.
    opts.stop.store(true, Ordering::Relaxed);
    drop(rx);
    let (live, capture_error) = capture_thread
        .join()
        .map_err(|_| anyhow!("the capture thread panicked"))?;
    if let Some(m) = &metrics {
        m.set_healthy(false);
    }
    let reload_errors = result?;
    pipeline.finish()?;
    let pipeline_drops = shared.pipeline_drops.load(Ordering::Relaxed);
    if let Some(m) = &metrics {
        m.update(&snapshot(&pipeline, &shared));
    }
    Ok(CaptureReport {
        pipeline: pipeline.report(Vec::new(), Vec::new()),
        live,
        pipeline_drops,
        capture_error: capture_error.map(|e| e.to_string()),
        reload_errors,
    })
}

fn snapshot(pipeline: &Pipeline, shared: &Shared) -> pacstap_output::StatsSnapshot {
    let mut s = pipeline.stats_snapshot();
    s.pipeline_drops = shared.pipeline_drops.load(Ordering::Relaxed);
    s.kernel_drops = shared.kernel_drops.load(Ordering::Relaxed);
    s.interface_drops = shared.if_drops.load(Ordering::Relaxed);
    s
}

/// The processing thread's loop, until the capture thread hangs up.
fn process(
    opts: &CaptureOptions,
    pipeline: &mut Pipeline,
    rx: &Receiver<Batch>,
    pool: &Sender<Batch>,
    shared: &Shared,
) -> Result<Vec<String>> {
    let mut reload_errors = Vec::new();
    let mut next_housekeeping = Instant::now() + METRICS_EVERY;
    let mut next_save = Instant::now() + SAVE_STATE_EVERY;
    let mut dirty = false;
    loop {
        match rx.recv_timeout(METRICS_EVERY) {
            Ok(mut batch) => {
                for m in &batch.frames {
                    pipeline.frame_received(&batch.frame(m), m.received)?;
                }
                dirty = true;
                batch.clear();
                let _ = pool.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now < next_housekeeping {
            continue;
        }
        next_housekeeping = now + METRICS_EVERY;
        if dirty {
            pipeline.flush()?;
            dirty = false;
        }
        if let Some(m) = &opts.metrics {
            m.update(&snapshot(pipeline, shared));
        }
        if opts.reload.swap(false, Ordering::Relaxed) {
            reload(opts, pipeline, &mut reload_errors)?;
        }
        if now >= next_save {
            next_save = now + SAVE_STATE_EVERY;
            if let Err(e) = pipeline.save_state() {
                eprintln!("pacstap: warning: {e:#}");
            }
        }
    }
    Ok(reload_errors)
}

/// SIGHUP: reopen the events file (after log rotation moved it), then reload the config.
/// A config that does not load is reported and the running one kept.
fn reload(opts: &CaptureOptions, pipeline: &mut Pipeline, errors: &mut Vec<String>) -> Result<()> {
    if let EventsTarget::File(path) = &opts.events {
        pipeline.replace_events(opts.events.open()?)?;
        eprintln!("pacstap: reopened events file {}", path.display());
    }
    let Some(path) = &opts.config_path else {
        return Ok(());
    };
    match Config::load(path) {
        Ok(cfg) if &cfg == pipeline.config() => {
            eprintln!("pacstap: config {} unchanged", path.display());
        }
        Ok(cfg) => {
            if cfg.ports != pipeline.config().ports {
                eprintln!("pacstap: warning: [ports] changes take effect at the next restart");
            }
            pipeline.reload_config(&cfg)?;
            eprintln!(
                "pacstap: reloaded config {} (detection windows restarted)",
                path.display()
            );
        }
        Err(e) => {
            let msg = format!("config {} not reloaded, keeping the running one: {e}", path.display());
            eprintln!("pacstap: error: {msg}");
            errors.push(msg);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ts: i64, data: &[u8]) -> RawFrame<'_> {
        RawFrame {
            ts: Timestamp(ts),
            source: 0,
            linktype: 1,
            data,
            orig_len: data.len() as u32,
        }
    }

    #[test]
    fn batches_keep_frames_intact_and_within_their_caps() {
        let mut b = Batch::new();
        let now = Instant::now();
        let big = vec![7u8; BATCH_BYTES - 10];
        b.push(&raw(1, &big), now);
        assert!(!b.has_room(11));
        assert!(b.has_room(10));
        b.push(&raw(2, b"abcdefghij"), now);
        let frames: Vec<_> = b.frames.iter().map(|m| b.frame(m)).collect();
        assert_eq!(frames[0].data.len(), BATCH_BYTES - 10);
        assert_eq!(frames[1].data, b"abcdefghij");
        assert_eq!(frames[1].ts, Timestamp(2));
        let mut e = Batch::new();
        let huge = vec![0u8; BATCH_BYTES * 2];
        assert!(e.has_room(huge.len()), "a frame larger than a batch travels alone");
        e.push(&raw(3, &huge), now);
        assert!(!e.has_room(1));
    }

    #[test]
    fn a_full_channel_drops_the_newest_batch_and_counts_its_frames() {
        let (tx, rx) = bounded::<Batch>(1);
        let (_pool_tx, pool_rx) = bounded::<Batch>(1);
        let shared = Arc::new(Shared::default());
        let mut s = Sending {
            tx,
            pool: pool_rx,
            batch: Batch::new(),
            shared: Arc::clone(&shared),
            closed: false,
        };
        let now = Instant::now();
        s.batch.push(&raw(1, b"first"), now);
        s.send();
        s.batch.push(&raw(2, b"second"), now);
        s.batch.push(&raw(3, b"third"), now);
        s.send();
        assert_eq!(shared.pipeline_drops.load(Ordering::Relaxed), 2);
        assert!(s.batch.frames.is_empty(), "the dropped batch is reused, empty");
        let got = rx.try_recv().unwrap();
        assert_eq!(got.frame(&got.frames[0]).data, b"first");
        drop(rx);
        s.batch.push(&raw(4, b"x"), now);
        s.send();
        assert!(s.closed);
    }
}
