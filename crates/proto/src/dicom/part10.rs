//! The study a DICOM file names, read from a prefix of it (PS3.10 §7.1): a WADO-RS response
//! seen without its request (the request lost to a capture gap, or sent before the capture
//! began) still says which study it carries, so the retrieval still counts as that study's.
//!
//! A DICOM file is a 128-byte preamble, `DICM`, the File Meta Information (group 0002, always
//! explicit VR little endian) naming the data set's transfer syntax in (0002,0010), then the
//! data set, which [`sniff_dataset`] walks. The meta group is read here by hand rather than with
//! dicom-object's `FileMetaTable` reader: that one allocates each element's declared length
//! before reading it (a hostile length costs that much memory) and wants the whole group,
//! where this reads one value in place from a bounded prefix.

use super::dataset::{sniff_dataset, vr_has_long_length, TransferSyntax};

/// The 128-byte preamble before the `DICM` prefix (PS3.10 §7.1).
const PREAMBLE: usize = 128;
const MAGIC: &[u8] = b"DICM";
/// (0002,0010) Transfer Syntax UID.
const TRANSFER_SYNTAX_UID: (u16, u16) = (0x0002, 0x0010);
/// A UID is at most 64 bytes (PS3.5 §9.1); a longer (0002,0010) is not one.
const MAX_UID_LEN: usize = 64;
/// `DICM`s tried as the file's start: the one after the preamble, and a few a free-form
/// preamble (or a part's headers) may spell. Each try walks a meta group, so without a bound a
/// body of `DICM`s each followed by a long group 0002 would cost the square of its length.
const MAX_TRIES: usize = 8;

/// The Study Instance UID of the first DICOM file in `body` (a whole `application/dicom` body or
/// a `multipart/related` one, whose first part's headers come first), when the prefix reaches
/// it. `max_inflated` bounds a deflated data set's inflation, as for [`sniff_dataset`].
pub fn study_in_file(body: &[u8], max_inflated: usize) -> Option<String> {
    // Each `DICM` that has a preamble's room before it, in order: a part's headers are text,
    // so the first one whose meta group reads is the file (a preamble is free-form and may
    // itself hold the four letters).
    let mut from = PREAMBLE;
    for _ in 0..MAX_TRIES {
        let at = find(body.get(from..)?, MAGIC)? + from;
        let meta = body.get(at + MAGIC.len()..)?;
        if let Some((ts, data_set)) = read_meta(meta) {
            let facts = sniff_dataset(data_set, ts, max_inflated).facts();
            return facts.study_instance_uids.into_iter().next();
        }
        from = at + 1;
    }
    None
}

