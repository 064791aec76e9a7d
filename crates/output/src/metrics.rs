//! Prometheus metrics (CONTRACT §4) and the tiny HTTP server that exposes them.
//!
//! Two ways in, one registry:
//!
//! * **Counters kept by the pipeline's stages** (frames, flows, gaps, anomalies, TLS versions,
//!   HL7 ACK codes, studies exported, drops) are not counted twice: the pipeline hands a
//!   [`StatsSnapshot`] of its stats structs to [`Metrics::update`] now and then (about once a
//!   second, and at the end), and the counters advance by the difference from the previous
//!   snapshot. The hot path pays nothing for metrics.
//! * **Counters by event** (associations by outcome, DIMSE commands, HTTP transactions, HL7
//!   message types, alerts, the latency histograms) are observed per event by
//!   [`Metrics::observe_event`]: events are rare next to packets.
//!
//! # Names and labels
//!
//! Prefix `pacstap_`; counters end in `_total`, sizes in `_bytes`, durations in `_seconds`.
//! Every label takes values from a fixed set, so no scrape can grow without bound
//! (ARCHITECTURE rule 12): never an IP, AE title, user name or UID.
//!
//! | metric | type | labels (values) |
//! |---|---|---|
//! | `pacstap_packets_total` | counter | — frames that reached the pipeline |
//! | `pacstap_bytes_total` | counter | — captured bytes of those frames |
//! | `pacstap_kernel_drops_total` | counter | — dropped by the kernel: capture ring full (`pcap_stats.ps_drop`) |
//! | `pacstap_interface_drops_total` | counter | — dropped by the NIC / driver (`ps_ifdrop`) |
//! | `pacstap_pipeline_drops_total` | counter | — dropped by pacstap: channel to the workers full |
//! | `pacstap_flows_total` | counter | — TCP flows created |
//! | `pacstap_flows_active` | gauge | — TCP flows in the flow table now |
//! | `pacstap_reassembly_gaps_total` | counter | — holes given up on (bytes never captured) |
//! | `pacstap_reassembly_gap_bytes_total` | counter | — bytes those gaps stand for |
//! | `pacstap_reassembly_cap_hits_total` | counter | `cap` (`flow_table` `buffer` `holes`) |
//! | `pacstap_tcp_bad_checksums_total` | counter | — Segments dropped for a bad IPv4 header or TCP checksum. |
//! | `pacstap_tcp_unverifiable_checksums_total` | counter | — Segments whose checksum could not be checked (snaplen): accepted. |
//! | `pacstap_tcp_ack_before_data_total` | counter | — Holes the receiver acknowledged before the capture saw their data. |
//! | `pacstap_tcp_ack_before_data_filled_total` | counter | — Acknowledged holes whose data arrived while kept open (delayed, not lost). |
//! | `pacstap_tcp_ack_gaps_total` | counter | — Acknowledged holes given up as gaps (capture loss). |
//! | `pacstap_tcp_rst_accepted_total` | counter | — RSTs with the sequence number the receiver expects (connection reset). |
//! | `pacstap_tcp_rst_in_window_total` | counter | — RSTs in the window but not exact (challenged by the endpoint; flow kept). |
//! | `pacstap_tcp_rst_out_of_window_total` | counter | — RSTs outside the window (dropped). |
//! | `pacstap_tcp_syn_on_established_total` | counter | — SYNs on an open connection that no SYN-ACK confirmed (dropped). |
//! | `pacstap_tcp_data_after_close_total` | counter | — Packets carrying data after their connection's teardown. |
//! | `pacstap_tcp_overlap_conflicts_total` | counter | — Retransmitted bytes that differ from the copy buffered or delivered. |
//! | `pacstap_tcp_timestamp_jumps_total` | counter | — Packets stamped far ahead of the clock, not confirmed by the next ones. |
//! | `pacstap_tcp_evicted_half_open_total` | counter | — Flows evicted from a full table that never carried payload. |
//! | `pacstap_tcp_evicted_established_total` | counter | — Flows evicted with payload no decoder wanted. |
//! | `pacstap_tcp_evicted_decoding_total` | counter | — Flows evicted while a decoder was reading them. |
//! | `pacstap_tcp_one_sided_flows_total` | counter | — Ended flows of which only one direction was captured. |
//! | `pacstap_tcp_duplicate_frames_total` | counter | — Frames identical to the previous one of their direction (mirrored twice). |
//! | `pacstap_tcp_snaplen_cut_segments_total` | counter | — TCP segments whose payload the snaplen cut short. |
//! | `pacstap_decapsulated_frames_total` | counter | `kind` (`vxlan` `geneve` `gre` `erspan_i` `erspan_ii` `erspan_iii` `mpls` `pppoe`): frames the wire stage peeled that tunnel from |
//! | `pacstap_ip_fragments_total` | counter | `outcome` (`reassembled` `timed_out` `overlapping` `too_many` `too_big` `evicted` `tiny` `malformed` `truncated`): IP datagrams by how their reassembly ended (`truncated`: fragments cut by the snaplen; `tiny`: flagged tiny first fragments, still reassembled) |
//! | `pacstap_ip_fragments_held_bytes` | gauge | — bytes the defragmenter holds now (within `--defrag-memory`) |
//! | `pacstap_anomalies_total` | counter | `proto`, `name` (the decoders' fixed anomaly names, plus `wire.truncated` `wire.malformed` `wire.unsupported_link` `wire.ip_fragment`, and `defrag.overlap_conflict` `defrag.tiny_fragment` `defrag.too_big` `defrag.too_many_fragments` `defrag.malformed` for dropped (tiny: flagged) fragment trains, `wire.too_deep` `wire.unsupported_tunnel`, and the flow stage's `tcp.bad_checksum` `tcp.rst_in_window` `tcp.rst_out_of_window` `tcp.syn_on_established` `tcp.data_after_close` `tcp.overlap_conflict` `tcp.timestamp_jump`) |
//! | `pacstap_decoder_memory_cap_hits_total` | counter | — decoder buffer growths the decoder memory budget refused (each gave up one message) |
//! | `pacstap_decoder_memory_bytes` | gauge | — bytes the protocol decoders hold now, over all workers |
//! | `pacstap_events_total` | counter | `event_type` (`dicom` `http` `tls` `hl7` `alert` `anomaly`) |
//! | `pacstap_dicom_associations_total` | counter | `outcome` (`released` `rejected` `aborted` `reset` `closed` `incomplete`) |
//! | `pacstap_dicom_commands_total` | counter | `command` (`C-ECHO` … `N-DELETE`, else `other`), `status_class` (`success` `warning` `failure` `cancel` `pending` `none`) |
//! | `pacstap_studies_exported_total` | counter | — distinct (exporting entity, study) pairs the detector counted |
//! | `pacstap_http_transactions_total` | counter | `status_class` (`1xx` … `5xx`, `none`, `other`), `service` (`QIDO-RS` `WADO-RS` `STOW-RS` `WADO-URI` `UPS-RS`, `none`, `other`) |
//! | `pacstap_tls_connections_total` | counter | `version` (`TLS 1.0` … `TLS 1.3`, `other`) |
//! | `pacstap_hl7_messages_total` | counter | `type` (message type's first component from a fixed list, else `other`) |
//! | `pacstap_hl7_acks_total` | counter | `code` (`AA` `AE` `AR` `CA` `CE` `CR` `other`) |
//! | `pacstap_hl7_ack_latency_seconds` | histogram | — packet time from a message to its ACK |
//! | `pacstap_alerts_total` | counter | `rule` (the rule ids, else `other`), `severity` |
//! | `pacstap_alert_updates_total` | counter | `rule`, `severity` — updates of open incidents |
//! | `pacstap_event_latency_seconds` | histogram | — wall time from a frame leaving the capture to its events being written |
//! | `pacstap_alertmanager_alerts_sent_total` | counter | — alerts Alertmanager accepted (`--alertmanager`) |
//! | `pacstap_alertmanager_alerts_dropped_total` | counter | — alerts never delivered: push queue full, or still queued at shutdown |
//! | `pacstap_alertmanager_alerts_rejected_total` | counter | — alerts in POSTs Alertmanager refused with a 4xx (not retried) |
//! | `pacstap_alertmanager_posts_failed_total` | counter | — POSTs that failed (connection, timeout, non-2xx), retried or not |
//! | `pacstap_alertmanager_queue_length` | gauge | — alerts waiting to be pushed, including the batch in flight |
//! | `pacstap_last_packet_timestamp_seconds` | gauge | — packet time of the latest frame (a stalled tap shows here) |
//! | `pacstap_build_info` | gauge | `version` |
//!
//! # Event-pipeline latency
//!
//! `pacstap_event_latency_seconds` is recorded into an [HdrHistogram](hdrhistogram) (microsecond
//! resolution, 3 significant digits, up to [`LATENCY_MAX`]) and rendered at scrape time as an
//! ordinary Prometheus histogram with fixed buckets ([`LATENCY_BUCKETS`]), so dashboards and
//! rules using `histogram_quantile()` over `_bucket` keep working, while pacstap itself can read
//! exact-enough p50/p99/p99.9 ([`Metrics::event_latency_quantiles`]) that fixed buckets cannot
//! give. Why HDR rather than more buckets: recording is an array increment (no float search), and
//! per-thread histograms merge losslessly ([`LatencyRecorder`]), which fixed-bucket Prometheus
//! histograms shared between threads do not offer without contention.
//!
//! A bucket `le=b` counts the observations whose HDR value class lies at or below `b`; classes
//! are at most 0.1 % wide, so an observation within 0.1 % below a bound may count in the next
//! bucket up (latency is never under-reported). `_sum` is exact (kept in nanoseconds beside the
//! histogram); `_count` equals the `+Inf` bucket.
//!
//! `pacstap_studies_exported_total` counts what the export rules count (CONTRACT "Detection
//! semantics"): a study once per exporting entity within the detector's memory, whether it left
//! by C-MOVE, C-GET or DICOMweb — not once per request, instance or byte.

