//! Protocol decoders: probe each flow by content (the port is only a hint), dispatch it to its
//! decoder, and collect the events they emit (ARCHITECTURE: `proto`).
//!
//! # One shape per protocol
//!
//! [`dicom`], [`http`] (with DICOMweb), [`tls`] (metadata only) and [`hl7`] (over MLLP) are
//! sibling modules with the same files:
//!
//! - `mod.rs`: the flow (`DicomFlow`, `HttpFlow`, `TlsFlow`, `Hl7Flow`), implementing
//!   [`Decoder`] (`on_chunk`, `finish`, `held_bytes`, `lease_mut`), and the protocol's
//!   content probe and counters (DICOM's are `parser::probe_associate_rq` and the top-level
//!   fields of [`ProtoStats`]);
//! - `config.rs`: its settings and caps (each cap says where its value comes from; DICOM's
//!   settings stay top-level fields of [`ProtoConfig`], where the config file sets them);
//! - `parser.rs`: pure parsing, `&[u8]` in, values or "need more" out, no state (fuzz and
//!   bench entry points);
//! - `stream.rs`: the per-direction walker: framing, look-ahead across segments
//!   (`carry::Carry`), gaps, resynchronisation;
//! - `state.rs`: the connection's state (associations, transactions, acknowledgments) fed by
//!   the walkers through a sink;
//! - `event.rs`: what it emits: its events, and its anomaly names as an enum
//!   ([`dicom::DicomAnomaly`], [`http::HttpAnomaly`], [`tls::TlsAnomaly`], [`hl7::Hl7Anomaly`],
//!   declared with [`anomaly`]; each has `as_str()` and `ALL`).
//!
//! Shared by all four: [`Ctx`] (config, events, counters, packet time, the memory budget),
//! [`budget`] (decoder memory), [`decoder`] (the trait, the resync give-up rule, the
//! per-direction pairs), `carry` (the look-ahead). Tests share `testutil.rs` (the harness,
//! and `testutil/<proto>.rs` builders) and read captures from `crates/proto/testdata/<proto>/`.

// Input-controlled indexing is how a tap crashes (ARCHITECTURE rule 4): every slice access
// in the decoders goes through `get`. Tests may index: a panic there is a failed test.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod anomaly;
pub mod budget;
mod carry;
mod ctx;
pub mod decoder;
pub mod dicom;
pub mod hl7;
pub mod http;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tls;

pub use budget::{Lease, MemBudget};
use carry::Carry;
pub use ctx::Ctx;
pub use decoder::Decoder;

use dicom::parser::{probe_associate_rq, Plausible};
use dicom::DicomFlow;
use hl7::Hl7Flow;
use http::HttpFlow;
use pacstap_core::{
    ChunkBody, CloseReason, Direction, FlowMeta, Interest, ProtocolEvent, StreamChunk, StreamHandler, Timestamp,
};
use std::collections::BTreeMap;
use tls::TlsFlow;

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
    /// Ports where HTTP is decoded even when the flow's first bytes were not seen. CONTRACT §3.
    pub http_ports: Vec<u16>,
    /// Ports where TLS metadata is tracked even without a visible ClientHello. CONTRACT §3.
    pub tls_ports: Vec<u16>,
    /// Ports where HL7/MLLP is decoded even when the flow's first bytes were not seen.
    pub hl7_ports: Vec<u16>,
    pub http: http::HttpConfig,
    pub hl7: hl7::Hl7Config,
    /// Memory all decoders of one analyzer (one worker) may hold across its connections:
    /// control PDUs, command sets and data set prefixes, HTTP heads, TLS handshake messages,
    /// HL7 kept segments (see [`budget`]). Real traffic needs far less: a busy PACS with 1,000
    /// associations opening at once, each buffering a 30 KiB A-ASSOCIATE-RQ, holds 30 MiB for
    /// a moment, and steady DIMSE traffic holds a few KiB per connection. 64 MiB keeps the
    /// worst case of the per-message caps (256 KiB × every flow) from turning into gigabytes.
    /// An app with N workers gives each `1/N` (as it divides the flow table's caps).
    pub max_decoder_memory_bytes: usize,
    /// What each flow may hold from the budget's reserve half before drawing from its shared
    /// pool. 8 KiB holds a command set, an HTTP head with a bearer token, an MSH, a
    /// ClientHello and most A-ASSOCIATE-RQs (1-8 KiB for up to ~30 presentation contexts), so
    /// ordinary decoding never competes with connections pinning large messages.
    pub decoder_memory_guaranteed_per_flow: usize,
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
            http_ports: vec![80, 8042, 8080],
            tls_ports: vec![443, 2762, 8443],
            hl7_ports: vec![2575],
            http: http::HttpConfig::default(),
            hl7: hl7::Hl7Config::default(),
            max_decoder_memory_bytes: 64 << 20,
            decoder_memory_guaranteed_per_flow: 8 << 10,
        }
    }
}

