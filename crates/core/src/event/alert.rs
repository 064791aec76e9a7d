//! `alert` events (CONTRACT §2): what the detector concluded, with scope and response steps.

use crate::flow::FlowId;
use crate::time::Timestamp;
use serde::Serialize;

/// Alert severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Who or what an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AlertEntity {
    /// `user`, `ae`, `ip`, `device`.
    pub kind: String,
    pub id: String,
}

/// The scope behind an alert: capped lists with their full counts beside them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertEvidence {
    pub flow_ids: Vec<FlowId>,
    pub flow_ids_total: u64,
    pub study_instance_uids: Vec<String>,
    pub study_instance_uids_total: u64,
    /// Extension: where the data went, capped like the other lists: a C-MOVE's move
    /// destination AE with the address its C-STOREs went to (`EXTPACS (198.51.100.7:104)`), a
    /// C-GET requester (`WS2 (10.20.30.32)`), the AE / address a C-STORE went to, a WADO /
    /// HTTPS client address (`10.20.30.31`), an HL7 receiver (`198.51.100.7:2575`), share
    /// recipients. Absent (with its total) for rules about no transfer, such as failed logins,
    /// new devices or admin changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Extension: distinct destinations of the incident (the list above shows the first ones).
    #[serde(skip_serializing_if = "is_zero")]
    pub destinations_total: u64,
    /// Path of the evidence pcap (`--evidence-dir`), when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One alert (a rule firing, or the update of a growing incident).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Rule id from CONTRACT §2 (`login_failures_user`, `bulk_export`, …).
    pub rule: String,
    pub severity: Severity,
    pub entity: AlertEntity,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// One human sentence.
    pub summary: String,
    pub evidence: AlertEvidence,
    /// First steps of the response routine, as short imperative strings naming the entity.
    pub response: Vec<String>,
    /// Extension: false for the first alert of an incident, true for its updates.
    pub update: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_appear_only_when_there_are_some() {
        let mut e = AlertEvidence {
            flow_ids: vec![FlowId(7)],
            flow_ids_total: 1,
            ..AlertEvidence::default()
        };
        let v = serde_json::to_value(&e).unwrap();
        assert!(
            v.get("destinations").is_none() && v.get("destinations_total").is_none(),
            "{v}"
        );
        assert_eq!(v["study_instance_uids_total"], 0, "existing fields stay as they were");
        e.destinations = vec!["EXTPACS (198.51.100.7:104)".into()];
        e.destinations_total = 3;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["destinations"][0], "EXTPACS (198.51.100.7:104)");
        assert_eq!(v["destinations_total"], 3);
    }
}
