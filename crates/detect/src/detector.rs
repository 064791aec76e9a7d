//! The detector: protocol events in (packet-time order), alerts out.
//!
//! Per event the observers (`observe/`) derive observations — a failed or successful login, an
//! export of studies to a destination, an admin action, a share — and [`Detector::observe`]
//! hands them, in order, to the rule families (`rules/`), which feed per-entity windows and
//! learned state; the engine (`engine.rs`) turns their counts into incidents and alerts
//! (ARCHITECTURE "Detection semantics"):
//!
//! - window rules fire once when the count rises above the threshold, report updates as the
//!   incident grows (at most one per `detect.update_interval` unless it grew by a threshold's
//!   worth), and re-arm once the count is back at or below the threshold;
//! - instant rules fire on the first occurrence; repeats within the rule's window are updates
//!   of the same alert;
//! - who exported: the association's user identity when negotiated, else the calling AE
//!   (C-MOVE, C-GET), or the HTTP user, else the client address (WADO-RS / WADO-URI). The
//!   user identity arrives with the association event, after the commands, so C-MOVE / C-GET
//!   exports wait for it (`held.rs`: at most `detect.identity_wait`, bounded per flow and in
//!   flows).
//!
//! This file keeps the detector's state and its life: construction and reload, `observe`,
//! `tick` (housekeeping: identity waits running out, incidents closing) and `finish`.
//!
//! Nothing here trusts event contents: names are looked up, never indexed, and every table
//! is bounded.

use crate::bounded_map::BoundedMap;
use crate::config::Config;
use crate::dest::Dest;
use crate::engine::{AlertSink, Measurer, Occurrence};
use crate::entity::{EntRef, EntityTable};
use crate::error::DetectError;
use crate::geo::Geo;
use crate::held::Pending;
use crate::incident::EvidenceCaps;
use crate::inventory::InventoryIndex;
use crate::late_moves::{LateMove, Offered};
use crate::learned::{Learned, LearnedState, STATE_VERSION};
use crate::name::Name;
use crate::observe::{Observation, Observer};
use crate::rule::Rule;
use crate::stats::DetectStats;
use pacstap_core::{DicomEvent, EventBody, FlowId, ProtocolEvent, Timestamp};
use std::net::IpAddr;

/// TLS fingerprints remembered per flow (for the device of a login on the same flow).
const MAX_TLS_FLOWS: usize = 65_536;
/// AE → address it answered at, for naming move destinations.
const MAX_NODE_ADDRS: usize = 65_536;
/// Housekeeping (expiring incidents, flushing held exports) runs at most once per packet-time
/// second.
const HOUSEKEEPING_NS: i64 = 1_000_000_000;

/// Settings precomputed in nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) fail_span: i64,
    pub(crate) lfu_win: i64,
    pub(crate) lfs_win: i64,
    pub(crate) lsaf_win: i64,
    pub(crate) bulk_win: i64,
    /// `rules.bulk_export.https_bytes` (0: HTTPS volume off).
    pub(crate) https_bytes: u64,
    pub(crate) base_win: i64,
    pub(crate) share_win: i64,
    pub(crate) update_interval: i64,
    pub(crate) identity_wait: i64,
    pub(crate) learning_period: i64,
    pub(crate) min_history: i64,
    pub(crate) tau: f64,
    pub(crate) caps: EvidenceCaps,
    pub(crate) window_cap: usize,
    pub(crate) max_devices: usize,
    pub(crate) max_pending: usize,
}

