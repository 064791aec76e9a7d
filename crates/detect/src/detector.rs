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
use crate::config::{canonical_ip, AddrMatch, Config};
use crate::dest::Dest;
use crate::engine::{add_studies, AlertSink, Measurer, Occurrence};
use crate::entity::{Ctx, EntRef, EntityKind, EntityTable};
use crate::error::DetectError;
use crate::geo::Geo;
use crate::incident::EvidenceCaps;
use crate::inventory::{InvDevices, InventoryIndex};
use crate::learned::{push_capped, Device, Learned, LearnedState, STATE_VERSION};
use crate::name::Name;
use crate::rule::Rule;
use crate::scope::{to_items, Detail, Scope, StudyItem};
use crate::stats::DetectStats;
use crate::window::{ByteWindow, SlidingWindow};
use pacstap_core::{
    AssociationOutcome, DicomAssociation, DicomCommand, DicomEvent, Direction, EventBody, FlowId, FlowMeta, Hl7Event,
    HttpEvent, ProtocolEvent, StatusClass, Timestamp, TlsEvent,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Held exports per flow before the flow is attributed to its calling AE without waiting
/// (a C-MOVE client rarely sends more than a few dozen requests per association).
const MAX_HELD_PER_FLOW: usize = 256;
/// Flows remembered as attributed to their calling AE after the identity wait ran out.
const MAX_RESOLVED_FLOWS: usize = 65_536;
/// TLS fingerprints remembered per flow (for the device of a login on the same flow).
const MAX_TLS_FLOWS: usize = 65_536;
/// AE → address it answered at, for naming move destinations.
const MAX_NODE_ADDRS: usize = 65_536;
/// Sources (per account) or accounts (per source) of recent failed logins named in alerts.
const FAILURE_CONTEXT: usize = 10;
/// A login from the address last checked for that user / AE within this long skips the
/// device check (and its learned-state look-up).
const DEVICE_RECHECK_NS: i64 = 60_000_000_000;
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

/// An export waiting for its association's user identity.
#[derive(Debug, Clone)]
struct HeldExport {
    ts: i64,
    flow: FlowMeta,
    calling_ae: Option<Name>,
    studies: Vec<StudyItem>,
    /// Where the studies went (`None`: no move destination named).
    dest: Option<Dest>,
}

#[derive(Debug)]
struct PendingFlow {
    since: i64,
    items: Vec<HeldExport>,
}

#[derive(Debug)]
pub(crate) struct Pending {
    flows: HashMap<FlowId, PendingFlow, ahash::RandomState>,
    order: VecDeque<(FlowId, i64)>,
    /// Flows whose wait ran out: later exports on them go to the calling AE at once, so one
    /// association's exports are not split between the AE and (later) the user.
    resolved: BoundedMap<FlowId, ()>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            flows: HashMap::default(),
            order: VecDeque::new(),
            resolved: BoundedMap::new(MAX_RESOLVED_FLOWS),
        }
    }
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

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
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

    fn learning(&self) -> bool {
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
                        self.unknown_destination(EntRef::Ae(d), &label, dest, why, &studies, ev, out);
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
                    self.unknown_destination(ent, &label, &dest, why, &studies, ev, out);
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
                    self.unknown_destination(ent, &label, &dest, why, &studies, ev, out);
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

    /// C-MOVE / C-GET exports wait for the association's user identity, unless the command
    /// already names its user (the decoder copies it from the A-ASSOCIATE-RQ).
    fn hold_or_export(
        &mut self,
        ev: &ProtocolEvent,
        user: Option<&str>,
        calling: Option<&str>,
        studies: Vec<StudyItem>,
        dest: Option<Dest>,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let item = HeldExport {
            ts: ev.ts.0,
            flow: ev.flow,
            calling_ae: calling.map(Name::new),
            studies,
            dest,
        };
        let fid = ev.flow.id;
        if let Some(u) = user.and_then(non_empty) {
            self.export_held(item, Some(u), out);
            return;
        }
        if self.p.identity_wait <= 0 || self.p.max_pending == 0 || self.pending.resolved.get(&fid).is_some() {
            self.export_held(item, None, out);
            return;
        }
        if let Some(p) = self.pending.flows.get_mut(&fid) {
            if p.items.len() < MAX_HELD_PER_FLOW {
                p.items.push(item);
                return;
            }
            self.stats.pending_overflow += 1;
            self.pending.resolved.insert(fid, ());
            self.release(fid, None, out);
            self.export_held(item, None, out);
            return;
        }
        while self.pending.flows.len() >= self.p.max_pending {
            let Some((old, _)) = self.pending.order.pop_front() else {
                break;
            };
            if self.pending.flows.contains_key(&old) {
                self.stats.pending_overflow += 1;
                self.pending.resolved.insert(old, ());
                self.release(old, None, out);
            }
        }
        let since = self.now;
        self.pending.flows.insert(
            fid,
            PendingFlow {
                since,
                items: vec![item],
            },
        );
        self.pending.order.push_back((fid, since));
    }

    /// Attribute a flow's held exports: to the user identity when the association carried
    /// one, else the calling AE, else the client address.
    fn release(&mut self, fid: FlowId, user: Option<&str>, out: &mut Vec<ProtocolEvent>) {
        let Some(p) = self.pending.flows.remove(&fid) else {
            return;
        };
        let outer = self.deferred.is_none();
        if outer {
            self.deferred = Some(Vec::new());
        }
        for item in p.items {
            self.export_held(item, user, out);
        }
        if !outer {
            return;
        }
        let now = self.now;
        for (idx, rule) in self.deferred.take().unwrap_or_default() {
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            let kind = s.kind;
            if let Some(inc) = s.st.incidents.iter_mut().find(|i| i.rule == rule) {
                let flow = inc.last_flow;
                AlertSink {
                    stats: &mut self.stats,
                    out,
                    now,
                }
                .emit(kind, &s.id, inc, false, flow);
            }
        }
    }

    fn export_held(&mut self, item: HeldExport, user: Option<&str>, out: &mut Vec<ProtocolEvent>) {
        let ent = match (user, item.calling_ae.as_deref()) {
            (Some(u), _) => EntRef::User(u),
            (None, Some(ae)) => EntRef::Ae(ae),
            (None, None) => EntRef::Ip(item.flow.client.ip),
        };
        let studies: Vec<(u64, Option<&str>)> = item.studies.iter().map(|s| (s.key, s.uid.as_deref())).collect();
        self.export(ent, &studies, item.dest.as_ref(), &item.flow, item.ts, out);
    }

    // ---- exports ----

    /// `ent` exported `studies` to `dest` (`None`: unnamed) at `ts`.
    fn export(
        &mut self,
        ent: EntRef<'_>,
        studies: &[(u64, Option<&str>)],
        dest: Option<&Dest>,
        flow: &FlowMeta,
        ts: i64,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let bulk_on = self.cfg.rules.bulk_export.enabled;
        let base_on = self.cfg.rules.export_above_baseline.enabled;
        if !bulk_on && !base_on {
            return;
        }
        if self.inv.is_exempt(ent) {
            self.stats.exports_exempt += 1;
            return;
        }
        let now = self.now;
        let idx = self.entities.get_or_insert(ent, now);
        let (kind, cap, tau) = (ent.kind(), self.p.window_cap, self.p.tau);
        let (bulk_win, base_win) = (self.p.bulk_win, self.p.base_win);
        let Some(s) = self.entities.slot_mut(idx) else { return };
        if let Some(d) = dest {
            s.st.note_export_dest(ts, d);
        }
        let mut new_bulk = 0;
        if bulk_on {
            let w = s.st.bulk.get_or_insert_with(|| SlidingWindow::distinct(bulk_win, cap));
            new_bulk = add_studies(w, now, ts, studies, flow.id, &mut self.stats);
        }
        if base_on {
            let w =
                s.st.baseline
                    .get_or_insert_with(|| SlidingWindow::distinct(base_win, cap));
            let new_base = add_studies(w, now, ts, studies, flow.id, &mut self.stats);
            if new_base > 0 {
                if let Some((k, _)) = self.learned.entry(kind, &s.id, now) {
                    let b = k.baseline.get_or_insert_with(|| crate::learned::Baseline::new(ts));
                    for _ in 0..new_base {
                        b.add(ts, tau);
                    }
                }
            }
        }
        self.stats.studies_exported += new_bulk;
        let mut measures = [
            (Rule::BulkExport, bulk_on, None),
            (Rule::ExportAboveBaseline, base_on, None),
        ];
        for (rule, on, m) in &mut measures {
            if *on {
                *m = Measurer {
                    p: &self.p,
                    cfg: &self.cfg,
                    learned: &self.learned,
                    now,
                }
                .measure(&mut s.st, kind, &s.id, *rule);
            }
        }
        let scope = Scope {
            studies,
            dest,
            detail: Some(dest.map_or(Detail::Ae(None, None), Detail::Dest)),
            ..Scope::default()
        };
        for (rule, _, m) in measures {
            if let Some(m) = m {
                self.apply(idx, rule, &m, Occurrence::on(flow, ts, scope), out);
            }
        }
    }

    // ---- logins ----

    fn login_failure(
        &mut self,
        user: Option<&str>,
        ae: Option<&str>,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let r = &self.cfg.rules;
        let per_user = r.login_failures_user.enabled || r.login_success_after_failures.enabled;
        let per_source = r.login_failures_source.enabled || r.login_success_after_failures.enabled;
        let account = user.or(ae).unwrap_or("(unnamed)");
        let client = canonical_ip(client);
        let ents = [
            user.filter(|_| per_user)
                .map(|u| (EntRef::User(u), Rule::LoginFailuresUser)),
            ae.filter(|_| per_user)
                .map(|a| (EntRef::Ae(a), Rule::LoginFailuresUser)),
            per_source.then_some((EntRef::Ip(client), Rule::LoginFailuresSource)),
        ];
        let now = self.now;
        for (ent, rule) in ents.into_iter().flatten() {
            let idx = self.entities.get_or_insert(ent, now);
            let (span, cap) = (self.p.fail_span, self.p.window_cap);
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            // What the alert will name: sources of an account's failures, accounts of a source's.
            let known_ctx = match rule {
                Rule::LoginFailuresUser => s.st.failure_context.contains(&Ctx::Ip(client)),
                _ => {
                    s.st.failure_context
                        .iter()
                        .any(|c| matches!(c, Ctx::Name(n) if **n == *account))
                }
            };
            if !known_ctx {
                let c = match rule {
                    Rule::LoginFailuresUser => Ctx::Ip(client),
                    _ => Ctx::Name(account.into()),
                };
                push_capped(&mut s.st.failure_context, c, FAILURE_CONTEXT);
            }
            let w = s.st.failures.get_or_insert_with(|| SlidingWindow::events(span, cap));
            w.expire(now);
            w.add(now, ev.ts.0, 0, None, ev.flow.id);
            self.stats.window_items_dropped += w.take_dropped();
            let enabled = match rule {
                Rule::LoginFailuresUser => self.cfg.rules.login_failures_user.enabled,
                _ => self.cfg.rules.login_failures_source.enabled,
            };
            if !enabled {
                continue;
            }
            let m = Measurer {
                p: &self.p,
                cfg: &self.cfg,
                learned: &self.learned,
                now,
            }
            .measure(&mut s.st, s.kind, &s.id, rule);
            if let Some(m) = m {
                let scope = if rule == Rule::LoginFailuresUser {
                    Scope {
                        detail: Some(Detail::Addr(client)),
                        ..Scope::default()
                    }
                } else {
                    Scope {
                        extras: &[account],
                        ..Scope::default()
                    }
                };
                self.apply(idx, rule, &m, Occurrence::on(&ev.flow, ev.ts.0, scope), out);
            }
        }
    }

    fn login_success(
        &mut self,
        user: Option<&str>,
        ae: Option<&str>,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let rule = &self.cfg.rules.login_success_after_failures;
        if !rule.enabled {
            return;
        }
        let threshold = rule.threshold;
        let now = self.now;
        let cutoff = now.saturating_sub(self.p.lsaf_win);
        let candidates = [user.map(EntRef::User), ae.map(EntRef::Ae), Some(EntRef::Ip(client))];
        let mut found: [Option<u32>; 3] = [None; 3];
        let mut fired: Option<(EntRef<'_>, u64, i64)> = None;
        for (i, ent) in candidates.iter().enumerate() {
            let Some(ent) = ent else { continue };
            let Some(idx) = self.entities.find(*ent) else { continue };
            found[i] = Some(idx);
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            let Some(w) = s.st.failures.as_mut() else { continue };
            w.expire(now);
            let from = cutoff.max(s.st.failures_consumed);
            let n = w.count_after(from);
            if fired.is_none() && n > threshold {
                let first = w.items().iter().map(|i| i.ts).find(|t| *t > from).unwrap_or(now);
                fired = Some((*ent, n, first));
            }
        }
        let Some((ent, n, first)) = fired else { return };
        for idx in found.into_iter().flatten() {
            if let Some(s) = self.entities.slot_mut(idx) {
                s.st.failures_consumed = now;
            }
        }
        let detail = canonical_ip(client).to_string();
        let idx = self.instant(
            Rule::LoginSuccessAfterFailures,
            ent,
            Scope::text(&detail),
            ev,
            Some((n, threshold)),
            out,
        );
        if let Some(s) = idx.and_then(|i| self.entities.slot_mut(i)) {
            if let Some(inc) = s.st.incident_mut(Rule::LoginSuccessAfterFailures) {
                inc.first_seen = inc.first_seen.min(first);
            }
        }
    }

    /// `new_device`: a known user / AE logs in from a device never seen for it: its address,
    /// or the TLS client fingerprint (JA4) of the same flow. Unknown entities, the first device
    /// of each kind, and everything during the learning period are learned silently.
    fn check_devices(&mut self, ent: EntRef<'_>, client: IpAddr, ev: &ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        let (kind, id) = match ent {
            EntRef::User(u) => (EntityKind::User, u),
            EntRef::Ae(a) => (EntityKind::Ae, a),
            EntRef::Ip(_) => return,
        };
        let inv = match kind {
            EntityKind::User => self.inv.users.get(id).map_or(InvDevices::None, |v| InvDevices::User(v)),
            _ => match self.inv.dicom.get(id) {
                None => InvDevices::None,
                // `ip = "*"`: this AE may be anywhere.
                Some(a) if a.iter().any(|x| matches!(x, AddrMatch::Any)) => return,
                Some(a) => InvDevices::Ae(a),
            },
        };
        let client = canonical_ip(client);
        let addr = Device::Ip(client);
        let print = self
            .tls_ja4
            .get(&ev.flow.id)
            .map(|j| Device::Key(format!("ja4:{j}").into()));
        let now = self.now;
        // Fast path: the same address checked less than a minute ago.
        let slot = self.entities.find(ent);
        if print.is_none() {
            if let Some((ip, t)) = slot.and_then(|i| self.entities.slot(i)).and_then(|s| s.st.device_ok) {
                if ip == client && now.saturating_sub(t) < DEVICE_RECHECK_NS {
                    return;
                }
            }
        }
        if let Some(s) = slot.and_then(|i| self.entities.slot_mut(i)) {
            s.st.device_ok = Some((client, now));
        }
        let learning = self.learning();
        let max = self.p.max_devices;
        let Some((k, created)) = self.learned.entry(kind, id, now) else {
            return;
        };
        let known_entity = !created || !inv.is_empty();
        let mut new: Vec<Device> = Vec::new();
        for d in [Some(addr), print].into_iter().flatten() {
            if k.devices.contains(&d) || inv.contains(&d) {
                continue;
            }
            let fp = d.is_fingerprint();
            let seen_kind = k.devices.iter().any(|x| x.is_fingerprint() == fp) || inv.has_kind(fp);
            let fire = known_entity && seen_kind && !learning;
            if push_capped(&mut k.devices, d.clone(), max) {
                self.stats.devices_dropped += 1;
            }
            if fire {
                new.push(d);
            }
        }
        if new.is_empty() || !self.cfg.rules.new_device.enabled {
            return;
        }
        let known: Vec<String> = inv
            .names()
            .into_iter()
            .chain(k.devices.iter().filter(|d| !new.contains(d)).map(|d| d.to_string()))
            .take(5)
            .collect();
        let extra = (!known.is_empty()).then(|| format!("known devices: {}", known.join(", ")));
        for d in new {
            let name = d.to_string();
            let extras: Vec<&str> = extra.as_deref().into_iter().collect();
            let scope = Scope {
                extras: &extras,
                ..Scope::text(&name)
            };
            let idx = self.instant(Rule::NewDevice, ent, scope, ev, None, out);
            if let Some(s) = idx.and_then(|i| self.entities.slot_mut(i)) {
                s.st.identity_alert = Some((now, Rule::NewDevice, name));
            }
        }
    }

    /// `new_location`: a user's login from a country never seen for it (GeoIP; skipped without
    /// a database and for internal addresses).
    fn check_location(&mut self, user: &str, client: IpAddr, ev: &ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        if !self.geo.is_some() || self.inv.is_internal(client) {
            return;
        }
        self.stats.geoip_lookups += 1;
        let Some(country) = self.geo.country(client) else {
            return;
        };
        self.stats.geoip_hits += 1;
        let learning = self.learning();
        let max = self.p.max_devices;
        let now = self.now;
        let Some((k, _)) = self.learned.entry(EntityKind::User, user, now) else {
            return;
        };
        if k.countries.iter().any(|c| **c == *country) {
            return;
        }
        let before: Vec<String> = k.countries.iter().map(|c| c.to_string()).collect();
        if push_capped(&mut k.countries, country.as_str().into(), max) {
            self.stats.devices_dropped += 1;
        }
        if before.is_empty() || learning || !self.cfg.rules.new_location.enabled {
            return;
        }
        let detail = format!("{country} (from {})", canonical_ip(client));
        let extra = format!("seen before: {}", before.join(", "));
        let scope = Scope {
            extras: &[&extra],
            ..Scope::text(&detail)
        };
        let idx = self.instant(Rule::NewLocation, EntRef::User(user), scope, ev, None, out);
        if let Some(s) = idx.and_then(|i| self.entities.slot_mut(i)) {
            s.st.identity_alert = Some((now, Rule::NewLocation, detail));
        }
    }

    /// DICOM node configuration visible on the wire: an AE answering associations at an
    /// address not in the inventory and never seen for it → `admin_change`.
    fn check_node(&mut self, called: &str, server: IpAddr, ev: &ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        let addr = canonical_ip(server);
        let inv: &[AddrMatch] = match self.inv.dicom.get(called) {
            Some(a) if a.iter().any(|x| matches!(x, AddrMatch::Any)) => return,
            Some(a) => a,
            None => &[],
        };
        if inv.iter().any(|a| a.matches(addr)) {
            return;
        }
        let learning = self.learning();
        let max = self.p.max_devices;
        let now = self.now;
        let Some((k, _)) = self.learned.entry(EntityKind::Ae, called, now) else {
            return;
        };
        if k.nodes.contains(&addr) {
            return;
        }
        let before: Vec<String> = InvDevices::Ae(inv)
            .names()
            .into_iter()
            .chain(k.nodes.iter().map(|n| n.to_string()))
            .collect();
        if push_capped(&mut k.nodes, addr, max) {
            self.stats.devices_dropped += 1;
        }
        if before.is_empty() || learning || !self.cfg.rules.admin_change.enabled {
            return;
        }
        let detail = format!("AE {called} now answers at {addr} (was {})", before.join(", "));
        self.instant(
            Rule::AdminChange,
            EntRef::Ae(called),
            Scope::text(&detail),
            ev,
            None,
            out,
        );
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
                        self.unknown_destination(EntRef::Ip(client), &label, &dest, why, &items, ev, out);
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
                        self.unknown_destination(EntRef::Ip(server), &label, &dest, why, &items, ev, out);
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

    /// The HTTPS half of `bulk_export`: inside TLS neither the studies nor the user can be
    /// seen, so what counts is the volume an image server (`rules.bulk_export.https_servers`,
    /// by default the inventory's `pacs` / `archive` nodes, else any internal TLS server) sent
    /// each client address within the rule's window, against `https_bytes`. The client is
    /// both the entity and the destination; the server and its SNI name where it came from.
    ///
    /// The decoder emits one `tls` event per connection when it ends, with its totals, so a
    /// download counts when its connection closes (or times out in the flow table): a
    /// keep-alive connection open longer than the window is counted whole at its end.
    /// Connections between two listed image servers (replication) are not downloads.
    fn https_download(&mut self, ev: &ProtocolEvent, t: &TlsEvent, out: &mut Vec<ProtocolEvent>) {
        if !self.cfg.rules.bulk_export.enabled || self.p.https_bytes == 0 || t.bytes_toclient == 0 {
            return;
        }
        let client = canonical_ip(ev.flow.client.ip);
        let server = canonical_ip(ev.flow.server.ip);
        if !self.inv.is_image_server(server) || (!self.inv.https_any_internal && self.inv.is_image_server(client)) {
            return;
        }
        let ent = EntRef::Ip(client);
        if self.inv.is_exempt(ent) {
            self.stats.exports_exempt += 1;
            return;
        }
        let served_by = SocketAddr::new(server, ev.flow.server.port);
        let label = match t.sni.as_deref().and_then(non_empty) {
            // RFC 6066 §3: a HostName is at most 2^16 - 1 bytes on the wire; a DNS name has
            // at most 253 characters, so anything longer is cut there.
            Some(sni) => format!("{} ({served_by})", truncate(sni, 253)),
            None => served_by.to_string(),
        };
        let now = self.now;
        let idx = self.entities.get_or_insert(ent, now);
        let (span, cap) = (self.p.bulk_win, self.p.window_cap);
        let Some(s) = self.entities.slot_mut(idx) else { return };
        let w = s.st.https.get_or_insert_with(|| Box::new(ByteWindow::new(span, cap)));
        w.expire(now);
        if !w.add(now, ev.ts.0, t.bytes_toclient, ev.flow.id, Some(&label)) {
            return; // older than the window
        }
        self.stats.window_items_dropped += w.take_merged();
        self.stats.https_bytes = self.stats.https_bytes.saturating_add(t.bytes_toclient);
        let dest = Dest::Client(client);
        s.st.note_export_dest(ev.ts.0, &dest);
        let m = Measurer {
            p: &self.p,
            cfg: &self.cfg,
            learned: &self.learned,
            now,
        }
        .measure(&mut s.st, s.kind, &s.id, Rule::BulkExport);
        if let Some(m) = m {
            let scope = Scope {
                dest: Some(&dest),
                // A study-counting incident already open for this address keeps naming its
                // destinations; a volume incident names the servers.
                detail: m.bytes.then_some(Detail::Text(&label)),
                ..Scope::default()
            };
            self.apply(idx, Rule::BulkExport, &m, Occurrence::on(&ev.flow, ev.ts.0, scope), out);
        }
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
                self.unknown_destination(EntRef::Ip(receiver), &label, &dest, why, &[], ev, out);
            }
        }
    }

    // ---- rules with their own counting ----

    fn share(
        &mut self,
        actor: EntRef<'_>,
        action: &str,
        recipients: &[String],
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        if !self.cfg.rules.sharing_spike.enabled {
            return;
        }
        let now = self.now;
        let idx = self.entities.get_or_insert(actor, now);
        let (cap, span) = (self.p.window_cap, self.p.share_win);
        let keys: Vec<u64> = recipients.iter().map(|r| self.hasher.hash_one(r.as_str())).collect();
        let Some(s) = self.entities.slot_mut(idx) else { return };
        let w =
            s.st.shares
                .get_or_insert_with(|| Box::new(SlidingWindow::events(span, cap)));
        w.expire(now);
        w.add(now, ev.ts.0, 0, None, ev.flow.id);
        self.stats.window_items_dropped += w.take_dropped();
        if !recipients.is_empty() {
            let rw =
                s.st.recipients
                    .get_or_insert_with(|| Box::new(SlidingWindow::distinct(span, cap)));
            rw.expire(now);
            for (r, k) in recipients.iter().zip(&keys) {
                rw.add(now, ev.ts.0, *k, Some(r), ev.flow.id);
            }
            self.stats.window_items_dropped += rw.take_dropped();
        }
        let m = Measurer {
            p: &self.p,
            cfg: &self.cfg,
            learned: &self.learned,
            now,
        }
        .measure(&mut s.st, s.kind, &s.id, Rule::SharingSpike);
        if let Some(m) = m {
            // The outside recipients are where the shared studies go.
            let extras: Vec<&str> = recipients.iter().map(String::as_str).collect();
            let scope = Scope {
                dests: &extras,
                extras: &extras,
                ..Scope::text(action)
            };
            self.apply(
                idx,
                Rule::SharingSpike,
                &m,
                Occurrence::on(&ev.flow, ev.ts.0, scope),
                out,
            );
        }
    }

    /// `unknown_destination`: once per destination (remembered across restarts); while its
    /// incident is open, further transfers are updates with their studies.
    #[allow(clippy::too_many_arguments)]
    fn unknown_destination(
        &mut self,
        ent: EntRef<'_>,
        label: &str,
        dest: &Dest,
        why: &str,
        studies: &[StudyItem],
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        if !self.cfg.rules.unknown_destination.enabled {
            return;
        }
        let items: Vec<(u64, Option<&str>)> = studies.iter().map(|s| (s.key, s.uid.as_deref())).collect();
        let now = self.now;
        let open = self
            .entities
            .find(ent)
            .and_then(|i| self.entities.slot(i))
            .and_then(|s| s.st.incident(Rule::UnknownDestination))
            .is_some_and(|i| now.saturating_sub(i.last_seen) <= i.window);
        if !open {
            let id = match ent {
                EntRef::User(s) | EntRef::Ae(s) => s.to_string(),
                EntRef::Ip(ip) => canonical_ip(ip).to_string(),
            };
            if !self.learned.add_destination(ent.kind(), &id, self.now) {
                return; // alerted on before
            }
        }
        let scope = Scope {
            studies: &items,
            dest: Some(dest),
            detail: Some(Detail::Text(label)),
            extras: &[why],
            ..Scope::default()
        };
        self.instant(Rule::UnknownDestination, ent, scope, ev, None, out);
    }
}
