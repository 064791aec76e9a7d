//! Issue 12 item 3, evidence that proves it, through the real binary on the bulk-export
//! scenario (pcap-samples/scenarios/bulk-export-move.pcap: WORKSTATION1 C-MOVEs 18 studies to
//! STORESCP, 10.20.0.20:11112):
//! - the export incident's pcap holds the sub-operation associations that carried the images
//!   (replayed on its own it decodes C-STOREs to the destination; tshark agrees);
//! - files are named `<UTC time>_<rule>_<incident id>.pcap`;
//! - each alert's `evidence.pcap_sha256` is the SHA-256 of the file on disk;
//! - `custody.jsonl` has one line per file written, matching it, and a second replay into the
//!   same directory appends to it.

mod common;
use common::sample;
use pacstap_core::{DicomEvent, EventBody};
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const DESTINATION: &str = "10.20.0.20";
const DESTINATION_PORT: u16 = 11112;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pacstap-custody-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `pacstap replay --config scenarios/pacstap.toml --alerts-only --evidence-dir DIR
/// --events EVENTS bulk-export-move.pcap`; returns the alert lines.
fn replay_into(dir: &Path, events: &Path) -> Vec<Value> {
    let scen = sample("scenarios");
    let out = Command::new(env!("CARGO_BIN_EXE_pacstap"))
        .args(["replay", "-q", "--alerts-only", "--config"])
        .arg(scen.join("pacstap.toml"))
        .arg("--evidence-dir")
        .arg(dir)
        .arg("--events")
        .arg(events)
        .arg(scen.join("bulk-export-move.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn custody(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("custody.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sha256sum(p: &Path) -> String {
    pacstap_output::sha256_file(p).unwrap()
}

#[test]
fn the_export_pcap_holds_the_data_flows_is_hashed_and_logged_in_custody() {
    let d = tempdir("export");
    let ev_dir = d.join("evidence");
    let alerts = replay_into(&ev_dir, &d.join("events.jsonl"));
    let exports: Vec<&Value> = alerts.iter().filter(|a| a["alert"]["rule"] == "bulk_export").collect();
    assert!(!exports.is_empty());
    let incident = exports[0]["alert"]["incident_id"].as_str().unwrap();
    let pcap = PathBuf::from(exports[0]["alert"]["evidence"]["pcap"].as_str().unwrap());
    // Readable UTC time of the incident's first request, rule, incident id; no ':'.
    let name = pcap.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        name,
        format!("2026-11-28T075331Z_bulk_export_{incident}.pcap"),
        "first_seen {}",
        exports[0]["alert"]["first_seen"]
    );
    assert_eq!(std::fs::metadata(&pcap).unwrap().permissions().mode() & 0o777, 0o600);
    // Every alert naming a pcap carries the hash of the file as it is on disk.
    let mut names = 0;
    for a in &alerts {
        let e = &a["alert"]["evidence"];
        if let Some(p) = e["pcap"].as_str() {
            names += 1;
            assert_eq!(e["pcap_sha256"].as_str(), Some(sha256sum(Path::new(p)).as_str()), "{a}");
        }
    }
    assert_eq!(names, alerts.len(), "every alert names a pcap");

    // The pcap replayed alone: the C-STOREs of the sub-operations, to the move destination.
    let report = pacstap::replay(pacstap::ReplayOptions::new(vec![pcap.clone()]), true).unwrap();
    let stores: Vec<_> = report
        .events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Dicom(DicomEvent::Command(c)) if c.command == "C-STORE"))
        .collect();
    assert_eq!(stores.len(), 18, "the 18 sub-operation C-STOREs are in the evidence");
    assert!(stores
        .iter()
        .all(|e| e.flow.server.ip.to_string() == DESTINATION && e.flow.server.port == DESTINATION_PORT));
    if let Ok(out) = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args([
            "-Y",
            &format!("ip.dst=={DESTINATION} && tcp.dstport=={DESTINATION_PORT}"),
        ])
        .output()
    {
        if out.status.success() {
            let frames = String::from_utf8_lossy(&out.stdout).lines().count();
            assert!(frames > 18 * 3, "tshark: {frames} frames to the destination");
        }
    }

    // Custody: one line per file, matching it.
    let lines = custody(&ev_dir);
    let files: Vec<PathBuf> = std::fs::read_dir(&ev_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    assert_eq!(lines.len(), files.len());
    assert!(!files.is_empty());
    let incidents: HashMap<&str, &str> = alerts
        .iter()
        .map(|a| {
            let p = a["alert"]["evidence"]["pcap"].as_str().unwrap();
            (
                p.rsplit('/').next().unwrap(),
                a["alert"]["incident_id"].as_str().unwrap(),
            )
        })
        .collect();
    for l in &lines {
        let f = ev_dir.join(l["file"].as_str().unwrap());
        assert_eq!(l["sha256"].as_str().unwrap(), sha256sum(&f));
        assert_eq!(l["size"].as_u64().unwrap(), std::fs::metadata(&f).unwrap().len());
        assert_eq!(
            l["incident_id"].as_str(),
            incidents.get(l["file"].as_str().unwrap()).copied()
        );
        assert!(!l["host"].as_str().unwrap().is_empty());
        for k in ["first_packet", "last_packet", "written_at"] {
            let t = l[k].as_str().unwrap();
            assert!(t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T', "{k} {t}");
        }
        assert!(l["first_packet"].as_str() <= l["last_packet"].as_str());
    }
    let export_line = lines.iter().find(|l| l["incident_id"] == incident).unwrap();
    // The export's first packet is the first C-MOVE association's SYN, before the alert's
    // first counted request.
    assert!(export_line["first_packet"].as_str().unwrap() <= exports[0]["alert"]["first_seen"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(ev_dir.join("custody.jsonl"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // No spool left behind.
    assert!(std::fs::read_dir(&ev_dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().contains("spool")));

    // A second replay into the same directory appends: the first lines stay as they were.
    let before = std::fs::read_to_string(ev_dir.join("custody.jsonl")).unwrap();
    let again = replay_into(&ev_dir, &d.join("events2.jsonl"));
    assert_eq!(again.len(), alerts.len());
    let after = std::fs::read_to_string(ev_dir.join("custody.jsonl")).unwrap();
    assert!(after.starts_with(&before));
    let lines2 = custody(&ev_dir);
    assert_eq!(lines2.len(), 2 * lines.len());
    // Same capture, same files, same hashes.
    for (a, b) in lines.iter().zip(&lines2[lines.len()..]) {
        assert_eq!((&a["file"], &a["sha256"]), (&b["file"], &b["sha256"]));
    }

    // `pacstap evidence verify`: all intact; then one byte of the export's pcap changed.
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_pacstap"))
            .args(["evidence", "verify"])
            .arg(&ev_dir)
            .output()
            .unwrap()
    };
    let ok = verify();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).lines().count(), files.len());
    let mut bytes = std::fs::read(&pcap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&pcap, bytes).unwrap();
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains(&format!("CHANGED     {name}")), "{out}");
    std::fs::remove_dir_all(&d).ok();
}

/// The sharded replay (`--workers 2`) seals the same way, and the collected alerts (library
/// users) carry the hash too.
#[test]
fn sharded_replay_alerts_carry_the_hash_in_the_lines_and_the_report() {
    let d = tempdir("sharded");
    let ev_dir = d.join("evidence");
    let events = d.join("events.jsonl");
    let scen = sample("scenarios");
    let cfg = pacstap::config::Config::load(&scen.join("pacstap.toml")).unwrap();
    let mut opts = pacstap::ReplayOptions::new(vec![scen.join("bulk-export-move.pcap")]).with_config(cfg);
    opts.workers = 2;
    opts.alerts_only = true;
    opts.evidence_dir = Some(ev_dir.clone());
    opts.events = Some(Box::new(std::fs::File::create(&events).unwrap()));
    let report = pacstap::replay(opts, true).unwrap();
    assert_eq!(report.evidence_files.len(), 1);
    let sha = sha256sum(&report.evidence_files[0]);
    let collected: Vec<_> = report
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Alert(a) => Some(a.evidence.pcap_sha256.clone()),
            _ => None,
        })
        .collect();
    assert!(!collected.is_empty());
    assert!(collected.iter().all(|h| h.as_deref() == Some(sha.as_str())));
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), collected.len());
    assert!(lines
        .iter()
        .all(|l| l["alert"]["evidence"]["pcap_sha256"] == sha.as_str()));
    assert_eq!(custody(&ev_dir).len(), 1);
    std::fs::remove_dir_all(&d).ok();
}
