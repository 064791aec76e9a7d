//! Push alerts to a Prometheus Alertmanager (`--alertmanager <URL>`, CONTRACT §1), so its
//! routing (on-call rotas, e-mail, chat, paging) reaches the person who can act on the PACS.
//!
//! # Shape
//!
//! [`AlertmanagerClient::push`] is called by the packet pipeline for every event. It never
//! waits on the network: it turns an `alert` event into an Alertmanager alert and appends it to
//! a bounded in-memory queue ([`AlertmanagerOptions::queue_capacity`], 1024 by default), counting
//! a drop when the queue is full. One background thread batches what is queued into a single
//! `POST <prefix>/api/v2/alerts` (a JSON array of `postableAlerts`, Alertmanager API v2), retries
//! transient failures with capped exponential backoff, and reports through
//! [`AlertmanagerClient::stats`] (exported as `pacstap_alertmanager_*` metrics, see
//! [`crate::metrics`]) and [`AlertmanagerClient::last_error`], with stderr warnings rate-limited
//! to the first failure and then one a minute.
//!
//! The HTTP/1.1 client is [`ureq`] (`client.rs`): one request per connection
//! (`Connection: close`), `Content-Length`, bounded resolve/connect/send/receive timeouts, and
//! `https://` over rustls. For https the server's certificate is checked against
//! [`AlertmanagerOptions::ca_file`] when set (the CA of an internal Alertmanager), else the
//! system CA bundle (which holds a hospital CA once installed there), else the built-in Mozilla
//! roots. Files: `target.rs` validates the URL, `payload.rs` builds the JSON, `worker.rs` is the
//! push thread (queue, batches, backoff), `client.rs` the POST.
//!
//! # The alert Alertmanager receives
//!
//! ```json
//! [{"labels": {"alertname": "pacstap_bulk_export", "rule": "bulk_export", "severity": "high",
//!              "entity_kind": "user", "entity": "rad2"},
//!   "annotations": {"summary": "rad2 exported 16 distinct studies in 30 min",
//!                   "response": "disable account rad2 or revoke its sessions\npreserve ...",
//!                   "count": "16", "threshold": "15", "window_seconds": "1800",
//!                   "first_seen": "2026-11-27T10:00:01.123456Z", "last_seen": "...",
//!                   "flow_ids": "11,12", "flows_total": "2", "studies_total": "16",
//!                   "evidence_pcap": "/var/lib/pacstap/evidence/..."},
//!   "startsAt": "2026-11-27T10:00:01.123456Z"}]
//! ```
//!
//! - **`alertname` = `pacstap_<rule>`.** Alertmanager's UI, default grouping and most routing
//!   trees key on `alertname`; one name per rule lets a route pick out one rule
//!   (`alertname="pacstap_bulk_export"`) or all of pacstap's (`alertname=~"pacstap_.*"`), and the
//!   prefix keeps them apart from the Prometheus-rule alerts about pacstap's health
//!   (`Pacstap…` in deploy/prometheus) and from other tools' alerts.
//! - **Labels identify the incident; annotations describe it.** Alertmanager deduplicates by
//!   the label set, so an update of a growing incident (`alert.update`) is pushed again with the
//!   same labels and replaces the annotations (count, last_seen, …) of the alert already there
//!   instead of opening a second one. A severity raised by an update (CONTRACT: `critical` when
//!   an export follows a `new_device`) is a new label set, hence a new alert: deliberately, so
//!   the escalation routes and notifies as such. Label values are capped at 256 characters and
//!   annotations at 4096 (the entity comes off the wire).
//! - **`startsAt` = `first_seen`** (packet time), omitted if unknown.
//! - **`endsAt`**: Alertmanager treats an alert without `endsAt` as firing until its own
//!   `resolve_timeout` (5 min by default) passes without the alert being sent again; an alert
//!   whose `endsAt` is in the past arrives already resolved and notifies nobody. pacstap's
//!   alerts are incidents, not states that pacstap can see end, so by default `endsAt` is
//!   omitted and Alertmanager's `resolve_timeout` decides how long one stays active (each
//!   update re-arms it). With [`AlertmanagerOptions::resolve_after`] set, `endsAt` = the later of
//!   `last_seen` and the wall clock at sending, plus that duration: anchored to the wall clock
//!   too so that replaying an old pcap still fires instead of arriving resolved.
//! - No `generatorURL`: pacstap has no web UI to link to; the events file has the details.
//!
//! # Delivery semantics
//!
//! At most once per queued alert, best effort: 2xx is success; connection errors, timeouts,
//! 408, 429 and 5xx are retried (backoff from [`AlertmanagerOptions::retry_initial`] doubling to
//! [`AlertmanagerOptions::retry_max`]), with alerts that arrive meanwhile joining the batch up to
//! [`AlertmanagerOptions::max_batch`]; other 4xx are not retried (Alertmanager answers 400 for a
//! batch in which some alert failed validation, after storing the valid ones) and the batch
//! counts as `rejected`. A queued alert that an update of the same incident supersedes is
//! replaced in place (neither sent nor dropped), so a long outage keeps the latest state of each
//! incident rather than a backlog of its updates. Host names are resolved at every attempt, so
//! an Alertmanager that moves is followed; resolution is bounded by
//! [`AlertmanagerOptions::connect_timeout`] too.

