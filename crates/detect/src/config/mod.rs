//! What detection is configured with ([`DetectConfig`]): the networks that are ours, the users
//! exempt from export rules, the rules' thresholds (CONTRACT §2, the checklist's seed values as
//! defaults), the inventory, the GeoIP source, the engine's bounds and the alerts' evidence caps.
//!
//! These are plain values. They keep their serde derives (with `deny_unknown_fields`: a typo
//! must not fall back to a default) because they are the vocabulary of the TOML file, but
//! reading, locating errors in, validating and rendering that file is the app's job
//! (`pacstap::config`), which also owns the tables detection does not use (`[ports]`,
//! `[decapsulate]`) and hands detection its part.

mod duration;
mod rules;

pub use duration::Dur;
pub use rules::{BaselineRule, ExportRule, InstantRule, Rules, SharingRule, ThresholdRule};

use ipnet::IpNet;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::net::IpAddr;
use std::path::PathBuf;

/// Detection's part of the configuration (CONTRACT §3), every value resolved: what
/// [`crate::Detector`] takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    pub networks: Networks,
    pub users: Users,
    pub rules: Rules,
    pub geoip: GeoIpConfig,
    pub detect: DetectSettings,
    pub evidence: EvidenceSettings,
    pub inventory: Inventory,
}

/// The name detection's code and tests use for [`DetectConfig`].
pub type Config = DetectConfig;

/// `[networks]`: address ranges that are ours; anything else is external.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Networks {
    pub internal: Vec<Net>,
}

impl Default for Networks {
    fn default() -> Self {
        // CONTRACT §3's RFC 1918 ranges, plus the IPv6 equivalents a user expects to be
        // internal: unique local (RFC 4193, fc00::/7) and link-local (RFC 4291, fe80::/10).
        let internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"]
            .iter()
            .filter_map(|s| s.parse::<IpNet>().ok())
            .map(Net)
            .collect();
        Networks { internal }
    }
}

/// A CIDR range; a bare address means that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net(pub IpNet);

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<IpNet>() {
            return Ok(Net(n.trunc()));
        }
        t.parse::<IpAddr>()
            .map(|a| Net(IpNet::from(a)))
            .map_err(|_| format!("expected an address range in CIDR notation (e.g. 10.0.0.0/8), found {t:?}"))
    }
}

impl Serialize for Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Net::parse(&s).map_err(de::Error::custom)
    }
}

/// An inventory address: an IP, a CIDR range (a workstation pool), or `"*"` for any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrMatch {
    Any,
    Ip(IpAddr),
    Net(IpNet),
}

impl AddrMatch {
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            AddrMatch::Any => true,
            AddrMatch::Ip(a) => canonical_ip(*a) == canonical_ip(ip),
            AddrMatch::Net(n) => n.contains(&canonical_ip(ip)),
        }
    }

    /// `"*"`, an IP or a CIDR. A single address written as `/32` (`/128`) is that address.
    pub fn parse(s: &str) -> Result<AddrMatch, String> {
        let t = s.trim();
        if t == "*" || t.is_empty() {
            return Ok(AddrMatch::Any);
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(AddrMatch::Ip(canonical_ip(ip)));
        }
        if let Ok(n) = t.parse::<IpNet>() {
            let n = n.trunc();
            return Ok(if n.prefix_len() == n.max_prefix_len() {
                AddrMatch::Ip(canonical_ip(n.addr()))
            } else {
                AddrMatch::Net(n)
            });
        }
        let looks_numeric = t.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '/');
        Err(if looks_numeric || t.contains(':') {
            format!("{t:?} is not a valid IP address or CIDR range")
        } else {
            format!("{t:?} is a host name; an address is needed (an IP, a CIDR range, or \"*\")")
        })
    }
}

/// One address or several (`ip = "10.0.0.5"` or `ip = ["10.0.0.5", "fd00::5", "10.9.0.0/24"]`):
/// a dual-stack node or a pool of workstations is one inventory entry. The single-string form
/// is kept and written back as such.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddrList(pub Vec<AddrMatch>);

impl AddrList {
    pub fn any() -> AddrList {
        AddrList(vec![AddrMatch::Any])
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|a| a.matches(ip))
    }

    pub fn is_any(&self) -> bool {
        self.0.iter().any(|a| matches!(a, AddrMatch::Any))
    }
}

impl Default for AddrList {
    fn default() -> Self {
        AddrList::any()
    }
}

impl From<AddrMatch> for AddrList {
    fn from(a: AddrMatch) -> Self {
        AddrList(vec![a])
    }
}

impl Serialize for AddrList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AddrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `#[serde(untagged)]`: the error of a bad element keeps its
        // own message and position (`inventory.dicom[0].ip[1] at line 5`).
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = AddrList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an IP address, a CIDR range, \"*\", or a list of these")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AddrList, E> {
                AddrMatch::parse(v).map(AddrList::from).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AddrList, A::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<AddrMatch>()? {
                    // A config file is the operator's, but a list still has a bound: the
                    // detector compares each address in turn.
                    if out.len() >= MAX_ADDRS_PER_ENTRY {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_ADDRS_PER_ENTRY} addresses per entry; use a CIDR range"
                        )));
                    }
                    out.push(a);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("an empty address list"));
                }
                Ok(AddrList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Addresses one inventory entry may list (dual-stack nodes and a few pools need a handful;
/// more is a CIDR range's job).
pub const MAX_ADDRS_PER_ENTRY: usize = 64;

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Serialize for AddrMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AddrMatch::Any => s.serialize_str("*"),
            AddrMatch::Ip(ip) => s.collect_str(ip),
            AddrMatch::Net(n) => s.collect_str(n),
        }
    }
}

