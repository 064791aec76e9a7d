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
//! HTTP/1.1 is written by hand over [`TcpStream`]: one request per connection
//! (`Connection: close`), `Content-Length`, bounded connect/read/write timeouts. There is no TLS
//! client in pacstap, so `https://` is refused at construction: use `http://` to an
//! Alertmanager on the internal network, or a TLS-terminating proxy beside pacstap.
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
//! an Alertmanager that moves is followed (resolution itself is the system resolver's and not
//! bounded by the timeouts here).

use pacstap_core::{Alert, EventBody, ProtocolEvent, Timestamp};
use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Alertmanager API v2 path, appended to the URL's prefix.
pub const API_PATH: &str = "/api/v2/alerts";

/// Default queue bound: a burst of alerts far beyond any real incident, a few MiB at most.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Label values come from the wire (a user name in a Basic-auth header): keep them bounded.
const MAX_LABEL_CHARS: usize = 256;
const MAX_ANNOTATION_CHARS: usize = 4096;

/// The response is read only for its status line and an error message: never more than this.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// Reads wait at most this long at a time, so a shutdown deadline interrupts a hung server.
const IO_SLICE: Duration = Duration::from_millis(200);

/// A still-failing Alertmanager is reported on stderr at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why an Alertmanager URL was refused, or the push thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error(
        "Alertmanager URL `{url}`: https is not supported (pacstap has no TLS client); \
         use http:// to Alertmanager on the internal network, or put a TLS-terminating proxy \
         (nginx, stunnel, …) beside pacstap and give its http:// address"
    )]
    HttpsUnsupported { url: String },
    #[error("Alertmanager URL `{url}`: {reason} (expected http://host[:port][/prefix])")]
    InvalidUrl { url: String, reason: String },
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
    /// TCP connect timeout, per resolved address.
    pub connect_timeout: Duration,
    /// Write of the request, and read of the response, each at most this long.
    pub io_timeout: Duration,
    /// Rate-limited warnings on stderr (first failure, then one a minute, and recovery).
    pub warnings: bool,
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

/// Where alerts go: validated at construction, resolved at each attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Host name or address, without IPv6 brackets.
    host: String,
    port: u16,
    /// Request path: prefix + [`API_PATH`].
    path: String,
    /// `Host:` header value (`host:port`, IPv6 in brackets).
    authority: String,
}

impl Target {
    fn display(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// The URL as it may be shown in a message: user info (a password) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_owned(),
    }
}

fn parse_url(url: &str) -> Result<Target, AlertmanagerError> {
    let url = url.trim();
    let invalid = |reason: &str| AlertmanagerError::InvalidUrl {
        url: redact(url),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("no http:// scheme"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(AlertmanagerError::HttpsUnsupported { url: redact(url) });
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(invalid(&format!("unsupported scheme `{scheme}`")));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("spaces or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("a query string or fragment"));
    }
    let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    let (host, port, bracketed) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, tail) = inner.split_once(']').ok_or_else(|| invalid("unclosed `[`"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("not an IPv6 address in brackets"));
        }
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or_else(|| invalid("junk after `]`"))?),
        };
        (host, port, true)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(invalid("IPv6 addresses go in brackets, e.g. http://[::1]:9093"))
            }
            Some((h, p)) => (h, Some(p), false),
            None => (authority, None, false),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if !bracketed
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid("not a host name or IPv4 address"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| invalid("bad port"))?,
    };
    let prefix = prefix.trim_end_matches('/');
    // Someone who pasted the whole API URL means that URL.
    let path = if prefix.ends_with(API_PATH) {
        prefix.to_owned()
    } else {
        format!("{prefix}{API_PATH}")
    };
    let authority = if bracketed {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        path,
        authority,
    })
}

