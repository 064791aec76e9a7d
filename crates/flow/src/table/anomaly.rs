//! The flow stage's `tcp.*` anomalies: their names, the per-packet mask they are collected in,
//! and their events, within each flow's share (`max_anomaly_events_per_flow`).

use pacstap_core::{Anomaly, EventBody, ProtocolEvent, Timestamp};

use super::FlowTable;

/// The `tcp.*` anomaly names, as bits of a per-packet mask.
pub(super) const ANOMALY_NAMES: [&str; 15] = [
    "tcp.bad_checksum",
    "tcp.rst_in_window",
    "tcp.rst_out_of_window",
    "tcp.syn_on_established",
    "tcp.data_after_close",
    "tcp.overlap_conflict",
    "tcp.timestamp_jump",
    "tcp.syn_data_ignored",
    "tcp.fin_ignored",
    "tcp.urgent_data",
    "tcp.paws_rejected",
    "tcp.low_ttl_decoy",
    "tcp.rst_low_ttl",
    "tcp.without_ack",
    "tcp.data_out_of_window",
];
pub(super) const BAD_CHECKSUM: u16 = 1 << 0;
pub(super) const RST_IN_WINDOW: u16 = 1 << 1;
pub(super) const RST_OUT_OF_WINDOW: u16 = 1 << 2;
pub(super) const SYN_ON_ESTABLISHED: u16 = 1 << 3;
pub(super) const DATA_AFTER_CLOSE: u16 = 1 << 4;
pub(super) const OVERLAP_CONFLICT: u16 = 1 << 5;
pub(super) const TIMESTAMP_JUMP: u16 = 1 << 6;
pub(super) const SYN_DATA_IGNORED: u16 = 1 << 7;
pub(super) const FIN_IGNORED: u16 = 1 << 8;
pub(super) const URGENT_DATA: u16 = 1 << 9;
pub(super) const PAWS_REJECTED: u16 = 1 << 10;
pub(super) const LOW_TTL_DECOY: u16 = 1 << 11;
pub(super) const RST_LOW_TTL: u16 = 1 << 12;
pub(super) const WITHOUT_ACK: u16 = 1 << 13;
pub(super) const DATA_OUT_OF_WINDOW: u16 = 1 << 14;

impl<S> FlowTable<S> {
    /// Emit the anomalies of `mask` on flow `idx`, within its share of events.
    pub(super) fn report(&mut self, idx: u32, mask: u16, ts: Timestamp) {
        let cap = self.cfg.max_anomaly_events_per_flow;
        let Some(flow) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        for (bit, name) in ANOMALY_NAMES.iter().enumerate() {
            if mask & (1 << bit) != 0 && flow.anomaly_events < cap {
                flow.anomaly_events += 1;
                self.events.push(ProtocolEvent {
                    ts,
                    flow: flow.meta,
                    body: EventBody::Anomaly(Anomaly {
                        proto: "tcp",
                        name,
                        detail: None,
                    }),
                });
            }
        }
    }
}
