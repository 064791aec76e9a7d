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

/// An inventory address: an IP, or `"*"` for any address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrMatch {
    Any,
    Ip(IpAddr),
}

impl AddrMatch {
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            AddrMatch::Any => true,
            AddrMatch::Ip(a) => canonical_ip(*a) == canonical_ip(ip),
        }
    }
}

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
        }
    }
}

impl<'de> Deserialize<'de> for AddrMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t == "*" || t.is_empty() {
            return Ok(AddrMatch::Any);
        }
        t.parse::<IpAddr>()
            .map(AddrMatch::Ip)
            .map_err(|_| de::Error::custom(format!("expected an IP address or \"*\", found {t:?}")))
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
    /// Absent or `"*"`: any address.
    #[serde(default = "any_addr")]
    pub ip: AddrMatch,
    #[serde(default)]
    pub role: NodeRole,
}

fn any_addr() -> AddrMatch {
    AddrMatch::Any
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
    pub ip: AddrMatch,
    /// Absent: any port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `[[inventory.users]]`: a known user and the devices it normally uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryUser {
    pub name: String,
    /// IPs, MACs, or `ja4:<fingerprint>`; learned state adds to these at run time.
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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
