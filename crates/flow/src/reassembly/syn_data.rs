//! Data on a SYN, kept aside until the receiver is known to have taken it.
//!
//! A SYN may carry data (RFC 9293 §3.10.7.3), but a receiver queues it only with TCP Fast Open
//! (RFC 7413 §4.2.2), when its SYN-ACK acknowledges the data. Without Fast Open the data is
//! dropped, the SYN-ACK acknowledges the SYN alone, and the sender sends the bytes again after
//! the handshake (Linux's `tcp_send_syn_data`: "if the remote SYN-ACK acknowledges only the SYN
//! sequence, the data are retransmitted in the first ACK"). A tap that took SYN data as the first
//! copy of stream offset 0 would read what the server never read: six bytes on a SYN (a PDU
//! header announcing 4 GiB) erase an association's AE titles, a longer decoy replaces them.
//! Suricata and Snort likewise accept SYN data only once the SYN-ACK acknowledges it. Data on a
//! SYN-ACK is the same in the other direction: a client takes it only with Fast Open (Linux
//! otherwise discards it in SYN-SENT), and says so by acknowledging it; a hostile server's decoy
//! there is judged by the client's ACK.
//!
//! So the data of a SYN that opens a direction waits here (one segment, copied, charged to the
//! buffer caps like a buffered piece) until one of these decides it:
//!
//! * the peer acknowledges it (an ACK beyond ISN + 1): Fast Open, delivered as offset 0;
//! * the peer acknowledges the SYN alone (ACK = ISN + 1): dropped by the receiver, dropped here;
//! * the sender's next bytes arrive without a SYN at offset 0: it was sent again because it was
//!   dropped; those bytes are offset 0;
//! * the sender's next bytes start after it: only a sender whose SYN data was taken goes on
//!   there (a one-sided capture, or a SPAN port that showed the SYN-ACK first), so it is
//!   delivered before them;
//! * the flow ends undecided: dropped.
//!
//! Each drop counts in `syn_data_ignored` (and the table reports `tcp.syn_data_ignored`): data on
//! a SYN that the receiver discards is a decoy, not a client.

use pacstap_core::{ChunkBody, Interest};

use super::{seq_delta, Budget, HalfStream, PIECE_OVERHEAD};

/// SYN data waits only while all buffered bytes stay under this fraction of
/// `max_buffered_bytes_total` (see [`HalfStream::syn_data`]).
const SYN_DATA_SHARE: u64 = 4;

/// The data of this direction's SYN, waiting for a verdict.
#[derive(Debug)]
pub(super) struct SynData {
    /// Captured bytes (offset 0 onwards).
    bytes: Vec<u8>,
    /// Bytes the SYN carried on the wire (more than `bytes` when the snaplen cut it).
    wire_len: u64,
}

impl SynData {
    /// What it counts against the buffer caps.
    pub(super) fn charge(&self) -> usize {
        PIECE_OVERHEAD + self.bytes.len()
    }
}

impl HalfStream {
    /// The SYN that starts this direction (offset 0 at its sequence number + 1) carried `len`
    /// bytes, `payload` of them captured. Returns whether they were kept aside; `false` when
    /// the direction already has bytes (a SYN a SPAN port delivered late: its data is then an
    /// ordinary copy of offset 0), which the caller then hands to [`HalfStream::segment`].
    pub fn syn_data(&mut self, payload: &[u8], len: u64, b: &mut Budget<'_>) -> bool {
        if self.syn_data.is_some() {
            // A retransmitted SYN: the first copy waits already.
            return true;
        }
        if self.has_data() || self.fin.is_some() || !self.started {
            return false;
        }
        let kept = SynData {
            bytes: payload.to_vec(),
            wire_len: len.max(payload.len() as u64),
        };
        let charge = kept.charge();
        // SYN data may take at most a quarter of the buffers of all flows: a flood of SYNs with
        // data (each a half-open flow holding a segment until it times out) must not leave the
        // connections in progress without room for their out-of-order segments.
        let share = b.cfg.max_buffered_bytes_total as u64 / SYN_DATA_SHARE;
        if self.charged + charge > b.cfg.max_buffered_bytes_per_dir || b.stats.buffered_bytes + charge as u64 > share {
            // No room to wait: dropped, as most receivers drop it. If the receiver did take it,
            // the bytes after it start beyond a hole that becomes a gap: reported, not invented.
            b.stats.buffer_cap_hits += 1;
            b.stats.syn_data_ignored += 1;
            return true;
        }
        self.charge(charge, b);
        self.syn_data = Some(kept);
        true
    }

    /// The peer acknowledged everything before `ack`: decides waiting SYN data (delivered when
    /// acknowledged, dropped when only the SYN was).
    pub(super) fn syn_data_on_ack<O>(&mut self, ack: u32, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        match seq_delta(ack, self.base) {
            0 => {
                self.drop_syn_data(b);
                Interest::Continue
            }
            d if d > 0 => self.deliver_syn_data(b, out),
            _ => Interest::Continue,
        }
    }

    /// A segment without SYN at `seq`: decides waiting SYN data (see the module docs).
    pub(super) fn syn_data_on_segment<O>(&mut self, seq: u32, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        if seq_delta(seq, self.base) <= 0 {
            self.drop_syn_data(b);
            Interest::Continue
        } else {
            self.deliver_syn_data(b, out)
        }
    }

    /// The waiting SYN data was not taken by the receiver.
    pub(super) fn drop_syn_data(&mut self, b: &mut Budget<'_>) {
        if let Some(d) = self.syn_data.take() {
            self.uncharge(d.charge(), b);
            b.stats.syn_data_ignored += 1;
        }
    }

    /// The waiting SYN data was taken: it is offset 0, delivered like any segment there.
    fn deliver_syn_data<O>(&mut self, b: &mut Budget<'_>, out: &mut O) -> Interest
    where
        O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
    {
        let Some(d) = self.syn_data.take() else {
            return Interest::Continue;
        };
        self.uncharge(d.charge(), b);
        let base = self.base;
        self.segment(base, &d.bytes, d.wire_len, b, out)
    }
}
