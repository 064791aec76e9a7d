//! Stop-at-tag sniff of a data set prefix (PS3.5 §7): just enough to name the study.
//!
//! The tap never decodes a data set. It walks top-level element headers of a bounded prefix in
//! the negotiated transfer syntax, reads StudyInstanceUID (0020,000D), Modality (0008,0060),
//! QueryRetrieveLevel (0008,0052) and SOPInstanceUID (0008,0018), and stops as soon as a tag
//! passes (0020,000D). Elements are sorted by tag at each level (PS3.5 §7.1), so nothing it
//! wants can come later. Patient data (group 0010) lies before the stop tag but is only ever
//! skipped over by length, never read into a value.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use flate2::{Decompress, FlushDecompress};

/// How a data set is encoded on the wire (PS3.5 §10, Annex A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferSyntax {
    /// 1.2.840.10008.1.2 (PS3.5 §A.1).
    ImplicitVrLittleEndian,
    /// 1.2.840.10008.1.2.1 and every encapsulated (compressed) syntax: their data sets are
    /// explicit VR little endian, only Pixel Data differs (PS3.5 §A.4).
    ExplicitVrLittleEndian,
    /// 1.2.840.10008.1.2.2 (retired, PS3.5 §A.3).
    ExplicitVrBigEndian,
    /// 1.2.840.10008.1.2.1.99 (PS3.5 §A.5) and the JPIP Referenced Deflate syntaxes
    /// 1.2.840.10008.1.2.4.95 / .4.205: the whole data set is raw deflate (RFC 1951) of
    /// explicit VR little endian.
    DeflatedExplicitVrLittleEndian,
}

impl TransferSyntax {
    pub fn from_uid(uid: &str) -> TransferSyntax {
        match uid.trim_matches(|c: char| c == '\0' || c == ' ') {
            "1.2.840.10008.1.2" => TransferSyntax::ImplicitVrLittleEndian,
            "1.2.840.10008.1.2.2" => TransferSyntax::ExplicitVrBigEndian,
            "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95" | "1.2.840.10008.1.2.4.205" => {
                TransferSyntax::DeflatedExplicitVrLittleEndian
            }
            _ => TransferSyntax::ExplicitVrLittleEndian,
        }
    }

    /// Guess the encoding of a data set whose presentation context was never seen (capture
    /// began mid-association): a valid VR at bytes 4-5 means explicit; a first group that only
    /// makes sense byte-swapped means big endian.
    pub fn guess(prefix: &[u8]) -> TransferSyntax {
        let (Some(&g0), Some(&g1)) = (prefix.first(), prefix.get(1)) else {
            return TransferSyntax::ExplicitVrLittleEndian;
        };
        let explicit =
            matches!((prefix.get(4), prefix.get(5)), (Some(&a), Some(&b)) if vr_has_long_length(a, b).is_some());
        if explicit && g0 == 0 && g1 != 0 {
            TransferSyntax::ExplicitVrBigEndian
        } else if explicit {
            TransferSyntax::ExplicitVrLittleEndian
        } else {
            TransferSyntax::ImplicitVrLittleEndian
        }
    }
}

/// What the sniff found. Strings are trimmed of padding; never patient data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetFacts {
    /// (0020,000D), split on `\` (multi-valued in C-FIND/C-MOVE/C-GET identifiers).
    pub study_instance_uids: Vec<String>,
    /// (0008,0060)
    pub modality: Option<String>,
    /// (0008,0052)
    pub query_level: Option<String>,
    /// (0008,0018)
    pub sop_instance_uid: Option<String>,
}

/// Outcome of a sniff.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniff {
    /// The walk passed (0020,000D) or hit something it cannot walk: more bytes would not help.
    Done(DatasetFacts),
    /// The prefix ended first; a longer prefix could find more. The facts so far are valid.
    NeedMore(DatasetFacts),
}

impl Sniff {
    pub fn facts(self) -> DatasetFacts {
        match self {
            Sniff::Done(f) | Sniff::NeedMore(f) => f,
        }
    }
}

/// Sequences nest; a hostile data set could nest without end. DCMTK and dicom-rs put no hard
/// limit, real IODs nest fewer than 10 levels (e.g. RT plans, SR content trees deeper only in
/// sequences we skip by length); 16 bounds the walk's stack without losing real data.
pub const MAX_SEQUENCE_DEPTH: u32 = 16;
/// Study UIDs kept from one identifier. A C-MOVE of "these studies" lists a handful; the
/// prefix cap bounds the rest (64 KiB / 2 bytes per empty value), this bounds the event.
pub const MAX_STUDY_UIDS: usize = 256;
/// UI values are at most 64 bytes (PS3.5 §9.1), CS at most 16 (PS3.5 §6.2).
const MAX_UID_LEN: usize = 64;
const MAX_CS_LEN: usize = 16;