mod client;
mod payload;
mod target;
mod worker;

use pacstap_core::{EventBody, ProtocolEvent};
use payload::QueuedAlert;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use target::Target;
use worker::{later, lock, Shared, Warner, Worker};

/// Alertmanager API v2 path, appended to the URL's prefix.
pub const API_PATH: &str = "/api/v2/alerts";

/// Default queue bound: a burst of alerts far beyond any real incident, a few MiB at most.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// How long [`AlertmanagerClient::shutdown`] waits past its deadline for a push thread still
/// inside a request (ureq cannot be interrupted) before it counts that request's alerts as
/// dropped and returns without it.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Why an Alertmanager URL was refused, or the push thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error("Alertmanager URL `{url}`: {reason} (expected http[s]://host[:port][/prefix])")]
    InvalidUrl { url: String, reason: String },
    #[error("Alertmanager CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot start the Alertmanager push thread: {0}")]
    Spawn(#[source] io::Error),
}

/// Tuning of [`AlertmanagerClient`]; [`Default`] is what `--alertmanager` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerOptions {
    /// Alerts waiting to be sent, at most (beyond the batch in flight); more are dropped.
    pub queue_capacity: usize,
    /// Alerts per POST, at most.
    pub max_batch: usize,
    /// `None` (default): no `endsAt`, Alertmanager's `resolve_timeout` applies. `Some(d)`:
    /// `endsAt` = max(`last_seen`, now) + `d`. See the module doc.
    pub resolve_after: Option<Duration>,
    /// First wait after a failed POST; doubles per failure up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Host-name resolution, and then the TCP connect (all addresses) with the TLS handshake,
    /// each at most this long.
    pub connect_timeout: Duration,
    /// Write of the request, and read of the response, each at most this long.
    pub io_timeout: Duration,
    /// Rate-limited warnings on stderr (first failure, then one a minute, and recovery).
    pub warnings: bool,
    /// https only: PEM file of the CA certificates the server's certificate must chain to.
    /// `None`: the system CA bundle, or ureq's built-in Mozilla roots without one.
    pub ca_file: Option<PathBuf>,
}

impl Default for AlertmanagerOptions {
    fn default() -> Self {
        AlertmanagerOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: 128,
            resolve_after: None,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            io_timeout: Duration::from_secs(5),
            warnings: true,
            ca_file: None,
        }
    }
}

/// Counters of an [`AlertmanagerClient`], cumulative since it started (`queued` is a level).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertmanagerStats {
    /// Alerts in POSTs that Alertmanager accepted (2xx).
    pub sent: u64,
    /// POSTs that failed: connection, timeout, or a non-2xx status (retried or not).
    pub failed_posts: u64,
    /// Alerts never sent: the queue was full, or they were still queued when shutdown's
    /// deadline passed.
    pub dropped: u64,
    /// Alerts in POSTs that Alertmanager refused with a 4xx (not retried).
    pub rejected: u64,
    /// Alerts waiting now, including the batch in flight.
    pub queued: u64,
}

