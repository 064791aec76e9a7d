//! The FIN: where one direction's stream ends (RFC 9293 §3.6: it takes the sequence number after
//! the last byte). The first one wins; buffered bytes beyond it are dropped; one that bytes
//! already captured run past is not the sender's last word and is forgotten (`segment`).

use pacstap_core::{ChunkBody, Interest};

use super::{count_islands, seq_delta, Budget, HalfStream, Piece};

impl HalfStream {
    /// A FIN whose sequence number is `seq`. The first FIN wins; bytes beyond it are dropped.
    pub fn fin<O>(&mut self, seq: u32, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        if self.fin.is_some() {
            return Interest::Continue;
        }
        if !self.started {
            // A direction that never carried data: it is empty.
            self.start_at(seq);
        }
        if self.syn_data.is_some() && self.syn_data_on_segment(seq, b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        let d = seq_delta(seq, self.next_seq());
        if d < 0 {
            // A FIN before bytes already delivered contradicts the stream: ignore it.
            return Interest::Continue;
        }
        let fin = self.next.saturating_add(d.unsigned_abs());
        if self
            .pieces
            .last_key_value()
            .is_some_and(|(&s, p)| s.saturating_add(p.len()) > fin)
        {
            // Bytes beyond it were captured already: not the sender's last byte (see `segment`).
            b.stats.fin_ignored += 1;
            return Interest::Continue;
        }
        self.fin = Some(fin);
        self.acked = self.acked.min(fin);
        self.cut_after(fin, b);
        if self.skip_acked_holes(b, out) == Interest::Ignore {
            return Interest::Ignore;
        }
        self.drain(b, out)
    }

    /// Drop buffered bytes at or beyond the FIN.
    pub(super) fn cut_after(&mut self, fin: u64, b: &mut Budget<'_>) {
        let mut dropped_bytes = 0u64;
        let mut freed = 0usize;
        for (_, p) in self.pieces.split_off(&fin) {
            dropped_bytes += p.len();
            freed += p.charge();
        }
        if let Some((&s, p)) = self.pieces.range_mut(..fin).next_back() {
            let keep = fin - s;
            match p {
                Piece::Data(v) if v.len() as u64 > keep => {
                    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
                    dropped_bytes += (v.len() - keep) as u64;
                    freed += v.len() - keep;
                    v.truncate(keep);
                }
                Piece::Lost(n) if *n > keep => {
                    dropped_bytes += *n - keep;
                    *n = keep;
                }
                _ => {}
            }
        }
        b.stats.bytes_after_fin += dropped_bytes;
        self.uncharge(freed, b);
        self.islands = count_islands(&self.pieces);
    }
}
