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
//!   of that ring are counted ([`FlowEvidence::frames_omitted`]), so the pcap is honest about
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
//! (flow slots, hash index, free list, eviction tombstones; hash tables estimated from their
//! capacity as hashbrown lays them out). The number of flows is capped so that the tables at
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
//! [`FlowEvidence::resumed_after_eviction`], with what it lost counted in its `frames_omitted` and
//! `payload_bytes_omitted`. The ring remembers the last few thousand evicted flows for this; one
//! evicted longer ago comes back as a new flow.
//!
//! # Cost
//!
//! O(1) amortised per frame: one hash lookup (FlowIds are already hashes: a seeded multiply,
//! not SipHash), an intrusive LRU list move, one or two `memcpy`s. In the steady state nothing is
//! allocated per frame: the head buffer grows by doubling up to its cap, the tail ring reuses its
//! buffer; allocation happens per new (or resumed) flow. Measured with
//! `cargo bench --bench throughput -- evidence` (release, best of three on the shared 2-core build
//! VM, default limits, 1 M frames of 1514 bytes with 1460 of payload, flows round-robin):
//! 40 flows that fit the budget (mostly tail-ring frames) **55–60 ns/frame**; 1000 flows that would
//! each hold ~1.3 MB, so the budget evicts all the time (the worst case: cache-cold buffers,
//! malloc/free) **120–150 ns/frame**; 1000 flows, headers only **75–85 ns/frame**. Round-robin over
//! many flows makes every frame a cache miss, as real interleaved traffic does.
//!
//! # Threads
//!
//! One ring per worker thread, fed with the frames that worker owns. On an alert, each ring
//! [`snapshot`](EvidenceRing::snapshot)s the alert's flows into owned [`EvidencePackets`] (which
//! are `Send`), and [`write_evidence_pcap`] merges them by time into one file.

use crate::evidence::{write_pcap_header, write_record, PCAP_SNAPLEN};
use pacstap_core::{FlowId, Timestamp};
use pacstap_safefile::{open_private, Existing, Kind};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

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

    fn header_bytes(&self) -> usize {
        self.max_header_bytes.min(PCAP_SNAPLEN as usize)
    }

    /// Every head record is at most a record header plus the kept headers, and the payload in all
    /// of them together is at most the cap.
    fn head_max(&self) -> usize {
        let payload = usize::try_from(self.max_payload_per_flow).unwrap_or(usize::MAX);
        self.head_frames
            .saturating_mul(REC + self.header_bytes())
            .saturating_add(payload)
    }

    fn tail_max(&self) -> usize {
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

/// Per flow, what its evidence holds and what it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEvidence {
    pub flow: FlowId,
    /// Frames in the snapshot.
    pub frames_kept: u64,
    /// Frames seen but not in the snapshot (tail ring overflow, or lost to an eviction).
    pub frames_omitted: u64,
    /// Payload bytes seen but not kept.
    pub payload_bytes_omitted: u64,
    /// [`EvidenceRing::end_flow`] was called for it.
    pub ended: bool,
    /// The flow was evicted earlier and seen again: its first frames are not the connection's.
    pub resumed_after_eviction: bool,
    /// Which buffer of the flow this came from (new after an eviction), and how many frames it
    /// had been offered: pass both to [`EvidenceRing::snapshot_since`] to get only later frames.
    pub epoch: u64,
    pub seen: u64,
}

/// One kept frame, borrowed from an [`EvidencePackets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidencePacket<'a> {
    pub flow: FlowId,
    pub ts: Timestamp,
    pub linktype: u32,
    /// The frame's length on the wire (≥ `data.len()`: the difference was not kept).
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// Owned copies of some flows' kept frames (one allocation for all the bytes), to hand to the
/// thread that writes the evidence file. Frames are per flow in capture order, not merged by time:
/// [`write_evidence_pcap`] does that.
#[derive(Debug, Clone, Default)]
pub struct EvidencePackets {
    bytes: Vec<u8>,
    packets: Vec<PacketEntry>,
    flows: Vec<FlowEvidence>,
}

