//! Inventory (DICOM nodes, HL7 applications, web and TLS servers) and the image flow map,
//! from what the wire shows: who requested associations (SCU) and accepted them (SCP), which
//! software they announced (implementation class UID / version name, PS3.7 §D.3.3.2).

use crate::ev::{CapSet, Ev, Networks};
use crate::ledger::Action;
use crate::model::{DicomNode, FlowEdge, Hl7App, Inventory, TlsServer, WebServer};
use crate::shared::Ts;
use crate::time::{self, Micros};
use std::collections::HashMap;
use std::fmt::Write;

/// Entries per inventory table and edges of the flow map (10 000: far more systems than an
/// imaging network has; the rest are counted in `untracked`).
pub const MAX_ENTRIES: usize = 10_000;
/// Values listed per entry (SOP classes, message types, host names, ...).
pub const MAX_VALUES: usize = 32;

/// First and last timestamp, as the events wrote them (inline: the last one changes with
/// nearly every event).
#[derive(Default)]
struct Span {
    first: Ts,
    last: Ts,
}

impl Span {
    fn see(&mut self, ts: &str) {
        if self.first.is_empty() || ts < self.first.as_str() {
            self.first = Ts::new(ts);
        }
        if ts > self.last.as_str() {
            self.last = Ts::new(ts);
        }
    }
}

#[derive(Default)]
struct Node {
    span: Span,
    roles: CapSet,
    impl_uids: CapSet,
    impl_names: CapSet,
    sops: CapSet,
    associations: u64,
}

#[derive(Default)]
struct App {
    span: Span,
    types: CapSet,
    messages: u64,
}

#[derive(Default)]
struct Web {
    span: Span,
    hosts: CapSet,
    users: CapSet,
    auth: CapSet,
    requests: u64,
    dicomweb: u64,
}

#[derive(Default)]
struct Tls {
    span: Span,
    sni: CapSet,
    chosen: CapSet,
    offered: CapSet,
    ciphers: CapSet,
    subject: Option<String>,
    issuer: Option<String>,
    not_after: Option<String>,
    connections: u64,
}

#[derive(Default)]
struct Edge {
    how: CapSet,
    instances: u64,
    bytes: u64,
    studies: CapSet,
}

#[derive(Default)]
pub struct Inv {
    dicom: HashMap<(String, String), Node>,
    hl7: HashMap<(String, String, String), App>,
    web: HashMap<String, Web>,
    tls: HashMap<String, Tls>,
    edges: HashMap<(String, String), Edge>,
    untracked: u64,
    last_event: Micros,
    /// The key of the current event, reused.
    key: String,
}

/// [`entry`] for a `String` key built in `key` (a buffer reused across events): copied only
/// when the entry is new.
fn entry_str<'m, V: Default>(m: &'m mut HashMap<String, V>, key: &str, untracked: &mut u64) -> Option<&'m mut V> {
    if !m.contains_key(key) {
        if m.len() >= MAX_ENTRIES {
            *untracked += 1;
            return None;
        }
        m.insert(key.to_string(), V::default());
    }
    m.get_mut(key)
}

fn entry<'m, K: std::hash::Hash + Eq, V: Default>(
    m: &'m mut HashMap<K, V>,
    k: K,
    untracked: &mut u64,
) -> Option<&'m mut V> {
    if !m.contains_key(&k) && m.len() >= MAX_ENTRIES {
        *untracked += 1;
        return None;
    }
    Some(m.entry(k).or_default())
}

