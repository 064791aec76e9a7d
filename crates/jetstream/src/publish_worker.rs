//! The publisher thread ([`crate::publish::Publisher`]): a current-thread tokio runtime that
//! exists only here, the NATS client, and one loop that takes events from the queue while the
//! server is reachable, keeps up to `max_in_flight` publishes awaiting their acks, and sends
//! failed ones again with back-off. The queue is read only while a publish can go out, so
//! during an outage events wait in the bounded queue (and the newest are dropped when it is
//! full), never in an unbounded buffer of the client.

use crate::publish::{Outgoing, PublishCounters, PublishSettings, MAX_REFUSALS};
use crate::stream::ensure_stream;
use async_nats::connection::State;
use async_nats::jetstream::context::{Publish, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// First wait after a failure; doubled per failure in a row up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts while the server is away: a returning server is used within
/// this (async-nats' own reconnect back-off is of the same order).
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the loop looks at the connection state when nothing else wakes it.
const POLL: Duration = Duration::from_millis(50);

type AckFuture = Pin<Box<dyn Future<Output = (Outgoing, Result<PublishAck, PublishErrorKind>)> + Send>>;

/// The thread's body: builds the runtime and runs the loop to its end.
pub(crate) fn run(
    settings: PublishSettings,
    rx: mpsc::Receiver<Outgoing>,
    stop: oneshot::Receiver<Instant>,
    counters: Arc<PublishCounters>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => {
            // No runtime, no publishing: everything offered is dropped (counted at shutdown).
            return drop_all(rx, &counters, Vec::new());
        }
    };
    rt.block_on(publish_loop(settings, rx, stop, Arc::clone(&counters)));
}

/// What is left when the loop ends: counted as dropped.
fn drop_all(mut rx: mpsc::Receiver<Outgoing>, counters: &PublishCounters, left: Vec<Outgoing>) {
    rx.close();
    let mut n = left.len() as u64;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    counters.queued.store(0, Ordering::Relaxed);
    counters.pending.store(0, Ordering::Relaxed);
    PublishCounters::add(&counters.dropped, n);
}

async fn connect(settings: &PublishSettings) -> Result<async_nats::Client, String> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("pacstap sensor {}", settings.host))
        // Start with the server away; reconnect for as long as it stays away.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5));
    if let Some(creds) = &settings.credentials {
        opts = opts
            .credentials_file(creds)
            .await
            .map_err(|e| format!("credentials file {}: {e}", creds.display()))?;
    }
    let tls = &settings.tls;
    if let Some(ca) = &tls.ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if tls.require_tls {
        opts = opts.require_tls(true);
    }
    opts.connect(settings.servers.join(",").as_str())
        .await
        .map_err(|e| e.to_string())
}

/// Exponential back-off between failed attempts, reset by a success.
struct Backoff {
    wait: Duration,
    until: Option<Instant>,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            wait: BACKOFF_MIN,
            until: None,
        }
    }
    fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now >= u)
    }
    fn failed(&mut self, now: Instant) {
        if self.ready(now) {
            self.until = Some(now + self.wait);
            self.wait = (self.wait * 2).min(BACKOFF_MAX);
        }
    }
    fn succeeded(&mut self) {
        self.wait = BACKOFF_MIN;
        self.until = None;
    }
}

