//! Pure HL7 v2 parsing: bytes in, values out, no state.
//!
//! - MLLP framing bytes and the content probe (HL7 v2.5 Appendix C.4.3, "MLLP Release 2");
//! - delimiters from MSH-1/MSH-2 (HL7 v2.5 §2.5.4, §2.14.9): taken from each message, never assumed;
//! - field access with the MSH numbering quirk (MSH-1 *is* the field separator);
//! - rendering of emitted values: first repetition, components joined with `^`, escape
//!   sequences undone (§2.7), trimmed, capped;
//! - the header summary of a message: MSH, MSA, MFI and MFE only. No function here looks at
//!   any other segment's content, so patient segments (PID, PV1, OBX, …) cannot reach an event.
//!
//! The streaming deframer (`mllp.rs`) strings these together across TCP chunks; fuzz targets
//! and benches call them directly.

use crate::Probe;
use std::fmt;

/// MLLP start block `<VT>` (HL7 v2.5 Appendix C.4.3).
pub const START_BLOCK: u8 = 0x0B;
/// MLLP end block: `<FS>` followed by [`CARRIAGE_RETURN`].
pub const END_BLOCK: u8 = 0x1C;
/// Segment terminator (HL7 v2.5 §2.5.1); also the second byte of the MLLP end block.
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Not a segment terminator in the standard, but senders that write `\n` or `\r\n` exist;
/// tolerated as one (an empty segment in between is ignored).
pub const LINE_FEED: u8 = 0x0A;

/// MFE segments listed in an admin event; the rest are only counted. A staff master file
/// update normally carries one record per MFN; a full reload (MFI-3 `REP`) can carry
/// thousands, and the alert only needs to know that it happened and a few examples.
pub const MAX_MASTER_FILE_RECORDS: usize = 16;

/// Content probe on a flow's first bytes: `<VT>` then `MSH` (a message), `FHS` or `BHS`
/// (a batch, HL7 v2.5 §2.10.3). Leading CR/LF are tolerated: some senders emit them as
/// keep-alives between frames.
pub fn probe(data: &[u8]) -> Probe {
    let start = data.iter().position(|&b| b != CARRIAGE_RETURN && b != LINE_FEED);
    let Some(rest) = start.and_then(|i| data.get(i..)) else {
        return Probe::NeedMore;
    };
    match rest.split_first() {
        Some((&START_BLOCK, after)) => {
            let head = after.get(..3).unwrap_or(after);
            let ids: [&[u8]; 3] = [b"MSH", b"FHS", b"BHS"];
            if ids.iter().any(|id| id.starts_with(head)) {
                if head.len() == 3 {
                    Probe::Yes
                } else {
                    Probe::NeedMore
                }
            } else {
                Probe::No
            }
        }
        _ => Probe::No,
    }
}

/// Position of the first byte that matters to the deframer inside a message: a segment
/// terminator (CR, LF), a start block or an end block. Everything else is content.
///
/// All four are below 0x1D and message text almost never is (base64 never), so 32-byte
/// blocks are first checked with a branch-free `< 0x1D` test the compiler vectorises; an
/// embedded multi-megabyte base64 OBX is passed over at memory speed.
pub fn find_frame_byte(data: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut at = 0;
    for block in data.chunks_exact(BLOCK) {
        if block.iter().fold(false, |acc, &b| acc | (b < 0x1D)) {
            if let Some(i) = block.iter().position(|&b| is_frame_byte(b)) {
                return Some(at + i);
            }
        }
        at += BLOCK;
    }
    data.get(at..)?.iter().position(|&b| is_frame_byte(b)).map(|i| at + i)
}

#[inline]
fn is_frame_byte(b: u8) -> bool {
    matches!(b, LINE_FEED | START_BLOCK | CARRIAGE_RETURN | END_BLOCK)
}

/// A segment id (HL7 v2.5 §2.5.2): three characters, an upper-case letter then upper-case
/// letters or digits (`MSH`, `PID`, `OBX`, `ZPI`). Unknown ids are kept (ARCHITECTURE rule 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub [u8; 3]);