use crate::alertmanager::AlertmanagerStats;
use pacstap_core::{DicomEvent, EventBody, ProtocolEvent};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// DIMSE command names (PS3.7 §9.3, §10.3) the `command` label may take; anything else is `other`.
pub const DIMSE_COMMANDS: [&str; 12] = [
    "C-ECHO",
    "C-STORE",
    "C-FIND",
    "C-MOVE",
    "C-GET",
    "C-CANCEL",
    "N-EVENT-REPORT",
    "N-GET",
    "N-SET",
    "N-ACTION",
    "N-CREATE",
    "N-DELETE",
];

/// DICOMweb services (PS3.18 §10) the `service` label may take.
pub const DICOMWEB_SERVICES: [&str; 5] = ["QIDO-RS", "WADO-RS", "STOW-RS", "WADO-URI", "UPS-RS"];

/// HL7 v2 message types (HL7 table 0076, the families seen on imaging and ADT feeds) the `type`
/// label may take; any other first component of MSH-9 is `other`.
pub const HL7_MESSAGE_TYPES: [&str; 28] = [
    "ACK", "ADT", "BAR", "DFT", "MDM", "MFK", "MFN", "MFQ", "OMG", "OMI", "OML", "ORG", "ORI", "ORL", "ORM", "ORR",
    "ORU", "OUL", "QBP", "QRY", "RDE", "RAS", "RSP", "SIU", "SRM", "SRR", "VXU", "RDS",
];

