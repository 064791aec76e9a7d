//! The summary's "who exported what to where" table (issue 14): per exporter (a user, else the
//! calling AE), destination (AE and host) and protocol, how many studies, instances and bytes
//! left — from the DICOM commands and DICOMweb requests already seen.
//!
//! Counts only, never Study Instance UIDs (docs/events.md, privacy: the summary answers "how
//! much went where"; the UIDs are in the alerts that need them).
//!
//! How each event maps to a row:
//! - a C-STORE with a Move Originator AE (PS3.7 §9.1.1.1) is a C-MOVE sub-operation: row
//!   (originator → the store's called AE, `C-MOVE`), host the store's server address;
//! - a C-STORE flowing back to the requester (`toclient`) is a C-GET sub-operation: row
//!   (requester → the requester's address, `C-GET`);
//! - any other C-STORE: row (calling → called, `C-STORE`), host the server address;
//! - a C-MOVE / C-GET request: its studies, and its final response's completed
//!   sub-operations (stores on another segment are not seen, the count is);
//! - a DICOMweb retrieval (WADO-RS, WADO-URI) answered 2xx: row (user → client address,
//!   `DICOMweb`), bytes the response's; a STOW-RS upload: row (user → server address).

use super::units::human_bytes;
use crate::term::escape_controls as esc;
use pacstap_core::{CountedStudy, DicomCommand, Direction, FlowMeta, HttpEvent, RestDownload, StatusClass};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Distinct (exporter, destination, protocol) rows kept; further rows fold into one `(other)`
/// total, so a capture full of spoofed AE titles cannot grow the summary without bound.
const MAX_ROWS: usize = 10_000;
/// (row, study) pairs remembered to count distinct studies per row; past it a row's count is
/// a lower bound (`≥`). 8 + 4 bytes each: about 2 MB at the cap.
const MAX_ROW_STUDIES: usize = 100_000;
/// Destination addresses named per row; more are "+N".
const MAX_HOSTS: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Protocol {
    CMove,
    CGet,
    CStore,
    DicomWeb,
    /// A PACS's own REST API (Orthanc's archive and file downloads).
    Rest,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::CMove => "C-MOVE",
            Protocol::CGet => "C-GET",
            Protocol::CStore => "C-STORE",
            Protocol::DicomWeb => "DICOMweb",
            Protocol::Rest => "REST API",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    who: String,
    dest: String,
    protocol: Protocol,
}

#[derive(Default)]
struct Row {
    id: u32,
    /// The association's (or request's) user name, when one was sent: shown beside the AE.
    user: Option<String>,
    hosts: Vec<IpAddr>,
    more_hosts: u64,
    studies: u64,
    studies_saturated: bool,
    /// Stores (or instance retrievals) seen carrying data.
    instances_seen: u64,
    /// Completed sub-operations the C-MOVE / C-GET responses reported.
    instances_reported: u64,
    bytes: u64,
}

impl Row {
    fn host(&mut self, ip: IpAddr) {
        if self.hosts.contains(&ip) {
            return;
        }
        if self.hosts.len() < MAX_HOSTS {
            self.hosts.push(ip);
        } else {
            self.more_hosts = self.more_hosts.saturating_add(1);
        }
    }

    /// Seen stores, or the reported count where the stores themselves were not captured.
    fn instances(&self) -> u64 {
        self.instances_seen.max(self.instances_reported)
    }
}

/// The exporter table's state.
#[derive(Default)]
pub(super) struct Exports {
    rows: HashMap<Key, Row>,
    /// Rows past [`MAX_ROWS`], summed into one shown as `(other)`.
    other: Row,
    folded: bool,
    /// (row id, hash of a study UID): distinct studies per row without keeping the UIDs.
    seen: HashSet<(u32, u64)>,
    hasher: RandomState,
}

impl Exports {
    fn row(&mut self, who: &str, dest: &str, protocol: Protocol) -> &mut Row {
        let key = Key {
            who: esc(who).into_owned(),
            dest: esc(dest).into_owned(),
            protocol,
        };
        if !self.rows.contains_key(&key) && self.rows.len() >= MAX_ROWS {
            self.folded = true;
            self.other.id = u32::MAX;
            return &mut self.other;
        }
        let id = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        self.rows.entry(key).or_insert_with(|| Row { id, ..Row::default() })
    }

