//! PLACEHOLDER being replaced by the tls decoder (issue 3). Until then it claims no flow.

use crate::{Ctx, Probe, ProtoConfig};
use pacstap_core::{CloseReason, StreamChunk};

/// Counters of the tls decoder.
#[derive(Debug, Clone, Default)]
pub struct TlsStats {}

/// Content probe on a flow's first bytes.
pub fn probe(_data: &[u8]) -> Probe {
    Probe::No
}

/// Per-flow state.
#[derive(Debug, Default)]
pub struct TlsFlow {}

impl TlsFlow {
    pub fn new(_cfg: &ProtoConfig, _midstream: bool, _start: pacstap_core::Timestamp) -> Self {
        TlsFlow {}
    }

    pub fn on_chunk(&mut self, _ctx: &mut Ctx<'_>, _chunk: &StreamChunk<'_>) -> bool {
        false
    }

    pub fn finish(&mut self, _ctx: &mut Ctx<'_>, _reason: CloseReason) {}
}
