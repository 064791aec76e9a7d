//! Pure DICOM Upper Layer parsing (PS3.8 §9.3): bytes in, values out, no state.
//!
//! Everything here takes a slice and returns a `#[must_use]` status; nothing allocates except
//! the A-ASSOCIATE decoding handed to dicom-ul, and nothing trusts a length field without
//! checking it against the slice. The streaming state machine that strings these together
//! across TCP chunks lives in `stream.rs`; fuzz targets and benches call these directly.

use dicom_ul::pdu::{self as ul, Pdu, UserVariableItem};
use std::fmt;

/// PS3.8 §9.3.1: every PDU starts with type (1), reserved (1), length (4, big endian).
pub const PDU_HEADER_LEN: usize = 6;
/// PS3.8 §9.3.5.1: a PDV item starts with item-length (4), presentation-context-ID (1) and the
/// message control header (1, PS3.8 §E.2).
pub const PDV_HEADER_LEN: usize = 6;
/// Longest lookahead any pure check needs: a PDU header plus the first PDV header.
pub const MAX_LOOKAHEAD: usize = PDU_HEADER_LEN + PDV_HEADER_LEN;
/// PS3.8 §9.3.2 / §9.3.3: the fixed part of an A-ASSOCIATE-RQ/AC after the header is
/// protocol-version (2) + reserved (2) + called AE (16) + calling AE (16) + reserved (32).
pub const ASSOCIATE_FIXED_LEN: usize = 68;
/// PS3.8 §9.3.2: the A-ASSOCIATE-RQ's AE titles end this many bytes after the header
/// (protocol-version, reserved, called AE, calling AE).
pub const ASSOCIATE_AE_TITLES_END: usize = 36;
/// Largest P-DATA-TF PDU accepted as plausible while *resynchronising* (never a cap on normal
/// parsing, which streams P-DATA of any length). Real implementations negotiate maximum PDU
/// lengths of 16 KiB (DCMTK, Orthanc defaults) to a few MiB; 64 MiB leaves a wide margin while
/// still rejecting most random 32-bit lengths found in pixel data.
pub const RESYNC_MAX_PDATA_LEN: u32 = 64 << 20;
/// Presentation-context IDs are odd numbers 1..=255 (PS3.8 §9.3.2.2), so at most 128 exist;
/// a hostile RQ may repeat them, so we keep at most twice that.
pub const MAX_PRESENTATION_CONTEXTS: usize = 256;

/// Result of one step of a streaming parser (ARCHITECTURE: `proto`).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseStatus {
    /// A unit (header, PDU, fragment) was handled using `consumed` bytes.
    Done { consumed: usize },
    /// `consumed` bytes were taken into lookahead/buffers; at least `needed` more are required.
    NeedMore { consumed: usize, needed: usize },
    /// `bytes` were passed over without being looked at (payload we do not need).
    Skip { bytes: usize },
    /// The input does not line up with the protocol: resynchronise.
    Desync,
}

/// Result of a pure parse of one structure from the front of a slice.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    Done {
        value: T,
        consumed: usize,
    },
    /// The slice is too short; `needed` more bytes are required.
    NeedMore {
        needed: usize,
    },
    /// The bytes cannot be this structure.
    Desync,
}

/// PDU type codes (PS3.8 §9.3.1, Table 9-11). Unknown codes are kept (ARCHITECTURE rule 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PduType(pub u8);

impl PduType {
    pub const ASSOCIATE_RQ: PduType = PduType(0x01);
    pub const ASSOCIATE_AC: PduType = PduType(0x02);
    pub const ASSOCIATE_RJ: PduType = PduType(0x03);
    pub const P_DATA_TF: PduType = PduType(0x04);
    pub const RELEASE_RQ: PduType = PduType(0x05);
    pub const RELEASE_RP: PduType = PduType(0x06);
    pub const ABORT: PduType = PduType(0x07);

    pub fn is_known(self) -> bool {
        (0x01..=0x07).contains(&self.0)
    }

    /// Every known PDU except P-DATA-TF: small, buffered whole and decoded.
    pub fn is_control(self) -> bool {
        self.is_known() && self != PduType::P_DATA_TF
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0x01 => "A-ASSOCIATE-RQ",
            0x02 => "A-ASSOCIATE-AC",
            0x03 => "A-ASSOCIATE-RJ",
            0x04 => "P-DATA-TF",
            0x05 => "A-RELEASE-RQ",
            0x06 => "A-RELEASE-RP",
            0x07 => "A-ABORT",
            _ => "unknown",
        }
    }
}

