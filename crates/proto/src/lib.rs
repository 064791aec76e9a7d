//! Protocol decoders: probe each flow by content (the port is only a hint), dispatch it to its
//! decoder, and collect the events they emit (ARCHITECTURE: `proto`).
//!
//! Today the only decoder is DICOM ([`dicom`]); HTTP, TLS and HL7 slot in as sibling modules
//! with a probe in `Analyzer::probe` and a variant in [`FlowState`].

pub mod dicom;

use dicom::parser::{probe_associate_rq, Plausible};
use dicom::DicomFlow;
use pacstap_core::{ChunkBody, CloseReason, FlowMeta, Interest, ProtocolEvent, StreamChunk, StreamHandler, Timestamp};
use std::collections::BTreeMap;

/// Decoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoConfig {
    /// Ports where a flow that does not begin with an A-ASSOCIATE-RQ is still taken for DICOM
    /// (capture began mid-association) and resynchronised. CONTRACT §3 `[ports] dicom`.
    pub dicom_ports: Vec<u16>,
    /// Cap on a buffered control PDU (A-ASSOCIATE-RQ/AC/RJ, A-RELEASE, A-ABORT). These are
    /// decoded whole, so they are held in memory; real ones are small (an RQ proposing all
    /// ~120 storage SOP classes with 3-4 transfer syntaxes each is ~30 KiB), the largest
    /// legitimate addition is a User Identity sub-item whose primary and secondary fields are
    /// each up to 64 KiB (u16 lengths, PS3.7 §D.3.3.7). 256 KiB covers that with headroom.
    pub max_control_pdu_bytes: u32,
    /// Cap on a reassembled command set. Real ones are 100-300 bytes (a dozen group-0000
    /// elements, PS3.7 §E.1); 64 KiB leaves room for any legitimate use.
    pub max_command_bytes: usize,
    /// Bytes of each request data set kept for the stop-at-tag sniff. (0020,000D) sits after
    /// the patient and study modules, normally in the first 1-2 KiB; 64 KiB allows for large
    /// private or sequence elements before it.
    pub dataset_prefix_bytes: usize,
    /// Requests awaiting a final response per association. The default asynchronous
    /// operations window is 1 (PS3.7 §D.3.3.3); C-GET adds the C-STORE sub-operations in the
    /// other direction. 256 is far above what implementations negotiate.
    pub max_pending_commands: usize,
    /// Anomaly events emitted per flow (all are still counted in [`ProtoStats::anomalies`]):
    /// a broken flow must not flood the event stream.
    pub max_anomaly_events_per_flow: u32,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        ProtoConfig {
            dicom_ports: vec![104, 11112, 4242],
            max_control_pdu_bytes: 256 << 10,
            max_command_bytes: 64 << 10,
            dataset_prefix_bytes: 64 << 10,
            max_pending_commands: 256,
            max_anomaly_events_per_flow: 16,
        }
    }
}

/// Per-flow decoder state, stored inside the flow table entry.
#[derive(Debug, Default)]
pub enum FlowState {
    /// No payload seen yet.
    #[default]
    Probing,
    Dicom(Box<DicomFlow>),
    /// Not a protocol we decode.
    Ignored,
}

/// Decoder counters (for metrics and the replay summary).
#[derive(Debug, Default, Clone)]
pub struct ProtoStats {
    /// Flows in which at least one DICOM PDU was read.
    pub dicom_flows: u64,
    pub pdus: u64,
    /// Association events emitted.
    pub associations: u64,
    /// DIMSE requests seen.
    pub commands: u64,
    /// Data set bytes passed over without being kept (everything after the sniff prefix).
    pub dataset_bytes_skipped: u64,
    /// Every anomaly by name, including those past the per-flow event cap.
    pub anomalies: BTreeMap<&'static str, u64>,
    /// Bytes lost to capture gaps in flows being decoded.
    pub gap_bytes: u64,
    /// Flows that turned out not to be any protocol we decode.
    pub flows_ignored: u64,
    /// Events emitted (all kinds).
    pub events: u64,
}

/// What the probe decided for a flow.
enum Verdict {
    Dicom {
        resync: bool,
        probation: bool,
    },
    /// Nothing to decide on yet (no payload, or a gap before any data off the DICOM ports).
    Undecided,
    NotOurs,
}

/// The protocol stage: a [`StreamHandler`] over [`FlowState`] that buffers events for the app
/// to drain after each packet.
pub struct Analyzer {
    cfg: ProtoConfig,
    events: Vec<ProtocolEvent>,
    stats: ProtoStats,
}

impl Analyzer {
    pub fn new(cfg: ProtoConfig) -> Self {
        Analyzer {
            cfg,
            events: Vec::new(),
            stats: ProtoStats::default(),
        }
    }

