//! `hl7` events (CONTRACT §2): one per HL7 v2 message. Patient segments are never emitted.
//!
//! Every string comes from the message header (MSH), the acknowledgment (MSA) or the master
//! file segments (MFI, MFE): unescaped, trimmed and capped by the decoder. Patient segments
//! (PID, PV1, OBX, NK1, …) appear only as counts in `segment_counts`.

use crate::flow::Direction;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hl7Event {
    /// MSH-9 message code and trigger event joined with `^` (CONTRACT §2), e.g. `ADT^A01`,
    /// `ACK^A01`; a message without trigger has the code alone (`ACK`). The structure (third
    /// component) is in `message_structure`, so grouping by type does not split one type in two.
    pub message_type: String,
    /// Extension: MSH-9 third component, the message structure (`ADT_A01`), when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_structure: Option<String>,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// MSH-3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_application: Option<String>,
    /// MSH-4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
    /// MSH-5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_application: Option<String>,
    /// MSH-6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_facility: Option<String>,
    /// MSA-1 of ACK messages: `AA` `AE` `AR` `CA` `CE` `CR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_code: Option<String>,
    /// Extension: MSH-7 (date/time of message) as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_time: Option<String>,
    /// Extension: MSA-2, the control id of the message this one acknowledges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_control_id: Option<String>,
    /// Extension: on an acknowledgment, packet time from the end of the acknowledged message
    /// (sent the other way on this connection) to the end of this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_latency_seconds: Option<f64>,
    /// Extension: `toserver` (sent by the connection's initiator) or `toclient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Extension: number of segments in the message (MSH included).
    pub segments: u32,
    /// Extension: segments by id, counts only (e.g. `{"MSH":1,"PID":1,"OBX":3}`); never their
    /// content. Ids beyond the decoder's cap on distinct ids are counted under `other`.
    pub segment_counts: BTreeMap<String, u32>,
    /// Extension: message size in bytes (between the MLLP start and end blocks).
    pub message_bytes: u64,
    /// Extension: the message ended without its MLLP end block (a new start block, a capture
    /// gap, an oversized message, or the end of the flow); fields are from what was seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Extension: master file notifications (MFN), which change staff, practitioner or
    /// location records: admin-relevant (CONTRACT §2 `admin_change`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_event: Option<Hl7AdminEvent>,
}

/// A master file notification (HL7 v2.5 chapter 8, MFN^M01/M02/M05/…).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hl7AdminEvent {
    /// `staff_master_file_change` (MFN^M02: staff and practitioners),
    /// `location_master_file_change` (MFN^M05), `master_file_change` (any other MFN).
    #[serde(rename = "type")]
    pub kind: String,
    /// MFI-1 master file identifier, first component (e.g. `STF`, `PRA`, `LOC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_file_id: Option<String>,
    /// MFI-3 file-level event code (`REP` replace, `UPD` update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_event_code: Option<String>,
    /// The first MFE segments (record-level events), in order.
    pub records: Vec<Hl7MasterFileRecord>,
    /// Every MFE segment of the message, including those not listed in `records`.
    pub records_total: u32,
}

/// One MFE segment: a record-level event on a master file entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hl7MasterFileRecord {
    /// MFE-1 as sent: `MAD` `MUP` `MDL` `MDC` `MAC`.
    pub event_code: String,
    /// `add` `update` `delete` `deactivate` `reactivate` for the codes above (HL7 table 0180).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// MFE-4 primary key value, first component (for MFN^M02 the staff identifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
}
