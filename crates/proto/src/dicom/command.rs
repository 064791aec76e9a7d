//! DIMSE command sets (PS3.7 §E.1, §9.3, §10.3): a small hand scan of group 0000.
//!
//! A command set is always encoded in Implicit VR Little Endian (PS3.7 §6.3.1): tag group (2),
//! element (2), value length (4), value. We read the handful of elements the tap reports and
//! skip the rest; values are borrowed from the reassembled command buffer, never copied.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use std::borrow::Cow;
use std::fmt;

/// The element number of a group-0000 tag of the standard dictionary: the scan compares
/// (group, element) numbers read from the wire, the dictionary names them.
const fn element(tag: Tag) -> u16 {
    tag.1
}

/// Command elements (PS3.7 §E.1, Table E.1-1) the scan reads, all in group 0000.
const COMMAND_GROUP: u16 = tags::COMMAND_FIELD.0;
const AFFECTED_SOP_CLASS_UID: u16 = element(tags::AFFECTED_SOP_CLASS_UID);
const REQUESTED_SOP_CLASS_UID: u16 = element(tags::REQUESTED_SOP_CLASS_UID);
const COMMAND_FIELD: u16 = element(tags::COMMAND_FIELD);
const MESSAGE_ID: u16 = element(tags::MESSAGE_ID);
const MESSAGE_ID_BEING_RESPONDED_TO: u16 = element(tags::MESSAGE_ID_BEING_RESPONDED_TO);
const MOVE_DESTINATION: u16 = element(tags::MOVE_DESTINATION);
const PRIORITY: u16 = element(tags::PRIORITY);
const COMMAND_DATA_SET_TYPE: u16 = element(tags::COMMAND_DATA_SET_TYPE);
const STATUS: u16 = element(tags::STATUS);
const AFFECTED_SOP_INSTANCE_UID: u16 = element(tags::AFFECTED_SOP_INSTANCE_UID);
const REQUESTED_SOP_INSTANCE_UID: u16 = element(tags::REQUESTED_SOP_INSTANCE_UID);
const REMAINING: u16 = element(tags::NUMBER_OF_REMAINING_SUBOPERATIONS);
const COMPLETED: u16 = element(tags::NUMBER_OF_COMPLETED_SUBOPERATIONS);
const FAILED: u16 = element(tags::NUMBER_OF_FAILED_SUBOPERATIONS);
const WARNING: u16 = element(tags::NUMBER_OF_WARNING_SUBOPERATIONS);
const MOVE_ORIGINATOR_AE: u16 = element(tags::MOVE_ORIGINATOR_APPLICATION_ENTITY_TITLE);
const MOVE_ORIGINATOR_MESSAGE_ID: u16 = element(tags::MOVE_ORIGINATOR_MESSAGE_ID);

/// Command Field values (PS3.7 §E.1, Table E.1-1; responses have bit 15 set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandField(pub u16);

impl CommandField {
    pub const C_STORE: u16 = 0x0001;
    pub const C_GET: u16 = 0x0010;
    pub const C_FIND: u16 = 0x0020;
    pub const C_MOVE: u16 = 0x0021;
    pub const C_ECHO: u16 = 0x0030;
    pub const N_EVENT_REPORT: u16 = 0x0100;
    pub const N_GET: u16 = 0x0110;
    pub const N_SET: u16 = 0x0120;
    pub const N_ACTION: u16 = 0x0130;
    pub const N_CREATE: u16 = 0x0140;
    pub const N_DELETE: u16 = 0x0150;
    pub const C_CANCEL: u16 = 0x0FFF;
    /// Bit 15 marks a response (e.g. C-STORE-RSP = 8001H).
    pub const RESPONSE_BIT: u16 = 0x8000;

    pub fn is_response(self) -> bool {
        self.0 & Self::RESPONSE_BIT != 0
    }

    /// The request this is (or answers), without the response bit.
    pub fn request(self) -> u16 {
        self.0 & !Self::RESPONSE_BIT
    }

    /// A request that always carries a data set: the object of a C-STORE, the identifier of a
    /// C-FIND, C-GET or C-MOVE (PS3.7 §9.3.1-9.3.4).
    pub fn request_carries_data_set(self) -> bool {
        matches!(self.0, Self::C_STORE | Self::C_FIND | Self::C_GET | Self::C_MOVE)
    }

