//! The replay pipeline: capture → wire → flow → proto → detect → output, on one thread.
//!
//! Live capture (`crate::live`) runs the same stages behind a channel; keeping the per-frame
//! step in one place ([`Pipeline::frame`], [`Pipeline::finish`]) is what makes replay and live
//! give the same events for the same packets.
//!
//! # IP fragments
//!
//! IP defragmentation (`pacstap-defrag`) runs on the frame path right after the wire decoder:
//! a frame the decoder finds to be a fragment is counted as a frame as usual, and pushed to the
//! [`Defragmenter`]; the datagram it completes is put behind the fragment frame's link header
//! ([`pacstap_defrag::reframe`]) and goes through wire → flow → proto as one more frame, at the
//! completing fragment's packet time, not counted in `frames`/`bytes` (those are what was
//! captured). Where that runs:
//!
//! * one flow shard (replay, or a capture with one worker): inside [`FlowShard::frame`];
//! * several workers (`crate::live`): on the capture thread, before sharding, because the
//!   fragments of one datagram carry no ports (only the first has the TCP header) and so cannot
//!   be hashed to the worker owning their flow; the datagram is then sent to that worker, right
//!   after its last fragment, with the next frame number. Fragments are a tiny share of frames,
//!   and the capture thread already decodes every frame to shard it, so the common path pays one
//!   comparison. Both ways push the same fragments in the same order to one defragmenter, so
//!   the events are the same.
//!
//! Evidence: the ring and the replay's second pass keep the reassembled datagram (re-framed, so
//! it has the capture's link type and lands in the flow's pcap), not the fragments, which have
//! no ports to attribute them to a flow.

use crate::progress::Progress;
use anyhow::{Context, Result};
use pacstap_capture::{Damage, MergedSource, PacketSource, RawFrame};
use pacstap_core::{EventBody, FlowId, FlowKey, FlowMeta};
use pacstap_core::{ProtocolEvent, Timestamp};
use pacstap_defrag::{DefragConfig, DefragStats, Defragmenter};
use pacstap_detect::{Config, Detector, StateStore};
use pacstap_flow::{FlowConfig, FlowTable};
use pacstap_output::{
    AlertmanagerClient, EvidencePackets, EvidencePlan, EvidenceRing, JsonLinesSink, Metrics, RingLimits, RingStats,
    StatsSnapshot, Summary, SummarySection,
};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use pacstap_wire::WireDecoder;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `pacstap replay` was asked to do.
pub struct ReplayOptions {
    pub pcaps: Vec<PathBuf>,
    /// Where events go (`None`: nowhere, e.g. benchmarks).
    pub events: Option<Box<dyn Write>>,
    pub alerts_only: bool,
    pub progress: bool,
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
    /// Detection settings (CONTRACT §3); the decoders' port hints are taken from it.
    pub config: Config,
    /// Where learned state persists (`--state`); `None`: start fresh, keep nothing.
    pub state: Option<PathBuf>,
    /// Where each alert's evidence pcap goes (`--evidence-dir`).
    pub evidence_dir: Option<PathBuf>,
    /// Prometheus metrics to update while replaying (`--metrics-listen`).
    pub metrics: Option<Arc<Metrics>>,
    /// Worker threads decoding flows: 1 runs everything on this thread; more run the live
    /// pipeline's threads (capture, workers, detection) over the files, with the same events.
    pub workers: usize,
    /// Also push each alert to this Alertmanager (`--alertmanager`).
    pub alertmanager: Option<Arc<AlertmanagerClient>>,
    /// IP defragmentation limits (`--defrag-memory`, `--defrag-timeout`).
    pub defrag: DefragConfig,
}

impl ReplayOptions {
    pub fn new(pcaps: Vec<PathBuf>) -> Self {
        ReplayOptions {
            pcaps,
            events: None,
            alerts_only: false,
            progress: false,
            flow: FlowConfig::default(),
            proto: ProtoConfig::default(),
            config: Config::default(),
            state: None,
            evidence_dir: None,
            metrics: None,
            workers: 1,
            alertmanager: None,
            defrag: DefragConfig::default(),
        }
    }

    /// Use `config` for detection and for the decoders' port hints (CONTRACT §3 `[ports]`).
    pub fn with_config(mut self, config: Config) -> Self {
        apply_ports(&mut self.proto, &config);
        self.config = config;
        self
    }

    /// What detection gets (the events output is taken: it is moved there).
    fn detection_settings(&mut self, collect: bool, metrics: Option<Arc<Metrics>>) -> DetectionSettings {
        DetectionSettings {
            config: self.config.clone(),
            state: self.state.clone(),
            evidence_dir: self.evidence_dir.clone(),
            events: self.events.take(),
            alerts_only: self.alerts_only,
            collect,
            metrics,
            alertmanager: self.alertmanager.clone(),
        }
    }
}

/// The decoders' port hints come from the config (CONTRACT §3 `[ports]`); replay and capture
/// must agree on them, or the same packets would decode differently.
pub fn apply_ports(proto: &mut ProtoConfig, config: &Config) {
    proto.dicom_ports = config.ports.dicom.clone();
    proto.http_ports = config.ports.http.clone();
    proto.tls_ports = config.ports.tls.clone();
    proto.hl7_ports = config.ports.hl7.clone();
}

/// The wire stage's tunnel settings from the config's `[decapsulate]` table (which `main`
/// has already overridden with `--decapsulate`).
pub fn wire_config(config: &Config) -> pacstap_wire::WireConfig {
    pacstap_wire::WireConfig {
        enabled: config.decapsulate.enabled,
        vxlan_ports: config.decapsulate.vxlan_ports.clone(),
        geneve_ports: config.decapsulate.geneve_ports.clone(),
    }
}

/// What a replay found: the numbers behind the summary, for tests and benchmarks.
pub struct ReplayReport {
    pub frames: u64,
    pub bytes: u64,
    pub events_written: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    pub damages: Vec<Damage>,
    pub wire: pacstap_wire::WireStats,
    pub defrag: DefragStats,
    pub flow: pacstap_flow::FlowStats,
    pub proto: pacstap_proto::ProtoStats,
    pub detect: pacstap_detect::DetectStats,
    /// Problems with the state file that did not stop the run (e.g. a corrupt file set aside).
    pub state_warnings: Vec<String>,
    /// Evidence pcaps written (`--evidence-dir`).
    pub evidence_files: Vec<PathBuf>,
    /// Inputs that could not be read at all (each message names the file and why); the others
    /// were replayed. `pacstap replay` exits 1 when there are any.
    pub unreadable: Vec<String>,
    /// Alerts that got no evidence pcap because `MAX_EVIDENCE_FILES` incidents had one.
    pub evidence_dropped: u64,
    pub summary: Summary,
    /// Every event, when collected (tests); empty otherwise.
    pub events: Vec<ProtocolEvent>,
}

