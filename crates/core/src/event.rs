//! Protocol events: what the decoders tell the detector and the outputs.
//!
//! Field names follow `shared/design/CONTRACT.md` §2 exactly: they are serialized as-is into the
//! JSON-lines events, so renaming one breaks users' pipelines. Extend, never rename.

mod alert;
mod hl7;
mod http;
mod posture;
mod tls;

pub use alert::{Alert, AlertEntity, AlertEvidence, AlertVolume, Severity};
pub use hl7::{Hl7AdminEvent, Hl7Event, Hl7MasterFileRecord};
pub use http::{CountedStudy, DicomWeb, HttpEvent, RestDownload};
pub use posture::{
    is_generic_name, is_password_scheme, is_tls_below_1_2, is_weak_cipher, PostureEvent, PostureFinding, GENERIC_NAMES,
    MAX_POSTURE_FLOWS, WEAK_CIPHER_PARTS,
};
pub use tls::{TlsAlert, TlsCertificate, TlsEvent};

use crate::flow::{Direction, FlowMeta};
use crate::time::Timestamp;
use serde::Serialize;

/// One thing a decoder saw.
#[derive(Debug, Clone)]
pub struct ProtocolEvent {
    /// Packet time of the packet that completed it.
    pub ts: Timestamp,
    pub flow: FlowMeta,
    pub body: EventBody,
}

/// The payload of an event; its variant decides the EVE `event_type`.
///
/// Not boxed: events are rare next to packets, and they move once, from decoder to sinks.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum EventBody {
    Dicom(DicomEvent),
    Http(HttpEvent),
    Tls(TlsEvent),
    Hl7(Hl7Event),
    Alert(Alert),
    Anomaly(Anomaly),
    /// A security-posture finding for one system (issue 13), from the posture tracker.
    Posture(PostureEvent),
}

impl EventBody {
    /// EVE `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventBody::Dicom(_) => "dicom",
            EventBody::Http(_) => "http",
            EventBody::Tls(_) => "tls",
            EventBody::Hl7(_) => "hl7",
            EventBody::Alert(_) => "alert",
            EventBody::Anomaly(_) => "anomaly",
            EventBody::Posture(_) => "posture",
        }
    }

    /// Whether this event is internal: a signal from a decoder to detection that no output
    /// writes, counts or collects (the events output keeps exactly the contract's lines).
    pub fn is_internal(&self) -> bool {
        matches!(self, EventBody::Dicom(DicomEvent::Accepted(_)))
    }
}

/// `dicom` events: `dicom.type` is `association` or `command`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DicomEvent {
    Association(DicomAssociation),
    Command(DicomCommand),
    /// Internal ([`EventBody::is_internal`]), never written: the A-ASSOCIATE-AC, at its packet.
    Accepted(DicomAccepted),
}

/// The acceptor's A-ASSOCIATE-AC (PS3.8 §9.3.3) of an association whose A-ASSOCIATE-RQ was
/// seen: the login succeeded, at this packet. Detection needs that moment (issue 12: a
/// success after a failure burst alerts at the accept, not at the first command or at the
/// association's end); the contract's `association` event still comes once, at the end, so
/// this one is internal and no output writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DicomAccepted {
    pub calling_ae: String,
    pub called_ae: String,
    /// The user name of the RQ's User Identity negotiation (PS3.7 §D.3.3.7), never the passcode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// How an association ended (CONTRACT §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssociationOutcome {
    Released,
    Rejected,
    Aborted,
    Reset,
    Closed,
    Incomplete,
}

impl AssociationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AssociationOutcome::Released => "released",
            AssociationOutcome::Rejected => "rejected",
            AssociationOutcome::Aborted => "aborted",
            AssociationOutcome::Reset => "reset",
            AssociationOutcome::Closed => "closed",
            AssociationOutcome::Incomplete => "incomplete",
        }
    }
}

/// A-ASSOCIATE-RJ fields (PS3.8 §9.3.4), numbers as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssociationReject {
    pub result: u8,
    pub source: u8,
    pub reason: u8,
}

/// A-ABORT fields (PS3.8 §9.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssociationAbort {
    pub source: u8,
    pub reason: u8,
}

/// User Identity negotiation (PS3.7 §D.3.3.7): the type and user name, never the passcode/token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserIdentity {
    /// `username`, `username_passcode`, `kerberos`, `saml`, `jwt` (or `unknown_<n>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Present for `username` and `username_passcode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether the acceptor answered the identity (A-ASSOCIATE-AC carried a User Identity
    /// sub-item); only known when the requester asked for a positive response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_response: Option<bool>,
}

