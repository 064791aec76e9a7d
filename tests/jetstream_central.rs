//! The central detector end to end (issue 15 item 2), against a real `nats-server -js` on
//! loopback (skipped, with a note, without nats-server or tshark):
//!
//! - two sensors each see half of `bulk-export-move.pcap` (WORKSTATION1 C-MOVEs 18 studies over
//!   three associations; the halves split by flow: associations 1 and 3 with their C-STORE
//!   sub-operations at site-a, association 2 with its at site-b). Each half alone stays below
//!   the 15-study threshold; `detect --from nats://` over both raises `bulk_export` with all 18
//!   studies and both sensors' flows in evidence, as a replay of the whole capture does.
//! - the detector is killed with SIGKILL after it applied and checkpointed the first two
//!   associations (12 studies in its window, in memory only), the third arrives while it is
//!   down; restarted, it writes the same alerts as an uninterrupted run.
//!
//! The sensors' publishing is done here with async-nats in the sensors' format (EVE line plus
//! `host` and `event_id`, `Nats-Msg-Id` header), from their events files.

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pacstap");

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcap-samples/scenarios")
}

/// A child process killed on drop (servers, detectors), even when the test fails.
struct Guard(Option<Child>);
impl Guard {
    fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        let c = self.0.as_mut().expect("running");
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                self.0 = None;
                return st;
            }
            assert!(Instant::now() < deadline, "process did not end within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
impl Drop for Guard {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pacstap-central-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
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

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("{tool} not installed: test skipped");
    }
    ok
}

fn nats_server(dir: &Path) -> (Guard, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let g = Guard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (g, format!("nats://127.0.0.1:{port}"))
}

/// `tshark -r IN -Y FILTER -w OUT`.
fn cut(input: &Path, filter: &str, out: &Path) {
    let st = Command::new("tshark")
        .arg("-r")
        .arg(input)
        .args(["-Y", filter, "-w"])
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "tshark {filter}");
}

