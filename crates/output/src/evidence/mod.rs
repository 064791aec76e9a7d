//! Evidence pcaps (`--evidence-dir`, CONTRACT §1): for each alert, the packets of the flows
//! behind it, in a file Wireshark opens, readable only by its owner (mode 0600: the payload is
//! patient data).
//!
//! - [`plan`]: replay's two passes: alerts register their flows ([`EvidencePlan`]), then
//!   [`EvidenceWriter`] copies those flows' packets from the input read again.
//! - [`ring`]: live capture cannot read its input twice: [`EvidenceRing`] keeps recent flows'
//!   packets in bounded memory (records per flow in [`flow_buf`]), and a snapshot of an alert's
//!   flows ([`EvidencePackets`], in [`packets`]) goes to the writer thread.
//! - [`pcap_writer`]: the pcap files themselves (legacy pcap, atomically replaced or appended).
//! - [`custody`]: the append-only chain-of-custody log (`custody.jsonl`: file, SHA-256, size,
//!   packet times, incident, host, when written).

mod custody;
mod flow_buf;
mod packets;
mod pcap_writer;
mod plan;
mod ring;

pub use custody::{
    append_custody, pcap_facts, read_custody, record_custody, sensor_host, sha256_file, verify_custody, CustodyEntry,
    PcapFacts, Verdict, CUSTODY_LOG,
};
pub use packets::{EvidencePacket, EvidencePackets, FlowEvidence};
pub use pcap_writer::{append_evidence_pcap, write_evidence_pcap, PcapWritten};
pub use plan::{evidence_file_name, EvidencePlan, EvidenceWriter, MAX_EVIDENCE_FILES};
pub use ring::{EvidenceRing, RingLimits, RingStats};