/// The detection engine. One per pipeline; owns all entity state.
pub struct Detector {
    pub(crate) p: Params,
    pub(crate) cfg: Config,
    pub(crate) inv: InventoryIndex,
    pub(crate) entities: EntityTable,
    pub(crate) learned: Learned,
    pub(crate) pending: Pending,
    /// C-MOVE sub-operations waiting for their C-MOVE (`moves.rs`).
    pub(crate) links: crate::moves::MoveLinks,
    /// C-MOVEs waiting for sub-operations a mirror delivers after them (`late_moves.rs`).
    pub(crate) late: crate::late_moves::LateMoves,
    /// Associations whose first command has counted as their login (bounded like the held
    /// exports' resolved flows).
    pub(crate) logged_in: BoundedMap<FlowId, ()>,
    pub(crate) geo: Geo,
    pub(crate) stats: DetectStats,
    pub(crate) now: i64,
    pub(crate) last_housekeeping: i64,
    /// AE → the address (and port) it last answered at as a server.
    pub(crate) node_addr: BoundedMap<crate::name::Name, (IpAddr, u16)>,
    pub(crate) tls_ja4: BoundedMap<FlowId, Box<str>>,
    /// Associations without a calling AE whose sub-operations were asked who sent them
    /// (`held.rs`).
    pub(crate) unnamed_flows: BoundedMap<FlowId, crate::held::UnnamedFlow>,
    /// The C-MOVEs seen lately (`seen_moves.rs`).
    pub(crate) moves_seen: crate::seen_moves::SeenMoves,
    /// The user each client address last authenticated as over HTTP (`address_identity.rs`).
    pub(crate) web_users: crate::address_identity::AddressIdentity<crate::name::Name>,
    /// Who each client address last associated as over DICOM (`address_identity.rs`).
    pub(crate) dicom_callers: crate::address_identity::AddressIdentity<crate::entity::Caller>,
    pub(crate) hasher: ahash::RandomState,
    /// While a batch of held exports is released: incidents opened in it, reported once the
    /// whole batch is counted (one alert with the full count, not a first alert and an update
    /// at the same instant).
    pub(crate) deferred: Option<Vec<(u32, Rule)>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("now", &self.now)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The sub-operations a C-MOVE's response reports done (completed and with warnings): each
/// was a C-STORE to its Move Destination. `None` when it had no response to say so.
fn completed_sub_operations(ev: &ProtocolEvent) -> Option<u64> {
    match &ev.body {
        // No final response (a capture of the request side only, or one that ended first): how
        // many sub-operations there were is unknown.
        EventBody::Dicom(DicomEvent::Command(c)) if c.status.is_none() => None,
        EventBody::Dicom(DicomEvent::Command(c)) => Some(
            c.sub_operations
                .as_ref()
                .map_or(0, |s| u64::from(s.completed) + u64::from(s.warning)),
        ),
        _ => Some(0),
    }
}

/// When a command's final response came, if it did.
fn response_time(ev: &ProtocolEvent) -> Option<i64> {
    match &ev.body {
        EventBody::Dicom(DicomEvent::Command(c)) => c.response_time.map(|t| t.0),
        _ => None,
    }
}

pub(crate) fn nanos(d: crate::config::Dur) -> i64 {
    d.as_nanos_i64()
}

impl Detector {
    /// Build a detector from a validated config and, optionally, learned state from an earlier
    /// run. Opens the GeoIP database when one is configured.
    pub fn new(cfg: &Config, state: Option<LearnedState>) -> Result<Self, DetectError> {
        let r = &cfg.rules;
        let geo = match (&cfg.geoip.database, &cfg.geoip.csv) {
            (Some(db), _) => Geo::open_mmdb(db)?,
            (None, Some(csv)) => Geo::open_csv(csv)?,
            (None, None) => Geo::None,
        };
        let lfu_win = nanos(r.login_failures_user.window);
        let lfs_win = nanos(r.login_failures_source.window);
        let lsaf_win = nanos(r.login_success_after_failures.window);
        let p = Params {
            fail_span: lfu_win.max(lfs_win).max(lsaf_win),
            lfu_win,
            lfs_win,
            lsaf_win,
            bulk_win: nanos(r.bulk_export.window),
            https_bytes: r.bulk_export.https_bytes,
            base_win: nanos(r.export_above_baseline.window),
            share_win: nanos(r.sharing_spike.window),
            update_interval: nanos(cfg.detect.update_interval),
            identity_wait: nanos(cfg.detect.identity_wait),
            learning_period: nanos(cfg.detect.learning_period),
            min_history: nanos(r.export_above_baseline.min_history),
            tau: (nanos(r.export_above_baseline.half_life).max(1) as f64) / std::f64::consts::LN_2,
            caps: EvidenceCaps {
                flows: cfg.evidence.max_flow_ids,
                studies: cfg.evidence.max_study_uids,
                destinations: cfg.evidence.max_destinations,
                tracked: cfg.evidence.max_tracked_per_incident.max(1),
            },
            window_cap: cfg.detect.max_window_items.max(2),
            max_devices: cfg.detect.max_devices_per_entity.max(1),
            max_pending: cfg.detect.max_pending_flows,
        };
        let mut learned = Learned::new(cfg.detect.max_learned_entities);
        let mut stats = DetectStats::default();
        if let Some(st) = &state {
            if st.version > STATE_VERSION {
                return Err(DetectError::StateVersion {
                    found: st.version,
                    supported: STATE_VERSION,
                });
            }
            stats.state_entries_skipped = learned.load(st, p.max_devices);
        }
        Ok(Detector {
            inv: InventoryIndex::new(cfg),
            entities: EntityTable::new(cfg.detect.max_entities),
            learned,
            pending: Pending::default(),
            links: crate::moves::MoveLinks::default(),
            late: crate::late_moves::LateMoves::default(),
            logged_in: BoundedMap::new(65_536),
            geo,
            stats,
            now: i64::MIN,
            last_housekeeping: i64::MIN,
            node_addr: BoundedMap::new(MAX_NODE_ADDRS),
            web_users: crate::address_identity::AddressIdentity::new(),
            dicom_callers: crate::address_identity::AddressIdentity::new(),
            tls_ja4: BoundedMap::new(MAX_TLS_FLOWS),
            moves_seen: crate::seen_moves::SeenMoves::default(),
            unnamed_flows: BoundedMap::new(65_536),
            // Fixed seeds: study keys are the same in every run, so replays are reproducible.
            hasher: ahash::RandomState::with_seeds(
                0x7061_6373_7461_7030,
                0x6465_7465_6374_3031,
                0x5354_5544_5955_4944,
                0x0123_4567_89ab_cdef,
            ),
            cfg: cfg.clone(),
            p,
            deferred: None,
        })
    }

    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    /// Run on with `cfg` (a config reload, SIGHUP) without forgetting anything: sliding
    /// windows keep their items (taking the new lengths), open incidents stay open, held
    /// exports stay held, learned devices and baselines stay. Thresholds, inventory, networks,
    /// GeoIP and caps are the new ones from the next event on. On error (e.g. the new GeoIP
    /// database cannot be read) nothing changes.
    pub fn reconfigure(&mut self, cfg: &Config) -> Result<(), DetectError> {
        let fresh = Detector::new(cfg, None)?;
        self.p = fresh.p;
        self.inv = fresh.inv;
        self.geo = fresh.geo;
        self.cfg = fresh.cfg;
        self.entities.set_max(cfg.detect.max_entities);
        self.learned.set_max(cfg.detect.max_learned_entities);
        let p = &self.p;
        for st in self.entities.states_mut() {
            let windows = [
                (st.failures.as_mut(), p.fail_span),
                (st.bulk.as_mut(), p.bulk_win),
                (st.baseline.as_mut(), p.base_win),
                (st.shares.as_deref_mut(), p.share_win),
                (st.recipients.as_deref_mut(), p.share_win),
            ];
            for (w, span) in windows {
                if let Some(w) = w {
                    w.set_span(span);
                }
            }
            if let Some(w) = st.https.as_mut() {
                w.set_span(p.bulk_win);
            }
        }
        Ok(())
    }

