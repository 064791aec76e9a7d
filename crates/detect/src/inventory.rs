//! The inventory and networks of the config, indexed for the detector's questions: is this
//! address ours, is this destination a known node, which devices may this user / AE use, who
//! is exempt from the export rules, which TLS servers serve images.
//!
//! Built once per config (and again on reload); every look-up is by name or address, never by
//! an index that input controls.

use crate::config::{canonical_ip, AddrMatch, Config, NodeRole};
use crate::entity::{EntRef, EntityKind};
use crate::learned::Device;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Inventory and networks, indexed.
#[derive(Debug, Default)]
pub(crate) struct InventoryIndex {
    /// AE title → addresses it may use (`Any` for `*`).
    pub(crate) dicom: HashMap<String, Vec<AddrMatch>>,
    pub(crate) hl7: Vec<(AddrMatch, Option<u16>)>,
    /// User → devices.
    pub(crate) users: HashMap<String, UserDevices>,
    pub(crate) internal: Vec<IpNet>,
    pub(crate) exempt: HashSet<String>,
    pub(crate) exempt_ips: HashSet<IpAddr>,
    /// HTTPS servers whose downloads count toward `bulk_export`: `rules.bulk_export.https_servers`,
    /// else the inventory's `pacs` / `archive` nodes; empty with `https_any_internal`: any
    /// TLS server inside the internal networks (the config names no image server).
    pub(crate) https_servers: Vec<IpNet>,
    pub(crate) https_any_internal: bool,
    /// AE title / user id → `display name, role` for alert text (only those configured).
    ae_labels: HashMap<String, String>,
    user_labels: HashMap<String, String>,
}

/// `name, role` from what is configured: `None` when neither is.
fn label(name: Option<&str>, role: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [name, role]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl InventoryIndex {
    pub(crate) fn new(cfg: &Config) -> Self {
        let mut inv = InventoryIndex::default();
        for n in &cfg.inventory.dicom {
            inv.dicom
                .entry(n.ae.trim().to_string())
                .or_default()
                .extend(n.ip.0.iter().copied());
            // Role `other` is the default: shown only when named otherwise.
            let role = (n.role != NodeRole::Other).then(|| n.role.as_str());
            if let Some(l) = label(n.display_name.as_deref(), role) {
                inv.ae_labels.insert(n.ae.trim().to_string(), l);
            }
        }
        inv.hl7 = cfg
            .inventory
            .hl7
            .iter()
            .flat_map(|e| e.ip.0.iter().map(move |a| (*a, e.port)))
            .collect();
        for u in &cfg.inventory.users {
            if let Some(l) = label(u.display_name.as_deref(), u.role.as_deref()) {
                inv.user_labels.insert(u.name.trim().to_string(), l);
            }
            let devs = inv.users.entry(u.name.trim().to_string()).or_default();
            for d in &u.devices {
                // A range (`10.20.30.0/24`, a workstation pool) is matched by membership; the
                // config check refuses anything else that is neither an address nor a key.
                match AddrMatch::parse(d) {
                    Ok(AddrMatch::Net(n)) => devs.nets.push(n),
                    _ => devs.exact.push(Device::parse(d)),
                }
            }
        }
        inv.internal = cfg.networks.internal.iter().map(|n| n.0).collect();
        let explicit = &cfg.rules.bulk_export.https_servers;
        inv.https_servers = if explicit.is_empty() {
            cfg.inventory
                .dicom
                .iter()
                .filter(|n| matches!(n.role, NodeRole::Pacs | NodeRole::Archive))
                .flat_map(|n| n.ip.0.iter())
                .filter_map(|a| match *a {
                    AddrMatch::Ip(ip) => Some(IpNet::from(canonical_ip(ip))),
                    AddrMatch::Net(n) => Some(n),
                    AddrMatch::Any => None,
                })
                .collect()
        } else {
            explicit.iter().map(|n| n.0).collect()
        };
        inv.https_any_internal = inv.https_servers.is_empty();
        for name in cfg.users.admins.iter().chain(&cfg.users.service_accounts) {
            let t = name.trim();
            match t.parse::<IpAddr>() {
                Ok(ip) => {
                    inv.exempt_ips.insert(canonical_ip(ip));
                }
                Err(_) => {
                    inv.exempt.insert(t.to_string());
                }
            }
        }
        inv
    }

    pub(crate) fn is_internal(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.internal.iter().any(|n| n.contains(&ip))
    }

    /// Whether a TLS server is an image server whose downloads count as exports.
    pub(crate) fn is_image_server(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        if self.https_any_internal {
            self.is_internal(ip)
        } else {
            self.https_servers.iter().any(|n| n.contains(&ip))
        }
    }

    pub(crate) fn is_exempt(&self, e: EntRef<'_>) -> bool {
        match e {
            EntRef::User(s) | EntRef::Ae(s) => self.exempt.contains(s),
            EntRef::Ip(ip) => self.exempt_ips.contains(&canonical_ip(ip)),
        }
    }

    /// The configured display name and role of an AE title or user, for alert text.
    pub(crate) fn label(&self, kind: EntityKind, id: &str) -> Option<&str> {
        match kind {
            EntityKind::Ae => self.ae_labels.get(id),
            EntityKind::User => self.user_labels.get(id),
            EntityKind::Ip | EntityKind::Device => None,
        }
        .map(String::as_str)
    }

    /// Whether the DICOM inventory lists this AE title (a site's own node).
    pub(crate) fn knows_ae(&self, ae: &str) -> bool {
        self.dicom.contains_key(ae)
    }

    /// Why a DICOM destination (AE and/or address) is unknown, if it is.
    pub(crate) fn dicom_destination_unknown(&self, ae: Option<&str>, ip: Option<IpAddr>) -> Option<&'static str> {
        if let Some(ip) = ip {
            if !self.is_internal(ip) {
                return Some("outside the internal networks");
            }
        }
        let ae = ae?;
        if self.dicom.is_empty() {
            return None;
        }
        match self.dicom.get(ae) {
            None => Some("not in the DICOM inventory"),
            Some(addrs) => match ip {
                Some(ip) if !addrs.iter().any(|a| a.matches(ip)) => Some("not at its inventory address"),
                _ => None,
            },
        }
    }

    pub(crate) fn hl7_destination_unknown(&self, ip: IpAddr, port: Option<u16>) -> Option<&'static str> {
        if !self.is_internal(ip) {
            return Some("outside the internal networks");
        }
        if self.hl7.is_empty() {
            return None;
        }
        let known = self
            .hl7
            .iter()
            .any(|(a, p)| a.matches(ip) && (p.is_none() || port.is_none() || *p == port));
        (!known).then_some("not in the HL7 inventory")
    }
}