fn replay(pcap: &Path, events: &Path) {
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(scenarios().join("pacstap.toml"))
        .arg("--events")
        .arg(events)
        .arg("--quiet")
        .arg(pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay: {}", String::from_utf8_lossy(&out.stderr));
}

/// A sensor: `replay --publish URL` of `pcap` with the scenario config and `[publish] host`,
/// its own events (local detection on) in `events`.
fn replay_publishing(dir: &TempDir, pcap: &Path, events: &Path, url: &str, host: &str) {
    let scen = scenarios();
    let text = std::fs::read_to_string(scen.join("pacstap.toml")).unwrap().replace(
        "csv = \"geoip.csv\"",
        &format!("csv = {:?}", scen.join("geoip.csv").display().to_string()),
    );
    let config = dir.path(&format!("{host}.toml"));
    std::fs::write(&config, format!("{text}\n[publish]\nhost = {host:?}\n")).unwrap();
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg("--publish")
        .arg(url)
        .arg("--events")
        .arg(events)
        .arg("--quiet")
        .arg(pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay --publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn alerts(path: &Path) -> Vec<Value> {
    lines(path).into_iter().filter(|v| v["event_type"] == "alert").collect()
}

/// Publish events as a sensor does: `host` and `event_id` added, `Nats-Msg-Id` = event_id,
/// on `pacstap.<host>.<event_type>`, each JetStream ack awaited.
fn publish(url: &str, host: &str, events: &[Value], first_seq: usize) {
    publish_r(url, host, events, first_seq, 1);
}

/// [`publish`] to a stream of `replicas` copies (created if absent), retrying while a cluster
/// elects leaders.
fn publish_r(url: &str, host: &str, events: &[Value], first_seq: usize, replicas: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let urls: Vec<String> = url.split(',').map(String::from).collect();
    rt.block_on(async {
        let client = async_nats::connect(urls).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "PACSTAP".into(),
                subjects: vec!["pacstap.>".into()],
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "stream never created");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (i, ev) in events.iter().enumerate() {
            let mut ev = ev.clone();
            let id = format!("{host}-1-{}", first_seq + i);
            ev["host"] = host.into();
            ev["event_id"] = id.clone().into();
            let et = ev["event_type"].as_str().unwrap().to_string();
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", id.as_str());
            loop {
                let stored = match js
                    .publish_with_headers(format!("pacstap.{host}.{et}"), h.clone(), ev.to_string().into())
                    .await
                {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if stored {
                    break;
                }
                assert!(Instant::now() < deadline, "publish of {id} never acked");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
}

/// Messages the stream holds, asked of `urls`.
fn stream_count(urls: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let urls: Vec<String> = urls.split(',').map(String::from).collect();
    rt.block_on(async {
        let client = async_nats::connect(urls).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = js.get_stream("PACSTAP").await {
                if let Ok(info) = s.get_info().await {
                    return info.state.messages;
                }
            }
            assert!(Instant::now() < deadline, "stream info never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn detect(url: &str, dir: &TempDir, tag: &str, idle_exit: Option<u64>) -> Guard {
    let mut cmd = Command::new(BIN);
    cmd.arg("detect")
        .arg("--from")
        .arg(url)
        .arg("--config")
        .arg(scenarios().join("pacstap.toml"))
        .arg("--durable")
        .arg(tag)
        .arg("--checkpoint")
        .arg(dir.path(&format!("{tag}.checkpoint")))
        .arg("--events")
        .arg(dir.path(&format!("{tag}.alerts.jsonl")))
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(s) = idle_exit {
        cmd.arg("--idle-exit").arg(s.to_string());
    }
    Guard(Some(cmd.spawn().unwrap()))
}

fn bulk(alerts: &[Value]) -> Vec<&Value> {
    alerts.iter().filter(|a| a["alert"]["rule"] == "bulk_export").collect()
}

/// What identifies an alert, without anything a run may differ in.
fn key(a: &Value) -> (String, String, u64, bool, String) {
    let al = &a["alert"];
    (
        al["rule"].as_str().unwrap_or("").to_string(),
        format!("{}:{}", al["entity"]["kind"], al["entity"]["id"]),
        al["count"].as_u64().unwrap_or(0),
        al["update"].as_bool().unwrap_or(false),
        al["incident_id"].as_str().unwrap_or("").to_string(),
    )
}

/// Packet time of an event, seconds of the day (the capture is within one day).
fn secs(ev: &Value) -> f64 {
    let t = ev["timestamp"].as_str().unwrap();
    let hms = &t[11..t.len() - 1];
    let mut p = hms.split(':');
    let h: f64 = p.next().unwrap().parse().unwrap();
    let m: f64 = p.next().unwrap().parse().unwrap();
    let s: f64 = p.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

struct Halves {
    a: Vec<Value>,
    b: Vec<Value>,
    whole_alerts: Vec<Value>,
}

/// The halves' events and the whole capture's alerts (replay with the scenario config).
fn halves(dir: &TempDir) -> Halves {
    let pcap = scenarios().join("bulk-export-move.pcap");
    // Association 1 (0–0.6 s) and 3 (11.2–11.8 s) with their sub-operations: site-a;
    // association 2 (5.6–6.2 s) with its: site-b. Every flow lies inside one band.
    cut(
        &pcap,
        "frame.time_relative < 3 || frame.time_relative > 9",
        &dir.path("a.pcap"),
    );
    cut(
        &pcap,
        "frame.time_relative >= 3 && frame.time_relative <= 9",
        &dir.path("b.pcap"),
    );
    replay(&dir.path("a.pcap"), &dir.path("a.jsonl"));
    replay(&dir.path("b.pcap"), &dir.path("b.jsonl"));
    replay(&pcap, &dir.path("whole.jsonl"));
    Halves {
        a: lines(&dir.path("a.jsonl")),
        b: lines(&dir.path("b.jsonl")),
        whole_alerts: alerts(&dir.path("whole.jsonl")),
    }
}

fn flows(evs: &[Value]) -> BTreeSet<u64> {
    evs.iter().filter_map(|e| e["flow_id"].as_u64()).collect()
}

#[test]
fn two_sensors_halves_add_up_to_one_bulk_export_centrally() {
    if !have("nats-server") || !have("tshark") {
        return;
    }
    let dir = TempDir::new("halves");
    let h = halves(&dir);
    // Each sensor alone stays below the threshold.
    assert!(bulk(&alerts(&dir.path("a.jsonl"))).is_empty(), "site-a alone alerts");
    assert!(bulk(&alerts(&dir.path("b.jsonl"))).is_empty(), "site-b alone alerts");
    let whole_bulk = bulk(&h.whole_alerts);
    assert!(!whole_bulk.is_empty(), "the whole capture raises bulk_export");

    let (_server, url) = nats_server(&dir.path("js"));
    // The two sensors: `replay --publish` of each half, as `pacstap capture --publish` would.
    replay_publishing(&dir, &dir.path("a.pcap"), &dir.path("a-pub.jsonl"), &url, "site-a");
    replay_publishing(&dir, &dir.path("b.pcap"), &dir.path("b-pub.jsonl"), &url, "site-b");
    let published = lines(&dir.path("a-pub.jsonl")).len() + lines(&dir.path("b-pub.jsonl")).len();
    assert_eq!(
        stream_count(&url),
        published as u64,
        "every event of both sensors stored once"
    );
    let mut d = detect(&url, &dir, "central", Some(3));
    assert!(d.wait(Duration::from_secs(120)).success());
    let central = alerts(&dir.path("central.alerts.jsonl"));
    let cb = bulk(&central);
    assert!(!cb.is_empty(), "central raises bulk_export: {central:?}");
    let last = cb.last().unwrap();
    assert_eq!(last["alert"]["entity"]["id"], "WORKSTATION1");
    assert_eq!(last["alert"]["count"], 18, "the full count: {last}");
    assert_eq!(last["alert"]["evidence"]["study_instance_uids_total"], 18);
    // Both sensors' flows are in the evidence.
    let ev_flows: BTreeSet<u64> = last["alert"]["evidence"]["flow_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(!ev_flows.is_disjoint(&flows(&h.a)), "site-a's flows in evidence");
    assert!(!ev_flows.is_disjoint(&flows(&h.b)), "site-b's flows in evidence");
    // The same bulk_export alerts as a replay of the whole capture.
    let want: Vec<_> = whole_bulk.iter().map(|a| key(a)).collect();
    let got: Vec<_> = cb.iter().map(|a| key(a)).collect();
    assert_eq!(got, want);
}

#[test]
fn detector_killed_mid_stream_and_restarted_writes_the_uninterrupted_alerts() {
    if !have("nats-server") || !have("tshark") {
        return;
    }
    let dir = TempDir::new("kill");
    let h = halves(&dir);
    // Two phases of packet time: associations 1 and 2 (12 studies), then association 3.
    let t0 = h.a.iter().chain(&h.b).map(secs).fold(f64::MAX, f64::min);
    let early = |v: &&Value| secs(v) < t0 + 9.0;
    let (a1, a2): (Vec<Value>, Vec<Value>) = h.a.iter().cloned().partition(|v| early(&v));
    assert!(!a1.is_empty() && !a2.is_empty());
    let b = h.b.clone();

    // The uninterrupted run, on a stream of its own.
    let (mut s1, url1) = nats_server(&dir.path("js1"));
    publish(&url1, "site-a", &a1, 1);
    publish(&url1, "site-b", &b, 1);
    publish(&url1, "site-a", &a2, 1 + a1.len());
    let mut d = detect(&url1, &dir, "whole", Some(3));
    assert!(d.wait(Duration::from_secs(120)).success());
    let whole = alerts(&dir.path("whole.alerts.jsonl"));
    assert!(!bulk(&whole).is_empty());
    s1.kill9();

    // Killed: the first phase applied and checkpointed, then SIGKILL; the rest arrives while
    // it is down.
    let (_s2, url2) = nats_server(&dir.path("js2"));
    publish(&url2, "site-a", &a1, 1);
    publish(&url2, "site-b", &b, 1);
    let phase1 = (a1.len() + b.len()) as u64;
    let mut d = detect(&url2, &dir, "killed", None);
    let cp = dir.path("killed.checkpoint");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = std::fs::read(&cp)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["at"]["seq"].as_u64())
            .unwrap_or(0);
        if at >= phase1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first phase was never checkpointed (at {at})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill9();
    let before = alerts(&dir.path("killed.alerts.jsonl"));
    assert!(bulk(&before).is_empty(), "12 studies: no alert yet");
    publish(&url2, "site-a", &a2, 1 + a1.len());
    let mut d = detect(&url2, &dir, "killed", Some(3));
    assert!(d.wait(Duration::from_secs(120)).success());
    let after = alerts(&dir.path("killed.alerts.jsonl"));
    let want: Vec<_> = whole.iter().map(key).collect();
    let got: Vec<_> = after.iter().map(key).collect();
    assert_eq!(got, want, "alerts after kill -9 and restart");
    // And the lines themselves, not only their keys.
    assert_eq!(after, whole);
}

#[test]
fn three_node_cluster_loses_a_node_mid_run_and_no_event() {
    if !have("nats-server") || !have("tshark") {
        return;
    }
    let dir = TempDir::new("cluster");
    let h = halves(&dir);
    let port = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client: Vec<u16> = (0..3).map(|_| port()).collect();
    let route: Vec<u16> = (0..3).map(|_| port()).collect();
    let routes = route
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Guard> = (0..3)
        .map(|i| {
            let child = Command::new("nats-server")
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client[i].to_string(),
                    "-n",
                    &format!("n{i}"),
                    "-sd",
                ])
                .arg(dir.path(&format!("n{i}")))
                .args([
                    "--cluster_name",
                    "c",
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", route[i]),
                ])
                .args(["--routes", &routes])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Guard(Some(child))
        })
        .collect();
    for p in &client {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
            assert!(Instant::now() < deadline, "node on {p} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let all = client
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    // site-a's first half, then a node dies, then the rest: a stream of 3 replicas keeps all.
    let (a1, a2) = h.a.split_at(h.a.len() / 2);
    publish_r(&all, "site-a", a1, 1, 3);
    nodes[1].kill9();
    publish_r(&all, "site-a", a2, 1 + a1.len(), 3);
    publish_r(&all, "site-b", &h.b, 1, 3);
    let survivors = format!("nats://127.0.0.1:{},nats://127.0.0.1:{}", client[0], client[2]);
    assert_eq!(
        stream_count(&survivors),
        (h.a.len() + h.b.len()) as u64,
        "no event lost"
    );
    let mut d = detect(&all, &dir, "central", Some(3));
    assert!(d.wait(Duration::from_secs(120)).success());
    let central = alerts(&dir.path("central.alerts.jsonl"));
    let cb = bulk(&central);
    assert_eq!(
        cb.last().map(|a| a["alert"]["count"].clone()),
        Some(Value::from(18)),
        "{central:?}"
    );
    let want: Vec<_> = bulk(&h.whole_alerts).iter().map(|a| key(a)).collect();
    assert_eq!(cb.iter().map(|a| key(a)).collect::<Vec<_>>(), want);
}
