//! The end-of-run summary as an investigator reads it (issue 14, "Help and summary"), and the
//! one shape of pacstap's warnings and errors: the real binary on bundled samples, each line
//! checked against the events of the same run (and tshark where it is installed).

mod common;
use common::sample;
use serde_json::Value;
use std::process::{Command, Output};

fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

/// `replay --events - …`: the summary (stderr) and the events (stdout, parsed).
fn replay(config: Option<&str>, pcap: &str) -> (String, Vec<Value>) {
    let mut cmd = pacstap();
    cmd.args(["replay", "--events", "-"]);
    if let Some(c) = config {
        cmd.arg("--config").arg(sample(c));
    }
    let r = cmd.arg(sample(pcap)).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let events = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (String::from_utf8_lossy(&r.stderr).into_owned(), events)
}

/// The lines of one summary section: from the line starting `title` to the next unindented one.
fn section<'a>(summary: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = summary.lines().skip_while(|l| !l.starts_with(title));
    let first = lines.next().into_iter();
    first.chain(lines.take_while(|l| l.starts_with(' '))).collect()
}

fn width_ok(summary: &str) {
    for l in summary.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l:?}\n{summary}");
    }
}

/// The bulk-export scenario (18 studies C-MOVEd by WORKSTATION1 to STORESCP): the exporter
/// table has its row, and its numbers are the alert's `volume`.
#[test]
fn exporter_table_of_a_bulk_export_agrees_with_the_alert() {
    let (summary, events) = replay(Some("scenarios/pacstap.toml"), "scenarios/bulk-export-move.pcap");
    let table = section(&summary, "Exports");
    assert_eq!(
        table,
        [
            "Exports (who → where)",
            "   studies instances     bytes  protocol  who → where",
            "        18        18   48.7 kB  C-MOVE    WORKSTATION1 → STORESCP (10.20.0.20)",
        ],
        "{summary}"
    );
    let volume = events
        .iter()
        .rev()
        .find(|e| e["alert"]["rule"] == "bulk_export")
        .map(|e| &e["alert"]["volume"])
        .expect("a bulk_export alert");
    assert_eq!(
        (volume["studies"].as_u64(), volume["instances"].as_u64()),
        (Some(18), Some(18))
    );
    let bytes = volume["bytes"].as_u64().unwrap();
    assert_eq!(pacstap_output::human_bytes(bytes), "48.7 kB");
    // The AE pairs name their addresses; the alert is listed, so no "Alerts: none".
    assert!(
        summary.contains("        3       18  WORKSTATION1 (10.20.0.30) → ORTHANC (10.20.0.10)\n"),
        "{summary}"
    );
    assert!(
        summary.contains("\n  [high] bulk_export — ae WORKSTATION1 (count 18)\n"),
        "{summary}"
    );
    assert!(!summary.contains("Alerts: none"), "{summary}");
    // Counts only in the table: no Study Instance UID (they are in the alert's lines).
    assert!(table.iter().all(|l| !l.contains(common::UID_ROOT)), "{table:?}");
    width_ok(&summary);
}

/// A C-GET: the data went back to the requester, so its address is the destination; the
/// instances are the C-STOREs flowing back, the bytes their data sets.
#[test]
fn exporter_table_of_a_c_get_names_the_requesting_host() {
    let (summary, events) = replay(None, "get.pcap");
    let stores: Vec<u64> = events
        .iter()
        .filter(|e| e["dicom"]["command"] == "C-STORE" && e["dicom"]["direction"] == "toclient")
        .map(|e| e["dicom"]["dataset_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(stores.len(), 3);
    assert_eq!(pacstap_output::human_bytes(stores.iter().sum()), "26.6 kB");
    assert_eq!(
        section(&summary, "Exports").get(2).copied(),
        Some("         1         3   26.6 kB  C-GET     WORKSTATION1 → 10.20.0.30"),
        "{summary}"
    );
    width_ok(&summary);
}

/// HTTPS volume per client: the TLS event's bytes both ways, with its SNI.
#[test]
fn https_volume_per_client_with_its_server_name() {
    let (summary, events) = replay(None, "https-tls12.pcap");
    let tls: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "tls").collect();
    assert_eq!(tls.len(), 1);
    let bytes = tls[0]["tls"]["bytes_toserver"].as_u64().unwrap() + tls[0]["tls"]["bytes_toclient"].as_u64().unwrap();
    assert_eq!(bytes, 217_846);
    let tls_section = section(&summary, "TLS");
    assert!(
        tls_section.ends_with(&[
            "  HTTPS volume by client (bytes both ways, connections, server names)",
            "     217.8 kB     1  10.20.0.30: pacs.example.test (1)",
        ]),
        "{summary}"
    );
    assert!(summary.contains("\nAlerts: none\n"), "{summary}");
    assert!(summary.contains("\nExports: none seen"), "{summary}");
    // Durations in human units: this capture spans 13 ms.
    assert!(
        summary.contains("  capture time           13 ms (2026-11-28 07:09:54 → 07:09:54 UTC)\n"),
        "{summary}"
    );
    width_ok(&summary);
}

/// tshark's count of TCP streams whose first packet is not a SYN (`None` without tshark).
fn tshark_not_syn_first(pcap: &str) -> Option<usize> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(sample(pcap))
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if let [stream, syn, _] = f[..] {
            if !stream.is_empty() && seen.insert(stream.to_owned()) && syn != "1" {
                n += 1;
            }
        }
    }
    Some(n)
}

