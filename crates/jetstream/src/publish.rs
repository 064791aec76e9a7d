//! The sensor side of issue 15: every event a sensor writes is also published to JetStream,
//! as its EVE JSON line with two fields added (`host`, the sensor's name in Suricata's
//! `sensor-name` sense, and `event_id`, unique per sensor and run), on
//! `<prefix>.<host>.<event_type>`, with `event_id` as the `Nats-Msg-Id` header so a retried
//! publish is stored once.
//!
//! Publishing never slows decoding: [`Publisher::publish`] only formats the message and
//! `try_send`s it into a bounded queue; the NATS client and its tokio runtime (current-thread)
//! live on the publisher's own thread ([`crate::publish_worker`]), which keeps many publishes
//! in flight, awaits their acks asynchronously and retries with back-off while the server is
//! away. A full queue drops the **newest** event (the one being offered) and counts it: the
//! events already queued stay a contiguous run in packet time, so the central detector's
//! reorder buffer sees one gap per outage rather than a sensor's history interleaved with
//! holes; and dropping at the producer costs one failed `try_send`, with no second lock on the
//! hot path. Sequence numbers are taken before the queue, so a dropped event leaves a gap in
//! its sensor's `event_id` sequence that the central side can see.
//!
//! Every event ends as exactly one of acked, dropped or failed ([`PublishCounters`]).

use crate::publish_worker;
use crate::stream::StreamSettings;
use bytes::Bytes;
use pacstap_core::PublishTotals;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Default queue capacity: 100,000 events of ~0.5–1 KiB each, i.e. 50–100 MiB at most, which
/// holds several minutes of a busy PACS segment's events (hundreds per second) through a
/// server restart or a leader election, and stays a small share of a sensor's memory.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// Default time given to the queue to drain at shutdown: long enough for a few round trips
/// and one reconnect (async-nats' reconnect back-off starts at milliseconds), short enough
/// that a stop (systemd's default `TimeoutStopSec` is 90 s) never hangs on an absent server.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Publishes awaiting their ack at once (and, with them, those waiting to be retried). Enough
/// to keep a loopback or LAN round trip full at tens of thousands of events per second, and
/// well under async-nats' own command queue (2,048), so sending never waits on the client.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// How long one publish waits for its ack before it counts as failed and is retried (the
/// JetStream context's default is 5 s, which is also what a cluster's leader election takes).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// A message the server answers with an error (not a timeout, not "no stream") this many
/// times is given up on and counted failed: an answer that repeats is not an outage.
pub const MAX_REFUSALS: u32 = 5;

/// TLS towards the NATS servers (`[publish.tls]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Extra root certificates (PEM) the servers' certificates are checked against.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Refuse a plain-text connection even if the server offers one.
    pub require_tls: bool,
}

/// Everything a [`Publisher`] needs.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// `nats://host:port` URLs; several are one cluster (the client picks and fails over).
    pub servers: Vec<String>,
    pub stream: StreamSettings,
    /// The sensor's name: the `host` field and the subject's second token.
    pub host: String,
    /// A NATS `.creds` file (JWT + NKey seed).
    pub credentials: Option<PathBuf>,
    pub tls: TlsSettings,
    pub queue_capacity: usize,
    pub drain_timeout: Duration,
    pub max_in_flight: usize,
    pub ack_timeout: Duration,
}

impl PublishSettings {
    pub fn new(servers: Vec<String>, host: String) -> Self {
        PublishSettings {
            servers,
            stream: StreamSettings::default(),
            host,
            credentials: None,
            tls: TlsSettings::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
        }
    }
}

/// Why a publisher could not start (it never fails later: an absent server is retried).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    BadUrl(String),
    #[error("no NATS server given")]
    NoServer,
    #[error("queue capacity and in-flight limit must be at least 1")]
    ZeroCapacity,
    #[error("cannot start the publisher thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Checks one server URL: `nats://HOST:PORT` (or `tls://`), as `--publish` and
/// `[publish] servers` take it. The message says what is wrong.
pub fn check_server_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or_else(|| format!("{url:?}: expected nats://HOST:PORT (or tls://HOST:PORT)"))?;
    // Credentials belong in the credentials file, never in a URL that ends up in `ps` output.
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.contains('@') {
        return Err(format!(
            "{url:?}: put credentials in [publish] credentials, not in the URL"
        ));
    }
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?}: missing :PORT (NATS listens on 4222 by default)"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(format!("{url:?}: bad host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{url:?}: port must be 1 to 65535")),
    }
}

/// `--publish nats://a:4222,nats://b:4222`: the servers of one cluster.
pub fn parse_server_list(list: &str) -> Result<Vec<String>, String> {
    let servers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if servers.is_empty() {
        return Err("no server given".into());
    }
    for s in &servers {
        check_server_url(s)?;
    }
    Ok(servers)
}

/// The machine's host name (the default `[publish] host`), from the kernel; `pacstap` when it
/// cannot be read.
pub fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pacstap".to_string())
}

