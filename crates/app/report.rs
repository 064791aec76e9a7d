//! What a run found ([`ReplayReport`]) and the human summary rendered from it (CONTRACT §1).
//! Replay and capture both end with one; capture adds its own lines ([`crate::CaptureReport`]).

use pacstap_capture::Damage;
use pacstap_core::{ProtocolEvent, Timestamp};
use pacstap_defrag::DefragStats;
use pacstap_output::{human_bytes, human_duration, Summary, SummarySection};
use std::path::PathBuf;

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
    /// Replay: each evidence pcap with its SHA-256 as logged in `custody.jsonl`.
    pub evidence_sha256: Vec<(PathBuf, String)>,
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
            (Some(a), Some(b)) => span(a, b),
            _ => "no packets".to_owned(),
        };
        sections.push(SummarySection {
            title: "Input".into(),
            rows: vec![
                (
                    "frames".into(),
                    format!("{} ({})", self.frames, human_bytes(self.bytes)),
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
                        "{} ({} filled late, {} became gaps); {} segments held for their cause",
                        f.ack_before_data, f.ack_before_data_filled, f.ack_gaps, f.causal_holds
                    ),
                ),
                ("checksums".into(), checksum_summary(f)),
                (
                    "control".into(),
                    format!(
                        "RST {} accepted, {} in window (challenged), {} out of window; {} SYN on open connections; \
                         {} data after close; {} SYN data not taken; {} FIN not taken; {} urgent bytes taken out; \
                         {} segments older than TS.Recent (PAWS); {} data or FIN without ACK; \
                         {} data beyond the receiver's window ({} then acknowledged, taken)",
                        f.rst_accepted,
                        f.rst_in_window,
                        f.rst_out_of_window,
                        f.syn_on_established,
                        f.data_after_close,
                        f.syn_data_ignored,
                        f.fin_ignored,
                        f.urgent_data,
                        f.paws_rejected,
                        f.without_ack,
                        f.data_out_of_window,
                        f.data_out_of_window_taken
                    ),
                ),
                (
                    "low TTL".into(),
                    format!(
                        "{} segments held below their direction's TTL ({} decoys, {} taken); {} RST not taken",
                        f.low_ttl_held, f.low_ttl_decoys, f.low_ttl_taken, f.rst_low_ttl
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
        sections.extend(inferred_section(&self.detect));
        let mut text = self.summary.render(&sections, &self.proto.anomalies);
        if let Some(dir) = self.evidence_files.first().and_then(|f| f.parent()) {
            text.push_str(&format!(
                "Evidence: {} pcap file{} (mode 0600) in {}, SHA-256 in its custody.jsonl\n",
                self.evidence_files.len(),
                if self.evidence_files.len() == 1 { "" } else { "s" },
                dir.display()
            ));
        }
        text
    }

    /// What was lost or not done: learned state set aside, inputs not read or damaged. Printed
    /// after the summary, and on their own with `-q` (data loss is never quiet), each through
    /// [`pacstap_output::term::warn`].
    pub fn warnings(&self) -> Vec<Warning> {
        let warning = |subject: &str, reason: String| Warning {
            subject: subject.to_owned(),
            reason,
        };
        let mut out: Vec<Warning> = self
            .state_warnings
            .iter()
            .map(|w| warning("learned state", w.clone()))
            .collect();
        out.extend(pacstap_wire::decode_hint(&self.wire).map(|h| warning("input", h)));
        if self.flow.truncated_packets > 0 {
            // A short snaplen (a header-only capture) loses data in every frame: facts are
            // partial, which an investigator must know before reading them as complete.
            let n = self.flow.truncated_packets;
            out.push(warning(
                "input",
                format!(
                    "{n} TCP segment{} cut short (the capture's snaplen, or a mirror port that \
                     truncates frames): the bytes past the cut are lost (counted as gaps), and what \
                     was read from the rest is marked incomplete; capture whole frames (tcpdump -s 0) \
                     for whole facts",
                    if n == 1 { " was" } else { "s were" }
                ),
            ));
        }
        // The message names the file and why (`cannot open capture file X: …`).
        out.extend(
            self.unreadable
                .iter()
                .map(|u| warning("input", format!("{u} (not replayed)"))),
        );
        if self.evidence_dropped > 0 {
            out.push(warning(
                "evidence",
                format!(
                    "{} alerts got no evidence pcap: {} incidents already had one (the limit)",
                    self.evidence_dropped,
                    pacstap_output::MAX_EVIDENCE_FILES
                ),
            ));
        }
        out.extend(self.damages.iter().map(|d| Warning {
            subject: d.path.display().to_string(),
            reason: format!("damaged at byte {}: {} (read up to there)", d.offset, d.reason),
        }));
        out
    }
}

/// One warning of a run: what it is about (a file, `input`, `learned state`) and what happened,
/// printed as `pacstap: warning: <subject>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub subject: String,
    pub reason: String,
}

impl Warning {
    /// Print it on stderr in the one warning shape.
    pub fn print(&self) {
        pacstap_output::term::warn(&self.subject, &self.reason);
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

/// The summary's "capture time" row: how long in human units, then when (UTC, to the second;
/// the end's date only when it differs), short enough for an 80-column terminal:
/// `2 h 14 min (2026-11-28 06:35:41 → 08:49:41 UTC)`.
fn span(a: Timestamp, b: Timestamp) -> String {
    // `rfc3339` is ours: `2026-11-28T06:35:41.754656Z`.
    let (ra, rb) = (a.rfc3339(), b.rfc3339());
    let date = |r: &str| r.get(..10).unwrap_or_default().to_owned();
    let time = |r: &str| r.get(11..19).unwrap_or_default().to_owned();
    let end = if date(&ra) == date(&rb) {
        time(&rb)
    } else {
        format!("{} {}", date(&rb), time(&rb))
    };
    format!(
        "{} ({} {} → {end} UTC)",
        human_duration(b.since(a)),
        date(&ra),
        time(&ra)
    )
}

/// The summary's "tunnels" row: frames per encapsulation peeled, and those that could not be;
/// `None` when the capture had none.
/// What detection counted on inference, not on a fact seen whole: exports whose who or whose
/// C-MOVE a capture gap took, named from what was seen around them (the investigator must know
/// which counts rest on that). Only when there was any, so clean captures read as before.
fn inferred_section(d: &pacstap_detect::DetectStats) -> Option<SummarySection> {
    let mut rows = Vec::new();
    if d.callers_from_sub_operations + d.exports_caller_inherited + d.downloads_user_inherited > 0 {
        rows.push((
            "who, inferred".into(),
            format!(
                "{} associations whose request was lost, named by the Move Originator of their \
                 C-MOVEs' sub-operations; {} C-MOVE / C-GET exports whose association request was \
                 lost, counted for the AE or user their client address used just before or after; \
                 {} downloads (WADO, REST API) whose request was lost, counted for the user their \
                 address authenticated as just before or after",
                d.callers_from_sub_operations, d.exports_caller_inherited, d.downloads_user_inherited
            ),
        ));
    }
    let orphans =
        d.moves_seen_by_sub_operations_only + d.sub_operations_volume_only + d.sub_operations_from_unknown_senders;
    if orphans > 0 {
        rows.push((
            "sub-operations".into(),
            format!(
                "{orphans} sets of C-STOREs naming a C-MOVE no C-MOVE event took: {} of C-MOVEs never \
                 seen, counted for their Move Originator AE; {} of C-MOVEs seen (their studies counted \
                 once), adding only volume; {} sent by an AE or address not in the DICOM inventory, \
                 counted for no one",
                d.moves_seen_by_sub_operations_only,
                d.sub_operations_volume_only,
                d.sub_operations_from_unknown_senders
            ),
        ));
    }
    (!rows.is_empty()).then(|| SummarySection {
        title: "Detection".into(),
        rows,
    })
}

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
        let decoys = if f.checksum_twins > 0 {
            format!(
                ", {} of the sampled ones bad copies of good segments (decoys)",
                f.checksum_twins
            )
        } else {
            String::new()
        };
        format!(
            "{} bad (dropped){decoys}, {} unverifiable (snaplen)",
            f.bad_checksums, f.unverifiable_checksums
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detection_section_says_what_was_counted_on_inference_and_only_then() {
        let mut d = pacstap_detect::DetectStats::default();
        assert!(inferred_section(&d).is_none(), "a clean capture's summary is unchanged");
        d.exports_caller_inherited = 11;
        d.moves_seen_by_sub_operations_only = 3;
        d.sub_operations_volume_only = 2;
        let s = inferred_section(&d).expect("a section");
        assert_eq!(s.title, "Detection");
        assert_eq!(s.rows.len(), 2);
        assert!(s.rows[0].1.contains("; 11 C-MOVE / C-GET exports"), "{:?}", s.rows);
        assert!(s.rows[1].1.starts_with("5 sets of C-STOREs"), "{:?}", s.rows);
        assert!(s.rows[1].1.contains("3 of C-MOVEs never seen"), "{:?}", s.rows);
    }
}