    /// A command whose responses may be pending ones (PS3.7 §9.3: only C-FIND, C-GET and
    /// C-MOVE answer with FF00H / FF01H before their final response).
    pub fn may_answer_pending(self) -> bool {
        matches!(self.request(), Self::C_FIND | Self::C_GET | Self::C_MOVE)
    }
}

/// Name of a command (request code; the response bit is ignored): `C-STORE`, …, or `0x1234`.
pub fn command_name(field: u16) -> Cow<'static, str> {
    let name = match field & !CommandField::RESPONSE_BIT {
        CommandField::C_STORE => "C-STORE",
        CommandField::C_GET => "C-GET",
        CommandField::C_FIND => "C-FIND",
        CommandField::C_MOVE => "C-MOVE",
        CommandField::C_ECHO => "C-ECHO",
        CommandField::N_EVENT_REPORT => "N-EVENT-REPORT",
        CommandField::N_GET => "N-GET",
        CommandField::N_SET => "N-SET",
        CommandField::N_ACTION => "N-ACTION",
        CommandField::N_CREATE => "N-CREATE",
        CommandField::N_DELETE => "N-DELETE",
        CommandField::C_CANCEL => "C-CANCEL",
        _ => return Cow::Owned(format!("0x{field:04X}")),
    };
    Cow::Borrowed(name)
}

/// Command Data Set Type (0000,0800) value meaning "no data set" (PS3.7 §E.1: "0101H … Any
/// other value shall indicate a Data Set is present").
pub const NO_DATA_SET: u16 = 0x0101;

/// The command elements the tap reads; string values are borrowed, untrimmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandSet<'a> {
    /// (0000,0100)
    pub command_field: u16,
    /// (0000,0110)
    pub message_id: Option<u16>,
    /// (0000,0120)
    pub message_id_responded_to: Option<u16>,
    /// (0000,0002)
    pub affected_sop_class_uid: Option<&'a [u8]>,
    /// (0000,0003)
    pub requested_sop_class_uid: Option<&'a [u8]>,
    /// (0000,1000)
    pub affected_sop_instance_uid: Option<&'a [u8]>,
    /// (0000,1001)
    pub requested_sop_instance_uid: Option<&'a [u8]>,
    /// (0000,0600)
    pub move_destination: Option<&'a [u8]>,
    /// (0000,0700)
    pub priority: Option<u16>,
    /// (0000,0800)
    pub data_set_type: Option<u16>,
    /// (0000,0900)
    pub status: Option<u16>,
    /// (0000,1020)
    pub remaining: Option<u16>,
    /// (0000,1021)
    pub completed: Option<u16>,
    /// (0000,1022)
    pub failed: Option<u16>,
    /// (0000,1023)
    pub warning: Option<u16>,
    /// (0000,1030)
    pub move_originator_ae: Option<&'a [u8]>,
    /// (0000,1031)
    pub move_originator_message_id: Option<u16>,
    /// Something odd that did not stop the scan (e.g. an element outside group 0000, a
    /// truncated last element): reported as `dicom.malformed_command`, the command still counts.
    pub irregular: Option<MalformedCommand>,
}

impl CommandSet<'_> {
    pub fn field(&self) -> CommandField {
        CommandField(self.command_field)
    }

    /// A data set follows (PS3.7 §E.1, (0000,0800)). Absent counts as none.
    pub fn has_data_set(&self) -> bool {
        self.data_set_type.is_some_and(|t| t != NO_DATA_SET)
    }

    /// Any of the sub-operation counts (0000,1020..1023) was present.
    pub fn has_sub_operations(&self) -> bool {
        self.remaining.is_some() || self.completed.is_some() || self.failed.is_some() || self.warning.is_some()
    }
}

/// Why a command set could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedCommand {
    /// An element header or value runs past the end of the command set.
    Truncated { offset: usize },
    /// An element outside group 0000 (PS3.7 §E.1: a command set has only group 0000).
    WrongGroup { offset: usize, group: u16 },
    /// Undefined length (FFFFFFFFH) is not allowed in a command set.
    UndefinedLength { offset: usize },
    /// No Command Field (0000,0100).
    MissingCommandField,
}