#[derive(Debug, Clone, Copy)]
struct PacketEntry {
    flow: FlowId,
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    start: usize,
    len: usize,
}

impl EvidencePackets {
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The flows found, with what they lack. A flow asked for but not held is absent.
    pub fn flows(&self) -> &[FlowEvidence] {
        &self.flows
    }

    pub fn iter(&self) -> impl Iterator<Item = EvidencePacket<'_>> + '_ {
        self.packets.iter().map(|p| EvidencePacket {
            flow: p.flow,
            ts: p.ts,
            linktype: p.linktype,
            orig_len: p.orig_len,
            data: self
                .bytes
                .get(p.start..p.start.saturating_add(p.len))
                .unwrap_or_default(),
        })
    }

    /// Move `other`'s packets and flows in (e.g. several workers' snapshots of one alert).
    pub fn append(&mut self, mut other: EvidencePackets) {
        let base = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.packets.extend(other.packets.into_iter().map(|mut p| {
            p.start += base;
            p
        }));
        self.flows.append(&mut other.flows);
    }

    fn push(&mut self, flow: FlowId, h: RecHeader, data_from: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.bytes.len();
        if data_from(&mut self.bytes) {
            self.packets.push(PacketEntry {
                flow,
                ts: Timestamp(h.ts),
                linktype: h.linktype,
                orig_len: h.orig_len,
                start,
                len: self.bytes.len() - start,
            });
        } else {
            self.bytes.truncate(start);
        }
    }
}

