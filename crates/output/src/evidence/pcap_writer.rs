//! Writing evidence pcaps: legacy pcap (pcap-savefile(5)), microsecond timestamps, little
//! endian, mode 0600 and never through a symbolic link (`pacstap_safefile`).

use super::packets::{EvidencePacket, EvidencePackets};
use pacstap_core::{FlowId, Timestamp};
use pacstap_safefile::{open_private, Existing, Kind};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// longer than the file says it may be (Wireshark rejects records above 262144 bytes).
pub(crate) const PCAP_SNAPLEN: u32 = 262_144;

/// Legacy pcap global header, microsecond timestamps, little endian (pcap-savefile(5)).
pub(crate) fn write_pcap_header(w: &mut impl Write, linktype: u32) -> io::Result<()> {
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&PCAP_SNAPLEN.to_le_bytes())?;
    w.write_all(&linktype.to_le_bytes())
}

/// One pcap record: `bytes` as captured (the kept part), `orig_len` the frame's length on the
/// wire, so a reader shows the difference as cut rather than as a short frame.
pub(crate) fn write_record(w: &mut impl Write, ts: Timestamp, bytes: &[u8], orig_len: usize) -> io::Result<()> {
    let us = ts.as_micros().max(0);
    w.write_all(&((us / 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&((us % 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&(orig_len as u32).to_le_bytes())?;
    w.write_all(bytes)
}

/// What [`write_evidence_pcap`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcapWritten {
    pub path: PathBuf,
    /// The file's link type: that of most frames (a legacy pcap holds one).
    pub linktype: u32,
    pub frames: u64,
    /// Frames of another link type, left out.
    pub skipped_linktype: u64,
    /// Distinct flows in the file.
    pub flows: usize,
    /// Sum of the flows' `frames_omitted`: frames seen but not in the file.
    pub frames_omitted: u64,
}

/// Add `parts` (merged by timestamp) to the end of the pcap at `path`, creating it (mode 0600,
/// header with the frames' most common link type) when it does not exist yet. Live evidence
/// grows its files this way: each cut brings only the frames the previous cuts did not have
/// ([`EvidenceRing::snapshot_since`]), so a file never loses packets when the ring forgets a
/// flow later. Frames of another link type than the file's are left out (counted). A symbolic
/// link at `path` is refused.
pub fn append_evidence_pcap(path: &Path, parts: &[EvidencePackets]) -> io::Result<PcapWritten> {
    let mut frames: Vec<EvidencePacket<'_>> = parts.iter().flat_map(EvidencePackets::iter).collect();
    frames.sort_by_key(|p| p.ts); // stable
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        pacstap_safefile::create_private_dir(dir)?;
    }
    // One open, never through a link, checked on the descriptor (owner, one link, regular):
    // what is checked is what is written. The header is read through the same descriptor.
    let mut file = open_private(path, Existing::Append, Kind::Regular)?;
    let existing = file.metadata()?.len() >= PCAP_HEADER_LEN;
    let linktype = if existing {
        read_pcap_linktype(&mut file)?
    } else {
        // Empty (new) or shorter than a header (a cut that died mid-header): start afresh.
        file.set_len(0)?;
        majority_linktype(&frames)
    };
    let mut written = PcapWritten::for_parts(path, linktype, parts);
    let mut w = BufWriter::new(file);
    if !existing {
        write_pcap_header(&mut w, linktype)?;
    }
    write_frames(&mut w, &frames, &mut written)?;
    let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_data()?;
    Ok(written)
}

impl PcapWritten {
    /// The counts of a file about to get `parts`' frames (frames written: none yet).
    fn for_parts(path: &Path, linktype: u32, parts: &[EvidencePackets]) -> PcapWritten {
        let mut flows: Vec<(FlowId, u64)> = parts
            .iter()
            .flat_map(|p| p.flows.iter().map(|f| (f.flow, f.frames_omitted)))
            .collect();
        flows.sort_unstable();
        flows.dedup_by_key(|f| f.0);
        PcapWritten {
            path: path.to_owned(),
            linktype,
            flows: flows.len(),
            frames_omitted: flows.iter().map(|f| f.1).sum(),
            ..PcapWritten::default()
        }
    }
}

/// The records of `frames` of the file's link type (others counted as skipped).
fn write_frames(
    w: &mut impl std::io::Write,
    frames: &[EvidencePacket<'_>],
    written: &mut PcapWritten,
) -> io::Result<()> {
    for p in frames {
        if p.linktype != written.linktype {
            written.skipped_linktype += 1;
            continue;
        }
        let data = p.data.get(..PCAP_SNAPLEN as usize).unwrap_or(p.data);
        write_record(w, p.ts, data, (p.orig_len as usize).max(data.len()))?;
        written.frames += 1;
    }
    Ok(())
}

/// Length of the legacy pcap global header.
const PCAP_HEADER_LEN: u64 = 24;

/// The link type in the global header of a (little-endian, as written here) pcap file.
/// Reads at offset 0 without moving the (append-mode) descriptor.
fn read_pcap_linktype(file: &mut std::fs::File) -> io::Result<u32> {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; PCAP_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    let field = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    if field(0) != Some(0xa1b2_c3d4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a pcap file written by pacstap",
        ));
    }
    field(20).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short pcap header"))
}

/// Write `parts` (snapshots of one alert's flows, e.g. from several workers' rings) merged by
/// timestamp into one legacy pcap at `path`, mode 0600 (the payload is patient data), creating
/// the directory if needed. The file is written beside `path` and renamed over it, so a reader
/// never sees half a file and a re-write for an updated alert replaces it whole, and the mode is
/// 0600 even if an older file at `path` had another. Frames of equal time keep their order.
pub fn write_evidence_pcap(path: &Path, parts: &[EvidencePackets]) -> io::Result<PcapWritten> {
    let mut frames: Vec<EvidencePacket<'_>> = parts.iter().flat_map(EvidencePackets::iter).collect();
    frames.sort_by_key(|p| p.ts); // stable
    let linktype = majority_linktype(&frames);

    pacstap_safefile::create_private_dir(&pacstap_safefile::parent_dir(path))?;
    let mut written = PcapWritten::for_parts(path, linktype, parts);
    // A fresh temporary (random name, created exclusively, 0600), renamed over `path`.
    pacstap_safefile::write_atomic(path, |w| {
        write_pcap_header(w, linktype)?;
        write_frames(w, &frames, &mut written)
    })?;
    Ok(written)
}

/// The link type most frames have (Ethernet when there are none).
fn majority_linktype(frames: &[EvidencePacket<'_>]) -> u32 {
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for p in frames {
        match counts.iter_mut().find(|c| c.0 == p.linktype) {
            Some(c) => c.1 += 1,
            None => counts.push((p.linktype, 1)),
        }
    }
    counts.iter().max_by_key(|c| c.1).map_or(1, |c| c.0)
}
