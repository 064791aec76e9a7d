//! Causal order across the two directions of a connection.
//!
//! A SPAN port copies each direction through its own queue, so the capture can show a server's
//! answer before the request that caused it: the answer's ACK already covers request bytes the
//! capture has not seen yet, and nothing of that direction after them either
//! ([`HalfStream::owes_late`]: the tail of a stream delayed on its way to the tap). Reassembly keeps that
//! hole open until the late bytes come, but each direction is delivered on its own, so the
//! decoders would read the answer first. DICOM copes with that inside its decoder (an
//! A-ASSOCIATE-AC or A-RELEASE-RP before its request); HTTP pairs responses with requests by
//! order, and a 401 read before its request answers nothing, so a login failure and a WADO
//! retrieval were lost with half a millisecond of skew. The order is restored here, once for
//! every protocol: while one direction owes acknowledged bytes at its tail, the other direction's
//! segments are held as they came and replayed, in arrival order, after the late bytes were
//! delivered (or declared lost: then they follow the gap), as soon as later bytes of the
//! owing direction show the owed ones were lost rather than late (holding on would put the
//! answers to the held bytes before them), after `FlowConfig::ack_wait` of packet time at
//! most, or when the flow ends. Real capture loss is thus left in capture order, as before.
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
use pacstap_core::{Direction, FlowMeta, Interest, PerDirection, StreamHandler, Timestamp};

/// Bytes charged per held segment on top of its data (a `Vec` header and the segment's fields,
/// rounded up like `reassembly::PIECE_OVERHEAD`).
const SEGMENT_OVERHEAD: usize = 64;

/// [`CausalHold::replay`] every held segment.
pub(super) const ALL: usize = usize::MAX;

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
    /// What the segment's packet acknowledged of the other direction: once the other
    /// direction has delivered that far, what this segment answered has come.
    ack: Option<u32>,
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
    /// The other side's latest acknowledgement of the held bytes, applied once they have all
    /// been replayed: applied before, they would look acknowledged-but-unseen themselves.
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
    /// (or it was declared a gap), later bytes of it were captured while the acknowledged ones
    /// were not (they were lost, not late: see [`HalfStream::owes_late`]), or the hold lasted
    /// `max` (the bytes are not coming).
    pub fn over(&self, peer: &HalfStream, now: Timestamp, max: std::time::Duration) -> bool {
        !peer.owes_late() || now.since(self.since) >= max
    }

    /// How many of the held segments, from the first, answer only what the other direction has
    /// delivered by now: they can go, in the order they came, while the rest wait. When a
    /// SPAN port's skew is longer than a request-response round, the other direction owes bytes
    /// all the time and the hold never ends as a whole; holding every request until then let
    /// the responses to the first ones be decoded before them (`dicom.response_without_request`
    /// with one host's packets 100 ms late).
    pub fn ready(&self, peer: &HalfStream) -> usize {
        self.segments
            .iter()
            .take_while(|s| s.ack.is_none_or(|a| peer.delivered_to(a)))
            .count()
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
    pub fn push(&mut self, seg: &Arrival<'_>, b: &mut Budget<'_>) {
        let cost = Self::cost(seg.payload.len());
        self.charged = self.charged.saturating_add(cost);
        b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_add(cost as u64);
        b.stats.causal_holds += 1;
        // A hold whose segments all went on ([`CausalHold::replay`]) starts again: its
        // time runs from this segment, as it does from the first one left after a partial
        // replay. Left at the hold's first start, the next answers were replayed by the time
        // bound, ahead of the requests they answered, once a skew longer than a round had kept
        // the hold going for `ack_wait` (`dicom.response_without_request` with the requester
        // mirrored 100 ms late).
        if self.segments.is_empty() {
            self.since = self.since.max(seg.ts);
        }
        self.segments.push(HeldSegment {
            seq: seg.seq,
            len: seg.len,
            data: seg.payload.to_vec(),
            fin: seg.fin,
            ts: seg.ts,
            ack: seg.ack,
        });
    }

    /// Replays the first `n` held segments (see [`CausalHold::ready`]; all with [`ALL`]), in
    /// the order they came, into `half` (the held direction's reassembly), each stamped with
    /// its own capture time. The rest stay held, and the hold's time runs from the first of
    /// them. The other side's acknowledgement of the held bytes waits for the last replay.
    pub fn replay<S, H: StreamHandler<S>>(
        &mut self,
        n: usize,
        half: &mut HalfStream,
        b: &mut Budget<'_>,
        h: &mut H,
        state: &mut S,
        meta: &FlowMeta,
    ) -> Interest {
        let n = n.min(self.segments.len());
        let dir = self.dir;
        let mut interest = Interest::Continue;
        for s in self.segments.drain(..n) {
            let cost = Self::cost(s.data.len());
            self.charged = self.charged.saturating_sub(cost);
            b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_sub(cost as u64);
            if interest == Interest::Ignore {
                continue;
            }
            if s.len > 0 {
                interest = half.segment(s.seq, &s.data, s.len, b, &mut sink(h, state, meta, dir, s.ts));
            }
            if let Some(fin) = s.fin.filter(|_| interest == Interest::Continue) {
                interest = half.fin(fin, b, &mut sink(h, state, meta, dir, s.ts));
            }
        }
        match self.segments.first() {
            Some(first) => self.since = self.since.max(first.ts),
            // All went on: nothing held can look acknowledged-but-unseen any more, so the other
            // side's acknowledgement applies now, not when the hold ends as a whole (with a skew
            // longer than a round it may never end: a real loss in the held direction would not
            // be declared until a cap).
            None => {
                if let Some(a) = self.ack.take().filter(|_| interest == Interest::Continue) {
                    interest = half.ack(a, b, &mut sink(h, state, meta, dir, b.now));
                }
            }
        }
        interest
    }

    /// Whether segments are held (a hold emptied by [`CausalHold::replay`] goes on while
    /// the other direction owes bytes, but holds nothing).
    pub fn holds_any(&self) -> bool {
        !self.segments.is_empty()
    }

    /// Forgets the held segments (the handler lost interest in the flow).
    pub fn discard(self, b: &mut Budget<'_>) {
        b.stats.causal_held_bytes = b.stats.causal_held_bytes.saturating_sub(self.charged as u64);
    }
}