/// Bounded per-flow packet store for live evidence. See the module docs.
pub struct EvidenceRing {
    limits: RingLimits,
    head_max: usize,
    tail_max: usize,
    max_flows: usize,
    tomb_cap: usize,
    index: HashMap<FlowId, u32, IdHash>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Most and least recently touched slots (intrusive list through `Slot::prev/next`).
    mru: u32,
    lru: u32,
    live: usize,
    /// Sum of the live flows' `FlowBuf::counted`.
    data_bytes: usize,
    /// [`EvidenceRing::table_bytes`], refreshed whenever a table may have grown.
    table_bytes: usize,
    /// Recently evicted flows → what they lost, so a resumed flow reports it.
    tombs: HashMap<FlowId, Tomb, IdHash>,
    tomb_order: VecDeque<(FlowId, u64)>,
    tomb_seq: u64,
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

const NIL: u32 = u32::MAX;
/// Record header inside the flow buffers: ts (i64), orig_len, linktype, caplen (u32 each), LE.
const REC: usize = 24;
/// First allocation of a flow buffer: a short flow (a login) fits without regrowing.
const MIN_ALLOC: usize = 1024;
/// Per flow, an upper bound of the table bytes besides its `Slot`: index (≤ 2.3 buckets × 17 B),
/// free list (≤ 2 × 4 B), tombstones (≤ 2.3 × 33 B + 2 × 16 B): ~155 B. See the module docs.
const TABLE_BYTES_PER_FLOW: usize = 192;
/// Evicted flows remembered for [`FlowEvidence::resumed_after_eviction`].
const MAX_TOMBSTONES: usize = 4096;

#[derive(Default)]
struct FlowBuf {
    /// The first frames: records (header + bytes) back to back.
    head: Vec<u8>,
    /// Records in `head`.
    head_frames: u64,
    /// Frames that went through the head rule; past `RingLimits::head_frames` the tail takes
    /// over. Set past it for a resumed flow.
    head_seen: u64,
    /// The latest frames' headers, oldest first, same encoding.
    tail: VecDeque<u8>,
    tail_frames: u64,
    payload_kept: u64,
    frames_omitted: u64,
    payload_omitted: u64,
    ended: bool,
    resumed: bool,
    /// `heap_bytes()` as last added to the ring's total.
    counted: usize,
    /// Frames offered to this buffer (kept or not): the next frame's number.
    seen: u64,
    /// Which buffer this is: a flow evicted and seen again gets a new epoch, and its numbers
    /// start over.
    epoch: u64,
}

struct Slot {
    id: FlowId,
    prev: u32,
    next: u32,
    buf: FlowBuf,
}

struct Tomb {
    frames_lost: u64,
    payload_lost: u64,
    seq: u64,
}

/// What one `push` left out, for the ring's totals.
#[derive(Default)]
struct Pushed {
    frames_omitted: u64,
    payload_omitted: u64,
}

impl EvidenceRing {
    pub fn new(limits: RingLimits) -> Self {
        let limits = RingLimits {
            budget_bytes: limits.budget_bytes.max(RingLimits::MIN_BUDGET),
            ..limits
        };
        let per_flow = std::mem::size_of::<Slot>() + TABLE_BYTES_PER_FLOW;
        let max_flows = limits
            .max_flows
            .min(limits.budget_bytes / 2 / per_flow)
            .clamp(1, NIL as usize - 1);
        EvidenceRing {
            limits,
            head_max: limits.head_max(),
            tail_max: limits.tail_max(),
            max_flows,
            tomb_cap: max_flows.min(MAX_TOMBSTONES),
            index: HashMap::with_hasher(IdHash::new()),
            slots: Vec::new(),
            free: Vec::new(),
            mru: NIL,
            lru: NIL,
            live: 0,
            data_bytes: 0,
            table_bytes: 0,
            tombs: HashMap::with_hasher(IdHash::new()),
            tomb_order: VecDeque::new(),
            tomb_seq: 0,
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
        let idx = match self.index.get(&flow) {
            Some(&i) => {
                self.touch(i);
                Some(i)
            }
            None => self.insert(flow),
        };
        let Some(slot) = idx.and_then(|i| self.slots.get_mut(i as usize)) else {
            // No memory for a new flow's slot.
            self.stats.frames_omitted += 1;
            self.stats.payload_bytes_omitted += payload_len.min(frame.len()) as u64;
            return;
        };
        let pushed = slot.buf.push(
            &self.limits,
            self.head_max,
            self.tail_max,
            Frame {
                ts,
                linktype,
                data: frame,
                orig_len,
                payload_len,
            },
        );
        self.stats.frames_omitted += pushed.frames_omitted;
        self.stats.payload_bytes_omitted += pushed.payload_omitted;
        self.recount(idx.unwrap_or(NIL));
        self.enforce_budget();
    }

    /// The flow ended (FIN / RST / timeout): it stays until the budget evicts it, but its
    /// buffers give back their slack.
    pub fn end_flow(&mut self, flow: FlowId) {
        let Some(&i) = self.index.get(&flow) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.buf.ended = true;
            slot.buf.head.shrink_to_fit();
            slot.buf.tail.shrink_to_fit();
        }
        self.recount(i);
    }

    /// Whether the ring holds frames of `flow`.
    pub fn contains(&self, flow: FlowId) -> bool {
        self.index.contains_key(&flow)
    }

    /// Owned copies of the kept frames of those of `flows` this ring holds (duplicates ignored).
    /// Does not count as touching them. Costs at most the ring's own size.
    pub fn snapshot(&self, flows: &[FlowId]) -> EvidencePackets {
        let wants: Vec<(FlowId, u64, u64)> = flows.iter().map(|&f| (f, 0, 0)).collect();
        self.snapshot_since(&wants)
    }

