//! Held exports: a C-MOVE / C-GET whose command does not say whether its association
//! negotiated a user identity waits for the association event (at most `detect.identity_wait`,
//! bounded per flow and in flows) and is then attributed to the user, else the calling AE,
//! else the client address. A batch released at once is reported as one alert with the full
//! count.
//!
//! Only such commands wait. The decoder copies the User Identity (PS3.7 §D.3.3.7) from the
//! A-ASSOCIATE-RQ into every command, and the calling AE title comes from that same PDU: a
//! command that names its calling AE was decoded with the RQ in view, so its `user` is final
//! (absent: none was negotiated) and it counts at once, on the packet that completes it
//! (issue 12 item 1: `bulk_export` fires on the request that adds the 16th study, not at the
//! release). docs/design.md "When an alert waits" says so for operators.
//!
//! An association whose A-ASSOCIATE-RQ the capture lost ends naming neither user nor calling
//! AE. Its exports are then counted for the one identity its client address associated as
//! just before (`address_identity.rs`), else they stay held ("parked") until the address's
//! next association names one, at most the identity wait; only then do they fall to the
//! address. Before either, a C-MOVE on such an association asks its sub-operations: the
//! C-STOREs its SCP sent for it name the requester's AE (Move Originator), and that names the
//! association ([`Detector::originator_of_unnamed`]).

use crate::bounded_map::BoundedMap;
use crate::dest::Dest;
use crate::detector::Detector;
use crate::engine::AlertSink;
use crate::entity::{Caller, EntRef};
use crate::moves::SubOps;
use crate::name::Name;
use crate::observe::non_empty;
use crate::scope::StudyItem;
use pacstap_core::{FlowId, FlowMeta, ProtocolEvent};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Held exports per flow before the flow is attributed to its calling AE without waiting
/// (a C-MOVE client rarely sends more than a few dozen requests per association).
const MAX_HELD_PER_FLOW: usize = 256;
/// Flows remembered as attributed to their calling AE after the identity wait ran out.
const MAX_RESOLVED_FLOWS: usize = 65_536;
/// C-MOVEs per association without a calling AE that may ask the sub-operations waiting who
/// sent them (each ask scans them): enough for the first few to find it, bounded against a
/// sender of endless C-MOVEs on an association picked up mid-stream.
const MAX_ASKS_PER_FLOW: u8 = 8;

/// What the sub-operations said about an association whose A-ASSOCIATE-RQ was lost.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnnamedFlow {
    /// The Move Originator AE they named.
    caller: Option<Name>,
    asks: u8,
}

/// An export waiting for its association's user identity.
#[derive(Debug, Clone)]
pub(crate) struct HeldExport {
    ts: i64,
    flow: FlowMeta,
    calling_ae: Option<Name>,
    studies: Vec<StudyItem>,
    /// Where the studies went (`None`: no move destination named).
    dest: Option<Dest>,
    /// What its C-MOVE sub-operations moved, and on which associations.
    subops: Option<SubOps>,
    /// An HTTP retrieval whose request was lost (its user is the web user its address shows),
    /// not a DICOM command (whose is the AE or user its address associated as).
    web: bool,
}

#[derive(Debug)]
pub(crate) struct PendingFlow {
    pub(crate) since: i64,
    items: Vec<HeldExport>,
    /// The association ended without naming who it was: waiting for its address's next one.
    parked: bool,
    /// Parked HTTP retrievals (in `Pending::parked_web`), not DICOM exports.
    web: bool,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) flows: HashMap<FlowId, PendingFlow, ahash::RandomState>,
    pub(crate) order: VecDeque<(FlowId, i64)>,
    /// Flows whose wait ran out: later exports on them go to the calling AE at once, so one
    /// association's exports are not split between the AE and (later) the user.
    pub(crate) resolved: BoundedMap<FlowId, ()>,
    /// Parked flows by client address (each also in `flows`, so bounded by it).
    parked: HashMap<IpAddr, Vec<FlowId>, ahash::RandomState>,
    /// Parked HTTP connections by client address, the same way.
    parked_web: HashMap<IpAddr, Vec<FlowId>, ahash::RandomState>,
}

