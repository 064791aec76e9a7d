//! `pacstap capture`: the same stages as `replay`, fed by a live interface, on several threads.
//!
//! # Threads
//!
//! ```text
//!                    ┌─(bounded channel)─▶ worker 0: wire → flow → proto ─┐
//! capture thread ────┼─(bounded channel)─▶ worker 1: wire → flow → proto ─┼─▶ detection thread ──▶ sinks
//!  libpcap, shards   └─(bounded channel)─▶ worker N-1 …                  ─┘   merge by frame order,
//!  by flow hash                                                              detect, write events
//! ```
//!
//! The capture thread numbers every frame it keeps (a sequence number), and sends it to the
//! worker its flow hashes to (`FlowKey::symmetric_hash`, the same for both directions), so each
//! worker owns its flows outright: no locks on the per-packet path. Each worker runs the
//! [`FlowShard`] that replay runs, and sends its events, tagged with their frame's number, to
//! the detection thread, together with how far it has got. The detection thread releases events
//! in frame order once every worker is past them, and runs the [`Detection`] that replay runs:
//! the entity windows, baselines and learned state see the events in replay's order, so the
//! same packets give the same events and alerts, whatever the number of workers.
//!
//! IP fragments carry no ports (only a datagram's first fragment has the TCP header), so with
//! several workers the capture thread joins them itself, before sharding, and sends each
//! reassembled datagram to the worker owning its flow, numbered right after its last fragment
//! (with one worker, that worker joins them as replay does; see `crate::pipeline`'s docs).
//!
//! The detection thread also does the housekeeping: flushing the events file, metrics, state
//! saves, SIGHUP.
//!
//! # Back-pressure: drop newest, never block the capture thread
//!
//! The capture thread never waits. When a worker's channel is full, the batch it was about to
//! get is dropped and its frames counted in `pacstap_pipeline_drops_total`. Blocking instead
//! would only move the loss into the kernel ring (`pacstap_kernel_drops_total`), where it is
//! invisible until libpcap's counters are read, and would stall the shutdown path. Dropped
//! frames become reassembly gaps downstream, which the decoders already handle (and count).
//! Workers do wait for the detection thread (its channel is bounded too), so a slow detection
//! thread fills the workers' channels and shows up as pipeline drops, never as unbounded memory.
//!
//! Each worker's channel holds [`QUEUE_BATCHES`] batches of at most [`BATCH_FRAMES`] frames /
//! [`BATCH_BYTES`] bytes: ≤ 64 MiB in flight per worker, about 50 ms of a saturated 10 Gbit/s
//! link — the same order as the kernel ring, so a processing hiccup of that length is absorbed
//! twice before anything is lost.
//!
//! # Clocks
//!
//! Packet time stays the only clock for decoding and detection. Wall time is used here only for
//! housekeeping: flushing the events file, refreshing metrics, saving state, and the latency
//! histogram.

use crate::pipeline::{
    apply_ports, defragment_decoded, stats_snapshot, Detection, DetectionClock, DetectionSettings, FlowShard,
    ReplayReport, ShardStats, METRICS_EVERY,
};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, select, Receiver, RecvTimeoutError, Sender, TrySendError};
use pacstap_capture::{LiveConfig, LiveError, LiveSource, LiveStats, RawFrame};
use pacstap_core::{FlowId, ProtocolEvent, Timestamp};
use pacstap_defrag::{DefragConfig, DefragStats, Defragmenter};
use pacstap_detect::Config;
use pacstap_flow::FlowConfig;
use pacstap_output::term::{error_chain, say};
use pacstap_output::{EvidencePackets, Metrics, RingLimits};
use pacstap_proto::ProtoConfig;
use pacstap_safefile::{Existing, Kind};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Batches in flight between the capture thread and each worker. See the module docs.
pub const QUEUE_BATCHES: usize = 64;
/// A worker's batch is sent when it holds this many frames…
pub const BATCH_FRAMES: usize = 256;
/// …or this many bytes (a frame larger than this, up to the snaplen, travels alone)…
pub const BATCH_BYTES: usize = 1 << 20;
/// …or the oldest frame held is this old (a quiet link still sees its frames promptly).
pub const BATCH_AGE: Duration = Duration::from_millis(20);
/// Worker outputs in flight to the detection thread.
pub const OUTPUT_QUEUE: usize = 256;
/// After the stop flag, keep reading this long: the kernel hands over its last, partly filled
/// block within one libpcap timeout (100 ms), so what arrived just before the signal is
/// processed.
pub const DRAIN_AFTER_STOP: Duration = Duration::from_millis(250);
/// The capture thread reads the clock once per this many frames (see `capture_loop`).
const CLOCK_EVERY: u32 = 32;
/// Learned state is also saved this often (wall time), so a crash loses little.
pub const SAVE_STATE_EVERY: Duration = Duration::from_secs(300);
/// Default memory for live evidence (`--evidence-memory`), over all workers.
pub const DEFAULT_EVIDENCE_MEMORY: usize = 256 << 20;
/// Most workers `--workers` accepts.
pub const MAX_WORKERS: usize = 64;

/// The default number of workers: one per core left after the capture thread, at least one,
/// at most 8 (past that the capture thread, not the workers, is the limit: see the README's
/// sizing notes).
pub fn default_workers() -> usize {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, 8)
}

/// Where events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventsTarget {
    Stdout,
    /// Appended to; reopened on SIGHUP (log rotation).
    File(PathBuf),
    /// Nowhere (benchmarks), or not this code's to reopen (replay).
    #[default]
    Discard,
}