    /// As [`EvidenceRing::snapshot`], but per `(flow, epoch, seen)` only the frames after the
    /// first `seen` of that buffer — what a previous snapshot (whose [`FlowEvidence`] gave
    /// `epoch` and `seen`) did not have, so a file can grow by appending. A flow whose buffer is
    /// not of that epoch any more (evicted and seen again) comes whole.
    pub fn snapshot_since(&self, wants: &[(FlowId, u64, u64)]) -> EvidencePackets {
        let mut wants = wants.to_vec();
        wants.sort_unstable();
        wants.dedup_by_key(|w| w.0);
        let found: Vec<(FlowId, &FlowBuf, u64)> = wants
            .iter()
            .filter_map(|&(id, epoch, seen)| {
                let slot = self.index.get(&id).and_then(|&i| self.slots.get(i as usize))?;
                let skip = if slot.buf.epoch == epoch { seen } else { 0 };
                Some((slot.id, &slot.buf, skip))
            })
            .collect();
        let mut out = EvidencePackets::default();
        let bytes: usize = found.iter().map(|(_, b, _)| b.head.len() + b.tail.len()).sum();
        let frames: u64 = found.iter().map(|(_, b, _)| b.head_frames + b.tail_frames).sum();
        out.bytes.reserve(bytes);
        out.packets.reserve(usize::try_from(frames).unwrap_or(0));
        for (id, buf, skip) in found {
            buf.copy_into(id, &mut out, skip);
        }
        out
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            flows: self.live,
            bytes_held: self.bytes_held(),
            ..self.stats
        }
    }

    fn bytes_held(&self) -> usize {
        self.data_bytes.saturating_add(self.table_bytes)
    }

    /// Heap held by the tables, from their capacities. Computed when they change (a new or an
    /// evicted flow), not per frame.
    fn table_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + map_bytes(self.index.capacity(), std::mem::size_of::<(FlowId, u32)>())
            + map_bytes(self.tombs.capacity(), std::mem::size_of::<(FlowId, Tomb)>())
            + self.tomb_order.capacity() * std::mem::size_of::<(FlowId, u64)>()
    }

    /// Bring slot `i`'s share of `data_bytes` up to date with its buffers' capacities.
    fn recount(&mut self, i: u32) {
        if let Some(slot) = self.slots.get_mut(i as usize) {
            let now = slot.buf.heap_bytes();
            self.data_bytes = self.data_bytes.saturating_sub(slot.buf.counted).saturating_add(now);
            slot.buf.counted = now;
        }
    }

    fn enforce_budget(&mut self) {
        while self.bytes_held() > self.limits.budget_bytes && self.evict_lru() {}
    }

    /// A slot for a new flow (evicting the least recently touched one at the flow cap); None
    /// only if memory for the tables cannot be had.
    fn insert(&mut self, id: FlowId) -> Option<u32> {
        if self.live >= self.max_flows {
            self.evict_lru();
        }
        self.index.try_reserve(1).ok()?;
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
        let slot = Slot {
            id,
            prev: NIL,
            next: NIL,
            buf,
        };
        let i = match self.free.pop() {
            Some(i) => {
                *self.slots.get_mut(i as usize)? = slot;
                i
            }
            None => {
                let len = self.slots.len();
                if len == self.slots.capacity() {
                    let target = (len * 2).max(16).min(self.max_flows).max(len + 1);
                    self.slots.try_reserve_exact(target - len).ok()?;
                }
                self.slots.push(slot);
                u32::try_from(len).ok()?
            }
        };
        self.index.insert(id, i);
        self.push_front(i);
        self.live += 1;
        self.table_bytes = self.table_bytes();
        Some(i)
    }

    /// Drop the least recently touched flow. False when there is none.
    fn evict_lru(&mut self) -> bool {
        let i = self.lru;
        if i == NIL {
            return false;
        }
        self.unlink(i);
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return false;
        };
        let buf = std::mem::take(&mut slot.buf);
        let id = slot.id;
        self.index.remove(&id);
        self.data_bytes = self.data_bytes.saturating_sub(buf.counted);
        self.live -= 1;
        if self.free.len() == self.free.capacity() {
            // Bounded like the slots; if even that fails, the slot is merely not reused.
            let _ = self.free.try_reserve(1);
        }
        if self.free.len() < self.free.capacity() {
            self.free.push(i);
        }
        let lost = buf.head_frames + buf.tail_frames;
        self.stats.flows_evicted += 1;
        self.stats.frames_evicted += lost;
        self.remember_evicted(
            id,
            Tomb {
                frames_lost: lost + buf.frames_omitted,
                payload_lost: buf.payload_kept + buf.payload_omitted,
                seq: 0,
            },
        );
        self.table_bytes = self.table_bytes();
        true
    }

    fn remember_evicted(&mut self, id: FlowId, mut tomb: Tomb) {
        if self.tomb_cap == 0 {
            return;
        }
        while self.tomb_order.len() >= self.tomb_cap {
            let Some((old, seq)) = self.tomb_order.pop_front() else {
                break;
            };
            if self.tombs.get(&old).is_some_and(|t| t.seq == seq) {
                self.tombs.remove(&old);
            }
        }
        self.tomb_seq += 1;
        if self.tombs.try_reserve(1).is_ok() && self.tomb_order.try_reserve(1).is_ok() {
            tomb.seq = self.tomb_seq;
            self.tomb_order.push_back((id, tomb.seq));
            self.tombs.insert(id, tomb);
        }
    }

    fn touch(&mut self, i: u32) {
        if self.mru != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let Some((prev, next)) = self.slots.get(i as usize).map(|s| (s.prev, s.next)) else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.mru = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.lru = prev,
        }
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.mru;
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = old;
        }
        match self.slots.get_mut(old as usize) {
            Some(o) => o.prev = i,
            None => self.lru = i,
        }
        self.mru = i;
    }
}