impl ReplayReport {
    /// The human summary (CONTRACT §1).
    pub fn render_summary(&self) -> String {
        let mut sections = Vec::new();
        let span = match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => format!("{a} → {b} ({:.3} s)", b.since(a).as_secs_f64()),
            _ => "no packets".to_owned(),
        };
        sections.push(SummarySection {
            title: "Input".into(),
            rows: vec![
                (
                    "frames".into(),
                    format!("{} ({:.1} MB)", self.frames, self.bytes as f64 / 1e6),
                ),
                ("capture time".into(), span),
                (
                    "decoded".into(),
                    format!(
                        "{} TCP, {} non-TCP, {} non-IP, {} truncated, {} malformed, {} IP fragments",
                        self.wire.tcp,
                        self.wire.non_tcp,
                        self.wire.non_ip,
                        self.wire.truncated,
                        self.wire.malformed,
                        self.wire.ip_fragments
                    ),
                ),
            ],
        });
        if let Some(tunnels) = tunnels_row(&self.wire) {
            if let Some(input) = sections.last_mut() {
                input.rows.push(("tunnels".into(), tunnels));
            }
        }
        if let Some(input) = sections.last_mut().filter(|_| self.defrag.fragments > 0) {
            let d = &self.defrag;
            input.rows.push((
                "IP fragments".into(),
                format!(
                    "{} datagrams reassembled ({} with a tiny first fragment, flagged); dropped: {} timed out, \
                     {} overlapping, {} too many fragments, {} too big, {} evicted (memory), {} malformed; \
                     {} cut by the snaplen, {} not TCP",
                    d.reassembled,
                    d.tiny,
                    d.timed_out,
                    d.overlapping,
                    d.too_many,
                    d.too_big,
                    d.evicted,
                    d.malformed,
                    d.truncated,
                    d.non_tcp
                ),
            ));
        }
        let f = &self.flow;
        sections.push(SummarySection {
            title: "TCP".into(),
            rows: vec![
                (
                    "flows".into(),
                    format!("{} ({} picked up mid-stream)", f.flows_created, f.midstream_pickups),
                ),
                ("gaps".into(), format!("{} ({} bytes lost)", f.gaps, f.gap_bytes)),
                (
                    "reassembly".into(),
                    format!(
                        "{} out-of-order, {} retransmitted bytes, {} overlap conflicts",
                        f.out_of_order_segments, f.retransmitted_bytes, f.overlap_conflicts
                    ),
                ),
                (
                    "caps hit".into(),
                    format!(
                        "flow table {}, buffer {}, holes {}",
                        f.flow_table_full, f.buffer_cap_hits, f.hole_cap_hits
                    ),
                ),
                (
                    "ack before data".into(),
                    format!(
                        "{} ({} filled late, {} became gaps)",
                        f.ack_before_data, f.ack_before_data_filled, f.ack_gaps
                    ),
                ),
                ("checksums".into(), checksum_summary(f)),
                (
                    "control".into(),
                    format!(
                        "RST {} accepted, {} in window (challenged), {} out of window; {} SYN on open connections; {} data after close",
                        f.rst_accepted, f.rst_in_window, f.rst_out_of_window, f.syn_on_established, f.data_after_close
                    ),
                ),
                (
                    "capture health".into(),
                    format!(
                        "{} one-sided flows ({:.0}% of ended), {} duplicate frames, {} timestamp jumps, \
                         {} segments cut by the snaplen",
                        f.one_sided_flows,
                        100.0 * f.one_sided_flows as f64 / f.flows_ended.max(1) as f64,
                        f.duplicate_frames,
                        f.timestamp_jumps,
                        f.truncated_packets
                    ),
                ),
                (
                    "evictions".into(),
                    format!(
                        "{} half-open, {} established, {} decoding",
                        f.evicted_half_open, f.evicted_established, f.evicted_decoding
                    ),
                ),
            ],
        });
        let mut text = self.summary.render(&sections, &self.proto.anomalies);
        if let Some(dir) = self.evidence_files.first().and_then(|f| f.parent()) {
            text.push_str(&format!(
                "Evidence: {} pcap file{} (mode 0600) in {}\n",
                self.evidence_files.len(),
                if self.evidence_files.len() == 1 { "" } else { "s" },
                dir.display()
            ));
        }
        for w in self.warnings() {
            text.push_str(&format!("WARNING: {w}\n"));
        }
        text
    }

    /// What was lost or not done: learned state set aside, inputs not read or damaged. Shown
    /// at the end of the summary, and on their own with `-q` (data loss is never quiet).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.state_warnings.clone();
        out.extend(pacstap_wire::decode_hint(&self.wire));
        out.extend(self.unreadable.iter().map(|u| format!("{u} (not replayed)")));
        if self.evidence_dropped > 0 {
            out.push(format!(
                "{} alerts got no evidence pcap: {} incidents already had one (the limit)",
                self.evidence_dropped,
                pacstap_output::MAX_EVIDENCE_FILES
            ));
        }
        out.extend(self.damages.iter().map(|d| {
            format!(
                "{} is damaged at byte {}: {} (read up to there)",
                d.path.display(),
                d.offset,
                d.reason
            )
        }));
        out
    }
}

