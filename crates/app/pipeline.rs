//! The replay pipeline: capture → wire → flow → proto → detect → output, on one thread.
//!
//! Live capture (later) runs the same stages behind channels; keeping the per-packet step in
//! one function ([`Pipeline::packet`]) is what makes replay and live give the same events.

use crate::progress::Progress;
use anyhow::{Context, Result};
use pacstap_capture::{Damage, MergedSource, PacketSource};
use pacstap_core::{EventBody, FlowId, FlowMeta};
use pacstap_core::{ProtocolEvent, Timestamp};
use pacstap_detect::{Config, Detector, StateStore};
use pacstap_flow::{FlowConfig, FlowTable};
use pacstap_output::{EvidencePlan, JsonLinesSink, Summary, SummarySection};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use pacstap_wire::WireDecoder;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

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
        }
    }

    /// Use `config` for detection and for the decoders' port hints (CONTRACT §3 `[ports]`).
    pub fn with_config(mut self, config: Config) -> Self {
        self.proto.dicom_ports = config.ports.dicom.clone();
        self.proto.http_ports = config.ports.http.clone();
        self.proto.tls_ports = config.ports.tls.clone();
        self.proto.hl7_ports = config.ports.hl7.clone();
        self.config = config;
        self
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
    pub flow: pacstap_flow::FlowStats,
    pub proto: pacstap_proto::ProtoStats,
    pub detect: pacstap_detect::DetectStats,
    /// Problems with the state file that did not stop the run (e.g. a corrupt file set aside).
    pub state_warnings: Vec<String>,
    /// Evidence pcaps written (`--evidence-dir`).
    pub evidence_files: Vec<PathBuf>,
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
            ],
        });
        let mut text = self.summary.render(&sections, &self.proto.anomalies);
        for w in &self.state_warnings {
            text.push_str(&format!("WARNING: {w}\n"));
        }
        for d in &self.damages {
            text.push_str(&format!(
                "WARNING: {} is damaged at byte {}: {} (read up to there)\n",
                d.path.display(),
                d.offset,
                d.reason
            ));
        }
        text
    }
}