async fn publish_loop(
    settings: PublishSettings,
    mut rx: mpsc::Receiver<Outgoing>,
    mut stop: oneshot::Receiver<Instant>,
    counters: Arc<PublishCounters>,
) {
    let client = match connect(&settings).await {
        Ok(c) => c,
        Err(_) => {
            // A credentials file that cannot be read: nothing can be published. The caller
            // checked it at start-up; if it vanished since, the events are counted as dropped.
            return drop_all(rx, &counters, Vec::new());
        }
    };
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(settings.ack_timeout);
    let max = settings.max_in_flight;
    let mut in_flight: FuturesUnordered<AckFuture> = FuturesUnordered::new();
    let mut retry: VecDeque<Outgoing> = VecDeque::new();
    let mut backoff = Backoff::new();
    let mut stream_ready = false;
    let mut deadline: Option<Instant> = None;
    let mut closed = false;
    loop {
        let now = Instant::now();
        let connected = client.connection_state() == State::Connected;
        counters.connected.store(connected, Ordering::Relaxed);
        counters
            .pending
            .store((in_flight.len() + retry.len()) as u64, Ordering::Relaxed);
        // Done: the queue is closed (shutdown) and empty, and nothing awaits an ack. Checked
        // with `is_empty` too, so an idle sensor with its server away does not wait out the
        // whole drain.
        let drained = closed || (deadline.is_some() && rx.is_empty());
        if drained && in_flight.is_empty() && retry.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if connected && !stream_ready && backoff.ready(now) {
            let made = tokio::time::timeout(settings.ack_timeout, ensure_stream(&js, &settings.stream)).await;
            if matches!(made, Ok(Ok(_))) {
                stream_ready = true;
                backoff.succeeded();
            } else {
                backoff.failed(Instant::now());
            }
            continue;
        }
        let can_send = connected && stream_ready && backoff.ready(now);
        while can_send && in_flight.len() < max {
            let Some(msg) = retry.pop_front() else { break };
            PublishCounters::add(&counters.retried, 1);
            in_flight.push(send(&js, msg, settings.ack_timeout).await);
        }
        let room = can_send && in_flight.len() + retry.len() < max;
        let wake = deadline.map_or(POLL, |d| d.saturating_duration_since(now).min(POLL));
        tokio::select! {
            biased;
            Some((msg, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(_) => {
                        PublishCounters::add(&counters.acked, 1);
                        backoff.succeeded();
                    }
                    Err(kind) => {
                        let mut msg = msg;
                        if kind == PublishErrorKind::StreamNotFound {
                            stream_ready = false;
                        }
                        let refused = matches!(
                            kind,
                            PublishErrorKind::Other
                                | PublishErrorKind::WrongLastMessageId
                                | PublishErrorKind::WrongLastSequence
                        );
                        if refused {
                            msg.refusals += 1;
                        }
                        if msg.refusals >= MAX_REFUSALS {
                            PublishCounters::add(&counters.failed, 1);
                        } else {
                            retry.push_back(msg);
                        }
                        backoff.failed(Instant::now());
                    }
                }
            }
            got = rx.recv(), if room && !closed => match got {
                Some(msg) => {
                    counters.queued.fetch_sub(1, Ordering::Relaxed);
                    in_flight.push(send(&js, msg, settings.ack_timeout).await);
                }
                None => closed = true,
            },
            at = &mut stop, if deadline.is_none() => {
                // Shutdown asked: drain until `at`. A dropped sender means: stop now.
                deadline = Some(at.unwrap_or_else(|_| Instant::now()));
                rx.close();
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
    // Flush what was sent, so acked messages are not cut off mid-write (bounded by the deadline
    // that ended the loop, or already idle).
    // Not while disconnected: a flush would only wait out its timeout.
    if client.connection_state() == State::Connected {
        let _ = tokio::time::timeout(Duration::from_millis(200), client.flush()).await;
    }
    let left: Vec<Outgoing> = retry.into_iter().collect();
    let in_flight_left = in_flight.len() as u64;
    PublishCounters::add(&counters.dropped, in_flight_left);
    drop_all(rx, &counters, left);
    counters.connected.store(false, Ordering::Relaxed);
}

/// Sends one message and returns the future of its ack. A message the client could not even
/// take (connection gone) comes back at once as a failure, to be retried.
async fn send(js: &async_nats::jetstream::Context, msg: Outgoing, ack_timeout: Duration) -> AckFuture {
    let publish = Publish::build().payload(msg.payload.clone()).message_id(&msg.id);
    let sent = tokio::time::timeout(ack_timeout, js.send_publish(msg.subject.to_string(), publish)).await;
    match sent {
        Ok(Ok(ack)) => Box::pin(async move {
            let r = ack.await.map_err(|e| e.kind());
            (msg, r)
        }),
        Ok(Err(e)) => {
            let kind = e.kind();
            Box::pin(async move { (msg, Err(kind)) })
        }
        Err(_) => Box::pin(async move { (msg, Err(PublishErrorKind::TimedOut)) }),
    }
}