/// The summary's "tunnels" row: frames per encapsulation peeled, and those that could not be;
/// `None` when the capture had none.
fn tunnels_row(w: &pacstap_wire::WireStats) -> Option<String> {
    let mut parts: Vec<String> = pacstap_wire::TunnelKind::ALL
        .iter()
        .filter(|k| w.decapsulated(**k) > 0)
        .map(|k| format!("{} {}", w.decapsulated(*k), k.name()))
        .collect();
    if w.too_deep > 0 {
        parts.push(format!("{} nested too deep", w.too_deep));
    }
    if w.unsupported_tunnel > 0 {
        parts.push(format!("{} unsupported", w.unsupported_tunnel));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The summary's checksum line: whether validation ran, and why not when it did not.
fn checksum_summary(f: &pacstap_flow::FlowStats) -> String {
    if f.checksum_offloaded > 0 {
        format!(
            "offloaded (not validated: {:.0}% of the first {} were bad)",
            100.0 * f.checksum_sample_bad as f64 / f.checksum_sampled.max(1) as f64,
            f.checksum_sampled
        )
    } else {
        format!(
            "{} bad (dropped), {} unverifiable (snaplen)",
            f.bad_checksums, f.unverifiable_checksums
        )
    }
}

/// wire → flow → proto for the flows one thread owns: the part of the pipeline that sees
/// every packet. Replay has one; live capture has one per worker, each fed the flows that hash
/// to it, so no flow state is ever shared between threads.
pub struct FlowShard {
    wire: WireDecoder,
    /// IP fragments are joined here when this shard sees every frame (see the module docs);
    /// `None` when the capture thread joins them.
    defrag: Option<Defragmenter>,
    flows: FlowTable<FlowState>,
    analyzer: Analyzer,
    /// Live evidence: the recent packets of this shard's flows (`capture --evidence-dir`).
    ring: Option<EvidenceRing>,
    /// With the ring: recent flows' ids by canonical key, so the packets that follow a flow's
    /// end (the last ACK of the FIN exchange, a late retransmission) still go to its evidence,
    /// as replay's second pass puts them there.
    ended: RecentKeys,
    last_noted: Option<(FlowKey, FlowId)>,
    frames: u64,
    bytes: u64,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    first_linktype: Option<u32>,
}

/// A [`FlowShard`]'s counters, summable over shards ([`ShardStats::merge`]).
#[derive(Debug, Clone, Default)]
pub struct ShardStats {
    pub frames: u64,
    pub bytes: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    pub first_linktype: Option<u32>,
    pub active_flows: u64,
    pub wire: pacstap_wire::WireStats,
    pub defrag: DefragStats,
    pub flow: pacstap_flow::FlowStats,
    pub proto: pacstap_proto::ProtoStats,
}

impl ShardStats {
    /// Adds another shard's counts: the earliest start, the latest end, summed counters.
    pub fn merge(&mut self, o: &ShardStats) {
        // Every field by name, as in the stage counters' own `merge`.
        let ShardStats {
            frames,
            bytes,
            first_ts,
            last_ts,
            first_linktype,
            active_flows,
            wire,
            defrag,
            flow,
            proto,
        } = o;
        self.frames += frames;
        self.bytes += bytes;
        if first_ts.is_some() && (self.first_ts.is_none() || *first_ts < self.first_ts) {
            self.first_ts = *first_ts;
            self.first_linktype = *first_linktype;
        }
        self.last_ts = self.last_ts.max(*last_ts);
        self.active_flows += active_flows;
        self.wire.merge(wire);
        self.defrag.merge(defrag);
        self.flow.merge(flow);
        self.proto.merge(proto);
    }
}

impl FlowShard {
    pub fn new(flow: FlowConfig, proto: ProtoConfig) -> FlowShard {
        FlowShard {
            wire: WireDecoder::new(),
            defrag: None,
            flows: FlowTable::new(flow),
            analyzer: Analyzer::new(proto),
            ring: None,
            ended: RecentKeys::default(),
            last_noted: None,
            frames: 0,
            bytes: 0,
            first_ts: None,
            last_ts: None,
            first_linktype: None,
        }
    }

    /// Join IP fragments in this shard, within `config` (when it sees every frame).
    pub fn defragment(&mut self, config: DefragConfig) {
        self.defrag = Some(Defragmenter::new(config));
    }

    /// Decode one frame; the events it completes are appended to `out`, in order.
    pub fn frame(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        self.frames += 1;
        self.bytes += frame.data.len() as u64;
        if self.first_ts.is_none() {
            self.first_ts = Some(frame.ts);
            self.first_linktype = Some(frame.linktype);
        }
        self.last_ts = Some(self.last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        let fragments = self.wire.stats.ip_fragments;
        self.decode(frame, out);
        // The wire decoder counted a fragment: decode it once more for its bytes (fragments are
        // rare, so the common path only compares a counter).
        if self.wire.stats.ip_fragments != fragments {
            if let Some(defrag) = self.defrag.as_mut() {
                if let Some(datagram) = defragment(defrag, self.wire.config(), frame) {
                    self.datagram(&datagram.frame(frame), out);
                }
            }
        }
    }

    /// A reassembled datagram (as a frame, [`pacstap_defrag::reframe`]) through wire → flow →
    /// proto, like a captured frame but not counted as one.
    pub fn datagram(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        self.decode(frame, out);
    }

    fn decode(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        if let Some(pkt) = self.wire.decode(frame.ts, frame.linktype, frame.data) {
            let id = self.flows.process(&pkt, &mut self.analyzer);
            // The flow stage's own anomalies (`tcp.*`) come before what the decoders made of
            // the packet.
            if self.flows.has_events() {
                out.extend(self.flows.drain_events());
            }
            if let Some(ring) = self.ring.as_mut() {
                let key = pkt.key.canonical().0;
                let id = match id {
                    Some(id) => {
                        // Bulk transfers come as runs of one flow's packets: note each run once.
                        if self.last_noted != Some((key, id)) {
                            self.ended.insert(key, id);
                            self.last_noted = Some((key, id));
                        }
                        Some(id)
                    }
                    None => self.ended.get(&key),
                };
                if let Some(id) = id {
                    let payload = pkt.payload.len();
                    ring.record(id, frame.ts, frame.linktype, frame.data, frame.orig_len, payload);
                }
            }
            if self.analyzer.has_events() {
                out.extend(self.analyzer.drain_events());
            }
        }
    }

    /// Keep the recent packets of this shard's flows within `limits`, for live evidence.
    pub fn keep_evidence(&mut self, limits: RingLimits) {
        self.ring = Some(EvidenceRing::new(limits));
    }

    /// Copies of the packets held for the wanted flows (those this shard owns; others are
    /// skipped), after the frames a previous copy had (`EvidenceRing::snapshot_since`).
    pub fn evidence_since(&self, wants: &[(FlowId, u64, u64)]) -> EvidencePackets {
        self.ring.as_ref().map(|r| r.snapshot_since(wants)).unwrap_or_default()
    }

    /// The evidence ring's counters, when it keeps one.
    pub fn evidence_stats(&self) -> Option<RingStats> {
        self.ring.as_ref().map(EvidenceRing::stats)
    }

    /// End of input: every open flow ends at `ts` (open associations become `incomplete`).
    pub fn finish(&mut self, ts: Timestamp, out: &mut Vec<ProtocolEvent>) {
        self.flows.flush(ts, &mut self.analyzer);
        out.extend(self.flows.drain_events());
        out.extend(self.analyzer.drain_events());
    }

    /// The tunnels the wire stage peels (`[decapsulate]`, `--decapsulate`).
    pub fn set_wire_config(&mut self, config: pacstap_wire::WireConfig) {
        self.wire.set_config(config);
    }

    /// New port hints (`[ports]`, on a config reload): flows decided from now on use them.
    pub fn set_port_hints(&mut self, config: &Config) {
        self.analyzer.set_port_hints(
            &config.ports.dicom,
            &config.ports.http,
            &config.ports.tls,
            &config.ports.hl7,
        );
    }

    pub fn last_ts(&self) -> Option<Timestamp> {
        self.last_ts
    }

    pub fn stats(&self) -> ShardStats {
        ShardStats {
            frames: self.frames,
            bytes: self.bytes,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            first_linktype: self.first_linktype,
            active_flows: self.flows.active_flows() as u64,
            wire: self.wire.stats.clone(),
            defrag: self.defrag.as_ref().map(Defragmenter::stats).unwrap_or_default(),
            flow: self.flows.stats().clone(),
            proto: self.analyzer.stats().clone(),
        }
    }
}

/// A datagram reassembled from IP fragments, as the frame that carries it on.
pub struct Datagram(pacstap_defrag::Reframed);

impl Datagram {
    /// As a frame at the completing fragment's time (`fragment`: that fragment's frame).
    pub fn frame<'a>(&'a self, fragment: &RawFrame<'_>) -> RawFrame<'a> {
        RawFrame {
            ts: fragment.ts,
            source: fragment.source,
            linktype: self.0.linktype,
            data: &self.0.data,
            orig_len: u32::try_from(self.0.data.len()).unwrap_or(u32::MAX),
        }
    }
}

/// Pushes `frame` (an IP fragment, as the wire decoder found) to `defrag`; the datagram it
/// completes, re-framed behind the fragment's link header.
pub fn defragment(
    defrag: &mut Defragmenter,
    wire: &pacstap_wire::WireConfig,
    frame: &RawFrame<'_>,
) -> Option<Datagram> {
    let fragment = pacstap_wire::decode_frame_with(wire, frame.ts, frame.linktype, frame.data).fragment?;
    defragment_decoded(defrag, frame, fragment)
}

/// [`defragment`] when the frame is already decoded (`fragment`: its `Decoded::fragment`).
pub fn defragment_decoded(defrag: &mut Defragmenter, frame: &RawFrame<'_>, fragment: &[u8]) -> Option<Datagram> {
    let datagram = defrag.push(frame.ts, fragment)?;
    Some(Datagram(pacstap_defrag::reframe(
        frame.linktype,
        frame.data,
        fragment,
        datagram,
    )))
}

/// What [`Detection`] needs, whatever feeds it (one [`FlowShard`] in replay, the workers live).
pub struct DetectionSettings {
    pub config: Config,
    pub state: Option<PathBuf>,
    /// Plan evidence pcaps under this directory.
    pub evidence_dir: Option<PathBuf>,
    pub events: Option<Box<dyn Write>>,
    pub alerts_only: bool,
    /// Keep every event in memory (tests).
    pub collect: bool,
    pub metrics: Option<Arc<Metrics>>,
    pub alertmanager: Option<Arc<AlertmanagerClient>>,
}

/// detect → outputs: takes decoded events in packet order (from one [`FlowShard`], or merged
/// from several), runs detection on them, and writes events and alerts. Owns all cross-flow
/// state (entities, windows, baselines), so it runs on exactly one thread.
pub struct Detection {
    detector: Detector,
    store: Option<StateStore>,
    state_warnings: Vec<String>,
    /// Alerts caused by the events being observed, emitted after them; reused.
    alerts: Vec<ProtocolEvent>,
    evidence: Option<EvidencePlan>,
    /// Live capture: each alert's evidence is cut from the workers' rings, so alerts are queued
    /// here as requests (file, flows) for the capture loop to serve. Replay leaves this off and
    /// writes its plan in a second pass.
    live_evidence: bool,
    evidence_requests: Vec<(PathBuf, Vec<FlowId>)>,
    recent: RecentFlows,
    out: Outputs,
}

impl Detection {
    /// Opens the state file and starts detection. Errors: the state file cannot be read or
    /// written at all, or detection cannot start (e.g. an unreadable GeoIP database).
    pub fn new(settings: DetectionSettings) -> Result<Detection> {
        let mut state_warnings = Vec::new();
        let (store, learned) = match &settings.state {
            Some(path) => {
                let (store, learned, warning) = StateStore::open(path).context("opening the state file")?;
                state_warnings.extend(warning);
                (Some(store), learned)
            }
            None => (None, None),
        };
        let detector = Detector::new(&settings.config, learned).context("starting detection")?;
        Ok(Detection {
            detector,
            store,
            state_warnings,
            alerts: Vec::new(),
            evidence: settings.evidence_dir.as_deref().map(EvidencePlan::new),
            live_evidence: false,
            evidence_requests: Vec::new(),
            recent: RecentFlows::default(),
            out: Outputs {
                sink: settings.events.map(|w| JsonLinesSink::new(w, settings.alerts_only)),
                alerts_only: settings.alerts_only,
                written_before: 0,
                summary: Summary::new(),
                metrics: settings.metrics,
                alertmanager: settings.alertmanager,
                collect: settings.collect,
                collected: Vec::new(),
                emitted: 0,
            },
        })
    }

    /// Packet time advanced to `ts` (once per second of it): windows expire even when no
    /// event comes. Alerts this causes are emitted with the next [`Detection::events`].
    pub fn tick(&mut self, ts: Timestamp) {
        self.detector.tick(ts, &mut self.alerts);
    }

    /// Observe and emit decoded events (those of one packet), then the alerts they caused.
    /// Returns how many lines were emitted.
    pub fn events(&mut self, events: impl IntoIterator<Item = ProtocolEvent>) -> Result<u64> {
        self.out.emitted = 0;
        for ev in events {
            self.detector.observe(&ev, &mut self.alerts);
            self.recent.insert(ev.flow.id, ev.flow);
            self.out.emit(ev)?;
        }
        self.emit_alerts()?;
        Ok(self.out.emitted)
    }

    fn emit_alerts(&mut self) -> Result<()> {
        for mut alert in self.alerts.drain(..) {
            plan_evidence(self.evidence.as_mut(), &self.recent, &mut alert);
            if let (true, EventBody::Alert(a)) = (self.live_evidence, &alert.body) {
                if let Some(path) = &a.evidence.pcap {
                    self.evidence_requests
                        .push((PathBuf::from(path), a.evidence.flow_ids.clone()));
                }
            }
            self.out.emit(alert)?;
        }
        Ok(())
    }

    /// Live capture: queue each alert's evidence as a request instead of planning a second pass
    /// (see [`Detection::take_evidence_requests`]).
    pub fn cut_evidence_live(&mut self) {
        self.live_evidence = true;
    }

    /// Evidence files to (re)write since the last call, with the alert's flows.
    pub fn take_evidence_requests(&mut self) -> Vec<(PathBuf, Vec<FlowId>)> {
        std::mem::take(&mut self.evidence_requests)
    }

    /// End of input, after the last events: detection reports what it holds, learned state is
    /// saved, and the events output is flushed.
    pub fn finish(&mut self) -> Result<()> {
        self.detector.finish(&mut self.alerts);
        self.emit_alerts()?;
        self.save_state()?;
        self.flush()
    }

    /// Write learned state now (atomically; also done by [`Detection::finish`]).
    pub fn save_state(&self) -> Result<()> {
        if let Some(store) = &self.store {
            store
                .save(&self.detector.learned_state())
                .context("saving learned state")?;
        }
        Ok(())
    }

    /// Flush the events output (live: periodically, so a tail -f sees events promptly).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(s) = self.out.sink.as_mut() {
            s.flush().context("writing events")?;
        }
        Ok(())
    }

    /// Replace the events output (log rotation: the old file was renamed, open the path anew).
    /// The old output is flushed first.
    pub fn replace_events(&mut self, events: Box<dyn Write>) -> Result<()> {
        self.flush()?;
        if let Some(old) = self.out.sink.take() {
            self.out.written_before += old.written();
        }
        self.out.sink = Some(JsonLinesSink::new(events, self.out.alerts_only));
        Ok(())
    }

    /// Run detection on with `config` (SIGHUP), keeping everything it holds: windows, open
    /// incidents, held exports, learned state. A config detection cannot start with (e.g. an
    /// unreadable GeoIP file) is refused and the running one kept.
    pub fn reload_config(&mut self, config: &Config) -> Result<()> {
        self.detector.reconfigure(config).context("reloading detection")
    }

    /// The config detection runs with.
    pub fn config(&self) -> &Config {
        self.detector.config()
    }

    /// Studies exported so far (for metrics).
    pub fn studies_exported(&self) -> u64 {
        self.detector.stats().studies_exported
    }

    pub fn events_written(&self) -> u64 {
        self.out.written()
    }

    /// Evidence files planned so far (`--evidence-dir`).
    pub fn evidence_plan(&self) -> Option<&EvidencePlan> {
        self.evidence.as_ref()
    }

    /// Problems with the state file that did not stop the run.
    pub fn state_warnings(&self) -> &[String] {
        &self.state_warnings
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.out.metrics.as_ref()
    }

    /// The numbers behind the summary, with the shards' counters.
    pub fn report(self, shards: ShardStats, damages: Vec<Damage>, evidence_files: Vec<PathBuf>) -> ReplayReport {
        ReplayReport {
            frames: shards.frames,
            bytes: shards.bytes,
            events_written: self.out.written(),
            first_ts: shards.first_ts,
            last_ts: shards.last_ts,
            damages,
            wire: shards.wire,
            defrag: shards.defrag,
            flow: shards.flow,
            proto: shards.proto,
            detect: self.detector.stats().clone(),
            state_warnings: self.state_warnings,
            evidence_files,
            unreadable: Vec::new(),
            evidence_dropped: self.evidence.as_ref().map_or(0, |p| p.dropped_incidents),
            summary: self.out.summary,
            events: self.out.collected,
        }
    }
}

/// Where events go: the JSON-lines sink, the summary, the metrics, the collected list.
struct Outputs {
    sink: Option<JsonLinesSink<Box<dyn Write>>>,
    alerts_only: bool,
    /// Lines written by sinks replaced since (reopened events files).
    written_before: u64,
    summary: Summary,
    metrics: Option<Arc<Metrics>>,
    alertmanager: Option<Arc<AlertmanagerClient>>,
    collect: bool,
    collected: Vec<ProtocolEvent>,
    /// Events emitted since the last call to [`Pipeline::frame`] began.
    emitted: u64,
}

impl Outputs {
    fn emit(&mut self, ev: ProtocolEvent) -> Result<()> {
        self.emitted += 1;
        self.summary.observe(&ev);
        if let Some(m) = &self.metrics {
            m.observe_event(&ev);
        }
        if let Some(am) = &self.alertmanager {
            am.push(&ev);
        }
        if let Some(s) = self.sink.as_mut() {
            s.write(&ev).context("writing events")?;
        }
        if self.collect {
            self.collected.push(ev);
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written_before + self.sink.as_ref().map_or(0, JsonLinesSink::written)
    }
}

/// The metrics snapshot of shards' counters plus detection's (drops are the caller's to fill in).
pub fn stats_snapshot(shards: &ShardStats, detection: &Detection) -> StatsSnapshot {
    let (w, f, p) = (&shards.wire, &shards.flow, &shards.proto);
    let mut anomalies = p.anomalies.clone();
    for (name, n) in [
        ("wire.truncated", w.truncated),
        ("wire.malformed", w.malformed),
        ("wire.unsupported_link", w.unsupported_link),
        ("wire.ip_fragment", w.ip_fragments),
        ("wire.too_deep", w.too_deep),
        ("wire.unsupported_tunnel", w.unsupported_tunnel),
        // Fragment trains given up on as hostile or broken (the datagram is dropped).
        ("defrag.overlap_conflict", shards.defrag.overlapping),
        ("defrag.tiny_fragment", shards.defrag.tiny),
        ("defrag.too_big", shards.defrag.too_big),
        ("defrag.too_many_fragments", shards.defrag.too_many),
        ("defrag.malformed", shards.defrag.malformed),
        ("tcp.bad_checksum", f.bad_checksums),
        ("tcp.rst_in_window", f.rst_in_window),
        ("tcp.rst_out_of_window", f.rst_out_of_window),
        ("tcp.syn_on_established", f.syn_on_established),
        ("tcp.data_after_close", f.data_after_close),
        ("tcp.overlap_conflict", f.overlap_conflicts),
        ("tcp.timestamp_jump", f.timestamp_jumps),
    ] {
        if n > 0 {
            anomalies.insert(name, n);
        }
    }
    let ip_fragments = shards.defrag.outcomes().into_iter().collect();
    StatsSnapshot {
        ip_fragments,
        ip_fragments_held_bytes: shards.defrag.held_bytes,
        packets: shards.frames,
        bytes: shards.bytes,
        flows_created: f.flows_created,
        flows_active: shards.active_flows,
        gaps: f.gaps,
        gap_bytes: f.gap_bytes,
        cap_hits_flow_table: f.flow_table_full,
        cap_hits_buffer: f.buffer_cap_hits,
        cap_hits_holes: f.hole_cap_hits,
        decoder_memory_cap_hits: p.memory_cap_hits,
        decoder_memory_bytes: p.memory_held,
        anomalies,
        tcp: tcp_counters(f),
        tls_versions: p.tls.versions.clone(),
        hl7_acks: p.hl7.acks.clone(),
        decapsulated: pacstap_wire::TunnelKind::ALL
            .iter()
            .filter(|k| w.decapsulated(**k) > 0)
            .map(|k| (k.name(), w.decapsulated(*k)))
            .collect(),
        studies_exported: detection.detector.stats().studies_exported,
        last_packet_time: shards.last_ts.map(Timestamp::as_secs_f64),
        alertmanager: detection
            .out
            .alertmanager
            .as_ref()
            .map(|a| a.stats())
            .unwrap_or_default(),
        ..StatsSnapshot::default()
    }
}

/// The flow stage's counters behind `pacstap_tcp_<name>_total` (names: `Metrics`' TCP table).
fn tcp_counters(f: &pacstap_flow::FlowStats) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("bad_checksums", f.bad_checksums),
        ("unverifiable_checksums", f.unverifiable_checksums),
        ("ack_before_data", f.ack_before_data),
        ("ack_before_data_filled", f.ack_before_data_filled),
        ("ack_gaps", f.ack_gaps),
        ("rst_accepted", f.rst_accepted),
        ("rst_in_window", f.rst_in_window),
        ("rst_out_of_window", f.rst_out_of_window),
        ("syn_on_established", f.syn_on_established),
        ("data_after_close", f.data_after_close),
        ("overlap_conflicts", f.overlap_conflicts),
        ("timestamp_jumps", f.timestamp_jumps),
        ("evicted_half_open", f.evicted_half_open),
        ("evicted_established", f.evicted_established),
        ("evicted_decoding", f.evicted_decoding),
        ("one_sided_flows", f.one_sided_flows),
        ("duplicate_frames", f.duplicate_frames),
        ("snaplen_cut_segments", f.truncated_packets),
    ])
}

