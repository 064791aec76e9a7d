//! Per-connection HL7 state: acknowledgment pairing (MSA-2 against earlier MSH-10 the other
//! way, HL7 v2.5 §2.9 original and enhanced acknowledgment modes); each message is emitted
//! as the event `event.rs` builds.

use super::event::event_of;
use super::parser::parse_message;
use super::stream::{FrameSink, Message, MessageEnd, ResyncCause};
use super::Hl7Anomaly;
use crate::Ctx;
use pacstap_core::{Direction, EventBody, Timestamp};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// Messages sent one way that still wait for their acknowledgment, by control id.
///
/// Keyed by a 64-bit keyed hash of MSH-10 rather than the id itself: an entry costs the same
/// whatever the sender puts in the id, and the per-flow random key keeps collisions
/// unforceable. Oldest entries are evicted past the cap; the FIFO of insertions is compacted
/// when stale entries (already acknowledged) make up half of it, so both stay bounded.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    map: HashMap<u64, Pending>,
    order: VecDeque<(u64, u64)>,
    seq: u64,
    hasher: RandomState,
    /// Entries evicted unacknowledged.
    pub evicted: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    sent: Timestamp,
    seq: u64,
}

impl Outstanding {
    /// Remember `id` sent at `sent`; returns how many entries were evicted to make room.
    pub(crate) fn insert(&mut self, id: &str, sent: Timestamp, cap: usize) -> u64 {
        let cap = cap.max(1);
        let key = self.hasher.hash_one(id);
        self.seq = self.seq.wrapping_add(1);
        let mut evicted = 0;
        if !self.map.contains_key(&key) {
            while self.map.len() >= cap {
                let Some((k, s)) = self.order.pop_front() else { break };
                if self.map.get(&k).is_some_and(|p| p.seq == s) {
                    self.map.remove(&k);
                    evicted += 1;
                }
            }
        }
        // A repeated id (a retransmission) is timed from its latest copy.
        self.map.insert(key, Pending { sent, seq: self.seq });
        self.order.push_back((key, self.seq));
        if self.order.len() > cap.saturating_mul(2).saturating_add(16) {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|p| p.seq == *s));
        }
        self.evicted = self.evicted.saturating_add(evicted);
        evicted
    }

    /// When `id` was sent, if it is outstanding; `keep` leaves it outstanding (a commit
    /// acknowledgment, which an application acknowledgment may follow).
    pub(crate) fn take(&mut self, id: &str, keep: bool) -> Option<Timestamp> {
        let key = self.hasher.hash_one(id);
        if keep {
            self.map.get(&key).map(|p| p.sent)
        } else {
            self.map.remove(&key).map(|p| p.sent)
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// What one flow remembers across messages.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Anomaly events emitted by this flow (capped by `max_anomaly_events_per_flow`).
    pub anomalies_emitted: u32,
    /// By the direction the messages were sent in.
    outstanding: [Outstanding; 2],
    /// Every byte of that direction was seen from its start: an acknowledgment of a message
    /// never seen the other way is then an anomaly rather than a capture artefact.
    history_complete: [bool; 2],
    eviction_reported: bool,
}

impl Session {
    /// `whole`: the flow was seen from its handshake and claimed by content.
    pub(crate) fn start(&mut self, whole: bool) {
        self.history_complete = [whole; 2];
    }

    /// Bytes of `dir` were lost or passed over.
    pub(crate) fn lost(&mut self, dir: Direction) {
        if let Some(h) = self.history_complete.get_mut(dir.index()) {
            *h = false;
        }
    }

    pub(crate) fn anomaly(&mut self, ctx: &mut Ctx<'_>, name: Hl7Anomaly, detail: String) {
        ctx.flow_anomaly(&mut self.anomalies_emitted, name, Some(detail));
    }

    #[cfg(test)]
    pub(crate) fn outstanding(&self, dir: Direction) -> usize {
        self.outstanding.get(dir.index()).map_or(0, Outstanding::len)
    }

    /// A message ended: build and emit its event, pair acknowledgments.
    fn message(&mut self, ctx: &mut Ctx<'_>, dir: Direction, msg: &Message, end: MessageEnd) {
        let cfg = &ctx.cfg.hl7;
        let (max_chars, max_outstanding) = (cfg.max_value_chars, cfg.max_outstanding);
        if msg.kept_capped {
            ctx.stats.hl7.kept_bytes_capped += 1;
        }
        ctx.stats.hl7.bytes_skipped = ctx.stats.hl7.bytes_skipped.saturating_add(msg.skipped);
        // A message a capture gap cut (a header-only capture cuts every one longer than its
        // frames) lacks what lay past the hole: that is `hl7.gap`, not a malformed header.
        let cut = end == MessageEnd::Gap;
        let h = match parse_message(&msg.kept, max_chars) {
            Ok(h) => h,
            Err(_) if cut => return,
            Err(e) => {
                ctx.stats.hl7.malformed_messages += 1;
                self.anomaly(ctx, Hl7Anomaly::MalformedMsh, e.to_string());
                return;
            }
        };
        if !cut && (h.message_type.is_none() || h.control_id.is_none()) {
            let which = if h.message_type.is_none() {
                "MSH-9 message type"
            } else {
                "MSH-10 control id"
            };
            self.anomaly(ctx, Hl7Anomaly::MalformedMsh, format!("{which} is empty"));
        }
        // Remember it for its acknowledgment: every message that is not itself a response,
        // and responses that ask for one (enhanced mode, MSH-15 AL/ER/SU).
        let is_response = h.ack.is_some();
        let wants_ack = !is_response || matches!(h.accept_ack_type.as_deref(), Some("AL" | "ER" | "SU"));
        let mut ev = event_of(h, msg, dir, end);

        // Acknowledgment of a message sent the other way (MSA-2 = its MSH-10).
        if is_response {
            let code = ev.ack_code.as_deref().unwrap_or("");
            *ctx.stats.hl7.acks.entry(ack_label(code)).or_default() += 1;
            if let Some(acked) = ev.acked_control_id.as_deref() {
                let other = dir.reverse().index();
                // A commit acknowledgment (CA/CE/CR) may be followed by an application one.
                let commit = code.starts_with('C');
                let sent = self.outstanding.get_mut(other).and_then(|o| o.take(acked, commit));
                match sent {
                    Some(t) => ev.ack_latency_seconds = Some(ctx.ts.since(t).as_secs_f64()),
                    None => {
                        let whole = self.history_complete.get(other).copied().unwrap_or(false)
                            && self.outstanding.get(other).is_some_and(|o| o.evicted == 0);
                        if whole {
                            let detail = format!("MSA-2 {acked:?} matches no message sent the other way");
                            self.anomaly(ctx, Hl7Anomaly::AckWithoutMessage, detail);
                        }
                    }
                }
            }
        }

        if wants_ack && !ev.control_id.is_empty() {
            let evicted = self
                .outstanding
                .get_mut(dir.index())
                .map_or(0, |o| o.insert(&ev.control_id, ctx.ts, max_outstanding));
            if evicted > 0 {
                ctx.stats.hl7.outstanding_evictions += evicted;
                if !self.eviction_reported {
                    self.eviction_reported = true;
                    self.anomaly(
                        ctx,
                        Hl7Anomaly::TooManyOutstanding,
                        format!("more than {max_outstanding} unacknowledged messages; oldest forgotten"),
                    );
                }
            }
        }

        let stats = &mut ctx.stats.hl7;
        stats.messages += 1;
        if ev.truncated {
            stats.truncated_messages += 1;
        }
        if ev.admin_event.is_some() {
            stats.admin_events += 1;
        }
        ctx.emit(EventBody::Hl7(ev));
    }
}

/// Bounded label for the acks-by-code counter (HL7 table 0008).
fn ack_label(code: &str) -> &'static str {
    match code {
        "AA" => "AA",
        "AE" => "AE",
        "AR" => "AR",
        "CA" => "CA",
        "CE" => "CE",
        "CR" => "CR",
        _ => "other",
    }
}

