//! `bulk_export` and `export_above_baseline`: distinct studies an entity exported within the
//! window (C-MOVE, C-GET, WADO-RS / WADO-URI), against the threshold and the entity's decayed
//! baseline; and, where studies are invisible (HTTPS), the bytes image servers sent a client.

use crate::config::canonical_ip;
use crate::dest::Dest;
use crate::detector::Detector;
use crate::engine::{add_studies, Measurer, Occurrence};
use crate::entity::EntRef;
use crate::moves::SubOps;
use crate::observe::non_empty;
use crate::rule::Rule;
use crate::scope::{Detail, Scope};
use crate::window::{ByteWindow, SlidingWindow};
use pacstap_core::{FlowMeta, ProtocolEvent};
use std::net::SocketAddr;

use crate::text::truncate;

impl Detector {
    /// `ent` exported `studies` to `dest` (`None`: unnamed) at `ts`, its C-MOVE sub-operations
    /// (if any) moving `subops`.
    pub(crate) fn export(
        &mut self,
        ent: EntRef<'_>,
        studies: &[(u64, Option<&str>)],
        (dest, subops): (Option<&Dest>, Option<&SubOps>),
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
        if let Some(so) = subops {
            s.st.export_volume.get_or_insert_with(Box::default).add(ts, so);
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
        let dest_ae = match dest {
            Some(Dest::Ae { ae, .. }) => Some(ae.as_str()),
            _ => None,
        };
        // The same story told from the destination: its open `unknown_destination` incident.
        let related = dest_ae.and_then(|ae| self.open_incident_id(EntRef::Ae(ae), Rule::UnknownDestination));
        let scope = Scope {
            studies,
            dest,
            detail: Some(dest.map_or(Detail::Ae(None, None), Detail::Dest)),
            data_flows: subops.map_or(&[], |s| &s.flows),
            volume: subops.map(|s| (s.instances, s.bytes)),
            related: related.as_deref(),
            dest_unknown: match dest {
                Some(Dest::Ae { ae, ip, .. }) => self.inv.dicom_destination_unknown(Some(ae), *ip).is_some(),
                Some(Dest::Client(ip) | Dest::Server(ip, _)) => !self.inv.is_internal(*ip),
                None => false,
            },
            ..Scope::default()
        };
        for (rule, _, m) in measures {
            if let Some(m) = m {
                self.apply(idx, rule, &m, Occurrence::on(flow, ts, scope), out);
            }
        }
        if let Some(ae) = dest_ae {
            self.relate_back(idx, EntRef::Ae(ae), Rule::UnknownDestination);
        }
    }

    /// The id of `ent`'s open incident of `rule`, once it has alerted.
    pub(crate) fn open_incident_id(&self, ent: EntRef<'_>, rule: Rule) -> Option<String> {
        let s = self.entities.find(ent).and_then(|i| self.entities.slot(i))?;
        let inc = s.st.incident(rule)?;
        (!inc.incident_id.is_empty()).then(|| inc.incident_id.clone())
    }

    /// Name the export incidents of entity `idx` in `ent`'s open `rule` incident (the other
    /// half of `related`; it shows in that incident's next update).
    pub(crate) fn relate_back(&mut self, idx: u32, ent: EntRef<'_>, rule: Rule) {
        let ids: Vec<String> = self
            .entities
            .slot(idx)
            .map(|s| {
                s.st.incidents
                    .iter()
                    .filter(|i| i.rule.is_export() && !i.incident_id.is_empty())
                    .map(|i| i.incident_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        let Some(other) = self.entities.find(ent) else { return };
        if let Some(inc) = self.entities.slot_mut(other).and_then(|s| s.st.incident_mut(rule)) {
            for id in &ids {
                inc.add_related(id);
            }
        }
    }

    /// `ent`'s open `from` incident named in its open `to` incident (both alerted): the other
    /// half of `related` for two incidents about one entity.
    pub(crate) fn relate_on(&mut self, ent: EntRef<'_>, from: Rule, to: Rule) {
        let Some(id) = self.open_incident_id(ent, from) else {
            return;
        };
        let Some(idx) = self.entities.find(ent) else { return };
        if let Some(inc) = self.entities.slot_mut(idx).and_then(|s| s.st.incident_mut(to)) {
            inc.add_related(&id);
        }
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
    /// Which connections are downloads from an image server (not replication between two of
    /// them) is the TLS observer's call (`observe/tls.rs`).
    pub(crate) fn https_download(
        &mut self,
        ev: &ProtocolEvent,
        bytes: u64,
        sni: Option<&str>,
        out: &mut Vec<ProtocolEvent>,
    ) {
        if !self.cfg.rules.bulk_export.enabled || self.p.https_bytes == 0 {
            return;
        }
        let client = canonical_ip(ev.flow.client.ip);
        let server = canonical_ip(ev.flow.server.ip);
        let ent = EntRef::Ip(client);
        if self.inv.is_exempt(ent) {
            self.stats.exports_exempt += 1;
            return;
        }
        let served_by = SocketAddr::new(server, ev.flow.server.port);
        let label = match sni.and_then(non_empty) {
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
        if !w.add(now, ev.ts.0, bytes, ev.flow.id, Some(&label)) {
            return; // older than the window
        }
        self.stats.window_items_dropped += w.take_merged();
        self.stats.https_bytes = self.stats.https_bytes.saturating_add(bytes);
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
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn bulk_export_fires_on_the_sixteenth_distinct_study() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        for i in 0..15 {
            r.feed(wado(i * SEC, f, Some("carol"), &study(i)));
            // The same study again is not a new one.
            r.feed(wado(i * SEC, f, Some("carol"), &study(i)));
        }
        assert!(r.alerts("bulk_export").is_empty());
        r.feed(wado(15 * SEC, f, Some("carol"), &study(15)));
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].entity.id.as_str(), a[0].count, a[0].threshold),
            ("carol", 16, Some(15))
        );
        assert_eq!(r.det.stats().studies_exported, 16);
    }

    /// A WADO-RS response seen without its request, as the HTTP decoder reports one
    /// (`request_missing`): no method, URL or user; the study, when given, read from the
    /// DICOM file it carried.
    fn wado_without_request(t: i64, f: pacstap_core::FlowMeta, study: Option<&str>) -> pacstap_core::ProtocolEvent {
        let mut ev = wado(t, f, None, study.unwrap_or_default());
        if let pacstap_core::EventBody::Http(h) = &mut ev.body {
            h.method.clear();
            h.url.clear();
            (h.request_missing, h.incomplete) = (true, true);
            if let Some(dw) = h.dicomweb.as_mut() {
                dw.study_instance_uid = study.map(str::to_string);
            }
        }
        ev
    }

    #[test]
    fn downloads_whose_request_was_lost_count_for_the_user_of_their_address() {
        let mut r = Run::new("");
        for i in 0..16 {
            let f = flow(1 + i as u64, "10.0.0.9:40000", "10.0.0.5:8042");
            if i % 4 == 1 {
                r.feed(wado_without_request(i * SEC, f, Some(&study(i))));
            } else {
                r.feed(wado(i * SEC, f, Some("carol"), &study(i)));
            }
        }
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].entity.id.as_str(), a[0].count), ("carol", 16));
        assert_eq!(r.det.stats().downloads_user_inherited, 4);
    }