/// The publisher's counters: plain atomics, read by the metrics exporter at any time
/// (`pacstap_publish_events_total{result}`, `pacstap_publish_queue_depth`,
/// `pacstap_publish_connected`).
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// Events JetStream acknowledged (stored, or recognised as a duplicate of a stored one).
    pub acked: AtomicU64,
    /// Events never published: the queue was full, or they were still waiting when the drain
    /// at shutdown ran out of time (those in flight then may have been stored unacknowledged).
    pub dropped: AtomicU64,
    /// Publishes sent again after a failure (timeout, connection lost, no stream yet).
    pub retried: AtomicU64,
    /// Events given up on: the server refused them [`MAX_REFUSALS`] times, or they could not
    /// be made into a message.
    pub failed: AtomicU64,
    /// Events in the queue, not yet taken by the publisher thread.
    pub queued: AtomicU64,
    /// Events taken by the publisher thread and not yet acked (in flight or waiting to retry).
    pub pending: AtomicU64,
    /// Whether the client is connected to a server now.
    pub connected: AtomicBool,
}

impl PublishCounters {
    /// A copy of the counters at one moment.
    pub fn totals(&self) -> PublishTotals {
        PublishTotals {
            acked: self.acked.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            queue_depth: self
                .queued
                .load(Ordering::Relaxed)
                .saturating_add(self.pending.load(Ordering::Relaxed)),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One event on its way: subject, id, payload (cheap to clone for a retry).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub subject: Arc<str>,
    pub id: String,
    pub payload: Bytes,
    /// Times the server answered this message with an error.
    pub refusals: u32,
}

/// Publishes a sensor's events to JetStream from its own thread. Drop without
/// [`Publisher::shutdown`] stops it without draining.
pub struct Publisher {
    tx: Option<mpsc::Sender<Outgoing>>,
    shutdown: Option<oneshot::Sender<Instant>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<PublishCounters>,
    host_json: String,
    /// `<host>-<run id>-`: the event id's prefix.
    id_prefix: String,
    seq: u64,
    stream: StreamSettings,
    host: String,
    /// Subjects by event type (a handful), so a subject is built once, not per event.
    subjects: Vec<(String, Arc<str>)>,
    drain_timeout: Duration,
}

impl Publisher {
    /// Starts the publisher thread; the connection is made there and retried while no server
    /// answers, so a sensor starts (and decodes) with its NATS server away.
    pub fn start(settings: PublishSettings) -> Result<Publisher, PublishError> {
        if settings.servers.is_empty() {
            return Err(PublishError::NoServer);
        }
        for s in &settings.servers {
            check_server_url(s).map_err(PublishError::BadUrl)?;
        }
        if settings.queue_capacity == 0 || settings.max_in_flight == 0 {
            return Err(PublishError::ZeroCapacity);
        }
        let run_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let token = crate::stream::subject_token(&settings.host);
        let counters = Arc::new(PublishCounters::default());
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let worker_counters = Arc::clone(&counters);
        let worker_settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("pacstap-publish".into())
            .spawn(move || publish_worker::run(worker_settings, rx, stop_rx, worker_counters))?;
        Ok(Publisher {
            tx: Some(tx),
            shutdown: Some(stop_tx),
            thread: Some(thread),
            counters,
            host_json: serde_json::to_string(&settings.host).unwrap_or_else(|_| "\"\"".into()),
            id_prefix: format!("{token}-{run_id}-"),
            seq: 0,
            stream: settings.stream,
            host: settings.host,
            subjects: Vec::new(),
            drain_timeout: settings.drain_timeout,
        })
    }

    /// Offers one event: `eve_json` is its EVE JSON object (one line, no newline). Never
    /// blocks; a full queue drops this event and counts it.
    pub fn publish(&mut self, event_type: &str, eve_json: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        let id = format!("{}{}", self.id_prefix, self.seq);
        let Some(payload) = with_sensor_fields(eve_json, &self.host_json, &id) else {
            PublishCounters::add(&self.counters.failed, 1);
            return;
        };
        let subject = self.subject(event_type);
        let msg = Outgoing {
            subject,
            id,
            payload: Bytes::from(payload),
            refusals: 0,
        };
        // Counted queued before the send, so the thread's decrement never comes first.
        PublishCounters::add(&self.counters.queued, 1);
        let sent = self.tx.as_ref().map(|tx| tx.try_send(msg));
        if !matches!(sent, Some(Ok(()))) {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            PublishCounters::add(&self.counters.dropped, 1);
        }
    }

    fn subject(&mut self, event_type: &str) -> Arc<str> {
        if let Some((_, s)) = self.subjects.iter().find(|(t, _)| t == event_type) {
            return Arc::clone(s);
        }
        let s: Arc<str> = self.stream.subject(&self.host, event_type).into();
        // Event types are a fixed handful; the cap only guards against a caller's mistake.
        if self.subjects.len() < 64 {
            self.subjects.push((event_type.to_string(), Arc::clone(&s)));
        }
        s
    }

    /// The counters, shared with the publisher thread (for metrics).
    pub fn counters(&self) -> Arc<PublishCounters> {
        Arc::clone(&self.counters)
    }

    /// Events offered so far (acked + dropped + failed + waiting).
    pub fn offered(&self) -> u64 {
        self.seq
    }

    /// Stops taking events and gives those queued `drain_timeout` to be acked; what is left
    /// then is counted as dropped. Returns the final counters.
    pub fn shutdown(mut self) -> PublishTotals {
        self.stop(self.drain_timeout)
    }

    fn stop(&mut self, drain: Duration) -> PublishTotals {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(Instant::now() + drain);
        }
        // Closing the queue tells the thread that nothing more will come.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                // The thread died: whatever it held is lost.
                let left =
                    self.counters.queued.swap(0, Ordering::Relaxed) + self.counters.pending.swap(0, Ordering::Relaxed);
                PublishCounters::add(&self.counters.dropped, left);
            }
        }
        self.counters.connected.store(false, Ordering::Relaxed);
        self.counters.totals()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

/// The event's JSON object with `"host"` and `"event_id"` added before its closing brace;
/// `None` if it is not one JSON object (an EVE line always is).
pub fn with_sensor_fields(eve_json: &[u8], host_json: &str, id: &str) -> Option<Vec<u8>> {
    let body = eve_json.trim_ascii_end();
    let inner = body.strip_suffix(b"}")?;
    if !body.starts_with(b"{") {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + host_json.len() + id.len() + 32);
    out.extend_from_slice(inner);
    // `{}` has no field to follow.
    if inner.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"host\":");
    out.extend_from_slice(host_json.as_bytes());
    out.extend_from_slice(b",\"event_id\":\"");
    // The id is the subject-safe host token, digits and dashes: nothing to escape but quotes
    // and backslashes, which a token never holds (checked anyway).
    if id.contains(['"', '\\']) || id.chars().any(char::is_control) {
        return None;
    }
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\"}");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_fields_are_added_to_the_object() {
        let out = with_sensor_fields(br#"{"event_type":"dicom","x":1}"#, r#""site-a""#, "site-a-1-7").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["host"], "site-a");
        assert_eq!(v["event_id"], "site-a-1-7");
        assert_eq!(v["x"], 1);
        let empty = with_sensor_fields(b"{}", r#""h""#, "h-1-1").unwrap();
        assert_eq!(empty, br#"{"host":"h","event_id":"h-1-1"}"#);
        assert!(with_sensor_fields(b"[1]", r#""h""#, "h-1-1").is_none());
        assert!(with_sensor_fields(b"", r#""h""#, "h-1-1").is_none());
        // A host name that needs escaping stays valid JSON.
        let host = serde_json::to_string("a\"b").unwrap();
        let out = with_sensor_fields(b"{\"a\":1}\n", &host, "a_b-1-1").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["host"], "a\"b");
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(check_server_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_server_url("tls://nats.example:4222").is_ok());
        assert!(check_server_url("nats://[::1]:4222").is_ok());
        assert!(check_server_url("http://x:4222")
            .unwrap_err()
            .contains("expected nats://"));
        assert!(check_server_url("nats://x").unwrap_err().contains("missing :PORT"));
        assert!(check_server_url("nats://x:0").unwrap_err().contains("port"));
        assert!(check_server_url("nats://x:99999").unwrap_err().contains("port"));
        assert!(check_server_url("nats://u:p@x:4222")
            .unwrap_err()
            .contains("credentials"));
        assert!(check_server_url("nats://:4222").unwrap_err().contains("host"));
        assert_eq!(
            parse_server_list("nats://a:1, nats://b:2").unwrap(),
            ["nats://a:1", "nats://b:2"]
        );
        assert!(parse_server_list(" , ").is_err());
    }

    #[test]
    fn a_full_queue_drops_the_newest_and_ids_keep_counting() {
        // No server listens on port 9 of loopback: the thread keeps retrying the connection.
        let mut s = PublishSettings::new(vec!["nats://127.0.0.1:9".into()], "site a".into());
        s.queue_capacity = 2;
        s.max_in_flight = 1;
        let mut p = Publisher::start(s).unwrap();
        for _ in 0..5 {
            p.publish("dicom", b"{\"event_type\":\"dicom\"}");
        }
        assert_eq!(p.offered(), 5);
        let t = p.counters().totals();
        // 2 in the queue; the thread can take none (never connected), so 3 were dropped.
        assert_eq!(t.dropped, 3, "{t:?}");
        assert_eq!(t.queue_depth, 2);
        assert!(!t.connected);
        let end = p.shutdown_within(Duration::from_millis(50));
        assert_eq!(end.dropped, 5, "{end:?}");
        assert_eq!(end.acked, 0);
        assert_eq!(end.queue_depth, 0);
        assert_eq!(p_subject(), "pacstap.site_a.dicom");
    }

    impl Publisher {
        fn shutdown_within(mut self, drain: Duration) -> PublishTotals {
            self.stop(drain)
        }
    }

    fn p_subject() -> String {
        StreamSettings::default().subject("site a", "dicom")
    }
}
