//! One incident per (rule, entity): opened when the rule fires, grown by later events,
//! reported again (as `update: true`) at a bounded rate, closed (re-armed) when the count falls
//! back to the threshold or the entity is quiet for the rule's window.

use crate::rule::Rule;
use pacstap_core::{AlertEvidence, AlertVolume, FlowId, FlowMeta, Severity};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// Evidence lists are capped; totals beside them count everything, exactly up to
/// `max_tracked` distinct items per incident and approximately past it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EvidenceCaps {
    pub flows: usize,
    pub studies: usize,
    pub destinations: usize,
    pub tracked: usize,
}

/// Things named in the summary (destinations, devices, actions, sources): at most this many.
const MAX_DETAILS: usize = 10;
/// Related incidents named (`related`): one story rarely has more than a request, its
/// destination and a login before it; past this the rest are dropped.
const MAX_RELATED: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub rule: Rule,
    pub severity: Severity,
    /// Why the severity was raised to critical.
    pub correlation: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The rule's current count (window count, or occurrences for instant rules).
    pub count: u64,
    pub threshold: Option<u64>,
    /// Window in nanoseconds.
    pub window: i64,
    flows: Vec<FlowId>,
    flow_set: HashSet<FlowId>,
    last_added_flow: Option<FlowId>,
    pub flows_total: u64,
    studies: Vec<String>,
    study_set: HashSet<u64>,
    pub studies_total: u64,
    destinations: Vec<String>,
    /// Hashes of the destinations counted (bounded by `tracked`, like the study keys).
    destination_set: HashSet<u64>,
    pub destinations_total: u64,
    /// `bulk_export` counting HTTPS bytes served to a client rather than studies: `count`,
    /// `threshold` and `peak` are bytes. Fixed when the incident opens.
    pub bytes: bool,
    pub details: Vec<String>,
    pub details_total: u64,
    /// A second list for rules that name two kinds of thing (e.g. sources and accounts).
    pub extra: Vec<String>,
    pub last_flow: FlowMeta,
    reported_at: i64,
    reported_count: u64,
    reported_studies: u64,
    reported_details: u64,
    reported_destinations: u64,
    reported_related: usize,
    /// Peak count while open.
    pub peak: u64,
    /// The flow every alert of this incident names in its 5-tuple: the one of its first alert,
    /// so a SIEM sees one incident as one connection however many flows join it later.
    pub alert_flow: Option<FlowMeta>,
    /// Set at the first alert; the same on every update (CONTRACT §2 `incident_id`).
    pub incident_id: String,
    /// Instances (C-STOREs, a C-MOVE's sub-operations) and their data set bytes behind a
    /// transfer incident (`volume`).
    pub instances: u64,
    pub moved_bytes: u64,
    /// Incident ids of the other incidents of the same story (`related`).
    pub related: Vec<String>,
    /// The entity is one the site knows (an inventory AE, an internal address): its
    /// response steps check with its owner rather than block it (`text::contain`).
    pub entity_known: bool,
    /// The entity's configured display name and role (`CT scanner 2, modality`), shown
    /// beside its id in the summary.
    pub entity_label: Option<String>,
    /// An export went to a destination the inventory does not know (block it) rather than
    /// to one of the site's nodes (never block those).
    pub dest_unknown: bool,
}

/// A stable incident id: FNV-1a (64 bit) over the rule, the entity and the packet time the
/// incident opened, in hex. Deterministic, so replay and live capture of the same packets give
/// the same ids; unique, because one entity has at most one open incident per rule, and a new
/// one opens later.
pub(crate) fn incident_id(rule: &str, kind: &str, id: &str, first_seen: i64) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let ts = first_seen.to_be_bytes();
    for part in [rule.as_bytes(), kind.as_bytes(), id.as_bytes(), &ts[..]] {
        for b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:016x}")
}

impl Incident {
    pub(crate) fn new(
        rule: Rule,
        severity: Severity,
        ts: i64,
        window: i64,
        threshold: Option<u64>,
        flow: FlowMeta,
    ) -> Self {
        Incident {
            rule,
            severity,
            correlation: None,
            first_seen: ts,
            last_seen: ts,
            count: 0,
            threshold,
            window,
            flows: Vec::new(),
            flow_set: HashSet::new(),
            last_added_flow: None,
            flows_total: 0,
            studies: Vec::new(),
            study_set: HashSet::new(),
            studies_total: 0,
            destinations: Vec::new(),
            destination_set: HashSet::new(),
            destinations_total: 0,
            bytes: false,
            details: Vec::new(),
            details_total: 0,
            extra: Vec::new(),
            last_flow: flow,
            reported_at: ts,
            reported_count: 0,
            reported_studies: 0,
            reported_details: 0,
            reported_destinations: 0,
            reported_related: 0,
            peak: 0,
            alert_flow: None,
            incident_id: String::new(),
            instances: 0,
            moved_bytes: 0,
            related: Vec::new(),
            entity_known: false,
            entity_label: None,
            dest_unknown: false,
        }
    }