/// `dicom.type = "association"`: one per association, when it ends or the run ends.
#[derive(Debug, Clone, Serialize)]
pub struct DicomAssociation {
    pub calling_ae: String,
    pub called_ae: String,
    pub accepted: bool,
    pub outcome: AssociationOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<AssociationReject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<AssociationAbort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
    /// Accepted SOP class UIDs (abstract syntaxes of accepted presentation contexts).
    pub abstract_syntaxes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation_class_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation_version_name: Option<String>,
    /// Max PDU length the requester announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pdu_length: Option<u32>,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    /// DIMSE requests seen.
    pub commands: u64,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Extension: false when the capture began mid-association (AE titles may be empty).
    pub request_seen: bool,
    /// Extension: bytes lost to capture gaps inside this association (the bytes counts above
    /// are bytes seen on the wire; a PDU claiming more than was seen is an anomaly).
    pub gap_bytes: u64,
    /// Extension: capture gaps inside this association (absent when none).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub gaps: u32,
    /// Extension: `outcome: rejected` was inferred, not read. The acceptor's only reply was
    /// lost by the capture and was exactly 10 bytes, the size of an A-ASSOCIATE-RJ (or of an
    /// A-ABORT; an A-ASSOCIATE-AC is never that short), and no command followed: on a lossy
    /// SPAN port a credential-guessing burst must not lose its rejections to the tap's drops.
    /// `reject` is then absent (its reason was in the lost bytes).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reject_inferred: bool,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Status class of a DIMSE status (PS3.7 Annex C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    Success,
    Warning,
    Failure,
    Cancel,
    Pending,
}

impl StatusClass {
    /// Classify a status code (PS3.7 §C.1–C.5).
    pub fn of(status: u16) -> StatusClass {
        match status {
            0x0000 => StatusClass::Success,
            0xFE00 => StatusClass::Cancel,
            0xFF00 | 0xFF01 => StatusClass::Pending,
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
            _ => StatusClass::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "success",
            StatusClass::Warning => "warning",
            StatusClass::Failure => "failure",
            StatusClass::Cancel => "cancel",
            StatusClass::Pending => "pending",
        }
    }
}

/// C-MOVE / C-GET sub-operation counts from the (last) response (PS3.7 §9.1.3, §9.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SubOperations {
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
    pub remaining: u16,
}

/// `dicom.type = "command"`: one per DIMSE request, emitted with its final response
/// (or when the association ends without one: then `status` is absent).
#[derive(Debug, Clone, Serialize)]
pub struct DicomCommand {
    pub calling_ae: String,
    pub called_ae: String,
    /// `C-ECHO`, `C-STORE`, `C-FIND`, `C-MOVE`, `C-GET`, `N-…`, or `0x….` for unknown codes.
    /// Extension: the user name of the association's User Identity negotiation (PS3.7
    /// §D.3.3.7), when there was one, so each export names its user without waiting for the
    /// association's end. Never the passcode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub command: String,
    pub message_id: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_class_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_destination: Option<String>,
    /// Extension: Move Originator Application Entity Title (0000,1030) of a C-STORE that is a
    /// C-MOVE sub-operation (PS3.7 §9.1.1.1): the AE whose C-MOVE caused it, so a detector can
    /// tie the data to its request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_originator_ae: Option<String>,
    /// Extension: Move Originator Message ID (0000,1031) of that C-MOVE (PS3.7 §9.1.1.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub move_originator_message_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_level: Option<String>,
    pub study_instance_uids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// e.g. `"0x0000"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_class: Option<StatusClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_operations: Option<SubOperations>,
    /// Dataset bytes carried by the request (C-STORE) or by all responses (C-FIND matches),
    /// as seen on the wire (bytes lost to capture gaps are `lost_bytes`).
    pub dataset_bytes: u64,
    /// Extension: data set bytes of this command lost to capture gaps (absent when none).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub lost_bytes: u64,
    /// Extension: part of this exchange may have fallen in a capture gap: its request (the event
    /// was built from the response), or a gap happened while it awaited its final response
    /// (part of a data set or of its responses may be missing). Absent when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// `toserver`: the request went from the association requester to the acceptor;
    /// `toclient`: e.g. C-STORE sub-operations of a C-GET flowing back to the requester.
    pub direction: Direction,
    /// Extension: number of responses seen (C-FIND matches are pending responses).
    pub responses: u32,
    pub request_time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<Timestamp>,
}

/// Malformed or unexpected traffic: counted, reported, skipped (ARCHITECTURE rule 6).
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    /// `dicom`, `tcp`, …
    pub proto: &'static str,
    /// snake_case name, e.g. `dicom.pdu_too_large`.
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(0x0000), StatusClass::Success);
        assert_eq!(StatusClass::of(0xFF00), StatusClass::Pending);
        assert_eq!(StatusClass::of(0xB007), StatusClass::Warning);
        assert_eq!(StatusClass::of(0xA801), StatusClass::Failure);
        assert_eq!(StatusClass::of(0xFE00), StatusClass::Cancel);
    }

    #[test]
    fn dicom_event_is_tagged_by_type() {
        let a = AssociationAbort { source: 0, reason: 0 };
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(v["source"], 0);
        let o = serde_json::to_value(AssociationOutcome::Incomplete).unwrap();
        assert_eq!(o, "incomplete");
    }
}
