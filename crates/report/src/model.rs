//! The report's facts: what the HTML shows, the JSON holds (`docs/report.md` documents every
//! field) and the CSV files tabulate. Only aggregates of the event lines: no event field that
//! pacstap keeps out of events (patient names, IDs, birth dates) can appear here.

use crate::shared::{Shared, Ts};
use serde::Serialize;

/// Version of the JSON layout; bumped when a field changes meaning or is removed.
pub const SCHEMA: &str = "pacstap-report/1";

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub input: InputSummary,
    pub incidents: Vec<Incident>,
    pub studies: Vec<StudySummary>,
    /// Studies tracked plus `studies_untracked`.
    pub studies_total: u64,
    /// References to studies (event × study) seen once [`crate::ledger::MAX_STUDIES`] were
    /// being tracked, when the study was not one of them: counted only (telling distinct ones
    /// apart would need the memory the cap saves), so an upper bound of the untracked studies.
    pub studies_untracked: u64,
    /// Ledger rows, sorted by first time; in the JSON at most `ledger_json_cap` of them (the
    /// CSV has them all).
    pub ledger: Vec<LedgerRow>,
    pub ledger_rows_total: u64,
    pub timeline: Timeline,
    pub inventory: Inventory,
    pub flow_map: Vec<FlowEdge>,
    pub checklist: Vec<Finding>,
}