/// One frame as offered to [`FlowBuf::push`].
struct Frame<'a> {
    ts: Timestamp,
    linktype: u32,
    data: &'a [u8],
    orig_len: u32,
    payload_len: usize,
}

impl FlowBuf {
    fn heap_bytes(&self) -> usize {
        self.head.capacity() + self.tail.capacity()
    }

    fn push(&mut self, lim: &RingLimits, head_max: usize, tail_max: usize, f: Frame<'_>) -> Pushed {
        let seq = u32::try_from(self.seen).unwrap_or(u32::MAX);
        self.seen += 1;
        let payload = f.payload_len.min(f.data.len());
        let headers = f.data.len() - payload;
        let hdr_kept = headers.min(lim.header_bytes());
        let orig_len = u32::try_from(f.data.len()).unwrap_or(u32::MAX).max(f.orig_len);
        let mut out = Pushed::default();
        if self.head_seen < lim.head_frames as u64 {
            self.head_seen += 1;
            let room = lim.max_payload_per_flow.saturating_sub(self.payload_kept);
            // Payload only right behind complete headers: a cut header has nothing after it.
            let take = if hdr_kept == headers {
                usize::try_from((payload as u64).min(room)).unwrap_or(0)
            } else {
                0
            };
            let kept = (hdr_kept + take).min(PCAP_SNAPLEN as usize);
            let take = kept.saturating_sub(hdr_kept);
            let Some(bytes) = f.data.get(..kept) else {
                return self.omit(payload);
            };
            if !reserve_vec(&mut self.head, REC + kept, head_max) {
                return self.omit(payload);
            }
            let h = RecHeader {
                ts: f.ts.0,
                orig_len,
                linktype: f.linktype,
                caplen: kept as u32,
                seq,
            };
            self.head.extend_from_slice(&h.encode());
            self.head.extend_from_slice(bytes);
            self.head_frames += 1;
            self.payload_kept += take as u64;
            out.payload_omitted = (payload - take) as u64;
            if self.head_seen == lim.head_frames as u64 && self.head.capacity() - self.head.len() > self.head.len() / 4
            {
                // Head complete: give back the doubling slack (once per flow).
                self.head.shrink_to_fit();
            }
        } else {
            out.payload_omitted = payload as u64;
            if lim.tail_frames == 0 {
                out.frames_omitted = 1;
            } else {
                if self.tail_frames >= lim.tail_frames as u64 {
                    self.pop_tail();
                    out.frames_omitted = 1;
                }
                let bytes = f.data.get(..hdr_kept).unwrap_or_default();
                if reserve_deque(&mut self.tail, REC + hdr_kept, tail_max) {
                    let h = RecHeader {
                        ts: f.ts.0,
                        orig_len,
                        linktype: f.linktype,
                        caplen: hdr_kept as u32,
                        seq,
                    };
                    self.tail.extend(h.encode().iter());
                    self.tail.extend(bytes.iter());
                    self.tail_frames += 1;
                } else {
                    out.frames_omitted += 1;
                }
            }
        }
        self.frames_omitted += out.frames_omitted;
        self.payload_omitted += out.payload_omitted;
        out
    }