impl Inv {
    pub fn add(&mut self, ev: &Ev<'_>) {
        self.last_event = self.last_event.max(ev.t);
        let u = &mut self.untracked;
        match ev.ty {
            "dicom" if ev.s("type") == Some("association") => {
                let sops = &ev.b.abstract_syntaxes.items;
                for (ae, addr, role) in [(ev.s("calling_ae"), ev.src, "SCU"), (ev.s("called_ae"), ev.dst, "SCP")] {
                    let Some(n) = entry(&mut self.dicom, (ae.unwrap_or("").to_string(), addr.to_string()), u) else {
                        continue;
                    };
                    n.span.see(ev.ts);
                    n.roles.add(role, 4);
                    n.associations += 1;
                    for s in sops {
                        n.sops.add(s, MAX_VALUES);
                    }
                    if role == "SCU" {
                        // The A-ASSOCIATE-RQ's implementation items: the requester's software.
                        if let Some(x) = ev.s("implementation_class_uid") {
                            n.impl_uids.add(x, MAX_VALUES);
                        }
                        if let Some(x) = ev.s("implementation_version_name") {
                            n.impl_names.add(x, MAX_VALUES);
                        }
                    }
                }
            }
            "hl7" => {
                let key = (
                    ev.s("sending_application").unwrap_or("").to_string(),
                    ev.s("sending_facility").unwrap_or("").to_string(),
                    if ev.s("direction") == Some("toclient") {
                        ev.dst
                    } else {
                        ev.src
                    }
                    .to_string(),
                );
                if let Some(a) = entry(&mut self.hl7, key, u) {
                    a.span.see(ev.ts);
                    a.messages += 1;
                    if let Some(t) = ev.s("message_type") {
                        a.types.add(t, MAX_VALUES);
                    }
                }
            }
            "http" => {
                self.key.clear();
                let _ = write!(self.key, "{}:{}", ev.dst, ev.dport);
                if let Some(w) = entry_str(&mut self.web, &self.key, u) {
                    w.span.see(ev.ts);
                    w.requests += 1;
                    if ev.b.dicomweb.present {
                        w.dicomweb += 1;
                    }
                    if let Some(h) = ev.s("hostname") {
                        w.hosts.add(h, MAX_VALUES);
                    }
                    if let Some(x) = ev.user() {
                        w.users.add(x, MAX_VALUES);
                    }
                    if let Some(x) = ev.s("auth") {
                        w.auth.add(x, MAX_VALUES);
                    }
                }
            }
            "tls" => {
                self.key.clear();
                let _ = write!(self.key, "{}:{}", ev.dst, ev.dport);
                if let Some(t) = entry_str(&mut self.tls, &self.key, u) {
                    t.span.see(ev.ts);
                    t.connections += 1;
                    if let Some(x) = ev.s("sni") {
                        t.sni.add(x, MAX_VALUES);
                    }
                    if let Some(x) = ev.s("version") {
                        t.chosen.add(x, MAX_VALUES);
                    }
                    if let Some(x) = ev.s("client_version") {
                        t.offered.add(x, MAX_VALUES);
                    }
                    if let Some(x) = ev.s("cipher_suite") {
                        t.ciphers.add(x, MAX_VALUES);
                    }
                    let c = &ev.b.certificate.v;
                    if let Some(s) = c.subject.get() {
                        t.subject = Some(s.to_string());
                    }
                    if let Some(s) = c.issuer.get() {
                        t.issuer = Some(s.to_string());
                    }
                    if let Some(s) = c.not_after.get() {
                        t.not_after = Some(s.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// An image transfer for the flow map (C-MOVE is left out: its images travel on the
    /// C-STORE associations it starts, which are edges of their own with real addresses).
    pub fn add_transfer(&mut self, a: &Action<'_>) {
        if a.kind != "transfer" || a.how == "C-MOVE" {
            return;
        }
        let Some(e) = entry(&mut self.edges, (a.from.clone(), a.to.clone()), &mut self.untracked) else {
            return;
        };
        e.how.add(a.how, 8);
        e.instances += a.instances.unwrap_or(0);
        e.bytes += a.bytes.unwrap_or(0);
        for s in &a.studies {
            e.studies.add(s, 10_000);
        }
    }

    pub fn finish(self, nets: &Networks) -> (Inventory, Vec<FlowEdge>) {
        let now = self.last_event;
        let mut inv = Inventory {
            untracked: self.untracked,
            ..Inventory::default()
        };
        for ((ae, address), n) in self.dicom {
            inv.dicom_nodes.push(DicomNode {
                internal: nets.internal(&address),
                ae,
                address,
                roles: n.roles.to_vec(),
                implementation_class_uids: n.impl_uids.to_vec(),
                implementation_version_names: n.impl_names.to_vec(),
                sop_classes: n.sops.to_vec(),
                associations: n.associations,
                first_seen: n.span.first.to_string(),
                last_seen: n.span.last.to_string(),
            });
        }
        inv.dicom_nodes
            .sort_by(|a, b| (&a.ae, &a.address).cmp(&(&b.ae, &b.address)));
        for ((application, facility, address), a) in self.hl7 {
            inv.hl7_applications.push(Hl7App {
                application,
                facility,
                address,
                message_types: a.types.to_vec(),
                messages: a.messages,
                first_seen: a.span.first.to_string(),
                last_seen: a.span.last.to_string(),
            });
        }
        inv.hl7_applications
            .sort_by(|a, b| (&a.application, &a.address).cmp(&(&b.application, &b.address)));
        for (address, w) in self.web {
            inv.http_servers.push(WebServer {
                address,
                hostnames: w.hosts.to_vec(),
                requests: w.requests,
                dicomweb: w.dicomweb,
                users: w.users.to_vec(),
                auth_schemes: w.auth.to_vec(),
                first_seen: w.span.first.to_string(),
                last_seen: w.span.last.to_string(),
            });
        }
        inv.http_servers.sort_by(|a, b| a.address.cmp(&b.address));
        for (address, t) in self.tls {
            let expired = t.not_after.as_deref().and_then(time::parse).is_some_and(|na| na < now);
            let self_signed = matches!((&t.subject, &t.issuer), (Some(s), Some(i)) if s == i);
            inv.tls_servers.push(TlsServer {
                address,
                sni: t.sni.to_vec(),
                versions_chosen: t.chosen.to_vec(),
                versions_offered: t.offered.to_vec(),
                cipher_suites: t.ciphers.to_vec(),
                certificate_subject: t.subject,
                certificate_issuer: t.issuer,
                certificate_not_after: t.not_after,
                self_signed,
                expired,
                connections: t.connections,
                first_seen: t.span.first.to_string(),
                last_seen: t.span.last.to_string(),
            });
        }
        inv.tls_servers.sort_by(|a, b| a.address.cmp(&b.address));
        let mut edges: Vec<FlowEdge> = self
            .edges
            .into_iter()
            .map(|((from, to), e)| FlowEdge {
                from_internal: nets.internal(&from),
                to_internal: nets.internal(&to),
                from,
                to,
                how: e.how.to_vec(),
                instances: e.instances,
                bytes: e.bytes,
                studies: e.studies.set.len() as u64 + e.studies.dropped,
            })
            .collect();
        edges.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
        });
        (inv, edges)
    }
}
