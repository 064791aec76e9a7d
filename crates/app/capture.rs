//! `pacstap capture`: a live interface through the sharded pipeline (`crate::sharded`), with
//! live evidence cut from the workers' rings (`crate::evidence_cut`).

use crate::config::{add_ports, apply_ports, defrag_config, Config, WireOverrides};
use crate::detection::{Detection, DetectionSettings};
use crate::report::ReplayReport;
use crate::sharded::{Chores, EventsTarget, FrameFeed, Next, Sharded};
use anyhow::{anyhow, Context, Result};
use pacstap_capture::{LiveConfig, LiveError, LiveSource, LiveStats};
use pacstap_defrag::DefragConfig;
use pacstap_flow::FlowConfig;
use pacstap_output::term::warn;
use pacstap_output::{Metrics, RingLimits};
use pacstap_proto::ProtoConfig;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Default memory for live evidence (`--evidence-memory`), over all workers.
pub const DEFAULT_EVIDENCE_MEMORY: usize = 256 << 20;

/// What `pacstap capture` was asked to do.
pub struct CaptureOptions {
    pub live: LiveConfig,
    pub events: EventsTarget,
    pub alerts_only: bool,
    pub config: Config,
    /// Reloaded on SIGHUP when set.
    pub config_path: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
    /// DICOM ports given on the command line (`--dicom-port`), kept across config reloads.
    pub extra_dicom_ports: Vec<u16>,
    /// Worker threads decoding flows (at least 1).
    pub workers: usize,
    /// Where each alert's evidence pcap goes, cut from the packets the workers hold.
    pub evidence_dir: Option<PathBuf>,
    /// Memory for those packets, over all workers (bytes).
    pub evidence_memory: usize,
    pub metrics: Option<Arc<Metrics>>,
    /// Also push each alert to this Alertmanager (`--alertmanager`).
    pub alertmanager: Option<Arc<pacstap_output::AlertmanagerClient>>,
    /// Set (e.g. by SIGINT / SIGTERM) to stop: flows are flushed, state saved, outputs closed.
    pub stop: Arc<AtomicBool>,
    /// Set (by SIGHUP) to reopen the events file and reload the config.
    pub reload: Arc<AtomicBool>,
    /// IP defragmentation limits: the config's `[defrag]` table ([`Self::with_config`] sets
    /// them), which `--defrag-memory` / `--defrag-timeout` override.
    pub defrag: DefragConfig,
    /// The command-line options over the config's wire tables, applied again over a file
    /// reloaded on SIGHUP.
    pub overrides: WireOverrides,
    /// Also publish every event to NATS JetStream (`--publish`).
    pub publisher: Option<pacstap_jetstream::Publisher>,
}

impl CaptureOptions {
    pub fn new(live: LiveConfig) -> Self {
        CaptureOptions {
            live,
            events: EventsTarget::Stdout,
            alerts_only: false,
            config: Config::default(),
            config_path: None,
            state: None,
            flow: FlowConfig::default(),
            proto: ProtoConfig::default(),
            extra_dicom_ports: Vec::new(),
            workers: 1,
            evidence_dir: None,
            evidence_memory: DEFAULT_EVIDENCE_MEMORY,
            metrics: None,
            alertmanager: None,
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
            defrag: DefragConfig::default(),
            overrides: WireOverrides::default(),
            publisher: None,
        }
    }

    /// Use `config` for detection and for the decoders' port hints (as `ReplayOptions` does).
    pub fn with_config(mut self, config: Config) -> Self {
        apply_ports(&mut self.proto, &config);
        self.defrag = defrag_config(&config);
        self.config = config;
        self
    }

    /// Also decode these ports as DICOM (`--dicom-port`), whatever the config says.
    pub fn with_dicom_ports(mut self, ports: &[u16]) -> Self {
        self.extra_dicom_ports = ports.to_vec();
        add_ports(&mut self.proto.dicom_ports, ports);
        self
    }
}

/// What a capture run did.
pub struct CaptureReport {
    /// The pipeline's numbers, as for a replay (no damages, no evidence).
    pub pipeline: ReplayReport,
    pub live: LiveStats,
    /// Frames dropped because a worker fell behind, per worker.
    pub pipeline_drops: Vec<u64>,
    /// Frames each worker decoded.
    pub worker_frames: Vec<u64>,
    /// Why the capture stopped on its own (interface gone…), when it did.
    pub capture_error: Option<String>,
    /// Config reloads refused (bad file), with the reason.
    pub reload_errors: Vec<String>,
}