impl EventsTarget {
    fn open(&self) -> Result<Box<dyn Write>> {
        Ok(match self {
            EventsTarget::Stdout => Box::new(std::io::stdout()),
            // Appended, mode 0600 (events carry user names), never through a symbolic link.
            EventsTarget::File(p) => Box::new(
                pacstap_safefile::open_private(p, Existing::Append, Kind::RegularOrStream)
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
    /// DICOM ports given on the command line (`--dicom-port`), kept across config reloads.
    pub extra_dicom_ports: Vec<u16>,
    /// Worker threads decoding flows (at least 1).
    pub workers: usize,
    /// Where each alert's evidence pcap goes, cut from the packets the workers hold.
    pub evidence_dir: Option<PathBuf>,
    /// Memory for those packets, over all workers (bytes).
    pub evidence_memory: usize,
    pub metrics: Option<Arc<Metrics>>,
    /// Also push each alert to this Alertmanager (`--alertmanager`).
    pub alertmanager: Option<Arc<pacstap_output::AlertmanagerClient>>,
    /// Set (e.g. by SIGINT / SIGTERM) to stop: flows are flushed, state saved, outputs closed.
    pub stop: Arc<AtomicBool>,
    /// Set (by SIGHUP) to reopen the events file and reload the config.
    pub reload: Arc<AtomicBool>,
    /// IP defragmentation limits (`--defrag-memory`, `--defrag-timeout`).
    pub defrag: DefragConfig,
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
            extra_dicom_ports: Vec::new(),
            workers: 1,
            evidence_dir: None,
            evidence_memory: DEFAULT_EVIDENCE_MEMORY,
            metrics: None,
            alertmanager: None,
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
            defrag: DefragConfig::default(),
        }
    }

    /// Use `config` for detection and for the decoders' port hints (as `ReplayOptions` does).
    pub fn with_config(mut self, config: Config) -> Self {
        apply_ports(&mut self.proto, &config);
        self.config = config;
        self
    }

    /// Also decode these ports as DICOM (`--dicom-port`), whatever the config says.
    pub fn with_dicom_ports(mut self, ports: &[u16]) -> Self {
        self.extra_dicom_ports = ports.to_vec();
        add_ports(&mut self.proto.dicom_ports, ports);
        self
    }
}

fn add_ports(to: &mut Vec<u16>, ports: &[u16]) {
    for p in ports {
        if !to.contains(p) {
            to.push(*p);
        }
    }
}

/// What a capture run did.
pub struct CaptureReport {
    /// The pipeline's numbers, as for a replay (no damages, no evidence).
    pub pipeline: ReplayReport,
    pub live: LiveStats,
    /// Frames dropped because a worker fell behind, per worker.
    pub pipeline_drops: Vec<u64>,
    /// Frames each worker decoded.
    pub worker_frames: Vec<u64>,
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
        let drops: u64 = self.pipeline_drops.iter().sum();
        s.push_str(&format!(
            "Capture: {} frames from libpcap, {} dropped by the kernel, {} by the interface, {} by pacstap (queue full)\n",
            self.live.frames, self.live.dropped, self.live.if_dropped, drops
        ));
        if self.worker_frames.len() > 1 {
            let per: Vec<String> = self
                .worker_frames
                .iter()
                .zip(&self.pipeline_drops)
                .enumerate()
                .map(|(i, (f, d))| format!("#{i} {f} frames, {d} dropped"))
                .collect();
            s.push_str(&format!("Workers: {}\n", per.join("; ")));
        }
        s
    }
}

/// Counters the threads share (for metrics and the report).
struct Shared {
    /// Per worker: frames dropped because its channel was full.
    pipeline_drops: Vec<AtomicU64>,
    kernel_drops: AtomicU64,
    if_drops: AtomicU64,
    /// Per worker: its shard's counters, refreshed about once a second.
    shards: Vec<Mutex<ShardStats>>,
    /// The capture thread's defragmenter's counters (several workers), likewise.
    defrag: Mutex<DefragStats>,
    /// Port hints for the workers after a config reload, with a generation to notice them.
    ports: Mutex<Option<Config>>,
    ports_generation: AtomicU64,
}

impl Shared {
    fn new(workers: usize) -> Shared {
        Shared {
            pipeline_drops: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            kernel_drops: AtomicU64::new(0),
            if_drops: AtomicU64::new(0),
            shards: (0..workers).map(|_| Mutex::new(ShardStats::default())).collect(),
            defrag: Mutex::new(DefragStats::default()),
            ports: Mutex::new(None),
            ports_generation: AtomicU64::new(0),
        }
    }

    fn pipeline_drops(&self) -> Vec<u64> {
        self.pipeline_drops.iter().map(|d| d.load(Ordering::Relaxed)).collect()
    }

    /// All workers' counters as one.
    fn shard_stats(&self) -> ShardStats {
        let mut total = ShardStats::default();
        for s in &self.shards {
            if let Ok(s) = s.lock() {
                total.merge(&s);
            }
        }
        if let Ok(d) = self.defrag.lock() {
            total.defrag.merge(&d);
        }
        total
    }
}

/// Frames copied out of libpcap's ring for one worker, sent as one message.
struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameMeta>,
    /// Every frame numbered up to this one has been dispatched (to this worker or another).
    through: u64,
    /// The latest packet time dispatched so far (to any worker).
    last_ts: Timestamp,
}

