//! The TOML configuration of CONTRACT §3, with the checklist's seed thresholds as defaults.
//!
//! Every table denies unknown keys (a typo must not silently fall back to a default), and every
//! error names the key and its line and column, e.g.
//! `rules.bulk_export.threshold at line 12, column 13: expected a non-negative integer, found string "many"`.
//! [`Config::render_effective`] prints every effective setting, defaults included, as TOML that
//! [`Config::from_toml_str`] reads back to the same [`Config`].

mod duration;
mod locate;

pub use duration::Dur;

use ipnet::IpNet;
use pacstap_core::Severity;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A configuration problem, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The TOML is malformed or a value is not acceptable.
    #[error("{0}")]
    Invalid(ConfigIssue),
}

/// What is wrong and where: `key at line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path (`rules.bulk_export.threshold`, `inventory.dicom[1].ip`), when known.
    pub key: Option<String>,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, self.line) {
            (Some(k), 0) => write!(f, "{k}: {}", self.message),
            (Some(k), l) => write!(f, "{k} at line {l}, column {}: {}", self.column, self.message),
            (None, 0) => f.write_str(&self.message),
            (None, l) => write!(f, "line {l}, column {}: {}", self.column, self.message),
        }
    }
}

impl ConfigError {
    /// The key the error is about, if known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid(i) => i.key.as_deref(),
            ConfigError::Io { .. } => None,
        }
    }
}

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

/// Alert severity as written in the config (`info`, `warning`, `high`, `critical`).
mod severity_serde {
    use super::*;

    pub fn parse(s: &str) -> Result<Severity, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "expected one of \"info\", \"warning\", \"high\", \"critical\", found {other:?}"
            )),
        }
    }

    pub fn serialize<S: Serializer>(v: &Severity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(de::Error::custom)
    }
}

/// A rule that counts something in a sliding window and fires above `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    pub enabled: bool,
    /// Fires when the count in the window rises above this.
    pub threshold: u64,
    pub window: Dur,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
}

/// `bulk_export`: distinct studies exported in `window` above `threshold`, or, for encrypted
/// downloads whose studies cannot be seen, bytes served over HTTPS to one client address in
/// `window` above `https_bytes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRule {
    pub enabled: bool,
    /// Fires when the distinct studies exported in the window rise above this.
    pub threshold: u64,
    pub window: Dur,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// Fires when the bytes that image servers sent one client over TLS in the window rise
    /// above this; 0 turns the HTTPS volume off. The default, 2 GB, is about fifteen average
    /// CT / MR studies of 100-200 MB each, the size of the study threshold, so both halves of
    /// the rule mean "about the same amount of imaging". A TLS connection counts when it ends
    /// (its `tls` event carries the totals).
    pub https_bytes: u64,
    /// The HTTPS servers whose downloads count: addresses or CIDR ranges of the DICOMweb /
    /// web-viewer front ends (reverse proxies included). Empty (the default): the addresses of
    /// `[[inventory.dicom]]` nodes with role `pacs` or `archive`, and when the inventory names
    /// none, any TLS server inside `networks.internal`. Restricting to the image servers keeps
    /// internal HTTPS that is not imaging (software updates, file shares) out of the count.
    pub https_servers: Vec<Net>,
}

/// A rule that fires on the first occurrence; further occurrences for the same entity within
/// `window` of the previous one are updates of the same alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstantRule {
    pub enabled: bool,
    pub window: Dur,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
}

/// `export_above_baseline`: distinct studies in `window` above both `threshold` and `factor`
/// times the entity's own learned rate, once it has `min_history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRule {
    pub enabled: bool,
    /// Minimum distinct studies in the window before the rule may fire at all.
    pub threshold: u64,
    pub window: Dur,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// How many times the learned per-window rate the current window must exceed.
    pub factor: f64,
    /// Time since the entity's first export before its baseline is trusted.
    pub min_history: Dur,
    /// Half-life of the exponentially decayed rate.
    pub half_life: Dur,
}

