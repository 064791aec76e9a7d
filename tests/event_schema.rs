//! The published event format holds: every line pacstap writes for the bundled real captures
//! validates against `docs/schema/events.schema.json`, and every field and anomaly name it can
//! contain is described in `docs/events.md`.
//!
//! Lines come from the committed golden outputs (`pcap-samples/**/*.expected.jsonl`) and from
//! replaying every bundled capture through the library with the events written by the same
//! `JsonLinesSink` the binary writes with: the top-level samples under the default config, the
//! scenarios grouped and configured as `pcap-samples/scenarios/expected-alerts.json` says (so
//! their alerts, with `evidence.destinations`, are covered too).
//!
//! Anomaly events come from no bundled capture (the captures are clean), so each anomaly name
//! the decoders declare (`pub mod anomaly` blocks, read from the sources so a new one is picked
//! up without editing this file) is serialized through the same sink and validated.

mod common;

use pacstap_core::{Anomaly, Endpoint, EventBody, FlowId, FlowMeta, ProtocolEvent, Timestamp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The compiled schema.
struct EventSchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl EventSchema {
    fn load() -> EventSchema {
        EventSchema::from_file("docs/schema/events.schema.json")
    }

    /// A draft 2020-12 schema of the repository, compiled with format assertions on.
    fn from_file(relative: &str) -> EventSchema {
        let path = root().join(relative);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
        let doc: Value = serde_json::from_str(&text).expect("the schema is JSON");
        let loc = path.to_str().expect("UTF-8 path");
        let mut compiler = boon::Compiler::new();
        // `format` is an annotation in draft 2020-12 unless asserted: assert it, so `date-time`
        // and `ipv4` / `ipv6` are checked, not only documented.
        compiler.enable_format_assertions();
        compiler.add_resource(loc, doc).expect("schema resource");
        let mut schemas = boon::Schemas::new();
        // Compiling also validates the schema against the draft 2020-12 metaschema.
        let index = compiler
            .compile(loc, &mut schemas)
            .unwrap_or_else(|e| panic!("schema does not compile: {e:#}"));
        EventSchema { schemas, index }
    }

    /// `Err` with boon's error tree (instance path and reason of every failed keyword).
    fn check(&self, v: &Value) -> Result<(), String> {
        self.schemas.validate(v, self.index).map_err(|e| format!("{e:#}"))
    }
}

fn schema() -> &'static EventSchema {
    static SCHEMA: OnceLock<EventSchema> = OnceLock::new();
    SCHEMA.get_or_init(EventSchema::load)
}

/// A writer the test can read back after `replay` took ownership of the boxed one.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The event lines `pacstap replay [--config CONFIG] PATHS…` writes.
fn replay_lines(paths: Vec<PathBuf>, config: Option<pacstap::config::Config>) -> Vec<String> {
    let buf = SharedBuf::default();
    let mut opts = pacstap::ReplayOptions::new(paths.clone());
    if let Some(c) = config {
        opts = opts.with_config(c);
    }
    opts.events = Some(Box::new(buf.clone()));
    pacstap::replay(opts, false).unwrap_or_else(|e| panic!("replay {paths:?}: {e:#}"));
    let bytes = std::mem::take(&mut *buf.0.lock().expect("buffer"));
    let text = String::from_utf8(bytes).expect("events are UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{paths:?}: last line unterminated"
    );
    text.lines().map(str::to_owned).collect()
}

fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, keep, out);
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
            out.push(p);
        }
    }
}

/// One event line and where it came from.
struct Line {
    source: String,
    text: String,
}

/// Every golden line.
fn golden_lines() -> &'static [Line] {
    static LINES: OnceLock<Vec<Line>> = OnceLock::new();
    LINES.get_or_init(|| {
        let mut files = Vec::new();
        files_under(&common::sample(""), &|n| n.ends_with(".expected.jsonl"), &mut files);
        assert!(files.len() >= 16, "golden files: {files:?}");
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("golden");
            for (i, l) in text.lines().enumerate() {
                out.push(Line {
                    source: format!("{}:{}", f.display(), i + 1),
                    text: l.to_owned(),
                });
            }
        }
        out
    })
}