impl SegmentId {
    pub const MSH: SegmentId = SegmentId(*b"MSH");
    pub const MSA: SegmentId = SegmentId(*b"MSA");
    pub const MFI: SegmentId = SegmentId(*b"MFI");
    pub const MFE: SegmentId = SegmentId(*b"MFE");
    /// Batch protocol envelope (HL7 v2.5 §2.10.3): file/batch header and trailer.
    pub const FHS: SegmentId = SegmentId(*b"FHS");
    pub const BHS: SegmentId = SegmentId(*b"BHS");
    pub const BTS: SegmentId = SegmentId(*b"BTS");
    pub const FTS: SegmentId = SegmentId(*b"FTS");

    /// `None` unless the bytes are a syntactically valid segment id.
    pub fn parse(id: [u8; 3]) -> Option<SegmentId> {
        let [a, b, c] = id;
        let ok = a.is_ascii_uppercase()
            && (b.is_ascii_uppercase() || b.is_ascii_digit())
            && (c.is_ascii_uppercase() || c.is_ascii_digit());
        ok.then_some(SegmentId(id))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Segments that start a message or a batch envelope (they define the delimiters).
    pub fn is_header(self) -> bool {
        matches!(self, SegmentId::MSH | SegmentId::FHS | SegmentId::BHS)
    }

    pub fn is_batch_envelope(self) -> bool {
        matches!(self, SegmentId::FHS | SegmentId::BHS | SegmentId::BTS | SegmentId::FTS)
    }

    /// The only segments whose content is ever read: the header, the acknowledgment and the
    /// master file segments. Everything else (patient, order, result …) is counted and passed.
    pub fn is_kept(self) -> bool {
        matches!(self, SegmentId::MSH | SegmentId::MSA | SegmentId::MFI | SegmentId::MFE)
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A character that may serve as a delimiter: printable ASCII, not a letter or digit
/// (HL7 v2.5 §2.5.4 recommends `|^~\&`; any such character is legal).
pub fn is_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// The message's delimiters (HL7 v2.5 §2.5.4): MSH-1 and the characters of MSH-2 in order:
/// component, repetition, escape, subcomponent, and (v2.7+) truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: u8,
    pub component: u8,
    pub repetition: Option<u8>,
    pub escape: Option<u8>,
    pub subcomponent: Option<u8>,
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    /// The recommended `|^~\&`; used only by tests and benches, never assumed for a message.
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: Some(b'~'),
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

/// Why an MSH segment cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedMsh {
    /// The message has no MSH segment.
    Missing,
    /// Fewer bytes than `MSH` + field separator + one encoding character.
    TooShort,
    /// MSH-1 is a letter, digit, space or control character.
    BadFieldSeparator(u8),
    /// MSH-2 is empty, longer than 5, or repeats / reuses a delimiter.
    BadEncodingCharacters,
}

impl fmt::Display for MalformedMsh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedMsh::Missing => f.write_str("no MSH segment"),
            MalformedMsh::TooShort => f.write_str("MSH segment too short"),
            MalformedMsh::BadFieldSeparator(b) => write!(f, "MSH-1 field separator 0x{b:02x} is not a delimiter"),
            MalformedMsh::BadEncodingCharacters => f.write_str("MSH-2 encoding characters invalid"),
        }
    }
}

/// Read MSH-1 and MSH-2 from an MSH segment (starting with `MSH`, without its terminator).
pub fn parse_delimiters(msh: &[u8]) -> Result<Delimiters, MalformedMsh> {
    if msh.get(..3) != Some(b"MSH".as_slice()) {
        return Err(MalformedMsh::Missing);
    }
    let (&field, rest) = msh
        .get(3..)
        .and_then(<[u8]>::split_first)
        .ok_or(MalformedMsh::TooShort)?;
    if !is_delimiter(field) {
        return Err(MalformedMsh::BadFieldSeparator(field));
    }
    let enc = rest.split(|&b| b == field).next().unwrap_or_default();
    if enc.is_empty() {
        return Err(if rest.is_empty() {
            MalformedMsh::TooShort
        } else {
            MalformedMsh::BadEncodingCharacters
        });
    }
    if enc.len() > 5 || !enc.iter().all(|&b| is_delimiter(b)) {
        return Err(MalformedMsh::BadEncodingCharacters);
    }
    for (i, b) in enc.iter().enumerate() {
        if enc.get(i + 1..).unwrap_or_default().contains(b) {
            return Err(MalformedMsh::BadEncodingCharacters);
        }
    }
    let at = |i: usize| enc.get(i).copied();
    Ok(Delimiters {
        field,
        component: at(0).ok_or(MalformedMsh::BadEncodingCharacters)?,
        repetition: at(1),
        escape: at(2),
        subcomponent: at(3),
        truncation: at(4),
    })
}

