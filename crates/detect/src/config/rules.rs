//! `[rules.*]`: one table per rule (CONTRACT §2 ids) with the checklist's seed thresholds as
//! defaults; a table in the file overrides only the keys it names.

use super::{Dur, Net};
use pacstap_core::Severity;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

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
