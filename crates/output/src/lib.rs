//! Output stage: where events leave pacstap.
//!
//! - [`JsonLinesSink`]: one JSON object per line in Suricata's EVE layout (CONTRACT §2), so
//!   existing SIEM pipelines ingest it unchanged.
//! - [`Summary`]: the human summary `replay` prints on stderr at the end of a run.
//!
//! This is the only stage allowed to know about wall-clock time (for progress display); events
//! themselves carry packet time only.

mod eve;
mod evidence;
mod summary;

pub use eve::{EveRecord, JsonLinesSink};
pub use evidence::{EvidencePlan, EvidenceWriter, MAX_EVIDENCE_FILES};
pub use summary::{Summary, SummarySection};
