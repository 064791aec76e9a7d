//! PLACEHOLDER being replaced by the http decoder (issue 3). Until then it claims no flow.

use crate::{Ctx, Probe, ProtoConfig};
use pacstap_core::{CloseReason, StreamChunk};

/// Settings of the http decoder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpConfig {}

/// Counters of the http decoder.
#[derive(Debug, Clone, Default)]
pub struct HttpStats {}

/// Content probe on a flow's first bytes.
pub fn probe(_data: &[u8]) -> Probe {
    Probe::No
}

/// Per-flow state.
#[derive(Debug, Default)]
pub struct HttpFlow {}

impl HttpFlow {
    pub fn new(_cfg: &ProtoConfig, _midstream: bool) -> Self {
        HttpFlow {}
    }

    pub fn on_chunk(&mut self, _ctx: &mut Ctx<'_>, _chunk: &StreamChunk<'_>) -> bool {
        false
    }

    pub fn finish(&mut self, _ctx: &mut Ctx<'_>, _reason: CloseReason) {}
}