#[derive(Debug, Default, Serialize)]
pub struct InputSummary {
    pub files: Vec<String>,
    pub lines: u64,
    /// Lines that were not events (not JSON, no `event_type`, too long, not UTF-8).
    pub skipped_lines: u64,
    /// Events inside the time range and entity filter: what the report is about.
    pub events: u64,
    pub events_outside_range: u64,
    pub events_other_entity: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Events per `event_type`.
    pub by_type: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Incident {
    pub incident_id: String,
    pub rule: String,
    pub severity_name: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub signature: String,
    pub summary: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    /// Alert lines of the incident (first alert and updates).
    pub alerts: u64,
    pub studies: Vec<String>,
    pub studies_total: u64,
    pub destinations: Vec<String>,
    pub destinations_total: u64,
    pub flow_ids: Vec<u64>,
    pub flow_ids_total: u64,
    pub volume: Volume,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_pcap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_sha256: Option<String>,
    /// `sha256 computed`, or why there is none (`not available: ...`).
    pub evidence_status: String,
    pub response: Vec<String>,
    /// The incident's flows' events in time order (at most `incidents::MAX_STORY`; the JSON
    /// has the first `STORY_JSON_CAP`).
    #[serde(serialize_with = "first_story_lines")]
    pub story: Vec<StoryLine>,
    pub story_total: u64,
}

/// What moved on the incident's flows: C-STORE instances and dataset bytes, DICOMweb
/// retrievals and their response bytes, C-MOVE / C-GET completed sub-operations.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Volume {
    pub instances: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoryLine {
    pub time: String,
    pub flow_id: u64,
    pub what: String,
}

/// One way a study was accessed or transferred: the events of one connection that did the
/// same thing to the same study, merged (e.g. the 120 C-STOREs of one association).
#[derive(Debug, Clone, Serialize)]
pub struct LedgerRow {
    pub study_instance_uid: Shared,
    pub first: Ts,
    pub last: Ts,
    /// `C-MOVE`, `C-GET`, `C-STORE`, `C-FIND`, `WADO-RS`, `WADO-URI`, `STOW-RS`, `QIDO-RS`.
    pub how: Shared,
    /// `transfer` (images moved) or `access` (a query).
    pub kind: &'static str,
    /// The system the images came from (`AE@address` or address).
    pub from: Shared,
    /// The destination (`AE@address`, a C-MOVE destination AE, a web client's address).
    pub to: Shared,
    /// User name when one was authenticated, else the requesting AE title or address.
    pub by: Shared,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Final status: DIMSE status or HTTP status (of the last merged event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Shared>,
    pub events: u64,
    pub flow_id: u64,
    /// Whether `to` is outside the internal networks (unknown address: `false`).
    pub external: bool,
    /// A C-STORE that is a C-MOVE sub-operation (its Move Originator AE / Message ID,
    /// PS3.7 §9.1.1.1): the C-MOVE that caused it. Then `by` is that C-MOVE's requester (its
    /// user, else its calling AE), not the PACS that sent the images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Box<MoveCause>>,
}

/// The C-MOVE behind a C-STORE sub-operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveCause {
    /// Move Originator AE Title (0000,1030): the AE that asked for the move.
    pub originator_ae: String,
    /// Move Originator Message ID (0000,1031): the C-MOVE's message id on its association.
    pub message_id: u16,
    /// The C-MOVE's requester (`AE@address`), its user and request time and flow, when its
    /// event is in the input (absent: the C-MOVE was not seen, e.g. outside the capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StudySummary {
    pub study_instance_uid: Shared,
    pub first: Ts,
    pub last: Ts,
    pub accesses: u64,
    pub transfers: u64,
    pub instances: u64,
    pub bytes: u64,
    pub destinations: Vec<Shared>,
    pub by: Vec<Shared>,
    /// Rows past `ledger::MAX_ROWS_PER_STUDY`: counted only.
    pub rows_dropped: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Timeline {
    /// `hour` or `day` (a span over 4 days is shown per day).
    pub bin: &'static str,
    pub bins: Vec<TimeBin>,
    pub exports_by_entity: Vec<EntityExports>,
    pub alerts: Vec<AlertMark>,
    pub alerts_total: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TimeBin {
    pub start: String,
    pub dicom: u64,
    pub http: u64,
    pub tls: u64,
    pub hl7: u64,
    pub alerts: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityExports {
    pub entity: String,
    pub transfers: u64,
    pub studies: u64,
    pub instances: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertMark {
    pub time: String,
    pub rule: String,
    pub severity_name: String,
    pub entity: String,
    pub incident_id: String,
    pub update: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Inventory {
    pub dicom_nodes: Vec<DicomNode>,
    pub hl7_applications: Vec<Hl7App>,
    pub http_servers: Vec<WebServer>,
    pub tls_servers: Vec<TlsServer>,
    /// Entries past the per-table cap (`inventory::MAX_ENTRIES`), counted only.
    pub untracked: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct DicomNode {
    pub ae: String,
    pub address: String,
    pub internal: bool,
    /// `SCU` (requested associations), `SCP` (accepted them).
    pub roles: Vec<String>,
    pub implementation_class_uids: Vec<String>,
    pub implementation_version_names: Vec<String>,
    pub sop_classes: Vec<String>,
    pub associations: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Hl7App {
    pub application: String,
    pub facility: String,
    pub address: String,
    pub message_types: Vec<String>,
    pub messages: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct WebServer {
    pub address: String,
    pub hostnames: Vec<String>,
    pub requests: u64,
    pub dicomweb: u64,
    pub users: Vec<String>,
    pub auth_schemes: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct TlsServer {
    pub address: String,
    pub sni: Vec<String>,
    pub versions_chosen: Vec<String>,
    pub versions_offered: Vec<String>,
    pub cipher_suites: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    pub self_signed: bool,
    pub expired: bool,
    pub connections: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// An edge of the image flow map: images from one system to another.
#[derive(Debug, Clone, Serialize)]
pub struct FlowEdge {
    pub from: String,
    pub to: String,
    pub from_internal: bool,
    pub to_internal: bool,
    /// Protocols that carried them (`C-STORE`, `WADO-RS`, ...).
    pub how: Vec<String>,
    pub instances: u64,
    pub bytes: u64,
    pub studies: u64,
}

/// One checklist item answered from the wire.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub item: &'static str,
    /// `finding` (the traffic shows a problem), `ok` (looked, found none), `info` (facts
    /// without a verdict), `not_knowable` (events cannot tell).
    pub status: &'static str,
    pub summary: String,
    /// The systems involved, with counts (at most `checklist::MAX_DETAILS`).
    pub details: Vec<String>,
    /// Connections that show it (at most `checklist::MAX_FLOWS`).
    pub flow_ids: Vec<u64>,
}

fn first_story_lines<S: serde::Serializer>(story: &[StoryLine], s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(story.get(..crate::STORY_JSON_CAP).unwrap_or(story), s)
}
