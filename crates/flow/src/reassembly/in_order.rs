//! An in-order segment against bytes buffered beyond it: the segment wins.
//!
//! A receiver takes a segment that starts at the sequence number it expects whole, and then
//! trims or drops what its out-of-order queue held for the same bytes: Linux queues the segment
//! and `tcp_ofo_queue` drops every queued segment it covers and trims the one it overlaps; BSD's
//! `tcp_reass` trims or dequeues the succeeding segments a new one covers; no stack lets a
//! segment queued out of order override the one that arrives in order. So a tap that let its
//! buffered copy win could be steered by any sender: a decoy sent ahead of a hole (a sender's
//! own "out-of-order" segment, or a blind spoofer's), then the real bytes from the hole's
//! start over it, would show the decoy to the decoders while the receiver reads the real
//! bytes (Ptacek and Newsham's insertion with overlapping segments). The buffered
//! copy is compared first: if it differed, that is an overlap conflict, reported.

use super::{count_islands, slice, Budget, HalfStream, Piece};

impl HalfStream {
    /// The packet's captured bytes `[from, to)` (`data` starts at offset `start`) are about to be
    /// delivered at `next == from`: drop the buffered bytes they cover, after counting them as
    /// retransmitted and comparing them (`count_conflict`). Parts of a piece outside the range
    /// stay buffered.
    pub(super) fn supersede(&mut self, from: u64, to: u64, start: u64, data: &[u8], b: &mut Budget<'_>) {
        let covered: Vec<u64> = self
            .pieces
            .range(..to)
            .rev()
            .take_while(|(&s, p)| s.saturating_add(p.len()) > from)
            .map(|(&s, _)| s)
            .collect();
        if covered.is_empty() {
            return;
        }
        for s in covered {
            let Some(piece) = self.pieces.remove(&s) else { continue };
            let e = s.saturating_add(piece.len());
            let (lo, hi) = (s.max(from), e.min(to));
            b.stats.retransmitted_bytes += hi - lo;
            if let Piece::Data(old) = &piece {
                let old = slice(old, s, lo, hi);
                let new = slice(data, start, lo, hi);
                let n = old.len().min(new.len());
                if old.get(..n) != new.get(..n) {
                    b.stats.overlap_conflicts += 1;
                }
            }
            self.uncharge(piece.charge(), b);
            // What lies outside the packet's bytes stays, as its own piece.
            let keep = |from_off: u64, to_off: u64| match &piece {
                Piece::Data(v) => Piece::Data(slice(v, s, from_off, to_off).to_vec()),
                Piece::Lost(_) => Piece::Lost(to_off - from_off),
            };
            for (ks, ke) in [(s, from.min(e)), (to.max(s), e)] {
                if ke > ks {
                    let kept = keep(ks, ke);
                    self.charge(kept.charge(), b);
                    self.pieces.insert(ks, kept);
                }
            }
        }
        self.islands = count_islands(&self.pieces);
    }
}
