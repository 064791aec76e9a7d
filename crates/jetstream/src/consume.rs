//! The central detector's side of the stream: a [`Consumer`] that reads every sensor's events
//! through one **durable pull consumer** and hands them to the (synchronous) detection thread
//! through a bounded channel.
//!
//! Why a thread of its own with a current-thread tokio runtime: `async-nats` needs a runtime,
//! detection does not; confining the runtime here keeps the detector a plain loop over a
//! channel, the same loop `detect --from FILE` runs.
//!
//! Why acks wait for the caller ([`Consumer::ack`]): a message acked before detection applied
//! it (and before the checkpoint that covers it was on disk, see [`crate::checkpoint`]) is lost
//! if the detector dies right then — JetStream would never deliver it again. So a message is
//! acked only when the caller says so, and the caller says so after its checkpoint. Until then
//! it stays pending on the server; `max_ack_pending` bounds how many may be, which bounds both
//! this thread's ack table and the server's redelivery work. Acks are batched: the caller
//! sends sequence lists, this thread publishes one `+ACK` per message without waiting for a
//! reply (JetStream acks are fire-and-forget unless double-acked; a lost ack only means a
//! redelivery, which the caller recognises by stream sequence / `event_id`).
//!
//! Reconnects: the `async-nats` client reconnects by itself (forever, with back-off); when the
//! pull stream errors (server away, heartbeats missed, consumer deleted) this thread waits and
//! binds the consumer again, counting each attempt in [`ConsumerStats::rebinds`].
//!
//! [`Replay`] reads a sequence range without a durable consumer or acks (an ordered,
//! ephemeral consumer): the checkpoint's warm-up re-reads the events that were in detection's
//! windows when the detector stopped.

use crate::stream::{ensure_stream, StreamSettings};
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Default durable consumer name (`--durable`).
pub const DEFAULT_DURABLE: &str = "pacstap-detect";

/// Errors of starting a consumer (after it runs, failures are retried and counted instead).
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("no NATS server given")]
    NoServers,
    #[error("cannot start the NATS consumer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// How the consumer binds.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `nats://host:port` addresses of one server or of several cluster members.
    pub servers: Vec<String>,
    pub stream: StreamSettings,
    /// Durable consumer name: the server remembers its ack floor across detector restarts.
    pub durable: String,
    /// Messages asked for per pull request.
    pub batch: usize,
    /// Messages delivered but not yet acked, at most (server-enforced). Must exceed the
    /// events one checkpoint interval covers, or delivery stalls until the next checkpoint.
    pub max_ack_pending: i64,
    /// How long the server waits for an ack before delivering a message again. Longer than
    /// the checkpoint interval, so an alive detector never sees its own pending messages back.
    pub ack_wait: Duration,
    /// Capacity of the channel to the caller (messages held here while detection is busy).
    pub channel: usize,
    /// Restart point: when set, the durable consumer is created anew at this stream sequence
    /// on the first bind (a restart from a checkpoint). Reusing the old consumer would hand
    /// out never-delivered messages at once and the ones a killed detector had received but
    /// not acked only after `ack_wait`, out of order by up to that much.
    pub start_seq: Option<u64>,
}

impl ConsumerSettings {
    pub fn new(servers: Vec<String>) -> Self {
        ConsumerSettings {
            servers,
            stream: StreamSettings::default(),
            durable: DEFAULT_DURABLE.to_string(),
            batch: 256,
            // 4 checkpoint intervals' worth at 10^4 events/s with a 5 s interval would be
            // 2·10^5; JetStream's own default is 1000. 65 536 keeps the ack table small
            // (one reply subject each, ~100 B) and is > one interval at the measured rate.
            max_ack_pending: 65_536,
            ack_wait: Duration::from_secs(30),
            channel: 4096,
            start_seq: None,
        }
    }
}

/// One message as the caller sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stream sequence: unique and increasing in the stream, the unit of checkpoints.
    pub seq: u64,
    /// The EVE JSON line the sensor published.
    pub payload: Vec<u8>,
    pub subject: String,
    /// How often the server delivered it (1 = first time).
    pub delivered: i64,
}