/// HL7 acknowledgment codes (HL7 table 0008) the `code` label may take.
pub const HL7_ACK_CODES: [&str; 6] = ["AA", "AE", "AR", "CA", "CE", "CR"];
/// `kind` label values of `pacstap_decapsulated_frames_total`: pacstap-wire's `TunnelKind` names
/// (output does not depend on the wire crate; a name not listed is folded to `other`).
pub const TUNNEL_KINDS: [&str; 8] = [
    "vxlan",
    "geneve",
    "gre",
    "erspan_i",
    "erspan_ii",
    "erspan_iii",
    "mpls",
    "pppoe",
];

/// TLS versions the `version` label may take (the decoder folds anything else into `other`).
pub const TLS_VERSIONS: [&str; 5] = ["SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// Rule ids (CONTRACT §2) the `rule` label may take.
pub const RULES: [&str; 10] = [
    "login_failures_user",
    "login_failures_source",
    "login_success_after_failures",
    "new_device",
    "new_location",
    "admin_change",
    "bulk_export",
    "export_above_baseline",
    "unknown_destination",
    "sharing_spike",
];

/// Event-pipeline latency buckets: 50 µs (one frame through a warm pipeline) to 10 s (a
/// stalled writer). Prometheus histograms have fixed buckets; these span what an operator
/// needs to tell "keeping up" from "falling behind". Changing them changes the `le` series that
/// dashboards and recording rules may name: extend, do not move.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// HL7 ACK latency buckets: interface engines answer in milliseconds to tens of seconds;
/// minutes mean a stuck receiver.
const ACK_LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// The flow stage's TCP counters: `pacstap_tcp_<name>_total`, with their help text.
pub const TCP_COUNTERS: [(&str, &str); 18] = [
    (
        "bad_checksums",
        "Segments dropped for a bad IPv4 header or TCP checksum.",
    ),
    (
        "unverifiable_checksums",
        "Segments whose checksum could not be checked (snaplen): accepted.",
    ),
    (
        "ack_before_data",
        "Holes the receiver acknowledged before the capture saw their data.",
    ),
    (
        "ack_before_data_filled",
        "Acknowledged holes whose data arrived while kept open (delayed, not lost).",
    ),
    ("ack_gaps", "Acknowledged holes given up as gaps (capture loss)."),
    (
        "rst_accepted",
        "RSTs with the sequence number the receiver expects (connection reset).",
    ),
    (
        "rst_in_window",
        "RSTs in the window but not exact (challenged by the endpoint; flow kept).",
    ),
    ("rst_out_of_window", "RSTs outside the window (dropped)."),
    (
        "syn_on_established",
        "SYNs on an open connection that no SYN-ACK confirmed (dropped).",
    ),
    (
        "data_after_close",
        "Packets carrying data after their connection's teardown.",
    ),
    (
        "overlap_conflicts",
        "Retransmitted bytes that differ from the copy buffered or delivered.",
    ),
    (
        "timestamp_jumps",
        "Packets stamped far ahead of the clock, not confirmed by the next ones.",
    ),
    (
        "evicted_half_open",
        "Flows evicted from a full table that never carried payload.",
    ),
    ("evicted_established", "Flows evicted with payload no decoder wanted."),
    ("evicted_decoding", "Flows evicted while a decoder was reading them."),
    (
        "one_sided_flows",
        "Ended flows of which only one direction was captured.",
    ),
    (
        "duplicate_frames",
        "Frames identical to the previous one of their direction (mirrored twice).",
    ),
    (
        "snaplen_cut_segments",
        "TCP segments whose payload the capture's snaplen cut short (the missing bytes are gaps).",
    ),
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

/// `value` if it is in `known`, else `"other"`: the fold that keeps a label bounded.
fn fold<'a>(value: &'a str, known: &[&'static str]) -> &'a str {
    if known.contains(&value) {
        value
    } else {
        "other"
    }
}

/// `2xx`-style class of an HTTP status (RFC 9110 §15), `none` without a response.
fn http_status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
    }
}

/// The `type` label of an HL7 message: MSH-9's first component (`ADT` of `ADT^A01^ADT_A01`),
/// folded into `other` unless it is a known family.
pub fn hl7_type_family(message_type: &str) -> &str {
    let first = message_type.split('^').next().unwrap_or("").trim();
    fold(first, &HL7_MESSAGE_TYPES)
}

/// `proto` label of an anomaly name: the part before the first dot (`dicom` of
/// `dicom.pdu_too_large`).
/// `outcome` values of `pacstap_ip_fragments_total` (`pacstap_defrag::DefragStats::outcomes`).
const IP_FRAGMENT_OUTCOMES: [&str; 9] = [
    "reassembled",
    "timed_out",
    "overlapping",
    "too_many",
    "too_big",
    "evicted",
    "tiny",
    "malformed",
    "truncated",
];

fn anomaly_proto(name: &str) -> &str {
    name.split_once('.').map_or("other", |(p, _)| p)
}

/// The highest latency the HDR histogram tells apart: slower frames are recorded as this (they
/// land in the `+Inf` bucket either way, and `_sum` stays exact). A minute is already a pipeline
/// that has stopped keeping up; a wider range would only cost memory (about 140 KiB now).
pub const LATENCY_MAX: Duration = Duration::from_secs(60);

/// Significant decimal digits of the HDR histogram: value classes at most 0.1 % wide.
const LATENCY_SIGFIG: u8 = 3;

/// Lock a mutex, taking over a poisoned one: the data are counters, still worth reporting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn micros_clamped(d: Duration) -> u64 {
    u64::try_from(d.min(LATENCY_MAX).as_micros()).unwrap_or(u64::MAX)
}

