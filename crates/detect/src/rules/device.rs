//! `new_device` and `new_location`: a known user / AE seen from an address or TLS fingerprint
//! never seen for it, a user seen from a country never seen for it. What is seen is learned
//! (bounded per entity), so the next run knows it too.

use crate::config::{canonical_ip, AddrMatch};
use crate::detector::Detector;
use crate::entity::{EntRef, EntityKind};
use crate::inventory::InvDevices;
use crate::learned::{push_capped, Device};
use crate::rule::Rule;
use crate::scope::Scope;
use pacstap_core::ProtocolEvent;
use std::net::IpAddr;

/// A login from the address last checked for that user / AE within this long skips the
/// device check (and its learned-state look-up).
const DEVICE_RECHECK_NS: i64 = 60_000_000_000;

impl Detector {
    /// `new_device`: a known user / AE logs in from a device never seen for it: its address,
    /// or the TLS client fingerprint (JA4) of the same flow. Unknown entities, the first device
    /// of each kind, and everything during the learning period are learned silently.
    pub(crate) fn check_devices(
        &mut self,
        ent: EntRef<'_>,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let (kind, id) = match ent {
            EntRef::User(u) => (EntityKind::User, u),
            EntRef::Ae(a) => (EntityKind::Ae, a),
            EntRef::Ip(_) => return,
        };
        let inv = match kind {
            EntityKind::User => self.inv.users.get(id).map_or(InvDevices::None, InvDevices::User),
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
    pub(crate) fn check_location(
        &mut self,
        user: &str,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
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
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn a_known_user_from_a_second_address_is_a_new_device() {
        let mut r = Run::new("");
        let home = flow(1, "10.1.1.1:40000", "10.0.0.5:443");
        let other = flow(2, "10.1.1.2:40000", "10.0.0.5:443");
        r.feed(http_ev(http(0, home, "/app", 200, Some("alice"))));
        assert!(
            r.alerts("new_device").is_empty(),
            "the first device is learned silently"
        );
        r.feed(http_ev(http(SEC, home, "/app", 200, Some("alice"))));
        r.feed(http_ev(http(2 * SEC, other, "/app", 200, Some("alice"))));
        let a = r.alerts("new_device");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].entity.kind.as_str(), a[0].entity.id.as_str()), ("user", "alice"));
        assert!(a[0].summary.contains("10.1.1.2"), "{}", a[0].summary);
    }

    #[test]
    fn nothing_is_new_during_the_learning_period() {
        let mut r = Run::new("[detect]\nlearning_period = \"1h\"\n");
        r.feed(http_ev(http(
            0,
            flow(1, "10.1.1.1:1", "10.0.0.5:443"),
            "/",
            200,
            Some("alice"),
        )));
        r.feed(http_ev(http(
            SEC,
            flow(2, "10.1.1.2:1", "10.0.0.5:443"),
            "/",
            200,
            Some("alice"),
        )));
        assert!(r.alerts("new_device").is_empty());
    }
}