/// The whole pipeline on one thread: one [`FlowShard`] feeding one [`Detection`].
///
/// `replay` runs it; live capture runs the same two stages on several threads, in the same
/// order per packet (decode, tick, observe), so the same packets give the same events.
pub struct Pipeline {
    shard: FlowShard,
    detection: Detection,
    /// Events of one packet: reused, so no allocation per packet.
    batch: Vec<ProtocolEvent>,
    clock: DetectionClock,
}

/// When detection's windows are advanced: at the first packet of each second of packet time.
/// Live capture computes this on the capture thread, over every frame, as replay does here.
///
/// Guarded like the flow table's clock (`pacstap_flow`'s `MAX_STEP` / `CONFIRMATIONS`): a frame
/// more than a minute ahead of the last tick advances detection only when the next frames agree
/// with it. One packet stamped ten years ahead (a forged pcap, a capture clock's glitch) would
/// otherwise expire every window at once and hide a bulk export in progress.
#[derive(Debug, Clone, Copy)]
pub struct DetectionClock {
    next_tick: i64,
    /// Far frames seen in a row, waiting for confirmation.
    far_in_a_row: u8,
}

impl Default for DetectionClock {
    fn default() -> Self {
        DetectionClock {
            next_tick: i64::MIN,
            far_in_a_row: 0,
        }
    }
}

