//! The summary's HTTPS volume per client (issue 14): for TLS connections, which client moved
//! how many bytes (both ways), over how many connections, to which server names (SNI) when the
//! ClientHello was seen. Encrypted traffic has no studies to count; its volume is what an
//! investigator can still compare (a workstation that pulled 40 GB over HTTPS at night).

use super::units::human_bytes;
use crate::term::escape_controls as esc;
use pacstap_core::{FlowMeta, TlsEvent};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Clients tracked; past it further clients are summed into `(other)`.
const MAX_CLIENTS: usize = 10_000;
/// Server names kept per client; more are counted as "+N".
const MAX_NAMES: usize = 3;

#[derive(Default)]
struct Client {
    bytes: u64,
    connections: u64,
    /// Server name → connections (escaped; `(no SNI)` when the ClientHello was not seen or had none).
    names: BTreeMap<String, u64>,
    more_names: u64,
}

impl Client {
    fn add(&mut self, t: &TlsEvent) {
        self.bytes = self
            .bytes
            .saturating_add(t.bytes_toserver.saturating_add(t.bytes_toclient));
        self.connections = self.connections.saturating_add(1);
        let name = esc(t.sni.as_deref().unwrap_or("(no SNI)"));
        if let Some(n) = self.names.get_mut(name.as_ref()) {
            *n += 1;
        } else if self.names.len() < MAX_NAMES {
            self.names.insert(name.into_owned(), 1);
        } else {
            self.more_names = self.more_names.saturating_add(1);
        }
    }
}

#[derive(Default)]
pub(super) struct TlsVolume {
    clients: HashMap<IpAddr, Client>,
    other: Option<Client>,
}

impl TlsVolume {
    pub(super) fn observe(&mut self, flow: &FlowMeta, t: &TlsEvent) {
        let ip = flow.client.ip;
        if let Some(c) = self.clients.get_mut(&ip) {
            c.add(t);
        } else if self.clients.len() < MAX_CLIENTS {
            self.clients.entry(ip).or_default().add(t);
        } else {
            self.other.get_or_insert_with(Client::default).add(t);
        }
    }

    /// `top` clients by bytes, under the TLS section.
    pub(super) fn render(&self, s: &mut String, top: usize) {
        if self.clients.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "  HTTPS volume by client (bytes both ways, connections, server names)"
        );
        let mut v: Vec<_> = self.clients.iter().collect();
        v.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
        for (ip, c) in v.iter().take(top) {
            let _ = writeln!(
                s,
                "    {:>9} {:>5}  {ip}: {}",
                human_bytes(c.bytes),
                c.connections,
                names(c)
            );
        }
        if v.len() > top {
            let _ = writeln!(s, "    … and {} more", v.len() - top);
        }
        if let Some(c) = &self.other {
            let _ = writeln!(
                s,
                "    {:>9} {:>5}  (other: past {MAX_CLIENTS} clients)",
                human_bytes(c.bytes),
                c.connections
            );
        }
    }
}

/// `pacs.example.org (2), (no SNI) (1), other names (4)`: connections per name, most used
/// first.
fn names(c: &Client) -> String {
    let mut v: Vec<_> = c.names.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = v.iter().map(|(n, k)| format!("{n} ({k})")).collect();
    if c.more_names > 0 {
        parts.push(format!("other names ({})", c.more_names));
    }
    parts.join(", ")
}
