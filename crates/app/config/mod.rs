//! The TOML configuration file of CONTRACT §3: reading it, locating errors in it, validating
//! it, rendering the effective settings back (`pacstap config check`), and handing each stage its
//! part: detection gets a [`DetectConfig`] ([`Config::detect_config`]); the decoders' port hints,
//! the wire stage's tunnels and the evidence ring's payload cap are derived here (`derive.rs`).
//!
//! Every table denies unknown keys (a typo must not silently fall back to a default), and every
//! error names the key and its line and column, e.g.
//! `rules.bulk_export.threshold at line 12, column 13: expected a non-negative integer, found string "many"`.
//! [`Config::render_effective`] prints every effective setting, defaults included, as TOML that
//! [`Config::from_toml_str`] reads back to the same [`Config`].
//!
//! The tables detection uses are `pacstap_detect::config`'s value types; `[ports]`,
//! `[decapsulate]`, `[defrag]` and `[capture]` are the app's, defined here.

mod check;
mod derive;
mod error;
mod load;
mod locate;
mod publish;
mod validate;

pub use check::{Finding, Level};
pub use derive::{add_ports, apply_ports, defrag_config, wire_config, WireOverrides};
pub use error::{ConfigError, ConfigIssue};
pub use pacstap_detect::config::{
    AddrList, AddrMatch, DetectConfig, DetectSettings, Dur, EvidenceSettings, GeoIpConfig, Inventory, Networks, Rules,
    Users,
};
pub use publish::{PublishConfig, PublishTls};

use serde::{Deserialize, Serialize};

/// The whole configuration file (CONTRACT §3), every value resolved. The field order is the
/// order `render_effective` prints the tables in.
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
    pub defrag: Defrag,
    pub capture: CaptureSettings,
    /// `[publish]`: events to NATS JetStream (issue 15, `config/publish.rs`).
    pub publish: PublishConfig,
}

impl Config {
    /// Detection's part: everything but the decoders' and the wire stage's tables.
    pub fn detect_config(&self) -> DetectConfig {
        DetectConfig {
            networks: self.networks.clone(),
            users: self.users.clone(),
            rules: self.rules.clone(),
            geoip: self.geoip.clone(),
            detect: self.detect.clone(),
            evidence: self.evidence.clone(),
            inventory: self.inventory.clone(),
        }
    }
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

/// `[defrag]`: IP defragmentation limits (pacstap-defrag's `DefragConfig`, whose docs give the
/// defaults' sources; `--defrag-memory` and `--defrag-timeout` override it). A SIGHUP reload
/// applies a change from the next frame on; datagrams already pending keep their fragments and
/// deadlines, and a smaller `memory` evicts the oldest of them at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defrag {
    /// Bytes held for all pending datagrams together, oldest evicted first when full
    /// (16 MiB: 4× Linux's `ipfrag_high_thresh`).
    pub memory: u64,
    /// Packet time an IPv4 datagram may take to arrive in full (30s, Linux `ipfrag_time`).
    pub timeout_v4: Dur,
    /// The same for IPv6 (60s, RFC 8200 §4.5).
    pub timeout_v6: Dur,
    /// Fragments one datagram may take, duplicates included (64, Linux `ipfrag_max_dist`).
    pub max_fragments: u32,
}

impl Default for Defrag {
    fn default() -> Self {
        let d = pacstap_defrag::DefragConfig::default();
        Defrag {
            memory: d.memory as u64,
            timeout_v4: Dur(d.timeout_v4),
            timeout_v6: Dur(d.timeout_v6),
            max_fragments: u32::try_from(d.max_fragments).unwrap_or(u32::MAX),
        }
    }
}

impl Defrag {
    /// `memory` bounds: below 64 KiB not even one datagram of the largest size the IP length
    /// fields allow (65,535 bytes, RFC 791 §3.1) fits, so every large one would be evicted;
    /// above 1 GiB (256× Linux's 4 MiB `ipfrag_high_thresh`) is a typo, not a budget.
    pub const MEMORY: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 30);
    /// Timeout bounds, seconds (as `--defrag-timeout`): a datagram needs at least a second
    /// of packet time to straggle in; past an hour its fragments are long retransmitted.
    pub const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
    /// `max_fragments` bounds: a fragmented datagram has at least 2 fragments, and at most
    /// 8,192 distinct ones (65,535 bytes in 8-byte fragment-offset units, RFC 791 §3.1).
    pub const MAX_FRAGMENTS: std::ops::RangeInclusive<u32> = 2..=8192;
}

/// `[capture]`: live capture settings kept in the file rather than on the command line, so a
/// BPF filter with spaces (`tcp or (vlan and tcp)`) never passes through a systemd environment
/// variable, which systemd splits at spaces (issue 14). `--bpf` overrides it. Read when capture
/// starts; a SIGHUP reload does not change the filter of the open interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureSettings {
    /// BPF filter (tcpdump syntax), applied in the kernel. Absent: every frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<String>,
    /// `/healthz` answers 503 when no frame has arrived for this long (wall time: a tap with no
    /// traffic has no packet time). `0` disables it. Default [`DEFAULT_IDLE_ALARM`].
    pub idle_alarm: Dur,
}

/// Five minutes: even a quiet night on a hospital segment carries ARP, DHCP and monitoring
/// traffic every few seconds to minutes, while a pulled cable or a reconfigured SPAN session
/// should reach the operator well within a monitoring shift's reaction time. A quiet lab
/// network sets a longer one (or `0`).
pub const DEFAULT_IDLE_ALARM: Dur = Dur::secs(300);

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            bpf: None,
            idle_alarm: DEFAULT_IDLE_ALARM,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_detect::config::{AddrList, NodeRole};

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
    fn capture_table_holds_a_spaced_bpf_filter() {
        assert_eq!(Config::default().capture.bpf, None);
        let c = Config::from_toml_str("[capture]\nbpf = \"tcp or (vlan and tcp)\"\n").unwrap();
        assert_eq!(c.capture.bpf.as_deref(), Some("tcp or (vlan and tcp)"));
        assert_eq!(Config::from_toml_str(&c.render_effective()).unwrap(), c);
        assert_eq!(Config::default().capture.idle_alarm.as_secs(), 300);
        let c = Config::from_toml_str("[capture]\nidle_alarm = \"90s\"\n").unwrap();
        assert_eq!(c.capture.idle_alarm.as_secs(), 90);
        let c = Config::from_toml_str("[capture]\nidle_alarm = \"0\"\n").unwrap();
        assert!(c.capture.idle_alarm.is_zero());
        let e = Config::from_toml_str("[capture]\nidle_alarm = \"soon\"\n").unwrap_err();
        assert_eq!(e.key(), Some("capture.idle_alarm"));
        let e = Config::from_toml_str("[capture]\nfilter = \"tcp\"\n").unwrap_err();
        assert_eq!(e.key(), Some("capture.filter"));
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
        assert_eq!(c.inventory.dicom[1].ip, AddrList::any());
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

#[cfg(test)]
mod rules_tests {
    use super::Config;
    use pacstap_core::Severity;

    fn err(s: &str) -> String {
        Config::from_toml_str(s).unwrap_err().to_string()
    }

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
    fn partial_rule_table_keeps_that_rules_defaults() {
        let c = Config::from_toml_str("[rules.bulk_export]\nthreshold = 40\n").unwrap();
        assert_eq!(c.rules.bulk_export.threshold, 40);
        assert_eq!(c.rules.bulk_export.window.as_secs(), 1800);
        assert_eq!(c.rules.bulk_export.severity, Severity::High);
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
}
