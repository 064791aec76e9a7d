//! What Alertmanager receives: an `alert` event turned into a `postableAlert` (Alertmanager API
//! v2), its labels and annotations bounded (the entity comes off the wire). See the module doc of
//! [`crate::alertmanager`] for the choice of labels and times.

use pacstap_core::{Alert, Timestamp};
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Label values come from the wire (a user name in a Basic-auth header): keep them bounded.
const MAX_LABEL_CHARS: usize = 256;
const MAX_ANNOTATION_CHARS: usize = 4096;

/// `s`, cut to `max` characters (an ellipsis marks the cut).
pub(super) fn capped(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An alert as queued: Alertmanager's labels and annotations, plus the times `endsAt` is
/// computed from at sending.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QueuedAlert {
    /// Hash of `labels`, to find a queued alert of the same incident quickly.
    pub(super) key: u64,
    pub(super) labels: BTreeMap<&'static str, String>,
    pub(super) annotations: BTreeMap<&'static str, String>,
    pub(super) first_seen: Timestamp,
    pub(super) last_seen: Timestamp,
}

impl QueuedAlert {
    pub(super) fn new(a: &Alert) -> QueuedAlert {
        let label = |s: &str| capped(s, MAX_LABEL_CHARS);
        let labels: BTreeMap<&'static str, String> = [
            ("alertname", label(&format!("pacstap_{}", a.rule))),
            ("rule", label(&a.rule)),
            ("severity", a.severity.as_str().to_owned()),
            ("entity_kind", label(&a.entity.kind)),
            ("entity", label(&a.entity.id)),
        ]
        .into_iter()
        .collect();
        let note = |s: &str| capped(s, MAX_ANNOTATION_CHARS);
        let mut annotations = BTreeMap::new();
        annotations.insert("summary", note(&a.summary));
        if !a.response.is_empty() {
            annotations.insert("response", note(&a.response.join("\n")));
        }
        annotations.insert("count", a.count.to_string());
        if let Some(t) = a.threshold {
            annotations.insert("threshold", t.to_string());
        }
        if let Some(w) = a.window_seconds {
            annotations.insert("window_seconds", w.to_string());
        }
        annotations.insert("first_seen", a.first_seen.rfc3339());
        annotations.insert("last_seen", a.last_seen.rfc3339());
        let ev = &a.evidence;
        if !ev.flow_ids.is_empty() {
            let ids: Vec<String> = ev.flow_ids.iter().map(|f| f.0.to_string()).collect();
            annotations.insert("flow_ids", note(&ids.join(",")));
            annotations.insert(
                "flows_total",
                ev.flow_ids_total.max(ev.flow_ids.len() as u64).to_string(),
            );
        }
        if ev.study_instance_uids_total > 0 {
            // The total only: study UIDs stay in the events file.
            annotations.insert("studies_total", ev.study_instance_uids_total.to_string());
        }
        if let Some(p) = &ev.pcap {
            annotations.insert("evidence_pcap", note(p));
        }
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        QueuedAlert {
            key: h.finish(),
            labels,
            annotations,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
        }
    }
}

/// One element of the POST body (Alertmanager API v2 `postableAlert`).
#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<&'static str, String>,
    annotations: &'a BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt", skip_serializing_if = "Option::is_none")]
    starts_at: Option<Timestamp>,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<Timestamp>,
}

pub(super) fn wall_clock() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| Timestamp::from_secs_nanos(d.as_secs(), u64::from(d.subsec_nanos())))
        .unwrap_or(Timestamp::ZERO)
}

/// The POST body: a JSON array of `postableAlert`s.
pub(super) fn body(batch: &[QueuedAlert], resolve_after: Option<Duration>) -> Vec<u8> {
    let now = wall_clock();
    let alerts: Vec<PostableAlert<'_>> = batch
        .iter()
        .map(|q| PostableAlert {
            labels: &q.labels,
            annotations: &q.annotations,
            starts_at: (q.first_seen.0 > 0).then_some(q.first_seen),
            ends_at: resolve_after.map(|d| q.first_seen.max(q.last_seen).max(now).add(d)),
        })
        .collect();
    // Maps of strings and timestamps: serializing cannot fail; an empty array if it did.
    serde_json::to_vec(&alerts).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::{AlertEntity, AlertEvidence, FlowId, Severity};

    fn alert(entity: &str) -> Alert {
        Alert {
            rule: "new_device".into(),
            severity: Severity::High,
            entity: AlertEntity {
                kind: "user".into(),
                id: entity.into(),
            },
            count: 1,
            threshold: None,
            window_seconds: None,
            first_seen: Timestamp::from_secs_nanos(1_795_773_601, 123_456_000),
            last_seen: Timestamp::from_secs_nanos(1_795_773_700, 0),
            summary: "s".into(),
            evidence: AlertEvidence {
                flow_ids: vec![FlowId(11)],
                ..AlertEvidence::default()
            },
            response: vec!["contain".into()],
            update: false,
            incident_id: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn labels_are_capped_and_empty_annotations_left_out() {
        let mut a = alert(&"x".repeat(10_000));
        let q = QueuedAlert::new(&a);
        assert_eq!(q.labels["entity"].chars().count(), MAX_LABEL_CHARS);
        assert!(q.labels["entity"].ends_with('…'));
        assert_eq!(q.annotations["flows_total"], "1");
        a.evidence.pcap = Some("/var/lib/pacstap/evidence/a.pcap".into());
        a.response.clear();
        let q = QueuedAlert::new(&a);
        assert_eq!(q.annotations["evidence_pcap"], "/var/lib/pacstap/evidence/a.pcap");
        assert!(!q.annotations.contains_key("response"));
        assert!(!q.annotations.contains_key("threshold"));
        assert_eq!(capped("abc", 3), "abc");
        assert_eq!(capped("abcd", 3), "ab…");
    }

    #[test]
    fn the_body_is_a_json_array_with_starts_at_and_optional_ends_at() {
        let q = QueuedAlert::new(&alert("rad1"));
        let v: serde_json::Value = serde_json::from_slice(&body(std::slice::from_ref(&q), None)).unwrap();
        assert_eq!(v[0]["startsAt"], "2026-11-27T10:00:01.123456Z");
        assert!(v[0].get("endsAt").is_none());
        assert_eq!(v[0]["labels"]["alertname"], "pacstap_new_device");
        let v: serde_json::Value = serde_json::from_slice(&body(&[q], Some(Duration::from_secs(60)))).unwrap();
        assert!(v[0]["endsAt"].as_str().unwrap() > v[0]["startsAt"].as_str().unwrap());
    }
}
