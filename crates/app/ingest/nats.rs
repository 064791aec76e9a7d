//! `pacstap detect --from nats://HOST:PORT[,...]`: the central detector (issue 15 item 2).
//!
//! Every sensor's events come from the JetStream stream through one durable pull consumer and
//! go through the same rules, windows, baselines and learned state as replay and capture. The
//! loop around detection — warm-up from the checkpoint, reorder buffer with its watermark,
//! `event_id` de-duplication, alerts written once, checkpoint then ack — is
//! [`pacstap_jetstream::consume_central`]; its guarantees across `kill -9` are in
//! [`pacstap_jetstream::checkpoint`] and docs/scale.md. This file plugs the detector in.
//!
//! Why the detector here and not [`crate::Detection`]: the checkpoint design needs detection's
//! alerts *before* they are written (a warm-up re-applies events silently; an alert already
//! written before a crash is recognised by its key and not written again), and needs to rebuild
//! the detector from an older learned state. `Detection` writes as it observes. Outputs here:
//! the alerts (JSON lines, `--events`), Alertmanager and metrics; the sensors already wrote
//! their protocol events, so they are not repeated.

use crate::detection::DetectionClock;
use anyhow::{Context, Result};
use pacstap_core::{EventBody, ProtocolEvent};
use pacstap_detect::{Config as DetectConfig, Detector, LearnedState, StateStore};
use pacstap_jetstream::checkpoint::Raised;
use pacstap_jetstream::consume::ConsumerSettings;
use pacstap_jetstream::consume_central::{self, CentralSettings, CentralStats, Decoded, Detection as Central};
use pacstap_output::{AlertmanagerClient, JsonLinesSink, Metrics};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What `detect --from nats://` was told.
pub struct NatsOptions {
    /// `nats://host:port` of each server (the `--from` values, comma lists split).
    pub servers: Vec<String>,
    pub stream: String,
    pub durable: String,
    pub checkpoint: Option<PathBuf>,
    pub idle_exit: Option<Duration>,
    pub reorder_window: Duration,
    /// Set on SIGINT / SIGTERM.
    pub stop: Arc<AtomicBool>,
}

/// The servers in `--from` values: `nats://a:4222,nats://b:4222` or several values.
pub fn nats_servers(from: &[String]) -> Vec<String> {
    from.iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains("://") {
                s.to_string()
            } else {
                format!("nats://{s}")
            }
        })
        .collect()
}

