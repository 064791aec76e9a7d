//! The multi-threaded pipeline (capture thread → N flow workers → detection thread, as in
//! `pacstap capture`) gives exactly the events of the single-threaded replay, in the same order,
//! whatever the number of workers; and alerts reach an Alertmanager (`--alertmanager`).
//!
//! These run the live pipeline's threads over files (`replay --workers N`), so they need no root
//! and no network; `tests/live_capture.rs` runs the same threads on a real interface.

mod common;
use common::{sample, FilesAsLive};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

fn scenario(name: &str) -> PathBuf {
    sample("scenarios").join(name)
}

/// The events of `replay --workers N` on `files`, byte for byte.
fn events(workers: u32, config: Option<&Path>, files: &[PathBuf]) -> String {
    let mut cmd = pacstap();
    cmd.args(["replay", "-q", "--workers", &workers.to_string()]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let r = cmd.args(files).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8(r.stdout).unwrap()
}

#[test]
fn every_sample_gives_the_same_events_in_the_same_order_on_1_2_and_5_workers() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sample(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    // All files at once (merged by time: many flows, interleaved), then a few on their own.
    let one = events(1, None, &files);
    assert!(one.lines().count() > 60, "{}", one.lines().count());
    assert_eq!(events(2, None, &files), one, "2 workers");
    assert_eq!(events(5, None, &files), one, "5 workers");
    for name in [
        "store-reordered.pcap",
        "move-midstream.pcap",
        "hl7-mllp.pcap",
        "dicomweb.pcap",
    ] {
        let f = [sample(name)];
        assert_eq!(events(3, None, &f), events(1, None, &f), "{name}");
    }
}

/// Fragments carry no ports: with several workers the capture thread joins them before
/// sharding and sends each datagram to its flow's worker; the events stay replay's.
#[test]
fn fragmented_samples_give_the_same_events_on_1_2_and_3_workers() {
    let dir = sample("fragments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("suricata-verify")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    // Merged by time, each whole capture and its fragmented twin interleave into one flow per
    // exchange: duplicates arriving both whole and in fragments, a harder case than either.
    let one = events(1, None, &files);
    assert!(one.lines().count() >= 14, "{}", one.lines().count());
    assert_eq!(events(2, None, &files), one, "2 workers");
    assert_eq!(events(3, None, &files), one, "3 workers");
    for name in [
        "dicom-store-fragmented.pcap",
        "tls-download-fragmented.pcap",
        "dicom-store-ipv6-vxlan-fragmented.pcap",
    ] {
        let f = [dir.join(name)];
        let single = events(1, None, &f);
        assert!(single.contains("\"C-STORE\"") || single.contains("pacs-fragments.example.test"));
        assert_eq!(events(3, None, &f), single, "{name}");
    }
}

/// A capture taken on a host with checksum offload (`offloaded-lo.pcap`: 30 real dcmtk
/// associations over loopback, their outgoing checksums never filled in). Each worker samples
/// its share of the checksum auto mode's 1000 segments: with the whole sample each, most
/// workers never reached the verdict on their third or fifth of the segments and kept dropping
/// them (before: 20, 15 and 8 associations decoded on 2, 3 and 5 workers, against 25 on one).
/// Now each worker drops at most its share of the 100 bad segments one table drops before its
/// verdict; which associations lose a command to that depends on how they hash.
#[test]
fn an_offloaded_capture_is_judged_so_on_every_worker() {
    let f = [sample("hostile-tcp").join("offloaded-lo.pcap")];
    let associations = |workers| {
        let ev = events(workers, None, &f);
        let released = ev.lines().filter(|l| l.contains("\"outcome\":\"released\"")).count();
        let echoes = ev.lines().filter(|l| l.contains("\"command\":\"C-ECHO\"")).count();
        (released, echoes)
    };
    assert_eq!(associations(1), (25, 24), "one table");
    for workers in [2, 3, 5] {
        let (released, echoes) = associations(workers);
        assert!(
            released >= 24 && echoes >= 20,
            "{workers} workers: {released} associations, {echoes} C-ECHOs"
        );
    }
}

/// Flows still open when the input ends (here 22 requests-only associations, C-MOVEs and the
/// C-STOREs they caused) end worker by worker, so their order depends on how the flows were
/// split: with a random split each run of the same file gave another order and another
/// instance count in the bulk-export alert (7 to 20 of 20 over six runs). Over files the split
/// is fixed: the same file gives the same output on every run.
#[test]
fn replay_on_several_workers_gives_the_same_output_on_every_run() {
    let f = [sample("mirror").join("move20.oneway.pcap")];
    let first = events(3, None, &f);
    assert_eq!(
        first.lines().filter(|l| l.contains("\"command\":\"C-MOVE\"")).count(),
        20
    );
    for run in 0..4 {
        assert_eq!(events(3, None, &f), first, "run {run}");
    }
}

/// The same flows, ended worker by worker at the end of the input: the C-MOVEs (requests
/// only, so no response to count their sub-operations) and the C-STOREs they caused reach
/// detection in another order on every number of workers. Each C-MOVE waits for its
/// sub-operations and takes, of those that reuse its message id, the ones that began in its
/// own time, so the bulk export keeps all 20 instances; before, 2 and 3 workers linked 10 and
/// 15 of them.
#[test]
fn a_bulk_export_keeps_its_volume_however_the_flows_are_split() {
    let config = scenario("pacstap.toml");
    let f = [sample("mirror").join("move20.oneway.pcap")];
    for workers in [1, 2, 3, 5] {
        let ev = events(workers, Some(&config), &f);
        let volumes: Vec<(u64, u64)> = ev
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["alert"]["rule"] == "bulk_export")
            .map(|e| {
                let v = &e["alert"]["volume"];
                (v["studies"].as_u64().unwrap(), v["instances"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(volumes, [(16, 16), (20, 20)], "{workers} workers");
    }
}

#[test]
fn alerts_are_the_same_on_several_workers() {
    let config = scenario("pacstap.toml");
    let files: Vec<PathBuf> = [
        "login-failures-dicom.pcap",
        "login-failures-http.pcap",
        "bulk-export-move.pcap",
        "unknown-destination.pcap",
        "admin-change.pcap",
    ]
    .iter()
    .map(|n| scenario(n))
    .collect();
    for f in &files {
        let one = events(1, Some(&config), std::slice::from_ref(f));
        assert!(
            one.contains("\"event_type\":\"alert\""),
            "{} raises alerts",
            f.display()
        );
        assert_eq!(
            events(4, Some(&config), std::slice::from_ref(f)),
            one,
            "{}",
            f.display()
        );
    }
}

/// A one-shot Alertmanager on loopback: answers 200 to every POST and hands the bodies over.
fn fake_alertmanager() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/am", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
            let _ = tx.send((request_line, String::from_utf8(body).unwrap()));
        }
    });
    (url, rx)
}

#[test]
fn alertmanager_receives_each_alert_with_the_contract_labels() {
    let (url, posts) = fake_alertmanager();
    let r = pacstap()
        .args(["replay", "-q", "--alerts-only", "--alertmanager", &url, "--config"])
        .arg(scenario("pacstap.toml"))
        .arg(scenario("login-failures-dicom.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    // Alertmanager identifies an alert by its labels; an update still queued replaces its
    // earlier copy, so what arrives is at least one alert per label set.
    let label_sets = |alerts: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        alerts.iter().map(|a| a.to_string()).collect()
    };
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| {
            let a = &serde_json::from_str::<serde_json::Value>(l).unwrap()["alert"];
            serde_json::json!([a["rule"], a["severity_name"], a["entity"]["kind"], a["entity"]["id"]])
        })
        .collect();
    assert!(!lines.is_empty());
    // The process has exited: everything it delivered has arrived.
    let mut pushed = Vec::new();
    while let Ok((line, body)) = posts.recv_timeout(std::time::Duration::from_secs(2)) {
        assert!(line.starts_with("POST /am/api/v2/alerts "), "{line}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        pushed.extend(v.as_array().unwrap().iter().cloned());
    }
    let pushed_sets: Vec<serde_json::Value> = pushed
        .iter()
        .map(|a| {
            let l = &a["labels"];
            serde_json::json!([l["rule"], l["severity"], l["entity_kind"], l["entity"]])
        })
        .collect();
    assert_eq!(label_sets(&pushed_sets), label_sets(&lines));
    assert!(pushed.len() <= lines.len());
    let user = pushed
        .iter()
        .find(|a| a["labels"]["rule"] == "login_failures_user" || a["labels"]["rule"] == "login_failures_source")
        .expect("a login failure alert");
    for label in ["rule", "severity", "entity_kind", "entity", "alertname"] {
        assert!(user["labels"][label].is_string(), "{label}: {user}");
    }
    assert!(user["annotations"]["summary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(user["annotations"]["response"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn a_bad_alertmanager_url_is_bad_usage() {
    let r = pacstap()
        .args(["replay", "-q", "--alertmanager", "ftp://am.example:9093"])
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--alertmanager"));
}

/// The client ports and frame count of a pcap's TCP packets to or from `server_port`.
fn clients_and_frames(pcap: &Path, server_port: u16) -> (std::collections::BTreeSet<u16>, usize) {
    use pacstap_capture::PacketSource;
    let mut src = pacstap_capture::PcapFileSource::open(pcap).unwrap();
    let mut wire = pacstap_wire::WireDecoder::new();
    let (mut clients, mut frames) = (std::collections::BTreeSet::new(), 0);
    while let Some(f) = src.next_frame() {
        if let Some(p) = wire.decode(f.ts, f.linktype, f.data) {
            frames += 1;
            clients.insert(if p.key.src.port == server_port {
                p.key.dst.port
            } else {
                p.key.src.port
            });
        }
    }
    (clients, frames)
}

/// Live evidence (cut from the workers' packet rings while capturing) holds the same packets as
/// replay's second pass over the file, for flows that fit the per-flow caps.
#[test]
fn live_evidence_from_the_workers_rings_equals_replays_second_pass() {
    let tmp = std::env::temp_dir().join(format!("pacstap-live-evidence-{}", std::process::id()));
    let (live_dir, replay_dir) = (tmp.join("live"), tmp.join("replay"));
    let file = sample("dicomweb.pcap");

    let mut opts = pacstap::ReplayOptions::new(vec![file.clone()]);
    opts.evidence_dir = Some(replay_dir.clone());
    let replayed = pacstap::replay(opts, false).unwrap();
    assert_eq!(replayed.evidence_files.len(), 1, "{:?}", replayed.evidence_files);

    let mut detection = pacstap::Detection::new(pacstap::DetectionSettings {
        config: pacstap::config::Config::default(),
        state: None,
        evidence_dir: Some(live_dir.clone()),
        events: None,
        alerts_only: false,
        collect: true,
        metrics: None,
        alertmanager: None,
    })
    .unwrap();
    detection.cut_evidence_live();
    let run = pacstap::live::Sharded {
        workers: 3,
        flow: pacstap_flow::FlowConfig::default(),
        proto: pacstap_proto::ProtoConfig::default(),
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        chores: pacstap::live::Chores::default(),
        evidence: Some(pacstap_output::RingLimits::default()),
        defrag: Default::default(),
    };
    let source = pacstap_capture::MergedSource::open(std::slice::from_ref(&file)).unwrap();
    let end = run.run(FilesAsLive(source), &mut detection).unwrap();
    assert_eq!(end.evidence_files.len(), 1, "{:?}", end.evidence_files);
    let live_file = &end.evidence_files[0];
    assert!(live_file.starts_with(&live_dir));
    assert_eq!(
        live_file.file_name(),
        replayed.evidence_files[0].file_name(),
        "same incident, same name"
    );
    let (live_clients, live_frames) = clients_and_frames(live_file, 8042);
    let (replay_clients, replay_frames) = clients_and_frames(&replayed.evidence_files[0], 8042);
    assert_eq!(
        live_clients.len(),
        2,
        "the PUT and the DELETE connections: {live_clients:?}"
    );
    assert_eq!(live_clients, replay_clients);
    assert_eq!(live_frames, replay_frames);
    std::fs::remove_dir_all(&tmp).ok();
}
