//! The replay pipeline: capture → wire → flow → proto → output, on one thread.
//!
//! Live capture (later) runs the same stages behind channels; keeping the per-packet step in
//! one function ([`Pipeline::packet`]) is what makes replay and live give the same events.

use crate::progress::Progress;
use anyhow::{Context, Result};
use pacstap_capture::{Damage, MergedSource, PacketSource};
use pacstap_core::{ProtocolEvent, Timestamp};
use pacstap_flow::{FlowConfig, FlowTable};
use pacstap_output::{JsonLinesSink, Summary, SummarySection};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use pacstap_wire::WireDecoder;
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
        }
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
        }
        last_ts = Some(last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        if let Some(pkt) = wire.decode(frame.ts, frame.linktype, frame.data) {
            flows.process(&pkt, &mut analyzer);
            for ev in analyzer.drain_events() {
                emit(ev, &mut sink)?;
            }
        }
        if frames % 65_536 == 0 {
            progress.update(source.bytes_consumed(), total_len);
        }
    }
    flows.flush(last_ts.unwrap_or_default(), &mut analyzer);
    for ev in analyzer.drain_events() {
        emit(ev, &mut sink)?;
    }
    progress.finish();
    let events_written = match sink.as_mut() {
        Some(s) => {
            s.flush().context("writing events")?;
            s.written()
        }
        None => 0,
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
        summary,
        events: collected,
    })
}