/// `sharing_spike`: share actions, or distinct external recipients, per account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingRule {
    pub enabled: bool,
    /// Share actions in the window above which the rule fires.
    pub threshold: u64,
    /// Distinct external recipients in the window above which the rule fires.
    pub recipients_threshold: u64,
    pub window: Dur,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// E-mail domains that are ours: recipients there (or in a subdomain) are not external.
    pub internal_domains: Vec<String>,
}

macro_rules! rules_table {
    ($( $field:ident : $ty:ident = $default:expr ),* $(,)?) => {
        /// `[rules.<id>]`, one table per rule id of CONTRACT §2. A table may set only some keys;
        /// the others keep that rule's default.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(from = "RawRules")]
        pub struct Rules {
            $( pub $field: $ty, )*
        }

        impl Default for Rules {
            fn default() -> Self {
                Rules { $( $field: $default, )* }
            }
        }

        #[derive(Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
        struct RawRules {
            $( $field: Option<partial_of!($ty)>, )*
        }

        impl From<RawRules> for Rules {
            fn from(raw: RawRules) -> Rules {
                let d = Rules::default();
                Rules {
                    $( $field: match raw.$field {
                        Some(p) => p.merge(d.$field),
                        None => d.$field,
                    }, )*
                }
            }
        }
    };
}

macro_rules! partial_of {
    (ThresholdRule) => {
        PartialThreshold
    };
    (InstantRule) => {
        PartialInstant
    };
    (BaselineRule) => {
        PartialBaseline
    };
    (SharingRule) => {
        PartialSharing
    };
    (ExportRule) => {
        PartialExport
    };
}

