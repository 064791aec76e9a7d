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
//! | `pacstap_tcp_causal_holds_total` | counter | — Segments held until the bytes they acknowledge were captured (a SPAN port showed the answer first). |
//! | `pacstap_tcp_causal_hold_overflows_total` | counter | — Times segments held for causal order were delivered early at a cap. |
//! | `pacstap_tcp_rst_accepted_total` | counter | — RSTs with the sequence number the receiver expects (connection reset). |
//! | `pacstap_tcp_rst_in_window_total` | counter | — RSTs in the window but not exact (challenged by the endpoint; flow kept). |
//! | `pacstap_tcp_rst_out_of_window_total` | counter | — RSTs outside the window (dropped). |
//! | `pacstap_tcp_syn_on_established_total` | counter | — SYNs on an open connection that no SYN-ACK confirmed (dropped). |
//! | `pacstap_tcp_data_after_close_total` | counter | — Packets carrying data after their connection's teardown. |
//! | `pacstap_tcp_syn_data_ignored_total` | counter | — SYNs whose data the receiver did not take (dropped, never decoded). |
//! | `pacstap_tcp_fin_ignored_total` | counter | — FINs beyond the receiver's window or run past by the sender's data (dropped). |
//! | `pacstap_tcp_urgent_data_total` | counter | — Urgent (URG) bytes taken out of the stream, as the receiving stack takes them out. |
//! | `pacstap_tcp_paws_rejected_total` | counter | — Data segments older than the receiver's TS.Recent (PAWS, RFC 7323): dropped. |
//! | `pacstap_tcp_low_ttl_held_total` | counter | — Data segments with a lower IP TTL than their direction's, held until the stream decided. |
//! | `pacstap_tcp_low_ttl_decoys_total` | counter | — Held low-TTL segments that differed from the bytes the receiver read (TTL decoys). |
//! | `pacstap_tcp_low_ttl_taken_total` | counter | — Held low-TTL segments taken because no other copy of their bytes came. |
//! | `pacstap_tcp_rst_low_ttl_total` | counter | — RSTs with a lower IP TTL than their direction's: not taken. |
//! | `pacstap_tcp_without_ack_total` | counter | — Segments with data or a FIN but no ACK, SYN or RST bit: dropped, as receivers drop them. |
//! | `pacstap_tcp_data_out_of_window_total` | counter | — Data segments starting beyond the receiver's window and never acknowledged: dropped. |
//! | `pacstap_tcp_data_out_of_window_taken_total` | counter | — Data segments held for starting beyond the window, then acknowledged: taken. |
//! | `pacstap_tcp_overlap_conflicts_total` | counter | — Retransmitted bytes that differ from the copy buffered or delivered. |
//! | `pacstap_tcp_timestamp_jumps_total` | counter | — Packets stamped far ahead of the clock, not confirmed by the next ones. |
//! | `pacstap_tcp_evicted_half_open_total` | counter | — Flows evicted from a full table that never carried payload. |
//! | `pacstap_tcp_evicted_established_total` | counter | — Flows evicted with payload no decoder wanted. |
//! | `pacstap_tcp_evicted_decoding_total` | counter | — Flows evicted while a decoder was reading them. |
//! | `pacstap_tcp_one_sided_flows_total` | counter | — Ended flows of which only one direction was captured. |
//! | `pacstap_tcp_duplicate_frames_total` | counter | — Frames identical to one of the last 8 of their direction (mirrored twice: ingress and egress of a port, or both sides of a router). |
//! | `pacstap_tcp_snaplen_cut_segments_total` | counter | — TCP segments whose payload the snaplen cut short. |
//! | `pacstap_decapsulated_frames_total` | counter | `kind` (`vxlan` `geneve` `gre` `erspan_i` `erspan_ii` `erspan_iii` `mpls` `pppoe` `vn_tag` `e_tag` `cisco_metadata`): frames the wire stage peeled that tunnel (or switch tag) from |
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
//! | `pacstap_publish_events_total` | counter | `result` (`acked` `dropped` `retried` `failed`) — events published to NATS JetStream (`--publish`): acked by the stream; dropped (queue full, or left when the shutdown drain ran out); retried (publishes sent again after a timeout or lost connection); failed (refused by the server 5 times) |
//! | `pacstap_publish_queue_depth` | gauge | — events waiting to be published: queued, in flight, or to be retried |
//! | `pacstap_publish_connected` | gauge | — 1 while the publisher is connected to a NATS server |
//! | `pacstap_last_packet_timestamp_seconds` | gauge | — packet time of the latest frame (a stalled tap shows here) |
//! | `pacstap_config_reloads_total` | counter | `result` (`ok` `failed`) — SIGHUP config reloads; failed: the running config was kept |
//! | `pacstap_state_saves_total` | counter | `result` (`ok` `failed`) — writes of the learned-state file (`--state`) |
//! | `pacstap_state_last_save_timestamp_seconds` | gauge | — wall time of the latest successful state save (0: none yet) |
//! | `pacstap_process_resident_memory_bytes` | gauge | — resident memory of the process (VmRSS), read at scrape time |
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

pub mod health;
mod labels;
mod latency;
mod ops;
mod publish;
mod registry;
mod server;

pub use labels::{
    hl7_type_family, DICOMWEB_SERVICES, DIMSE_COMMANDS, HL7_ACK_CODES, HL7_MESSAGE_TYPES, RULES, TCP_COUNTERS,
    TLS_VERSIONS, TUNNEL_KINDS,
};
pub use latency::{LatencyQuantiles, LatencyRecorder, LATENCY_BUCKETS, LATENCY_MAX};
pub use publish::{PublishStats, PUBLISH_RESULTS};
pub use registry::{Metrics, StatsSnapshot};
pub use server::MetricsServer;

use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, taking over a poisoned one: the data are counters, still worth reporting.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