/// A tag of the standard dictionary as the walk compares it: group and element in one `u32`.
const fn packed(tag: Tag) -> u32 {
    ((tag.0 as u32) << 16) | tag.1 as u32
}

const TAG_SOP_INSTANCE_UID: u32 = packed(tags::SOP_INSTANCE_UID);
const TAG_QUERY_LEVEL: u32 = packed(tags::QUERY_RETRIEVE_LEVEL);
const TAG_MODALITY: u32 = packed(tags::MODALITY);
const TAG_STUDY_INSTANCE_UID: u32 = packed(tags::STUDY_INSTANCE_UID);
/// PS3.5 §7.5: Item, Item Delimitation, Sequence Delimitation.
const TAG_ITEM: u32 = 0xFFFE_E000;
const TAG_ITEM_DELIM: u32 = 0xFFFE_E00D;
const TAG_SEQ_DELIM: u32 = 0xFFFE_E0DD;
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// PS3.5 §7.1.2: these VRs have 2 reserved bytes and a 4-byte length; all others a 2-byte
/// length. `None`: not a VR at all.
pub(crate) fn vr_has_long_length(a: u8, b: u8) -> Option<bool> {
    match &[a, b] {
        b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV" => {
            Some(true)
        }
        b"AE" | b"AS" | b"AT" | b"CS" | b"DA" | b"DS" | b"DT" | b"FD" | b"FL" | b"IS" | b"LO" | b"LT" | b"PN"
        | b"SH" | b"SL" | b"SS" | b"ST" | b"TM" | b"UI" | b"UL" | b"US" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    big: bool,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// Why a walk stopped early.
enum Stop {
    /// Ran out of prefix.
    Eof,
    /// Bytes that cannot be a data set here; more would not help.
    Bad,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Bad)?;
        let s = self.data.get(self.pos..end).ok_or(Stop::Eof)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, enc: Encoding) -> Result<u16, Stop> {
        let b = self.take(2)?;
        let a = [b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)];
        Ok(if enc.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(&mut self, enc: Encoding) -> Result<u32, Stop> {
        let hi = self.u16(enc)?;
        let lo = self.u16(enc)?;
        Ok(if enc.big {
            (u32::from(hi) << 16) | u32::from(lo)
        } else {
            (u32::from(lo) << 16) | u32::from(hi)
        })
    }

    fn tag(&mut self, enc: Encoding) -> Result<u32, Stop> {
        let group = self.u16(enc)?;
        let element = self.u16(enc)?;
        Ok((u32::from(group) << 16) | u32::from(element))
    }

    /// One element header: (tag, length, is UN/SQ-like for the nested encoding).
    /// Item and delimiter tags have no VR in any transfer syntax (PS3.5 §7.5).
    fn header(&mut self, enc: Encoding) -> Result<(u32, u32, bool), Stop> {
        let tag = self.tag(enc)?;
        if tag >> 16 == 0xFFFE || !enc.explicit {
            return Ok((tag, self.u32(enc)?, false));
        }
        let vr = self.take(2)?;
        let (a, b) = (vr.first().copied().unwrap_or(0), vr.get(1).copied().unwrap_or(0));
        match vr_has_long_length(a, b) {
            Some(true) => {
                self.take(2)?;
                Ok((tag, self.u32(enc)?, &[a, b] == b"UN"))
            }
            Some(false) => Ok((tag, u32::from(self.u16(enc)?), false)),
            None => Err(Stop::Bad),
        }
    }

    fn skip(&mut self, len: u32) -> Result<(), Stop> {
        self.take(len as usize).map(|_| ())
    }

    /// Skip the items of a sequence of undefined length up to its Sequence Delimitation Item.
    /// An undefined-length UN holds implicit VR little endian (PS3.5 §6.2.2 note).
    fn skip_sequence(&mut self, enc: Encoding, depth: u32) -> Result<(), Stop> {
        if depth > MAX_SEQUENCE_DEPTH {
            return Err(Stop::Bad);
        }
        loop {
            let tag = self.tag(enc)?;
            let len = self.u32(enc)?;
            match tag {
                TAG_SEQ_DELIM => return Ok(()),
                TAG_ITEM if len == UNDEFINED => self.skip_item(enc, depth)?,
                TAG_ITEM => self.skip(len)?,
                _ => return Err(Stop::Bad),
            }
        }
    }

    /// Skip the elements of an item of undefined length up to its Item Delimitation Item.
    fn skip_item(&mut self, enc: Encoding, depth: u32) -> Result<(), Stop> {
        loop {
            let (tag, len, un) = self.header(enc)?;
            match tag {
                TAG_ITEM_DELIM => return Ok(()),
                TAG_ITEM | TAG_SEQ_DELIM => return Err(Stop::Bad),
                _ if len == UNDEFINED => {
                    let inner = if un {
                        Encoding {
                            explicit: false,
                            big: false,
                        }
                    } else {
                        enc
                    };
                    self.skip_sequence(inner, depth + 1)?
                }
                _ => self.skip(len)?,
            }
        }
    }
}