    /// The config this detector runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Everything learned so far (devices, countries, node addresses, baselines, alerted
    /// destinations), for [`crate::StateStore::save`].
    pub fn learned_state(&self) -> LearnedState {
        self.learned.to_state((self.now != i64::MIN).then_some(self.now))
    }

    /// Whether the learning period is still on: what is seen is learned without alerts.
    pub(crate) fn learning(&self) -> bool {
        match self.learned.started {
            Some(s) => self.now < s.saturating_add(self.p.learning_period),
            None => self.p.learning_period > 0,
        }
    }

    fn advance(&mut self, ts: i64) {
        if ts > self.now {
            self.now = ts;
        }
        if self.learned.started.is_none() {
            self.learned.started = Some(ts);
        }
    }

    /// Feed one protocol event (packet-time order). Alerts are pushed to `out` as events with
    /// [`EventBody::Alert`], on the flow of the event that triggered them.
    pub fn observe(&mut self, ev: &ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        if !ev.body.is_internal() {
            self.stats.events += 1;
        }
        self.advance(ev.ts.0);
        // Time-based closes first, so a new incident is not taken for the old one.
        self.housekeeping(out);
        let mut seen = Vec::new();
        Observer {
            inv: &self.inv,
            cfg: &self.cfg,
            node_addr: &self.node_addr,
            hasher: &self.hasher,
        }
        .observe(ev, &mut seen);
        for o in seen {
            self.dispatch(ev, o, out);
        }
        self.refresh_stats();
    }

