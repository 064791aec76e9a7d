//! What a decoder needs from the analyzer for one call: config, the event buffer, counters,
//! the flow and the packet time.

use crate::{ProtoConfig, ProtoStats};
use pacstap_core::{Anomaly, EventBody, FlowMeta, ProtocolEvent, Timestamp};

pub struct Ctx<'a> {
    pub cfg: &'a ProtoConfig,
    pub events: &'a mut Vec<ProtocolEvent>,
    pub stats: &'a mut ProtoStats,
    pub meta: &'a FlowMeta,
    /// Time of the packet being decoded.
    pub ts: Timestamp,
}

impl<'a> Ctx<'a> {
    pub fn new(
        cfg: &'a ProtoConfig,
        events: &'a mut Vec<ProtocolEvent>,
        stats: &'a mut ProtoStats,
        meta: &'a FlowMeta,
        ts: Timestamp,
    ) -> Self {
        Ctx {
            cfg,
            events,
            stats,
            meta,
            ts,
        }
    }

    /// Emit an event of this flow at the current packet time.
    pub fn emit(&mut self, body: EventBody) {
        self.events.push(ProtocolEvent {
            ts: self.ts,
            flow: *self.meta,
            body,
        });
    }

    /// Count an anomaly, and emit it unless this flow already emitted its share
    /// (`emitted` is the flow's own counter; ARCHITECTURE rule 6).
    pub fn flow_anomaly(&mut self, emitted: &mut u32, proto: &'static str, name: &'static str, detail: Option<String>) {
        *self.stats.anomalies.entry(name).or_default() += 1;
        if *emitted < self.cfg.max_anomaly_events_per_flow {
            *emitted += 1;
            self.emit(EventBody::Anomaly(Anomaly { proto, name, detail }));
        }
    }
}
