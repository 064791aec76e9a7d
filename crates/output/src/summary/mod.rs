//! The human summary printed at the end of `pacstap replay` (CONTRACT §1): associations,
//! top AE pairs, commands, studies moved, anomalies — the first answers an investigator wants
//! before opening the JSON.
//!
//! Every string taken from an event is stored with its control characters escaped
//! ([`crate::term`]): AE titles, user names, SNI names and HL7 fields are the wire's, and the
//! summary goes to the investigator's terminal.

mod exports;
mod tls_volume;
mod units;

pub use units::{human_bytes, human_duration};

use crate::term::escape_controls as esc;
use exports::Exports;
use pacstap_core::{DicomEvent, EventBody, ProtocolEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use tls_volume::TlsVolume;

/// Distinct AE pairs tracked before new ones fold into `(other)`: a summary must stay bounded
/// even on a capture with millions of spoofed AE titles.
const MAX_AE_PAIRS: usize = 10_000;
/// Distinct study UIDs remembered per category; beyond this the count is shown as a lower bound.
const MAX_STUDIES: usize = 100_000;
/// Rows shown in each top-N table: with the section titles, a summary that fits a screen.
const TOP_N: usize = 10;

/// An AE pair as the summary shows it: AE titles (escaped) with the addresses they used, since
/// an AE title is only a claim and the same title from a new address is what an investigator
/// looks for (`CT01 (10.1.2.3) → PACS (10.1.0.5)`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PairKey {
    calling: String,
    client: IpAddr,
    called: String,
    server: IpAddr,
}

/// A block of pre-formatted lines another stage contributes (capture, decode, flow counters).
#[derive(Debug, Clone, Default)]
pub struct SummarySection {
    pub title: String,
    pub rows: Vec<(String, String)>,
}

#[derive(Default)]
struct PairStats {
    associations: u64,
    commands: u64,
}

#[derive(Default)]
struct StudySet {
    uids: HashSet<String>,
    saturated: bool,
}

impl StudySet {
    fn add(&mut self, uid: &str) {
        if self.uids.contains(uid) {
            return;
        }
        if self.uids.len() >= MAX_STUDIES {
            self.saturated = true;
            return;
        }
        self.uids.insert(uid.to_owned());
    }

    fn show(&self) -> String {
        if self.saturated {
            format!("≥{}", self.uids.len())
        } else {
            self.uids.len().to_string()
        }
    }
}