/// Feeds deframer findings of one direction into the session and the event stream.
pub(crate) struct SessionSink<'s, 'c> {
    pub session: &'s mut Session,
    pub ctx: &'s mut Ctx<'c>,
    pub dir: Direction,
}

impl FrameSink for SessionSink<'_, '_> {
    fn message(&mut self, msg: &Message, end: MessageEnd) {
        self.session.message(self.ctx, self.dir, msg, end);
    }

    fn frame(&mut self) {
        self.ctx.stats.hl7.frames += 1;
    }

    fn skipped(&mut self, cause: ResyncCause, bytes: u64, locked: bool) {
        self.ctx.stats.hl7.resync_bytes = self.ctx.stats.hl7.resync_bytes.saturating_add(bytes);
        self.session.lost(self.dir);
        let until = if locked {
            "before the next frame"
        } else {
            "and no frame found"
        };
        let (name, why) = match cause {
            ResyncCause::Garbage => (Hl7Anomaly::BadFraming, "outside a frame"),
            ResyncCause::Midstream => (Hl7Anomaly::Resync, "skipped (capture began mid-message)"),
            ResyncCause::Gap => (Hl7Anomaly::Resync, "skipped after a capture gap"),
            ResyncCause::TooLarge => (Hl7Anomaly::Resync, "skipped after an oversized message"),
        };
        self.session
            .anomaly(self.ctx, name, format!("{bytes} bytes {why} {until}"));
    }

    fn anomaly(&mut self, name: Hl7Anomaly, detail: String) {
        self.session.anomaly(self.ctx, name, detail);
    }

    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        self.ctx.reserve(buf, more)
    }

    fn budget_refused(&mut self, kept: usize) {
        let detail = self
            .ctx
            .budget_detail(format_args!("header segments after {kept} bytes"));
        self.session.anomaly(self.ctx, Hl7Anomaly::MemoryBudget, detail);
    }
}
