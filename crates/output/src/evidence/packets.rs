//! Owned copies of some flows' kept frames: what an [`EvidenceRing`](super::EvidenceRing) hands
//! to the thread that writes an alert's evidence file.

use super::flow_buf::RecHeader;
use pacstap_core::{FlowId, Timestamp};

/// Per flow, what its evidence holds and what it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEvidence {
    pub flow: FlowId,
    /// Frames in the snapshot.
    pub frames_kept: u64,
    /// Frames seen but not in the snapshot (tail ring overflow, or lost to an eviction).
    pub frames_omitted: u64,
    /// Payload bytes seen but not kept.
    pub payload_bytes_omitted: u64,
    /// [`EvidenceRing::end_flow`] was called for it.
    pub ended: bool,
    /// The flow was evicted earlier and seen again: its first frames are not the connection's.
    pub resumed_after_eviction: bool,
    /// Which buffer of the flow this came from (new after an eviction), and how many frames it
    /// had been offered: pass both to [`EvidenceRing::snapshot_since`] to get only later frames.
    pub epoch: u64,
    pub seen: u64,
}

/// One kept frame, borrowed from an [`EvidencePackets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidencePacket<'a> {
    pub flow: FlowId,
    pub ts: Timestamp,
    pub linktype: u32,
    /// The frame's length on the wire (≥ `data.len()`: the difference was not kept).
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// Owned copies of some flows' kept frames (one allocation for all the bytes), to hand to the
/// thread that writes the evidence file. Frames are per flow in capture order, not merged by time:
/// [`write_evidence_pcap`] does that.
#[derive(Debug, Clone, Default)]
pub struct EvidencePackets {
    pub(super) bytes: Vec<u8>,
    packets: Vec<PacketEntry>,
    pub(super) flows: Vec<FlowEvidence>,
}

#[derive(Debug, Clone, Copy)]
struct PacketEntry {
    flow: FlowId,
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    start: usize,
    len: usize,
}

impl EvidencePackets {
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The flows found, with what they lack. A flow asked for but not held is absent.
    pub fn flows(&self) -> &[FlowEvidence] {
        &self.flows
    }

    pub fn iter(&self) -> impl Iterator<Item = EvidencePacket<'_>> + '_ {
        self.packets.iter().map(|p| EvidencePacket {
            flow: p.flow,
            ts: p.ts,
            linktype: p.linktype,
            orig_len: p.orig_len,
            data: self
                .bytes
                .get(p.start..p.start.saturating_add(p.len))
                .unwrap_or_default(),
        })
    }

    /// Move `other`'s packets and flows in (e.g. several workers' snapshots of one alert).
    pub fn append(&mut self, mut other: EvidencePackets) {
        let base = self.bytes.len();
        self.bytes.append(&mut other.bytes);
        self.packets.extend(other.packets.into_iter().map(|mut p| {
            p.start += base;
            p
        }));
        self.flows.append(&mut other.flows);
    }

    /// Room for `bytes` more frame bytes in `frames` more frames (one allocation each).
    pub(super) fn reserve(&mut self, bytes: usize, frames: usize) {
        self.bytes.reserve(bytes);
        self.packets.reserve(frames);
    }

    pub(super) fn push(&mut self, flow: FlowId, h: RecHeader, data_from: impl FnOnce(&mut Vec<u8>) -> bool) {
        let start = self.bytes.len();
        if data_from(&mut self.bytes) {
            self.packets.push(PacketEntry {
                flow,
                ts: Timestamp(h.ts),
                linktype: h.linktype,
                orig_len: h.orig_len,
                start,
                len: self.bytes.len() - start,
            });
        } else {
            self.bytes.truncate(start);
        }
    }
}