/// `s`, cut to `max` characters (an ellipsis marks the cut).
fn capped(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An alert as queued: Alertmanager's labels and annotations, plus the times `endsAt` is
/// computed from at sending.
#[derive(Debug, Clone, PartialEq)]
struct QueuedAlert {
    /// Hash of `labels`, to find a queued alert of the same incident quickly.
    key: u64,
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, String>,
    first_seen: Timestamp,
    last_seen: Timestamp,
}

impl QueuedAlert {
    fn new(a: &Alert) -> QueuedAlert {
        let label = |s: &str| capped(s, MAX_LABEL_CHARS);
        let labels: BTreeMap<&'static str, String> = [
            ("alertname", label(&format!("pacstap_{}", a.rule))),
            ("rule", label(&a.rule)),
            ("severity", a.severity.as_str().to_owned()),
            ("entity_kind", label(&a.entity.kind)),
            ("entity", label(&a.entity.id)),
        ]
        .into_iter()
        .collect();
        let note = |s: &str| capped(s, MAX_ANNOTATION_CHARS);
        let mut annotations = BTreeMap::new();
        annotations.insert("summary", note(&a.summary));
        if !a.response.is_empty() {
            annotations.insert("response", note(&a.response.join("\n")));
        }
        annotations.insert("count", a.count.to_string());
        if let Some(t) = a.threshold {
            annotations.insert("threshold", t.to_string());
        }
        if let Some(w) = a.window_seconds {
            annotations.insert("window_seconds", w.to_string());
        }
        annotations.insert("first_seen", a.first_seen.rfc3339());
        annotations.insert("last_seen", a.last_seen.rfc3339());
        let ev = &a.evidence;
        if !ev.flow_ids.is_empty() {
            let ids: Vec<String> = ev.flow_ids.iter().map(|f| f.0.to_string()).collect();
            annotations.insert("flow_ids", note(&ids.join(",")));
            annotations.insert(
                "flows_total",
                ev.flow_ids_total.max(ev.flow_ids.len() as u64).to_string(),
            );
        }
        if ev.study_instance_uids_total > 0 {
            // The total only: study UIDs stay in the events file.
            annotations.insert("studies_total", ev.study_instance_uids_total.to_string());
        }
        if let Some(p) = &ev.pcap {
            annotations.insert("evidence_pcap", note(p));
        }
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        QueuedAlert {
            key: h.finish(),
            labels,
            annotations,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
        }
    }
}

/// One element of the POST body (Alertmanager API v2 `postableAlert`).
#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<&'static str, String>,
    annotations: &'a BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt", skip_serializing_if = "Option::is_none")]
    starts_at: Option<Timestamp>,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<Timestamp>,
}

fn wall_clock() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| Timestamp::from_secs_nanos(d.as_secs(), u64::from(d.subsec_nanos())))
        .unwrap_or(Timestamp::ZERO)
}

fn body(batch: &[QueuedAlert], resolve_after: Option<Duration>) -> Vec<u8> {
    let now = wall_clock();
    let alerts: Vec<PostableAlert<'_>> = batch
        .iter()
        .map(|q| PostableAlert {
            labels: &q.labels,
            annotations: &q.annotations,
            starts_at: (q.first_seen.0 > 0).then_some(q.first_seen),
            ends_at: resolve_after.map(|d| q.first_seen.max(q.last_seen).max(now).add(d)),
        })
        .collect();
    // Maps of strings and timestamps: serializing cannot fail; an empty array if it did.
    serde_json::to_vec(&alerts).unwrap_or_else(|_| b"[]".to_vec())
}

struct State {
    queue: VecDeque<QueuedAlert>,
    /// Set by shutdown (or drop): deliver what is queued until then, then stop.
    stop_at: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    sent: AtomicU64,
    failed_posts: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    in_flight: AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Shared {
    fn stop_at(&self) -> Option<Instant> {
        lock(&self.state).stop_at
    }

    /// `limit`, shortened to what is left before the shutdown deadline; `None` once it passed.
    fn budget(&self, limit: Duration) -> Option<Duration> {
        match self.stop_at() {
            None => Some(limit),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(limit))
            }
        }
    }
}