/// Event-pipeline latency quantiles ([`Metrics::event_latency_quantiles`]). Each is the upper
/// end of its HDR value class (microsecond resolution, within 0.1 %); latencies over
/// [`LATENCY_MAX`] read as `LATENCY_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyQuantiles {
    /// Observations behind the quantiles.
    pub count: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

/// A worker thread's own latency histogram: record without locking, then
/// [`Metrics::merge_event_latency`] now and then. Get one from
/// [`Metrics::event_latency_recorder`] so its range matches the shared one.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    hist: hdrhistogram::Histogram<u64>,
    sum_nanos: u128,
}

impl LatencyRecorder {
    pub fn record(&mut self, elapsed: Duration) {
        self.hist.saturating_record(micros_clamped(elapsed));
        self.sum_nanos = self.sum_nanos.saturating_add(elapsed.as_nanos());
    }

    /// Observations recorded since the last merge.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The HDR histogram itself (values in microseconds), e.g. for a worker's own quantiles.
    pub fn histogram(&self) -> &hdrhistogram::Histogram<u64> {
        &self.hist
    }
}

/// The shared event-latency histogram and the exact sum Prometheus' `_sum` needs (an HDR
/// histogram keeps only value classes).
struct LatencyState {
    hist: hdrhistogram::Histogram<u64>,
    sum_nanos: u128,
}

