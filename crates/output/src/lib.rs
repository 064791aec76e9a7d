//! Output stage: where events leave pacstap.
//!
//! - [`JsonLinesSink`]: one JSON object per line in Suricata's EVE layout (CONTRACT §2), so
//!   existing SIEM pipelines ingest it unchanged.
//! - [`eve_in`]: the inverse, EVE lines back into internal events (re-detection, central detection).
//! - [`Summary`]: the human summary `replay` prints on stderr at the end of a run.
//! - [`Metrics`] and [`MetricsServer`]: Prometheus counters (CONTRACT §4) served at `/metrics`.
//! - [`AlertmanagerClient`]: pushes alerts to a Prometheus Alertmanager (`--alertmanager`).
//! - [`term`]: control characters escaped in everything printed for a person.
//!
//! This is the only stage allowed to know about wall-clock time (for progress display); events
//! themselves carry packet time only.

// Input-controlled indexing is how a tap crashes (workspace lint note): here it is an error, and
// the few constant-index sites say why they are in bounds. Tests may index: a panic there is a
// failing test, not a crashed tap.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod alertmanager;
mod eve;
pub mod eve_in;
mod eve_in_types;
mod evidence;
pub mod metrics;
mod summary;
pub mod term;

pub use alertmanager::{AlertmanagerClient, AlertmanagerError, AlertmanagerOptions, AlertmanagerStats};
pub use eve::{eve_json, EveRecord, JsonLinesSink};
pub use eve_in::{parse_line, EveInError, EveKind, EveLine};
pub use evidence::{
    append_custody, evidence_file_name, pcap_facts, read_custody, record_custody, sensor_host, sha256_file,
    verify_custody, CustodyEntry, PcapFacts, Verdict, CUSTODY_LOG,
};
pub use evidence::{
    append_evidence_pcap, write_evidence_pcap, EvidencePacket, EvidencePackets, EvidencePlan, EvidenceRing,
    EvidenceWriter, FlowEvidence, PcapWritten, RingLimits, RingStats, MAX_EVIDENCE_FILES,
};
pub use metrics::{LatencyQuantiles, LatencyRecorder, Metrics, MetricsServer, StatsSnapshot, TCP_COUNTERS};
pub use summary::{human_bytes, human_duration, Summary, SummarySection};