fn trimmed(value: &[u8], max: usize) -> Option<String> {
    let s = String::from_utf8_lossy(value);
    let t = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if t.is_empty() {
        return None;
    }
    // Cut on a char boundary at or below `max` bytes.
    let mut end = t.len().min(max);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t.get(..end).map(str::to_string)
}

/// Walk the top level of `data` (already inflated) in `enc`.
fn walk(data: &[u8], enc: Encoding) -> Sniff {
    let mut facts = DatasetFacts::default();
    let mut r = Reader { data, pos: 0 };
    loop {
        if r.pos >= data.len() {
            return Sniff::NeedMore(facts);
        }
        let step = (|| -> Result<bool, Stop> {
            let (tag, len, un) = r.header(enc)?;
            if tag > TAG_STUDY_INSTANCE_UID {
                return Ok(true);
            }
            if len == UNDEFINED {
                let inner = if un {
                    Encoding {
                        explicit: false,
                        big: false,
                    }
                } else {
                    enc
                };
                r.skip_sequence(inner, 1)?;
                return Ok(false);
            }
            if !matches!(
                tag,
                TAG_SOP_INSTANCE_UID | TAG_QUERY_LEVEL | TAG_MODALITY | TAG_STUDY_INSTANCE_UID
            ) {
                r.skip(len)?;
                return Ok(false);
            }
            let value = r.take(len as usize)?;
            match tag {
                TAG_SOP_INSTANCE_UID => facts.sop_instance_uid = trimmed(value, MAX_UID_LEN),
                TAG_QUERY_LEVEL => facts.query_level = trimmed(value, MAX_CS_LEN),
                TAG_MODALITY => facts.modality = trimmed(value, MAX_CS_LEN),
                _ => {
                    facts.study_instance_uids = value
                        .split(|&b| b == b'\\')
                        .filter_map(|v| trimmed(v, MAX_UID_LEN))
                        .take(MAX_STUDY_UIDS)
                        .collect();
                    return Ok(true);
                }
            }
            Ok(false)
        })();
        match step {
            Ok(true) | Err(Stop::Bad) => return Sniff::Done(facts),
            Ok(false) => {}
            Err(Stop::Eof) => return Sniff::NeedMore(facts),
        }
    }
}

/// Inflate at most `max_out` bytes from the front of a raw-deflate stream (PS3.5 §A.5: no zlib
/// header). A truncated or corrupt stream yields what decoded before the damage.
pub fn inflate_prefix(compressed: &[u8], max_out: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max_out.min(compressed.len().saturating_mul(8)).max(256));
    let mut z = Decompress::new(false);
    loop {
        if out.len() >= max_out {
            break;
        }
        if out.len() == out.capacity() {
            out.reserve((out.capacity()).min(max_out - out.len()));
        }
        let before_in = z.total_in();
        let before_out = out.len();
        let consumed = usize::try_from(before_in).unwrap_or(usize::MAX);
        let Some(input) = compressed.get(consumed..) else { break };
        match z.decompress_vec(input, &mut out, FlushDecompress::Sync) {
            Ok(flate2::Status::StreamEnd) | Err(_) => break,
            Ok(_) => {}
        }
        if z.total_in() == before_in && out.len() == before_out {
            break;
        }
    }
    out.truncate(max_out);
    out
}