    /// A frame that could not be kept at all.
    fn omit(&mut self, payload: usize) -> Pushed {
        self.frames_omitted += 1;
        self.payload_omitted += payload as u64;
        Pushed {
            frames_omitted: 1,
            payload_omitted: payload as u64,
        }
    }

    /// Drop the oldest tail record.
    fn pop_tail(&mut self) {
        let (a, b) = self.tail.as_slices();
        let mut caplen = [0u8; 4];
        if !deque_read(a, b, 16, &mut caplen) {
            self.tail.clear();
            self.tail_frames = 0;
            return;
        }
        let n = (REC + u32::from_le_bytes(caplen) as usize).min(self.tail.len());
        self.tail.drain(..n);
        self.tail_frames = self.tail_frames.saturating_sub(1);
    }

    /// Copies the records numbered `skip` and later (all: 0).
    fn copy_into(&self, id: FlowId, out: &mut EvidencePackets, skip: u64) {
        let mut kept = 0;
        let mut off = 0;
        while let Some(h) = self.head.get(off..off + REC).map(RecHeader::decode) {
            let data = off + REC..off + REC + h.caplen as usize;
            let Some(bytes) = self.head.get(data.clone()) else {
                break;
            };
            if u64::from(h.seq) >= skip {
                out.push(id, h, |dst| {
                    dst.extend_from_slice(bytes);
                    true
                });
                kept += 1;
            }
            off = data.end;
        }
        let (a, b) = self.tail.as_slices();
        let mut off = 0;
        let mut raw = [0u8; REC];
        while deque_read(a, b, off, &mut raw) {
            let h = RecHeader::decode(&raw);
            let start = off + REC;
            let len = h.caplen as usize;
            if u64::from(h.seq) >= skip {
                out.push(id, h, |dst| deque_copy(a, b, start, len, dst));
                kept += 1;
            }
            off = start + len;
        }
        out.flows.push(FlowEvidence {
            flow: id,
            frames_kept: kept,
            frames_omitted: self.frames_omitted,
            payload_bytes_omitted: self.payload_omitted,
            ended: self.ended,
            resumed_after_eviction: self.resumed,
            epoch: self.epoch,
            seen: self.seen,
        });
    }
}

/// The fixed header of a record in a flow buffer.
#[derive(Debug, Clone, Copy)]
struct RecHeader {
    ts: i64,
    orig_len: u32,
    linktype: u32,
    caplen: u32,
    /// The frame's number within its flow buffer (saturating), for cuts that only add what is
    /// new ([`EvidenceRing::snapshot_since`]).
    seq: u32,
}

impl RecHeader {
    fn encode(&self) -> [u8; REC] {
        let mut b = [0u8; REC];
        // Constant ranges within a fixed array: checked at compile time, no panic path.
        b[0..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..12].copy_from_slice(&self.orig_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.linktype.to_le_bytes());
        b[16..20].copy_from_slice(&self.caplen.to_le_bytes());
        b[20..24].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> RecHeader {
        fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
            b.get(at..at + N).and_then(|s| s.try_into().ok()).unwrap_or([0; N])
        }
        RecHeader {
            ts: i64::from_le_bytes(le(b, 0)),
            orig_len: u32::from_le_bytes(le(b, 8)),
            linktype: u32::from_le_bytes(le(b, 12)),
            caplen: u32::from_le_bytes(le(b, 16)),
            seq: u32::from_le_bytes(le(b, 20)),
        }
    }
}