    /// Add what one transfer moved (saturating: the counts come from the wire).
    pub(crate) fn add_volume(&mut self, instances: u64, bytes: u64) {
        self.instances = self.instances.saturating_add(instances);
        self.moved_bytes = self.moved_bytes.saturating_add(bytes);
    }

    /// Name another incident of the same story; returns whether it is new here.
    pub(crate) fn add_related(&mut self, id: &str) -> bool {
        if id.is_empty() || id == self.incident_id || self.related.len() >= MAX_RELATED {
            return false;
        }
        if self.related.iter().any(|r| r == id) {
            return false;
        }
        self.related.push(id.to_string());
        true
    }

    /// `volume` of a transfer incident: its distinct studies, instances and bytes (an HTTPS
    /// byte-counting `bulk_export` has only bytes: its count).
    pub(crate) fn volume(&self) -> Option<AlertVolume> {
        if !(self.rule.is_export() || self.rule == Rule::UnknownDestination) {
            return None;
        }
        Some(AlertVolume {
            studies: self.studies_total,
            instances: self.instances,
            bytes: if self.bytes {
                self.peak.max(self.count).max(self.moved_bytes)
            } else {
                self.moved_bytes
            },
        })
    }

    pub(crate) fn seen(&mut self, ts: i64) {
        self.first_seen = self.first_seen.min(ts);
        self.last_seen = self.last_seen.max(ts);
    }

    pub(crate) fn set_count(&mut self, count: u64) {
        self.count = count;
        self.peak = self.peak.max(count);
    }

    pub(crate) fn add_flow(&mut self, f: FlowId, caps: EvidenceCaps) {
        if self.last_added_flow == Some(f) {
            return;
        }
        self.last_added_flow = Some(f);
        if self.flow_set.len() < caps.tracked {
            if !self.flow_set.insert(f) {
                return;
            }
        } else if self.flow_set.contains(&f) {
            return;
        }
        self.flows_total += 1;
        if self.flows.len() < caps.flows {
            self.flows.push(f);
        }
    }

    /// Returns whether the study is new to this incident.
    pub(crate) fn add_study(&mut self, key: u64, uid: &str, caps: EvidenceCaps) -> bool {
        if self.study_set.len() < caps.tracked {
            if !self.study_set.insert(key) {
                return false;
            }
        } else if self.study_set.contains(&key) {
            return false;
        }
        self.studies_total += 1;
        if self.studies.len() < caps.studies {
            self.studies.push(uid.to_string());
        }
        true
    }

    /// Returns whether the destination is new to this incident.
    pub(crate) fn add_destination(&mut self, d: &str, caps: EvidenceCaps) -> bool {
        // SipHash with fixed keys: the same destination always hashes alike within a run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.hash(&mut h);
        let key = h.finish();
        if self.destination_set.len() < caps.tracked {
            if !self.destination_set.insert(key) {
                return false;
            }
        } else if self.destination_set.contains(&key) {
            return false;
        }
        self.destinations_total += 1;
        if self.destinations.len() < caps.destinations {
            self.destinations.push(d.to_string());
        }
        true
    }

    pub(crate) fn add_detail(&mut self, d: &str) {
        if self.details.iter().any(|x| x == d) {
            return;
        }
        self.details_total += 1;
        if self.details.len() < MAX_DETAILS {
            self.details.push(d.to_string());
        }
    }

    pub(crate) fn add_extra(&mut self, d: &str) {
        if self.extra.len() < MAX_DETAILS && !self.extra.iter().any(|x| x == d) {
            self.extra.push(d.to_string());
        }
    }

    /// Something grew since the last report.
    pub(crate) fn grown(&self) -> bool {
        self.peak > self.reported_count
            || self.studies_total > self.reported_studies
            || self.details_total > self.reported_details
            || self.destinations_total > self.reported_destinations
            || self.related.len() > self.reported_related
    }

