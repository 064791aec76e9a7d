//! One direction of a TCP connection, rebuilt from what a passive tap saw.
//!
//! Positions are stream offsets (`u64`, 0 = the first byte after the SYN, or the first byte seen
//! when the SYN was not). A sequence number is turned into an offset relative to `next`, the
//! next offset to deliver: `next + (seq - seq_of(next))` with the difference taken modulo 2^32 as a
//! signed 32-bit value (RFC 9293 §3.4: "all arithmetic dealing with sequence numbers must be
//! performed modulo 2**32"). Because the reference point moves with the stream, a stream can run
//! past 4 GiB and any number of sequence wraps; bytes more than 2^31 away from `next` alias, as
//! they do for TCP itself.
//!
//! Everything below `next` has been delivered (or declared lost) and is forgotten. Bytes at `next`
//! are delivered straight from the packet, so the common case copies nothing. Bytes beyond a hole
//! are copied into `pieces`, a `BTreeMap` from offset to a non-overlapping piece, coalesced with
//! its neighbours where cheap; the map is bounded by bytes and by holes, and every operation on it
//! is logarithmic, so a flood of tiny out-of-order segments costs `O(n log n)`, not `O(n²)`.
//!
//! Overlaps: the copy kept is the one the receiver's stack keeps (`in_order`): for Linux, the
//! BSDs and macOS a segment that arrives at `next` wins over the buffered bytes it covers, and
//! one beyond a hole wins over a buffered piece it starts before (or at, and is longer than);
//! for a receiver with a Windows TTL the first copy wins. Bytes seen again are counted as
//! retransmitted; if they differ from the other copy, an overlap conflict is counted, since
//! that is how evasion by overlapping segments shows itself.
//!
//! Bytes already delivered are compared too, against the last few KiB kept in a [`History`]:
//! a copy that differs from what the decoders read is an overlap conflict whichever came first.
//!
//! A hole the receiver acknowledged is not proof of loss: on a SPAN port the two directions come
//! through different queues, so a data segment often arrives just after the peer's ACK that
//! covers it. Such a hole is kept open (counted in `ack_before_data`) until its data comes
//! (`ack_before_data_filled`) or until it has waited `FlowConfig::ack_wait` of packet time,
//! `ack_wait_segments` packets of the flow, or the ACK runs `ack_wait_bytes` ahead, whichever
//! comes first; only then is it reported as a gap (`ack_gaps`). A hole is also given up when the
//! buffers for the direction or for all flows are full, when the direction has too many holes,
//! and when the flow ends.

use std::collections::BTreeMap;

use pacstap_core::{ChunkBody, CloseReason, Interest, Timestamp};

use crate::config::{FlowConfig, FlowStats};
use crate::history::History;

mod ack_wait;
mod fin;
mod held;
mod in_order;
mod syn_data;
mod urgent;
use ack_wait::AckWait;
pub(crate) use held::Doubt;
use syn_data::SynData;

/// Bytes charged against the buffer caps for each buffered piece, on top of its data.
///
/// A B-tree slot (key and value, ~40 bytes) plus the heap block header of the piece's `Vec`
/// (16 bytes with glibc malloc), rounded up: without it a flood of one-byte segments would hold
/// sixty times the memory the byte caps promise.
pub const PIECE_OVERHEAD: usize = 64;

/// How far after a late SYN the stream picked up without it may start, in bytes: a mirror
/// reorders by a few packets, not by megabytes.
const LATE_SYN_SPAN: i64 = 1 << 20;

/// Signed distance from `b` to `a` in sequence space (RFC 9293 §3.4, arithmetic modulo 2^32):
/// positive when `a` comes after `b`.
pub(crate) fn seq_delta(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// What a half-stream may change outside itself: the caps it obeys and the counters it bumps
/// (including the global buffered-bytes gauge, which the total cap is checked against).
pub(crate) struct Budget<'a> {
    pub cfg: &'a FlowConfig,
    pub stats: &'a mut FlowStats,
    /// Packet time now (the table's clock): when an acknowledged hole started waiting.
    pub now: Timestamp,
}

/// A buffered run of bytes beyond a hole.
#[derive(Debug)]
enum Piece {
    /// Captured bytes (copied out of the packet).
    Data(Vec<u8>),
    /// Bytes that were on the wire but cut off by the snaplen: known to be lost.
    Lost(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(v) => v.len() as u64,
            Piece::Lost(n) => *n,
        }
    }

    /// What this piece counts against the buffer caps.
    fn charge(&self) -> usize {
        PIECE_OVERHEAD
            + match self {
                Piece::Data(v) => v.len(),
                Piece::Lost(_) => 0,
            }
    }
}

/// A piece about to be buffered, still borrowing the packet.
#[derive(Clone, Copy)]
enum Fill<'a> {
    Data(&'a [u8]),
    Lost(u64),
}