/// Make room for `extra` more bytes, doubling but never past `bound` (unless `extra` needs it),
/// so a flow's capacity stays within its own maximum. False: no memory.
fn reserve_vec(v: &mut Vec<u8>, extra: usize, bound: usize) -> bool {
    let need = v.len().saturating_add(extra);
    if need <= v.capacity() {
        return true;
    }
    let target = v.capacity().saturating_mul(2).max(MIN_ALLOC).min(bound).max(need);
    v.try_reserve_exact(target - v.len()).is_ok()
}

fn reserve_deque(d: &mut VecDeque<u8>, extra: usize, bound: usize) -> bool {
    let need = d.len().saturating_add(extra);
    if need <= d.capacity() {
        return true;
    }
    let target = d.capacity().saturating_mul(2).max(MIN_ALLOC).min(bound).max(need);
    d.try_reserve_exact(target - d.len()).is_ok()
}

/// Read `dst.len()` bytes at logical offset `at` of a deque given as its two slices.
fn deque_read(a: &[u8], b: &[u8], at: usize, dst: &mut [u8]) -> bool {
    // Fast path, no allocation: the range lies in one slice.
    let end = at.saturating_add(dst.len());
    if let Some(s) = a.get(at..end) {
        dst.copy_from_slice(s);
        return true;
    }
    if let Some(s) = at.checked_sub(a.len()).and_then(|s| b.get(s..s + dst.len())) {
        dst.copy_from_slice(s);
        return true;
    }
    // Straddling the two slices: rare (once per wrap of the ring), so a small allocation is fine.
    let mut tmp = Vec::new();
    if deque_copy(a, b, at, dst.len(), &mut tmp) && tmp.len() == dst.len() {
        dst.copy_from_slice(&tmp);
        return true;
    }
    false
}

/// Append `len` bytes at logical offset `start` of a deque given as its two slices.
fn deque_copy(a: &[u8], b: &[u8], start: usize, len: usize, dst: &mut Vec<u8>) -> bool {
    let end = start.saturating_add(len);
    if end > a.len() + b.len() {
        return false;
    }
    if start < a.len() {
        dst.extend_from_slice(a.get(start..end.min(a.len())).unwrap_or_default());
    }
    if end > a.len() {
        let s = start.max(a.len()) - a.len();
        dst.extend_from_slice(b.get(s..end - a.len()).unwrap_or_default());
    }
    true
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

/// What [`write_evidence_pcap`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcapWritten {
    pub path: PathBuf,
    /// The file's link type: that of most frames (a legacy pcap holds one).
    pub linktype: u32,
    pub frames: u64,
    /// Frames of another link type, left out.
    pub skipped_linktype: u64,
    /// Distinct flows in the file.
    pub flows: usize,
    /// Sum of the flows' `frames_omitted`: frames seen but not in the file.
    pub frames_omitted: u64,
}

/// Add `parts` (merged by timestamp) to the end of the pcap at `path`, creating it (mode 0600,
/// header with the frames' most common link type) when it does not exist yet. Live evidence
/// grows its files this way: each cut brings only the frames the previous cuts did not have
/// ([`EvidenceRing::snapshot_since`]), so a file never loses packets when the ring forgets a
/// flow later. Frames of another link type than the file's are left out (counted). A symbolic
/// link at `path` is refused.
pub fn append_evidence_pcap(path: &Path, parts: &[EvidencePackets]) -> io::Result<PcapWritten> {
    let mut frames: Vec<EvidencePacket<'_>> = parts.iter().flat_map(EvidencePackets::iter).collect();
    frames.sort_by_key(|p| p.ts); // stable
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        pacstap_safefile::create_private_dir(dir)?;
    }
    // One open, never through a link, checked on the descriptor (owner, one link, regular):
    // what is checked is what is written. The header is read through the same descriptor.
    let mut file = open_private(path, Existing::Append, Kind::Regular)?;
    let existing = file.metadata()?.len() >= PCAP_HEADER_LEN;
    let linktype = if existing {
        read_pcap_linktype(&mut file)?
    } else {
        // Empty (new) or shorter than a header (a cut that died mid-header): start afresh.
        file.set_len(0)?;
        majority_linktype(&frames)
    };
    let mut written = PcapWritten::for_parts(path, linktype, parts);
    let mut w = BufWriter::new(file);
    if !existing {
        write_pcap_header(&mut w, linktype)?;
    }
    write_frames(&mut w, &frames, &mut written)?;
    let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_data()?;
    Ok(written)
}

