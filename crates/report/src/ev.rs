//! A view of one event line, with the fields the report reads parsed into typed structs.
//!
//! The report must read files from older and newer pacstap versions (docs/events.md: consumers
//! ignore fields they do not know, and fields may be absent), so every field is optional and a
//! wrong type reads as absent ([`crate::lenient`]). It used to parse each event's object into a
//! `serde_json::Value`; at 10^6 events that tree (a heap string per key and per value) was most
//! of the report's time. Now the line is parsed once into [`Line`]: strings borrowed from the
//! line, unknown fields skipped without allocating.

use crate::lenient::{Bool, Num, NumList, Obj, Present, Str, StrList, StrOrNum};
use crate::time::{self, Micros};
use ipnet::IpNet;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The fields of an event's own object (`dicom`, `http`, `tls`, `hl7`, `alert`, `anomaly`,
/// `posture`) that the report reads: one struct for all types, since most names mean the
/// same in each (docs/events.md).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Body<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub command: Str<'a>,
    #[serde(borrow)]
    pub calling_ae: Str<'a>,
    #[serde(borrow)]
    pub called_ae: Str<'a>,
    #[serde(borrow)]
    pub user: Str<'a>,
    #[serde(borrow)]
    pub user_identity: Obj<UserIdentity<'a>>,
    #[serde(borrow)]
    pub move_originator_ae: Str<'a>,
    pub move_originator_message_id: Num,
    #[serde(borrow)]
    pub move_destination: Str<'a>,
    pub message_id: Num,
    #[serde(borrow)]
    pub request_time: Str<'a>,
    #[serde(borrow)]
    pub study_instance_uids: StrList<'a>,
    #[serde(borrow)]
    pub status: StrOrNum<'a>,
    pub sub_operations: Obj<SubOps>,
    #[serde(borrow)]
    pub direction: Str<'a>,
    pub dataset_bytes: Num,
    #[serde(borrow)]
    pub outcome: Str<'a>,
    pub commands: Num,
    pub bytes_toserver: Num,
    pub bytes_toclient: Num,
    /// tls: bytes the server sent that the capture lost.
    pub gap_bytes_toclient: Num,
    #[serde(borrow)]
    pub abstract_syntaxes: StrList<'a>,
    #[serde(borrow)]
    pub implementation_class_uid: Str<'a>,
    #[serde(borrow)]
    pub implementation_version_name: Str<'a>,
    // http
    #[serde(borrow)]
    pub method: Str<'a>,
    #[serde(borrow)]
    pub url: Str<'a>,
    #[serde(borrow)]
    pub hostname: Str<'a>,
    pub request_bytes: Num,
    pub response_bytes: Num,
    #[serde(borrow)]
    pub dicomweb: Obj<DicomWeb<'a>>,
    #[serde(borrow)]
    pub download: Obj<RestDownload<'a>>,
    #[serde(borrow)]
    pub auth: Str<'a>,
    #[serde(borrow)]
    pub admin_action: Str<'a>,
    #[serde(borrow)]
    pub share_action: Str<'a>,
    #[serde(borrow)]
    pub share_recipients: StrList<'a>,
    // tls
    #[serde(borrow)]
    pub sni: Str<'a>,
    #[serde(borrow)]
    pub version: Str<'a>,
    #[serde(borrow)]
    pub client_version: Str<'a>,
    #[serde(borrow)]
    pub cipher_suite: Str<'a>,
    #[serde(borrow)]
    pub certificate: Obj<Certificate<'a>>,
    // hl7
    #[serde(borrow)]
    pub message_type: Str<'a>,
    #[serde(borrow)]
    pub sending_application: Str<'a>,
    #[serde(borrow)]
    pub sending_facility: Str<'a>,
    #[serde(borrow)]
    pub receiving_application: Str<'a>,
    #[serde(borrow)]
    pub admin_event: Obj<AdminEvent<'a>>,
    // alert
    #[serde(borrow)]
    pub rule: Str<'a>,
    #[serde(borrow)]
    pub severity_name: Str<'a>,
    #[serde(borrow)]
    pub signature: Str<'a>,
    #[serde(borrow)]
    pub summary: Str<'a>,
    #[serde(borrow)]
    pub entity: Obj<Entity<'a>>,
    #[serde(borrow)]
    pub first_seen: Str<'a>,
    #[serde(borrow)]
    pub last_seen: Str<'a>,
    pub count: Num,
    pub threshold: Num,
    #[serde(borrow)]
    pub evidence: Obj<Evidence<'a>>,
    #[serde(borrow)]
    pub response: StrList<'a>,
    pub update: Bool,
    #[serde(borrow)]
    pub incident_id: Str<'a>,
    // anomaly, posture
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub detail: Str<'a>,
    #[serde(borrow)]
    pub finding: Str<'a>,
    #[serde(borrow)]
    pub system: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserIdentity<'a> {
    #[serde(borrow)]
    pub username: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubOps {
    pub completed: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DicomWeb<'a> {
    #[serde(borrow)]
    pub service: Str<'a>,
    #[serde(borrow)]
    pub study_instance_uid: Str<'a>,
    pub sop_instance_uid: Present,
}