/// Counters of the consumer thread (read at any time).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub received: AtomicU64,
    pub acked: AtomicU64,
    /// Times the consumer was bound (its pull stream started): 0 while the servers are away
    /// or a degraded cluster has not answered yet.
    pub binds: AtomicU64,
    /// Times the consumer was (re)bound after an error.
    pub rebinds: AtomicU64,
    pub errors: AtomicU64,
    /// Acks asked for a sequence this thread holds no handle for (already acked, or delivered
    /// to an earlier instance): nothing to do, counted.
    pub ack_unknown: AtomicU64,
}

/// A running durable pull consumer. Dropping it stops the thread (pending acks are sent first).
pub struct Consumer {
    rx: crossbeam_channel::Receiver<Delivery>,
    acks: tokio::sync::mpsc::UnboundedSender<Vec<u64>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ConsumerStats>,
    thread: Option<JoinHandle<()>>,
}

impl Consumer {
    /// Start the thread. Connecting and binding happen there (and are retried), so this
    /// returns at once even when no server is up yet.
    pub fn start(settings: ConsumerSettings) -> Result<Self, ConsumeError> {
        if settings.servers.is_empty() {
            return Err(ConsumeError::NoServers);
        }
        let (tx, rx) = crossbeam_channel::bounded(settings.channel.max(1));
        let (acks, ack_rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ConsumerStats::default());
        let (s2, st2) = (stop.clone(), stats.clone());
        let thread = std::thread::Builder::new().name("nats-consume".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(_) => {
                    st2.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            rt.block_on(run_durable(settings, tx, ack_rx, s2, st2));
        })?;
        Ok(Consumer {
            rx,
            acks,
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// Next message, or `None` after `timeout` without one.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Delivery> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Ack these stream sequences (messages the caller applied and checkpointed).
    pub fn ack(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            let _ = self.acks.send(seqs);
        }
    }

    pub fn stats(&self) -> &ConsumerStats {
        &self.stats
    }

    /// Stop: acks already asked for are sent, then the connection is flushed and closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn connect(servers: &[String]) -> Option<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .connect(servers)
        .await
        .ok()
}

/// Polls `stop` while waiting: the thread must notice a stop within ~100 ms.
async fn nap(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let d = left.min(step);
        tokio::time::sleep(d).await;
        left = left.saturating_sub(d);
    }
}

async fn bind(js: &jetstream::Context, s: &ConsumerSettings, restart: bool) -> Option<consumer::pull::Stream> {
    let stream = ensure_stream(js, &s.stream).await.ok()?;
    let deliver_policy = match s.start_seq.filter(|_| restart) {
        Some(start_sequence) => {
            // A restart from a checkpoint: everything after it, in stream order (the old
            // consumer's pending messages would come back only after ack_wait).
            let _ = stream.delete_consumer(&s.durable).await;
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_sequence.max(1),
            }
        }
        None => consumer::DeliverPolicy::All,
    };
    let c: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &s.durable,
            consumer::pull::Config {
                durable_name: Some(s.durable.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: s.ack_wait,
                max_ack_pending: s.max_ack_pending,
                deliver_policy,
                ..Default::default()
            },
        )
        .await
        .ok()?;
    c.stream()
        .max_messages_per_batch(s.batch.max(1))
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .ok()
}