/// The 6-byte PDU header (PS3.8 §9.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduHeader {
    /// Byte 1.
    pub pdu_type: PduType,
    /// Byte 2: "shall be sent with a value 00H but not tested to this value when received".
    pub reserved: u8,
    /// Bytes 3-6: number of bytes after the header, unsigned big endian.
    pub length: u32,
}

impl PduHeader {
    /// Header plus body.
    pub fn total_len(&self) -> u64 {
        PDU_HEADER_LEN as u64 + u64::from(self.length)
    }
}

/// The 6-byte PDV item header (PS3.8 §9.3.5.1, §E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdvHeader {
    /// Bytes 1-4: from the presentation-context-ID to the end of the value (so ≥ 2).
    pub item_length: u32,
    /// Byte 5: odd, 1..=255 (PS3.8 §9.3.2.2).
    pub context_id: u8,
    /// Byte 6: message control header (PS3.8 §E.2): bit 0 command/data set, bit 1 last fragment.
    pub control: u8,
}

impl PdvHeader {
    /// §E.2 bit 0 = 1: the fragment carries command information.
    pub fn is_command(&self) -> bool {
        self.control & 0x01 != 0
    }

    /// §E.2 bit 1 = 1: the last fragment of the command or data set.
    pub fn is_last(&self) -> bool {
        self.control & 0x02 != 0
    }

    /// Bytes of message fragment after the 2 header bytes counted in `item_length`.
    pub fn value_len(&self) -> u32 {
        self.item_length.saturating_sub(2)
    }
}

fn be_u32(input: &[u8], at: usize) -> Option<u32> {
    let b = input.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        b.first().copied()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

fn be_u16(input: &[u8], at: usize) -> Option<u16> {
    let b = input.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b.first().copied()?, *b.get(1)?]))
}

/// Parse a PDU header from the front of `input`. Any 6 bytes form a header; validating the
/// type and length is the caller's decision (normal parse vs. resynchronisation differ).
pub fn parse_pdu_header(input: &[u8]) -> Parsed<PduHeader> {
    match (input.first(), input.get(1), be_u32(input, 2)) {
        (Some(&t), Some(&reserved), Some(length)) => Parsed::Done {
            value: PduHeader {
                pdu_type: PduType(t),
                reserved,
                length,
            },
            consumed: PDU_HEADER_LEN,
        },
        _ => Parsed::NeedMore {
            needed: PDU_HEADER_LEN - input.len().min(PDU_HEADER_LEN),
        },
    }
}

/// Parse a PDV item header from the front of `input`; `Desync` if the item length is below the
/// 2 bytes its own header fields take.
pub fn parse_pdv_header(input: &[u8]) -> Parsed<PdvHeader> {
    match (be_u32(input, 0), input.get(4), input.get(5)) {
        (Some(item_length), Some(&context_id), Some(&control)) => {
            if item_length < 2 {
                Parsed::Desync
            } else {
                Parsed::Done {
                    value: PdvHeader {
                        item_length,
                        context_id,
                        control,
                    },
                    consumed: PDV_HEADER_LEN,
                }
            }
        }
        _ => Parsed::NeedMore {
            needed: PDV_HEADER_LEN - input.len().min(PDV_HEADER_LEN),
        },
    }
}

/// Answer of the cheap content checks used for probing and resynchronisation.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plausible {
    Yes,
    No,
    /// Not decidable from the bytes given: at least `needed` more are required.
    NeedMore {
        needed: usize,
    },
}

fn need(input: &[u8], n: usize) -> Option<Plausible> {
    if input.len() < n {
        Some(Plausible::NeedMore {
            needed: n - input.len(),
        })
    } else {
        None
    }
}

/// Whether `input` starts with something that looks like an A-ASSOCIATE-RQ (PS3.8 §9.3.2):
/// type 01H, reserved byte 0, a length that holds the 68 fixed bytes (any length above that,
/// even over `max_control_pdu`), and protocol-version 0001H (bytes 7-8; version 1 is the only one defined).
/// Decides from at most 8 bytes.
pub fn probe_associate_rq(input: &[u8], max_control_pdu: u32) -> Plausible {
    if let Some(&t) = input.first() {
        if t != PduType::ASSOCIATE_RQ.0 {
            return Plausible::No;
        }
    }
    if let Some(&r) = input.get(1) {
        if r != 0 {
            return Plausible::No;
        }
    }
    if let Some(p) = need(input, PDU_HEADER_LEN) {
        return p;
    }
    let len = be_u32(input, 2).unwrap_or(0);
    // A length over `max_control_pdu` is still an RQ: the decoder reports it
    // (`dicom.pdu_too_large` with the claimed size) and reads its AE titles, rather than the
    // flow vanishing unreported.
    let _ = max_control_pdu;
    if (len as usize) < ASSOCIATE_FIXED_LEN {
        return Plausible::No;
    }
    if let Some(p) = need(input, 8) {
        return p;
    }
    if be_u16(input, 6) == Some(0x0001) {
        Plausible::Yes
    } else {
        Plausible::No
    }
}