/// Field `n` (1-based, HL7 numbering) of a segment, without its terminator.
///
/// For MSH the numbering is shifted: MSH-1 is the field separator itself and MSH-2 the
/// encoding characters, so MSH-3 (sending application) is the *second* token after `MSH`
/// (HL7 v2.5 §2.14.9.1-3). For every other segment SEG-n is the n-th token after the id.
pub fn field<'a>(segment: &'a [u8], d: &Delimiters, n: usize) -> Option<&'a [u8]> {
    if n == 0 {
        return None;
    }
    let is_msh = segment.get(..3) == Some(b"MSH".as_slice());
    let token = if is_msh {
        if n == 1 {
            return segment.get(3..4);
        }
        n - 1
    } else {
        n
    };
    segment.split(|&b| b == d.field).nth(token)
}

/// Undo the delimiter escape sequences of HL7 v2.5 §2.7.1 (`\F\ \S\ \T\ \R\ \E\`, and `\P\`
/// for the v2.7 truncation character), writing into `out`. Other sequences (highlighting,
/// hex, character-set) are kept as sent; an unterminated one too.
pub fn unescape_into(value: &[u8], d: &Delimiters, out: &mut Vec<u8>) {
    let Some(esc) = d.escape else {
        out.extend_from_slice(value);
        return;
    };
    let mut rest = value;
    while let Some(i) = rest.iter().position(|&b| b == esc) {
        out.extend_from_slice(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        // The sequences undone here are one letter long: `\F\` etc.
        let replaced = match (after.first(), after.get(1)) {
            (Some(&code), Some(&close)) if close == esc => match code {
                b'F' => Some(d.field),
                b'S' => Some(d.component),
                b'T' => d.subcomponent,
                b'R' => d.repetition,
                b'E' => Some(esc),
                b'P' => d.truncation,
                _ => None,
            },
            _ => None,
        };
        match replaced {
            Some(c) => {
                out.push(c);
                rest = after.get(2..).unwrap_or_default();
            }
            None => {
                out.push(esc);
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest);
}

/// How an emitted value is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Render {
    /// Components kept (MSH-9 keeps 3: code, trigger event, structure).
    pub components: usize,
    /// Characters kept after unescaping and trimming.
    pub max_chars: usize,
}

/// An emitted value: the first repetition, at most `components` components, each unescaped
/// and trimmed, joined with `^` (subcomponents with `&`), trailing empty components dropped,
/// lossy UTF-8, capped at `max_chars` characters. `None` when nothing is left.
pub fn render(value: &[u8], d: &Delimiters, r: Render) -> Option<String> {
    let special =
        |b: &u8| *b == d.component || Some(*b) == d.repetition || Some(*b) == d.escape || Some(*b) == d.subcomponent;
    if !value.iter().any(special) {
        // Most header values (application names, ids, times, versions) are plain text.
        return finish_value(value, r.max_chars);
    }
    let value = match d.repetition {
        Some(rep) => value.split(|&b| b == rep).next().unwrap_or_default(),
        None => value,
    };
    let mut joined: Vec<u8> = Vec::new();
    let mut scratch: Vec<u8> = Vec::new();
    let mut pending_separators = 0usize;
    for (i, comp) in value.split(|&b| b == d.component).take(r.components.max(1)).enumerate() {
        scratch.clear();
        match d.subcomponent {
            Some(sub) => {
                for (j, part) in comp.split(|&b| b == sub).enumerate() {
                    if j > 0 {
                        scratch.push(b'&');
                    }
                    unescape_into(trim_ascii(part), d, &mut scratch);
                }
            }
            None => unescape_into(trim_ascii(comp), d, &mut scratch),
        }
        let part = trim_ascii(&scratch);
        if i > 0 {
            pending_separators += 1;
        }
        if !part.is_empty() {
            joined.resize(joined.len() + pending_separators, b'^');
            pending_separators = 0;
            joined.extend_from_slice(part);
        }
        // A hostile field can be kilobytes; nothing past the cap is needed.
        if joined.len() > r.max_chars.saturating_mul(4) {
            break;
        }
    }
    finish_value(&joined, r.max_chars)
}

/// Lossy UTF-8, trimmed, at most `max_chars` characters; `None` when empty.
fn finish_value(bytes: &[u8], max_chars: usize) -> Option<String> {
    // Never decode more than the cap can use (a character is at most 4 bytes).
    let bytes = trim_ascii(bytes);
    let bytes = bytes.get(..max_chars.saturating_mul(4)).unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(max_chars) {
        Some((cut, _)) => text.get(..cut).unwrap_or_default().trim_end().to_string(),
        None => text.to_string(),
    })
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// The segments of a message: split on CR (LF and CRLF tolerated), empty ones skipped.
pub fn segments(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&b| b == CARRIAGE_RETURN || b == LINE_FEED)
        .filter(|s| !s.is_empty())
}

/// MSA (HL7 v2.5 §2.14.8): the acknowledgment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1 acknowledgment code (HL7 table 0008: AA AE AR CA CE CR).
    pub code: Option<String>,
    /// MSA-2 message control id of the acknowledged message.
    pub control_id: Option<String>,
}