/// `http.download`: a retrieval through a PACS's own REST API.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RestDownload<'a> {
    #[serde(borrow)]
    pub format: Str<'a>,
    #[serde(borrow)]
    pub study_instance_uids: StrList<'a>,
    #[serde(borrow)]
    pub destination: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Certificate<'a> {
    #[serde(borrow)]
    pub subject: Str<'a>,
    #[serde(borrow)]
    pub issuer: Str<'a>,
    #[serde(borrow)]
    pub not_after: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Entity<'a> {
    #[serde(borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub id: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Evidence<'a> {
    pub flow_ids: NumList,
    pub flow_ids_total: Num,
    #[serde(borrow)]
    pub study_instance_uids: StrList<'a>,
    pub study_instance_uids_total: Num,
    #[serde(borrow)]
    pub destinations: StrList<'a>,
    pub destinations_total: Num,
    #[serde(borrow)]
    pub pcap: Str<'a>,
    #[serde(borrow)]
    pub pcap_sha256: Str<'a>,
}

/// The object keys that hold an event's own object (docs/events.md, one per `event_type`).
const BODY_KEYS: [&str; 7] = ["dicom", "http", "tls", "hl7", "alert", "anomaly", "posture"];

/// One event line: the common fields and the object named by `event_type`.
///
/// Read with a hand-written visitor rather than a derive with one `Option<Body>` per event
/// type: one body is parsed, the others (there are none in pacstap's own lines) are skipped.
/// When `event_type` comes after the objects (pacstap writes it first), the last object read
/// is kept and dropped at the end if it is not `event_type`'s.
#[derive(Debug, Default)]
pub struct Line<'a> {
    timestamp: Str<'a>,
    flow_id: Num,
    event_type: Str<'a>,
    src_ip: Str<'a>,
    dest_ip: Str<'a>,
    dest_port: Num,
    body_key: Option<&'static str>,
    body: Body<'a>,
}

/// An object key, borrowed from the line when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Line<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Line<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Line<'de>, A::Error> {
                let mut l = Line::default();
                while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                    match &*k {
                        "timestamp" => l.timestamp = m.next_value()?,
                        "flow_id" => l.flow_id = m.next_value()?,
                        "event_type" => l.event_type = m.next_value()?,
                        "src_ip" => l.src_ip = m.next_value()?,
                        "dest_ip" => l.dest_ip = m.next_value()?,
                        "dest_port" => l.dest_port = m.next_value()?,
                        other => match BODY_KEYS.iter().find(|b| **b == other) {
                            Some(b) if l.event_type.0.as_deref().is_none_or(|t| t == *b) => {
                                l.body = m.next_value()?;
                                l.body_key = Some(b);
                            }
                            _ => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        },
                    }
                }
                if l.body_key.is_some() && l.body_key != l.event_type.0.as_deref() {
                    l.body = Body::default();
                }
                Ok(l)
            }
        }
        d.deserialize_map(V)
    }
}

