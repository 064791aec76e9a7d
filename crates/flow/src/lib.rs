//! Passive bidirectional TCP reassembly: the `flow` stage of pacstap.
//!
//! A tap cannot ask for a retransmission and is not told what the endpoints received, so this
//! crate rebuilds each direction of every TCP connection from whatever packets the capture holds,
//! in whatever order they come, and says plainly where bytes are missing
//! ([`ChunkBody::Gap`](pacstap_core::ChunkBody::Gap)) so the decoders can resynchronise instead
//! of stalling or misparsing.
//!
//! - [`FlowTable`] keys connections by their canonical 4-tuple (one hash lookup per packet),
//!   decides who the client is, keeps flows in least-recently-active order for timeouts and
//!   eviction, and hands stream pieces to a [`StreamHandler`](pacstap_core::StreamHandler).
//! - `reassembly::HalfStream` turns one direction's segments into an in-order byte stream:
//!   in-order bytes go out as slices of the packet (no copy), out-of-order bytes are copied into a
//!   bounded buffer until the hole before them fills or is declared lost.
//! - Before a packet may change a flow it is checked as the endpoints check it: IPv4 header and
//!   TCP checksums (`checksum`, modes [`ChecksumMode`]), a RST's sequence number and a SYN on an
//!   open connection (`control`, RFC 5961). Failures are counted in [`FlowStats`] and reported as
//!   `tcp.*` anomaly events ([`FlowTable::drain_events`]).
//! - A hole the receiver acknowledged waits a bounded while for its data (`reassembly::ack_wait`:
//!   SPAN ports deliver ACKs ahead of the data they cover); retransmissions are compared with
//!   buffered and recently delivered bytes (`history`); a full table evicts by class
//!   (`activity`: half-open flows first); the clock ignores a lone far-off timestamp (`clock`).
//!
//! Packet time is the only clock (ARCHITECTURE rule 1); every buffer has a cap whose hits are
//! counted in [`FlowStats`] (rule 5); sequence numbers are compared modulo 2^32 and never
//! subtracted unchecked (rule 4), and stream offsets are `u64`, so streams longer than 4 GiB work.

// Input-controlled indexing is how a tap crashes (the workspace allows the lint only for the
// crates not yet cleaned): every index here is a `get`, a `PerDirection`, or a site marked with
// its reason. Tests index freely: a panic there is a failed test.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod activity;
mod checksum;
mod clock;
mod config;
mod control;
mod history;
mod paws;
mod reassembly;
mod table;

pub use checksum::AUTO_SAMPLE as CHECKSUM_AUTO_SAMPLE;
pub use clock::{CONFIRMATIONS, MAX_STEP};
pub use config::{ChecksumMode, FlowConfig, FlowStats};
pub use reassembly::PIECE_OVERHEAD;
pub use table::FlowTable;
