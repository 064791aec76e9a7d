//! The JetStream publisher's metrics (issue 15, `replay`/`capture --publish`): how many events
//! reached the stream, how many were lost and why, how much is waiting, and whether the sensor
//! is connected, so an operator sees a central view going stale at its source.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// The values of the `result` label of `pacstap_publish_events_total`.
pub const PUBLISH_RESULTS: [&str; 4] = ["acked", "dropped", "retried", "failed"];

/// The publisher's counters in a [`super::StatsSnapshot`] (the publisher's own shape).
pub use pacstap_core::PublishTotals as PublishStats;

pub(super) struct PublishMetrics {
    events: IntCounterVec,
    queue: IntGauge,
    connected: IntGauge,
}

impl PublishMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<PublishMetrics> {
        let events = IntCounterVec::new(
            Opts::new(
                "pacstap_publish_events_total",
                "Events published to NATS JetStream, by result (acked; dropped: queue full or left at shutdown; \
                 retried: publishes sent again; failed: refused by the server).",
            ),
            &["result"],
        )?;
        let queue = IntGauge::new(
            "pacstap_publish_queue_depth",
            "Events waiting to be published to JetStream: queued, in flight or to be retried.",
        )?;
        let connected = IntGauge::new(
            "pacstap_publish_connected",
            "1 while the publisher is connected to a NATS server, else 0.",
        )?;
        r.register(Box::new(events.clone()))?;
        r.register(Box::new(queue.clone()))?;
        r.register(Box::new(connected.clone()))?;
        Ok(PublishMetrics {
            events,
            queue,
            connected,
        })
    }

    /// Advance by the difference from the previous snapshot. The series exist only once a
    /// publisher has reported, so a sensor without `--publish` exports none of them.
    pub(super) fn update(&self, now: &PublishStats, prev: &PublishStats, publishing: bool) {
        if !publishing {
            return;
        }
        for (result, n, old) in [
            ("acked", now.acked, prev.acked),
            ("dropped", now.dropped, prev.dropped),
            ("retried", now.retried, prev.retried),
            ("failed", now.failed, prev.failed),
        ] {
            let c = self.events.with_label_values(&[result]);
            if n > old {
                c.inc_by(n - old);
            }
        }
        self.queue.set(i64::try_from(now.queue_depth).unwrap_or(i64::MAX));
        self.connected.set(i64::from(now.connected));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, StatsSnapshot};

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn publish_counters_follow_the_snapshot() {
        let m = Metrics::new().unwrap();
        // No publisher: no `result` series yet.
        m.update(&StatsSnapshot::default());
        assert!(!m.render().contains("pacstap_publish_events_total{"));
        let mut s = StatsSnapshot {
            publish: Some(PublishStats {
                acked: 10,
                dropped: 2,
                retried: 3,
                failed: 0,
                queue_depth: 40,
                connected: true,
            }),
            ..Default::default()
        };
        m.update(&s);
        m.update(&s);
        s.publish = Some(PublishStats {
            acked: 25,
            queue_depth: 0,
            connected: false,
            ..s.publish.unwrap()
        });
        m.update(&s);
        let text = m.render();
        let get = |series: &str| sample(&text, series);
        assert_eq!(get("pacstap_publish_events_total{result=\"acked\"}"), Some(25.0));
        assert_eq!(get("pacstap_publish_events_total{result=\"dropped\"}"), Some(2.0));
        assert_eq!(get("pacstap_publish_events_total{result=\"retried\"}"), Some(3.0));
        // Present at 0 from the first snapshot, so alerts on `increase()` work before a failure.
        assert_eq!(get("pacstap_publish_events_total{result=\"failed\"}"), Some(0.0));
        assert_eq!(get("pacstap_publish_queue_depth"), Some(0.0));
        assert_eq!(get("pacstap_publish_connected"), Some(0.0));
    }
}
