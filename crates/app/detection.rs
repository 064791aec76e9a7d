//! detect → outputs ([`Detection`]): decoded events in packet order in, events and alerts out
//! (JSON lines, summary, metrics, Alertmanager, evidence plan). Owns every piece of cross-flow
//! state, so it runs on exactly one thread, whatever feeds it: one [`crate::FlowShard`] in
//! replay, the workers' merged outputs in `crate::sharded`. [`DetectionClock`] decides when
//! packet time advances its windows, the same way for both.

use crate::config::Config;
use crate::recent::RecentFlows;
use crate::report::ReplayReport;
use crate::shard::ShardStats;
use anyhow::{Context, Result};
use pacstap_capture::Damage;
use pacstap_core::{EventBody, FlowId, ProtocolEvent, Timestamp};
use pacstap_detect::{Detector, PostureTracker, StateStore};
use pacstap_jetstream::{PublishCounters, Publisher};
use pacstap_output::{AlertmanagerClient, EvidencePlan, JsonLinesSink, Metrics, StatsSnapshot, Summary};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A live evidence request: the file, the alert's flows, and the alert (the cut's alert update
/// re-emits it with the file's hash: `crate::evidence_cut`).
pub type EvidenceWanted = (PathBuf, Vec<FlowId>, ProtocolEvent);

/// What [`Detection`] needs, whatever feeds it (one [`crate::FlowShard`] in replay, the workers live).
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

