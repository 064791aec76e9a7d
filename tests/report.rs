//! `pacstap report` end to end (issue #13): a bundled scenario replayed with `--report`, the
//! HTML / JSON / CSV facts it gives, gzip input, --from/--to, --study, HTML escaping of wire
//! strings, and the page as a real browser (headless Chromium) renders it.

mod common;
use common::{sample, Scratch};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

fn tmp(tag: &str) -> Scratch {
    Scratch::new(&format!("report-{tag}"))
}

/// Replays the bulk export (C-MOVE) and unknown destination scenarios with evidence and
/// `--report`; returns the directory with events.jsonl, r.html, r.json, r-*.csv.
fn scenario(tag: &str) -> Scratch {
    let d = tmp(tag);
    let out = pacstap()
        .args(["replay", "-q", "--config"])
        .arg(sample("scenarios/pacstap.toml"))
        .arg("--events")
        .arg(d.join("events.jsonl"))
        .arg("--evidence-dir")
        .arg(d.join("evidence"))
        .arg("--report")
        .arg(d.join("r.html"))
        .arg(sample("scenarios/bulk-export-move.pcap"))
        .arg(sample("scenarios/unknown-destination.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn report(args: &[&str], events: &[&Path], dir: &Path) -> Value {
    let out = pacstap()
        .arg("report")
        .args(args)
        .arg("-o")
        .arg(dir.join("o.html"))
        .args(events)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json(&dir.join("o.json"))
}

/// Issue 13: a C-STORE sub-operation row names the C-MOVE that caused it, and "by whom" is
/// the C-MOVE's requester, not the PACS that stored the images.
#[test]
fn ledger_c_store_rows_name_their_c_move_and_its_requester() {
    let d = scenario("movelink");
    let j = json(&d.join("r.json"));
    let rows = j["ledger"].as_array().unwrap();
    let stores: Vec<&Value> = rows
        .iter()
        .filter(|r| r["how"] == "C-STORE" && r["to"] == "STORESCP@10.20.0.20")
        .collect();
    assert!(stores.len() >= 16, "{} C-STORE rows", stores.len());
    for st in &stores {
        let c = &st["caused_by"];
        assert_eq!(c["originator_ae"], "WORKSTATION1", "{st}");
        assert_eq!(c["requester"], "WORKSTATION1@10.20.0.30", "{st}");
        assert_eq!(st["by"], "WORKSTATION1@10.20.0.30", "{st}");
        assert_eq!(st["from"], "ORTHANC@10.20.0.10");
        // The C-MOVE row of the same study is on the flow the link names.
        let mv = rows
            .iter()
            .find(|r| r["how"] == "C-MOVE" && r["study_instance_uid"] == st["study_instance_uid"])
            .expect("the C-MOVE row of the study");
        assert_eq!(c["flow_id"], mv["flow_id"], "{st}");
        assert!(c["message_id"].as_u64().is_some(), "{st}");
    }
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("for C-MOVE #"), "the HTML ledger names the C-MOVE");
    let csv = std::fs::read_to_string(d.join("r-ledger.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",move_originator_ae,move_message_id,move_requester,move_flow_id"));
    assert!(csv.lines().any(|l| l
        .contains(",C-STORE,transfer,ORTHANC@10.20.0.10,STORESCP@10.20.0.20,false,WORKSTATION1@10.20.0.30,")
        && l.contains(",WORKSTATION1,")));
}

#[test]
fn replay_report_gives_incidents_ledger_and_checklist_in_html_json_and_csv() {
    let d = scenario("e2e");
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    let j = json(&d.join("r.json"));
    assert_eq!(j["schema"], "pacstap-report/1");
    // Incident: the bulk export by WORKSTATION1, with its studies, destination and volume.
    let incs = j["incidents"].as_array().unwrap();
    let bulk = incs
        .iter()
        .find(|i| i["rule"] == "bulk_export" && i["entity_id"] == "WORKSTATION1")
        .expect("a bulk_export incident for WORKSTATION1");
    assert!(bulk["studies_total"].as_u64().unwrap() >= 16, "{bulk}");
    assert!(bulk["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().starts_with("STORESCP")));
    // Completed C-MOVE sub-operations on the incident's flows.
    assert!(
        bulk["volume"]["instances"].as_u64().unwrap() >= 16,
        "{}",
        bulk["volume"]
    );
    assert!(bulk["story"].as_array().unwrap().iter().any(|s| s["what"]
        .as_str()
        .unwrap()
        .starts_with("C-MOVE WORKSTATION1@10.20.0.30 → ORTHANC@10.20.0.10")));
    // Evidence hashed from the file replay wrote.
    let sha = bulk["evidence_sha256"].as_str().expect("sha256 of the evidence pcap");
    assert_eq!(sha.len(), 64);
    if let Ok(o) = Command::new("sha256sum")
        .arg(bulk["evidence_pcap"].as_str().unwrap())
        .output()
    {
        assert!(String::from_utf8_lossy(&o.stdout).starts_with(sha));
    }
    assert!(html.contains("bulk_export — ae WORKSTATION1"));
    assert!(html.contains(sha));
    // Ledger: the first exported study went by C-MOVE to STORESCP, by WORKSTATION1.
    let rows = j["ledger"].as_array().unwrap();
    let study = "1.2.826.0.1.3680043.10.1234.20.1";
    assert!(rows.iter().any(|r| r["study_instance_uid"] == study
        && r["how"] == "C-MOVE"
        && r["to"] == "STORESCP"
        && r["by"] == "WORKSTATION1@10.20.0.30"));
    assert!(rows.iter().any(|r| r["study_instance_uid"] == study
        && r["how"] == "C-STORE"
        && r["to"] == "STORESCP@10.20.0.20"
        && r["instances"] == 1));
    // The external destination of unknown-destination.pcap is marked external.
    assert!(
        rows.iter()
            .any(|r| r["to"].as_str().unwrap().contains("198.51.100.7") && r["external"] == true),
        "no external row"
    );
    assert!(html.contains(&format!("Study <span class=\"mono\">{study}</span>")));
    let csv = std::fs::read_to_string(d.join("r-ledger.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, j["ledger_rows_total"].as_u64().unwrap() + 1);
    assert!(csv.lines().any(|l| l.starts_with(study)
        && l.contains(",C-MOVE,transfer,ORTHANC@10.20.0.10,STORESCP,false,WORKSTATION1@10.20.0.30,")));
    let inc_csv = std::fs::read_to_string(d.join("r-incidents.csv")).unwrap();
    assert!(inc_csv.contains(",bulk_export,high,ae,WORKSTATION1,"));
    // Checklist: DICOM in clear, with the systems.
    let clear = j["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "dicom_in_clear")
        .unwrap();
    assert_eq!(clear["status"], "finding");
    assert!(clear["details"].as_array().unwrap().iter().any(|d| d
        .as_str()
        .unwrap()
        .starts_with("WORKSTATION1@10.20.0.30 → ORTHANC@10.20.0.10")));
    assert!(html.contains("DICOM in clear"));
    // Inventory: ORTHANC as SCP with DCMTK's implementation? At least the requesters' software.
    let nodes = j["inventory"]["dicom_nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["ae"] == "WORKSTATION1"
        && n["roles"].as_array().unwrap().contains(&Value::from("SCU"))
        && !n["implementation_class_uids"].as_array().unwrap().is_empty()));
    assert!(j["flow_map"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["to"].as_str().unwrap().contains("198.51.100.7") && e["to_internal"] == false));
    // Self-contained: no script, no external resource.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[test]
fn gzip_input_gives_the_same_report_and_time_range_and_study_filter() {
    let d = scenario("gz");
    let events = d.join("events.jsonl");
    let st = Command::new("gzip").arg("-k").arg(&events).status().unwrap();
    assert!(st.success());
    let plain = report(&[], &[&events], &d);
    let gz = report(&[], &[&d.join("events.jsonl.gz")], &d);
    for k in ["ledger_rows_total", "studies_total"] {
        assert_eq!(plain[k], gz[k], "{k}");
    }
    assert_eq!(plain["input"]["events"], gz["input"]["events"]);
    assert_eq!(
        plain["incidents"].as_array().unwrap().len(),
        gz["incidents"].as_array().unwrap().len()
    );
    // --from/--to: the bulk export (07:53:32–07:53:44) is inside one window, not another.
    let inside = report(
        &["--from", "2026-11-28T07:53:00Z", "--to", "2026-11-28T07:54"],
        &[&events],
        &d,
    );
    assert!(inside["input"]["events"].as_u64().unwrap() > 0);
    assert!(inside["input"]["events_outside_range"].as_u64().unwrap() > 0);
    assert!(inside["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["rule"] == "bulk_export"));
    let before = report(&["--to", "2026-11-28"], &[&events], &d);
    assert_eq!(before["input"]["events"], 0);
    assert!(before["incidents"].as_array().unwrap().is_empty());
    // --entity: only WORKSTATION1's own events.
    let ent = report(&["--entity", "ae:WORKSTATION1"], &[&events], &d);
    assert!(ent["input"]["events_other_entity"].as_u64().unwrap() > 0);
    assert!(ent["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["entity_id"] == "WORKSTATION1"));
    // --study: the trail on stdout, nothing written.
    let out = pacstap()
        .args(["report", "--study", "1.2.826.0.1.3680043.10.1234.20.1"])
        .arg(&events)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("study 1.2.826.0.1.3680043.10.1234.20.1: first 2026-11-28T07:53:"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("C-MOVE")
            && l.contains("ORTHANC@10.20.0.10 -> STORESCP")
            && l.contains("by WORKSTATION1@10.20.0.30")),
        "{text}"
    );
    assert!(text.contains("incident ") && text.contains("bulk_export ae:WORKSTATION1"));
    // Bad usage is exit 2.
    let bad = pacstap()
        .args(["report", "--from", "yesterday"])
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn wire_strings_are_escaped_in_html_terminal_and_csv() {
    let d = tmp("escape");
    let line = |ae: &str, user: &str| {
        format!(
            r#"{{"timestamp":"2026-11-28T07:00:00.000001Z","flow_id":1,"event_type":"dicom","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":104,"dicom":{{"type":"command","calling_ae":{},"called_ae":"=cmd|' /C calc'!A0","user":{},"command":"C-STORE","direction":"toserver","dataset_bytes":10,"study_instance_uids":["1.2.3"],"status":"0x0000"}}}}"#,
            serde_json::to_string(ae).unwrap(),
            serde_json::to_string(user).unwrap()
        )
    };
    let ev = d.join("e.jsonl");
    std::fs::write(
        &ev,
        format!("{}\nnot json\n", line("<script>alert(1)</script>", "x\u{1b}[2Jy")),
    )
    .unwrap();
    let j = report(&[], &[&ev], &d);
    assert_eq!(j["input"]["skipped_lines"], 1);
    let html = std::fs::read_to_string(d.join("o.html")).unwrap();
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;@10.0.0.1"));
    assert!(!html.contains('\u{1b}'));
    let csv = std::fs::read_to_string(d.join("o-ledger.csv")).unwrap();
    assert!(csv.contains("\"'=cmd|"), "{csv}");
    let out = pacstap()
        .args(["report", "--study", "1.2.3"])
        .arg(&ev)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}') && text.contains("x\\x1b[2Jy"), "{text}");
}

/// Headless Chromium opens the report of a bundled scenario: the rendered page's text names
/// the incident, a study and the encryption finding, and its screenshot is not blank.
#[test]
fn chromium_renders_the_report() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("SKIPPED chromium_renders_the_report: no chromium installed (apt-get install chromium)");
        return;
    };
    let d = scenario("chromium");
    let url = format!("file://{}", d.join("r.html").display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
    ];
    let profile = format!("--user-data-dir={}", d.join("profile").display());
    let dom = Command::new(chromium)
        .args(base)
        .arg(&profile)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&dom.stderr).into_owned();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("bulk_export — ae WORKSTATION1"),
        "rendered DOM lacks the incident card: {} bytes of DOM; {err}",
        dom.len()
    );
    assert!(
        dom.contains("1.2.826.0.1.3680043.10.1234.20.1"),
        "rendered DOM lacks a study row"
    );
    assert!(dom.contains("Encryption in transit: DICOM in clear"));
    assert!(dom.contains("<svg"), "charts are inline SVG");
    let shot = |html: &Path, png: &Path| {
        let _ = Command::new(chromium)
            .args(base)
            .arg(&profile)
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1280,2000")
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap();
        std::fs::metadata(png).map(|m| m.len()).unwrap_or(0)
    };
    std::fs::write(d.join("blank.html"), "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank = shot(&d.join("blank.html"), &d.join("blank.png"));
    let page = shot(&d.join("r.html"), &d.join("page.png"));
    assert!(blank > 0, "chromium wrote no screenshot");
    // A blank 1280x2000 page compresses to a few kB; the report's text and tables to far more.
    assert!(
        page > 20 * blank.max(1000),
        "report screenshot {page} bytes vs blank {blank}"
    );
}

/// Issue 13 scale clause, small: a 10^4-line events file made by `scripts/report-scale-events`
/// from a scenario replay (each copy a day later, with its own studies, flows and incidents;
/// gzip-compressed) gives a report whose counts match what the file itself holds.
#[test]
fn report_of_ten_thousand_scaled_events_counts_every_study_and_incident() {
    let d = scenario("scale");
    let big = d.join("big.jsonl.gz");
    let st = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/report-scale-events"))
        .arg(d.join("events.jsonl"))
        .arg("10000")
        .arg(&big)
        .status()
        .expect("python3 runs scripts/report-scale-events");
    assert!(st.success());
    let plain = d.join("big.jsonl");
    let gz = Command::new("gzip").arg("-dkc").arg(&big).output().unwrap();
    assert!(gz.status.success());
    std::fs::write(&plain, &gz.stdout).unwrap();
    // What the file holds, counted here without the report's code.
    let mut alerts = 0u64;
    let mut incidents = std::collections::BTreeSet::new();
    let mut studies = std::collections::BTreeSet::new();
    let text = String::from_utf8(gz.stdout).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["event_type"].as_str().unwrap() {
            "alert" => {
                alerts += 1;
                incidents.insert(v["alert"]["incident_id"].as_str().unwrap().to_string());
            }
            "dicom"
                if v["dicom"]["type"] == "command"
                    && matches!(
                        v["dicom"]["command"].as_str(),
                        Some("C-STORE" | "C-MOVE" | "C-GET" | "C-FIND")
                    ) =>
            {
                for s in v["dicom"]["study_instance_uids"].as_array().into_iter().flatten() {
                    studies.insert(s.as_str().unwrap().to_string());
                }
            }
            "http"
                if matches!(
                    v["http"]["dicomweb"]["service"].as_str(),
                    Some("WADO-RS" | "WADO-URI" | "STOW-RS" | "QIDO-RS")
                ) =>
            {
                if let Some(s) = v["http"]["dicomweb"]["study_instance_uid"].as_str() {
                    studies.insert(s.to_string());
                }
            }
            _ => {}
        }
    }
    assert_eq!(text.lines().count(), 10_000);
    assert!(
        incidents.len() > 10,
        "copies make their own incidents: {}",
        incidents.len()
    );
    let j = report(&[], &[&big], &d);
    let input = &j["input"];
    assert_eq!(
        (input["lines"].as_u64(), input["events"].as_u64()),
        (Some(10_000), Some(10_000))
    );
    assert_eq!(input["skipped_lines"], 0);
    assert_eq!(input["by_type"]["alert"].as_u64(), Some(alerts));
    assert_eq!(
        input["by_type"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        10_000
    );
    assert_eq!(j["incidents"].as_array().unwrap().len(), incidents.len());
    assert_eq!(j["studies_total"].as_u64(), Some(studies.len() as u64));
    assert_eq!(j["studies_untracked"], 0);
    // The copies span weeks: the timeline is per day.
    assert_eq!(j["timeline"]["bin"], "day");
    let csv = std::fs::read_to_string(d.join("o-ledger.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, j["ledger_rows_total"].as_u64().unwrap() + 1);
    // The plain file gives the same report as the gzip one.
    let p = report(&[], &[&plain], &d);
    for k in ["studies_total", "ledger_rows_total"] {
        assert_eq!(p[k], j[k], "{k}");
    }
    let html = std::fs::metadata(d.join("o.html")).unwrap().len();
    assert!(html < 5_000_000, "HTML {html} bytes");
}

/// An events file written with `--alerts-only` has no event to answer the wire checklist
/// from: its items say so (`not_knowable`) instead of `ok`.
#[test]
fn an_alerts_only_events_file_says_the_checklist_needs_the_full_events() {
    let d = tmp("alertsonly");
    let out = pacstap()
        .args(["replay", "-q", "--alerts-only", "--config"])
        .arg(sample("scenarios/pacstap.toml"))
        .arg("--events")
        .arg(d.join("alerts.jsonl"))
        .arg(sample("scenarios/bulk-export-move.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = report(&[], &[&d.join("alerts.jsonl")], &d);
    let items = j["checklist"].as_array().unwrap();
    let item = |id: &str| items.iter().find(|f| f["id"] == id).unwrap();
    assert_eq!(item("dicom_in_clear")["status"], "not_knowable");
    assert!(item("dicom_in_clear")["summary"]
        .as_str()
        .unwrap()
        .contains("--alerts-only"));
    assert_ne!(item("alerting")["status"], "not_knowable");
    let html = std::fs::read_to_string(d.join("o.html")).unwrap();
    assert!(html.contains("alert lines only"));
}
