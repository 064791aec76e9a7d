//! IP defragmentation end to end: real kernel-made fragment trains (`pcap-samples/fragments/`,
//! `scripts/make-samples-fragments`) decode to the events of the same exchange captured whole,
//! and third-party IPv6 fragment trains yield the TCP segment tshark reassembles.

mod common;
use common::*;
use pacstap_capture::PacketSource;
use serde_json::Value;

fn fragments(name: &str) -> String {
    format!("fragments/{name}")
}

/// The events without what differs between two capture points of one exchange: packet times
/// (microseconds apart) and the flow id (derived from them).
fn comparable(events: &[Value]) -> Vec<Value> {
    fn strip(v: &mut Value) {
        if let Value::Object(m) = v {
            for k in [
                "timestamp",
                "flow_id",
                "flow_ids",
                "start",
                "end",
                "request_time",
                "response_time",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(strip);
        }
    }
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            strip(&mut e);
            e
        })
        .collect()
}

#[test]
fn a_fragmented_dicom_store_gives_the_events_of_the_whole_capture() {
    let (whole_report, whole) = replay(&[&fragments("dicom-store.pcap")]);
    let (report, frag) = replay(&[&fragments("dicom-store-fragmented.pcap")]);
    assert_eq!(whole_report.wire.ip_fragments, 0);
    assert_eq!(report.wire.ip_fragments, 236, "tshark counts 236 fragments");
    assert_eq!(report.defrag.fragments, 236);
    assert_eq!(
        report.defrag.reassembled, 79,
        "236 = 78 × 3 + 2 … every fragment joined"
    );
    let d = &report.defrag;
    assert_eq!(
        (
            d.timed_out,
            d.overlapping,
            d.too_many,
            d.too_big,
            d.evicted,
            d.tiny,
            d.malformed
        ),
        (0, 0, 0, 0, 0, 0, 0)
    );
    assert_eq!(d.held_bytes, 0, "nothing left pending");
    assert_eq!(report.flow.gaps, 0);
    assert_eq!(comparable(&frag), comparable(&whole));

    // The facts tshark reports for both files (tshark-facts.tsv).
    let assoc = associations(&frag);
    assert_eq!(assoc.len(), 1);
    assert_eq!(
        (
            &assoc[0]["calling_ae"],
            &assoc[0]["called_ae"],
            &assoc[0]["outcome"],
            &assoc[0]["commands"]
        ),
        (
            &Value::from("FRAGSCU"),
            &Value::from("FRAGSCP"),
            &Value::from("released"),
            &Value::from(12)
        )
    );
    let stores = commands(&frag, "C-STORE");
    assert_eq!(stores.len(), 12);
    assert!(stores.iter().all(|c| c["status_class"] == "success"));
    let ids: Vec<_> = stores.iter().map(|c| c["message_id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    let mut studies: Vec<String> = stores.iter().flat_map(|c| strs(&c["study_instance_uids"])).collect();
    studies.sort();
    studies.dedup();
    assert_eq!(studies, [STUDY_CT, STUDY_MR, STUDY_CR]);
}

#[test]
fn a_fragmented_tls_download_keeps_its_sni_and_byte_counts() {
    let (_, whole) = replay(&[&fragments("tls-download.pcap")]);
    let (report, frag) = replay(&[&fragments("tls-download-fragmented.pcap")]);
    assert_eq!((report.wire.ip_fragments, report.defrag.reassembled), (206, 69));
    assert_eq!(comparable(&frag), comparable(&whole));
    assert_eq!(frag.len(), 1);
    let tls = &frag[0]["tls"];
    assert_eq!(tls["sni"], "pacs-fragments.example.test");
    assert_eq!(tls["version"], "TLS 1.3");
    assert_eq!(
        (tls["bytes_toserver"].as_u64(), tls["bytes_toclient"].as_u64()),
        (Some(743), Some(100_450))
    );
    assert_eq!(tls["gap_bytes"], 0);
}

/// A mirror tunnel whose IPv6 underlay fragments it (kernel-made: a userspace VXLAN endpoint
/// over an IPv6 UDP socket, MTU 1280; scripts/samples/fragments/make-ipv6-tunnel): the outer
/// datagrams are joined, the VXLAN peeled, and the inner DICOM store decodes to the events of
/// the inner frames captured at the same time.
#[test]
fn a_fragmented_ipv6_vxlan_underlay_gives_the_events_of_the_inner_capture() {
    let (_, whole) = replay(&[&fragments("dicom-store-ipv6-vxlan.pcap")]);
    let (report, frag) = replay(&[&fragments("dicom-store-ipv6-vxlan-fragmented.pcap")]);
    assert_eq!(
        (report.wire.ip_fragments, report.defrag.reassembled),
        (162, 81),
        "tshark: 162 IPv6 fragments, 2 per full-size frame"
    );
    assert_eq!((report.defrag.non_tcp, report.defrag.held_bytes), (0, 0));
    assert_eq!(report.flow.gaps, 0);
    assert_eq!(comparable(&frag), comparable(&whole));
    let stores = commands(&frag, "C-STORE");
    assert_eq!(stores.len(), 12, "tshark-facts-ipv6.tsv: 12 C-STORE-RQ");
    assert!(stores.iter().all(|c| c["status_class"] == "success"));
    assert_eq!(associations(&frag)[0]["calling_ae"], "FRAGSCU");

    // With decapsulation off the tunnel's fragments are not held (nothing would read them).
    let mut opts = pacstap::ReplayOptions::new(vec![sample(&fragments("dicom-store-ipv6-vxlan-fragmented.pcap"))]);
    opts.defrag.tunnel_udp_ports.clear();
    let report = pacstap::replay(opts, true).unwrap();
    assert_eq!((report.defrag.reassembled, report.defrag.non_tcp), (0, 162));
}

/// Without the memory to hold fragments, the fragmented capture loses what the issue reported:
/// the association's AE titles and the C-STORE data; the decoder resynchronises after each
/// gap, and each C-STORE is still reported from its response, marked incomplete.
#[test]
fn without_defragmentation_the_fragmented_captures_lose_their_content() {
    let mut opts = pacstap::ReplayOptions::new(vec![sample(&fragments("dicom-store-fragmented.pcap"))]);
    opts.defrag.memory = 0;
    let report = pacstap::replay(opts, true).unwrap();
    assert_eq!(report.defrag.reassembled, 0);
    assert_eq!(report.defrag.evicted, 79 * 3 - 1, "every fragment of every datagram");
    let events: Vec<Value> = report
        .events
        .iter()
        .map(|e| serde_json::to_value(pacstap_output::EveRecord::new(e)).unwrap())
        .collect();
    let stores = commands(&events, "C-STORE");
    // Each C-STORE is still reported, from its response (the request side's fragments are
    // what was lost): SOP instance and status, but none of its data set and no study.
    assert_eq!(stores.len(), 12);
    assert!(stores.iter().all(|c| c["incomplete"] == true), "{stores:?}");
    assert!(
        stores
            .iter()
            .all(|c| c["dataset_bytes"] == 0 && c["study_instance_uids"].as_array().is_none_or(Vec::is_empty)),
        "{stores:?}"
    );
    assert_eq!(associations(&events)[0]["calling_ae"], "");
}

/// A TCP segment: source port, destination port, flags, payload.
type Segment = (u16, u16, u8, Vec<u8>);

/// The TCP segments a capture holds after wire → defrag.
fn segments(file: &str) -> (Vec<Segment>, pacstap_defrag::DefragStats) {
    let mut src = pacstap_capture::PcapFileSource::open(&sample(file)).unwrap();
    let mut defrag = pacstap_defrag::Defragmenter::new(pacstap_defrag::DefragConfig::default());
    let mut out = Vec::new();
    let mut keep = |p: pacstap_core::Packet<'_>| {
        out.push((p.key.src.port, p.key.dst.port, p.tcp.flags.0, p.payload.to_vec()));
    };
    while let Some(f) = src.next_frame() {
        let d = pacstap_wire::decode_frame(f.ts, f.linktype, f.data);
        match (d.packet, d.fragment) {
            (Ok(p), _) => keep(p),
            (Err(_), Some(frag)) => {
                if let Some(dg) = defrag.push(f.ts, frag) {
                    let r = pacstap_defrag::reframe(f.linktype, f.data, frag, dg);
                    assert_eq!(
                        r.linktype, f.linktype,
                        "re-framed behind the fragment's own link header"
                    );
                    if let Ok(p) = pacstap_wire::decode_frame(f.ts, r.linktype, &r.data).packet {
                        keep(p);
                    }
                }
            }
            _ => {}
        }
    }
    (out, defrag.stats())
}

#[test]
fn third_party_ipv6_fragment_trains_yield_the_segment_tshark_reassembles() {
    for file in [
        "fragments/suricata-verify/defrag__bug-6887-defrag-ipv6-tcp__frag-ip-tcp.pcap",
        "fragments/suricata-verify/defrag__bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap",
    ] {
        let (segs, stats) = segments(file);
        // tshark: frame 3, `12345 → 8080 [ACK] Len=1000`, payload 0x41 × 1000.
        assert_eq!(segs.len(), 1, "{file}");
        let (sport, dport, flags, payload) = &segs[0];
        assert_eq!((*sport, *dport, *flags), (12345, 8080, 0x10), "{file}");
        assert_eq!(payload, &vec![b'A'; 1000], "{file}");
        assert_eq!(
            (stats.fragments, stats.reassembled, stats.held_bytes),
            (3, 1, 0),
            "{file}"
        );
        let (report, _) = replay(&[file]);
        assert_eq!((report.flow.flows_created, report.defrag.reassembled), (1, 1), "{file}");
    }
}

/// An IPv4 SYN cut into 8-byte fragments (a first fragment without the whole TCP header, then
/// one at offset 8: RFC 1858, RFC 3128): the endpoint reassembles it, and so do tshark and
/// pacstap, which flags it as the evasion it may be.
#[test]
fn a_syn_in_tiny_fragments_is_reassembled_and_flagged() {
    let (segs, stats) =
        segments("fragments/suricata-verify/defrag__bug-6887-defrag-ipv4-tcp-syn__frag-ip-tcp-syn.pcap");
    assert_eq!(segs.len(), 1);
    assert_eq!((segs[0].0, segs[0].1), (12345, 8080));
    assert_eq!((stats.tiny, stats.dropped_fragments, stats.reassembled), (1, 0, 1));

    // Counted where an operator looks: the outcome counter and the anomaly counter.
    let metrics = std::sync::Arc::new(pacstap_output::Metrics::new().unwrap());
    let mut opts = pacstap::ReplayOptions::new(vec![sample(
        "fragments/suricata-verify/defrag__bug-6887-defrag-ipv4-tcp-syn__frag-ip-tcp-syn.pcap",
    )]);
    opts.metrics = Some(std::sync::Arc::clone(&metrics));
    let report = pacstap::replay(opts, false).unwrap();
    assert!(report
        .render_summary()
        .contains("(1 with a tiny first fragment, flagged)"));
    let text = metrics.render();
    assert!(
        text.contains("pacstap_ip_fragments_total{outcome=\"tiny\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pacstap_anomalies_total{name=\"defrag.tiny_fragment\",proto=\"defrag\"} 1"),
        "{text}"
    );
}

/// What an evidence pcap holds: its link type, frame count, and the C-STOREs it decodes to.
fn evidence(pcap: &std::path::Path) -> (u32, usize, usize) {
    let mut src = pacstap_capture::PcapFileSource::open(pcap).unwrap();
    let mut frames = 0;
    let mut linktype = 0;
    while let Some(f) = src.next_frame() {
        frames += 1;
        linktype = f.linktype;
    }
    let report = pacstap::replay(pacstap::ReplayOptions::new(vec![pcap.to_path_buf()]), true).unwrap();
    let events: Vec<Value> = report
        .events
        .iter()
        .map(|e| serde_json::to_value(pacstap_output::EveRecord::new(e)).unwrap())
        .collect();
    assert_eq!(report.wire.ip_fragments, 0, "datagrams, not fragments");
    (linktype, frames, commands(&events, "C-STORE").len())
}

/// An alert's evidence pcap holds the reassembled datagrams, behind the fragments' own
/// Ethernet header, so it has one link type and decodes to the whole exchange; replay's second
/// pass and the live workers' rings (3 workers: datagrams joined on the capture thread) agree.
#[test]
fn evidence_pcaps_hold_the_reassembled_datagrams_in_replay_and_live() {
    let tmp = common::Scratch::new("frag-evidence");
    let file = sample(&fragments("dicom-store-fragmented.pcap"));
    // FRAGSCP is not in the inventory: `unknown_destination` fires on the first C-STORE.
    let config = pacstap::config::Config::from_toml_str(
        "[[inventory.dicom]]\nae = \"PACS1\"\nip = \"10.20.0.10\"\nrole = \"pacs\"\n",
    )
    .unwrap();

    let mut opts = pacstap::ReplayOptions::new(vec![file.clone()]).with_config(config.clone());
    opts.evidence_dir = Some(tmp.join("replay"));
    let replayed = pacstap::replay(opts, false).unwrap();
    assert_eq!(replayed.evidence_files.len(), 1, "{:?}", replayed.evidence_files);
    // 118 unfragmented frames and 79 datagrams, Ethernet like the capture.
    assert_eq!(evidence(&replayed.evidence_files[0]), (1, 197, 12));

    let mut detection = pacstap::Detection::new(pacstap::DetectionSettings {
        config: config.clone(),
        state: None,
        evidence_dir: Some(tmp.join("live")),
        events: None,
        alerts_only: false,
        collect: true,
        metrics: None,
        alertmanager: None,
    })
    .unwrap();
    detection.cut_evidence_live();
    let mut proto = pacstap_proto::ProtoConfig::default();
    pacstap::pipeline::apply_ports(&mut proto, &config);
    let run = pacstap::live::Sharded {
        workers: 3,
        flow: pacstap_flow::FlowConfig::default(),
        proto,
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        chores: pacstap::live::Chores::default(),
        evidence: Some(pacstap_output::RingLimits::default()),
        defrag: pacstap_defrag::DefragConfig::default(),
    };
    let source = pacstap_capture::MergedSource::open(std::slice::from_ref(&file)).unwrap();
    let end = run.run(FilesAsLive(source), &mut detection).unwrap();
    assert_eq!((end.shards.defrag.reassembled, end.shards.defrag.fragments), (79, 236));
    assert_eq!(end.evidence_files.len(), 1, "{:?}", end.evidence_files);
    assert_eq!(evidence(&end.evidence_files[0]), (1, 197, 12));
}

/// The config's `[defrag]` table reaches the defragmenter, in replay and with several workers
/// (capture thread): `max_fragments = 2` drops every 3-fragment datagram of the DICOM store
/// (78 of them; the one 2-fragment datagram still joins), where the defaults join all 79.
#[test]
fn the_config_defrag_table_reaches_the_defragmenter() {
    let config =
        pacstap::config::Config::from_toml_str("[defrag]\nmax_fragments = 2\nmemory = 65536\n").expect("config");
    for workers in [1, 3] {
        let mut opts = pacstap::ReplayOptions::new(vec![sample(&fragments("dicom-store-fragmented.pcap"))])
            .with_config(config.clone());
        opts.workers = workers;
        assert_eq!(opts.defrag.max_fragments, 2);
        assert_eq!(opts.defrag.memory, 65536);
        let report = pacstap::replay(opts, true).expect("replay");
        let d = &report.defrag;
        assert_eq!(d.fragments, 236, "workers {workers}");
        assert_eq!((d.reassembled, d.too_many), (1, 78), "workers {workers}: {d:?}");
        assert!(report.flow.gaps > 0, "the dropped datagrams are holes in the stream");
    }
}

/// 10^6 first fragments that never complete (each from its own source with its own id, all
/// within one timeout: the most a flooder can make a defragmenter hold), interleaved with a
/// real DICOM store. The flood costs at most the configured memory (`--defrag-memory`, 4 MiB
/// here) above a clean run's peak RSS, the store decodes as without it, and the evictions are
/// counted in the summary.
#[test]
fn a_million_first_fragments_stay_within_the_memory_cap() {
    use common::eve_run::{run_measuring_peak_rss, tmpdir};
    use common::pcapgen::{read_pcap, PcapWriter};
    let dir = tmpdir("fragment-flood");
    let clean_pcap = sample("store.pcap");
    let store = read_pcap(&clean_pcap);
    let flood_path = dir.join("flood.pcap");
    let total = 1_000_000u32;
    let per_frame = total / store.len() as u32 + 1;
    let mut w = PcapWriter::new(std::io::BufWriter::new(std::fs::File::create(&flood_path).unwrap()));
    let mut sent = 0u32;
    for f in &store {
        for _ in 0..per_frame.min(total - sent) {
            let i = sent;
            let mut d = vec![0u8; 14 + 20 + 64];
            d[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
            d[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
            d[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut d[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&84u16.to_be_bytes());
            ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
            ip[6] = 0x20; // More Fragments, offset 0
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&[10, 99, (i >> 16) as u8, (i >> 8) as u8]);
            ip[16..20].copy_from_slice(&[10, 20, 0, 10]);
            let sum = ip
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum::<u32>();
            let sum = (sum & 0xFFFF) + (sum >> 16);
            let sum = !(((sum & 0xFFFF) + (sum >> 16)) as u16);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            // The start of a TCP header to the DICOM port, and filler.
            d[34..36].copy_from_slice(&((i as u16) | 0x8000).to_be_bytes());
            d[36..38].copy_from_slice(&4242u16.to_be_bytes());
            d[46] = 0x50;
            d[47] = 0x18;
            w.frame(f.ts_us, &d);
            sent += 1;
        }
        w.frame(f.ts_us, &f.data);
    }
    std::io::Write::flush(&mut w.into_inner()).unwrap();
    assert_eq!(sent, total);
    let cap: u64 = 4 << 20;
    let (clean, clean_peak) = run_measuring_peak_rss(&["replay".as_ref(), clean_pcap.as_os_str()], &dir);
    assert_eq!(clean.code, Some(0));
    let cap_arg = cap.to_string();
    let (flooded, peak) = run_measuring_peak_rss(
        &[
            "replay".as_ref(),
            "--defrag-memory".as_ref(),
            cap_arg.as_ref(),
            flood_path.as_os_str(),
        ],
        &dir,
    );
    assert_eq!(flooded.code, Some(0), "{}", flooded.stderr);
    eprintln!("peak RSS: clean {clean_peak} kB, flooded {peak} kB");
    // The budget's charge per datagram is measured RSS (`pacstap_defrag::DATAGRAM_OVERHEAD`):
    // a quarter more leaves room for the allocator's rounding. Charged 256 bytes a datagram,
    // the flood took twice the budget.
    assert!(
        peak < clean_peak + cap * 5 / 4 / 1024,
        "peak RSS {peak} kB against {clean_peak} kB clean, cap {cap} bytes"
    );
    assert_eq!(comparable(&flooded.events), comparable(&clean.events));
    let summary = flooded.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    let evicted: u64 = summary
        .split(" evicted (memory)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count in the summary:\n{}", flooded.stderr));
    assert!(evicted > 900_000, "{evicted} evicted\n{}", flooded.stderr);
}