/// Accumulates what the summary reports, from the event stream.
#[derive(Default)]
pub struct Summary {
    outcomes: BTreeMap<&'static str, u64>,
    associations: u64,
    /// Associations whose A-ASSOCIATE-RQ was not captured (`request_seen: false`): the
    /// capture began mid-association, so their AE titles may be unknown.
    associations_midstream: u64,
    /// Rejections inferred from the size of a reply the capture lost (`reject_inferred`).
    rejections_inferred: u64,
    pairs: HashMap<PairKey, PairStats>,
    other_pair: PairStats,
    commands: BTreeMap<(String, &'static str), u64>,
    stored: StudySet,
    moved: StudySet,
    retrieved: StudySet,
    queried: StudySet,
    move_destinations: BTreeMap<String, u64>,
    users: BTreeMap<String, u64>,
    /// Associations that lost bytes to capture gaps: how many, and the first few named (issue
    /// 9: real loss is reported honestly, and the summary says which associations it hit).
    lossy_associations: u64,
    lossy: Vec<String>,
    anomalies: BTreeMap<&'static str, u64>,
    http: Counter,
    http_users: Counter,
    http_auth_failures: Counter,
    dicomweb: Counter,
    dicomweb_studies: StudySet,
    tls_versions: Counter,
    tls_sni: Counter,
    hl7_types: Counter,
    hl7_acks: Counter,
    alerts: Vec<AlertLine>,
    /// Incidents past [`MAX_ALERT_LINES`].
    alerts_unlisted: u64,
    alerts_total: u64,
    exports: Exports,
    tls_volume: TlsVolume,
}

/// A bounded tally by name: past [`MAX_AE_PAIRS`] distinct names new ones fold into `(other)`.
#[derive(Default)]
struct Counter(BTreeMap<String, u64>);

impl Counter {
    fn add(&mut self, key: &str) {
        if let Some(n) = self.0.get_mut(key) {
            *n += 1;
        } else if self.0.len() < MAX_AE_PAIRS {
            self.0.insert(key.to_owned(), 1);
        } else {
            *self.0.entry("(other)".to_owned()).or_default() += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `name (n), …` for the most frequent first.
    fn top(&self) -> String {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut parts: Vec<String> = v.iter().take(TOP_N).map(|(k, n)| format!("{k} ({n})")).collect();
        if v.len() > TOP_N {
            parts.push(format!("… {} more", v.len() - TOP_N));
        }
        parts.join(", ")
    }
}

/// The latest state of one incident (rule, entity), for the alerts section.
struct AlertLine {
    rule: String,
    severity: &'static str,
    entity: String,
    count: u64,
    studies: Vec<String>,
    studies_total: u64,
    /// Where the data went (`evidence.destinations`), so the section answers "which studies
    /// went where" without the JSON.
    destinations: Vec<String>,
    destinations_total: u64,
    summary: String,
}

/// Incidents remembered for the summary (their latest update replaces the line); the rest are
/// counted.
const MAX_ALERT_LINES: usize = 1000;
/// Lines (incidents, command kinds) shown of a list that is not a top-N ranking: enough for
/// every DIMSE command of PS3.7 §9–10 in common use, and a screenful of incidents.
const LONG_LIST: usize = 20;

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    fn pair(&mut self, calling: &str, called: &str, flow: &pacstap_core::FlowMeta) -> &mut PairStats {
        let key = PairKey {
            calling: esc(calling).into_owned(),
            client: flow.client.ip,
            called: esc(called).into_owned(),
            server: flow.server.ip,
        };
        if self.pairs.contains_key(&key) || self.pairs.len() < MAX_AE_PAIRS {
            self.pairs.entry(key).or_default()
        } else {
            &mut self.other_pair
        }
    }

    pub fn observe(&mut self, ev: &ProtocolEvent) {
        match &ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => {
                self.associations += 1;
                self.associations_midstream += u64::from(!a.request_seen);
                self.rejections_inferred += u64::from(a.reject_inferred);
                *self.outcomes.entry(a.outcome.as_str()).or_default() += 1;
                self.pair(&a.calling_ae, &a.called_ae, &ev.flow).associations += 1;
                if a.gap_bytes > 0 {
                    self.lossy_associations += 1;
                    if self.lossy.len() < TOP_N {
                        self.lossy.push(format!(
                            "{} → {} ({} → {}): {} bytes in {} gap{}",
                            show_ae(&esc(&a.calling_ae)),
                            show_ae(&esc(&a.called_ae)),
                            ev.flow.client,
                            ev.flow.server,
                            a.gap_bytes,
                            a.gaps.max(1),
                            if a.gaps > 1 { "s" } else { "" }
                        ));
                    }
                }
                if let Some(u) = a.user_identity.as_ref().and_then(|u| u.username.as_deref()) {
                    let u = esc(u);
                    if self.users.contains_key(u.as_ref()) || self.users.len() < MAX_AE_PAIRS {
                        *self.users.entry(u.into_owned()).or_default() += 1;
                    }
                }
            }
            EventBody::Dicom(DicomEvent::Command(c)) => {
                self.pair(&c.calling_ae, &c.called_ae, &ev.flow).commands += 1;
                self.exports.observe_command(&ev.flow, c);
                let class = c.status_class.map(|s| s.as_str()).unwrap_or("no_response");
                let key = (esc(&c.command).into_owned(), class);
                if self.commands.contains_key(&key) || self.commands.len() < MAX_AE_PAIRS {
                    *self.commands.entry(key).or_default() += 1;
                }
                let set = match c.command.as_str() {
                    "C-STORE" => Some(&mut self.stored),
                    "C-MOVE" => Some(&mut self.moved),
                    "C-GET" => Some(&mut self.retrieved),
                    "C-FIND" => Some(&mut self.queried),
                    _ => None,
                };
                if let Some(set) = set {
                    for uid in &c.study_instance_uids {
                        set.add(&esc(uid));
                    }
                }
                if let Some(dest) = c.move_destination.as_deref() {
                    let dest = esc(dest);
                    if self.move_destinations.contains_key(dest.as_ref()) || self.move_destinations.len() < MAX_AE_PAIRS
                    {
                        *self.move_destinations.entry(dest.into_owned()).or_default() += 1;
                    }
                }
            }
            EventBody::Anomaly(a) => {
                *self.anomalies.entry(a.name).or_default() += 1;
            }
            // Posture findings are the report's checklist; the summary stays about traffic.
            EventBody::Posture(_) => {}
            // Internal (never written): not traffic the summary reports.
            EventBody::Dicom(DicomEvent::Accepted(_)) => {}
            EventBody::Http(h) => {
                self.exports.observe_http(&ev.flow, h);
                let class = match h.status {
                    Some(s) => format!("{}xx", s / 100),
                    None => "no response".to_owned(),
                };
                let method = if h.request_missing {
                    "(request not captured)"
                } else {
                    &h.method
                };
                self.http.add(&format!("{} {class}", esc(method)));
                if let Some(u) = h.user.as_deref() {
                    let u = esc(u);
                    self.http_users.add(&u);
                    if matches!(h.status, Some(401 | 403)) {
                        self.http_auth_failures.add(&u);
                    }
                }
                if let Some(d) = &h.dicomweb {
                    self.dicomweb.add(&esc(&d.service));
                    if let Some(uid) = &d.study_instance_uid {
                        self.dicomweb_studies.add(&esc(uid));
                    }
                }
            }
            EventBody::Tls(t) => {
                self.tls_volume.observe(&ev.flow, t);
                self.tls_versions.add(&esc(t.version.as_deref().unwrap_or("unknown")));
                self.tls_sni.add(&esc(t.sni.as_deref().unwrap_or("(no SNI)")));
            }
            EventBody::Hl7(h) => {
                self.hl7_types.add(&esc(&h.message_type));
                if let Some(code) = &h.ack_code {
                    self.hl7_acks.add(&esc(code));
                }
            }
            EventBody::Alert(a) => {
                self.alerts_total += 1;
                let entity = format!("{} {}", esc(&a.entity.kind), esc(&a.entity.id));
                let line = AlertLine {
                    rule: esc(&a.rule).into_owned(),
                    severity: a.severity.as_str(),
                    entity,
                    count: a.count,
                    studies: a
                        .evidence
                        .study_instance_uids
                        .iter()
                        .take(5)
                        .map(|u| esc(u).into_owned())
                        .collect(),
                    studies_total: a.evidence.study_instance_uids_total,
                    destinations: a
                        .evidence
                        .destinations
                        .iter()
                        .take(5)
                        .map(|d| esc(d).into_owned())
                        .collect(),
                    destinations_total: a.evidence.destinations_total,
                    summary: esc(&a.summary).into_owned(),
                };
                // Updates of an incident replace its line: the summary shows the final scope.
                if let Some(old) = self
                    .alerts
                    .iter_mut()
                    .find(|l| l.rule == line.rule && l.entity == line.entity)
                {
                    *old = line;
                } else if self.alerts.len() < MAX_ALERT_LINES {
                    self.alerts.push(line);
                } else {
                    // Past the cap an update cannot be told from a new incident: count the
                    // first events of incidents only.
                    self.alerts_unlisted += u64::from(!a.update);
                }
            }
        }
    }