/// `now + d`, or a day from now if that overflows `Instant` (it cannot for sane `d`).
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
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
    /// A client for `url` (`http://host[:port][/prefix]`, port 80 by default) with default
    /// options. Fails at once on a URL it could never use (https, credentials, bad port…), so
    /// bad usage is reported at startup rather than at the first alert.
    pub fn new(url: &str) -> Result<AlertmanagerClient, AlertmanagerError> {
        AlertmanagerClient::with_options(url, AlertmanagerOptions::default())
    }

    pub fn with_options(url: &str, options: AlertmanagerOptions) -> Result<AlertmanagerClient, AlertmanagerError> {
        let target = parse_url(url)?;
        let options = AlertmanagerOptions {
            queue_capacity: options.queue_capacity.max(1),
            max_batch: options.max_batch.max(1),
            retry_initial: options.retry_initial.max(Duration::from_millis(1)),
            connect_timeout: options.connect_timeout.max(Duration::from_millis(1)),
            io_timeout: options.io_timeout.max(Duration::from_millis(1)),
            ..options
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                stop_at: None,
            }),
            wake: Condvar::new(),
            capacity: options.queue_capacity,
            sent: AtomicU64::new(0),
            failed_posts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            target: target.clone(),
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

    /// Where alerts are POSTed (`http://host:port/prefix/api/v2/alerts`).
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
    /// about `deadline` plus a fraction of a second (a host-name lookup excepted).
    pub fn shutdown(mut self, deadline: Duration) -> AlertmanagerStats {
        self.request_stop(later(deadline));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

/// How a POST failed.
#[derive(Debug)]
enum PostError {
    /// May succeed later: network trouble, timeout, 408, 429, 5xx.
    Transient(String),
    /// Will not succeed by resending the same alerts: other 4xx.
    Rejected(String),
}

/// stderr warnings at a bounded rate: the first failure, then at most one a minute (saying how
/// many were not reported), and one line when delivery works again.
struct Warner {
    enabled: bool,
    endpoint: String,
    last_line: Option<Instant>,
    unreported: u64,
    /// A failure line was printed and no recovery line since: a flapping Alertmanager gets
    /// one pair of lines a minute, not one per flap.
    reported: bool,
}

impl Warner {
    fn new(enabled: bool, endpoint: String) -> Warner {
        Warner {
            enabled,
            endpoint,
            last_line: None,
            unreported: 0,
            reported: false,
        }
    }

    fn failure(&mut self, message: &str) {
        if self.last_line.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.unreported += 1;
            return;
        }
        if self.enabled {
            let more = match self.unreported {
                0 => String::new(),
                n => format!(" ({n} more failures since the last message)"),
            };
            eprintln!("pacstap: warning: alertmanager {}: {message}{more}", self.endpoint);
        }
        self.last_line = Some(Instant::now());
        self.unreported = 0;
        self.reported = true;
    }

    fn success(&mut self) {
        if self.reported && self.enabled {
            eprintln!("pacstap: alertmanager {}: delivering again", self.endpoint);
        }
        self.reported = false;
    }
}

struct Worker {
    shared: Arc<Shared>,
    target: Target,
    options: AlertmanagerOptions,
    warn: Warner,
}

impl Worker {
    fn run(mut self) {
        let mut batch: Vec<QueuedAlert> = Vec::new();
        let mut backoff = self.options.retry_initial;
        loop {
            if !self.fill(&mut batch) {
                return;
            }
            let payload = body(&batch, self.options.resolve_after);
            let n = batch.len() as u64;
            match self.post(&payload) {
                Ok(()) => {
                    // Out of flight before counted as sent: a reader of `stats` never sees an
                    // alert both sent and queued.
                    batch.clear();
                    self.shared.in_flight.store(0, Ordering::Relaxed);
                    *lock(&self.shared.last_error) = None;
                    self.shared.sent.fetch_add(n, Ordering::Relaxed);
                    self.warn.success();
                    backoff = self.options.retry_initial;
                }
                Err(PostError::Rejected(msg)) => {
                    self.failed(&msg);
                    batch.clear();
                    self.shared.in_flight.store(0, Ordering::Relaxed);
                    self.shared.rejected.fetch_add(n, Ordering::Relaxed);
                    backoff = self.options.retry_initial;
                }
                Err(PostError::Transient(msg)) => {
                    self.failed(&msg);
                    self.pause(backoff);
                    backoff = backoff
                        .saturating_mul(2)
                        .min(self.options.retry_max.max(self.options.retry_initial));
                }
            }
        }
    }

    fn failed(&mut self, message: &str) {
        self.shared.failed_posts.fetch_add(1, Ordering::Relaxed);
        *lock(&self.shared.last_error) = Some(message.to_owned());
        self.warn.failure(message);
    }