/// Whether a PDU header plausibly starts at the front of `input` (used to resynchronise after
/// a gap or when the capture began mid-association). Decides from at most [`MAX_LOOKAHEAD`]
/// bytes. Stricter than normal parsing, so that a hit is always accepted by it:
/// - type 1..=7 and reserved byte 2 = 0 (§9.3.1);
/// - A-ASSOCIATE-RQ/AC: 68 ≤ length ≤ `max_control_pdu`, protocol-version 0001H (§9.3.2–3);
///   for the RQ also printable first two bytes of the called AE title (bytes 11-12);
/// - A-ASSOCIATE-RJ: length 4, result (byte 8) 1..=2, source (byte 9) 1..=3 (§9.3.4);
/// - A-RELEASE-RQ/RP: length 4 (§9.3.6–7);
/// - A-ABORT: length 4, source (byte 9) 0..=2, reason (byte 10) ≤ 6 (§9.3.8);
/// - P-DATA-TF: 12 ≤ length ≤ [`RESYNC_MAX_PDATA_LEN`], first PDV item length ≥ 2 and fits
///   the PDU, presentation-context-ID odd, message control header ≤ 3 (§9.3.5, §E.2).
pub fn plausible_pdu_header(input: &[u8], max_control_pdu: u32) -> Plausible {
    let Some(&t) = input.first() else {
        return Plausible::NeedMore { needed: PDU_HEADER_LEN };
    };
    if !PduType(t).is_known() {
        return Plausible::No;
    }
    match input.get(1) {
        Some(0) => {}
        Some(_) => return Plausible::No,
        None => {
            return Plausible::NeedMore {
                needed: PDU_HEADER_LEN - 1,
            }
        }
    }
    if let Some(p) = need(input, PDU_HEADER_LEN) {
        return p;
    }
    let len = be_u32(input, 2).unwrap_or(0);
    let byte = |i: usize| input.get(i).copied().unwrap_or(0);
    match PduType(t) {
        PduType::ASSOCIATE_RQ | PduType::ASSOCIATE_AC => {
            if (len as usize) < ASSOCIATE_FIXED_LEN || len > max_control_pdu {
                return Plausible::No;
            }
            let wanted = if t == PduType::ASSOCIATE_RQ.0 { 12 } else { 8 };
            if let Some(p) = need(input, wanted) {
                return p;
            }
            if be_u16(input, 6) != Some(0x0001) {
                return Plausible::No;
            }
            if t == PduType::ASSOCIATE_RQ.0 && !(byte(10).is_ascii_graphic() || byte(10) == b' ') {
                return Plausible::No;
            }
            if t == PduType::ASSOCIATE_RQ.0 && !(byte(11).is_ascii_graphic() || byte(11) == b' ') {
                return Plausible::No;
            }
            Plausible::Yes
        }
        PduType::ASSOCIATE_RJ => {
            if len != 4 {
                return Plausible::No;
            }
            if let Some(p) = need(input, 9) {
                return p;
            }
            if (1..=2).contains(&byte(7)) && (1..=3).contains(&byte(8)) {
                Plausible::Yes
            } else {
                Plausible::No
            }
        }
        PduType::RELEASE_RQ | PduType::RELEASE_RP => {
            if len == 4 {
                Plausible::Yes
            } else {
                Plausible::No
            }
        }
        PduType::ABORT => {
            if len != 4 {
                return Plausible::No;
            }
            if let Some(p) = need(input, 10) {
                return p;
            }
            if byte(8) <= 2 && byte(9) <= 6 {
                Plausible::Yes
            } else {
                Plausible::No
            }
        }
        _ => {
            // P-DATA-TF
            if (len as usize) < PDV_HEADER_LEN || len > RESYNC_MAX_PDATA_LEN {
                return Plausible::No;
            }
            if let Some(p) = need(input, MAX_LOOKAHEAD) {
                return p;
            }
            let item = be_u32(input, 6).unwrap_or(0);
            let fits = item >= 2 && u64::from(item) + 4 <= u64::from(len);
            if fits && byte(10) % 2 == 1 && byte(11) <= 3 {
                Plausible::Yes
            } else {
                Plausible::No
            }
        }
    }
}

