//! Building the core event structs (CONTRACT §2 `dicom`) from association / command state,
//! and the anomaly names the decoder emits.

use super::association::Association;
use super::command::{command_name, text, CommandSet};
use super::parser::RequestedIdentity;
use crate::anomaly::anomaly_names;
use crate::decoder::at;
use pacstap_core::{
    Anomaly, AssociationAbort, AssociationOutcome, AssociationReject, DicomAccepted, DicomAssociation, DicomCommand,
    DicomEvent, Direction, EventBody, FlowMeta, ProtocolEvent, StatusClass, SubOperations, Timestamp, UserIdentity,
};

anomaly_names! {
    /// Anomaly names (ARCHITECTURE rule 6), all counted in `ProtoStats::anomalies`.
    pub enum DicomAnomaly ("dicom") {
        /// A control PDU longer than `max_control_pdu_bytes` (the detail has the claimed size);
        /// its first bytes are still read (an RQ's AE titles), the rest is skipped by its length.
        PduTooLarge = "dicom.pdu_too_large",
        /// A PDU claimed more bytes than were seen before the connection ended.
        PduTruncated = "dicom.pdu_truncated",
        /// A P-DATA-TF longer than the receiver's Maximum Length (PS3.8 §D.1, announced in the
        /// A-ASSOCIATE-RQ/AC user information); decoding goes on.
        PduAboveNegotiatedMax = "dicom.pdu_above_negotiated_max",
        /// The decoder memory budget refused to hold a control PDU, command set or data set
        /// prefix; that message is given up (an RQ still yields its first bytes).
        MemoryBudget = "dicom.memory_budget",
        /// The flow was given up (the detail says why): no more DICOM events from it.
        GiveUp = "dicom.give_up",
        /// A PDU type outside 01H-07H (PS3.8 §9.3.1).
        UnknownPduType = "dicom.unknown_pdu_type",
        /// A-ASSOCIATE-RQ/AC/RJ that dicom-ul (strict) refused; fixed fields are still used.
        MalformedAssociate = "dicom.malformed_associate",
        /// A-RELEASE-RQ/RP or A-ABORT that dicom-ul (strict) refused.
        MalformedPdu = "dicom.malformed_pdu",
        /// A PDV item that does not fit its P-DATA-TF, or an even presentation context id.
        MalformedPdv = "dicom.malformed_pdv",
        /// A command set over `max_command_bytes`.
        CommandTooLarge = "dicom.command_too_large",
        /// A command set that cannot be read (or was read only in part).
        MalformedCommand = "dicom.malformed_command",
        /// A PDU that makes no sense in the association's state (e.g. a second A-ASSOCIATE-AC).
        UnexpectedPdu = "dicom.unexpected_pdu",
        /// Bytes had to be skipped to find the next PDU header.
        Resync = "dicom.resync",
        /// A response to no known request, on an association seen whole (a final response
        /// without a data set waits for its request until the association ends: `settle_early`).
        ResponseWithoutRequest = "dicom.response_without_request",
        /// More than `max_pending_commands` requests awaiting responses; the oldest is emitted.
        TooManyPending = "dicom.too_many_pending",
        /// A connection captured from its handshake, without a capture gap, ended with no
        /// A-ASSOCIATE-RQ from its client: a port scan or service probe (nmap `-sV` sends HTTP,
        /// TLS and other probes, or nothing, and the DICOM server aborts), or a client that does
        /// not speak DICOM. Not a mid-stream pickup, which the summary counts apart.
        NoAssociateRequest = "dicom.no_associate_request",
    }
}

/// The flow as the contract wants it: `src` is the association requester. When the requester
/// is what the flow layer took for the server (it guessed wrong), swap the endpoints.
pub(crate) fn flow_meta(meta: &FlowMeta, swapped: bool) -> FlowMeta {
    if swapped {
        FlowMeta {
            client: meta.server,
            server: meta.client,
            ..*meta
        }
    } else {
        *meta
    }
}

pub(crate) fn anomaly_event(
    ts: Timestamp,
    meta: &FlowMeta,
    swapped: bool,
    name: DicomAnomaly,
    detail: Option<String>,
) -> ProtocolEvent {
    ProtocolEvent {
        ts,
        flow: flow_meta(meta, swapped),
        body: EventBody::Anomaly(Anomaly {
            proto: "dicom",
            name: name.as_str(),
            detail,
        }),
    }
}

/// PS3.7 §D.3.3.7.1 User-Identity-Type names (CONTRACT §2).
pub(crate) fn identity_kind(kind: u8) -> String {
    match kind {
        1 => "username".into(),
        2 => "username_passcode".into(),
        3 => "kerberos".into(),
        4 => "saml".into(),
        5 => "jwt".into(),
        n => format!("unknown_{n}"),
    }
}

