//! What a SYN means on a 4-tuple the table already knows (an open connection, or one that just
//! ended), and whether a segment on a just-ended connection carries anything new: the decisions
//! that keep a SPAN port's reordered or duplicated control packets from splitting a connection.

use pacstap_core::{Direction, FlowKey, Packet, Timestamp};

use super::anomaly::SYN_ON_ESTABLISHED;
use super::FlowTable;
use crate::reassembly::seq_delta;

/// How long after a connection ended its own handshake again is taken for a copy: a TCP
/// stack keeps an ended connection's 4-tuple in TIME-WAIT for 2 MSL (RFC 9293 §3.6.1; 60 s on
/// Linux, 240 s on Windows) and no new connection reuses it meanwhile, and two captures merged
/// with their clocks apart are seconds apart, not minutes. Later, the same handshake is a replay
/// (the same capture sent again with tcpreplay, say) and is decoded again.
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// What a SYN on a flow in the table does.
pub(super) enum SynAction {
    /// It belongs to this connection (a retransmission, or the handshake still going on).
    Same,
    /// A confirmed new connection on the same 4-tuple: the SYN-ACK acknowledged the pending SYN.
    Reuse { start: Timestamp, client_isn: u32 },
    /// Not believed (RFC 5961 §4: the endpoint answers with a challenge ACK); no effect.
    Drop(u16),
}

impl<S> FlowTable<S> {
    /// What a SYN (or SYN-ACK) on a flow already in the table means (RFC 5961 §4).
    pub(super) fn syn_on_existing(&mut self, idx: u32, pkt: &Packet<'_>, src_first: bool) -> SynAction {
        let Some(flow) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return SynAction::Same;
        };
        let dir = flow.direction(src_first);
        let seq = pkt.tcp.seq;
        let established = flow.server_isn.is_some() || flow.saw_payload;
        if !pkt.tcp.flags.ack() {
            if !established || (dir == Direction::ToServer && flow.client_isn == Some(seq)) {
                // The handshake is not over (a SYN retried), or this is the SYN retransmitted.
                return SynAction::Same;
            }
            if dir == Direction::ToServer
                && flow.client_isn.is_none()
                && flow.fin_seen.iter().all(|&f| !f)
                && flow.half[dir].starts_after_syn(seq)
            {
                // The connection's own SYN, delivered after its first data: a mirror reorders
                // (one direction's copies queued behind the other's, or a busy collector), and
                // the flow was picked up from that data. Restarting it as a new connection
                // would throw away the association request it already read.
                return SynAction::Same;
            }
            // A new ISN on an open connection: an endpoint answers with a challenge ACK. Only the
            // SYN-ACK acknowledging it would show a real new connection (port reuse).
            flow.pending_syn = Some((seq, pkt.ts, dir));
            if flow.fin_seen.iter().any(|&f| f) {
                // The old connection was closing: port reuse is what is expected.
                return SynAction::Drop(0);
            }
            self.stats.syn_on_established += 1;
            return SynAction::Drop(SYN_ON_ESTABLISHED);
        }
        if let Some((isn, start, syn_dir)) = flow.pending_syn {
            if syn_dir == dir.reverse() && pkt.tcp.ack == isn.wrapping_add(1) {
                return SynAction::Reuse { start, client_isn: isn };
            }
        }
        let own_isn = match dir {
            Direction::ToClient => flow.server_isn,
            Direction::ToServer => flow.client_isn,
        };
        if established && own_isn.is_some_and(|isn| isn != seq) {
            self.stats.syn_on_established += 1;
            return SynAction::Drop(SYN_ON_ESTABLISHED);
        }
        SynAction::Same
    }

    /// What is remembered of the connection on `key` that ended recently, if one did.
    pub(super) fn ended_recently(&self, key: &FlowKey) -> Option<&super::Ended> {
        self.recent_ends.iter().find_map(|g| g.get(key))
    }

    /// Whether `pkt` (not a SYN) on the 4-tuple of a recently ended connection carries only
    /// sequence numbers that connection's sender had already sent.
    pub(super) fn resends_ended(&self, pkt: &Packet<'_>, key: &FlowKey, len: u64) -> bool {
        let side = usize::from(pkt.key.src != key.src);
        let Some(sent) = self
            .ended_recently(key)
            .and_then(|e| e.sent.get(side).copied().flatten())
        else {
            return false;
        };
        let end = pkt.tcp.seq.wrapping_add(u32::try_from(len).unwrap_or(u32::MAX));
        // At or before what was sent, and not so far back (a quarter of the sequence space)
        // that the comparison has wrapped.
        seq_delta(end, sent) <= 0 && seq_delta(sent, end) < 1 << 30
    }

    /// Whether `pkt`, a SYN or SYN-ACK on the 4-tuple of a recently ended connection, is that
    /// connection's own handshake again: the same initial sequence number from the same
    /// endpoint. A mirror's duplicate delivered after the connection closed, or two captures
    /// of one link merged with their clocks apart, repeat whole connections: each copy was
    /// decoded again as a new association (every C-STORE of a C-MOVE counted twice with the
    /// copies 50 ms late). A new connection on the same 4-tuple takes a new ISN (RFC 9293
    /// §3.4.1; Linux reusing a TIME-WAIT 4-tuple starts 64 KiB above the old one's end), so
    /// it is never mistaken for one. Only a connection whose handshake completed (both ISNs
    /// seen) is judged: a SYN retried with its ISN after a RST that refused it may still be
    /// answered, and a copy of a refused handshake carries nothing anyway.
    pub(super) fn repeats_ended_handshake(&self, pkt: &Packet<'_>, key: &FlowKey) -> bool {
        let side = usize::from(pkt.key.src != key.src);
        self.ended_recently(key)
            .filter(|e| e.isn.iter().all(Option::is_some) && pkt.ts.since(e.at) <= REPEAT_WINDOW)
            .and_then(|e| e.isn.get(side).copied().flatten())
            .is_some_and(|isn| isn == pkt.tcp.seq)
    }
}
