//! Incidents: alert lines grouped by `alert.incident_id` (docs/events.md `alert`: an
//! incident's first alert and its updates share it; the last line is its final state), each
//! with its story: the events of its flows (`evidence.flow_ids`) in time order.
//!
//! The flows are known only from the alerts, which come after the events they name, so the
//! report reads its input twice: pass 1 parses only the alert lines ([`Incidents::note`]),
//! pass 2 everything.

use crate::ev::Ev;
use crate::lenient::StrList;
use crate::model::{Incident, StoryLine, Volume};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;

/// Incidents tracked (10 000: a day with more is one the report cannot summarise anyway; the
/// rest are counted).
pub const MAX_INCIDENTS: usize = 10_000;
/// Story lines kept per incident (the first ones in input order; the rest are counted in
/// `story_total`).
pub const MAX_STORY: usize = 200;
/// Incidents one flow's events are told in (64): a connection behind more incidents than this
/// (one flow in every alert of a long capture) would make every event cost as many story
/// lines; later incidents still list the flow in `flow_ids`, without its events in the story.
pub const MAX_INCIDENTS_PER_FLOW: usize = 64;

#[derive(Default)]
pub struct Incidents {
    list: Vec<Incident>,
    index: HashMap<String, usize>,
    flows: HashMap<u64, Vec<usize>>,
    pub untracked: u64,
}

fn strings(v: &StrList<'_>) -> Vec<String> {
    v.items.iter().map(|s| s.to_string()).collect()
}

impl Incidents {
    /// Pass 1: remember the incident and its flows.
    pub fn note(&mut self, ev: &Ev<'_>) {
        let Some(i) = self.slot(ev) else { return };
        let flows = &ev.b.evidence.v.flow_ids.0;
        for &f in flows.iter().chain(std::iter::once(&ev.flow)) {
            let v = self.flows.entry(f).or_default();
            if v.len() < MAX_INCIDENTS_PER_FLOW && !v.contains(&i) {
                v.push(i);
            }
        }
    }

    fn slot(&mut self, ev: &Ev<'_>) -> Option<usize> {
        let id = ev.s("incident_id")?;
        if let Some(&i) = self.index.get(id) {
            return Some(i);
        }
        if self.list.len() >= MAX_INCIDENTS {
            self.untracked += 1;
            return None;
        }
        self.index.insert(id.to_string(), self.list.len());
        self.list.push(Incident {
            incident_id: id.to_string(),
            ..Incident::default()
        });
        Some(self.list.len() - 1)
    }

    /// Pass 2: an alert line updates its incident (the later line wins); an event on an
    /// incident's flow joins its story.
    pub fn add(&mut self, ev: &Ev<'_>) {
        if ev.ty == "alert" {
            // Only incidents pass 1 kept (in range, the entity's own).
            if let Some(&i) = ev.s("incident_id").and_then(|id| self.index.get(id)) {
                if let Some(inc) = self.list.get_mut(i) {
                    apply_alert(inc, ev);
                    push_story(inc, ev);
                }
            }
            return;
        }
        let Some(idx) = self.flows.get(&ev.flow) else { return };
        let vol = volume(ev);
        for &i in idx {
            if let Some(inc) = self.list.get_mut(i) {
                inc.volume.instances += vol.instances;
                inc.volume.bytes += vol.bytes;
                push_story(inc, ev);
            }
        }
    }

    /// Incidents by first time (most severe first within the same second does not matter
    /// here: the HTML orders them itself); evidence pcaps hashed.
    pub fn finish(self) -> Vec<Incident> {
        let mut list: Vec<Incident> = self.list.into_iter().filter(|i| i.alerts > 0).collect();
        for inc in &mut list {
            inc.story.sort_by(|a, b| a.time.cmp(&b.time));
            let (sha, status) = match &inc.evidence_pcap {
                None => (
                    None,
                    "not available: the alert names no evidence pcap (replay without --evidence-dir)".to_string(),
                ),
                Some(p) => match sha256_file(std::path::Path::new(p)) {
                    Ok(h) => (Some(h), "sha256 computed from the file".to_string()),
                    Err(e) => (None, format!("not available: {e}")),
                },
            };
            // An alert that carries the hash itself (CONTRACT §2 `evidence.pcap_sha256`) wins
            // only when the file is gone.
            if sha.is_some() || inc.evidence_sha256.is_none() {
                inc.evidence_sha256 = sha;
                inc.evidence_status = status;
            } else {
                inc.evidence_status = "sha256 from the alert (file not readable here)".to_string();
            }
        }
        list.sort_by(|a, b| {
            a.first_seen
                .cmp(&b.first_seen)
                .then_with(|| a.incident_id.cmp(&b.incident_id))
        });
        list
    }
}

