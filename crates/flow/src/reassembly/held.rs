//! Segments the receiver may never have read, held until the stream shows whether it did: those
//! with a lower IP TTL (IPv6 hop limit) than the rest of their direction, and those that start
//! beyond the receiver's window as the capture last showed it.
//!
//! A tap sits somewhere between the two hosts; a packet whose TTL runs out after the tap and
//! before the receiver is seen here and never read there. That is the oldest insertion attack on
//! a passive monitor (Ptacek & Newsham 1998, §3.3; Snort's stream preprocessor has `ttl_limit`
//! for it): the sender puts a decoy copy of a segment (a C-MOVE-RQ naming another destination,
//! an A-ASSOCIATE-RQ with another AE title) before the real one, with a TTL just high enough to
//! pass the tap, and the tap, taking the first copy of each byte, reads the decoy. Checksums and
//! PAWS do not help: the decoy is a well-formed segment the receiver would take, were it to
//! arrive. A decoy must have a lower TTL at the tap than the real packets of its direction (a
//! higher one would travel further, to the receiver), and every packet of one direction of a
//! connection normally reaches the tap with the same TTL: the hosts' stacks use one initial TTL
//! per route, and the route does not change between two segments.
//!
//! So each direction keeps the highest TTL of its packets (bare ACKs included: the real sender
//! keeps showing its TTL), and a data segment below it is held here, copied, instead of
//! entering the stream; one of these decides it:
//!
//! * the stream is delivered past it from other copies: the receiver read those, so this one
//!   was a decoy if its bytes differ (`low_ttl_decoys`, `tcp.low_ttl_decoy`), a harmless second
//!   copy otherwise (the same packet mirrored before and after a router);
//! * a hole it would fill is given up (the receiver's ACK covered it and the wait for another
//!   copy ran out, a buffer cap, the flow's end): nothing else came, so the receiver took this
//!   one, and it fills the hole instead of a gap (`low_ttl_taken`);
//! * [`HELD_SEGMENTS`] are held already, or they would pass [`HELD_SHARE`] of the total buffer
//!   cap: all held copies are taken, oldest first, and this segment goes the normal way.
//!
//! A route that really changed (a longer path, an ECMP split) makes the lower TTL the
//! direction's own: after [`ADOPT_AFTER`] held copies of one TTL were taken in a row, that TTL
//! becomes the direction's, and its segments go the normal way again. What this costs a real
//! route change is delay (each held copy waits for its hole to be given up), never bytes.
//!
//! Beyond the window: a receiver drops a segment that starts beyond its window (RFC 9293
//! §3.10.7.4), so a spoofer's far-off bytes (fragroute's `tcp_chaff seq`), buffered beyond a
//! hole, would wait until a cap gave the hole up; the stream would then jump to them and take
//! every real byte after as a retransmission. But the window is judged from the ACKs the capture
//! showed, and a capture that lost more than a window of one direction shows the next segment
//! before the receiver's ACK of it. So such a segment is held as well, with no anomaly of its own
//! until decided: taken when a hole is given up only if the receiver acknowledged past its start
//! (it was in the window after all), otherwise kept; dropped (`data_out_of_window`,
//! `tcp.data_out_of_window`) when the stream passes it, when there is no room, or when the flow
//! ends unacknowledged.
//!
//! Limits: a decoy the capture shows after the real segment is a conflicting retransmission
//! (the first copy wins, `tcp.overlap_conflict`), and a direction picked up mid-stream whose
//! first data packet is a decoy has no TTL to compare it with.

use pacstap_core::{ChunkBody, Interest};

use super::{seq_delta, Budget, HalfStream, PIECE_OVERHEAD};

/// Held copies per direction, at most: a decoy precedes the segment it shadows, so a handful
/// covers an attack, and a direction whose TTL wanders is never held back by more.
const HELD_SEGMENTS: usize = 4;

/// Held copies of all flows take at most this fraction of `max_buffered_bytes_total`.
const HELD_SHARE: u64 = 4;

/// Held copies of one TTL taken in a row before that TTL becomes the direction's own.
const ADOPT_AFTER: u8 = 2;

/// One direction's TTL and the copies held for it.
#[derive(Debug, Default)]
pub(super) struct HeldSegments {
    /// Highest TTL seen on this direction's packets (0: none seen yet).
    highest: u8,
    copies: Vec<Held>,
    /// TTL of the held copies taken in a row without a decoy in between, and how many.
    taken_run: (u8, u8),
}

/// Why a segment is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doubt {
    /// Its IP TTL, below the direction's.
    LowTtl(u8),
    /// It started beyond the receiver's window.
    BeyondWindow,
}

/// A held segment: captured bytes from stream offset `start`.
#[derive(Debug)]
struct Held {
    start: u64,
    bytes: Vec<u8>,
    doubt: Doubt,
}

impl Held {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn charge(&self) -> usize {
        PIECE_OVERHEAD + self.bytes.len()
    }
}

impl HeldSegments {
    /// Bytes the held copies count against the buffer caps.
    #[cfg(test)]
    pub(super) fn charge(&self) -> usize {
        self.copies.iter().map(Held::charge).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }
}

impl HalfStream {
    /// A packet of this direction carried IP TTL `ttl` (`None`: not known). Returns it when it is
    /// below the direction's, i.e. when its data must be [held](HalfStream::hold).
    #[inline]
    pub fn low_ttl(&mut self, ttl: Option<u8>) -> Option<u8> {
        let ttl = ttl?;
        if ttl >= self.held.highest {
            self.held.highest = ttl;
            return None;
        }
        Some(ttl)
    }