/// Every line of a replay of every bundled capture.
fn replayed_lines() -> &'static [Line] {
    static LINES: OnceLock<Vec<Line>> = OnceLock::new();
    LINES.get_or_init(|| {
        let mut out = Vec::new();
        let mut push = |what: &str, lines: Vec<String>| {
            for (i, text) in lines.into_iter().enumerate() {
                out.push(Line {
                    source: format!("replay {what}: line {}", i + 1),
                    text,
                });
            }
        };
        // Top-level samples (goldens or not: VLAN, SLL2, IPv6, pcapng…), default config.
        let top = common::sample("");
        let mut captures: Vec<PathBuf> = std::fs::read_dir(&top)
            .expect("pcap-samples")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        captures.sort();
        assert!(captures.len() >= 20, "samples: {captures:?}");
        for p in captures {
            push(&p.display().to_string(), replay_lines(vec![p.clone()], None));
        }
        // Scenarios, as expected-alerts.json groups them, under their config.
        let dir = common::sample("scenarios");
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected-alerts.json")).unwrap()).unwrap();
        let mut covered = BTreeSet::new();
        for sc in spec["scenarios"].as_array().expect("scenarios") {
            let files: Vec<String> = common::strs(&sc["files"]);
            covered.extend(files.iter().cloned());
            let cfg = pacstap::config::Config::load(&dir.join("pacstap.toml")).expect("scenario config");
            let paths = files.iter().map(|f| dir.join(f)).collect();
            push(&format!("scenarios {files:?}"), replay_lines(paths, Some(cfg)));
        }
        let mut on_disk = Vec::new();
        files_under(&dir, &|n| n.ends_with(".pcap"), &mut on_disk);
        for p in on_disk {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            if !covered.contains(&name) {
                // A scenario capture the spec does not list still gets validated, on its own.
                let cfg = pacstap::config::Config::load(&dir.join("pacstap.toml")).expect("scenario config");
                push(&format!("scenarios/{name}"), replay_lines(vec![p], Some(cfg)));
            }
        }
        out
    })
}

/// Validates `lines`; returns the events by type. Panics with every failure.
fn validate_all(lines: &[Line]) -> BTreeMap<String, usize> {
    let mut by_type = BTreeMap::new();
    let mut failures = Vec::new();
    for l in lines {
        let v: Value = match serde_json::from_str(&l.text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: not JSON: {e}", l.source));
                continue;
            }
        };
        if let Err(e) = schema().check(&v) {
            failures.push(format!("{}: {e}\n  {}", l.source, l.text));
        }
        *by_type
            .entry(v["event_type"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} lines do not match docs/schema/events.schema.json:\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n")
    );
    by_type
}

#[test]
fn every_golden_line_matches_the_schema() {
    let by_type = validate_all(golden_lines());
    for t in ["dicom", "http", "tls", "hl7", "alert"] {
        assert!(by_type.contains_key(t), "no {t} line in the goldens: {by_type:?}");
    }
    assert_eq!(by_type.values().sum::<usize>(), golden_lines().len());
    assert!(golden_lines().len() >= 90, "{} golden lines", golden_lines().len());
}

#[test]
fn every_bundled_capture_replays_to_lines_that_match_the_schema() {
    let by_type = validate_all(replayed_lines());
    for t in ["dicom", "http", "tls", "hl7", "alert"] {
        assert!(by_type.contains_key(t), "no {t} line replayed: {by_type:?}");
    }
    // The scenarios' transfer alerts (with `evidence.destinations`) were among them.
    let destinations = replayed_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.text).ok())
        .filter(|v| v["alert"]["evidence"]["destinations"].is_array())
        .count();
    assert!(destinations > 0, "no alert with evidence.destinations was validated");
    assert!(by_type["alert"] >= 20, "{by_type:?}");
}

