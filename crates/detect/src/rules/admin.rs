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
        self.instant(
            Rule::AdminChange,
            EntRef::Ae(called),
            Scope::text(&detail),
            ev,
            None,
            out,
        );
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