impl Pending {
    /// The parked flows by client address: HTTP connections (`web`) or associations.
    fn parked(&mut self, web: bool) -> &mut HashMap<IpAddr, Vec<FlowId>, ahash::RandomState> {
        if web {
            &mut self.parked_web
        } else {
            &mut self.parked
        }
    }
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            flows: HashMap::default(),
            order: VecDeque::new(),
            resolved: BoundedMap::new(MAX_RESOLVED_FLOWS),
            parked: HashMap::default(),
            parked_web: HashMap::default(),
        }
    }
}

impl Detector {
    /// C-MOVE / C-GET exports wait for the association's user identity, unless the command
    /// already names its user or its calling AE (the decoder copies both from the
    /// A-ASSOCIATE-RQ, so with the AE known the user is known too).
    pub(crate) fn hold_or_export(
        &mut self,
        ev: &ProtocolEvent,
        user: Option<&str>,
        calling: Option<&str>,
        studies: Vec<StudyItem>,
        (dest, subops, requested): (Option<Dest>, Option<SubOps>, i64),
        out: &mut Vec<ProtocolEvent>,
    ) {
        let item = HeldExport {
            // The request's packet time when sane (never after the event that reports it).
            ts: if requested > 0 { requested.min(ev.ts.0) } else { ev.ts.0 },
            flow: ev.flow,
            calling_ae: calling.map(Name::new),
            studies,
            dest,
            subops,
            web: false,
        };
        let fid = ev.flow.id;
        if let Some(u) = user.and_then(non_empty) {
            self.export_held(item, Some(EntRef::User(u)), out);
            return;
        }
        let rq_seen = calling.and_then(non_empty).is_some();
        if rq_seen || self.p.identity_wait <= 0 || self.p.max_pending == 0 || self.pending.resolved.get(&fid).is_some()
        {
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
        self.make_room(out);
        // From the command's own time: a C-MOVE that first waited for late sub-operations
        // (`late_moves.rs`) waits for its identity no longer for it.
        self.pend(fid, ev.ts.0.min(self.now), item);
    }

    /// Hold `item`, the first of flow `fid`, from `since`: an HTTP retrieval (`web`) parked by
    /// its client address, a DICOM export waiting for its association's end.
    fn pend(&mut self, fid: FlowId, since: i64, item: HeldExport) {
        let (web, client) = (item.web, item.flow.client.ip);
        self.pending.flows.insert(
            fid,
            PendingFlow {
                since,
                items: vec![item],
                parked: web,
                web,
            },
        );
        self.pending.order.push_back((fid, since));
        if web {
            self.pending.parked(true).entry(client).or_default().push(fid);
        }
    }

    /// Room for one more pending flow: the oldest go (counted for who they can be) while
    /// `detect.max_pending_flows` are held.
    fn make_room(&mut self, out: &mut Vec<ProtocolEvent>) {
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
    }

    /// An HTTP retrieval whose request was lost (no user known) from an address that has shown
    /// no web user around it yet (one that showed two, shared, counts for itself at once): the
    /// first requests of a bulk download lost to a mirror's drops would otherwise count for the
    /// bare address, splitting the user's count. Parked until the address's next authenticated
    /// request names its user (then it is that user's), at most `detect.identity_wait` (then
    /// the user the address showed around it, else the address). `false`: not parked (waiting
    /// is off, or the connection holds its share), count it now.
    pub(crate) fn park_download(
        &mut self,
        ev: &ProtocolEvent,
        studies: &[(u64, Option<&str>)],
        dest: Dest,
        volume: SubOps,
        out: &mut Vec<ProtocolEvent>,
    ) -> bool {
        if self.p.identity_wait <= 0 || self.p.max_pending == 0 || self.web_users.shared_at(ev.flow.client.ip, ev.ts.0)
        {
            return false;
        }
        let item = HeldExport {
            ts: ev.ts.0,
            flow: ev.flow,
            calling_ae: None,
            studies: crate::scope::to_items(studies),
            dest: Some(dest),
            subops: Some(volume),
            web: true,
        };
        let fid = ev.flow.id;
        if let Some(p) = self.pending.flows.get_mut(&fid) {
            if p.web && p.items.len() < MAX_HELD_PER_FLOW {
                p.items.push(item);
                return true;
            }
            return false;
        }
        self.make_room(out);
        self.pend(fid, ev.ts.0.min(self.now), item);
        self.stats.downloads_parked += 1;
        true
    }

    /// The association of `ev` ended, naming its user identity and calling AE when its
    /// A-ASSOCIATE-RQ was captured: its held exports are counted for the user, else the AE.
    /// Naming neither, they are counted for the one identity its client address associated
    /// as lately, else parked until the address's next association names one.
    pub(crate) fn association_ended(
        &mut self,
        ev: &ProtocolEvent,
        (user, ae): (Option<&str>, Option<&str>),
        out: &mut Vec<ProtocolEvent>,
    ) {
        let fid = ev.flow.id;
        let Some(held) = self.pending.flows.get(&fid).map(|p| p.items.len() as u64) else {
            return;
        };
        match (user, ae) {
            (Some(u), _) => return self.release(fid, Some(EntRef::User(u)), out),
            (None, Some(ae)) => return self.release(fid, Some(EntRef::Ae(ae)), out),
            (None, None) => {}
        }
        let client = ev.flow.client.ip;
        if let Some(caller) = self.identity_of(client, ev.ts.0, false) {
            self.count_inherited(false, held);
            return self.release(fid, Some(caller.entity()), out);
        }
        if let Some(p) = self.pending.flows.get_mut(&fid) {
            p.parked = true;
            self.pending.parked(false).entry(client).or_default().push(fid);
        }
    }

    /// The calling AE of the association of `ev`, a C-MOVE (`message_id` to `dest_ae`,
    /// requested at `requested`, answered by `until`) whose A-ASSOCIATE-RQ was lost, as its
    /// sub-operations name it ([`crate::moves::MoveLinks::originator_of`]). Once found, the
    /// association's other C-MOVEs take it without asking, and its client address is known to
    /// have associated as it (parked exports of the address go to it).
    pub(crate) fn originator_of_unnamed(
        &mut self,
        ev: &ProtocolEvent,
        (message_id, dest_ae): (u16, &str),
        (requested, until): (i64, i64),
        out: &mut Vec<ProtocolEvent>,
    ) -> Option<Name> {
        let fid = ev.flow.id;
        let mut flow = self.unnamed_flows.get(&fid).cloned().unwrap_or_default();
        if flow.caller.is_some() || flow.asks >= MAX_ASKS_PER_FLOW {
            return flow.caller;
        }
        flow.asks += 1;
        let scp = ev.flow.server.ip;
        flow.caller = self.links.originator_of((message_id, dest_ae), scp, requested, until);
        self.unnamed_flows.insert(fid, flow.clone());
        let caller = flow.caller?;
        self.stats.callers_from_sub_operations += 1;
        let client = ev.flow.client.ip;
        self.dicom_callers
            .seen(client, &crate::entity::Caller::Ae(caller.clone()), ev.ts.0);
        self.release_parked(client, ev.ts.0, false, out);
        Some(caller)
    }

    /// `client` just showed who it is: the parked exports of its earlier associations that
    /// named no one (`web`: its parked HTTP retrievals, after an authenticated request) are
    /// counted for that identity, unless the address is shared.
    pub(crate) fn release_parked(&mut self, client: IpAddr, ts: i64, web: bool, out: &mut Vec<ProtocolEvent>) {
        if self.pending.parked(web).is_empty() {
            return;
        }
        let Some(who) = self.identity_of(client, ts, web) else {
            return;
        };
        let fids = self.pending.parked(web).remove(&client);
        for fid in fids.unwrap_or_default() {
            let held = self.pending.flows.get(&fid).map_or(0, |p| p.items.len() as u64);
            self.count_inherited(web, held);
            self.release(fid, Some(who.entity()), out);
        }
    }

    /// The one identity `client` showed around `ts`: as a web user (`web`), else as a DICOM
    /// caller (the user identity or calling AE of its associations).
    fn identity_of(&self, client: IpAddr, ts: i64, web: bool) -> Option<Caller> {
        if web {
            self.web_users.at(client, ts).map(|u| Caller::User(u.clone()))
        } else {
            self.dicom_callers.at(client, ts).cloned()
        }
    }

    /// `n` exports counted for an identity their address showed, not one they named.
    fn count_inherited(&mut self, web: bool, n: u64) {
        if web {
            self.stats.downloads_user_inherited += n;
        } else {
            self.stats.exports_caller_inherited += n;
        }
    }

    /// Attribute a flow's held exports: to `by` (the association's user identity or calling
    /// AE, or the identity its address showed next), else each one's calling AE, else the one
    /// identity its client address associated as around it, else the address.
    pub(crate) fn release(&mut self, fid: FlowId, by: Option<EntRef<'_>>, out: &mut Vec<ProtocolEvent>) {
        let Some(p) = self.pending.flows.remove(&fid) else {
            return;
        };
        if p.parked {
            let map = self.pending.parked(p.web);
            if let Some(client) = p.items.first().map(|i| i.flow.client.ip) {
                if let Some(v) = map.get_mut(&client) {
                    v.retain(|f| *f != fid);
                    if v.is_empty() {
                        map.remove(&client);
                    }
                }
            }
        }
        let outer = self.deferred.is_none();
        if outer {
            self.deferred = Some(Vec::new());
        }
        for item in p.items {
            self.export_held(item, by, out);
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

    pub(crate) fn export_held(&mut self, item: HeldExport, by: Option<EntRef<'_>>, out: &mut Vec<ProtocolEvent>) {
        // Neither named: its association's A-ASSOCIATE-RQ was lost (`address_identity.rs`).
        let inherited = match (by, item.calling_ae.as_deref()) {
            (None, None) => self.identity_of(item.flow.client.ip, item.ts, item.web),
            _ => None,
        };
        if inherited.is_some() {
            self.count_inherited(item.web, 1);
        }
        let ent = match (by, item.calling_ae.as_deref(), &inherited) {
            (Some(by), ..) => by,
            (None, Some(ae), _) => EntRef::Ae(ae),
            (None, None, Some(caller)) => caller.entity(),
            (None, None, None) => EntRef::Ip(item.flow.client.ip),
        };
        let studies: Vec<(u64, Option<&str>)> = item.studies.iter().map(|s| (s.key, s.uid.as_deref())).collect();
        self.export(
            ent,
            &studies,
            (item.dest.as_ref(), item.subops.as_ref()),
            &item.flow,
            item.ts,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    /// C-MOVEs decoded without their A-ASSOCIATE-RQ (a capture that starts mid-association):
    /// no calling AE, so whether a user identity was negotiated is still open.
    fn moves(r: &mut Run, f: pacstap_core::FlowMeta) {
        for i in 0..16 {
            r.feed(cmove(i * SEC, f, "", "WS1", &[&study(i)]));
        }
    }

    #[test]
    fn a_command_that_names_its_calling_ae_counts_at_once_and_fires_on_the_sixteenth_study() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        for i in 0..15 {
            r.feed(cmove(i * SEC, f, "WS1", "WS1", &[&study(i)]));
        }
        assert!(r.alerts("bulk_export").is_empty());
        assert_eq!(r.det.stats().pending_flows, 0, "nothing waits: the RQ was seen");
        r.feed(cmove(15 * SEC, f, "WS1", "WS1", &[&study(15)]));
        let a = r.alerts_with_time("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, T0 + 15 * SEC, "the packet time of the 16th study's C-MOVE");
        assert_eq!((a[0].1.entity.id.as_str(), a[0].1.count), ("WS1", 16));
    }

    #[test]
    fn held_exports_go_to_the_user_the_association_names_in_one_alert() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        moves(&mut r, f);
        assert!(r.alerts("bulk_export").is_empty(), "held for the identity");
        assert_eq!(r.det.stats().pending_flows, 1);
        r.feed(assoc(20 * SEC, f, "", "PACS", true, Some("dave")));
        let a = r.alerts("bulk_export");
        assert_eq!(
            a.len(),
            1,
            "one alert with the full count, not a first alert and updates"
        );
        assert_eq!(
            (a[0].entity.kind.as_str(), a[0].entity.id.as_str(), a[0].count),
            ("user", "dave", 16)
        );
        assert_eq!(r.det.stats().pending_flows, 0);
    }

    #[test]
    fn without_an_identity_in_time_exports_go_to_the_client_address() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        moves(&mut r, f);
        r.tick(299 * SEC);
        assert!(r.alerts("bulk_export").is_empty());
        r.tick(320 * SEC);
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].entity.kind.as_str(), a[0].entity.id.as_str()), ("ip", "10.0.0.9"));
        assert_eq!(r.det.stats().identity_wait_expired, 1);
    }

