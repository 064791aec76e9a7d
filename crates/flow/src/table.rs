//! The flow table: which connection a packet belongs to, who its client is, and when it ends.
//!
//! Flows live in a slab (`Vec<Option<Flow>>` with a free list) indexed by an `ahash` map keyed by
//! the canonical 4-tuple, so a packet of a known flow costs one hash lookup. The slab slots are
//! threaded on activity lists (`activity.rs`), least recently active first, one per eviction
//! class; touching a flow moves it to the tail in O(1), so the idle-timeout sweep takes the
//! oldest list head and table-full eviction the head of the cheapest class, neither ever
//! scanning the table. Activity is stamped with the table's clock (`clock.rs`: the latest packet
//! time seen, guarded against far-off timestamps), which keeps the lists sorted even when packet
//! times step backwards.
//!
//! Before a packet may change a flow, it is checked as the endpoints check it: its checksums
//! (`checksum.rs`), a RST's sequence number and a SYN on an open connection (`control.rs`,
//! RFC 5961). What fails is counted, reported as a `tcp.*` anomaly event (capped per flow,
//! [`FlowTable::drain_events`]) and has no effect.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use pacstap_core::{
    ChunkBody, CloseReason, Direction, FlowId, FlowKey, FlowMeta, Interest, Packet, PerDirection, ProtocolEvent,
    StreamChunk, StreamHandler, Timestamp,
};

use crate::activity::{Activity, Class, NIL};
use crate::checksum::ChecksumPolicy;
use crate::clock::{PacketClock, Step, MAX_STEP};
use crate::config::{FlowConfig, FlowStats};
use crate::control::{
    dropped_without_ack, fingerprint, timestamp, ttl, urgent_pointer, window_scale, RecentFrames, RstVerdict, SeqView,
};
use crate::paws::Paws;
use crate::reassembly::{seq_delta, Budget, Doubt, HalfStream};

mod anomaly;
mod causal;
mod create;
mod ending;
mod syn;

use anomaly::{
    BAD_CHECKSUM, DATA_AFTER_CLOSE, DATA_OUT_OF_WINDOW, FIN_IGNORED, LOW_TTL_DECOY, OVERLAP_CONFLICT, PAWS_REJECTED,
    RST_IN_WINDOW, RST_LOW_TTL, RST_OUT_OF_WINDOW, SYN_DATA_IGNORED, TIMESTAMP_JUMP, URGENT_DATA, WITHOUT_ACK,
};
use causal::CausalHold;
use syn::SynAction;

/// How often (packet time) idle flows are looked for. A sweep costs only the flows it ends plus one
/// look at the oldest, so this bounds how late a silent flow's timeout is noticed, not how much
/// work is done. Timeouts are stamped with the time they expired, and a flow's own packet checks
/// its timeout exactly, so the interval changes only when an idle flow's end is delivered.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Most bytes a segment's snaplen-cut tail is believed to have: the IPv4 total length and the
/// IPv6 payload length are 16-bit fields (RFC 791 §3.1, RFC 8200 §3). Jumbograms (RFC 2675) do not
/// cross a hospital LAN, and a larger claim would let one packet declare a 4 GiB gap.
const MAX_LOST_TAIL: u64 = 65_535;

/// Ids of ended flows a new flow's id is kept apart from. Two connections get the same derived id
/// only on the same 5-tuple at the same first timestamp, so the one to avoid ended a moment ago;
/// the same key keeps both on one worker, so the outcome does not depend on the sharding.
const RECENT_IDS: usize = 64;

/// Keys of recently ended flows remembered (two generations of this many), so data that follows
/// a teardown is flagged `tcp.data_after_close` on the flow that picks it up. 4096 covers the
/// connections a PACS segment closes within seconds; older ends are forgotten, not scanned.
const RECENT_ENDS: usize = 4096;

/// What is remembered of a connection that ended by FIN or RST, per endpoint
/// (`[key.src's, key.dst's]`).
#[derive(Debug, Clone, Copy)]
struct Ended {
    /// How far each endpoint had sent (SND.MAX).
    sent: [Option<u32>; 2],
    /// Each endpoint's initial sequence number, when its SYN was seen.
    isn: [Option<u32>; 2],
    /// When it ended (packet time).
    at: Timestamp,
}

/// One connection.
struct Flow<S> {
    /// Canonical key (the table's map key).
    key: FlowKey,
    meta: FlowMeta,
    /// The client is `key.src` (the canonical first endpoint).
    client_first: bool,
    /// Reassembly state of each direction.
    half: PerDirection<HalfStream>,
    /// The handler's per-flow state.
    state: S,
    /// Table clock when the flow last saw a packet.
    last_active: Timestamp,
    /// The handler returned `Interest::Ignore`: payload is no longer reassembled.
    ignored: bool,
    /// A FIN was seen per direction (what ends an ignored flow, whose streams are not tracked).
    fin_seen: PerDirection<bool>,
    /// Sequence number of the client's SYN, to tell its retransmission from a new connection.
    client_isn: Option<u32>,
    /// Sequence number of the server's SYN-ACK: once known, the handshake is over.
    server_isn: Option<u32>,
    /// Any packet of the flow carried payload.
    saw_payload: bool,
    /// What each direction sent and the other acknowledged, to judge RSTs.
    seqs: PerDirection<SeqView>,
    /// Window scale each direction announced in its SYN (RFC 7323 §2.2).
    wscale: PerDirection<Option<u8>>,
    /// Each direction's TS.Recent, to drop what the receiver's PAWS check drops (`paws`).
    paws: Paws,
    /// A SYN on this open connection, with a new ISN, waiting for the SYN-ACK that would make it
    /// a new connection (port reuse): (ISN, time, direction it came from).
    pending_syn: Option<(u32, Timestamp, Direction)>,
    /// Packets were captured in each direction.
    seen: PerDirection<bool>,
    /// Fingerprints of each direction's last frames, to count exact duplicates (`RecentFrames`).
    last_frame: PerDirection<RecentFrames>,
    /// `tcp.*` anomaly events emitted for this flow.
    anomaly_events: u32,
    /// One direction's segments held until the other's acknowledged bytes come (`causal`).
    causal: Option<Box<CausalHold>>,
}

impl<S> Flow<S> {
    fn class(&self) -> Class {
        if !self.saw_payload {
            Class::NoPayload
        } else if self.ignored {
            Class::Ignored
        } else {
            Class::Decoding
        }
    }

    fn direction(&self, src_first: bool) -> Direction {
        if src_first == self.client_first {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }
}

/// All TCP connections a worker owns, reassembled in both directions.
///
/// `S` is the handler's per-flow state, created with `S::default()` when a flow starts and handed
/// back by value in [`StreamHandler::on_flow_end`].
pub struct FlowTable<S> {
    cfg: FlowConfig,
    stats: FlowStats,
    index: HashMap<FlowKey, u32, ahash::RandomState>,
    slots: Vec<Option<Flow<S>>>,
    activity: Activity,
    free: Vec<u32>,
    /// Packet time, guarded against far-off timestamps: the only clock.
    clock: PacketClock,
    next_sweep: Timestamp,
    checksums: ChecksumPolicy,
    /// `tcp.*` anomaly events not yet drained.
    events: Vec<ProtocolEvent>,
    /// Keys of flows ended recently (by FIN or RST), with how far each endpoint had sent
    /// (`[key.src's, key.dst's]` SND.MAX): two generations, the older dropped when the newer
    /// fills.
    recent_ends: [HashMap<FlowKey, Ended, ahash::RandomState>; 2],
    /// Ids of the last [`RECENT_IDS`] flows ended: a new flow whose derived id is among them
    /// takes the next free one (`FlowId::next`).
    recent_ids: VecDeque<FlowId>,
    /// Flows holding an acknowledged hole open: when to look again (packet time).
    ack_waits: VecDeque<(Timestamp, u32, FlowId)>,
    /// The flow of the latest packet stamped far ahead of the clock (for its anomaly).
    far_key: Option<FlowKey>,
    /// Flows touched while a far timestamp awaited confirmation: stamped with the held clock,
    /// they are re-stamped when the jump is confirmed (else the jump would time them out).
    held: Vec<(u32, FlowId, Timestamp)>,
    /// The slot of the last flow looked up: a bulk transfer is a run of one flow's packets
    /// (both directions share the canonical key), so most lookups need no hashing. Checked
    /// against the slot's own key, which is always the key that indexes it (a slot is
    /// emptied when its key leaves the index), so it can never name another flow.
    last_lookup: u32,
}

impl<S: Default> FlowTable<S> {
    pub fn new(cfg: FlowConfig) -> Self {
        // The map's hasher is seeded at random per table: flow keys are chosen by whoever sends
        // packets, and a fixed seed would let them aim collisions at one bucket.
        let initial = cfg.max_flows.min(1024);
        let checksums = ChecksumPolicy::new(cfg.checksum, cfg.checksum_sample);
        FlowTable {
            cfg,
            stats: FlowStats::default(),
            index: HashMap::with_capacity_and_hasher(initial, ahash::RandomState::new()),
            slots: Vec::with_capacity(initial),
            activity: Activity::with_capacity(initial),
            free: Vec::new(),
            clock: PacketClock::new(),
            next_sweep: Timestamp(i64::MIN),
            checksums,
            events: Vec::new(),
            recent_ends: Default::default(),
            recent_ids: VecDeque::with_capacity(RECENT_IDS),
            ack_waits: VecDeque::new(),
            far_key: None,
            held: Vec::new(),
            last_lookup: NIL,
        }
    }

    /// Feed one packet (any order in time is tolerated; packet time is the only clock). Delivers
    /// chunks and flow ends to `h`. Returns the id of the flow the packet belongs to, or `None`
    /// when it started none (a bare ACK of an unknown connection, a full table).
    pub fn process<H: StreamHandler<S>>(&mut self, pkt: &Packet<'_>, h: &mut H) -> Option<FlowId> {
        self.stats.packets += 1;
        let captured = pkt.payload.len() as u64;
        let cut = u64::from(pkt.wire_payload_len).saturating_sub(captured);
        self.stats.payload_bytes += captured + cut;
        if cut > 0 {
            self.stats.truncated_packets += 1;
        }
        let len = captured + cut.min(MAX_LOST_TAIL);
        let (key, src_first) = pkt.key.canonical();

        // A segment the receiver would drop changes nothing: not the clock, not the flow.
        if !self.checksums.admit(pkt, &mut self.stats) {
            let idx = self.index.get(&key).copied()?;
            self.report(idx, BAD_CHECKSUM, pkt.ts);
            return self.flow_id(idx);
        }

        let before = self.clock.now();
        match self.clock.observe(pkt.ts) {
            step @ (Step::Advanced | Step::Jumped) => {
                if step == Step::Jumped {
                    self.restamp_held();
                }
                if self.clock.now() >= self.next_sweep {
                    self.sweep(h);
                }
                self.expire_ack_waits(h);
            }
            Step::Rejected => {
                self.held.clear();
                self.stats.timestamp_jumps += 1;
                if let Some(idx) = self.far_key.take().and_then(|k| self.index.get(&k).copied()) {
                    self.report(idx, TIMESTAMP_JUMP, pkt.ts);
                }
            }
            Step::Held => {}
        }
        if before != Timestamp(i64::MIN) && pkt.ts > before.add(MAX_STEP) {
            self.far_key = Some(key);
        }

        let flags = pkt.tcp.flags;
        let mut found = self.lookup(&key);
        if let Some(idx) = found {
            // The flow's own packet notices its timeout exactly (the sweep may not have run yet):
            // a connection idle for longer than the timeout is over, and this packet starts anew.
            // Judged by the packet's own time when it is ahead of the clock: a far timestamp
            // held for confirmation cannot time out other flows, but its own flow is judged by
            // it (as every flow was before the clock was guarded), so that which packets a
            // worker happened to hold never changes how a flow is split.
            // (A flow already touched while the clock is held was stamped with the held clock.)
            // A far packet that carries nothing but an acknowledgment (no data, no SYN, FIN or
            // RST) cannot start a connection, so it is no reason to end one: one pure ACK
            // stamped ten years ahead (a forged pcap, a capture clock's glitch) must not split
            // the association it names. Were the time real, the packets after it agree and
            // judge the flow by it.
            let bare_far_ack = pkt.ts > self.clock.now().add(crate::clock::MAX_STEP)
                && len == 0
                && !(flags.syn() || flags.fin() || flags.rst());
            let touched_while_held = self.held.iter().any(|&(i, _, _)| i == idx);
            let last = self
                .slot(idx)
                .map(|f| f.last_active)
                .filter(|_| !touched_while_held && !bare_far_ack);
            let now = self.clock.now().max(pkt.ts);
            if let Some(last) = last.filter(|&l| now.since(l) > self.cfg.idle_timeout) {
                self.stats.flows_timed_out += 1;
                self.end_flow(idx, CloseReason::Timeout, last.add(self.cfg.idle_timeout), h);
                found = None;
            }
        }
        let idx = match found {
            Some(idx) if flags.syn() && !flags.rst() => match self.syn_on_existing(idx, pkt, src_first) {
                SynAction::Same => idx,
                SynAction::Reuse { start, client_isn } => {
                    // Port reuse: the old connection ended without the capture seeing all of it.
                    // Closing if a FIN was seen, else how it ended is unknown.
                    let reason = match self.slot(idx) {
                        Some(f) if f.fin_seen.iter().any(|&f| f) => CloseReason::Fin,
                        _ => CloseReason::Timeout,
                    };
                    self.stats.flows_reused += 1;
                    self.end_flow(idx, reason, pkt.ts, h);
                    let idx = self.create(pkt, key, len, start, h)?;
                    if let Some(f) = self.slot_mut(idx) {
                        let client = Direction::ToServer;
                        f.client_isn = Some(client_isn);
                        f.seen[client] = true;
                        f.seqs[client].sent(client_isn, 1, None);
                    }
                    idx
                }
                SynAction::Drop(anomaly) => {
                    self.report(idx, anomaly, pkt.ts);
                    return self.flow_id(idx);
                }
            },
            Some(idx) => idx,
            None => self.create(pkt, key, len, pkt.ts, h)?,
        };
        let now = self.clock.now();
        let id = match self.slot_mut(idx) {
            Some(f) => {
                // Never backwards: a flow re-stamped at its own time after a jump keeps it
                // when the clock settles on an earlier packet of the run that confirmed it.
                f.last_active = f.last_active.max(now);
                f.meta.id
            }
            None => return None,
        };
        let anomalies = self.apply(idx, pkt, src_first, len, h);
        if let Some(class) = self.slot(idx).filter(|f| f.meta.id == id).map(Flow::class) {
            self.activity.touch(idx, class);
            if self.clock.pending() && self.held.len() < usize::from(crate::clock::CONFIRMATIONS) + 1 {
                self.held.push((idx, id, pkt.ts));
            }
        }
        if anomalies != 0 {
            self.report(idx, anomalies, pkt.ts);
        }
        Some(id)
    }

    /// End of capture: deliver what can be delivered (holes become `Gap`), then
    /// `on_flow_end(EndOfCapture)` for every flow, least recently active first.
    pub fn flush<H: StreamHandler<S>>(&mut self, ts: Timestamp, h: &mut H) {
        while self.flush_some(ts, h, usize::MAX) {}
    }