/// detect → outputs: takes decoded events in packet order (from one [`crate::FlowShard`], or merged
/// from several), runs detection on them, and writes events and alerts. Owns all cross-flow
/// state (entities, windows, baselines), so it runs on exactly one thread.
pub struct Detection {
    detector: Detector,
    /// Posture findings (issue 13) beside detection: sees the same events, emits `posture`
    /// events right after the event that showed them.
    posture: PostureTracker,
    postures: Vec<ProtocolEvent>,
    /// The whole config: detection runs on its [`Config::detect_config`] part; the rest
    /// (`[ports]`, `[decapsulate]`) is the decoders', compared on reload.
    config: Config,
    store: Option<StateStore>,
    state_warnings: Vec<String>,
    /// Alerts caused by the events being observed, emitted after them; reused.
    alerts: Vec<ProtocolEvent>,
    evidence: Option<EvidencePlan>,
    /// Live capture: each alert's evidence is cut from the workers' rings, so alerts are queued
    /// here as requests (file, flows) for the capture loop to serve. Replay leaves this off and
    /// writes its plan in a second pass.
    live_evidence: bool,
    evidence_requests: Vec<EvidenceWanted>,
    recent: RecentFlows,
    /// `false` (`[publish] local_detection = false` with a publisher): no rule or posture
    /// check runs here; the central detector sees the same events.
    local_detection: bool,
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
        let detect_config = settings.config.detect_config();
        let detector = Detector::new(&detect_config, learned).context("starting detection")?;
        Ok(Detection {
            local_detection: true,
            detector,
            posture: PostureTracker::new(detect_config.users.admins.clone()),
            postures: Vec::new(),
            config: settings.config,
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
                publisher: None,
                publish_counters: None,
                line: Vec::new(),
            },
        })
    }

    /// Packet time advanced to `ts` (once per second of it): windows expire even when no
    /// event comes. Alerts this causes are emitted with the next [`Detection::events`].
    pub fn tick(&mut self, ts: Timestamp) {
        if !self.local_detection {
            return;
        }
        self.detector.tick(ts, &mut self.alerts);
    }

    /// Whether alerts wait to be emitted (by the next [`Detection::events`]).
    #[inline]
    pub fn has_alerts(&self) -> bool {
        !self.alerts.is_empty()
    }

    /// Observe and emit decoded events (those of one packet), then the alerts they caused.
    /// Returns how many lines were emitted.
    pub fn events(&mut self, events: impl IntoIterator<Item = ProtocolEvent>) -> Result<u64> {
        self.out.emitted = 0;
        for ev in events {
            if self.local_detection {
                self.detector.observe(&ev, &mut self.alerts);
                self.posture.observe(&ev, &mut self.postures);
            }
            self.recent.insert(ev.flow.id, ev.flow);
            self.out.emit(ev)?;
            for p in self.postures.drain(..) {
                self.out.emit(p)?;
            }
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
                        .push((PathBuf::from(path), a.evidence.flow_ids.clone(), alert.clone()));
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
    pub fn take_evidence_requests(&mut self) -> Vec<EvidenceWanted> {
        std::mem::take(&mut self.evidence_requests)
    }

    /// Live evidence: emit the alert update that proves a file just cut (same incident,
    /// `update: true`, `evidence.pcap_sha256`), like any alert (events, metrics, Alertmanager).
    pub fn emit_evidence_update(&mut self, alert: ProtocolEvent) -> Result<()> {
        self.out.emit(alert)
    }

    /// End of input, after the last events: detection reports what it holds, learned state is
    /// saved, and the events output is flushed.
    pub fn finish(&mut self) -> Result<()> {
        if self.local_detection {
            self.detector.finish(&mut self.alerts);
        }
        self.emit_alerts()?;
        // The last events are queued: give them `[publish] drain_timeout` to reach JetStream.
        if let Some(p) = self.out.publisher.take() {
            p.shutdown();
        }
        self.save_state()?;
        self.flush()
    }

    /// Also publish every event to NATS JetStream (`--publish`, issue 15), from the next event
    /// on. With it, `[publish] local_detection = false` runs no rule here: events are decoded,
    /// written and published for a central detector to decide on.
    pub fn publish_to(&mut self, publisher: Publisher) {
        self.local_detection = self.config.publish.local_detection;
        self.out.publish_counters = Some(publisher.counters());
        self.out.publisher = Some(publisher);
    }

    /// The JetStream publisher's counters (`--publish`), also after its shutdown.
    pub fn publish_counters(&self) -> Option<&Arc<PublishCounters>> {
        self.out.publish_counters.as_ref()
    }

    /// Write learned state now (atomically; also done by [`Detection::finish`]).
    pub fn save_state(&self) -> Result<()> {
        if let Some(store) = &self.store {
            let saved = store.save(&self.detector.learned_state());
            // `pacstap_state_saves_total{result}`, only where a state file is configured.
            if let Some(m) = &self.out.metrics {
                m.state_save(saved.is_ok());
            }
            saved.context("saving learned state")?;
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
        let detect_config = config.detect_config();
        self.detector
            .reconfigure(&detect_config)
            .context("reloading detection")?;
        self.posture.set_admins(detect_config.users.admins.clone());
        self.config = config.clone();
        Ok(())
    }

    /// The config detection runs with.
    pub fn config(&self) -> &Config {
        &self.config
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
            evidence_sha256: Vec::new(),
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
    /// Events emitted since the last call to [`Detection::events`] began.
    emitted: u64,
    /// Every event (not only those `--alerts-only` writes) also goes to JetStream.
    publisher: Option<Publisher>,
    /// The publisher's counters, kept after its shutdown for the last metrics and the summary.
    publish_counters: Option<Arc<PublishCounters>>,
    /// One event's EVE JSON, reused.
    line: Vec<u8>,
}

impl Outputs {
    fn emit(&mut self, ev: ProtocolEvent) -> Result<()> {
        // Internal signals (the DICOM accept) are for detection only: no line, count or metric.
        if ev.body.is_internal() {
            return Ok(());
        }
        self.emitted += 1;
        self.summary.observe(&ev);
        if let Some(m) = &self.metrics {
            m.observe_event(&ev);
        }
        if let Some(am) = &self.alertmanager {
            am.push(&ev);
        }
        // With a publisher, one serialization serves it and the events file. Serializing into
        // memory cannot fail for these types; if it did, the file gets the error from its own
        // write, and the publisher an empty line (counted failed).
        let serialized = self.publisher.is_some() && {
            self.line.clear();
            let ok = pacstap_output::eve_json(&ev, &mut self.line).is_ok();
            if !ok {
                self.line.clear();
            }
            ok
        };
        if let Some(s) = self.sink.as_mut() {
            let written = if serialized {
                s.write_serialized(&ev, &self.line)
            } else {
                s.write(&ev)
            };
            written.context("writing events")?;
        }
        if let Some(p) = self.publisher.as_mut() {
            p.publish(ev.body.event_type(), &self.line);
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
        ("tcp.syn_data_ignored", f.syn_data_ignored),
        ("tcp.fin_ignored", f.fin_ignored),
        ("tcp.urgent_data", f.urgent_data),
        ("tcp.paws_rejected", f.paws_rejected),
        ("tcp.low_ttl_decoy", f.low_ttl_decoys),
        ("tcp.rst_low_ttl", f.rst_low_ttl),
        ("tcp.without_ack", f.without_ack),
        ("tcp.data_out_of_window", f.data_out_of_window),
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
        publish: detection.out.publish_counters.as_ref().map(|c| c.totals()),
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
        ("causal_holds", f.causal_holds),
        ("causal_hold_overflows", f.causal_hold_overflows),
        ("ack_gaps", f.ack_gaps),
        ("rst_accepted", f.rst_accepted),
        ("rst_in_window", f.rst_in_window),
        ("rst_out_of_window", f.rst_out_of_window),
        ("syn_on_established", f.syn_on_established),
        ("data_after_close", f.data_after_close),
        ("syn_data_ignored", f.syn_data_ignored),
        ("fin_ignored", f.fin_ignored),
        ("urgent_data", f.urgent_data),
        ("paws_rejected", f.paws_rejected),
        ("low_ttl_held", f.low_ttl_held),
        ("low_ttl_decoys", f.low_ttl_decoys),
        ("low_ttl_taken", f.low_ttl_taken),
        ("rst_low_ttl", f.rst_low_ttl),
        ("without_ack", f.without_ack),
        ("data_out_of_window", f.data_out_of_window),
        ("data_out_of_window_taken", f.data_out_of_window_taken),
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

/// How often (wall time) the snapshot-derived metrics are refreshed.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Register an alert's flows for its evidence pcap and name the file in the alert.
fn plan_evidence(plan: Option<&mut EvidencePlan>, recent: &RecentFlows, ev: &mut ProtocolEvent) {
    if let (Some(plan), EventBody::Alert(alert)) = (plan, &mut ev.body) {
        alert.evidence.pcap = plan.add(alert, |id| recent.get(&id)).map(|p| p.display().to_string());
    }
}