impl LatencyState {
    fn new() -> prometheus::Result<LatencyState> {
        let high = micros_clamped(LATENCY_MAX).max(2);
        let hist = hdrhistogram::Histogram::new_with_bounds(1, high, LATENCY_SIGFIG)
            .map_err(|e| prometheus::Error::Msg(format!("event latency histogram: {e:?}")))?;
        Ok(LatencyState { hist, sum_nanos: 0 })
    }

    fn record(&mut self, elapsed: Duration) {
        self.hist.saturating_record(micros_clamped(elapsed));
        self.sum_nanos = self.sum_nanos.saturating_add(elapsed.as_nanos());
    }

    fn merge(&mut self, local: &LatencyRecorder) {
        if self.hist.add(&local.hist).is_err() {
            // Only if `local` was built with a wider range than ours: clamp value by value.
            let high = self.hist.high();
            for v in local.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to().min(high), v.count_at_value());
            }
        }
        self.sum_nanos = self.sum_nanos.saturating_add(local.sum_nanos);
    }

    /// Cumulative counts for each of [`LATENCY_BUCKETS`] (`+Inf` is the total count).
    fn cumulative_buckets(&self) -> [u64; LATENCY_BUCKETS.len()] {
        let bounds_us = LATENCY_BUCKETS.map(|b| (b * 1e6).round() as u64);
        let mut per_bucket = [0u64; LATENCY_BUCKETS.len()];
        for v in self.hist.iter_recorded() {
            // The top of the value's class: a class straddling a bound counts above it.
            let top = v.value_iterated_to();
            if let Some(i) = bounds_us.iter().position(|&b| top <= b) {
                if let Some(slot) = per_bucket.get_mut(i) {
                    *slot = slot.saturating_add(v.count_at_value());
                }
            }
        }
        let mut running = 0u64;
        for slot in &mut per_bucket {
            running = running.saturating_add(*slot);
            *slot = running;
        }
        per_bucket
    }
}

