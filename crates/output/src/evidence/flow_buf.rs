//! One flow's kept frames inside an [`EvidenceRing`](super::EvidenceRing): the first frames
//! (headers and payload within the cap) back to back, then a ring of the latest frames' headers.
//! See the ring's module docs for the rules and the memory bound.

use super::packets::{EvidencePackets, FlowEvidence};
use super::pcap_writer::PCAP_SNAPLEN;
use super::ring::RingLimits;
use pacstap_core::{FlowId, Timestamp};
use std::collections::VecDeque;

/// Record header inside the flow buffers: ts (i64), orig_len, linktype, caplen (u32 each), LE.
pub(super) const REC: usize = 24;
/// First allocation of a flow buffer: a short flow (a login) fits without regrowing.
pub(super) const MIN_ALLOC: usize = 1024;
#[derive(Default)]
pub(super) struct FlowBuf {
    /// The first frames: records (header + bytes) back to back.
    pub(super) head: Vec<u8>,
    /// Records in `head`.
    pub(super) head_frames: u64,
    /// Frames that went through the head rule; past `RingLimits::head_frames` the tail takes
    /// over. Set past it for a resumed flow.
    pub(super) head_seen: u64,
    /// The latest frames' headers, oldest first, same encoding.
    pub(super) tail: VecDeque<u8>,
    pub(super) tail_frames: u64,
    pub(super) payload_kept: u64,
    pub(super) frames_omitted: u64,
    pub(super) payload_omitted: u64,
    pub(super) ended: bool,
    pub(super) resumed: bool,
    /// `heap_bytes()` as last added to the ring's total.
    pub(super) counted: usize,
    /// Frames offered to this buffer (kept or not): the next frame's number.
    pub(super) seen: u64,
    /// Which buffer this is: a flow evicted and seen again gets a new epoch, and its numbers
    /// start over.
    pub(super) epoch: u64,
}

/// What one `push` left out, for the ring's totals.
#[derive(Default)]
pub(super) struct Pushed {
    pub(super) frames_omitted: u64,
    pub(super) payload_omitted: u64,
}

/// One frame as offered to [`FlowBuf::push`].
pub(super) struct Frame<'a> {
    pub(super) ts: Timestamp,
    pub(super) linktype: u32,
    pub(super) data: &'a [u8],
    pub(super) orig_len: u32,
    pub(super) payload_len: usize,
}

impl FlowBuf {
    pub(super) fn heap_bytes(&self) -> usize {
        self.head.capacity() + self.tail.capacity()
    }

    pub(super) fn push(&mut self, lim: &RingLimits, head_max: usize, tail_max: usize, f: Frame<'_>) -> Pushed {
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
    pub(super) fn copy_into(&self, id: FlowId, out: &mut EvidencePackets, skip: u64) {
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
pub(super) struct RecHeader {
    pub(super) ts: i64,
    pub(super) orig_len: u32,
    pub(super) linktype: u32,
    pub(super) caplen: u32,
    /// The frame's number within its flow buffer (saturating), for cuts that only add what is
    /// new ([`EvidenceRing::snapshot_since`]).
    pub(super) seq: u32,
}

impl RecHeader {
    pub(super) fn encode(&self) -> [u8; REC] {
        let mut b = [0u8; REC];
        // Constant ranges within a fixed array: checked at compile time, no panic path.
        b[0..8].copy_from_slice(&self.ts.to_le_bytes());
        b[8..12].copy_from_slice(&self.orig_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.linktype.to_le_bytes());
        b[16..20].copy_from_slice(&self.caplen.to_le_bytes());
        b[20..24].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> RecHeader {
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
