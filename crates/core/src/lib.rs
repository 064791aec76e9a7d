//! Shared vocabulary of pacstap.
//!
//! Every stage (capture → wire → flow → proto → detect → output) speaks in these types, so they
//! live in one small crate with no I/O. Packet time ([`Timestamp`]) is the only clock anywhere
//! below the output stage: windows, timeouts and alerts are all computed from it, which is what
//! makes a replay give the same answer as the live run that saw the same packets.

pub mod event;
pub mod flow;
pub mod packet;
pub mod stream;
pub mod time;
pub mod vocab;

pub use event::*;
pub use flow::{Direction, Endpoint, FlowId, FlowKey, FlowMeta};
pub use packet::{Packet, TcpFlags, TcpHeader};
pub use stream::{ChunkBody, CloseReason, Interest, StreamChunk, StreamHandler};
pub use time::Timestamp;