    /// The first retrievals' requests lost, before the address showed any user: they wait for
    /// its next authenticated request and count for that user (they counted for the bare
    /// address, and carol's 16 studies were 13 and 3: no alert); without one in time, for the
    /// address.
    #[test]
    fn downloads_whose_request_was_lost_before_any_user_wait_for_the_addresss_next_one() {
        let mut r = Run::new("");
        let at = |i: i64| flow(1 + i as u64, "10.0.0.9:40000", "10.0.0.5:8042");
        for i in 0..3 {
            r.feed(wado_without_request(i * SEC, at(i), Some(&study(i))));
        }
        assert_eq!(
            r.det.stats().pending_flows,
            3,
            "parked: no user known for the address yet"
        );
        for i in 3..16 {
            r.feed(wado(i * SEC, at(i), Some("carol"), &study(i)));
        }
        let a = r.alerts("bulk_export");
        assert_eq!(
            (a.last().map(|a| a.entity.id.as_str()), a.last().map(|a| a.count)),
            (Some("carol"), Some(16))
        );
        assert_eq!(r.det.stats().downloads_user_inherited, 3);
        assert_eq!(r.det.stats().downloads_parked, 3);
        // No user ever: the address, once the wait is over.
        let mut r = Run::new("");
        for i in 0..16 {
            r.feed(wado_without_request(i * SEC, at(i), Some(&study(i))));
        }
        assert!(r.alerts("bulk_export").is_empty(), "still waiting");
        r.feed(wado_without_request(400 * SEC, at(99), Some(&study(99))));
        let a = r.alerts("bulk_export");
        assert_eq!((a[0].entity.id.as_str(), a[0].count), ("10.0.0.9", 16));
    }