fn apply_alert(inc: &mut Incident, ev: &Ev<'_>) {
    let s = |k: &str| ev.s(k).unwrap_or("").to_string();
    inc.alerts += 1;
    inc.rule = s("rule");
    inc.severity_name = s("severity_name");
    inc.signature = s("signature");
    inc.summary = s("summary");
    let (kind, id) = ev.entity();
    inc.entity_kind = kind.unwrap_or("").to_string();
    inc.entity_id = id.unwrap_or("").to_string();
    let first = s("first_seen");
    if inc.first_seen.is_empty() || (!first.is_empty() && first < inc.first_seen) {
        inc.first_seen = first;
    }
    inc.last_seen = inc.last_seen.clone().max(s("last_seen"));
    inc.count = ev.u("count").unwrap_or(0);
    inc.threshold = ev.u("threshold");
    let e = &ev.b.evidence.v;
    inc.studies = strings(&e.study_instance_uids);
    inc.studies_total = e.study_instance_uids_total.0.unwrap_or(0).max(inc.studies.len() as u64);
    inc.destinations = strings(&e.destinations);
    inc.destinations_total = e.destinations_total.0.unwrap_or(0).max(inc.destinations.len() as u64);
    inc.flow_ids = e.flow_ids.0.clone();
    inc.flow_ids_total = e.flow_ids_total.0.unwrap_or(0).max(inc.flow_ids.len() as u64);
    if let Some(p) = e.pcap.get() {
        inc.evidence_pcap = Some(p.to_string());
    }
    if let Some(h) = e.pcap_sha256.get() {
        inc.evidence_sha256 = Some(h.to_string());
    }
    inc.response = strings(&ev.b.response);
}

fn push_story(inc: &mut Incident, ev: &Ev<'_>) {
    inc.story_total += 1;
    if inc.story.len() < MAX_STORY {
        inc.story.push(StoryLine {
            time: ev.ts.to_string(),
            flow_id: ev.flow,
            what: describe(ev),
        });
    }
}

/// What moved on one event: C-STORE instances and dataset bytes, WADO response bytes, HTTPS
/// bytes to the client (the `bulk_export` rule's encrypted half counts those).
fn volume(ev: &Ev<'_>) -> Volume {
    match ev.ty {
        "dicom" if ev.s("command") == Some("C-STORE") => Volume {
            instances: 1,
            bytes: ev.u("dataset_bytes").unwrap_or(0),
        },
        // The images of a C-MOVE travel on other associations (its sub-operations): the
        // completed count is what the requester's own flow shows.
        "dicom" if matches!(ev.s("command"), Some("C-MOVE" | "C-GET")) => Volume {
            instances: ev.completed().unwrap_or(0),
            bytes: 0,
        },
        "http" if ev.b.download.present => Volume {
            instances: 0,
            bytes: ev.u("response_bytes").unwrap_or(0),
        },
        "http" => match ev.b.dicomweb.v.service.get() {
            Some("WADO-RS" | "WADO-URI") => Volume {
                instances: 0,
                bytes: ev.u("response_bytes").unwrap_or(0),
            },
            _ => Volume::default(),
        },
        // Bytes sent, seen or lost to capture gaps: what detection counted.
        "tls" => Volume {
            instances: 0,
            bytes: ev
                .u("bytes_toclient")
                .unwrap_or(0)
                .saturating_add(ev.u("gap_bytes_toclient").unwrap_or(0)),
        },
        _ => Volume::default(),
    }
}