    /// [`FlowTable::flush`] for at most `max` flows, least recently active first, so that the
    /// caller can take their events before the next ones. Whether flows remain.
    pub fn flush_some<H: StreamHandler<S>>(&mut self, ts: Timestamp, h: &mut H, max: usize) -> bool {
        for _ in 0..max {
            let Some(idx) = self.oldest() else {
                return false;
            };
            self.end_flow(idx, CloseReason::EndOfCapture, ts, h);
        }
        self.oldest().is_some()
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    pub fn active_flows(&self) -> usize {
        self.index.len()
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// The `tcp.*` anomaly events produced since the last drain, in order (proto `tcp`; at most
    /// `FlowConfig::max_anomaly_events_per_flow` per flow, all counted in [`FlowStats`]).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ProtocolEvent> {
        self.events.drain(..)
    }

    /// Whether [`FlowTable::drain_events`] has anything: checked per packet, so the common
    /// case (no event) costs one comparison instead of a drain.
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The slot of the flow with canonical key `key` (see [`FlowTable::last_lookup`]).
    #[inline]
    fn lookup(&mut self, key: &FlowKey) -> Option<u32> {
        if self.slot(self.last_lookup).is_some_and(|f| f.key == *key) {
            return Some(self.last_lookup);
        }
        let idx = self.index.get(key).copied()?;
        self.last_lookup = idx;
        Some(idx)
    }

    fn slot(&self, idx: u32) -> Option<&Flow<S>> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, idx: u32) -> Option<&mut Flow<S>> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    fn flow_id(&self, idx: u32) -> Option<FlowId> {
        self.slot(idx).map(|f| f.meta.id)
    }

    /// A far timestamp was confirmed: the flows touched while it was held are active now, in
    /// the order they were touched (they are the most recent touches, so the lists stay
    /// nearly sorted). Each at its own packet's time when that is later than the clock: the
    /// clock jumps to the earliest of the run that confirmed it, which, when several far
    /// packets disagree (files of different days merged), can be far behind the packet that
    /// touched the flow; stamped with that, the flow's next packet would time it out, and the
    /// split would depend on which packets a worker happened to see.
    fn restamp_held(&mut self) {
        let now = self.clock.now();
        for (idx, id, ts) in std::mem::take(&mut self.held) {
            if let Some(f) = self.slot_mut(idx).filter(|f| f.meta.id == id) {
                f.last_active = now.max(ts);
                let class = f.class();
                self.activity.touch(idx, class);
            }
        }
    }

    /// The least recently active flow, whatever its class.
    fn oldest(&self) -> Option<u32> {
        self.activity.oldest(|i| self.slot(i).map(|f| f.last_active))
    }

    /// The table cap, at least one flow and within the slab's `u32` indices.
    fn max_flows(&self) -> usize {
        self.cfg.max_flows.clamp(1, (NIL - 1) as usize)
    }

    /// Apply one packet to its flow. Returns the anomalies it showed (a mask).
    fn apply<H: StreamHandler<S>>(&mut self, idx: u32, pkt: &Packet<'_>, src_first: bool, len: u64, h: &mut H) -> u16 {
        let now = self.clock.now();
        let Some(flow) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return 0;
        };
        let dir = flow.direction(src_first);
        let (own, peer) = (dir, dir.reverse());
        let flags = pkt.tcp.flags;
        let seq = pkt.tcp.seq;
        let ts = pkt.ts;
        let mut b = Budget {
            cfg: &self.cfg,
            stats: &mut self.stats,
            now,
        };
        let Flow {
            half,
            state,
            meta,
            ignored,
            fin_seen,
            client_isn,
            server_isn,
            saw_payload,
            seqs,
            wscale,
            paws,
            seen,
            last_frame,
            causal,
            ..
        } = flow;
        let mut anomalies = 0u16;

        seen[own] = true;
        let fp = fingerprint(pkt.ip_header, pkt.tcp_header, seq, pkt.tcp.ack, pkt.wire_payload_len);
        if last_frame[own].seen_or_add(fp) {
            b.stats.duplicate_frames += 1;
        }

        // A packet below the direction's TTL may have expired before the receiver
        // (`reassembly::held`): data so is held, and a RST so is not taken once the direction
        // has carried data (its TTL is then the stack's own; before, it may be a scanner's raw
        // SYN, e.g. masscan's TTL 255, which the kernel's own RST then follows lower).
        let low_ttl = half[own].low_ttl(ttl(pkt.ip_header));
        let receiver_ttl = half[peer].ttl();
        half[own].receiver_ttl(receiver_ttl);
        if flags.rst() && low_ttl.is_some() && half[own].has_data() {
            b.stats.rst_low_ttl += 1;
            return RST_LOW_TTL;
        }

        // RFC 5961 §3.2: a RST counts only with the sequence number the receiver expects.
        let mut reset = false;
        if flags.rst() {
            let verdict = if server_isn.is_none() && dir == Direction::ToClient && !half[own].has_data() {
                // SYN-SENT (RFC 9293 §3.10.7.3): acceptable if it acknowledges the SYN.
                client_isn.map(|isn| {
                    if flags.ack() && pkt.tcp.ack == isn.wrapping_add(1) {
                        RstVerdict::Exact
                    } else {
                        RstVerdict::OutOfWindow
                    }
                })
            } else {
                seqs[own].judge_rst(seq, receiver_shift(wscale, peer, meta.handshake_seen))
            };
            match verdict {
                None | Some(RstVerdict::Exact) => {
                    b.stats.rst_accepted += 1;
                    reset = true;
                }
                Some(RstVerdict::InWindow) => {
                    b.stats.rst_in_window += 1;
                    return RST_IN_WINDOW;
                }
                Some(RstVerdict::OutOfWindow) => {
                    b.stats.rst_out_of_window += 1;
                    return RST_OUT_OF_WINDOW;
                }
            }
        }

        // Without the ACK bit no receiver takes it.
        if dropped_without_ack(flags, len) {
            b.stats.without_ack += 1;
            return WITHOUT_ACK;
        }

        // RFC 7323 §5.3: a data segment older than the receiver's TS.Recent is dropped by it.
        if len > 0 && !flags.syn() && !flags.rst() && !*ignored {
            let at_edge = seq_delta(seq, half[own].next_seq()) <= 0;
            if !paws.admit(dir, timestamp(pkt.tcp_header), at_edge) {
                b.stats.paws_rejected += 1;
                // Only bytes already delivered: a stale copy (a mirror's duplicate delivered
                // late, two captures merged with their clocks apart) that changes nothing
                // either way, dropped without alarm. A segment with anything new is what a
                // PAWS evasion sends.
                let len32 = u32::try_from(len).unwrap_or(u32::MAX);
                if seq_delta(seq.wrapping_add(len32), half[own].next_seq()) <= 0 {
                    return 0;
                }
                return PAWS_REJECTED;
            }
        }

        // RFC 9293 §3.4: the SYN occupies one sequence number, so data (TCP Fast Open's, or any
        // later) starts at ISN + 1: stream offset 0.
        let data_seq = if flags.syn() { seq.wrapping_add(1) } else { seq };
        let shift = receiver_shift(wscale, peer, meta.handshake_seen);
        let sent_before = seqs[own].snd_max;
        // RFC 9293 §3.10.7.4: a segment that starts beyond the receiver's window is dropped by
        // it (and answered with an ACK). Buffered here, a blind spoofer's far-off bytes (fragroute's
        // `tcp_chaff seq`) would wait beyond a hole until a cap gave the hole up; the stream would
        // then jump to them and take every real byte after as a retransmission.
        // So it is held until the receiver's ACK shows it was in the window after all
        // (`reassembly::held`): a capture that lost more than a window shows the next segment
        // before the ACK that covers it.
        let beyond_window = len > 0 && !flags.syn() && !seqs[own].in_window(data_seq, shift, sent_before);
        seqs[own].sent(
            seq,
            (len as u32)
                .wrapping_add(u32::from(flags.syn()))
                .wrapping_add(u32::from(flags.fin())),
            shift,
        );
        if flags.ack() {
            seqs[peer].peer_ack = Some(pkt.tcp.ack);
            seqs[peer].peer_window = pkt.tcp.window;
        }
        if flags.syn() {
            half[own].start_at(data_seq);
            wscale[own] = window_scale(pkt.tcp_header);
            paws.syn(dir, timestamp(pkt.tcp_header));
            if !flags.ack() && dir == Direction::ToServer {
                *client_isn = Some(seq);
            }
            if flags.ack() {
                if dir == Direction::ToClient {
                    *server_isn = Some(seq);
                    // The SYN-ACK names the client's ISN (its ACK is ISN + 1): a SPAN port
                    // that delivers the client's side late shows the SYN after it, and that
                    // SYN is the handshake's own, not a new one on an open connection.
                    if client_isn.is_none() {
                        *client_isn = Some(pkt.tcp.ack.wrapping_sub(1));
                    }
                }
                if !half[peer].has_data() {
                    // A SYN-ACK acknowledges the peer's SYN: its ACK is the peer's ISN + 1, offset
                    // 0 of the peer's stream, even when the SYN itself was not captured.
                    half[peer].start_at(pkt.tcp.ack);
                }
            }
        }
        let waiting = PerDirection::new(half.to_server.waiting(), half.to_client.waiting());
        let beyond = b.stats.data_out_of_window;
        let (conflicts, after_fin, syn_data_ignored, fin_ignored) = (
            b.stats.overlap_conflicts,
            b.stats.bytes_after_fin,
            b.stats.syn_data_ignored,
            b.stats.fin_ignored,
        );
        let mut interest = Interest::Continue;
        // The ACK first: it reports on the peer's bytes, which were sent before this packet, so
        // a gap it reveals belongs before whatever this packet carries.
        if flags.ack() && !*ignored {
            match causal.as_mut().filter(|c| c.dir == peer && c.holds_any()) {
                // Acknowledges bytes held for causal order: applied after they are replayed.
                Some(c) => c.note_ack(pkt.tcp.ack),
                None => interest = half[peer].ack(pkt.tcp.ack, &mut b, &mut sink(h, state, meta, dir.reverse(), ts)),
            }
        }
        // RFC 9293 §3.6: the FIN takes the sequence number after the segment's data. One beyond
        // the receiver's window is dropped by it (RFC 9293 §3.10.7.4), and here.
        let fin_seq = flags.fin().then(|| data_seq.wrapping_add(len as u32)).filter(|&f| {
            let in_window = seqs[own].in_window(f, shift, sent_before);
            if !in_window {
                b.stats.fin_ignored += 1;
            }
            in_window
        });
        // While the peer owes bytes this packet (or an earlier one) acknowledged, this
        // direction's bytes were caused by them: hold them until they come (`causal`).
        let mut holding = causal::Holding {
            held: false,
            new: false,
            interest: Interest::Continue,
        };
        // An urgent byte is taken out of the stream before the bytes around it are delivered.
        if flags.urg() && !*ignored && half[own].urgent(seq, urgent_pointer(pkt.tcp_header), &mut b) {
            anomalies |= URGENT_DATA;
        }
        // Data on the SYN (or SYN-ACK) that opens this direction waits for the receiver's verdict
        // (`reassembly::syn_data`): it is not offset 0 until the SYN-ACK acknowledges it.
        let syn_data_kept = len > 0
            && flags.syn()
            && !*ignored
            && interest == Interest::Continue
            && half[own].syn_data(pkt.payload, len, &mut b);
        // Data below the direction's TTL, or beyond the receiver's window, is held until the
        // stream decides (`reassembly::held`).
        let doubt = if beyond_window {
            Some(Doubt::BeyondWindow)
        } else {
            low_ttl.map(Doubt::LowTtl)
        }
        .filter(|_| len > 0 && !flags.syn() && fin_seq.is_none() && !*ignored);
        let doubtful = doubt.is_some();
        if let Some(doubt) = doubt.filter(|_| interest == Interest::Continue) {
            let out = &mut sink(h, state, meta, dir, ts);
            interest = half[own].hold(data_seq, doubt, pkt.payload, len, &mut b, out);
        }
        if (len > 0 || fin_seq.is_some()) && !syn_data_kept && !doubtful && !*ignored && interest == Interest::Continue
        {
            let seg = causal::Arrival {
                seq: data_seq,
                len,
                payload: pkt.payload,
                fin: fin_seq,
                ts,
                ack: flags.ack().then_some(pkt.tcp.ack),
            };
            holding = causal::hold(causal, half, own, seg, now, &mut b, h, state, meta);
            interest = holding.interest;
        }
        let (held, mut new_hold) = (holding.held, holding.new);
        if len > 0 {
            *saw_payload = true;
            if !held && !syn_data_kept && !doubtful && !*ignored && interest == Interest::Continue {
                interest = half[own].segment(data_seq, pkt.payload, len, &mut b, &mut sink(h, state, meta, dir, ts));
            }
        }
        // A SYN with data and FIN is dropped by a listening receiver (Linux discards SYN+FIN in
        // LISTEN): its FIN ends nothing.
        if let Some(fin_seq) = fin_seq.filter(|_| !syn_data_kept) {
            fin_seen[own] = true;
            if !held && !*ignored && interest == Interest::Continue {
                interest = half[own].fin(fin_seq, &mut b, &mut sink(h, state, meta, dir, ts));
            }
        }
        // An acknowledged hole waits a number of packets of its flow, too.
        for d in Direction::BOTH {
            if waiting[d] && !*ignored && interest == Interest::Continue {
                interest = half[d].tick(&mut b, &mut sink(h, state, meta, d, ts));
            }
        }
        // The cause came (or was given up): what waited for it follows.
        let go_on = !*ignored && interest == Interest::Continue;
        let (released, i) = causal::release_if_over(causal, half, go_on, now, &mut b, h, state, meta);
        if released {
            new_hold = false;
        }
        // Discarded unreplayed when the flow is being ignored: `i` says nothing then, and
        // taking it would lose this packet's `Ignore`.
        if go_on {
            interest = i;
        }
        let decoys = b.stats.low_ttl_decoys;
        for hs in half.iter_mut().filter(|hs| hs.holds_any()) {
            hs.settle_held(&mut b);
        }
        if b.stats.low_ttl_decoys > decoys {
            anomalies |= LOW_TTL_DECOY;
        }
        if b.stats.data_out_of_window > beyond {
            anomalies |= DATA_OUT_OF_WINDOW;
        }
        if b.stats.overlap_conflicts > conflicts {
            anomalies |= OVERLAP_CONFLICT;
        }
        if b.stats.syn_data_ignored > syn_data_ignored {
            anomalies |= SYN_DATA_IGNORED;
        }
        if b.stats.fin_ignored > fin_ignored {
            anomalies |= FIN_IGNORED;
        }
        if b.stats.bytes_after_fin > after_fin {
            b.stats.data_after_close += 1;
            anomalies |= DATA_AFTER_CLOSE;
        }
        if interest == Interest::Ignore && !*ignored {
            *ignored = true;
            for hs in half.iter_mut() {
                hs.clear(&mut b);
            }
            if let Some(c) = causal.take() {
                c.discard(&mut b);
            }
        }
        let newly_waiting = Direction::BOTH.into_iter().any(|d| !waiting[d] && half[d].waiting());
        let both_done = if *ignored {
            fin_seen.to_server && fin_seen.to_client
        } else {
            half.to_server.is_closed() && half.to_client.is_closed()
        };
        let id = meta.id;

        if newly_waiting || new_hold {
            self.ack_waits.push_back((now.add(self.cfg.ack_wait), idx, id));
        }
        // RFC 9293 §3.5.3: a RST aborts the connection in both directions at once.
        if reset {
            self.end_flow(idx, CloseReason::Rst, ts, h);
        } else if both_done {
            self.end_flow(idx, CloseReason::Fin, ts, h);
        }
        anomalies
    }
}

/// The window scale of the receiver `peer` (RFC 7323 §2.2: in effect only when both SYNs carried
/// the option; none when the handshake was seen without it; unknown without the handshake).
fn receiver_shift(wscale: &PerDirection<Option<u8>>, peer: Direction, handshake_seen: bool) -> Option<u8> {
    match (wscale.to_server, wscale.to_client) {
        (Some(_), Some(_)) => wscale[peer],
        _ if handshake_seen => Some(0),
        _ => None,
    }
}