struct FrameMeta {
    /// The frame's number in capture order, from 1.
    seq: u64,
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    start: usize,
    len: usize,
    received: Instant,
    /// Detection's clock advances at this frame ([`DetectionClock`]).
    tick: bool,
    /// A datagram the capture thread reassembled from IP fragments, not a captured frame.
    datagram: bool,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_FRAMES),
            through: 0,
            last_ts: Timestamp(i64::MIN),
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    fn has_room(&self, len: usize) -> bool {
        self.frames.is_empty() || (self.frames.len() < BATCH_FRAMES && self.data.len() + len <= BATCH_BYTES)
    }

    fn push(&mut self, f: &RawFrame<'_>, received: Instant, seq: u64, tick: bool, datagram: bool) {
        let start = self.data.len();
        self.data.extend_from_slice(f.data);
        self.frames.push(FrameMeta {
            seq,
            ts: f.ts,
            linktype: f.linktype,
            orig_len: f.orig_len,
            start,
            len: f.data.len(),
            received,
            tick,
            datagram,
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

/// What a [`FrameFeed`] has for the capture thread.
pub enum Next<'a> {
    Frame(RawFrame<'a>),
    /// Nothing ready now (live).
    Idle,
    /// No more frames (end of the input files).
    End,
    /// The source failed (interface gone…): capture stops.
    Failed(LiveError),
}

/// Where the sharded pipeline's frames come from: a live interface, or files (replay with
/// several workers). Runs on the capture thread.
pub trait FrameFeed: Send {
    fn next_frame(&mut self) -> Next<'_>;
    /// Nothing was ready: wait a little before asking again.
    fn wait_idle(&mut self) {}
    /// Counters of the source (drops: live only).
    fn stats(&mut self) -> LiveStats;
    /// Files must not lose frames: a full worker channel makes the capture thread wait, instead
    /// of dropping the batch as live capture does.
    fn lossless(&self) -> bool {
        false
    }
}

impl FrameFeed for LiveSource {
    fn next_frame(&mut self) -> Next<'_> {
        match self.next_frame_or_idle() {
            Ok(Some(f)) => Next::Frame(f),
            Ok(None) => Next::Idle,
            Err(e) => Next::Failed(e),
        }
    }

    fn wait_idle(&mut self) {
        LiveSource::wait_idle(self);
    }

    fn stats(&mut self) -> LiveStats {
        LiveSource::stats(self)
    }
}

/// Which worker a frame goes to: by a hash of its TCP flow's canonical key (the same for both
/// directions), so both directions of a connection meet in one worker. Frames that are not TCP
/// (counted, not decoded) go to worker 0.
///
/// The hash is aHash with a random seed per run: a few nanoseconds a frame on the capture
/// thread (SipHash was 5 % of it), and nobody on the wire can aim flows at one worker. Which
/// worker decodes a flow never shows in the output: events are put back into frame order.
pub struct Sharder {
    hasher: ahash::RandomState,
    workers: usize,
    /// The tunnels to peel: a tunnelled flow is sharded by its inner 5-tuple.
    wire: pacstap_wire::WireConfig,
}

impl Sharder {
    pub fn new(workers: usize) -> Sharder {
        Sharder {
            hasher: ahash::RandomState::new(),
            workers: workers.max(1),
            wire: pacstap_wire::WireConfig::default(),
        }
    }

    pub fn worker_of(&self, frame: &RawFrame<'_>) -> usize {
        if self.workers <= 1 {
            return 0;
        }
        self.route(frame).0
    }

    /// [`Sharder::worker_of`] (decoding even with one worker), and the IP fragment the frame
    /// carries, if it is one (`pacstap_wire::Decoded::fragment`), from the same decode.
    pub fn route<'a>(&self, frame: &RawFrame<'a>) -> (usize, Option<&'a [u8]>) {
        let d = pacstap_wire::decode_frame_with(&self.wire, frame.ts, frame.linktype, frame.data);
        match d.packet {
            Ok(pkt) => (
                (self.hasher.hash_one(pkt.key.canonical().0) % self.workers as u64) as usize,
                None,
            ),
            Err(_) => (0, d.fragment),
        }
    }
}

/// One worker's channel, seen from the capture thread.
struct Lane {
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
    batch: Batch,
    /// The last send failed (channel full): this worker's progress mark is behind, so the next
    /// flush sends it a batch even when there is nothing new (or detection would wait for it).
    behind: bool,
    /// The worker is gone.
    closed: bool,
}

impl Lane {
    fn new(tx: Sender<Batch>, pool: Receiver<Batch>) -> Lane {
        Lane {
            tx,
            pool,
            batch: Batch::new(),
            behind: false,
            closed: false,
        }
    }
}

/// The capture thread's side: numbers frames, shards them, hands batches over.
struct Dispatcher {
    lanes: Vec<Lane>,
    sharder: Sharder,
    shared: Arc<Shared>,
    seq: u64,
    clock: DetectionClock,
    last_ts: Timestamp,
    /// Frames held in the lanes' batches, and when the oldest of them arrived.
    held: usize,
    oldest: Option<Instant>,
    /// Wait for room instead of dropping (files).
    lossless: bool,
    /// Joins IP fragments before sharding (several workers; see the module docs).
    defrag: Option<Defragmenter>,
}

impl Dispatcher {
    fn new(lanes: Vec<Lane>, shared: Arc<Shared>, lossless: bool) -> Dispatcher {
        Dispatcher {
            sharder: Sharder::new(lanes.len()),
            lanes,
            shared,
            seq: 0,
            clock: DetectionClock::default(),
            last_ts: Timestamp(i64::MIN),
            held: 0,
            oldest: None,
            lossless,
            defrag: None,
        }
    }

    /// Join IP fragments here, before sharding, within `config`.
    fn defragment(&mut self, config: DefragConfig) {
        self.defrag = Some(Defragmenter::new(config));
    }

    fn push(&mut self, f: &RawFrame<'_>, now: Instant) {
        let Some(defrag) = self.defrag.as_mut() else {
            let k = self.sharder.worker_of(f);
            self.enqueue(k, f, now, false);
            return;
        };
        let (k, fragment) = self.sharder.route(f);
        let datagram = fragment.and_then(|frag| defragment_decoded(defrag, f, frag));
        self.enqueue(k, f, now, false);
        if let Some(d) = datagram {
            // Right after its last fragment, to the worker owning its flow.
            let df = d.frame(f);
            let k = self.sharder.worker_of(&df);
            self.enqueue(k, &df, now, true);
        }
    }

    /// The defragmenter's counters (several workers), for metrics and the report.
    fn defrag_stats(&self) -> DefragStats {
        self.defrag.as_ref().map(Defragmenter::stats).unwrap_or_default()
    }

    /// Numbers `f` and adds it to worker `k`'s batch.
    fn enqueue(&mut self, k: usize, f: &RawFrame<'_>, now: Instant, datagram: bool) {
        let full = self.lanes.get(k).is_some_and(|l| !l.batch.has_room(f.data.len()));
        if full {
            self.flush();
        }
        self.seq += 1;
        self.last_ts = self.last_ts.max(f.ts);
        // A datagram has its last fragment's time, at which the clock already ticked or not.
        let tick = !datagram && self.clock.ticks_at(f.ts);
        let Some(lane) = self.lanes.get_mut(k) else {
            return;
        };
        lane.batch.push(f, now, self.seq, tick, datagram);
        self.held += 1;
        self.oldest.get_or_insert(now);
        if lane.batch.frames.len() >= BATCH_FRAMES {
            self.flush();
        }
    }

    /// Whether the oldest held frame has waited [`BATCH_AGE`].
    fn due(&self, now: Instant) -> bool {
        self.oldest.is_some_and(|t| now.duration_since(t) >= BATCH_AGE) || self.lanes.iter().any(|l| l.behind)
    }

    /// Send every worker its batch — empty ones too, so every worker's progress mark moves and
    /// detection never waits for a worker that simply had nothing. Never blocks: a full channel
    /// drops that worker's batch (counted).
    fn flush(&mut self) {
        if self.held == 0 && !self.lanes.iter().any(|l| l.behind) {
            return;
        }
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            if lane.closed {
                continue;
            }
            let next = lane.pool.try_recv().unwrap_or_else(|_| Batch::new());
            let mut full = std::mem::replace(&mut lane.batch, next);
            full.through = self.seq;
            full.last_ts = self.last_ts;
            let sent = if self.lossless {
                lane.tx.send(full).map_err(|e| TrySendError::Disconnected(e.0))
            } else {
                lane.tx.try_send(full)
            };
            match sent {
                Ok(()) => lane.behind = false,
                Err(TrySendError::Full(mut b)) => {
                    if let Some(d) = self.shared.pipeline_drops.get(k) {
                        d.fetch_add(b.frames.len() as u64, Ordering::Relaxed);
                    }
                    b.clear();
                    lane.batch = b;
                    lane.behind = true;
                }
                Err(TrySendError::Disconnected(_)) => lane.closed = true,
            }
        }
        self.held = 0;
        self.oldest = None;
    }

    /// End of capture: a last batch to every worker, waiting for room this time (nothing more
    /// will come to drop in its place), then hang up so the workers flush their flows.
    /// Returns the defragmenter's counters.
    fn finish(mut self) -> DefragStats {
        for lane in &mut self.lanes {
            let mut last = std::mem::replace(&mut lane.batch, Batch::new());
            last.through = self.seq;
            last.last_ts = self.last_ts;
            if !lane.closed {
                let _ = lane.tx.send(last);
            }
        }
        self.defrag_stats()
    }

    fn all_closed(&self) -> bool {
        self.lanes.iter().all(|l| l.closed)
    }
}