static EMPTY: std::sync::LazyLock<Body<'static>> = std::sync::LazyLock::new(Body::default);

pub struct Ev<'a> {
    pub b: &'a Body<'a>,
    pub ts: &'a str,
    pub t: Micros,
    pub ty: &'a str,
    pub flow: u64,
    pub src: &'a str,
    pub dst: &'a str,
    pub dport: u64,
}

impl<'a> Ev<'a> {
    /// `None` when the line is not an event (no valid timestamp or no event type).
    pub fn from_line(l: &'a Line<'a>) -> Option<Ev<'a>> {
        let ty: &str = l.event_type.0.as_deref()?;
        let ts: &str = l.timestamp.0.as_deref()?;
        Some(Ev {
            b: if l.body_key.is_some() { &l.body } else { &EMPTY },
            ts,
            t: time::parse(ts)?,
            ty,
            flow: l.flow_id.0.unwrap_or(0),
            src: l.src_ip.0.as_deref().unwrap_or(""),
            dst: l.dest_ip.0.as_deref().unwrap_or(""),
            dport: l.dest_port.0.unwrap_or(0),
        })
    }

    /// A string field of the event's object, by its name in docs/events.md (`None` when
    /// absent, empty or not a string). Only the names [`Body`] reads; others are `None`.
    pub fn s(&self, key: &str) -> Option<&'a str> {
        let b = self.b;
        match key {
            "type" => &b.kind,
            "command" => &b.command,
            "calling_ae" => &b.calling_ae,
            "called_ae" => &b.called_ae,
            "user" => &b.user,
            "move_originator_ae" => &b.move_originator_ae,
            "move_destination" => &b.move_destination,
            "request_time" => &b.request_time,
            "status" => &b.status.s,
            "direction" => &b.direction,
            "outcome" => &b.outcome,
            "implementation_class_uid" => &b.implementation_class_uid,
            "implementation_version_name" => &b.implementation_version_name,
            "method" => &b.method,
            "url" => &b.url,
            "hostname" => &b.hostname,
            "auth" => &b.auth,
            "admin_action" => &b.admin_action,
            "share_action" => &b.share_action,
            "sni" => &b.sni,
            "version" => &b.version,
            "client_version" => &b.client_version,
            "cipher_suite" => &b.cipher_suite,
            "message_type" => &b.message_type,
            "sending_application" => &b.sending_application,
            "sending_facility" => &b.sending_facility,
            "receiving_application" => &b.receiving_application,
            "rule" => &b.rule,
            "severity_name" => &b.severity_name,
            "signature" => &b.signature,
            "summary" => &b.summary,
            "first_seen" => &b.first_seen,
            "last_seen" => &b.last_seen,
            "incident_id" => &b.incident_id,
            "name" => &b.name,
            "detail" => &b.detail,
            "finding" => &b.finding,
            "system" => &b.system,
            _ => {
                debug_assert!(false, "Ev::s({key:?}): not a field Body reads");
                return None;
            }
        }
        .get()
    }

    /// An unsigned integer field of the event's object (as [`Ev::s`]).
    pub fn u(&self, key: &str) -> Option<u64> {
        let b = self.b;
        match key {
            "move_originator_message_id" => b.move_originator_message_id,
            "message_id" => b.message_id,
            "status" => b.status.n,
            "dataset_bytes" => b.dataset_bytes,
            "commands" => b.commands,
            "bytes_toserver" => b.bytes_toserver,
            "bytes_toclient" => b.bytes_toclient,
            "gap_bytes_toclient" => b.gap_bytes_toclient,
            "request_bytes" => b.request_bytes,
            "response_bytes" => b.response_bytes,
            "count" => b.count,
            "threshold" => b.threshold,
            _ => {
                debug_assert!(false, "Ev::u({key:?}): not a field Body reads");
                return None;
            }
        }
        .0
    }

    /// `sub_operations.completed` of a C-MOVE / C-GET.
    pub fn completed(&self) -> Option<u64> {
        self.b.sub_operations.v.completed.0
    }

    /// `entity.kind` and `entity.id` of an alert.
    pub fn entity(&self) -> (Option<&'a str>, Option<&'a str>) {
        let e = &self.b.entity.v;
        (e.kind.get(), e.id.get())
    }

    /// An alert that updates its incident (`update: true`).
    pub fn is_update(&self) -> bool {
        self.b.update.0 == Some(true)
    }

    /// The authenticated user of a `dicom` or `http` event, if any.
    pub fn user(&self) -> Option<&'a str> {
        match self.ty {
            "dicom" => self.s("user").or_else(|| self.b.user_identity.v.username.get()),
            "http" => self.s("user"),
            _ => None,
        }
    }
}

