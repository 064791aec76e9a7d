//! The table's clock: packet time, guarded against a timestamp far from its neighbours.
//!
//! Packet time is the only clock (ARCHITECTURE rule 1), and it drives idle timeouts: one packet
//! stamped ten years ahead (a capture card's glitch, a pcap edited by hand, a host whose clock
//! jumped) would time out every open flow at once. So the clock moves forward freely by up to
//! [`MAX_STEP`] per packet; a packet further ahead is held as a candidate and the clock jumps
//! only when [`CONFIRMATIONS`] more packets in a row are also that far ahead (a real jump, e.g.
//! the next file of a replay, or traffic after a quiet night). A candidate that the next packets
//! contradict is a `timestamp_jump` anomaly, and the clock never moved. Time going backwards
//! never moves the clock either.
//!
//! The far packet's own flow is still judged by the packet's own time (the table's per-flow
//! timeout check), as every flow was before: which packets a worker happens to hold must not
//! change how a flow is split, or `--workers N` would differ from one worker. So a lone outlier
//! can split its own flow, never the others; flows touched while a jump waits for confirmation
//! are re-stamped when it is confirmed.

use std::time::Duration;

use pacstap_core::Timestamp;

/// Largest forward step taken on one packet's word. One minute: a tenth of the default idle
/// timeout, so an unconfirmed step can at most end flows that were already idle for nine tenths
/// of it; larger silences on a live link are confirmed by the packets after them.
pub const MAX_STEP: Duration = Duration::from_secs(60);

/// Packets after a far one that must agree with it before the clock jumps.
pub const CONFIRMATIONS: u8 = 2;

/// What one packet's timestamp did to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The clock moved forward to the packet's time.
    Advanced,
    /// The clock jumped forward, confirmed by the packets after a far one.
    Jumped,
    /// The clock stayed (time went backwards, or stood still, or a far candidate is pending).
    Held,
    /// A far candidate was contradicted by this packet: an anomaly. The clock stayed.
    Rejected,
}

#[derive(Debug)]
pub(crate) struct PacketClock {
    now: Timestamp,
    /// Earliest time among the far packets seen in a row, and how many there were.
    candidate: Option<(Timestamp, u8)>,
}

impl PacketClock {
    pub fn new() -> Self {
        PacketClock {
            now: Timestamp(i64::MIN),
            candidate: None,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// A far packet is waiting for confirmation.
    pub fn pending(&self) -> bool {
        self.candidate.is_some()
    }

    pub fn observe(&mut self, ts: Timestamp) -> Step {
        if self.now == Timestamp(i64::MIN) {
            self.now = ts;
            return Step::Advanced;
        }
        let far = ts > self.now.add(MAX_STEP);
        if !far {
            let rejected = self.candidate.take().is_some();
            if ts > self.now {
                self.now = ts;
            }
            return if rejected {
                Step::Rejected
            } else if ts == self.now {
                Step::Advanced
            } else {
                Step::Held
            };
        }
        // Far packets confirm each other only when they agree (within a step of each other):
        // frames of several days merged into one replay are far from the clock *and* from
        // each other, and the clock must land on the day that goes on, not on the earliest
        // stray frame of the run.
        let (earliest, n) = match self.candidate {
            Some((t, n)) if ts <= t.add(MAX_STEP) && t <= ts.add(MAX_STEP) => (t.min(ts), n + 1),
            _ => (ts, 0),
        };
        if n >= CONFIRMATIONS {
            self.candidate = None;
            self.now = earliest;
            Step::Jumped
        } else {
            self.candidate = Some((earliest, n));
            Step::Held
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: i64) -> Timestamp {
        Timestamp(secs * 1_000_000_000)
    }

    #[test]
    fn a_lone_far_timestamp_is_rejected_and_a_confirmed_jump_is_taken() {
        let mut c = PacketClock::new();
        assert_eq!(c.observe(s(100)), Step::Advanced);
        assert_eq!(c.observe(s(130)), Step::Advanced, "small steps are free");
        assert_eq!(c.observe(s(120)), Step::Held, "never backwards");
        // Ten years ahead, then back to normal: the clock never moved.
        assert_eq!(c.observe(s(130 + 315_360_000)), Step::Held);
        assert_eq!(c.now(), s(130));
        assert_eq!(c.observe(s(131)), Step::Rejected);
        assert_eq!(c.now(), s(131));
        // A real jump (the next file, a quiet night): three packets agree.
        assert_eq!(c.observe(s(10_000)), Step::Held);
        assert_eq!(c.observe(s(10_001)), Step::Held);
        assert!(c.pending());
        assert_eq!(c.observe(s(10_002)), Step::Jumped);
        assert_eq!(c.now(), s(10_000));
        assert_eq!(c.observe(s(10_003)), Step::Advanced);
        // Far frames that disagree with each other (three days merged): the clock lands on
        // the last run that agrees.
        assert_eq!(c.observe(s(50_000)), Step::Held);
        assert_eq!(c.observe(s(90_000)), Step::Held);
        assert_eq!(c.observe(s(200_000)), Step::Held);
        assert_eq!(c.observe(s(200_001)), Step::Held);
        assert_eq!(c.observe(s(200_002)), Step::Jumped);
        assert_eq!(c.now(), s(200_000));
    }
}
