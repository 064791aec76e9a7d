//! DICOM test builders: real PDUs (written by dicom-ul), command sets and data sets.

use crate::dicom::dataset::TransferSyntax;
use dicom_dictionary_std::tags;
use dicom_ul::pdu::{
    self as ul, AssociationAC, AssociationRQ, Pdu, PresentationContextProposed, PresentationContextResult,
    PresentationContextResultReason, UserIdentity, UserIdentityType, UserVariableItem,
};

pub const CT_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const FIND_STUDY: &str = "1.2.840.10008.5.1.4.1.2.2.1";
pub const MOVE_STUDY: &str = "1.2.840.10008.5.1.4.1.2.2.2";
pub const GET_STUDY: &str = "1.2.840.10008.5.1.4.1.2.2.3";
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
pub const IMPL_UID: &str = "1.2.826.0.1.3680043.9.7433.1";
pub const STUDY_A: &str = "1.2.826.0.1.3680043.2.1125.1";
pub const STUDY_B: &str = "1.2.826.0.1.3680043.2.1125.2";

fn write(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    ul::write_pdu(&mut out, pdu).expect("test PDU encodes");
    out
}

/// A-ASSOCIATE-RQ with max length 16384, implementation class/version and an optional
/// user identity `(type, primary, secondary)`.
pub fn associate_rq(
    calling: &str,
    called: &str,
    contexts: &[(u8, &str, &[&str])],
    identity: Option<(u8, &str, &str)>,
) -> Vec<u8> {
    let mut user_variables = vec![
        UserVariableItem::MaxLength(16384),
        UserVariableItem::ImplementationClassUID(IMPL_UID.into()),
        UserVariableItem::ImplementationVersionName("PACSTAP_TEST".into()),
    ];
    if let Some((kind, primary, secondary)) = identity {
        let t = match kind {
            1 => UserIdentityType::Username,
            2 => UserIdentityType::UsernamePassword,
            3 => UserIdentityType::KerberosServiceTicket,
            4 => UserIdentityType::SamlAssertion,
            _ => UserIdentityType::Jwt,
        };
        user_variables.push(UserVariableItem::UserIdentityItem(UserIdentity::new(
            true,
            t,
            primary.as_bytes().to_vec(),
            secondary.as_bytes().to_vec(),
        )));
    }
    write(&Pdu::AssociationRQ(AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling.into(),
        called_ae_title: called.into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: contexts
            .iter()
            .map(|(id, a, ts)| PresentationContextProposed {
                id: *id,
                abstract_syntax: (*a).into(),
                transfer_syntaxes: ts.iter().map(|t| (*t).to_string()).collect(),
            })
            .collect(),
        user_variables,
    }))
}

/// A-ASSOCIATE-AC with `(id, result, transfer syntax)` per context and a user identity
/// server response sub-item.
pub fn associate_ac(results: &[(u8, u8, &str)]) -> Vec<u8> {
    write(&Pdu::AssociationAC(AssociationAC {
        protocol_version: 1,
        calling_ae_title: "MODALITY1".into(),
        called_ae_title: "PACS".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: results
            .iter()
            .map(|(id, r, ts)| PresentationContextResult {
                id: *id,
                reason: match r {
                    0 => PresentationContextResultReason::Acceptance,
                    1 => PresentationContextResultReason::UserRejection,
                    2 => PresentationContextResultReason::NoReason,
                    3 => PresentationContextResultReason::AbstractSyntaxNotSupported,
                    _ => PresentationContextResultReason::TransferSyntaxesNotSupported,
                },
                transfer_syntax: (*ts).into(),
            })
            .collect(),
        user_variables: vec![
            UserVariableItem::MaxLength(16384),
            UserVariableItem::Unknown(0x59, vec![0, 0]),
        ],
    }))
}

pub fn associate_rj(result: u8, source: u8, reason: u8) -> Vec<u8> {
    vec![3, 0, 0, 0, 0, 4, 0, result, source, reason]
}

pub fn release_rq() -> Vec<u8> {
    vec![5, 0, 0, 0, 0, 4, 0, 0, 0, 0]
}

pub fn release_rp() -> Vec<u8> {
    vec![6, 0, 0, 0, 0, 4, 0, 0, 0, 0]
}

pub fn abort(source: u8, reason: u8) -> Vec<u8> {
    vec![7, 0, 0, 0, 0, 4, 0, 0, source, reason]
}