impl ProtoConfig {
    /// The smallest decoder memory budget a worker is given: room for a few dozen large
    /// control PDUs and the guaranteed shares of 64 flows.
    pub const MIN_WORKER_DECODER_MEMORY: usize = 1 << 20;

    /// This config for one of `workers` analyzers: the decoder memory budget divided among
    /// them (as the app divides the flow table's caps), never below
    /// [`Self::MIN_WORKER_DECODER_MEMORY`].
    pub fn for_one_of(&self, workers: usize) -> ProtoConfig {
        ProtoConfig {
            max_decoder_memory_bytes: (self.max_decoder_memory_bytes / workers.max(1))
                .max(Self::MIN_WORKER_DECODER_MEMORY),
            ..self.clone()
        }
    }
}

/// Per-flow decoder state, stored inside the flow table entry.
#[derive(Debug)]
pub enum FlowState {
    /// No decision yet: the first bytes seen so far (a few, when too short to decide).
    Probing(ProbeBuf),
    Dicom(Box<DicomFlow>),
    Http(Box<HttpFlow>),
    Tls(Box<TlsFlow>),
    Hl7(Box<Hl7Flow>),
    /// Not a protocol we decode.
    Ignored,
}

impl FlowState {
    /// The flow's decoder, once the probe decided (ARCHITECTURE: one [`Decoder`] per protocol).
    fn decoder(&mut self) -> Option<&mut dyn Decoder> {
        match self {
            FlowState::Dicom(f) => Some(f.as_mut()),
            FlowState::Http(f) => Some(f.as_mut()),
            FlowState::Tls(f) => Some(f.as_mut()),
            FlowState::Hl7(f) => Some(f.as_mut()),
            FlowState::Probing(_) | FlowState::Ignored => None,
        }
    }

    /// The flow's charge against the decoder memory budget.
    fn lease_mut(&mut self) -> Option<&mut Lease> {
        self.decoder().map(Decoder::lease_mut)
    }

    /// Bytes the flow's decoder buffers hold now (capacities).
    fn held_bytes(&mut self) -> usize {
        self.decoder().map_or(0, |d| d.held_bytes())
    }
}

impl Default for FlowState {
    fn default() -> Self {
        FlowState::Probing(ProbeBuf::default())
    }
}

/// What a protocol's content probe says of a flow's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Yes,
    /// Consistent so far; more bytes needed to decide.
    NeedMore,
    No,
}

/// Bytes held while the first chunk is too short for any probe to decide. 16 bytes decide
/// every probe here (the longest is an HTTP method token plus a space: `OPTIONS `, or TLS's
/// 6-byte record + handshake header); a flow still undecided at 16 bytes is decided by port.
const PROBE_BUF: usize = 16;

/// The few first bytes of a flow held by [`FlowState::Probing`].
#[derive(Debug, Default, Clone)]
pub struct ProbeBuf {
    bytes: Carry<PROBE_BUF>,
    dir: Option<Direction>,
    offset: u64,
}

