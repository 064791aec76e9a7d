//! PAWS: segments a receiver drops because their timestamp is older than the last one it took.
//!
//! With TCP timestamps in use (both SYNs carried the option, RFC 7323 §3.2), a receiver keeps
//! `TS.Recent`, the TSval of the last segment at its left window edge, and drops a segment whose
//! TSval is older (Protection Against Wrapped Sequences, RFC 7323 §5.3). Linux does this with a
//! tolerance of one tick (`TCP_PAWS_WINDOW`) and updates `TS.Recent` only from segments at or
//! before the point it has received up to (`tcp_replace_ts_recent`), so a segment reordered
//! ahead never moves it. Such a segment is a decoy for a tap that takes it: a copy of the next
//! segment with other bytes, a valid checksum and an old TSval reaches the tap first and the
//! server never reads it (Snort and Suricata check PAWS for the same reason). Here a data
//! segment of a timestamped connection is judged the way Linux judges it and, when it fails,
//! changes nothing, like a bad checksum (`tcp.paws_rejected`).
//!
//! Only where the handshake was captured and both SYNs carried timestamps; a connection picked
//! up mid-stream, or without the option (Windows by default), is not judged. Pure ACKs, SYNs
//! and RSTs are not judged either (Linux lets disordered ACKs through; RSTs have their own
//! check).

use pacstap_core::{Direction, PerDirection};

use crate::reassembly::seq_delta;

/// How much older than `TS.Recent` a TSval may be (Linux `TCP_PAWS_WINDOW`).
const PAWS_WINDOW: i64 = 1;

/// `TS.Recent` of each direction, once the handshake showed timestamps in use.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Paws {
    /// TSval of each direction's SYN, then of its last segment at the delivery point. Both are
    /// set exactly when both SYNs carried the option: timestamps are in use.
    recent: PerDirection<Option<u32>>,
}

impl Paws {
    /// A SYN (or SYN-ACK) from `dir` with timestamp `tsval`, if it had the option.
    pub fn syn(&mut self, dir: Direction, tsval: Option<u32>) {
        self.recent[dir] = tsval;
    }

    /// Whether a data segment from `dir` with timestamp `tsval` is one the receiver takes.
    /// `at_edge`: the segment starts at or before the next byte to deliver (what may move
    /// `TS.Recent`).
    pub fn admit(&mut self, dir: Direction, tsval: Option<u32>, at_edge: bool) -> bool {
        let (Some(recent), Some(_), Some(tsval)) = (self.recent[dir], self.recent[dir.reverse()], tsval) else {
            return true;
        };
        if seq_delta(recent, tsval) > PAWS_WINDOW {
            return false;
        }
        if at_edge && seq_delta(tsval, recent) > 0 {
            self.recent[dir] = Some(tsval);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{ToClient, ToServer};

    #[test]
    fn older_than_ts_recent_by_more_than_one_tick_is_rejected() {
        let mut p = Paws::default();
        p.syn(ToServer, Some(1000));
        assert!(p.admit(ToServer, Some(1), true), "one side only: not in use");
        p.syn(ToClient, Some(5));
        assert!(p.admit(ToServer, Some(1010), true));
        assert!(p.admit(ToServer, Some(1009), true), "one tick of tolerance");
        assert!(!p.admit(ToServer, Some(1008), true));
        assert!(p.admit(ToServer, None, true), "no option: not judged");
        assert!(p.admit(ToClient, Some(5), true), "each direction its own");
        // Ahead of the delivery point: TS.Recent stays.
        assert!(p.admit(ToServer, Some(5000), false));
        assert!(p.admit(ToServer, Some(1010), true));
        // Across the 2^32 wrap.
        let mut p = Paws::default();
        p.syn(ToServer, Some(u32::MAX - 1));
        p.syn(ToClient, Some(0));
        assert!(p.admit(ToServer, Some(3), true));
        assert!(!p.admit(ToServer, Some(u32::MAX - 5), true));
    }
}