/// One segment as it came off the wire, before reassembly.
pub(super) struct Arrival<'p> {
    pub seq: u32,
    /// Bytes on the wire (captured plus cut by the snaplen).
    pub len: u64,
    pub payload: &'p [u8],
    pub fin: Option<u32>,
    pub ts: Timestamp,
    /// The packet's acknowledgement of the other direction, if it had the ACK flag.
    pub ack: Option<u32>,
}

/// What [`hold`] did with a segment.
pub(super) struct Holding {
    /// The segment was held (the caller does not reassemble it now).
    pub held: bool,
    /// It started a new hold (the caller arms the wait timer).
    pub new: bool,
    /// The handler's answer to what a cap released, if anything was.
    pub interest: Interest,
}

/// Holds `seg` of direction `own` while the other direction owes acknowledged bytes at its
/// tail, or while `own` is already held (its order must stay). Over a cap, what was held is
/// replayed at once and `seg` is left to the caller, after it.
#[allow(clippy::too_many_arguments)]
pub(super) fn hold<S, H: StreamHandler<S>>(
    causal: &mut Option<Box<CausalHold>>,
    half: &mut PerDirection<HalfStream>,
    own: Direction,
    seg: Arrival<'_>,
    now: Timestamp,
    b: &mut Budget<'_>,
    h: &mut H,
    state: &mut S,
    meta: &FlowMeta,
) -> Holding {
    let mut out = Holding {
        held: false,
        new: false,
        interest: Interest::Continue,
    };
    let holding_own = causal.as_ref().is_some_and(|c| c.dir == own);
    if !holding_own && (causal.is_some() || !half[own.reverse()].owes_late()) {
        return out;
    }
    let cost = CausalHold::cost(seg.payload.len());
    let charged = causal.as_ref().map_or(0, |c| c.charged());
    let total = b.stats.buffered_bytes.saturating_add(b.stats.causal_held_bytes);
    if charged.saturating_add(cost) <= b.cfg.causal_hold_bytes
        && total.saturating_add(cost as u64) <= b.cfg.max_buffered_bytes_total as u64
    {
        out.new = causal.is_none();
        causal
            .get_or_insert_with(|| Box::new(CausalHold::new(own, now)))
            .push(&seg, b);
        out.held = true;
    } else if let Some(mut c) = causal.take() {
        // Over a cap: what was held goes now, this segment after it.
        b.stats.causal_hold_overflows += 1;
        out.interest = c.replay(ALL, &mut half[own], b, h, state, meta);
    }
    out
}

/// Ends a hold that is [over](CausalHold::over) at `now`: replays it when the handler still
/// wants the flow (`go_on`), else forgets it; a hold not over replays its [ready](CausalHold::ready)
/// segments. Returns whether a hold ended, and the handler's answer to what was replayed.
#[allow(clippy::too_many_arguments)]
pub(super) fn release_if_over<S, H: StreamHandler<S>>(
    causal: &mut Option<Box<CausalHold>>,
    half: &mut PerDirection<HalfStream>,
    go_on: bool,
    now: Timestamp,
    b: &mut Budget<'_>,
    h: &mut H,
    state: &mut S,
    meta: &FlowMeta,
) -> (bool, Interest) {
    let max = b.cfg.ack_wait;
    let Some(mut c) = causal.take_if(|c| c.over(&half[c.dir.reverse()], now, max)) else {
        // Not over as a whole: the segments whose cause has come go on.
        let Some(c) = causal.as_mut().filter(|_| go_on) else {
            return (false, Interest::Continue);
        };
        let (d, n) = (c.dir, c.ready(&half[c.dir.reverse()]));
        if n == 0 {
            return (false, Interest::Continue);
        }
        return (false, c.replay(n, &mut half[d], b, h, state, meta));
    };
    if !go_on {
        c.discard(b);
        return (true, Interest::Continue);
    }
    let d = c.dir;
    (true, c.replay(ALL, &mut half[d], b, h, state, meta))
}