    /// Packet time advanced without an event: lets windows expire, incidents close and held
    /// exports time out. Cheap; call per packet or per second.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<ProtocolEvent>) {
        if now.0 > self.now {
            self.now = now.0;
        }
        self.housekeeping(out);
    }

    /// Count the sub-operations no C-MOVE took (`moves.rs` [`crate::moves::Orphan`]) as the
    /// exports of their Move Originator AE: a C-MOVE whose request and response were both lost,
    /// or whose association is not on the mirror, still moved these studies to that destination.
    fn export_orphans(&mut self, out: &mut Vec<ProtocolEvent>) {
        for o in self.links.take_orphans() {
            // Anyone can open an association and send C-STOREs that name a Move Originator:
            // only a DICOM node of the inventory (at its address, on the internal networks)
            // says for another AE that it moved images.
            let sender = o.sender.as_ref().map(|n| n.as_str());
            if self
                .inv
                .dicom_destination_unknown(sender, Some(o.flow.client.ip))
                .is_some()
            {
                self.stats.sub_operations_from_unknown_senders += 1;
                continue;
            }
            let dest = Dest::ae(o.ops.dest_ae(), Some(o.flow.server.ip), Some(o.flow.server.port));
            let mut studies: Vec<(u64, Option<&str>)> = o.studies.iter().map(|s| (s.key, s.uid.as_deref())).collect();
            let unclaimed = crate::seen_moves::Unclaimed {
                originator: o.originator.as_str(),
                message_id: o.message_id,
                dest_ae: o.ops.dest_ae(),
                sender: o.flow.client.ip,
                first: o.ops.first,
            };
            if self.moves_seen.covers(unclaimed) {
                // Its C-MOVE was seen and counted its studies (unnamed, when its identifier
                // was lost: naming them again here would count them twice); only the volume
                // and the destination are new.
                studies.clear();
                self.stats.sub_operations_volume_only += 1;
            } else if studies.is_empty() {
                // None read from the data sets: the C-MOVE counts as one study of its own.
                let key = (o.originator.as_str(), o.message_id, o.ops.first);
                studies.push((self.hasher.hash_one(key), None));
            }
            if !studies.is_empty() {
                self.stats.moves_seen_by_sub_operations_only += 1;
            }
            let ts = o.ops.first;
            self.export(
                EntRef::Ae(o.originator.as_str()),
                &studies,
                (Some(&dest), Some(&o.ops)),
                &o.flow,
                ts,
                out,
            );
        }
    }

    /// End of input (replay end, shutdown): attribute every held export now (their associations
    /// never ended: to the identity their address showed, else the address) and report
    /// incidents that grew since their last alert.
    pub fn finish(&mut self, out: &mut Vec<ProtocolEvent>) {
        self.export_late_moves(i64::MAX, out);
        self.links.expire(i64::MAX);
        self.export_orphans(out);
        let flows: Vec<FlowId> = self.pending.order.iter().map(|(f, _)| *f).collect();
        for f in flows {
            self.release(f, None, out);
        }
        self.pending.order.clear();
        self.last_housekeeping = i64::MIN;
        self.housekeeping(out);
        let keys: Vec<(u32, Rule)> = self.entities.open.iter().copied().collect();
        let now = self.now;
        for (idx, rule) in keys {
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            let kind = s.kind;
            if let Some(inc) = s.st.incidents.iter_mut().find(|i| i.rule == rule) {
                if inc.grown() {
                    let flow = inc.last_flow;
                    AlertSink {
                        stats: &mut self.stats,
                        out,
                        now,
                    }
                    .emit(kind, &s.id, inc, true, flow);
                }
            }
        }
        self.refresh_stats();
    }