    #[cfg(test)]
    fn exports_rows(&self) -> usize {
        self.exports.rows()
    }

    fn alerts_incidents(&self) -> u64 {
        (self.alerts.len() as u64).saturating_add(self.alerts_unlisted)
    }

    /// Associations seen so far.
    pub fn associations(&self) -> u64 {
        self.associations
    }

    /// Render the report: `sections` from the other stages first, then what the events told.
    /// `anomaly_counts` are the decoders' full counters (events are capped per flow; counters are not).
    pub fn render(&self, sections: &[SummarySection], anomaly_counts: &BTreeMap<&'static str, u64>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "── pacstap replay summary ──");
        for sec in sections {
            let _ = writeln!(s, "{}", sec.title);
            for (k, v) in &sec.rows {
                row_with(&mut s, k, v, true);
            }
        }
        // Sections only for what the capture carried.
        if self.associations > 0 || !self.commands.is_empty() {
            let _ = writeln!(s, "DICOM");
            let mut parts: Vec<String> = self.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            // Connections seen whole whose client never sent an A-ASSOCIATE-RQ (probes, scans)
            // also lack a request; they are said apart, not as mid-stream pickups.
            let never_requested = self
                .anomalies
                .get("dicom.no_associate_request")
                .copied()
                .unwrap_or(0)
                .min(self.associations_midstream);
            let midstream = self.associations_midstream - never_requested;
            if midstream > 0 {
                parts.push(format!("{midstream} joined mid-stream"));
            }
            if never_requested > 0 {
                parts.push(format!("{never_requested} with no request from the client (probes?)"));
            }
            if self.rejections_inferred > 0 {
                parts.push(format!(
                    "{} rejected by a lost reply of an A-ASSOCIATE-RJ's size",
                    self.rejections_inferred
                ));
            }
            let outcomes = if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            };
            row(&mut s, "associations", &format!("{}{outcomes}", self.associations));

            let mut pairs: Vec<_> = self.pairs.iter().collect();
            pairs.sort_by(|a, b| {
                (b.1.associations, b.1.commands)
                    .cmp(&(a.1.associations, a.1.commands))
                    .then(a.0.cmp(b.0))
            });
            if !pairs.is_empty() {
                let _ = writeln!(s, "  top AE pairs (associations, commands, calling → called)");
                for (k, st) in pairs.iter().take(TOP_N) {
                    arrow_line(
                        &mut s,
                        &format!("    {:>6} {:>8}  ", st.associations, st.commands),
                        &format!("{} ({})", show_ae(&k.calling), k.client),
                        &format!("{} ({})", show_ae(&k.called), k.server),
                    );
                }
                if pairs.len() > TOP_N {
                    let _ = writeln!(s, "    … and {} more", pairs.len() - TOP_N);
                }
                let o = &self.other_pair;
                if o.associations + o.commands > 0 {
                    let _ = writeln!(
                        s,
                        "    {:>6} {:>8}  (other: past {MAX_AE_PAIRS} pairs)",
                        o.associations, o.commands
                    );
                }
            }
            if self.lossy_associations > 0 {
                row(
                    &mut s,
                    "lost bytes",
                    &format!("{} associations (bytes never captured)", self.lossy_associations),
                );
                for line in &self.lossy {
                    let _ = writeln!(s, "    {line}");
                }
                if self.lossy_associations > self.lossy.len() as u64 {
                    let _ = writeln!(s, "    … {} more", self.lossy_associations - self.lossy.len() as u64);
                }
            }
            if !self.users.is_empty() {
                let users: Vec<String> = self
                    .users
                    .iter()
                    .take(TOP_N)
                    .map(|(u, n)| format!("{u} ({n})"))
                    .collect();
                row(&mut s, "user identities", &users.join(", "));
            }
            if !self.commands.is_empty() {
                let _ = writeln!(s, "  commands (by status)");
                let mut by_cmd: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for ((cmd, class), n) in &self.commands {
                    by_cmd.entry(cmd.as_str()).or_default().push(format!("{class} {n}"));
                }
                let kinds = by_cmd.len();
                for (cmd, parts) in by_cmd.into_iter().take(LONG_LIST) {
                    let _ = writeln!(s, "    {:<20} {}", cmd, parts.join(", "));
                }
                if kinds > LONG_LIST {
                    let _ = writeln!(s, "    … and {} more", kinds - LONG_LIST);
                }
            }
            row(
                &mut s,
                "distinct studies",
                &format!(
                    "stored {}, moved {}, retrieved (C-GET) {}, queried {}",
                    self.stored.show(),
                    self.moved.show(),
                    self.retrieved.show(),
                    self.queried.show()
                ),
            );
            if !self.move_destinations.is_empty() {
                let d: Vec<String> = self
                    .move_destinations
                    .iter()
                    .take(TOP_N)
                    .map(|(k, v)| format!("{} ({v})", show_ae(k)))
                    .collect();
                row(&mut s, "move destinations", &d.join(", "));
            }
        }
        if !self.http.is_empty() {
            let _ = writeln!(s, "HTTP");
            row(&mut s, "transactions", &self.http.top());
            if !self.http_users.is_empty() {
                row(&mut s, "users", &self.http_users.top());
            }
            if !self.http_auth_failures.is_empty() {
                row(&mut s, "401/403 by user", &self.http_auth_failures.top());
            }
            if !self.dicomweb.is_empty() {
                row(
                    &mut s,
                    "DICOMweb",
                    &format!(
                        "{}; distinct studies {}",
                        self.dicomweb.top(),
                        self.dicomweb_studies.show()
                    ),
                );
            }
        }
        if !self.tls_versions.is_empty() {
            let _ = writeln!(s, "TLS");
            row(&mut s, "versions", &self.tls_versions.top());
            row(&mut s, "server names", &self.tls_sni.top());
            self.tls_volume.render(&mut s, TOP_N);
        }
        if !self.hl7_types.is_empty() {
            let _ = writeln!(s, "HL7");
            row(&mut s, "messages", &self.hl7_types.top());
            if !self.hl7_acks.is_empty() {
                row(&mut s, "ACK codes", &self.hl7_acks.top());
            }
        }
        self.exports.render(&mut s, TOP_N);
        if self.alerts_total == 0 {
            let _ = writeln!(s, "Alerts: none");
        } else {
            let _ = writeln!(
                s,
                "Alerts ({} incidents, {} alert events)",
                self.alerts_incidents(),
                self.alerts_total
            );
            for a in self.alerts.iter().take(LONG_LIST) {
                let _ = writeln!(s, "  [{}] {} — {} (count {})", a.severity, a.rule, a.entity, a.count);
                wrap_words(&mut s, 6, &a.summary);
                if a.studies_total > 0 {
                    let more = a.studies_total.saturating_sub(a.studies.len() as u64);
                    let tail = if more > 0 {
                        format!(" … and {more} more")
                    } else {
                        String::new()
                    };
                    wrap_words(&mut s, 6, &format!("studies: {}{tail}", a.studies.join(", ")));
                }
                if a.destinations_total > 0 {
                    let more = a.destinations_total.saturating_sub(a.destinations.len() as u64);
                    let tail = if more > 0 {
                        format!(" … and {more} more")
                    } else {
                        String::new()
                    };
                    wrap_words(&mut s, 6, &format!("to: {}{tail}", a.destinations.join(", ")));
                }
            }
            let listed = self.alerts.len().min(LONG_LIST) as u64;
            let unlisted = self.alerts_incidents().saturating_sub(listed);
            if unlisted > 0 {
                let _ = writeln!(s, "  … and {unlisted} more incidents (all are in the events file)");
            }
        }
        let _ = writeln!(s, "Anomalies");
        let total: u64 = anomaly_counts.values().sum();
        if total == 0 {
            let _ = writeln!(s, "  none");
        } else {
            for (k, v) in anomaly_counts {
                let _ = writeln!(s, "  {k:<36} {v}");
            }
        }
        s
    }
}