/// One PDV item of a complete P-DATA-TF body, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pdv<'a> {
    pub header: PdvHeader,
    pub value: &'a [u8],
}

/// A PDV item whose length does not fit the PDU that carries it (PS3.8 §9.3.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPdv {
    /// Offset within the P-DATA-TF body.
    pub offset: usize,
}

/// Iterate over the PDV items of a complete P-DATA-TF body (the bytes after the 6-byte PDU
/// header), without copying. Stops after the first malformed item.
pub fn pdv_items(body: &[u8]) -> PdvItems<'_> {
    PdvItems {
        body,
        offset: 0,
        failed: false,
    }
}

/// See [`pdv_items`].
#[derive(Debug, Clone)]
pub struct PdvItems<'a> {
    body: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for PdvItems<'a> {
    type Item = Result<Pdv<'a>, MalformedPdv>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.body.get(self.offset..)?;
        if rest.is_empty() {
            return None;
        }
        let bad = MalformedPdv { offset: self.offset };
        let header = match parse_pdv_header(rest) {
            Parsed::Done { value, .. } => value,
            Parsed::NeedMore { .. } | Parsed::Desync => {
                self.failed = true;
                return Some(Err(bad));
            }
        };
        let end = PDV_HEADER_LEN.checked_add(header.value_len() as usize);
        match end.and_then(|e| rest.get(PDV_HEADER_LEN..e).map(|v| (e, v))) {
            Some((e, value)) => {
                self.offset += e;
                Some(Ok(Pdv { header, value }))
            }
            None => {
                self.failed = true;
                Some(Err(bad))
            }
        }
    }
}

/// A proposed presentation context (PS3.8 §9.3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedContext {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntaxes: Vec<String>,
}

/// A presentation context result (PS3.8 §9.3.3.2): result 0 = acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    pub id: u8,
    pub result: u8,
    pub transfer_syntax: String,
}

/// User Identity sub-item of an A-ASSOCIATE-RQ (PS3.7 §D.3.3.7.1). The secondary field
/// (passcode) and, for types 3-5, the primary field (ticket, assertion, token) are never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedIdentity {
    /// 1 username, 2 username + passcode, 3 Kerberos, 4 SAML, 5 JWT.
    pub kind: u8,
    pub positive_response_requested: bool,
    /// Types 1 and 2: the primary field (UTF-8 user name), trimmed; type 5 (JWT): the token's
    /// `preferred_username` or `sub` claim (see [`identity_username`]). Never the token.
    pub username: Option<String>,
}

/// A-ASSOCIATE-RQ (PS3.8 §9.3.2), reduced to what the tap reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssociateRq {
    pub protocol_version: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub contexts: Vec<ProposedContext>,
    /// Maximum Length sub-item 51H (PS3.8 §D.1).
    pub max_pdu_length: Option<u32>,
    /// Sub-item 52H (PS3.7 §D.3.3.2).
    pub implementation_class_uid: Option<String>,
    /// Sub-item 55H (PS3.7 §D.3.3.2).
    pub implementation_version_name: Option<String>,
    pub user_identity: Option<RequestedIdentity>,
}

/// A-ASSOCIATE-AC (PS3.8 §9.3.3), reduced to what the tap reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssociateAc {
    pub contexts: Vec<ContextResult>,
    pub max_pdu_length: Option<u32>,
    /// A User Identity server-response sub-item 59H (PS3.7 §D.3.3.7.2) was present.
    pub user_identity_response: bool,
}

/// A decoded control PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPdu {
    AssociateRq(AssociateRq),
    AssociateAc(AssociateAc),
    /// PS3.8 §9.3.4 bytes 8, 9, 10: result, source, reason/diag, as on the wire.
    AssociateRj {
        result: u8,
        source: u8,
        reason: u8,
    },
    ReleaseRq,
    ReleaseRp,
    /// PS3.8 §9.3.8 bytes 9, 10: source, reason/diag, as on the wire.
    Abort {
        source: u8,
        reason: u8,
    },
}

/// A control PDU and, if dicom-ul (strict) refused it, why. A refused PDU still yields what
/// its fixed-offset fields say (AE titles, reject/abort codes), so a malformed RQ does not
/// hide the association from the tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedControl {
    pub pdu: ControlPdu,
    pub malformed: Option<String>,
}

