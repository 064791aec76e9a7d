//! The central loop's kill-and-restart guarantee, with a small windowed detection plugged in
//! (distinct studies per user over a sliding window, alert when above a threshold; learned
//! state counts every event applied, so applying one twice shows) against a real nats-server.
//! A run stopped as if killed (no final checkpoint, nothing acked since the last one) and
//! started again writes the same alerts as an uninterrupted run, and learns each event once.

mod common;

use common::{have_nats, publish_lines, single, TempDir};
use pacstap_jetstream::checkpoint::Raised;
use pacstap_jetstream::consume::ConsumerSettings;
use pacstap_jetstream::consume_central::{run, CentralSettings, Decoded, Detection};
use pacstap_jetstream::stream::StreamSettings;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

const S: i64 = 1_000_000_000;
const WINDOW: i64 = 300 * S;
const THRESHOLD: usize = 15;

#[derive(Default)]
struct Toy {
    /// Per user: (ts, study) in the window.
    windows: BTreeMap<String, VecDeque<(i64, String)>>,
    /// Per user: first_seen of the open incident.
    open: BTreeMap<String, i64>,
    learned_events: u64,
    now: i64,
    written: Vec<String>,
}

struct Ev {
    user: String,
    study: String,
    ts: i64,
}

impl Detection for Toy {
    type Event = Ev;
    type Alert = (String, i64, usize);

    fn decode(&mut self, payload: &[u8]) -> Option<Decoded<Ev>> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        Some(Decoded {
            event_id: v["event_id"].as_str()?.to_string(),
            ts_ns: v["ts"].as_i64()?,
            event: Ev {
                user: v["user"].as_str()?.to_string(),
                study: v["study"].as_str()?.to_string(),
                ts: v["ts"].as_i64()?,
            },
        })
    }

    fn reset(&mut self, learned: Option<serde_json::Value>) -> Result<(), String> {
        let written = std::mem::take(&mut self.written);
        *self = Toy {
            written,
            now: i64::MIN,
            ..Default::default()
        };
        self.learned_events = learned.and_then(|v| v["events"].as_u64()).unwrap_or(0);
        Ok(())
    }

    fn apply(&mut self, ev: Ev, out: &mut Vec<(String, i64, usize)>) {
        self.learned_events += 1;
        self.now = self.now.max(ev.ts);
        let w = self.windows.entry(ev.user.clone()).or_default();
        w.push_back((ev.ts, ev.study));
        while w.front().is_some_and(|(t, _)| *t <= self.now - WINDOW) {
            w.pop_front();
        }
        let mut distinct: Vec<&String> = w.iter().map(|(_, s)| s).collect();
        distinct.sort();
        distinct.dedup();
        let n = distinct.len();
        if n > THRESHOLD {
            if !self.open.contains_key(&ev.user) {
                let first = w.front().map(|(t, _)| *t).unwrap_or(ev.ts);
                self.open.insert(ev.user.clone(), first);
                out.push((ev.user, first, n));
            }
        } else {
            self.open.remove(&ev.user);
        }
    }

    fn finish(&mut self, _out: &mut Vec<(String, i64, usize)>) {}

    fn alert_key(&self, a: &(String, i64, usize)) -> String {
        Raised::key(&format!("{}@{}", a.0, a.1), a.2 as u64, false)
    }

    fn emit(&mut self, alerts: Vec<(String, i64, usize)>) -> Result<(), String> {
        for a in alerts {
            self.written
                .push(format!("{} first_seen={} count={}", a.0, a.1 / S, a.2));
        }
        Ok(())
    }

    fn learned(&self) -> serde_json::Value {
        serde_json::json!({ "events": self.learned_events })
    }

    fn now_ns(&self) -> i64 {
        self.now
    }
}