impl DetectionClock {
    /// Whether the frame at `ts` advances detection's clock.
    pub fn ticks_at(&mut self, ts: Timestamp) -> bool {
        if ts.0 < self.next_tick {
            self.far_in_a_row = 0;
            return false;
        }
        let max_step = i64::try_from(pacstap_flow::MAX_STEP.as_nanos()).unwrap_or(i64::MAX);
        // `next_tick` is one second after the last tick.
        let far = self.next_tick != i64::MIN && ts.0 > self.next_tick.saturating_add(max_step);
        if far && self.far_in_a_row < pacstap_flow::CONFIRMATIONS {
            self.far_in_a_row += 1;
            return false;
        }
        self.far_in_a_row = 0;
        self.next_tick = ts.0.saturating_add(1_000_000_000);
        true
    }
}

impl Pipeline {
    /// Opens the state file and starts detection (errors as [`Detection::new`]).
    pub fn new(flow: FlowConfig, proto: ProtoConfig, detection: DetectionSettings) -> Result<Pipeline> {
        let mut shard = FlowShard::new(flow, proto);
        shard.set_wire_config(wire_config(&detection.config));
        shard.defragment(DefragConfig::default());
        Ok(Pipeline {
            shard,
            detection: Detection::new(detection)?,
            batch: Vec::new(),
            clock: DetectionClock::default(),
        })
    }

