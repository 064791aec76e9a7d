//! The command line as users meet it: exit codes, messages, where events and the summary go
//! (CONTRACT §1).

mod common;
use common::sample;
use std::path::Path;
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
    assert!(
        stderr.contains("WORKSTATION1 (10.20.0.30) → ORTHANC (10.20.0.10)"),
        "{stderr}"
    );
    assert!(stderr.contains("move destinations      STORESCP (1)"), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    // 3 C-STORE + 1 C-MOVE + 2 associations, and one `dicom_in_clear` posture finding per
    // server (ORTHANC and the move destination).
    let types: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event_type"].to_string())
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "\"dicom\"").count(), 6, "{text}");
    assert_eq!(types.iter().filter(|t| *t == "\"posture\"").count(), 2, "{text}");
    assert_eq!(types.len(), 8, "{text}");
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
    // The C-ECHO, its association, and the dicom_in_clear posture finding.
    assert_eq!(String::from_utf8_lossy(&r.stdout).lines().count(), 3);
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
        stderr
            .lines()
            .any(|l| l.starts_with("pacstap: warning: ") && l.contains("store-truncated.pcap: damaged at byte")),
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

#[test]
fn config_check_prints_effective_settings_or_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("pacstap-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[rules.bulk_export]\nthreshold = 40\n").unwrap();
    let r = pacstap().args(["config", "check"]).arg(&good).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("threshold = 40"), "{out}");
    // Defaults are printed too: the seed threshold of another rule.
    assert!(out.contains("[rules.login_failures_user]"), "{out}");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[networks]\ninternal = [\"10.0.0.0/8\"]\n\n[rules.bulk_export]\nthreshhold = 40\n",
    )
    .unwrap();
    let r = pacstap().args(["config", "check"]).arg(&bad).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("threshhold") && err.contains("line 5"), "{err}");
    // The same config given to replay is bad usage too, before any input is read.
    let r = pacstap()
        .args(["replay", "--config"])
        .arg(&bad)
        .arg(sample("echo.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14: `config check` ends with a verdict: `OK`, or every error and warning with its line
/// (errors exit 2; the same config is refused by replay).
#[test]
fn config_check_ends_with_ok_or_the_list() {
    let dir = std::env::temp_dir().join(format!("pacstap-cfg-verdict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inv = "[[inventory.users]]\nname = \"rad1\"\n";
    let cases: &[(&str, &str, i32, &[&str])] = &[
        ("ok", "[rules.bulk_export]\nthreshold = 40\n", 0, &["# OK"]),
        (
            "warn",
            "[users]\nadmins = [\"root\"]\n",
            0,
            &["warning: users.admins[0] at line 4", "# OK with 1 warning(s)"],
        ),
        (
            "host",
            "[[inventory.users]]\nname = \"rad2\"\ndevices = [\"10.20.30.999\", \"ws1.example\"]\n",
            2,
            &[
                "error: inventory.users[1].devices[0] at line 5",
                "error: inventory.users[1].devices[1] at line 5",
                "is a host name",
                "# 2 error(s), 0 warning(s)",
            ],
        ),
        (
            "dup",
            "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n[[inventory.dicom]]\nae = \"PACS\"\nip = [\"10.0.0.6\", \"fd00::6\"]\n",
            2,
            &["error: inventory.dicom[1].ae at line 7", "listed twice with different addresses"],
        ),
    ];
    for (name, body, code, want) in cases {
        let f = dir.join(format!("{name}.toml"));
        std::fs::write(&f, format!("{inv}{body}")).unwrap();
        let r = pacstap().args(["config", "check"]).arg(&f).output().unwrap();
        let out = String::from_utf8_lossy(&r.stdout);
        assert_eq!(r.status.code(), Some(*code), "{name}: {out}");
        for w in *want {
            assert!(out.contains(w), "{name}: {w:?} missing in\n{out}");
        }
        // The verdict is the last line.
        let last = out.lines().last().unwrap_or("");
        assert!(last.starts_with("# OK") || last.contains("error(s)"), "{name}: {last}");
        if *code == 2 {
            let r = pacstap()
                .args(["replay", "--config"])
                .arg(&f)
                .arg(sample("echo.pcap"))
                .output()
                .unwrap();
            assert_eq!(r.status.code(), Some(2), "{name}: replay refuses it");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14: the second replay with the same `--state` drops `unknown_destination`; `state
/// show` says why (the destination is remembered, with when), `state forget` takes it back and
/// the third replay alerts again. `--state none` keeps nothing and creates no file.
#[test]
fn state_show_explains_and_forget_takes_back() {
    let dir = std::env::temp_dir().join(format!("pacstap-state-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcap-samples/scenarios");
    let st = dir.join("st.json");
    let unknown = |state: &Path| {
        let r = pacstap()
            .args(["replay", "-q", "--alerts-only", "--config"])
            .arg(scen.join("pacstap.toml"))
            .arg("--state")
            .arg(state)
            .arg(scen.join("unknown-destination.pcap"))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout)
            .matches("\"rule\":\"unknown_destination\"")
            .count()
    };
    assert_eq!(unknown(&st), 4);
    assert_eq!(unknown(&st), 0, "remembered: alerted once per destination, ever");
    let show = |args: &[&str]| {
        let r = pacstap()
            .args(["state", "show", "--state"])
            .arg(&st)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    let all = show(&[]);
    for want in [
        "format version 1",
        "destinations already alerted on (unknown_destination fires once per destination): 2",
        "ae:EXTPACS  first seen 2026-11-28T07:54:09.687377Z",
        "ip:198.51.100.7  first seen 2026-11-28T07:54:13.072663Z",
        "ae:EXTPACS  last seen 2026-11-28T07:54:09.779889Z\n  answers at: 198.51.100.7",
    ] {
        assert!(all.contains(want), "{want:?} missing in\n{all}");
    }
    let one = show(&["--entity", "ip:198.51.100.7"]);
    assert!(one.contains("entities: 0") && !one.contains("EXTPACS"), "{one}");
    for e in ["ae:EXTPACS", "ip:198.51.100.7"] {
        let r = pacstap()
            .args(["state", "forget", "--state"])
            .arg(&st)
            .args(["--entity", e])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert!(show(&[]).contains("once per destination): 0"));
    assert_eq!(unknown(&st), 4, "forgotten: alerted again");
    // --older-than counts back from the newest packet in the state (a 4 s capture: nothing is 1 h old).
    let r = pacstap()
        .args(["state", "forget", "--state"])
        .arg(&st)
        .args(["--older-than", "1h"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&r.stderr).contains("forgot 0 entities and 0 destinations"));
    // Bad usage is exit 2; a missing file is exit 1 naming it.
    for bad in [&["--entity", "host:x"][..], &[][..], &["--older-than", "soon"][..]] {
        let r = pacstap()
            .args(["state", "forget", "--state"])
            .arg(&st)
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2), "{bad:?}");
    }
    let r = pacstap()
        .args(["state", "show", "--state"])
        .arg(dir.join("nope.json"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("nope.json"));
    // `none` is no state, not a file named `none`.
    assert_eq!(unknown(Path::new("none")), 4);
    assert_eq!(unknown(Path::new("none")), 4);
    assert!(!dir.join("none").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14: every output is checked before the first packet is read (nothing on stdout, where
/// events would go), the error names the path and the reason once, and it is bad usage (2).
#[test]
fn bad_outputs_and_usage_exit_2_before_any_packet() {
    let dir = std::env::temp_dir().join(format!("pacstap-outputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let f = file.display().to_string();
    let echo = sample("echo.pcap").display().to_string();
    let events = d("events.jsonl");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["replay".into(), "--events".into(), d("missing/e.jsonl"), echo.clone()],
            vec![
                format!("cannot write events file {}", d("missing/e.jsonl")),
                "No such file or directory".into(),
            ],
        ),
        (
            vec![
                "replay".into(),
                "--state".into(),
                dir.display().to_string(),
                echo.clone(),
            ],
            vec![format!(
                "cannot keep learned state in {}: it is a directory",
                dir.display()
            )],
        ),
        (
            vec!["replay".into(), "--state".into(), format!("{f}/s.json"), echo.clone()],
            vec![format!("{f} is not a directory")],
        ),
        (
            vec!["replay".into(), "--state".into(), d("missing/s.json"), echo.clone()],
            vec![format!("state directory {} does not exist", d("missing"))],
        ),
        (
            vec!["replay".into(), "--evidence-dir".into(), f.clone(), echo.clone()],
            vec![format!("cannot write evidence in {f}: it is not a directory")],
        ),
        (
            vec!["replay".into(), "--metrics-listen".into(), "foo".into(), echo.clone()],
            vec!["--metrics-listen: cannot serve metrics on foo: invalid socket address".into()],
        ),
        (
            vec![
                "replay".into(),
                "--metrics-listen".into(),
                "127.0.0.1:99999".into(),
                echo.clone(),
            ],
            vec!["invalid port value".into()],
        ),
        (
            vec![
                "replay".into(),
                "--events".into(),
                events.clone(),
                "--report".into(),
                d("missing/r.html"),
                echo.clone(),
            ],
            vec![format!(
                "cannot write report {}: {} is not a directory",
                d("missing/r.html"),
                d("missing")
            )],
        ),
        (vec!["capture".into(), "-i".into(), "".into()], vec!["-i".into()]),
        (
            vec![
                "capture".into(),
                "-i".into(),
                "lo".into(),
                "--metrics-listen".into(),
                "off".into(),
                "--state".into(),
                d("missing/s.json"),
            ],
            vec![format!("state directory {} does not exist", d("missing"))],
        ),
    ];
    for (args, want) in &cases {
        let r = pacstap().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(r.stdout.is_empty(), "{args:?}: no packet read, no event written");
        for w in want {
            assert!(err.contains(w.as_str()), "{args:?}: {w:?} missing in {err}");
            assert_eq!(err.matches(w.as_str()).count(), 1, "{args:?}: said once: {err}");
        }
    }
    // The replay with a bad --report did not run: its events file was never made.
    assert!(!Path::new(&events).exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 14: `replay`, `capture`, `config check` and `state` help each end with examples, and
/// say whether `--events` is overwritten or appended to.
#[test]
fn help_has_examples() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["replay", "--help"],
            &[
                "Examples:\n  pacstap replay capture.pcap",
                "is overwritten (capture appends)",
            ],
        ),
        (
            &["capture", "--help"],
            &[
                "Examples:\n  pacstap capture -i eth1",
                "is appended to (replay overwrites)",
            ],
        ),
        (
            &["config", "check", "--help"],
            &["Examples:\n  pacstap config check", "The TOML config file to check"],
        ),
        (&["state", "show", "--help"], &["Examples:\n  pacstap state show"]),
        (&["state", "forget", "--help"], &["Examples:\n  pacstap state forget"]),
    ];
    for (args, want) in cases {
        let r = pacstap().args(*args).output().unwrap();
        assert_eq!(r.status.code(), Some(0), "{args:?}");
        let out = String::from_utf8_lossy(&r.stdout);
        for w in *want {
            assert!(out.contains(w), "{args:?}: {w:?} missing in\n{out}");
        }
    }
}

/// Issue 14: capture takes its BPF filter from the config's `[capture] bpf` (spaces and all, no
/// systemd word splitting); a bad one is bad usage naming the filter. Opening an interface needs
/// CAP_NET_RAW: skipped with a message when not root.
#[test]
fn capture_reads_the_bpf_filter_from_the_config() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipped: opening an interface needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("pacstap-bpf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[capture]\nbpf = \"tcp or (vlan and and tcp)\"\n").unwrap();
    let r = pacstap()
        .args([
            "capture",
            "-i",
            "lo",
            "--state",
            "none",
            "--metrics-listen",
            "off",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid BPF filter \"tcp or (vlan and and tcp)\""),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn evidence_dir_gets_a_private_pcap_per_incident() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("pacstap-evidence-cli-{}", std::process::id()));
    let r = pacstap()
        .args(["replay", "-q", "--alerts-only", "--evidence-dir"])
        .arg(&dir)
        .arg(sample("dicomweb.pcap"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let admin = alerts
        .iter()
        .find(|a| a["alert"]["rule"] == "admin_change")
        .expect("admin_change alert");
    let pcap = admin["alert"]["evidence"]["pcap"]
        .as_str()
        .expect("evidence pcap named in the alert");
    let meta = std::fs::metadata(pcap).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // The PUT and the DELETE connections, and nothing else of the capture's 13 flows.
    use pacstap_capture::PacketSource;
    let mut src = pacstap_capture::PcapFileSource::open(std::path::Path::new(pcap)).unwrap();
    let mut wire = pacstap_wire::WireDecoder::new();
    let mut client_ports = std::collections::BTreeSet::new();
    while let Some(f) = src.next_frame() {
        if let Some(p) = wire.decode(f.ts, f.linktype, f.data) {
            client_ports.insert(if p.key.src.port == 8042 {
                p.key.dst.port
            } else {
                p.key.src.port
            });
        }
    }
    let ports = client_ports;
    assert_eq!(ports.len(), 2, "{ports:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A capture compressed by gzip(1) replays to the same events as the plain file (issue 14:
/// compressed captures read directly), with no temporary copy.
#[test]
fn gzip_compressed_captures_replay_to_the_same_events() {
    let dir = std::env::temp_dir().join(format!("pacstap-cli-gz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["move.pcap", "dicomweb.pcap"] {
        let gz = dir.join(format!("{name}.gz"));
        let zipped = Command::new("gzip").arg("-c").arg(sample(name)).output().unwrap();
        assert!(zipped.status.success());
        std::fs::write(&gz, &zipped.stdout).unwrap();
        let events = |input: &std::path::Path, out: &str| {
            let out = dir.join(out);
            let r = pacstap()
                .args(["replay", "-q", "--events"])
                .arg(&out)
                .arg(input)
                .output()
                .unwrap();
            assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
            std::fs::read_to_string(out).unwrap()
        };
        let plain = events(&sample(name), "plain.jsonl");
        let from_gz = events(&gz, "gz.jsonl");
        assert!(plain.lines().count() >= 3, "{name}: {plain}");
        assert_eq!(from_gz, plain, "{name}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
