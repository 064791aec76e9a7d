//! The registry: every metric pacstap exports, registered once, advanced by stage snapshots
//! ([`Metrics::update`]) and by events ([`Metrics::observe_event`]), rendered as text.

use super::health::HealthState;
use super::labels::{
    anomaly_proto, fold, hl7_type_family, http_status_class, DICOMWEB_SERVICES, DIMSE_COMMANDS, HL7_ACK_CODES,
    IP_FRAGMENT_OUTCOMES, RULES, TCP_COUNTERS, TLS_VERSIONS, TUNNEL_KINDS,
};
use super::latency::{LatencyCollector, LatencyQuantiles, LatencyRecorder, LatencyState, LATENCY_MAX};
use super::lock;
use super::ops::OpsMetrics;
use super::publish::{PublishMetrics, PublishStats};
use crate::alertmanager::AlertmanagerStats;
use pacstap_core::{DicomEvent, EventBody, ProtocolEvent};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// HL7 ACK latency buckets: interface engines answer in milliseconds to tens of seconds;
/// minutes mean a stuck receiver.
const ACK_LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// The stage counters behind the snapshot-derived metrics: filled by the pipeline from its stats
/// structs (and by live capture from libpcap and its channel). Cumulative values since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    pub packets: u64,
    pub bytes: u64,
    pub kernel_drops: u64,
    pub interface_drops: u64,
    pub pipeline_drops: u64,
    pub flows_created: u64,
    pub flows_active: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub cap_hits_flow_table: u64,
    pub cap_hits_buffer: u64,
    pub cap_hits_holes: u64,
    /// Decoder buffer growths the decoder memory budget refused (`ProtoStats::memory_cap_hits`).
    pub decoder_memory_cap_hits: u64,
    /// Bytes the decoders hold now (`ProtoStats::memory_held`, a gauge).
    pub decoder_memory_bytes: u64,
    /// Anomalies by name (`proto.name`), including those past the per-flow event cap.
    pub anomalies: BTreeMap<&'static str, u64>,
    /// IP defragmentation outcomes (`pacstap_ip_fragments_total{outcome}`), by outcome name.
    pub ip_fragments: BTreeMap<&'static str, u64>,
    /// Bytes the defragmenter holds now.
    pub ip_fragments_held_bytes: u64,
    /// The flow stage's TCP counters by [`TCP_COUNTERS`] name (`pacstap_tcp_<name>_total`).
    pub tcp: BTreeMap<&'static str, u64>,
    /// Negotiated TLS versions, one per connection.
    pub tls_versions: BTreeMap<&'static str, u64>,
    /// HL7 acknowledgments by MSA-1 code.
    pub hl7_acks: BTreeMap<&'static str, u64>,
    /// Frames decapsulated, by tunnel kind (the wire stage's fixed names).
    pub decapsulated: BTreeMap<&'static str, u64>,
    pub studies_exported: u64,
    /// Packet time of the latest frame, seconds since the epoch.
    pub last_packet_time: Option<f64>,
    /// The Alertmanager client's counters ([`crate::AlertmanagerClient::stats`]); all zero
    /// without `--alertmanager`. Fill it in every snapshot or in none: like the other fields, a
    /// value that drops to zero and comes back would be counted twice.
    pub alertmanager: AlertmanagerStats,
    /// The JetStream publisher's counters (`--publish`); `None` without one (no series).
    pub publish: Option<PublishStats>,
}