/// P-DATA-TF with `(context id, message control header, value)` items.
pub fn pdata(items: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let body_len: usize = items.iter().map(|(_, _, v)| 6 + v.len()).sum();
    let mut out = vec![4, 0];
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    for (pc, mch, v) in items {
        out.extend_from_slice(&((v.len() + 2) as u32).to_be_bytes());
        out.push(*pc);
        out.push(*mch);
        out.extend_from_slice(v);
    }
    out
}

/// A command set value.
pub enum V<'a> {
    Us(u16),
    Str(&'a str),
}

/// Implicit VR LE command set with (0000,0000) group length first.
pub fn command(elements: &[(u16, V<'_>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (el, v) in elements {
        let bytes = match v {
            V::Us(n) => n.to_le_bytes().to_vec(),
            V::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                if b.len() % 2 == 1 {
                    b.push(if *el == 0x0600 || *el == 0x1030 { b' ' } else { 0 });
                }
                b
            }
        };
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&el.to_le_bytes());
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&bytes);
    }
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn cmd_store_rq(id: u16, sop_instance: &str) -> Vec<u8> {
    command(&[
        (tags::AFFECTED_SOP_CLASS_UID.1, V::Str(CT_STORAGE)),
        (tags::COMMAND_FIELD.1, V::Us(0x0001)),
        (tags::MESSAGE_ID.1, V::Us(id)),
        (tags::PRIORITY.1, V::Us(0)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(0x0000)),
        (tags::AFFECTED_SOP_INSTANCE_UID.1, V::Str(sop_instance)),
    ])
}

pub fn cmd_echo_rq(id: u16) -> Vec<u8> {
    command(&[
        (tags::AFFECTED_SOP_CLASS_UID.1, V::Str(VERIFICATION)),
        (tags::COMMAND_FIELD.1, V::Us(0x0030)),
        (tags::MESSAGE_ID.1, V::Us(id)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(0x0101)),
    ])
}

pub fn cmd_find_rq(id: u16) -> Vec<u8> {
    command(&[
        (tags::AFFECTED_SOP_CLASS_UID.1, V::Str(FIND_STUDY)),
        (tags::COMMAND_FIELD.1, V::Us(0x0020)),
        (tags::MESSAGE_ID.1, V::Us(id)),
        (tags::PRIORITY.1, V::Us(0)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(0x0000)),
    ])
}

pub fn cmd_move_rq(id: u16, dest: &str) -> Vec<u8> {
    command(&[
        (tags::AFFECTED_SOP_CLASS_UID.1, V::Str(MOVE_STUDY)),
        (tags::COMMAND_FIELD.1, V::Us(0x0021)),
        (tags::MESSAGE_ID.1, V::Us(id)),
        (tags::MOVE_DESTINATION.1, V::Str(dest)),
        (tags::PRIORITY.1, V::Us(0)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(0x0000)),
    ])
}

pub fn cmd_get_rq(id: u16) -> Vec<u8> {
    command(&[
        (tags::AFFECTED_SOP_CLASS_UID.1, V::Str(GET_STUDY)),
        (tags::COMMAND_FIELD.1, V::Us(0x0010)),
        (tags::MESSAGE_ID.1, V::Us(id)),
        (tags::PRIORITY.1, V::Us(0)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(0x0000)),
    ])
}

/// A response; `subops` = (remaining, completed, failed, warning).
pub fn cmd_rsp(field: u16, id: u16, status: u16, subops: Option<(u16, u16, u16, u16)>) -> Vec<u8> {
    cmd_rsp_ds(field, id, status, subops, false)
}

pub fn cmd_rsp_ds(field: u16, id: u16, status: u16, subops: Option<(u16, u16, u16, u16)>, ds: bool) -> Vec<u8> {
    let mut e = vec![
        (tags::COMMAND_FIELD.1, V::Us(field)),
        (tags::MESSAGE_ID_BEING_RESPONDED_TO.1, V::Us(id)),
        (tags::COMMAND_DATA_SET_TYPE.1, V::Us(if ds { 0 } else { 0x0101 })),
        (tags::STATUS.1, V::Us(status)),
    ];
    if let Some((r, c, f, w)) = subops {
        e.extend([
            (tags::NUMBER_OF_REMAINING_SUBOPERATIONS.1, V::Us(r)),
            (tags::NUMBER_OF_COMPLETED_SUBOPERATIONS.1, V::Us(c)),
            (tags::NUMBER_OF_FAILED_SUBOPERATIONS.1, V::Us(f)),
            (tags::NUMBER_OF_WARNING_SUBOPERATIONS.1, V::Us(w)),
        ]);
    }
    command(&e)
}

/// Builds a data set in a transfer syntax; values are padded to even length.
pub struct DatasetBuilder {
    ts: TransferSyntax,
    buf: Vec<u8>,
}

