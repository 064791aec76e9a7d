//! Causal order across the two directions of a connection.
//!
//! A SPAN port copies each direction through its own queue, so the capture can show a server's
//! answer before the request that caused it: the answer's ACK already covers request bytes the
//! capture has not seen yet ([`HalfStream::owes`]: ACK before data). Reassembly keeps that
//! hole open until the late bytes come, but each direction is delivered on its own, so the
//! decoders would read the answer first. DICOM copes with that inside its decoder (an
//! A-ASSOCIATE-AC or A-RELEASE-RP before its request); HTTP pairs responses with requests by
//! order, and a 401 read before its request answers nothing, so a login failure and a WADO
//! retrieval were lost with half a millisecond of skew. The order is restored here, once for
//! every protocol: while one direction waits for acknowledged bytes, the other direction's
//! segments are held as they came and replayed, in arrival order, after the late bytes were
//! delivered (or declared lost: then they follow the gap), after `FlowConfig::ack_wait` of
//! packet time at most, or when the flow ends.
//!
//! Bounded like the rest of reassembly: at most [`FlowConfig::causal_hold_bytes`] per flow, and
//! held bytes count against [`FlowConfig::max_buffered_bytes_total`] with the reassembly
//! buffers; past either the held segments are delivered at once (out of causal order, as
//! before, counted in [`FlowStats::causal_hold_overflows`]). A hold lasts `ack_wait` at most
//! (500 ms of packet time by default, the same bound as a kept-open hole), enforced by the
//! table's wait timer when the flow goes quiet.
//!
//! [`FlowConfig::causal_hold_bytes`]: crate::FlowConfig::causal_hold_bytes
//! [`FlowConfig::max_buffered_bytes_total`]: crate::FlowConfig::max_buffered_bytes_total
//! [`FlowStats::causal_hold_overflows`]: crate::FlowStats::causal_hold_overflows

use super::sink;
use crate::reassembly::{Budget, HalfStream};
use pacstap_core::{Direction, FlowMeta, Interest, StreamHandler, Timestamp};

/// Bytes charged per held segment on top of its data (a `Vec` header and the segment's fields,
/// rounded up like `reassembly::PIECE_OVERHEAD`).
const SEGMENT_OVERHEAD: usize = 64;

/// One segment as it came, to be replayed into its direction's reassembly.
#[derive(Debug)]
struct HeldSegment {
    /// Sequence number of the first data byte.
    seq: u32,
    /// Bytes on the wire (captured plus cut by the snaplen).
    len: u64,
    /// The captured bytes.
    data: Vec<u8>,
    /// The FIN's sequence number, if the segment carried one.
    fin: Option<u32>,
    ts: Timestamp,
}

/// The segments of one direction held until the other direction's acknowledged bytes come.
#[derive(Debug)]
pub(super) struct CausalHold {
    /// The direction held.
    pub dir: Direction,
    /// Table clock when the hold began: it ends `FlowConfig::ack_wait` later at the latest.
    pub since: Timestamp,
    segments: Vec<HeldSegment>,
    /// Bytes charged (data plus overhead).
    charged: usize,
    /// The other side's latest acknowledgement of the held bytes, applied after the replay:
    /// applied before it, the held bytes would look acknowledged-but-unseen themselves.
    ack: Option<u32>,
}

impl CausalHold {
    pub fn new(dir: Direction, since: Timestamp) -> Self {
        CausalHold {
            dir,
            since,
            segments: Vec::new(),
            charged: 0,
            ack: None,
        }
    }

    /// The other side acknowledged `ack` of the held direction (kept until the replay).
    pub fn note_ack(&mut self, ack: u32) {
        if self.ack.is_none_or(|a| crate::reassembly::seq_delta(ack, a) > 0) {
            self.ack = Some(ack);
        }
    }

    /// Whether the hold is over at `now`: the other direction delivered what was acknowledged
    /// (or it was declared a gap), or the hold lasted `max` (the bytes are not coming).
    pub fn over(&self, peer: &HalfStream, now: Timestamp, max: std::time::Duration) -> bool {
        !peer.owes() || now.since(self.since) >= max
    }

    /// What holding a segment of `captured` bytes costs.
    pub fn cost(captured: usize) -> usize {
        captured.saturating_add(SEGMENT_OVERHEAD)
    }

    /// Bytes charged now.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Holds a segment (the caller checked the caps with [`CausalHold::cost`]).
    pub fn push(&mut self, seq: u32, len: u64, data: &[u8], fin: Option<u32>, ts: Timestamp, b: &mut Budget<'_>) {
        let cost = Self::cost(data.len());
        self.charged = self.charged.saturating_add(cost);
        b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_add(cost as u64);
        b.stats.causal_holds += 1;
        self.segments.push(HeldSegment {
            seq,
            len,
            data: data.to_vec(),
            fin,
            ts,
        });
    }

    /// Replays the held segments, in the order they came, into `half` (the held direction's
    /// reassembly), each stamped with its own capture time.
    pub fn replay<S, H: StreamHandler<S>>(
        self,
        half: &mut HalfStream,
        b: &mut Budget<'_>,
        h: &mut H,
        state: &mut S,
        meta: &FlowMeta,
    ) -> Interest {
        b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_sub(self.charged as u64);
        let dir = self.dir;
        let ack = self.ack;
        for s in self.segments {
            if s.len > 0
                && half.segment(s.seq, &s.data, s.len, b, &mut sink(h, state, meta, dir, s.ts)) == Interest::Ignore
            {
                return Interest::Ignore;
            }
            if let Some(fin) = s.fin {
                if half.fin(fin, b, &mut sink(h, state, meta, dir, s.ts)) == Interest::Ignore {
                    return Interest::Ignore;
                }
            }
        }
        match ack {
            Some(a) => half.ack(a, b, &mut sink(h, state, meta, dir, b.now)),
            None => Interest::Continue,
        }
    }

    /// Forgets the held segments (the handler lost interest in the flow).
    pub fn discard(self, b: &mut Budget<'_>) {
        b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_sub(self.charged as u64);
    }
}