    #[test]
    fn an_address_two_users_share_keeps_the_downloads_whose_request_was_lost() {
        let mut r = Run::new("");
        let at = |i: i64| flow(1 + i as u64, "10.0.0.9:40000", "10.0.0.5:8042");
        r.feed(wado(0, at(0), Some("dave"), &study(100)));
        for i in 1..13 {
            r.feed(wado(i * SEC, at(i), Some("carol"), &study(i)));
        }
        // Four more, their requests lost: carol's most likely, but dave was there too.
        for i in 13..17 {
            r.feed(wado_without_request(i * SEC, at(i), Some(&study(i))));
        }
        assert!(r.alerts("bulk_export").is_empty());
        assert_eq!(r.det.stats().downloads_user_inherited, 0);
        // Counted for the address, each study once; ones whose study was lost too are one new
        // study each.
        for i in 17..29 {
            r.feed(wado_without_request(i * SEC, at(i), None));
        }
        let a = r.alerts("bulk_export");
        assert_eq!((a[0].entity.id.as_str(), a[0].count), ("10.0.0.9", 16));
    }

    /// A C-STORE of 1,000 bytes from PACS to EXTPACS on `data`, requested at `requested`,
    /// decoded at `t`: a sub-operation of WS1's C-MOVE number `i + 1`.
    fn sub_operation(t: i64, requested: i64, data: pacstap_core::FlowMeta, i: u16) -> pacstap_core::ProtocolEvent {
        use pacstap_core::{DicomEvent, EventBody};
        let mut st = command(t, data, "PACS", "EXTPACS", "C-STORE", &[&study(i)]);
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut st.body {
            c.move_originator_ae = Some("WS1".into());
            c.move_originator_message_id = Some(i + 1);
            c.dataset_bytes = 1000;
            c.request_time = pacstap_core::Timestamp(T0 + requested);
        }
        st
    }

    /// C-MOVEs never seen (request and response lost, or their association off the mirror):
    /// their sub-operations from the inventory's PACS count, a minute after the last one, as
    /// WS1's export of the studies they stored; a C-MOVE seen near one of them had counted its
    /// study already (unnamed, its identifier lost), so that one adds only its volume. The
    /// same C-STOREs from a sender not in the inventory count for no one.
    #[test]
    fn sub_operations_without_their_c_move_count_for_the_originator_when_a_pacs_sent_them() {
        let inventory = "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\nrole = \"pacs\"\n";
        for (sender, counted) in [("10.0.0.5", true), ("10.0.0.66", false)] {
            let mut r = Run::new(inventory);
            let ctl = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
            // Message 1: seen, its identifier lost (one unnamed study).
            r.feed(cmove(SEC, ctl, "WS1", "EXTPACS", &[]));
            for i in 0..17u16 {
                let t = i64::from(i) * SEC;
                let data = flow(100 + u64::from(i), &format!("{sender}:50000"), "198.51.100.7:104");
                r.feed(sub_operation(t + 1, t + 1, data, i));
                r.feed(assoc(t + 2, data, "PACS", "EXTPACS", true, None));
            }
            // Each group a minute after its association ended (the first's at 2 s).
            r.tick(61 * SEC);
            assert!(r.alerts("bulk_export").is_empty());
            r.tick(17 * SEC + 61 * SEC);
            r.det.finish(&mut r.out);
            let bulk = r.alerts("bulk_export");
            if !counted {
                assert!(bulk.is_empty(), "{bulk:?}");
                assert_eq!(r.det.stats().sub_operations_from_unknown_senders, 17);
                continue;
            }
            let a = bulk.last().expect("an alert");
            assert_eq!(bulk[0].count, 16, "on the 16th study");
            // 16 studies named by the C-STOREs of messages 2..17, and message 1's unnamed one.
            assert_eq!(
                (a.entity.kind.as_str(), a.entity.id.as_str(), a.count),
                ("ae", "WS1", 17)
            );
            let v = a.evidence.volume.unwrap();
            assert_eq!((v.instances, v.bytes), (17, 17_000));
            assert_eq!(r.det.stats().moves_seen_by_sub_operations_only, 16);
            assert_eq!(r.det.stats().sub_operations_volume_only, 1, "message 1's");
        }
    }