    /// This direction's IP TTL (the highest seen), once a packet carried one.
    #[inline]
    pub fn ttl(&self) -> Option<u8> {
        (self.held.highest > 0).then_some(self.held.highest)
    }

    /// Whether copies are held (cheap; the table settles them after each packet when so).
    pub fn holds_any(&self) -> bool {
        !self.held.copies.is_empty()
    }

    /// A data segment the receiver may not have read, for `doubt`: `len` bytes at `seq`,
    /// `payload` of them captured. Held; or handed to [`HalfStream::segment`] when holding it
    /// would change nothing (all its bytes delivered already: a retransmission, compared there)
    /// or, for a low TTL, when it cannot be held; or, beyond the window, dropped then.
    pub fn hold<O>(
        &mut self,
        seq: u32,
        doubt: Doubt,
        payload: &[u8],
        len: u64,
        b: &mut Budget<'_>,
        out: &mut O,
    ) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let d = seq_delta(seq, self.next_seq());
        let end = d.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
        // Before the stream began, or nothing new: the normal way (a retransmission, compared).
        if !self.started || self.syn_data.is_some() || end <= 0 {
            return self.segment(seq, payload, len, b, out);
        }
        let cut = len != payload.len() as u64;
        if cut && doubt != Doubt::BeyondWindow {
            // Cut by the snaplen: what was lost cannot be held.
            return self.segment(seq, payload, len, b, out);
        }
        let skip = usize::try_from((-d).max(0)).unwrap_or(usize::MAX);
        let bytes = payload.get(skip..).unwrap_or(&[]);
        let held = Held {
            start: self.next.saturating_add(d.max(0).unsigned_abs()),
            bytes: bytes.to_vec(),
            doubt,
        };
        let share = b.cfg.max_buffered_bytes_total as u64 / HELD_SHARE;
        let room = !cut
            && self.held.copies.len() < HELD_SEGMENTS
            && self.charged + held.charge() <= b.cfg.max_buffered_bytes_per_dir
            && b.stats.buffered_bytes + (held.charge() as u64) <= share;
        if !room {
            if doubt == Doubt::BeyondWindow {
                // Not known to be read by anyone: dropped, as the receiver most likely did.
                b.stats.data_out_of_window += 1;
                return Interest::Continue;
            }
            if self.take_held(false, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
            return self.segment(seq, payload, len, b, out);
        }
        if doubt != Doubt::BeyondWindow {
            b.stats.low_ttl_held += 1;
        }
        self.charge(held.charge(), b);
        self.held.copies.push(held);
        Interest::Continue
    }

    /// Forget the held copies the stream was delivered past (from other copies), counting those
    /// that differ from what was delivered as decoys.
    pub fn settle_held(&mut self, b: &mut Budget<'_>) {
        let next = self.next;
        let mut i = 0;
        while let Some(h) = self.held.copies.get(i) {
            if h.end() > next {
                i += 1;
                continue;
            }
            let h = self.held.copies.remove(i);
            self.uncharge(h.charge(), b);
            if h.doubt == Doubt::BeyondWindow {
                b.stats.data_out_of_window += 1;
            } else if self
                .history
                .as_ref()
                .is_some_and(|hist| hist.differs(h.start, &h.bytes))
            {
                b.stats.low_ttl_decoys += 1;
                self.held.taken_run = (0, 0);
            }
        }
    }

    /// A hole is being given up (`ending`: the flow is over): nothing else came for the held
    /// copies. Those held for a low TTL were taken by the receiver; those held for starting
    /// beyond the window were, if it acknowledged past their start, and are kept otherwise (or,
    /// `ending`, dropped). Each taken copy fills what is still a hole (the first copy of a byte
    /// still wins over it), oldest first, as the segment it was.
    pub(super) fn take_held<O>(&mut self, ending: bool, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        self.settle_held(b);
        // Emptied first: placing a copy may give up holes, which comes back here.
        let held = std::mem::take(&mut self.held.copies);
        for h in &held {
            self.uncharge(h.charge(), b);
        }
        let mut kept = Vec::new();
        let mut interest = Interest::Continue;
        for h in held {
            match h.doubt {
                Doubt::BeyondWindow if h.start >= self.acked => {
                    if ending {
                        b.stats.data_out_of_window += 1;
                    } else {
                        kept.push(h);
                    }
                    continue;
                }
                Doubt::BeyondWindow => b.stats.data_out_of_window_taken += 1,
                Doubt::LowTtl(ttl) => {
                    b.stats.low_ttl_taken += 1;
                    let run = &mut self.held.taken_run;
                    *run = if run.0 == ttl {
                        (ttl, run.1.saturating_add(1))
                    } else {
                        (ttl, 1)
                    };
                    if run.1 >= ADOPT_AFTER {
                        // The route changed: this TTL is the direction's now.
                        self.held.highest = ttl;
                    }
                }
            }
            if interest == Interest::Ignore {
                continue;
            }
            // As a segment: what lies before `next` is trimmed there, and a FIN it runs past is
            // judged as for any segment.
            let seq = self.base.wrapping_add(h.start as u32);
            let len = h.bytes.len() as u64;
            interest = self.segment(seq, &h.bytes, len, b, out);
        }
        if interest == Interest::Ignore {
            return Interest::Ignore;
        }
        for h in kept {
            self.charge(h.charge(), b);
            self.held.copies.push(h);
        }
        Interest::Continue
    }
}