    /// The one bulk-export alert fired: (entity kind, entity id, count).
    fn one_bulk_export(r: &Run) -> (&str, &str, u64) {
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1, "{a:?}");
        (a[0].entity.kind.as_str(), a[0].entity.id.as_str(), a[0].count)
    }

    /// `count` C-MOVEs of studies `from..` on `f`, naming `calling` (empty: its
    /// A-ASSOCIATE-RQ was not captured).
    fn moves_of(r: &mut Run, f: pacstap_core::FlowMeta, calling: &str, from: i64, count: i64) {
        for i in from..from + count {
            r.feed(cmove(i * SEC, f, calling, "WS1", &[&study(i)]));
        }
    }

    #[test]
    fn an_association_that_named_no_one_counts_for_the_ae_its_address_just_used() {
        let mut r = Run::new("");
        let named = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let unnamed = flow(2, "10.0.0.9:40002", "10.0.0.5:104");
        moves_of(&mut r, named, "WS1", 0, 8);
        r.feed(assoc(8 * SEC, named, "WS1", "PACS", true, None));
        moves_of(&mut r, unnamed, "", 10, 8);
        assert!(r.alerts("bulk_export").is_empty(), "held for the identity");
        r.feed(assoc(20 * SEC, unnamed, "", "PACS", true, None));
        assert_eq!(one_bulk_export(&r), ("ae", "WS1", 16));
        assert_eq!(r.det.stats().exports_caller_inherited, 8);
        assert_eq!(r.det.stats().pending_flows, 0);
    }

    #[test]
    fn exports_of_an_association_that_named_no_one_wait_for_the_addresss_next_one() {
        let mut r = Run::new("");
        let unnamed = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let named = flow(2, "10.0.0.9:40002", "10.0.0.5:104");
        moves_of(&mut r, unnamed, "", 0, 8);
        r.feed(assoc(8 * SEC, unnamed, "", "PACS", true, None));
        assert_eq!(r.det.stats().pending_flows, 1, "parked: the address named no one yet");
        assert!(r.alerts("bulk_export").is_empty());
        // The same user identity every association of the address negotiates.
        for i in 10..18 {
            let mut ev = cmove(i * SEC, named, "WS1", "WS1", &[&study(i)]);
            if let pacstap_core::EventBody::Dicom(pacstap_core::DicomEvent::Command(c)) = &mut ev.body {
                c.user = Some("dave".into());
            }
            r.feed(ev);
        }
        assert_eq!(one_bulk_export(&r), ("user", "dave", 16));
        assert_eq!(r.det.stats().exports_caller_inherited, 8);
        assert_eq!(r.det.stats().pending_flows, 0);
    }

    #[test]
    fn an_address_two_aes_used_keeps_the_unnamed_exports() {
        let mut r = Run::new("");
        let f = |id, port: u16| flow(id, &format!("10.0.0.9:{port}"), "10.0.0.5:104");
        moves_of(&mut r, f(1, 40000), "WS1", 0, 1);
        moves_of(&mut r, f(2, 40002), "WS2", 1, 1);
        moves_of(&mut r, f(3, 40004), "", 2, 16);
        r.feed(assoc(20 * SEC, f(3, 40004), "", "PACS", true, None));
        assert!(r.alerts("bulk_export").is_empty(), "parked");
        r.tick(2 * SEC + 301 * SEC);
        assert_eq!(one_bulk_export(&r), ("ip", "10.0.0.9", 16));
        assert_eq!(r.det.stats().exports_caller_inherited, 0);
        assert_eq!(r.det.stats().pending_flows, 0);
    }

    #[test]
    fn an_association_without_a_calling_ae_asks_the_sub_operations_a_bounded_number_of_times() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        // No sub-operation ever names these C-MOVEs: each would scan the waiting groups.
        moves_of(&mut r, f, "", 0, 100);
        let asked = r.det.unnamed_flows.get(&f.id).map(|u| u.asks);
        assert_eq!(asked, Some(super::MAX_ASKS_PER_FLOW));
        assert_eq!(r.det.stats().callers_from_sub_operations, 0);
    }
}