/// Pushes alert events to Alertmanager from a background thread. See the module doc.
///
/// `push` may be called from any thread (`&self`); [`AlertmanagerClient::shutdown`] delivers
/// what is queued before a deadline. Dropping the client without `shutdown` stops the thread
/// after its current attempt, without waiting for it, and counts what is left as dropped.
pub struct AlertmanagerClient {
    shared: Arc<Shared>,
    target: Target,
    thread: Option<JoinHandle<()>>,
}

impl AlertmanagerClient {
    /// A client for `url` (`http[s]://host[:port][/prefix]`, port 80 / 443 by default) with
    /// default options. Fails at once on a URL it could never use (credentials, bad port…), so
    /// bad usage is reported at startup rather than at the first alert.
    pub fn new(url: &str) -> Result<AlertmanagerClient, AlertmanagerError> {
        AlertmanagerClient::with_options(url, AlertmanagerOptions::default())
    }

    pub fn with_options(url: &str, options: AlertmanagerOptions) -> Result<AlertmanagerClient, AlertmanagerError> {
        let target = target::parse_url(url)?;
        let options = AlertmanagerOptions {
            queue_capacity: options.queue_capacity.max(1),
            max_batch: options.max_batch.max(1),
            retry_initial: options.retry_initial.max(Duration::from_millis(1)),
            connect_timeout: options.connect_timeout.max(Duration::from_millis(1)),
            io_timeout: options.io_timeout.max(Duration::from_millis(1)),
            ..options
        };
        let poster = client::Poster::new(&target, &options)?;
        let shared = Arc::new(Shared::new(options.queue_capacity));
        let worker = Worker {
            shared: Arc::clone(&shared),
            poster,
            warn: Warner::new(options.warnings, target.display()),
            options,
        };
        let thread = std::thread::Builder::new()
            .name("pacstap-alertmanager".into())
            .spawn(move || worker.run())
            .map_err(AlertmanagerError::Spawn)?;
        Ok(AlertmanagerClient {
            shared,
            target,
            thread: Some(thread),
        })
    }

    /// Where alerts are POSTed (`http[s]://host:port/prefix/api/v2/alerts`).
    pub fn endpoint(&self) -> String {
        self.target.display()
    }

