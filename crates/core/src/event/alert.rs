//! `alert` events (CONTRACT §2): what the detector concluded, with scope and response steps.

use crate::flow::FlowId;
use crate::time::Timestamp;
use crate::vocab::Rule;
use serde::{Serialize, Serializer};

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

    /// Suricata's integer severity (1 most severe, 3 least): what Elastic / OpenSearch / Splunk
    /// Suricata mappings type as an integer. Four words fold into three numbers, so `high` and
    /// `critical` share 1; `severity_name` keeps the word.
    pub fn suricata(self) -> u8 {
        match self {
            Severity::Critical | Severity::High => 1,
            Severity::Warning => 2,
            Severity::Info => 3,
        }
    }
}

/// The Suricata signature of a rule: a stable `signature_id`, a `category` and a title.
///
/// Signature ids sit in 1,000,000–1,999,999, the range the Snort / Suricata SID allocation
/// reserves for local rules, so they never collide with ET / Snort community rules a SIEM
/// already knows. They are fixed forever per rule id (docs/events.md lists them); a rule that
/// changes meaning gets a new `rev`, never a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub id: u32,
    pub rev: u32,
    pub category: &'static str,
    pub title: &'static str,
}

/// Every rule's signature, in CONTRACT §2's order ([`Rule::ALL`]'s; the ids are read from [`Rule`],
/// so the two lists cannot name different rules).
pub const SIGNATURES: [(&str, Signature); 10] = [
    (
        Rule::LoginFailuresUser.as_str(),
        sig(
            1_800_001,
            "Credential Guessing",
            "repeated failed logins for one account",
        ),
    ),
    (
        Rule::LoginFailuresSource.as_str(),
        sig(
            1_800_002,
            "Credential Guessing",
            "repeated failed logins from one source",
        ),
    ),
    (
        Rule::LoginSuccessAfterFailures.as_str(),
        sig(
            1_800_003,
            "Successful Credential Guessing",
            "login succeeded after a failure burst",
        ),
    ),
    (
        Rule::NewDevice.as_str(),
        sig(
            1_800_004,
            "Suspicious Login",
            "login from a device never seen for this account",
        ),
    ),
    (
        Rule::NewLocation.as_str(),
        sig(1_800_005, "Suspicious Login", "login from a new country"),
    ),
    (
        Rule::AdminChange.as_str(),
        sig(1_800_006, "Configuration Change", "admin, permission or node change"),
    ),
    (
        Rule::BulkExport.as_str(),
        sig(1_800_007, "Data Exfiltration", "bulk export of studies"),
    ),
    (
        Rule::ExportAboveBaseline.as_str(),
        sig(1_800_008, "Data Exfiltration", "exports far above the usual"),
    ),
    (
        Rule::UnknownDestination.as_str(),
        sig(
            1_800_009,
            "Data Exfiltration",
            "images or HL7 sent to an unknown destination",
        ),
    ),
    (
        Rule::SharingSpike.as_str(),
        sig(1_800_010, "Data Sharing", "burst of external sharing"),
    ),
];

const fn sig(id: u32, category: &'static str, title: &'static str) -> Signature {
    Signature {
        id,
        rev: 1,
        category,
        title,
    }
}

/// The signature of rule id `rule`; an unknown id (none exists today) gets 1,800,000.
pub fn signature(rule: &str) -> Signature {
    SIGNATURES
        .iter()
        .find(|(r, _)| *r == rule)
        .map(|(_, s)| *s)
        .unwrap_or(sig(1_800_000, "Policy Violation", "pacstap rule"))
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
    #[serde(skip_serializing_if = "super::is_zero_u64")]
    pub destinations_total: u64,
    /// Path of the evidence pcap (`--evidence-dir`), when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
    /// SHA-256 (lower-case hex) of the evidence pcap as written for this alert (CONTRACT §2),
    /// so the file can be shown untouched; the directory's `custody.jsonl` logs every write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap_sha256: Option<String>,
    /// How much moved (CONTRACT §2 `volume`, transfer rules only). Kept here, where every
    /// alert literal already defaults it, but written at the alert's top level
    /// ([`Alert::serialize`]), where the contract puts it.
    #[serde(skip)]
    pub volume: Option<AlertVolume>,
    /// Incident ids of other incidents about the same story (a C-MOVE's `bulk_export` and the
    /// `unknown_destination` of the AE its images went to). Written at the top level as
    /// `related`, like `volume`.
    #[serde(skip)]
    pub related: Vec<String>,
}