/// The contract's user identity: type and user name only (never passcode, ticket or token; a
/// JWT's user is its claim, read by the parser).
/// `server_response` is known only when the requester asked for one and the association was
/// accepted: then it says whether the A-ASSOCIATE-AC carried sub-item 59H (PS3.7 §D.3.3.7.2).
pub(crate) fn user_identity(id: &RequestedIdentity, accepted: bool, response_seen: bool) -> UserIdentity {
    UserIdentity {
        kind: identity_kind(id.kind),
        username: if matches!(id.kind, 1 | 2 | 5) {
            id.username.clone()
        } else {
            None
        },
        server_response: (id.positive_response_requested && accepted).then_some(response_seen),
    }
}

/// `"0x0000"` (CONTRACT §2).
pub(crate) fn status_string(status: u16) -> String {
    format!("0x{status:04X}")
}

/// A command event for a request, before any response. AE titles are filled in on emission.
pub(crate) fn new_command(
    cmd: &CommandSet<'_>,
    direction: Direction,
    ts: Timestamp,
    context_abstract_syntax: Option<&str>,
) -> DicomCommand {
    let sop_class_uid = cmd
        .affected_sop_class_uid
        .or(cmd.requested_sop_class_uid)
        .map(text)
        .filter(|s| !s.is_empty())
        .or_else(|| context_abstract_syntax.filter(|s| !s.is_empty()).map(str::to_string));
    DicomCommand {
        calling_ae: String::new(),
        called_ae: String::new(),
        user: None,
        command: command_name(cmd.command_field).into_owned(),
        message_id: cmd.message_id.unwrap_or(0),
        sop_class_uid,
        sop_instance_uid: cmd
            .affected_sop_instance_uid
            .or(cmd.requested_sop_instance_uid)
            .map(text),
        move_destination: cmd.move_destination.map(text),
        move_originator_ae: cmd.move_originator_ae.map(text).filter(|s| !s.is_empty()),
        move_originator_message_id: cmd.move_originator_message_id,
        query_level: None,
        study_instance_uids: Vec::new(),
        modality: None,
        status: None,
        status_class: None,
        sub_operations: None,
        dataset_bytes: 0,
        lost_bytes: 0,
        incomplete: false,
        direction,
        responses: 0,
        request_time: ts,
        response_time: None,
    }
}

/// Fold a response into its request's event.
pub(crate) fn apply_response(ev: &mut DicomCommand, cmd: &CommandSet<'_>, ts: Timestamp, is_final: bool) {
    ev.responses = ev.responses.saturating_add(1);
    ev.response_time = Some(ts);
    if cmd.has_sub_operations() {
        // PS3.7 §9.3.3.2 / §9.3.4.2: (0000,1020..1023); the last response's counts are final.
        ev.sub_operations = Some(SubOperations {
            completed: cmd.completed.unwrap_or(0),
            failed: cmd.failed.unwrap_or(0),
            warning: cmd.warning.unwrap_or(0),
            remaining: cmd.remaining.unwrap_or(0),
        });
    }
    if is_final {
        ev.status = cmd.status.map(status_string);
        ev.status_class = cmd.status.map(StatusClass::of);
    }
}

/// Whether a command has its final response (a status that is not Pending, PS3.7 §C).
pub(crate) fn has_final_status(ev: &DicomCommand) -> bool {
    ev.status.is_some() && ev.status_class != Some(StatusClass::Pending)
}

/// `req` (a request just decoded) completed by `early`, the command built from its final
/// response, which came first: the response's facts on the request's.
pub(crate) fn answer_with(req: &mut DicomCommand, early: DicomCommand) {
    req.responses = req.responses.saturating_add(early.responses);
    req.response_time = early.response_time;
    req.sub_operations = early.sub_operations;
    req.status = early.status;
    req.status_class = early.status_class;
    // When the order was broken by a gap, part of the exchange (a pending response) may be
    // missing; when only by a late mirror of the requester (no gap yet), nothing is.
    req.incomplete |= early.incomplete;
    if req.sop_instance_uid.is_none() {
        req.sop_instance_uid = early.sop_instance_uid;
    }
}

pub(crate) fn command_event(
    ts: Timestamp,
    meta: &FlowMeta,
    assoc: &Association,
    mut ev: DicomCommand,
) -> ProtocolEvent {
    ev.calling_ae.clone_from(&assoc.calling_ae);
    ev.called_ae.clone_from(&assoc.called_ae);
    ev.user = assoc
        .identity
        .as_ref()
        .and_then(|id| user_identity(id, false, false).username);
    ProtocolEvent {
        ts,
        flow: flow_meta(meta, assoc.swapped),
        body: EventBody::Dicom(DicomEvent::Command(ev)),
    }
}

/// The internal accept signal ([`DicomAccepted`]) of association `a`, at the A-ASSOCIATE-AC.
pub(crate) fn accepted_event(ts: Timestamp, meta: &FlowMeta, a: &Association) -> ProtocolEvent {
    ProtocolEvent {
        ts,
        flow: flow_meta(meta, a.swapped),
        body: EventBody::Dicom(DicomEvent::Accepted(DicomAccepted {
            calling_ae: a.calling_ae.clone(),
            called_ae: a.called_ae.clone(),
            user: a
                .identity
                .as_ref()
                .and_then(|id| user_identity(id, false, false).username),
        })),
    }
}