/// Every anomaly name the decoders declare, read from their owners: each protocol's anomaly
/// enum in pacstap-proto (`DicomAnomaly`, `HttpAnomaly`, `TlsAnomaly`, `Hl7Anomaly`).
fn declared_anomaly_names() -> BTreeSet<String> {
    pacstap_proto::anomaly::all_names()
        .map(|(_, name)| name.to_owned())
        .collect()
}

fn anomaly_line(name: &str) -> Value {
    let proto = name.split('.').next().unwrap_or(name);
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let ev = ProtocolEvent {
        ts: Timestamp::from_secs_nanos(1_795_773_601, 123_456_789),
        flow: FlowMeta {
            id: FlowId(7),
            client: Endpoint::new("10.20.0.30".parse().unwrap(), 40112),
            server: Endpoint::new("10.20.0.10".parse().unwrap(), 4242),
            start: Timestamp(0),
            handshake_seen: true,
        },
        body: EventBody::Anomaly(Anomaly {
            proto: leak(proto),
            name: leak(name),
            detail: Some("12 bytes".into()),
        }),
    };
    let mut buf = Vec::new();
    {
        let mut sink = pacstap_output::JsonLinesSink::new(&mut buf, false);
        sink.write(&ev).unwrap();
        sink.flush().unwrap();
    }
    serde_json::from_slice(&buf).expect("one JSON line")
}

#[test]
fn every_declared_anomaly_serializes_to_a_line_that_matches_the_schema() {
    let names = declared_anomaly_names();
    for known in [
        "dicom.pdu_too_large",
        "dicom.resync",
        "http.gap",
        "tls.bad_record",
        "hl7.missing_msh",
    ] {
        assert!(names.contains(known), "{known} not found in the sources: {names:?}");
    }
    assert!(names.len() >= 38, "{} anomaly names: {names:?}", names.len());
    for name in &names {
        let v = anomaly_line(name);
        assert_eq!(v["event_type"], "anomaly");
        assert_eq!(v["anomaly"]["name"], name.as_str());
        assert_eq!(v["timestamp"], "2026-11-27T10:00:01.123456Z");
        schema().check(&v).unwrap_or_else(|e| panic!("{name}: {e}\n{v}"));
    }
}

/// A real line from a golden file: the first of `event_type` (and `dicom.type`, if given).
fn golden(event_type: &str, dicom_type: Option<&str>) -> Value {
    golden_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(&l.text).unwrap())
        .find(|v| v["event_type"] == event_type && dicom_type.is_none_or(|t| v["dicom"]["type"] == t))
        .unwrap_or_else(|| panic!("no golden {event_type} {dicom_type:?} line"))
}

/// `v` with the value at JSON pointer `at` replaced (`None`: removed).
fn with(mut v: Value, at: &str, new: Option<Value>) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let obj = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{at}"));
    match new {
        Some(n) => obj.insert(key.to_owned(), n),
        None => obj.remove(key),
    };
    v
}