/// The capture thread: read frames, shard and batch them, hand them over; stop on the flag
/// (after a short drain), at the end of the input, or on a capture error. Returns the feed (for
/// its final counters), the error that stopped it, if any, and the defragmenter's counters.
fn capture_loop<F: FrameFeed>(
    mut src: F,
    mut out: Dispatcher,
    stop: Arc<AtomicBool>,
) -> (F, Option<LiveError>, DefragStats) {
    let mut stop_seen: Option<Instant> = None;
    let mut next_stats = Instant::now() + METRICS_EVERY;
    let mut error = None;
    // Wall time, read once per [`CLOCK_EVERY`] frames while frames keep coming (and after every
    // idle wait): reading the clock per frame was a tenth of this thread's time, and at the
    // rates where that matters 32 frames span microseconds.
    let mut now = Instant::now();
    let mut since_clock = 0u32;
    loop {
        if stop_seen.is_none() && stop.load(Ordering::Relaxed) {
            stop_seen = Some(Instant::now());
        }
        match src.next_frame() {
            Next::Frame(f) => {
                out.push(&f, now);
                since_clock += 1;
                if since_clock < CLOCK_EVERY {
                    continue;
                }
            }
            Next::Idle => {
                // Nothing ready: hand over what we hold, so a quiet link's frames are not kept.
                out.flush();
                src.wait_idle();
            }
            Next::End => break,
            Next::Failed(e) => {
                error = Some(e);
                break;
            }
        }
        since_clock = 0;
        now = Instant::now();
        if out.all_closed() || stop_seen.is_some_and(|t| now.duration_since(t) >= DRAIN_AFTER_STOP) {
            break;
        }
        if out.due(now) {
            out.flush();
        }
        if now >= next_stats {
            next_stats = now + METRICS_EVERY;
            publish(&mut src, &out.shared);
            if let Ok(mut d) = out.shared.defrag.lock() {
                *d = out.defrag_stats();
            }
        }
    }
    publish(&mut src, &out.shared);
    out.flush();
    let defrag = out.finish();
    (src, error, defrag)
}

fn publish<F: FrameFeed>(src: &mut F, shared: &Shared) -> LiveStats {
    let s = src.stats();
    shared.kernel_drops.store(s.dropped, Ordering::Relaxed);
    shared.if_drops.store(s.if_dropped, Ordering::Relaxed);
    s
}

/// What a worker sends the detection thread: its events in frame order, and how far it got.
struct WorkerOutput {
    worker: usize,
    items: Vec<Item>,
    /// Every frame numbered up to this one has been decoded by this worker, or was another's.
    through: u64,
}

/// One step for detection, at its frame's number.
struct Item {
    seq: u64,
    kind: ItemKind,
}

enum ItemKind {
    /// Detection's clock advances to this packet time ([`Detection::tick`]).
    Tick(Timestamp),
    /// A decoded event, and when its frame left the capture (for the latency histogram).
    Event(Box<ProtocolEvent>, Instant),
}

/// Frame number of the events the workers produce at the end (flows flushed at shutdown):
/// after every real frame.
const AT_END: u64 = u64::MAX;

/// A request to a worker: copy the packets it holds for these flows (live evidence).
struct EvidenceRequest {
    id: u64,
    /// Per flow: what the file already has of it (ring buffer epoch, frames seen).
    wants: Arc<[(FlowId, u64, u64)]>,
}

/// A worker's answer to an [`EvidenceRequest`].
struct EvidenceReply {
    id: u64,
    packets: EvidencePackets,
}

/// A worker's evidence side: requests in, copies out. `None` without `--evidence-dir`.
struct WorkerEvidence {
    requests: Receiver<EvidenceRequest>,
    replies: Sender<EvidenceReply>,
}

impl WorkerEvidence {
    fn serve(&self, shard: &FlowShard, req: EvidenceRequest) {
        let packets = shard.evidence_since(&req.wants);
        let _ = self.replies.send(EvidenceReply { id: req.id, packets });
    }
}

/// A worker thread: decode the frames of its flows, pass events on in frame order; with
/// evidence, answer requests for the packets of its flows, until detection no longer needs them.
fn worker_loop(
    worker: usize,
    mut shard: FlowShard,
    rx: Receiver<Batch>,
    pool: Sender<Batch>,
    out: Sender<WorkerOutput>,
    evidence: Option<WorkerEvidence>,
    shared: Arc<Shared>,
) -> ShardStats {
    let mut events = Vec::new();
    let mut last_ts = Timestamp(i64::MIN);
    let mut ports_seen = 0;
    let mut next_publish = Instant::now();
    let publish = |shard: &FlowShard| {
        if let Some(slot) = shared.shards.get(worker) {
            if let Ok(mut s) = slot.lock() {
                *s = shard.stats();
            }
        }
    };
    let never = crossbeam_channel::never();
    let requests = evidence.as_ref().map_or(&never, |e| &e.requests);
    // Counters published since the last batch (a quiet link must not leave metrics stale).
    let mut published = true;
    // Batches since the last evidence request served: copying an incident's packets takes
    // milliseconds, so while frames are waiting a request is served only every few batches,
    // never back to back (the queue absorbs one copy, not a run of them).
    let mut batches_since_request = usize::MAX;
    loop {
        let requests_now = if batches_since_request >= BATCHES_BETWEEN_REQUESTS || rx.is_empty() {
            requests
        } else {
            &never
        };
        let mut batch = select! {
            recv(rx) -> msg => match msg {
                Ok(b) => b,
                Err(_) => break,
            },
            recv(requests_now) -> req => {
                if let (Ok(req), Some(e)) = (req, &evidence) {
                    e.serve(&shard, req);
                    batches_since_request = 0;
                }
                continue;
            },
            default(METRICS_EVERY) => {
                if !published {
                    publish(&shard);
                    published = true;
                }
                continue;
            },
        };
        published = false;
        batches_since_request = batches_since_request.saturating_add(1);
        let generation = shared.ports_generation.load(Ordering::Acquire);
        if generation != ports_seen {
            ports_seen = generation;
            if let Ok(Some(cfg)) = shared.ports.lock().map(|c| c.clone()) {
                shard.set_port_hints(&cfg);
            }
        }
        let mut items = Vec::with_capacity(8);
        for m in &batch.frames {
            if m.tick {
                items.push(Item {
                    seq: m.seq,
                    kind: ItemKind::Tick(m.ts),
                });
            }
            if m.datagram {
                shard.datagram(&batch.frame(m), &mut events);
            } else {
                shard.frame(&batch.frame(m), &mut events);
            }
            for ev in events.drain(..) {
                items.push(Item {
                    seq: m.seq,
                    kind: ItemKind::Event(Box::new(ev), m.received),
                });
            }
        }
        last_ts = last_ts.max(batch.last_ts);
        let through = batch.through;
        batch.clear();
        let _ = pool.try_send(batch);
        if out.send(WorkerOutput { worker, items, through }).is_err() {
            break;
        }
        let now = Instant::now();
        if now >= next_publish {
            next_publish = now + METRICS_EVERY;
            publish(&shard);
            published = true;
        }
    }
    // The capture is over: end every open flow at the capture's last packet time, as replay
    // does at the end of its input.
    let end = if last_ts.0 == i64::MIN {
        shard.last_ts().unwrap_or_default()
    } else {
        last_ts
    };
    shard.finish(end, &mut events);
    let now = Instant::now();
    let items = events
        .drain(..)
        .map(|ev| Item {
            seq: AT_END,
            kind: ItemKind::Event(Box::new(ev), now),
        })
        .collect();
    let _ = out.send(WorkerOutput {
        worker,
        items,
        through: AT_END,
    });
    drop(out);
    publish(&shard);
    // Alerts raised at the very end (detection's own finish) still want their packets.
    if let Some(e) = &evidence {
        for req in e.requests.iter() {
            e.serve(&shard, req);
        }
    }
    shard.stats()
}