/// How the association ended, with the PS3.8 numbers where there are any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ending {
    pub outcome: AssociationOutcome,
    pub reject: Option<AssociationReject>,
    pub abort: Option<AssociationAbort>,
    /// Rejected, by the size of a reply the capture lost (`Association::refusal_lost`).
    pub reject_inferred: bool,
}

impl Ending {
    pub(crate) fn plain(outcome: AssociationOutcome) -> Self {
        Ending {
            outcome,
            reject: None,
            abort: None,
            reject_inferred: false,
        }
    }

    /// The acceptor's refusal was lost by the capture; its size says what it was.
    pub(crate) fn refusal_lost() -> Self {
        Ending {
            reject_inferred: true,
            ..Ending::plain(AssociationOutcome::Rejected)
        }
    }
}

pub(crate) fn association_event(ts: Timestamp, meta: &FlowMeta, a: &Association, end: Ending) -> ProtocolEvent {
    let mut abstract_syntaxes: Vec<String> = Vec::new();
    for pc in a
        .contexts
        .iter()
        .filter(|pc| pc.accepted && !pc.abstract_syntax.is_empty())
    {
        if !abstract_syntaxes.contains(&pc.abstract_syntax) {
            abstract_syntaxes.push(pc.abstract_syntax.clone());
        }
    }
    let ev = DicomAssociation {
        calling_ae: a.calling_ae.clone(),
        called_ae: a.called_ae.clone(),
        accepted: a.accepted,
        outcome: end.outcome,
        reject: end.reject,
        abort: end.abort,
        user_identity: a
            .identity
            .as_ref()
            .map(|id| user_identity(id, a.accepted, a.identity_response)),
        abstract_syntaxes,
        implementation_class_uid: a.implementation_class_uid.clone(),
        implementation_version_name: a.implementation_version_name.clone(),
        max_pdu_length: a.max_pdu_length,
        bytes_toserver: *at(&a.bytes, Direction::ToServer),
        bytes_toclient: *at(&a.bytes, Direction::ToClient),
        commands: a.commands,
        start: a.start,
        end: ts,
        request_seen: a.request_seen,
        gap_bytes: a.gap_bytes(),
        gaps: a.gaps,
        reject_inferred: end.reject_inferred,
    };
    ProtocolEvent {
        ts,
        flow: flow_meta(meta, a.swapped),
        body: EventBody::Dicom(DicomEvent::Association(ev)),
    }
}

#[cfg(test)]
mod tests {
    use super::DicomAnomaly;

    /// The names are the CONTRACT's (events and `pacstap_anomalies_total` labels): pinned here
    /// so a renamed variant cannot change them.
    #[test]
    fn anomaly_names_are_fixed() {
        crate::anomaly::check::names(
            DicomAnomaly::ALL,
            &[
                "dicom.pdu_too_large",
                "dicom.pdu_truncated",
                "dicom.pdu_above_negotiated_max",
                "dicom.memory_budget",
                "dicom.give_up",
                "dicom.unknown_pdu_type",
                "dicom.malformed_associate",
                "dicom.malformed_pdu",
                "dicom.malformed_pdv",
                "dicom.command_too_large",
                "dicom.malformed_command",
                "dicom.unexpected_pdu",
                "dicom.resync",
                "dicom.response_without_request",
                "dicom.too_many_pending",
                "dicom.no_associate_request",
            ],
        );
    }
    use super::*;
    use crate::testutil::meta;

    #[test]
    fn identity_never_carries_secrets() {
        let id = RequestedIdentity {
            kind: 4,
            positive_response_requested: true,
            username: Some("x".into()),
        };
        let u = user_identity(&id, true, true);
        assert_eq!(u.kind, "saml");
        assert_eq!(u.username, None);
        assert_eq!(u.server_response, Some(true));
        // A JWT's user is the claim the parser read from it.
        let id = RequestedIdentity {
            kind: 5,
            positive_response_requested: false,
            username: Some("rad1".into()),
        };
        let u = user_identity(&id, true, true);
        assert_eq!((u.kind.as_str(), u.username.as_deref()), ("jwt", Some("rad1")));
        let id = RequestedIdentity {
            kind: 2,
            positive_response_requested: false,
            username: Some("rad1".into()),
        };
        let u = user_identity(&id, true, false);
        assert_eq!(
            (u.kind.as_str(), u.username.as_deref(), u.server_response),
            ("username_passcode", Some("rad1"), None)
        );
        assert_eq!(identity_kind(9), "unknown_9");
    }

    #[test]
    fn swapped_meta() {
        let m = meta(50_000, 104);
        let s = flow_meta(&m, true);
        assert_eq!((s.client, s.server), (m.server, m.client));
        assert_eq!(flow_meta(&m, false), m);
        assert_eq!(status_string(0xC001), "0xC001");
    }
}