/// The longest window any rule looks back over: how far a restart re-reads the stream.
pub fn lookback(cfg: &DetectConfig) -> Duration {
    let r = &cfg.rules;
    let longest = [
        r.login_failures_user.window.as_nanos_i64(),
        r.login_failures_source.window.as_nanos_i64(),
        r.login_success_after_failures.window.as_nanos_i64(),
        r.bulk_export.window.as_nanos_i64(),
        r.export_above_baseline.window.as_nanos_i64(),
        r.sharing_spike.window.as_nanos_i64(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
    .saturating_add(cfg.detect.identity_wait.as_nanos_i64());
    Duration::from_nanos(u64::try_from(longest).unwrap_or(0))
}

/// The detector and its outputs, as the central loop sees them.
pub struct CentralDetector {
    cfg: DetectConfig,
    /// From `--state`, for a first run without a checkpoint.
    initial: Option<LearnedState>,
    detector: Detector,
    clock: DetectionClock,
    now: i64,
    sink: Option<JsonLinesSink<Box<dyn Write>>>,
    alertmanager: Option<Arc<AlertmanagerClient>>,
    metrics: Option<Arc<Metrics>>,
    /// Alert, posture and stats lines in the stream: detection derives its own.
    pub derived: u64,
    /// Lines that are not events.
    pub unreadable: u64,
}

impl CentralDetector {
    pub fn new(
        cfg: DetectConfig,
        initial: Option<LearnedState>,
        events: Option<Box<dyn Write>>,
        alertmanager: Option<Arc<AlertmanagerClient>>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self> {
        let detector = Detector::new(&cfg, initial.clone()).context("starting detection")?;
        Ok(CentralDetector {
            cfg,
            initial,
            detector,
            clock: DetectionClock::default(),
            now: i64::MIN,
            sink: events.map(|w| JsonLinesSink::new(w, true)),
            alertmanager,
            metrics,
            derived: 0,
            unreadable: 0,
        })
    }

    pub fn learned_state(&self) -> LearnedState {
        self.detector.learned_state()
    }
}

impl Central for CentralDetector {
    type Event = ProtocolEvent;
    type Alert = ProtocolEvent;

    fn decode(&mut self, payload: &[u8]) -> Option<Decoded<ProtocolEvent>> {
        let line = match pacstap_output::parse_line(payload) {
            Ok(l) => l,
            Err(_) => {
                self.unreadable += 1;
                return None;
            }
        };
        if line.is_derived() {
            self.derived += 1;
            return None;
        }
        let event_id = line.event_id.clone().unwrap_or_default();
        let ev = line.into_event()?;
        Some(Decoded {
            event_id,
            ts_ns: ev.ts.0,
            event: ev,
        })
    }

    fn reset(&mut self, learned: Option<serde_json::Value>) -> Result<(), String> {
        let state = match learned {
            Some(v) => Some(
                serde_json::from_value::<LearnedState>(v).map_err(|e| format!("checkpoint's learned state: {e}"))?,
            ),
            None => self.initial.clone(),
        };
        self.detector = Detector::new(&self.cfg, state).map_err(|e| e.to_string())?;
        self.clock = DetectionClock::default();
        self.now = i64::MIN;
        Ok(())
    }

    fn apply(&mut self, ev: ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        // As replay does per frame: advance the windows first, then observe.
        if self.clock.ticks_at(ev.ts) {
            self.detector.tick(ev.ts, out);
        }
        self.now = self.now.max(ev.ts.0);
        self.detector.observe(&ev, out);
    }

    fn finish(&mut self, out: &mut Vec<ProtocolEvent>) {
        self.detector.finish(out);
    }

    fn alert_key(&self, alert: &ProtocolEvent) -> String {
        match &alert.body {
            EventBody::Alert(a) => Raised::key(&a.incident_id, a.count, a.update),
            _ => String::new(),
        }
    }

    fn emit(&mut self, alerts: Vec<ProtocolEvent>) -> Result<(), String> {
        for a in &alerts {
            if let Some(m) = &self.metrics {
                m.observe_event(a);
            }
            if let Some(am) = &self.alertmanager {
                am.push(a);
            }
            if let Some(s) = self.sink.as_mut() {
                s.write(a).map_err(|e| format!("writing alerts: {e}"))?;
            }
        }
        if let Some(s) = self.sink.as_mut() {
            s.flush().map_err(|e| format!("writing alerts: {e}"))?;
        }
        Ok(())
    }

    fn learned(&self) -> serde_json::Value {
        serde_json::to_value(self.detector.learned_state()).unwrap_or(serde_json::Value::Null)
    }

    fn now_ns(&self) -> i64 {
        self.now
    }
}

/// Run the central detector until `--idle-exit` or a signal; saves learned state to `state`
/// at the end.
pub fn run_central(opts: &NatsOptions, det: &mut CentralDetector, state: Option<&StateStore>) -> Result<CentralStats> {
    let mut consumer = ConsumerSettings::new(opts.servers.clone());
    consumer.durable = opts.durable.clone();
    consumer.stream.name = opts.stream.clone();
    let mut s = CentralSettings::new(consumer);
    s.checkpoint = opts.checkpoint.clone();
    s.lookback = lookback(&det.cfg);
    s.reorder_lag = opts.reorder_window;
    s.idle_exit = opts.idle_exit;
    s.stop = Arc::clone(&opts.stop);
    let stats = consume_central::run(det, &s).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(store) = state {
        store.save(&det.learned_state()).context("saving learned state")?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_from_comma_lists_and_bare_addresses() {
        let from = vec!["nats://a:4222,nats://b:4223".to_string(), "c:4224".to_string()];
        assert_eq!(
            nats_servers(&from),
            vec!["nats://a:4222", "nats://b:4223", "nats://c:4224"]
        );
    }

    #[test]
    fn lookback_is_the_longest_window_plus_the_identity_wait() {
        let cfg = DetectConfig::default();
        let l = lookback(&cfg);
        assert!(
            l >= Duration::from_secs(30 * 60),
            "at least bulk_export's 30 min: {l:?}"
        );
    }
}