impl ProbeBuf {
    fn held(&self) -> &[u8] {
        self.bytes.held()
    }
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
    /// Decoder buffer growths the memory budget refused (each gave up one message).
    pub memory_cap_hits: u64,
    /// Gauge: bytes the decoders hold now (sums over workers).
    pub memory_held: u64,
    pub http: http::HttpStats,
    pub tls: tls::TlsStats,
    pub hl7: hl7::Hl7Stats,
}

impl ProtoStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &ProtoStats) {
        let ProtoStats {
            dicom_flows,
            pdus,
            associations,
            commands,
            dataset_bytes_skipped,
            anomalies,
            gap_bytes,
            flows_ignored,
            events,
            memory_cap_hits,
            memory_held,
            http,
            tls,
            hl7,
        } = other;
        self.dicom_flows += dicom_flows;
        self.pdus += pdus;
        self.associations += associations;
        self.commands += commands;
        self.dataset_bytes_skipped += dataset_bytes_skipped;
        for (k, v) in anomalies {
            *self.anomalies.entry(k).or_insert(0) += v;
        }
        self.gap_bytes += gap_bytes;
        self.flows_ignored += flows_ignored;
        self.events += events;
        self.memory_cap_hits += memory_cap_hits;
        self.memory_held += memory_held;
        self.http.merge(http);
        self.tls.merge(tls);
        self.hl7.merge(hl7);
    }
}

/// What the probe decided for a flow.
enum Verdict {
    Dicom {
        resync: bool,
        probation: bool,
    },
    /// `midstream`: decided by port, the flow's first bytes were not a protocol start.
    Http {
        midstream: bool,
    },
    Tls {
        midstream: bool,
    },
    Hl7 {
        midstream: bool,
    },
    /// Too short to decide: hold the bytes and wait for more.
    Hold,
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
    budget: MemBudget,
}

impl Analyzer {
    pub fn new(cfg: ProtoConfig) -> Self {
        let budget = MemBudget::new(cfg.max_decoder_memory_bytes, cfg.decoder_memory_guaranteed_per_flow);
        Analyzer {
            cfg,
            events: Vec::new(),
            stats: ProtoStats::default(),
            budget,
        }
    }

    /// The decoder memory budget (what is held now, its peak, refusals).
    pub fn budget(&self) -> &MemBudget {
        &self.budget
    }