/// One MFE segment (HL7 v2.5 §8.5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterFileRecord {
    /// MFE-1 record-level event code (HL7 table 0180).
    pub event_code: Option<String>,
    /// MFE-4 primary key value, first component.
    pub primary_key: Option<String>,
}

impl MasterFileRecord {
    /// HL7 table 0180 in words.
    pub fn action(code: &str) -> Option<&'static str> {
        Some(match code {
            "MAD" => "add",
            "MUP" => "update",
            "MDL" => "delete",
            "MDC" => "deactivate",
            "MAC" => "reactivate",
            _ => return None,
        })
    }
}

/// MFI and MFE segments (HL7 v2.5 §8.5.1, §8.5.3) of a master file notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterFile {
    /// MFI-1 master file identifier, first component (HL7 table 0175: STF, PRA, LOC, …).
    pub file_id: Option<String>,
    /// MFI-3 file-level event code (HL7 table 0178: REP, UPD).
    pub file_event_code: Option<String>,
    /// The first [`MAX_MASTER_FILE_RECORDS`] MFE segments.
    pub records: Vec<MasterFileRecord>,
    /// MFE segments read (including those not listed).
    pub records_read: u32,
}

/// What a message tells about itself: the header, the acknowledgment, master file changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    pub delimiters: Delimiters,
    /// MSH-3 .. MSH-6.
    pub sending_application: Option<String>,
    pub sending_facility: Option<String>,
    pub receiving_application: Option<String>,
    pub receiving_facility: Option<String>,
    /// MSH-7, first component, as sent.
    pub message_time: Option<String>,
    /// MSH-9, up to 3 components.
    pub message_type: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// MSH-12, first component (the version id).
    pub version: Option<String>,
    /// MSH-15 accept acknowledgment type (HL7 table 0155: AL NE ER SU); present in
    /// enhanced-mode messages.
    pub accept_ack_type: Option<String>,
    pub ack: Option<Ack>,
    pub master_file: Option<MasterFile>,
}

impl MessageHeader {
    /// First component of MSH-9 (`ADT`, `ACK`, `MFN`).
    pub fn message_code(&self) -> Option<&str> {
        self.message_type.as_deref().map(|t| t.split('^').next().unwrap_or(t))
    }

    /// Second component of MSH-9 (`A01`, `M02`).
    pub fn trigger_event(&self) -> Option<&str> {
        self.message_type.as_deref().and_then(|t| t.split('^').nth(1))
    }
}