    /// Report again now? When something grew, at most once per `interval`, or at once when the
    /// count grew by a threshold's worth (instant rules: by 10).
    pub(crate) fn update_due(&self, now: i64, interval: i64) -> bool {
        if !self.grown() {
            return false;
        }
        let step = self.threshold.unwrap_or(10).max(1);
        let jumped = self.peak >= self.reported_count.saturating_add(step)
            || self.studies_total >= self.reported_studies.saturating_add(step);
        jumped || now.saturating_sub(self.reported_at) >= interval
    }

    pub(crate) fn mark_reported(&mut self, now: i64) {
        self.reported_at = now;
        self.reported_count = self.peak.max(self.count);
        self.reported_studies = self.studies_total;
        self.reported_details = self.details_total;
        self.reported_destinations = self.destinations_total;
        self.reported_related = self.related.len();
    }

    pub(crate) fn evidence(&self) -> AlertEvidence {
        AlertEvidence {
            flow_ids: self.flows.clone(),
            flow_ids_total: self.flows_total,
            study_instance_uids: self.studies.clone(),
            study_instance_uids_total: self.studies_total,
            destinations: self.destinations.clone(),
            destinations_total: self.destinations_total,
            pcap: None,
            pcap_sha256: None,
            volume: self.volume(),
            related: self.related.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::{Endpoint, Timestamp};

    fn meta() -> FlowMeta {
        let ep = Endpoint::new("10.0.0.1".parse().unwrap(), 1);
        FlowMeta {
            id: FlowId(1),
            client: ep,
            server: ep,
            start: Timestamp(0),
            handshake_seen: true,
        }
    }

    #[test]
    fn incident_ids_are_stable_and_distinct() {
        let a = incident_id("bulk_export", "ae", "WS1", 5);
        assert_eq!(a, incident_id("bulk_export", "ae", "WS1", 5));
        assert_eq!(a.len(), 16);
        for other in [
            incident_id("bulk_export", "ae", "WS1", 6),
            incident_id("bulk_export", "user", "WS1", 5),
            incident_id("new_device", "ae", "WS1", 5),
            // The separators keep "ab"+"c" apart from "a"+"bc".
            incident_id("bulk_export", "ae", "WS", 5),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn evidence_is_capped_with_totals() {
        let caps = EvidenceCaps {
            flows: 2,
            studies: 3,
            destinations: 2,
            tracked: 100,
        };
        let mut i = Incident::new(Rule::BulkExport, Severity::High, 0, 10, Some(15), meta());
        for n in 0..10u64 {
            i.add_flow(FlowId(n % 4), caps);
            i.add_study(n % 7, &format!("1.2.{}", n % 7), caps);
        }
        let e = i.evidence();
        assert_eq!(e.flow_ids.len(), 2);
        assert_eq!(e.flow_ids_total, 4);
        assert_eq!(e.study_instance_uids, vec!["1.2.0", "1.2.1", "1.2.2"]);
        assert_eq!(e.study_instance_uids_total, 7);
        assert!(e.destinations.is_empty() && e.destinations_total == 0);
        for d in [
            "EXTPACS (198.51.100.7:104)",
            "WS2 (10.20.30.32)",
            "EXTPACS (198.51.100.7:104)",
            "10.20.30.31",
        ] {
            i.add_destination(d, caps);
        }
        let e = i.evidence();
        assert_eq!(e.destinations, vec!["EXTPACS (198.51.100.7:104)", "WS2 (10.20.30.32)"]);
        assert_eq!(e.destinations_total, 3);
    }

    #[test]
    fn a_new_destination_is_growth() {
        let caps = EvidenceCaps {
            flows: 10,
            studies: 10,
            destinations: 10,
            tracked: 100,
        };
        let mut i = Incident::new(Rule::UnknownDestination, Severity::High, 0, 10, None, meta());
        i.add_destination("198.51.100.7:2575", caps);
        i.mark_reported(0);
        assert!(!i.grown());
        assert!(!i.add_destination("198.51.100.7:2575", caps));
        assert!(!i.grown(), "the same destination again");
        i.add_destination("198.51.100.8:2575", caps);
        assert!(i.grown());
    }

    #[test]
    fn updates_are_rate_limited() {
        let mut i = Incident::new(Rule::BulkExport, Severity::High, 0, 10, Some(15), meta());
        i.set_count(16);
        i.mark_reported(0);
        i.set_count(17);
        assert!(!i.update_due(10, 60), "small growth waits for the interval");
        assert!(i.update_due(60, 60));
        i.set_count(31);
        assert!(i.update_due(11, 60), "a threshold's worth reports at once");
        i.mark_reported(11);
        assert!(!i.update_due(1000, 60), "nothing grew");
    }
}