    /// Events produced since the last drain, in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ProtocolEvent> {
        self.events.drain(..)
    }

    /// Whether [`Analyzer::drain_events`] has anything (checked per packet).
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn stats(&self) -> &ProtoStats {
        &self.stats
    }

    /// Replace the port hints (a config reload). Only flows decided from now on see them:
    /// a flow already decoded as DICOM stays DICOM.
    pub fn set_port_hints(&mut self, dicom: &[u16], http: &[u16], tls: &[u16], hl7: &[u16]) {
        self.cfg.dicom_ports = dicom.to_vec();
        self.cfg.http_ports = http.to_vec();
        self.cfg.tls_ports = tls.to_vec();
        self.cfg.hl7_ports = hl7.to_vec();
    }

    /// Decide from the first bytes of a flow. Content wins over ports: an A-ASSOCIATE-RQ is
    /// DICOM on any port, a ClientHello TLS, a request line HTTP, `<VT>MSH` HL7. Ports only
    /// decide flows whose start was not captured. `last_chance`: no more bytes will be held.
    fn probe(&self, meta: &FlowMeta, body: ChunkBody<'_>, last_chance: bool) -> Verdict {
        let on = |ports: &[u16]| ports.contains(&meta.client.port) || ports.contains(&meta.server.port);
        let dicom_port = on(&self.cfg.dicom_ports);
        let data = match body {
            ChunkBody::Data([]) | ChunkBody::Close(_) => return Verdict::Undecided,
            ChunkBody::Data(data) => data,
            ChunkBody::Gap(_) => return self.by_port(meta, Verdict::Undecided),
        };
        match probe_associate_rq(data, self.cfg.max_control_pdu_bytes) {
            Plausible::Yes => {
                return Verdict::Dicom {
                    resync: false,
                    probation: false,
                }
            }
            // Fewer than 8 bytes, all consistent with an RQ: hold them until the protocol
            // version decides (an RQ's claimed length alone does not: it may exceed the cap).
            Plausible::NeedMore { .. } if !last_chance && data.len() < PROBE_BUF => return Verdict::Hold,
            // No more bytes will be held: confirm on the full header.
            Plausible::NeedMore { .. } => {
                return Verdict::Dicom {
                    resync: false,
                    probation: !dicom_port,
                }
            }
            Plausible::No => {}
        }
        let probes = [tls::probe(data), http::probe(data), hl7::probe(data)];
        match probes {
            [Probe::Yes, ..] => return Verdict::Tls { midstream: false },
            [_, Probe::Yes, _] => return Verdict::Http { midstream: false },
            [_, _, Probe::Yes] => return Verdict::Hl7 { midstream: false },
            _ => {}
        }
        if !last_chance && probes.contains(&Probe::NeedMore) && data.len() < PROBE_BUF {
            return Verdict::Hold;
        }
        self.by_port(meta, Verdict::NotOurs)
    }

    /// The port-hint fallback, for flows whose start was not captured.
    fn by_port(&self, meta: &FlowMeta, otherwise: Verdict) -> Verdict {
        let on = |ports: &[u16]| ports.contains(&meta.client.port) || ports.contains(&meta.server.port);
        if on(&self.cfg.dicom_ports) {
            Verdict::Dicom {
                resync: true,
                probation: false,
            }
        } else if on(&self.cfg.tls_ports) {
            Verdict::Tls { midstream: true }
        } else if on(&self.cfg.http_ports) {
            Verdict::Http { midstream: true }
        } else if on(&self.cfg.hl7_ports) {
            Verdict::Hl7 { midstream: true }
        } else {
            otherwise
        }
    }

    /// Feed one chunk to the flow's decoder; false when the decoder gives the flow up.
    fn decode(&mut self, state: &mut FlowState, meta: &FlowMeta, chunk: &StreamChunk<'_>) -> bool {
        let lease = state.lease_mut().map(|l| *l).unwrap_or_default();
        let mut ctx = Ctx::new(
            &self.cfg,
            &mut self.events,
            &mut self.stats,
            meta,
            chunk.ts,
            &mut self.budget,
            lease,
        );
        let keep = match state {
            FlowState::Probing(_) => true,
            FlowState::Ignored => false,
            _ => state.decoder().is_some_and(|d| d.on_chunk(&mut ctx, chunk)),
        };
        let lease = ctx.lease;
        let held = state.held_bytes();
        if let Some(l) = state.lease_mut() {
            *l = lease;
            self.budget.settle(l, held);
        }
        self.stats.memory_held = self.budget.used() as u64;
        keep
    }

    /// Return everything a flow leaving the decoders held to the budget.
    fn release(&mut self, state: &mut FlowState) {
        if let Some(l) = state.lease_mut() {
            self.budget.release(l);
        }
        self.stats.memory_held = self.budget.used() as u64;
    }

    fn sync_event_count(&mut self, before: usize) {
        self.stats.events += (self.events.len().saturating_sub(before)) as u64;
    }
}

