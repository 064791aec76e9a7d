//! `pacstap replay`: pcap files through the pipeline. With one worker everything runs on this
//! thread ([`Pipeline`]: one [`FlowShard`] feeding one [`Detection`]); with several, the
//! sharded pipeline's threads (`crate::sharded`) run over the files. Evidence pcaps are written
//! after the run, in a second pass over the files.

use crate::config::Config;
use crate::config::{apply_ports, defrag_config, wire_config};
use crate::detection::{stats_snapshot, Detection, DetectionClock, DetectionSettings, METRICS_EVERY};
use crate::progress::Progress;
use crate::report::ReplayReport;
use crate::shard::{defragment, FlowShard};
use crate::sharded::{Chores, FrameFeed, Next, Sharded};
use anyhow::{Context, Result};
use pacstap_capture::{Damage, MergedSource, PacketSource, RawFrame};
use pacstap_core::ProtocolEvent;
use pacstap_defrag::{DefragConfig, Defragmenter};
use pacstap_flow::FlowConfig;
use pacstap_output::{AlertmanagerClient, EvidencePlan, Metrics, StatsSnapshot};
use pacstap_proto::ProtoConfig;
use pacstap_wire::WireDecoder;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
    /// IP defragmentation limits: the config's `[defrag]` table ([`Self::with_config`] sets
    /// them), which `--defrag-memory` / `--defrag-timeout` override.
    pub defrag: DefragConfig,
    /// Also publish every event to NATS JetStream (`--publish`).
    pub publisher: Option<pacstap_jetstream::Publisher>,
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
            publisher: None,
        }
    }

    /// Use `config` for detection and for the decoders' port hints (CONTRACT §3 `[ports]`).
    pub fn with_config(mut self, config: Config) -> Self {
        apply_ports(&mut self.proto, &config);
        self.defrag = defrag_config(&config);
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
        // Most packets decode to nothing and raise nothing: done with two looks.
        if self.batch.is_empty() && !self.detection.has_alerts() {
            return Ok(0);
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
        let end = self.shard.last_ts().unwrap_or_default();
        loop {
            let more = self.shard.finish_step(end, &mut self.batch);
            self.detection.events(self.batch.drain(..))?;
            if !more {
                break;
            }
        }
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
        self.shard.frames()
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
pub fn replay(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    // With --evidence-dir, events wait for the evidence hashes (`crate::evidence_seal`).
    let spool = crate::evidence_seal::spool_events(&mut opts)?;
    let report = if opts.workers > 1 {
        replay_sharded(opts, collect)
    } else {
        replay_single(opts, collect)
    };
    crate::evidence_seal::seal(report, spool)
}

fn replay_single(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    let mut source = MergedSource::open(&opts.pcaps)?;
    let total_len = source.file_len();
    let metrics = opts.metrics.take();
    let settings = opts.detection_settings(collect, metrics.clone());
    let mut pipeline = Pipeline::new(opts.flow.clone(), opts.proto.clone(), settings)?;
    if let Some(p) = opts.publisher.take() {
        pipeline.detection.publish_to(p);
    }
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
    let linktype = pipeline.shard.first_linktype().unwrap_or(1);
    let (evidence_files, hashes) = write_planned_evidence(&opts, pipeline.detection.evidence_plan(), linktype)?;
    let mut report = pipeline.report(source.damages().to_vec(), evidence_files);
    report.evidence_sha256 = hashes;
    report.unreadable = source.unreadable().iter().map(ToString::to_string).collect();
    Ok(report)
}

/// Files through the live pipeline's threads: [`Sharded`] over a lossless feed.
fn replay_sharded(mut opts: ReplayOptions, collect: bool) -> Result<ReplayReport> {
    let source = MergedSource::open(&opts.pcaps)?;
    let metrics = opts.metrics.take();
    let mut detection = Detection::new(opts.detection_settings(collect, metrics.clone()))?;
    if let Some(p) = opts.publisher.take() {
        detection.publish_to(p);
    }
    let run = Sharded {
        workers: opts.workers,
        flow: opts.flow.clone(),
        proto: opts.proto.clone(),
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        chores: Chores {
            metrics,
            ..Chores::default()
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
    let (evidence_files, hashes) = write_planned_evidence(&opts, detection.evidence_plan(), linktype)?;
    let damages = end.feed.source.damages().to_vec();
    let mut report = detection.report(end.shards, damages, evidence_files);
    report.evidence_sha256 = hashes;
    report.unreadable = end.feed.source.unreadable().iter().map(ToString::to_string).collect();
    Ok(report)
}

/// Pcap files as a [`FrameFeed`]: never idle, lossless, with progress on stderr.
struct FileFeed {
    source: MergedSource,
    total_len: u64,
    progress: Progress,
}

impl FrameFeed for FileFeed {
    fn next_frame(&mut self) -> Next<'_> {
        if self.source.frames().is_multiple_of(65_536) {
            self.progress.update(self.source.bytes_consumed(), self.total_len);
        }
        match self.source.next_frame() {
            Some(f) => Next::Frame(f),
            None => Next::End,
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

/// After a replay: the second pass that copies alerted flows' packets into evidence files,
/// then each file hashed into the custody log. Returns the files, and each with its SHA-256.
type Written = (Vec<PathBuf>, Vec<(PathBuf, String)>);
fn write_planned_evidence(opts: &ReplayOptions, plan: Option<&EvidencePlan>, linktype: u32) -> Result<Written> {
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
            let hashes = crate::evidence_seal::record_custody(plan)?;
            Ok((plan.files().to_vec(), hashes))
        }
        _ => Ok((Vec::new(), Vec::new())),
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
