//! Running the real binary over a capture and reading what it said, as facts two runs can be
//! compared by (tests/hostile.rs: a clean capture against its attacked copy).

use super::sample;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

/// The config of pcap-samples/scenarios/ (inventory, thresholds) every replay here uses.
pub const CONFIG: &str = "scenarios/pacstap.toml";

pub fn pacstap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
}

/// What one run of `pacstap replay` gave.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run pacstap");
    let stdout = String::from_utf8(out.stdout).expect("events are UTF-8");
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Run {
        code: out.status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events,
    }
}

/// `pacstap replay --config scenarios/pacstap.toml FILE` (events to stdout, summary on stderr).
pub fn replay(file: &Path) -> Run {
    let r = run(pacstap().arg("replay").arg("--config").arg(sample(CONFIG)).arg(file));
    assert_eq!(r.code, Some(0), "{}: {}", file.display(), r.stderr);
    r
}

/// A scratch directory for one hostile test, gone when the test passes (see `Scratch`).
pub fn tmpdir(tag: &str) -> super::Scratch {
    super::Scratch::new(&format!("hostile-{tag}"))
}

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every DICOM fact a user acts on, one sorted line each: associations (AE titles, accepted,
/// outcome, command count) and commands (AE titles, command, message id, move destination,
/// study UIDs, status, sub-operations). Times, ports and flow ids are left out: an attack may
/// shift them without changing what happened.
pub fn dicom_facts(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "dicom")
        .map(|e| {
            let d = &e["dicom"];
            if d["type"] == "association" {
                format!(
                    "association {} -> {} accepted={} outcome={} commands={}",
                    s(&d["calling_ae"]),
                    s(&d["called_ae"]),
                    s(&d["accepted"]),
                    s(&d["outcome"]),
                    s(&d["commands"])
                )
            } else {
                format!(
                    "{} {} -> {} id={} dest={} studies={} status={} subops={} sop={}",
                    s(&d["command"]),
                    s(&d["calling_ae"]),
                    s(&d["called_ae"]),
                    s(&d["message_id"]),
                    s(&d["move_destination"]),
                    s(&d["study_instance_uids"]),
                    s(&d["status"]),
                    s(&d["sub_operations"]),
                    s(&d["sop_instance_uid"]),
                )
            }
        })
        .collect();
    out.sort();
    out
}

pub fn http_facts(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "http")
        .map(|e| {
            let h = &e["http"];
            format!(
                "{} host={} status={} user={} admin={}",
                s(&h["method"]),
                s(&h["hostname"]),
                s(&h["status"]),
                s(&h["user"]),
                s(&h["admin_action"])
            )
        })
        .collect();
    out.sort();
    out
}

pub fn hl7_facts(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| e["event_type"] == "hl7")
        .map(|e| {
            let h = &e["hl7"];
            format!(
                "{} control={} ack={} admin={}",
                s(&h["message_type"]),
                s(&h["control_id"]),
                s(&h["ack_code"]),
                s(&h["admin_event"])
            )
        })
        .collect();
    out.sort();
    out
}

/// Final count of every incident by (rule, entity kind, entity id): updates replace the first.
pub fn alerts(events: &[Value]) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| e["event_type"] == "alert") {
        let a = &e["alert"];
        out.insert(
            (s(&a["rule"]), s(&a["entity"]["kind"]), s(&a["entity"]["id"])),
            a["count"].as_u64().unwrap_or(0),
        );
    }
    out
}

pub fn anomalies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event_type"] == "anomaly")
        .map(|e| s(&e["anomaly"]["name"]))
        .collect()
}

/// Anomaly names the attacked run reported and the clean one did not.
pub fn new_anomalies(clean: &Run, attacked: &Run) -> BTreeSet<String> {
    let before: BTreeSet<String> = anomalies(&clean.events).into_iter().collect();
    anomalies(&attacked.events)
        .into_iter()
        .filter(|a| !before.contains(a))
        .collect()
}

/// The run said something about `word` (an anomaly name, or a summary line: counters such as
/// checksum failures may be reported as counts rather than one event per packet).
pub fn reported(r: &Run, word: &str) -> bool {
    anomalies(&r.events).iter().any(|a| a.contains(word)) || r.stderr.to_lowercase().contains(word)
}

/// The run counted a spoofed control packet: an anomaly event, or a summary line, naming it
/// (by one of `words` as a whole word, e.g. "rst", or a name containing it). Which of the two
/// the defence chooses is its call; the tap must not stay silent about a blind injection.
pub fn reported_control(r: &Run, words: &[&str]) -> bool {
    let in_name = anomalies(&r.events).iter().any(|a| words.iter().any(|w| a.contains(w)));
    let in_summary = r.stderr.lines().any(|l| {
        l.to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|tok| words.contains(&tok))
    });
    in_name || in_summary
}

/// Runs `pacstap ARGS` and returns its peak RSS in kB: from GNU time's `%M` (getrusage of the
/// child, exact) when /usr/bin/time exists, else the child's VmHWM polled from /proc until it
/// exits. The child's output goes to files so a full pipe cannot stall it.
pub fn run_measuring_peak_rss(args: &[&std::ffi::OsStr], dir: &Path) -> (Run, u64) {
    let out = std::fs::File::create(dir.join("stdout")).unwrap();
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    let gnu_time = Path::new("/usr/bin/time");
    let rss_file = dir.join("rss");
    let mut cmd = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(env!("CARGO_BIN_EXE_pacstap"));
        c
    } else {
        pacstap()
    };
    let mut child = cmd
        .args(args)
        .stdout(out)
        .stderr(err)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if let Ok(text) = std::fs::read_to_string(&rss_file) {
        peak = text.trim().lines().last().and_then(|l| l.parse().ok()).unwrap_or(peak);
    }
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    let events = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    (
        Run {
            code,
            stdout,
            stderr,
            events,
        },
        peak,
    )
}

/// No C0/C1 control character but newline may reach the terminal: an ESC starts a sequence
/// that can rewrite the screen, set the title or (OSC 52) write the clipboard.
pub fn assert_terminal_safe(stderr: &str) {
    for (n, line) in stderr.lines().enumerate() {
        assert!(
            !line.chars().any(char::is_control),
            "summary line {} carries a control character: {:?}",
            n + 1,
            line
        );
    }
}
