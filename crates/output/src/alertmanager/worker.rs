//! The push thread: takes batches off the bounded queue, POSTs them, retries transient failures
//! with capped exponential backoff, and keeps the counters behind [`super::AlertmanagerStats`].

use super::client::{PostError, Poster};
use super::payload::{body, QueuedAlert};
use super::AlertmanagerOptions;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A still-failing Alertmanager is reported on stderr at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub(super) struct State {
    pub(super) queue: VecDeque<QueuedAlert>,
    /// Set by shutdown (or drop): deliver what is queued until then, then stop.
    pub(super) stop_at: Option<Instant>,
    /// The push thread has ended (set on its way out, even by a panic).
    pub(super) finished: bool,
    /// Shutdown stopped waiting for a thread stuck in a request, and counted what it held as
    /// dropped: the thread must change no counter when the request returns.
    pub(super) abandoned: bool,
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Wakes the push thread: alerts queued, or a shutdown requested.
    pub(super) wake: Condvar,
    /// Wakes a shutdown waiting for the push thread to end.
    pub(super) finished: Condvar,
    pub(super) capacity: usize,
    pub(super) sent: AtomicU64,
    pub(super) failed_posts: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) in_flight: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Shared {
    pub(super) fn new(capacity: usize) -> Shared {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                stop_at: None,
                finished: false,
                abandoned: false,
            }),
            wake: Condvar::new(),
            finished: Condvar::new(),
            capacity,
            sent: AtomicU64::new(0),
            failed_posts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// What is left before the shutdown deadline: `Ok(None)` without a shutdown, `Err` once the
    /// deadline passed.
    fn deadline_left(&self) -> Result<Option<Duration>, PostError> {
        match lock(&self.state).stop_at {
            None => Ok(None),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(PostError::Transient("shutdown deadline passed".into()))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }
}

/// `now + d`, or a day from now if that overflows `Instant` (it cannot for sane `d`).
pub(super) fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// stderr warnings at a bounded rate: the first failure, then at most one a minute (saying how
/// many were not reported), and one line when delivery works again.
pub(super) struct Warner {
    pub(super) enabled: bool,
    pub(super) endpoint: String,
    pub(super) last_line: Option<Instant>,
    pub(super) unreported: u64,
    /// A failure line was printed and no recovery line since: a flapping Alertmanager gets
    /// one pair of lines a minute, not one per flap.
    pub(super) reported: bool,
}

impl Warner {
    pub(super) fn new(enabled: bool, endpoint: String) -> Warner {
        Warner {
            enabled,
            endpoint,
            last_line: None,
            unreported: 0,
            reported: false,
        }
    }

    pub(super) fn failure(&mut self, message: &str) {
        if self.last_line.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            self.unreported += 1;
            return;
        }
        if self.enabled {
            let more = match self.unreported {
                0 => String::new(),
                n => format!(" ({n} more failures since the last message)"),
            };
            crate::term::warn(&format!("alertmanager {}", self.endpoint), &format!("{message}{more}"));
        }
        self.last_line = Some(Instant::now());
        self.unreported = 0;
        self.reported = true;
    }

    pub(super) fn success(&mut self) {
        if self.reported && self.enabled {
            eprintln!("pacstap: alertmanager {}: delivering again", self.endpoint);
        }
        self.reported = false;
    }
}

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) poster: Poster,
    pub(super) options: AlertmanagerOptions,
    pub(super) warn: Warner,
}

/// Marks the thread finished on every way out (a panic included), so a shutdown waiting for it
/// returns at once.
struct Finished<'a>(&'a Shared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).finished = true;
        self.0.finished.notify_all();
    }
}

impl Worker {
    pub(super) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _finished = Finished(&shared);
        let mut batch: Vec<QueuedAlert> = Vec::new();
        let mut backoff = self.options.retry_initial;
        loop {
            if !self.fill(&mut batch) {
                return;
            }
            let payload = body(&batch, self.options.resolve_after);
            let n = batch.len() as u64;
            let outcome = self
                .shared
                .deadline_left()
                .and_then(|left| self.poster.post(&payload, left));
            // Counted under the state lock: a shutdown that gave up on this request counted
            // the batch as dropped already (and said so by `abandoned`).
            let state = lock(&self.shared.state);
            if state.abandoned {
                return;
            }
            match outcome {
                Ok(()) => {
                    // Out of flight before counted as sent: a reader of `stats` never sees an
                    // alert both sent and queued.
                    batch.clear();
                    self.shared.in_flight.store(0, Ordering::Relaxed);
                    *lock(&self.shared.last_error) = None;
                    self.shared.sent.fetch_add(n, Ordering::Relaxed);
                    drop(state);
                    self.warn.success();
                    backoff = self.options.retry_initial;
                }
                Err(PostError::Rejected(msg)) => {
                    self.failed(&msg);
                    batch.clear();
                    self.shared.in_flight.store(0, Ordering::Relaxed);
                    self.shared.rejected.fetch_add(n, Ordering::Relaxed);
                    drop(state);
                    self.warn.failure(&msg);
                    backoff = self.options.retry_initial;
                }
                Err(PostError::Transient(msg)) => {
                    self.failed(&msg);
                    drop(state);
                    self.warn.failure(&msg);
                    self.pause(backoff);
                    backoff = backoff
                        .saturating_mul(2)
                        .min(self.options.retry_max.max(self.options.retry_initial));
                }
            }
        }
    }

    /// Count a failed POST (the caller holds the state lock; the warning comes after it).
    fn failed(&self, message: &str) {
        self.shared.failed_posts.fetch_add(1, Ordering::Relaxed);
        *lock(&self.shared.last_error) = Some(message.to_owned());
    }

    /// Top `batch` up from the queue, waiting while there is nothing to send. False when the
    /// thread should end: stopping with nothing left, the shutdown deadline passed (what was
    /// left is then counted as dropped), or a shutdown gave up on it.
    fn fill(&self, batch: &mut Vec<QueuedAlert>) -> bool {
        let mut state = lock(&self.shared.state);
        loop {
            if state.abandoned {
                return false;
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