impl Fill<'_> {
    fn len(self) -> u64 {
        match self {
            Fill::Data(d) => d.len() as u64,
            Fill::Lost(n) => n,
        }
    }

    fn data_len(self) -> usize {
        match self {
            Fill::Data(d) => d.len(),
            Fill::Lost(_) => 0,
        }
    }
}

/// One direction of a connection.
///
/// Invariants between calls: every buffered piece starts after `next` (a hole precedes each
/// island); `next <= fin` when a FIN was seen; `islands` is the number of maximal runs of
/// adjacent pieces; `charged` is the sum of the pieces' charges.
#[derive(Debug, Default)]
pub(crate) struct HalfStream {
    /// Sequence number of stream offset 0 (valid when `started`).
    base: u32,
    started: bool,
    /// Next offset to deliver; everything before it was delivered or reported lost.
    next: u64,
    pieces: BTreeMap<u64, Piece>,
    /// Bytes charged against the caps for `pieces`.
    charged: usize,
    /// Separate runs of buffered pieces, i.e. holes waiting to be filled.
    islands: usize,
    /// Offset of the FIN (RFC 9293 §3.6: the FIN takes the sequence number after the last byte).
    fin: Option<u64>,
    /// `Close(Fin)` delivered.
    closed: bool,
    /// Highest offset the other side acknowledged (never beyond the FIN).
    acked: u64,
    /// Set while `acked > next`: the acknowledged bytes have not been captured yet.
    wait: Option<AckWait>,
    /// The last bytes delivered, to compare retransmissions of them with.
    history: Option<History>,
    /// Data of the SYN that opened this direction, until the receiver is known to have taken it
    /// (`syn_data`).
    syn_data: Option<SynData>,
    /// The urgent byte to take out of what is delivered (`urgent`).
    urgent: urgent::Urgent,
    /// This direction's IP TTL, and segments held for a lower one or for starting beyond the
    /// window (`held`).
    held: held::HeldSegments,
    /// The receiver keeps what it queued out of order over an in-order segment that covers it
    /// (Windows since Vista), judged from its own packets' TTL (`in_order`).
    receiver_keeps_queued: bool,
}

impl HalfStream {
    /// Offset 0 is at `seq` (the first byte after the SYN, or the first byte seen). Only while
    /// nothing was delivered or buffered: re-basing after that would renumber the stream.
    pub fn start_at(&mut self, seq: u32) {
        // Already there (a SYN a SPAN port delivered after the SYN-ACK that announced it): keep
        // what the peer acknowledged, or the wait for those bytes would end as if they came.
        if self.started && self.base == seq {
            return;
        }
        if !self.has_data() && self.fin.is_none() {
            self.base = seq;
            self.started = true;
            self.acked = 0;
        }
    }

    /// Whether a SYN with sequence number `syn_seq` is this direction's own, delivered late: the
    /// stream was picked up without it (bytes were read from it), and starts at the byte right
    /// after it or up to [`LATE_SYN_SPAN`] bytes later (the bytes between were not captured
    /// either way). A new connection on the same ports (port reuse) starts above the old one's
    /// bytes (RFC 6191; Linux and the BSDs pick the new ISN so), never before them.
    pub fn starts_after_syn(&self, syn_seq: u32) -> bool {
        self.started && self.has_data() && (0..=LATE_SYN_SPAN).contains(&seq_delta(self.base, syn_seq.wrapping_add(1)))
    }

    /// Whether any byte was delivered or buffered (SYN data waiting for its verdict included).
    pub fn has_data(&self) -> bool {
        self.next > 0 || !self.pieces.is_empty() || self.syn_data.is_some() || !self.held.is_empty()
    }

    /// `Close(Fin)` has been delivered for this direction.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sequence number of `next`; `next as u32` is its value modulo 2^32, which is all that matters.
    pub(crate) fn next_seq(&self) -> u32 {
        self.base.wrapping_add(self.next as u32)
    }

