//! EVE JSON lines back into internal events (issue 15: re-detection of archived events, and the
//! central detector that reads sensors' published events).
//!
//! The inverse of [`crate::EveRecord`]: one line as pacstap writes it becomes the
//! [`ProtocolEvent`] it was written from, plus the `host` (sensor name) and `event_id` fields
//! that published events carry. Unknown fields are ignored (a SIEM may add its own; a newer
//! pacstap may add extensions). The envelope (`timestamp`, `event_type`, the flow's ids and
//! addresses) is required; fields missing inside the protocol object take their empty value
//! (older versions wrote fewer extension fields).
//!
//! Why mirror structs ([`crate::eve_in_types`]) instead of `Deserialize` on the core types: the
//! core types borrow `&'static str` names (anomaly names, posture protocols) and serialize some
//! fields in derived forms (an alert's `signature`, `severity` and `volume`), so reading them
//! back needs decisions (interning, which field is the source) that belong here, at the one
//! place that reads untrusted JSON, not in the vocabulary crate every stage depends on.
//!
//! # What does not come back
//! EVE is the contract's view, not all of the internal event:
//! - timestamps are written in microseconds: the nanoseconds below are lost (pcapng can carry
//!   them; detection's windows are seconds long, so no rule can tell);
//! - `FlowMeta::start` (the flow's first packet) and `handshake_seen` are not in EVE: `start` is
//!   set to the event's time and `handshake_seen` to true; only evidence pcap cutting reads
//!   them, and re-detection has no packets to cut;
//! - the internal `dicom` accept signal (`DicomEvent::Accepted`) is never written, so a
//!   re-detection sees an association's successful login at its first command or its end: a
//!   DICOM `login_success_after_failures` alert then carries that event's time (tests/redetect.rs
//!   shows it is the only difference in the alerts of every bundled scenario).
//!
//! Every other field parses back to the value it was written from: serializing the parsed
//! event again gives the original line byte for byte (tests/redetect.rs checks this for every
//! bundled sample; the unit tests below for the committed goldens).
//!
//! Hostile input: serde_json bounds nesting (128 levels) and every size is bounded by the line,
//! whose length the reader caps ([`MAX_LINE_BYTES`]); names that must be `&'static str` are
//! interned in a bounded table ([`intern`]).

use crate::eve_in_types::LineIn;
use pacstap_core::{EventBody, ProtocolEvent};
use std::collections::HashSet;
use std::sync::Mutex;

/// The longest line a reader should hand to [`parse_line`]. An event line is a few KiB at most
/// (an alert names at most a bounded list of flows and studies; a DICOM command a few UIDs);
/// 1 MiB leaves room for any pacstap line while bounding what one hostile line costs.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One parsed line: the event and the fields a published event adds.
#[derive(Debug, Clone)]
pub struct EveLine {
    /// `host`: the sensor that wrote the event (Suricata's `sensor-name`), when present.
    pub host: Option<String>,
    /// `event_id`: unique per sensor and run (`<host>-<run>-<seq>`), when present.
    pub event_id: Option<String>,
    pub kind: EveKind,
}

/// What a line holds. Not boxed, as [`EventBody`] is not: a line is parsed and moved once.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum EveKind {
    /// A protocol event, anomaly, alert or posture finding, as the internal event.
    Event(ProtocolEvent),
    /// A `stats` line (Suricata's periodic counters): recognised, carries nothing detection uses.
    Stats,
}

impl EveLine {
    /// Whether detection derives this line itself (alerts, posture findings, stats): a
    /// re-detection skips these and raises its own.
    pub fn is_derived(&self) -> bool {
        match &self.kind {
            EveKind::Stats => true,
            EveKind::Event(ev) => matches!(ev.body, EventBody::Alert(_) | EventBody::Posture(_)),
        }
    }

    /// The event, unless the line is a `stats` line.
    pub fn event(&self) -> Option<&ProtocolEvent> {
        match &self.kind {
            EveKind::Event(ev) => Some(ev),
            EveKind::Stats => None,
        }
    }

    /// The event by value, unless the line is a `stats` line.
    pub fn into_event(self) -> Option<ProtocolEvent> {
        match self.kind {
            EveKind::Event(ev) => Some(ev),
            EveKind::Stats => None,
        }
    }
}

