//! Reassembled stream pieces handed from `pacstap-flow` to the protocol decoders.

use crate::flow::{Direction, FlowId, FlowMeta};
use crate::time::Timestamp;

/// Why a direction or a whole connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// FIN seen (for this direction).
    Fin,
    /// RST seen.
    Rst,
    /// No packet within the idle timeout.
    Timeout,
    /// The capture ended with the connection still open.
    EndOfCapture,
    /// Evicted from a full flow table.
    Evicted,
}

/// What a chunk carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkBody<'a> {
    /// In-order bytes. Borrowed from the packet when they arrived in order, else from the
    /// reassembly buffer.
    Data(&'a [u8]),
    /// `len` bytes were lost (never captured, or a hole not filled within its bound).
    /// The decoder must resynchronise.
    Gap(u64),
    /// The stream ended. For `Fin` only this direction ended; the others end both.
    Close(CloseReason),
}

/// A piece of one direction of a reassembled TCP stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamChunk<'a> {
    pub flow: FlowId,
    pub dir: Direction,
    /// Time of the packet that completed this chunk.
    pub ts: Timestamp,
    /// Stream offset of the first byte (0 = first byte after the SYN, or first byte seen).
    pub offset: u64,
    pub body: ChunkBody<'a>,
}

/// Whether the handler still wants a flow's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Interest {
    /// Keep reassembling and delivering.
    Continue,
    /// Stop buffering and delivering payload for this flow (e.g. not a protocol we decode);
    /// the flow stays in the table so it is not picked up again, and `on_flow_end` still comes.
    Ignore,
}

/// The consumer of reassembled streams: the protocol decoders.
///
/// `S` is per-flow state stored inside the flow table entry, so the decoder's state comes with
/// the chunk without a second hash lookup.
pub trait StreamHandler<S> {
    /// In-order data, a gap, or the end of one direction (`Close(Fin)`).
    fn on_chunk(&mut self, state: &mut S, meta: &FlowMeta, chunk: StreamChunk<'_>) -> Interest;

    /// Called exactly once per flow when it leaves the table. `reason`: `Fin` when both
    /// directions finished, else `Rst`, `Timeout`, `EndOfCapture` or `Evicted`.
    /// All data that could be delivered has been delivered before this call.
    fn on_flow_end(&mut self, state: S, meta: &FlowMeta, reason: CloseReason, ts: Timestamp);
}
