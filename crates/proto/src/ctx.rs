//! What a decoder needs from the analyzer for one call: config, the event buffer, counters,
//! the flow and the packet time, and the flow's share of the decoder memory budget.

use crate::anomaly::AnomalyKind;
use crate::budget::{Lease, MemBudget};
use crate::{ProtoConfig, ProtoStats};
use pacstap_core::{Anomaly, EventBody, FlowMeta, ProtocolEvent, Timestamp};

pub struct Ctx<'a> {
    pub cfg: &'a ProtoConfig,
    pub events: &'a mut Vec<ProtocolEvent>,
    pub stats: &'a mut ProtoStats,
    pub meta: &'a FlowMeta,
    /// Time of the packet being decoded.
    pub ts: Timestamp,
    /// The worker's decoder memory budget.
    pub budget: &'a mut MemBudget,
    /// This flow's charge against it (copied in and out by the analyzer).
    pub lease: Lease,
}

impl<'a> Ctx<'a> {
    pub fn new(
        cfg: &'a ProtoConfig,
        events: &'a mut Vec<ProtocolEvent>,
        stats: &'a mut ProtoStats,
        meta: &'a FlowMeta,
        ts: Timestamp,
        budget: &'a mut MemBudget,
        lease: Lease,
    ) -> Self {
        Ctx {
            cfg,
            events,
            stats,
            meta,
            ts,
            budget,
            lease,
        }
    }

    /// Make room for `more` bytes in a decoder buffer of this flow, charged to the budget;
    /// `false` when the budget refuses (the caller gives up buffering that message and says
    /// so with its protocol's `memory_budget` anomaly). Counted in
    /// [`ProtoStats::memory_cap_hits`].
    pub fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        if self.budget.reserve(&mut self.lease, buf, more) {
            return true;
        }
        self.stats.memory_cap_hits += 1;
        false
    }

    /// The anomaly detail of a refusal: what was wanted and how full the budget is.
    pub fn budget_detail(&self, what: std::fmt::Arguments<'_>) -> String {
        format!(
            "{what}: decoder memory budget exhausted ({} of {} bytes in use, this flow holds {})",
            self.budget.used(),
            self.budget.limit(),
            self.lease.held()
        )
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
    pub fn flow_anomaly<A: AnomalyKind>(&mut self, emitted: &mut u32, kind: A, detail: Option<String>) {
        let (proto, name) = (A::PROTO, kind.name());
        *self.stats.anomalies.entry(name).or_default() += 1;
        if *emitted < self.cfg.max_anomaly_events_per_flow {
            *emitted += 1;
            self.emit(EventBody::Anomaly(Anomaly { proto, name, detail }));
        }
    }
}