impl PcapWritten {
    /// The counts of a file about to get `parts`' frames (frames written: none yet).
    fn for_parts(path: &Path, linktype: u32, parts: &[EvidencePackets]) -> PcapWritten {
        let mut flows: Vec<(FlowId, u64)> = parts
            .iter()
            .flat_map(|p| p.flows.iter().map(|f| (f.flow, f.frames_omitted)))
            .collect();
        flows.sort_unstable();
        flows.dedup_by_key(|f| f.0);
        PcapWritten {
            path: path.to_owned(),
            linktype,
            flows: flows.len(),
            frames_omitted: flows.iter().map(|f| f.1).sum(),
            ..PcapWritten::default()
        }
    }
}

/// The records of `frames` of the file's link type (others counted as skipped).
fn write_frames(
    w: &mut impl std::io::Write,
    frames: &[EvidencePacket<'_>],
    written: &mut PcapWritten,
) -> io::Result<()> {
    for p in frames {
        if p.linktype != written.linktype {
            written.skipped_linktype += 1;
            continue;
        }
        let data = p.data.get(..PCAP_SNAPLEN as usize).unwrap_or(p.data);
        write_record(w, p.ts, data, (p.orig_len as usize).max(data.len()))?;
        written.frames += 1;
    }
    Ok(())
}

/// Length of the legacy pcap global header.
const PCAP_HEADER_LEN: u64 = 24;

/// The link type in the global header of a (little-endian, as written here) pcap file.
/// Reads at offset 0 without moving the (append-mode) descriptor.
fn read_pcap_linktype(file: &mut std::fs::File) -> io::Result<u32> {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; PCAP_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    let field = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if field(0) != Some(0xa1b2_c3d4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a pcap file written by pacstap",
        ));
    }
    field(20).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short pcap header"))
}

/// Write `parts` (snapshots of one alert's flows, e.g. from several workers' rings) merged by
/// timestamp into one legacy pcap at `path`, mode 0600 (the payload is patient data), creating
/// the directory if needed. The file is written beside `path` and renamed over it, so a reader
/// never sees half a file and a re-write for an updated alert replaces it whole, and the mode is
/// 0600 even if an older file at `path` had another. Frames of equal time keep their order.
pub fn write_evidence_pcap(path: &Path, parts: &[EvidencePackets]) -> io::Result<PcapWritten> {
    let mut frames: Vec<EvidencePacket<'_>> = parts.iter().flat_map(EvidencePackets::iter).collect();
    frames.sort_by_key(|p| p.ts); // stable
    let linktype = majority_linktype(&frames);

    pacstap_safefile::create_private_dir(&pacstap_safefile::parent_dir(path))?;
    let mut written = PcapWritten::for_parts(path, linktype, parts);
    // A fresh temporary (random name, created exclusively, 0600), renamed over `path`.
    pacstap_safefile::write_atomic(path, |w| {
        write_pcap_header(w, linktype)?;
        write_frames(w, &frames, &mut written)
    })?;
    Ok(written)
}

/// The link type most frames have (Ethernet when there are none).
fn majority_linktype(frames: &[EvidencePacket<'_>]) -> u32 {
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for p in frames {
        match counts.iter_mut().find(|c| c.0 == p.linktype) {
            Some(c) => c.1 += 1,
            None => counts.push((p.linktype, 1)),
        }
    }
    counts.iter().max_by_key(|c| c.1).map_or(1, |c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_capture::{PacketSource, PcapFileSource};
    use std::collections::HashSet;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;

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
        assert!(st.bytes_held >= MIN_ALLOC + std::mem::size_of::<Slot>(), "{st:?}");
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