/// Renders the HDR histogram as a Prometheus histogram family at scrape time (the registry
/// calls [`Collector::collect`] on every `gather`).
struct LatencyCollector {
    desc: Desc,
    state: Arc<Mutex<LatencyState>>,
}

impl LatencyCollector {
    fn new(name: &str, help: &str, state: Arc<Mutex<LatencyState>>) -> prometheus::Result<LatencyCollector> {
        let desc = Desc::new(name.into(), help.into(), vec![], Default::default())?;
        Ok(LatencyCollector { desc, state })
    }
}

impl Collector for LatencyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (cumulative, count, sum_nanos) = {
            let state = lock(&self.state);
            (state.cumulative_buckets(), state.hist.len(), state.sum_nanos)
        };
        let buckets: Vec<proto::Bucket> = LATENCY_BUCKETS
            .iter()
            .zip(cumulative)
            .map(|(&le, n)| {
                let mut b = proto::Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(n);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum_nanos as f64 / 1e9);
        h.set_bucket(buckets);
        let mut m = proto::Metric::default();
        m.set_histogram(h);
        let mut mf = MetricFamily::default();
        mf.set_name(self.desc.fq_name.clone());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(MetricType::HISTOGRAM);
        mf.set_metric(vec![m]);
        vec![mf]
    }
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
            EventBody::Tls(_) | EventBody::Anomaly(_) => {}
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

    /// The text exposition format (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = prometheus::Encoder::encode(&encoder, &self.registry.gather(), &mut buf) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Requests larger than this are not HTTP GETs a scraper sends; the connection is closed.
const MAX_REQUEST: usize = 8 * 1024;

/// A slow or silent client holds the (single) server thread at most this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics` and `GET /healthz` over HTTP/1.0-style one-request connections, on one thread.
///
/// Deliberately minimal: a scraper every 15 s and an orchestrator's health check are the only
/// clients. Connections are served one at a time, each bounded by [`MAX_REQUEST`] and
/// [`CLIENT_TIMEOUT`], so a misbehaving client can delay a scrape but not exhaust anything.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (errors are the caller's to report: address in use, no permission) and
    /// serves on a background thread.
    pub fn spawn(addr: &str, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pacstap-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        let _ = serve(stream, &metrics);
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn serve(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    // Read the request head (we need only its first line).
    loop {
        let n = match buf.get_mut(len..) {
            Some(rest) if !rest.is_empty() => stream.read(rest)?,
            _ => break,
        };
        if n == 0 {
            break;
        }
        len += n;
        let head = buf.get(..len).unwrap_or(&[]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    let head = buf.get(..len).unwrap_or(&[]);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        ("GET" | "HEAD", "/healthz") if metrics.healthy() => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
        ("GET" | "HEAD", "/healthz") => (
            "503 Service Unavailable",
            "text/plain; charset=utf-8",
            "capture stopped\n".into(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
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
    fn server_answers_metrics_healthz_and_nothing_else() {
        let m = Arc::new(Metrics::new().unwrap());
        let server = MetricsServer::spawn("127.0.0.1:0", Arc::clone(&m)).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"));
        assert!(r.contains("# TYPE pacstap_packets_total counter"));
        assert!(get("GET /healthz HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nok\n"));
        m.set_healthy(false);
        assert!(get("GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 503"));
        assert!(get("GET /other HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
        // A request head larger than the cap is answered (405/404) or closed, never buffered.
        let big = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(MAX_REQUEST * 2));
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        let _ = s.write_all(big.as_bytes());
        server.shutdown();
    }
}