    /// One captured frame through every stage. Errors are ours (the events output failing);
    /// bad traffic never is. Returns how many lines were emitted.
    pub fn frame(&mut self, frame: &RawFrame<'_>) -> Result<u64> {
        self.shard.frame(frame, &mut self.batch);
        if self.clock.ticks_at(frame.ts) {
            self.detection.tick(frame.ts);
        }
        self.detection.events(self.batch.drain(..))
    }

    /// [`Pipeline::frame`], then the event-pipeline latency: wall time since `received` (when
    /// the frame left the capture), observed when the frame produced events.
    pub fn frame_received(&mut self, frame: &RawFrame<'_>, received: Instant) -> Result<()> {
        if self.frame(frame)? > 0 {
            if let Some(m) = self.detection.metrics() {
                m.observe_event_latency(received.elapsed());
            }
        }
        Ok(())
    }

    /// End of input (replay end, capture shutdown): every open flow ends (open associations
    /// become `incomplete`), detection reports what it holds, learned state is saved, and the
    /// events output is flushed.
    pub fn finish(&mut self) -> Result<()> {
        self.shard
            .finish(self.shard.last_ts().unwrap_or_default(), &mut self.batch);
        self.detection.events(self.batch.drain(..))?;
        self.detection.finish()
    }

    /// Join IP fragments within `config` instead of the defaults.
    pub fn set_defrag(&mut self, config: DefragConfig) {
        self.shard.defragment(config);
    }

