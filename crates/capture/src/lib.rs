//! Captured frames from pcap and pcapng files, streamed in bounded memory, and from live
//! interfaces through libpcap ([`LiveSource`]).
//!
//! The first stage of the pipeline (ARCHITECTURE "Data flow"): it yields [`RawFrame`]s — link-layer
//! bytes with a timestamp and a link type — and knows nothing about what is inside them.
//!
//! # Why it looks like this
//!
//! * **Lending, zero-copy.** [`PacketSource::next_frame`] returns a frame that borrows the reader's
//!   buffer until the next call, so plain iteration costs no allocation and no copy per frame.
//! * **Bounded memory.** A file is read through one buffer of [`BUFFER_SIZE`] bytes, grown for a
//!   larger block up to [`MAX_BLOCK`] and no further: block and record lengths come from the file, and
//!   the file may be hostile (ARCHITECTURE rule 5). The whole file is never read into memory.
//! * **Damage is reported, not fatal.** A file that is truncated or corrupt part-way is read up to the
//!   damage; the damage is recorded as a [`Damage`] (file, byte offset, reason) and the frames before
//!   it are kept (rule 6: bad input is an event). Only a file that cannot be opened, or is not a
//!   capture at all, is an `Err` ([`CaptureError`]).
//! * **Several files, one clock.** [`MergedSource`] merges files (e.g. a rotated capture or one
//!   capture per tap port) in timestamp order, because packet time is the only clock (rule 1).
//!
//! # Formats
//!
//! * Legacy pcap, draft-ietf-opsawg-pcap §4–5: all four magics (micro-/nanosecond timestamps, either
//!   byte order), plus the 24-byte-record "modified" format of Kuznetsov's patched libpcap
//!   (magic `0xa1b2cd34`), which Wireshark also reads.
//! * pcapng, draft-ietf-opsawg-pcapng: several sections (each with its own byte order), several
//!   interfaces per section with their own link type, `if_tsresol` and `if_tsoffset`; Enhanced Packet
//!   Blocks (§4.3), Simple Packet Blocks (§4.4) and the obsolete Packet Block (Appendix A). Other
//!   blocks (name resolution, statistics, secrets, custom, unknown) are skipped by their length.
//!
//! Block parsing of section and interface headers uses `pcap-parser`; the per-frame records (pcap
//! record headers, EPB/SPB/PB fixed fields) are decoded here, in a few bounds-checked reads, so the
//! hot path allocates nothing (pcap-parser's block parser builds a `Vec` of options for every EPB
//! that has any, e.g. `epb_flags`) and a block whose content contradicts its length is skipped
//! rather than mistaken for a short read.
//!
//! Link-type numbers are the tcpdump.org LINKTYPE_ values
//! (<https://www.tcpdump.org/linktypes.html>), passed through unchanged for `pacstap-wire`.

// Every length, count and offset here comes from the wire or a file: no slice indexing that
// input controls (use `get`); a site that is provably in bounds says why in an `expect`.
#![deny(clippy::indexing_slicing)]

mod buffer;
mod file;
mod live;
mod merge;
mod read_ahead;
mod reader;
#[cfg(test)]
mod testfiles;

pub use file::PcapFileSource;
pub use live::{
    LiveConfig, LiveError, LiveSource, LiveStats, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, DEFAULT_TIMEOUT_MS,
};
pub use merge::MergedSource;

use pacstap_core::Timestamp;
use std::fmt;
use std::path::PathBuf;

/// Read-buffer size: large enough that a read system call is amortised over hundreds of frames,
/// small enough that merging dozens of files stays in tens of MiB.
pub const BUFFER_SIZE: usize = 1 << 18;

/// The largest block or record we will buffer. Wireshark's pcapng reader used the same 16 MiB
/// limit (wiretap/pcapng.c `MAX_BLOCK_SIZE`, before it was raised for D-Bus captures); Ethernet
/// frames, even with the largest snaplen libpcap allows (262144), are far below it. A larger
/// length is taken as corruption and recorded as [`Damage`].
pub const MAX_BLOCK: usize = 16 << 20;

/// One captured frame, borrowed from the reader's buffer until the next `next_frame` call.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// Capture time, already corrected for the interface's resolution and offset.
    pub ts: Timestamp,
    /// Index of the input file in the list given to [`MergedSource::open`] (0 for a lone file).
    pub source: usize,
    /// tcpdump LINKTYPE_ number of the interface the frame was captured on.
    pub linktype: u32,
    /// The captured bytes (at most the snaplen; may be shorter than the frame on the wire).
    pub data: &'a [u8],
    /// Length of the frame on the wire, as the file claims it.
    pub orig_len: u32,
}

/// A source of captured frames.
///
/// Lending: the frame borrows the source until the next call, which is what lets a file reader
/// hand out slices of its buffer without copying.
pub trait PacketSource {
    /// The next frame, or `None` when every input is exhausted (or damaged: see the source's
    /// damage accessors).
    fn next_frame(&mut self) -> Option<RawFrame<'_>>;
}

/// Damage found part-way through a file: the file is read up to it, and it is reported (not an
/// `Err` of the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Byte offset in the file of the block or record that could not be read.
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: damaged at byte {}: {}",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

/// Why a capture file could not be read at all.
#[derive(thiserror::Error, Debug)]
pub enum CaptureError {
    /// The file could not be opened (missing, permissions, a directory…).
    #[error("cannot open capture file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file opened but reading its header failed.
    #[error("cannot read capture file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty, or does not start like a pcap or pcapng file.
    #[error("{} is not a pcap or pcapng file: {reason}", path.display())]
    NotPcap { path: PathBuf, reason: String },
}