/// AE titles and UIDs are space-padded (AE, PS3.5 §6.2) or NUL-padded (UI, PS3.5 §9.1).
/// The user a User Identity sub-item names (PS3.7 §D.3.3.7.1): the primary field for types 1
/// and 2; for a JWT (type 5) its `preferred_username` or else `sub` claim, read as HTTP reads a
/// Bearer token (RFC 7519, not verified: the tap reports who the token says, as for HTTP), so the
/// same user has the same name whichever protocol carried the token. The token itself, a
/// Kerberos ticket or a SAML assertion is never kept.
fn identity_username(kind: u8, primary: &[u8]) -> Option<String> {
    match kind {
        1 | 2 => Some(clean_text(&String::from_utf8_lossy(primary))),
        5 => crate::http::auth::jwt_user(primary.trim_ascii()),
        _ => None,
    }
}

pub(crate) fn clean_text(s: &str) -> String {
    s.trim_matches(|c: char| c == ' ' || c == '\0').to_string()
}

fn latin1(bytes: &[u8]) -> String {
    let s: String = bytes.iter().map(|&b| char::from(b)).collect();
    clean_text(&s)
}

/// Walk the variable items of an A-ASSOCIATE-RQ body (after the 6-byte header) for the User
/// Identity sub-item (PS3.8 §9.3.2.3 item 50H; PS3.7 §D.3.3.7.1 sub-item 58H). Used when
/// dicom-ul refused the PDU or dropped an identity type it does not know.
pub fn find_user_identity(rq_body: &[u8]) -> Option<RequestedIdentity> {
    let mut at = ASSOCIATE_FIXED_LEN;
    while let (Some(&item_type), Some(len)) = (rq_body.get(at), be_u16(rq_body, at + 2)) {
        let start = at + 4;
        let end = start + usize::from(len);
        let item = rq_body.get(start..end)?;
        if item_type == 0x50 {
            let mut sub = 0usize;
            while let (Some(&sub_type), Some(sub_len)) = (item.get(sub), be_u16(item, sub + 2)) {
                let s = sub + 4;
                let e = s + usize::from(sub_len);
                let value = item.get(s..e)?;
                if sub_type == 0x58 {
                    // D.3.3.7.1: byte 5 type, 6 positive-response-requested, 7-8 primary length.
                    let kind = *value.first()?;
                    let positive = value.get(1).copied() == Some(1);
                    let plen = usize::from(be_u16(value, 2)?);
                    let primary = value.get(4..4 + plen)?;
                    let username = identity_username(kind, primary);
                    return Some(RequestedIdentity {
                        kind,
                        positive_response_requested: positive,
                        username,
                    });
                }
                sub = e;
            }
            return None;
        }
        at = end;
    }
    None
}

fn user_variables_rq(rq: &mut AssociateRq, vars: Vec<UserVariableItem>) {
    for v in vars {
        match v {
            UserVariableItem::MaxLength(n) => rq.max_pdu_length = Some(n),
            UserVariableItem::ImplementationClassUID(s) => rq.implementation_class_uid = Some(clean_text(&s)),
            UserVariableItem::ImplementationVersionName(s) => rq.implementation_version_name = Some(clean_text(&s)),
            UserVariableItem::UserIdentityItem(id) => {
                // dicom-ul hands the passcode over too; it is dropped here, unread.
                let kind = match id.identity_type() {
                    ul::UserIdentityType::Username => 1,
                    ul::UserIdentityType::UsernamePassword => 2,
                    ul::UserIdentityType::KerberosServiceTicket => 3,
                    ul::UserIdentityType::SamlAssertion => 4,
                    ul::UserIdentityType::Jwt => 5,
                    _ => 0,
                };
                let username = identity_username(kind, &id.primary_field());
                rq.user_identity = Some(RequestedIdentity {
                    kind,
                    positive_response_requested: id.positive_response_requested(),
                    username,
                });
            }
            _ => {}
        }
    }
}