#[test]
fn a_wrong_type_or_value_fails_validation_at_its_path() {
    let alert = golden("alert", None);
    let command = golden("dicom", Some("command"));
    let association = golden("dicom", Some("association"));
    let tls = golden("tls", None);
    let http = golden("http", None);
    let hl7 = golden("hl7", None);
    for v in [&alert, &command, &association, &tls, &http, &hl7] {
        schema()
            .check(v)
            .unwrap_or_else(|e| panic!("the unmodified line must pass: {e}\n{v}"));
    }
    // The brief's headline: Suricata's integer severity written as a word is a type error.
    let word = with(alert.clone(), "/alert/severity", Some(json!("high")));
    let e = schema()
        .check(&word)
        .expect_err("\"severity\":\"high\" must not validate");
    assert!(
        e.contains("at '/alert/severity'") && e.contains("want integer, but got string"),
        "{e}"
    );
    let cases: Vec<(&str, Value, &str)> = vec![
        // Suricata types: a SIEM's Suricata mapping indexes severity as an integer.
        (
            "severity as a word",
            with(alert.clone(), "/alert/severity", Some(json!("high"))),
            "/alert/severity",
        ),
        (
            "severity out of 1..3",
            with(alert.clone(), "/alert/severity", Some(json!(4))),
            "/alert/severity",
        ),
        (
            "severity disagreeing with severity_name",
            with(alert.clone(), "/alert/severity", Some(json!(1))),
            "/alert/severity",
        ),
        (
            "signature_id as a string",
            with(alert.clone(), "/alert/signature_id", Some(json!("1800006"))),
            "/alert/signature_id",
        ),
        (
            "signature_id of another rule",
            with(alert.clone(), "/alert/signature_id", Some(json!(1_800_007))),
            "/alert/signature_id",
        ),
        (
            "gid as a string",
            with(alert.clone(), "/alert/gid", Some(json!("1"))),
            "/alert/gid",
        ),
        ("rev missing", with(alert.clone(), "/alert/rev", None), "/alert"),
        (
            "incident_id not 16 hex digits",
            with(alert.clone(), "/alert/incident_id", Some(json!("84AD"))),
            "/alert/incident_id",
        ),
        (
            "flow id in evidence as a string",
            with(
                alert.clone(),
                "/alert/evidence/flow_ids",
                Some(json!(["455051722585434"])),
            ),
            "/alert/evidence/flow_ids/0",
        ),
        (
            "flow_id as a string",
            with(command.clone(), "/flow_id", Some(json!("1"))),
            "/flow_id",
        ),
        (
            "flow_id past 2^53",
            with(command.clone(), "/flow_id", Some(json!(1u64 << 60))),
            "/flow_id",
        ),
        (
            "port past 65535",
            with(command.clone(), "/src_port", Some(json!(70000))),
            "/src_port",
        ),
        (
            "src_ip not an address",
            with(command.clone(), "/src_ip", Some(json!("pacs1"))),
            "/src_ip",
        ),
        (
            "timestamp without microseconds",
            with(command.clone(), "/timestamp", Some(json!("2026-11-28T06:35:48Z"))),
            "/timestamp",
        ),
        ("dest_port missing", with(command.clone(), "/dest_port", None), ""),
        (
            "message_id as a string",
            with(command.clone(), "/dicom/message_id", Some(json!("1"))),
            "/dicom/message_id",
        ),
        (
            "status not 0xHHHH",
            with(command.clone(), "/dicom/status", Some(json!(0))),
            "/dicom/status",
        ),
        (
            "direction not toserver/toclient",
            with(command.clone(), "/dicom/direction", Some(json!("in"))),
            "/dicom/direction",
        ),
        (
            "study_instance_uids not a list",
            with(command.clone(), "/dicom/study_instance_uids", Some(json!("1.2.3"))),
            "/dicom/study_instance_uids",
        ),
        (
            "an unknown outcome",
            with(association.clone(), "/dicom/outcome", Some(json!("dropped"))),
            "/dicom/outcome",
        ),
        (
            "accepted as a string",
            with(association.clone(), "/dicom/accepted", Some(json!("true"))),
            "/dicom/accepted",
        ),
        (
            "http status as a string",
            with(http.clone(), "/http/status", Some(json!("200"))),
            "/http/status",
        ),
        (
            "tls ja3 not md5 hex",
            with(tls.clone(), "/tls/ja3", Some(json!("ABC"))),
            "/tls/ja3",
        ),
        (
            "hl7 segment count as a string",
            with(hl7.clone(), "/hl7/segment_counts/MSH", Some(json!("1"))),
            "/hl7/segment_counts/MSH",
        ),
        (
            "an http object on a dicom event",
            with(command.clone(), "/http", Some(http["http"].clone())),
            "",
        ),
        ("the event's own object missing", with(tls.clone(), "/tls", None), ""),
    ];
    for (what, v, path) in cases {
        match schema().check(&v) {
            Ok(()) => panic!("{what}: validated, but must not\n{v}"),
            Err(e) => assert!(
                e.contains(&format!("at '{path}'")),
                "{what}: the error does not point at {path:?}:\n{e}"
            ),
        }
    }
}

