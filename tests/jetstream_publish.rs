//! `replay --publish` against a real `nats-server -js` on loopback (issue 15, sensor side):
//! every event of the events file is in the stream once, with `host` and `event_id`, on
//! `pacstap.<host>.<event_type>`; a server that is away when the sensor runs gets the queued
//! events when it returns (or, past the queue's cap, the dropped count says how many are not
//! there); a server restarted on the same port and store keeps what it had and stores no
//! event twice.

#[path = "common/nats.rs"]
mod nats;

use nats::NatsServer;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pcap-samples/scenarios")
        .join(name)
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("pacstap-pub-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop (a failing test leaves no replay behind).
struct Running(Option<Child>);

impl Running {
    fn wait(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The scenarios' config plus a `[publish]` table.
fn config(dir: &TempDir, publish: &str) -> PathBuf {
    let base = std::fs::read_to_string(scenario("pacstap.toml")).unwrap();
    let path = dir.path("pacstap.toml");
    // Relative paths in the scenario config (the GeoIP CSV) resolve against its directory.
    let base = base.replace("geoip.csv", &scenario("geoip.csv").display().to_string());
    std::fs::write(&path, format!("{base}\n[publish]\n{publish}\n")).unwrap();
    path
}

fn replay(pcap: &str, events: &Path, config: &Path, url: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_pacstap"))
        .arg("replay")
        .arg(scenario(pcap))
        .arg("--config")
        .arg(config)
        .arg("--events")
        .arg(events)
        .args(["--state", "none", "--publish", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running(Some(child))
}

fn lines(events: &Path) -> Vec<Value> {
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One stored message: subject, `Nats-Msg-Id`, payload.
struct Stored {
    subject: String,
    msg_id: String,
    event: Value,
}

/// Every message of the stream `PACSTAP`, read back with async-nats.
fn stream_messages(url: &str) -> Vec<Stored> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("PACSTAP").await.unwrap();
        let info = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        if info.messages == 0 {
            return out;
        }
        for seq in info.first_sequence..=info.last_sequence {
            let m = stream.get_raw_message(seq).await.unwrap();
            let msg_id = m
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| format!("{:?}", m.headers));
            out.push(Stored {
                subject: m.subject.to_string(),
                msg_id,
                event: serde_json::from_slice(&m.payload).unwrap(),
            });
        }
        out
    })
}

/// `published to NATS JetStream: A acked, D dropped, F failed (R retries)` from stderr.
fn published(stderr: &[u8]) -> BTreeMap<String, u64> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains("published to NATS JetStream"))
        .unwrap_or_else(|| panic!("no publish line in: {text}"));
    let mut out = BTreeMap::new();
    let words: Vec<&str> = line
        .split([',', ':', '(', ')'])
        .flat_map(str::split_whitespace)
        .collect();
    for w in words.windows(2) {
        if let Ok(n) = w[0].parse::<u64>() {
            out.insert(w[1].to_string(), n);
        }
    }
    out
}

/// The event as the events file has it: the published one without the two sensor fields.
fn without_sensor_fields(ev: &Value) -> Value {
    let mut e = ev.clone();
    let o = e.as_object_mut().unwrap();
    o.remove("host");
    o.remove("event_id");
    e
}

fn skip() -> bool {
    if !nats::available() {
        eprintln!("skipped: nats-server is not installed");
        return true;
    }
    false
}

#[test]
fn replay_publishes_every_event_once_with_host_and_event_id() {
    if skip() {
        return;
    }
    let server = NatsServer::start();
    let dir = TempDir::new("all");
    let cfg = config(&dir, "host = \"site-a\"");
    let events = dir.path("events.jsonl");
    let out = replay("bulk-export-move.pcap", &events, &cfg, &server.url()).wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = lines(&events);
    let stored = stream_messages(&server.url());
    assert_eq!(stored.len(), written.len(), "one message per line of the events file");
    let p = published(&out.stderr);
    assert_eq!(p["acked"], written.len() as u64);
    assert_eq!(p["dropped"], 0);
    assert_eq!(p["failed"], 0);
    let mut ids = BTreeSet::new();
    let mut types = BTreeMap::new();
    for s in &stored {
        assert_eq!(s.event["host"], "site-a");
        let id = s.event["event_id"].as_str().unwrap();
        assert!(id.starts_with("site-a-"), "{id}");
        assert_eq!(s.msg_id, id, "the Nats-Msg-Id header is the event_id");
        assert!(ids.insert(id.to_string()), "event_id {id} twice");
        let t = s.event["event_type"].as_str().unwrap();
        assert_eq!(s.subject, format!("pacstap.site-a.{t}"));
        *types.entry(t.to_string()).or_insert(0) += 1;
    }
    // The scenario's facts: DICOM events, the bulk-export alerts, posture findings.
    assert_eq!(types.get("alert"), Some(&2), "{types:?}");
    assert_eq!(types.get("dicom"), Some(&57), "{types:?}");
    // In the order written (one connection keeps the publish order), and otherwise the same.
    let back: Vec<Value> = stored.iter().map(|s| without_sensor_fields(&s.event)).collect();
    assert_eq!(back, written);
    // Sequence numbers 1..=n within the run.
    let seqs: BTreeSet<u64> = ids
        .iter()
        .map(|id| id.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=written.len() as u64).collect());
}