impl StreamHandler<FlowState> for Analyzer {
    fn on_chunk(&mut self, state: &mut FlowState, meta: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
        if let FlowState::Ignored = state {
            return Interest::Ignore;
        }
        let before = self.events.len();
        let mut keep = true;
        if let FlowState::Probing(buf) = state {
            // Bytes held from an earlier, too-short chunk are probed together with this one.
            let joined: ([u8; PROBE_BUF], usize);
            let mut held = std::mem::take(buf);
            let other_dir = held.dir.is_some_and(|d| d != chunk.dir);
            let probe_body = match chunk.body {
                ChunkBody::Data(d) if !held.bytes.is_empty() && !other_dir => {
                    joined = held.bytes.joined::<PROBE_BUF>(d);
                    ChunkBody::Data(joined.0.get(..joined.1).unwrap_or_default())
                }
                ChunkBody::Data(_) if other_dir => ChunkBody::Data(held.held()),
                body => body,
            };
            let verdict = self.probe(meta, probe_body, other_dir || held.bytes.len() >= PROBE_BUF);
            *state = match verdict {
                Verdict::Undecided if held.bytes.is_empty() => FlowState::default(),
                Verdict::Hold | Verdict::Undecided => {
                    // Bytes after a gap do not continue the held ones: probe them afresh.
                    if let ChunkBody::Gap(_) = chunk.body {
                        *state = FlowState::default();
                        return Interest::Continue;
                    }
                    if let ChunkBody::Data(d) = chunk.body {
                        if held.dir.is_none() {
                            held.dir = Some(chunk.dir);
                            held.offset = chunk.offset;
                        }
                        held.bytes.push(d);
                    }
                    *state = FlowState::Probing(held);
                    return Interest::Continue;
                }
                Verdict::Dicom { resync, probation } => FlowState::Dicom(Box::new(DicomFlow::new(resync, probation))),
                Verdict::Http { midstream } => {
                    FlowState::Http(Box::new(HttpFlow::new(&self.cfg, midstream, meta.handshake_seen)))
                }
                Verdict::Tls { midstream } => FlowState::Tls(Box::new(TlsFlow::new(&self.cfg, midstream, chunk.ts))),
                Verdict::Hl7 { midstream } => FlowState::Hl7(Box::new(Hl7Flow::new(&self.cfg, midstream))),
                Verdict::NotOurs => FlowState::Ignored,
            };
            if !held.bytes.is_empty() {
                if let Some(dir) = held.dir {
                    let replay = StreamChunk {
                        flow: chunk.flow,
                        dir,
                        ts: chunk.ts,
                        offset: held.offset,
                        body: ChunkBody::Data(held.held()),
                    };
                    keep = self.decode(state, meta, &replay);
                }
            }
        }
        if keep {
            keep = self.decode(state, meta, &chunk);
        }
        self.sync_event_count(before);
        if keep {
            Interest::Continue
        } else {
            self.stats.flows_ignored += 1;
            self.release(state);
            *state = FlowState::Ignored;
            Interest::Ignore
        }
    }