/// One line of an incident's story, from the event's own fields.
pub fn describe(ev: &Ev<'_>) -> String {
    let o = |k: &str| ev.s(k).unwrap_or("?");
    match ev.ty {
        "dicom" if ev.s("type") == Some("association") => format!(
            "DICOM association {}@{} → {}@{}: {}, {} commands, {} bytes to server, {} to client",
            o("calling_ae"),
            ev.src,
            o("called_ae"),
            ev.dst,
            o("outcome"),
            ev.u("commands").unwrap_or(0),
            ev.u("bytes_toserver").unwrap_or(0),
            ev.u("bytes_toclient").unwrap_or(0)
        ),
        "dicom" => {
            let studies = &ev.b.study_instance_uids.items;
            let study = match studies.as_slice() {
                [] => String::new(),
                [one] => format!(" study {one}"),
                [first, rest @ ..] => format!(" study {first} (+{})", rest.len()),
            };
            let by = ev.user().map(|u| format!(" by user {u}")).unwrap_or_default();
            let dest = ev.s("move_destination").map(|d| format!(" to {d}")).unwrap_or_default();
            let subops = ev.completed().map(|c| format!(", {c} completed")).unwrap_or_default();
            // A C-MOVE's sub-operation names the C-MOVE that caused it (PS3.7 §9.1.1.1): the
            // story says whose export the images were, also when that C-MOVE was not captured.
            let cause = match (ev.s("move_originator_ae"), ev.u("move_originator_message_id")) {
                (Some(ae), Some(id)) => format!(" (for {ae}'s C-MOVE {id})"),
                (Some(ae), None) => format!(" (for a C-MOVE by {ae})"),
                _ => String::new(),
            };
            format!(
                "{} {}@{} → {}@{}{study}{dest}{by}{cause}: {}{subops}, {} dataset bytes",
                o("command"),
                o("calling_ae"),
                ev.src,
                o("called_ae"),
                ev.dst,
                ev.s("status").unwrap_or("no response"),
                ev.u("dataset_bytes").unwrap_or(0)
            )
        }
        // A response reported without its request (`request_missing`: method and URL empty).
        "http" if ev.s("method").is_none_or(str::is_empty) => format!(
            "HTTP response from {} to {} (its request not captured){}: {}, {} bytes",
            ev.dst,
            ev.src,
            ev.b.dicomweb
                .v
                .study_instance_uid
                .get()
                .map(|s| format!(", study {s}"))
                .unwrap_or_default(),
            ev.u("status").map_or("no status".to_string(), |s| s.to_string()),
            ev.u("response_bytes").unwrap_or(0)
        ),
        "http" => format!(
            "HTTP {} {}{} from {}{}: {}, {} bytes in response",
            o("method"),
            ev.s("hostname").unwrap_or(ev.dst),
            o("url"),
            ev.src,
            ev.user().map(|u| format!(" (user {u})")).unwrap_or_default(),
            ev.u("status").map_or("no response".to_string(), |s| s.to_string()),
            ev.u("response_bytes").unwrap_or(0)
        ),
        "tls" => format!(
            "TLS {} → {}:{} ({}{}): {} bytes to client",
            ev.src,
            ev.dst,
            ev.dport,
            ev.s("version").unwrap_or("version unknown"),
            ev.s("sni").map(|s| format!(", SNI {s}")).unwrap_or_default(),
            ev.u("bytes_toclient").unwrap_or(0)
        ),
        "hl7" => format!(
            "HL7 {} {} → {} ({} → {})",
            o("message_type"),
            o("sending_application"),
            o("receiving_application"),
            ev.src,
            ev.dst
        ),
        "alert" => format!(
            "ALERT {} ({}){}: {}",
            o("rule"),
            o("severity_name"),
            if ev.is_update() { " update" } else { "" },
            o("summary")
        ),
        "anomaly" => format!("anomaly {} {}", o("name"), ev.s("detail").unwrap_or("")),
        other => format!("{other} event"),
    }
}

