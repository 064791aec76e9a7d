//! Event-pipeline latency: an HDR histogram recorded per thread, merged, and rendered at scrape
//! time as an ordinary Prometheus histogram (see the module doc of [`crate::metrics`]).

use super::lock;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Event-pipeline latency buckets: 50 µs (one frame through a warm pipeline) to 10 s (a
/// stalled writer). Prometheus histograms have fixed buckets; these span what an operator
/// needs to tell "keeping up" from "falling behind". Changing them changes the `le` series that
/// dashboards and recording rules may name: extend, do not move.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The highest latency the HDR histogram tells apart: slower frames are recorded as this (they
/// land in the `+Inf` bucket either way, and `_sum` stays exact). A minute is already a pipeline
/// that has stopped keeping up; a wider range would only cost memory (about 140 KiB now).
pub const LATENCY_MAX: Duration = Duration::from_secs(60);

/// Significant decimal digits of the HDR histogram: value classes at most 0.1 % wide.
const LATENCY_SIGFIG: u8 = 3;

fn micros_clamped(d: Duration) -> u64 {
    u64::try_from(d.min(LATENCY_MAX).as_micros()).unwrap_or(u64::MAX)
}

/// Event-pipeline latency quantiles ([`Metrics::event_latency_quantiles`]). Each is the upper
/// end of its HDR value class (microsecond resolution, within 0.1 %); latencies over
/// [`LATENCY_MAX`] read as `LATENCY_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyQuantiles {
    /// Observations behind the quantiles.
    pub count: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

/// A worker thread's own latency histogram: record without locking, then
/// [`Metrics::merge_event_latency`] now and then. Get one from
/// [`Metrics::event_latency_recorder`] so its range matches the shared one.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    pub(super) hist: hdrhistogram::Histogram<u64>,
    pub(super) sum_nanos: u128,
}

impl LatencyRecorder {
    pub fn record(&mut self, elapsed: Duration) {
        self.hist.saturating_record(micros_clamped(elapsed));
        self.sum_nanos = self.sum_nanos.saturating_add(elapsed.as_nanos());
    }

    /// Observations recorded since the last merge.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The HDR histogram itself (values in microseconds), e.g. for a worker's own quantiles.
    pub fn histogram(&self) -> &hdrhistogram::Histogram<u64> {
        &self.hist
    }
}

/// The shared event-latency histogram and the exact sum Prometheus' `_sum` needs (an HDR
/// histogram keeps only value classes).
pub(super) struct LatencyState {
    pub(super) hist: hdrhistogram::Histogram<u64>,
    pub(super) sum_nanos: u128,
}

impl LatencyState {
    pub(super) fn new() -> prometheus::Result<LatencyState> {
        let high = micros_clamped(LATENCY_MAX).max(2);
        let hist = hdrhistogram::Histogram::new_with_bounds(1, high, LATENCY_SIGFIG)
            .map_err(|e| prometheus::Error::Msg(format!("event latency histogram: {e:?}")))?;
        Ok(LatencyState { hist, sum_nanos: 0 })
    }

    pub(super) fn record(&mut self, elapsed: Duration) {
        self.hist.saturating_record(micros_clamped(elapsed));
        self.sum_nanos = self.sum_nanos.saturating_add(elapsed.as_nanos());
    }

    pub(super) fn merge(&mut self, local: &LatencyRecorder) {
        if self.hist.add(&local.hist).is_err() {
            // Only if `local` was built with a wider range than ours: clamp value by value.
            let high = self.hist.high();
            for v in local.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to().min(high), v.count_at_value());
            }
        }
        self.sum_nanos = self.sum_nanos.saturating_add(local.sum_nanos);
    }

    /// Cumulative counts for each of [`LATENCY_BUCKETS`] (`+Inf` is the total count).
    fn cumulative_buckets(&self) -> [u64; LATENCY_BUCKETS.len()] {
        let bounds_us = LATENCY_BUCKETS.map(|b| (b * 1e6).round() as u64);
        let mut per_bucket = [0u64; LATENCY_BUCKETS.len()];
        for v in self.hist.iter_recorded() {
            // The top of the value's class: a class straddling a bound counts above it.
            let top = v.value_iterated_to();
            if let Some(i) = bounds_us.iter().position(|&b| top <= b) {
                if let Some(slot) = per_bucket.get_mut(i) {
                    *slot = slot.saturating_add(v.count_at_value());
                }
            }
        }
        let mut running = 0u64;
        for slot in &mut per_bucket {
            running = running.saturating_add(*slot);
            *slot = running;
        }
        per_bucket
    }
}

/// Renders the HDR histogram as a Prometheus histogram family at scrape time (the registry
/// calls [`Collector::collect`] on every `gather`).
pub(super) struct LatencyCollector {
    desc: Desc,
    state: Arc<Mutex<LatencyState>>,
}

impl LatencyCollector {
    pub(super) fn new(name: &str, help: &str, state: Arc<Mutex<LatencyState>>) -> prometheus::Result<LatencyCollector> {
        let desc = Desc::new(name.into(), help.into(), vec![], Default::default())?;
        Ok(LatencyCollector { desc, state })
    }
}

impl Collector for LatencyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (cumulative, count, sum_nanos) = {
            let state = lock(&self.state);
            (state.cumulative_buckets(), state.hist.len(), state.sum_nanos)
        };
        let buckets: Vec<proto::Bucket> = LATENCY_BUCKETS
            .iter()
            .zip(cumulative)
            .map(|(&le, n)| {
                let mut b = proto::Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(n);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum_nanos as f64 / 1e9);
        h.set_bucket(buckets);
        let mut m = proto::Metric::default();
        m.set_histogram(h);
        let mut mf = MetricFamily::default();
        mf.set_name(self.desc.fq_name.clone());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(MetricType::HISTOGRAM);
        mf.set_metric(vec![m]);
        vec![mf]
    }
}
