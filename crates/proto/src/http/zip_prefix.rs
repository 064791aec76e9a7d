//! The study of the first DICOM file in the first bytes of a ZIP archive (PKWARE APPNOTE.TXT
//! §4.3.7, local file headers): Orthanc's study and series downloads are ZIPs of DICOM files,
//! each entry deflated, so the first entry's data set names the study downloaded, and a study
//! downloaded as a ZIP counts as the same study as when it is retrieved by WADO or C-MOVE.
//!
//! Written by hand: ZIP crates read an archive from its central directory, at its end, and the
//! tap holds only a body's first kilobytes. Every length read here comes from the sender and
//! is checked against the bytes held; nothing is allocated but the bounded inflation.

use std::borrow::Cow;

use crate::dicom::{inflate_prefix, study_in_file};

/// `PK\x03\x04`: a local file header.
const LOCAL_HEADER: [u8; 4] = *b"PK\x03\x04";
/// The fixed part of a local file header.
const FIXED_LEN: usize = 30;
/// Entries tried before giving up (a DICOMDIR, a README, …, may come before the images).
const MAX_ENTRIES: usize = 8;
/// General purpose flag bit 3: sizes follow the data, so the next header cannot be found.
const DATA_DESCRIPTOR: u16 = 1 << 3;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// The Study Instance UIDs of the DICOM files among the first [`MAX_ENTRIES`] entries of the
/// ZIP whose first bytes are `body`, each once, in order: as many as the prefix reaches (an
/// archive of several small studies names them all, one of large images its first). Entries
/// stored (method 0) or deflated (8) are read; `max_inflated` bounds each inflation.
pub fn studies_in_zip(body: &[u8], max_inflated: usize) -> Vec<String> {
    let mut found = Vec::new();
    let _ = walk(body, max_inflated, &mut found);
    found
}

/// [`studies_in_zip`]'s walk; `None` where the prefix ends or stops making sense.
fn walk(body: &[u8], max_inflated: usize, found: &mut Vec<String>) -> Option<()> {
    let mut at = 0usize;
    for _ in 0..MAX_ENTRIES {
        if body.get(at..at.checked_add(4)?)? != LOCAL_HEADER {
            return None;
        }
        let flags = u16_at(body, at + 6)?;
        let method = u16_at(body, at + 8)?;
        let compressed = usize::try_from(u32_at(body, at + 18)?).ok()?;
        let name_len = usize::from(u16_at(body, at + 26)?);
        let extra_len = usize::from(u16_at(body, at + 28)?);
        let data_at = at.checked_add(FIXED_LEN + name_len + extra_len)?;
        let rest = body.get(data_at..).unwrap_or_default();
        let sized = flags & DATA_DESCRIPTOR == 0;
        let data = if sized {
            rest.get(..compressed).unwrap_or(rest)
        } else {
            rest
        };
        let file = match method {
            0 => Some(Cow::Borrowed(data)),
            8 => Some(Cow::Owned(inflate_prefix(data, max_inflated))),
            _ => None,
        };
        if let Some(uid) = file.and_then(|f| study_in_file(&f, max_inflated)) {
            if !found.contains(&uid) {
                found.push(uid);
            }
        }
        if !sized {
            return None;
        }
        at = data_at.checked_add(compressed)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::zip_entry as entry;

    /// A minimal Part 10 file naming study `uid` (explicit VR little endian).
    fn dicom_file(uid: &str) -> Vec<u8> {
        fn el(out: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], v: &[u8]) {
            out.extend_from_slice(&g.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
            out.extend_from_slice(vr);
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(v);
        }
        let pad = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            if v.len() % 2 == 1 {
                v.push(0);
            }
            v
        };
        let mut meta = Vec::new();
        el(&mut meta, 2, 0x10, b"UI", &pad("1.2.840.10008.1.2.1"));
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        el(&mut f, 2, 0, b"UL", &(meta.len() as u32).to_le_bytes());
        f.extend_from_slice(&meta);
        el(&mut f, 8, 0x60, b"CS", b"CT");
        el(&mut f, 0x20, 0x0d, b"UI", &pad(uid));
        f
    }

    #[test]
    fn the_dicom_entries_name_their_studies() {
        for deflate in [true, false] {
            let zip = entry("A/B/CT000000.dcm", &dicom_file("1.2.3.4"), deflate, false);
            assert_eq!(studies_in_zip(&zip, 1 << 16), ["1.2.3.4"], "{deflate}");
        }
        // Several studies, one repeated: each once, in order.
        let zip: Vec<u8> = ["1.2.3.7", "1.2.3.8", "1.2.3.7"]
            .iter()
            .flat_map(|u| entry("IM", &dicom_file(u), true, false))
            .collect();
        assert_eq!(studies_in_zip(&zip, 1 << 16), ["1.2.3.7", "1.2.3.8"]);
        // A text entry first: skipped by its size.
        let mut zip = entry("README.txt", b"not dicom", true, false);
        zip.extend(entry("IM0", &dicom_file("1.2.3.5"), true, false));
        assert_eq!(studies_in_zip(&zip, 1 << 16), ["1.2.3.5"]);
        // Its size unknown (data descriptor): the next entry cannot be found.
        let mut zip = entry("README.txt", b"not dicom", true, true);
        zip.extend(entry("IM0", &dicom_file("1.2.3.5"), true, false));
        assert_eq!(studies_in_zip(&zip, 1 << 16), Vec::<String>::new());
        // …but the first entry is still read.
        let zip = entry("IM0", &dicom_file("1.2.3.6"), true, true);
        assert_eq!(studies_in_zip(&zip, 1 << 16), ["1.2.3.6"]);
    }

    #[test]
    fn hostile_prefixes_end_quietly() {
        let good = entry("IM0", &dicom_file("1.2.3.4"), true, false);
        for cut in 0..good.len() {
            let _ = studies_in_zip(&good[..cut], 1 << 16);
        }
        assert!(studies_in_zip(b"PK\x05\x06 end of central directory", 1 << 16).is_empty());
        // Sizes and lengths at their maxima point past the prefix.
        let mut lie = good.clone();
        lie[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        lie[26..28].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(studies_in_zip(&lie, 1 << 16), Vec::<String>::new());
        // A chain of empty entries stops after MAX_ENTRIES.
        let chain: Vec<u8> = (0..1000).flat_map(|_| entry("", b"", false, false)).collect();
        assert_eq!(studies_in_zip(&chain, 1 << 16), Vec::<String>::new());
    }
}