/// Decode a complete control PDU (header included). The caller has already bounded its length
/// (ARCHITECTURE rule 5: dicom-ul's reader trusts the length field), and dicom-ul runs in strict
/// mode with a maximum equal to that length. Returns `None` for P-DATA-TF and unknown types.
pub fn parse_control_pdu(pdu: &[u8]) -> Option<ParsedControl> {
    let Parsed::Done { value: header, .. } = parse_pdu_header(pdu) else {
        return None;
    };
    if !header.pdu_type.is_control() {
        return None;
    }
    let body = pdu.get(PDU_HEADER_LEN..).unwrap_or_default();
    let truncated = body.len() as u64 != u64::from(header.length);
    let max = header.length.clamp(ul::MINIMUM_PDU_SIZE, ul::MAXIMUM_PDU_SIZE);
    let decoded = if truncated || header.length > max {
        Err("PDU length does not match its bytes".to_string())
    } else {
        match ul::read_pdu(pdu, max, true) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err("truncated PDU".to_string()),
            // Not `e.to_string()` for every error: `InvalidPduVariable` prints the offending
            // item, i.e. attacker-chosen text of any length, into the event stream.
            Err(ul::ReadError::InvalidPduVariable { .. }) => Err("item not allowed in this PDU".to_string()),
            Err(e) => Err(e.to_string().chars().take(160).collect()),
        }
    };
    let byte = |i: usize| body.get(i).copied().unwrap_or(0);
    // Fixed-offset fallbacks (PS3.8 §9.3.2 bytes 11-42, §9.3.4 bytes 8-10, §9.3.8 bytes 9-10;
    // body offsets are PDU offsets minus 7).
    let fallback = |t: PduType| match t {
        PduType::ASSOCIATE_RQ => ControlPdu::AssociateRq(AssociateRq {
            protocol_version: be_u16(body, 0).unwrap_or(0),
            called_ae: body.get(4..20).map(latin1).unwrap_or_default(),
            calling_ae: body.get(20..36).map(latin1).unwrap_or_default(),
            user_identity: find_user_identity(body),
            ..AssociateRq::default()
        }),
        PduType::ASSOCIATE_AC => ControlPdu::AssociateAc(AssociateAc::default()),
        PduType::ASSOCIATE_RJ => ControlPdu::AssociateRj {
            result: byte(1),
            source: byte(2),
            reason: byte(3),
        },
        PduType::RELEASE_RQ => ControlPdu::ReleaseRq,
        PduType::RELEASE_RP => ControlPdu::ReleaseRp,
        _ => ControlPdu::Abort {
            source: byte(2),
            reason: byte(3),
        },
    };
    let pdu = match decoded {
        Err(e) => {
            return Some(ParsedControl {
                pdu: fallback(header.pdu_type),
                malformed: Some(e),
            })
        }
        Ok(Pdu::AssociationRQ(rq)) => {
            let mut out = AssociateRq {
                protocol_version: rq.protocol_version,
                called_ae: clean_text(&rq.called_ae_title),
                calling_ae: clean_text(&rq.calling_ae_title),
                contexts: rq
                    .presentation_contexts
                    .into_iter()
                    .take(MAX_PRESENTATION_CONTEXTS)
                    .map(|pc| ProposedContext {
                        id: pc.id,
                        abstract_syntax: clean_text(&pc.abstract_syntax),
                        transfer_syntaxes: pc.transfer_syntaxes.iter().map(|t| clean_text(t)).collect(),
                    })
                    .collect(),
                ..AssociateRq::default()
            };
            user_variables_rq(&mut out, rq.user_variables);
            if out.user_identity.is_none() {
                // dicom-ul drops identity types it does not know (rule 3: keep them).
                out.user_identity = find_user_identity(body);
            }
            ControlPdu::AssociateRq(out)
        }
        Ok(Pdu::AssociationAC(ac)) => {
            let mut out = AssociateAc {
                contexts: ac
                    .presentation_contexts
                    .into_iter()
                    .take(MAX_PRESENTATION_CONTEXTS)
                    .map(|pc| ContextResult {
                        id: pc.id,
                        result: pc.reason as u8,
                        transfer_syntax: clean_text(&pc.transfer_syntax),
                    })
                    .collect(),
                ..AssociateAc::default()
            };
            for v in ac.user_variables {
                match v {
                    UserVariableItem::MaxLength(n) => out.max_pdu_length = Some(n),
                    UserVariableItem::Unknown(0x59, _) => out.user_identity_response = true,
                    _ => {}
                }
            }
            ControlPdu::AssociateAc(out)
        }
        // Raw numbers rather than dicom-ul's enums: they fold some codes together.
        Ok(Pdu::AssociationRJ(_)) => fallback(PduType::ASSOCIATE_RJ),
        Ok(Pdu::ReleaseRQ) => ControlPdu::ReleaseRq,
        Ok(Pdu::ReleaseRP) => ControlPdu::ReleaseRp,
        Ok(Pdu::AbortRQ { .. }) => fallback(PduType::ABORT),
        Ok(other) => {
            return Some(ParsedControl {
                pdu: fallback(header.pdu_type),
                malformed: Some(format!("decoded as {}", other.short_description())),
            })
        }
    };
    Some(ParsedControl { pdu, malformed: None })
}

