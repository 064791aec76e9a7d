//! The command line as users meet it: exit codes, messages, where events and the summary go
//! (CONTRACT §1).

mod common;
use common::sample;
use std::process::Command;

fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

#[test]
fn events_go_to_the_file_and_the_summary_to_stderr() {
    let dir = std::env::temp_dir().join(format!("pacstap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events.jsonl");
    let r = pacstap()
        .arg("replay")
        .arg("--events")
        .arg(&out)
        .arg(sample("move.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("associations           2 (released 2)"), "{stderr}");
    assert!(stderr.contains("WORKSTATION1 → ORTHANC"), "{stderr}");
    assert!(stderr.contains("move destinations      STORESCP (1)"), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    // 3 C-STORE + 1 C-MOVE + 2 associations.
    assert_eq!(text.lines().count(), 6);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["event_type"], "dicom");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn events_default_to_stdout_and_alerts_only_filters_them() {
    let r = pacstap()
        .args(["replay", "-q"])
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&r.stdout).lines().count(), 2);
    assert!(r.stderr.is_empty(), "-q prints no summary");
    let r = pacstap()
        .args(["replay", "-q", "--alerts-only"])
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stdout.is_empty());
}

#[test]
fn unreadable_input_exits_1_naming_the_file() {
    let r = pacstap()
        .args(["replay", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("/nonexistent/capture.pcap"), "{stderr}");

    let r = pacstap().arg("replay").arg(sample("README.md")).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("README.md"), "{stderr}");
}

#[test]
fn damaged_input_is_decoded_up_to_the_damage_with_a_warning() {
    let r = pacstap()
        .args(["replay"])
        .arg(sample("store-truncated.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("WARNING") && stderr.contains("store-truncated.pcap"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&r.stdout)
            .lines()
            .filter(|l| l.contains("C-STORE"))
            .count(),
        7
    );
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(pacstap().arg("replay").output().unwrap().status.code(), Some(2));
    assert_eq!(
        pacstap()
            .args(["replay", "--no-such-flag", "x.pcap"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    assert_eq!(pacstap().arg("frobnicate").output().unwrap().status.code(), Some(2));
}