impl fmt::Display for MalformedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedCommand::Truncated { offset } => write!(f, "element at offset {offset} is truncated"),
            MalformedCommand::WrongGroup { offset, group } => {
                write!(f, "element of group {group:04X} at offset {offset}")
            }
            MalformedCommand::UndefinedLength { offset } => write!(f, "undefined length at offset {offset}"),
            MalformedCommand::MissingCommandField => {
                let Tag(group, element) = tags::COMMAND_FIELD;
                write!(f, "no command field ({group:04X},{element:04X})")
            }
        }
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Length of a whole command set at the start of `data`, when `data` begins with one and holds
/// it all: its Command Group Length element (0000,0000), UL, implicit VR little endian as every
/// command set is (PS3.7 §6.3.1), followed by `length` bytes that parse as a command set with
/// nothing irregular. `None` otherwise.
///
/// Why: capture loss takes whole segments, and DICOM toolkits (dcmtk, Orthanc) send a P-DATA-TF's
/// PDU and PDV headers (12 bytes) in a segment of their own. When that segment is lost the next
/// byte after the gap is the command set itself, which the PDU walker would skip while looking
/// for the next PDU header, and the command (a C-MOVE-RQ or its final response) would be gone.
/// A data set never starts with group 0000 (PS3.5 §7.1: that group is for commands), and the
/// whole set must parse, so bytes that only look like a group length at a gap's end are not
/// taken for one.
pub fn headless_command_len(data: &[u8], max: usize) -> Option<usize> {
    // (0000,0000), value length 4 (UL), then the value: the bytes after it.
    let first = (le_u16(data, 0)?, le_u16(data, 2)?, le_u32(data, 4)?);
    if first != (COMMAND_GROUP, element(tags::COMMAND_GROUP_LENGTH), 4) {
        return None;
    }
    let total = 12usize.checked_add(le_u32(data, 8)? as usize)?;
    if total > max {
        return None;
    }
    let set = data.get(..total)?;
    match parse_command_set(set) {
        Ok(cmd) if cmd.irregular.is_none() => Some(total),
        _ => None,
    }
}

/// Scan a complete command set. Stops at the first element it cannot trust (recorded in
/// `irregular`); fails only when no Command Field was found before that point.
pub fn parse_command_set(buf: &[u8]) -> Result<CommandSet<'_>, MalformedCommand> {
    let mut cmd = CommandSet::default();
    let mut field = None;
    let mut at = 0usize;
    while at < buf.len() {
        let (Some(group), Some(element), Some(len)) = (le_u16(buf, at), le_u16(buf, at + 2), le_u32(buf, at + 4))
        else {
            cmd.irregular = Some(MalformedCommand::Truncated { offset: at });
            break;
        };
        if group != COMMAND_GROUP {
            cmd.irregular = Some(MalformedCommand::WrongGroup { offset: at, group });
            break;
        }
        if len == u32::MAX {
            cmd.irregular = Some(MalformedCommand::UndefinedLength { offset: at });
            break;
        }
        let start = at + 8;
        let Some(value) = start.checked_add(len as usize).and_then(|end| buf.get(start..end)) else {
            cmd.irregular = Some(MalformedCommand::Truncated { offset: at });
            break;
        };
        let us = le_u16(value, 0);
        match element {
            AFFECTED_SOP_CLASS_UID => cmd.affected_sop_class_uid = Some(value),
            REQUESTED_SOP_CLASS_UID => cmd.requested_sop_class_uid = Some(value),
            COMMAND_FIELD => field = us,
            MESSAGE_ID => cmd.message_id = us,
            MESSAGE_ID_BEING_RESPONDED_TO => cmd.message_id_responded_to = us,
            MOVE_DESTINATION => cmd.move_destination = Some(value),
            PRIORITY => cmd.priority = us,
            COMMAND_DATA_SET_TYPE => cmd.data_set_type = us,
            STATUS => cmd.status = us,
            AFFECTED_SOP_INSTANCE_UID => cmd.affected_sop_instance_uid = Some(value),
            REQUESTED_SOP_INSTANCE_UID => cmd.requested_sop_instance_uid = Some(value),
            REMAINING => cmd.remaining = us,
            COMPLETED => cmd.completed = us,
            FAILED => cmd.failed = us,
            WARNING => cmd.warning = us,
            MOVE_ORIGINATOR_AE => cmd.move_originator_ae = Some(value),
            MOVE_ORIGINATOR_MESSAGE_ID => cmd.move_originator_message_id = us,
            _ => {}
        }
        at = start + value.len();
    }
    match field {
        Some(f) => {
            cmd.command_field = f;
            Ok(cmd)
        }
        None => Err(cmd.irregular.unwrap_or(MalformedCommand::MissingCommandField)),
    }
}