    fn on_flow_end(&mut self, mut state: FlowState, meta: &FlowMeta, reason: CloseReason, ts: Timestamp) {
        let before = self.events.len();
        self.release(&mut state);
        let mut ctx = Ctx::new(
            &self.cfg,
            &mut self.events,
            &mut self.stats,
            meta,
            ts,
            &mut self.budget,
            Lease::default(),
        );
        if let Some(decoder) = state.decoder() {
            decoder.finish(&mut ctx, reason);
        }
        // Anything a decoder took while finishing is freed with the flow.
        let mut lease = ctx.lease;
        self.budget.release(&mut lease);
        self.sync_event_count(before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
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
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 2222);
        assert_eq!(
            h.data(ToServer, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
            Interest::Ignore
        );
        assert!(matches!(h.st, FlowState::Ignored));
        assert_eq!(h.data(ToClient, b"SSH-2.0-OpenSSH_9.2p1\r\n"), Interest::Ignore);
        assert!(h.end(CloseReason::Fin).is_empty());
        assert_eq!(h.an.stats().flows_ignored, 1);
    }

    #[test]
    fn gap_before_data_off_port_waits() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 8000);
        assert_eq!(h.gap(ToServer, 100), Interest::Continue);
        assert!(matches!(h.st, FlowState::Probing(_)));
    }

    #[test]
    fn partial_rq_prefix_off_port_is_held_then_decided() {
        // Three bytes that could start an RQ (held until the version decides), then
        // something else entirely.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9000);
        assert_eq!(h.data(ToServer, &[1, 0, 0]), Interest::Continue);
        assert!(matches!(h.st, FlowState::Probing(_)));
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
        // Never silently: the give-up is an anomaly with its reason.
        let ev = h.events();
        assert_eq!(anomaly_names(&ev), vec!["dicom.give_up"]);
        assert!(h.end(CloseReason::Fin).is_empty());
    }

    /// Feed one chunk of `bytes` to `st` as flow `id` (client port 10_000 + id).
    fn feed(an: &mut Analyzer, st: &mut FlowState, id: u16, offset: u64, bytes: &[u8]) -> Interest {
        let mut m = meta(10_000 + id, 104);
        m.id = pacstap_core::FlowId(u64::from(id));
        let chunk = StreamChunk {
            flow: m.id,
            dir: ToServer,
            ts: Timestamp(1_795_773_600_000_000_000),
            offset,
            body: ChunkBody::Data(bytes),
        };
        an.on_chunk(st, &m, chunk)
    }

    #[test]
    fn memory_budget_holds_under_2000_pinned_rqs() {
        // 2,000 connections each send 240 KB of an A-ASSOCIATE-RQ claiming 250 KB (under the
        // 256 KiB cap) and never finish it: without a global budget that is ~480 MB held.
        let cfg = ProtoConfig::default();
        let limit = cfg.max_decoder_memory_bytes;
        let mut an = Analyzer::new(cfg);
        let mut big = associate_rq("ATTACKER", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        big[2..6].copy_from_slice(&250_000u32.to_be_bytes());
        big.resize(240_000, 0x20);
        let mut flows: Vec<FlowState> = (0..2000).map(|_| FlowState::default()).collect();
        let mut anomalies = Vec::new();
        for (i, st) in flows.iter_mut().enumerate() {
            let i = i as u16;
            // In MSS-sized pieces, as TCP delivers them.
            let mut off = 0u64;
            for piece in big.chunks(1448) {
                assert_eq!(feed(&mut an, st, i, off, piece), Interest::Continue);
                off += piece.len() as u64;
            }
            anomalies.extend(an.drain_events());
            assert!(
                an.budget().used() <= limit,
                "flow {i}: {} > {limit}",
                an.budget().used()
            );
        }
        assert!(an.budget().peak <= limit);
        eprintln!(
            "2000 pinned RQs: held {} of {limit} bytes (peak {}), {} refusals",
            an.budget().used(),
            an.budget().peak,
            an.stats().memory_cap_hits
        );
        assert!(
            an.budget().used() > limit / 2,
            "the budget was used: {}",
            an.budget().used()
        );
        assert!(an.stats().memory_cap_hits > 0);
        assert_eq!(an.stats().memory_held, an.budget().used() as u64);
        assert!(anomaly_names(&anomalies).contains(&"dicom.memory_budget"));

        // An ordinary association opening now still decodes whole: its RQ fits in the
        // per-flow guaranteed share, which the pinned flows cannot take from the pool.
        let mut st = FlowState::default();
        let rq = rq();
        assert!(rq.len() < 8 << 10);
        let _ = feed(&mut an, &mut st, 4000, 0, &rq);
        let m = meta(10_000 + 4000, 104);
        an.on_flow_end(st, &m, CloseReason::Fin, Timestamp(0));
        let ev: Vec<_> = an.drain_events().collect();
        let a = dicom_bodies(&ev);
        assert!(
            matches!(&a[..], [pacstap_core::DicomEvent::Association(a)] if a.calling_ae == "MODALITY1" && a.request_seen),
            "{ev:?}"
        );
        assert!(anomaly_names(&ev).is_empty(), "{ev:?}");

        // The refused flows still name their association from the RQ's first bytes, and
        // everything returns to the budget when the flows end.
        for (i, st) in flows.into_iter().enumerate() {
            let mut m = meta(10_000 + i as u16, 104);
            m.id = pacstap_core::FlowId(i as u64);
            an.on_flow_end(st, &m, CloseReason::Timeout, Timestamp(0));
        }
        let ev: Vec<_> = an.drain_events().collect();
        let named = dicom_bodies(&ev)
            .iter()
            .filter(|d| matches!(d, pacstap_core::DicomEvent::Association(a) if a.calling_ae == "ATTACKER"))
            .count();
        assert_eq!(named, 2000);
        assert_eq!(an.budget().used(), 0);
        assert_eq!(an.stats().memory_held, 0);
    }

    #[test]
    fn tiny_budget_holds_on_every_protocol_and_empties() {
        // Real conversations of each protocol, cut at random, with random bytes and gaps
        // mixed in, under a budget far too small for them (the fuzz target proto_budget
        // does the same on fuzzer input).
        let convs: Vec<(u16, Vec<u8>)> = vec![
            (104, {
                let ts: &[&str] = &[EXPLICIT_LE];
                let pcs: Vec<(u8, &str, &[&str])> = (0..40).map(|i| (2 * i + 1, CT_STORAGE, ts)).collect();
                let mut v = associate_rq("MODALITY1", "PACS", &pcs, Some((2, "u", "p")));
                v.extend(pdata(&[(1, 3, &cmd_store_rq(1, "1.2.3")), (1, 2, &vec![7u8; 9000])]));
                v
            }),
            (8042, {
                let mut v = format!("GET /x HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n", "c".repeat(9000)).into_bytes();
                v.extend(b"POST /login HTTP/1.1\r\nContent-Length: 20\r\n\r\nusername=a&password=b");
                v
            }),
            (2575, {
                let mut v = vec![0x0B];
                v.extend(b"MSH|^~\\&|A|B|C|D|20260101||MFN^M02|X1|P|2.5\r");
                for i in 0..300 {
                    v.extend(format!("MFE|MAD|{i}||STAFF{i}^Name\r").bytes());
                }
                v.extend([0x1C, 0x0D]);
                v
            }),
        ];
        let mut rng = Lcg(7);
        let mut hits = [0u64; 3];
        for round in 0..200 {
            let (port, base) = &convs[round % convs.len()];
            let cfg = ProtoConfig {
                max_decoder_memory_bytes: 2048 + (rng.next() % 8192) as usize,
                decoder_memory_guaranteed_per_flow: 256,
                ..ProtoConfig::default()
            };
            let mut h = Harness::new(cfg, 40_000, *port);
            let mut at = 0;
            while at < base.len() {
                let n = 1 + (rng.next() as usize) % 2000;
                let end = (at + n).min(base.len());
                let dir = if rng.next().is_multiple_of(5) {
                    ToClient
                } else {
                    ToServer
                };
                match rng.next() % 30 {
                    0 => {
                        let _ = h.gap(dir, rng.next() % 3000);
                    }
                    1 => {
                        let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                        let _ = h.data(dir, &junk);
                    }
                    _ => {
                        let _ = h.data(dir, &base[at..end]);
                    }
                }
                at = end;
                assert!(h.an.budget().used() <= h.an.budget().limit());
            }
            let _ = h.end(CloseReason::Fin);
            assert_eq!(h.an.budget().used(), 0, "round {round}");
            hits[round % 3] += h.an.stats().memory_cap_hits;
        }
        // Each protocol met refusals.
        assert!(hits.iter().all(|&n| n > 0), "{hits:?}");
    }

    #[test]
    fn config_defaults() {
        let c = ProtoConfig::default();
        assert_eq!(c.dicom_ports, vec![104, 11112, 4242]);
        assert_eq!(c.max_control_pdu_bytes, 256 * 1024);
        assert_eq!(c.max_command_bytes, 64 * 1024);
        assert_eq!(c.dataset_prefix_bytes, 64 * 1024);
        assert_eq!(c.max_decoder_memory_bytes, 64 << 20);
        assert_eq!(c.decoder_memory_guaranteed_per_flow, 8 << 10);
        assert_eq!(c.for_one_of(4).max_decoder_memory_bytes, 16 << 20);
        assert_eq!(c.for_one_of(0).max_decoder_memory_bytes, 64 << 20);
        assert_eq!(c.for_one_of(1000).max_decoder_memory_bytes, 1 << 20);
        assert_eq!(c.for_one_of(4).dicom_ports, c.dicom_ports);
    }
}