/// The registry and every metric in it. Shared (`Arc`) between the pipeline, which updates it,
/// and the HTTP server, which renders it.
pub struct Metrics {
    registry: Registry,
    packets: IntCounter,
    bytes: IntCounter,
    kernel_drops: IntCounter,
    interface_drops: IntCounter,
    pipeline_drops: IntCounter,
    flows: IntCounter,
    flows_active: IntGauge,
    gaps: IntCounter,
    gap_bytes: IntCounter,
    cap_hits: IntCounterVec,
    ip_fragments: IntCounterVec,
    ip_fragments_held: IntGauge,
    decoder_memory_cap_hits: IntCounter,
    decoder_memory_bytes: IntGauge,
    anomalies: IntCounterVec,
    /// `pacstap_tcp_*_total`, in [`TCP_COUNTERS`] order.
    tcp: Vec<(&'static str, IntCounter)>,
    events: IntCounterVec,
    associations: IntCounterVec,
    commands: IntCounterVec,
    studies_exported: IntCounter,
    http: IntCounterVec,
    tls: IntCounterVec,
    hl7_messages: IntCounterVec,
    hl7_acks: IntCounterVec,
    decapsulated: IntCounterVec,
    hl7_ack_latency: Histogram,
    alerts: IntCounterVec,
    alert_updates: IntCounterVec,
    /// Shared with the [`LatencyCollector`] registered in `registry`, which renders it.
    event_latency: Arc<Mutex<LatencyState>>,
    am_sent: IntCounter,
    am_dropped: IntCounter,
    am_rejected: IntCounter,
    am_failed_posts: IntCounter,
    am_queue: IntGauge,
    last_packet: prometheus::Gauge,
    /// The previous snapshot: counters advance by the difference.
    previous: Mutex<StatsSnapshot>,
    healthy: AtomicBool,
    /// Idle and drop tracking behind `/healthz` ([`Metrics::health`]).
    health: Mutex<HealthState>,
    /// Reloads, state saves, resident memory.
    ops: OpsMetrics,
    /// `pacstap_publish_*` (issue 15).
    publish: PublishMetrics,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// A fresh registry with every metric registered (and zero-valued series for the fixed
    /// label sets that dashboards expect to exist from the first scrape).
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let m = Metrics {
            packets: counter(&r, "pacstap_packets_total", "Frames that reached the pipeline.")?,
            bytes: counter(
                &r,
                "pacstap_bytes_total",
                "Captured bytes of the frames that reached the pipeline.",
            )?,
            kernel_drops: counter(
                &r,
                "pacstap_kernel_drops_total",
                "Frames the kernel dropped because the capture buffer was full (pcap ps_drop).",
            )?,
            interface_drops: counter(
                &r,
                "pacstap_interface_drops_total",
                "Frames the network interface or driver dropped (pcap ps_ifdrop).",
            )?,
            pipeline_drops: counter(
                &r,
                "pacstap_pipeline_drops_total",
                "Frames pacstap dropped because the queue to the processing thread was full (newest dropped).",
            )?,
            flows: counter(&r, "pacstap_flows_total", "TCP flows created.")?,
            flows_active: {
                let g = IntGauge::new("pacstap_flows_active", "TCP flows in the flow table.")?;
                r.register(Box::new(g.clone()))?;
                g
            },
            gaps: counter(
                &r,
                "pacstap_reassembly_gaps_total",
                "Reassembly gaps: stream bytes the capture never saw, given up on.",
            )?,
            gap_bytes: counter(
                &r,
                "pacstap_reassembly_gap_bytes_total",
                "Stream bytes lost to reassembly gaps.",
            )?,
            cap_hits: counter_vec(
                &r,
                "pacstap_reassembly_cap_hits_total",
                "Times a reassembly cap was hit (flow table full, buffered bytes, holes per direction).",
                &["cap"],
            )?,
            ip_fragments: counter_vec(
                &r,
                "pacstap_ip_fragments_total",
                "IP datagrams by how their fragment reassembly ended (reassembled, or why it was given up).",
                &["outcome"],
            )?,
            ip_fragments_held: {
                let g = IntGauge::new(
                    "pacstap_ip_fragments_held_bytes",
                    "Bytes held for IP datagrams still being reassembled.",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            decoder_memory_cap_hits: counter(
                &r,
                "pacstap_decoder_memory_cap_hits_total",
                "Decoder buffer growths the decoder memory budget refused (each gave up buffering one message).",
            )?,
            decoder_memory_bytes: {
                let g = IntGauge::new(
                    "pacstap_decoder_memory_bytes",
                    "Bytes the protocol decoders hold now (control PDUs, heads, handshake messages, prefixes).",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            anomalies: counter_vec(
                &r,
                "pacstap_anomalies_total",
                "Malformed or unexpected traffic, by protocol and anomaly name.",
                &["proto", "name"],
            )?,
            tcp: TCP_COUNTERS
                .iter()
                .map(|&(name, help)| Ok((name, counter(&r, &format!("pacstap_tcp_{name}_total"), help)?)))
                .collect::<prometheus::Result<_>>()?,
            events: counter_vec(
                &r,
                "pacstap_events_total",
                "Events emitted, by event type.",
                &["event_type"],
            )?,
            associations: counter_vec(
                &r,
                "pacstap_dicom_associations_total",
                "DICOM associations, by how they ended.",
                &["outcome"],
            )?,
            commands: counter_vec(
                &r,
                "pacstap_dicom_commands_total",
                "DIMSE requests, by command and final status class.",
                &["command", "status_class"],
            )?,
            studies_exported: counter(
                &r,
                "pacstap_studies_exported_total",
                "Distinct (exporting entity, study) pairs counted by the export rules (C-MOVE, C-GET, DICOMweb).",
            )?,
            http: counter_vec(
                &r,
                "pacstap_http_transactions_total",
                "HTTP transactions, by status class and DICOMweb service.",
                &["status_class", "service"],
            )?,
            tls: counter_vec(
                &r,
                "pacstap_tls_connections_total",
                "TLS connections, by negotiated version.",
                &["version"],
            )?,
            hl7_messages: counter_vec(
                &r,
                "pacstap_hl7_messages_total",
                "HL7 v2 messages, by message type (first component of MSH-9).",
                &["type"],
            )?,
            hl7_acks: counter_vec(
                &r,
                "pacstap_hl7_acks_total",
                "HL7 acknowledgments, by MSA-1 code.",
                &["code"],
            )?,
            decapsulated: counter_vec(
                &r,
                "pacstap_decapsulated_frames_total",
                "Frames the wire stage decapsulated, by tunnel kind (a frame nested in two kinds counts in both).",
                &["kind"],
            )?,
            hl7_ack_latency: histogram(
                &r,
                "pacstap_hl7_ack_latency_seconds",
                "Packet time from an HL7 message to its acknowledgment.",
                &ACK_LATENCY_BUCKETS,
            )?,
            alerts: counter_vec(
                &r,
                "pacstap_alerts_total",
                "Alerts (new incidents), by rule and severity.",
                &["rule", "severity"],
            )?,
            alert_updates: counter_vec(
                &r,
                "pacstap_alert_updates_total",
                "Updates of open incidents, by rule and severity.",
                &["rule", "severity"],
            )?,
            event_latency: {
                let state = Arc::new(Mutex::new(LatencyState::new()?));
                r.register(Box::new(LatencyCollector::new(
                    "pacstap_event_latency_seconds",
                    "Wall time from a frame leaving the capture to its events being written.",
                    Arc::clone(&state),
                )?))?;
                state
            },
            am_sent: counter(
                &r,
                "pacstap_alertmanager_alerts_sent_total",
                "Alerts pushed to Alertmanager and accepted (2xx).",
            )?,
            am_dropped: counter(
                &r,
                "pacstap_alertmanager_alerts_dropped_total",
                "Alerts never pushed to Alertmanager: push queue full, or still queued at shutdown.",
            )?,
            am_rejected: counter(
                &r,
                "pacstap_alertmanager_alerts_rejected_total",
                "Alerts in POSTs that Alertmanager refused with a 4xx status (not retried).",
            )?,
            am_failed_posts: counter(
                &r,
                "pacstap_alertmanager_posts_failed_total",
                "POSTs to Alertmanager that failed (connection, timeout, non-2xx status).",
            )?,
            am_queue: {
                let g = IntGauge::new(
                    "pacstap_alertmanager_queue_length",
                    "Alerts waiting to be pushed to Alertmanager, including the batch in flight.",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            last_packet: {
                let g = prometheus::Gauge::new(
                    "pacstap_last_packet_timestamp_seconds",
                    "Packet time of the latest frame, seconds since the epoch.",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            previous: Mutex::new(StatsSnapshot::default()),
            healthy: AtomicBool::new(true),
            health: Mutex::new(HealthState::new(Instant::now())),
            ops: OpsMetrics::new(&r)?,
            publish: PublishMetrics::new(&r)?,
            registry: r,
        };
        let info = IntGaugeVec::new(Opts::new("pacstap_build_info", "pacstap version."), &["version"])?;
        m.registry.register(Box::new(info.clone()))?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Series that exist from the first scrape, so rate() and alert rules see zero, not absence.
        for cap in ["flow_table", "buffer", "holes"] {
            m.cap_hits.with_label_values(&[cap]);
        }
        for outcome in ["released", "rejected", "aborted", "reset", "closed", "incomplete"] {
            m.associations.with_label_values(&[outcome]);
        }
        for outcome in IP_FRAGMENT_OUTCOMES {
            m.ip_fragments.with_label_values(&[outcome]);
        }
        Ok(m)
    }

    /// Advance the snapshot-derived metrics to `now` (cumulative stage counters). Counters move
    /// by the difference from the previous snapshot; a counter that went backwards (a restarted
    /// stage) moves by nothing.
    pub fn update(&self, now: &StatsSnapshot) {
        let mut prev = match self.previous.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let add = |c: &IntCounter, new: u64, old: u64| c.inc_by(new.saturating_sub(old));
        lock(&self.health).observe(
            now.packets,
            now.kernel_drops
                .saturating_add(now.interface_drops)
                .saturating_add(now.pipeline_drops),
            Instant::now(),
        );
        add(&self.packets, now.packets, prev.packets);
        add(&self.bytes, now.bytes, prev.bytes);
        add(&self.kernel_drops, now.kernel_drops, prev.kernel_drops);
        add(&self.interface_drops, now.interface_drops, prev.interface_drops);
        add(&self.pipeline_drops, now.pipeline_drops, prev.pipeline_drops);
        add(&self.flows, now.flows_created, prev.flows_created);
        add(&self.gaps, now.gaps, prev.gaps);
        add(&self.gap_bytes, now.gap_bytes, prev.gap_bytes);
        add(&self.studies_exported, now.studies_exported, prev.studies_exported);
        add(
            &self.decoder_memory_cap_hits,
            now.decoder_memory_cap_hits,
            prev.decoder_memory_cap_hits,
        );
        self.decoder_memory_bytes
            .set(i64::try_from(now.decoder_memory_bytes).unwrap_or(i64::MAX));
        for (cap, new, old) in [
            ("flow_table", now.cap_hits_flow_table, prev.cap_hits_flow_table),
            ("buffer", now.cap_hits_buffer, prev.cap_hits_buffer),
            ("holes", now.cap_hits_holes, prev.cap_hits_holes),
        ] {
            add(&self.cap_hits.with_label_values(&[cap]), new, old);
        }
        self.flows_active
            .set(i64::try_from(now.flows_active).unwrap_or(i64::MAX));
        for (outcome, &n) in &now.ip_fragments {
            let old = prev.ip_fragments.get(outcome).copied().unwrap_or(0);
            if n > old {
                self.ip_fragments
                    .with_label_values(&[fold(outcome, &IP_FRAGMENT_OUTCOMES)])
                    .inc_by(n - old);
            }
        }
        self.ip_fragments_held
            .set(i64::try_from(now.ip_fragments_held_bytes).unwrap_or(i64::MAX));
        for (name, &n) in &now.anomalies {
            let old = prev.anomalies.get(name).copied().unwrap_or(0);
            if n > old {
                self.anomalies
                    .with_label_values(&[anomaly_proto(name), name])
                    .inc_by(n - old);
            }
        }
        for (name, c) in &self.tcp {
            let new = now.tcp.get(name).copied().unwrap_or(0);
            add(c, new, prev.tcp.get(name).copied().unwrap_or(0));
        }
        for (version, &n) in &now.tls_versions {
            let old = prev.tls_versions.get(version).copied().unwrap_or(0);
            if n > old {
                self.tls
                    .with_label_values(&[fold(version, &TLS_VERSIONS)])
                    .inc_by(n - old);
            }
        }
        for (code, &n) in &now.hl7_acks {
            let old = prev.hl7_acks.get(code).copied().unwrap_or(0);
            if n > old {
                self.hl7_acks
                    .with_label_values(&[fold(code, &HL7_ACK_CODES)])
                    .inc_by(n - old);
            }
        }
        for (kind, &n) in &now.decapsulated {
            let old = prev.decapsulated.get(kind).copied().unwrap_or(0);
            if n > old {
                self.decapsulated
                    .with_label_values(&[fold(kind, &TUNNEL_KINDS)])
                    .inc_by(n - old);
            }
        }
        if let Some(t) = now.last_packet_time {
            self.last_packet.set(t);
        }
        let (am, old) = (&now.alertmanager, &prev.alertmanager);
        add(&self.am_sent, am.sent, old.sent);
        add(&self.am_dropped, am.dropped, old.dropped);
        add(&self.am_rejected, am.rejected, old.rejected);
        add(&self.am_failed_posts, am.failed_posts, old.failed_posts);
        self.am_queue.set(i64::try_from(am.queued).unwrap_or(i64::MAX));
        if let Some(p) = &now.publish {
            self.publish.update(p, &prev.publish.unwrap_or_default(), true);
        }
        prev.clone_from(now);
    }

    /// Count one event (called for every event, whether or not `--alerts-only` writes it).
    pub fn observe_event(&self, ev: &ProtocolEvent) {
        self.events.with_label_values(&[ev.body.event_type()]).inc();
        match &ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => {
                self.associations.with_label_values(&[a.outcome.as_str()]).inc();
            }
            EventBody::Dicom(DicomEvent::Command(c)) => {
                let class = c.status_class.map_or("none", |s| s.as_str());
                self.commands
                    .with_label_values(&[fold(&c.command, &DIMSE_COMMANDS), class])
                    .inc();
            }
            EventBody::Http(h) => {
                let service = h
                    .dicomweb
                    .as_ref()
                    .map_or("none", |d| fold(&d.service, &DICOMWEB_SERVICES));
                self.http
                    .with_label_values(&[http_status_class(h.status), service])
                    .inc();
            }
            EventBody::Hl7(m) => {
                self.hl7_messages
                    .with_label_values(&[hl7_type_family(&m.message_type)])
                    .inc();
                if let Some(s) = m.ack_latency_seconds {
                    if s.is_finite() && s >= 0.0 {
                        self.hl7_ack_latency.observe(s);
                    }
                }
            }
            EventBody::Alert(a) => {
                let labels = [fold(&a.rule, &RULES), a.severity.as_str()];
                if a.update {
                    self.alert_updates.with_label_values(&labels).inc();
                } else {
                    self.alerts.with_label_values(&labels).inc();
                }
            }
            // TLS versions and anomalies come from the stage counters (every connection and
            // every anomaly, including those past the per-flow event cap).
            EventBody::Tls(_) | EventBody::Anomaly(_) | EventBody::Posture(_) => {}
            // Internal (never written); callers skip it before this.
            EventBody::Dicom(DicomEvent::Accepted(_)) => {}
        }
    }

    /// One frame's events were written `elapsed` after the frame left the capture.
    ///
    /// Takes a mutex for one array increment: right for a single pipeline thread or a few
    /// threads recording now and then. A worker recording every frame on many threads should
    /// record into its own [`LatencyRecorder`] ([`Metrics::event_latency_recorder`]) and hand
    /// it to [`Metrics::merge_event_latency`] about once a second, paying one lock per merge
    /// instead of one per frame.
    pub fn observe_event_latency(&self, elapsed: Duration) {
        lock(&self.event_latency).record(elapsed);
    }

    /// An empty thread-local recorder with the same range and precision as the shared
    /// histogram, so merging it is an exact, infallible array addition.
    pub fn event_latency_recorder(&self) -> LatencyRecorder {
        let state = lock(&self.event_latency);
        LatencyRecorder {
            hist: hdrhistogram::Histogram::new_from(&state.hist),
            sum_nanos: 0,
        }
    }

    /// Add what `local` recorded to the exported histogram and empty `local`, so the caller can
    /// keep recording into it and merge again later without counting anything twice.
    pub fn merge_event_latency(&self, local: &mut LatencyRecorder) {
        if local.is_empty() {
            return;
        }
        lock(&self.event_latency).merge(local);
        local.hist.reset();
        local.sum_nanos = 0;
    }

    /// p50 / p99 / p99.9 / max of the event-pipeline latency since start (for the run summary
    /// and logs; Prometheus users get them from the `_bucket` series with
    /// `histogram_quantile()`). `None` before the first observation.
    pub fn event_latency_quantiles(&self) -> Option<LatencyQuantiles> {
        let state = lock(&self.event_latency);
        let h = &state.hist;
        if h.is_empty() {
            return None;
        }
        // Class tops may exceed the clamp by a class width; nothing recorded did.
        let at = |us: u64| Duration::from_micros(us).min(LATENCY_MAX);
        Some(LatencyQuantiles {
            count: h.len(),
            p50: at(h.value_at_quantile(0.5)),
            p99: at(h.value_at_quantile(0.99)),
            p999: at(h.value_at_quantile(0.999)),
            max: at(h.max()),
        })
    }

    /// What `/healthz` answers: set to false when the capture or the pipeline has stopped.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Answer 503 on `/healthz` when no frame has arrived for `alarm` (live capture's
    /// `[capture] idle_alarm`); `None` or zero: never for idleness. Counts from now until the
    /// first frame.
    pub fn set_idle_alarm(&self, alarm: Option<Duration>) {
        lock(&self.health).set_idle_alarm(alarm, Instant::now());
    }

    /// What `/healthz` answers: `Ok`, or the reason it is unhealthy (stopped, idle, dropping;
    /// see [`super::health`]).
    pub fn health(&self) -> Result<(), String> {
        lock(&self.health).verdict(self.healthy(), Instant::now())
    }

    /// Count a SIGHUP config reload (`pacstap_config_reloads_total{result}`).
    pub fn config_reload(&self, ok: bool) {
        self.ops.config_reload(ok);
    }

    /// Count a learned-state save (`pacstap_state_saves_total{result}`; a success also sets
    /// `pacstap_state_last_save_timestamp_seconds`).
    pub fn state_save(&self, ok: bool) {
        self.ops.state_save(ok);
    }

    /// The text exposition format (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        self.ops.refresh();
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = prometheus::Encoder::encode(&encoder, &self.registry.gather(), &mut buf) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::LATENCY_BUCKETS;
    use super::*;
    use pacstap_core::*;
    use std::io::Write;
    use std::net::{IpAddr, Ipv4Addr};

    fn meta() -> FlowMeta {
        FlowMeta {
            id: FlowId(1),
            client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000),
            server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 104),
            start: Timestamp(0),
            handshake_seen: true,
        }
    }

    fn ev(body: EventBody) -> ProtocolEvent {
        ProtocolEvent {
            ts: Timestamp(0),
            flow: meta(),
            body,
        }
    }

    fn command(name: &str, status: Option<StatusClass>) -> EventBody {
        EventBody::Dicom(DicomEvent::Command(DicomCommand {
            calling_ae: "SECRET_AE".into(),
            called_ae: "PACS".into(),
            user: None,
            command: name.into(),
            message_id: 1,
            sop_class_uid: None,
            sop_instance_uid: Some("1.2.3.4.5".into()),
            move_destination: None,
            move_originator_ae: None,
            move_originator_message_id: None,
            query_level: None,
            study_instance_uids: vec!["1.2.3".into()],
            modality: None,
            status: None,
            status_class: status,
            sub_operations: None,
            dataset_bytes: 0,
            lost_bytes: 0,
            incomplete: false,
            direction: Direction::ToServer,
            responses: 1,
            request_time: Timestamp(0),
            response_time: None,
        }))
    }

    /// The value of the sample `name{labels}` in an exposition, if present.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Checks the exposition line by line as `promtool check metrics` would for what we emit:
    /// HELP and TYPE before each family, names with the prefix and the suffix rules, every
    /// sample's family declared, no duplicate series.
    fn check_exposition(text: &str) {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut series = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').unwrap();
                assert!(name.starts_with("pacstap_"), "{name}");
                match t {
                    "counter" => assert!(name.ends_with("_total"), "counter {name} must end in _total"),
                    "histogram" => assert!(name.ends_with("_seconds"), "histogram {name}"),
                    "gauge" => assert!(!name.ends_with("_total"), "gauge {name}"),
                    _ => panic!("unexpected type {t}"),
                }
                assert!(
                    types.insert(name.to_owned(), t.to_owned()).is_none(),
                    "TYPE twice: {name}"
                );
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.is_empty(), "{name} has no help");
            } else if !line.is_empty() {
                let name_end = line.find(['{', ' ']).unwrap();
                let name = &line[..name_end];
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
                    })
                    .unwrap_or(name);
                assert!(types.contains_key(family), "sample before its TYPE: {line}");
                let (key, value) = line.rsplit_once(' ').unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
                assert!(series.insert(key.to_owned()), "duplicate series {key}");
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad metric name {name}"
                );
            }
        }
    }

    #[test]
    fn exposition_is_well_formed_and_named_by_the_contract() {
        let m = Metrics::new().unwrap();
        m.observe_event(&ev(command("C-MOVE", Some(StatusClass::Success))));
        m.observe_event_latency(Duration::from_micros(300));
        let text = m.render();
        check_exposition(&text);
        for name in [
            "pacstap_packets_total",
            "pacstap_bytes_total",
            "pacstap_kernel_drops_total",
            "pacstap_pipeline_drops_total",
            "pacstap_flows_active",
            "pacstap_reassembly_gaps_total",
            "pacstap_dicom_associations_total",
            "pacstap_dicom_commands_total",
            "pacstap_studies_exported_total",
            "pacstap_event_latency_seconds",
            "pacstap_hl7_ack_latency_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert_eq!(
            sample(&text, "pacstap_dicom_associations_total{outcome=\"released\"}"),
            Some(0.0),
            "fixed label values exist from the first scrape"
        );
        assert_eq!(sample(&text, "pacstap_event_latency_seconds_count"), Some(1.0));
        assert_eq!(
            sample(&text, "pacstap_event_latency_seconds_bucket{le=\"0.0005\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn labels_never_carry_identities_and_unknown_values_fold() {
        let m = Metrics::new().unwrap();
        m.observe_event(&ev(command("C-STORE", Some(StatusClass::Success))));
        m.observe_event(&ev(command("0x1234", None)));
        m.observe_event(&ev(EventBody::Http(HttpEvent {
            method: "GET".into(),
            url: "/studies/1.2.3".into(),
            status: Some(401),
            user: Some("rad1".into()),
            dicomweb: Some(DicomWeb {
                service: "WADO-RS".into(),
                study_instance_uid: Some("1.2.3".into()),
                ..Default::default()
            }),
            ..Default::default()
        })));
        m.observe_event(&ev(EventBody::Http(HttpEvent {
            status: Some(999),
            dicomweb: Some(DicomWeb {
                service: "NEW-RS".into(),
                ..Default::default()
            }),
            ..Default::default()
        })));
        for t in ["ADT^A01^ADT_A01", "ZZZ^Z01", "", "ORU"] {
            m.observe_event(&ev(EventBody::Hl7(Hl7Event {
                message_type: t.into(),
                ack_latency_seconds: Some(0.2),
                ..Default::default()
            })));
        }
        m.observe_event(&ev(EventBody::Alert(Alert {
            rule: "bulk_export".into(),
            severity: Severity::High,
            entity: AlertEntity {
                kind: "user".into(),
                id: "rad1".into(),
            },
            count: 16,
            threshold: Some(15),
            window_seconds: Some(1800),
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            summary: "rad1 exported 16 studies".into(),
            evidence: AlertEvidence::default(),
            response: vec![],
            update: false,
            incident_id: "0123456789abcdef".into(),
        })));
        let text = m.render();
        check_exposition(&text);
        for secret in ["SECRET_AE", "rad1", "1.2.3", "0x1234", "ZZZ", "NEW-RS", "999"] {
            assert!(!text.contains(secret), "{secret} leaked into a label:\n{text}");
        }
        let get = |s: &str| sample(&text, s);
        assert_eq!(
            get("pacstap_dicom_commands_total{command=\"C-STORE\",status_class=\"success\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("pacstap_dicom_commands_total{command=\"other\",status_class=\"none\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("pacstap_http_transactions_total{service=\"WADO-RS\",status_class=\"4xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("pacstap_http_transactions_total{service=\"other\",status_class=\"other\"}"),
            Some(1.0)
        );
        assert_eq!(get("pacstap_hl7_messages_total{type=\"ADT\"}"), Some(1.0));
        assert_eq!(get("pacstap_hl7_messages_total{type=\"ORU\"}"), Some(1.0));
        assert_eq!(get("pacstap_hl7_messages_total{type=\"other\"}"), Some(2.0));
        assert_eq!(get("pacstap_hl7_ack_latency_seconds_count"), Some(4.0));
        assert_eq!(
            get("pacstap_alerts_total{rule=\"bulk_export\",severity=\"high\"}"),
            Some(1.0)
        );
        assert_eq!(get("pacstap_events_total{event_type=\"hl7\"}"), Some(4.0));
    }

    #[test]
    fn snapshots_advance_counters_by_their_difference() {
        let m = Metrics::new().unwrap();
        let mut s = StatsSnapshot {
            packets: 10,
            bytes: 1000,
            flows_active: 3,
            ..Default::default()
        };
        s.anomalies.insert("dicom.pdu_too_large", 2);
        s.tls_versions.insert("TLS 1.3", 1);
        s.tls_versions.insert("weird", 1);
        m.update(&s);
        m.update(&s); // unchanged: no double counting
        s.packets = 25;
        s.flows_active = 1;
        s.kernel_drops = 4;
        s.anomalies.insert("dicom.pdu_too_large", 5);
        s.anomalies.insert("http.resync", 1);
        s.hl7_acks.insert("AA", 2);
        s.decapsulated.insert("vxlan", 3);
        s.decoder_memory_cap_hits = 7;
        s.decoder_memory_bytes = 4096;
        m.update(&s);
        let text = m.render();
        check_exposition(&text);
        let get = |series: &str| sample(&text, series);
        assert_eq!(get("pacstap_decoder_memory_cap_hits_total"), Some(7.0));
        assert_eq!(get("pacstap_decoder_memory_bytes"), Some(4096.0));
        assert_eq!(get("pacstap_packets_total"), Some(25.0));
        assert_eq!(get("pacstap_bytes_total"), Some(1000.0));
        assert_eq!(get("pacstap_flows_active"), Some(1.0));
        assert_eq!(get("pacstap_kernel_drops_total"), Some(4.0));
        assert_eq!(
            get("pacstap_anomalies_total{name=\"dicom.pdu_too_large\",proto=\"dicom\"}"),
            Some(5.0)
        );
        assert_eq!(
            get("pacstap_anomalies_total{name=\"http.resync\",proto=\"http\"}"),
            Some(1.0)
        );
        assert_eq!(get("pacstap_tls_connections_total{version=\"TLS 1.3\"}"), Some(1.0));
        assert_eq!(get("pacstap_tls_connections_total{version=\"other\"}"), Some(1.0));
        assert_eq!(get("pacstap_hl7_acks_total{code=\"AA\"}"), Some(2.0));
        assert_eq!(get("pacstap_decapsulated_frames_total{kind=\"vxlan\"}"), Some(3.0));
        // Every TCP counter exists from the first scrape; they advance by difference too.
        for (name, _) in TCP_COUNTERS {
            let series = format!("pacstap_tcp_{name}_total");
            assert!(get(&series).is_some(), "{series}");
        }
        s.tcp.insert("evicted_half_open", 7);
        m.update(&s);
        m.update(&s);
        assert_eq!(sample(&m.render(), "pacstap_tcp_evicted_half_open_total"), Some(7.0));
        // A counter going backwards (a restarted stage) does not move the metric.
        s.packets = 5;
        m.update(&s);
        assert_eq!(sample(&m.render(), "pacstap_packets_total"), Some(25.0));
    }

    #[test]
    fn ip_fragment_outcomes_are_counted_by_their_fixed_labels() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        for outcome in IP_FRAGMENT_OUTCOMES {
            let series = format!("pacstap_ip_fragments_total{{outcome=\"{outcome}\"}}");
            assert_eq!(
                sample(&text, &series),
                Some(0.0),
                "{series} exists from the first scrape"
            );
        }
        let mut s = StatsSnapshot {
            ip_fragments_held_bytes: 4096,
            ..Default::default()
        };
        s.ip_fragments.insert("reassembled", 79);
        s.ip_fragments.insert("overlapping", 1);
        s.ip_fragments.insert("not-a-known-outcome", 2);
        m.update(&s);
        s.ip_fragments.insert("reassembled", 80);
        s.ip_fragments_held_bytes = 0;
        m.update(&s);
        let text = m.render();
        check_exposition(&text);
        let get = |series: &str| sample(&text, series);
        assert_eq!(get("pacstap_ip_fragments_total{outcome=\"reassembled\"}"), Some(80.0));
        assert_eq!(get("pacstap_ip_fragments_total{outcome=\"overlapping\"}"), Some(1.0));
        assert_eq!(get("pacstap_ip_fragments_total{outcome=\"other\"}"), Some(2.0));
        assert_eq!(get("pacstap_ip_fragments_held_bytes"), Some(0.0));
    }

    #[test]
    fn event_latency_is_an_hdr_histogram_exported_as_a_prometheus_histogram() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.event_latency_quantiles(), None);
        for us in [40, 50, 51, 300, 2_500, 2_600, 900_000] {
            m.observe_event_latency(Duration::from_micros(us));
        }
        // Beyond the HDR range: +Inf bucket, exact sum.
        m.observe_event_latency(Duration::from_secs(120));
        let text = m.render();
        check_exposition(&text);
        assert!(
            text.contains("# TYPE pacstap_event_latency_seconds histogram\n"),
            "{text}"
        );
        let get = |le: &str| sample(&text, &format!("pacstap_event_latency_seconds_bucket{{le=\"{le}\"}}"));
        assert_eq!(get("0.00005"), Some(2.0), "50 us is exactly on the bound");
        assert_eq!(get("0.0001"), Some(3.0));
        assert_eq!(get("0.0005"), Some(4.0));
        // 2500 us shares a 2 us HDR class with 2501: it counts in the next bucket up.
        assert_eq!(get("0.0025"), Some(4.0));
        assert_eq!(get("0.005"), Some(6.0));
        assert_eq!(get("1"), Some(7.0));
        assert_eq!(get("10"), Some(7.0));
        assert_eq!(get("+Inf"), Some(8.0));
        assert_eq!(sample(&text, "pacstap_event_latency_seconds_count"), Some(8.0));
        let sum = sample(&text, "pacstap_event_latency_seconds_sum").unwrap();
        assert!((sum - 120.905_541).abs() < 1e-9, "{sum}");
        let bucket_lines = text
            .lines()
            .filter(|l| l.starts_with("pacstap_event_latency_seconds_bucket"))
            .count();
        assert_eq!(
            bucket_lines,
            LATENCY_BUCKETS.len() + 1,
            "same buckets as before, plus +Inf"
        );
        let q = m.event_latency_quantiles().unwrap();
        assert_eq!(q.count, 8);
        assert_eq!(q.p50, Duration::from_micros(300));
        assert_eq!(q.max, LATENCY_MAX);
    }

    #[test]
    fn worker_recorders_merge_into_the_shared_histogram() {
        let m = Arc::new(Metrics::new().unwrap());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let mut local = m.event_latency_recorder();
                    for i in 0..1000u64 {
                        local.record(Duration::from_micros(100 + i + t));
                        if i % 250 == 249 {
                            m.merge_event_latency(&mut local);
                            assert!(local.is_empty(), "merging empties the recorder");
                        }
                        m.observe_event_latency(Duration::from_micros(7));
                    }
                    m.merge_event_latency(&mut local);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = m.render();
        check_exposition(&text);
        assert_eq!(sample(&text, "pacstap_event_latency_seconds_count"), Some(8000.0));
        assert_eq!(
            sample(&text, "pacstap_event_latency_seconds_bucket{le=\"0.00005\"}"),
            Some(4000.0)
        );
        let q = m.event_latency_quantiles().unwrap();
        assert_eq!(q.p50, Duration::from_micros(7));
        assert!(
            q.p99 >= Duration::from_micros(1070) && q.p99 <= Duration::from_micros(1090),
            "{q:?}"
        );
        assert!(q.p999 <= q.max && q.max <= Duration::from_micros(1104), "{q:?}");
        // sum: 4000 × 7 us + Σ over threads of Σ (100 + i + t)
        let expected = 4000.0 * 7e-6 + (0..4).map(|t| 1000.0 * (100.0 + t as f64) + 499_500.0).sum::<f64>() * 1e-6;
        let sum = sample(&text, "pacstap_event_latency_seconds_sum").unwrap();
        assert!((sum - expected).abs() < 1e-9, "{sum} vs {expected}");
    }

    #[test]
    fn alertmanager_counters_follow_the_snapshot() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        assert_eq!(sample(&text, "pacstap_alertmanager_alerts_dropped_total"), Some(0.0));
        let mut s = StatsSnapshot {
            alertmanager: AlertmanagerStats {
                sent: 5,
                failed_posts: 2,
                dropped: 1,
                rejected: 3,
                queued: 7,
            },
            ..Default::default()
        };
        m.update(&s);
        m.update(&s);
        s.alertmanager.sent = 9;
        s.alertmanager.queued = 0;
        m.update(&s);
        let text = m.render();
        check_exposition(&text);
        let get = |series: &str| sample(&text, series);
        assert_eq!(get("pacstap_alertmanager_alerts_sent_total"), Some(9.0));
        assert_eq!(get("pacstap_alertmanager_posts_failed_total"), Some(2.0));
        assert_eq!(get("pacstap_alertmanager_alerts_dropped_total"), Some(1.0));
        assert_eq!(get("pacstap_alertmanager_alerts_rejected_total"), Some(3.0));
        assert_eq!(get("pacstap_alertmanager_queue_length"), Some(0.0));
    }

    /// The real `promtool check metrics` on a full scrape, where it is installed (Debian:
    /// `prometheus` package); the line checks above stand in for it elsewhere.
    #[test]
    fn promtool_accepts_the_exposition() {
        let m = Metrics::new().unwrap();
        m.observe_event(&ev(command("C-MOVE", Some(StatusClass::Success))));
        m.observe_event_latency(Duration::from_micros(300));
        m.update(&StatsSnapshot {
            alertmanager: AlertmanagerStats {
                sent: 1,
                ..Default::default()
            },
            ..Default::default()
        });
        let text = m.render();
        let child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("promtool not installed: skipped");
            return;
        };
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn reloads_saves_and_memory_are_exported() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        assert!(
            text.contains("pacstap_config_reloads_total{result=\"failed\"} 0"),
            "{text}"
        );
        assert!(text.contains("pacstap_state_saves_total{result=\"ok\"} 0"));
        assert!(text.contains("pacstap_state_last_save_timestamp_seconds 0"));
        m.config_reload(true);
        m.config_reload(false);
        m.config_reload(false);
        m.state_save(true);
        m.state_save(false);
        let text = m.render();
        assert!(text.contains("pacstap_config_reloads_total{result=\"ok\"} 1"));
        assert!(text.contains("pacstap_config_reloads_total{result=\"failed\"} 2"));
        assert!(text.contains("pacstap_state_saves_total{result=\"ok\"} 1"));
        assert!(text.contains("pacstap_state_saves_total{result=\"failed\"} 1"));
        let last = text
            .lines()
            .find_map(|l| l.strip_prefix("pacstap_state_last_save_timestamp_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!(last > 1.6e9, "{last}");
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("pacstap_process_resident_memory_bytes "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
        assert!(rss > 100 * 1024, "{rss}");
    }
}