/// A capture that begins inside the C-MOVE association: the flow without a handshake is
/// counted as picked up mid-stream (as tshark sees it: its first packet is no SYN), and the
/// association whose A-ASSOCIATE-RQ was missed (`request_seen: false` in its event) is said
/// to have joined mid-stream.
#[test]
fn mid_stream_count_agrees_with_the_events_and_tshark() {
    let (summary, events) = replay(None, "move-midstream.pcap");
    assert!(
        summary.contains("\n  flows                  2 (1 picked up mid-stream)\n"),
        "{summary}"
    );
    let joined = events
        .iter()
        .filter(|e| e["dicom"]["type"] == "association" && e["dicom"]["request_seen"] == false)
        .count();
    assert_eq!(joined, 1);
    assert!(
        summary.contains("\n  associations           2 (released 2, 1 joined mid-stream)\n"),
        "{summary}"
    );
    if let Some(n) = tshark_not_syn_first("move-midstream.pcap") {
        assert_eq!(n, 1, "tshark");
    } else {
        eprintln!("tshark not installed: cross-check skipped");
    }
    // A SPAN port that reorders (the SYN-ACK copied before the SYN): 20 streams start with a
    // SYN-ACK, but each handshake is there, so none is mid-stream.
    let (summary, _) = replay(None, "mirror/move20.span-1ms.pcap");
    assert!(
        summary.contains("\n  flows                  22 (0 picked up mid-stream)\n"),
        "{summary}"
    );
    if let Some(n) = tshark_not_syn_first("mirror/move20.span-1ms.pcap") {
        assert_eq!(n, 0, "tshark");
    }
}

/// One unreadable and one damaged input: the other is replayed, and each problem is one line
/// of the one shape `pacstap: warning: <subject>: <reason>` (with `-q` too: data loss is never
/// quiet); the exit status says the run was partial.
#[test]
fn warnings_of_unreadable_and_damaged_inputs_have_one_shape() {
    let missing = std::env::temp_dir().join(format!("pacstap-summary-{}-missing.pcap", std::process::id()));
    for quiet in [false, true] {
        let mut cmd = pacstap();
        cmd.args(["replay", "--events", "/dev/null"]);
        if quiet {
            cmd.arg("-q");
        }
        let r: Output = cmd.arg(&missing).arg(sample("store-truncated.pcap")).output().unwrap();
        assert_eq!(r.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&r.stderr);
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("pacstap: ")).collect();
        assert_eq!(warnings.len(), 2, "{stderr}");
        assert_eq!(
            warnings[0],
            format!(
                "pacstap: warning: input: cannot open capture file {}: No such file or directory (os error 2) (not replayed)",
                missing.display()
            ),
            "{stderr}"
        );
        let damaged = format!(
            "pacstap: warning: {}: damaged at byte ",
            sample("store-truncated.pcap").display()
        );
        assert!(warnings[1].starts_with(&damaged), "{stderr}");
        assert!(warnings[1].ends_with("(read up to there)"), "{stderr}");
        // No other shape of warning is left (the summary had its own `WARNING:` lines).
        assert!(!stderr.contains("WARNING"), "{stderr}");
        if quiet {
            assert_eq!(stderr.lines().count(), 2, "{stderr}");
        } else {
            assert!(stderr.starts_with("── pacstap replay summary ──\n"), "{stderr}");
        }
    }
}

/// Errors have the warnings' shape: `pacstap: error: <subject>: <reason>`, said once.
#[test]
fn errors_have_one_shape() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["replay", "--metrics-listen", "not-an-address", "x.pcap"],
            "pacstap: error: --metrics-listen: cannot serve metrics on not-an-address: ",
        ),
        (
            &["replay", "--config", "/nonexistent/pacstap.toml", "x.pcap"],
            "pacstap: error: /nonexistent/pacstap.toml: ",
        ),
        (
            &["replay", "--report", "r.html", "x.pcap"],
            "pacstap: error: --report: needs --events PATH",
        ),
    ];
    for (args, want) in cases {
        let r = pacstap().args(*args).output().unwrap();
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
    }
}
