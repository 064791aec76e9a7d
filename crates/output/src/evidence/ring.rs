//! Live evidence: the packets of recent flows, kept in bounded memory, so that `capture` can write
//! an alert's evidence pcap (CONTRACT `--evidence-dir`) without the second pass over the input
//! that `replay` uses ([`crate::EvidencePlan`]). A live interface cannot be read twice, so every
//! flow's packets must be kept *before* anyone knows which flows an alert will name.
//!
//! # What is kept, per flow
//!
//! * The first [`RingLimits::head_frames`] frames: headers (link + IP + TCP: the frame minus its
//!   TCP payload) always, payload up to [`RingLimits::max_payload_per_flow`] bytes for the whole
//!   flow, both directions together — the same cap as the replay writer
//!   (`evidence.max_payload_bytes_per_flow`). That beginning is what identifies an incident: the
//!   association (AE titles, user identity), the first commands, the HTTP request.
//! * After those, only the headers of the most recent [`RingLimits::tail_frames`] frames: a 2 GB
//!   C-STORE is ~1.4 M frames, and even its headers alone would be ~100 MB. Frames that fall out
//!   of that ring are counted ([`FlowEvidence::frames_omitted`](super::FlowEvidence::frames_omitted)), so the pcap is honest about
//!   the hole (Wireshark also shows it as "previous segment not captured").
//! * Headers longer than [`RingLimits::max_header_bytes`] are cut there (and that frame's payload
//!   dropped): a frame the decoder could not split keeps its start only.
//!
//! Every kept record carries the frame's length on the wire, so a reader shows a cut payload as
//! cut (`frame.cap_len < frame.len`), never as a short frame.
//!
//! Unlike replay, payload after the first `head_frames` frames is not kept even when the cap has
//! room left (a long association's later commands are headers only): a per-frame ring of
//! variable-size payload records would make the tail's memory depend on traffic, not on limits.
//!
//! # Memory bound
//!
//! All memory of an [`EvidenceRing`] is counted, by *capacity*: per flow its two buffers (each
//! grown at most to its own maximum: [`RingLimits::max_flow_bytes`] for both), plus the tables
//! (the flow map and the eviction tombstones, both `hashlink::LinkedHashMap`s: their hash tables
//! estimated from their capacity as hashbrown lays them out, their nodes counted at their
//! high-water mark, since hashlink keeps removed nodes for reuse). The number of flows is capped so that the tables at
//! their largest take at most half of [`RingLimits::budget_bytes`]; whenever the total exceeds
//! the budget, the least recently touched flows are evicted (counted) until it does not. So after
//! every call, [`RingStats::bytes_held`] ≤ the budget, and `bytes_held` is the heap the ring
//! really holds, up to allocator rounding. A flow whose buffers alone exceed the rest of the
//! budget evicts itself: size the budget at several times [`RingLimits::max_flow_bytes`]
//! (defaults: 64 MiB against ~1.6 MB; a flow that used its whole payload cap holds ~1.3 MB, so
//! ~50 such flows, or thousands of small ones, fit).
//!
//! Flows that ended stay until the budget evicts them (an alert often fires right as its flow
//! ends); [`EvidenceRing::end_flow`] only gives their slack capacity back. A flow that is evicted
//! and then seen again has lost its beginning for good; it is kept from then on as recent headers
//! only (its payload cap counts as spent: payload from its middle would only push other flows'
//! beginnings out, and under pressure get it evicted again), marked
//! [`FlowEvidence::resumed_after_eviction`](super::FlowEvidence::resumed_after_eviction), with what it lost counted in its `frames_omitted` and
//! `payload_bytes_omitted`. The ring remembers the last few thousand evicted flows for this; one
//! evicted longer ago comes back as a new flow.
//!
//! # Cost
//!
//! O(1) amortised per frame: one hash lookup (FlowIds are already hashes: a seeded multiply,
//! not SipHash) that also moves the flow to the back of the LRU order (`hashlink`'s
//! `LinkedHashMap::to_back`: the flow table's own LRU crate, issue 11 item 5, rather than a
//! hand-kept slab and list), one or two `memcpy`s. In the steady state nothing is
//! allocated per frame: the head buffer grows by doubling up to its cap, the tail ring reuses its
//! buffer; allocation happens per new (or resumed) flow. Measured with
//! `cargo bench --bench throughput -- evidence` (release, best of three on the shared 2-core build
//! VM, default limits, 1 M frames of 1514 bytes with 1460 of payload, flows round-robin):
//! 40 flows that fit the budget (mostly tail-ring frames) **55–60 ns/frame**; 1000 flows that would
//! each hold ~1.3 MB, so the budget evicts all the time (the worst case: cache-cold buffers,
//! malloc/free) **120–150 ns/frame**; 1000 flows, headers only **75–85 ns/frame**. Round-robin over
//! many flows makes every frame a cache miss, as real interleaved traffic does. Those figures are
//! of the earlier hand-kept slab and intrusive list. The `hashlink` map that replaced it was
//! measured against it by running both test binaries alternately, three times each, on the same
//! VM at load 10–14 (absolute figures meaningless there, the ratios less so): evicting, no
//! slower (300–400 vs 357–412 ns); 40 flows, 15–40 % slower (177–228 vs 136–212 ns); headers
//! only, 20–50 % slower (239–314 vs 200–213 ns): a hash probe that dereferences the node to
//! compare keys, where the slab's index held them inline.
//!
//! # Threads
//!
//! One ring per worker thread, fed with the frames that worker owns. On an alert, each ring
//! [`snapshot`](EvidenceRing::snapshot)s the alert's flows into owned [`EvidencePackets`] (which
//! are `Send`), and [`write_evidence_pcap`] merges them by time into one file.

