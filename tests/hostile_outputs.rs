//! Issue #10, outputs and operations under attack, through the real binary: writes never
//! follow links, wire strings cannot drive the investigator's terminal, outputs are checked
//! before any packet is read, data loss is never quiet, and thousands of inputs do not
//! exhaust file descriptors.

mod common;
use common::sample;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

/// A fresh directory for one test.
fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pacstap-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn stderr(r: &Output) -> String {
    String::from_utf8_lossy(&r.stderr).into_owned()
}

/// A file someone else wants pacstap to write into: readable by all, with known content.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, b"untouched").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o644)).unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(std::fs::read(v).unwrap(), b"untouched", "{} was written", v.display());
    assert_eq!(mode(v), 0o644);
}

#[test]
fn a_link_planted_at_the_state_temporary_is_never_written_through() {
    let d = tempdir("state");
    let v = victim(&d);
    let state = d.join("s.json");
    symlink(&v, d.join("s.json.tmp")).unwrap();
    // `capture` checks the state directory before opening the interface: the check itself
    // used to truncate whatever `s.json.tmp` pointed to.
    let r = pacstap()
        .args([
            "capture",
            "-i",
            "pacstap-no-such-if0",
            "--metrics-listen",
            "off",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert_ne!(r.status.code(), Some(0));
    assert_untouched(&v);
    // replay saves the learned state at the end: a new private file, the link's target intact.
    let r = pacstap()
        .args(["replay", "-q", "--state"])
        .arg(&state)
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_untouched(&v);
    assert_eq!(mode(&state), 0o600);
    let learned: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(learned.get("version").is_some(), "{learned}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_link_at_a_predictable_evidence_name_is_refused_naming_it() {
    let d = tempdir("evidence");
    let first = d.join("first");
    let r = pacstap()
        .args(["replay", "-q", "--alerts-only", "--evidence-dir"])
        .arg(&first)
        .arg(sample("dicomweb.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let names: Vec<_> = std::fs::read_dir(&first)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!names.is_empty());
    // The same capture names the same files: plant links there, to a file all can read.
    let second = d.join("second");
    std::fs::create_dir_all(&second).unwrap();
    let v = victim(&d);
    for n in &names {
        symlink(&v, second.join(n)).unwrap();
    }
    let r = pacstap()
        .args(["replay", "-q", "--alerts-only", "--evidence-dir"])
        .arg(&second)
        .arg(sample("dicomweb.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = stderr(&r);
    assert!(
        err.contains(&second.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    assert_untouched(&v);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn events_files_are_private_and_never_written_through_a_link() {
    let d = tempdir("events");
    let events = d.join("events.jsonl");
    std::fs::write(&events, b"old\n").unwrap();
    std::fs::set_permissions(&events, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = pacstap()
        .args(["replay", "-q", "--events"])
        .arg(&events)
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert_eq!(mode(&events), 0o600, "events carry user names");
    let text = std::fs::read_to_string(&events).unwrap();
    // The C-ECHO, its association and the dicom_in_clear posture finding; not "old".
    assert_eq!(text.lines().count(), 3, "replaced, not appended: {text}");
    assert!(!text.contains("old\n"), "replaced, not appended: {text}");

    let v = victim(&d);
    let link = d.join("link.jsonl");
    symlink(&v, &link).unwrap();
    let r = pacstap()
        .args(["replay", "-q", "--events"])
        .arg(&link)
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = stderr(&r);
    assert!(
        err.contains(&link.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_untouched(&v);
    std::fs::remove_dir_all(&d).ok();
}

/// `admin:admin-pass` in the real DICOMweb capture's Basic-auth header becomes a user name
/// carrying an OSC 52 clipboard write (ESC ] 52 ; c ; SGk= BEL): same length, so the TCP
/// stream stays consistent.
#[test]
fn terminal_controls_in_a_basic_auth_user_name_are_printed_escaped() {
    let d = tempdir("osc52");
    let bytes = std::fs::read(sample("dicomweb.pcap")).unwrap();
    let (from, to) = (b"YWRtaW46YWRtaW4tcGFzcw==", b"G101MjtjO1NHaz0HOnB3IQ==");
    let mut mutated = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut replaced = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            mutated.extend_from_slice(to);
            i += from.len();
            replaced += 1;
        } else {
            mutated.push(bytes[i]);
            i += 1;
        }
    }
    assert_eq!(replaced, 2);
    let pcap = d.join("osc52.pcap");
    std::fs::write(&pcap, &mutated).unwrap();
    // The bytes are swapped in place, TCP checksums left as they were: a real sender's would be
    // right, so checksum validation is off for this replay.
    let r = pacstap()
        .args(["replay", "--checksum", "off"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    // The events keep the user name as it was (JSON escapes it).
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.contains(r#""user":"\u001b]52;c;SGk=\u0007""#), "{stdout}");
    let err = stderr(&r);
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}'),
        "raw controls on stderr: {err:?}"
    );
    assert!(err.contains(r"\x1b]52;c;SGk=\x07"), "{err}");
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "only line breaks may be control characters: {err:?}"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn quiet_still_reports_a_corrupt_state() {
    let d = tempdir("quiet");
    let state = d.join("s.json");
    std::fs::write(&state, b"{ not json").unwrap();
    let r = pacstap()
        .args(["replay", "-q", "--state"])
        .arg(&state)
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let err = stderr(&r);
    assert!(err.contains("corrupt") && err.contains("set aside"), "{err}");
    assert!(!err.contains("summary"), "-q: no summary: {err}");
    std::fs::remove_dir_all(&d).ok();
}

/// Each output is checked before the first packet: exit 2, one line naming the path and the
/// reason once, and no events.
#[test]
fn outputs_are_checked_before_any_packet_and_the_reason_is_said_once() {
    let d = tempdir("outputs");
    let file = d.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let missing = d.join("missing");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--events".into(), missing.join("e.jsonl").display().to_string()],
            missing.join("e.jsonl").display().to_string(),
        ),
        (
            vec!["--state".into(), missing.join("s.json").display().to_string()],
            missing.display().to_string(),
        ),
        (
            vec!["--evidence-dir".into(), file.join("ev").display().to_string()],
            file.join("ev").display().to_string(),
        ),
        (
            vec!["--metrics-listen".into(), "not-an-address".into()],
            "not-an-address".into(),
        ),
    ];
    for (args, named) in cases {
        let r = pacstap()
            .arg("replay")
            .args(&args)
            .arg(sample("echo.pcap"))
            .output()
            .unwrap();
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(r.stdout.is_empty(), "{args:?}: no packet was read");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(&named), "{args:?}: {err}");
        for reason in ["No such file or directory", "Not a directory"] {
            assert!(err.matches(reason).count() <= 1, "{args:?}: said twice: {err}");
        }
    }
    // Nothing was created for the failed runs.
    assert!(!missing.exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn one_unreadable_input_among_several_is_skipped_and_the_exit_status_says_partial() {
    let alone = pacstap()
        .args(["replay", "-q"])
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(0));
    let r = pacstap()
        .args(["replay", "-q", "/nonexistent/first.pcap"])
        .arg(sample("echo.pcap"))
        .arg(sample("README.md"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "partial: {}", stderr(&r));
    assert_eq!(r.stdout, alone.stdout, "the readable input was replayed in full");
    let err = stderr(&r);
    assert!(
        err.contains("/nonexistent/first.pcap") && err.contains("README.md"),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // And in --help.
    let help = pacstap().args(["replay", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit status") && help.contains("still"), "{help}");
}

/// Splits a legacy pcap into `n` files of consecutive records (a rotated capture).
fn split_pcap(src: &Path, dir: &Path, n: usize) -> Vec<PathBuf> {
    let bytes = std::fs::read(src).unwrap();
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    let (header, mut rest) = bytes.split_at(24);
    let mut records = Vec::new();
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (rec, tail) = rest.split_at(16 + caplen);
        records.push(rec);
        rest = tail;
    }
    assert!(records.len() >= n, "{} records", records.len());
    let per = records.len().div_ceil(n);
    let mut paths = Vec::new();
    for (i, chunk) in records
        .chunks(per.max(1))
        .chain(std::iter::repeat_n(&[][..], n))
        .take(n)
        .enumerate()
    {
        let mut out = header.to_vec();
        for r in chunk {
            out.extend_from_slice(r);
        }
        let p = dir.join(format!("part-{i:05}.pcap"));
        std::fs::write(&p, out).unwrap();
        paths.push(p);
    }
    paths
}

/// 1,500 rotated files under `ulimit -n 256` (opening them all at once fails with EMFILE):
/// the same events as the single file they were cut from.
#[test]
fn fifteen_hundred_files_replay_under_a_descriptor_limit_of_256() {
    let d = tempdir("many");
    let whole = sample("scenarios/benign-modality-store.pcap");
    let parts = split_pcap(&whole, &d, 1500);
    let single = pacstap().args(["replay", "-q"]).arg(&whole).output().unwrap();
    assert_eq!(single.status.code(), Some(0));
    assert!(!single.stdout.is_empty());
    let list = d.join("list");
    std::fs::write(
        &list,
        parts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let script = format!(
        "ulimit -n 256 || exit 99; exec \"$0\" replay -q $(cat '{}')",
        list.display()
    );
    let r = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pacstap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(stderr(&r).is_empty(), "{}", stderr(&r));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&single.stdout),
        "same events as the merged single file"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// `capture` checks its outputs before it opens the interface (so here, where the interface
/// does not exist, the output's error is the one reported, with exit 2).
#[test]
fn capture_checks_its_outputs_before_opening_the_interface() {
    let d = tempdir("capture");
    let v = victim(&d);
    let link = d.join("events.jsonl");
    symlink(&v, &link).unwrap();
    let file = d.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let cases: Vec<(Vec<String>, String, &str)> = vec![
        (
            vec!["--events".into(), link.display().to_string()],
            link.display().to_string(),
            "symbolic link",
        ),
        (
            vec![
                "--state".into(),
                "none".into(),
                "--evidence-dir".into(),
                file.join("ev").display().to_string(),
            ],
            file.join("ev").display().to_string(),
            "Not a directory",
        ),
        (
            vec!["--state".into(), d.join("missing/s.json").display().to_string()],
            d.join("missing").display().to_string(),
            "does not exist",
        ),
    ];
    for (args, named, reason) in cases {
        let r = pacstap()
            .args(["capture", "-i", "pacstap-no-such-if0", "--metrics-listen", "off"])
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&named) && err.contains(reason), "{args:?}: {err}");
        assert_eq!(err.matches(reason).count(), 1, "{args:?}: {err}");
        assert!(!err.contains("pacstap-no-such-if0"), "{args:?}: outputs first: {err}");
    }
    assert_untouched(&v);
    // With good outputs, the events file is created private before the interface fails.
    let events = d.join("new.jsonl");
    let r = pacstap()
        .args([
            "capture",
            "-i",
            "pacstap-no-such-if0",
            "--metrics-listen",
            "off",
            "--state",
            "none",
            "--events",
        ])
        .arg(&events)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    assert!(stderr(&r).contains("pacstap-no-such-if0"), "{}", stderr(&r));
    assert_eq!(mode(&events), 0o600);
    std::fs::remove_dir_all(&d).ok();
}