    fn refresh_stats(&mut self) {
        let s = &mut self.stats;
        s.entities_tracked = self.entities.len() as u64;
        s.entities_evicted = self.entities.evicted;
        s.incidents_evicted = self.entities.evicted_open_incidents;
        s.incidents_open = self.entities.open.len() as u64;
        s.learned_entities = self.learned.len() as u64;
        s.learned_evicted = self.learned.evicted;
        s.pending_flows = self.pending.flows.len() as u64;
    }

    fn housekeeping(&mut self, out: &mut Vec<ProtocolEvent>) {
        if self.last_housekeeping != i64::MIN && self.now.saturating_sub(self.last_housekeeping) < HOUSEKEEPING_NS {
            return;
        }
        self.last_housekeeping = self.now;
        self.export_late_moves(self.now, out);
        self.links.expire(self.now);
        self.export_orphans(out);
        // Held exports whose association has not ended in time (or ended naming no one):
        // attribute to the identity their address showed, else the address.
        while let Some(&(fid, since)) = self.pending.order.front() {
            if self.now.saturating_sub(since) < self.p.identity_wait {
                break;
            }
            self.pending.order.pop_front();
            if self.pending.flows.get(&fid).is_some_and(|p| p.since == since) {
                self.stats.identity_wait_expired += 1;
                self.pending.resolved.insert(fid, ());
                self.release(fid, None, out);
            }
        }
        self.check_open_incidents(out);
        self.refresh_stats();
    }

    /// Re-evaluate open incidents: close those back at or below their threshold (or quiet for
    /// their window), and report growth that waited for the update interval.
    fn check_open_incidents(&mut self, out: &mut Vec<ProtocolEvent>) {
        let keys: Vec<(u32, Rule)> = self.entities.open.iter().copied().collect();
        let now = self.now;
        for (idx, rule) in keys {
            let measure = match self.entities.slot_mut(idx) {
                Some(s) => {
                    let m = Measurer {
                        p: &self.p,
                        cfg: &self.cfg,
                        learned: &self.learned,
                        now,
                    }
                    .measure(&mut s.st, s.kind, &s.id, rule);
                    if m.is_none() {
                        s.st.incidents.retain(|i| i.rule != rule);
                    }
                    m
                }
                None => None,
            };
            let Some(m) = measure else {
                self.entities.open.remove(&(idx, rule));
                continue;
            };
            self.apply(idx, rule, &m, Occurrence::none(now), out);
        }
    }

    /// Remember the address (and port) an AE answered at, to name it as a move destination.
    pub(crate) fn note_node(&mut self, ae: &str, ip: IpAddr, port: u16) {
        if self.node_addr.get(ae) != Some(&(ip, port)) {
            self.node_addr.insert(Name::new(ae), (ip, port));
        }
    }

    /// Export the C-MOVEs whose wait for late sub-operations is over at `now`.
    fn export_late_moves(&mut self, now: i64, out: &mut Vec<ProtocolEvent>) {
        while let Some(m) = self.late.next_due(now) {
            self.export_late_move(m, now, out);
        }
    }

    /// A C-MOVE that waited for late sub-operations, exported with what came. Its destination
    /// address is looked up again: the destination's own packets were late too, and its
    /// address may have become known meanwhile. One without a response takes the
    /// sub-operations gathered for it now, those that began before the next waiting C-MOVE
    /// with its message id was requested; when none came (before the end of the input, `now`),
    /// its destination is marked as one whose sub-operations this tap does not see.
    fn export_late_move(&mut self, mut m: LateMove, now: i64, out: &mut Vec<ProtocolEvent>) {
        if m.unanswered() {
            let until = self
                .late
                .next_request_after(&m)
                .map_or(i64::MAX, |r| r.saturating_sub(1));
            if let Some(s) = self.links.take(m.names(), m.requested, until) {
                match m.subops.as_mut() {
                    Some(t) => t.merge(s),
                    None => m.subops = Some(s),
                }
            }
            if now != i64::MAX {
                self.late.seen(m.names().2, m.subops.is_some());
            }
        }
        let dest = match m.dest {
            Some(Dest::Ae { ae, ip: None, .. }) => {
                let node = self.node_addr.get(ae.as_str()).copied();
                Some(Dest::ae(
                    ae.as_str(),
                    node.map(|(ip, _)| ip),
                    node.map(|(_, port)| port),
                ))
            }
            other => other,
        };
        self.hold_or_export(
            &m.ev,
            m.user.as_deref(),
            m.calling.as_deref(),
            m.studies,
            (dest, m.subops, m.requested),
            out,
        );
    }