impl fmt::Display for MalformedPdv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PDV item at body offset {} does not fit its PDU", self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn pdu_header_needs_six_bytes() {
        let rq = associate_rq("STORESCU", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        for k in 0..PDU_HEADER_LEN {
            assert_eq!(
                parse_pdu_header(&rq[..k]),
                Parsed::NeedMore {
                    needed: PDU_HEADER_LEN - k
                }
            );
        }
        match parse_pdu_header(&rq) {
            Parsed::Done { value, consumed } => {
                assert_eq!(consumed, 6);
                assert_eq!(value.pdu_type, PduType::ASSOCIATE_RQ);
                assert_eq!(value.total_len(), rq.len() as u64);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn probe_accepts_rq_and_rejects_others() {
        let rq = associate_rq("STORESCU", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        assert_eq!(probe_associate_rq(&rq, 256 << 10), Plausible::Yes);
        assert_eq!(
            probe_associate_rq(&rq[..3], 256 << 10),
            Plausible::NeedMore { needed: 3 }
        );
        assert_eq!(
            probe_associate_rq(&rq[..7], 256 << 10),
            Plausible::NeedMore { needed: 1 }
        );
        assert_eq!(probe_associate_rq(b"GET / HTTP/1.1\r\n", 256 << 10), Plausible::No);
        assert_eq!(probe_associate_rq(&[1, 0, 0, 0, 0, 10, 0, 1], 256 << 10), Plausible::No);
        let mut v2 = rq.clone();
        v2[7] = 2;
        assert_eq!(probe_associate_rq(&v2, 256 << 10), Plausible::No);
        // Larger than the control-PDU cap: still an RQ (the decoder reports the claimed size).
        assert_eq!(probe_associate_rq(&rq, 60), Plausible::Yes);
        let mut huge = rq.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(probe_associate_rq(&huge, 256 << 10), Plausible::Yes);
    }

    #[test]
    fn plausible_headers() {
        let max = 256 << 10;
        assert_eq!(plausible_pdu_header(&release_rq(), max), Plausible::Yes);
        assert_eq!(plausible_pdu_header(&release_rp(), max), Plausible::Yes);
        assert_eq!(plausible_pdu_header(&abort(0, 0), max), Plausible::Yes);
        assert_eq!(plausible_pdu_header(&associate_rj(1, 1, 3), max), Plausible::Yes);
        let pd = pdata(&[(1, 3, &[0u8; 10][..])]);
        assert_eq!(plausible_pdu_header(&pd, max), Plausible::Yes);
        assert_eq!(plausible_pdu_header(&pd[..11], max), Plausible::NeedMore { needed: 1 });
        let even = pdata(&[(2, 3, &[0u8; 10][..])]);
        assert_eq!(plausible_pdu_header(&even, max), Plausible::No);
        let bad_mch = pdata(&[(1, 9, &[0u8; 10][..])]);
        assert_eq!(plausible_pdu_header(&bad_mch, max), Plausible::No);
        assert_eq!(plausible_pdu_header(&[4, 1, 0, 0, 0, 12], max), Plausible::No);
        assert_eq!(plausible_pdu_header(&[8, 0], max), Plausible::No);
        assert_eq!(plausible_pdu_header(&[5, 0, 0, 0, 0, 5], max), Plausible::No);
    }

    #[test]
    fn pdv_items_walks_and_stops_on_malformed() {
        let pd = pdata(&[(1, 1, &b"abc"[..]), (1, 2, &b"defg"[..])]);
        let items: Vec<_> = pdv_items(&pd[6..]).collect();
        assert_eq!(items.len(), 2);
        let first = items[0].unwrap();
        assert!(first.header.is_command() && !first.header.is_last());
        assert_eq!(first.value, b"abc");
        assert_eq!(items[1].unwrap().value, b"defg");
        // Item length larger than the body.
        let bad = [0, 0, 0, 50, 1, 3, 0];
        let items: Vec<_> = pdv_items(&bad).collect();
        assert_eq!(items, vec![Err(MalformedPdv { offset: 0 })]);
        assert_eq!(pdv_items(&[0, 0, 0, 1, 1, 3]).count(), 1);
    }

    #[test]
    fn control_pdus_decode() {
        let rq = associate_rq(
            "MODALITY1",
            "PACS",
            &[
                (1, CT_STORAGE, &[EXPLICIT_LE, IMPLICIT_LE]),
                (3, MOVE_STUDY, &[IMPLICIT_LE]),
            ],
            Some((2, "rad1", "s3cret")),
        );
        let p = parse_control_pdu(&rq).unwrap();
        assert_eq!(p.malformed, None);
        let ControlPdu::AssociateRq(rq) = p.pdu else { panic!() };
        assert_eq!(rq.calling_ae, "MODALITY1");
        assert_eq!(rq.called_ae, "PACS");
        assert_eq!(rq.contexts.len(), 2);
        assert_eq!(rq.contexts[1].abstract_syntax, MOVE_STUDY);
        assert_eq!(rq.max_pdu_length, Some(16384));
        assert_eq!(rq.implementation_class_uid.as_deref(), Some(IMPL_UID));
        let id = rq.user_identity.unwrap();
        assert_eq!((id.kind, id.username.as_deref()), (2, Some("rad1")));
        assert!(!format!("{id:?}").contains("s3cret"));

        let ac = associate_ac(&[(1, 0, EXPLICIT_LE), (3, 3, IMPLICIT_LE)]);
        let ControlPdu::AssociateAc(ac) = parse_control_pdu(&ac).unwrap().pdu else {
            panic!()
        };
        assert_eq!(
            ac.contexts[0],
            ContextResult {
                id: 1,
                result: 0,
                transfer_syntax: EXPLICIT_LE.into()
            }
        );
        assert_eq!(ac.contexts[1].result, 3);

        let rj = parse_control_pdu(&associate_rj(1, 1, 7)).unwrap();
        assert_eq!(
            rj.pdu,
            ControlPdu::AssociateRj {
                result: 1,
                source: 1,
                reason: 7
            }
        );
        assert_eq!(rj.malformed, None);
        // Codes dicom-ul does not know: kept, flagged.
        let rj = parse_control_pdu(&associate_rj(9, 1, 1)).unwrap();
        assert_eq!(
            rj.pdu,
            ControlPdu::AssociateRj {
                result: 9,
                source: 1,
                reason: 1
            }
        );
        assert!(rj.malformed.is_some());
        assert_eq!(
            parse_control_pdu(&abort(2, 6)).unwrap().pdu,
            ControlPdu::Abort { source: 2, reason: 6 }
        );
        assert_eq!(parse_control_pdu(&release_rq()).unwrap().pdu, ControlPdu::ReleaseRq);
        assert_eq!(parse_control_pdu(&release_rp()).unwrap().pdu, ControlPdu::ReleaseRp);
        assert_eq!(parse_control_pdu(&pdata(&[(1, 3, &b"x"[..])])), None);
    }

    #[test]
    fn malformed_rq_keeps_fixed_fields() {
        let mut rq = associate_rq(
            "MODALITY1",
            "PACS",
            &[(1, CT_STORAGE, &[EXPLICIT_LE])],
            Some((1, "u", "")),
        );
        // Corrupt the application context item type (offset 74): dicom-ul refuses the PDU.
        rq[74] = 0x99;
        let p = parse_control_pdu(&rq).unwrap();
        assert!(p.malformed.is_some());
        let ControlPdu::AssociateRq(rq) = p.pdu else { panic!() };
        assert_eq!((rq.calling_ae.as_str(), rq.called_ae.as_str()), ("MODALITY1", "PACS"));
        // Truncated PDU.
        let p = parse_control_pdu(&associate_rq("A", "B", &[], None)[..40]).unwrap();
        assert!(p.malformed.is_some());
    }

    #[test]
    fn unknown_identity_type_is_kept() {
        let rq = associate_rq("A", "B", &[(1, CT_STORAGE, &[EXPLICIT_LE])], Some((1, "bob", "")));
        let mut rq = rq;
        // Find sub-item 58H and change its type to 9.
        let pos = rq.windows(2).rposition(|w| w == [0x58, 0]).unwrap();
        rq[pos + 4] = 9;
        let ControlPdu::AssociateRq(p) = parse_control_pdu(&rq).unwrap().pdu else {
            panic!()
        };
        let id = p.user_identity.unwrap();
        assert_eq!(id.kind, 9);
        assert_eq!(id.username, None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(7);
        let mut buf = Vec::new();
        for round in 0..20_000 {
            buf.clear();
            let n = (rng.next() % 300) as usize;
            for _ in 0..n {
                buf.push(rng.next() as u8);
            }
            if round % 2 == 0 && buf.len() >= 6 {
                // Make it reach dicom-ul: a control type and a consistent length.
                buf[0] = [1u8, 2, 3, 5, 6, 7][(rng.next() % 6) as usize];
                let len = (buf.len() - 6) as u32;
                buf[2..6].copy_from_slice(&len.to_be_bytes());
                if round % 4 == 0 && buf.len() > 8 {
                    buf[6] = 0;
                    buf[7] = 1;
                }
            }
            let _ = parse_control_pdu(&buf);
            let _ = find_user_identity(&buf);
            let _ = plausible_pdu_header(&buf, 1 << 18);
            let _ = probe_associate_rq(&buf, 1 << 18);
            let _ = pdv_items(&buf).count();
        }
    }
}
