//! C-MOVEs waiting for sub-operations a mirror delivers after them.
//!
//! A C-MOVE's final response follows its last sub-operation (PS3.7 §9.1.4.1.2), so its
//! C-STOREs are normally decoded first and taken when it arrives (`moves.rs`). On a SPAN port
//! the Move Destination's packets reach the tap through another queue than the SCP's: when the
//! destination's C-STORE responses come later than the SCP's C-MOVE response, every C-STORE
//! event follows its C-MOVE, which then takes none of them. With the destination's packets 50 ms
//! late, `move20.plain.pcap`'s bulk-export alert lost all 20 instances and named the destination
//! twice, with and without its address (it was not known yet either).
//!
//! The response says how many sub-operations completed (`sub_operations.completed` and
//! `warning`): a C-MOVE that took fewer waits here, for the rest, at most [`WAIT_NS`] of packet
//! time (the same bound as a sub-operation that seems to start before its request,
//! `moves::MIRROR_SKEW_NS`), and is exported when they have all come or its wait is over. A
//! C-MOVE with all its sub-operations, or whose response gives no counts, is exported at once
//! as before. So is one to a destination whose sub-operations this tap does not see (its last
//! wait ended with none: the destination is off the mirror), so that its alerts are not all
//! half a second late.
//!
//! A C-MOVE with no response at all (a mirror of the request side only, or a capture that ended
//! first) cannot say how many to expect: it waits the whole [`WAIT_NS`]. Such C-MOVEs are
//! mostly emitted when their association ends, often at the end of the input together with
//! their sub-operations' associations, in an order the flow stage does not define (with several
//! workers, worker by worker): without the wait, `move20.oneway.pcap` replayed on 2 workers
//! linked 10 of its 20 C-STOREs to their C-MOVEs, on 3 workers 15.

use crate::bounded_map::BoundedMap;
use crate::dest::Dest;
use crate::moves::{SubOps, MIRROR_SKEW_NS};
use crate::name::Name;
use crate::scope::StudyItem;
use pacstap_core::{FlowId, ProtocolEvent};
use std::collections::VecDeque;

/// How long a C-MOVE waits for late sub-operations, in nanoseconds of packet time.
pub(crate) const WAIT_NS: i64 = MIRROR_SKEW_NS;

/// C-MOVEs waiting at once; past it the oldest is exported without waiting longer (a PACS
/// serves at most a few hundred retrieves concurrently).
const MAX_WAITING: usize = 1024;

/// A C-MOVE's export, kept until its late sub-operations have come.
#[derive(Debug)]
pub(crate) struct LateMove {
    /// The C-MOVE's event (flow, time): the export is made on it.
    pub(crate) ev: ProtocolEvent,
    pub(crate) user: Option<String>,
    pub(crate) calling: Option<String>,
    pub(crate) studies: Vec<StudyItem>,
    pub(crate) dest: Option<Dest>,
    pub(crate) subops: Option<SubOps>,
    pub(crate) requested: i64,
    /// (calling AE, message id): what its sub-operations name as their originator.
    key: (Name, u16),
    dest_ae: Name,
    /// Sub-operations still to come; `None` when the C-MOVE had no response to count them.
    missing: Option<u64>,
    /// Packet time after which it is exported with what it has.
    until: i64,
}

impl LateMove {
    /// `expected`: the sub-operations its response reports (completed and warning), `None`
    /// without a response.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ev: &ProtocolEvent,
        (user, calling): (Option<&str>, Option<&str>),
        studies: Vec<StudyItem>,
        dest: Option<Dest>,
        subops: Option<SubOps>,
        (message_id, dest_ae, requested): (u16, &str, i64),
        expected: Option<u64>,
    ) -> LateMove {
        let got = subops.as_ref().map_or(0, |s| s.instances);
        LateMove {
            ev: ev.clone(),
            user: user.map(str::to_owned),
            calling: calling.map(str::to_owned),
            studies,
            dest,
            subops,
            requested,
            key: (Name::new(calling.unwrap_or_default()), message_id),
            dest_ae: Name::new(dest_ae),
            missing: expected.map(|e| e.saturating_sub(got)),
            until: ev.ts.0.saturating_add(WAIT_NS),
        }
    }
}

