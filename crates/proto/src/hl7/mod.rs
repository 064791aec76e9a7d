//! PLACEHOLDER being replaced by the hl7 decoder (issue 3). Until then it claims no flow.

use crate::{Ctx, Probe, ProtoConfig};
use pacstap_core::{CloseReason, StreamChunk};

/// Settings of the hl7 decoder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hl7Config {}

/// Counters of the hl7 decoder.
#[derive(Debug, Clone, Default)]
pub struct Hl7Stats {}

/// Content probe on a flow's first bytes.
pub fn probe(_data: &[u8]) -> Probe {
    Probe::No
}

/// Per-flow state.
#[derive(Debug, Default)]
pub struct Hl7Flow {}

impl Hl7Flow {
    pub fn new(_cfg: &ProtoConfig, _midstream: bool) -> Self {
        Hl7Flow {}
    }

    pub fn on_chunk(&mut self, _ctx: &mut Ctx<'_>, _chunk: &StreamChunk<'_>) -> bool {
        false
    }

    pub fn finish(&mut self, _ctx: &mut Ctx<'_>, _reason: CloseReason) {}
}
