//! A view of one event line (a `serde_json::Value`), with the common fields read once.
//!
//! The report reads events as untyped JSON on purpose: it must read files from older and newer
//! pacstap versions (docs/events.md: consumers ignore fields they do not know, and fields may
//! be absent), so every access is optional and a wrong type reads as absent.

use crate::time::{self, Micros};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The common fields of an event line, parsed without building a tree for them; only the
/// event's own object is a `Value` (a parse of 10^6 lines spends most of its time allocating
/// the tree's keys and strings, and the common fields are most of them per line).
#[derive(serde::Deserialize)]
pub struct Line<'a> {
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(default)]
    flow_id: Option<u64>,
    #[serde(borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    src_ip: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    dest_ip: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    dest_port: Option<u64>,
    #[serde(default)]
    dicom: Option<Value>,
    #[serde(default)]
    http: Option<Value>,
    #[serde(default)]
    tls: Option<Value>,
    #[serde(default)]
    hl7: Option<Value>,
    #[serde(default)]
    alert: Option<Value>,
    #[serde(default)]
    anomaly: Option<Value>,
    #[serde(default)]
    posture: Option<Value>,
}

static NULL: Value = Value::Null;

pub struct Ev<'a> {
    body: &'a Value,
    pub ts: &'a str,
    pub t: Micros,
    pub ty: &'a str,
    pub flow: u64,
    pub src: &'a str,
    pub dst: &'a str,
    pub dport: u64,
}

impl<'a> Ev<'a> {
    /// `None` when the line is not an event (no valid timestamp).
    pub fn from_line(l: &'a Line<'a>) -> Option<Ev<'a>> {
        let ty: &str = &l.event_type;
        let body = match ty {
            "dicom" => l.dicom.as_ref(),
            "http" => l.http.as_ref(),
            "tls" => l.tls.as_ref(),
            "hl7" => l.hl7.as_ref(),
            "alert" => l.alert.as_ref(),
            "anomaly" => l.anomaly.as_ref(),
            "posture" => l.posture.as_ref(),
            _ => None,
        };
        Some(Ev {
            body: body.unwrap_or(&NULL),
            ts: &l.timestamp,
            t: time::parse(&l.timestamp)?,
            ty,
            flow: l.flow_id.unwrap_or(0),
            src: l.src_ip.as_deref().unwrap_or(""),
            dst: l.dest_ip.as_deref().unwrap_or(""),
            dport: l.dest_port.unwrap_or(0),
        })
    }

    /// `None` when the line is not an event (no timestamp or event type).
    pub fn new(v: &'a Value) -> Option<Ev<'a>> {
        let ts = v.get("timestamp")?.as_str()?;
        let t = time::parse(ts)?;
        let ty = v.get("event_type")?.as_str()?;
        Some(Ev {
            body: v.get(ty).unwrap_or(&NULL),
            ts,
            t,
            ty,
            flow: v.get("flow_id").and_then(Value::as_u64).unwrap_or(0),
            src: v.get("src_ip").and_then(Value::as_str).unwrap_or(""),
            dst: v.get("dest_ip").and_then(Value::as_str).unwrap_or(""),
            dport: v.get("dest_port").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// The object named after `event_type`.
    pub fn body(&self) -> &'a Value {
        self.body
    }

    pub fn s(&self, key: &str) -> Option<&'a str> {
        self.body().get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn u(&self, key: &str) -> Option<u64> {
        self.body().get(key).and_then(Value::as_u64)
    }

    /// The authenticated user of a `dicom` or `http` event, if any.
    pub fn user(&self) -> Option<&'a str> {
        match self.ty {
            "dicom" => self.s("user").or_else(|| {
                self.body()
                    .get("user_identity")?
                    .get("username")?
                    .as_str()
                    .filter(|s| !s.is_empty())
            }),
            "http" => self.s("user"),
            _ => None,
        }
    }
}

/// Nested string: `path` of object keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
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