/// Command values are padded: UI with NUL, AE with spaces (PS3.5 §6.2, §9.1).
pub fn text(value: &[u8]) -> String {
    crate::dicom::parser::clean_text(&String::from_utf8_lossy(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names this decoder writes are exactly core's list, which metrics label by.
    #[test]
    fn command_names_are_the_vocabulary_metrics_use() {
        let mut named: Vec<String> = (0..=u16::MAX)
            .map(command_name)
            .filter(|n| !n.starts_with("0x"))
            .map(|n| n.into_owned())
            .collect();
        named.sort();
        named.dedup();
        let mut vocab: Vec<String> = pacstap_core::vocab::DIMSE_COMMANDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        vocab.sort();
        assert_eq!(named, vocab);
    }
    use crate::testutil::*;

    /// The dictionary's tags are the PS3.7 Table E.1-1 numbers the wire carries, and the
    /// anomaly detail that names one reads as before.
    #[test]
    fn command_elements_are_the_dictionary_tags() {
        assert_eq!(
            (COMMAND_GROUP, COMMAND_FIELD, MESSAGE_ID, STATUS, MOVE_ORIGINATOR_AE),
            (0x0000, 0x0100, 0x0110, 0x0900, 0x1030)
        );
        assert_eq!(
            (REMAINING, COMPLETED, FAILED, WARNING),
            (0x1020, 0x1021, 0x1022, 0x1023)
        );
        assert_eq!(
            MalformedCommand::MissingCommandField.to_string(),
            "no command field (0000,0100)"
        );
    }

    #[test]
    fn names() {
        assert_eq!(command_name(0x0001), "C-STORE");
        assert_eq!(command_name(0x8021), "C-MOVE");
        assert_eq!(command_name(0x0FFF), "C-CANCEL");
        assert_eq!(command_name(0x0150), "N-DELETE");
        assert_eq!(command_name(0x0042), "0x0042");
        assert!(CommandField(0x8001).is_response());
        assert_eq!(CommandField(0x8001).request(), 1);
    }

    #[test]
    fn parses_move_request_and_response() {
        let rq = cmd_move_rq(7, "ARCHIVE");
        let c = parse_command_set(&rq).unwrap();
        assert_eq!(c.command_field, 0x0021);
        assert_eq!(c.message_id, Some(7));
        assert_eq!(text(c.move_destination.unwrap()), "ARCHIVE");
        assert_eq!(text(c.affected_sop_class_uid.unwrap()), MOVE_STUDY);
        assert!(c.has_data_set());
        assert_eq!(c.irregular, None);

        let rsp = cmd_rsp(0x8021, 7, 0x0000, Some((0, 12, 1, 2)));
        let c = parse_command_set(&rsp).unwrap();
        assert!(c.field().is_response());
        assert_eq!(c.message_id_responded_to, Some(7));
        assert_eq!(
            (c.completed, c.failed, c.warning, c.remaining),
            (Some(12), Some(1), Some(2), Some(0))
        );
        assert!(!c.has_data_set());
    }

    #[test]
    fn irregular_commands() {
        assert_eq!(parse_command_set(&[]), Err(MalformedCommand::MissingCommandField));
        let rq = cmd_store_rq(3, "1.2.3.4");
        // Cut the last element short: the fields before it still come back.
        let c = parse_command_set(&rq[..rq.len() - 3]).unwrap();
        assert_eq!(c.command_field, 1);
        assert!(matches!(c.irregular, Some(MalformedCommand::Truncated { .. })));
        // Only a truncated header.
        assert!(parse_command_set(&rq[..5]).is_err());
        // Undefined length.
        let mut bad = rq.clone();
        bad[4..8].copy_from_slice(&[0xFF; 4]);
        assert!(matches!(
            parse_command_set(&bad),
            Err(MalformedCommand::UndefinedLength { offset: 0 })
        ));
        // Element of another group after the command field.
        let mut other = rq.clone();
        other.extend_from_slice(&[0x08, 0, 0x18, 0, 2, 0, 0, 0, b'1', 0]);
        assert!(matches!(
            parse_command_set(&other).unwrap().irregular,
            Some(MalformedCommand::WrongGroup { .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(11);
        for _ in 0..20_000 {
            let n = (rng.next() % 200) as usize;
            let mut buf: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if buf.len() > 4 {
                buf[0] = 0;
                buf[1] = 0;
            }
            let _ = parse_command_set(&buf);
        }
    }
}