/// Why a line is not an event. Every variant is the input's fault: count it and go on.
#[derive(Debug, thiserror::Error)]
pub enum EveInError {
    #[error("line is {0} bytes, more than the {MAX_LINE_BYTES} an event line can be")]
    TooLong(usize),
    #[error("not an event line: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event_type {0:?}")]
    UnknownEventType(String),
    #[error("no {0} field")]
    MissingField(&'static str),
    #[error("event_type {0:?} without its {0} object")]
    MissingBody(&'static str),
    #[error("bad timestamp {0:?} (RFC 3339 UTC expected, e.g. 2026-11-27T10:00:01.123456Z)")]
    Timestamp(String),
    #[error("unknown posture finding {0:?}")]
    UnknownFinding(String),
    #[error("unknown severity {0:?}")]
    UnknownSeverity(String),
}

/// Parse one EVE line (without or with its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<EveLine, EveInError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(EveInError::TooLong(line.len()));
    }
    let raw: LineIn = serde_json::from_slice(line)?;
    raw.into_line()
}

/// Most distinct names [`intern`] keeps. pacstap's decoders use about a hundred anomaly names
/// and four posture protocols; 1024 is room for newer versions' names, and at most 1024 ×
/// [`MAX_INTERNED_LEN`] = 64 KiB that is never freed, whatever the input.
pub const MAX_INTERNED: usize = 1024;
/// The longest name [`intern`] keeps (pacstap's names are under 40 bytes).
pub const MAX_INTERNED_LEN: usize = 64;
/// What a name becomes once the table is full, or when it is too long.
pub const OTHER_NAME: &str = "other";

/// The bounded table behind [`intern`] (a type of its own so tests can fill one up without
/// touching the process-wide table).
#[derive(Default)]
struct Interner {
    names: HashSet<&'static str>,
}

impl Interner {
    fn get(&mut self, s: &str) -> &'static str {
        if s.len() > MAX_INTERNED_LEN {
            return OTHER_NAME;
        }
        if let Some(found) = self.names.get(s) {
            return found;
        }
        if self.names.len() >= MAX_INTERNED {
            return OTHER_NAME;
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        self.names.insert(leaked);
        leaked
    }
}

static INTERNED: Mutex<Option<Interner>> = Mutex::new(None);

