//! `admin_change`: administrative actions seen on the wire: an HTTP `admin_action` that was
//! not refused, an HL7 master file notification, and a DICOM AE answering at an address
//! never seen for it (node configuration changed).

use crate::config::{canonical_ip, AddrMatch};
use crate::detector::Detector;
use crate::entity::{EntRef, EntityKind};
use crate::inventory::InvDevices;
use crate::learned::push_capped;
use crate::rule::Rule;
use crate::scope::Scope;
use pacstap_core::ProtocolEvent;
use std::net::IpAddr;

impl Detector {
    /// DICOM node configuration visible on the wire: an AE answering associations at an
    /// address not in the inventory and never seen for it → `admin_change`.
    pub(crate) fn check_node(
        &mut self,
        called: &str,
        server: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
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
        // The same node reported as an unknown destination (data sent to it at the new
        // address) is the same story: each names the other.
        let related = self.open_incident_id(EntRef::Ae(called), Rule::UnknownDestination);
        let scope = Scope {
            related: related.as_deref(),
            ..Scope::text(&detail)
        };
        self.instant(Rule::AdminChange, EntRef::Ae(called), scope, ev, None, out);
        self.relate_on(EntRef::Ae(called), Rule::AdminChange, Rule::UnknownDestination);
    }

    /// An administrative action seen on the wire (HTTP `admin_action`, HL7 MFN): an instant
    /// `admin_change` for the actor.
    pub(crate) fn admin_action(
        &mut self,
        actor: EntRef<'_>,
        detail: &str,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        self.instant(Rule::AdminChange, actor, Scope::text(detail), ev, None, out);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn an_ae_answering_at_a_new_address_is_an_admin_change() {
        let mut r = Run::new("");
        r.feed(assoc(
            0,
            flow(1, "10.0.0.9:40000", "10.0.0.5:104"),
            "WS1",
            "PACS",
            true,
            None,
        ));
        assert!(r.alerts("admin_change").is_empty(), "the first address is learned");
        r.feed(assoc(
            SEC,
            flow(2, "10.0.0.9:40001", "10.0.0.6:104"),
            "WS1",
            "PACS",
            true,
            None,
        ));
        let a = r.alerts("admin_change");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].entity.kind.as_str(), a[0].entity.id.as_str()), ("ae", "PACS"));
        assert!(
            a[0].summary.contains("AE PACS now answers at 10.0.0.6 (was 10.0.0.5)"),
            "{}",
            a[0].summary
        );
    }

    #[test]
    fn an_inventory_node_at_a_new_address_is_one_story_told_twice_with_each_naming_the_other() {
        let mut r = Run::new("[[inventory.dicom]]\nae = \"ARCHIVE\"\nip = \"10.0.0.5\"\n");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.6:104");
        r.feed(command(0, f, "WS1", "ARCHIVE", "C-STORE", &[&study(1)]));
        r.feed(assoc(SEC, f, "WS1", "ARCHIVE", true, None));
        r.det.finish(&mut r.out);
        let admin = r.alerts("admin_change");
        let unknown = r.alerts("unknown_destination");
        let (a, u) = (admin.last().expect("admin_change"), unknown.last().expect("unknown"));
        assert_eq!((a.entity.id.as_str(), u.entity.id.as_str()), ("ARCHIVE", "ARCHIVE"));
        assert_eq!(a.evidence.related, vec![u.incident_id.clone()]);
        assert_eq!(u.evidence.related, vec![a.incident_id.clone()]);
    }

    #[test]
    fn a_refused_http_admin_action_is_no_change() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let (t, f, mut h) = http(0, f, "/admin/users", 403, Some("mallory"));
        h.admin_action = Some("user_created".into());
        r.feed(http_ev((t, f, h.clone())));
        assert!(r.alerts("admin_change").is_empty());
        h.status = Some(201);
        r.feed(http_ev((SEC, f, h)));
        let a = r.alerts("admin_change");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].entity.id, "mallory");
    }
}