use super::flow_buf::{FlowBuf, Frame, REC};
use super::packets::EvidencePackets;
use super::pcap_writer::PCAP_SNAPLEN;
use hashlink::LinkedHashMap;
use pacstap_core::{FlowId, Timestamp};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// How much an [`EvidenceRing`] keeps. A zero frame or byte limit means "none"; the budget is
/// at least [`RingLimits::MIN_BUDGET`] and the flow cap at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    /// Payload bytes kept per flow (both directions), as the replay writer's cap: config
    /// `evidence.max_payload_bytes_per_flow`.
    pub max_payload_per_flow: u64,
    /// Frames kept from the start of each flow (headers, and payload within the cap).
    pub head_frames: usize,
    /// After those, the most recent frames kept (headers only).
    pub tail_frames: usize,
    /// Header bytes kept per frame (Ethernet + 2 VLAN tags + IPv6 + TCP with options is ~130).
    pub max_header_bytes: usize,
    /// Everything the ring holds: packets and its own tables. Per ring, i.e. per worker thread.
    pub budget_bytes: usize,
    /// Flows held at once (further capped so the tables fit in half the budget).
    pub max_flows: usize,
}

impl Default for RingLimits {
    fn default() -> Self {
        RingLimits {
            // pacstap-detect's `EvidenceSettings::default().max_payload_bytes_per_flow`.
            max_payload_per_flow: 1 << 20,
            // Covers the cap's worth of full-size segments (~725) with their ACKs.
            head_frames: 2048,
            tail_frames: 1024,
            max_header_bytes: 256,
            budget_bytes: 64 << 20,
            max_flows: 65_536,
        }
    }
}

impl RingLimits {
    /// The smallest budget used: below it the ring's own tables could not fit beside one flow.
    pub const MIN_BUDGET: usize = 64 << 10;

    /// The most one flow's buffers can hold (before allocator rounding).
    pub fn max_flow_bytes(&self) -> usize {
        self.head_max().saturating_add(self.tail_max())
    }

    pub(super) fn header_bytes(&self) -> usize {
        self.max_header_bytes.min(PCAP_SNAPLEN as usize)
    }

    /// Every head record is at most a record header plus the kept headers, and the payload in all
    /// of them together is at most the cap.
    pub(super) fn head_max(&self) -> usize {
        let payload = usize::try_from(self.max_payload_per_flow).unwrap_or(usize::MAX);
        self.head_frames
            .saturating_mul(REC + self.header_bytes())
            .saturating_add(payload)
    }

    pub(super) fn tail_max(&self) -> usize {
        self.tail_frames.saturating_mul(REC + self.header_bytes())
    }
}

/// What an [`EvidenceRing`] holds and has let go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Flows held now.
    pub flows: usize,
    /// Heap bytes held now (capacity, tables included); at most `budget_bytes`.
    pub bytes_held: usize,
    pub budget_bytes: usize,
    /// Frames offered to [`EvidenceRing::record`].
    pub frames_recorded: u64,
    /// Flows evicted by the budget or the flow cap.
    pub flows_evicted: u64,
    /// Frames that were held by evicted flows.
    pub frames_evicted: u64,
    /// Frames not kept at all: fell out of a tail ring (or no memory for them).
    pub frames_omitted: u64,
    /// Payload bytes not kept (beyond the per-flow cap, or in the header-only tail).
    pub payload_bytes_omitted: u64,
}

/// Bounded per-flow packet store for live evidence. See the module docs.
pub struct EvidenceRing {
    limits: RingLimits,
    head_max: usize,
    tail_max: usize,
    max_flows: usize,
    tomb_cap: usize,
    /// The flows, least recently touched first (hashlink: one hash table of pointers to nodes
    /// that form the LRU list; a touch moves a node to the back, eviction pops the front).
    flows: LinkedHashMap<FlowId, FlowBuf, IdHash>,
    /// Nodes `flows` has allocated: hashlink keeps a removed entry's node for reuse until the
    /// map is dropped, so this is the high-water mark of its length, plus its guard node.
    flow_nodes: usize,
    /// Sum of the live flows' `FlowBuf::counted`.
    data_bytes: usize,
    /// [`EvidenceRing::table_bytes`], refreshed whenever a table may have grown.
    table_bytes: usize,
    /// Recently evicted flows → what they lost, so a resumed flow reports it; oldest first,
    /// at most `tomb_cap`.
    tombs: LinkedHashMap<FlowId, Tomb, IdHash>,
    /// As `flow_nodes`, for `tombs`.
    tomb_nodes: usize,
    /// Flow buffers created so far (the last one's [`FlowBuf::epoch`]).
    epochs: u64,
    stats: RingStats,
}

