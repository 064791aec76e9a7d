//! The one shape every protocol's flow has: the analyzer stores it in
//! [`crate::FlowState`] and drives it only through [`Decoder`]; and the give-up rule the
//! decoders that resynchronise share, and the per-direction pairs every flow keeps.

use crate::budget::Lease;
use crate::Ctx;
use pacstap_core::{CloseReason, Direction, StreamChunk};

/// A protocol's per-flow decoder (`dicom::DicomFlow`, `http::HttpFlow`, `tls::TlsFlow`,
/// `hl7::Hl7Flow`).
pub trait Decoder {
    /// Handle one chunk of the flow; `false` when the decoder gives the flow up (it turned
    /// out not to be this protocol, or stopped being it).
    fn on_chunk(&mut self, ctx: &mut Ctx<'_>, chunk: &StreamChunk<'_>) -> bool;
    /// The flow left the table: end what is in progress and emit what is pending.
    fn finish(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason);
    /// Capacity of every buffer the flow holds (what it is charged against the budget).
    fn held_bytes(&self) -> usize;
    /// The flow's charge against the decoder memory budget (kept by the analyzer).
    fn lease_mut(&mut self) -> &mut Lease;
}

/// A flow taken by port whose start was not seen is scanned for the protocol's framing; one
/// that has not locked on after its protocol's `RESYNC_GIVE_UP_BYTES` is not that protocol.
/// `Some(seen)` when the flow must be given up now (the caller says why in its `give_up`
/// anomaly); the limit's value, and why, is each protocol's own.
pub(crate) fn resync_exhausted(never_locked: bool, seen: u64, limit: u64) -> Option<u64> {
    (never_locked && seen > limit).then_some(seen)
}

/// The element of a per-direction pair for `d` (no input-driven indexing).
pub(crate) fn at_mut<T>(pair: &mut [T; 2], d: Direction) -> &mut T {
    let [to_server, to_client] = pair;
    match d {
        Direction::ToServer => to_server,
        Direction::ToClient => to_client,
    }
}

pub(crate) fn at<T>(pair: &[T; 2], d: Direction) -> &T {
    let [to_server, to_client] = pair;
    match d {
        Direction::ToServer => to_server,
        Direction::ToClient => to_client,
    }
}

#[cfg(test)]
mod tests {
    use super::resync_exhausted;

    #[test]
    fn gives_up_only_past_the_limit_and_never_once_locked() {
        assert_eq!(resync_exhausted(true, 100, 100), None);
        assert_eq!(resync_exhausted(true, 101, 100), Some(101));
        assert_eq!(resync_exhausted(false, u64::MAX, 100), None);
    }
}
