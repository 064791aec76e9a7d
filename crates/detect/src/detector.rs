//! The detector: protocol events in (packet-time order), alerts out.
//!
//! Per event it derives observations — a failed or successful login, an export of studies to a
//! destination, an admin action, a share — and feeds them to per-entity windows and learned
//! state (ARCHITECTURE "Detection semantics"):
//!
//! - window rules fire once when the count rises above the threshold, report updates as the
//!   incident grows (at most one per `detect.update_interval` unless it grew by a threshold's
//!   worth), and re-arm once the count is back at or below the threshold;
//! - instant rules fire on the first occurrence; repeats within the rule's window are updates
//!   of the same alert;
//! - who exported: the association's user identity when negotiated, else the calling AE
//!   (C-MOVE, C-GET), or the HTTP user, else the client address (WADO-RS / WADO-URI). The
//!   user identity arrives with the association event, after the commands, so C-MOVE / C-GET
//!   exports wait for it (at most `detect.identity_wait`, bounded per flow and in flows).
//!
//! Nothing here trusts event contents: names are looked up, never indexed, and every table
//! is bounded.

use crate::bounded_map::BoundedMap;
use crate::config::{canonical_ip, Config};
use crate::dest::Dest;
use crate::engine::{AlertSink, Measurer, Occurrence};
use crate::entity::{EntRef, EntityTable};
use crate::error::DetectError;
use crate::geo::Geo;
use crate::held::Pending;
use crate::incident::EvidenceCaps;
use crate::inventory::InventoryIndex;
use crate::learned::{Learned, LearnedState, STATE_VERSION};
use crate::name::Name;
use crate::observe::non_empty;
use crate::rule::Rule;
use crate::rules::UnknownDest;
use crate::scope::{to_items, Detail, Scope, StudyItem};
use crate::stats::DetectStats;
use pacstap_core::{
    AssociationOutcome, DicomAssociation, DicomCommand, DicomEvent, Direction, EventBody, FlowId, Hl7Event, HttpEvent,
    ProtocolEvent, StatusClass, Timestamp, TlsEvent,
};
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
    pub(crate) geo: Geo,
    pub(crate) stats: DetectStats,
    pub(crate) now: i64,
    pub(crate) last_housekeeping: i64,
    /// AE → the address (and port) it last answered at as a server.
    pub(crate) node_addr: BoundedMap<crate::name::Name, (IpAddr, u16)>,
    pub(crate) tls_ja4: BoundedMap<FlowId, Box<str>>,
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

pub(crate) fn nanos(d: crate::config::Dur) -> i64 {
    d.as_nanos_i64()
}

/// Whether a C-MOVE / C-GET / C-STORE moved data: success or warning, pending (final response
/// not seen), or no response at all (the request was sent; err towards counting); a failure or
/// cancel only if some sub-operations completed.
fn transferred(c: &DicomCommand) -> bool {
    match c.status_class {
        None | Some(StatusClass::Success | StatusClass::Warning | StatusClass::Pending) => true,
        Some(StatusClass::Failure | StatusClass::Cancel) => c
            .sub_operations
            .is_some_and(|s| u32::from(s.completed) + u32::from(s.warning) > 0),
    }
}

/// Recipients of a share action: those the HTTP decoder read from the request body
/// (`HttpEvent.share_recipients`), else those named in the query string (`email`,
/// `recipient`, `to`, `mail`). At most 16, each at most 256 bytes, lower-cased.
fn share_recipients(h: &HttpEvent) -> Vec<String> {
    if !h.share_recipients.is_empty() {
        return h
            .share_recipients
            .iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty() && r.len() <= 256)
            .take(16)
            .collect();
    }
    let Some((_, query)) = h.url.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(k.to_ascii_lowercase().as_str(), "email" | "recipient" | "to" | "mail"))
        .map(|(_, v)| v.replace("%40", "@").to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .take(16)
        .collect()
}