impl std::fmt::Debug for EvidenceRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceRing")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Per flow, an upper bound of the table bytes besides its node: index (≤ 2.3 buckets × 9 B),
/// tombstones (a 40 B node + 2.3 × 9 B): ~82 B, rounded up as the slab-based table it replaces
/// was sized (its value bounds the flow count, which the defaults leave at `max_flows`).
const TABLE_BYTES_PER_FLOW: usize = 192;
/// Evicted flows remembered for [`FlowEvidence::resumed_after_eviction`](super::FlowEvidence::resumed_after_eviction).
const MAX_TOMBSTONES: usize = 4096;

/// What an evicted flow lost, for when it is seen again.
struct Tomb {
    frames_lost: u64,
    payload_lost: u64,
}

/// Heap bytes of one hashlink node holding `(K, V)`: the entry and two links (hashlink 0.12
/// `Node { entry: MaybeUninit<(K, V)>, links: Links }`, each node its own allocation).
const fn node_bytes<K, V>() -> usize {
    std::mem::size_of::<(K, V)>() + 2 * std::mem::size_of::<usize>()
}

impl EvidenceRing {
    pub fn new(limits: RingLimits) -> Self {
        let limits = RingLimits {
            budget_bytes: limits.budget_bytes.max(RingLimits::MIN_BUDGET),
            ..limits
        };
        let per_flow = node_bytes::<FlowId, FlowBuf>() + TABLE_BYTES_PER_FLOW;
        let max_flows = limits
            .max_flows
            .min(limits.budget_bytes / 2 / per_flow)
            .clamp(1, u32::MAX as usize - 1);
        EvidenceRing {
            limits,
            head_max: limits.head_max(),
            tail_max: limits.tail_max(),
            max_flows,
            tomb_cap: max_flows.min(MAX_TOMBSTONES),
            flows: LinkedHashMap::with_hasher(IdHash::new()),
            flow_nodes: 0,
            data_bytes: 0,
            table_bytes: 0,
            tombs: LinkedHashMap::with_hasher(IdHash::new()),
            tomb_nodes: 0,
            epochs: 0,
            stats: RingStats {
                budget_bytes: limits.budget_bytes,
                ..RingStats::default()
            },
        }
    }

    /// The limits in force (the budget raised to [`RingLimits::MIN_BUDGET`] if it was below).
    pub fn limits(&self) -> &RingLimits {
        &self.limits
    }

    /// Keep (what the limits allow of) one frame of `flow`. `payload_len` is its TCP payload as
    /// captured (`Packet::payload.len()`, as replay passes it), taken as the last `payload_len`
    /// bytes of `frame` (clamped to the frame: a larger value makes the whole frame payload).
    /// Ethernet padding after a tiny segment thus counts as header, so up to 5 payload bytes of
    /// such a segment are kept past the cap, as in replay. `orig_len` is the frame's length on
    /// the wire (`RawFrame::orig_len`; raised to `frame.len()` if smaller).
    pub fn record(
        &mut self,
        flow: FlowId,
        ts: Timestamp,
        linktype: u32,
        frame: &[u8],
        orig_len: u32,
        payload_len: usize,
    ) {
        self.stats.frames_recorded += 1;
        let (limits, head_max, tail_max) = (self.limits, self.head_max, self.tail_max);
        // Into the flow's buffer; returns what was left out and the buffer's heap before/after.
        let push = |buf: &mut FlowBuf| {
            let pushed = buf.push(
                &limits,
                head_max,
                tail_max,
                Frame {
                    ts,
                    linktype,
                    data: frame,
                    orig_len,
                    payload_len,
                },
            );
            let before = buf.counted;
            buf.counted = buf.heap_bytes();
            (pushed, before, buf.counted)
        };
        // A known flow: one lookup that also makes it the most recently touched.
        let mut outcome = self.flows.to_back(&flow).map(push);
        if outcome.is_none() && self.insert(flow) {
            outcome = self.flows.to_back(&flow).map(push);
        }
        let Some((pushed, before, after)) = outcome else {
            // No memory for a new flow's table entry.
            self.stats.frames_omitted += 1;
            self.stats.payload_bytes_omitted += payload_len.min(frame.len()) as u64;
            return;
        };
        self.stats.frames_omitted += pushed.frames_omitted;
        self.stats.payload_bytes_omitted += pushed.payload_omitted;
        self.data_bytes = self.data_bytes.saturating_sub(before).saturating_add(after);
        self.enforce_budget();
    }

    /// The flow ended (FIN / RST / timeout): it stays until the budget evicts it, but its
    /// buffers give back their slack. Not a touch: its place in the eviction order stays.
    pub fn end_flow(&mut self, flow: FlowId) {
        let Some(buf) = self.flows.get_mut(&flow) else {
            return;
        };
        buf.ended = true;
        buf.head.shrink_to_fit();
        buf.tail.shrink_to_fit();
        let before = buf.counted;
        buf.counted = buf.heap_bytes();
        self.data_bytes = self.data_bytes.saturating_sub(before).saturating_add(buf.counted);
    }

    /// Whether the ring holds frames of `flow`.
    pub fn contains(&self, flow: FlowId) -> bool {
        self.flows.contains_key(&flow)
    }

    /// Owned copies of the kept frames of those of `flows` this ring holds (duplicates ignored).
    /// Does not count as touching them. Costs at most the ring's own size.
    pub fn snapshot(&self, flows: &[FlowId]) -> EvidencePackets {
        let wants: Vec<(FlowId, u64, u64)> = flows.iter().map(|&f| (f, 0, 0)).collect();
        self.snapshot_since(&wants)
    }

