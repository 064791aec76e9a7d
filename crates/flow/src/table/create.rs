//! Starting a flow for a packet no flow has: which side is the client (from the handshake when
//! it was seen, else a guess from the ports), its id, its slot in the table, and whether it is
//! data on a connection that just ended.

use pacstap_core::{CloseReason, FlowId, FlowKey, FlowMeta, Packet, PerDirection, StreamHandler, Timestamp};

use super::anomaly::DATA_AFTER_CLOSE;
use super::{Flow, FlowTable};
use crate::activity::{Class, NIL};
use crate::control::dropped_without_ack;
use crate::paws::Paws;

impl<S: Default> FlowTable<S> {
    /// Start a flow for `pkt` (first seen at `start`), or count the packet as ignored.
    pub(super) fn create<H: StreamHandler<S>>(
        &mut self,
        pkt: &Packet<'_>,
        key: FlowKey,
        len: u64,
        start: Timestamp,
        h: &mut H,
    ) -> Option<u32> {
        let flags = pkt.tcp.flags;
        // A packet with neither SYN nor payload tells nothing about a connection we do not know
        // (a bare ACK, a FIN or RST of one that already ended); a RST ends rather than starts.
        if flags.rst() || !(flags.syn() || len > 0) {
            self.stats.ignored_packets += 1;
            return None;
        }
        if dropped_without_ack(flags, len) {
            // No receiver takes it, so it starts nothing.
            self.stats.without_ack += 1;
            self.stats.ignored_packets += 1;
            return None;
        }
        if flags.syn() && self.repeats_ended_handshake(pkt, &key) {
            // The ended connection's own SYN (or SYN-ACK) again: its copies follow, and the
            // data among them is a resend too (below).
            self.stats.ignored_packets += 1;
            return None;
        }
        if !flags.syn() && self.resends_ended(pkt, &key, len) {
            // A copy of bytes the ended connection already carried (a SPAN's duplicate or a
            // retransmission delivered after the FINs): nothing new, no new flow.
            self.stats.ignored_packets += 1;
            return None;
        }
        if self.index.len() >= self.max_flows() {
            self.stats.flow_table_full += 1;
            if let Some((victim, class)) = self.activity.victim() {
                self.stats.flows_evicted += 1;
                match class {
                    Class::NoPayload => self.stats.evicted_half_open += 1,
                    Class::Ignored => self.stats.evicted_established += 1,
                    Class::Decoding => self.stats.evicted_decoding += 1,
                }
                self.end_flow(victim, CloseReason::Evicted, self.clock.now(), h);
            }
        }
        let (src, dst) = (pkt.key.src, pkt.key.dst);
        // RFC 9293 §3.5: the active opener sends SYN, the passive one answers SYN-ACK.
        let (client, server, handshake_seen) = if flags.syn() && !flags.ack() {
            (src, dst, true)
        } else if flags.syn() {
            (dst, src, true)
        } else {
            // Mid-stream: services listen on the lower (well-known or registered) port and
            // clients connect from ephemeral ones, so guess the lower port is the server.
            self.stats.midstream_pickups += 1;
            if src.port < dst.port {
                (dst, src, false)
            } else {
                (src, dst, false)
            }
        };
        let mut id = FlowId::derive(&key, start);
        while self.recent_ids.contains(&id) {
            id = id.next();
        }
        let flow = Flow {
            key,
            meta: FlowMeta {
                id,
                client,
                server,
                start,
                handshake_seen,
            },
            client_first: client == key.src,
            half: Default::default(),
            state: S::default(),
            last_active: self.clock.now(),
            ignored: false,
            fin_seen: PerDirection::default(),
            client_isn: None,
            server_isn: None,
            saw_payload: false,
            seqs: Default::default(),
            wscale: PerDirection::default(),
            paws: Paws::default(),
            pending_syn: None,
            seen: PerDirection::default(),
            last_frame: PerDirection::default(),
            anomaly_events: 0,
            causal: None,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(slot) = self.slots.get_mut(idx as usize) {
                    *slot = Some(flow);
                }
                idx
            }
            None => {
                let idx = u32::try_from(self.slots.len()).unwrap_or(NIL);
                self.slots.push(Some(flow));
                self.activity.grow_to(idx);
                idx
            }
        };
        self.index.insert(key, idx);
        self.activity.push_back(idx, Class::NoPayload);
        self.stats.flows_created += 1;
        if !handshake_seen && self.ended_recently(&key).is_some() {
            // Data on a 4-tuple whose connection just ended: decoded (as a mid-stream flow) and
            // flagged, since a connection that really ended carries no more data.
            self.stats.data_after_close += 1;
            self.report(idx, DATA_AFTER_CLOSE, pkt.ts);
        }
        Some(idx)
    }
}
