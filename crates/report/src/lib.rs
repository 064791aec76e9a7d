//! `pacstap report`: turns event files (from `replay` or the appliance's events file) into
//! what the people who receive an investigation can read: a single self-contained HTML file
//! (no external resource, no script; charts as inline SVG), the same facts as JSON
//! (docs/report.md) and CSV files for the ledger tables.
//!
//! It streams: each input is read line by line (twice: pass 1 parses only alert lines to learn
//! the incidents' flows, pass 2 everything), and every per-study / per-system table has a
//! documented cap, so memory is bounded whatever the input size.

// Every length, count and offset here comes from the wire or a file: no slice indexing that
// input controls (use `get`); a site that is provably in bounds says why in an `expect`.
#![deny(clippy::indexing_slicing)]

pub mod checklist;
pub mod csv;
pub mod ev;
pub mod html;
pub mod incidents;
pub mod input;
pub mod inventory;
pub mod ledger;
pub mod lenient;
pub mod model;
pub mod shared;
pub mod time;
pub mod timeline;

use ev::{Ev, Networks};
use model::{InputSummary, Report};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
}

/// Restrict the report to one entity's own events (`--entity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityFilter {
    User(String),
    Ae(String),
    Ip(String),
}

impl std::str::FromStr for EntityFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("user", v)) if !v.is_empty() => Ok(EntityFilter::User(v.to_string())),
            Some(("ae", v)) if !v.is_empty() => Ok(EntityFilter::Ae(v.to_string())),
            Some(("ip", v)) if !v.is_empty() => Ok(EntityFilter::Ip(v.to_string())),
            _ => Err(format!("expected user:NAME, ae:TITLE or ip:ADDRESS, found {s:?}")),
        }
    }
}

impl std::fmt::Display for EntityFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityFilter::User(v) => write!(f, "user:{v}"),
            EntityFilter::Ae(v) => write!(f, "ae:{v}"),
            EntityFilter::Ip(v) => write!(f, "ip:{v}"),
        }
    }
}

