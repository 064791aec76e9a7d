//! One association as the session (`state`) tracks it and `event` reports it: its
//! negotiation, byte counts and pending requests. A plain data type both depend on, so
//! neither depends on the other.

use crate::dicom::dataset::TransferSyntax;
use crate::dicom::parser::RequestedIdentity;
use pacstap_core::{DicomCommand, Direction, Timestamp};

/// Bytes of an A-ASSOCIATE-RJ and of an A-ABORT PDU: a 6-byte header and 4 bytes of fields
/// (PS3.8 §9.3.4, §9.3.8).
pub(crate) const REFUSAL_PDU_BYTES: u64 = 10;

/// A pending request: the direction it travelled (normalised) and its message id.
pub(crate) type Key = (Direction, u16);

/// A presentation context as negotiated (PS3.8 §7.1.1.13).
#[derive(Debug, Clone)]
pub(crate) struct PresContext {
    pub id: u8,
    /// Empty when the RQ was not seen.
    pub abstract_syntax: String,
    pub accepted: bool,
    pub ts: Option<TransferSyntax>,
}

/// One association, from its A-ASSOCIATE-RQ (or the first sign of it) to its end.
#[derive(Debug)]
pub(crate) struct Association {
    /// The requester is the flow's server.
    pub swapped: bool,
    pub request_seen: bool,
    pub calling_ae: String,
    pub called_ae: String,
    pub accepted: bool,
    pub identity: Option<RequestedIdentity>,
    pub identity_response: bool,
    pub contexts: Vec<PresContext>,
    pub implementation_class_uid: Option<String>,
    pub implementation_version_name: Option<String>,
    pub max_pdu_length: Option<u32>,
    /// The acceptor's Maximum Length (A-ASSOCIATE-AC sub-item 51H, PS3.8 §D.1): the longest
    /// P-DATA-TF the requester may send.
    pub ac_max_pdu_length: Option<u32>,
    /// `dicom.pdu_above_negotiated_max` already reported, by normalised direction.
    pub over_max_reported: [bool; 2],
    /// PDU bytes seen on the wire, indexed by normalised direction.
    pub bytes: [u64; 2],
    pub commands: u64,
    pub start: Timestamp,
    /// Bytes lost to capture gaps, by normalised direction (a lost reply is told from a lost
    /// request by it); [`Association::gap_bytes`] is their sum.
    pub gap_bytes_by_dir: [u64; 2],
    /// Capture gaps inside the association.
    pub gaps: u32,
    /// Everything since the RQ was seen, without gaps or resynchronisation: only then is a
    /// response without request an anomaly rather than an artefact of the capture.
    pub lossless: bool,
    /// Requests awaiting their final response, oldest first (bounded by `max_pending_commands`).
    pub pending: Vec<DicomCommand>,
    /// Final responses that came before their request (after a capture gap, or while the
    /// request's bytes may still be behind a hole the reassembler keeps open): commands built
    /// from the response, kept until the request comes (then reported as one command), the
    /// association ends, or room is needed (`settle_early`). With `pending` bounded by
    /// `max_pending_commands`.
    pub answered_early: Vec<DicomCommand>,
    /// An A-RELEASE-RQ was seen.
    pub release_requested: bool,
    /// The A-RELEASE-RP came before its RQ (a SPAN port delivering the requester's side late):
    /// the association ends, released, when the RQ arrives or the connection ends, so the RQ's
    /// bytes are still counted in it.
    pub released_early: bool,
    /// A command came after the RQ but before any A-ASSOCIATE-AC. A requester sends P-DATA only
    /// once accepted, so on a SPAN port that is the acceptor's side arriving late; the
    /// `dicom.unexpected_pdu` anomaly waits for the association's end and is reported only if
    /// no A-ASSOCIATE-AC ever came.
    pub pdata_before_ac: bool,
}

impl Association {
    pub(super) fn new(ts: Timestamp, swapped: bool) -> Self {
        Association {
            swapped,
            request_seen: false,
            calling_ae: String::new(),
            called_ae: String::new(),
            accepted: false,
            identity: None,
            identity_response: false,
            contexts: Vec::new(),
            implementation_class_uid: None,
            implementation_version_name: None,
            max_pdu_length: None,
            ac_max_pdu_length: None,
            over_max_reported: [false; 2],
            bytes: [0; 2],
            commands: 0,
            start: ts,
            gap_bytes_by_dir: [0; 2],
            gaps: 0,
            lossless: false,
            pending: Vec::new(),
            answered_early: Vec::new(),
            release_requested: false,
            released_early: false,
            pdata_before_ac: false,
        }
    }

    pub(super) fn norm(&self, raw: Direction) -> Direction {
        if self.swapped {
            raw.reverse()
        } else {
            raw
        }
    }

    pub(super) fn context(&self, id: u8) -> Option<&PresContext> {
        self.contexts.iter().find(|pc| pc.id == id)
    }

    /// Whether the acceptor's only reply to a seen A-ASSOCIATE-RQ was lost and was a refusal:
    /// nothing of it captured, exactly [`REFUSAL_PDU_BYTES`] lost, no AC, no command, and the
    /// request side lost nothing (else the 10 bytes could be anything). An A-ASSOCIATE-AC is at
    /// least 74 bytes (PS3.8 §9.3.3: a 68-byte fixed part and an Application Context item), so
    /// a 10-byte answer can only have been an A-ASSOCIATE-RJ or an A-ABORT (PS3.8 §9.3.4,
    /// §9.3.8), and either refused the association.
    pub(crate) fn refusal_lost(&self) -> bool {
        self.request_seen
            && !self.accepted
            && self.commands == 0
            && self.pending.is_empty()
            && self.answered_early.is_empty()
            && !self.release_requested
            && *crate::decoder::at(&self.bytes, Direction::ToClient) == 0
            && *crate::decoder::at(&self.gap_bytes_by_dir, Direction::ToClient) == REFUSAL_PDU_BYTES
            && *crate::decoder::at(&self.gap_bytes_by_dir, Direction::ToServer) == 0
    }

    /// Bytes of the association lost to capture gaps, both ways.
    pub(crate) fn gap_bytes(&self) -> u64 {
        self.gap_bytes_by_dir[0].saturating_add(self.gap_bytes_by_dir[1])
    }

    pub(crate) fn pending_index(&self, key: Key) -> Option<usize> {
        self.pending.iter().position(|p| (p.direction, p.message_id) == key)
    }
}