/// SHA-256 of a regular file (a FIFO or device named by an events file is not read).
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::Line;

    fn alert(ts: &str, id: &str, update: bool, count: u64, flows: &[u64]) -> String {
        format!(
            r#"{{"timestamp":"{ts}","flow_id":{},"event_type":"alert","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":4242,"alert":{{"rule":"bulk_export","severity_name":"high","entity":{{"kind":"ae","id":"WS1"}},"count":{count},"first_seen":"2026-01-01T00:00:00.000000Z","last_seen":"{ts}","summary":"s{count}","evidence":{{"flow_ids":{:?},"flow_ids_total":{},"study_instance_uids":["1.2"],"study_instance_uids_total":{count},"pcap":"/nonexistent/x.pcap"}},"response":["block WS1"],"update":{update},"incident_id":"{id}"}}}}"#,
            flows[0],
            flows,
            flows.len()
        )
    }

    const STORE: &str = r#"{"timestamp":"2026-01-01T00:00:01.000000Z","flow_id":5,"event_type":"dicom","src_ip":"10.0.0.2","src_port":1,"dest_ip":"10.0.0.3","dest_port":104,"dicom":{"type":"command","calling_ae":"PACS","called_ae":"DEST","command":"C-STORE","study_instance_uids":["1.2"],"status":"0x0000","dataset_bytes":700}}"#;

    #[test]
    fn an_http_response_without_its_request_is_told_as_one() {
        let line = |http: &str| {
            format!(
                r#"{{"timestamp":"2026-01-01T00:00:01.000000Z","flow_id":5,"event_type":"http","src_ip":"10.0.0.9","src_port":40000,"dest_ip":"10.0.0.5","dest_port":8042,"http":{http}}}"#
            )
        };
        let whole = line(
            r#"{"method":"GET","url":"/dicom-web/studies/1.2","status":200,"user":"rad1","response_bytes":900,"dicomweb":{"service":"WADO-RS","study_instance_uid":"1.2"}}"#,
        );
        let lost = line(
            r#"{"method":"","url":"","status":200,"response_bytes":900,"dicomweb":{"service":"WADO-RS","study_instance_uid":"1.2"},"incomplete":true,"request_missing":true}"#,
        );
        let said = |l: &str| {
            let v: Line = serde_json::from_str(l).unwrap();
            describe(&Ev::from_line(&v).unwrap())
        };
        assert_eq!(
            said(&whole),
            "HTTP GET 10.0.0.5/dicom-web/studies/1.2 from 10.0.0.9 (user rad1): 200, 900 bytes in response"
        );
        assert_eq!(
            said(&lost),
            "HTTP response from 10.0.0.5 to 10.0.0.9 (its request not captured), study 1.2: 200, 900 bytes"
        );
    }

    #[test]
    fn a_sub_operation_says_whose_c_move_it_was() {
        let said = |l: &str| {
            let v: Line = serde_json::from_str(l).unwrap();
            describe(&Ev::from_line(&v).unwrap())
        };
        assert_eq!(
            said(STORE),
            "C-STORE PACS@10.0.0.2 → DEST@10.0.0.3 study 1.2: 0x0000, 700 dataset bytes"
        );
        let sub = STORE.replace(
            r#""command":"C-STORE","#,
            r#""command":"C-STORE","move_originator_ae":"WS1","move_originator_message_id":7,"#,
        );
        assert_eq!(
            said(&sub),
            "C-STORE PACS@10.0.0.2 → DEST@10.0.0.3 study 1.2 (for WS1's C-MOVE 7): 0x0000, 700 dataset bytes"
        );
    }

    #[test]
    fn alerts_group_by_incident_id_and_the_last_line_is_the_final_state() {
        let lines = [
            STORE.to_string(),
            alert("2026-01-01T00:00:02.000000Z", "aaaa", false, 16, &[4, 5]),
            STORE.replace("00:00:01", "00:00:03"),
            alert("2026-01-01T00:00:04.000000Z", "aaaa", true, 20, &[4, 5]),
            alert("2026-01-01T00:00:05.000000Z", "bbbb", false, 1, &[9]),
        ];
        let values: Vec<Line> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let mut inc = Incidents::default();
        for v in &values {
            let ev = Ev::from_line(v).unwrap();
            if ev.ty == "alert" {
                inc.note(&ev);
            }
        }
        for v in &values {
            inc.add(&Ev::from_line(v).unwrap());
        }
        let list = inc.finish();
        assert_eq!(list.len(), 2);
        let a = &list[0];
        assert_eq!(
            (a.incident_id.as_str(), a.alerts, a.count, a.studies_total),
            ("aaaa", 2, 20, 20)
        );
        assert_eq!(a.summary, "s20");
        assert_eq!(a.volume.instances, 2);
        assert_eq!(a.volume.bytes, 1400);
        // 2 C-STOREs and 2 alert lines, in time order.
        assert_eq!(a.story.len(), 4);
        assert!(
            a.story[0]
                .what
                .starts_with("C-STORE PACS@10.0.0.2 → DEST@10.0.0.3 study 1.2"),
            "{}",
            a.story[0].what
        );
        assert!(a.story[3].what.starts_with("ALERT bulk_export (high) update"));
        assert!(a.evidence_sha256.is_none());
        assert!(a.evidence_status.starts_with("not available"), "{}", a.evidence_status);
        assert_eq!(list[1].volume.instances, 0);
    }
}