/// An incident's file, cut live from the workers' rings.
struct IncidentFile {
    /// Its flows, each with what the file already holds of it: the ring buffer's epoch and how
    /// many of that buffer's frames the last cut saw (see `EvidenceRing::snapshot_since`).
    flows: Vec<(FlowId, u64, u64)>,
    last_cut: Option<Instant>,
    /// Least time until the next cut: [`EVIDENCE_RECUT`], doubling with every cut up to
    /// [`EVIDENCE_RECUT_MAX`], so an incident that keeps growing for hours is cut every few
    /// minutes, not every ten seconds.
    interval: Duration,
    /// New flows since the last cut (an update that only raises the count changes no packets).
    dirty: bool,
    /// Cut once more after the last alert's cut: the flows go on after an alert (the rest of
    /// the transfer, the closing handshake), and the file should end with them.
    settle: bool,
    /// A cut of this file is waiting for the workers: the next one must start from its result.
    in_flight: bool,
}

/// A cut waiting for the workers' copies.
struct PendingCut {
    path: PathBuf,
    parts: Vec<EvidencePackets>,
    waiting: usize,
}

/// Live evidence (`capture --evidence-dir`), on the detection thread: each alert asks every
/// worker for the packets it holds of the alert's flows, and the copies are merged by time and
/// appended to the incident's pcap.
///
/// A file only grows: each cut asks for the frames the previous cuts did not have, so packets
/// already written stay even when a worker's ring forgets the flow later. It is cut when new
/// flows join the incident — at most every [`EVIDENCE_RECUT`], the interval doubling with each
/// cut up to [`EVIDENCE_RECUT_MAX`] — once more after that (so it ends with what followed the
/// alert), and at shutdown. An update that only raises the count cuts nothing. The packets are
/// those the workers still hold: each keeps a bounded ring per flow (the first frames with
/// payload up to the configured cap, then headers), and forgets the least recently active flows
/// when its share of `--evidence-memory` is used up.
struct EvidenceCutter {
    requests: Vec<Sender<EvidenceRequest>>,
    replies: Receiver<EvidenceReply>,
    next_id: u64,
    incidents: HashMap<PathBuf, IncidentFile>,
    pending: HashMap<u64, PendingCut>,
    written: Vec<PathBuf>,
    errors: u64,
}

/// While frames wait, a worker serves at most one evidence request per this many batches.
const BATCHES_BETWEEN_REQUESTS: usize = 8;
/// Least wall time between the first two cuts of one incident's evidence file (it doubles).
pub const EVIDENCE_RECUT: Duration = Duration::from_secs(10);
/// Most wall time between two cuts of a file whose incident keeps growing.
pub const EVIDENCE_RECUT_MAX: Duration = Duration::from_secs(300);
/// Flows per evidence file (an alert names at most its capped list; updates add more).
const EVIDENCE_FLOWS_PER_FILE: usize = 256;

impl EvidenceCutter {
    fn request(&mut self, path: PathBuf, flows: Vec<FlowId>) {
        let inc = self.incidents.entry(path).or_insert(IncidentFile {
            flows: Vec::new(),
            last_cut: None,
            interval: EVIDENCE_RECUT,
            dirty: true,
            settle: false,
            in_flight: false,
        });
        for f in flows {
            if inc.flows.len() < EVIDENCE_FLOWS_PER_FILE && !inc.flows.iter().any(|w| w.0 == f) {
                inc.flows.push((f, 0, 0));
                inc.dirty = true;
            }
        }
    }

    /// Ask the workers for what is new in the files that are due (every file with news when
    /// `force`).
    fn cut_due(&mut self, now: Instant, force: bool) {
        let due: Vec<PathBuf> = self
            .incidents
            .iter()
            .filter(|(_, i)| {
                (i.dirty || i.settle)
                    && !i.in_flight
                    && (force || i.last_cut.is_none_or(|t| now.duration_since(t) >= i.interval))
            })
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            let Some(inc) = self.incidents.get_mut(&path) else {
                continue;
            };
            // A cut for news is followed by a settling cut; a settling cut by nothing more.
            inc.settle = inc.dirty;
            inc.dirty = false;
            if inc.last_cut.is_some() {
                inc.interval = (inc.interval * 2).min(EVIDENCE_RECUT_MAX);
            }
            inc.last_cut = Some(now);
            let wants: Arc<[(FlowId, u64, u64)]> = inc.flows.clone().into();
            let id = self.next_id;
            self.next_id += 1;
            let mut waiting = 0;
            for tx in &self.requests {
                let req = EvidenceRequest {
                    id,
                    wants: Arc::clone(&wants),
                };
                // Never wait for a worker: one that is this far behind misses this cut (its
                // frames come with the next one, or at shutdown).
                if tx.try_send(req).is_ok() {
                    waiting += 1;
                }
            }
            if waiting > 0 {
                inc.in_flight = true;
                self.pending.insert(
                    id,
                    PendingCut {
                        path,
                        parts: Vec::new(),
                        waiting,
                    },
                );
            }
        }
    }

    /// Take the workers' answers; append to the files whose answers are all in.
    fn collect(&mut self, wait: Option<Duration>) {
        let deadline = wait.map(|w| Instant::now() + w);
        while !self.pending.is_empty() {
            let reply = match deadline {
                None => self.replies.try_recv().ok(),
                Some(d) => self.replies.recv_deadline(d).ok(),
            };
            let Some(reply) = reply else {
                break;
            };
            let done = match self.pending.get_mut(&reply.id) {
                Some(p) => {
                    p.parts.push(reply.packets);
                    p.waiting = p.waiting.saturating_sub(1);
                    p.waiting == 0
                }
                None => false,
            };
            if done {
                if let Some(p) = self.pending.remove(&reply.id) {
                    self.write(p);
                }
            }
        }
    }

    /// Append a finished cut, and remember what each flow's part held for the next one.
    fn write(&mut self, p: PendingCut) {
        if let Some(inc) = self.incidents.get_mut(&p.path) {
            inc.in_flight = false;
            for fe in p.parts.iter().flat_map(EvidencePackets::flows) {
                if let Some(w) = inc.flows.iter_mut().find(|w| w.0 == fe.flow) {
                    *w = (fe.flow, fe.epoch, fe.seen);
                }
            }
        }
        if p.parts.iter().all(EvidencePackets::is_empty) && p.path.exists() {
            return;
        }
        match pacstap_output::append_evidence_pcap(&p.path, &p.parts) {
            Ok(_) => {
                if !self.written.contains(&p.path) {
                    self.written.push(p.path);
                }
            }
            Err(e) => {
                self.errors += 1;
                say(&format!("warning: evidence {} not written: {e}", p.path.display()));
            }
        }
    }

    /// Shutdown: cut every file with news, and wait (a bounded time) for the copies.
    fn finish(&mut self) -> Vec<PathBuf> {
        // Cuts still out first, so the last cut starts from what they brought.
        self.collect(Some(Duration::from_secs(10)));
        self.cut_due(Instant::now(), true);
        self.collect(Some(Duration::from_secs(10)));
        let left: Vec<PendingCut> = self.pending.drain().map(|(_, p)| p).collect();
        for p in left {
            // Some worker did not answer in time: write what the others sent.
            self.write(p);
        }
        std::mem::take(&mut self.written)
    }
}