impl LateMove {
    /// Whether it had no response (it waits the whole time, and takes the sub-operations
    /// gathered for it when its wait is over, `Detector::export_late_move`).
    pub(crate) fn unanswered(&self) -> bool {
        self.missing.is_none()
    }

    /// (calling AE, message id, destination AE): what its sub-operations name.
    pub(crate) fn names(&self) -> (&str, u16, &str) {
        (self.key.0.as_str(), self.key.1, self.dest_ae.as_str())
    }
}

/// What became of a sub-operation offered to the waiting C-MOVEs.
pub(crate) enum Offered {
    /// No waiting C-MOVE caused it.
    NotWaited,
    /// Added to its C-MOVE, which waits for more.
    Added,
    /// Added to its C-MOVE, which has them all now: export it.
    Complete(Box<LateMove>),
}

/// Destination AEs remembered as seen or not seen receiving sub-operations.
const MAX_DESTINATIONS: usize = 4096;

#[derive(Debug)]
pub(crate) struct LateMoves {
    /// In arrival order, so their deadlines increase (packet time, give or take a reordering).
    waiting: VecDeque<LateMove>,
    /// Move Destination AE → whether this tap sees its sub-operations (`false`: a wait for them
    /// ended with none).
    visible: BoundedMap<Name, bool>,
}

impl Default for LateMoves {
    fn default() -> Self {
        LateMoves {
            waiting: VecDeque::new(),
            visible: BoundedMap::new(MAX_DESTINATIONS),
        }
    }
}

impl LateMoves {
    /// Whether a C-MOVE to `dest_ae` that took `got` of its `expected` sub-operations (`None`:
    /// unknown, it had no response) should wait for the rest. Taking some marks the destination
    /// as one whose sub-operations are seen.
    pub(crate) fn should_wait(&mut self, dest_ae: &str, got: u64, expected: Option<u64>) -> bool {
        if got > 0 {
            self.seen(dest_ae, true);
        }
        expected.is_none_or(|e| e > got) && self.visible.get(dest_ae) != Some(&false)
    }

    /// The request time of the next waiting C-MOVE that names the same sub-operations as `m`
    /// (a reused message id): sub-operations that began from then on are that one's.
    pub(crate) fn next_request_after(&self, m: &LateMove) -> Option<i64> {
        self.waiting
            .iter()
            .filter(|o| o.key == m.key && o.dest_ae == m.dest_ae && o.requested > m.requested)
            .map(|o| o.requested)
            .min()
    }

    /// Whether the sub-operations to `dest_ae` were seen, learned by a wait that ended.
    pub(crate) fn seen(&mut self, dest_ae: &str, visible: bool) {
        if self.visible.get(dest_ae) != Some(&visible) {
            self.visible.insert(Name::new(dest_ae), visible);
        }
    }