/// Replays pcap files through the whole pipeline. `collect` keeps every event in the report.
///
/// Errors are ours or the input's (unreadable file, events output failing); bad traffic never is.
pub fn replay(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    let mut source = MergedSource::open(&opts.pcaps)?;
    let total_len = source.file_len();
    let mut wire = WireDecoder::new();
    let mut flows: FlowTable<FlowState> = FlowTable::new(opts.flow.clone());
    let mut analyzer = Analyzer::new(opts.proto.clone());
    let mut state_warnings = Vec::new();
    let (store, learned) = match &opts.state {
        Some(path) => {
            let (store, learned, warning) = StateStore::open(path).context("opening the state file")?;
            state_warnings.extend(warning);
            (Some(store), learned)
        }
        None => (None, None),
    };
    let mut detector = Detector::new(&opts.config, learned).context("starting detection")?;
    // Events of one packet, then the alerts they caused: reused, so no allocation per packet.
    let mut batch: Vec<ProtocolEvent> = Vec::new();
    let mut alerts: Vec<ProtocolEvent> = Vec::new();
    let mut next_tick = i64::MIN;
    let mut evidence = opts.evidence_dir.as_deref().map(EvidencePlan::new);
    let mut recent = RecentFlows::default();
    let mut first_linktype = None;
    let mut sink = opts.events.take().map(|w| JsonLinesSink::new(w, opts.alerts_only));
    let mut summary = Summary::new();
    let mut progress = Progress::new(opts.progress);
    let mut collected = Vec::new();

    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut first_ts = None;
    let mut last_ts: Option<Timestamp> = None;

    let mut emit = |ev: ProtocolEvent, sink: &mut Option<JsonLinesSink<Box<dyn Write>>>| -> Result<()> {
        summary.observe(&ev);
        if let Some(s) = sink.as_mut() {
            s.write(&ev).context("writing events")?;
        }
        if collect {
            collected.push(ev);
        }
        Ok(())
    };

    while let Some(frame) = source.next_frame() {
        frames += 1;
        bytes += frame.data.len() as u64;
        if first_ts.is_none() {
            first_ts = Some(frame.ts);
            first_linktype = Some(frame.linktype);
        }
        last_ts = Some(last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        if let Some(pkt) = wire.decode(frame.ts, frame.linktype, frame.data) {
            flows.process(&pkt, &mut analyzer);
            batch.extend(analyzer.drain_events());
        }
        // Windows expire by packet time even when no event comes (once per second of it).
        if frame.ts.0 >= next_tick {
            next_tick = frame.ts.0.saturating_add(1_000_000_000);
            detector.tick(frame.ts, &mut alerts);
        }
        for ev in batch.drain(..) {
            detector.observe(&ev, &mut alerts);
            recent.insert(ev.flow);
            emit(ev, &mut sink)?;
        }
        for mut alert in alerts.drain(..) {
            plan_evidence(evidence.as_mut(), &recent, &mut alert);
            emit(alert, &mut sink)?;
        }
        if frames % 65_536 == 0 {
            progress.update(source.bytes_consumed(), total_len);
        }
    }
    flows.flush(last_ts.unwrap_or_default(), &mut analyzer);
    batch.extend(analyzer.drain_events());
    for ev in batch.drain(..) {
        detector.observe(&ev, &mut alerts);
        recent.insert(ev.flow);
        emit(ev, &mut sink)?;
    }
    detector.finish(&mut alerts);
    for mut alert in alerts.drain(..) {
        plan_evidence(evidence.as_mut(), &recent, &mut alert);
        emit(alert, &mut sink)?;
    }
    if let Some(store) = &store {
        store.save(&detector.learned_state()).context("saving learned state")?;
    }
    progress.finish();
    let events_written = match sink.as_mut() {
        Some(s) => {
            s.flush().context("writing events")?;
            s.written()
        }
        None => 0,
    };
    let evidence_files = match &evidence {
        Some(plan) if !plan.is_empty() => {
            let max_payload = opts.config.evidence.max_payload_bytes_per_flow;
            write_evidence(&opts.pcaps, plan, first_linktype.unwrap_or(1), max_payload)?;
            plan.files().to_vec()
        }
        _ => Vec::new(),
    };
    Ok(ReplayReport {
        frames,
        bytes,
        events_written,
        first_ts,
        last_ts,
        damages: source.damages().to_vec(),
        wire: wire.stats.clone(),
        flow: flows.stats().clone(),
        proto: analyzer.stats().clone(),
        detect: detector.stats().clone(),
        state_warnings,
        evidence_files,
        summary,
        events: collected,
    })
}

/// Flow ids of recent events → their endpoints, so an alert's evidence can name the packets.
/// Two generations of at most [`RECENT_FLOWS`] each: bounded, O(1), and an alert's flows are
/// nearly always among the last few thousand that produced events.
#[derive(Default)]
struct RecentFlows {
    current: HashMap<FlowId, FlowMeta>,
    previous: HashMap<FlowId, FlowMeta>,
}

const RECENT_FLOWS: usize = 1 << 16;

impl RecentFlows {
    fn insert(&mut self, meta: FlowMeta) {
        if self.current.len() >= RECENT_FLOWS && !self.current.contains_key(&meta.id) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(meta.id, meta);
    }

    fn get(&self, id: FlowId) -> Option<FlowMeta> {
        self.current.get(&id).or_else(|| self.previous.get(&id)).copied()
    }
}

/// Register an alert's flows for its evidence pcap and name the file in the alert.
fn plan_evidence(plan: Option<&mut EvidencePlan>, recent: &RecentFlows, ev: &mut ProtocolEvent) {
    if let (Some(plan), EventBody::Alert(alert)) = (plan, &mut ev.body) {
        alert.evidence.pcap = plan.add(alert, |id| recent.get(id)).map(|p| p.display().to_string());
    }
}

/// Second pass over the input: copy the packets of alerted flows into their evidence files.
fn write_evidence(pcaps: &[PathBuf], plan: &EvidencePlan, linktype: u32, max_payload: u64) -> Result<()> {
    let mut source = MergedSource::open(pcaps)?;
    let mut writer = plan.writer(linktype, max_payload).context("creating evidence files")?;
    let mut wire = WireDecoder::new();
    while let Some(frame) = source.next_frame() {
        if let Some(pkt) = wire.decode(frame.ts, frame.linktype, frame.data) {
            writer
                .frame(frame.ts, frame.linktype, frame.data, &pkt.key, pkt.payload.len())
                .context("writing evidence")?;
        }
    }
    writer.finish().context("writing evidence")
}
