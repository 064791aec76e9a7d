//! The sharded pipeline ([`Sharded`]): the stages of `replay` on several threads, fed by a live
//! interface (`crate::capture`) or by files (`replay --workers N`).
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
//! (with one worker, that worker joins them as replay does; see `crate::shard`'s docs).
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

mod chores;
mod dispatch;
mod order;
mod shared;
mod worker;

pub use chores::{
    needs_restart, reload_help, Chores, EventsTarget, RELOAD_AT_ONCE, RELOAD_NEEDS_RESTART, RELOAD_NEW_CONNECTIONS,
    RELOAD_NEXT_FRAME,
};
pub use dispatch::{FrameFeed, Next, Sharder, BATCH_AGE, BATCH_BYTES, BATCH_FRAMES, DRAIN_AFTER_STOP, QUEUE_BATCHES};

use crate::config::wire_config;
use crate::detection::{stats_snapshot, Detection, METRICS_EVERY};
use crate::evidence_cut::{EvidenceCutter, EvidenceReply, EvidenceRequest};
use crate::shard::{FlowShard, ShardStats};
use anyhow::{anyhow, Context, Result};
use chores::reload;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use dispatch::{capture_loop, Batch, Dispatcher, Lane};
use order::{FrameOrder, Item, ItemKind, WorkerOutput};
use pacstap_capture::LiveError;
use pacstap_core::ProtocolEvent;
use pacstap_defrag::DefragConfig;
use pacstap_flow::FlowConfig;
use pacstap_output::term::{error_chain, warn};
use pacstap_output::RingLimits;
use pacstap_proto::ProtoConfig;
use shared::Shared;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use worker::{worker_loop, WorkerEvidence};

/// Worker outputs in flight to the detection thread.
pub const OUTPUT_QUEUE: usize = 256;

/// Learned state is also saved this often (wall time), so a crash loses little.
pub const SAVE_STATE_EVERY: Duration = Duration::from_secs(300);

/// Most workers `--workers` accepts.
pub const MAX_WORKERS: usize = 64;

/// The default number of workers: one per core left after the capture thread, at least one,
/// at most 8 (past that the capture thread, not the workers, is the limit: see the README's
/// sizing notes).
pub fn default_workers() -> usize {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, 8)
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
        // And its share of the checksum auto mode's sample (`FlowConfig::checksum_sample`).
        flow.checksum_sample /= workers as u64;
        // And its share of the decoder memory budget.
        let proto = self.proto.for_one_of(workers);
        let (out_tx, out_rx) = bounded::<WorkerOutput>(OUTPUT_QUEUE);
        let mut lanes = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        // Replies carry at most what the rings hold; unbounded so a worker never waits on them.
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded::<EvidenceReply>();
        let mut cutter = self.evidence.map(|_| EvidenceCutter::new(reply_rx, workers));
        for k in 0..workers {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            let (pool_tx, pool_rx) = bounded::<Batch>(QUEUE_BATCHES + 4);
            let mut shard = FlowShard::new(flow.clone(), proto.clone());
            shard.set_wire_config(wire_config(detection.config()));
            if workers == 1 {
                shard.defragment(self.defrag.clone());
            }
            let evidence = match (&mut cutter, &self.evidence) {
                (Some(c), Some(limits)) => {
                    let mut share = *limits;
                    share.budget_bytes = (limits.budget_bytes / workers).max(RingLimits::MIN_BUDGET);
                    shard.keep_evidence(share);
                    let (req_tx, req_rx) = bounded::<EvidenceRequest>(QUEUE_BATCHES);
                    c.add_worker(req_tx);
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
        dispatcher.set_wire_config(wire_config(detection.config()));
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
        let (evidence_files, result) = match cutter.as_mut() {
            Some(c) => {
                for (path, flows, alert) in detection.take_evidence_requests() {
                    c.request(path, flows, alert);
                }
                let files = c.finish();
                // The last cuts' alert updates, after detection's last word (the workers are
                // joined whatever happens here).
                let sealed = c.take_sealed();
                let result = result.and_then(|errors| {
                    for ev in sealed {
                        detection.emit_evidence_update(ev)?;
                    }
                    detection.flush().map(|()| errors)
                });
                (files, result)
            }
            None => (Vec::new(), result),
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
            for (path, flows, alert) in detection.take_evidence_requests() {
                c.request(path, flows, alert);
            }
            c.cut_due(now, false);
            c.collect(None);
            for ev in c.take_sealed() {
                detection.emit_evidence_update(ev)?;
                dirty = true;
            }
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
                warn("learned state not saved", &error_chain(e.as_ref()));
            }
        }
    }
    Ok(reload_errors)
}