/// Puts the workers' outputs back into frame order.
///
/// An item numbered `s` may go to detection once every worker has reported progress through
/// `s`: no worker can still produce anything numbered below it. Each worker's items arrive in
/// order, so the next item is the smallest head among the workers' queues.
struct FrameOrder {
    queues: Vec<VecDeque<Item>>,
    through: Vec<u64>,
}

impl FrameOrder {
    fn new(workers: usize) -> FrameOrder {
        FrameOrder {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            through: vec![0; workers],
        }
    }

    fn push(&mut self, out: WorkerOutput) {
        if let (Some(q), Some(t)) = (self.queues.get_mut(out.worker), self.through.get_mut(out.worker)) {
            q.extend(out.items);
            *t = (*t).max(out.through);
        }
    }

    /// The worker whose queue holds the next item in frame order, if it is safe to release:
    /// no worker can still produce anything numbered below it.
    fn next_ready(&self) -> Option<(usize, &Item)> {
        let limit = self.through.iter().copied().min().unwrap_or(0);
        self.queues
            .iter()
            .enumerate()
            .filter_map(|(k, q)| q.front().map(|i| (k, i)))
            .min_by_key(|(_, i)| i.seq)
            .filter(|(_, i)| i.seq <= limit)
    }

    /// The next item in frame order, if it is safe to release.
    fn pop(&mut self) -> Option<Item> {
        let (k, _) = self.next_ready()?;
        self.queues.get_mut(k)?.pop_front()
    }

    /// Whether the next item to release is an event of frame `seq` (more events of one frame).
    fn next_is_event_of(&self, seq: u64) -> bool {
        self.next_ready()
            .is_some_and(|(_, i)| i.seq == seq && matches!(i.kind, ItemKind::Event(..)))
    }

    fn finished(&self) -> bool {
        self.through.iter().all(|&t| t == AT_END) && self.queues.iter().all(VecDeque::is_empty)
    }
}

/// Checks that learned state can be written where asked, before hours of capture depend on it:
/// a temporary file of unpredictable name is created exclusively in the state's directory and
/// removed (never a fixed name, which a planted link could redirect).
pub fn check_state_dir(path: &std::path::Path) -> Result<()> {
    let dir = pacstap_safefile::parent_dir(path);
    if !dir.is_dir() {
        return Err(anyhow!(
            "state directory {} does not exist: create it (the systemd unit's StateDirectory= does) or pass --state PATH",
            dir.display()
        ));
    }
    pacstap_safefile::check_dir_writable(&dir)
        .with_context(|| format!("cannot write learned state {} in {}", path.display(), dir.display()))
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
    let mut detection = Detection::new(DetectionSettings {
        config: opts.config.clone(),
        state: opts.state.clone(),
        evidence_dir: opts.evidence_dir.clone(),
        events: Some(events),
        alerts_only: opts.alerts_only,
        collect: false,
        metrics: opts.metrics.clone(),
        alertmanager: opts.alertmanager.clone(),
    })?;
    for w in detection.state_warnings() {
        say(&format!("warning: {w}"));
    }
    if opts.evidence_dir.is_some() {
        detection.cut_evidence_live();
    }
    let evidence = opts.evidence_dir.as_ref().map(|_| RingLimits {
        max_payload_per_flow: opts.config.evidence.max_payload_bytes_per_flow,
        budget_bytes: opts.evidence_memory,
        ..RingLimits::default()
    });
    let run = Sharded {
        workers: opts.workers,
        flow: opts.flow.clone(),
        proto: opts.proto.clone(),
        evidence,
        stop: Arc::clone(&opts.stop),
        defrag: opts.defrag.clone(),
        chores: Chores {
            metrics: opts.metrics.clone(),
            reload: Some(Arc::clone(&opts.reload)),
            events: opts.events.clone(),
            config_path: opts.config_path.clone(),
            extra_dicom_ports: opts.extra_dicom_ports.clone(),
        },
    };
    let end = run.run(src, &mut detection)?;
    let mut src = end.feed;
    Ok(CaptureReport {
        live: src.stats(),
        pipeline: detection.report(end.shards, Vec::new(), end.evidence_files),
        pipeline_drops: end.pipeline_drops,
        worker_frames: end.worker_frames,
        capture_error: end.error.map(|e| e.to_string()),
        reload_errors: end.reload_errors,
    })
}

/// The sharded pipeline: capture thread → N workers → this thread running [`Detection`].
pub struct Sharded {
    pub workers: usize,
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
    /// Set to stop (live); the end of a file feed stops too.
    pub stop: Arc<AtomicBool>,
    pub chores: Chores,
    /// Live evidence: each worker keeps its flows' recent packets within these limits (its
    /// share of the budget), and alerts' evidence files are cut from them.
    pub evidence: Option<RingLimits>,
    /// IP defragmentation limits: applied by the one worker, or by the capture thread before
    /// sharding when there are several (see the module docs).
    pub defrag: DefragConfig,
}

/// The detection thread's periodic work besides detecting (wall time, about once a second).
#[derive(Default)]
pub struct Chores {
    pub metrics: Option<Arc<Metrics>>,
    /// Set by SIGHUP: reopen the events file, reload the config.
    pub reload: Option<Arc<AtomicBool>>,
    pub events: EventsTarget,
    pub config_path: Option<PathBuf>,
    pub extra_dicom_ports: Vec<u16>,
}

/// How a sharded run ended.
pub struct ShardedEnd<F> {
    pub feed: F,
    /// Evidence files written (live evidence).
    pub evidence_files: Vec<PathBuf>,
    pub error: Option<LiveError>,
    pub shards: ShardStats,
    pub worker_frames: Vec<u64>,
    pub pipeline_drops: Vec<u64>,
    pub reload_errors: Vec<String>,
}

impl Sharded {
    /// Runs until the feed ends, fails, or `stop` is set; then every worker flushes its flows
    /// and `detection` finishes (state saved, outputs flushed).
    pub fn run<F: FrameFeed + 'static>(self, feed: F, detection: &mut Detection) -> Result<ShardedEnd<F>> {
        let workers = self.workers.clamp(1, MAX_WORKERS);
        let shared = Arc::new(Shared::new(workers));
        // Each worker's table gets its share of the flow cap, so the total stays as configured.
        let mut flow = self.flow.clone();
        flow.max_flows = (flow.max_flows / workers).max(1);
        // And its share of the decoder memory budget.
        let proto = self.proto.for_one_of(workers);
        let (out_tx, out_rx) = bounded::<WorkerOutput>(OUTPUT_QUEUE);
        let mut lanes = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        // Replies carry at most what the rings hold; unbounded so a worker never waits on them.
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded::<EvidenceReply>();
        let mut cutter = self.evidence.map(|_| EvidenceCutter {
            requests: Vec::with_capacity(workers),
            replies: reply_rx,
            next_id: 0,
            incidents: HashMap::new(),
            pending: HashMap::new(),
            written: Vec::new(),
            errors: 0,
        });
        for k in 0..workers {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            let (pool_tx, pool_rx) = bounded::<Batch>(QUEUE_BATCHES + 4);
            let mut shard = FlowShard::new(flow.clone(), proto.clone());
            shard.set_wire_config(crate::pipeline::wire_config(detection.config()));
            if workers == 1 {
                shard.defragment(self.defrag.clone());
            }
            let evidence = match (&mut cutter, &self.evidence) {
                (Some(c), Some(limits)) => {
                    let mut share = *limits;
                    share.budget_bytes = (limits.budget_bytes / workers).max(RingLimits::MIN_BUDGET);
                    shard.keep_evidence(share);
                    let (req_tx, req_rx) = bounded::<EvidenceRequest>(QUEUE_BATCHES);
                    c.requests.push(req_tx);
                    Some(WorkerEvidence {
                        requests: req_rx,
                        replies: reply_tx.clone(),
                    })
                }
                _ => None,
            };
            let (out, sh) = (out_tx.clone(), Arc::clone(&shared));
            let handle = thread::Builder::new()
                .name(format!("pacstap-worker-{k}"))
                .spawn(move || worker_loop(k, shard, rx, pool_tx, out, evidence, sh))
                .context("starting a worker thread")?;
            handles.push(handle);
            lanes.push(Lane::new(tx, pool_rx));
        }
        drop(out_tx);
        drop(reply_tx);
        let mut dispatcher = Dispatcher::new(lanes, Arc::clone(&shared), feed.lossless());
        dispatcher.sharder.wire = crate::pipeline::wire_config(detection.config());
        if workers > 1 {
            dispatcher.defragment(self.defrag.clone());
        }
        let stop = Arc::clone(&self.stop);
        let capture_thread = thread::Builder::new()
            .name("pacstap-capture".into())
            .spawn(move || capture_loop(feed, dispatcher, stop))
            .context("starting the capture thread")?;