    /// A C-MOVE of 3 large instances over a slow link: its sub-operation association stays
    /// open for 6 minutes, a C-STORE every 2 (packet time ticking meanwhile). Its group waits
    /// for the C-MOVE while the association is open, so the C-MOVE takes all three: nothing is
    /// counted on its own, and the volume is whole.
    #[test]
    fn a_slow_c_move_keeps_its_sub_operations_while_their_association_is_open() {
        use pacstap_core::{DicomEvent, EventBody};
        let inventory = "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\nrole = \"pacs\"\n";
        let mut r = Run::new(inventory);
        let ctl = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let data = flow(100, "10.0.0.5:50000", "198.51.100.7:104");
        for k in 0..3 {
            let t = k * 120 * SEC;
            r.feed(sub_operation(t + 1, t + 1, data, 0));
            r.tick(t + 119 * SEC);
        }
        let mut mv = cmove(361 * SEC, ctl, "WS1", "EXTPACS", &[&study(0u16)]);
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut mv.body {
            c.message_id = 1;
            c.request_time = pacstap_core::Timestamp(T0);
        }
        r.feed(mv);
        r.feed(assoc(362 * SEC, data, "PACS", "EXTPACS", true, None));
        r.det.finish(&mut r.out);
        assert_eq!(r.det.stats().moves_seen_by_sub_operations_only, 0);
        assert_eq!(r.det.stats().sub_operations_volume_only, 0);
        assert_eq!(r.det.links.len(), 0, "taken by its C-MOVE");
    }

    /// A C-MOVE to an outside AE: its sub-operation C-STOREs (naming the C-MOVE by
    /// 0000,1030 / 0000,1031) arrive first, then the C-MOVE's final response. The export
    /// incident takes their flows and volume, and it and the destination's
    /// `unknown_destination` name each other.
    #[test]
    fn a_move_to_an_outside_ae_links_its_sub_operations_and_the_destination_incident() {
        use pacstap_core::{DicomEvent, EventBody};
        let mut r = Run::new("");
        let ctl = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        for i in 0..16u16 {
            let t = i64::from(i) * SEC;
            let data = flow(100 + u64::from(i), "10.0.0.5:50000", "198.51.100.7:104");
            for k in 0..2 {
                r.feed(sub_operation(t + 1 + k, t + 1 + k, data, i));
            }
            let mut mv = cmove(t + 2, ctl, "WS1", "EXTPACS", &[&study(i)]);
            if let EventBody::Dicom(DicomEvent::Command(c)) = &mut mv.body {
                c.message_id = i + 1;
                c.request_time = pacstap_core::Timestamp(T0 + t);
            }
            r.feed(mv);
        }
        r.det.finish(&mut r.out);
        let bulk = r.alerts("bulk_export");
        let first = bulk[0];
        assert_eq!((first.entity.id.as_str(), first.count), ("WS1", 16));
        let v = first.evidence.volume.unwrap();
        assert_eq!((v.studies, v.instances, v.bytes), (16, 32, 32_000));
        // The control flow and the 16 sub-operation associations.
        assert_eq!(first.evidence.flow_ids_total, 17);
        let unknown = r.alerts("unknown_destination");
        let ext = unknown.iter().rev().find(|a| a.entity.id == "EXTPACS").unwrap();
        assert_eq!(first.evidence.related, vec![ext.incident_id.clone()]);
        assert_eq!(ext.evidence.related, vec![first.incident_id.clone()]);
        let ev = ext.evidence.volume.unwrap();
        assert_eq!((ev.instances, ev.bytes), (32, 32_000));
        assert!(
            first.response[1].starts_with("block the destination AE EXTPACS"),
            "{:?}",
            first.response
        );
    }