    /// Hand one observation to its rule family (or to the detector's memory), at the time and
    /// on the flow of `ev`.
    fn dispatch(&mut self, ev: &ProtocolEvent, o: Observation<'_>, out: &mut Vec<ProtocolEvent>) {
        match o {
            Observation::LoginFailed {
                user,
                ae,
                client,
                called,
            } => self.login_failure((user, ae, called), client, ev, out),
            Observation::LoginSucceeded { user, ae, client } => self.login_success(user, ae, client, ev, out),
            Observation::DeviceUsed { entity, client } => self.check_devices(entity, client, ev, out),
            Observation::LocationUsed { user, client } => self.check_location(user, client, ev, out),
            Observation::NodeAnswered { ae, ip, port } => self.note_node(ae, ip, port),
            Observation::NodeServing { ae, server } => self.check_node(ae, server, ev, out),
            Observation::AssociationEnded { user, ae } => {
                self.links.association_ended(ev.flow.id, ev.ts.0);
                self.association_ended(ev, (user, ae), out);
            }
            Observation::AssociationUsed { user, ae, client } => {
                let caller = crate::entity::Caller::new(user, ae);
                self.dicom_callers.seen(client, &caller, ev.ts.0);
                self.release_parked(client, ev.ts.0, false, out);
                // Once per association: its A-ASSOCIATE-AC (else its first command, when the
                // decoder missed the accept) is the earliest event that says it was accepted.
                if self.logged_in.get(&ev.flow.id).is_none() {
                    self.logged_in.insert(ev.flow.id, ());
                    self.login_success(user, Some(ae), client, ev, out);
                }
            }
            Observation::Retrieve {
                user,
                calling,
                studies,
                dest,
                moved,
                move_id,
                requested,
            } => {
                if let Some(message_id) = move_id {
                    let answered = response_time(ev).unwrap_or(ev.ts.0);
                    self.moves_seen.note(crate::seen_moves::MoveSeen {
                        calling,
                        message_id,
                        dest_ae: moved.map(|(_, d, _)| d),
                        scp: ev.flow.server.ip,
                        from: requested.min(answered),
                        to: answered,
                    });
                }
                let expected = completed_sub_operations(ev);
                // Without a response it waits, and takes its sub-operations when the wait is
                // over: by then the other C-MOVEs that reuse its message id are known too.
                let unanswered =
                    expected.is_none() && moved.is_some_and(|(_, dest_ae, _)| self.late.should_wait(dest_ae, 0, None));
                // Its association's A-ASSOCIATE-RQ was lost: its sub-operations may name it.
                let named = match (calling, moved) {
                    (None, Some((msg, dest_ae, requested))) if !unanswered => {
                        let until = crate::moves::until_response(response_time(ev));
                        self.originator_of_unnamed(ev, (msg, dest_ae), (requested, until), out)
                    }
                    _ => None,
                };
                let calling = calling.or(named.as_deref());
                let subops = moved.filter(|_| !unanswered).and_then(|(msg, dest_ae, requested)| {
                    let calling = calling.unwrap_or_default();
                    let until = crate::moves::until_response(response_time(ev));
                    self.links.take((calling, msg, dest_ae), requested, until)
                });
                let got = subops.as_ref().map_or(0, |s| s.instances);
                match moved.filter(|&(_, dest_ae, _)| unanswered || self.late.should_wait(dest_ae, got, expected)) {
                    Some(moved) => {
                        let m = LateMove::new(ev, (user, calling), studies, dest, subops, moved, expected);
                        self.stats.moves_waited_for_sub_operations += 1;
                        if let Some(oldest) = self.late.wait(m) {
                            self.export_late_move(oldest, self.now, out);
                        }
                    }
                    None => self.hold_or_export(ev, user, calling, studies, (dest, subops, requested), out),
                }
            }
            Observation::SubOperation {
                originator,
                message_id,
                dest_ae,
                bytes,
                request_time,
                study,
                sender,
            } => match self
                .late
                .offer((originator, message_id, dest_ae), request_time, bytes, ev.flow.id)
            {
                Offered::NotWaited => {
                    let stored = crate::moves::Stored {
                        ts: request_time,
                        bytes,
                        flow: &ev.flow,
                        study: study.as_ref(),
                        sender,
                    };
                    self.links.note(originator, message_id, dest_ae, stored);
                    self.export_orphans(out);
                }
                Offered::Added => {}
                Offered::Complete(m) => self.export_late_move(*m, self.now, out),
            },
            Observation::WebUserSeen { user, client } => {
                self.web_users.seen(client, &Name::new(user), ev.ts.0);
                self.release_parked(client, ev.ts.0, true, out);
            }
            Observation::Download {
                entity,
                user_unseen,
                studies,
                dest,
                bytes,
            } => {
                let inherited = match entity {
                    EntRef::Ip(client) if user_unseen => {
                        self.web_users.at(client, ev.ts.0).map(|u| u.as_str().to_owned())
                    }
                    _ => None,
                };
                if inherited.is_some() {
                    self.stats.downloads_user_inherited += 1;
                }
                let volume = crate::moves::SubOps::bytes_only(bytes, ev.flow.id, ev.ts.0);
                let unnamed = user_unseen && inherited.is_none() && matches!(entity, EntRef::Ip(_));
                if unnamed && self.park_download(ev, &studies, dest.clone(), volume.clone(), out) {
                    return;
                }
                let entity = inherited.as_deref().map_or(entity, EntRef::User);
                self.export(entity, &studies, (Some(&dest), Some(&volume)), &ev.flow, ev.ts.0, out);
            }
            Observation::UnknownDestination(u) => self.unknown_destination(&u, ev, out),
            Observation::AdminAction { actor, detail } => self.admin_action(actor, &detail, ev, out),
            Observation::Share {
                actor,
                action,
                recipients,
            } => self.share(actor, action, &recipients, ev, out),
            Observation::TlsFingerprint { ja4 } => self.tls_ja4.insert(ev.flow.id, ja4.into()),
            Observation::HttpsDownload { bytes, sni } => self.https_download(ev, bytes, sni, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn finish_attributes_held_exports_to_the_client_address() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        // No calling AE: decoded without the A-ASSOCIATE-RQ, so they wait for the identity.
        for i in 0..16 {
            r.feed(cmove(i * SEC, f, "", "WS1", &[&study(i)]));
        }
        assert!(r.alerts("bulk_export").is_empty());
        r.det.finish(&mut r.out);
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].entity.kind.as_str(), a[0].entity.id.as_str(), a[0].count),
            ("ip", "10.0.0.9", 16)
        );
        assert_eq!(r.det.stats().pending_flows, 0);
    }

    #[test]
    fn tick_closes_an_incident_once_its_window_has_passed() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        for i in 0..9 {
            r.feed(http_ev(http(i * SEC, f, "/app", 401, Some("bob"))));
        }
        assert_eq!(r.det.stats().incidents_open, 1);
        // `login_failures_user`: 10 minutes.
        r.tick(9 * SEC + 601 * SEC);
        assert_eq!(r.det.stats().incidents_open, 0);
    }

    #[test]
    fn alerts_and_anomalies_fed_back_are_counted_and_ignored() {
        use pacstap_core::{Anomaly, EventBody};
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        r.feed(event(
            0,
            f,
            EventBody::Anomaly(Anomaly {
                proto: "tcp",
                name: "tcp.test",
                detail: None,
            }),
        ));
        assert_eq!(r.det.stats().events, 1);
        assert!(r.out.is_empty());
    }
}
