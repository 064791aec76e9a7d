//! Auto mode's judge: which bad segments of the sample are evidence of checksum offload.
//!
//! A plain ratio of bad segments (Suricata's) cannot tell offload from an attack, and a
//! verdict of "offloaded" switches validation off for the rest of the capture, so whoever sends
//! bad segments first would decide what the decoders read. Two properties of offload tell it
//! apart:
//!
//! - **It is answered.** The receiver of an offloading host's segments got them with good
//!   checksums (the NIC filled them in after the capture point) and answers them: the reverse
//!   direction of the connection shows up. Segments that really have bad checksums are dropped
//!   by their receiver, which never answers them: a flood of them (hping3 `--badcksum`, with
//!   random sources or not) draws no reply. So a bad segment is evidence only once a packet of
//!   its reverse direction (same 4-tuple, endpoints swapped) was seen, within
//!   [`ANSWER_WINDOW`] packets before or after it.
//! - **It has no good twin.** An offloading host's segments are bad in every copy it sends (its
//!   retransmissions too); a decoy is a bad copy of a segment that also comes good: fragroute's
//!   `tcp_chaff cksum` sends one, with random bytes, next to every data segment, a third of all
//!   packets; judged by the ratio, the capture looked offloaded and the decoys reached the
//!   decoders (8 of 18 C-MOVEs of a bulk export lost, no alert). So a bad data segment with a
//!   good copy (same direction, sequence number and length) within [`TWIN_WINDOW`] packets is a
//!   decoy (counted as `checksum_twins`), not evidence.
//!
//! - **It is all of a direction.** The NIC fills in every checksum of its host's segments, so
//!   none of them is captured good: a direction of a connection (one 4-tuple, one way) that
//!   carried a good segment is not offloaded, and its bad segments are not evidence. Bad
//!   segments spoofed onto a live connection's own 4-tuple (where they would be answered by the
//!   connection's own traffic) are ruled out so.
//!
//! What is left: a whole fabricated conversation, both directions bad and nothing good on
//! either, can still pass for offload. Where that matters (a live SPAN port, where offload
//! cannot occur), `--checksum on`.

use std::collections::{HashSet, VecDeque};

use pacstap_core::{FlowKey, Packet};

/// How many packets apart a bad data segment and a good copy of it may come and still be twins.
/// fragroute puts its chaff right before or right after the real segment; a SPAN port's queues
/// reorder by a few packets.
pub const TWIN_WINDOW: u64 = 8;

/// How many packets a bad segment waits for its reverse direction to show up (a SYN's SYN-ACK,
/// a data segment's ACK: on a busy link a few dozen packets of other flows come between).
pub const ANSWER_WINDOW: u64 = 64;

/// The 4-tuples (one per direction) seen while judging: enough for the sample's flows; a flood
/// of new ones stops adding (its segments are never answered anyway).
const MAX_TALKERS: usize = 4096;

/// A bad segment not judged yet.
#[derive(Debug)]
struct Waiting {
    /// The hash of its direction's 4-tuple.
    dir: u64,
    /// Its direction carried a good segment before it: never evidence, only a possible decoy.
    vetoed: bool,
    /// Data segments: the fingerprint a good twin would have.
    twin: Option<u64>,
    /// The hash of its reverse direction's 4-tuple.
    reverse: u64,
    /// A packet of the reverse direction was seen.
    answered: bool,
    /// Packet count when it came.
    at: u64,
}

/// The judge's state, from the first packet to the verdict (then dropped).
#[derive(Debug, Default)]
pub(super) struct OffloadJudge {
    hasher: ahash::RandomState,
    /// Packets looked at so far (the windows' clock).
    packets: u64,
    /// Fingerprints of the last good data segments, with the packet count they came at.
    good: VecDeque<(u64, u64)>,
    waiting: VecDeque<Waiting>,
    /// Directional 4-tuples seen (bounded by [`MAX_TALKERS`]).
    talkers: HashSet<u64, ahash::RandomState>,
    /// Those of them that carried a good segment (bounded by [`MAX_TALKERS`]).
    good_talkers: HashSet<u64, ahash::RandomState>,
    /// Bad segments judged to be offload: answered, and without a good twin.
    pub evidence: u64,
}