    /// Queue `event` for Alertmanager if it is an alert (other events are ignored). Never
    /// waits on the network: takes a lock the push thread holds only to move alerts out. An
    /// update of an incident still queued replaces it; a new alert finding the queue full is
    /// dropped and counted.
    pub fn push(&self, event: &ProtocolEvent) {
        let EventBody::Alert(alert) = &event.body else {
            return;
        };
        let item = QueuedAlert::new(alert);
        let mut state = lock(&self.shared.state);
        if let Some(queued) = state
            .queue
            .iter_mut()
            .find(|q| q.key == item.key && q.labels == item.labels)
        {
            *queued = item;
        } else if state.queue.len() >= self.shared.capacity {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        } else {
            state.queue.push_back(item);
        }
        drop(state);
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> AlertmanagerStats {
        let s = &self.shared;
        let queued = lock(&s.state).queue.len() as u64;
        AlertmanagerStats {
            sent: s.sent.load(Ordering::Relaxed),
            failed_posts: s.failed_posts.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            queued: queued + s.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Why the most recent POST failed; `None` if it succeeded (or none was made yet).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Try to deliver everything queued within `deadline`, then stop the thread and return the
    /// final counters; what could not be delivered in time counts as dropped. Returns within
    /// about `deadline` plus a fraction of a second ([`SHUTDOWN_GRACE`]): a request still
    /// running then (a server that accepted the connection and never answers) is left to its
    /// own timeouts on the detached thread, its alerts counted as dropped.
    pub fn shutdown(mut self, deadline: Duration) -> AlertmanagerStats {
        let at = later(deadline);
        self.request_stop(at);
        let give_up = at.checked_add(SHUTDOWN_GRACE).unwrap_or(at);
        let mut state = lock(&self.shared.state);
        while !state.finished {
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            state = match self.shared.finished.wait_timeout(state, give_up - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if state.finished {
            drop(state);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            state.abandoned = true;
            let left = state.queue.len() as u64 + self.shared.in_flight.swap(0, Ordering::Relaxed);
            state.queue.clear();
            self.shared.dropped.fetch_add(left, Ordering::Relaxed);
            drop(state);
            // Detached: it ends when its request does, changing no counter.
            self.thread.take();
        }
        self.stats()
    }

    fn request_stop(&self, at: Instant) {
        {
            let mut state = lock(&self.shared.state);
            state.stop_at = Some(state.stop_at.map_or(at, |s| s.min(at)));
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for AlertmanagerClient {
    fn drop(&mut self) {
        if self.thread.take().is_some() {
            self.request_stop(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
    use payload::wall_clock;
    use serde_json::{json, Value};
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    fn alert_event(rule: &str, entity: &str, count: u64, update: bool) -> ProtocolEvent {
        ProtocolEvent {
            ts: Timestamp::from_secs_nanos(1_795_773_700, 0),
            flow: FlowMeta {
                id: FlowId(11),
                client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 20, 30, 31)), 50000),
                server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 10)), 104),
                start: Timestamp(0),
                handshake_seen: true,
            },
            body: EventBody::Alert(Alert {
                rule: rule.into(),
                severity: Severity::High,
                entity: AlertEntity {
                    kind: "user".into(),
                    id: entity.into(),
                },
                count,
                threshold: Some(15),
                window_seconds: Some(1800),
                first_seen: Timestamp::from_secs_nanos(1_795_773_601, 123_456_000),
                last_seen: Timestamp::from_secs_nanos(1_795_773_700, 0),
                summary: format!("{entity} exported {count} distinct studies in 30 min"),
                evidence: AlertEvidence {
                    flow_ids: vec![FlowId(11), FlowId(12)],
                    flow_ids_total: 3,
                    study_instance_uids: vec!["1.2.3".into()],
                    study_instance_uids_total: count,
                    ..AlertEvidence::default()
                },
                response: vec![
                    format!("disable account {entity} or revoke its sessions"),
                    "preserve the evidence pcap".into(),
                ],
                update,
                incident_id: "0123456789abcdef".into(),
            }),
        }
    }

    fn quiet() -> AlertmanagerOptions {
        AlertmanagerOptions {
            warnings: false,
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            ..AlertmanagerOptions::default()
        }
    }

    #[derive(Debug)]
    struct Request {
        line: String,
        headers: String,
        body: Vec<u8>,
    }

    impl Request {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    /// A loopback HTTP server answering each request with the next status of `statuses` (the
    /// last one repeats); `None` = read the request, then hold the connection without answering.
    /// Stops when dropped, or after 30 s at the latest.
    struct TestServer {
        addr: SocketAddr,
        requests: mpsc::Receiver<Request>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl TestServer {
        fn start(statuses: Vec<Option<u16>>) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, requests) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let started = Instant::now();
                let mut held = Vec::new();
                let mut served = 0;
                while !stop2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                    let Ok((mut s, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let Some(req) = read_request(&mut s) else { continue };
                    let status = statuses.get(served).or(statuses.last()).copied().flatten();
                    served += 1;
                    let _ = tx.send(req);
                    match status {
                        Some(code) => {
                            let body = if code == 200 { "" } else { "{\"error\":\"nope\"}" };
                            let _ = write!(
                                s,
                                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        None => held.push(s),
                    }
                }
            });
            TestServer {
                addr,
                requests,
                stop,
                thread: Some(thread),
            }
        }

        fn url(&self, prefix: &str) -> String {
            format!("http://{}{prefix}", self.addr)
        }

        fn next(&self) -> Request {
            self.requests.recv_timeout(Duration::from_secs(10)).expect("a request")
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn read_request(s: &mut impl Read) -> Option<Request> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..i].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap()
                    .parse()
                    .unwrap();
                while buf.len() < i + 4 + len {
                    let n = s.read(&mut chunk).ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let (line, headers) = head.split_once("\r\n").unwrap();
                return Some(Request {
                    line: line.to_owned(),
                    headers: headers.to_owned(),
                    body: buf[i + 4..i + 4 + len].to_vec(),
                });
            }
        }
    }

    fn wait_for(client: &AlertmanagerClient, done: impl Fn(&AlertmanagerStats) -> bool) -> AlertmanagerStats {
        let start = Instant::now();
        loop {
            let s = client.stats();
            if done(&s) || start.elapsed() > Duration::from_secs(10) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_alert_becomes_a_postable_alert_with_the_contract_labels() {
        let server = TestServer::start(vec![Some(200)]);
        let client = AlertmanagerClient::with_options(&server.url(""), quiet()).unwrap();
        let mut not_alert = alert_event("bulk_export", "rad2", 16, false);
        not_alert.body = EventBody::Hl7(Hl7Event::default());
        client.push(&not_alert);
        client.push(&alert_event("bulk_export", "rad2", 16, false));
        let req = server.next();
        assert_eq!(req.line, "POST /api/v2/alerts HTTP/1.1");
        let headers = req.headers.to_ascii_lowercase();
        assert!(headers.contains(&format!("host: {}\r\n", server.addr)), "{headers}");
        assert!(headers.contains("content-type: application/json"), "{headers}");
        assert!(headers.contains("connection: close"), "{headers}");
        assert_eq!(
            req.json(),
            json!([{
                "labels": {
                    "alertname": "pacstap_bulk_export",
                    "rule": "bulk_export",
                    "severity": "high",
                    "entity_kind": "user",
                    "entity": "rad2",
                },
                "annotations": {
                    "summary": "rad2 exported 16 distinct studies in 30 min",
                    "response": "disable account rad2 or revoke its sessions\npreserve the evidence pcap",
                    "count": "16",
                    "threshold": "15",
                    "window_seconds": "1800",
                    "first_seen": "2026-11-27T10:00:01.123456Z",
                    "last_seen": "2026-11-27T10:01:40.000000Z",
                    "flow_ids": "11,12",
                    "flows_total": "3",
                    "studies_total": "16",
                },
                "startsAt": "2026-11-27T10:00:01.123456Z",
            }])
        );
        let stats = wait_for(&client, |s| s.sent == 1);
        assert_eq!(
            stats,
            AlertmanagerStats {
                sent: 1,
                ..Default::default()
            }
        );
        assert_eq!(client.last_error(), None);
        client.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_prefix_is_kept_and_resolve_after_sets_ends_at() {
        let server = TestServer::start(vec![Some(200)]);
        let options = AlertmanagerOptions {
            resolve_after: Some(Duration::from_secs(3600)),
            ..quiet()
        };
        let client = AlertmanagerClient::with_options(&server.url("/alertmanager/"), options).unwrap();
        assert_eq!(
            client.endpoint(),
            format!("http://{}/alertmanager/api/v2/alerts", server.addr)
        );
        client.push(&alert_event("new_device", "rad1", 1, false));
        let req = server.next();
        assert_eq!(req.line, "POST /alertmanager/api/v2/alerts HTTP/1.1");
        let v = req.json();
        let ends = v[0]["endsAt"].as_str().unwrap().to_owned();
        let starts = v[0]["startsAt"].as_str().unwrap().to_owned();
        // RFC 3339 UTC strings of equal length compare as times; the packet time is in the past,
        // so endsAt is anchored at the wall clock: an hour from now, not from last_seen.
        let now = wall_clock().rfc3339();
        assert!(ends > now && ends > starts, "{ends} vs {now}");
        assert_eq!(client.shutdown(Duration::from_secs(1)).sent, 1);
    }

    #[test]
    fn a_500_is_retried_until_it_succeeds() {
        let server = TestServer::start(vec![Some(500), Some(503), Some(200)]);
        let client = AlertmanagerClient::with_options(&server.url(""), quiet()).unwrap();
        client.push(&alert_event("login_failures_user", "rad3", 9, false));
        let first = server.next();
        let second = server.next();
        let third = server.next();
        assert_eq!(first.body, second.body);
        assert_eq!(second.body, third.body);
        let stats = wait_for(&client, |s| s.sent == 1);
        assert_eq!(stats.sent, 1);
        assert_eq!(stats.failed_posts, 2);
        assert_eq!(stats.queued, 0);
        assert_eq!(client.last_error(), None, "cleared by the success");
        client.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_4xx_is_rejected_once_and_not_retried() {
        let server = TestServer::start(vec![Some(400), Some(200)]);
        let client = AlertmanagerClient::with_options(&server.url(""), quiet()).unwrap();
        client.push(&alert_event("admin_change", "admin", 1, false));
        server.next();
        let stats = wait_for(&client, |s| s.rejected == 1);
        assert_eq!((stats.rejected, stats.failed_posts, stats.sent), (1, 1, 0));
        let err = client.last_error().unwrap();
        assert!(err.contains("400") && err.contains("nope"), "{err}");
        std::thread::sleep(Duration::from_millis(200));
        assert!(server.requests.try_recv().is_err(), "a rejected batch is not resent");
        // The next alert goes through.
        client.push(&alert_event("admin_change", "admin2", 1, false));
        server.next();
        assert_eq!(wait_for(&client, |s| s.sent == 1).sent, 1);
        client.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn a_full_queue_counts_drops_without_blocking() {
        // The server reads the first POST and never answers: the push thread is stuck in it.
        let server = TestServer::start(vec![None]);
        let options = AlertmanagerOptions {
            queue_capacity: 4,
            io_timeout: Duration::from_secs(30),
            ..quiet()
        };
        let client = AlertmanagerClient::with_options(&server.url(""), options).unwrap();
        client.push(&alert_event("bulk_export", "u0", 16, false));
        server.next();
        let started = Instant::now();
        for i in 1..=7 {
            client.push(&alert_event("bulk_export", &format!("u{i}"), 16, false));
        }
        // An update of a queued incident replaces it even when the queue is full.
        client.push(&alert_event("bulk_export", "u2", 40, true));
        assert!(started.elapsed() < Duration::from_millis(500), "push blocked");
        let stats = client.stats();
        assert_eq!(stats.dropped, 3, "{stats:?}");
        assert_eq!(stats.queued, 5, "4 queued + 1 in flight: {stats:?}");
        {
            let state = lock(&client.shared.state);
            let u2 = state.queue.iter().find(|q| q.labels["entity"] == "u2").unwrap();
            assert_eq!(u2.annotations["count"], "40");
        }
        // Shutdown gives up at its deadline even though the server never answers.
        let started = Instant::now();
        let fin = client.shutdown(Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(fin.dropped, 3 + 5, "{fin:?}");
        assert_eq!((fin.sent, fin.queued), (0, 0));
    }

    #[test]
    fn shutdown_delivers_what_is_queued() {
        let server = TestServer::start(vec![Some(200)]);
        let client = AlertmanagerClient::with_options(&server.url(""), quiet()).unwrap();
        for i in 0..5 {
            client.push(&alert_event("unknown_destination", &format!("AE{i}"), 1, false));
        }
        let fin = client.shutdown(Duration::from_secs(5));
        assert_eq!(fin.sent, 5, "{fin:?}");
        assert_eq!((fin.dropped, fin.queued), (0, 0));
        let mut entities = Vec::new();
        while let Ok(req) = server.requests.try_recv() {
            for a in req.json().as_array().unwrap() {
                entities.push(a["labels"]["entity"].as_str().unwrap().to_owned());
            }
        }
        entities.sort();
        assert_eq!(entities, ["AE0", "AE1", "AE2", "AE3", "AE4"]);
    }

    #[test]
    fn shutdown_cuts_a_long_backoff_short_with_one_more_try() {
        let server = TestServer::start(vec![Some(503), Some(200)]);
        let options = AlertmanagerOptions {
            retry_initial: Duration::from_secs(20),
            ..quiet()
        };
        let client = AlertmanagerClient::with_options(&server.url(""), options).unwrap();
        client.push(&alert_event("new_location", "rad5", 1, false));
        server.next();
        assert_eq!(wait_for(&client, |s| s.failed_posts == 1).failed_posts, 1);
        let started = Instant::now();
        let fin = client.shutdown(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!((fin.sent, fin.dropped), (1, 0), "{fin:?}");
    }

    #[test]
    fn an_unreachable_alertmanager_fails_within_the_shutdown_deadline() {
        // A loopback port nobody listens on: connection refused.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = AlertmanagerClient::with_options(&format!("http://127.0.0.1:{port}"), quiet()).unwrap();
        client.push(&alert_event("sharing_spike", "rad4", 30, false));
        let stats = wait_for(&client, |s| s.failed_posts >= 2);
        assert!(stats.failed_posts >= 2);
        assert!(client.last_error().unwrap().contains("connect"));
        let started = Instant::now();
        let fin = client.shutdown(Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!((fin.sent, fin.dropped, fin.queued), (0, 1, 0));
    }

    #[test]
    fn https_is_accepted_and_unusable_urls_are_refused_at_construction() {
        let client = AlertmanagerClient::new("HTTPS://am.example:9093").unwrap();
        assert_eq!(client.endpoint(), "https://am.example:9093/api/v2/alerts");
        drop(client);
        for bad in ["ftp://am.example", "http://am:0", "http://am\r\nX-Injected: 1"] {
            let err = AlertmanagerClient::new(bad).err();
            assert!(
                matches!(err, Some(AlertmanagerError::InvalidUrl { .. })),
                "{bad:?} gave {err:?}"
            );
        }
        let err = AlertmanagerClient::new("https://admin:s3cret@am:9093").err().unwrap();
        let msg = err.to_string();
        assert!(!msg.contains("s3cret") && msg.contains("credentials"), "{msg}");
        let options = AlertmanagerOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..quiet()
        };
        let err = AlertmanagerClient::with_options("https://am:9093", options).err();
        assert!(matches!(err, Some(AlertmanagerError::CaFile { .. })), "{err:?}");
    }

    fn testdata(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/alertmanager/testdata");
        std::fs::read(dir.join(name)).unwrap()
    }

    /// A loopback HTTPS server (rustls, the test certificate for 127.0.0.1 and localhost) that
    /// answers 200 to `n` requests and hands each over.
    fn tls_server(n: usize) -> (SocketAddr, mpsc::Receiver<Request>) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = ureq::tls::parse_pem(&testdata("server.pem"))
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(CertificateDer::from(c.der().to_vec())),
                _ => None,
            })
            .collect();
        let key = ureq::tls::parse_pem(&testdata("server.key"))
            .find_map(|i| match i.unwrap() {
                ureq::tls::PemItem::PrivateKey(k) => Some(k.der().to_vec()),
                _ => None,
            })
            .unwrap();
        let key = PrivateKeyDer::try_from(key).unwrap();
        // The provider ureq's client uses (rustls 0.23.48 deprecates it for lacking
        // post-quantum key exchange, which a loopback test does not need).
        #[expect(deprecated, reason = "the same ring provider as ureq's client")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..n {
                let Ok((tcp, _)) = listener.accept() else { return };
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let Some(req) = read_request(&mut tls) else { continue };
                let _ = tx.send(req);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (addr, rx)
    }

    #[test]
    fn alerts_reach_an_https_alertmanager_whose_ca_is_given() {
        let (addr, requests) = tls_server(1);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/alertmanager/testdata");
        let options = AlertmanagerOptions {
            ca_file: Some(dir.join("ca.pem")),
            ..quiet()
        };
        let url = format!("https://localhost:{}/am", addr.port());
        let client = AlertmanagerClient::with_options(&url, options).unwrap();
        client.push(&alert_event("bulk_export", "rad2", 16, false));
        let req = requests
            .recv_timeout(Duration::from_secs(10))
            .expect("a request over TLS");
        assert_eq!(req.line, "POST /am/api/v2/alerts HTTP/1.1");
        assert_eq!(req.json()[0]["labels"]["entity"], "rad2");
        let fin = client.shutdown(Duration::from_secs(5));
        assert_eq!((fin.sent, fin.failed_posts, fin.dropped), (1, 0, 0), "{fin:?}");
    }

    #[test]
    fn an_https_alertmanager_with_an_untrusted_certificate_is_a_failed_post() {
        let (addr, requests) = tls_server(1);
        // The system roots (or Mozilla's) do not hold the test CA.
        let url = format!("https://127.0.0.1:{}", addr.port());
        let client = AlertmanagerClient::with_options(&url, quiet()).unwrap();
        client.push(&alert_event("bulk_export", "rad2", 16, false));
        let stats = wait_for(&client, |s| s.failed_posts >= 1);
        assert_eq!((stats.failed_posts >= 1, stats.sent), (true, 0), "{stats:?}");
        assert!(requests.try_recv().is_err(), "nothing was sent in the clear");
        let err = client.last_error().unwrap();
        assert!(err.contains("127.0.0.1"), "{err}");
        let fin = client.shutdown(Duration::from_millis(100));
        assert_eq!((fin.sent, fin.dropped), (0, 1), "{fin:?}");
    }
}