        let result = detect_loop(&self.chores, detection, &out_rx, &shared, workers, cutter.as_mut());
        // Whatever happened, the other threads must end: on an error here the capture thread
        // would otherwise capture into channels nobody reads.
        self.stop.store(true, Ordering::Relaxed);
        drop(out_rx);
        let (feed, error, defrag) = capture_thread
            .join()
            .map_err(|_| anyhow!("the capture thread panicked"))?;
        // Detection's last word (held exports, grown incidents), while the workers still hold
        // their packets for its evidence; then the workers may go.
        let result = result.and_then(|errors| detection.finish().map(|()| errors));
        let evidence_files = match cutter.as_mut() {
            Some(c) => {
                for (path, flows) in detection.take_evidence_requests() {
                    c.request(path, flows);
                }
                c.finish()
            }
            None => Vec::new(),
        };
        drop(cutter);
        let mut shards = ShardStats::default();
        let mut worker_frames = Vec::with_capacity(workers);
        for h in handles {
            let s = h.join().map_err(|_| anyhow!("a worker thread panicked"))?;
            worker_frames.push(s.frames);
            shards.merge(&s);
        }
        shards.defrag.merge(&defrag);
        if let Some(m) = &self.chores.metrics {
            m.set_healthy(false);
        }
        let reload_errors = result?;
        if let Some(m) = &self.chores.metrics {
            let mut snap = stats_snapshot(&shards, detection);
            fill_drops(&mut snap, &shared);
            m.update(&snap);
        }
        Ok(ShardedEnd {
            feed,
            evidence_files,
            error,
            shards,
            worker_frames,
            pipeline_drops: shared.pipeline_drops(),
            reload_errors,
        })
    }
}

fn fill_drops(s: &mut pacstap_output::StatsSnapshot, shared: &Shared) {
    s.pipeline_drops = shared.pipeline_drops().iter().sum();
    s.kernel_drops = shared.kernel_drops.load(Ordering::Relaxed);
    s.interface_drops = shared.if_drops.load(Ordering::Relaxed);
}

fn snapshot(detection: &Detection, shared: &Shared) -> pacstap_output::StatsSnapshot {
    let mut s = stats_snapshot(&shared.shard_stats(), detection);
    fill_drops(&mut s, shared);
    s
}