    /// Replace the events output (see [`Detection::replace_events`]).
    pub fn replace_events(&mut self, events: Box<dyn Write>) -> Result<()> {
        self.detection.replace_events(events)
    }

    /// Reload detection with `config` and take its port hints (see [`Detection::reload_config`]).
    pub fn reload_config(&mut self, config: &Config) -> Result<()> {
        self.detection.reload_config(config)?;
        self.shard.set_port_hints(config);
        Ok(())
    }

    /// The config detection runs with.
    pub fn config(&self) -> &Config {
        self.detection.config()
    }

    /// The stage counters, for [`Metrics::update`].
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        stats_snapshot(&self.shard.stats(), &self.detection)
    }

    pub fn frames(&self) -> u64 {
        self.shard.frames
    }

    pub fn events_written(&self) -> u64 {
        self.detection.events_written()
    }

    /// The numbers behind the summary; `damages` are the input's (files).
    pub fn report(self, damages: Vec<Damage>, evidence_files: Vec<PathBuf>) -> ReplayReport {
        self.detection.report(self.shard.stats(), damages, evidence_files)
    }

    /// Problems with the state file that did not stop the run.
    pub fn state_warnings(&self) -> &[String] {
        self.detection.state_warnings()
    }
}

/// Replays pcap files through the whole pipeline. `collect` keeps every event in the report.
///
/// Errors are ours or the input's (unreadable file, events output failing); bad traffic never is.
pub fn replay(opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    if opts.workers > 1 {
        return replay_sharded(opts, collect);
    }
    replay_single(opts, collect)
}

fn replay_single(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    let mut source = MergedSource::open(&opts.pcaps)?;
    let total_len = source.file_len();
    let metrics = opts.metrics.take();
    let settings = opts.detection_settings(collect, metrics.clone());
    let mut pipeline = Pipeline::new(opts.flow.clone(), opts.proto.clone(), settings)?;
    pipeline.set_defrag(opts.defrag.clone());
    let mut progress = Progress::new(opts.progress);
    // Metrics (when asked for) are refreshed about once a second of wall time.
    let mut next_update = Instant::now();
    while let Some(frame) = source.next_frame() {
        let received = metrics.as_ref().map(|_| Instant::now());
        match received {
            Some(t) => pipeline.frame_received(&frame, t)?,
            None => {
                pipeline.frame(&frame)?;
            }
        }
        if pipeline.frames() % 65_536 == 0 {
            progress.update(source.bytes_consumed(), total_len);
        }
        if let (Some(m), Some(t)) = (&metrics, received) {
            if t >= next_update {
                next_update = t + METRICS_EVERY;
                m.update(&pipeline.stats_snapshot());
            }
        }
    }
    pipeline.finish()?;
    if let Some(m) = &metrics {
        m.update(&pipeline.stats_snapshot());
    }
    progress.finish();
    let linktype = pipeline.shard.first_linktype.unwrap_or(1);
    let evidence_files = write_planned_evidence(&opts, pipeline.detection.evidence_plan(), linktype)?;
    let mut report = pipeline.report(source.damages().to_vec(), evidence_files);
    report.unreadable = source.unreadable().iter().map(ToString::to_string).collect();
    Ok(report)
}

/// Files through the live pipeline's threads: [`crate::live::Sharded`] over a lossless feed.
fn replay_sharded(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    let source = MergedSource::open(&opts.pcaps)?;
    let metrics = opts.metrics.take();
    let mut detection = Detection::new(opts.detection_settings(collect, metrics.clone()))?;
    let run = crate::live::Sharded {
        workers: opts.workers,
        flow: opts.flow.clone(),
        proto: opts.proto.clone(),
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        chores: crate::live::Chores {
            metrics,
            ..crate::live::Chores::default()
        },
        evidence: None,
        defrag: opts.defrag.clone(),
    };
    let feed = FileFeed {
        total_len: source.file_len(),
        source,
        progress: Progress::new(opts.progress),
    };
    let mut end = run.run(feed, &mut detection)?;
    end.feed.progress.finish();
    let linktype = end.shards.first_linktype.unwrap_or(1);
    let evidence_files = write_planned_evidence(&opts, detection.evidence_plan(), linktype)?;
    let damages = end.feed.source.damages().to_vec();
    let mut report = detection.report(end.shards, damages, evidence_files);
    report.unreadable = end.feed.source.unreadable().iter().map(ToString::to_string).collect();
    Ok(report)
}

/// Pcap files as a [`crate::live::FrameFeed`]: never idle, lossless, with progress on stderr.
struct FileFeed {
    source: MergedSource,
    total_len: u64,
    progress: Progress,
}