    /// Top `batch` up from the queue, waiting while there is nothing to send. False when the
    /// thread should end: stopping with nothing left, or the shutdown deadline passed (what
    /// was left is then counted as dropped).
    fn fill(&self, batch: &mut Vec<QueuedAlert>) -> bool {
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(at) = state.stop_at {
                if Instant::now() >= at {
                    let left = (batch.len() + state.queue.len()) as u64;
                    batch.clear();
                    state.queue.clear();
                    self.shared.dropped.fetch_add(left, Ordering::Relaxed);
                    self.shared.in_flight.store(0, Ordering::Relaxed);
                    return false;
                }
            }
            let room = self.options.max_batch.saturating_sub(batch.len());
            let take = room.min(state.queue.len());
            batch.extend(state.queue.drain(..take));
            // Under the lock, so stats() never sees an alert in neither place.
            self.shared.in_flight.store(batch.len() as u64, Ordering::Relaxed);
            if !batch.is_empty() {
                return true;
            }
            if state.stop_at.is_some() {
                return false;
            }
            state = match self.shared.wake.wait(state) {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }

    /// Wait `d` before retrying, or less: a shutdown requested meanwhile means one more try
    /// now (its deadline may be shorter than the backoff), and the deadline ends any wait.
    fn pause(&self, d: Duration) {
        let until = later(d);
        let mut state = lock(&self.shared.state);
        let stopping = state.stop_at.is_some();
        loop {
            if !stopping && state.stop_at.is_some() {
                return;
            }
            let now = Instant::now();
            let end = state.stop_at.map_or(until, |s| s.min(until));
            if now >= end {
                return;
            }
            state = match self.shared.wake.wait_timeout(state, end - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn post(&self, payload: &[u8]) -> Result<(), PostError> {
        let t = &self.target;
        let past_deadline = || PostError::Transient("shutdown deadline passed".into());
        let addrs: Vec<SocketAddr> = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|e| PostError::Transient(format!("cannot resolve {}: {e}", t.host)))?
            .collect();
        let mut stream = None;
        let mut why = format!("{} resolves to no address", t.host);
        for addr in addrs {
            let limit = self
                .shared
                .budget(self.options.connect_timeout)
                .ok_or_else(past_deadline)?;
            match TcpStream::connect_timeout(&addr, limit) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => why = format!("connect to {addr}: {e}"),
            }
        }
        let mut stream = stream.ok_or(PostError::Transient(why))?;
        let _ = stream.set_nodelay(true);
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pacstap/{}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            t.path,
            t.authority,
            env!("CARGO_PKG_VERSION"),
            payload.len()
        );
        let limit = self.shared.budget(self.options.io_timeout).ok_or_else(past_deadline)?;
        let sent = stream
            .set_write_timeout(Some(limit))
            .and_then(|()| stream.write_all(head.as_bytes()))
            .and_then(|()| stream.write_all(payload))
            .and_then(|()| stream.flush());
        if let Err(e) = sent {
            return Err(PostError::Transient(format!("sending the request: {e}")));
        }
        let response = self.read_response(&mut stream)?;
        classify(&response)
    }

    /// The response, up to [`MAX_RESPONSE_BYTES`]: until the server closes, the body is
    /// complete, or the time is up (the status line suffices then).
    fn read_response(&self, stream: &mut TcpStream) -> Result<Vec<u8>, PostError> {
        let end = later(self.options.io_timeout);
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let Some(limit) = self.shared.budget(left.min(IO_SLICE)) else {
                return Err(PostError::Transient("shutdown deadline passed".into()));
            };
            if left.is_zero() {
                if status_code(&buf).is_some() {
                    return Ok(buf);
                }
                return Err(PostError::Transient(format!(
                    "no response within {:?}",
                    self.options.io_timeout
                )));
            }
            if let Err(e) = stream.set_read_timeout(Some(limit)) {
                return Err(PostError::Transient(format!("reading the response: {e}")));
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(buf),
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    if buf.len() >= MAX_RESPONSE_BYTES || response_complete(&buf) {
                        return Ok(buf);
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset after the status line arrived still tells us the outcome.
                Err(_) if status_code(&buf).is_some() => return Ok(buf),
                Err(e) => return Err(PostError::Transient(format!("reading the response: {e}"))),
            }
        }
    }
}

/// `NNN` of `HTTP/1.x NNN reason`, once the status line is complete.
fn status_code(buf: &[u8]) -> Option<u16> {
    let line_end = buf.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(buf.get(..line_end)?).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Head received and `Content-Length` body bytes after it.
fn response_complete(buf: &[u8]) -> bool {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or(&[]));
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|n| buf.len() >= head_end + 4 + n)
}

