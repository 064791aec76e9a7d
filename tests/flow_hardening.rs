//! End-to-end regressions for the flow stage's hardening (issues #9 and #10): the real C-MOVE
//! capture `move.pcap`, mutated by `scripts/make-hostile-tcp-samples` the way a SPAN port and a
//! hostile sender mutate traffic, must yield the DICOM facts of the clean capture.

mod common;
use common::*;
use serde_json::Value;

/// The DICOM events without their times (a delayed frame moves an event's timestamp by
/// microseconds, never its facts).
fn dicom_facts(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == "dicom")
        .map(|e| {
            let mut d = e["dicom"].clone();
            if let Some(o) = d.as_object_mut() {
                for k in ["start", "end", "request_time", "response_time"] {
                    o.remove(k);
                }
            }
            d
        })
        .collect()
}

fn anomaly_names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event_type"] == "anomaly")
        .map(|e| e["anomaly"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn ack_before_data_from_a_span_port_loses_nothing() {
    let (_, clean) = replay(&["move.pcap"]);
    let (report, ev) = replay(&["hostile-tcp/ack-before-data.pcap"]);
    assert_eq!(dicom_facts(&ev), dicom_facts(&clean));
    let f = &report.flow;
    assert_eq!((f.gaps, f.gap_bytes), (0, 0), "nothing was lost");
    assert!(f.ack_before_data > 10, "{f:?}");
    assert_eq!(f.ack_before_data_filled, f.ack_before_data);
    assert!(anomaly_names(&ev).is_empty());
}

#[test]
fn spoofed_syn_and_rsts_do_not_blind_the_association() {
    let (_, clean) = replay(&["move.pcap"]);
    let (report, ev) = replay(&["hostile-tcp/spoofed-control.pcap"]);
    assert_eq!(dicom_facts(&ev), dicom_facts(&clean));
    let a = associations(&ev);
    assert!(
        a.iter()
            .any(|a| a["calling_ae"] == "WORKSTATION1" && a["outcome"] == "released"),
        "the C-MOVE association keeps its AE titles and ends released"
    );
    assert_eq!(commands(&ev, "C-MOVE")[0]["move_destination"], "STORESCP");
    let mut names = anomaly_names(&ev);
    names.sort();
    assert_eq!(
        names,
        [
            "tcp.bad_checksum",
            "tcp.rst_in_window",
            "tcp.rst_out_of_window",
            "tcp.syn_on_established"
        ]
    );
    let f = &report.flow;
    assert_eq!((f.flows_created, f.flows_reused, f.rst_accepted), (2, 0, 0));
}

#[test]
fn a_bad_checksum_decoy_before_the_real_segment_never_wins() {
    let (_, ev) = replay(&["hostile-tcp/decoy.pcap"]);
    let moves = commands(&ev, "C-MOVE");
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["move_destination"], "STORESCP");
    assert_eq!(anomaly_names(&ev), ["tcp.bad_checksum"]);
}

#[test]
fn without_checksums_the_decoy_wins_but_the_conflict_is_reported() {
    let mut opts = pacstap::ReplayOptions::new(vec![sample("hostile-tcp/decoy.pcap")]);
    opts.flow.checksum = pacstap_flow::ChecksumMode::Off;
    let report = pacstap::replay(opts, true).expect("replay");
    assert_eq!(report.flow.overlap_conflicts, 1);
    let names: Vec<_> = report
        .events
        .iter()
        .filter_map(|e| match &e.body {
            pacstap_core::EventBody::Anomaly(a) => Some(a.name),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["tcp.overlap_conflict"]);
}

/// A real Linux kernel's urgent data inside a DICOM association
/// (`scripts/samples/hostile-tcp/make-urgent`): the relay on the client's side sends one byte
/// with MSG_OOB inside the C-ECHO-RQ's P-DATA-TF; storescp, which does not ask for
/// SO_OOBINLINE, never reads it and answers Success (echoscu exits 0, the C-ECHO-RSP is in the
/// capture). The tap must read what storescp read: the facts of the same exchange without the
/// byte, and one `tcp.urgent_data`. (tshark keeps the byte inline: it decodes neither the
/// C-ECHO-RQ nor its response in this capture.)
#[test]
fn urgent_data_from_a_real_kernel_is_read_as_the_server_read_it() {
    let (plain_report, plain) = replay(&["hostile-tcp/urgent-plain.pcap"]);
    let (report, oob) = replay(&["hostile-tcp/urgent-oob.pcap"]);
    assert_eq!(dicom_facts(&oob), dicom_facts(&plain));
    let echo = commands(&oob, "C-ECHO");
    assert_eq!((echo.len(), echo[0]["status"].as_str()), (1, Some("0x0000")));
    assert_eq!(anomaly_names(&oob), ["tcp.urgent_data"]);
    assert!(anomaly_names(&plain).is_empty());
    assert_eq!((report.flow.urgent_data, plain_report.flow.urgent_data), (1, 0));
}

/// Replays a `make-ttl-decoy` run and checks that the tap read what storescp read: the plain
/// run's DICOM facts, one C-ECHO answered Success for the real SOP class 1.2.840.10008.1.1 (the
/// decoys name 1.2.840.10008.1.9), and exactly the `tcp.*` anomaly `anomaly`. Returns the run.
fn read_as_storescp_read_it(sample: &str, anomaly: &str) -> (pacstap::ReplayReport, Vec<Value>) {
    let (_, plain) = replay(&["hostile-tcp/ttl-plain.pcap"]);
    let (report, events) = replay(&[sample]);
    assert_eq!(dicom_facts(&events), dicom_facts(&plain), "{sample}");
    let echo = commands(&events, "C-ECHO");
    assert_eq!(echo.len(), 1, "{sample}");
    assert_eq!(echo[0]["status"].as_str(), Some("0x0000"), "{sample}");
    assert_eq!(echo[0]["sop_class_uid"].as_str(), Some("1.2.840.10008.1.1"), "{sample}");
    assert_eq!(anomaly_names(&events), [anomaly], "{sample}");
    assert!(anomaly_names(&plain).is_empty());
    (report, events)
}

/// A real low-TTL insertion through a real Linux router
/// (`scripts/samples/hostile-tcp/make-ttl-decoy`): the attacker's relay injects, before the
/// C-ECHO-RQ's P-DATA-TF, a copy naming SOP class 1.2.840.10008.1.9 at the connection's own next
/// sequence number with IP TTL 1. The tap (the router's client-side interface) sees it; the
/// router drops it; storescp reads the real request and answers Success. The tap must read what
/// storescp read: the plain run's facts (SOP class 1.2.840.10008.1.1), and one
/// `tcp.low_ttl_decoy`. (Round 1 reported the decoy's class; tshark decodes both requests.)
#[test]
fn a_real_low_ttl_decoy_through_a_router_is_read_as_the_server_read_it() {
    let (plain_report, _) = replay(&["hostile-tcp/ttl-plain.pcap"]);
    let (report, _) = read_as_storescp_read_it("hostile-tcp/ttl-decoy.pcap", "tcp.low_ttl_decoy");
    assert_eq!((report.flow.low_ttl_held, report.flow.low_ttl_decoys), (1, 1));
    assert_eq!(plain_report.flow.low_ttl_held, 0);
}

/// A real out-of-order decoy against a real Linux receiver (`make-ttl-decoy`, mode `ahead`):
/// before the C-ECHO-RQ's P-DATA-TF the relay injects, with an ordinary TTL, only its second half
/// naming SOP class 1.2.840.10008.1.9, at its own sequence number (frame 8, 52 bytes, ahead of the
/// PDU's first bytes). storescp's kernel queues it (its duplicate ACK SACKs it, frame 9), takes
/// the real P-DATA-TF that comes in order over it (frame 10) whole, reports the covered bytes as
/// a duplicate (D-SACK, frame 11), and storescp answers Success for 1.2.840.10008.1.1. The tap
/// must read the same; letting the queued copy win reported the decoy's class.
#[test]
fn a_real_decoy_sent_ahead_of_a_hole_is_read_as_the_server_read_it() {
    let (report, _) = read_as_storescp_read_it("hostile-tcp/ttl-ahead.pcap", "tcp.overlap_conflict");
    assert_eq!(
        (report.flow.out_of_order_segments, report.flow.retransmitted_bytes),
        (1, 52)
    );
    assert_eq!((report.flow.gaps, report.flow.overlap_conflicts), (0, 1));
}

/// Out of order against out of order, with a real Linux receiver (`make-ttl-decoy`, mode
/// `cover`): the decoy's second half (frame 8, naming 1.2.840.10008.1.9) is queued; then the
/// real bytes from 2 bytes before it to the PDU's end (frame 10), still out of order: they start
/// before the queued decoy and cover it, so the kernel queues them in its place and reports the
/// decoy's range as a duplicate (D-SACK 240-292, frame 11); the PDU's first bytes come in order
/// (frame 12) and storescp answers Success for 1.2.840.10008.1.1. Keeping the first queued copy
/// reported the decoy's class.
#[test]
fn a_real_out_of_order_segment_starting_before_a_queued_decoy_replaces_it() {
    let (report, _) = read_as_storescp_read_it("hostile-tcp/ttl-cover.pcap", "tcp.overlap_conflict");
    let f = &report.flow;
    assert_eq!((f.out_of_order_segments, f.overlap_conflicts, f.gaps), (2, 1, 0));
}

/// A real attack on checksum validation's auto mode (`scripts/samples/hostile-tcp/make-flood-decoy`):
/// hping3 sends 900 SYNs with bad checksums from random sources (storescp's kernel drops them
/// and answers none), then an association whose C-ECHO-RQ is preceded by a copy naming SOP class
/// 1.2.840.10008.1.9 with a wrong checksum (dropped too; storescp answers the real request). 98 %
/// of the sample was bad: b349d53c called the capture offloaded, stopped validating and reported
/// the decoy's class. Nobody answered the flood, so it is not offload.
#[test]
fn a_real_bad_checksum_flood_does_not_switch_validation_off() {
    let (report, _) = read_as_storescp_read_it("hostile-tcp/flood-decoy.pcap", "tcp.bad_checksum");
    let f = &report.flow;
    assert_eq!((f.checksum_offloaded, f.bad_checksums, f.checksum_twins), (0, 901, 1));
}

/// A real offloaded capture (`scripts/samples/hostile-tcp/make-offloaded`: 30 dcmtk C-ECHO
/// associations on a namespace's loopback, every TCP checksum left partial by the kernel). Auto
/// mode must still call it offloaded, though bad segments are now offload evidence only when
/// their receiver answers them and no good copy of them comes (`checksum/offload.rs`): here
/// every one is answered and none comes good. What it refuses before the verdict is bounded:
/// the first `AUTO_SAMPLE / 10` bad ones and the twin window (8 packets) after.
#[test]
fn a_real_offloaded_capture_is_still_recognised_and_decoded() {
    let (report, events) = replay(&["hostile-tcp/offloaded-lo.pcap"]);
    let f = &report.flow;
    assert_eq!((f.checksum_offloaded, f.checksum_twins), (1, 0));
    assert_eq!((f.checksum_sampled, f.checksum_sample_bad), (600, 600));
    assert!(
        f.bad_checksums <= 101 + 8 + 1,
        "refused before the verdict: {}",
        f.bad_checksums
    );
    let echoes = commands(&events, "C-ECHO");
    assert_eq!(echoes.len(), 24, "the associations after the verdict");
    assert!(echoes.iter().all(|e| e["status"].as_str() == Some("0x0000")));
}
