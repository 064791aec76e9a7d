//! The TOML configuration of CONTRACT §3, with the checklist's seed thresholds as defaults.
//!
//! Every table denies unknown keys (a typo must not silently fall back to a default), and every
//! error names the key and its line and column, e.g.
//! `rules.bulk_export.threshold at line 12, column 13: expected a non-negative integer, found string "many"`.
//! [`Config::render_effective`] prints every effective setting, defaults included, as TOML that
//! [`Config::from_toml_str`] reads back to the same [`Config`].

mod duration;
mod error;
mod load;
mod locate;
mod rules;
mod validate;

pub use duration::Dur;
pub use error::{ConfigError, ConfigIssue};
pub use rules::{BaselineRule, ExportRule, InstantRule, Rules, SharingRule, ThresholdRule};

use ipnet::IpNet;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::net::IpAddr;
use std::path::PathBuf;

/// The whole configuration (CONTRACT §3), every value resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub networks: Networks,
    pub users: Users,
    pub rules: Rules,
    pub geoip: GeoIpConfig,
    pub ports: Ports,
    pub detect: DetectSettings,
    pub evidence: EvidenceSettings,
    pub inventory: Inventory,
    pub decapsulate: Decapsulate,
}

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
/// relative to that file's directory (see [`Config::load`]), so a config and its database can
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

/// `[ports]`: port hints for the decoders (content detection works on any port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ports {
    pub dicom: Vec<u16>,
    pub http: Vec<u16>,
    pub tls: Vec<u16>,
    pub hl7: Vec<u16>,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            dicom: vec![104, 11112, 4242],
            http: vec![80, 8042, 8080],
            tls: vec![443, 2762, 8443],
            hl7: vec![2575],
        }
    }
}

/// `[decapsulate]`: which tunnels the wire stage peels (pacstap-wire's `WireConfig`; the
/// `--decapsulate` option overrides it). GRE, ERSPAN, MPLS and PPPoE are recognised by their IP
/// protocol or EtherType and need no setting; VXLAN and Geneve only by a UDP destination port:
/// the IANA ports by default (VXLAN 4789, RFC 7348 §5; Geneve 6081, RFC 8926 §3.3), plus e.g.
/// 8472, Linux's historical VXLAN port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Decapsulate {
    /// `false`: no tunnel is peeled (tunnelled frames count as non-TCP / non-IP).
    pub enabled: bool,
    pub vxlan_ports: Vec<u16>,
    pub geneve_ports: Vec<u16>,
}

impl Default for Decapsulate {
    fn default() -> Self {
        Decapsulate {
            enabled: true,
            vxlan_ports: vec![4789],
            geneve_ports: vec![6081],
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decapsulate_table() {
        assert_eq!(Config::default().decapsulate.vxlan_ports, [4789]);
        let c = Config::from_toml_str("[decapsulate]\nvxlan_ports = [4789, 8472]\n").unwrap();
        assert_eq!(c.decapsulate.vxlan_ports, [4789, 8472]);
        assert_eq!(c.decapsulate.geneve_ports, [6081]);
        assert!(c.decapsulate.enabled);
        let e = Config::from_toml_str("[decapsulate]\ngeneve_ports = [0]\n").unwrap_err();
        assert_eq!(e.key(), Some("decapsulate.geneve_ports"));
    }

    #[test]
    fn contract_example_parses() {
        let s = r#"
[networks]
internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]

[[inventory.dicom]]
ae = "PACS1"
ip = "10.20.0.10"
role = "pacs"

[[inventory.dicom]]
ae = "ANY1"
ip = "*"

[[inventory.hl7]]
ip = "10.20.0.30"
port = 2575

[[inventory.users]]
name = "rad1"
devices = ["10.20.30.31"]
role = "radiologist"

[users]
admins = ["admin"]
service_accounts = []

[rules.login_failures_user]
threshold = 8
window = "10m"

[geoip]
database = "/usr/share/GeoIP/GeoLite2-Country.mmdb"

[ports]
dicom = [104, 11112, 4242]
http = [80, 8042, 8080]
tls = [443, 2762, 8443]
hl7 = [2575]
"#;
        let c = Config::from_toml_str(s).unwrap();
        assert_eq!(c.inventory.dicom.len(), 2);
        assert_eq!(c.inventory.dicom[1].ip, AddrMatch::Any);
        assert_eq!(c.inventory.dicom[0].role, NodeRole::Pacs);
        assert_eq!(c.networks.internal.len(), 3);
        let back = Config::from_toml_str(&c.render_effective()).unwrap();
        assert_eq!(back, c);
    }

    fn err(s: &str) -> String {
        Config::from_toml_str(s).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let e = err("[rules.bulk_export]\nthreshhold = 3\n");
        assert!(
            e.starts_with("rules.bulk_export.threshhold at line 2, column 1: "),
            "{e}"
        );
        assert!(e.contains("unknown field"), "{e}");
        let e = err("[detect]\nmax_entitie = 3\n");
        assert!(e.starts_with("detect.max_entitie at line 2"), "{e}");
        let e = err("[nosuch]\n");
        assert!(e.contains("nosuch") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err("[networks]\ninternal = [\"10.0.0.0/8\", \"10.0.0.300/8\"]\n");
        assert!(e.starts_with("networks.internal[1] at line 2, column 27: "), "{e}");
        let e = err("[rules.bulk_export]\nwindow = \"10 minutes\"\n");
        assert!(e.starts_with("rules.bulk_export.window at line 2, column 10: "), "{e}");
        let e = err("[rules.new_device]\nseverity = \"urgent\"\n");
        assert!(e.starts_with("rules.new_device.severity at line 2"), "{e}");
        let e = err("[[inventory.dicom]]\nae = \"PACS1\"\n[[inventory.dicom]]\nae = \"X\"\nip = \"nope\"\n");
        assert!(e.starts_with("inventory.dicom[1].ip at line 5, column 6: "), "{e}");
    }
}