/// A user's inventory devices: addresses and keys (MAC, `ja4:`) compared exactly, and address
/// ranges compared by membership.
#[derive(Debug, Default)]
pub(crate) struct UserDevices {
    pub(crate) exact: Vec<Device>,
    pub(crate) nets: Vec<IpNet>,
}

/// The inventory's devices for a user or AE.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InvDevices<'a> {
    None,
    User(&'a UserDevices),
    Ae(&'a [AddrMatch]),
}

impl InvDevices<'_> {
    pub(crate) fn contains(&self, d: &Device) -> bool {
        match (self, d) {
            (InvDevices::None, _) => false,
            (InvDevices::User(v), Device::Ip(ip)) => v.exact.contains(d) || v.nets.iter().any(|n| n.contains(ip)),
            (InvDevices::User(v), _) => v.exact.contains(d),
            (InvDevices::Ae(v), Device::Ip(ip)) => v.iter().any(|a| a.matches(*ip)),
            (InvDevices::Ae(_), Device::Key(_)) => false,
        }
    }

    pub(crate) fn has_kind(&self, fingerprint: bool) -> bool {
        match self {
            InvDevices::None => false,
            InvDevices::User(v) => {
                v.exact.iter().any(|d| d.is_fingerprint() == fingerprint) || (!fingerprint && !v.nets.is_empty())
            }
            InvDevices::Ae(v) => !fingerprint && !v.is_empty(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            InvDevices::None => true,
            InvDevices::User(v) => v.exact.is_empty() && v.nets.is_empty(),
            InvDevices::Ae(v) => v.is_empty(),
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            InvDevices::None => Vec::new(),
            InvDevices::User(v) => v
                .exact
                .iter()
                .map(|d| d.to_string())
                .chain(v.nets.iter().map(|n| n.to_string()))
                .collect(),
            InvDevices::Ae(v) => v
                .iter()
                .filter_map(|a| match a {
                    AddrMatch::Ip(ip) => Some(canonical_ip(*ip).to_string()),
                    AddrMatch::Net(n) => Some(n.to_string()),
                    AddrMatch::Any => None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(toml: &str) -> InventoryIndex {
        InventoryIndex::new(&toml::from_str::<Config>(toml).expect("config"))
    }

    const INVENTORY: &str = r#"
[networks]
internal = ["10.0.0.0/8"]
[users]
admins = ["root", "10.9.9.9"]
[[inventory.dicom]]
ae = "PACS"
ip = "10.0.0.5"
role = "pacs"
[[inventory.dicom]]
ae = "ROAMER"
ip = "*"
[[inventory.hl7]]
ip = "10.0.0.7"
port = 2575
[[inventory.users]]
name = "alice"
devices = ["10.1.1.1", "ja4:t13d1516h2_8daaf6152771_e5627efa2ab1"]
"#;

    #[test]
    fn dicom_destinations_are_looked_up_by_ae_and_address() {
        let inv = index(INVENTORY);
        let pacs: IpAddr = "10.0.0.5".parse().unwrap();
        let other: IpAddr = "10.0.0.6".parse().unwrap();
        let outside: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(inv.dicom_destination_unknown(Some("PACS"), Some(pacs)), None);
        assert_eq!(
            inv.dicom_destination_unknown(Some("PACS"), Some(other)),
            Some("not at its inventory address")
        );
        assert_eq!(
            inv.dicom_destination_unknown(Some("NOBODY"), Some(pacs)),
            Some("not in the DICOM inventory")
        );
        // `ip = "*"`: anywhere inside is fine, outside is still outside.
        assert_eq!(inv.dicom_destination_unknown(Some("ROAMER"), Some(other)), None);
        assert_eq!(
            inv.dicom_destination_unknown(Some("ROAMER"), Some(outside)),
            Some("outside the internal networks")
        );
        // An IPv4-mapped IPv6 address is the IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(inv.dicom_destination_unknown(Some("PACS"), Some(mapped)), None);
    }

    #[test]
    fn hl7_receivers_match_address_and_port() {
        let inv = index(INVENTORY);
        let rx: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(inv.hl7_destination_unknown(rx, Some(2575)), None);
        assert_eq!(inv.hl7_destination_unknown(rx, None), None);
        assert_eq!(
            inv.hl7_destination_unknown(rx, Some(2576)),
            Some("not in the HL7 inventory")
        );
    }

    #[test]
    fn exemptions_take_names_and_addresses() {
        let inv = index(INVENTORY);
        assert!(inv.is_exempt(EntRef::User("root")));
        assert!(inv.is_exempt(EntRef::Ae("root")));
        assert!(inv.is_exempt(EntRef::Ip("10.9.9.9".parse().unwrap())));
        assert!(!inv.is_exempt(EntRef::User("alice")));
    }

    #[test]
    fn image_servers_default_to_pacs_nodes_else_any_internal_server() {
        let inv = index(INVENTORY);
        assert!(!inv.https_any_internal);
        assert!(inv.is_image_server("10.0.0.5".parse().unwrap()));
        assert!(!inv.is_image_server("10.0.0.6".parse().unwrap()));
        let bare = index("[networks]\ninternal = [\"10.0.0.0/8\"]\n");
        assert!(bare.https_any_internal);
        assert!(bare.is_image_server("10.0.0.6".parse().unwrap()));
        assert!(!bare.is_image_server("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn inventory_devices_of_a_user_and_an_ae() {
        let inv = index(INVENTORY);
        let alice = InvDevices::User(inv.users.get("alice").expect("alice"));
        assert!(alice.contains(&Device::parse("10.1.1.1")));
        assert!(!alice.contains(&Device::parse("10.1.1.2")));
        assert!(alice.has_kind(true) && alice.has_kind(false));
        let pacs = InvDevices::Ae(inv.dicom.get("PACS").expect("PACS"));
        assert!(pacs.contains(&Device::parse("10.0.0.5")));
        assert!(!pacs.has_kind(true));
        assert_eq!(pacs.names(), vec!["10.0.0.5".to_string()]);
        // A wildcard address names no device.
        assert!(InvDevices::Ae(inv.dicom.get("ROAMER").expect("ROAMER"))
            .names()
            .is_empty());
        assert!(InvDevices::None.is_empty());
    }

    /// Issue 14: a dual-stack node, a workstation pool and a receiver pair are one entry each;
    /// every look-up uses list / CIDR membership.
    #[test]
    fn address_lists_and_ranges_are_matched_by_membership() {
        let inv = index(
            r#"
[networks]
internal = ["10.0.0.0/8", "fd00::/8"]
[[inventory.dicom]]
ae = "PACS"
ip = ["10.0.0.5", "fd00::5"]
role = "pacs"
[[inventory.dicom]]
ae = "WS"
ip = "10.3.0.0/24"
[[inventory.hl7]]
ip = ["10.0.0.7", "10.0.0.8"]
port = 2575
[[inventory.users]]
name = "bob"
devices = ["10.20.30.0/24", "ja4:t13"]
"#,
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (ae, addr, unknown) in [
            ("PACS", "10.0.0.5", None),
            ("PACS", "fd00::5", None),
            ("PACS", "fd00::6", Some("not at its inventory address")),
            ("WS", "10.3.0.77", None),
            ("WS", "10.3.1.77", Some("not at its inventory address")),
        ] {
            assert_eq!(
                inv.dicom_destination_unknown(Some(ae), Some(ip(addr))),
                unknown,
                "{ae} {addr}"
            );
        }
        assert_eq!(inv.hl7_destination_unknown(ip("10.0.0.8"), Some(2575)), None);
        assert!(inv.hl7_destination_unknown(ip("10.0.0.9"), Some(2575)).is_some());
        assert!(inv.is_image_server(ip("fd00::5")));
        let bob = InvDevices::User(inv.users.get("bob").expect("bob"));
        assert!(bob.contains(&Device::parse("10.20.30.31")));
        assert!(!bob.contains(&Device::parse("10.20.31.31")));
        assert!(bob.has_kind(false) && bob.has_kind(true));
        assert_eq!(bob.names(), vec!["ja4:t13".to_string(), "10.20.30.0/24".to_string()]);
        let ws = InvDevices::Ae(inv.dicom.get("WS").expect("WS"));
        assert!(ws.contains(&Device::parse("10.3.0.9")));
        assert_eq!(ws.names(), vec!["10.3.0.0/24".to_string()]);
    }

    #[test]
    fn labels_join_display_name_and_role_when_configured() {
        assert_eq!(label(Some("CT 2"), Some("modality")).as_deref(), Some("CT 2, modality"));
        assert_eq!(label(None, Some("radiologist")).as_deref(), Some("radiologist"));
        assert_eq!(label(Some("  "), None), None);
        assert_eq!(label(None, None), None);
        let inv = InventoryIndex::new(&crate::testkit::config(
            "[[inventory.dicom]]\nae = \"CT2\"\nrole = \"modality\"\ndisplay_name = \"CT scanner 2\"\n\
             [[inventory.dicom]]\nae = \"WS\"\n\
             [[inventory.dicom]]\nae = \"PACS\"\nrole = \"pacs\"\n\
             [[inventory.users]]\nname = \"rad1\"\ndisplay_name = \"Dr. A. Example\"\n",
        ));
        assert_eq!(inv.label(EntityKind::Ae, "CT2"), Some("CT scanner 2, modality"));
        assert_eq!(inv.label(EntityKind::Ae, "PACS"), Some("pacs"));
        // Role `other` (the default) and no name: nothing to show.
        assert_eq!(inv.label(EntityKind::Ae, "WS"), None);
        assert_eq!(inv.label(EntityKind::User, "rad1"), Some("Dr. A. Example"));
        assert_eq!(inv.label(EntityKind::User, "CT2"), None);
    }

    #[test]
    fn the_alert_summary_names_the_user_only_when_a_name_or_role_is_configured() {
        use crate::testkit::*;
        let summary = |toml: &str| {
            let mut r = Run::new(toml);
            let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
            let (t, f, mut h) = http(0, f, "/admin/users", 201, Some("mallory"));
            h.admin_action = Some("user_created".into());
            r.feed(http_ev((t, f, h)));
            let a = r.alerts("admin_change");
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].entity.id, "mallory");
            a[0].summary.clone()
        };
        let plain = summary("");
        assert!(plain.starts_with("User mallory made an admin change"), "{plain}");
        let named =
            summary("[[inventory.users]]\nname = \"mallory\"\ndisplay_name = \"M. Example\"\nrole = \"PACS admin\"\n");
        assert!(
            named.starts_with("User mallory (M. Example, PACS admin) made an admin change"),
            "{named}"
        );
    }
}
