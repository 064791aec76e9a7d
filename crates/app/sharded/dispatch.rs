//! The capture thread ([`capture_loop`]): numbers the frames a [`FrameFeed`] gives, shards
//! them by flow ([`Sharder`]), joins IP fragments first when there are several workers, and hands
//! batches to the workers without ever blocking (see `crate::sharded`'s docs on back-pressure).

use super::shared::{Shared, WireSettings};
use crate::detection::{DetectionClock, METRICS_EVERY};
use crate::shard::defragment_decoded;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use pacstap_capture::{LiveError, LiveStats, RawFrame};
use pacstap_core::Timestamp;
use pacstap_defrag::{DefragConfig, DefragStats, Defragmenter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches in flight between the capture thread and each worker. See the module docs.
pub const QUEUE_BATCHES: usize = 64;
/// A worker's batch is sent when it holds this many frames…
pub const BATCH_FRAMES: usize = 256;
/// …or this many bytes (a frame larger than this, up to the snaplen, travels alone)…
pub const BATCH_BYTES: usize = 1 << 20;
/// …or the oldest frame held is this old (a quiet link still sees its frames promptly).
pub const BATCH_AGE: Duration = Duration::from_millis(20);

/// After the stop flag, keep reading this long: the kernel hands over its last, partly filled
/// block within one libpcap timeout (100 ms), so what arrived just before the signal is
/// processed.
pub const DRAIN_AFTER_STOP: Duration = Duration::from_millis(250);
/// The capture thread reads the clock once per this many frames (see `capture_loop`).
pub(crate) const CLOCK_EVERY: u32 = 32;

/// Frames copied out of libpcap's ring for one worker, sent as one message.
pub(crate) struct Batch {
    pub(crate) data: Vec<u8>,
    pub(crate) frames: Vec<FrameMeta>,
    /// Every frame numbered up to this one has been dispatched (to this worker or another).
    pub(crate) through: u64,
    /// The latest packet time dispatched so far (to any worker).
    pub(crate) last_ts: Timestamp,
    /// New wire settings (a reload), to apply before this batch's first frame.
    pub(crate) wire: Option<WireSettings>,
}

pub(crate) struct FrameMeta {
    /// The frame's number in capture order, from 1.
    pub(crate) seq: u64,
    pub(crate) ts: Timestamp,
    pub(crate) linktype: u32,
    pub(crate) orig_len: u32,
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) received: Instant,
    /// Detection's clock advances at this frame ([`DetectionClock`]).
    pub(crate) tick: bool,
    /// A datagram the capture thread reassembled from IP fragments, not a captured frame.
    pub(crate) datagram: bool,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES),
            frames: Vec::with_capacity(BATCH_FRAMES),
            through: 0,
            last_ts: Timestamp(i64::MIN),
            wire: None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
        self.wire = None;
    }

    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.frames.is_empty() || (self.frames.len() < BATCH_FRAMES && self.data.len() + len <= BATCH_BYTES)
    }

    pub(crate) fn push(&mut self, f: &RawFrame<'_>, received: Instant, seq: u64, tick: bool, datagram: bool) {
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

    pub(crate) fn frame(&self, m: &FrameMeta) -> RawFrame<'_> {
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

/// The hash seeds of a split over files (any fixed values: digits of pi).
const FILE_SEEDS: [u64; 4] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
];

/// Which worker a frame goes to: by a hash of its TCP flow's canonical key (the same for both
/// directions), so both directions of a connection meet in one worker. Frames that are not TCP
/// (counted, not decoded) go to worker 0.
///
/// The hash is aHash: a few nanoseconds a frame on the capture thread (SipHash was 5 % of it).
/// Live, its seed is random per run, so nobody on the wire can aim flows at one worker. Over
/// files (`replay --workers N`) the seed is fixed, so a capture is split the same way on every
/// run: events are put back into frame order, but the order in which flows end by idle timeout
/// or at the end of the input follows each worker's own packet clock (README, "Threads and
/// back-pressure"), and with a random split the same file gave a differently ordered output,
/// and differently counted alerts, on each run.
pub struct Sharder {
    hasher: ahash::RandomState,
    workers: usize,
    /// The tunnels to peel: a tunnelled flow is sharded by its inner 5-tuple.
    wire: pacstap_wire::WireConfig,
}

