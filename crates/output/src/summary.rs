//! The human summary printed at the end of `pacstap replay` (CONTRACT §1): associations,
//! top AE pairs, commands, studies moved, anomalies — the first answers an investigator wants
//! before opening the JSON.

use pacstap_core::{DicomEvent, EventBody, ProtocolEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// Distinct AE pairs tracked before new ones fold into `(other)`: a summary must stay bounded
/// even on a capture with millions of spoofed AE titles.
const MAX_AE_PAIRS: usize = 10_000;
/// Distinct study UIDs remembered per category; beyond this the count is shown as a lower bound.
const MAX_STUDIES: usize = 100_000;
/// Rows shown in each top-N table.
const TOP_N: usize = 10;

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
    pairs: HashMap<(String, String), PairStats>,
    other_pair: PairStats,
    commands: BTreeMap<(String, &'static str), u64>,
    stored: StudySet,
    moved: StudySet,
    retrieved: StudySet,
    queried: StudySet,
    move_destinations: BTreeMap<String, u64>,
    users: BTreeMap<String, u64>,
    anomalies: BTreeMap<&'static str, u64>,
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    fn pair(&mut self, calling: &str, called: &str) -> &mut PairStats {
        let key = (calling.to_owned(), called.to_owned());
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
                *self.outcomes.entry(a.outcome.as_str()).or_default() += 1;
                self.pair(&a.calling_ae, &a.called_ae).associations += 1;
                if let Some(u) = a.user_identity.as_ref().and_then(|u| u.username.as_ref()) {
                    if self.users.contains_key(u) || self.users.len() < MAX_AE_PAIRS {
                        *self.users.entry(u.clone()).or_default() += 1;
                    }
                }
            }
            EventBody::Dicom(DicomEvent::Command(c)) => {
                self.pair(&c.calling_ae, &c.called_ae).commands += 1;
                let class = c.status_class.map(|s| s.as_str()).unwrap_or("no_response");
                let key = (c.command.clone(), class);
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
                        set.add(uid);
                    }
                }
                if let Some(dest) = &c.move_destination {
                    if self.move_destinations.contains_key(dest) || self.move_destinations.len() < MAX_AE_PAIRS {
                        *self.move_destinations.entry(dest.clone()).or_default() += 1;
                    }
                }
            }
            EventBody::Anomaly(a) => {
                *self.anomalies.entry(a.name).or_default() += 1;
            }
            EventBody::Http(_) | EventBody::Tls(_) | EventBody::Hl7(_) | EventBody::Alert(_) => {}
        }
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
                let _ = writeln!(s, "  {k:<22} {v}");
            }
        }
        let _ = writeln!(s, "DICOM");
        let outcomes = if self.outcomes.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = self.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!(" ({})", parts.join(", "))
        };
        let _ = writeln!(s, "  {:<22} {}{}", "associations", self.associations, outcomes);

        let mut pairs: Vec<_> = self.pairs.iter().collect();
        pairs.sort_by(|a, b| {
            (b.1.associations, b.1.commands)
                .cmp(&(a.1.associations, a.1.commands))
                .then(a.0.cmp(b.0))
        });
        if !pairs.is_empty() {
            let _ = writeln!(s, "  top AE pairs (calling → called: associations, commands)");
            for ((calling, called), st) in pairs.iter().take(TOP_N) {
                let _ = writeln!(
                    s,
                    "    {:<34} {:>6} {:>8}",
                    format!("{} → {}", show_ae(calling), show_ae(called)),
                    st.associations,
                    st.commands
                );
            }
            if pairs.len() > TOP_N || self.other_pair.associations + self.other_pair.commands > 0 {
                let _ = writeln!(s, "    … {} more pairs", pairs.len().saturating_sub(TOP_N));
            }
        }
        if !self.users.is_empty() {
            let users: Vec<String> = self
                .users
                .iter()
                .take(TOP_N)
                .map(|(u, n)| format!("{u} ({n})"))
                .collect();
            let _ = writeln!(s, "  {:<22} {}", "user identities", users.join(", "));
        }
        if !self.commands.is_empty() {
            let _ = writeln!(s, "  commands (by status)");
            let mut by_cmd: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for ((cmd, class), n) in &self.commands {
                by_cmd.entry(cmd.as_str()).or_default().push(format!("{class} {n}"));
            }
            for (cmd, parts) in by_cmd {
                let _ = writeln!(s, "    {:<20} {}", cmd, parts.join(", "));
            }
        }
        let _ = writeln!(
            s,
            "  {:<22} stored {}, moved {}, retrieved (C-GET) {}, queried {}",
            "distinct studies",
            self.stored.show(),
            self.moved.show(),
            self.retrieved.show(),
            self.queried.show()
        );
        if !self.move_destinations.is_empty() {
            let d: Vec<String> = self
                .move_destinations
                .iter()
                .take(TOP_N)
                .map(|(k, v)| format!("{} ({v})", show_ae(k)))
                .collect();
            let _ = writeln!(s, "  {:<22} {}", "move destinations", d.join(", "));
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
            command: "C-STORE".into(),
            message_id: 1,
            sop_class_uid: None,
            sop_instance_uid: None,
            move_destination: None,
            query_level: None,
            study_instance_uids: vec![study.into()],
            modality: None,
            status: Some("0x0000".into()),
            status_class: Some(StatusClass::Success),
            sub_operations: None,
            dataset_bytes: 10,
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
}