/// The transfer syntax the File Meta Information names and the data set after it; `None`
/// when `meta` does not start with a readable group 0002 naming one.
fn read_meta(meta: &[u8]) -> Option<(TransferSyntax, &[u8])> {
    let mut at = 0usize;
    let mut ts = None;
    loop {
        let head: [u8; 8] = meta.get(at..at + 8)?.try_into().ok()?;
        let [g0, g1, e0, e1, v0, v1, l0, l1] = head;
        let group = u16::from_le_bytes([g0, g1]);
        if group != 0x0002 {
            // The data set starts here (only once the transfer syntax was named: a file
            // without one is not one this can read).
            return ts.map(|ts| (ts, meta.get(at..).unwrap_or_default()));
        }
        let element = u16::from_le_bytes([e0, e1]);
        let (len, header) = match vr_has_long_length(v0, v1)? {
            true => {
                let long: [u8; 4] = meta.get(at + 8..at + 12)?.try_into().ok()?;
                (u32::from_le_bytes(long) as usize, 12)
            }
            false => (usize::from(u16::from_le_bytes([l0, l1])), 8),
        };
        let value = meta.get(at + header..at.checked_add(header)?.checked_add(len)?)?;
        if (group, element) == TRANSFER_SYNTAX_UID {
            if len > MAX_UID_LEN + 1 {
                return None;
            }
            ts = Some(TransferSyntax::from_uid(std::str::from_utf8(value).ok()?));
        }
        at += header + len;
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::part10_file as file;

    const STUDY: &str = crate::testutil::PART10_STUDY;

    #[test]
    fn reads_the_study_of_a_file_in_each_uncompressed_transfer_syntax() {
        for ts in ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"] {
            assert_eq!(study_in_file(&file(ts), 1 << 16).as_deref(), Some(STUDY), "{ts}");
        }
    }

    #[test]
    fn reads_the_first_part_of_a_multipart_body() {
        let mut body = b"--b0undary\r\nContent-Type: application/dicom\r\nContent-Length: 999\r\n\r\n".to_vec();
        body.extend_from_slice(&file("1.2.840.10008.1.2.1"));
        body.extend_from_slice(b"\r\n--b0undary--\r\n");
        assert_eq!(study_in_file(&body, 1 << 16).as_deref(), Some(STUDY));
    }

    #[test]
    fn a_preamble_that_spells_dicm_is_passed_over() {
        let mut f = file("1.2.840.10008.1.2.1");
        f[0..4].copy_from_slice(b"DICM");
        f[PREAMBLE..PREAMBLE + 4].copy_from_slice(b"DICM");
        let mut body = vec![0u8; 200];
        body[140..144].copy_from_slice(b"DICM");
        body.extend_from_slice(&f);
        assert_eq!(study_in_file(&body, 1 << 16).as_deref(), Some(STUDY));
    }

    #[test]
    fn every_cut_of_a_file_gives_its_study_or_nothing() {
        let f = file("1.2.840.10008.1.2.1");
        let whole = f.windows(STUDY.len()).position(|w| w == STUDY.as_bytes()).unwrap() + STUDY.len();
        for cut in 0..f.len() {
            let got = study_in_file(&f[..cut], 1 << 16);
            if cut > whole {
                assert_eq!(got.as_deref(), Some(STUDY), "cut at {cut}");
            } else {
                assert!(got.is_none() || got.as_deref() == Some(STUDY), "cut at {cut}: {got:?}");
            }
        }
    }

    #[test]
    fn a_body_of_decoys_is_given_up_after_a_few_tries() {
        // Each `DICM` followed by group 0002 elements without a transfer syntax, then a
        // data-set tag: every try walks a long meta group and finds no file.
        let mut decoy = b"DICM".to_vec();
        for _ in 0..64 {
            decoy.extend_from_slice(&[0x02, 0x00, 0x02, 0x00, b'U', b'I', 0, 0]);
        }
        decoy.extend_from_slice(&[0x08, 0x00, 0x05, 0x00, b'C', b'S', 0, 0]);
        let mut body = vec![0u8; PREAMBLE];
        for _ in 0..MAX_TRIES {
            body.extend_from_slice(&decoy);
        }
        let mut with_file = body.clone();
        with_file.extend_from_slice(&file("1.2.840.10008.1.2.1"));
        assert_eq!(study_in_file(&with_file, 1 << 16), None, "the file is past the tries");
        // Within the tries it is found.
        let mut near = vec![0u8; PREAMBLE];
        near.extend_from_slice(&decoy);
        near.extend_from_slice(&file("1.2.840.10008.1.2.1"));
        assert_eq!(study_in_file(&near, 1 << 16).as_deref(), Some(STUDY));
    }

    #[test]
    fn hostile_meta_lengths_read_nothing() {
        let mut f = file("1.2.840.10008.1.2.1");
        // (0002,0001) File Meta Information Version is OB: a 4 GiB length points past the end.
        let at = PREAMBLE + 4 + 12;
        assert_eq!(&f[at..at + 6], &[0x02, 0x00, 0x01, 0x00, b'O', b'B']);
        f[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(study_in_file(&f, 1 << 16), None);
        // Not a VR where one must be.
        let mut g = file("1.2.840.10008.1.2.1");
        g[at + 4..at + 6].copy_from_slice(b"zz");
        assert_eq!(study_in_file(&g, 1 << 16), None);
        assert_eq!(study_in_file(b"", 1 << 16), None);
        assert_eq!(study_in_file(&[0u8; 200], 1 << 16), None);
    }
}