    fn add_studies<'a>(&mut self, who: &str, dest: &str, protocol: Protocol, uids: impl Iterator<Item = &'a str>) {
        let hashes: Vec<u64> = uids.map(|u| self.hasher.hash_one(u)).collect();
        let full = self.seen.len() >= MAX_ROW_STUDIES;
        let row = self.row(who, dest, protocol);
        let id = row.id;
        let mut new = 0u64;
        let mut saturated = false;
        for h in hashes {
            if self.seen.contains(&(id, h)) {
                continue;
            }
            if full || self.seen.len() >= MAX_ROW_STUDIES {
                saturated = true;
            } else {
                self.seen.insert((id, h));
                new += 1;
            }
        }
        let row = self.row(who, dest, protocol);
        row.studies = row.studies.saturating_add(new);
        row.studies_saturated |= saturated;
    }

    #[cfg(test)]
    pub(super) fn rows(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn observe_command(&mut self, flow: &FlowMeta, c: &DicomCommand) {
        let ok = |s: Option<StatusClass>| !matches!(s, Some(StatusClass::Failure | StatusClass::Cancel));
        let uids = || c.study_instance_uids.iter().map(String::as_str);
        match c.command.as_str() {
            "C-STORE" => {
                if !ok(c.status_class) {
                    return;
                }
                let (who, dest, protocol, host) = match c.move_originator_ae.as_deref().filter(|a| !a.is_empty()) {
                    Some(orig) => (orig, c.called_ae.as_str(), Protocol::CMove, flow.server.ip),
                    None if c.direction == Direction::ToClient => (
                        c.calling_ae.as_str(),
                        c.calling_ae.as_str(),
                        Protocol::CGet,
                        flow.client.ip,
                    ),
                    None => (
                        c.calling_ae.as_str(),
                        c.called_ae.as_str(),
                        Protocol::CStore,
                        flow.server.ip,
                    ),
                };
                self.add_studies(who, dest, protocol, uids());
                let row = self.row(who, dest, protocol);
                row.host(host);
                row.instances_seen = row.instances_seen.saturating_add(1);
                row.bytes = row.bytes.saturating_add(c.dataset_bytes);
                if protocol == Protocol::CStore {
                    set_user(row, c.user.as_deref());
                }
            }
            "C-MOVE" | "C-GET" => {
                let completed = c
                    .sub_operations
                    .map_or(0, |s| u64::from(s.completed) + u64::from(s.warning));
                if completed == 0 && !matches!(c.status_class, Some(StatusClass::Success | StatusClass::Warning)) {
                    return;
                }
                let (dest, protocol) = if c.command == "C-MOVE" {
                    (c.move_destination.as_deref().unwrap_or(""), Protocol::CMove)
                } else {
                    (c.calling_ae.as_str(), Protocol::CGet)
                };
                self.add_studies(&c.calling_ae, dest, protocol, uids());
                let row = self.row(&c.calling_ae, dest, protocol);
                row.instances_reported = row.instances_reported.saturating_add(completed);
                if protocol == Protocol::CGet {
                    row.host(flow.client.ip);
                }
                set_user(row, c.user.as_deref());
            }
            _ => {}
        }
    }

    /// A REST API download: its study when the file (or the ZIP's first file) named it, else
    /// each resource of the request as a study of its own, as the detector counts them.
    fn observe_rest_download(&mut self, flow: &FlowMeta, h: &HttpEvent, d: &RestDownload) {
        if !matches!(h.status, Some(200..=299)) {
            return;
        }
        let who = h.user.as_deref().unwrap_or("(no user)");
        // A push (`format: store`) goes to the node or peer it names, not to the client.
        let dest = d.destination.clone().unwrap_or_else(|| flow.client.ip.to_string());
        let keys: Vec<String> = d
            .counted_studies()
            .into_iter()
            .map(|c| match c {
                CountedStudy::Named(uid) => uid.to_owned(),
                CountedStudy::Resource(id) => format!("{}:{}:{id}", d.api, d.level),
            })
            .collect();
        self.add_studies(who, &dest, Protocol::Rest, keys.iter().map(String::as_str));
        let row = self.row(who, &dest, Protocol::Rest);
        if d.format == "file" {
            row.instances_seen = row.instances_seen.saturating_add(1);
        }
        if d.destination.is_none() {
            row.bytes = row.bytes.saturating_add(h.response_bytes);
        }
    }

    pub(super) fn observe_http(&mut self, flow: &FlowMeta, h: &HttpEvent) {
        if let Some(d) = &h.download {
            self.observe_rest_download(flow, h, d);
        }
        let Some(d) = &h.dicomweb else { return };
        if !matches!(h.status, Some(200..=299)) {
            return;
        }
        let (host, bytes) = match d.service.as_str() {
            "WADO-RS" | "WADO-URI" => (flow.client.ip, h.response_bytes),
            "STOW-RS" => (flow.server.ip, h.request_bytes),
            _ => return,
        };
        let who = h.user.as_deref().unwrap_or("(no user)");
        let dest = host.to_string();
        self.add_studies(
            who,
            &dest,
            Protocol::DicomWeb,
            d.study_instance_uid.as_deref().into_iter(),
        );
        let row = self.row(who, &dest, Protocol::DicomWeb);
        if d.sop_instance_uid.is_some() {
            row.instances_seen = row.instances_seen.saturating_add(1);
        }
        row.bytes = row.bytes.saturating_add(bytes);
    }

    /// The table, `top` rows, largest first (bytes, then studies, then instances).
    pub(super) fn render(&self, s: &mut String, top: usize) {
        if self.rows.is_empty() {
            let _ = writeln!(
                s,
                "Exports: none seen (DICOM C-MOVE, C-GET, C-STORE; DICOMweb; REST API downloads)"
            );
            return;
        }
        let _ = writeln!(s, "Exports (who → where)");
        let _ = writeln!(
            s,
            "  {:>8} {:>9} {:>9}  {:<9} who → where",
            "studies", "instances", "bytes", "protocol"
        );
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| {
            (b.1.bytes, b.1.studies, b.1.instances())
                .cmp(&(a.1.bytes, a.1.studies, a.1.instances()))
                .then(a.0.cmp(b.0))
        });
        for (key, row) in rows.iter().take(top) {
            let who = match &row.user {
                Some(u) if !matches!(key.protocol, Protocol::DicomWeb | Protocol::Rest) => {
                    format!("{u} ({})", show(&key.who))
                }
                _ => show(&key.who).to_owned(),
            };
            let prefix = format!(
                "  {:>8} {:>9} {:>9}  {:<9} ",
                studies(row),
                row.instances(),
                human_bytes(row.bytes),
                key.protocol.as_str()
            );
            super::arrow_line(s, &prefix, &who, &destination(key, row));
        }
        if rows.len() > top {
            let _ = writeln!(s, "  … and {} more", rows.len() - top);
        }
        if self.folded {
            let o = &self.other;
            let _ = writeln!(
                s,
                "  {:>8} {:>9} {:>9}  {:<9} (other: past {MAX_ROWS} rows)",
                studies(o),
                o.instances(),
                human_bytes(o.bytes),
                "any"
            );
        }
    }
}