    /// Keeps `m` waiting; returns the oldest waiting C-MOVE when too many wait (export it).
    pub(crate) fn wait(&mut self, m: LateMove) -> Option<LateMove> {
        let evicted = if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front()
        } else {
            None
        };
        self.waiting.push_back(m);
        evicted
    }

    /// A C-STORE sub-operation of (`originator`, `message_id`) to `dest_ae`, requested at `ts`.
    pub(crate) fn offer(
        &mut self,
        (originator, message_id, dest_ae): (&str, u16, &str),
        ts: i64,
        bytes: u64,
        flow: FlowId,
    ) -> Offered {
        // Message ids repeat across associations, so several waiting C-MOVEs may name it: it
        // belongs to the last one requested before it began, else (a mirror's skew) to the
        // first requested after. Taking the oldest instead, C-MOVEs of four associations that
        // ended together gave their first C-MOVE each the C-STOREs of all four. Unanswered
        // C-MOVEs take none here: a later C-MOVE with the same id may not have come yet, so
        // theirs are gathered (`moves.rs`) and taken when their wait is over.
        let candidates = self.waiting.iter().enumerate().filter(|(_, m)| {
            !m.unanswered()
                && m.key.1 == message_id
                && *m.key.0 == *originator
                && *m.dest_ae == *dest_ae
                && ts >= m.requested.saturating_sub(MIRROR_SKEW_NS)
        });
        let best = candidates.min_by_key(|(_, m)| (m.requested > ts, ts.abs_diff(m.requested)));
        let Some((i, _)) = best else {
            return Offered::NotWaited;
        };
        let Some(m) = self.waiting.get_mut(i) else {
            return Offered::NotWaited;
        };
        match &mut m.subops {
            Some(s) => s.add(ts, bytes, flow),
            None => m.subops = Some(SubOps::first(ts, bytes, flow, dest_ae)),
        }
        m.missing = m.missing.map(|n| n.saturating_sub(1));
        let (dest, missing) = (m.dest_ae.clone(), m.missing);
        self.seen(dest.as_str(), true);
        if missing != Some(0) {
            return Offered::Added;
        }
        match self.waiting.remove(i) {
            Some(m) => Offered::Complete(Box::new(m)),
            None => Offered::NotWaited,
        }
    }

    /// The next C-MOVE whose wait is over at `now` (all of them with `now == i64::MAX`). One
    /// that got none of its sub-operations marks its destination as unseen.
    pub(crate) fn next_due(&mut self, now: i64) -> Option<LateMove> {
        // `until` saturates for a C-MOVE stamped at the clock's end: the end of input takes it
        // all the same, or its export would be lost.
        let due = |m: &LateMove| m.until < now || now == i64::MAX;
        let m = if self.waiting.front().is_some_and(due) {
            self.waiting.pop_front()
        } else {
            // A deadline behind a later one (events reordered): look past the front too.
            let i = self.waiting.iter().position(due)?;
            self.waiting.remove(i)
        }?;
        // An unanswered one takes its sub-operations only now: its caller says what it found.
        if m.subops.is_none() && !m.unanswered() && now != i64::MAX {
            self.seen(m.dest_ae.as_str(), false);
        }
        Some(m)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{cmove, flow, study, SEC};

    fn waiting_move(t: i64, msg: u16, expected: u64) -> LateMove {
        unanswered_or_waiting_move(t, msg, Some(expected))
    }

    fn unanswered_or_waiting_move(t: i64, msg: u16, expected: Option<u64>) -> LateMove {
        let ev = cmove(
            t,
            flow(1, "10.0.0.9:40000", "10.0.0.5:104"),
            "WS1",
            "ARCHIVE",
            &[&study(msg)],
        );
        let requested = ev.ts.0;
        LateMove::new(
            &ev,
            (None, Some("WS1")),
            Vec::new(),
            None,
            None,
            (msg, "ARCHIVE", requested),
            expected,
        )
    }

    #[test]
    fn a_waiting_c_move_takes_only_its_own_sub_operations_and_is_complete_with_the_last() {
        let mut l = LateMoves::default();
        let m = waiting_move(0, 7, 2);
        let t = m.requested;
        assert!(l.wait(m).is_none());
        let offer = |l: &mut LateMoves, who: (&str, u16, &str), ts| l.offer(who, ts, 100, FlowId(2));
        assert!(
            matches!(offer(&mut l, ("WS1", 8, "ARCHIVE"), t), Offered::NotWaited),
            "another message"
        );
        assert!(
            matches!(offer(&mut l, ("WS2", 7, "ARCHIVE"), t), Offered::NotWaited),
            "another AE"
        );
        assert!(
            matches!(offer(&mut l, ("WS1", 7, "OTHER"), t), Offered::NotWaited),
            "another destination"
        );
        assert!(
            matches!(
                offer(&mut l, ("WS1", 7, "ARCHIVE"), t - MIRROR_SKEW_NS - 1),
                Offered::NotWaited
            ),
            "begun before the request by more than a mirror's skew"
        );
        assert!(matches!(offer(&mut l, ("WS1", 7, "ARCHIVE"), t + 1), Offered::Added));
        let Offered::Complete(m) = offer(&mut l, ("WS1", 7, "ARCHIVE"), t + 2) else {
            panic!("the second of two completes it");
        };
        let s = m.subops.unwrap();
        assert_eq!((s.instances, s.bytes, s.first), (2, 200, t + 1));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_c_move_without_a_response_waits_the_whole_time_and_leaves_offers_to_the_links() {
        let mut l = LateMoves::default();
        let m = unanswered_or_waiting_move(0, 7, None);
        let t = m.requested;
        assert!(m.unanswered());
        assert!(l.wait(m).is_none());
        let later = unanswered_or_waiting_move(SEC, 7, None);
        let later_request = later.requested;
        assert!(l.wait(later).is_none());
        assert!(
            matches!(
                l.offer(("WS1", 7, "ARCHIVE"), t + 1, 100, FlowId(2)),
                Offered::NotWaited
            ),
            "gathered for it in the links, not bound now"
        );
        assert!(l.next_due(t + WAIT_NS).is_none(), "its wait is not over");
        let m = l.next_due(t + WAIT_NS + 1).expect("over now");
        assert!(m.subops.is_none(), "no count: not marked unseen here either");
        assert_eq!(
            l.next_request_after(&m),
            Some(later_request),
            "where its sub-operations end"
        );
        assert!(l.should_wait("ARCHIVE", 0, None));
    }

    #[test]
    fn a_destination_whose_sub_operations_are_not_seen_stops_the_waits() {
        let mut l = LateMoves::default();
        assert!(l.should_wait("ARCHIVE", 0, Some(2)), "unknown yet: wait");
        assert!(l.wait(waiting_move(0, 1, 2)).is_none());
        let gone = l.next_due(crate::testkit::T0 + WAIT_NS + 1).expect("its wait is over");
        assert!(gone.subops.is_none());
        assert!(
            !l.should_wait("ARCHIVE", 0, Some(2)),
            "none came last time: off the mirror"
        );
        assert!(!l.should_wait("ARCHIVE", 0, None), "nor without a response");
        assert!(!l.should_wait("ARCHIVE", 2, Some(2)), "all taken: nothing to wait for");
        // Sub-operations taken on time again: the destination is seen, later C-MOVEs wait.
        assert!(l.should_wait("ARCHIVE", 1, Some(2)));
        assert!(l.should_wait("ARCHIVE", 1, None), "no response: any number may follow");
        assert!(
            !l.should_wait("ARCHIVE", 1, Some(0)),
            "a response of none: nothing to wait for"
        );
        assert!(
            l.should_wait("OTHER", 0, Some(1)),
            "another destination is judged on its own"
        );
    }

    #[test]
    fn waits_end_in_time_and_are_bounded() {
        let mut l = LateMoves::default();
        for i in 0..MAX_WAITING as u16 {
            assert!(l.wait(waiting_move(i64::from(i), i, 1)).is_none());
        }
        let oldest = l
            .wait(waiting_move(SEC, 9_999, 1))
            .expect("the oldest leaves when full");
        assert_eq!(oldest.key.1, 0);
        assert_eq!(l.len(), MAX_WAITING);
        let start = crate::testkit::T0;
        assert!(l.next_due(start + WAIT_NS).is_none(), "no wait is over yet");
        let due = std::iter::from_fn(|| l.next_due(start + WAIT_NS + 10)).count();
        assert_eq!(due, 9, "those requested up to 9 ns after the first");
        assert_eq!(std::iter::from_fn(|| l.next_due(i64::MAX)).count(), MAX_WAITING - 9);
        // A C-MOVE stamped at the clock's end (its deadline saturates) still leaves at the end.
        assert!(l.wait(waiting_move(i64::MAX - crate::testkit::T0, 1, 1)).is_none());
        assert!(l.next_due(i64::MAX).is_some());
    }
}
