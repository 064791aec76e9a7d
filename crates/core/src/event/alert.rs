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
    /// Path of the evidence pcap (`--evidence-dir`), when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
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