/// Whether an e-mail recipient is in one of our domains (or a subdomain of one).
fn is_internal_recipient(r: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = r.rsplit_once('@') else {
        return false;
    };
    domains.iter().any(|d| {
        let d = d.trim().trim_start_matches('@');
        domain.eq_ignore_ascii_case(d)
            || (domain.len() > d.len()
                && domain
                    .get(domain.len() - d.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(d))
                && domain.as_bytes().get(domain.len() - d.len() - 1) == Some(&b'.'))
    })
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
            geo,
            stats,
            now: i64::MIN,
            last_housekeeping: i64::MIN,
            node_addr: BoundedMap::new(MAX_NODE_ADDRS),
            tls_ja4: BoundedMap::new(MAX_TLS_FLOWS),
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
        self.stats.events += 1;
        self.advance(ev.ts.0);
        // Time-based closes first, so a new incident is not taken for the old one.
        self.housekeeping(out);
        match &ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => self.on_association(ev, a, out),
            EventBody::Dicom(DicomEvent::Command(c)) => self.on_command(ev, c, out),
            EventBody::Http(h) => self.on_http(ev, h, out),
            EventBody::Tls(t) => self.on_tls(ev, t, out),
            EventBody::Hl7(m) => self.on_hl7(ev, m, out),
            EventBody::Alert(_) | EventBody::Anomaly(_) => {}
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

    /// End of input (replay end, shutdown): attribute every held export now (to the calling AE:
    /// their associations never ended) and report incidents that grew since their last alert.
    pub fn finish(&mut self, out: &mut Vec<ProtocolEvent>) {
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
        // Held exports whose association has not ended in time: attribute to the calling AE.
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

    // ---- DICOM ----

    fn on_association(&mut self, ev: &ProtocolEvent, a: &DicomAssociation, out: &mut Vec<ProtocolEvent>) {
        let client = ev.flow.client.ip;
        let calling = non_empty(&a.calling_ae);
        let user = a
            .user_identity
            .as_ref()
            .and_then(|u| u.username.as_deref())
            .and_then(non_empty);
        if a.outcome == AssociationOutcome::Rejected || (!a.accepted && a.reject.is_some()) {
            // PS3.8 §9.3.4 A-ASSOCIATE-RJ: a failed login for the user identity (if any), the
            // calling AE and the source address.
            self.login_failure(user, calling, client, ev, out);
        } else if a.accepted {
            self.login_success(user, calling, client, ev, out);
            if let Some(ae) = calling {
                self.check_devices(EntRef::Ae(ae), client, ev, out);
            }
            if let Some(u) = user {
                self.check_devices(EntRef::User(u), client, ev, out);
                self.check_location(u, client, ev, out);
            }
            if let Some(called) = non_empty(&a.called_ae) {
                self.note_node(called, ev.flow.server.ip, ev.flow.server.port);
                self.check_node(called, ev.flow.server.ip, ev, out);
            }
        }
        self.release(ev.flow.id, user, out);
    }

    /// Remember the address (and port) an AE answered at, to name it as a move destination.
    fn note_node(&mut self, ae: &str, ip: IpAddr, port: u16) {
        if self.node_addr.get(ae) != Some(&(ip, port)) {
            self.node_addr.insert(Name::new(ae), (ip, port));
        }
    }

    fn on_command(&mut self, ev: &ProtocolEvent, c: &DicomCommand, out: &mut Vec<ProtocolEvent>) {
        if !transferred(c) {
            return;
        }
        let client = ev.flow.client.ip;
        let server = ev.flow.server.ip;
        let calling = non_empty(&c.calling_ae);
        match c.command.as_str() {
            "C-MOVE" => {
                // PS3.7 §9.1.4: the sub-operations' C-STOREs go to the Move Destination AE,
                // at the address the SCP has configured for it: the one that AE was last seen
                // answering at (its C-STOREs usually end before the C-MOVE's final response).
                let dest_ae = c.move_destination.as_deref().and_then(non_empty);
                let node = dest_ae.and_then(|d| self.node_addr.get(d).copied());
                let dest_ip = node.map(|(ip, _)| ip);
                let dest = dest_ae.map(|d| Dest::ae(d, dest_ip, node.map(|(_, port)| port)));
                let studies = self.studies_of(c, ev);
                if let (Some(d), Some(dest)) = (dest_ae, &dest) {
                    if let Some(why) = self.inv.dicom_destination_unknown(Some(d), dest_ip) {
                        let label = Detail::Ae(dest_ae, dest_ip).render();
                        self.unknown_destination(
                            &UnknownDest {
                                entity: EntRef::Ae(d),
                                label,
                                dest: dest.clone(),
                                why,
                                studies: studies.clone(),
                            },
                            ev,
                            out,
                        );
                    }
                }
                self.hold_or_export(ev, c.user.as_deref(), calling, studies, dest, out);
            }
            "C-GET" => {
                // The requester receives the images: it is the destination.
                let studies = self.studies_of(c, ev);
                let dest = match calling {
                    Some(ae) => Dest::ae(ae, Some(client), None),
                    None => Dest::Client(client),
                };
                if let Some(why) = self.inv.dicom_destination_unknown(calling, Some(client)) {
                    let ent = calling.map_or(EntRef::Ip(client), EntRef::Ae);
                    let label = match calling {
                        Some(_) => Detail::Ae(calling, Some(client)).render(),
                        None => Detail::Addr(client).render(),
                    };
                    self.unknown_destination(
                        &UnknownDest {
                            entity: ent,
                            label,
                            dest: dest.clone(),
                            why,
                            studies: studies.clone(),
                        },
                        ev,
                        out,
                    );
                }
                self.hold_or_export(ev, c.user.as_deref(), calling, studies, Some(dest), out);
            }
            "C-STORE" => {
                let (dest_ae, dest_ip, dest_port) = match c.direction {
                    Direction::ToServer => (non_empty(&c.called_ae), server, Some(ev.flow.server.port)),
                    // C-GET sub-operations flow back to the requester.
                    Direction::ToClient => (calling, client, None),
                };
                if c.direction == Direction::ToServer {
                    if let Some(ae) = dest_ae {
                        self.note_node(ae, dest_ip, ev.flow.server.port);
                    }
                }
                if let Some(why) = self.inv.dicom_destination_unknown(dest_ae, Some(dest_ip)) {
                    let label = match dest_ae {
                        Some(ae) => format!("AE {ae} ({dest_ip})"),
                        None => dest_ip.to_string(),
                    };
                    let dest = match dest_ae {
                        Some(ae) => Dest::ae(ae, Some(dest_ip), dest_port),
                        None => Dest::Server(dest_ip, dest_port),
                    };
                    let studies = self.studies_of(c, ev);
                    let ent = dest_ae.map_or(EntRef::Ip(dest_ip), EntRef::Ae);
                    self.unknown_destination(
                        &UnknownDest {
                            entity: ent,
                            label,
                            dest: dest.clone(),
                            why,
                            studies: studies.clone(),
                        },
                        ev,
                        out,
                    );
                }
            }
            _ => {}
        }
    }

    fn study_key(&self, uid: &str) -> u64 {
        self.hasher.hash_one(uid)
    }

    fn studies_of(&self, c: &DicomCommand, ev: &ProtocolEvent) -> Vec<StudyItem> {
        let mut v: Vec<StudyItem> = c
            .study_instance_uids
            .iter()
            .filter_map(|u| non_empty(u))
            .map(|u| StudyItem {
                key: self.study_key(u),
                uid: Some(u.to_string()),
            })
            .collect();
        if v.is_empty() {
            // Patient-level (or identifier-less) retrieve: one unnamed thing per request.
            v.push(StudyItem {
                key: self.hasher.hash_one((ev.flow.id.0, c.message_id, c.request_time.0)),
                uid: None,
            });
        }
        v
    }

    // ---- HTTP, TLS, HL7 ----

    fn on_http(&mut self, ev: &ProtocolEvent, h: &HttpEvent, out: &mut Vec<ProtocolEvent>) {
        let client = ev.flow.client.ip;
        let user = h.user.as_deref().and_then(non_empty);
        let ok = h.status.is_some_and(|s| (200..300).contains(&s));
        let not_refused = !matches!(h.status, Some(s) if s >= 400);
        // CONTRACT §2: an HTTP 401/403 on an authenticated request is a failed login.
        if matches!(h.status, Some(401 | 403)) && (user.is_some() || h.auth.is_some()) {
            self.login_failure(user, None, client, ev, out);
        } else if ok {
            if let Some(u) = user {
                self.login_success(Some(u), None, client, ev, out);
                self.check_devices(EntRef::User(u), client, ev, out);
                self.check_location(u, client, ev, out);
            }
        }
        let actor = user.map_or(EntRef::Ip(client), EntRef::User);
        if let Some(action) = h.admin_action.as_deref().and_then(non_empty) {
            if not_refused {
                let detail = format!("{action} ({} {})", h.method, h.url);
                self.instant(Rule::AdminChange, actor, Scope::text(&detail), ev, None, out);
            }
        }
        if let Some(share) = h.share_action.as_deref().and_then(non_empty) {
            if not_refused {
                let mut recipients = share_recipients(h);
                let internal = &self.cfg.rules.sharing_spike.internal_domains;
                recipients.retain(|r| !is_internal_recipient(r, internal));
                self.share(actor, share, &recipients, ev, out);
            }
        }
        if let Some(dw) = &h.dicomweb {
            match dw.service.as_str() {
                "WADO-RS" | "WADO-URI" if ok => {
                    let studies: [(u64, Option<&str>); 1] = match dw.study_instance_uid.as_deref().and_then(non_empty) {
                        Some(uid) => [(self.study_key(uid), Some(uid))],
                        None => [(self.study_key(&h.url), None)],
                    };
                    // The client downloads: its address is the destination.
                    let dest = Dest::Client(client);
                    if let Some(why) = self.inv.dicom_destination_unknown(None, Some(client)) {
                        let label = dest.summary();
                        let items = to_items(&studies);
                        self.unknown_destination(
                            &UnknownDest {
                                entity: EntRef::Ip(client),
                                label,
                                dest: dest.clone(),
                                why,
                                studies: items,
                            },
                            ev,
                            out,
                        );
                    }
                    self.export(actor, &studies, Some(&dest), &ev.flow, ev.ts.0, out);
                }
                "STOW-RS" if ok => {
                    let server = ev.flow.server.ip;
                    if let Some(why) = self.inv.dicom_destination_unknown(None, Some(server)) {
                        let studies: Vec<(u64, Option<&str>)> = dw
                            .study_instance_uid
                            .as_deref()
                            .and_then(non_empty)
                            .map(|u| vec![(self.study_key(u), Some(u))])
                            .unwrap_or_default();
                        let label = format!("STOW-RS server {}", ev.flow.server);
                        let dest = Dest::Server(server, Some(ev.flow.server.port));
                        let items = to_items(&studies);
                        self.unknown_destination(
                            &UnknownDest {
                                entity: EntRef::Ip(server),
                                label,
                                dest,
                                why,
                                studies: items,
                            },
                            ev,
                            out,
                        );
                    }
                }
                _ => {}
            }
        }
    }

    fn on_tls(&mut self, ev: &ProtocolEvent, t: &TlsEvent, out: &mut Vec<ProtocolEvent>) {
        if let Some(ja4) = t.ja4.as_deref().and_then(non_empty) {
            if ja4.len() <= 128 {
                self.tls_ja4.insert(ev.flow.id, ja4.into());
            }
        }
        self.https_download(ev, t, out);
    }

    fn on_hl7(&mut self, ev: &ProtocolEvent, m: &Hl7Event, out: &mut Vec<ProtocolEvent>) {
        let dir = m.direction.unwrap_or(Direction::ToServer);
        let (sender, receiver, port) = match dir {
            Direction::ToServer => (ev.flow.client.ip, ev.flow.server.ip, Some(ev.flow.server.port)),
            Direction::ToClient => (ev.flow.server.ip, ev.flow.client.ip, None),
        };
        if let Some(adm) = &m.admin_event {
            // HL7 v2.5 ch. 8: a master file notification changes staff / practitioner /
            // location records.
            let mut detail = format!("HL7 {} {}", m.message_type, adm.kind);
            if let Some(app) = &m.sending_application {
                detail.push_str(&format!(" from {app}"));
            }
            let recs: Vec<String> = adm
                .records
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "{} {}",
                        r.action.as_deref().unwrap_or(&r.event_code),
                        r.primary_key.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            if !recs.is_empty() {
                detail.push_str(&format!(": {}", recs.join(", ")));
                if adm.records_total as usize > recs.len() {
                    detail.push_str(&format!(" (+{})", adm.records_total as usize - recs.len()));
                }
            }
            self.instant(
                Rule::AdminChange,
                EntRef::Ip(sender),
                Scope::text(&detail),
                ev,
                None,
                out,
            );
        }
        let is_ack = m.ack_code.is_some() || m.message_type.starts_with("ACK");
        if !is_ack {
            if let Some(why) = self.inv.hl7_destination_unknown(receiver, port) {
                let label = match port {
                    Some(p) => format!("HL7 receiver {}:{p}", canonical_ip(receiver)),
                    None => format!("HL7 receiver {}", canonical_ip(receiver)),
                };
                let dest = Dest::Server(receiver, port);
                self.unknown_destination(
                    &UnknownDest {
                        entity: EntRef::Ip(receiver),
                        label,
                        dest,
                        why,
                        studies: Vec::new(),
                    },
                    ev,
                    out,
                );
            }
        }
    }
}