/// A `&'static str` equal to `s` (anomaly names, posture protocols are `&'static str` in the
/// core types: decoders name them with literals). Leaks each distinct name once, in a table
/// bounded by [`MAX_INTERNED`] names of at most [`MAX_INTERNED_LEN`] bytes; past either bound
/// the name becomes [`OTHER_NAME`], so hostile input cannot grow memory.
pub fn intern(s: &str) -> &'static str {
    // A poisoned lock only means another thread panicked while holding a table that stays valid.
    let mut guard = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    guard.get_or_insert_with(Interner::default).get(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonLinesSink;
    use pacstap_core::*;

    fn reserialize(ev: &ProtocolEvent) -> String {
        let mut buf = Vec::new();
        {
            let mut sink = JsonLinesSink::new(&mut buf, false);
            sink.write(ev).unwrap();
            sink.flush().unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    /// Every committed golden (replay's output for the bundled samples) parses back and
    /// serializes to the same bytes.
    #[test]
    fn committed_goldens_round_trip_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-samples");
        let mut lines = 0;
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".expected.jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let parsed = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()));
                let ev = parsed.event().expect("no stats lines in goldens");
                kinds.insert(ev.body.event_type());
                assert_eq!(reserialize(ev), format!("{line}\n"), "{}", path.display());
                lines += 1;
            }
        }
        assert!(lines > 100, "{lines} lines");
        for k in ["dicom", "http", "tls", "hl7", "anomaly"] {
            assert!(kinds.contains(k), "no {k} line among the goldens: {kinds:?}");
        }
    }

    const ASSOC: &str = r#"{"timestamp":"2026-11-27T10:00:01.123456Z","flow_id":7,"event_type":"dicom","src_ip":"10.0.0.1","src_port":50000,"dest_ip":"10.0.0.2","dest_port":104,"proto":"TCP","dicom":{"type":"association","calling_ae":"WS1","called_ae":"PACS","accepted":true,"outcome":"released","abstract_syntaxes":[],"bytes_toserver":1,"bytes_toclient":2,"commands":0,"start":"2026-11-27T10:00:00Z","end":"2026-11-27T10:00:01.123456Z","request_seen":true,"gap_bytes":0}}"#;

    #[test]
    fn host_and_event_id_are_read_and_unknown_fields_ignored() {
        let line = ASSOC.replacen(
            '{',
            r#"{"host":"site-a","event_id":"site-a-1-42","x_siem":{"a":[1,2]},"#,
            1,
        );
        let p = parse_line(line.as_bytes()).unwrap();
        assert_eq!(p.host.as_deref(), Some("site-a"));
        assert_eq!(p.event_id.as_deref(), Some("site-a-1-42"));
        assert!(!p.is_derived());
        let ev = p.into_event().unwrap();
        assert_eq!(ev.ts, Timestamp::from_secs_nanos(1_795_773_601, 123_456_000));
        assert_eq!(ev.flow.id, FlowId(7));
        assert_eq!(ev.flow.server.port, 104);
        match ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => {
                assert_eq!(a.calling_ae, "WS1");
                assert!(a.accepted);
                assert_eq!(a.outcome, AssociationOutcome::Released);
                assert_eq!(a.start, Timestamp::from_secs_nanos(1_795_773_600, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn derived_lines_are_recognised() {
        let stats = r#"{"timestamp":"2026-11-27T10:00:01Z","event_type":"stats","stats":{"uptime":3}}"#;
        assert!(parse_line(stats.as_bytes()).unwrap().is_derived());
        let alert = r#"{"timestamp":"2026-11-27T10:00:01.000000Z","flow_id":7,"event_type":"alert","src_ip":"10.0.0.1","src_port":50000,"dest_ip":"10.0.0.2","dest_port":104,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":1800007,"rev":1,"signature":"PACSTAP bulk_export bulk export of studies: ae WS1","category":"Data Exfiltration","severity":1,"severity_name":"high","rule":"bulk_export","entity":{"kind":"ae","id":"WS1"},"count":16,"threshold":15,"window_seconds":1800,"first_seen":"2026-11-27T10:00:00.000000Z","last_seen":"2026-11-27T10:00:01.000000Z","summary":"s","evidence":{"flow_ids":[7],"flow_ids_total":1,"study_instance_uids":[],"study_instance_uids_total":0},"response":[],"update":false,"incident_id":"00ff","volume":{"studies":16,"instances":30,"bytes":9000},"related":["x"]}}"#;
        let p = parse_line(alert.as_bytes()).unwrap();
        assert!(p.is_derived());
        let ev = p.event().unwrap();
        match &ev.body {
            EventBody::Alert(a) => {
                assert_eq!(a.rule, "bulk_export");
                assert_eq!(a.severity, Severity::High);
                assert_eq!(a.evidence.volume.unwrap().instances, 30);
                assert_eq!(a.evidence.related, ["x"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reserialize(ev), format!("{alert}\n"));
    }

    #[test]
    fn hostile_lines_are_typed_errors() {
        type IsWanted = fn(&EveInError) -> bool;
        let cases: [(&str, IsWanted); 6] = [
            ("", |e| matches!(e, EveInError::Json(_))),
            ("[1,2]", |e| matches!(e, EveInError::Json(_))),
            (
                r#"{"timestamp":"2026-11-27T10:00:01Z","flow_id":1,"event_type":"smtp","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2}"#,
                |e| matches!(e, EveInError::UnknownEventType(t) if t == "smtp"),
            ),
            (
                r#"{"timestamp":"2026-11-27T10:00:01Z","flow_id":1,"event_type":"dicom","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2}"#,
                |e| matches!(e, EveInError::MissingBody("dicom")),
            ),
            (
                r#"{"timestamp":"yesterday","flow_id":1,"event_type":"anomaly","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"anomaly":{"proto":"tcp","name":"x"}}"#,
                |e| matches!(e, EveInError::Timestamp(_)),
            ),
            (
                r#"{"timestamp":"2026-11-27T10:00:01Z","flow_id":-1,"event_type":"anomaly","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"anomaly":{"proto":"tcp","name":"x"}}"#,
                |e| matches!(e, EveInError::Json(_)),
            ),
        ];
        for (line, want) in cases {
            let e = parse_line(line.as_bytes()).unwrap_err();
            assert!(want(&e), "{line}: {e:?}");
        }
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_line(deep.as_bytes()), Err(EveInError::Json(_))));
        let long = vec![b' '; MAX_LINE_BYTES + 1];
        assert!(matches!(parse_line(&long), Err(EveInError::TooLong(_))));
    }

    #[test]
    fn interning_is_bounded() {
        assert_eq!(intern("tcp.bad_checksum"), "tcp.bad_checksum");
        assert!(std::ptr::eq(intern("tcp.bad_checksum"), intern("tcp.bad_checksum")));
        let mut t = Interner::default();
        assert_eq!(t.get(&"x".repeat(MAX_INTERNED_LEN + 1)), OTHER_NAME);
        assert_eq!(t.get("tcp.bad_checksum"), "tcp.bad_checksum");
        for i in 0..MAX_INTERNED + 10 {
            let _ = t.get(&format!("flood.{i}"));
        }
        assert_eq!(t.get("never.seen.before.name"), OTHER_NAME);
        assert_eq!(t.names.len(), MAX_INTERNED);
        // Names interned before the flood still come back as themselves.
        assert_eq!(t.get("tcp.bad_checksum"), "tcp.bad_checksum");
    }
}