    /// Events produced since the last drain, in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ProtocolEvent> {
        self.events.drain(..)
    }

    pub fn stats(&self) -> &ProtoStats {
        &self.stats
    }

    /// Decide from the first chunk of a flow. Content wins over ports: an A-ASSOCIATE-RQ is
    /// DICOM on any port. Probes for other protocols go before the port-hint fallbacks.
    fn probe(&self, meta: &FlowMeta, chunk: &StreamChunk<'_>) -> Verdict {
        let dicom_port =
            self.cfg.dicom_ports.contains(&meta.client.port) || self.cfg.dicom_ports.contains(&meta.server.port);
        match chunk.body {
            ChunkBody::Data([]) | ChunkBody::Close(_) => Verdict::Undecided,
            ChunkBody::Data(data) => match probe_associate_rq(data, self.cfg.max_control_pdu_bytes) {
                Plausible::Yes => Verdict::Dicom {
                    resync: false,
                    probation: false,
                },
                // Fewer than 8 bytes, all consistent with an RQ: confirm on the full header.
                Plausible::NeedMore { .. } => Verdict::Dicom {
                    resync: false,
                    probation: !dicom_port,
                },
                // (future: HTTP / TLS / HL7 content probes here)
                Plausible::No if dicom_port => Verdict::Dicom {
                    resync: true,
                    probation: false,
                },
                Plausible::No => Verdict::NotOurs,
            },
            ChunkBody::Gap(_) if dicom_port => Verdict::Dicom {
                resync: true,
                probation: false,
            },
            ChunkBody::Gap(_) => Verdict::Undecided,
        }
    }

    fn sync_event_count(&mut self, before: usize) {
        self.stats.events += (self.events.len().saturating_sub(before)) as u64;
    }
}

impl StreamHandler<FlowState> for Analyzer {
    fn on_chunk(&mut self, state: &mut FlowState, meta: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
        if let FlowState::Probing = state {
            match self.probe(meta, &chunk) {
                Verdict::Dicom { resync, probation } => {
                    *state = FlowState::Dicom(Box::new(DicomFlow::new(resync, probation)));
                }
                Verdict::Undecided => return Interest::Continue,
                Verdict::NotOurs => {
                    *state = FlowState::Ignored;
                    self.stats.flows_ignored += 1;
                    return Interest::Ignore;
                }
            }
        }
        let before = self.events.len();
        let keep = match state {
            FlowState::Probing => true,
            FlowState::Ignored => false,
            FlowState::Dicom(flow) => {
                let mut ctx = dicom::state_ctx(&self.cfg, &mut self.events, &mut self.stats, meta, chunk.ts);
                flow.on_chunk(&mut ctx, &chunk)
            }
        };
        self.sync_event_count(before);
        if keep {
            Interest::Continue
        } else {
            if !matches!(state, FlowState::Ignored) {
                self.stats.flows_ignored += 1;
            }
            *state = FlowState::Ignored;
            Interest::Ignore
        }
    }

    fn on_flow_end(&mut self, state: FlowState, meta: &FlowMeta, reason: CloseReason, ts: Timestamp) {
        let before = self.events.len();
        if let FlowState::Dicom(mut flow) = state {
            let mut ctx = dicom::state_ctx(&self.cfg, &mut self.events, &mut self.stats, meta, ts);
            flow.finish(&mut ctx, reason);
        }
        self.sync_event_count(before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::testutil::*;
    use pacstap_core::Direction::{ToClient, ToServer};

    fn rq() -> Vec<u8> {
        associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None)
    }

    #[test]
    fn rq_on_any_port_is_dicom() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 8000);
        assert_eq!(h.data(ToServer, &rq()), Interest::Continue);
        assert!(matches!(h.st, FlowState::Dicom(_)));
        assert_eq!(h.an.stats().dicom_flows, 1);
    }

    #[test]
    fn other_protocols_off_port_are_ignored() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 80);
        assert_eq!(h.data(ToServer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Interest::Ignore);
        assert!(matches!(h.st, FlowState::Ignored));
        assert_eq!(h.data(ToClient, b"HTTP/1.1 200 OK\r\n"), Interest::Ignore);
        assert!(h.end(CloseReason::Fin).is_empty());
        assert_eq!(h.an.stats().flows_ignored, 1);
    }

    #[test]
    fn gap_before_data_off_port_waits() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 8000);
        assert_eq!(h.gap(ToServer, 100), Interest::Continue);
        assert!(matches!(h.st, FlowState::Probing));
    }

    #[test]
    fn partial_rq_prefix_off_port_is_on_probation() {
        // Three bytes that could start an RQ, then something else entirely.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9000);
        assert_eq!(h.data(ToServer, &[1, 0, 0]), Interest::Continue);
        assert!(matches!(h.st, FlowState::Dicom(_)));
        assert_eq!(h.data(ToServer, &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), Interest::Ignore);
        assert!(matches!(h.st, FlowState::Ignored));
        assert!(h.events().is_empty());
        assert_eq!(h.an.stats().dicom_flows, 0);

        // The same start, completed as a real RQ: confirmed.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9000);
        let r = rq();
        h.data_split(ToServer, &r, &[3]);
        assert_eq!(h.last_interest, Interest::Continue);
        assert!(matches!(h.st, FlowState::Dicom(_)));
        let ev = h.end(CloseReason::Fin);
        assert_eq!(dicom_bodies(&ev).len(), 1);
    }

    #[test]
    fn dicom_port_without_pdus_is_given_up() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 104);
        let junk = vec![0xEEu8; 64 << 10];
        for _ in 0..((dicom::RESYNC_GIVE_UP_BYTES >> 16) + 1) {
            if h.data(ToServer, &junk) == Interest::Ignore {
                break;
            }
        }
        assert_eq!(h.last_interest, Interest::Ignore);
        assert!(h.end(CloseReason::Fin).is_empty());
    }

    #[test]
    fn config_defaults() {
        let c = ProtoConfig::default();
        assert_eq!(c.dicom_ports, vec![104, 11112, 4242]);
        assert_eq!(c.max_control_pdu_bytes, 256 * 1024);
        assert_eq!(c.max_command_bytes, 64 * 1024);
        assert_eq!(c.dataset_prefix_bytes, 64 * 1024);
    }
}