impl<'de> Deserialize<'de> for AddrMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AddrMatch::parse(&s).map_err(de::Error::custom)
    }
}

/// `[inventory]`: the nodes, endpoints and users we know.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Inventory {
    pub dicom: Vec<DicomNode>,
    pub hl7: Vec<Hl7Endpoint>,
    pub users: Vec<InventoryUser>,
}

/// `[[inventory.dicom]]`: a known DICOM node. A destination not listed is unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomNode {
    pub ae: String,
    /// Absent or `"*"`: any address. One address, a CIDR range, or a list of these.
    #[serde(default)]
    pub ip: AddrList,
    #[serde(default)]
    pub role: NodeRole,
    /// What people call the node (`"CT scanner 2, radiology"`), shown beside the AE title in
    /// alert summaries; detection never uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl NodeRole {
    /// The config spelling, for alert text.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Pacs => "pacs",
            NodeRole::Modality => "modality",
            NodeRole::Workstation => "workstation",
            NodeRole::Archive => "archive",
            NodeRole::Router => "router",
            NodeRole::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Pacs,
    Modality,
    Workstation,
    Archive,
    Router,
    #[default]
    Other,
}

/// `[[inventory.hl7]]`: a known HL7 receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hl7Endpoint {
    /// One address, a CIDR range, or a list of these.
    pub ip: AddrList,
    /// Absent: any port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `[[inventory.users]]`: a known user and the devices it normally uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryUser {
    pub name: String,
    /// IPs, CIDR ranges, MACs, or `ja4:<fingerprint>`; learned state adds to these at run time.
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What people call the user (`"Dr. A. Example"`), shown beside the user id in alert
    /// summaries; detection never uses it. (`name` is the id on the wire.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `[users]`: who is exempt from the export rules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Users {
    /// Users / AEs whose exports are not `bulk_export` / `export_above_baseline` alerts.
    pub admins: Vec<String>,
    /// Prefetch / routing engines (users or AEs): exempt from the export rules.
    pub service_accounts: Vec<String>,
}

/// `[geoip]`: an operator-supplied database for `new_location`. Without one the rule is
/// skipped silently. Never looked up on the internet. A relative path in a config file is
/// relative to that file's directory (the app resolves it when it loads the file), so a config and its database can
/// move together.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoIpConfig {
    /// MaxMind DB (GeoLite2-Country / GeoIP2-Country / -City) file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<PathBuf>,
    /// CSV of `cidr,country` lines (`#` comments and a `network,…` header allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv: Option<PathBuf>,
}

/// `[detect]`: engine bounds and timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectSettings {
    /// Entities (users, AEs, IPs, destinations) with live window state; beyond it the one
    /// idle the longest is evicted (counted).
    pub max_entities: usize,
    /// Entities with learned state (devices, countries, baselines); evicted oldest-idle-first.
    pub max_learned_entities: usize,
    /// Items one window of one entity keeps: counts are exact up to it and saturate there, so
    /// every threshold must be below it. 512 × ~40 bytes bounds one window at ~20 KiB.
    pub max_window_items: usize,
    /// Devices (and countries) remembered per user / AE.
    pub max_devices_per_entity: usize,
    /// How often the app should persist learned state (`StateStore::save`).
    pub state_interval: Dur,
    /// New devices, countries and node addresses seen during this period (packet time from
    /// the first event of a fresh state) are learned silently.
    pub learning_period: Dur,
    /// How long C-MOVE / C-GET exports wait for their association's end (which carries the
    /// user identity) before they are attributed to the calling AE.
    pub identity_wait: Dur,
    /// At most one update per incident per this interval, unless its count grew by a
    /// threshold's worth.
    pub update_interval: Dur,
    /// DICOM flows whose exports wait for the association's user identity.
    pub max_pending_flows: usize,
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            max_entities: 100_000,
            max_learned_entities: 100_000,
            max_window_items: 512,
            max_devices_per_entity: 32,
            state_interval: Dur::secs(300),
            learning_period: Dur::secs(0),
            identity_wait: Dur::secs(300),
            update_interval: Dur::secs(60),
            max_pending_flows: 4096,
        }
    }
}

/// `[evidence]`: how much scope an alert carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSettings {
    /// Evidence pcap: packet headers always, payload up to this many bytes per flow.
    pub max_payload_bytes_per_flow: u64,
    /// Flow ids listed per alert (the total is given beside the list).
    pub max_flow_ids: usize,
    /// Study UIDs listed per alert (the total is given beside the list).
    pub max_study_uids: usize,
    /// Destinations (AEs, addresses, recipients) listed per alert (the total is given beside
    /// the list).
    pub max_destinations: usize,
    /// Distinct studies / flows an incident tracks for its totals; past it totals saturate.
    pub max_tracked_per_incident: usize,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            max_payload_bytes_per_flow: 1 << 20,
            max_flow_ids: 100,
            max_study_uids: 100,
            max_destinations: 100,
            max_tracked_per_incident: 10_000,
        }
    }
}
