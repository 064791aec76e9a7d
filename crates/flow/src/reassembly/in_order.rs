//! An in-order segment against bytes buffered beyond it: which copy the receiver keeps.
//!
//! Linux, the BSDs and macOS take a segment that starts at the sequence number they expect
//! whole, and then trim or drop what their out-of-order queue held for the same bytes: Linux
//! queues the segment and `tcp_ofo_queue` drops every queued segment it covers and trims the one
//! it overlaps; BSD's `tcp_reass` trims or dequeues the succeeding segments a new one covers.
//! So a tap that let its buffered copy win could be steered by any sender: a decoy sent ahead of
//! a hole (a sender's own "out-of-order" segment, or a blind spoofer's), then the real bytes
//! from the hole's start over it, would show the decoy to the decoders while the receiver reads
//! the real bytes (Ptacek and Newsham's insertion with overlapping segments).
//!
//! Windows since Vista does the opposite: the queued bytes win (Snort's and Suricata's `vista`
//! policy, "old data" when a segment starts before a queued one; fragroute's `tcp_seg N win32`
//! evades a Linux-minded tap with it). No packet names the receiver's stack, but its initial
//! TTL does: 64 for Linux, the BSDs and macOS, 128 for Windows, 255 for Solaris and most network
//! gear, each minus the hops to the tap. So the choice follows the TTL of the receiver's own
//! packets (target-based reassembly, as Snort's and Suricata's host OS policies, without a
//! host table to keep): above 64 and up to 128 the queue wins, otherwise the in-order segment
//! wins, also when the receiver was never seen (one-sided capture). Either way the other copy
//! is compared: if it differed, that is an overlap conflict, reported.
//!
//! Out of order, the same stacks let a new segment win over queued bytes when it starts before
//! the queued segment holding them, or at the same sequence number and longer (Linux
//! `tcp_data_queue_ofo`: such a segment replaces the one it covers and removes those after it
//! that it covers; BSD `tcp_reass` trims or dequeues the succeeding segments), and keep the
//! queued bytes when it starts within them. Buffered pieces stand for the queued segments
//! (adjacent ones are merged here as Linux coalesces them). For a Windows receiver the queued
//! bytes always win.

use super::{slice, Budget, HalfStream, Piece};

/// Whether a receiver whose packets reach the tap with IP TTL (IPv6 hop limit) `ttl` keeps the
/// bytes it queued out of order over an in-order segment that covers them (see the module
/// docs): an initial TTL of 128, Windows.
fn keeps_queued(ttl: Option<u8>) -> bool {
    ttl.is_some_and(|t| (65..=128).contains(&t))
}

impl HalfStream {
    /// The TTL of the receiver's packets (the other direction's, [`HalfStream::ttl`]) decides
    /// which copy of overlapping bytes wins at the delivery point.
    #[inline]
    pub fn receiver_ttl(&mut self, ttl: Option<u8>) {
        self.receiver_keeps_queued = keeps_queued(ttl);
    }

    /// The packet's captured bytes `[from, to)` (`data` starts at offset `start`) win over the
    /// buffered bytes they cover in the pieces `[s, e)` for which `wins(s, e)`: those bytes are
    /// dropped, after being counted as retransmitted and compared (an overlap conflict when
    /// they differ). Parts of a piece outside the range stay buffered.
    pub(super) fn supersede(
        &mut self,
        from: u64,
        to: u64,
        start: u64,
        data: &[u8],
        b: &mut Budget<'_>,
        wins: impl Fn(u64, u64) -> bool,
    ) {
        let covered: Vec<u64> = self
            .pieces
            .range(..to)
            .rev()
            .take_while(|(&s, p)| s.saturating_add(p.len()) > from)
            .filter(|(&s, p)| wins(s, s.saturating_add(p.len())))
            .map(|(&s, _)| s)
            .collect();
        let (Some(&first), Some(&last)) = (covered.last(), covered.first()) else {
            return;
        };
        // The islands that start in the pieces touched (and in the one right after them, which
        // may lose its predecessor), before and after: only they can change.
        let last_end = self.pieces.get(&last).map_or(last, |p| last.saturating_add(p.len()));
        let islands_before = self.island_starts(first, last_end);
        for s in covered {
            let e = self.pieces.get(&s).map_or(s, |p| s.saturating_add(p.len()));
            let (lo, hi) = (s.max(from), e.min(to));
            b.stats.retransmitted_bytes += hi - lo;
            self.count_conflict(lo, hi, start, data, b);
            let Some(piece) = self.pieces.remove(&s) else { continue };
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
        let islands_after = self.island_starts(first, last_end);
        self.islands = (self.islands + islands_after).saturating_sub(islands_before);
        debug_assert_eq!(self.islands, super::count_islands(&self.pieces));
    }

    /// How many pieces starting in `[lo, hi]` start an island (no piece ends where they begin):
    /// a count over the pieces there, not the whole map, so a flood of overlapping segments
    /// costs what it removes.
    fn island_starts(&self, lo: u64, hi: u64) -> usize {
        let mut prev_end = self
            .pieces
            .range(..lo)
            .next_back()
            .map(|(&s, p)| s.saturating_add(p.len()));
        let mut n = 0;
        for (&s, p) in self.pieces.range(lo..=hi) {
            n += usize::from(prev_end != Some(s));
            prev_end = Some(s.saturating_add(p.len()));
        }
        n
    }
}