impl crate::live::FrameFeed for FileFeed {
    fn next_frame(&mut self) -> crate::live::Next<'_> {
        if self.source.frames().is_multiple_of(65_536) {
            self.progress.update(self.source.bytes_consumed(), self.total_len);
        }
        match self.source.next_frame() {
            Some(f) => crate::live::Next::Frame(f),
            None => crate::live::Next::End,
        }
    }

    fn stats(&mut self) -> pacstap_capture::LiveStats {
        pacstap_capture::LiveStats {
            frames: self.source.frames(),
            ..Default::default()
        }
    }

    fn lossless(&self) -> bool {
        true
    }
}

/// After a replay: the second pass that copies alerted flows' packets into evidence files.
fn write_planned_evidence(opts: &ReplayOptions, plan: Option<&EvidencePlan>, linktype: u32) -> Result<Vec<PathBuf>> {
    match plan {
        Some(plan) if !plan.is_empty() => {
            let max_payload = opts.config.evidence.max_payload_bytes_per_flow;
            write_evidence(
                &opts.pcaps,
                plan,
                linktype,
                max_payload,
                &opts.defrag,
                wire_config(&opts.config),
            )?;
            Ok(plan.files().to_vec())
        }
        _ => Ok(Vec::new()),
    }
}

/// How often (wall time) the snapshot-derived metrics are refreshed.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);

/// The most recently inserted keys and their values: two generations of at most
/// [`RECENT_FLOWS`] each, so bounded and O(1) with no per-entry bookkeeping; a key is found for
/// at least [`RECENT_FLOWS`] insertions of other keys after its own.
struct Recent<K, V> {
    current: HashMap<K, V, ahash::RandomState>,
    previous: HashMap<K, V, ahash::RandomState>,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            current: HashMap::default(),
            previous: HashMap::default(),
        }
    }
}

const RECENT_FLOWS: usize = 1 << 16;

impl<K: std::hash::Hash + Eq, V: Copy> Recent<K, V> {
    fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= RECENT_FLOWS && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    fn get(&self, key: &K) -> Option<V> {
        self.current.get(key).or_else(|| self.previous.get(key)).copied()
    }
}

/// Flow ids of recent events → their endpoints, so an alert's evidence can name the packets
/// (an alert's flows are nearly always among the last few thousand that produced events).
type RecentFlows = Recent<FlowId, FlowMeta>;

/// Canonical flow key → the id of the flow last seen with it.
type RecentKeys = Recent<FlowKey, FlowId>;

/// Register an alert's flows for its evidence pcap and name the file in the alert.
fn plan_evidence(plan: Option<&mut EvidencePlan>, recent: &RecentFlows, ev: &mut ProtocolEvent) {
    if let (Some(plan), EventBody::Alert(alert)) = (plan, &mut ev.body) {
        alert.evidence.pcap = plan.add(alert, |id| recent.get(&id)).map(|p| p.display().to_string());
    }
}

/// Second pass over the input: copy the packets of alerted flows into their evidence files.
/// IP fragments are joined again as in the first pass, and the datagrams written in their place.
fn write_evidence(
    pcaps: &[PathBuf],
    plan: &EvidencePlan,
    linktype: u32,
    max_payload: u64,
    defrag: &DefragConfig,
    wire_config: pacstap_wire::WireConfig,
) -> Result<()> {
    let mut source = MergedSource::open(pcaps)?;
    let mut writer = plan.writer(linktype, max_payload).context("creating evidence files")?;
    let mut wire = WireDecoder::with_config(wire_config);
    let mut defrag = Defragmenter::new(defrag.clone());
    while let Some(frame) = source.next_frame() {
        let fragments = wire.stats.ip_fragments;
        if let Some(pkt) = wire.decode(frame.ts, frame.linktype, frame.data) {
            writer
                .frame(frame.ts, frame.linktype, frame.data, &pkt.key, pkt.payload.len())
                .context("writing evidence")?;
        } else if wire.stats.ip_fragments != fragments {
            if let Some(datagram) = defragment(&mut defrag, wire.config(), &frame) {
                let f = datagram.frame(&frame);
                if let Some(pkt) = wire.decode(f.ts, f.linktype, f.data) {
                    writer
                        .frame(f.ts, f.linktype, f.data, &pkt.key, pkt.payload.len())
                        .context("writing evidence")?;
                }
            }
        }
    }
    writer.finish().context("writing evidence")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer the test can read back after the pipeline is done with it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> usize {
            self.0
                .lock()
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0)
        }
    }

    fn settings(events: Shared) -> DetectionSettings {
        DetectionSettings {
            config: Config::default(),
            state: None,
            evidence_dir: None,
            events: Some(Box::new(events)),
            alerts_only: false,
            collect: true,
            metrics: Some(Arc::new(Metrics::new().unwrap())),
            alertmanager: None,
        }
    }

    fn sample(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("pcap-samples")
            .join(name)
    }

    /// SIGHUP in the middle of a stream: the events file is replaced and detection restarts
    /// with the new config, and the decoded events are those of an undisturbed run.
    #[test]
    fn reopening_events_and_reloading_config_mid_stream_lose_nothing() {
        let files = vec![sample("store.pcap"), sample("move.pcap")];
        let straight = replay(ReplayOptions::new(files.clone()), true).unwrap();

        let (first, second) = (Shared::default(), Shared::default());
        let mut p = Pipeline::new(FlowConfig::default(), ProtoConfig::default(), settings(first.clone())).unwrap();
        let mut source = MergedSource::open(&files).unwrap();
        let mut n = 0;
        while let Some(frame) = source.next_frame() {
            p.frame_received(&frame, Instant::now()).unwrap();
            n += 1;
            if n == 500 {
                p.replace_events(Box::new(second.clone())).unwrap();
                let mut cfg = Config::default();
                cfg.rules.bulk_export.threshold = 1;
                p.reload_config(&cfg).unwrap();
                assert_eq!(p.config().rules.bulk_export.threshold, 1);
            }
        }
        p.finish().unwrap();
        let snapshot = p.stats_snapshot();
        assert_eq!(snapshot.packets, straight.frames);
        let report = p.report(Vec::new(), Vec::new());
        let kinds = |r: &ReplayReport| r.events.iter().filter(|e| e.body.event_type() == "dicom").count();
        assert_eq!(kinds(&report), kinds(&straight));
        assert!(first.lines() > 0 && second.lines() > 0, "both files got events");
        assert_eq!((first.lines() + second.lines()) as u64, report.events_written);
    }
}