/// The delivery callback of one direction: wraps a piece into a [`StreamChunk`] for the handler.
fn sink<'a, S: 'a, H: StreamHandler<S> + 'a>(
    h: &'a mut H,
    state: &'a mut S,
    meta: &'a FlowMeta,
    dir: Direction,
    ts: Timestamp,
) -> impl FnMut(u64, ChunkBody<'_>) -> Interest + 'a {
    move |offset, body| {
        h.on_chunk(
            state,
            meta,
            StreamChunk {
                flow: meta.id,
                dir,
                ts,
                offset,
                body,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<S: Default> FlowTable<S> {
        /// Panics if the table's bookkeeping or a cap is broken (tests only).
        fn check_invariants(&self) {
            let mut n = 0;
            for list in self.activity.lists() {
                let mut last = Timestamp(i64::MIN);
                for cur in list {
                    let flow = self.slots[cur as usize].as_ref().expect("listed slot holds a flow");
                    assert!(flow.last_active >= last, "activity list sorted");
                    last = flow.last_active;
                    assert_eq!(self.index.get(&flow.key), Some(&cur));
                    assert_eq!(self.activity.class_of(cur), Some(flow.class()), "class");
                    for hs in flow.half.iter() {
                        hs.check_invariants();
                        assert!(hs.charged() <= self.cfg.max_buffered_bytes_per_dir, "per-direction cap");
                        assert!(hs.islands() <= self.cfg.max_holes_per_dir, "hole cap");
                    }
                    n += 1;
                }
            }
            assert_eq!(n, self.index.len());
            assert!(n <= self.max_flows());
            let charged: usize = self
                .slots
                .iter()
                .flatten()
                .flat_map(|f| f.half.iter())
                .map(HalfStream::charged)
                .sum();
            assert_eq!(charged as u64, self.stats.buffered_bytes);
            assert!(
                self.stats.buffered_bytes <= self.cfg.max_buffered_bytes_total as u64,
                "global cap"
            );
            assert!(self.stats.history_bytes <= self.cfg.delivered_history_total as u64);
            assert_eq!(self.stats.flows_created - self.stats.flows_ended, n as u64);
        }
    }
    use pacstap_core::{Endpoint, EventBody, TcpFlags, TcpHeader};
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr};

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH;
    const CISN: u32 = 1000;
    const SISN: u32 = 5000;
    use Direction::{ToClient, ToServer};

    fn ep(host: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)), port)
    }
    fn client() -> Endpoint {
        ep(1, 40000)
    }
    fn server() -> Endpoint {
        ep(2, 104)
    }
    fn ms(t: i64) -> Timestamp {
        Timestamp(t * 1_000_000)
    }
    /// Client sequence number of client stream offset `off`.
    fn c(off: u32) -> u32 {
        CISN.wrapping_add(1).wrapping_add(off)
    }
    fn s(off: u32) -> u32 {
        SISN.wrapping_add(1).wrapping_add(off)
    }

    fn pkt_between(t: i64, src: Endpoint, dst: Endpoint, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Packet<'_> {
        Packet {
            ts: ms(t),
            key: FlowKey { src, dst },
            tcp: TcpHeader {
                seq,
                ack,
                flags: TcpFlags(flags),
                window: 65535,
            },
            payload,
            wire_payload_len: payload.len() as u32,
            ip_header: &[],
            tcp_header: &[],
        }
    }

    /// A packet between `client()` and `server()`.
    fn pkt(t: i64, to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Packet<'_> {
        let (src, dst) = if to_server {
            (client(), server())
        } else {
            (server(), client())
        };
        pkt_between(t, src, dst, seq, ack, flags, payload)
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Ev {
        Data(Direction, u64, Vec<u8>),
        Gap(Direction, u64, u64),
        Close(Direction, u64),
        End(CloseReason),
    }

    /// Records everything and checks that each direction's chunks are contiguous.
    #[derive(Default)]
    struct Rec {
        events: Vec<(FlowId, Ev)>,
        ends: Vec<(FlowMeta, CloseReason, Timestamp)>,
        next: HashMap<(FlowId, Direction), u64>,
        /// Return `Ignore` once a flow has had this many chunks.
        ignore_after: Option<u32>,
        data_ptrs: Vec<*const u8>,
    }

    impl StreamHandler<u32> for Rec {
        fn on_chunk(&mut self, state: &mut u32, meta: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
            assert_eq!(chunk.flow, meta.id);
            let expect = self.next.entry((chunk.flow, chunk.dir)).or_insert(0);
            assert_eq!(chunk.offset, *expect, "chunks of a direction are contiguous");
            let ev = match chunk.body {
                ChunkBody::Data(d) => {
                    assert!(!d.is_empty(), "no empty data chunks");
                    *expect += d.len() as u64;
                    self.data_ptrs.push(d.as_ptr());
                    Ev::Data(chunk.dir, chunk.offset, d.to_vec())
                }
                ChunkBody::Gap(n) => {
                    assert!(n > 0, "no empty gaps");
                    *expect += n;
                    Ev::Gap(chunk.dir, chunk.offset, n)
                }
                ChunkBody::Close(reason) => {
                    assert_eq!(reason, CloseReason::Fin);
                    Ev::Close(chunk.dir, chunk.offset)
                }
            };
            self.events.push((chunk.flow, ev));
            *state += 1;
            match self.ignore_after {
                Some(n) if *state >= n => Interest::Ignore,
                _ => Interest::Continue,
            }
        }

        fn on_flow_end(&mut self, _state: u32, meta: &FlowMeta, reason: CloseReason, ts: Timestamp) {
            assert!(!self.ends.iter().any(|(m, _, _)| m.id == meta.id), "one end per flow");
            self.events.push((meta.id, Ev::End(reason)));
            self.ends.push((*meta, reason, ts));
        }
    }

    impl Rec {
        /// Both directions in delivery order: `S:` (to the server) or `C:` (to the client) and
        /// each chunk as [`Rec::text`] shows it, space-separated.
        fn order(&self) -> String {
            let tag = |d: &Direction| if *d == ToServer { "S" } else { "C" };
            self.events
                .iter()
                .filter_map(|(_, ev)| match ev {
                    Ev::Data(d, _, bytes) => Some(format!("{}:{}", tag(d), String::from_utf8_lossy(bytes))),
                    Ev::Gap(d, _, n) => Some(format!("{}:{}", tag(d), "-".repeat(*n as usize))),
                    Ev::Close(d, _) => Some(format!("{}:|", tag(d))),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ")
        }

        /// Both directions' [`Rec::text`]: (to server, to client).
        fn texts(&self) -> (String, String) {
            (self.text(ToServer), self.text(ToClient))
        }

        /// One direction of every flow, in delivery order: data as text, gaps as `-`, FIN as `|`.
        fn text(&self, dir: Direction) -> String {
            let mut out = String::new();
            for (_, ev) in &self.events {
                match ev {
                    Ev::Data(d, _, bytes) if *d == dir => out.push_str(&String::from_utf8_lossy(bytes)),
                    Ev::Gap(d, _, n) if *d == dir => out.push_str(&"-".repeat(*n as usize)),
                    Ev::Close(d, _) if *d == dir => out.push('|'),
                    _ => {}
                }
            }
            out
        }

        fn end_reasons(&self) -> Vec<CloseReason> {
            self.ends.iter().map(|e| e.1).collect()
        }
    }

    fn feed(t: &mut FlowTable<u32>, rec: &mut Rec, pkts: &[Packet<'_>]) {
        for p in pkts {
            t.process(p, rec);
            t.check_invariants();
        }
    }

    fn table() -> FlowTable<u32> {
        FlowTable::new(FlowConfig::default())
    }

    /// A new table fed `pkts`, and what it delivered.
    fn fed(pkts: &[Packet<'_>]) -> (FlowTable<u32>, Rec) {
        let (mut t, mut rec) = (table(), Rec::default());
        feed(&mut t, &mut rec, pkts);
        (t, rec)
    }

    fn handshake(t: &mut FlowTable<u32>, rec: &mut Rec) {
        feed(
            t,
            rec,
            &[
                pkt(0, true, CISN, 0, SYN, b""),
                pkt(1, false, SISN, c(0), SYN | ACK, b""),
                pkt(2, true, c(0), s(0), ACK, b""),
            ],
        );
    }

    #[test]
    fn in_order_is_delivered_zero_copy_with_handshake_meta() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        let hello: &[u8] = b"hello ";
        let world: &[u8] = b"world";
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK | PSH, hello),
                pkt(4, true, c(6), s(0), ACK | PSH, world),
                pkt(5, false, s(0), c(11), ACK | PSH, b"ok"),
            ],
        );
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(rec.text(ToClient), "ok");
        assert_eq!(
            rec.data_ptrs[0],
            hello.as_ptr(),
            "in-order bytes are a slice of the packet"
        );
        assert_eq!(rec.data_ptrs[1], world.as_ptr());
        assert_eq!(t.active_flows(), 1);
        t.flush(ms(10), &mut rec);
        let (meta, reason, ts) = rec.ends[0];
        assert_eq!((reason, ts), (CloseReason::EndOfCapture, ms(10)));
        assert!(meta.handshake_seen);
        assert_eq!((meta.client, meta.server, meta.start), (client(), server(), ms(0)));
        assert_eq!(
            meta.id,
            FlowId::derive(
                &FlowKey {
                    src: server(),
                    dst: client()
                },
                ms(0)
            )
        );
        let st = t.stats();
        assert_eq!((st.flows_created, st.flows_ended, st.midstream_pickups), (1, 1, 0));
        assert_eq!((st.out_of_order_segments, st.gaps, st.buffered_bytes), (0, 0, 0));
        assert_eq!((st.packets, st.payload_bytes), (6, 13));
        assert_eq!(t.active_flows(), 0);
    }

    #[test]
    fn segment_two_before_segment_one() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(&mut t, &mut rec, &[pkt(3, true, c(5), s(0), ACK, b"world")]);
        assert_eq!(rec.text(ToServer), "");
        assert!(t.stats().buffered_bytes > 0);
        feed(&mut t, &mut rec, &[pkt(4, true, c(0), s(0), ACK, b"hello")]);
        assert_eq!(rec.text(ToServer), "helloworld");
        assert_eq!(t.stats().out_of_order_segments, 1);
        assert_eq!(t.stats().buffered_bytes, 0);
        assert_eq!(t.stats().gaps, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"hello"),
                pkt(4, true, c(0), s(0), ACK, b"hello"),
                pkt(5, true, c(10), s(0), ACK, b"!!"),
                pkt(6, true, c(10), s(0), ACK, b"!!"),
                pkt(7, true, c(5), s(0), ACK, b"world"),
                pkt(8, true, c(5), s(0), ACK, b"world"),
            ],
        );
        assert_eq!(rec.text(ToServer), "helloworld!!");
        assert_eq!(t.stats().retransmitted_bytes, 12);
        assert_eq!(t.stats().overlap_conflicts, 0);
    }

    #[test]
    fn partial_retransmission_delivers_only_the_new_bytes() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"0123456789"),
                pkt(4, true, c(5), s(0), ACK, b"56789abcde"),
            ],
        );
        assert_eq!(rec.text(ToServer), "0123456789abcde");
        assert_eq!(
            rec.events.last().map(|e| &e.1),
            Some(&Ev::Data(ToServer, 10, b"abcde".to_vec()))
        );
        assert_eq!(t.stats().retransmitted_bytes, 5);
        assert_eq!(t.stats().overlap_conflicts, 0);
    }

    #[test]
    fn overlap_conflict_is_counted_and_the_in_order_segment_wins() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(10), s(0), ACK, b"XXXXXXXXXX"),
                // Covers the hole and, differently, half of the buffered piece: the receiver
                // takes it whole and keeps the piece's other half (`reassembly::in_order`).
                pkt(4, true, c(0), s(0), ACK, b"0123456789ZZZZZ"),
            ],
        );
        assert_eq!(rec.text(ToServer), "0123456789ZZZZZXXXXX");
        assert_eq!(t.stats().overlap_conflicts, 1);
        assert_eq!(t.stats().retransmitted_bytes, 5);
    }

    // ACK before data: a hole the receiver acknowledged is kept open for a while.

    #[test]
    fn acknowledged_hole_becomes_a_gap_only_after_its_wait() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"aaaa"),
                // c(4)..c(8) never captured
                pkt(5, true, c(8), s(0), ACK, b"cccc"),
                pkt(6, false, s(0), c(12), ACK, b"resp"),
            ],
        );
        assert_eq!(rec.text(ToServer), "aaaa", "an ACK above a hole is not proof of loss");
        // "cccc" was captured beyond the hole: the hole is loss, not lateness, and the answer
        // goes on in capture order (`causal` holds answers only for a late tail).
        assert_eq!(rec.text(ToClient), "resp");
        // 500 ms of packet time later (a bare ACK of the flow), the hole is given up.
        feed(&mut t, &mut rec, &[pkt(507, false, s(4), c(12), ACK, b"")]);
        assert_eq!(rec.text(ToServer), "aaaa----cccc");
        assert_eq!(t.stats().causal_holds, 0);
        let st = t.stats();
        assert_eq!(
            (
                st.gaps,
                st.gap_bytes,
                st.ack_gaps,
                st.ack_before_data,
                st.ack_before_data_filled
            ),
            (1, 4, 1, 1, 0)
        );
        assert_eq!(st.buffered_bytes, 0);
    }

    #[test]
    fn acknowledged_hole_is_filled_when_its_segment_comes_late() {
        // A SPAN port: the server's ACK overtakes the client's segment it acknowledges.
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"aaaa"),
                pkt(4, true, c(8), s(0), ACK, b"cccc"),
                pkt(5, false, s(0), c(12), ACK, b"resp"),
                pkt(6, true, c(4), s(4), ACK, b"bbbb"),
            ],
        );
        assert_eq!(rec.text(ToServer), "aaaabbbbcccc");
        let st = t.stats();
        assert_eq!(
            (st.gaps, st.ack_gaps, st.ack_before_data, st.ack_before_data_filled),
            (0, 0, 1, 1)
        );
        assert_eq!(st.causal_holds, 0, "a hole in the middle is not a late tail");
        // And with nothing buffered beyond the hole: the ACK comes first, the data after it.
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(7, false, s(4), c(16), ACK, b""),
                pkt(8, true, c(12), s(4), ACK, b"dddd"),
            ],
        );
        assert_eq!(rec.text(ToServer), "aaaabbbbccccdddd");
        assert_eq!((t.stats().gaps, t.stats().ack_before_data_filled), (0, 2));
    }

    #[test]
    fn an_answer_the_capture_shows_before_its_request_waits_for_it() {
        // A SPAN port: the client's side comes late, so the server's answer (acknowledging
        // "bbbb") is captured before "bbbb" itself.
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"aaaa"),
                pkt(4, false, s(0), c(8), ACK, b"resp"),
                pkt(4, false, s(4), c(8), ACK | FIN, b"!"),
            ],
        );
        assert_eq!(
            rec.order(),
            "S:aaaa",
            "the answer and its FIN wait for what they acknowledge"
        );
        assert_eq!(t.stats().causal_held_bytes, 2 * 64 + 5);
        feed(&mut t, &mut rec, &[pkt(5, true, c(4), s(0), ACK, b"bbbb")]);
        assert_eq!(rec.order(), "S:aaaa S:bbbb C:resp C:! C:|");
        let st = t.stats();
        assert_eq!(
            (st.causal_holds, st.causal_hold_overflows, st.causal_held_bytes),
            (2, 0, 0)
        );
        assert_eq!((st.gaps, st.ack_before_data, st.ack_before_data_filled), (0, 1, 1));
        // The client's ACK of the held answer was applied after it: no hole on that side.
        feed(&mut t, &mut rec, &[pkt(6, true, c(8), s(6), ACK | FIN, b"")]);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
        assert_eq!(t.stats().ack_before_data, 1);
    }

    #[test]
    fn held_answers_go_one_by_one_as_their_causes_come() {
        // The client's side is late by more than a round: each answer of the server
        // acknowledges a request the capture has not shown yet, so the hold never ends as a
        // whole. Each answer goes once the request it acknowledged has come, before the next
        // request: "resp1" after "req1", not after "req2".
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, false, s(0), c(4), ACK, b"ans1"), // answers "req1", not seen yet
                pkt(4, false, s(4), c(8), ACK, b"ans2"), // answers "req2", not seen yet
                pkt(5, true, c(0), s(0), ACK, b"req1"),
            ],
        );
        assert_eq!(rec.order(), "S:req1 C:ans1", "the first answer goes, the second waits");
        feed(&mut t, &mut rec, &[pkt(6, true, c(4), s(4), ACK, b"req2")]);
        assert_eq!(rec.order(), "S:req1 C:ans1 S:req2 C:ans2");
        assert_eq!(t.stats().causal_held_bytes, 0);
    }

    /// `rounds` request-answer rounds 90 ms apart, the client's side 50 ms late: each answer
    /// (`anKK`) comes before its request (`rqKK`), followed by the server's ACK of the next
    /// request, so the client always owes bytes. The answer of round `lost` is never captured.
    fn skewed_rounds(rounds: u32, lost: Option<u32>) -> Rec {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        for k in 0..rounds {
            let t0 = 90 * i64::from(k) + 3;
            let (ans, req) = (format!("an{k:02}"), format!("rq{k:02}"));
            let mut pkts = vec![
                pkt(t0, false, s(4 * k), c(4 * (k + 1)), ACK, ans.as_bytes()),
                pkt(t0 + 1, false, s(4 * (k + 1)), c(4 * (k + 2)), ACK, b""),
                pkt(t0 + 50, true, c(4 * k), s(4 * k), ACK, req.as_bytes()),
            ];
            if lost == Some(k) {
                pkts.remove(0);
            }
            feed(&mut t, &mut rec, &pkts);
        }
        rec
    }

    #[test]
    fn a_skew_longer_than_a_round_for_longer_than_the_wait_keeps_answers_after_requests() {
        // The hold goes on, emptied and refilled every round, for longer than `ack_wait`
        // (500 ms). Each answer must still wait for its own request; timed from the hold's
        // first start (3 ms), the sixth answer (453 ms) went ahead of its request (503 ms).
        let rec = skewed_rounds(8, None);
        let expected: Vec<String> = (0..8).map(|k| format!("S:rq{k:02} C:an{k:02}")).collect();
        assert_eq!(rec.order(), expected.join(" "));
    }

    #[test]
    fn a_loss_in_the_held_direction_is_declared_while_the_hold_goes_on() {
        // The fourth answer never captured: the client's acknowledgement of it must reach the
        // server direction while the hold goes on (it was kept for the hold's end, which never
        // came), so the hole becomes a gap and the later answers follow it before the flow
        // ends, not at its end.
        let order = skewed_rounds(12, Some(3)).order();
        assert!(order.contains("C:---- C:an04"), "{order}");
        assert!(order.ends_with("S:rq11 C:an11"), "{order}");
    }

    #[test]
    fn waits_at_the_end_of_the_clock_range_end_instead_of_firing_forever() {
        // A capture stamped centuries ahead saturates the clock: a deadline re-armed "later"
        // equals now, and the wait timer must not take it again at the same instant forever
        // (it did, with a held answer: fuzz seed corpus of `tcp_reassembly`).
        let end = |mut p: Packet<'static>| {
            p.ts = Timestamp(i64::MAX);
            p
        };
        let (mut t, mut rec) = (table(), Rec::default());
        let pkts = [
            end(pkt(0, true, CISN, 0, SYN, b"")),
            end(pkt(1, false, SISN, c(0), SYN | ACK, b"")),
            end(pkt(2, true, c(0), s(0), ACK, b"")),
            end(pkt(3, true, c(0), s(0), ACK, b"aaaa")),
            // The answer acknowledges "bbbb", not captured (yet): held, and a hole waits.
            end(pkt(4, false, s(0), c(8), ACK, b"resp")),
            // Another flow's packets run the wait timer at the same instant.
            end(pkt_between(5, ep(9, 9), server(), 1, 0, ACK, b"x")),
            end(pkt_between(6, ep(9, 9), server(), 2, 0, ACK, b"y")),
        ];
        feed(&mut t, &mut rec, &pkts);
        assert!(!rec.text(ToClient).contains("resp"), "still held: no time has passed");
        t.flush(Timestamp(i64::MAX), &mut rec);
        assert_eq!(rec.order(), "S:aaaa C:x C:y C:resp", "the flush delivers what was held");
        assert_eq!((t.stats().causal_held_bytes, t.active_flows()), (0, 0));
    }

    #[test]
    fn a_held_answer_goes_on_when_the_wait_runs_out_or_at_the_cap() {
        // The late bytes never come: the answer is delivered after `ack_wait` (500 ms) of
        // packet time, here by the wait timer (another flow's packet moves the clock).
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(&mut t, &mut rec, &[pkt(3, false, s(0), c(4), ACK, b"resp")]);
        assert_eq!(rec.text(ToClient), "");
        feed(
            &mut t,
            &mut rec,
            &[pkt_between(600, ep(9, 9), server(), 1, 0, ACK, b"x")],
        );
        assert!(rec.text(ToClient).starts_with("resp"), "{}", rec.order());
        assert_eq!(t.stats().causal_held_bytes, 0);

        // More than `causal_hold_bytes` of answer: what was held goes at once, in order.
        let cfg = FlowConfig {
            causal_hold_bytes: 200,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        handshake(&mut t, &mut rec);
        let big = [b'z'; 100];
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, false, s(0), c(4), ACK, &big),
                pkt(3, false, s(100), c(4), ACK, &big),
            ],
        );
        assert_eq!(rec.text(ToClient).len(), 200);
        assert_eq!(t.stats().causal_hold_overflows, 1);
        assert_eq!(t.stats().causal_held_bytes, 0);
    }

    #[test]
    fn acknowledged_hole_waits_at_most_its_packets_or_bytes() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(4), s(0), ACK, b"bbbb"),
                pkt(3, false, s(0), c(8), ACK, b""),
            ],
        );
        for i in 0..31 {
            feed(&mut t, &mut rec, &[pkt(3, false, s(0), c(8), ACK, b"")]);
            assert_eq!(rec.text(ToServer), "", "packet {i}");
        }
        feed(&mut t, &mut rec, &[pkt(3, false, s(0), c(8), ACK, b"")]);
        assert_eq!(rec.text(ToServer), "----bbbb", "32 packets later");
        // An ACK more than 64 KiB ahead: real loss, given up at once.
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(4, true, c(70_000), s(0), ACK, b"z"),
                pkt(4, false, s(0), c(70_001), ACK, b""),
            ],
        );
        assert!(rec.text(ToServer).ends_with("-z"));
        assert_eq!(t.stats().ack_gaps, 2);
        // "z" started beyond the window the capture knew of; the receiver's ACK showed it was
        // in the window after all.
        assert_eq!(
            (t.stats().data_out_of_window_taken, t.stats().data_out_of_window),
            (1, 0)
        );
    }

    #[test]
    fn ack_seen_before_the_out_of_order_segment_still_skips_the_hole() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"aaaa"),
                pkt(4, false, s(0), c(6), ACK, b""), // the receiver has 2 bytes we did not see
                pkt(5, true, c(8), s(0), ACK, b"cccc"),
                pkt(6, true, c(6), s(0), ACK, b"bb"),
            ],
        );
        assert_eq!(rec.text(ToServer), "aaaa", "still waiting for c(4)..c(6)");
        // Its wait over, only the acknowledged part of the hole is given up.
        feed(&mut t, &mut rec, &[pkt(600, false, s(0), c(6), ACK, b"")]);
        assert_eq!(rec.text(ToServer), "aaaa--bbcccc");
    }

    #[test]
    fn buffer_cap_per_direction_skips_the_oldest_hole() {
        let piece = crate::PIECE_OVERHEAD + 100;
        let cfg = FlowConfig {
            max_buffered_bytes_per_dir: 2 * piece - 1,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        handshake(&mut t, &mut rec);
        let a = [b'a'; 10];
        let b = [b'b'; 100];
        let d = [b'd'; 100];
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, &a),
                pkt(4, true, c(20), s(0), ACK, &b),  // hole [10, 20)
                pkt(5, true, c(130), s(0), ACK, &d), // hole [120, 130): over the cap
            ],
        );
        let want = format!("{}{}{}", "a".repeat(10), "-".repeat(10), "b".repeat(100));
        assert_eq!(rec.text(ToServer), want);
        assert_eq!(t.stats().buffer_cap_hits, 1);
        assert_eq!(t.stats().buffered_bytes, piece as u64);
        feed(&mut t, &mut rec, &[pkt(6, true, c(120), s(0), ACK, b"0123456789")]);
        assert_eq!(rec.text(ToServer), format!("{want}0123456789{}", "d".repeat(100)));
    }

    #[test]
    fn global_buffer_cap_skips_a_hole_of_the_flow_that_overflowed_it() {
        let piece = crate::PIECE_OVERHEAD + 100;
        let cfg = FlowConfig {
            max_buffered_bytes_total: 2 * piece - 1,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        let other = ep(3, 40001);
        let b = [b'b'; 100];
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, CISN, 0, SYN, b""),
                pkt_between(0, other, server(), 7000, 0, SYN, b""),
                pkt(1, true, c(10), 0, ACK, &b),
                pkt_between(2, other, server(), 7011, 0, ACK, &b),
            ],
        );
        assert_eq!(t.stats().buffer_cap_hits, 1);
        assert_eq!(t.stats().buffered_bytes, piece as u64, "the first flow keeps its piece");
        assert_eq!(rec.text(ToServer), format!("{}{}", "-".repeat(10), "b".repeat(100)));
    }

    #[test]
    fn too_many_holes_skips_the_oldest() {
        let cfg = FlowConfig {
            max_holes_per_dir: 2,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(2), s(0), ACK, b"b"),
                pkt(4, true, c(4), s(0), ACK, b"d"),
                pkt(5, true, c(6), s(0), ACK, b"f"),
            ],
        );
        assert_eq!(t.stats().hole_cap_hits, 1);
        assert_eq!(rec.text(ToServer), "--b");
        feed(
            &mut t,
            &mut rec,
            &[pkt(6, true, c(3), s(0), ACK, b"c"), pkt(7, true, c(5), s(0), ACK, b"e")],
        );
        assert_eq!(rec.text(ToServer), "--bcdef");
    }

    #[test]
    fn midstream_pickup_guesses_the_lower_port_is_the_server() {
        let (mut t, mut rec) = (table(), Rec::default());
        // First packet seen goes server → client.
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, false, 777_777, 1, ACK, b"response"),
                pkt(1, true, 1, 777_785, ACK, b"req"),
            ],
        );
        assert_eq!(rec.text(ToClient), "response");
        assert_eq!(rec.text(ToServer), "req");
        assert_eq!(rec.events[0].1, Ev::Data(ToClient, 0, b"response".to_vec()));
        t.flush(ms(2), &mut rec);
        let meta = rec.ends[0].0;
        assert!(!meta.handshake_seen);
        assert_eq!((meta.client, meta.server), (client(), server()));
        assert_eq!(t.stats().midstream_pickups, 1);
    }

    #[test]
    fn midstream_pickup_with_equal_ports_takes_the_first_destination_as_server() {
        let (mut t, mut rec) = (table(), Rec::default());
        let (a, b) = (ep(9, 5000), ep(8, 5000));
        feed(&mut t, &mut rec, &[pkt_between(0, a, b, 1, 0, ACK, b"x")]);
        t.flush(ms(1), &mut rec);
        assert_eq!((rec.ends[0].0.client, rec.ends[0].0.server), (a, b));
        assert_eq!(rec.events[0].1, Ev::Data(ToServer, 0, b"x".to_vec()));
    }

    #[test]
    fn syn_ack_alone_makes_its_receiver_the_client() {
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, false, SISN, c(0), SYN | ACK, b""),
                pkt(1, false, s(0), c(0), ACK, b"banner"),
                // The client's first segment comes second: the SYN-ACK's ACK placed offset 0.
                pkt(2, true, c(3), s(6), ACK, b"def"),
                pkt(3, true, c(0), s(6), ACK, b"abc"),
            ],
        );
        assert_eq!(rec.events[0].1, Ev::Data(ToClient, 0, b"banner".to_vec()));
        assert_eq!(rec.text(ToServer), "abcdef");
        t.flush(ms(2), &mut rec);
        let meta = rec.ends[0].0;
        assert!(meta.handshake_seen);
        assert_eq!((meta.client, meta.server), (client(), server()));
        assert_eq!(t.stats().midstream_pickups, 0);
    }

    #[test]
    fn packets_without_syn_or_payload_create_no_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, 1, 1, ACK, b""),
                pkt(1, true, 1, 1, FIN | ACK, b""),
                pkt(2, true, 1, 1, RST, b""),
            ],
        );
        assert_eq!(t.active_flows(), 0);
        assert_eq!(t.stats().ignored_packets, 3);
        assert_eq!(t.stats().flows_created, 0);
        assert!(rec.events.is_empty());
    }

    #[test]
    fn sequence_numbers_wrap_at_2_pow_32() {
        let isn = 0xFFFF_FFF0u32;
        let at = |off: u32| isn.wrapping_add(1).wrapping_add(off);
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, isn, 0, SYN, b""),
                pkt(1, true, at(20), 0, ACK, b"uvwxyz"), // past the wrap, out of order
                pkt(2, true, at(10), 0, ACK, b"klmnopqrst"), // straddles 2^32
                pkt(3, true, at(0), 0, ACK, b"abcdefghij"),
            ],
        );
        assert_eq!(rec.text(ToServer), "abcdefghijklmnopqrstuvwxyz");
    }

    /// Counts bytes without keeping them (for streams of gigabytes).
    #[derive(Default)]
    struct Counter {
        next: u64,
        bytes: u64,
        gaps: u64,
    }

    impl StreamHandler<()> for Counter {
        fn on_chunk(&mut self, _: &mut (), _: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
            assert_eq!(chunk.offset, self.next);
            match chunk.body {
                ChunkBody::Data(d) => {
                    self.next += d.len() as u64;
                    self.bytes += d.len() as u64;
                }
                ChunkBody::Gap(n) => {
                    self.next += n;
                    self.gaps += n;
                }
                ChunkBody::Close(_) => {}
            }
            Interest::Continue
        }
        fn on_flow_end(&mut self, _: (), _: &FlowMeta, _: CloseReason, _: Timestamp) {}
    }

    #[test]
    fn streams_longer_than_4_gib_keep_counting() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut h = Counter::default();
        let seg = vec![0u8; 65_535];
        let mut seq = 0xFFFF_0000u32;
        let n = 65_600u64; // 65 600 × 65 535 bytes ≈ 4.0007 GiB: past 2^32 and two sequence wraps
        for i in 0..n {
            t.process(&pkt(i as i64, true, seq, 0, ACK, &seg), &mut h);
            seq = seq.wrapping_add(65_535);
        }
        assert!(h.next > 1 << 32);
        assert_eq!(h.bytes, n * 65_535);
        // Out of order beyond the 4 GiB mark still lands in the right place.
        t.process(&pkt(n as i64, true, seq.wrapping_add(10), 0, ACK, b"later"), &mut h);
        t.process(&pkt(n as i64 + 1, true, seq, 0, ACK, b"0123456789"), &mut h);
        assert_eq!(h.bytes, n * 65_535 + 15);
        assert_eq!((h.gaps, t.stats().gaps), (0, 0));
    }

    #[test]
    fn fin_in_both_directions_closes_each_and_ends_the_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK | FIN, b"bye"),
                pkt(4, false, s(0), c(4), ACK, b"ok"),
                pkt(5, false, s(2), c(4), ACK | FIN, b""),
            ],
        );
        assert_eq!(rec.text(ToServer), "bye|");
        assert_eq!(rec.text(ToClient), "ok|");
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
        assert_eq!(rec.ends[0].2, ms(5));
        assert_eq!(t.active_flows(), 0);
        // The last ACK belongs to a flow that is gone: ignored, not a new flow.
        feed(&mut t, &mut rec, &[pkt(6, true, c(4), s(3), ACK, b"")]);
        assert_eq!(t.active_flows(), 0);
        assert_eq!(t.stats().ignored_packets, 1);
    }

    #[test]
    fn fin_beyond_a_hole_waits_for_the_hole_or_the_ack() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"abcd"),
                pkt(5, true, c(8), s(0), ACK | FIN, b"efgh"),
            ],
        );
        assert_eq!(rec.text(ToServer), "abcd");
        // The server acknowledges the FIN (fin + 1): it got everything, but the segment may
        // still be on its way to the tap.
        feed(&mut t, &mut rec, &[pkt(6, false, s(0), c(13), ACK | FIN, b"")]);
        assert_eq!(rec.text(ToServer), "abcd");
        assert_eq!(rec.text(ToClient), "|");
        // The wait expires on packet time (another flow's packet moves the clock): the flow ends,
        // stamped when its wait expired.
        feed(
            &mut t,
            &mut rec,
            &[pkt_between(900, ep(9, 9), server(), 1, 0, ACK, b"x")],
        );
        assert_eq!(rec.text(ToServer), "abcd----efgh|");
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
        assert_eq!(rec.ends[0].2, ms(506));
    }

    #[test]
    fn rst_delivers_what_it_can_and_ends_the_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"ab"),
                pkt(4, true, c(4), s(0), ACK, b"ef"),
                pkt(5, false, s(0), c(2), RST | ACK, b""),
            ],
        );
        assert_eq!(rec.text(ToServer), "ab--ef");
        assert_eq!(rec.end_reasons(), vec![CloseReason::Rst]);
        assert_eq!(t.active_flows(), 0);
        assert_eq!(t.stats().buffered_bytes, 0);
    }

    #[test]
    fn idle_flows_time_out_by_packet_time() {
        let cfg = FlowConfig {
            idle_timeout: Duration::from_secs(10),
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        let other = ep(3, 50000);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, 1, 0, ACK, b"a"),
                pkt_between(500, other, server(), 1, 0, ACK, b"x"),
                pkt(9_000, true, 3, 0, ACK, b"b"), // a gap in sequence, but the flow is alive
                pkt_between(9_500, other, server(), 2, 0, ACK, b"y"),
            ],
        );
        assert!(rec.ends.is_empty());
        // Packet time jumps (a sweep runs): nothing has been idle for more than 10 s yet.
        feed(
            &mut t,
            &mut rec,
            &[pkt_between(18_900, other, server(), 3, 0, ACK, b"z")],
        );
        assert!(rec.ends.is_empty(), "9.9 s idle is not enough");
        // The client's next packet comes 10.1 s after its last: that flow is over, this starts one.
        feed(&mut t, &mut rec, &[pkt(19_100, true, 4, 0, ACK, b"c")]);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Timeout]);
        assert_eq!(rec.ends[0].0.client, client());
        assert_eq!(rec.ends[0].2, ms(19_000), "stamped when it expired");
        assert_eq!(rec.text(ToServer), "axyz-bc");
        // Before timing out, the hole was delivered as a gap.
        assert_eq!(rec.events.iter().filter(|e| matches!(e.1, Ev::Gap(..))).count(), 1);
        assert_eq!(t.stats().flows_created, 3);
        // A silent flow is ended by the periodic sweep, stamped when it expired.
        feed(
            &mut t,
            &mut rec,
            &[pkt_between(29_000, ep(7, 7), server(), 1, 0, ACK, b"q")],
        );
        assert_eq!(rec.end_reasons(), vec![CloseReason::Timeout; 2]);
        assert_eq!((rec.ends[1].0.client, rec.ends[1].2), (other, ms(28_900)));
        assert_eq!(t.stats().flows_timed_out, 2);
        assert_eq!(t.active_flows(), 2);
        // Time running backwards does not expire anything nor panic.
        feed(&mut t, &mut rec, &[pkt(100, true, 9, 0, ACK, b"late")]);
        assert_eq!(t.active_flows(), 2);
        assert_eq!(rec.ends.len(), 2);
    }

    #[test]
    fn a_sweep_ends_at_most_sweep_max_flows_and_the_next_packets_end_the_rest() {
        use super::ending::SWEEP_MAX;
        let cfg = FlowConfig {
            idle_timeout: Duration::from_secs(10),
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        let n = 2 * SWEEP_MAX + 100;
        let idle: Vec<_> = (0..n)
            .map(|i| pkt_between(0, ep(5, 1_000 + i as u16), server(), 1, 0, ACK, b"a"))
            .collect();
        feed(&mut t, &mut rec, &idle);
        assert_eq!(t.active_flows(), n);
        let later = |ms_at: i64, port: u16| pkt_between(ms_at, ep(6, port), server(), 1, 0, ACK, b"b");
        feed(&mut t, &mut rec, &[later(20_000, 1)]);
        assert_eq!(rec.ends.len(), SWEEP_MAX, "one sweep's worth");
        assert!(rec.ends.iter().all(|e| e.2 == ms(10_000)), "stamped when they expired");
        feed(&mut t, &mut rec, &[later(20_001, 2)]);
        assert_eq!(rec.ends.len(), 2 * SWEEP_MAX, "the next packet sweeps again");
        feed(&mut t, &mut rec, &[later(20_002, 3), later(20_003, 4)]);
        assert_eq!(rec.ends.len(), n, "all of them");
        assert_eq!(t.stats().flows_timed_out, n as u64);
        assert_eq!(t.active_flows(), 4);
    }

    #[test]
    fn flush_delivers_holes_as_gaps_and_ends_every_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        let other = ep(3, 50000);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(3), s(0), ACK, b"xyz"),
                pkt_between(4, other, server(), 10, 0, ACK, b"other"),
                pkt(5, false, s(0), c(0), ACK, b"hi"),
            ],
        );
        t.flush(ms(100), &mut rec);
        assert_eq!(rec.text(ToServer), "other---xyz");
        assert_eq!(rec.end_reasons(), vec![CloseReason::EndOfCapture; 2]);
        assert_eq!(rec.ends[0].0.client, other, "least recently active first");
        assert_eq!(t.active_flows(), 0);
        assert_eq!(t.stats().buffered_bytes, 0);
    }

    #[test]
    fn full_table_evicts_the_least_recently_active_flow() {
        let cfg = FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        let (a, b, d) = (ep(3, 50001), ep(4, 50002), ep(5, 50003));
        feed(
            &mut t,
            &mut rec,
            &[
                pkt_between(0, a, server(), 1, 0, ACK, b"a1"),
                pkt_between(1, b, server(), 1, 0, ACK, b"b1"),
                pkt_between(2, a, server(), 3, 0, ACK, b"a2"),
                pkt_between(3, d, server(), 1, 0, ACK, b"d1"),
            ],
        );
        assert_eq!(rec.end_reasons(), vec![CloseReason::Evicted]);
        assert_eq!(rec.ends[0].0.client, b);
        let st = t.stats();
        assert_eq!((st.flow_table_full, st.flows_evicted, t.active_flows()), (1, 1, 2));
    }

    #[test]
    fn ignore_stops_delivery_and_buffering_but_the_end_still_comes() {
        let (mut t, mut rec) = (
            table(),
            Rec {
                ignore_after: Some(1),
                ..Rec::default()
            },
        );
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(10), s(0), ACK, b"buffered"),
                pkt(4, true, c(0), s(0), ACK, b"first....."), // delivered, then Ignore
            ],
        );
        assert_eq!(rec.text(ToServer), "first.....");
        assert_eq!(t.stats().buffered_bytes, 0, "buffers released");
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(30), s(0), ACK, b"ahead"),
                pkt(6, false, s(0), c(18), ACK, b"reply"),
                pkt(7, true, c(18), s(5), ACK | FIN, b"more"),
            ],
        );
        assert_eq!(rec.text(ToServer), "first.....");
        assert_eq!(rec.text(ToClient), "");
        assert_eq!(t.stats().buffered_bytes, 0);
        assert_eq!(t.stats().packets, 8, "still counted");
        assert!(rec.ends.is_empty());
        feed(&mut t, &mut rec, &[pkt(8, false, s(5), c(23), ACK | FIN, b"")]);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
    }

    #[test]
    fn syn_on_a_finished_flow_starts_a_new_one() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(&mut t, &mut rec, &[pkt(3, true, c(0), s(0), ACK | FIN, b"one")]);
        // Half-closed; a new SYN on the same ports from a new ISN.
        let isn2 = 90_000u32;
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(10, true, isn2, 0, SYN, b""),
                pkt(11, false, 40_000, isn2 + 1, SYN | ACK, b""),
                pkt(12, true, isn2 + 1, 40_001, ACK, b"two"),
            ],
        );
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
        assert_eq!(t.active_flows(), 1);
        assert_eq!(t.stats().flows_reused, 1);
        let new_id = FlowId::derive(
            &FlowKey {
                src: client(),
                dst: server(),
            },
            ms(10),
        );
        assert_eq!(
            rec.events.last().cloned(),
            Some((new_id, Ev::Data(ToServer, 0, b"two".to_vec())))
        );
        assert_ne!(new_id, rec.ends[0].0.id);
    }

    #[test]
    fn retransmitted_syn_is_not_a_new_connection() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"abc"),
                pkt(4, true, CISN, 0, SYN, b""),
                pkt(5, true, c(3), s(0), ACK, b"def"),
            ],
        );
        assert_eq!(rec.text(ToServer), "abcdef");
        assert_eq!(t.stats().flows_created, 1);
        assert!(rec.ends.is_empty());
    }

    #[test]
    fn snaplen_truncated_packets_deliver_captured_bytes_then_a_gap() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        let mut p = pkt(3, true, c(0), s(0), ACK, b"head");
        p.wire_payload_len = 10;
        feed(&mut t, &mut rec, &[p, pkt(4, true, c(10), s(0), ACK, b"next")]);
        assert_eq!(rec.text(ToServer), "head------next");
        let st = t.stats();
        assert_eq!(
            (st.truncated_packets, st.gaps, st.gap_bytes, st.payload_bytes),
            (1, 1, 6, 14)
        );
        // A hostile length claim cannot declare more than one IP packet's worth lost.
        let mut huge = pkt(5, true, c(14), s(0), ACK, b"x");
        huge.wire_payload_len = u32::MAX;
        feed(&mut t, &mut rec, &[huge]);
        assert_eq!(t.stats().gap_bytes, 6 + MAX_LOST_TAIL);
    }

    /// The `tcp.*` anomaly names the table emitted, in order.
    fn anomalies(t: &mut FlowTable<u32>) -> Vec<&'static str> {
        t.drain_events()
            .filter_map(|e| match e.body {
                EventBody::Anomaly(a) => Some(a.name),
                _ => None,
            })
            .collect()
    }

    /// A handshake, then "hello" from the client, acknowledged.
    fn established(t: &mut FlowTable<u32>, rec: &mut Rec) {
        handshake(t, rec);
        feed(
            t,
            rec,
            &[
                pkt(3, true, c(0), s(0), ACK, b"hello"),
                pkt(4, false, s(0), c(5), ACK, b""),
            ],
        );
    }

    // RST validation (RFC 5961 §3).

    #[test]
    fn rst_exact_ends_the_flow_and_data_after_it_is_decoded_and_flagged() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(&mut t, &mut rec, &[pkt(5, true, c(5), 0, RST, b"")]);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Rst]);
        assert_eq!(t.stats().rst_accepted, 1);
        // The connection was reset, yet more data comes: decoded (mid-stream) and flagged.
        feed(&mut t, &mut rec, &[pkt(6, true, c(5), s(0), ACK, b"more")]);
        assert_eq!(rec.text(ToServer), "hellomore");
        assert_eq!(t.stats().data_after_close, 1);
        assert_eq!(anomalies(&mut t), ["tcp.data_after_close"]);
    }

    #[test]
    fn rst_in_window_but_inexact_is_an_anomaly_and_the_flow_goes_on() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(5) + 1000, 0, RST, b""),
                pkt(6, true, c(5), s(0), ACK, b" world"),
            ],
        );
        assert!(rec.ends.is_empty());
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(t.stats().rst_in_window, 1);
        assert_eq!(anomalies(&mut t), ["tcp.rst_in_window"]);
    }

    #[test]
    fn rst_out_of_window_changes_nothing() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, false, s(0).wrapping_add(0x4000_0000), c(5), RST | ACK, b""),
                pkt(6, true, c(5), s(0), ACK, b" world"),
            ],
        );
        assert!(rec.ends.is_empty());
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(t.stats().rst_out_of_window, 1);
        assert_eq!(anomalies(&mut t), ["tcp.rst_out_of_window"]);
    }

    #[test]
    fn rst_answering_a_syn_counts_only_if_it_acknowledges_the_syn() {
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, CISN, 0, SYN, b""),
                pkt(1, false, 0, CISN + 7, RST | ACK, b""),
            ],
        );
        assert!(
            rec.ends.is_empty(),
            "a refusal that does not acknowledge the SYN is not one"
        );
        feed(&mut t, &mut rec, &[pkt(2, false, 0, c(0), RST | ACK, b"")]);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Rst], "connection refused");
    }

    // Data on a SYN (RFC 7413): decoded only once the SYN-ACK acknowledges it.

    #[test]
    fn syn_data_the_syn_ack_does_not_acknowledge_is_dropped_and_the_resent_bytes_are_read() {
        let (mut t, rec) = fed(&[
            // A decoy on the SYN: a PDU header announcing 4 GiB.
            pkt(0, true, CISN, 0, SYN, b"\x04\x00\xff\xff\xff\xf0"),
            pkt(1, false, SISN, c(0), SYN | ACK, b""),
            pkt(2, true, c(0), s(0), ACK, b"real request"),
            pkt(3, false, s(0), c(12), ACK, b"answer"),
        ]);
        assert_eq!(rec.texts(), ("real request".into(), "answer".into()));
        let st = t.stats();
        assert_eq!(
            (st.syn_data_ignored, st.overlap_conflicts, st.buffered_bytes),
            (1, 0, 0)
        );
        assert_eq!(anomalies(&mut t), ["tcp.syn_data_ignored"]);
    }

    #[test]
    fn syn_data_the_syn_ack_acknowledges_is_offset_zero_tcp_fast_open() {
        let (mut t, rec) = fed(&[
            pkt(0, true, CISN, 0, SYN, b"GET / "),
            pkt(1, false, SISN, c(6), SYN | ACK, b""),
            pkt(2, true, c(6), s(0), ACK, b"HTTP/1.1"),
            pkt(3, false, s(0), c(14), ACK, b"200"),
        ]);
        assert_eq!(rec.texts(), ("GET / HTTP/1.1".into(), "200".into()));
        assert_eq!((t.stats().syn_data_ignored, t.stats().ack_before_data), (0, 0));
        assert!(anomalies(&mut t).is_empty());
    }

    #[test]
    fn syn_data_without_a_captured_syn_ack_is_judged_by_the_senders_next_bytes() {
        // Sent again at offset 0: the receiver had dropped it.
        let (mut t, mut rec) = fed(&[
            pkt(0, true, CISN, 0, SYN, b"decoy"),
            pkt(2, true, c(0), s(0), ACK, b"hello"),
        ]);
        t.flush(ms(9), &mut rec);
        assert_eq!(rec.text(ToServer), "hello");
        assert_eq!(t.stats().syn_data_ignored, 1);
        // Followed at its end: only a receiver that took it is sent bytes there.
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[pkt(0, true, CISN, 0, SYN, b"hel"), pkt(2, true, c(3), s(0), ACK, b"lo")],
        );
        t.flush(ms(9), &mut rec);
        assert_eq!(rec.text(ToServer), "hello");
        assert_eq!(t.stats().syn_data_ignored, 0);
    }

    #[test]
    fn syn_data_never_decided_is_dropped_at_the_end_and_its_memory_returned() {
        let (mut t, mut rec) = fed(&[
            pkt(0, true, CISN, 0, SYN, b"decoy"),
            // A retransmitted SYN with other data: the first copy waits, once.
            pkt(1, true, CISN, 0, SYN, b"other"),
        ]);
        assert!(t.stats().buffered_bytes > 0);
        t.flush(ms(9), &mut rec);
        assert_eq!(rec.text(ToServer), "");
        let st = t.stats();
        assert_eq!((st.syn_data_ignored, st.buffered_bytes), (1, 0));
    }

    #[test]
    fn syn_data_on_a_syn_the_span_port_delivered_after_the_syn_ack_is_judged_the_same() {
        let (t, rec) = fed(&[
            pkt(0, false, SISN, c(0), SYN | ACK, b""),
            pkt(0, true, CISN, 0, SYN, b"decoy"),
            pkt(1, true, c(0), s(0), ACK, b"hello"),
            pkt(2, false, s(0), c(5), ACK, b"hi"),
        ]);
        assert_eq!(rec.texts(), ("hello".into(), "hi".into()));
        assert_eq!(t.stats().syn_data_ignored, 1);
    }

    #[test]
    fn syn_ack_data_is_judged_by_the_clients_ack() {
        // A client without Fast Open acknowledges the SYN-ACK alone: the data was dropped.
        let (mut t, rec) = fed(&[
            pkt(0, true, CISN, 0, SYN, b""),
            pkt(1, false, SISN, c(0), SYN | ACK, b"decoy"),
            pkt(2, true, c(0), s(0), ACK, b"hello"),
            pkt(3, false, s(0), c(5), ACK, b"real"),
        ]);
        assert_eq!(rec.texts(), ("hello".into(), "real".into()));
        assert_eq!(anomalies(&mut t), ["tcp.syn_data_ignored"]);
        // One that took it acknowledges it.
        let (t, rec) = fed(&[
            pkt(0, true, CISN, 0, SYN, b""),
            pkt(1, false, SISN, c(0), SYN | ACK, b"wel"),
            pkt(2, true, c(0), s(3), ACK, b"hello"),
            pkt(3, false, s(3), c(5), ACK, b"come"),
        ]);
        assert_eq!(rec.texts(), ("hello".into(), "welcome".into()));
        assert_eq!(t.stats().syn_data_ignored, 0);
    }

    #[test]
    fn a_flood_of_syns_with_data_holds_at_most_a_quarter_of_the_buffers() {
        let mut t = FlowTable::new(FlowConfig {
            max_buffered_bytes_total: 64 << 10,
            ..FlowConfig::default()
        });
        let mut rec = Rec::default();
        let data = [0x41u8; 1000];
        for i in 0..200u16 {
            let syn = pkt_between(0, ep(9, 10_000 + i), server(), 77, 0, SYN, &data);
            feed(&mut t, &mut rec, &[syn]);
        }
        let st = t.stats();
        assert!(st.buffered_bytes <= 16 << 10, "{}", st.buffered_bytes);
        assert!(st.syn_data_ignored > 150, "{}", st.syn_data_ignored);
        // A connection in progress still has room for its out-of-order bytes.
        let hits = st.buffer_cap_hits;
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(8), s(0), ACK, &[0x42; 20_000]),
                pkt(6, true, c(5), s(0), ACK, b"abc"),
            ],
        );
        assert_eq!(t.stats().buffer_cap_hits, hits);
        assert!(rec.text(ToServer).ends_with(&"B".repeat(20_000)));
    }

    #[test]
    fn a_syn_with_data_and_fin_ends_nothing() {
        let (_, rec) = fed(&[
            pkt(0, true, CISN, 0, SYN | FIN, b"decoy"),
            pkt(1, false, SISN, c(0), SYN | ACK, b""),
            pkt(2, true, c(0), s(0), ACK, b"hello"),
            pkt(3, false, s(0), c(5), ACK, b"hi"),
        ]);
        assert!(rec.ends.is_empty());
        assert_eq!(rec.texts(), ("hello".into(), "hi".into()));
    }

    // FIN validation: a FIN the receiver would not take ends nothing.

    /// A new table after `established` ("hello" sent and acknowledged), then fed `pkts`.
    fn after_hello(pkts: &[Packet<'_>]) -> (FlowTable<u32>, Rec) {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(&mut t, &mut rec, pkts);
        (t, rec)
    }

    #[test]
    fn a_spoofed_fin_ahead_of_the_stream_is_forgotten_when_the_senders_data_runs_past_it() {
        let (mut t, rec) = after_hello(&[
            // In the window, 3 bytes ahead of RCV.NXT (c(5)).
            pkt(5, true, c(8), s(0), FIN | ACK, b""),
            pkt(6, true, c(5), s(0), ACK, b" world, and more"),
            pkt(7, false, s(0), c(21), ACK, b"ok"),
            pkt(8, true, c(21), s(2), FIN | ACK, b""),
        ]);
        assert_eq!(rec.text(ToServer), "hello world, and more|");
        let st = t.stats();
        assert_eq!(
            (st.fin_ignored, st.data_after_close, st.bytes_after_fin, st.gaps),
            (1, 0, 0, 0)
        );
        assert_eq!(anomalies(&mut t), ["tcp.fin_ignored"]);
    }

    #[test]
    fn a_fin_beyond_the_receivers_window_is_dropped_and_leaves_no_gap() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[pkt(5, true, c(5 + (1 << 30)), s(0), FIN | ACK, b"")],
        );
        t.flush(ms(9), &mut rec);
        assert_eq!(rec.text(ToServer), "hello");
        let st = t.stats();
        assert_eq!((st.fin_ignored, st.gaps), (1, 0));
        assert_eq!(anomalies(&mut t), ["tcp.fin_ignored"]);
    }

    #[test]
    fn a_fin_far_ahead_of_a_late_ack_but_right_after_the_senders_bytes_closes() {
        // A SPAN port shows the server's ACKs late: the last one seen acknowledges "hello"
        // only, while the client sends 200 kB more (no window scale: a 64 KiB window) and FINs.
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        let chunk = [b'x'; 1000];
        for i in 0..200u32 {
            feed(&mut t, &mut rec, &[pkt(5, true, c(5 + i * 1000), s(0), ACK, &chunk)]);
        }
        feed(&mut t, &mut rec, &[pkt(6, true, c(200_005), s(0), FIN | ACK, b"")]);
        assert!(rec.text(ToServer).ends_with("x|"));
        assert_eq!(t.stats().fin_ignored, 0);
    }

    #[test]
    fn a_fin_behind_bytes_already_captured_is_forgotten() {
        let (t, rec) = after_hello(&[
            // Out of order: bytes 8.. buffered, then a FIN at 8 (inside them), then the hole.
            pkt(5, true, c(8), s(0), ACK, b"rld"),
            pkt(6, true, c(9), s(0), FIN | ACK, b""),
            pkt(7, true, c(5), s(0), ACK, b" wo"),
        ]);
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(t.stats().fin_ignored, 1);
    }

    #[test]
    fn a_real_fin_before_its_last_bytes_or_acknowledged_before_it_is_seen_still_closes() {
        // A SPAN port: the FIN before the last data segment.
        let (_, rec) = after_hello(&[
            pkt(5, true, c(11), s(0), FIN | ACK, b""),
            pkt(6, true, c(5), s(0), ACK, b" world"),
        ]);
        assert_eq!(rec.text(ToServer), "hello world|");
        // The receiver's ACK of the FIN first (RCV.NXT past it), then the FIN.
        let (t, rec) = after_hello(&[
            pkt(5, false, s(0), c(6), ACK, b""),
            pkt(6, true, c(5), s(0), FIN | ACK, b""),
        ]);
        assert_eq!(rec.text(ToServer), "hello|");
        assert_eq!(t.stats().fin_ignored, 0);
    }

    // Urgent data (RFC 6093): the byte before the urgent pointer is not the application's.

    /// A 20-byte TCP header whose urgent pointer is `ptr` (the rest is not read).
    fn urgent_header(ptr: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[18..20].copy_from_slice(&ptr.to_be_bytes());
        h
    }

    /// A table that does not validate checksums (the test headers carry none).
    fn urgent_table() -> FlowTable<u32> {
        FlowTable::new(FlowConfig {
            checksum: crate::ChecksumMode::Off,
            ..FlowConfig::default()
        })
    }

    /// `established`, then `data` at `c(at)` with URG set and urgent pointer `ptr` (sent twice
    /// when `twice`: a retransmission), then `rest`.
    fn with_urgent(ptr: u16, at: u32, data: &[u8], twice: bool, rest: &[Packet<'_>]) -> (FlowTable<u32>, Rec) {
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        established(&mut t, &mut rec);
        let hdr = urgent_header(ptr);
        let urg = with(&hdr, pkt(5, true, c(at), s(0), ACK | PSH | TcpFlags::URG, data));
        for _ in 0..1 + usize::from(twice) {
            feed(&mut t, &mut rec, &[urg]);
        }
        feed(&mut t, &mut rec, rest);
        (t, rec)
    }

    #[test]
    fn the_urgent_byte_is_taken_out_of_the_stream_and_offsets_stay_contiguous() {
        // " woXrld": the urgent pointer 4 names "X" (the byte before offset 4). Retransmitted
        // with the same pointer: nothing new.
        let (mut t, rec) = with_urgent(
            4,
            5,
            b" woXrld",
            true,
            &[
                pkt(7, true, c(12), s(0), ACK, b"!"),
                pkt(8, false, s(0), c(13), ACK, b"ok"),
            ],
        );
        assert_eq!(rec.texts(), ("hello world!".into(), "ok".into()));
        assert_eq!(t.stats().urgent_data, 1);
        assert_eq!(anomalies(&mut t), ["tcp.urgent_data"]);
    }

    #[test]
    fn an_urgent_pointer_into_a_later_segment_or_a_gap_takes_that_byte_only() {
        // The pointer runs ahead of the segment that carries it: the byte comes next.
        let (_, rec) = with_urgent(3, 5, b" w", false, &[pkt(6, true, c(7), s(0), ACK, b"Xorld")]);
        assert_eq!(rec.text(ToServer), "hello world");
        // The byte falls in bytes the capture lost: the gap is one byte shorter.
        let (mut t, mut rec) = with_urgent(3, 5, b" w", false, &[pkt(6, true, c(9), s(0), ACK, b"rld")]);
        t.flush(ms(9), &mut rec);
        assert_eq!(rec.text(ToServer), "hello w-rld");
        // A pointer at bytes already delivered changes nothing.
        let (t, rec) = with_urgent(2, 0, b"he", false, &[pkt(6, true, c(5), s(0), ACK, b" world")]);
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(t.stats().urgent_data, 0);
    }

    // PAWS (RFC 7323 §5.3): a data segment older than TS.Recent is the receiver's to drop.

    /// A 32-byte TCP header (data offset 8) with NOP, NOP, Timestamps(tsval, 0).
    fn ts_header(tsval: u32) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[12] = 8 << 4;
        h[20..24].copy_from_slice(&[1, 1, 8, 10]);
        h[24..28].copy_from_slice(&tsval.to_be_bytes());
        h
    }

    /// `p` carrying the TCP header `h`.
    fn with<'a>(h: &'a [u8], p: Packet<'a>) -> Packet<'a> {
        Packet { tcp_header: h, ..p }
    }

    #[test]
    fn a_segment_older_than_ts_recent_is_dropped_like_the_receiver_drops_it() {
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        let h = [100, 7, 101, 50, 102, 200].map(ts_header);
        feed(
            &mut t,
            &mut rec,
            &[
                with(&h[0], pkt(0, true, CISN, 0, SYN, b"")),
                with(&h[1], pkt(1, false, SISN, c(0), SYN | ACK, b"")),
                with(&h[2], pkt(2, true, c(0), s(0), ACK, b"hello")),
                // The decoy: good checksum, next bytes, TSval 50 < TS.Recent 101.
                with(&h[3], pkt(3, true, c(5), s(0), ACK, b" XXXXX")),
                with(&h[4], pkt(4, true, c(5), s(0), ACK, b" world")),
                // Reordered ahead (newer TSval, not at the edge): TS.Recent stays at 102.
                with(&h[5], pkt(5, true, c(17), s(0), ACK, b"?")),
                with(&h[4], pkt(6, true, c(11), s(0), ACK, b", more")),
            ],
        );
        assert_eq!(rec.text(ToServer), "hello world, more?");
        assert_eq!(t.stats().paws_rejected, 1);
        assert_eq!(anomalies(&mut t), ["tcp.paws_rejected"]);
        // Picked up mid-stream: not judged.
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                with(&h[2], pkt(2, true, c(0), s(0), ACK, b"hello")),
                with(&h[3], pkt(3, true, c(5), s(0), ACK, b" world")),
            ],
        );
        assert_eq!(rec.text(ToServer), "hello world");
        assert_eq!(t.stats().paws_rejected, 0);
    }

    // SYN on an open connection (RFC 5961 §4) and port reuse.

    #[test]
    fn spoofed_syn_with_a_random_isn_does_not_end_an_open_connection() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, 0xDEAD_BEEF, 0, SYN, b""),
                pkt(6, true, c(5), s(0), ACK, b" world"),
                pkt(7, false, s(0), c(11), ACK, b"ok"),
            ],
        );
        assert!(rec.ends.is_empty());
        assert_eq!(rec.texts(), ("hello world".into(), "ok".into()));
        let st = t.stats();
        assert_eq!((st.flows_created, st.flows_reused, st.syn_on_established), (1, 0, 1));
        assert_eq!(anomalies(&mut t), ["tcp.syn_on_established"]);
    }

    #[test]
    fn spoofed_syn_or_syn_ack_right_after_the_handshake_does_not_renumber_the_stream() {
        let (mut t, mut rec) = (table(), Rec::default());
        handshake(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(3, true, 0x1234_5678, 0, SYN, b""),
                pkt(3, false, 0x0BAD_0BAD, c(0), SYN | ACK, b""),
                pkt(4, true, c(0), s(0), ACK, b"first"),
                pkt(5, false, s(0), c(5), ACK, b"reply"),
            ],
        );
        // Only a SYN-ACK acknowledging the new SYN would show the server took it (port reuse).
        assert_eq!(rec.text(ToServer), "first");
        assert_eq!(rec.text(ToClient), "reply");
        assert_eq!(t.stats().syn_on_established, 2);
        assert_eq!(anomalies(&mut t), ["tcp.syn_on_established"; 2]);
    }

    #[test]
    fn syn_on_an_open_connection_confirmed_by_its_syn_ack_is_port_reuse() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        let isn2 = 90_000u32;
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(10, true, isn2, 0, SYN, b""),
                pkt(11, false, 40_000, isn2 + 1, SYN | ACK, b""),
                pkt(12, true, isn2 + 1, 40_001, ACK, b"two"),
            ],
        );
        assert_eq!(rec.end_reasons(), vec![CloseReason::Timeout]);
        assert_eq!(t.stats().flows_reused, 1);
        assert_eq!(rec.text(ToServer), "hellotwo");
        let new = rec.events.last().unwrap().0;
        assert_eq!(
            new,
            FlowId::derive(
                &FlowKey {
                    src: client(),
                    dst: server()
                },
                ms(10)
            )
        );
    }

    #[test]
    fn a_syn_delivered_after_the_first_data_is_the_same_connection() {
        // A mirror queued the client's SYN behind its first data: the flow is picked up from the
        // data, and the SYN that comes next (ISN right before it) must not restart it.
        let (mut t, mut rec) = (table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, c(0), s(0), ACK, b"hello"),
                pkt(1, true, CISN, 0, SYN, b""),
                pkt(2, false, SISN, c(0), SYN | ACK, b""),
                pkt(3, true, c(5), s(0), ACK, b" world"),
                pkt(4, false, s(0), c(11), ACK, b"ok"),
            ],
        );
        assert!(rec.ends.is_empty());
        assert_eq!(rec.texts(), ("hello world".into(), "ok".into()));
        let st = t.stats();
        assert_eq!(
            (st.flows_created, st.flows_reused, st.syn_on_established, st.gaps),
            (1, 0, 0, 0)
        );
        assert!(anomalies(&mut t).is_empty());
    }

    #[test]
    fn a_syn_far_from_the_picked_up_stream_is_still_a_suspect_new_connection() {
        let (mut t, mut rec) = (table(), Rec::default());
        feed(&mut t, &mut rec, &[pkt(0, true, c(0), s(0), ACK, b"hello")]);
        // A new ISN beyond the bytes seen (port reuse picks one above them), or far below.
        for isn in [c(5), c(0).wrapping_sub(4 << 20)] {
            feed(&mut t, &mut rec, &[pkt(1, true, isn, 0, SYN, b"")]);
        }
        assert_eq!(t.stats().syn_on_established, 2);
    }

    #[test]
    fn a_copy_of_old_bytes_after_the_connection_ended_opens_no_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(5), s(0), ACK | FIN, b""),
                pkt(6, false, s(0), c(6), ACK | FIN, b""),
                pkt(7, true, c(6), s(1), ACK, b""),
            ],
        );
        assert_eq!(rec.end_reasons(), vec![CloseReason::Fin]);
        // The SPAN's second copy of "hello", delivered after the FINs: old bytes.
        feed(&mut t, &mut rec, &[pkt(8, true, c(0), s(0), ACK, b"hello")]);
        let st = t.stats();
        assert_eq!((st.flows_created, st.data_after_close), (1, 0));
        assert_eq!(rec.text(ToServer), "hello|");
        // New bytes on the ended connection are still decoded and flagged.
        feed(&mut t, &mut rec, &[pkt(9, true, c(6), s(1), ACK, b"more")]);
        let st = t.stats();
        assert_eq!((st.flows_created, st.data_after_close), (2, 1));
    }

    #[test]
    fn a_whole_connection_repeated_after_it_ended_is_decoded_once() {
        // Two captures of one link merged with their clocks 50 ms apart (or a mirror's second
        // copy delivered late): the connection's every packet again, after its FINs. Its
        // handshake started a second flow and its bytes were decoded twice.
        let conn = |t0: i64| {
            [
                pkt(t0, true, CISN, 0, SYN, b""),
                pkt(t0 + 1, false, SISN, c(0), SYN | ACK, b""),
                pkt(t0 + 2, true, c(0), s(0), ACK, b""),
                pkt(t0 + 3, true, c(0), s(0), ACK, b"hello"),
                pkt(t0 + 4, false, s(0), c(5), ACK, b"hi"),
                pkt(t0 + 5, true, c(5), s(2), ACK | FIN, b""),
                pkt(t0 + 6, false, s(2), c(6), ACK | FIN, b""),
                pkt(t0 + 7, true, c(6), s(3), ACK, b""),
            ]
        };
        let (mut t, mut rec) = (table(), Rec::default());
        feed(&mut t, &mut rec, &conn(0));
        feed(&mut t, &mut rec, &conn(50));
        let st = t.stats();
        assert_eq!((st.flows_created, st.data_after_close), (1, 0));
        assert_eq!(rec.texts(), ("hello|".to_owned(), "hi|".to_owned()));
        assert!(anomalies(&mut t).is_empty());
        // A new connection on the same 4-tuple takes a new ISN: a new flow, decoded.
        let isn = CISN.wrapping_add(70_000);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(100, true, isn, 0, SYN, b""),
                pkt(101, false, SISN + 90_000, isn + 1, SYN | ACK, b""),
                pkt(102, true, isn + 1, SISN + 90_001, ACK, b"again"),
            ],
        );
        assert_eq!(t.stats().flows_created, 2);
        assert!(rec.text(ToServer).ends_with("again"), "{}", rec.text(ToServer));
        // The first connection sent again minutes later (a capture replayed into the sensor
        // once more): decoded again.
        let (mut t, mut rec) = (table(), Rec::default());
        feed(&mut t, &mut rec, &conn(0));
        feed(&mut t, &mut rec, &conn(200_000));
        assert_eq!(t.stats().flows_created, 2);
        assert_eq!(rec.texts(), ("hello|hello|".to_owned(), "hi|hi|".to_owned()));
    }

    #[test]
    fn a_stale_copy_rejected_by_paws_raises_no_anomaly_when_it_brings_nothing_new() {
        // With timestamps on, a mirror's copy of delivered bytes, delivered late, is older
        // than TS.Recent: dropped as the receiver drops it, and counted, but it is no evasion.
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        let h = [100, 500, 101, 102, 103].map(ts_header);
        feed(
            &mut t,
            &mut rec,
            &[
                with(&h[0], pkt(0, true, CISN, 0, SYN, b"")),
                with(&h[1], pkt(1, false, SISN, c(0), SYN | ACK, b"")),
                with(&h[2], pkt(2, true, c(0), s(0), ACK, b"")),
                with(&h[3], pkt(3, true, c(0), s(0), ACK, b"hello")),
                with(&h[4], pkt(4, true, c(5), s(0), ACK, b"world")),
                // A copy of "hello" from further back, TSval 101 (TS.Recent 103, one tick of
                // tolerance).
                with(&h[2], pkt(5, true, c(0), s(0), ACK, b"hello")),
            ],
        );
        assert_eq!(t.stats().paws_rejected, 1);
        assert!(anomalies(&mut t).is_empty());
        assert_eq!(rec.text(ToServer), "helloworld");
    }

    #[test]
    fn data_beyond_a_fin_is_flagged() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(5), s(0), ACK | FIN, b""),
                pkt(6, true, c(6), s(0), ACK, b"late"),
            ],
        );
        assert_eq!(rec.text(ToServer), "hello|");
        assert_eq!((t.stats().bytes_after_fin, t.stats().data_after_close), (4, 1));
        assert_eq!(anomalies(&mut t), ["tcp.data_after_close"]);
    }

    // Checksums: a bad segment never enters reassembly nor changes flow state.

    /// A real IPv4/TCP packet between `client()` and `server()`, with correct checksums unless
    /// `corrupt`.
    fn wire_bytes(to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8], corrupt: bool) -> Vec<u8> {
        let (s, d, sp, dp) = if to_server {
            ([10, 0, 0, 1], [10, 0, 0, 2], 40000, 104)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 104, 40000)
        };
        let mut b = etherparse::PacketBuilder::ipv4(s, d, 64).tcp(sp, dp, seq, 65535);
        if flags & ACK != 0 {
            b = b.ack(ack);
        }
        if flags & SYN != 0 {
            b = b.syn();
        }
        if flags & RST != 0 {
            b = b.rst();
        }
        if flags & FIN != 0 {
            b = b.fin();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        if corrupt {
            out[24] ^= 0xFF; // the TCP sequence number, after the checksum was computed
        }
        out
    }

    fn wire_pkt(t: i64, bytes: &[u8], payload_len: usize) -> Packet<'_> {
        let to_server = bytes[12..16] == [10, 0, 0, 1];
        let (ip, rest) = bytes.split_at(20);
        let (tcp, payload) = rest.split_at(rest.len() - payload_len);
        let mut p = pkt(t, to_server, 0, 0, 0, payload);
        p.ip_header = ip;
        p.tcp_header = tcp;
        p.tcp.seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        p.tcp.ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
        p.tcp.flags = TcpFlags(tcp[13]);
        p
    }

    #[test]
    fn bad_checksum_segments_and_control_packets_change_nothing() {
        let cfg = FlowConfig {
            checksum: crate::ChecksumMode::On,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        let frames = [
            (wire_bytes(true, CISN, 0, SYN, b"", false), 0),
            (wire_bytes(false, SISN, c(0), SYN | ACK, b"", false), 0),
            (wire_bytes(true, c(0), s(0), ACK, b"DECOY", true), 5),
            (wire_bytes(true, c(0), s(0), ACK, b"MOVE!", false), 5),
            (wire_bytes(false, s(0), c(5), RST | ACK, b"", true), 0),
            (wire_bytes(true, c(5), s(0), FIN | ACK, b"", true), 0),
            (wire_bytes(true, c(5), s(0), ACK, b"more", false), 4),
        ];
        for (i, (bytes, n)) in frames.iter().enumerate() {
            t.process(&wire_pkt(i as i64, bytes, *n), &mut rec);
            t.check_invariants();
        }
        assert_eq!(rec.text(ToServer), "MOVE!more");
        assert!(rec.ends.is_empty(), "the bad RST did not end it");
        let st = t.stats();
        assert_eq!(
            (st.bad_checksums, st.overlap_conflicts, st.retransmitted_bytes),
            (3, 0, 0)
        );
        assert_eq!(anomalies(&mut t), ["tcp.bad_checksum"; 3]);
    }

    // Overlaps that differ from what was already delivered.

    #[test]
    fn conflicting_retransmission_of_delivered_bytes_is_an_anomaly() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(5, true, c(0), s(0), ACK, b"hello"), // same bytes: a plain retransmission
                pkt(6, true, c(3), s(0), ACK, b"lo!!"),  // "lo" again, then new bytes
            ],
        );
        assert_eq!(t.stats().overlap_conflicts, 0);
        feed(&mut t, &mut rec, &[pkt(7, true, c(0), s(0), ACK, b"jello")]);
        assert_eq!(rec.text(ToServer), "hello!!", "the first copy is what was delivered");
        let st = t.stats();
        assert_eq!((st.overlap_conflicts, st.retransmitted_bytes), (1, 12));
        assert_eq!(anomalies(&mut t), ["tcp.overlap_conflict"]);
    }

    #[test]
    fn delivered_history_stays_within_its_global_budget() {
        let cfg = FlowConfig {
            delivered_history_bytes: 16,
            delivered_history_total: 40,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        for host in 1..10u8 {
            feed(
                &mut t,
                &mut rec,
                &[pkt_between(0, ep(host, 40000), server(), 1, 0, ACK, b"data")],
            );
        }
        assert_eq!(t.stats().history_bytes, 32, "two histories fit, the rest keep none");
        t.flush(ms(1), &mut rec);
        assert_eq!(t.stats().history_bytes, 0);
    }

    // Eviction classes under a flood.

    #[test]
    fn a_syn_flood_evicts_half_open_flows_not_the_idle_association() {
        let cfg = FlowConfig {
            max_flows: 8,
            ..FlowConfig::default()
        };
        let (mut t, mut rec) = (FlowTable::new(cfg), Rec::default());
        established(&mut t, &mut rec); // decoding, then idle
        for i in 0..10_000u32 {
            let src = ep((i % 200) as u8, 1024 + (i / 200) as u16);
            feed(
                &mut t,
                &mut rec,
                &[pkt_between(10 + i64::from(i / 100), src, server(), i, 0, SYN, b"")],
            );
        }
        let st = t.stats();
        assert_eq!((st.evicted_decoding, st.evicted_established), (0, 0));
        assert_eq!(st.evicted_half_open, 10_000 - 7);
        feed(&mut t, &mut rec, &[pkt(200, true, c(5), s(0), ACK, b" world")]);
        assert_eq!(
            rec.text(ToServer),
            "hello world",
            "still the same flow, handshake and all"
        );
        assert_eq!(t.stats().midstream_pickups, 0);
    }

    // The clock: a timestamp far from its neighbours.

    #[test]
    fn a_packet_stamped_ten_years_ahead_times_out_no_other_flow() {
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        let decade = 10 * 365 * 24 * 3600 * 1000;
        let other = ep(3, 50000);
        feed(
            &mut t,
            &mut rec,
            &[
                pkt_between(5, other, server(), 1, 0, ACK, b"x"),
                pkt_between(decade, other, server(), 2, 0, ACK, b"y"),
                pkt_between(7, other, server(), 3, 0, ACK, b"z"),
                pkt(8, true, c(5), s(0), ACK, b" world"),
            ],
        );
        // Only the packet's own flow is judged by its own time (and split); the clock did not
        // move, so no other flow timed out.
        assert_eq!(rec.end_reasons(), vec![CloseReason::Timeout]);
        assert_eq!(rec.ends[0].0.client, other);
        assert_eq!(rec.text(ToServer), "helloxyz world");
        assert_eq!(t.active_flows(), 2);
        assert_eq!(t.stats().timestamp_jumps, 1);
        assert_eq!(anomalies(&mut t), ["tcp.timestamp_jump"]);
    }

    #[test]
    fn a_confirmed_jump_keeps_the_flows_that_started_while_it_waited() {
        // The next file of a replay, an hour later: its first connection opens while the clock
        // still holds the jump for confirmation.
        let (mut t, mut rec) = (table(), Rec::default());
        established(&mut t, &mut rec);
        let hour = 3_600_000;
        feed(
            &mut t,
            &mut rec,
            &[
                pkt_between(hour, ep(3, 50000), server(), 7, 0, SYN, b""),
                pkt_between(hour + 1, server(), ep(3, 50000), 70, 8, SYN | ACK, b""),
                pkt_between(hour + 2, ep(3, 50000), server(), 8, 71, ACK, b"new"),
                pkt_between(hour + 3, ep(3, 50000), server(), 11, 71, ACK, b"er"),
            ],
        );
        assert_eq!(t.stats().timestamp_jumps, 0);
        assert_eq!(rec.end_reasons(), vec![CloseReason::Timeout], "only the old, idle flow");
        assert_eq!(rec.ends[0].0.client, client());
        assert_eq!(t.stats().flows_created, 2);
        assert_eq!(t.stats().midstream_pickups, 0);
        assert!(rec.text(ToServer).ends_with("newer"));
    }

    // Capture health.

    #[test]
    fn one_sided_flows_and_exact_duplicate_frames_are_counted() {
        let (mut t, mut rec) = (table(), Rec::default());
        let a = wire_bytes(true, c(0), s(0), ACK, b"abc", false);
        let b = wire_bytes(true, c(3), s(0), ACK, b"def", false);
        for (i, bytes) in [&a, &a, &b].into_iter().enumerate() {
            t.process(&wire_pkt(i as i64, bytes, 3), &mut rec);
        }
        // A retransmission is not a duplicate frame: here its IP identification differs.
        let mut again = b.clone();
        again[5] ^= 1;
        again[11] ^= 1; // keep the IP header checksum right
        t.process(&wire_pkt(3, &again, 3), &mut rec);
        t.flush(ms(4), &mut rec);
        let st = t.stats();
        assert_eq!((st.duplicate_frames, st.one_sided_flows, st.flows_ended), (1, 1, 1));
        assert_eq!(rec.text(ToServer), "abcdef");
    }

    /// xorshift64*: deterministic pseudo-random numbers for the randomized tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                v.swap(i, self.below(i as u64 + 1) as usize);
            }
        }
    }

    #[test]
    fn random_segments_in_random_order_with_duplicates_reassemble_exactly() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let len = 1 + rng.below(3000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
            // Half the rounds start right below a sequence wrap.
            let isn = if round % 2 == 0 {
                rng.next() as u32
            } else {
                u32::MAX - rng.below(2000) as u32
            };
            let at = |off: usize| isn.wrapping_add(1).wrapping_add(off as u32);
            // Several independent segmentations: their boundaries overlap like retransmissions
            // that were re-segmented.
            let mut segs: Vec<(usize, usize)> = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let mut off = 0;
                while off < len {
                    let n = (1 + rng.below(200) as usize).min(len - off);
                    segs.push((off, n));
                    off += n;
                }
            }
            let dups: Vec<_> = segs.iter().filter(|_| rng.below(4) == 0).copied().collect();
            segs.extend(dups);
            rng.shuffle(&mut segs);
            let fin_pos = rng.below(segs.len() as u64 + 1) as usize;

            let (mut t, mut rec) = (table(), Rec::default());
            let mut pkts = vec![pkt(0, true, isn, 0, SYN, b"")];
            for (i, &(off, n)) in segs.iter().enumerate() {
                if i == fin_pos {
                    pkts.push(pkt(1, true, at(len), 0, FIN | ACK, b""));
                }
                pkts.push(pkt(1, true, at(off), 0, ACK, &stream[off..off + n]));
            }
            if fin_pos == segs.len() {
                pkts.push(pkt(1, true, at(len), 0, FIN | ACK, b""));
            }
            feed(&mut t, &mut rec, &pkts);
            let want = format!("{}|", String::from_utf8_lossy(&stream));
            assert_eq!(rec.text(ToServer), want, "round {round}");
            let st = t.stats();
            assert_eq!(
                (st.gaps, st.overlap_conflicts, st.buffered_bytes),
                (0, 0, 0),
                "round {round}"
            );
        }
    }

    /// Found by `random_garbage_never_panics_and_keeps_the_books`: the decoder gave up on the
    /// flow (`Ignore`) at the packet where a causal hold ran out; the hold was discarded and its
    /// `Continue` overwrote the `Ignore`, so the flow was neither ignored nor cleared, and a
    /// piece was left at the delivery point.
    #[test]
    fn ignore_is_kept_when_a_causal_hold_is_discarded_at_the_same_packet() {
        let cfg = FlowConfig {
            idle_timeout: Duration::from_secs(5),
            max_flows: 4,
            max_buffered_bytes_per_dir: 1000,
            max_buffered_bytes_total: 3000,
            max_holes_per_dir: 3,
            ..FlowConfig::default()
        };
        let (a, b) = (ep(4, 2575), ep(2, 104));
        let buf = [0x55u8; 300];
        let pk: [(i64, bool, u32, u32, u8, usize, u32); 9] = [
            (3805137, true, 2926401475, 2926399885, 0x19, 169, 169),
            (3822973, true, 1957102399, 942468821, 0x19, 27, 2345890669),
            (3824344, false, 2362343599, 2926401069, 0x6, 85, 85),
            (3833314, false, 3200653145, 677274175, 0xb, 46, 46),
            (3847366, true, 1268880950, 2362343136, 0x2a, 174, 174),
            (3849630, true, 2926401876, 2926402105, 0x0, 7, 7),
            (3853175, false, 2926400275, 2362342765, 0x11, 130, 130),
            (3855713, false, 2926398467, 3833428866, 0x11, 86, 86),
            (3855797, true, 3200654524, 2926401094, 0x1, 41, 0),
        ];
        let mut t = FlowTable::new(cfg);
        let mut rec = Rec {
            ignore_after: Some(7),
            ..Rec::default()
        };
        for &(now, ab, seq, ack, flags, n, wire) in &pk {
            let (src, dst) = if ab { (a, b) } else { (b, a) };
            let mut p = pkt_between(now, src, dst, seq, ack, flags, &buf[..n]);
            p.wire_payload_len = wire;
            t.process(&p, &mut rec);
            t.check_invariants();
        }
    }

    #[test]
    fn random_garbage_never_panics_and_keeps_the_books() {
        let cfg = FlowConfig {
            idle_timeout: Duration::from_secs(5),
            max_flows: 4,
            max_buffered_bytes_per_dir: 1000,
            max_buffered_bytes_total: 3000,
            max_holes_per_dir: 3,
            ..FlowConfig::default()
        };
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        let hosts = [ep(1, 40000), ep(2, 104), ep(3, 104), ep(4, 2575), ep(5, 40000)];
        let bases: Vec<u32> = (0..4).map(|_| rng.next() as u32).collect();
        let buf: Vec<u8> = (0..300).map(|_| rng.next() as u8).collect();
        let mut t = FlowTable::new(cfg);
        let mut rec = Rec {
            ignore_after: None,
            ..Rec::default()
        };
        let mut now = 0i64;
        for i in 0..30_000 {
            if i % 5000 == 4999 {
                rec.ignore_after = if rec.ignore_after.is_some() { None } else { Some(7) };
            }
            now += rng.below(400) as i64 - 50; // mostly forward, sometimes back
            let src = hosts[rng.below(hosts.len() as u64) as usize];
            let dst = hosts[rng.below(hosts.len() as u64) as usize];
            let near = |rng: &mut Rng, base: u32| base.wrapping_add(rng.below(4000) as u32).wrapping_sub(1000);
            let (k1, k2) = (rng.below(4) as usize, rng.below(4) as usize);
            let seq = match rng.below(4) {
                0 => rng.next() as u32,
                _ => near(&mut rng, bases[k1]),
            };
            let ack = match rng.below(3) {
                0 => rng.next() as u32,
                _ => near(&mut rng, bases[k2]),
            };
            let flags = (rng.next() as u8) & if rng.below(4) == 0 { 0x3F } else { ACK | PSH | FIN };
            let start = rng.below(buf.len() as u64) as usize;
            let n = (rng.below(200) as usize).min(buf.len() - start);
            let mut p = pkt_between(now, src, dst, seq, ack, flags, &buf[start..start + n]);
            // Now and then a TTL below the flow's (`reassembly::held`).
            // (Picked by the packet's index: drawing from `rng` would change every packet after.)
            p.ip_header = match i % 16 {
                0 => &TTL60,
                7 => &TTL63,
                _ => &TTL64,
            };
            p.wire_payload_len = match rng.below(10) {
                0 => rng.next() as u32,
                1 => n as u32 + rng.below(100) as u32,
                2 => 0,
                _ => n as u32,
            };
            t.process(&p, &mut rec);
            t.check_invariants();
        }
        t.flush(ms(now), &mut rec);
        t.check_invariants();
        let st = t.stats();
        assert_eq!(t.active_flows(), 0);
        assert_eq!(st.buffered_bytes, 0);
        assert_eq!(st.flows_created, st.flows_ended);
        assert_eq!(rec.ends.len() as u64, st.flows_ended);
        assert!(
            st.flows_created > 100 && st.gaps > 0 && st.out_of_order_segments > 0,
            "{st:?}"
        );
    }

    // A lower IP TTL than the rest of the direction: maybe expired before the receiver
    // (`reassembly::held`).

    /// A 20-byte IPv4 header with TTL `ttl` (no checksum: these tables do not validate).
    const fn ipv4_ttl(ttl: u8) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[8] = ttl;
        h
    }
    static TTL64: [u8; 20] = ipv4_ttl(64);
    static TTL63: [u8; 20] = ipv4_ttl(63);
    static TTL60: [u8; 20] = ipv4_ttl(60);

    fn via<'a>(ip: &'a [u8], p: Packet<'a>) -> Packet<'a> {
        Packet { ip_header: ip, ..p }
    }

    /// A handshake whose packets all reach the tap with TTL 64.
    fn handshake_at_64() -> Vec<Packet<'static>> {
        vec![
            via(&TTL64, pkt(0, true, CISN, 0, SYN, b"")),
            via(&TTL64, pkt(1, false, SISN, c(0), SYN | ACK, b"")),
            via(&TTL64, pkt(2, true, c(0), s(0), ACK, b"")),
        ]
    }

    /// `handshake_at_64`, then `pkts`, through a table that does not validate checksums.
    fn ttl_fed(pkts: &[Packet<'_>]) -> (FlowTable<u32>, Rec) {
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        feed(&mut t, &mut rec, &handshake_at_64());
        feed(&mut t, &mut rec, pkts);
        (t, rec)
    }

    #[test]
    fn a_decoy_whose_ttl_runs_out_before_the_receiver_loses_to_the_real_segment() {
        let (mut t, rec) = ttl_fed(&[
            via(&TTL63, pkt(3, true, c(0), s(0), ACK | PSH, b"ARCHIVE2")),
            via(&TTL64, pkt(4, true, c(0), s(0), ACK | PSH, b"STORESCP")),
            via(&TTL64, pkt(5, false, s(0), c(8), ACK, b"ok")),
        ]);
        assert_eq!(rec.texts(), ("STORESCP".into(), "ok".into()));
        let st = t.stats();
        assert_eq!((st.low_ttl_held, st.low_ttl_decoys, st.low_ttl_taken), (1, 1, 0));
        assert_eq!((st.overlap_conflicts, st.buffered_bytes), (0, 0));
        assert_eq!(anomalies(&mut t), ["tcp.low_ttl_decoy"]);
    }

    #[test]
    fn the_same_segment_seen_before_and_after_a_router_is_delivered_once_without_alarm() {
        // Both orders: the copy one hop further first, and second.
        for (first, second) in [(&TTL63, &TTL64), (&TTL64, &TTL63)] {
            let (mut t, rec) = ttl_fed(&[
                via(first, pkt(3, true, c(0), s(0), ACK | PSH, b"hello")),
                via(second, pkt(3, true, c(0), s(0), ACK | PSH, b"hello")),
                via(&TTL64, pkt(4, true, c(5), s(0), ACK | PSH, b" world")),
            ]);
            assert_eq!(rec.text(ToServer), "hello world");
            assert_eq!(t.stats().low_ttl_decoys, 0);
            assert!(anomalies(&mut t).is_empty());
        }
    }

    #[test]
    fn a_low_ttl_copy_nothing_contradicts_fills_its_hole_instead_of_a_gap() {
        let (mut t, mut rec) = ttl_fed(&[
            via(&TTL63, pkt(3, true, c(0), s(0), ACK | PSH, b"hello")),
            via(&TTL64, pkt(4, true, c(5), s(0), ACK | PSH, b" world")),
            // The receiver acknowledges both; no other copy of "hello" comes.
            via(&TTL64, pkt(5, false, s(0), c(11), ACK, b"")),
            via(&TTL64, pkt(2_000, false, s(0), c(11), ACK, b"")),
        ]);
        assert_eq!(rec.text(ToServer), "hello world");
        let st = t.stats();
        assert_eq!((st.gaps, st.low_ttl_taken, st.low_ttl_decoys), (0, 1, 0));
        t.flush(ms(3_000), &mut rec);
        assert_eq!(t.stats().buffered_bytes, 0);
    }

    #[test]
    fn a_route_that_really_changed_costs_delay_never_bytes() {
        // From the 4th segment on, the client's packets come one router further (TTL 60).
        let words: [&[u8]; 8] = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"];
        let mut pkts = vec![via(&TTL64, pkt(3, true, c(0), s(0), ACK | PSH, b"012"))];
        for (i, w) in words.iter().enumerate() {
            pkts.push(via(
                &TTL60,
                pkt(4 + i as i64, true, c(3 + i as u32), s(0), ACK | PSH, w),
            ));
        }
        let (t, rec) = ttl_fed(&pkts);
        assert_eq!(rec.text(ToServer), "012abcdefgh");
        let st = t.stats();
        // Four held; the fifth finds no room: the four are taken, TTL 60 becomes the
        // client's, and the rest go the normal way.
        assert_eq!(
            (st.low_ttl_held, st.low_ttl_taken, st.gaps, st.buffered_bytes),
            (4, 4, 0, 0)
        );
    }

    #[test]
    fn a_rst_below_the_directions_ttl_ends_nothing() {
        let (mut t, rec) = ttl_fed(&[
            via(&TTL64, pkt(3, true, c(0), s(0), ACK | PSH, b"hello")),
            via(&TTL64, pkt(4, false, s(0), c(5), ACK | PSH, b"ok")),
            // Exactly at RCV.NXT, spoofed from the server, one hop short.
            via(&TTL63, pkt(5, false, s(2), c(5), RST | ACK, b"")),
            via(&TTL64, pkt(6, true, c(5), s(2), ACK | PSH, b" world")),
        ]);
        assert_eq!(rec.texts(), ("hello world".into(), "ok".into()));
        assert!(rec.ends.is_empty());
        assert_eq!(t.stats().rst_low_ttl, 1);
        assert_eq!(anomalies(&mut t), ["tcp.rst_low_ttl"]);
        // At the direction's own TTL the same RST ends the flow.
        let (_, rec) = ttl_fed(&[
            via(&TTL64, pkt(3, true, c(0), s(0), ACK | PSH, b"hello")),
            via(&TTL64, pkt(4, false, s(0), c(5), ACK | PSH, b"ok")),
            via(&TTL64, pkt(5, false, s(2), c(5), RST | ACK, b"")),
        ]);
        assert_eq!(rec.end_reasons(), [CloseReason::Rst]);
        // A scanner's raw SYN far above the kernel's TTL, then the kernel's own RST (the client
        // never sent data): the RST ends the half-open flow.
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        let raw_syn = ipv4_ttl(255);
        feed(
            &mut t,
            &mut rec,
            &[
                via(&raw_syn, pkt(0, true, CISN, 0, SYN, b"")),
                via(&TTL64, pkt(1, false, SISN, c(0), SYN | ACK, b"")),
                via(&TTL64, pkt(2, true, c(0), 0, RST, b"")),
            ],
        );
        assert_eq!((rec.end_reasons(), t.stats().rst_low_ttl), (vec![CloseReason::Rst], 0));
    }

    #[test]
    fn data_or_a_fin_without_the_ack_bit_is_read_by_nobody() {
        let (mut t, rec) = after_hello(&[
            // fragroute's `tcp_chaff null`: the decoy first, no flags at all; then PSH alone.
            pkt(5, true, c(5), s(0), 0, b" WORLD"),
            pkt(5, true, c(5), s(0), PSH, b" WORLD"),
            pkt(6, true, c(5), s(0), ACK | PSH, b" world"),
            // A FIN without ACK (an Xmas-scan probe) closes nothing.
            pkt(7, true, c(11), s(0), FIN | PSH | TcpFlags::URG, b""),
            pkt(8, true, c(11), s(0), ACK | PSH, b"!"),
        ]);
        assert_eq!(rec.text(ToServer), "hello world!");
        assert_eq!((t.stats().without_ack, t.stats().overlap_conflicts), (3, 0));
        assert_eq!(anomalies(&mut t), ["tcp.without_ack"; 3]);
        // Nor does it start a flow.
        let (t, rec) = fed(&[pkt(0, true, c(0), 0, PSH, b"hello")]);
        assert_eq!((t.active_flows(), rec.events.len(), t.stats().without_ack), (0, 0, 1));
    }

    #[test]
    fn a_connection_reset_and_reopened_in_the_same_instant_gets_an_id_of_its_own() {
        let (mut t, mut rec) = (urgent_table(), Rec::default());
        feed(
            &mut t,
            &mut rec,
            &[
                pkt(0, true, CISN, 0, SYN, b""),
                pkt(0, true, c(0), 0, RST, b""),
                pkt(0, true, CISN, 0, SYN, b""),
            ],
        );
        t.flush(ms(1), &mut rec);
        let ids: Vec<FlowId> = rec.ends.iter().map(|e| e.0.id).collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], ids[0].next());
    }

    #[test]
    fn far_off_spoofed_bytes_beyond_the_window_never_make_the_stream_jump() {
        // fragroute's `tcp_chaff seq`: copies of each segment at sequence numbers far beyond the
        // receiver's window (64 KiB here), more of them than can be held, interleaved with the
        // real segments.
        let mut pkts = Vec::new();
        let words: [&[u8]; 6] = [b" wor", b"ld, ", b"and ", b"more", b" of ", b"it"];
        let mut off = 5;
        for (i, w) in words.iter().enumerate() {
            let far = c(off + 100_000 + 7_919 * i as u32);
            pkts.push(pkt(5 + i as i64, true, far, s(0), ACK | PSH, b"CHAFF"));
            pkts.push(pkt(5 + i as i64, true, c(off), s(0), ACK | PSH, w));
            off += w.len() as u32;
            pkts.push(pkt(5 + i as i64, false, s(0), c(off), ACK, b""));
        }
        let (mut t, mut rec) = after_hello(&pkts);
        t.flush(ms(100), &mut rec);
        assert_eq!(rec.text(ToServer), "hello world, and more of it");
        let st = t.stats();
        assert_eq!((st.data_out_of_window, st.data_out_of_window_taken, st.gaps), (6, 0, 0));
        assert!(anomalies(&mut t).iter().all(|a| *a == "tcp.data_out_of_window"));
    }
}