    /// A segment: `len` bytes on the wire at `seq` (the sequence number of its first data byte),
    /// of which the first `payload.len()` were captured.
    pub fn segment<O>(&mut self, seq: u32, payload: &[u8], len: u64, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let len = len.max(payload.len() as u64);
        if !self.started {
            // Picked up mid-stream: the first payload seen is offset 0.
            self.start_at(seq);
        }
        if self.syn_data.is_some() && self.syn_data_on_segment(seq, b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        let d = seq_delta(seq, self.next_seq());
        if d == 0 && len == payload.len() as u64 && self.pieces.is_empty() && self.fin.is_none() {
            // The fast path: in order, nothing waiting, nothing cut off. Zero copy.
            if payload.is_empty() {
                return Interest::Continue;
            }
            let at = self.next;
            self.next = at.saturating_add(len);
            self.remember(at, payload, b);
            return urgent::emit(&mut self.urgent, at, ChunkBody::Data(payload), out);
        }
        // Trim what lies before `next`: already delivered (or before the stream began).
        let (skip, start) = if d < 0 {
            (d.unsigned_abs(), self.next)
        } else {
            (0, self.next.saturating_add(d.unsigned_abs()))
        };
        if skip > 0 {
            // Bytes already delivered: compare them with what was delivered, where still known.
            // Bytes before offset 0 (before the stream began) were never delivered.
            let before_start = usize::try_from(skip.saturating_sub(self.next)).unwrap_or(usize::MAX);
            let seen = usize::try_from(skip.min(len)).unwrap_or(usize::MAX).min(payload.len());
            let at = self.next.saturating_sub(skip);
            if let (Some(h), Some(old)) = (&self.history, payload.get(before_start.min(seen)..seen)) {
                if h.differs(at, old) {
                    b.stats.overlap_conflicts += 1;
                }
            }
        }
        if skip >= len {
            b.stats.retransmitted_bytes += len;
            return Interest::Continue;
        }
        b.stats.retransmitted_bytes += skip;
        let mut end = start.saturating_add(len - skip);
        if self.fin.is_some_and(|fin| end > fin && !self.closed) {
            // Bytes past a FIN the stream has not reached: no sender sends data after its own
            // FIN, and a receiver drops a queued FIN that a later segment runs past (Linux's
            // out-of-order queue drops what the new segment covers). The FIN was not the
            // sender's, or not its last word: forgotten.
            self.fin = None;
            b.stats.fin_ignored += 1;
        }
        if let Some(fin) = self.fin {
            if end > fin {
                let cut = start.max(fin);
                b.stats.bytes_after_fin += end - cut;
                end = cut;
            }
        }
        if end <= start {
            return Interest::Continue;
        }
        let data = usize::try_from(skip).ok().and_then(|s| payload.get(s..)).unwrap_or(&[]);
        let keep = usize::try_from(end - start).unwrap_or(usize::MAX).min(data.len());
        let data = data.get(..keep).unwrap_or(&[]);
        self.place(start, end, data, b, out)
    }

    /// The flow is ending: deliver everything buffered, holes as gaps, and `Close(Fin)` if the
    /// FIN was seen.
    pub fn finish<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        self.wait = None;
        // Never acknowledged, never followed: the receiver did not take it.
        self.drop_syn_data(b);
        // Nothing came instead of them: decided now.
        if self.take_held(true, b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        if self.drain(b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        loop {
            let target = match self.pieces.first_key_value() {
                Some((&s, _)) => s,
                None => match self.fin {
                    Some(fin) if !self.closed => fin,
                    _ => return Interest::Continue,
                },
            };
            if self.gap_to(target, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
    }

    /// Drop everything buffered (the handler lost interest, or the flow is going away).
    pub fn clear(&mut self, b: &mut Budget<'_>) {
        self.pieces.clear();
        let charged = self.charged;
        self.uncharge(charged, b);
        self.islands = 0;
        self.wait = None;
        // Their charges were in `charged`.
        self.syn_data = None;
        self.held = held::HeldSegments::default();
        if let Some(h) = self.history.take() {
            b.stats.history_bytes = b.stats.history_bytes.saturating_sub(h.capacity() as u64);
        }
    }

    /// Keep delivered bytes for comparison with later copies (allocated on first use, within the
    /// global budget).
    fn remember(&mut self, at: u64, data: &[u8], b: &mut Budget<'_>) {
        if self.history.is_none() {
            let cap = b.cfg.delivered_history_bytes;
            if cap == 0 || b.stats.history_bytes + cap as u64 > b.cfg.delivered_history_total as u64 {
                return;
            }
            b.stats.history_bytes += cap as u64;
            self.history = Some(History::new(cap));
        }
        if let Some(h) = self.history.as_mut() {
            h.record(at, data);
        }
    }

    /// A segment trimmed to `[start, end)` with `start >= next`, of which `data` (captured bytes)
    /// covers the beginning and the rest was cut off by the snaplen.
    fn place<O>(&mut self, start: u64, end: u64, data: &[u8], b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let mut cur = start;
        // At the delivery point the packet's captured bytes go straight to the decoders, over
        // whatever was buffered for them (`in_order`).
        let captured_end = (start + data.len() as u64).min(end);
        if cur == self.next && captured_end > cur && !self.receiver_keeps_queued {
            self.supersede(cur, captured_end, start, data, b, |_, _| true);
            if self.emit_from_packet(cur, captured_end, start, data, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
            cur = captured_end;
        }
        // Bytes the snaplen cut off (all of them, for a receiver that keeps its queue): a
        // buffered copy of them is better than a gap.
        while cur < end && cur == self.next {
            let first = self
                .pieces
                .first_key_value()
                .map(|(&s, p)| (s, s.saturating_add(p.len())));
            let lim = first.map_or(end, |(s, _)| s.max(cur).min(end));
            if lim > cur {
                if self.emit_from_packet(cur, lim, start, data, b, out) == Interest::Ignore {
                    return Interest::Ignore;
                }
                cur = lim;
            }
            if let Some((s, e)) = first {
                if s <= self.next {
                    let overlap_end = e.min(end);
                    if overlap_end > self.next {
                        b.stats.retransmitted_bytes += overlap_end - self.next;
                        self.count_conflict(self.next, overlap_end, start, data, b);
                    }
                    let Some((s, piece)) = self.pop_first(b) else { break };
                    if self.deliver_piece(s, piece, b, out) == Interest::Ignore {
                        return Interest::Ignore;
                    }
                    cur = cur.max(self.next);
                }
            }
        }
        if cur < end {
            // Beyond a hole: keep a copy until the hole is filled or given up, over the queued
            // bytes the receiver would give up for it (`in_order`).
            b.stats.out_of_order_segments += 1;
            if captured_end > cur && !self.receiver_keeps_queued {
                let wins = |s: u64, e: u64| s > start || (s == start && e < end);
                self.supersede(cur, captured_end, start, data, b, wins);
            }
            self.insert(cur, end, start, data, b);
            if self.enforce_caps(b, out) == Interest::Ignore || self.skip_acked_holes(b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        self.drain(b, out)
    }

    /// Deliver `[from, to)` of the packet (`start` is the offset of `data[0]`): captured bytes as
    /// a slice of the packet, the part the snaplen cut off as a gap.
    fn emit_from_packet<O>(
        &mut self,
        from: u64,
        to: u64,
        start: u64,
        data: &[u8],
        b: &mut Budget<'_>,
        out: &mut O,
    ) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let data_end = (start + data.len() as u64).max(from).min(to);
        if data_end > from {
            self.next = data_end;
            let bytes = slice(data, start, from, data_end);
            self.remember(from, bytes, b);
            if urgent::emit(&mut self.urgent, from, ChunkBody::Data(bytes), out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        if to > data_end {
            self.next = to;
            b.stats.gaps += 1;
            b.stats.gap_bytes += to - data_end;
            return urgent::emit(&mut self.urgent, data_end, ChunkBody::Gap(to - data_end), out);
        }
        Interest::Continue
    }

    /// Buffer the parts of `[from, end)` that no piece covers (what the segment wins over was
    /// removed by `supersede` first; what is left stays); `data`
    /// starts at offset `start`. Overlapping bytes are counted, and compared when both are captured.
    fn insert(&mut self, from: u64, end: u64, start: u64, data: &[u8], b: &mut Budget<'_>) {
        let data_end = start + data.len() as u64;
        let mut cur = from;
        while cur < end {
            let covering = self
                .pieces
                .range(..=cur)
                .next_back()
                .map(|(&s, p)| (s, s.saturating_add(p.len())))
                .filter(|&(_, e)| e > cur);
            if let Some((_, e)) = covering {
                let overlap_end = e.min(end);
                b.stats.retransmitted_bytes += overlap_end - cur;
                self.count_conflict(cur, overlap_end, start, data, b);
                cur = overlap_end;
                continue;
            }
            let fill_end = self.pieces.range(cur..).next().map_or(end, |(&s, _)| s.min(end));
            let split = data_end.max(cur).min(fill_end);
            if split > cur {
                self.put(cur, Fill::Data(slice(data, start, cur, split)), b);
            }
            if fill_end > split {
                self.put(split, Fill::Lost(fill_end - split), b);
            }
            cur = fill_end;
        }
    }

    /// Count an overlap conflict if the buffered bytes of `[from, to)` differ from the new ones
    /// (`data` starts at `start`). Only bytes captured in both copies can be compared.
    fn count_conflict(&self, from: u64, to: u64, start: u64, data: &[u8], b: &mut Budget<'_>) {
        let Some((&s, Piece::Data(old))) = self.pieces.range(..=from).next_back() else {
            return;
        };
        let new = slice(data, start, from, to);
        let old = usize::try_from(from - s).ok().and_then(|i| old.get(i..)).unwrap_or(&[]);
        let n = new.len().min(old.len());
        if new.get(..n) != old.get(..n) {
            b.stats.overlap_conflicts += 1;
        }
    }

    /// Add a piece at `at` over a range no piece covers; merge it with an adjacent piece of the
    /// same kind where that copies only the smaller side (so repeated merging stays `O(n log n)`).
    fn put(&mut self, at: u64, fill: Fill<'_>, b: &mut Budget<'_>) {
        let len = fill.len();
        if len == 0 {
            return;
        }
        let end = at + len;
        let pred = self
            .pieces
            .range(..at)
            .next_back()
            .map(|(&s, p)| (s, s.saturating_add(p.len())));
        let pred_adjacent = pred.is_some_and(|(_, e)| e == at);
        let succ_adjacent = self.pieces.contains_key(&end);
        // A new island, unless it touches one (or two, which it then joins).
        self.islands += 1;
        self.islands -= usize::from(pred_adjacent) + usize::from(succ_adjacent);

        let mut key = at;
        let mut absorbed = false;
        if let (true, Some((ps, _))) = (pred_adjacent, pred) {
            if let Some(p) = self.pieces.get_mut(&ps) {
                absorbed = match (p, fill) {
                    (Piece::Data(v), Fill::Data(d)) => {
                        v.extend_from_slice(d);
                        true
                    }
                    (Piece::Lost(n), Fill::Lost(m)) => {
                        *n += m;
                        true
                    }
                    _ => false,
                };
            }
            if absorbed {
                key = ps;
            }
        }
        if absorbed {
            self.charge(fill.data_len(), b);
        } else {
            let piece = match fill {
                Fill::Data(d) => Piece::Data(d.to_vec()),
                Fill::Lost(n) => Piece::Lost(n),
            };
            self.charge(piece.charge(), b);
            self.pieces.insert(at, piece);
        }
        if succ_adjacent {
            self.merge_successor(key, end, b);
        }
    }

    /// Append the piece at `succ` to the piece at `key` (they are adjacent) when they are the same
    /// kind and the successor is not the larger one.
    fn merge_successor(&mut self, key: u64, succ: u64, b: &mut Budget<'_>) {
        let mergeable = match (self.pieces.get(&key), self.pieces.get(&succ)) {
            (Some(Piece::Data(a)), Some(Piece::Data(s))) => s.len() <= a.len(),
            (Some(Piece::Lost(_)), Some(Piece::Lost(_))) => true,
            _ => false,
        };
        if !mergeable {
            return;
        }
        let Some(taken) = self.pieces.remove(&succ) else { return };
        if let Some(p) = self.pieces.get_mut(&key) {
            match (p, taken) {
                (Piece::Data(a), Piece::Data(s)) => a.extend_from_slice(&s),
                (Piece::Lost(a), Piece::Lost(s)) => *a += s,
                _ => {}
            }
        }
        self.uncharge(PIECE_OVERHEAD, b);
    }

    /// Remove the first piece, keeping the accounting right.
    fn pop_first(&mut self, b: &mut Budget<'_>) -> Option<(u64, Piece)> {
        let (s, p) = self.pieces.pop_first()?;
        self.uncharge(p.charge(), b);
        let e = s.saturating_add(p.len());
        if !self.pieces.contains_key(&e) {
            // That was the last piece of its island.
            self.islands = self.islands.saturating_sub(1);
        }
        Some((s, p))
    }

    /// Deliver a piece that starts at or before `next`, from `next` on.
    fn deliver_piece<O>(&mut self, s: u64, piece: Piece, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let e = s.saturating_add(piece.len());
        if e <= self.next {
            return Interest::Continue;
        }
        let skip = self.next.saturating_sub(s);
        let at = self.next;
        self.next = e;
        match piece {
            Piece::Data(v) => {
                let bytes = usize::try_from(skip).ok().and_then(|i| v.get(i..)).unwrap_or(&[]);
                self.remember(at, bytes, b);
                urgent::emit(&mut self.urgent, at, ChunkBody::Data(bytes), out)
            }
            Piece::Lost(n) => {
                let n = n - skip;
                b.stats.gaps += 1;
                b.stats.gap_bytes += n;
                urgent::emit(&mut self.urgent, at, ChunkBody::Gap(n), out)
            }
        }
    }

    /// Deliver every piece that now starts at `next`, then `Close(Fin)` if the stream reached
    /// its FIN.
    fn drain<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        while self.pieces.first_key_value().is_some_and(|(&s, _)| s <= self.next) {
            let Some((s, piece)) = self.pop_first(b) else { break };
            if self.deliver_piece(s, piece, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        self.settle_wait(b);
        if !self.closed && self.fin.is_some_and(|fin| fin <= self.next) {
            self.closed = true;
            return urgent::emit(&mut self.urgent, self.next, ChunkBody::Close(CloseReason::Fin), out);
        }
        Interest::Continue
    }

    /// Give up on the bytes between `next` and `target`: deliver a gap, then what follows.
    fn gap_to<O>(&mut self, target: u64, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let mut target = target;
        if target > self.next && !self.held.is_empty() {
            // Held copies fill the hole before it is given up (`held`).
            if self.take_held(false, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
            target = target.min(self.first_hole_end().unwrap_or(target));
        }
        if self.wait.is_some() && target >= self.acked {
            // An acknowledged hole given up (waited its time, or a cap): not filled.
            self.wait = None;
        }
        if target > self.next {
            let at = self.next;
            let len = target - at;
            self.next = target;
            b.stats.gaps += 1;
            b.stats.gap_bytes += len;
            if urgent::emit(&mut self.urgent, at, ChunkBody::Gap(len), out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        self.drain(b, out)
    }

    /// Where the first hole ends: the first buffered piece, else the FIN.
    fn first_hole_end(&self) -> Option<u64> {
        match self.pieces.first_key_value() {
            Some((&s, _)) => Some(s),
            None => self.fin.filter(|&fin| fin > self.next),
        }
    }

    /// Skip holes, oldest first, until the buffers are within their caps.
    fn enforce_caps<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        loop {
            let over_dir = self.charged > b.cfg.max_buffered_bytes_per_dir;
            let over_total = b.stats.buffered_bytes > b.cfg.max_buffered_bytes_total as u64;
            let Some((&s, _)) = self.pieces.first_key_value() else {
                return Interest::Continue;
            };
            if !(over_dir || over_total) {
                break;
            }
            b.stats.buffer_cap_hits += 1;
            if self.gap_to(s, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        while self.islands > b.cfg.max_holes_per_dir {
            let Some((&s, _)) = self.pieces.first_key_value() else {
                break;
            };
            b.stats.hole_cap_hits += 1;
            if self.gap_to(s, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        Interest::Continue
    }

    fn charge(&mut self, n: usize, b: &mut Budget<'_>) {
        self.charged += n;
        b.stats.buffered_bytes += n as u64;
    }

    fn uncharge(&mut self, n: usize, b: &mut Budget<'_>) {
        self.charged = self.charged.saturating_sub(n);
        b.stats.buffered_bytes = b.stats.buffered_bytes.saturating_sub(n as u64);
    }

    /// Panics if an invariant is broken (tests only).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        if let Some((&s, _)) = self.pieces.first_key_value() {
            assert!(s > self.next, "piece at {s} not after next {}", self.next);
        }
        assert_eq!(self.islands, count_islands(&self.pieces), "islands");
        assert_eq!(
            self.charged,
            self.pieces.values().map(Piece::charge).sum::<usize>()
                + self.syn_data.as_ref().map_or(0, SynData::charge)
                + self.held.charge(),
            "charged"
        );
        if let Some(fin) = self.fin {
            assert!(self.next <= fin);
            assert!(self.pieces.iter().all(|(&s, p)| s + p.len() <= fin));
        }
        let mut last_end = 0;
        for (&s, p) in &self.pieces {
            assert!(p.len() > 0);
            assert!(s >= last_end, "overlapping pieces");
            last_end = s + p.len();
        }
    }

    #[cfg(test)]
    pub fn buffered_pieces(&self) -> usize {
        self.pieces.len()
    }

    #[cfg(test)]
    pub fn charged(&self) -> usize {
        self.charged
    }

    #[cfg(test)]
    pub fn islands(&self) -> usize {
        self.islands
    }
}

/// Maximal runs of adjacent pieces.
fn count_islands(pieces: &BTreeMap<u64, Piece>) -> usize {
    let mut n = 0;
    let mut last_end = None;
    for (&s, p) in pieces {
        if last_end != Some(s) {
            n += 1;
        }
        last_end = Some(s.saturating_add(p.len()));
    }
    n
}

/// The captured bytes of `[from, to)`, where `data` starts at offset `start` (empty where out of
/// range, never a panic).
fn slice(data: &[u8], start: u64, from: u64, to: u64) -> &[u8] {
    let lo = usize::try_from(from.saturating_sub(start))
        .unwrap_or(usize::MAX)
        .min(data.len());
    let hi = usize::try_from(to.saturating_sub(start))
        .unwrap_or(usize::MAX)
        .min(data.len())
        .max(lo);
    data.get(lo..hi).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one half-stream and records what it delivers.
    struct Harness {
        cfg: FlowConfig,
        stats: FlowStats,
        half: HalfStream,
        /// Delivered stream: data bytes, gaps as `-`, close as `|`.
        text: Vec<u8>,
        expect_offset: u64,
    }

    impl Harness {
        fn new(cfg: FlowConfig, isn: u32) -> Self {
            let mut half = HalfStream::default();
            half.start_at(isn);
            Harness {
                cfg,
                stats: FlowStats::default(),
                half,
                text: Vec::new(),
                expect_offset: 0,
            }
        }

        fn run(
            &mut self,
            f: impl FnOnce(&mut HalfStream, &mut Budget<'_>, &mut dyn FnMut(u64, ChunkBody<'_>) -> Interest),
        ) {
            let mut b = Budget {
                cfg: &self.cfg,
                stats: &mut self.stats,
                now: Timestamp(0),
            };
            let text = &mut self.text;
            let expect = &mut self.expect_offset;
            let mut out = |at: u64, body: ChunkBody<'_>| {
                assert_eq!(at, *expect, "chunks must be contiguous");
                match body {
                    ChunkBody::Data(d) => {
                        assert!(!d.is_empty());
                        text.extend_from_slice(d);
                        *expect += d.len() as u64;
                    }
                    ChunkBody::Gap(n) => {
                        assert!(n > 0);
                        text.extend(vec![b'-'; n as usize]);
                        *expect += n;
                    }
                    ChunkBody::Close(_) => text.push(b'|'),
                }
                Interest::Continue
            };
            f(&mut self.half, &mut b, &mut out);
            self.half.check_invariants();
            assert_eq!(self.stats.buffered_bytes, self.half.charged as u64);
        }

        fn seg(&mut self, seq: u32, data: &[u8]) {
            self.run(|h, b, out| {
                let _ = h.segment(seq, data, data.len() as u64, b, out);
            });
        }

        fn text(&self) -> &str {
            std::str::from_utf8(&self.text).unwrap()
        }
    }

    #[test]
    fn seq_delta_wraps() {
        assert_eq!(seq_delta(5, 0xFFFF_FFFB), 10);
        assert_eq!(seq_delta(0xFFFF_FFFB, 5), -10);
        assert_eq!(seq_delta(0x8000_0000, 0), i64::from(i32::MIN));
    }

    #[test]
    fn adjacent_pieces_coalesce_and_islands_are_counted() {
        let mut h = Harness::new(FlowConfig::default(), 1000);
        h.seg(1010, b"bbbbb");
        h.seg(1015, b"ccccc");
        assert_eq!(h.half.buffered_pieces(), 1, "appended to its predecessor");
        h.seg(1030, b"eeeee");
        assert_eq!(h.half.islands, 2);
        h.seg(1020, b"dddddddddd");
        assert_eq!(h.half.islands, 1, "filling between two islands joins them");
        h.seg(1000, b"aaaaaaaaaa");
        assert_eq!(h.text(), "aaaaaaaaaabbbbbcccccddddddddddeeeee");
        assert_eq!(h.half.buffered_pieces(), 0);
        assert_eq!(h.stats.buffered_bytes, 0);
    }

    #[test]
    fn reverse_order_stays_linear_and_delivers() {
        // Segments arriving last-first: each new piece precedes the last one. Pieces are only
        // merged into the larger side, so this never re-copies the buffered tail.
        let mut h = Harness::new(
            FlowConfig {
                max_holes_per_dir: 10_000,
                ..FlowConfig::default()
            },
            0,
        );
        let stream: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for i in (1..200u32).rev() {
            let s = (i * 10) as usize;
            h.seg(i * 10, &stream[s..s + 10]);
        }
        h.seg(0, &stream[..10]);
        assert_eq!(h.text.as_slice(), stream.as_slice());
    }

    #[test]
    fn overlap_with_buffered_piece_keeps_first_copy() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(10, b"XXXXXXXXXX");
        h.seg(15, b"YYYYYYYYYY"); // [15,20) differs from the buffered copy, [20,25) is new
        assert_eq!(h.stats.overlap_conflicts, 1);
        assert_eq!(h.stats.retransmitted_bytes, 5);
        h.seg(0, b"0123456789");
        assert_eq!(h.text(), "0123456789XXXXXXXXXXYYYYY");
    }

    #[test]
    fn an_in_order_segment_wins_over_the_buffered_bytes_it_covers() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(10, b"XXXXXXXXXX");
        h.seg(0, b"0123456789abcdefghij");
        assert_eq!(h.text(), "0123456789abcdefghij");
        assert_eq!((h.stats.overlap_conflicts, h.stats.retransmitted_bytes), (1, 10));
        assert_eq!((h.half.charged, h.half.islands), (0, 0));
    }

    #[test]
    fn an_in_order_segment_covering_part_of_a_piece_leaves_its_tail() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(15, b"XXXXXXXXXX");
        h.seg(30, b"zz");
        h.seg(0, b"0123456789abcdefghij");
        assert_eq!(h.text(), "0123456789abcdefghijXXXXX");
        assert_eq!((h.stats.overlap_conflicts, h.stats.retransmitted_bytes), (1, 5));
        assert_eq!(h.half.islands, 1, "zz still waits beyond the hole at 25");
        h.seg(25, b"abcde");
        assert_eq!(h.text(), "0123456789abcdefghijXXXXXabcdezz");
    }

    #[test]
    fn a_receiver_with_a_windows_ttl_keeps_what_it_queued() {
        for (ttl, text) in [
            (None, "0123456789abcdefghij"),
            (Some(62), "0123456789abcdefghij"),
            (Some(126), "0123456789XXXXXXXXXX"),
            (Some(250), "0123456789abcdefghij"),
        ] {
            let mut h = Harness::new(FlowConfig::default(), 0);
            h.half.receiver_ttl(ttl);
            h.seg(10, b"XXXXXXXXXX");
            h.seg(0, b"0123456789abcdefghij");
            assert_eq!(h.text(), text, "receiver TTL {ttl:?}");
            assert_eq!((h.stats.overlap_conflicts, h.stats.retransmitted_bytes), (1, 10));
        }
    }

    #[test]
    fn out_of_order_a_segment_starting_before_a_queued_one_wins_over_it() {
        /// Receiver TTL, segments after the queued [20,30) "X"s, what is delivered.
        type Case<'a> = (Option<u8>, &'a [(u32, &'a [u8])], &'a str);
        let cases: [Case<'_>; 4] = [
            // Starts before it: wins (Linux, BSD), not for Windows.
            (
                None,
                &[(15, b"abcdefghijklmnopqrst")],
                "0123456789ABCDEabcdefghijklmnopqrst",
            ),
            (
                Some(128),
                &[(15, b"abcdefghijklmnopqrst")],
                "0123456789ABCDEabcdeXXXXXXXXXXpqrst",
            ),
            // Starts within it: the queued bytes win.
            (None, &[(25, b"abcdefghij")], "0123456789ABCDE-----XXXXXXXXXXfghij"),
            // Same start: longer wins, as long keeps.
            (
                None,
                &[(20, b"abcdefghijkl"), (20, b"ZZZZZZZZZZZZ")],
                "0123456789ABCDE-----abcdefghijkl",
            ),
        ];
        for (ttl, segs, text) in cases {
            let mut h = Harness::new(FlowConfig::default(), 0);
            h.half.receiver_ttl(ttl);
            h.seg(20, b"XXXXXXXXXX");
            for &(seq, data) in segs {
                h.seg(seq, data);
            }
            h.seg(0, b"0123456789ABCDE");
            h.run(|hs, b, out| {
                if let Some(hole_end) = hs.first_hole_end() {
                    let _ = hs.gap_to(hole_end, b, out);
                }
            });
            assert_eq!(h.text(), text, "receiver TTL {ttl:?}, {segs:?}");
            assert!(h.stats.overlap_conflicts >= 1);
        }
    }

    #[test]
    fn bytes_the_snaplen_cut_off_come_from_a_buffered_copy() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(10, b"XXXXXXXXXX");
        // 12 of 20 bytes captured: the packet wins where it was captured, the buffered copy
        // fills the rest.
        h.run(|hs, b, out| {
            let _ = hs.segment(0, b"0123456789ab", 20, b, out);
        });
        assert_eq!(h.text(), "0123456789abXXXXXXXX");
        assert_eq!(h.stats.overlap_conflicts, 1);
        assert_eq!(h.stats.gap_bytes, 0);
    }

    #[test]
    fn lost_tail_becomes_a_gap_in_place() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        // Out of order and truncated: 4 bytes captured out of 10.
        h.run(|hs, b, out| {
            let _ = hs.segment(10, b"abcd", 10, b, out);
        });
        h.seg(20, b"zz");
        h.seg(0, b"0123456789");
        assert_eq!(h.text(), "0123456789abcd------zz");
        assert_eq!(h.stats.gap_bytes, 6);
    }

    #[test]
    fn a_fin_inside_buffered_bytes_is_forgotten_and_one_at_their_end_closes() {
        // Bytes beyond the FIN were captured first: no sender sends them after its FIN.
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(5, b"56789abcde");
        h.run(|hs, b, out| {
            let _ = hs.fin(10, b, out);
        });
        assert_eq!((h.stats.fin_ignored, h.stats.bytes_after_fin), (1, 0));
        h.seg(0, b"01234");
        assert_eq!(h.text(), "0123456789abcde");
        assert!(!h.half.is_closed());
        // The FIN right after the buffered bytes is the sender's last word.
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(5, b"56789");
        h.run(|hs, b, out| {
            let _ = hs.fin(10, b, out);
        });
        h.seg(0, b"01234");
        assert_eq!(h.text(), "0123456789|");
        assert!(h.half.is_closed());
        assert_eq!(h.stats.fin_ignored, 0);
    }

    #[test]
    fn finish_turns_holes_into_gaps() {
        let mut h = Harness::new(FlowConfig::default(), 0);
        h.seg(3, b"ab");
        h.seg(8, b"cd");
        h.run(|hs, b, out| {
            let _ = hs.fin(12, b, out);
        });
        h.run(|hs, b, out| {
            let _ = hs.finish(b, out);
        });
        assert_eq!(h.text(), "---ab---cd--|");
    }
}