/// `AE@address`, or whichever of the two is known.
pub fn node(ae: Option<&str>, addr: &str) -> String {
    match (ae.filter(|a| !a.is_empty()), addr.is_empty()) {
        (Some(ae), false) => format!("{ae}@{addr}"),
        (Some(ae), true) => ae.to_string(),
        (None, _) => addr.to_string(),
    }
}

/// Internal networks: RFC 1918 (and their IPv6 equivalents, RFC 4193 / RFC 4291 link-local)
/// plus the config's `networks.internal`.
#[derive(Debug, Clone)]
pub struct Networks(pub Vec<IpNet>);

impl Default for Networks {
    fn default() -> Self {
        Networks(
            [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
                "fe80::/10",
                "127.0.0.0/8",
                "::1/128",
            ]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        )
    }
}

impl Networks {
    /// An address that does not parse (an AE title without address) counts as internal:
    /// the report never calls a system external without knowing its address.
    pub fn internal(&self, addr: &str) -> bool {
        let ip = addr.rsplit('@').next().unwrap_or(addr);
        let ip = ip.split(" (").next().unwrap_or(ip);
        match ip.parse::<IpAddr>() {
            Ok(ip) => self.0.iter().any(|n| n.contains(&ip)),
            Err(_) => true,
        }
    }
}

/// A set of strings that stops growing at `cap` (the rest are counted in `dropped`).
#[derive(Debug, Default, Clone)]
pub struct CapSet {
    pub set: BTreeSet<String>,
    pub dropped: u64,
}

impl CapSet {
    pub fn add(&mut self, s: &str, cap: usize) -> bool {
        if self.set.contains(s) {
            return false;
        }
        if self.set.len() >= cap {
            self.dropped += 1;
            return false;
        }
        self.set.insert(s.to_string());
        true
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.set.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event type the report reads has its own object read by the line parser: a posture
    /// finding read back from an events file reaches the checklist with its fields.
    #[test]
    fn a_posture_line_keeps_its_object() {
        let text = r#"{"timestamp":"2026-11-28T07:09:59.285293Z","flow_id":7,"event_type":"posture","src_ip":"10.20.0.30","dest_ip":"10.20.0.10","dest_port":2575,"posture":{"finding":"hl7_in_clear","system":"10.20.0.10:2575","detail":"MLLP in clear"}}"#;
        let line: Line = serde_json::from_str(text).unwrap();
        let ev = Ev::from_line(&line).unwrap();
        assert_eq!(ev.ty, "posture");
        assert_eq!(ev.s("finding"), Some("hl7_in_clear"));
        assert_eq!(ev.s("system"), Some("10.20.0.10:2575"));
    }
}