impl EntityFilter {
    /// The event is the entity's own: its user, one of its AE titles or addresses, or an
    /// alert about it.
    pub fn matches(&self, ev: &Ev<'_>) -> bool {
        if ev.ty == "alert" {
            let (kind, id) = ev.entity();
            let (kind, id) = (kind.unwrap_or(""), id.unwrap_or(""));
            let own = match self {
                EntityFilter::User(u) => kind == "user" && id == u,
                EntityFilter::Ae(a) => kind == "ae" && id == a,
                EntityFilter::Ip(i) => (kind == "ip" || kind == "device") && id == i,
            };
            return own;
        }
        match self {
            EntityFilter::User(u) => ev.user() == Some(u.as_str()),
            EntityFilter::Ae(a) => {
                ev.s("calling_ae") == Some(a.as_str())
                    || ev.s("called_ae") == Some(a.as_str())
                    || ev.s("move_destination") == Some(a.as_str())
            }
            EntityFilter::Ip(i) => ev.src == i || ev.dst == i,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub inputs: Vec<PathBuf>,
    pub from: Option<time::Micros>,
    pub to: Option<time::Micros>,
    pub from_text: Option<String>,
    pub to_text: Option<String>,
    pub entity: Option<EntityFilter>,
    pub networks: Networks,
    /// `users.admins` of the config (`None` without `--config`).
    pub admins: Option<Vec<String>>,
    /// Only this study's ledger (`--study`).
    pub only_study: Option<String>,
}

impl Options {
    fn in_range(&self, t: time::Micros) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

/// Reads the inputs (twice) and aggregates everything.
pub fn build(opts: &Options) -> Result<Report, ReportError> {
    let mut incidents = incidents::Incidents::default();
    // Pass 1: alert lines only (a substring test first: most lines are not alerts).
    for path in &opts.inputs {
        input::for_each_line(path, |line| {
            if !line.contains("\"alert\"") {
                return;
            }
            let Ok(l) = serde_json::from_str::<ev::Line>(line) else {
                return;
            };
            let Some(ev) = Ev::from_line(&l) else { return };
            if ev.ty == "alert" && opts.in_range(ev.t) && opts.entity.as_ref().is_none_or(|e| e.matches(&ev)) {
                incidents.note(&ev);
            }
        })?;
    }
    let mut summary = InputSummary {
        files: opts.inputs.iter().map(|p| p.display().to_string()).collect(),
        from: opts.from_text.clone(),
        to: opts.to_text.clone(),
        entity: opts.entity.as_ref().map(ToString::to_string),
        ..InputSummary::default()
    };
    let mut ledger = ledger::Ledger::default();
    ledger.only = opts.only_study.clone();
    let mut inv = inventory::Inv::default();
    let mut tl = timeline::Time::default();
    let mut checks = checklist::Checks::default();
    let mut first: Option<(i64, shared::Ts)> = None;
    let mut last: Option<(i64, shared::Ts)> = None;
    for path in &opts.inputs {
        let stats = input::for_each_line(path, |line| {
            let Ok(l) = serde_json::from_str::<ev::Line>(line) else {
                summary.skipped_lines += 1;
                return;
            };
            let Some(ev) = Ev::from_line(&l) else {
                summary.skipped_lines += 1;
                return;
            };
            if !opts.in_range(ev.t) {
                summary.events_outside_range += 1;
                return;
            }
            // An incident's story includes every event of its flows, the entity's or not.
            incidents.add(&ev);
            if opts.entity.as_ref().is_some_and(|e| !e.matches(&ev)) {
                summary.events_other_entity += 1;
                return;
            }
            summary.events += 1;
            match summary.by_type.get_mut(ev.ty) {
                Some(n) => *n += 1,
                None => {
                    summary.by_type.insert(ev.ty.to_string(), 1);
                }
            }
            if first.as_ref().is_none_or(|f| ev.t < f.0) {
                first = Some((ev.t, shared::Ts::new(ev.ts)));
            }
            if last.as_ref().is_none_or(|l| ev.t > l.0) {
                last = Some((ev.t, shared::Ts::new(ev.ts)));
            }
            let action = ledger::action(&ev);
            if let Some(a) = &action {
                ledger.add(&ev, a, &opts.networks);
                inv.add_transfer(a);
                tl.add_export(a);
            }
            inv.add(&ev);
            tl.add(&ev);
            checks.add(&ev, action.as_ref(), &opts.networks);
        })?;
        summary.lines += stats.lines;
        summary.skipped_lines += stats.skipped_lines;
    }
    summary.first_event = first.map(|f| f.1.to_string());
    summary.last_event = last.map(|l| l.1.to_string());
    let (studies, ledger_rows, untracked) = ledger.finish();
    let (inventory, flow_map) = inv.finish(&opts.networks);
    let mut checklist = checks.finish(&inventory, opts.admins.as_deref());
    if summary.events > 0 && summary.by_type.keys().all(|t| t == "alert") {
        checklist::mark_alerts_only(&mut checklist);
    }
    Ok(Report {
        schema: model::SCHEMA,
        input: summary,
        incidents: incidents.finish(),
        studies_total: studies.len() as u64 + untracked,
        studies_untracked: untracked,
        studies,
        ledger_rows_total: ledger_rows.len() as u64,
        ledger: ledger_rows,
        timeline: tl.finish(),
        inventory,
        flow_map,
        checklist,
    })
}

/// Ledger rows, studies and story lines per incident in the JSON file (the CSV has every ledger
/// row and incident): keeps the JSON of a 10^6-event report in the tens of MB.
pub const LEDGER_JSON_CAP: usize = 10_000;
pub const STUDIES_JSON_CAP: usize = 10_000;
pub const STORY_JSON_CAP: usize = 20;

/// The JSON form: the report with the ledger, studies and stories cut to the caps above
/// (`ledger_rows_total`, `studies_total` and `story_total` count them all). Serialized
/// straight from the report, with no intermediate tree.
pub fn to_json(report: &Report, out: &mut impl std::io::Write) -> std::io::Result<()> {
    use serde::ser::{SerializeStruct, Serializer};
    let mut ser = serde_json::Serializer::new(&mut *out);
    let mut s = ser.serialize_struct("Report", 12).map_err(std::io::Error::other)?;
    (|| {
        s.serialize_field("schema", report.schema)?;
        s.serialize_field("input", &report.input)?;
        s.serialize_field("incidents", &report.incidents)?;
        s.serialize_field(
            "studies",
            report.studies.get(..STUDIES_JSON_CAP).unwrap_or(&report.studies),
        )?;
        s.serialize_field("studies_total", &report.studies_total)?;
        s.serialize_field("studies_untracked", &report.studies_untracked)?;
        s.serialize_field("ledger", report.ledger.get(..LEDGER_JSON_CAP).unwrap_or(&report.ledger))?;
        s.serialize_field("ledger_rows_total", &report.ledger_rows_total)?;
        s.serialize_field("timeline", &report.timeline)?;
        s.serialize_field("inventory", &report.inventory)?;
        s.serialize_field("flow_map", &report.flow_map)?;
        s.serialize_field("checklist", &report.checklist)?;
        s.end()
    })()
    .map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// One study's trail as plain text (`--study`); the caller escapes control characters for
/// the terminal.
pub fn study_trail(report: &Report, uid: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let Some(st) = report.studies.iter().find(|s| s.study_instance_uid == uid) else {
        let _ = writeln!(s, "study {uid}: not seen in {} event(s)", report.input.events);
        return s;
    };
    let _ = writeln!(
        s,
        "study {uid}: first {} last {}; {} transfer(s), {} access(es), {} instance(s), {} byte(s)",
        st.first, st.last, st.transfers, st.accesses, st.instances, st.bytes
    );
    for r in report.ledger.iter().filter(|r| r.study_instance_uid == uid) {
        let _ = writeln!(
            s,
            "{}  {:<8} {} -> {}{}  by {}  instances {}  bytes {}  status {}  flow {}{}{}",
            r.first,
            r.how,
            r.from,
            r.to,
            if r.external { " (EXTERNAL)" } else { "" },
            r.by,
            r.instances.map_or("-".to_string(), |n| n.to_string()),
            r.bytes.map_or("-".to_string(), |n| n.to_string()),
            r.status.as_deref().unwrap_or("-"),
            r.flow_id,
            if r.events > 1 {
                format!(" ({} events until {})", r.events, r.last)
            } else {
                String::new()
            },
            r.caused_by.as_ref().map_or(String::new(), |c| format!(
                "  for C-MOVE #{} of {}{}",
                c.message_id,
                c.requester.as_deref().unwrap_or(&c.originator_ae),
                c.flow_id
                    .map_or(" (request not seen)".to_string(), |f| format!(" (flow {f})"))
            ))
        );
    }
    if st.rows_dropped > 0 {
        let _ = writeln!(
            s,
            "({} more row(s) not kept: cap {} per study)",
            st.rows_dropped,
            ledger::MAX_ROWS_PER_STUDY
        );
    }
    for inc in report.incidents.iter().filter(|i| i.studies.iter().any(|x| x == uid)) {
        let _ = writeln!(
            s,
            "incident {} {} {}:{}: {}",
            inc.incident_id, inc.rule, inc.entity_kind, inc.entity_id, inc.summary
        );
    }
    s
}