impl Sharder {
    /// `reproducible`: the fixed seed (files), else a random one (live).
    pub fn new(workers: usize, reproducible: bool) -> Sharder {
        Sharder {
            hasher: if reproducible {
                ahash::RandomState::with_seeds(FILE_SEEDS[0], FILE_SEEDS[1], FILE_SEEDS[2], FILE_SEEDS[3])
            } else {
                ahash::RandomState::new()
            },
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
pub(crate) struct Lane {
    pub(crate) tx: Sender<Batch>,
    pub(crate) pool: Receiver<Batch>,
    pub(crate) batch: Batch,
    /// The last send failed (channel full): this worker's progress mark is behind, so the next
    /// flush sends it a batch even when there is nothing new (or detection would wait for it).
    pub(crate) behind: bool,
    /// The worker is gone.
    pub(crate) closed: bool,
    /// New wire settings this worker has not been sent yet: they ride on its next batch that
    /// is delivered (a dropped batch leaves them here).
    pub(crate) wire: Option<WireSettings>,
}

impl Lane {
    pub(crate) fn new(tx: Sender<Batch>, pool: Receiver<Batch>) -> Lane {
        Lane {
            tx,
            pool,
            batch: Batch::new(),
            behind: false,
            closed: false,
            wire: None,
        }
    }
}

/// The capture thread's side: numbers frames, shards them, hands batches over.
pub(crate) struct Dispatcher {
    pub(crate) lanes: Vec<Lane>,
    pub(crate) sharder: Sharder,
    pub(crate) shared: Arc<Shared>,
    pub(crate) seq: u64,
    pub(crate) clock: DetectionClock,
    pub(crate) last_ts: Timestamp,
    /// Frames held in the lanes' batches, and when the oldest of them arrived.
    pub(crate) held: usize,
    pub(crate) oldest: Option<Instant>,
    /// Wait for room instead of dropping (files).
    pub(crate) lossless: bool,
    /// Joins IP fragments before sharding (several workers; see the module docs).
    pub(crate) defrag: Option<Defragmenter>,
    /// The generation of [`Shared::wire`] in force here.
    pub(crate) wire_seen: u64,
}

impl Dispatcher {
    pub(crate) fn new(lanes: Vec<Lane>, shared: Arc<Shared>, lossless: bool) -> Dispatcher {
        Dispatcher {
            sharder: Sharder::new(lanes.len(), lossless),
            lanes,
            shared,
            seq: 0,
            clock: DetectionClock::default(),
            last_ts: Timestamp(i64::MIN),
            held: 0,
            oldest: None,
            lossless,
            defrag: None,
            wire_seen: 0,
        }
    }

    /// The tunnels to peel before hashing (`[decapsulate]`): a tunnelled flow is sharded by its
    /// inner 5-tuple.
    pub(crate) fn set_wire_config(&mut self, wire: pacstap_wire::WireConfig) {
        self.sharder.wire = wire;
    }

    /// Join IP fragments here, before sharding, within `config`.
    pub(crate) fn defragment(&mut self, config: DefragConfig) {
        self.defrag = Some(Defragmenter::new(config));
    }

    pub(crate) fn push(&mut self, f: &RawFrame<'_>, now: Instant) {
        if self.shared.wire_generation.load(Ordering::Acquire) != self.wire_seen {
            self.switch_wire();
        }
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

    /// A reload changed the wire settings: between two frames, hand over every frame held (they
    /// were sharded with the old settings, and their workers decode them so), then shard with
    /// the new ones, and give each worker the new settings with its next batch. Flows in
    /// progress keep their state; the defragmenter keeps its pending datagrams.
    pub(crate) fn switch_wire(&mut self) {
        self.wire_seen = self.shared.wire_generation.load(Ordering::Acquire);
        let Some(settings) = self.shared.wire.lock().ok().and_then(|w| w.clone()) else {
            return;
        };
        self.flush();
        self.sharder.wire = settings.wire.clone();
        if let Some(d) = self.defrag.as_mut() {
            d.set_config(settings.defrag.clone());
        }
        for lane in &mut self.lanes {
            lane.wire = Some(settings.clone());
        }
    }

    /// The defragmenter's counters (several workers), for metrics and the report.
    pub(crate) fn defrag_stats(&self) -> DefragStats {
        self.defrag.as_ref().map(Defragmenter::stats).unwrap_or_default()
    }

    /// Numbers `f` and adds it to worker `k`'s batch.
    pub(crate) fn enqueue(&mut self, k: usize, f: &RawFrame<'_>, now: Instant, datagram: bool) {
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
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.oldest.is_some_and(|t| now.duration_since(t) >= BATCH_AGE) || self.lanes.iter().any(|l| l.behind)
    }

    /// Send every worker its batch — empty ones too, so every worker's progress mark moves and
    /// detection never waits for a worker that simply had nothing. Never blocks: a full channel
    /// drops that worker's batch (counted).
    pub(crate) fn flush(&mut self) {
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
            full.wire = lane.wire.take();
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
                    // Not delivered: the next batch carries the settings.
                    lane.wire = b.wire.take();
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
    pub(crate) fn finish(mut self) -> DefragStats {
        for lane in &mut self.lanes {
            let mut last = std::mem::replace(&mut lane.batch, Batch::new());
            last.through = self.seq;
            last.last_ts = self.last_ts;
            last.wire = lane.wire.take();
            if !lane.closed {
                let _ = lane.tx.send(last);
            }
        }
        self.defrag_stats()
    }

    pub(crate) fn all_closed(&self) -> bool {
        self.lanes.iter().all(|l| l.closed)
    }
}

/// The capture thread: read frames, shard and batch them, hand them over; stop on the flag
/// (after a short drain), at the end of the input, or on a capture error. Returns the feed (for
/// its final counters), the error that stopped it, if any, and the defragmenter's counters.
pub(crate) fn capture_loop<F: FrameFeed>(
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

pub(crate) fn publish<F: FrameFeed>(src: &mut F, shared: &Shared) -> LiveStats {
    let s = src.stats();
    shared.kernel_drops.store(s.dropped, Ordering::Relaxed);
    shared.if_drops.store(s.if_dropped, Ordering::Relaxed);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

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
        let sharder = Sharder::new(4, false);
        for port in 40000..40400u16 {
            let f = tcp_frame(port, 11112);
            let r = swapped(&f);
            let k = sharder.worker_of(&raw(1, &f));
            assert_eq!(k, sharder.worker_of(&raw(1, &r)), "port {port}");
            used[k] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "400 flows over 4 workers: {used:?}");
        assert_eq!(sharder.worker_of(&raw(1, b"not a frame")), 0);
        assert_eq!(Sharder::new(1, false).worker_of(&raw(1, &tcp_frame(1, 2))), 0);
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

    /// `frame` (Ethernet) in VXLAN (RFC 7348 §5) over UDP to `port`, between 192.0.2.1 and
    /// 192.0.2.2 (IPv4 header checksum left 0: the wire stage does not check it).
    fn vxlan(port: u16, frame: &[u8]) -> Vec<u8> {
        let mut udp = 49152u16.to_be_bytes().to_vec();
        udp.extend_from_slice(&port.to_be_bytes());
        udp.extend_from_slice(&(16 + frame.len() as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0, 1, 0]);
        udp.extend_from_slice(frame);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        f.extend_from_slice(&udp);
        f
    }

    /// A reload that adds VXLAN port 8472 (`Shared::publish_wire`, as `chores::reload` does)
    /// takes effect between two frames: frames before it were sharded (as not TCP, to worker
    /// 0) and are delivered without the new settings; from the next frame the tunnel is peeled
    /// and sharded by its inner flow, the defragmenter has the new limits, and every worker's
    /// next batch carries the settings, once, even when that batch was first dropped.
    #[test]
    fn a_reloaded_decapsulate_port_applies_from_the_next_frame() {
        let (mut d, rxs, shared) = dispatcher(2, 1);
        d.defrag = Some(Defragmenter::new(DefragConfig::default()));
        let now = Instant::now();
        let port = (40000..41000u16)
            .find(|&p| d.sharder.worker_of(&raw(1, &tcp_frame(p, 104))) == 1)
            .unwrap();
        let outer = vxlan(8472, &tcp_frame(port, 104));
        d.push(&raw(1, &outer), now);
        assert_eq!(d.lanes[0].batch.frames.len(), 1, "UDP to 8472 is not peeled: worker 0");

        let mut settings = WireSettings {
            wire: pacstap_wire::WireConfig::default(),
            defrag: DefragConfig {
                memory: 1 << 20,
                ..DefragConfig::default()
            },
        };
        settings.wire.vxlan_ports.push(8472);
        shared.publish_wire(settings.clone());
        // Worker 1 does not read: its channel (capacity 1) fills with the switch's flush.
        d.push(&raw(2, &outer), now);
        assert_eq!(d.sharder.wire.vxlan_ports, [4789, 8472]);
        assert_eq!(d.defrag.as_ref().unwrap().config().memory, 1 << 20);
        assert_eq!(d.lanes[1].batch.frames.len(), 1, "now sharded by the inner flow");
        assert_eq!(d.lanes[1].batch.frames[0].seq, 2);
        // The frame before the switch went out under the old settings.
        let before = rxs[0].try_recv().unwrap();
        assert_eq!((before.frames.len(), before.frames[0].seq), (1, 1));
        assert_eq!(before.wire, None);
        d.flush();
        let after = rxs[0].try_recv().unwrap();
        assert_eq!(after.wire.as_ref(), Some(&settings), "worker 0's next batch");
        // Worker 1's channel held the switch's (empty) batch, so its batch with frame 2 was
        // dropped: the settings stay due and ride on the next batch delivered.
        let b1 = rxs[1].try_recv().unwrap();
        assert_eq!((b1.frames.len(), b1.wire.as_ref()), (0, None));
        assert_eq!(shared.pipeline_drops(), vec![0, 1]);
        assert_eq!(d.lanes[1].wire.as_ref(), Some(&settings));
        d.flush();
        let b1 = rxs[1].try_recv().unwrap();
        assert_eq!((b1.frames.len(), b1.wire.as_ref()), (0, Some(&settings)));
        assert!(d.lanes[1].wire.is_none());
        d.push(&raw(3, &outer), now);
        d.flush();
        let b1 = rxs[1].try_recv().unwrap();
        assert_eq!((b1.frames.len(), b1.wire), (1, None), "once");

        // The worker side: a shard given the batch's settings decodes the inner TCP.
        let mut shard = crate::shard::FlowShard::new(Default::default(), Default::default());
        let mut events = Vec::new();
        shard.frame(&raw(1, &outer), &mut events);
        assert_eq!((shard.stats().wire.vxlan, shard.stats().wire.tcp), (0, 0));
        shard.set_wire_config(settings.wire);
        shard.frame(&raw(2, &outer), &mut events);
        assert_eq!((shard.stats().wire.vxlan, shard.stats().wire.tcp), (1, 1));
    }
}
