//! What the hl7 decoder emits: the `hl7` event of one message (header, acknowledgment and
//! master file values, segment counts; never patient data), and its anomaly names.

use super::parser::{MasterFileRecord, MessageHeader, SegmentId};
use super::stream::{Message, MessageEnd};
use crate::anomaly::anomaly_names;
use pacstap_core::{Direction, Hl7Event};
use std::collections::BTreeMap;

anomaly_names! {
    /// Anomaly names (ARCHITECTURE rule 6), all counted in `ProtoStats::anomalies`.
    pub enum Hl7Anomaly ("hl7") {
        /// Bytes were passed over to find the next frame (after a capture gap, a mid-message
        /// pickup or an oversized message).
        Resync = "hl7.resync",
        /// Bytes of the flow were lost to a capture gap.
        Gap = "hl7.gap",
        /// No end block within `max_message_bytes`; the message is reported truncated.
        MessageTooLarge = "hl7.message_too_large",
        /// A frame whose content does not start with MSH (or a batch header).
        MissingMsh = "hl7.missing_msh",
        /// An MSH whose delimiters cannot be read, or without message type / control id.
        MalformedMsh = "hl7.malformed_msh",
        /// An MSA-2 that names no message sent the other way on a connection seen whole.
        AckWithoutMessage = "hl7.ack_without_message",
        /// Data outside a frame (other than CR/LF keep-alives), or `<FS>` without `<CR>`.
        BadFraming = "hl7.bad_framing",
        /// A start block inside a frame: the previous message had no end block.
        MissingEndBlock = "hl7.missing_end_block",
        /// The connection was closed (FIN/RST) in the middle of a message.
        TruncatedMessage = "hl7.truncated_message",
        /// More than `max_outstanding` messages awaiting acknowledgment; the oldest are forgotten.
        TooManyOutstanding = "hl7.too_many_outstanding",
        /// The decoder memory budget refused to keep more of a message's header segments.
        MemoryBudget = "hl7.memory_budget",
    }
}

/// The event of one message. Only header, acknowledgment and master file values and segment
/// counts go in; `Message` holds nothing else.
pub(super) fn event_of(h: MessageHeader, msg: &Message, dir: Direction, end: MessageEnd) -> Hl7Event {
    let mut segment_counts: BTreeMap<String, u32> =
        msg.counts.iter().map(|(id, n)| (id.as_str().to_string(), *n)).collect();
    if msg.other_segments > 0 {
        segment_counts.insert("other".into(), msg.other_segments);
    }
    let admin_kind = match (h.message_code(), h.trigger_event()) {
        // Master file notifications (HL7 v2.5 chapter 8): MFN^M02 changes the staff and
        // practitioner master file, MFN^M05 the location master file.
        (Some("MFN"), Some("M02")) => Some("staff_master_file_change"),
        (Some("MFN"), Some("M05")) => Some("location_master_file_change"),
        (Some("MFN"), _) => Some("master_file_change"),
        _ => None,
    };
    let (ack_code, acked_control_id) = h.ack.map_or((None, None), |a| (a.code, a.control_id));
    let (message_type, message_structure) = split_type(h.message_type.as_deref().unwrap_or(""));
    let mut ev = Hl7Event {
        message_type,
        message_structure,
        control_id: h.control_id.unwrap_or_default(),
        version: h.version,
        sending_application: h.sending_application,
        sending_facility: h.sending_facility,
        receiving_application: h.receiving_application,
        receiving_facility: h.receiving_facility,
        ack_code,
        message_time: h.message_time,
        acked_control_id,
        ack_latency_seconds: None,
        direction: Some(dir),
        segments: msg.segments,
        segment_counts,
        message_bytes: msg.bytes,
        truncated: end.truncated(),
        admin_event: None,
    };
    if let Some(kind) = admin_kind {
        // The admin types are not re-exported by pacstap-core; they are filled through
        // `Default` (see the report of issue 3).
        let admin = ev.admin_event.insert(Default::default());
        admin.kind = kind.to_string();
        admin.records_total = msg.count_of(SegmentId::MFE);
        if let Some(mf) = h.master_file {
            admin.master_file_id = mf.file_id;
            admin.file_event_code = mf.file_event_code;
            for rec in mf.records {
                let code = rec.event_code.unwrap_or_default();
                let action = MasterFileRecord::action(&code).map(str::to_string);
                admin.records.push(Default::default());
                if let Some(r) = admin.records.last_mut() {
                    r.event_code = code;
                    r.action = action;
                    r.primary_key = rec.primary_key;
                }
            }
        }
    }
    ev
}

/// MSH-9 as the CONTRACT (§2) wants it: `type^trigger` (`ADT^A01`) and, apart, the
/// structure (`ADT_A01`). The parser renders at most 3 components, so a fourth never appears.
fn split_type(msh9: &str) -> (String, Option<String>) {
    let mut parts = msh9.splitn(3, '^');
    let code = parts.next().unwrap_or("");
    let trigger = parts.next().filter(|t| !t.is_empty());
    let structure = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let ty = match trigger {
        Some(t) => format!("{code}^{t}"),
        None => code.to_string(),
    };
    (ty, structure)
}

#[cfg(test)]
mod tests {
    use super::{split_type, Hl7Anomaly};

    /// CONTRACT §2: `message_type` is type^trigger; the structure goes apart.
    #[test]
    fn msh9_splits_into_type_and_structure() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("ADT^A01^ADT_A01", "ADT^A01", Some("ADT_A01")),
            ("ADT^A01", "ADT^A01", None),
            ("ACK", "ACK", None),
            ("ACK^^ACK", "ACK", Some("ACK")),
            ("ORU^R01^", "ORU^R01", None),
            ("", "", None),
        ];
        for (msh9, ty, st) in cases {
            let (t, s) = split_type(msh9);
            assert_eq!((t.as_str(), s.as_deref()), (*ty, *st), "{msh9}");
        }
    }

    /// The names are the CONTRACT's (events and `pacstap_anomalies_total` labels): pinned here
    /// so a renamed variant cannot change them.
    #[test]
    fn anomaly_names_are_fixed() {
        crate::anomaly::check::names(
            Hl7Anomaly::ALL,
            &[
                "hl7.resync",
                "hl7.gap",
                "hl7.message_too_large",
                "hl7.missing_msh",
                "hl7.malformed_msh",
                "hl7.ack_without_message",
                "hl7.bad_framing",
                "hl7.missing_end_block",
                "hl7.truncated_message",
                "hl7.too_many_outstanding",
                "hl7.memory_budget",
            ],
        );
    }
}