/// Hand one delivery over, waiting (without blocking the runtime) while the channel is full.
/// Returns false when the caller is gone or a stop was asked.
async fn hand_over(tx: &crossbeam_channel::Sender<Delivery>, mut d: Delivery, stop: &AtomicBool) -> bool {
    loop {
        match tx.try_send(d) {
            Ok(()) => return true,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return false,
            Err(crossbeam_channel::TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                d = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

async fn send_acks(pending: &mut BTreeMap<u64, jetstream::message::Acker>, seqs: Vec<u64>, stats: &ConsumerStats) {
    for seq in seqs {
        match pending.remove(&seq) {
            Some(acker) => {
                if acker.ack().await.is_ok() {
                    stats.acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                stats.ack_unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn run_durable(
    s: ConsumerSettings,
    tx: crossbeam_channel::Sender<Delivery>,
    mut ack_rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u64>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ConsumerStats>,
) {
    let Some(client) = connect(&s.servers).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let js = jetstream::new(client.clone());
    // Ack handles of delivered, not yet acked messages. Bounded by max_ack_pending (the
    // server delivers no more), plus redeliveries of the same sequence, which replace.
    let mut pending: BTreeMap<u64, jetstream::message::Acker> = BTreeMap::new();
    let mut first = true;
    // The consumer was bound once: later binds (server back) keep its state.
    let mut bound = false;
    'bind: while !stop.load(Ordering::Relaxed) {
        if !first {
            stats.rebinds.fetch_add(1, Ordering::Relaxed);
            nap(&stop, Duration::from_millis(500)).await;
        }
        first = false;
        let Some(mut msgs) = bind(&js, &s, !bound).await else {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        bound = true;
        stats.binds.fetch_add(1, Ordering::Relaxed);
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'bind;
            }
            tokio::select! {
                acks = ack_rx.recv() => {
                    match acks {
                        Some(seqs) => send_acks(&mut pending, seqs, &stats).await,
                        None => break 'bind,
                    }
                }
                next = tokio::time::timeout(Duration::from_millis(100), msgs.next()) => {
                    let m = match next {
                        Err(_) => continue,
                        Ok(None) => continue 'bind,
                        Ok(Some(Err(_))) => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            continue 'bind;
                        }
                        Ok(Some(Ok(m))) => m,
                    };
                    let Ok(info) = m.info() else {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (seq, delivered) = (info.stream_sequence, info.delivered);
                    let (msg, acker) = m.split();
                    pending.insert(seq, acker);
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    let d = Delivery {
                        seq,
                        payload: msg.payload.to_vec(),
                        subject: msg.subject.to_string(),
                        delivered,
                    };
                    if !hand_over(&tx, d, &stop).await {
                        break 'bind;
                    }
                }
            }
        }
    }
    // Acks the caller asked for before stopping still go out.
    while let Ok(seqs) = ack_rx.try_recv() {
        send_acks(&mut pending, seqs, &stats).await;
    }
    let _ = client.flush().await;
}

/// Reads the stream's messages `from..=to` (stream sequences) once, in order, with an ordered
/// ephemeral consumer: no durable state on the server, nothing acked. For the checkpoint's
/// warm-up; blocking, on a runtime of its own.
pub struct Replay;

impl Replay {
    /// Calls `f` for each message in `from..=to` (fewer if the stream no longer holds some:
    /// limits retention may have dropped the oldest). Returns how many were read. Gives up
    /// after `patience` without progress (server away), returning what it read.
    pub fn range(
        servers: &[String],
        stream: &StreamSettings,
        from: u64,
        to: u64,
        patience: Duration,
        mut f: impl FnMut(Delivery),
    ) -> Result<u64, ConsumeError> {
        if servers.is_empty() {
            return Err(ConsumeError::NoServers);
        }
        if from > to || from == 0 {
            return Ok(0);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(rt.block_on(async {
            let Some(client) = connect(servers).await else { return 0 };
            let js = jetstream::new(client);
            let mut n = 0u64;
            let mut next_seq = from;
            let mut deadline = tokio::time::Instant::now() + patience;
            while next_seq <= to && tokio::time::Instant::now() < deadline {
                let Ok(st) = ensure_stream(&js, stream).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let Ok(c) = st
                    .create_consumer(consumer::pull::OrderedConfig {
                        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: next_seq,
                        },
                        ..Default::default()
                    })
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let Ok(mut msgs) = c.messages().await else { continue };
                loop {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match tokio::time::timeout(left, msgs.next()).await {
                        Ok(Some(Ok(m))) => {
                            let Ok(info) = m.info() else { continue };
                            let seq = info.stream_sequence;
                            if seq > to {
                                return n;
                            }
                            next_seq = seq.saturating_add(1);
                            n += 1;
                            deadline = tokio::time::Instant::now() + patience;
                            f(Delivery {
                                seq,
                                payload: m.message.payload.to_vec(),
                                subject: m.message.subject.to_string(),
                                delivered: 1,
                            });
                            if seq >= to {
                                return n;
                            }
                        }
                        Ok(Some(Err(_))) | Ok(None) => break,
                        Err(_) => return n,
                    }
                }
            }
            n
        }))
    }
}