fn classify(response: &[u8]) -> Result<(), PostError> {
    let Some(status) = status_code(response) else {
        return Err(PostError::Transient("no HTTP status line in the response".into()));
    };
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|i| response.get(i + 4..))
        .unwrap_or(&[]);
    let text = String::from_utf8_lossy(body);
    let text = capped(text.trim(), 200);
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    match status {
        408 | 429 => Err(PostError::Transient(message)),
        400..=499 => Err(PostError::Rejected(message)),
        _ => Err(PostError::Transient(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
    use serde_json::{json, Value};
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
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

    fn read_request(s: &mut TcpStream) -> Option<Request> {
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
                    .find_map(|l| l.strip_prefix("Content-Length: "))
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
    fn warnings_are_rate_limited() {
        let mut w = Warner::new(false, "http://am:9093/api/v2/alerts".into());
        w.failure("first");
        let first = w.last_line;
        assert!(first.is_some() && w.reported);
        for _ in 0..100 {
            w.failure("again");
        }
        assert_eq!((w.last_line, w.unreported), (first, 100), "one line a minute at most");
        w.success();
        assert!(!w.reported);
        w.failure("flap");
        assert_eq!(
            (w.last_line, w.unreported),
            (first, 101),
            "a flap within the minute stays quiet"
        );
        w.success();
        assert!(!w.reported, "and so does its recovery");
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
    fn https_and_unusable_urls_are_refused_at_construction() {
        let err = AlertmanagerClient::new("https://am.example:9093").err().unwrap();
        assert!(matches!(err, AlertmanagerError::HttpsUnsupported { .. }));
        let msg = err.to_string();
        assert!(msg.contains("proxy") && msg.contains("http://"), "{msg}");
        assert!(matches!(
            AlertmanagerClient::new("HTTPS://am").err(),
            Some(AlertmanagerError::HttpsUnsupported { .. })
        ));
        for bad in [
            "am.example:9093",
            "ftp://am.example",
            "http://",
            "http://:9093",
            "http://am:0",
            "http://am:99999",
            "http://am:port",
            "http://am/x?y=1",
            "http://am/x#y",
            "http://::1:9093",
            "http://[::1",
            "http://[nothost]:9093",
            "http://am example",
            "http://am\r\nX-Injected: 1",
        ] {
            let err = AlertmanagerClient::new(bad).err();
            assert!(
                matches!(err, Some(AlertmanagerError::InvalidUrl { .. })),
                "{bad:?} gave {err:?}"
            );
        }
        let err = AlertmanagerClient::new("http://admin:s3cret@am:9093").err().unwrap();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn urls_parse_to_host_port_and_api_path() {
        let t = parse_url("http://[::1]:9093/x/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9093));
        assert_eq!(t.authority, "[::1]:9093");
        assert_eq!(t.path, "/x/api/v2/alerts");
        let t = parse_url(" HTTP://Alertmanager.example ").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("Alertmanager.example", 80, API_PATH)
        );
        let t = parse_url("http://am:9093/api/v2/alerts").unwrap();
        assert_eq!(t.path, API_PATH, "a full API URL is taken as it is");
        assert_eq!(parse_url("http://10.0.0.5:9093//").unwrap().path, API_PATH);
    }

    #[test]
    fn labels_are_capped_and_responses_classified() {
        let mut ev = alert_event("new_device", &"x".repeat(10_000), 1, false);
        if let EventBody::Alert(a) = &mut ev.body {
            let q = QueuedAlert::new(a);
            assert_eq!(q.labels["entity"].chars().count(), MAX_LABEL_CHARS);
            assert!(q.labels["entity"].ends_with('…'));
            a.evidence.pcap = Some("/var/lib/pacstap/evidence/a.pcap".into());
            a.response.clear();
            let q = QueuedAlert::new(a);
            assert_eq!(q.annotations["evidence_pcap"], "/var/lib/pacstap/evidence/a.pcap");
            assert!(!q.annotations.contains_key("response"));
        }
        assert!(classify(b"HTTP/1.1 200 OK\r\n\r\n").is_ok());
        assert!(matches!(
            classify(b"HTTP/1.0 429 Slow\r\n\r\n"),
            Err(PostError::Transient(_))
        ));
        assert!(matches!(
            classify(b"HTTP/1.1 404 No\r\n\r\n"),
            Err(PostError::Rejected(_))
        ));
        assert!(matches!(
            classify(b"HTTP/1.1 502 Bad\r\n\r\n"),
            Err(PostError::Transient(_))
        ));
        assert!(matches!(classify(b"garbage"), Err(PostError::Transient(_))));
        assert!(response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}"));
    }
}