impl OffloadJudge {
    /// Whether bad segments still wait to be judged.
    pub fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn direction(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn fingerprint(&self, pkt: &Packet<'_>) -> u64 {
        self.hasher.hash_one((pkt.key, pkt.tcp.seq, pkt.wire_payload_len))
    }

    /// One packet (any checksum verdict but unverifiable): its direction answers the bad ones
    /// waiting for it; the bad ones whose windows passed are judged.
    fn tick(&mut self, pkt: &Packet<'_>) {
        self.packets += 1;
        let dir = self.direction(&pkt.key);
        if self.talkers.len() < MAX_TALKERS {
            self.talkers.insert(dir);
        }
        for w in self.waiting.iter_mut().filter(|w| w.reverse == dir) {
            w.answered = true;
        }
        let twin_horizon = self.packets.saturating_sub(TWIN_WINDOW);
        while self.good.front().is_some_and(|&(_, at)| at < twin_horizon) {
            self.good.pop_front();
        }
        let answer_horizon = self.packets.saturating_sub(ANSWER_WINDOW);
        let evidence = &mut self.evidence;
        self.waiting.retain(|w| {
            let twin_window_over = w.at < twin_horizon;
            if twin_window_over && w.vetoed {
                // No twin came: not a decoy, and not offload either.
                return false;
            }
            if twin_window_over && w.answered {
                *evidence += 1;
                return false;
            }
            // Never answered within its window: a segment its receiver dropped, not offload.
            w.at >= answer_horizon
        });
    }

    /// A good packet. Returns whether it was the good twin of a bad data segment waiting (a
    /// decoy). The bad segments of its direction waiting are not offload (see the module docs)
    /// and are no longer judged.
    pub fn good(&mut self, pkt: &Packet<'_>) -> bool {
        self.tick(pkt);
        let dir = self.direction(&pkt.key);
        if self.good_talkers.len() < MAX_TALKERS {
            self.good_talkers.insert(dir);
        }
        let mut twinned = false;
        if pkt.wire_payload_len > 0 {
            let fp = self.fingerprint(pkt);
            if self.good.len() as u64 >= TWIN_WINDOW {
                self.good.pop_front();
            }
            self.good.push_back((fp, self.packets));
            twinned = self.waiting.iter().any(|w| w.twin == Some(fp));
        }
        self.waiting.retain(|w| w.dir != dir);
        twinned
    }

    /// A bad packet of the sample. Returns whether it is a decoy (a good twin came already).
    pub fn bad(&mut self, pkt: &Packet<'_>) -> bool {
        self.tick(pkt);
        let twin = (pkt.wire_payload_len > 0).then(|| self.fingerprint(pkt));
        if twin.is_some_and(|fp| self.good.iter().any(|&(f, _)| f == fp)) {
            return true;
        }
        let dir = self.direction(&pkt.key);
        // A direction that carried a good segment is not offloaded; a data segment of it still
        // waits for a twin, to be counted as a decoy.
        let vetoed = self.good_talkers.contains(&dir);
        if vetoed && twin.is_none() {
            return false;
        }
        let reverse = self.direction(&pkt.key.reversed());
        if self.waiting.len() as u64 >= ANSWER_WINDOW {
            // Full: the oldest is judged now, on what is known of it.
            if let Some(w) = self.waiting.pop_front() {
                self.evidence += u64::from(w.answered && !w.vetoed);
            }
        }
        self.waiting.push_back(Waiting {
            dir,
            vetoed,
            twin,
            reverse,
            answered: self.talkers.contains(&reverse),
            at: self.packets,
        });
        false
    }
}