/// Sniff a data set prefix in transfer syntax `ts`. `max_inflated` bounds the output of a
/// deflated prefix.
pub fn sniff_dataset(prefix: &[u8], ts: TransferSyntax, max_inflated: usize) -> Sniff {
    let le = Encoding {
        explicit: true,
        big: false,
    };
    match ts {
        TransferSyntax::ImplicitVrLittleEndian => walk(
            prefix,
            Encoding {
                explicit: false,
                big: false,
            },
        ),
        TransferSyntax::ExplicitVrLittleEndian => walk(prefix, le),
        TransferSyntax::ExplicitVrBigEndian => walk(
            prefix,
            Encoding {
                explicit: true,
                big: true,
            },
        ),
        TransferSyntax::DeflatedExplicitVrLittleEndian => walk(&inflate_prefix(prefix, max_inflated), le),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn sample(ts: TransferSyntax) -> Vec<u8> {
        let mut ds = DatasetBuilder::new(ts);
        ds.el(0x0008, 0x0016, b"CS", CT_STORAGE.as_bytes());
        ds.el(0x0008, 0x0018, b"UI", b"1.2.3.4.5\0");
        ds.el(0x0008, 0x0060, b"CS", b"CT");
        // A sequence of undefined length whose item holds a (0020,000D) that must be ignored.
        ds.seq_undefined(0x0008, 0x1110, |inner| {
            inner.el(0x0008, 0x1150, b"UI", b"1.2.840.10008.3.1.2.3.1\0");
            inner.el(0x0020, 0x000D, b"UI", b"9.9.9\0");
        });
        ds.el(0x0010, 0x0010, b"PN", b"DOE^JOHN");
        ds.el(0x0020, 0x000D, b"UI", b"1.2.826.0.1.3680043.2.1125.1\0");
        ds.el(0x0028, 0x0010, b"US", &[0, 2]);
        ds.finish()
    }

    /// The same facts from a data set dicom-rs wrote (an encoder that is not ours): a
    /// C-STORE instance with a referenced-study sequence whose (0020,000D) must be passed
    /// over, in each uncompressed transfer syntax.
    #[test]
    fn sniffs_a_dataset_written_by_dicom_object() {
        use dicom_core::value::DataSetSequence;
        use dicom_core::{DataElement, VR};
        use dicom_dictionary_std::tags;
        use dicom_object::InMemDicomObject;
        use dicom_transfer_syntax_registry::entries;

        let mut referenced = InMemDicomObject::new_empty();
        referenced.put_str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, "1.2.840.10008.3.1.2.3.1");
        referenced.put_str(tags::STUDY_INSTANCE_UID, VR::UI, "9.9.9");
        let mut obj = InMemDicomObject::new_empty();
        obj.put_str(tags::SOP_CLASS_UID, VR::UI, CT_STORAGE);
        obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5");
        obj.put_str(tags::MODALITY, VR::CS, "CT");
        obj.put(DataElement::new(
            tags::REFERENCED_STUDY_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![referenced]),
        ));
        obj.put_str(tags::PATIENT_NAME, VR::PN, "DOE^JOHN");
        obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, STUDY_A);

        for (ts, ours) in [
            (
                entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                TransferSyntax::ImplicitVrLittleEndian,
            ),
            (
                entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
                TransferSyntax::ExplicitVrLittleEndian,
            ),
            (
                entries::EXPLICIT_VR_BIG_ENDIAN.erased(),
                TransferSyntax::ExplicitVrBigEndian,
            ),
        ] {
            let mut bytes = Vec::new();
            obj.write_dataset_with_ts(&mut bytes, &ts)
                .expect("dicom-object writes the data set");
            let Sniff::Done(facts) = sniff_dataset(&bytes, ours, 1 << 20) else {
                panic!("{ours:?}: the walk should pass (0020,000D)");
            };
            assert_eq!(facts.study_instance_uids, vec![STUDY_A.to_string()], "{ours:?}");
            assert_eq!(facts.sop_instance_uid.as_deref(), Some("1.2.3.4.5"), "{ours:?}");
            assert_eq!(facts.modality.as_deref(), Some("CT"), "{ours:?}");
        }
    }

    #[test]
    fn sniffed_tags_are_the_dictionary_tags() {
        assert_eq!(
            [
                TAG_SOP_INSTANCE_UID,
                TAG_QUERY_LEVEL,
                TAG_MODALITY,
                TAG_STUDY_INSTANCE_UID
            ],
            [0x0008_0018, 0x0008_0052, 0x0008_0060, 0x0020_000D]
        );
    }

    #[test]
    fn finds_study_in_every_syntax() {
        for ts in [
            TransferSyntax::ImplicitVrLittleEndian,
            TransferSyntax::ExplicitVrLittleEndian,
            TransferSyntax::ExplicitVrBigEndian,
            TransferSyntax::DeflatedExplicitVrLittleEndian,
        ] {
            let ds = sample(ts);
            let Sniff::Done(f) = sniff_dataset(&ds, ts, 1 << 16) else {
                panic!("{ts:?}")
            };
            assert_eq!(f.study_instance_uids, vec!["1.2.826.0.1.3680043.2.1125.1"], "{ts:?}");
            assert_eq!(f.modality.as_deref(), Some("CT"));
            assert_eq!(f.sop_instance_uid.as_deref(), Some("1.2.3.4.5"));
            assert!(!format!("{f:?}").contains("DOE"));
        }
    }

    #[test]
    fn short_prefix_needs_more_and_keeps_facts() {
        let ts = TransferSyntax::ExplicitVrLittleEndian;
        let ds = sample(ts);
        for k in 0..ds.len() {
            match sniff_dataset(&ds[..k], ts, 1 << 16) {
                Sniff::NeedMore(f) => assert!(f.study_instance_uids.is_empty()),
                Sniff::Done(f) => assert_eq!(f.study_instance_uids.len(), 1, "prefix {k}"),
            }
        }
    }

    #[test]
    fn multi_valued_identifier() {
        let ts = TransferSyntax::ImplicitVrLittleEndian;
        let mut ds = DatasetBuilder::new(ts);
        ds.el(0x0008, 0x0052, b"CS", b"STUDY ");
        ds.el(0x0020, 0x000D, b"UI", b"1.2.3\\1.2.4 \\\\1.2.5\0");
        let Sniff::Done(f) = sniff_dataset(&ds.finish(), ts, 1 << 16) else {
            panic!()
        };
        assert_eq!(f.study_instance_uids, vec!["1.2.3", "1.2.4", "1.2.5"]);
        assert_eq!(f.query_level.as_deref(), Some("STUDY"));
    }

    #[test]
    fn undefined_length_un_nests_implicit() {
        let ts = TransferSyntax::ExplicitVrLittleEndian;
        let mut ds = DatasetBuilder::new(ts);
        ds.el(0x0008, 0x0060, b"CS", b"MR");
        // (0009,1010) UN, undefined length, content implicit VR LE.
        ds.raw(&[0x09, 0, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.raw(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.raw(&[0x09, 0, 0x11, 0x10, 4, 0, 0, 0, b'a', b'b', b'c', b'd']);
        ds.raw(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.raw(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.el(0x0020, 0x000D, b"UI", b"5.6.7\0");
        let Sniff::Done(f) = sniff_dataset(&ds.finish(), ts, 1 << 16) else {
            panic!()
        };
        assert_eq!(f.study_instance_uids, vec!["5.6.7"]);
        assert_eq!(f.modality.as_deref(), Some("MR"));
    }

    #[test]
    fn nesting_is_bounded() {
        let ts = TransferSyntax::ImplicitVrLittleEndian;
        let mut ds = Vec::new();
        for _ in 0..1000 {
            ds.extend_from_slice(&[0x08, 0, 0x10, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]);
            ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert!(matches!(sniff_dataset(&ds, ts, 1 << 16), Sniff::Done(_)));
    }

    #[test]
    fn guesses_syntax() {
        for ts in [
            TransferSyntax::ImplicitVrLittleEndian,
            TransferSyntax::ExplicitVrLittleEndian,
            TransferSyntax::ExplicitVrBigEndian,
        ] {
            assert_eq!(TransferSyntax::guess(&sample(ts)), ts);
        }
        assert_eq!(
            TransferSyntax::from_uid("1.2.840.10008.1.2.4.50"),
            TransferSyntax::ExplicitVrLittleEndian
        );
        assert_eq!(
            TransferSyntax::from_uid("1.2.840.10008.1.2\0"),
            TransferSyntax::ImplicitVrLittleEndian
        );
        assert_eq!(
            TransferSyntax::from_uid("1.2.840.10008.1.2.1.99"),
            TransferSyntax::DeflatedExplicitVrLittleEndian
        );
    }

    #[test]
    fn inflate_is_bounded() {
        let big = deflate(&vec![0u8; 1 << 20]);
        assert_eq!(inflate_prefix(&big, 1000).len(), 1000);
        assert!(inflate_prefix(&big[..big.len() / 2], 1 << 22).len() <= 1 << 20);
        assert!(inflate_prefix(b"not deflate at all", 1000).len() <= 1000);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(3);
        for i in 0..20_000 {
            let n = (rng.next() % 400) as usize;
            let buf: Vec<u8> = (0..n)
                .map(|_| {
                    if i % 3 == 0 {
                        (rng.next() % 4) as u8 * 0x55
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            for ts in [
                TransferSyntax::ImplicitVrLittleEndian,
                TransferSyntax::ExplicitVrLittleEndian,
                TransferSyntax::ExplicitVrBigEndian,
                TransferSyntax::DeflatedExplicitVrLittleEndian,
            ] {
                let _ = sniff_dataset(&buf, ts, 4096);
            }
            let _ = TransferSyntax::guess(&buf);
        }
    }
}