/// The width the summary is laid out for: a terminal's default (issue 14: readable on 80
/// columns).
const WIDTH: usize = 80;
/// Where a row's value starts: two spaces, a 22-column name, a space.
const VALUE_COLUMN: usize = 25;

/// `  name                   value`, the value wrapped after its `, ` and `; ` separators onto
/// lines indented to the value column when it would pass [`WIDTH`]. Never inside parentheses (`(1 with a tiny first fragment, flagged)`
/// is one thought), nor inside a word (a long AE title stays whole: cut, it would misquote).
fn row(s: &mut String, name: &str, value: &str) {
    row_with(s, name, value, false);
}

/// [`row`], for our own text (the other stages' sections): `split_words` lets a piece still too
/// long break at its spaces. Wire strings (user names, AE titles) never are: cut at a space, a
/// name would read as two.
fn row_with(s: &mut String, name: &str, value: &str, split_words: bool) {
    let avail = WIDTH - VALUE_COLUMN;
    // Pieces end after a `, ` or `; ` outside parentheses: `(1 with a tiny first fragment,
    // flagged)` is one thought and stays on one line.
    let mut pieces = Vec::new();
    let (mut start, mut depth) = (0, 0i32);
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' | b';' if depth <= 0 && bytes.get(i + 1) == Some(&b' ') => {
                pieces.push(value.get(start..i + 2).unwrap_or_default());
                start = i + 2;
            }
            _ => {}
        }
    }
    pieces.push(value.get(start..).unwrap_or_default());
    // A piece still too long breaks at its spaces outside parentheses.
    let pieces: Vec<&str> = pieces
        .into_iter()
        .flat_map(|p| {
            if !split_words || p.trim_end().chars().count() <= avail {
                return vec![p];
            }
            let (mut out, mut start, mut depth) = (Vec::new(), 0, 0i32);
            for (i, b) in p.bytes().enumerate() {
                match b {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    b' ' if depth <= 0 => {
                        out.push(p.get(start..i + 1).unwrap_or_default());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            out.push(p.get(start..).unwrap_or_default());
            out
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut line = String::new();
    let mut first = true;
    let flush = |s: &mut String, line: &str, first: &mut bool| {
        if *first {
            let _ = writeln!(s, "  {name:<22} {}", line.trim_end());
            *first = false;
        } else {
            let _ = writeln!(s, "{:VALUE_COLUMN$}{}", "", line.trim_end());
        }
    };
    for piece in pieces {
        let used = line.chars().count();
        if used > 0 && used + piece.trim_end().chars().count() > avail {
            flush(s, &line, &mut first);
            line.clear();
        }
        line.push_str(piece);
    }
    flush(s, &line, &mut first);
}

/// `text` indented by `indent`, wrapped at spaces to [`WIDTH`] (an alert's sentence, its list of
/// studies); a word longer than the line stays whole.
fn wrap_words(s: &mut String, indent: usize, text: &str) {
    let mut used = 0;
    for word in text.split(' ') {
        let w = word.chars().count();
        if used == 0 {
            let _ = write!(s, "{:indent$}{word}", "");
            used = indent + w;
        } else if used + 1 + w > WIDTH {
            let _ = write!(s, "\n{:indent$}{word}", "");
            used = indent + w;
        } else {
            let _ = write!(s, " {word}");
            used += 1 + w;
        }
    }
    s.push('\n');
}

/// `{prefix}{from} → {to}` on one line when it fits [`WIDTH`], else `→ {to}` on the next line
/// under `from` (IPv6 addresses, long AE titles with a user name).
fn arrow_line(s: &mut String, prefix: &str, from: &str, to: &str) {
    let len = prefix.chars().count() + from.chars().count() + 3 + to.chars().count();
    if len <= WIDTH {
        let _ = writeln!(s, "{prefix}{from} → {to}");
    } else {
        let _ = writeln!(s, "{prefix}{from}");
        let _ = writeln!(s, "{:w$}→ {to}", "", w = prefix.chars().count());
    }
}

fn show_ae(ae: &str) -> &str {
    if ae.is_empty() {
        "(unknown)"
    } else {
        ae
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn ev(body: EventBody) -> ProtocolEvent {
        ProtocolEvent {
            ts: Timestamp(0),
            flow: FlowMeta {
                id: FlowId(1),
                client: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1),
                server: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2),
                start: Timestamp(0),
                handshake_seen: true,
            },
            body,
        }
    }

    fn store(study: &str) -> EventBody {
        EventBody::Dicom(DicomEvent::Command(DicomCommand {
            calling_ae: "MOD1".into(),
            called_ae: "PACS".into(),
            user: None,
            command: "C-STORE".into(),
            message_id: 1,
            sop_class_uid: None,
            sop_instance_uid: None,
            move_destination: None,
            move_originator_ae: None,
            move_originator_message_id: None,
            query_level: None,
            study_instance_uids: vec![study.into()],
            modality: None,
            status: Some("0x0000".into()),
            status_class: Some(StatusClass::Success),
            sub_operations: None,
            dataset_bytes: 10,
            lost_bytes: 0,
            incomplete: false,
            direction: Direction::ToServer,
            responses: 1,
            request_time: Timestamp(0),
            response_time: None,
        }))
    }

    #[test]
    fn counts_distinct_studies_and_pairs() {
        let mut s = Summary::new();
        s.observe(&ev(store("1.2.3")));
        s.observe(&ev(store("1.2.3")));
        s.observe(&ev(store("1.2.4")));
        let text = s.render(&[], &BTreeMap::new());
        assert!(text.contains("stored 2,"), "{text}");
        assert!(text.contains("MOD1 → PACS"), "{text}");
        assert!(text.contains("C-STORE              success 3"), "{text}");
    }

    #[test]
    fn http_hl7_and_alert_sections() {
        let mut s = Summary::new();
        for status in [401, 401, 200] {
            s.observe(&ev(EventBody::Http(HttpEvent {
                method: "GET".into(),
                url: "/dicom-web/studies/1.2.3".into(),
                status: Some(status),
                user: Some("rad1".into()),
                dicomweb: Some(DicomWeb {
                    service: "WADO-RS".into(),
                    study_instance_uid: Some("1.2.3".into()),
                    ..DicomWeb::default()
                }),
                ..HttpEvent::default()
            })));
        }
        s.observe(&ev(EventBody::Hl7(Hl7Event {
            message_type: "ACK".into(),
            ack_code: Some("AE".into()),
            ..Hl7Event::default()
        })));
        let alert = |count| Alert {
            rule: "bulk_export".into(),
            severity: Severity::High,
            entity: AlertEntity {
                kind: "user".into(),
                id: "rad2".into(),
            },
            count,
            threshold: Some(15),
            window_seconds: Some(1800),
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            summary: "rad2 exported studies".into(),
            evidence: AlertEvidence {
                study_instance_uids: vec!["1.2.3".into()],
                study_instance_uids_total: count,
                destinations: vec!["EXTPACS (198.51.100.7:104)".into()],
                destinations_total: 1,
                ..AlertEvidence::default()
            },
            response: vec![],
            update: count > 16,
            incident_id: "0123456789abcdef".into(),
        };
        s.observe(&ev(EventBody::Alert(alert(16))));
        s.observe(&ev(EventBody::Alert(alert(20))));
        let text = s.render(&[], &BTreeMap::new());
        assert!(text.contains("GET 4xx (2), GET 2xx (1)"), "{text}");
        assert!(text.contains("401/403 by user        rad1 (2)"), "{text}");
        assert!(text.contains("WADO-RS (3); distinct studies 1"), "{text}");
        assert!(text.contains("ACK codes              AE (1)"), "{text}");
        // One incident, shown with its final count.
        assert!(text.contains("Alerts (1 incidents, 2 alert events)"), "{text}");
        assert!(text.contains("[high] bulk_export — user rad2 (count 20)"), "{text}");
        assert!(text.contains("… and 19 more"), "{text}");
        assert!(text.contains("      to: EXTPACS (198.51.100.7:104)\n"), "{text}");
    }

    #[test]
    fn responses_without_their_request_are_counted_as_such() {
        let mut s = Summary::new();
        for missing in [true, true, false] {
            s.observe(&ev(EventBody::Http(HttpEvent {
                method: if missing { String::new() } else { "GET".into() },
                status: Some(200),
                request_missing: missing,
                incomplete: missing,
                ..HttpEvent::default()
            })));
        }
        let text = s.render(&[], &BTreeMap::new());
        assert!(text.contains("(request not captured) 2xx (2)"), "{text}");
        assert!(text.contains("GET 2xx (1)"), "{text}");
    }

    /// A Basic-auth user name and an AE title carrying terminal controls (OSC 52 clipboard
    /// write, erase line, 8-bit CSI, a newline that would forge a line) are shown escaped.
    #[test]
    fn wire_strings_reach_the_summary_escaped() {
        let mut s = Summary::new();
        let evil = "x\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2K\u{9b}\nWARNING: forged";
        s.observe(&ev(EventBody::Http(HttpEvent {
            method: "GET".into(),
            status: Some(401),
            user: Some(evil.into()),
            ..HttpEvent::default()
        })));
        let mut cmd = store("1.2.3");
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut cmd {
            c.calling_ae = "AE\u{1b}[31m".into();
        }
        s.observe(&ev(cmd));
        let text = s.render(&[], &BTreeMap::new());
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(
            text.contains("x\\x1b]52;c;ZXZpbA==\\x07\\x1b[2K\\u{9b}\\x0aWARNING: forged (1)"),
            "{text}"
        );
        assert!(text.contains("AE\\x1b[31m → PACS"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("WARNING")), "{text}");
    }

    fn ev_from(body: EventBody, client: [u8; 4], server: [u8; 4]) -> ProtocolEvent {
        let mut e = ev(body);
        e.flow.client = Endpoint::new(IpAddr::V4(Ipv4Addr::from(client)), 50_000);
        e.flow.server = Endpoint::new(IpAddr::V4(Ipv4Addr::from(server)), 104);
        e
    }

    fn command(cmd: &str, calling: &str, called: &str, f: impl FnOnce(&mut DicomCommand)) -> EventBody {
        let mut body = store("1.2.3");
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut body {
            c.command = cmd.into();
            c.calling_ae = calling.into();
            c.called_ae = called.into();
            f(c);
        }
        body
    }

    #[test]
    fn no_alerts_is_said_not_left_out() {
        let text = Summary::new().render(&[], &BTreeMap::new());
        assert!(text.contains("\nAlerts: none\n"), "{text}");
        assert!(text.contains("\nExports: none seen"), "{text}");
    }

    #[test]
    fn ae_pairs_show_their_addresses() {
        let mut s = Summary::new();
        s.observe(&ev_from(
            command("C-ECHO", "CT01", "PACS", |_| {}),
            [10, 1, 2, 3],
            [10, 1, 0, 5],
        ));
        // The same titles from another address are another row: a title is only a claim.
        s.observe(&ev_from(
            command("C-ECHO", "CT01", "PACS", |_| {}),
            [10, 9, 9, 9],
            [10, 1, 0, 5],
        ));
        let text = s.render(&[], &BTreeMap::new());
        assert!(
            text.contains("       0        1  CT01 (10.1.2.3) → PACS (10.1.0.5)\n"),
            "{text}"
        );
        assert!(text.contains("CT01 (10.9.9.9) → PACS (10.1.0.5)\n"), "{text}");
    }

    /// A C-MOVE by WS1 to EXT (the request's sub-operation count), its sub-operation C-STOREs
    /// from the PACS to EXT's address (instances, bytes), a C-GET, a DICOMweb retrieval: one
    /// row each, no UID anywhere in the table.
    #[test]
    fn exporter_table_from_moves_stores_gets_and_dicomweb() {
        let mut s = Summary::new();
        for (i, study) in ["1.2.3.1", "1.2.3.2", "1.2.3.1"].iter().enumerate() {
            s.observe(&ev_from(
                command("C-STORE", "PACS", "EXT", |c| {
                    c.move_originator_ae = Some("WS1".into());
                    c.study_instance_uids = vec![(*study).into()];
                    c.dataset_bytes = 1_000_000 + i as u64;
                }),
                [10, 1, 0, 5],
                [198, 51, 100, 7],
            ));
        }
        s.observe(&ev_from(
            command("C-MOVE", "WS1", "PACS", |c| {
                c.move_destination = Some("EXT".into());
                c.user = Some("rad2".into());
                c.study_instance_uids = vec!["1.2.3.1".into(), "1.2.3.2".into()];
                c.sub_operations = Some(SubOperations {
                    completed: 3,
                    ..SubOperations::default()
                });
            }),
            [10, 1, 2, 30],
            [10, 1, 0, 5],
        ));
        s.observe(&ev_from(
            command("C-STORE", "WS2", "PACS", |c| {
                c.direction = Direction::ToClient;
                c.dataset_bytes = 500;
            }),
            [10, 1, 2, 31],
            [10, 1, 0, 5],
        ));
        let mut failed = store("9.9");
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut failed {
            c.status_class = Some(StatusClass::Failure);
        }
        s.observe(&ev(failed));
        s.observe(&ev_from(
            EventBody::Http(HttpEvent {
                method: "GET".into(),
                status: Some(200),
                user: Some("rad1".into()),
                response_bytes: 42_000,
                dicomweb: Some(DicomWeb {
                    service: "WADO-RS".into(),
                    study_instance_uid: Some("1.2.3.9".into()),
                    ..DicomWeb::default()
                }),
                ..HttpEvent::default()
            }),
            [10, 1, 2, 40],
            [10, 1, 0, 5],
        ));
        let text = s.render(&[], &BTreeMap::new());
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Exports"))
            .take_while(|l| !l.starts_with("Alerts"))
            .collect();
        assert_eq!(
            table,
            [
                "Exports (who → where)",
                "   studies instances     bytes  protocol  who → where",
                "         2         3    3.0 MB  C-MOVE    rad2 (WS1) → EXT (198.51.100.7)",
                "         1         0   42.0 kB  DICOMweb  rad1 → 10.1.2.40",
                "         1         1     500 B  C-GET     WS2 → 10.1.2.31",
            ],
            "{text}"
        );
    }

    #[test]
    fn long_tables_are_capped_with_the_rest_counted() {
        let mut s = Summary::new();
        for i in 0..(TOP_N as u8 + 3) {
            s.observe(&ev_from(
                command("C-STORE", &format!("MOD{i}"), "PACS", |_| {}),
                [10, 0, 0, i],
                [10, 1, 0, 5],
            ));
            s.observe(&ev_from(
                EventBody::Tls(TlsEvent {
                    sni: Some(format!("host{i}.example")),
                    bytes_toserver: 1000 + u64::from(i),
                    ..TlsEvent::default()
                }),
                [10, 2, 0, i],
                [10, 1, 0, 5],
            ));
        }
        let text = s.render(&[], &BTreeMap::new());
        let count = |line: &str| text.lines().filter(|l| *l == line).count();
        assert_eq!(count("  … and 3 more"), 1, "exports: {text}");
        assert_eq!(count("    … and 3 more"), 2, "AE pairs and HTTPS clients: {text}");
        assert!(text.contains("  HTTPS volume by client"), "{text}");
        assert!(
            text.contains("      1.0 kB     1  10.2.0.12: host12.example (1)\n"),
            "{text}"
        );
        assert!(!text.contains("10.2.0.0:"), "smallest client not shown: {text}");
    }

    /// A capture full of spoofed AE titles: the tables stay bounded, the rest is summed.
    #[test]
    fn spoofed_titles_fold_into_other_rows() {
        let mut s = Summary::new();
        for i in 0..(MAX_AE_PAIRS + 5) {
            s.observe(&ev(command("C-STORE", &format!("SPOOF{i}"), "PACS", |c| {
                c.dataset_bytes = 1
            })));
        }
        assert_eq!(s.exports_rows(), MAX_AE_PAIRS);
        let text = s.render(&[], &BTreeMap::new());
        assert!(
            text.contains(&format!("    … and {} more\n", MAX_AE_PAIRS - TOP_N)),
            "{text}"
        );
        assert!(
            text.contains("         0        5  (other: past 10000 pairs)\n"),
            "{text}"
        );
        // The 5 folded stores were all of one study.
        assert!(
            text.contains("         1         5       5 B  any       (other: past 10000 rows)\n"),
            "{text}"
        );
    }

    #[test]
    fn rows_wrap_at_80_columns_after_separators() {
        let mut s = String::new();
        let value = "RST 0 accepted, 0 in window (challenged), 0 out of window; 0 SYN on open connections";
        row(&mut s, "control", value);
        assert_eq!(
            s,
            "  control                RST 0 accepted, 0 in window (challenged),\n\
             \x20                        0 out of window; 0 SYN on open connections\n"
        );
        assert!(s.lines().all(|l| l.chars().count() <= WIDTH), "{s}");
        let mut s = String::new();
        row_with(
            &mut s,
            "IP fragments",
            "34 datagrams reassembled (0 with a tiny first fragment, flagged); dropped: 0 timed out",
            true,
        );
        assert_eq!(
            s,
            "  IP fragments           34 datagrams reassembled\n\
             \x20                        (0 with a tiny first fragment, flagged);\n\
             \x20                        dropped: 0 timed out\n"
        );
        let mut s = String::new();
        row(&mut s, "x", "short, value");
        assert_eq!(s, "  x                      short, value\n");
    }

    #[test]
    fn associations_joined_mid_stream_are_counted() {
        let mut s = Summary::new();
        let assoc = |seen| {
            ev(EventBody::Dicom(DicomEvent::Association(DicomAssociation {
                request_seen: seen,
                calling_ae: "WS1".into(),
                called_ae: "PACS".into(),
                accepted: true,
                outcome: AssociationOutcome::Released,
                reject: None,
                abort: None,
                user_identity: None,
                abstract_syntaxes: vec![],
                implementation_class_uid: None,
                implementation_version_name: None,
                max_pdu_length: None,
                bytes_toserver: 0,
                bytes_toclient: 0,
                commands: 0,
                start: Timestamp(0),
                end: Timestamp(0),
                gap_bytes: 0,
                gaps: 0,
                reject_inferred: false,
            })))
        };
        s.observe(&assoc(true));
        s.observe(&assoc(false));
        let text = s.render(&[], &BTreeMap::new());
        assert!(
            text.contains("associations           2 (released 2, 1 joined mid-stream)"),
            "{text}"
        );
    }
}