fn set_user(row: &mut Row, user: Option<&str>) {
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        row.user = Some(esc(u).into_owned());
    }
}

fn studies(row: &Row) -> String {
    if row.studies_saturated {
        format!("≥{}", row.studies)
    } else {
        row.studies.to_string()
    }
}

fn show(ae: &str) -> &str {
    if ae.is_empty() {
        "(unknown)"
    } else {
        ae
    }
}

/// `STORESCP (10.20.0.20)`, `STORESCP (10.20.0.20, 10.20.0.21, +3)`, a bare address for
/// DICOMweb and C-GET (the destination is the requesting host), `STORESCP` when its stores
/// were not seen.
fn destination(key: &Key, row: &Row) -> String {
    if matches!(key.protocol, Protocol::DicomWeb | Protocol::Rest) {
        return key.dest.clone();
    }
    if row.hosts.is_empty() {
        return show(&key.dest).to_owned();
    }
    let mut hosts: Vec<String> = row.hosts.iter().map(IpAddr::to_string).collect();
    if row.more_hosts > 0 {
        hosts.push(format!("+{}", row.more_hosts));
    }
    if key.protocol == Protocol::CGet {
        // The requester is the destination: its address says where the data went.
        return hosts.join(", ");
    }
    format!("{} ({})", show(&key.dest), hosts.join(", "))
}
