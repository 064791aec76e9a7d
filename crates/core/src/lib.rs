//! Shared vocabulary of pacstap.
//!
//! Every stage (capture → wire → flow → proto → detect → output) speaks in these types, so they
//! live in one small crate with no I/O. Packet time ([`Timestamp`]) is the only clock anywhere
//! below the output stage: windows, timeouts and alerts are all computed from it, which is what
//! makes a replay give the same answer as the live run that saw the same packets.

// Input-controlled indexing is how a tap crashes (the workspace allows the lint only for the
// crates not yet cleaned): every index here is a `get`, a `PerDirection`, or a site marked with
// its reason. Tests index freely: a panic there is a failed test.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod event;
pub mod flow;
pub mod packet;
pub mod publish;
pub mod stream;
pub mod time;
pub mod units;
pub mod vocab;

pub use event::*;
pub use flow::{Direction, Endpoint, FlowId, FlowKey, FlowMeta, PerDirection};
pub use packet::{Packet, TcpFlags, TcpHeader};
pub use publish::PublishTotals;
pub use stream::{ChunkBody, CloseReason, Interest, StreamChunk, StreamHandler};
pub use time::Timestamp;
pub use vocab::{EntityKind, Rule};