impl DatasetBuilder {
    pub fn new(ts: TransferSyntax) -> Self {
        DatasetBuilder { ts, buf: Vec::new() }
    }

    fn big(&self) -> bool {
        self.ts == TransferSyntax::ExplicitVrBigEndian
    }

    fn explicit(&self) -> bool {
        self.ts != TransferSyntax::ImplicitVrLittleEndian
    }

    fn u16(&mut self, v: u16) {
        let b = if self.big() { v.to_be_bytes() } else { v.to_le_bytes() };
        self.buf.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.big() { v.to_be_bytes() } else { v.to_le_bytes() };
        self.buf.extend_from_slice(&b);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn el(&mut self, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
        let mut v = value.to_vec();
        if v.len() % 2 == 1 {
            v.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
        }
        self.u16(group);
        self.u16(element);
        if self.explicit() {
            self.buf.extend_from_slice(vr);
            if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
                self.u16(0);
                self.u32(v.len() as u32);
            } else {
                self.u16(v.len() as u16);
            }
        } else {
            self.u32(v.len() as u32);
        }
        self.buf.extend_from_slice(&v);
    }

    pub fn seq_undefined(&mut self, group: u16, element: u16, item: impl FnOnce(&mut DatasetBuilder)) {
        self.u16(group);
        self.u16(element);
        if self.explicit() {
            self.buf.extend_from_slice(b"SQ");
            self.u16(0);
        }
        self.u32(u32::MAX);
        self.u16(0xFFFE);
        self.u16(0xE000);
        self.u32(u32::MAX);
        let mut inner = DatasetBuilder {
            ts: self.ts,
            buf: Vec::new(),
        };
        item(&mut inner);
        self.buf.extend_from_slice(&inner.buf);
        for e in [0xE00D, 0xE0DD] {
            self.u16(0xFFFE);
            self.u16(e);
            self.u32(0);
        }
    }

    pub fn finish(self) -> Vec<u8> {
        if self.ts == TransferSyntax::DeflatedExplicitVrLittleEndian {
            deflate(&self.buf)
        } else {
            self.buf
        }
    }
}

pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("in-memory write");
    e.finish().expect("in-memory write")
}

/// A C-STORE data set: SOP instance, modality, patient name (must never leak), study UID,
/// then `pixel_len` bytes of OW pixel data.
pub fn store_dataset(ts: TransferSyntax, sop_instance: &str, study: &str, pixel_len: usize) -> Vec<u8> {
    let mut ds = DatasetBuilder::new(ts);
    ds.el(0x0008, 0x0016, b"UI", CT_STORAGE.as_bytes());
    ds.el(0x0008, 0x0018, b"UI", sop_instance.as_bytes());
    ds.el(0x0008, 0x0060, b"CS", b"CT");
    ds.el(0x0010, 0x0010, b"PN", b"DOE^JANE");
    ds.el(0x0010, 0x0020, b"LO", b"PATIENT-ID-42");
    ds.el(0x0020, 0x000D, b"UI", study.as_bytes());
    ds.el(0x7FE0, 0x0010, b"OW", &vec![0xA5; pixel_len]);
    ds.finish()
}

/// A C-FIND/C-MOVE/C-GET identifier at STUDY level.
pub fn identifier(ts: TransferSyntax, level: &str, studies: &str) -> Vec<u8> {
    let mut ds = DatasetBuilder::new(ts);
    ds.el(0x0008, 0x0052, b"CS", level.as_bytes());
    ds.el(0x0010, 0x0010, b"PN", b"DOE^JANE");
    ds.el(0x0020, 0x000D, b"UI", studies.as_bytes());
    ds.finish()
}

/// The Study Instance UID of [`part10_file`].
pub const PART10_STUDY: &str = "1.2.826.0.1.3680043.10.1234.20.1";

/// A DICOM file (PS3.10: preamble, `DICM`, meta group, data set) that dicom-object writes (not
/// our encoder) in transfer syntax `ts`, of study [`PART10_STUDY`], with a patient name before it.
pub fn part10_file(ts: &str) -> Vec<u8> {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let mut obj = InMemDicomObject::new_empty();
    obj.put_str(tags::SOP_CLASS_UID, VR::UI, CT_STORAGE);
    obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5");
    obj.put_str(tags::MODALITY, VR::CS, "CT");
    obj.put_str(tags::PATIENT_NAME, VR::PN, "DOE^JOHN");
    obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, PART10_STUDY);
    obj.put_str(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.6");
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(CT_STORAGE)
        .media_storage_sop_instance_uid("1.2.3.4.5");
    let mut out = Vec::new();
    obj.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}