#[test]
fn without_local_detection_events_are_published_but_no_rule_runs() {
    if skip() {
        return;
    }
    let server = NatsServer::start();
    let dir = TempDir::new("nolocal");
    let cfg = config(&dir, "host = \"site-b\"\nlocal_detection = false");
    let events = dir.path("events.jsonl");
    let out = replay("bulk-export-move.pcap", &events, &cfg, &server.url()).wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = lines(&events);
    let stored = stream_messages(&server.url());
    assert_eq!(stored.len(), written.len());
    // 57 DICOM events, and neither alerts nor posture findings: judging is the centre's.
    assert_eq!(written.len(), 57);
    assert!(stored.iter().all(|s| s.event["event_type"] == "dicom"));
}

#[test]
fn server_away_at_start_gets_every_queued_event_once_when_it_returns() {
    if skip() {
        return;
    }
    let mut server = NatsServer::reserved();
    let dir = TempDir::new("away");
    let cfg = config(&dir, "host = \"site-a\"\ndrain_timeout = \"60s\"");
    let events = dir.path("events.jsonl");
    let run = replay("login-failures-http.pcap", &events, &cfg, &server.url());
    // The replay decodes at once; its events wait in the queue while no server answers.
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let out = run.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = lines(&events);
    let stored = stream_messages(&server.url());
    assert_eq!(stored.len(), written.len(), "every event arrives");
    let ids: BTreeSet<&str> = stored.iter().map(|s| s.msg_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    let p = published(&out.stderr);
    assert_eq!((p["acked"], p["dropped"], p["failed"]), (written.len() as u64, 0, 0));
}

#[test]
fn server_restarted_on_its_store_keeps_the_first_run_and_takes_the_second_once() {
    if skip() {
        return;
    }
    let mut server = NatsServer::start();
    let dir = TempDir::new("restart");
    let cfg = config(&dir, "host = \"site-a\"\ndrain_timeout = \"60s\"");
    let first = dir.path("first.jsonl");
    let out = replay("bulk-export-wado.pcap", &first, &cfg, &server.url()).wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Outage: the server dies (SIGKILL) and a second run starts while it is away.
    server.stop();
    let second = dir.path("second.jsonl");
    let run = replay("bulk-export-move.pcap", &second, &cfg, &server.url());
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let out = run.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (n1, n2) = (lines(&first).len(), lines(&second).len());
    let stored = stream_messages(&server.url());
    assert_eq!(stored.len(), n1 + n2, "{}", server.log());
    let ids: BTreeSet<&str> = stored.iter().map(|s| s.msg_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    // Two runs, two run ids.
    let runs: BTreeSet<&str> = ids.iter().map(|id| id.rsplit_once('-').unwrap().0).collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[test]
fn past_the_queue_cap_the_dropped_count_is_what_the_stream_lacks() {
    if skip() {
        return;
    }
    let mut server = NatsServer::reserved();
    let dir = TempDir::new("cap");
    let cfg = config(&dir, "host = \"site-a\"\nqueue_capacity = 5\ndrain_timeout = \"60s\"");
    let events = dir.path("events.jsonl");
    let run = replay("bulk-export-move.pcap", &events, &cfg, &server.url());
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    let out = run.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = lines(&events).len() as u64;
    let stored = stream_messages(&server.url()).len() as u64;
    let p = published(&out.stderr);
    // With no server the queue is never read: exactly the first 5 events wait and arrive.
    assert_eq!(stored, 5);
    assert_eq!(p["acked"], stored);
    assert_eq!(p["dropped"], written - stored, "{p:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: published"));
}