/// Summarise a message: its first MSH segment and the MSA, MFI and MFE segments that follow
/// it (up to the next MSH, for a batch). Works on a whole message or on the kept segments the
/// deframer collected; no other segment is looked into.
pub fn parse_message(message: &[u8], max_chars: usize) -> Result<MessageHeader, MalformedMsh> {
    let mut segs = segments(message).skip_while(|s| !s.starts_with(b"MSH"));
    let msh = segs.next().ok_or(MalformedMsh::Missing)?;
    let d = parse_delimiters(msh)?;
    let one = Render {
        components: 1,
        max_chars,
    };
    let hd = Render {
        components: 3,
        max_chars,
    };
    let get = |seg: &[u8], n: usize, r: Render| field(seg, &d, n).and_then(|v| render(v, &d, r));
    // MSH is split once: tokens[0] = "MSH", tokens[1] = MSH-2, tokens[n - 1] = MSH-n.
    let mut tokens: [&[u8]; 15] = [&[]; 15];
    for (slot, tok) in tokens.iter_mut().zip(msh.split(|&b| b == d.field)) {
        *slot = tok;
    }
    let msh_field = |n: usize, r: Render| tokens.get(n - 1).and_then(|v| render(v, &d, r));
    let mut h = MessageHeader {
        delimiters: d,
        sending_application: msh_field(3, hd),
        sending_facility: msh_field(4, hd),
        receiving_application: msh_field(5, hd),
        receiving_facility: msh_field(6, hd),
        message_time: msh_field(7, one),
        message_type: msh_field(9, hd),
        control_id: msh_field(10, one),
        version: msh_field(12, one),
        accept_ack_type: msh_field(15, one),
        ack: None,
        master_file: None,
    };
    for seg in segs {
        match seg.get(..3) {
            Some(b"MSH") => break,
            Some(b"MSA") if h.ack.is_none() => {
                h.ack = Some(Ack {
                    code: get(seg, 1, one),
                    control_id: get(seg, 2, one),
                })
            }
            Some(b"MFI") => {
                let mf = h.master_file.get_or_insert_with(MasterFile::default);
                if mf.file_id.is_none() && mf.file_event_code.is_none() {
                    mf.file_id = get(seg, 1, one);
                    mf.file_event_code = get(seg, 3, one);
                }
            }
            Some(b"MFE") => {
                let mf = h.master_file.get_or_insert_with(MasterFile::default);
                mf.records_read = mf.records_read.saturating_add(1);
                if mf.records.len() < MAX_MASTER_FILE_RECORDS {
                    mf.records.push(MasterFileRecord {
                        event_code: get(seg, 1, one),
                        primary_key: get(seg, 4, one),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &[u8] =
        b"MSH|^~\\&|SENDAPP|SENDFAC|RECAPP^1.2.3^ISO|RECFAC|20260101120000+0100||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|20260101120000\r\
PID|1||123456^^^HOSP^MR||SYNTH^ALPHA||19700101|F\r\
PV1|1|I|WARD1^101^1\r";

    #[test]
    fn probe_decides_on_vt_msh() {
        assert_eq!(probe(b"\x0bMSH|^~\\&|"), Probe::Yes);
        assert_eq!(probe(b"\x0bMSH"), Probe::Yes);
        assert_eq!(probe(b"\x0bBHS|"), Probe::Yes);
        assert_eq!(probe(b"\x0bFHS|"), Probe::Yes);
        assert_eq!(probe(b"\r\n\r\n\x0bMSH|"), Probe::Yes);
        for need in [
            &b""[..],
            b"\x0b",
            b"\x0bM",
            b"\x0bMS",
            b"\r\n",
            b"\r",
            b"\n\x0bF",
            b"\x0bB",
        ] {
            assert_eq!(probe(need), Probe::NeedMore, "{need:?}");
        }
        for no in [
            &b"MSH|"[..],
            b"\x0bPID|",
            b"\x0bMX",
            b"GET / HTTP/1.1",
            b"\x16\x03\x01",
            b"\x01\x00",
        ] {
            assert_eq!(probe(no), Probe::No, "{no:?}");
        }
    }

    #[test]
    fn msh_numbering_is_shifted() {
        let msh = segments(ADT).next().unwrap();
        let d = parse_delimiters(msh).unwrap();
        assert_eq!(d, Delimiters::default());
        assert_eq!(field(msh, &d, 1), Some(&b"|"[..]));
        assert_eq!(field(msh, &d, 2), Some(&b"^~\\&"[..]));
        assert_eq!(field(msh, &d, 3), Some(&b"SENDAPP"[..]));
        assert_eq!(field(msh, &d, 4), Some(&b"SENDFAC"[..]));
        assert_eq!(field(msh, &d, 5), Some(&b"RECAPP^1.2.3^ISO"[..]));
        assert_eq!(field(msh, &d, 6), Some(&b"RECFAC"[..]));
        assert_eq!(field(msh, &d, 7), Some(&b"20260101120000+0100"[..]));
        assert_eq!(field(msh, &d, 8), Some(&b""[..]));
        assert_eq!(field(msh, &d, 9), Some(&b"ADT^A01^ADT_A01"[..]));
        assert_eq!(field(msh, &d, 10), Some(&b"MSG00001"[..]));
        assert_eq!(field(msh, &d, 11), Some(&b"P"[..]));
        assert_eq!(field(msh, &d, 12), Some(&b"2.5.1"[..]));
        assert_eq!(field(msh, &d, 13), None);
        assert_eq!(field(msh, &d, 0), None);
        // Other segments are not shifted: EVN-1 is the first token after the id.
        let evn = segments(ADT).nth(1).unwrap();
        assert_eq!(field(evn, &d, 1), Some(&b"A01"[..]));
    }

    #[test]
    fn header_of_an_adt() {
        let h = parse_message(ADT, 256).unwrap();
        assert_eq!(h.sending_application.as_deref(), Some("SENDAPP"));
        assert_eq!(h.sending_facility.as_deref(), Some("SENDFAC"));
        assert_eq!(h.receiving_application.as_deref(), Some("RECAPP^1.2.3^ISO"));
        assert_eq!(h.receiving_facility.as_deref(), Some("RECFAC"));
        assert_eq!(h.message_time.as_deref(), Some("20260101120000+0100"));
        assert_eq!(h.message_type.as_deref(), Some("ADT^A01^ADT_A01"));
        assert_eq!(h.message_code(), Some("ADT"));
        assert_eq!(h.trigger_event(), Some("A01"));
        assert_eq!(h.control_id.as_deref(), Some("MSG00001"));
        assert_eq!(h.version.as_deref(), Some("2.5.1"));
        assert_eq!((h.ack.as_ref(), h.master_file.as_ref()), (None, None));
        // The patient segment is never looked into.
        assert!(!format!("{h:?}").contains("SYNTH"));
        assert!(!format!("{h:?}").contains("19700101"));
    }

    #[test]
    fn delimiters_come_from_the_message() {
        // Field separator `#`, component `$`, repetition `*`, escape `!`, subcomponent `@`.
        let msg = b"MSH#$*!@#APP$X#FAC#RAPP#RFAC#20260101##ORU$R01$ORU_R01#ID!F!7#P#2.4\rMSA#AE#OLD1\r";
        let h = parse_message(msg, 256).unwrap();
        let d = h.delimiters;
        assert_eq!(
            (d.field, d.component, d.repetition, d.escape, d.subcomponent),
            (b'#', b'$', Some(b'*'), Some(b'!'), Some(b'@'))
        );
        assert_eq!(h.sending_application.as_deref(), Some("APP^X"));
        assert_eq!(h.message_type.as_deref(), Some("ORU^R01^ORU_R01"));
        assert_eq!(h.control_id.as_deref(), Some("ID#7"));
        assert_eq!(h.version.as_deref(), Some("2.4"));
        let ack = h.ack.unwrap();
        assert_eq!(
            (ack.code.as_deref(), ack.control_id.as_deref()),
            (Some("AE"), Some("OLD1"))
        );
        // A `|` is ordinary content here.
        let h = parse_message(b"MSH#^~\\&#A|B#F\r", 256).unwrap();
        assert_eq!(h.sending_application.as_deref(), Some("A|B"));
    }

    #[test]
    fn malformed_msh() {
        assert_eq!(parse_message(b"PID|1\r", 256), Err(MalformedMsh::Missing));
        assert_eq!(parse_delimiters(b"MSH"), Err(MalformedMsh::TooShort));
        assert_eq!(parse_delimiters(b"MSH|"), Err(MalformedMsh::TooShort));
        assert_eq!(
            parse_delimiters(b"MSHA^~\\&"),
            Err(MalformedMsh::BadFieldSeparator(b'A'))
        );
        assert_eq!(
            parse_delimiters(b"MSH ^~\\&"),
            Err(MalformedMsh::BadFieldSeparator(b' '))
        );
        assert_eq!(parse_delimiters(b"MSH||A"), Err(MalformedMsh::BadEncodingCharacters));
        assert_eq!(
            parse_delimiters(b"MSH|^^\\&|"),
            Err(MalformedMsh::BadEncodingCharacters)
        );
        assert_eq!(
            parse_delimiters(b"MSH|^~\\&#!|"),
            Err(MalformedMsh::BadEncodingCharacters)
        );
        assert_eq!(parse_delimiters(b"MSH|^A|"), Err(MalformedMsh::BadEncodingCharacters));
        // Short MSH-2 is tolerated; the missing delimiters are simply not used.
        let d = parse_delimiters(b"MSH|^~|X").unwrap();
        assert_eq!((d.escape, d.subcomponent), (None, None));
        // v2.7 truncation character.
        let d = parse_delimiters(b"MSH|^~\\&#|X").unwrap();
        assert_eq!(d.truncation, Some(b'#'));
        // Segments may precede the MSH (batch headers); the first MSH is the message.
        let h = parse_message(b"BHS|^~\\&|B\rMSH|^~\\&|A\r", 256).unwrap();
        assert_eq!(h.sending_application.as_deref(), Some("A"));
    }

    #[test]
    fn escapes_are_undone() {
        let d = Delimiters::default();
        let r = Render {
            components: 1,
            max_chars: 256,
        };
        assert_eq!(
            render(b"A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F", &d, r).as_deref(),
            Some("A|B^C&D~E\\F")
        );
        // Unknown and unterminated sequences are kept.
        assert_eq!(render(b"X\\H\\Y\\.br\\Z", &d, r).as_deref(), Some("X\\H\\Y\\.br\\Z"));
        assert_eq!(render(b"END\\", &d, r).as_deref(), Some("END\\"));
        assert_eq!(render(b"\\F", &d, r).as_deref(), Some("\\F"));
        // Without an escape character nothing is undone.
        let plain = Delimiters { escape: None, ..d };
        assert_eq!(render(b"A\\F\\B", &plain, r).as_deref(), Some("A\\F\\B"));
    }

    #[test]
    fn rendering_rules() {
        let d = Delimiters::default();
        let r3 = Render {
            components: 3,
            max_chars: 256,
        };
        let r1 = Render { components: 1, ..r3 };
        assert_eq!(render(b"  ADT ^ A01 ^^", &d, r3).as_deref(), Some("ADT^A01"));
        assert_eq!(
            render(b"ORU^R01^ORU_R01^EXTRA", &d, r3).as_deref(),
            Some("ORU^R01^ORU_R01")
        );
        assert_eq!(render(b"^A01", &d, r3).as_deref(), Some("^A01"));
        assert_eq!(render(b"FIRST~SECOND", &d, r3).as_deref(), Some("FIRST"));
        assert_eq!(render(b"A&B^C", &d, r3).as_deref(), Some("A&B^C"));
        assert_eq!(render(b"2.5^INTL^2.5", &d, r1).as_deref(), Some("2.5"));
        assert_eq!(render(b"   ", &d, r3), None);
        assert_eq!(render(b"", &d, r3), None);
        assert_eq!(render(b"^^", &d, r3), None);
        // Capped in characters, never inside a UTF-8 sequence; invalid UTF-8 is replaced.
        let long = "é".repeat(300);
        let capped = render(long.as_bytes(), &d, r1).unwrap();
        assert_eq!(capped.chars().count(), 256);
        let lossy = render(b"A\xffB", &d, r1).unwrap();
        assert_eq!(lossy, "A\u{fffd}B");
        // A hostile 1 MiB field is not copied whole.
        let huge = vec![b'A'; 1 << 20];
        assert_eq!(render(&huge, &d, r1).unwrap().len(), 256);
    }

    #[test]
    fn ack_and_master_file() {
        let ack = b"MSH|^~\\&|RECAPP|RECFAC|SENDAPP|SENDFAC|20260101120001||ACK^A01^ACK|ACK00001|P|2.5.1\rMSA|AA|MSG00001|Message accepted for SYNTH^ALPHA\r";
        let h = parse_message(ack, 256).unwrap();
        let a = h.ack.unwrap();
        assert_eq!(
            (a.code.as_deref(), a.control_id.as_deref()),
            (Some("AA"), Some("MSG00001"))
        );
        assert!(!format!("{a:?}").contains("SYNTH"));

        let mfn = b"MSH|^~\\&|HR|HOSP|RIS|HOSP|20260101||MFN^M02^MFN_M02|MF1|P|2.5|||AL|NE\r\
MFI|STF^Staff master file^HL70175||UPD|||AL\r\
MFE|MAD|MF1-1|20260101|rad9^^^HOSP|CWE\r\
STF|rad9|U9^^^HOSP|NEW^RADIOLOGIST\r\
PRA|rad9|RAD\r\
MFE|MDL|MF1-2|20260101|rad2\r\
STF|rad2\r";
        let h = parse_message(mfn, 256).unwrap();
        assert_eq!(h.message_type.as_deref(), Some("MFN^M02^MFN_M02"));
        assert_eq!(h.accept_ack_type.as_deref(), Some("AL"));
        let mf = h.master_file.unwrap();
        assert_eq!(mf.file_id.as_deref(), Some("STF"));
        assert_eq!(mf.file_event_code.as_deref(), Some("UPD"));
        assert_eq!(mf.records_read, 2);
        assert_eq!(mf.records[0].event_code.as_deref(), Some("MAD"));
        assert_eq!(mf.records[0].primary_key.as_deref(), Some("rad9"));
        assert_eq!(mf.records[1].event_code.as_deref(), Some("MDL"));
        assert_eq!(MasterFileRecord::action("MDL"), Some("delete"));
        assert_eq!(MasterFileRecord::action("XYZ"), None);
    }

    #[test]
    fn segments_tolerate_lf_and_crlf() {
        let msg = b"MSH|^~\\&|A\r\nMSA|AA|1\nPID|1\r\r";
        let ids: Vec<&[u8]> = segments(msg).map(|s| &s[..3]).collect();
        assert_eq!(ids, vec![&b"MSH"[..], b"MSA", b"PID"]);
        let h = parse_message(msg, 256).unwrap();
        assert_eq!(h.ack.unwrap().code.as_deref(), Some("AA"));
    }

    #[test]
    fn segment_ids() {
        assert_eq!(SegmentId::parse(*b"PID"), Some(SegmentId(*b"PID")));
        assert_eq!(SegmentId::parse(*b"Z01"), Some(SegmentId(*b"Z01")));
        assert_eq!(SegmentId::parse(*b"1AB"), None);
        assert_eq!(SegmentId::parse(*b"Pid"), None);
        assert_eq!(SegmentId::parse(*b"P D"), None);
        assert!(SegmentId::MFE.is_kept() && !SegmentId(*b"PID").is_kept());
    }

    #[test]
    fn frame_byte_scan() {
        let mut v = vec![b'A'; 1000];
        assert_eq!(find_frame_byte(&v), None);
        for at in [0, 1, 31, 32, 33, 63, 64, 500, 998, 999] {
            for b in [CARRIAGE_RETURN, LINE_FEED, START_BLOCK, END_BLOCK] {
                v[at] = b;
                assert_eq!(find_frame_byte(&v), Some(at));
                v[at] = b'A';
            }
        }
        // Tabs and other control bytes are content.
        v[10] = b'\t';
        v[40] = 0x1B;
        assert_eq!(find_frame_byte(&v), None);
        v[700] = END_BLOCK;
        assert_eq!(find_frame_byte(&v), Some(700));
        assert_eq!(find_frame_byte(&[]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 96) as usize;
            let mut buf = b"MSH|^~\\&|".to_vec();
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let alphabet = b"|^~\\&#MSAFIEH\r\n01AB \xff";
                buf.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            let _ = parse_message(&buf, 16);
            let _ = parse_message(&buf[9..], 16);
            let _ = probe(&buf);
            let _ = find_frame_byte(&buf);
        }
    }
}