/// 600 events over 3000 s from two sensors: user `steady` exports a new study every 20 s
/// (15 per window: never above), user `bursty` exports 30 studies in 200 s every 600 s (an
/// incident each burst), background users repeat the same study. Sensor B's events are
/// published in chunks lagging sensor A's by up to 50 s of packet time.
fn scenario() -> Vec<(String, String, String)> {
    let t0 = 1_800_000_000 * S;
    let mut evs = Vec::new();
    for i in 0..600i64 {
        let ts = t0 + i * 5 * S;
        let (user, study) = match i % 4 {
            0 => ("steady".to_string(), format!("st{}", i / 4)),
            _ if (i * 5) % 600 < 200 => ("bursty".to_string(), format!("b{i}")),
            1 | 2 => ("calm".to_string(), "same".to_string()),
            _ => ("other".to_string(), format!("o{}", i % 7)),
        };
        let host = if i % 2 == 0 { "site-a" } else { "site-b" };
        let id = format!("{host}-{i}");
        let body = serde_json::json!({"event_id": id, "host": host, "ts": ts, "user": user, "study": study});
        evs.push((host.to_string(), id, body.to_string()));
    }
    // Interleave: A's next 10 go before B's previous 10.
    let (a, b): (Vec<_>, Vec<_>) = evs.into_iter().partition(|e| e.0 == "site-a");
    let mut out = Vec::new();
    for (ca, cb) in a.chunks(10).zip(b.chunks(10)) {
        out.extend_from_slice(ca);
        out.extend_from_slice(cb);
    }
    out
}

fn settings(servers: &[String], durable: &str, checkpoint: Option<std::path::PathBuf>) -> CentralSettings {
    let mut c = ConsumerSettings::new(servers.to_vec());
    c.durable = durable.to_string();
    c.ack_wait = Duration::from_secs(2);
    let mut s = CentralSettings::new(c);
    s.checkpoint = checkpoint;
    s.lookback = Duration::from_secs(300);
    s.checkpoint_events = 7;
    // Alerts recorded at once: the crash hook returns right after an event, which may be one
    // that alerted.
    s.alert_checkpoint_gap = Duration::ZERO;
    s.reorder_lag = Duration::from_secs(100);
    s.reorder_idle = Duration::from_secs(3);
    s.idle_exit = Some(Duration::from_secs(4));
    s
}

#[test]

fn killed_and_restarted_detector_writes_the_uninterrupted_alerts() {
    if !have_nats() {
        return;
    }
    let dir = TempDir::new("central");
    let server = single(dir.path());
    let servers = vec![server.url()];
    publish_lines(&servers, &StreamSettings::default(), scenario());

    let mut whole = Toy::default();
    let stats = run(
        &mut whole,
        &settings(&servers, "whole", Some(dir.path().join("whole.json"))),
    )
    .unwrap();
    assert_eq!(stats.applied, 600);
    assert_eq!(whole.learned_events, 600);
    assert_eq!(
        whole.written.len(),
        5,
        "one incident per burst of bursty: {:?}",
        whole.written
    );
    assert!(
        whole.written.iter().all(|a| a.starts_with("bursty ")),
        "{:?}",
        whole.written
    );

    // Killed in the third burst (events 240–280), in the first, and between bursts.
    for crash in [250u64, 37, 421] {
        let cp = dir.path().join(format!("cp-{crash}.json"));
        let durable = format!("crash{crash}");
        let mut first = Toy::default();
        let mut s = settings(&servers, &durable, Some(cp.clone()));
        s.crash_after = Some(crash);
        let st1 = run(&mut first, &s).unwrap();
        assert!(st1.applied >= crash && st1.applied < crash + 20, "{st1:?}");
        let mut second = Toy {
            written: first.written.clone(),
            ..Default::default()
        };
        let st2 = run(&mut second, &settings(&servers, &durable, Some(cp))).unwrap();
        assert!(st2.warmed > 0, "the windows were rebuilt");
        assert_eq!(st2.warm_missing, 0);
        assert_eq!(second.written, whole.written, "crash after {crash}: {st2:?}");
        assert_eq!(
            second.learned_events, 600,
            "each event learned once (crash after {crash})"
        );
    }
}