impl CaptureReport {
    pub fn render_summary(&self) -> String {
        let mut s = self
            .pipeline
            .render_summary()
            .replacen("pacstap replay summary", "pacstap capture summary", 1);
        let drops: u64 = self.pipeline_drops.iter().sum();
        s.push_str(&format!(
            "Capture: {} frames from libpcap\n  dropped: {} by the kernel, {} by the interface, {} by pacstap (queue full)\n",
            self.live.frames, self.live.dropped, self.live.if_dropped, drops
        ));
        if self.worker_frames.len() > 1 {
            let per: Vec<String> = self
                .worker_frames
                .iter()
                .zip(&self.pipeline_drops)
                .enumerate()
                .map(|(i, (f, d))| format!("#{i} {f} frames, {d} dropped"))
                .collect();
            s.push_str(&format!("Workers: {}\n", per.join("; ")));
        }
        s
    }
}

impl FrameFeed for LiveSource {
    fn next_frame(&mut self) -> Next<'_> {
        match self.next_frame_or_idle() {
            Ok(Some(f)) => Next::Frame(f),
            Ok(None) => Next::Idle,
            Err(e) => Next::Failed(e),
        }
    }

    fn wait_idle(&mut self) {
        LiveSource::wait_idle(self);
    }

    fn stats(&mut self) -> LiveStats {
        LiveSource::stats(self)
    }
}

/// Checks that learned state can be written where asked, before hours of capture depend on it:
/// a temporary file of unpredictable name is created exclusively in the state's directory and
/// removed (never a fixed name, which a planted link could redirect).
pub fn check_state_dir(path: &std::path::Path) -> Result<()> {
    let dir = pacstap_safefile::parent_dir(path);
    if !dir.is_dir() {
        return Err(anyhow!(
            "state directory {} does not exist: create it (the systemd unit's StateDirectory= does) or pass --state PATH",
            dir.display()
        ));
    }
    pacstap_safefile::check_dir_writable(&dir)
        .with_context(|| format!("cannot write learned state {} in {}", path.display(), dir.display()))
}

/// Opens the interface (errors: it cannot be opened, the filter does not compile).
pub fn open_capture(live: &LiveConfig) -> Result<LiveSource, LiveError> {
    LiveSource::open(live)
}

/// Runs a live capture until `opts.stop` is set or the capture fails, on an already opened
/// source (so the caller can report open errors before starting servers).
pub fn capture(mut opts: CaptureOptions, src: LiveSource) -> Result<CaptureReport> {
    if let Some(path) = &opts.state {
        check_state_dir(path)?;
    }
    let events = opts.events.open()?;
    let mut detection = Detection::new(DetectionSettings {
        config: opts.config.clone(),
        state: opts.state.clone(),
        evidence_dir: opts.evidence_dir.clone(),
        events: Some(events),
        alerts_only: opts.alerts_only,
        collect: false,
        metrics: opts.metrics.clone(),
        alertmanager: opts.alertmanager.clone(),
    })?;
    if let Some(p) = opts.publisher.take() {
        detection.publish_to(p);
    }
    for w in detection.state_warnings() {
        warn("learned state", w);
    }
    if opts.evidence_dir.is_some() {
        detection.cut_evidence_live();
    }
    let evidence = opts.evidence_dir.as_ref().map(|_| RingLimits {
        max_payload_per_flow: opts.config.evidence.max_payload_bytes_per_flow,
        budget_bytes: opts.evidence_memory,
        ..RingLimits::default()
    });
    let run = Sharded {
        workers: opts.workers,
        flow: opts.flow.clone(),
        proto: opts.proto.clone(),
        evidence,
        stop: Arc::clone(&opts.stop),
        defrag: opts.defrag.clone(),
        chores: Chores {
            metrics: opts.metrics.clone(),
            reload: Some(Arc::clone(&opts.reload)),
            events: opts.events.clone(),
            config_path: opts.config_path.clone(),
            extra_dicom_ports: opts.extra_dicom_ports.clone(),
            overrides: opts.overrides.clone(),
        },
    };
    let end = run.run(src, &mut detection)?;
    let mut src = end.feed;
    Ok(CaptureReport {
        live: src.stats(),
        pipeline: detection.report(end.shards, Vec::new(), end.evidence_files),
        pipeline_drops: end.pipeline_drops,
        worker_frames: end.worker_frames,
        capture_error: end.error.map(|e| e.to_string()),
        reload_errors: end.reload_errors,
    })
}