#[test]
fn fields_and_event_types_added_later_still_validate() {
    // Other branches add fields (e.g. a C-STORE's `lost_bytes`), anomaly kinds and event types:
    // the schema types what it knows and lets the rest through.
    let command = golden("dicom", Some("command"));
    let v = with(command.clone(), "/dicom/lost_bytes", Some(json!(1234)));
    schema().check(&v).unwrap();
    let v = with(command, "/vlan", Some(json!([20])));
    schema().check(&v).unwrap();
    let v = anomaly_line("tcp.ack_before_data");
    schema().check(&v).unwrap();
    let mut smb = golden("tls", None);
    smb.as_object_mut().unwrap().remove("tls");
    smb["event_type"] = json!("smb");
    smb["smb"] = json!({"command": "SMB2_READ"});
    schema().check(&smb).unwrap();
}

/// Every object key that appears in `v`, except the keys of maps whose keys are data
/// (`hl7.segment_counts`: segment ids).
fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                if k != "segment_counts" {
                    keys(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn every_field_and_anomaly_name_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/events.md")).expect("docs/events.md");
    let mut names = BTreeSet::new();
    let mut event_types = BTreeSet::new();
    for l in golden_lines().iter().chain(replayed_lines()) {
        let v: Value = serde_json::from_str(&l.text).unwrap();
        keys(&v, &mut names);
        event_types.insert(v["event_type"].as_str().unwrap_or_default().to_owned());
    }
    keys(&anomaly_line("dicom.resync"), &mut names);
    names.extend(declared_anomaly_names());
    event_types.insert("anomaly".to_owned());
    names.extend(event_types);
    let missing: Vec<_> = names.iter().filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(
        missing.is_empty(),
        "docs/events.md does not describe these fields / names (write each as `name`): {missing:?}"
    );
}

#[test]
fn every_example_in_the_reference_matches_the_schema() {
    let doc = std::fs::read_to_string(root().join("docs/events.md")).expect("docs/events.md");
    let examples: Vec<&str> = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect();
    assert!(examples.len() >= 7, "{} examples in docs/events.md", examples.len());
    let mut types = BTreeSet::new();
    for ex in examples {
        let v: Value = serde_json::from_str(ex).unwrap_or_else(|e| panic!("example is not one JSON line: {e}\n{ex}"));
        schema()
            .check(&v)
            .unwrap_or_else(|e| panic!("example does not match the schema: {e}\n{ex}"));
        types.insert(v["event_type"].as_str().unwrap().to_owned());
    }
    let want: BTreeSet<String> = ["dicom", "http", "tls", "hl7", "alert", "anomaly", "posture"]
        .map(String::from)
        .into();
    assert_eq!(types, want, "one example per event type");
}

/// Issue 12 "Done when": an Elastic / OpenSearch Suricata ingest pipeline takes every alert line
/// unchanged. docs/schema/suricata-eve-alert.schema.json states those pipelines' field types for
/// an EVE alert (integer severity 1–3 and ids, keyword signature / category / action, ip
/// addresses, date timestamp, no type conflicts); every alert of every scenario must satisfy it.
#[test]
fn every_alert_line_is_typed_as_suricata_pipelines_type_an_eve_alert() {
    let suricata = EventSchema::from_file("docs/schema/suricata-eve-alert.schema.json");
    let mut alerts = 0;
    let mut failures = Vec::new();
    for line in replayed_lines() {
        let v: Value = serde_json::from_str(&line.text).expect("JSON line");
        if v["event_type"] != "alert" {
            continue;
        }
        alerts += 1;
        if let Err(e) = suricata.check(&v) {
            failures.push(format!("{}: {e}", line.source));
        }
    }
    assert!(alerts >= 17, "{alerts} alert lines");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The schema can fail: a string severity, as pacstap wrote before this round, is refused.
    let bad = serde_json::json!({
        "timestamp": "2026-01-01T00:00:00Z", "event_type": "alert", "src_ip": "10.0.0.1", "src_port": 1,
        "dest_ip": "10.0.0.2", "dest_port": 104, "proto": "TCP",
        "alert": {"action": "allowed", "gid": 1, "signature_id": 1800007, "rev": 1,
                  "signature": "s", "category": "c", "severity": "high"}
    });
    assert!(suricata.check(&bad).is_err());
}
