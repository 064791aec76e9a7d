//! ACK before data: a hole the receiver acknowledged is kept open for a while before it is
//! declared lost (the bounds are in `FlowConfig`: `ack_wait`, `ack_wait_segments`,
//! `ack_wait_bytes`; the flow's end flushes). See the parent module's documentation.

use pacstap_core::{ChunkBody, Interest, Timestamp};

use super::{seq_delta, Budget, HalfStream};

/// A hole the receiver acknowledged before the capture saw its data, kept open for a while.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckWait {
    pub since: Timestamp,
    /// Packets of the flow seen since.
    pub packets: u32,
}

impl HalfStream {
    /// The other side acknowledged everything before `ack` (RFC 9293 §3.4: ACK = next sequence
    /// number the receiver expects). The receiver has the bytes below it; if the capture has not
    /// seen them yet they are either lost by the capture or still on their way through the other
    /// direction's queue, so the hole waits (a bounded while) before it is declared a gap.
    pub fn ack<O>(&mut self, ack: u32, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        if !self.started {
            return Interest::Continue;
        }
        if self.syn_data.is_some() && self.syn_data_on_ack(ack, b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        let d = seq_delta(ack, self.next_seq());
        if d <= 0 {
            return Interest::Continue;
        }
        let mut acked = self.next.saturating_add(d.unsigned_abs());
        if let Some(fin) = self.fin {
            // The FIN itself takes one sequence number; its ACK is fin + 1.
            acked = acked.min(fin);
        }
        if acked <= self.acked {
            return Interest::Continue;
        }
        self.acked = acked;
        if self.wait.is_none() && acked > self.next {
            b.stats.ack_before_data += 1;
            self.wait = Some(AckWait {
                since: b.now,
                packets: 0,
            });
        }
        self.skip_acked_holes(b, out)
    }

    /// Whether an acknowledged hole is being kept open.
    pub fn waiting(&self) -> bool {
        self.wait.is_some()
    }

    /// Whether the other side acknowledged bytes this direction has not delivered yet: they are
    /// still on their way, or lost by the capture. Unlike [`HalfStream::waiting`] this stays
    /// true after a wait was given up without a gap (an ACK far ahead, nothing after it
    /// captured yet), which is what a large request delayed on a SPAN port looks like.
    pub fn owes(&self) -> bool {
        self.started && self.acked > self.next
    }

    /// Whether every byte of this direction below `ack` (a sequence number the other side
    /// acknowledged) has been delivered: what a segment carrying that ACK answered has come.
    pub fn delivered_to(&self, ack: u32) -> bool {
        !self.started || seq_delta(ack, self.next_seq()) <= 0
    }

    /// Whether what this direction [owes](HalfStream::owes) is its tail, with nothing captured
    /// beyond it: bytes late on a SPAN port look like that. With later bytes already captured
    /// the missing ones were lost (or reordered) on the way to the tap, and the other
    /// direction must not wait for them: its next bytes answer what was captured, in the
    /// order it was captured.
    pub fn owes_late(&self) -> bool {
        self.owes() && self.pieces.is_empty()
    }

    /// When the acknowledged hole being kept open started waiting.
    pub fn waiting_since(&self) -> Option<Timestamp> {
        self.wait.map(|w| w.since)
    }

    /// One more packet of the flow went by (either direction): give up an acknowledged hole that
    /// waited its share of packets or of packet time.
    pub fn tick<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let Some(w) = self.wait.as_mut() else {
            return Interest::Continue;
        };
        w.packets = w.packets.saturating_add(1);
        self.skip_acked_holes(b, out)
    }

    /// Whether the wait for acknowledged data is over (it came, or it waited long enough).
    pub(super) fn wait_over(&mut self, b: &mut Budget<'_>) -> bool {
        let Some(w) = self.wait else { return true };
        b.now.since(w.since) >= b.cfg.ack_wait
            || w.packets >= b.cfg.ack_wait_segments
            || self.acked.saturating_sub(self.next) > b.cfg.ack_wait_bytes
    }

    /// The delivery point moved: an acknowledged hole whose data arrived is no longer waited on.
    pub(super) fn settle_wait(&mut self, b: &mut Budget<'_>) {
        if self.wait.is_some() && self.next >= self.acked {
            self.wait = None;
            b.stats.ack_before_data_filled += 1;
        }
    }

    /// Skip the holes the receiver has acknowledged past.
    pub(super) fn skip_acked_holes<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        self.settle_wait(b);
        while self.acked > self.next {
            if !self.wait_over(b) {
                break;
            }
            // Held copies the receiver acknowledged fill the hole first (`held`).
            if !self.held.is_empty() && self.take_held(false, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
            let Some(hole_end) = self.first_hole_end() else { break };
            // Given up: every hole below the ACK goes now.
            self.wait = None;
            let target = hole_end.min(self.acked);
            if target > self.next {
                b.stats.ack_gaps += 1;
            }
            if self.gap_to(target, b, out) == Interest::Ignore {
                return Interest::Ignore;
            }
        }
        if self.wait.is_some() && self.wait_over(b) && self.first_hole_end().is_none() {
            // Waited its time and nothing after it was captured: stop waiting (the bytes are
            // simply unseen; a gap is declared if anything beyond them arrives later).
            self.wait = None;
        }
        Interest::Continue
    }
}
