//! What `GET /healthz` answers: `200 ok`, or `503` with the reason, so a load balancer, systemd
//! watchdog script or Prometheus blackbox probe learns that the tap went blind, not just that the
//! process runs.
//!
//! Three reasons, checked in this order:
//!
//! * **stopped** — the capture or the pipeline has ended ([`super::Metrics::set_healthy`]).
//! * **idle** — no frame has arrived for longer than the idle alarm (`[capture] idle_alarm`,
//!   live capture only): a SPAN port that was reconfigured, a cable pulled, a filter that
//!   matches nothing. Measured in wall time, because without packets there is no packet time.
//! * **dropping** — kernel, interface or queue drops rose within the last [`DROP_RECENT`]: the
//!   tap is missing traffic now. Drops long ago (a burst at start) do not keep it unhealthy.
//!
//! The decision ([`decide`]) is a pure function of the recorded instants, so it is tested
//! without clocks; [`HealthState`] records those instants from the pipeline's snapshots.

use std::time::{Duration, Instant};

/// How long after the latest drop `/healthz` keeps answering 503. Prometheus scrapes every 15 s
/// to 1 min (its default `scrape_interval` is 1 m), so a probe at that pace sees every episode
/// of drops at least once, and the state clears a minute after the drops stop.
pub const DROP_RECENT: Duration = Duration::from_secs(60);

/// What the health decision is made from. Counters are cumulative since start, as in
/// [`super::StatsSnapshot`].
#[derive(Debug, Clone)]
pub struct HealthState {
    /// When watching started (the idle alarm counts from here until the first frame).
    started: Instant,
    /// `None`: no idle alarm (replay, or `idle_alarm = "0"`).
    idle_alarm: Option<Duration>,
    packets: u64,
    last_packet: Option<Instant>,
    /// Kernel + interface + pipeline drops seen so far, and when they last rose.
    drops: u64,
    last_drop: Option<Instant>,
}

impl HealthState {
    pub fn new(now: Instant) -> HealthState {
        HealthState {
            started: now,
            idle_alarm: None,
            packets: 0,
            last_packet: None,
            drops: 0,
            last_drop: None,
        }
    }

    /// Set (or clear with `None` / zero) the idle alarm; the idle time counts from `now` if no
    /// frame has arrived yet.
    pub fn set_idle_alarm(&mut self, alarm: Option<Duration>, now: Instant) {
        self.idle_alarm = alarm.filter(|d| !d.is_zero());
        if self.last_packet.is_none() {
            self.started = now;
        }
    }

    /// Record cumulative frame and drop counts observed at `now`.
    pub fn observe(&mut self, packets: u64, drops: u64, now: Instant) {
        if packets > self.packets {
            self.last_packet = Some(now);
        }
        self.packets = self.packets.max(packets);
        if drops > self.drops {
            self.last_drop = Some(now);
        }
        self.drops = self.drops.max(drops);
    }

    /// The verdict at `now`; `running` is false once the capture or pipeline stopped.
    pub fn verdict(&self, running: bool, now: Instant) -> Result<(), String> {
        decide(
            running,
            self.idle_alarm,
            now.saturating_duration_since(self.last_packet.unwrap_or(self.started)),
            self.last_packet.is_some(),
            self.last_drop.map(|t| now.saturating_duration_since(t)),
            self.drops,
        )
    }
}

/// The health decision. `idle` is the time since the latest frame (or since start when
/// `any_packet` is false); `since_drop` the time since drops last rose (`None`: never).
pub fn decide(
    running: bool,
    idle_alarm: Option<Duration>,
    idle: Duration,
    any_packet: bool,
    since_drop: Option<Duration>,
    drops: u64,
) -> Result<(), String> {
    if !running {
        return Err("capture stopped".into());
    }
    if let Some(alarm) = idle_alarm {
        if idle > alarm {
            let what = if any_packet {
                "no packet"
            } else {
                "no packet since start"
            };
            return Err(format!(
                "idle: {what} for {}s (idle_alarm {}s)",
                idle.as_secs(),
                alarm.as_secs()
            ));
        }
    }
    if let Some(ago) = since_drop {
        if ago <= DROP_RECENT {
            return Err(format!(
                "dropping: {drops} frames dropped since start (kernel, interface or queue), the latest {}s ago",
                ago.as_secs()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// (running, alarm, idle, any_packet, since_drop, expected verdict or the reason's start)
    type Case = (
        bool,
        Option<Duration>,
        Duration,
        bool,
        Option<Duration>,
        Result<(), &'static str>,
    );

    #[test]
    fn decision_table() {
        let five = Some(5 * MIN);
        let cases: [Case; 8] = [
            (true, five, MIN, true, None, Ok(())),
            (false, five, MIN, true, None, Err("capture stopped")),
            (
                true,
                five,
                6 * MIN,
                true,
                None,
                Err("idle: no packet for 360s (idle_alarm 300s)"),
            ),
            (
                true,
                five,
                6 * MIN,
                false,
                None,
                Err("idle: no packet since start for 360s"),
            ),
            (true, None, 600 * MIN, true, None, Ok(())),
            (true, five, 5 * MIN, true, None, Ok(())),
            (
                true,
                five,
                MIN,
                true,
                Some(Duration::from_secs(10)),
                Err("dropping: 7 frames"),
            ),
            (true, five, MIN, true, Some(2 * MIN), Ok(())),
        ];
        for (i, (running, alarm, idle, any, drop, want)) in cases.into_iter().enumerate() {
            let got = decide(running, alarm, idle, any, drop, 7);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(g), Err(w)) => assert!(g.starts_with(w), "case {i}: {g:?} should start with {w:?}"),
                (g, w) => panic!("case {i}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn state_tracks_packets_and_drops_over_time() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut h = HealthState::new(t0);
        h.set_idle_alarm(Some(5 * MIN), t0);
        assert_eq!(h.verdict(true, at(299)), Ok(()));
        assert!(h.verdict(true, at(301)).unwrap_err().contains("since start"));
        h.observe(10, 0, at(302));
        assert_eq!(h.verdict(true, at(303)), Ok(()));
        // Same count later: no new packet, so idle counts from 302.
        h.observe(10, 0, at(500));
        assert_eq!(h.verdict(true, at(602)), Ok(()));
        assert_eq!(
            h.verdict(true, at(603)).unwrap_err(),
            "idle: no packet for 301s (idle_alarm 300s)"
        );
        // Drops rising: unhealthy for DROP_RECENT, then healthy again.
        h.observe(20, 3, at(700));
        assert!(h.verdict(true, at(730)).unwrap_err().starts_with("dropping: 3 frames"));
        h.observe(30, 3, at(800));
        assert_eq!(h.verdict(true, at(801)), Ok(()));
        // A zero alarm disables the idle check.
        h.set_idle_alarm(Some(Duration::ZERO), at(801));
        assert_eq!(h.verdict(true, at(100_000)), Ok(()));
        assert_eq!(h.verdict(false, at(801)).unwrap_err(), "capture stopped");
    }
}
