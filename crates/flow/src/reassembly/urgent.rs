//! Urgent data: the byte a receiver takes out of the stream.
//!
//! A segment with the URG flag points at the end of "urgent data" (RFC 9293 §3.8.5). Linux and
//! the BSDs (and Windows) read the urgent pointer the BSD way, as the byte after the urgent byte
//! (RFC 6093 §2), and unless the application asked for `SO_OOBINLINE` they take that one byte
//! out of the normal stream: `recv` never returns it (Linux's `tcp_recvmsg` skips `urg_seq`).
//! Checked on this machine's kernel: `send(b"HELLO")`, `send(b"X", MSG_OOB)`, `send(b"WORLD")`
//! is read by the server as `HELLOWORLD`. A tap that keeps the byte reads a stream the server
//! never read: one byte slipped into a C-MOVE-RQ, flagged urgent, shifts every PDU after it and
//! the command is lost (RFC 6093 §6 names this evasion). So the byte is removed here too, and the
//! offsets handed to the decoders count only the bytes the application reads.
//!
//! As in Linux, one urgent byte is pending at a time: a newer pointer replaces one whose byte
//! has not been delivered yet (that byte then stays inline, as it does for a receiver that had
//! not read up to it), and a pointer at bytes already delivered changes nothing.

use pacstap_core::{ChunkBody, Interest};

use super::{seq_delta, Budget, HalfStream};

/// Urgent-byte bookkeeping of one direction.
#[derive(Debug, Default)]
pub(super) struct Urgent {
    /// Stream offset of the urgent byte still to be removed.
    pending: Option<u64>,
    /// Urgent bytes removed so far: what the offsets handed on are shifted by.
    removed: u64,
}

impl HalfStream {
    /// A segment at `seq` carried the URG flag with urgent pointer `ptr`: the byte at
    /// `seq + ptr - 1` is out of band. Returns whether it is a new urgent byte.
    pub fn urgent(&mut self, seq: u32, ptr: u16, b: &mut Budget<'_>) -> bool {
        if ptr == 0 || !self.started {
            return false;
        }
        let byte = seq.wrapping_add(u32::from(ptr) - 1);
        let d = seq_delta(byte, self.next_seq());
        if d < 0 {
            // Already delivered: too late to take it out (Linux: "do not replay urg ptr").
            return false;
        }
        let at = self.next.saturating_add(d.unsigned_abs());
        if self.urgent.pending.is_some_and(|p| at <= p) {
            // The same pointer again (a retransmission), or an older one.
            return false;
        }
        self.urgent.pending = Some(at);
        b.stats.urgent_data += 1;
        true
    }
}

/// Hands `body`, at stream offset `at`, to `out` without the pending urgent byte, at the offset
/// the application's reading would give it. Every delivery of a [`HalfStream`] goes through here.
pub(super) fn emit<O>(u: &mut Urgent, at: u64, body: ChunkBody<'_>, out: &mut O) -> Interest
where
    O: FnMut(u64, ChunkBody<'_>) -> Interest + ?Sized,
{
    let len = match body {
        ChunkBody::Data(d) => d.len() as u64,
        ChunkBody::Gap(n) => n,
        ChunkBody::Close(_) => 0,
    };
    let Some(p) = u.pending.filter(|&p| p < at.saturating_add(len)) else {
        return out(at.saturating_sub(u.removed), body);
    };
    u.pending = None;
    if p < at {
        // Passed without being delivered (the stream was re-based past it): nothing to take.
        return out(at.saturating_sub(u.removed), body);
    }
    let shift = u.removed;
    u.removed += 1;
    let k = usize::try_from(p - at).unwrap_or(usize::MAX);
    match body {
        ChunkBody::Data(d) => {
            let head = d.get(..k).unwrap_or(d);
            let tail = d.get(k.saturating_add(1)..).unwrap_or(&[]);
            if !head.is_empty() && out(at.saturating_sub(shift), ChunkBody::Data(head)) == Interest::Ignore {
                return Interest::Ignore;
            }
            if tail.is_empty() {
                return Interest::Continue;
            }
            out((p + 1).saturating_sub(u.removed), ChunkBody::Data(tail))
        }
        // The urgent byte was lost with the others: the gap is one byte shorter.
        ChunkBody::Gap(n) if n > 1 => out(at.saturating_sub(shift), ChunkBody::Gap(n - 1)),
        ChunkBody::Gap(_) | ChunkBody::Close(_) => Interest::Continue,
    }
}