    /// As [`EvidenceRing::snapshot`], but per `(flow, epoch, seen)` only the frames after the
    /// first `seen` of that buffer — what a previous snapshot (whose [`FlowEvidence`](super::FlowEvidence) gave
    /// `epoch` and `seen`) did not have, so a file can grow by appending. A flow whose buffer is
    /// not of that epoch any more (evicted and seen again) comes whole.
    pub fn snapshot_since(&self, wants: &[(FlowId, u64, u64)]) -> EvidencePackets {
        let mut wants = wants.to_vec();
        wants.sort_unstable();
        wants.dedup_by_key(|w| w.0);
        let found: Vec<(FlowId, &FlowBuf, u64)> = wants
            .iter()
            .filter_map(|&(id, epoch, seen)| {
                let buf = self.flows.get(&id)?;
                let skip = if buf.epoch == epoch { seen } else { 0 };
                Some((id, buf, skip))
            })
            .collect();
        let mut out = EvidencePackets::default();
        let bytes: usize = found.iter().map(|(_, b, _)| b.head.len() + b.tail.len()).sum();
        let frames: u64 = found.iter().map(|(_, b, _)| b.head_frames + b.tail_frames).sum();
        out.reserve(bytes, usize::try_from(frames).unwrap_or(0));
        for (id, buf, skip) in found {
            buf.copy_into(id, &mut out, skip);
        }
        out
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            flows: self.flows.len(),
            bytes_held: self.bytes_held(),
            ..self.stats
        }
    }

    fn bytes_held(&self) -> usize {
        self.data_bytes.saturating_add(self.table_bytes)
    }

    /// Heap held by the tables, from their capacities and node counts. Computed when they
    /// change (a new or an evicted flow), not per frame.
    fn table_bytes(&self) -> usize {
        let pointer = std::mem::size_of::<usize>();
        map_bytes(self.flows.capacity(), pointer)
            + self.flow_nodes * node_bytes::<FlowId, FlowBuf>()
            + map_bytes(self.tombs.capacity(), pointer)
            + self.tomb_nodes * node_bytes::<FlowId, Tomb>()
    }

    fn enforce_budget(&mut self) {
        while self.bytes_held() > self.limits.budget_bytes && self.evict_lru() {}
    }

    /// An entry for a new flow (evicting the least recently touched one at the flow cap); false
    /// only if memory for the table cannot be had.
    fn insert(&mut self, id: FlowId) -> bool {
        if self.flows.len() >= self.max_flows {
            self.evict_lru();
        }
        if self.flows.try_reserve(1).is_err() {
            return false;
        }
        self.epochs += 1;
        let mut buf = FlowBuf {
            epoch: self.epochs,
            ..FlowBuf::default()
        };
        if let Some(t) = self.tombs.remove(&id) {
            // Its beginning is gone; payload from its middle would only push other flows'
            // beginnings out (and, under pressure, get it evicted again): recent headers only.
            buf.frames_omitted = t.frames_lost;
            buf.payload_omitted = t.payload_lost;
            buf.head_seen = u64::MAX;
            buf.resumed = true;
        }
        self.flows.insert(id, buf);
        // The guard node comes with the first entry.
        self.flow_nodes = self.flow_nodes.max(self.flows.len() + 1);
        self.table_bytes = self.table_bytes();
        true
    }

    /// Drop the least recently touched flow. False when there is none.
    fn evict_lru(&mut self) -> bool {
        let Some((id, buf)) = self.flows.pop_front() else {
            return false;
        };
        self.data_bytes = self.data_bytes.saturating_sub(buf.counted);
        let lost = buf.head_frames + buf.tail_frames;
        self.stats.flows_evicted += 1;
        self.stats.frames_evicted += lost;
        self.remember_evicted(
            id,
            Tomb {
                frames_lost: lost + buf.frames_omitted,
                payload_lost: buf.payload_kept + buf.payload_omitted,
            },
        );
        self.table_bytes = self.table_bytes();
        true
    }

    fn remember_evicted(&mut self, id: FlowId, tomb: Tomb) {
        if self.tomb_cap == 0 {
            return;
        }
        // An id evicted before moves to the back with what it lost this time.
        self.tombs.remove(&id);
        while self.tombs.len() >= self.tomb_cap {
            if self.tombs.pop_front().is_none() {
                break;
            }
        }
        if self.tombs.try_reserve(1).is_ok() {
            self.tombs.insert(id, tomb);
            self.tomb_nodes = self.tomb_nodes.max(self.tombs.len() + 1);
        }
    }
}

/// hashbrown's allocation for a table of this capacity: buckets (a power of two, ≥ 8/7 of the
/// capacity) × (entry + control byte) + one group of control bytes. An upper bound.
fn map_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity.saturating_mul(8) / 7 + 1)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX);
    buckets.saturating_mul(entry + 1).saturating_add(16)
}

/// Hashing for [`FlowId`]s, which are already FNV hashes of the 5-tuple and a nanosecond time: a
/// seeded 128-bit multiply folds their bits together (the index uses both the low and the high
/// bits), at a fraction of SipHash's cost on the per-frame path. Seeded per ring, so crafted
/// ids do not collide the same way on every run.
#[derive(Clone)]
struct IdHash {
    seed: u64,
}

impl IdHash {
    fn new() -> Self {
        IdHash {
            seed: RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.seed)
    }
}

struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, x: u64) {
        let p = u128::from(self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(chunk) {
                *d = *s;
            }
            self.mix(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::flow_buf::MIN_ALLOC;
    use super::super::{append_evidence_pcap, write_evidence_pcap};
    use super::*;
    use pacstap_capture::{PacketSource, PcapFileSource};
    use std::collections::HashSet;
    use std::collections::{HashMap, VecDeque};
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    const HDR: usize = 54;

    /// A frame: `HDR` header bytes of `tag`, then `payload` bytes counting up.
    fn frame(tag: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![tag; HDR];
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    fn limits() -> RingLimits {
        RingLimits {
            max_payload_per_flow: 250,
            head_frames: 4,
            tail_frames: 3,
            max_header_bytes: 64,
            budget_bytes: 1 << 20,
            max_flows: 1000,
        }
    }

    fn rec(r: &mut EvidenceRing, flow: u64, ts: i64, f: &[u8], payload: usize) {
        r.record(FlowId(flow), Timestamp(ts), 1, f, f.len() as u32, payload);
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pacstap-ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A file grown by appending only what each cut did not have holds every frame once, in
    /// order, even after the ring forgot the flow; a flow seen again after its eviction comes
    /// whole (its new buffer's numbers start over).
    #[test]
    fn evidence_ring_snapshots_since_a_cut_append_only_new_frames() {
        let lim = RingLimits {
            max_flows: 2,
            ..limits()
        };
        let mut r = EvidenceRing::new(lim);
        for ts in 0..3 {
            rec(&mut r, 1, ts, &frame(ts as u8, 10), 10);
        }
        let dir = tempdir("append-since");
        let path = dir.join("incident.pcap");
        let first = r.snapshot(&[FlowId(1)]);
        let fe = first.flows()[0];
        assert_eq!((fe.frames_kept, fe.seen), (3, 3));
        assert_eq!(append_evidence_pcap(&path, &[first]).unwrap().frames, 3);
        // Three more frames, then a cut of what is new: 3 (two in the head, one in the tail).
        for ts in 3..6 {
            rec(&mut r, 1, ts, &frame(ts as u8, 10), 10);
        }
        let second = r.snapshot_since(&[(FlowId(1), fe.epoch, fe.seen)]);
        let ts: Vec<i64> = second.iter().map(|p| p.ts.0).collect();
        assert_eq!(ts, [3, 4, 5]);
        assert_eq!(append_evidence_pcap(&path, &[second]).unwrap().frames, 3);
        // Nothing new: nothing to add.
        let fe = r.snapshot(&[FlowId(1)]).flows()[0];
        assert!(r.snapshot_since(&[(FlowId(1), fe.epoch, fe.seen)]).is_empty());
        // The ring forgets flow 1 (two newer flows); the file keeps what it had.
        rec(&mut r, 2, 10, &frame(20, 10), 10);
        rec(&mut r, 3, 11, &frame(21, 10), 10);
        assert!(!r.contains(FlowId(1)));
        rec(&mut r, 1, 12, &frame(12, 10), 10);
        let third = r.snapshot_since(&[(FlowId(1), fe.epoch, fe.seen)]);
        assert_eq!(
            third.iter().map(|p| p.ts.0).collect::<Vec<_>>(),
            [12],
            "a new epoch: whole"
        );
        append_evidence_pcap(&path, &[third]).unwrap();
        let mut src = PcapFileSource::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(f) = src.next_frame() {
            got.push(f.data[0]); // each frame's header bytes are its tag
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 12]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A symbolic link planted at the path is refused.
        let link = dir.join("link.pcap");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(append_evidence_pcap(&link, &[r.snapshot(&[FlowId(1)])]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn evidence_ring_caps_payload_per_flow_across_frames() {
        let mut r = EvidenceRing::new(limits());
        let f = frame(7, 100);
        for ts in 0..4 {
            rec(&mut r, 1, ts, &f, 100);
        }
        let s = r.snapshot(&[FlowId(1)]);
        let lens: Vec<usize> = s.iter().map(|p| p.data.len()).collect();
        assert_eq!(lens, [HDR + 100, HDR + 100, HDR + 50, HDR]);
        assert!(s.iter().all(|p| p.orig_len == (HDR + 100) as u32));
        // The kept payload is the frame's start, not its end.
        let third = s.iter().nth(2).unwrap();
        assert_eq!(third.data, &f[..HDR + 50]);
        assert_eq!(s.flows()[0].payload_bytes_omitted, 150);
        assert_eq!(s.flows()[0].frames_omitted, 0);
        assert_eq!(r.stats().payload_bytes_omitted, 150);
    }

    #[test]
    fn evidence_ring_keeps_head_then_a_ring_of_headers() {
        let mut r = EvidenceRing::new(limits());
        for ts in 0..10 {
            rec(&mut r, 1, ts, &frame(ts as u8, 10), 10);
        }
        let s = r.snapshot(&[FlowId(1)]);
        let ts: Vec<i64> = s.iter().map(|p| p.ts.0).collect();
        assert_eq!(ts, [0, 1, 2, 3, 7, 8, 9]);
        for p in s.iter().skip(4) {
            assert_eq!(p.data, &frame(p.ts.0 as u8, 0)[..], "tail frames are headers only");
            assert_eq!(p.orig_len, (HDR + 10) as u32);
        }
        let fe = s.flows()[0];
        assert_eq!((fe.frames_kept, fe.frames_omitted), (7, 3));
        assert_eq!(fe.payload_bytes_omitted, 60);
        assert_eq!(r.stats().frames_omitted, 3);
    }

    #[test]
    fn evidence_ring_cuts_long_headers_and_clamps_payload_len() {
        let mut r = EvidenceRing::new(limits());
        // 100 bytes of "headers" (over the 64 kept), 20 of payload: cut at 64, no payload.
        let f = vec![3u8; 120];
        rec(&mut r, 1, 0, &f, 20);
        // payload_len beyond the frame: all of it is payload.
        rec(&mut r, 1, 1, &[9u8; 30], 1000);
        rec(&mut r, 1, 2, &[], 0);
        r.record(FlowId(1), Timestamp(3), 1, &[1u8; 60], 0, 6); // orig_len too small: raised
        let s = r.snapshot(&[FlowId(1), FlowId(1), FlowId(2)]);
        let got: Vec<(usize, u32)> = s.iter().map(|p| (p.data.len(), p.orig_len)).collect();
        assert_eq!(got, [(64, 120), (30, 30), (0, 0), (60, 60)]);
        assert_eq!(s.flows().len(), 1);
    }

    #[test]
    fn evidence_ring_evicts_least_recently_touched_first() {
        let lim = RingLimits {
            max_flows: 3,
            ..limits()
        };
        let mut r = EvidenceRing::new(lim);
        let f = frame(0, 10);
        for id in 1..=3 {
            rec(&mut r, id, id as i64, &f, 10);
        }
        rec(&mut r, 1, 10, &f, 10); // 2 is now the least recently touched
        r.end_flow(FlowId(3)); // ending is not touching
        rec(&mut r, 4, 11, &f, 10);
        assert!(!r.contains(FlowId(2)));
        assert!(r.contains(FlowId(1)) && r.contains(FlowId(3)) && r.contains(FlowId(4)));
        rec(&mut r, 5, 12, &f, 10);
        assert!(!r.contains(FlowId(3)), "ended flows age out like the others");
        let st = r.stats();
        assert_eq!((st.flows, st.flows_evicted, st.frames_evicted), (3, 2, 2));
        // Seen again after eviction: a fresh record that says so.
        rec(&mut r, 2, 13, &f, 10);
        let s = r.snapshot(&[FlowId(2)]);
        assert_eq!(s.len(), 1);
        assert!(s.flows()[0].resumed_after_eviction);
        assert_eq!(s.flows()[0].frames_omitted, 1);
        // Its beginning is gone: recent headers only, and the payload it lost is counted.
        assert_eq!(s.iter().next().unwrap().data, &f[..HDR]);
        assert_eq!(s.flows()[0].payload_bytes_omitted, 20);
    }

    #[test]
    fn evidence_ring_budget_evicts_and_keeps_ended_flows_until_then() {
        let lim = RingLimits {
            max_payload_per_flow: 10_000,
            head_frames: 100,
            tail_frames: 0,
            budget_bytes: 256 << 10,
            ..limits()
        };
        let mut r = EvidenceRing::new(lim);
        let f = frame(1, 1000);
        for i in 0..10 {
            rec(&mut r, 1, i, &f, 1000);
        }
        r.end_flow(FlowId(1));
        let after_end = r.stats().bytes_held;
        let mut evicted_at = None;
        for flow in 2..200u64 {
            for i in 0..10 {
                rec(&mut r, flow, flow as i64 * 100 + i, &f, 1000);
                assert!(r.stats().bytes_held <= lim.budget_bytes);
            }
            if evicted_at.is_none() && !r.contains(FlowId(1)) {
                evicted_at = Some(flow);
            }
        }
        let evicted_at = evicted_at.expect("the budget must evict");
        assert!(
            evicted_at > 10,
            "flow 1 stayed while there was room (evicted at {evicted_at})"
        );
        assert!(after_end >= 10 * (HDR + 1000 + REC));
        // Held flows are exactly the most recently touched ones.
        let held: Vec<u64> = (2..200).filter(|f| r.contains(FlowId(*f))).collect();
        assert!(!held.is_empty());
        assert_eq!(held, (200 - held.len() as u64..200).collect::<Vec<_>>());
        let st = r.stats();
        assert_eq!(st.flows, held.len());
        assert_eq!(st.flows_evicted, 199 - held.len() as u64);
    }

    #[test]
    fn evidence_ring_tiny_budget_still_holds() {
        let mut r = EvidenceRing::new(RingLimits {
            budget_bytes: 100,
            ..RingLimits::default()
        });
        assert_eq!(r.limits().budget_bytes, RingLimits::MIN_BUDGET);
        for i in 0..10_000u64 {
            rec(&mut r, i % 300, i as i64, &frame(1, 1460), 1460);
            assert!(r.stats().bytes_held <= RingLimits::MIN_BUDGET);
        }
        assert!(r.stats().flows >= 1);
    }

    #[test]
    fn evidence_ring_accounts_capacity_not_length() {
        let mut r = EvidenceRing::new(RingLimits::default());
        rec(&mut r, 1, 0, &frame(0, 0), 0);
        let st = r.stats();
        // One 74-byte record, but the first buffer allocation and the tables are counted.
        assert!(st.bytes_held >= MIN_ALLOC + node_bytes::<FlowId, FlowBuf>(), "{st:?}");
        let empty = EvidenceRing::new(RingLimits::default()).stats();
        assert_eq!(empty.bytes_held, 0);
    }

    /// What a flow's snapshot must hold, by the rules in the module docs, kept the plain way.
    #[derive(Default)]
    struct Model {
        head: Vec<(i64, u32, u32, Vec<u8>)>,
        tail: VecDeque<(i64, u32, u32, Vec<u8>)>,
        payload_kept: u64,
        omitted: u64,
        /// Seen again after an eviction: tail only.
        resumed: bool,
    }

    impl Model {
        fn record(&mut self, lim: &RingLimits, ts: i64, lt: u32, frame: &[u8], orig: u32, payload: usize) {
            let payload = payload.min(frame.len());
            let headers = frame.len() - payload;
            let hdr = headers.min(lim.max_header_bytes);
            let orig = orig.max(frame.len() as u32);
            if !self.resumed && self.head.len() < lim.head_frames {
                let take = if hdr == headers {
                    (payload as u64).min(lim.max_payload_per_flow - self.payload_kept) as usize
                } else {
                    0
                };
                self.payload_kept += take as u64;
                self.head.push((ts, orig, lt, frame[..hdr + take].to_vec()));
            } else if lim.tail_frames == 0 {
                self.omitted += 1;
            } else {
                if self.tail.len() == lim.tail_frames {
                    self.tail.pop_front();
                    self.omitted += 1;
                }
                self.tail.push_back((ts, orig, lt, frame[..hdr].to_vec()));
            }
        }
    }

    /// Random frames, flows, payload lengths, limits: the budget holds after every call; each
    /// held flow's snapshot is exactly what the rules keep (caps, head, ring, omitted counts); the
    /// held flows are the most recently touched ones; nothing panics.
    #[test]
    fn evidence_ring_random_frames_never_exceed_the_budget() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n.max(1)
        };
        let buf: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
        // That the rounds exercise what they check: evictions, ring overflow, resumed flows.
        let (mut evictions, mut overflowed, mut resumed, mut compared) = (0, 0, 0, 0);
        for round in 0..40 {
            let lim = RingLimits {
                max_payload_per_flow: rnd(5000),
                head_frames: rnd(64) as usize,
                tail_frames: rnd(64) as usize,
                max_header_bytes: rnd(300) as usize,
                budget_bytes: 16_384 + rnd(400_000) as usize,
                max_flows: 1 + rnd(300) as usize,
            };
            let mut r = EvidenceRing::new(lim);
            let flows = 1 + rnd(400);
            // Per flow, what it must hold as a new flow, and as a resumed one (whether the ring
            // still remembers the eviction is its business: its flag picks the model).
            let mut models: HashMap<u64, [Model; 2]> = HashMap::new();
            let mut evicted: HashSet<u64> = HashSet::new();
            let mut touched: Vec<u64> = Vec::new();
            for i in 0..3000 {
                let flow = rnd(flows);
                if rnd(50) == 0 {
                    r.end_flow(FlowId(flow));
                    continue;
                }
                let len = rnd(buf.len() as u64 + 1) as usize;
                let payload = rnd(len as u64 + 200) as usize;
                let orig = rnd(4000) as u32;
                let lt = if rnd(100) == 0 { 101 } else { 1 };
                if !r.contains(FlowId(flow)) && models.remove(&flow).is_some() {
                    evicted.insert(flow);
                }
                r.record(FlowId(flow), Timestamp(i), lt, &buf[..len], orig, payload);
                let m = models.entry(flow).or_insert_with(|| {
                    [
                        Model::default(),
                        Model {
                            resumed: true,
                            ..Model::default()
                        },
                    ]
                });
                for m in m.iter_mut() {
                    m.record(&lim, i, lt, &buf[..len], orig, payload);
                }
                touched.retain(|f| *f != flow);
                touched.push(flow);
                let st = r.stats();
                assert!(
                    st.bytes_held <= r.limits().budget_bytes,
                    "round {round} frame {i}: {st:?} {lim:?}"
                );
            }
            evictions += r.stats().flows_evicted;
            let held: Vec<u64> = touched.iter().copied().filter(|f| r.contains(FlowId(*f))).collect();
            assert_eq!(held, touched[touched.len() - held.len()..], "round {round}: not LRU");
            assert_eq!(r.stats().flows, held.len());

            let ids: Vec<FlowId> = (0..flows).map(FlowId).collect();
            let s = r.snapshot(&ids);
            let held_bytes: usize = s.iter().map(|p| p.data.len() + REC).sum();
            assert!(held_bytes <= r.stats().bytes_held);
            assert_eq!(s.flows().len(), held.len());
            for fe in s.flows() {
                let got: Vec<_> = s
                    .iter()
                    .filter(|p| p.flow == fe.flow)
                    .map(|p| (p.ts.0, p.orig_len, p.linktype, p.data.to_vec()))
                    .collect();
                let m = &models[&fe.flow.0][usize::from(fe.resumed_after_eviction)];
                let want: Vec<_> = m.head.iter().chain(m.tail.iter()).cloned().collect();
                assert!(
                    got == want,
                    "round {round} flow {}: snapshot differs from the rules",
                    fe.flow.0
                );
                assert_eq!(fe.frames_kept, want.len() as u64);
                compared += 1;
                overflowed += u64::from(m.omitted > 0);
                resumed += u64::from(fe.resumed_after_eviction);
                if !evicted.contains(&fe.flow.0) {
                    assert_eq!(fe.frames_omitted, m.omitted, "round {round} flow {}", fe.flow.0);
                    assert!(!fe.resumed_after_eviction);
                } else {
                    assert!(fe.frames_omitted >= m.omitted);
                }
            }
        }
        assert!(evictions > 100 && overflowed > 10 && resumed > 10 && compared > 1000);
        eprintln!("evictions {evictions}, overflowed {overflowed}, resumed {resumed}, compared {compared}");
    }

    #[test]
    fn evidence_ring_writes_two_rings_merged_by_time_mode_0600() {
        let dir = tempdir("merge");
        let path = dir.join("incident.pcap");
        // An older file with a lax mode is replaced, not reused.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        let mut a = EvidenceRing::new(limits());
        let mut b = EvidenceRing::new(limits());
        for i in 0..6i64 {
            let f = frame(i as u8, 100);
            // Worker A has flow 1 at even microseconds, worker B flow 2 at odd ones.
            let ring = if i % 2 == 0 { &mut a } else { &mut b };
            let flow = if i % 2 == 0 { 1 } else { 2 };
            ring.record(FlowId(flow), Timestamp(i * 1000), 1, &f, 2000, 100);
        }
        let ids = [FlowId(1), FlowId(2)];
        let parts = [a.snapshot(&ids), b.snapshot(&ids)];
        assert_eq!((parts[0].len(), parts[1].len()), (3, 3));
        let w = write_evidence_pcap(&path, &parts).unwrap();
        assert_eq!((w.frames, w.flows, w.linktype, w.skipped_linktype), (6, 2, 1, 0));

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut src = PcapFileSource::open(&path).unwrap();
        let mut got = Vec::new();
        while let Some(f) = src.next_frame() {
            got.push((f.ts.as_micros(), f.linktype, f.orig_len, f.data.to_vec()));
        }
        assert!(src.damage().is_none(), "{:?}", src.damage());
        // Payload cap 250: 100 + 100 + 50 for flow 1, the same for flow 2.
        let expect: Vec<_> = (0..6i64)
            .map(|i| {
                let cut = if i >= 4 { HDR + 50 } else { HDR + 100 };
                (i, 1, 2000, frame(i as u8, 100)[..cut].to_vec())
            })
            .collect();
        assert_eq!(got, expect);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn evidence_ring_pcap_keeps_the_majority_linktype_and_survives_empty() {
        let dir = tempdir("linktype");
        let mut r = EvidenceRing::new(limits());
        for i in 0..3 {
            rec(&mut r, 1, i, &frame(0, 0), 0);
        }
        r.record(FlowId(1), Timestamp(9), 113, &frame(0, 0), 54, 0);
        let w = write_evidence_pcap(&dir.join("x.pcap"), &[r.snapshot(&[FlowId(1)])]).unwrap();
        assert_eq!((w.linktype, w.frames, w.skipped_linktype), (1, 3, 1));
        let w = write_evidence_pcap(&dir.join("empty.pcap"), &[]).unwrap();
        assert_eq!(w.frames, 0);
        assert_eq!(std::fs::read(dir.join("empty.pcap")).unwrap().len(), 24);
        assert!(write_evidence_pcap(Path::new("/"), &[]).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn evidence_ring_append_merges_snapshots() {
        let mut a = EvidenceRing::new(limits());
        rec(&mut a, 1, 5, &frame(1, 3), 3);
        let mut b = EvidenceRing::new(limits());
        rec(&mut b, 2, 4, &frame(2, 4), 4);
        let mut s = a.snapshot(&[FlowId(1)]);
        s.append(b.snapshot(&[FlowId(2)]));
        let got: Vec<_> = s.iter().map(|p| (p.flow.0, p.data.to_vec())).collect();
        assert_eq!(got, [(1, frame(1, 3)), (2, frame(2, 4))]);
        assert_eq!(s.flows().len(), 2);
    }

    /// Wireshark's own reading of a cut frame: captured length below the length on the wire,
    /// no error. Skipped where tshark is not installed.
    #[test]
    fn evidence_ring_pcap_reads_in_tshark() {
        if std::process::Command::new("tshark").arg("--version").output().is_err() {
            eprintln!("tshark not installed: skipped");
            return;
        }
        let dir = tempdir("tshark");
        let path = dir.join("t.pcap");
        let mut r = EvidenceRing::new(limits());
        // A real Ethernet/IPv4/TCP frame with 200 bytes of payload; the cap keeps 0 of the second.
        let mut f = vec![0u8; 14 + 20 + 20 + 200];
        f[12] = 0x08; // EtherType IPv4
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(240u16).to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&5000u16.to_be_bytes());
        f[36..38].copy_from_slice(&104u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x18;
        rec(&mut r, 1, 1_000_000, &f, 200);
        rec(&mut r, 1, 2_000_000, &f, 200);
        write_evidence_pcap(&path, &[r.snapshot(&[FlowId(1)])]).unwrap();
        let out = std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.cap_len",
                "-e",
                "frame.len",
                "-e",
                "tcp.dstport",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows, [vec!["254", "254", "104"], vec!["104", "254", "104"]], "{text}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
