//! The C-MOVEs seen lately, so that sub-operations no C-MOVE took (`moves.rs` `Orphan`) are
//! not counted a second time when their C-MOVE was in fact seen and counted: its event came
//! before them (their C-STOREs reported late, after a capture gap), or it could not take them
//! (its identifier, destination or calling AE lost, or sub-operations that name another Move
//! Originator than its calling AE: a title rewritten on the way, or spoofed). Such a
//! C-MOVE counted its studies already, unnamed when its identifier was lost; the sub-operations
//! name them, and counting both would count each twice.

use crate::bounded_map::BoundedMap;
use crate::moves::MIRROR_SKEW_NS;
use crate::name::Name;
use std::net::IpAddr;

/// (Move destination, message id) pairs remembered at once: as many as C-MOVEs in progress.
const MAX_KEYS: usize = 4096;
/// C-MOVEs remembered per (destination, message id): each association numbers its messages
/// from 1, so several requesters' C-MOVEs to one destination share ids within seconds.
const PER_KEY: usize = 8;
/// How far from a seen C-MOVE's request and final response its sub-operations may seem to
/// start: a mirror's skew, and a capture gap that moves a request's time to a later segment.
const SLACK_NS: i64 = 4 * MIRROR_SKEW_NS;

/// One C-MOVE seen.
#[derive(Debug, Clone)]
struct Seen {
    from: i64,
    to: i64,
    /// Its calling AE (none: its A-ASSOCIATE-RQ was lost).
    calling: Option<Name>,
    /// The SCP it asked (the address its sub-operations come from, as a rule).
    scp: IpAddr,
}

/// The C-MOVEs seen lately, by (move destination, message id); one whose destination was lost
/// with its request under an empty destination (it stands for any).
#[derive(Debug)]
pub(crate) struct SeenMoves {
    by_key: BoundedMap<(Name, u16), Vec<Seen>>,
}

impl Default for SeenMoves {
    fn default() -> Self {
        SeenMoves {
            by_key: BoundedMap::new(MAX_KEYS),
        }
    }
}

/// A C-MOVE as [`SeenMoves::note`] records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoveSeen<'a> {
    pub(crate) calling: Option<&'a str>,
    pub(crate) message_id: u16,
    pub(crate) dest_ae: Option<&'a str>,
    pub(crate) scp: IpAddr,
    /// Request time (or the response's, when earlier: a request time moved by a gap).
    pub(crate) from: i64,
    /// Final response time (or the event's).
    pub(crate) to: i64,
}

/// Sub-operations no C-MOVE took, as [`SeenMoves::covers`] asks about them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unclaimed<'a> {
    pub(crate) originator: &'a str,
    pub(crate) message_id: u16,
    pub(crate) dest_ae: &'a str,
    /// The address that sent them (the C-STORE association's requester).
    pub(crate) sender: IpAddr,
    /// When the first began.
    pub(crate) first: i64,
}

impl SeenMoves {
    pub(crate) fn note(&mut self, m: MoveSeen<'_>) {
        let key = (Name::new(m.dest_ae.unwrap_or_default()), m.message_id);
        let mut seen = self.by_key.get(&key).cloned().unwrap_or_default();
        if seen.len() >= PER_KEY {
            seen.remove(0);
        }
        seen.push(Seen {
            from: m.from,
            to: m.to,
            calling: m.calling.map(Name::new),
            scp: m.scp,
        });
        self.by_key.insert(key, seen);
    }

    /// Whether the sub-operations `u` belong to a C-MOVE seen: one with their message id, to
    /// their destination (or to one unknown), around their start, asked by their originator
    /// (or by no known AE) or of the SCP that sent them.
    pub(crate) fn covers(&self, u: Unclaimed<'_>) -> bool {
        let matches = |s: &Seen| {
            u.first >= s.from.saturating_sub(SLACK_NS)
                && u.first <= s.to.saturating_add(SLACK_NS)
                && (s.calling.as_ref().is_none_or(|c| c.as_str() == u.originator) || s.scp == u.sender)
        };
        [u.dest_ae, ""].iter().any(|dest| {
            self.by_key
                .get(&(Name::new(dest), u.message_id))
                .is_some_and(|v| v.iter().any(matches))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn seen(calling: Option<&str>, dest_ae: Option<&str>, scp: &str, from: i64, to: i64) -> MoveSeen<'static> {
        MoveSeen {
            calling: calling.map(|c| Box::leak(c.to_owned().into_boxed_str()) as &str),
            message_id: 1,
            dest_ae: dest_ae.map(|d| Box::leak(d.to_owned().into_boxed_str()) as &str),
            scp: ip(scp),
            from,
            to,
        }
    }

    fn unclaimed(originator: &'static str, sender: &str, first: i64) -> Unclaimed<'static> {
        Unclaimed {
            originator,
            message_id: 1,
            dest_ae: "ARCHIVE",
            sender: ip(sender),
            first,
        }
    }

    #[test]
    fn sub_operations_belong_to_a_c_move_seen_with_their_id_destination_and_time() {
        let mut m = SeenMoves::default();
        m.note(seen(Some("WS1"), Some("ARCHIVE"), "10.0.0.5", 10 * S, 12 * S));
        assert!(m.covers(unclaimed("WS1", "10.0.0.5", 11 * S)));
        assert!(
            m.covers(unclaimed("WS1", "10.0.0.6", 11 * S)),
            "its originator, another SCP address"
        );
        assert!(
            m.covers(unclaimed("WS9", "10.0.0.5", 11 * S)),
            "the same SCP, another originator"
        );
        assert!(!m.covers(unclaimed("WS9", "10.0.0.6", 11 * S)), "neither");
        assert!(!m.covers(unclaimed("WS1", "10.0.0.5", 20 * S)), "long after it");
        let other_id = Unclaimed {
            message_id: 2,
            ..unclaimed("WS1", "10.0.0.5", 11 * S)
        };
        assert!(!m.covers(other_id));
        let other_dest = Unclaimed {
            dest_ae: "THIEF",
            ..unclaimed("WS1", "10.0.0.5", 11 * S)
        };
        assert!(!m.covers(other_dest));
    }

    #[test]
    fn a_c_move_whose_destination_or_caller_was_lost_stands_for_any() {
        let mut m = SeenMoves::default();
        m.note(seen(None, None, "10.0.0.5", 10 * S, 10 * S));
        assert!(m.covers(unclaimed("WS1", "10.0.0.6", 11 * S)));
        let other_dest = Unclaimed {
            dest_ae: "THIEF",
            ..unclaimed("WS7", "10.0.0.6", 11 * S)
        };
        assert!(m.covers(other_dest));
    }

    #[test]
    fn memory_is_bounded_per_key_and_in_keys() {
        let mut m = SeenMoves::default();
        for k in 0..(PER_KEY as i64 + 1) {
            m.note(seen(Some("WS1"), Some("ARCHIVE"), "10.0.0.5", k * 10 * S, k * 10 * S));
        }
        assert!(!m.covers(unclaimed("WS1", "10.0.0.9", 0)), "the oldest forgotten");
        assert!(m.covers(unclaimed("WS1", "10.0.0.9", 10 * S)));
        for id in 0..(MAX_KEYS as u16 + 10) {
            m.note(MoveSeen {
                message_id: id,
                ..seen(Some("WS1"), Some("X"), "10.0.0.5", 0, 0)
            });
        }
        assert!(m.by_key.len() <= MAX_KEYS);
    }
}