/// The detection thread's loop: merge the workers' outputs into frame order and run detection
/// on them, until every worker has finished (after the capture thread hung up).
fn detect_loop(
    chores: &Chores,
    detection: &mut Detection,
    rx: &Receiver<WorkerOutput>,
    shared: &Shared,
    workers: usize,
    mut cutter: Option<&mut EvidenceCutter>,
) -> Result<Vec<String>> {
    let mut reload_errors = Vec::new();
    let mut order = FrameOrder::new(workers);
    let mut frame_events: Vec<ProtocolEvent> = Vec::new();
    let mut next_housekeeping = Instant::now() + METRICS_EVERY;
    let mut next_save = Instant::now() + SAVE_STATE_EVERY;
    let mut dirty = false;
    loop {
        match rx.recv_timeout(METRICS_EVERY) {
            Ok(out) => {
                order.push(out);
                while let Some(item) = order.pop() {
                    match item.kind {
                        ItemKind::Tick(ts) => detection.tick(ts),
                        ItemKind::Event(ev, received) => {
                            // All events of one frame together, then the alerts they caused,
                            // as replay emits them.
                            frame_events.push(*ev);
                            while order.next_is_event_of(item.seq) {
                                if let Some(Item {
                                    kind: ItemKind::Event(ev, _),
                                    ..
                                }) = order.pop()
                                {
                                    frame_events.push(*ev);
                                }
                            }
                            if detection.events(frame_events.drain(..))? > 0 {
                                if let Some(m) = detection.metrics() {
                                    m.observe_event_latency(received.elapsed());
                                }
                            }
                            dirty = true;
                        }
                    }
                }
                if order.finished() {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if let Some(c) = cutter.as_deref_mut() {
            for (path, flows) in detection.take_evidence_requests() {
                c.request(path, flows);
            }
            c.cut_due(now, false);
            c.collect(None);
        }
        if now < next_housekeeping {
            continue;
        }
        next_housekeeping = now + METRICS_EVERY;
        if dirty {
            detection.flush()?;
            dirty = false;
        }
        if let Some(m) = &chores.metrics {
            m.update(&snapshot(detection, shared));
        }
        if chores.reload.as_ref().is_some_and(|r| r.swap(false, Ordering::Relaxed)) {
            reload(chores, detection, shared, &mut reload_errors)?;
        }
        if now >= next_save {
            next_save = now + SAVE_STATE_EVERY;
            if let Err(e) = detection.save_state() {
                say(&format!("warning: {}", error_chain(e.as_ref())));
            }
        }
    }
    Ok(reload_errors)
}

/// SIGHUP: reopen the events file (after log rotation moved it), then reload the config.
/// A config that does not load is reported and the running one kept.
fn reload(chores: &Chores, detection: &mut Detection, shared: &Shared, errors: &mut Vec<String>) -> Result<()> {
    if let EventsTarget::File(path) = &chores.events {
        detection.replace_events(chores.events.open()?)?;
        say(&format!("reopened events file {}", path.display()));
    }
    let Some(path) = &chores.config_path else {
        return Ok(());
    };
    match Config::load(path) {
        Ok(cfg) if &cfg == detection.config() => {
            say(&format!("config {} unchanged", path.display()));
        }
        Ok(cfg) => {
            let ports_changed = cfg.ports != detection.config().ports;
            match detection.reload_config(&cfg) {
                Ok(()) => say(&format!("reloaded config {}", path.display())),
                Err(e) => {
                    let msg = format!(
                        "config {} not reloaded, keeping the running one: {}",
                        path.display(),
                        error_chain(e.as_ref())
                    );
                    say(&format!("error: {msg}"));
                    errors.push(msg);
                    return Ok(());
                }
            }
            if ports_changed {
                let mut hints = cfg.clone();
                add_ports(&mut hints.ports.dicom, &chores.extra_dicom_ports);
                if let Ok(mut p) = shared.ports.lock() {
                    *p = Some(hints);
                }
                shared.ports_generation.fetch_add(1, Ordering::Release);
                say("new [ports] apply to connections that start from now on");
            }
        }
        Err(e) => {
            let msg = format!("config {} not reloaded, keeping the running one: {e}", path.display());
            say(&format!("error: {msg}"));
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
        b.push(&raw(1, &big), now, 1, false, false);
        assert!(!b.has_room(11));
        assert!(b.has_room(10));
        b.push(&raw(2, b"abcdefghij"), now, 2, true, false);
        let frames: Vec<_> = b.frames.iter().map(|m| b.frame(m)).collect();
        assert_eq!(frames[0].data.len(), BATCH_BYTES - 10);
        assert_eq!(frames[1].data, b"abcdefghij");
        assert_eq!(frames[1].ts, Timestamp(2));
        let mut e = Batch::new();
        let huge = vec![0u8; BATCH_BYTES * 2];
        assert!(e.has_room(huge.len()), "a frame larger than a batch travels alone");
        e.push(&raw(3, &huge), now, 3, false, false);
        assert!(!e.has_room(1));
    }

    /// An Ethernet/IPv4/TCP frame between 10.0.0.1:`sport` and 10.0.0.2:`dport`.
    fn tcp_frame(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x10;
        f
    }

    fn swapped(f: &[u8]) -> Vec<u8> {
        let mut g = f.to_vec();
        g[26..30].copy_from_slice(&f[30..34]);
        g[30..34].copy_from_slice(&f[26..30]);
        g[34..36].copy_from_slice(&f[36..38]);
        g[36..38].copy_from_slice(&f[34..36]);
        g
    }

    #[test]
    fn both_directions_of_a_flow_go_to_the_same_worker_and_flows_spread() {
        let mut used = [0usize; 4];
        let sharder = Sharder::new(4);
        for port in 40000..40400u16 {
            let f = tcp_frame(port, 11112);
            let r = swapped(&f);
            let k = sharder.worker_of(&raw(1, &f));
            assert_eq!(k, sharder.worker_of(&raw(1, &r)), "port {port}");
            used[k] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "400 flows over 4 workers: {used:?}");
        assert_eq!(sharder.worker_of(&raw(1, b"not a frame")), 0);
        assert_eq!(Sharder::new(1).worker_of(&raw(1, &tcp_frame(1, 2))), 0);
    }

    fn dispatcher(workers: usize, capacity: usize) -> (Dispatcher, Vec<Receiver<Batch>>, Arc<Shared>) {
        let shared = Arc::new(Shared::new(workers));
        let mut lanes = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = bounded::<Batch>(capacity);
            let (_pool_tx, pool_rx) = bounded::<Batch>(1);
            lanes.push(Lane::new(tx, pool_rx));
            rxs.push(rx);
        }
        let d = Dispatcher::new(lanes, Arc::clone(&shared), false);
        (d, rxs, shared)
    }

    #[test]
    fn a_full_worker_channel_drops_that_workers_batch_only_and_counts_its_frames() {
        let (mut d, rxs, shared) = dispatcher(2, 1);
        let now = Instant::now();
        // Find a flow for each worker.
        let port_for = |w: usize| {
            (40000..41000u16)
                .find(|&p| d.sharder.worker_of(&raw(1, &tcp_frame(p, 104))) == w)
                .unwrap()
        };
        let (f0, f1) = (tcp_frame(port_for(0), 104), tcp_frame(port_for(1), 104));
        d.push(&raw(1, &f0), now);
        d.push(&raw(2, &f1), now);
        d.flush();
        // Worker 0 takes its batch; worker 1 does not, so its next batch is dropped.
        let b0 = rxs[0].try_recv().unwrap();
        assert_eq!((b0.frames.len(), b0.frames[0].seq, b0.through), (1, 1, 2));
        assert!(b0.frames[0].tick, "the first frame starts detection's clock");
        d.push(&raw(3, &f0), now);
        d.push(&raw(4, &f1), now);
        d.push(&raw(5, &f1), now);
        d.flush();
        assert_eq!(shared.pipeline_drops(), vec![0, 2]);
        assert!(d.lanes[1].behind);
        let b0 = rxs[0].try_recv().unwrap();
        assert_eq!((b0.frames[0].seq, b0.through), (3, 5));
        // Once worker 1 catches up, an empty batch brings its progress mark up to date.
        let b1 = rxs[1].try_recv().unwrap();
        assert_eq!((b1.frames.len(), b1.through), (1, 2));
        assert!(d.due(now), "a worker behind is due at once");
        d.flush();
        let b1 = rxs[1].try_recv().unwrap();
        assert_eq!((b1.frames.len(), b1.through), (0, 5));
        assert!(!d.lanes[1].behind);
    }

    fn event_item(seq: u64) -> Item {
        let ep = |a: [u8; 4], port| pacstap_core::Endpoint {
            ip: std::net::IpAddr::from(a),
            port,
        };
        let ev = ProtocolEvent {
            ts: Timestamp(1),
            flow: pacstap_core::FlowMeta {
                id: pacstap_core::FlowId(seq),
                client: ep([10, 0, 0, 1], 40000),
                server: ep([10, 0, 0, 2], 104),
                start: Timestamp(0),
                handshake_seen: true,
            },
            body: pacstap_core::EventBody::Anomaly(pacstap_core::Anomaly {
                proto: "tcp",
                name: "test",
                detail: None,
            }),
        };
        Item {
            seq,
            kind: ItemKind::Event(Box::new(ev), Instant::now()),
        }
    }

    fn seqs(order: &mut FrameOrder) -> Vec<u64> {
        std::iter::from_fn(|| order.pop()).map(|i| i.seq).collect()
    }

    #[test]
    fn frame_order_releases_items_only_when_every_worker_is_past_them() {
        let mut order = FrameOrder::new(2);
        order.push(WorkerOutput {
            worker: 0,
            items: vec![event_item(1), event_item(4)],
            through: 5,
        });
        assert!(seqs(&mut order).is_empty(), "worker 1 has reported nothing yet");
        order.push(WorkerOutput {
            worker: 1,
            items: vec![event_item(2), event_item(3), event_item(7)],
            through: 8,
        });
        assert_eq!(seqs(&mut order), vec![1, 2, 3, 4]);
        order.push(WorkerOutput {
            worker: 0,
            items: vec![event_item(AT_END)],
            through: AT_END,
        });
        assert_eq!(seqs(&mut order), vec![7]);
        assert!(!order.finished());
        order.push(WorkerOutput {
            worker: 1,
            items: vec![event_item(AT_END)],
            through: AT_END,
        });
        assert_eq!(seqs(&mut order), vec![AT_END, AT_END]);
        assert!(order.finished());
    }
}