    /// The same C-MOVEs seen through a SPAN port that delivers the destination's packets
    /// 50 ms late: each C-MOVE's final response (saying 2 sub-operations completed) comes
    /// before its two C-STOREs. Each C-MOVE waits for them (up to half a second of packet
    /// time) and the bulk export has its whole volume; before, it had none. A C-MOVE whose
    /// C-STOREs never come (a destination off the mirror) is exported when its wait is over.
    #[test]
    fn sub_operations_a_mirror_delivers_after_their_c_move_still_count() {
        use pacstap_core::{DicomEvent, EventBody, SubOperations};
        let mut r = Run::new("");
        let ctl = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let late = 50 * SEC / 1000;
        for i in 0..17u16 {
            let t = i64::from(i) * SEC;
            let mut mv = cmove(t + 2, ctl, "WS1", "EXTPACS", &[&study(i)]);
            if let EventBody::Dicom(DicomEvent::Command(c)) = &mut mv.body {
                c.message_id = i + 1;
                c.request_time = pacstap_core::Timestamp(T0 + t);
                c.sub_operations = Some(SubOperations {
                    completed: 2,
                    ..Default::default()
                });
            }
            r.feed(mv);
            if i == 16 {
                break; // its C-STOREs never come
            }
            let data = flow(100 + u64::from(i), "10.0.0.5:50000", "198.51.100.7:104");
            for k in 0..2 {
                r.feed(sub_operation(t + 2 + late + k, t + 1 + k, data, i));
            }
        }
        assert_eq!(r.det.stats().moves_waited_for_sub_operations, 17);
        let first = r.alerts("bulk_export")[0];
        assert_eq!((first.entity.id.as_str(), first.count), ("WS1", 16));
        let v = first.evidence.volume.unwrap();
        assert_eq!((v.studies, v.instances, v.bytes), (16, 32, 32_000));
        assert_eq!(first.evidence.flow_ids_total, 17);
        // The 17th waits for C-STOREs that do not come, and is exported when its wait is over.
        assert_eq!(r.det.stats().studies_exported, 16);
        r.tick(17 * SEC + 2);
        assert_eq!(r.det.stats().studies_exported, 17);
    }

    #[test]
    fn admins_are_exempt() {
        let mut r = Run::new("[users]\nadmins = [\"carol\"]\n");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        for i in 0..20 {
            r.feed(wado(i * SEC, f, Some("carol"), &study(i)));
        }
        assert!(r.alerts("bulk_export").is_empty());
        assert_eq!(r.det.stats().exports_exempt, 20);
    }

    #[test]
    fn https_volume_counts_against_https_bytes() {
        use pacstap_core::{EventBody, TlsEvent};
        let mut r = Run::new("[rules.bulk_export]\nhttps_bytes = 1000\n");
        let tls = |t: i64, id: u64, bytes: u64| {
            let ev = TlsEvent {
                bytes_toclient: bytes,
                ..Default::default()
            };
            event(t, flow(id, "10.0.0.9:40000", "10.0.0.5:443"), EventBody::Tls(ev))
        };
        r.feed(tls(0, 1, 600));
        assert!(r.alerts("bulk_export").is_empty());
        r.feed(tls(SEC, 2, 600));
        let a = r.alerts("bulk_export");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].entity.id.as_str(), a[0].count, a[0].threshold),
            ("10.0.0.9", 1200, Some(1000))
        );
    }
}