/// `volume` of a transfer alert: distinct studies, instances (C-STOREs that carried data,
/// including a C-MOVE's sub-operations) and data set / payload bytes seen on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertVolume {
    pub studies: u64,
    pub instances: u64,
    pub bytes: u64,
}

/// One alert (a rule firing, or the update of a growing incident). Serialized as Suricata's
/// alert object plus pacstap's fields (see [`Alert::serialize`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Rule id from CONTRACT §2 (`login_failures_user`, `bulk_export`, …).
    pub rule: String,
    pub severity: Severity,
    pub entity: AlertEntity,
    pub count: u64,
    pub threshold: Option<u64>,
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
    /// The same for an incident's first alert and all its updates (CONTRACT §2).
    pub incident_id: String,
}

/// The wire form of an [`Alert`]: Suricata's fields first, with Suricata's types (`severity`
/// an integer), then pacstap's. A borrowed view, so serializing copies nothing.
#[derive(Serialize)]
struct AlertEve<'a> {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: String,
    category: &'static str,
    severity: u8,
    severity_name: &'static str,
    rule: &'a str,
    entity: &'a AlertEntity,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_seconds: Option<u64>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    summary: &'a str,
    evidence: &'a AlertEvidence,
    response: &'a [String],
    update: bool,
    incident_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume: Option<&'a AlertVolume>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    related: &'a [String],
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sig = signature(&self.rule);
        AlertEve {
            // A passive tap never blocks: Suricata's word for an alert that let traffic pass.
            action: "allowed",
            gid: 1,
            signature_id: sig.id,
            rev: sig.rev,
            signature: format!(
                "PACSTAP {} {}: {} {}",
                self.rule, sig.title, self.entity.kind, self.entity.id
            ),
            category: sig.category,
            severity: self.severity.suricata(),
            severity_name: self.severity.as_str(),
            rule: &self.rule,
            entity: &self.entity,
            count: self.count,
            threshold: self.threshold,
            window_seconds: self.window_seconds,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            summary: &self.summary,
            evidence: &self.evidence,
            response: &self.response,
            update: self.update,
            incident_id: &self.incident_id,
            volume: self.evidence.volume.as_ref(),
            related: &self.evidence.related,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_serialize_as_suricata_alert_objects() {
        let a = Alert {
            rule: "bulk_export".into(),
            severity: Severity::High,
            entity: AlertEntity {
                kind: "ae".into(),
                id: "WS1".into(),
            },
            count: 16,
            threshold: Some(15),
            window_seconds: Some(1800),
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            summary: "s".into(),
            evidence: AlertEvidence::default(),
            response: vec![],
            update: false,
            incident_id: "00ff".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["severity"], 1);
        assert_eq!(v["severity_name"], "high");
        assert_eq!(v["signature_id"], 1_800_007);
        assert_eq!(v["gid"], 1);
        assert_eq!(v["rev"], 1);
        assert_eq!(v["action"], "allowed");
        assert_eq!(v["category"], "Data Exfiltration");
        assert_eq!(v["signature"], "PACSTAP bulk_export bulk export of studies: ae WS1");
        assert_eq!(v["incident_id"], "00ff");
        assert_eq!(v["rule"], "bulk_export");
    }

    #[test]
    fn the_signature_table_lists_the_rules_in_their_order() {
        let ids: Vec<&str> = SIGNATURES.iter().map(|(r, _)| *r).collect();
        let rules: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(ids, rules);
        assert_eq!(signature(Rule::SharingSpike.as_str()).id, 1_800_010);
    }

    #[test]
    fn signature_ids_are_unique_and_in_the_local_range() {
        let mut ids: Vec<u32> = SIGNATURES.iter().map(|(_, s)| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SIGNATURES.len());
        assert!(ids.iter().all(|i| (1_000_000..2_000_000).contains(i)));
        assert_eq!(Severity::Info.suricata(), 3);
        assert_eq!(Severity::Warning.suricata(), 2);
        assert_eq!(Severity::Critical.suricata(), 1);
    }

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