rules_table! {
    login_failures_user: ThresholdRule = ThresholdRule { enabled: true, threshold: 8, window: Dur::secs(600), severity: Severity::Warning },
    login_failures_source: ThresholdRule = ThresholdRule { enabled: true, threshold: 20, window: Dur::secs(600), severity: Severity::Warning },
    login_success_after_failures: ThresholdRule = ThresholdRule { enabled: true, threshold: 5, window: Dur::secs(600), severity: Severity::High },
    new_device: InstantRule = InstantRule { enabled: true, window: Dur::secs(3600), severity: Severity::Warning },
    new_location: InstantRule = InstantRule { enabled: true, window: Dur::secs(3600), severity: Severity::High },
    admin_change: InstantRule = InstantRule { enabled: true, window: Dur::secs(600), severity: Severity::Warning },
    bulk_export: ExportRule = ExportRule {
        enabled: true, threshold: 15, window: Dur::secs(1800), severity: Severity::High,
        https_bytes: 2_000_000_000, https_servers: Vec::new(),
    },
    export_above_baseline: BaselineRule = BaselineRule {
        enabled: true, threshold: 5, window: Dur::secs(3600), severity: Severity::High,
        factor: 10.0, min_history: Dur::secs(7 * 86_400), half_life: Dur::secs(7 * 86_400),
    },
    unknown_destination: InstantRule = InstantRule { enabled: true, window: Dur::secs(3600), severity: Severity::High },
    sharing_spike: SharingRule = SharingRule {
        enabled: true, threshold: 10, recipients_threshold: 5, window: Dur::secs(3600), severity: Severity::High,
        internal_domains: Vec::new(),
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialThreshold {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window: Option<Dur>,
    #[serde(default, deserialize_with = "opt_severity")]
    severity: Option<Severity>,
}

impl PartialThreshold {
    fn merge(self, d: ThresholdRule) -> ThresholdRule {
        ThresholdRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            window: self.window.unwrap_or(d.window),
            severity: self.severity.unwrap_or(d.severity),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialExport {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window: Option<Dur>,
    #[serde(default, deserialize_with = "opt_severity")]
    severity: Option<Severity>,
    https_bytes: Option<u64>,
    https_servers: Option<Vec<Net>>,
}

impl PartialExport {
    fn merge(self, d: ExportRule) -> ExportRule {
        ExportRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            window: self.window.unwrap_or(d.window),
            severity: self.severity.unwrap_or(d.severity),
            https_bytes: self.https_bytes.unwrap_or(d.https_bytes),
            https_servers: self.https_servers.unwrap_or(d.https_servers),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialInstant {
    enabled: Option<bool>,
    window: Option<Dur>,
    #[serde(default, deserialize_with = "opt_severity")]
    severity: Option<Severity>,
}

impl PartialInstant {
    fn merge(self, d: InstantRule) -> InstantRule {
        InstantRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            window: self.window.unwrap_or(d.window),
            severity: self.severity.unwrap_or(d.severity),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialBaseline {
    enabled: Option<bool>,
    threshold: Option<u64>,
    window: Option<Dur>,
    #[serde(default, deserialize_with = "opt_severity")]
    severity: Option<Severity>,
    factor: Option<f64>,
    min_history: Option<Dur>,
    half_life: Option<Dur>,
}

impl PartialBaseline {
    fn merge(self, d: BaselineRule) -> BaselineRule {
        BaselineRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            window: self.window.unwrap_or(d.window),
            severity: self.severity.unwrap_or(d.severity),
            factor: self.factor.unwrap_or(d.factor),
            min_history: self.min_history.unwrap_or(d.min_history),
            half_life: self.half_life.unwrap_or(d.half_life),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialSharing {
    enabled: Option<bool>,
    threshold: Option<u64>,
    recipients_threshold: Option<u64>,
    window: Option<Dur>,
    #[serde(default, deserialize_with = "opt_severity")]
    severity: Option<Severity>,
    internal_domains: Option<Vec<String>>,
}

impl PartialSharing {
    fn merge(self, d: SharingRule) -> SharingRule {
        SharingRule {
            enabled: self.enabled.unwrap_or(d.enabled),
            threshold: self.threshold.unwrap_or(d.threshold),
            recipients_threshold: self.recipients_threshold.unwrap_or(d.recipients_threshold),
            window: self.window.unwrap_or(d.window),
            severity: self.severity.unwrap_or(d.severity),
            internal_domains: self.internal_domains.unwrap_or(d.internal_domains),
        }
    }
}

fn opt_severity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Severity>, D::Error> {
    severity_serde::deserialize(d).map(Some)
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

impl Config {
    /// Parse and validate a TOML document.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(s).map_err(|e| ConfigError::Invalid(locate::from_toml_error(s, &e)))?;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid(locate::at_key(s, &key, message)))?;
        Ok(cfg)
    }

    /// Read, parse and validate a file. Relative file paths in it (`geoip.database`,
    /// `geoip.csv`) are resolved against the file's directory, not the working directory: a
    /// service started from `/` and a replay started from a checkout read the same database,
    /// and [`Config::render_effective`] shows the path that is opened.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::from_toml_str(&s)?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Make relative file paths absolute against `base` (the config file's directory).
    /// Absolute paths are kept as written.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.geoip.database, &mut self.geoip.csv].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Every effective setting, defaults included, as TOML (for `pacstap config check`).
    pub fn render_effective(&self) -> String {
        match toml::to_string(self) {
            Ok(s) => format!("# pacstap effective configuration (defaults included)\n\n{s}"),
            // Serialization of these plain types cannot fail; say so rather than panic.
            Err(e) => format!("# cannot render the effective config: {e}\n"),
        }
    }

    /// Cross-field checks; the error names the key path.
    fn validate(&self) -> Result<(), (String, String)> {
        for (key, ports) in [
            ("decapsulate.vxlan_ports", &self.decapsulate.vxlan_ports),
            ("decapsulate.geneve_ports", &self.decapsulate.geneve_ports),
        ] {
            if ports.contains(&0) {
                return Err((key.into(), "0 is not a UDP port".into()));
            }
        }
        let cap = self.detect.max_window_items as u64;
        if cap < 2 {
            return Err(("detect.max_window_items".into(), "must be at least 2".into()));
        }
        if self.detect.max_entities == 0 {
            return Err(("detect.max_entities".into(), "must be at least 1".into()));
        }
        if self.detect.max_learned_entities == 0 {
            return Err(("detect.max_learned_entities".into(), "must be at least 1".into()));
        }
        if self.detect.max_devices_per_entity == 0 {
            return Err(("detect.max_devices_per_entity".into(), "must be at least 1".into()));
        }
        let r = &self.rules;
        let windowed: [(&str, u64, Dur); 5] = [
            (
                "login_failures_user",
                r.login_failures_user.threshold,
                r.login_failures_user.window,
            ),
            (
                "login_failures_source",
                r.login_failures_source.threshold,
                r.login_failures_source.window,
            ),
            (
                "login_success_after_failures",
                r.login_success_after_failures.threshold,
                r.login_success_after_failures.window,
            ),
            ("bulk_export", r.bulk_export.threshold, r.bulk_export.window),
            (
                "export_above_baseline",
                r.export_above_baseline.threshold,
                r.export_above_baseline.window,
            ),
        ];
        for (id, threshold, window) in windowed {
            if threshold >= cap {
                return Err((
                    format!("rules.{id}.threshold"),
                    format!("must be below detect.max_window_items ({cap}): counts saturate there"),
                ));
            }
            if window.is_zero() {
                return Err((format!("rules.{id}.window"), "must be longer than 0s".into()));
            }
        }
        for (key, v) in [
            ("threshold", r.sharing_spike.threshold),
            ("recipients_threshold", r.sharing_spike.recipients_threshold),
        ] {
            if v >= cap {
                return Err((
                    format!("rules.sharing_spike.{key}"),
                    format!("must be below detect.max_window_items ({cap}): counts saturate there"),
                ));
            }
        }
        if r.sharing_spike.window.is_zero() {
            return Err(("rules.sharing_spike.window".into(), "must be longer than 0s".into()));
        }
        for (id, rule) in [
            ("new_device", &r.new_device),
            ("new_location", &r.new_location),
            ("admin_change", &r.admin_change),
            ("unknown_destination", &r.unknown_destination),
        ] {
            if rule.window.is_zero() {
                return Err((format!("rules.{id}.window"), "must be longer than 0s".into()));
            }
        }
        let b = &r.export_above_baseline;
        if !(b.factor.is_finite() && b.factor > 0.0) {
            return Err((
                "rules.export_above_baseline.factor".into(),
                "must be a positive number".into(),
            ));
        }
        if b.half_life.is_zero() {
            return Err((
                "rules.export_above_baseline.half_life".into(),
                "must be longer than 0s".into(),
            ));
        }
        if self.geoip.database.is_some() && self.geoip.csv.is_some() {
            return Err((
                "geoip.csv".into(),
                "give either geoip.database or geoip.csv, not both".into(),
            ));
        }
        for (i, node) in self.inventory.dicom.iter().enumerate() {
            let ae = node.ae.trim();
            // PS3.5 §6.2: an AE title is at most 16 characters, not all spaces.
            if ae.is_empty() || ae.chars().count() > 16 {
                return Err((
                    format!("inventory.dicom[{i}].ae"),
                    "an AE title has 1 to 16 characters (PS3.5 §6.2)".into(),
                ));
            }
        }
        for (i, u) in self.inventory.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err((format!("inventory.users[{i}].name"), "must not be empty".into()));
            }
        }
        if self.evidence.max_tracked_per_incident == 0 {
            return Err(("evidence.max_tracked_per_incident".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_thresholds() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.rules.login_failures_user.threshold, 8);
        assert_eq!(c.rules.login_failures_user.window.as_secs(), 600);
        assert_eq!(c.rules.login_failures_source.threshold, 20);
        assert_eq!(c.rules.bulk_export.threshold, 15);
        assert_eq!(c.rules.bulk_export.window.as_secs(), 1800);
        assert_eq!(c.ports.dicom, vec![104, 11112, 4242]);
        assert_eq!(c, Config::default());
    }

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
    fn partial_rule_table_keeps_that_rules_defaults() {
        let c = Config::from_toml_str("[rules.bulk_export]\nthreshold = 40\n").unwrap();
        assert_eq!(c.rules.bulk_export.threshold, 40);
        assert_eq!(c.rules.bulk_export.window.as_secs(), 1800);
        assert_eq!(c.rules.bulk_export.severity, Severity::High);
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

    #[test]
    fn render_effective_round_trips_defaults() {
        let c = Config::default();
        let text = c.render_effective();
        assert!(text.contains("[rules.bulk_export]"), "{text}");
        assert!(text.contains("window = \"30m\""), "{text}");
        assert_eq!(Config::from_toml_str(&text).unwrap(), c);
    }

    fn err(s: &str) -> String {
        Config::from_toml_str(s).unwrap_err().to_string()
    }

    #[test]
    fn type_error_names_key_and_line() {
        let s = "[rules.login_failures_user]\nthreshold = 8\n\n[rules.bulk_export]\nthreshold = \"many\"\n";
        let e = err(s);
        assert!(
            e.starts_with("rules.bulk_export.threshold at line 5, column 13: "),
            "{e}"
        );
        assert!(
            e.ends_with("expected a non-negative integer, found string \"many\""),
            "{e}"
        );
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

    #[test]
    fn validation_errors_name_key_and_line() {
        let e = err("[detect]\nmax_window_items = 100\n\n[rules.bulk_export]\nthreshold = 150\n");
        assert!(
            e.starts_with(
                "rules.bulk_export.threshold at line 5, column 13: must be below detect.max_window_items (100)"
            ),
            "{e}"
        );
        let e = err("[rules.bulk_export]\nwindow = \"0s\"\n");
        assert!(e.starts_with("rules.bulk_export.window at line 2, column 10: "), "{e}");
        // A key that is not in the file (default) is still named.
        let e = err("[detect]\nmax_window_items = 10\n");
        assert!(
            e.starts_with("rules.login_failures_source.threshold: must be below"),
            "{e}"
        );
        let e = err("[[inventory.dicom]]\nae = \"WAY-TOO-LONG-AE-TITLE\"\n");
        assert!(e.starts_with("inventory.dicom[0].ae at line 2, column 6"), "{e}");
    }

    #[test]
    fn bulk_export_https_keys() {
        let c = Config::default();
        assert_eq!(c.rules.bulk_export.https_bytes, 2_000_000_000);
        assert!(c.rules.bulk_export.https_servers.is_empty());
        let c = Config::from_toml_str(
            "[rules.bulk_export]\nhttps_bytes = 50_000_000\nhttps_servers = [\"10.20.0.10\", \"10.30.0.0/24\"]\n",
        )
        .unwrap();
        assert_eq!(c.rules.bulk_export.https_bytes, 50_000_000);
        assert_eq!(c.rules.bulk_export.threshold, 15, "other keys keep their defaults");
        assert_eq!(c.rules.bulk_export.https_servers.len(), 2);
        let text = c.render_effective();
        assert!(text.contains("https_bytes = 50000000"), "{text}");
        assert!(text.contains("10.20.0.10/32"), "{text}");
        assert_eq!(Config::from_toml_str(&text).unwrap(), c);
        let e = err("[rules.bulk_export]\nhttps_bytes = \"2GB\"\n");
        assert!(
            e.starts_with("rules.bulk_export.https_bytes at line 2, column 15: "),
            "{e}"
        );
        let e = err("[rules.bulk_export]\nhttps_servers = [\"10.20.0.10\", \"pacs\"]\n");
        assert!(e.starts_with("rules.bulk_export.https_servers[1] at line 2"), "{e}");
        // The HTTPS keys belong to bulk_export only.
        let e = err("[rules.sharing_spike]\nhttps_bytes = 1\n");
        assert!(e.starts_with("rules.sharing_spike.https_bytes at line 2"), "{e}");
    }

    #[test]
    fn relative_geoip_paths_resolve_against_the_config_file() {
        let dir = std::env::temp_dir().join(format!("pacstap-cfg-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pacstap.toml");
        std::fs::write(&file, "[geoip]\ncsv = \"geo/countries.csv\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.geoip.csv.as_deref(), Some(dir.join("geo/countries.csv").as_path()));
        std::fs::write(
            &file,
            "[geoip]\ndatabase = \"/usr/share/GeoIP/GeoLite2-Country.mmdb\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.geoip.database.as_deref(),
            Some(Path::new("/usr/share/GeoIP/GeoLite2-Country.mmdb")),
            "absolute paths are kept"
        );
        // From a string there is no file: paths stay as written.
        let c = Config::from_toml_str("[geoip]\ncsv = \"geo.csv\"\n").unwrap();
        assert_eq!(c.geoip.csv.as_deref(), Some(Path::new("geo.csv")));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[rules\nthreshold = 3\n");
        assert!(e.contains("line 1"), "{e}");
    }
}
