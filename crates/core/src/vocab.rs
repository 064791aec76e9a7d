//! The fixed words of CONTRACT §2 that several stages speak: rule ids and entity kinds, and the
//! closed lists of names that events carry and metrics label by.
//!
//! They are enums here, in the crate every stage depends on, so the detector that fires a rule,
//! the alert that names it, the signature table and the metric label sets all read one list
//! ([`Rule::ALL`], [`EntityKind::ALL`]) and cannot drift apart. The serde form is the contract's
//! snake_case word, the same as [`Rule::as_str`] / [`EntityKind::as_str`].
//!
//! The name lists ([`DIMSE_COMMANDS`], [`DICOMWEB_SERVICES`], [`TLS_VERSIONS`], [`TUNNEL_KINDS`])
//! are here for the same reason: a metric label set must list every value a decoder can emit,
//! or a new value lands in `other` unnoticed, and the output stage depends only on this crate,
//! not on the decoders. The decoders' naming functions are tested to produce exactly these
//! names (crates/proto `dicom::command`, `http::dicomweb`, `tls::parser`; crates/wire `tunnel`).

use serde::{Deserialize, Serialize};

/// One detection rule (CONTRACT §2 `alert.rule`). The order is the contract table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    LoginFailuresUser,
    LoginFailuresSource,
    LoginSuccessAfterFailures,
    NewDevice,
    NewLocation,
    AdminChange,
    BulkExport,
    ExportAboveBaseline,
    UnknownDestination,
    SharingSpike,
}

impl Rule {
    /// Every rule, in the contract table's order (what metric label sets list).
    pub const ALL: [Rule; 10] = [
        Rule::LoginFailuresUser,
        Rule::LoginFailuresSource,
        Rule::LoginSuccessAfterFailures,
        Rule::NewDevice,
        Rule::NewLocation,
        Rule::AdminChange,
        Rule::BulkExport,
        Rule::ExportAboveBaseline,
        Rule::UnknownDestination,
        Rule::SharingSpike,
    ];
    pub const COUNT: usize = Rule::ALL.len();
    /// The first and last rule in `Ord` order: bounds of a range over `(_, Rule)` keys.
    pub const FIRST: Rule = Rule::LoginFailuresUser;
    pub const LAST: Rule = Rule::SharingSpike;

    /// The contract's rule id (`alert.rule`), the same word serde writes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::LoginFailuresUser => "login_failures_user",
            Rule::LoginFailuresSource => "login_failures_source",
            Rule::LoginSuccessAfterFailures => "login_success_after_failures",
            Rule::NewDevice => "new_device",
            Rule::NewLocation => "new_location",
            Rule::AdminChange => "admin_change",
            Rule::BulkExport => "bulk_export",
            Rule::ExportAboveBaseline => "export_above_baseline",
            Rule::UnknownDestination => "unknown_destination",
            Rule::SharingSpike => "sharing_spike",
        }
    }

    /// The same as [`Rule::as_str`] (the detector's older name for it).
    pub const fn id(self) -> &'static str {
        self.as_str()
    }

    /// The rule of a contract id; `None` for any other word.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == id)
    }

    /// Position in [`Rule::ALL`]: for per-rule arrays (`[T; Rule::COUNT]`).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Rules whose alerts are exports (for the `new_device` / `new_location` correlation).
    pub const fn is_export(self) -> bool {
        matches!(self, Rule::BulkExport | Rule::ExportAboveBaseline)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert is about (CONTRACT §2 `entity.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    User,
    Ae,
    Ip,
    Device,
}

impl EntityKind {
    /// Every kind, in the contract's order.
    pub const ALL: [EntityKind; 4] = [EntityKind::User, EntityKind::Ae, EntityKind::Ip, EntityKind::Device];

    /// The contract's word, the same serde writes.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Ae => "ae",
            EntityKind::Ip => "ip",
            EntityKind::Device => "device",
        }
    }

    /// The kind of a contract word; `None` for any other.
    pub fn parse(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DIMSE commands by name (PS3.7 §9, §10; `dicom.command`).
pub const DIMSE_COMMANDS: [&str; 12] = [
    "C-ECHO",
    "C-STORE",
    "C-FIND",
    "C-MOVE",
    "C-GET",
    "C-CANCEL",
    "N-EVENT-REPORT",
    "N-GET",
    "N-SET",
    "N-ACTION",
    "N-CREATE",
    "N-DELETE",
];

/// DICOMweb services (CONTRACT §2 `http.dicomweb.service`; UPS-RS is PS3.18 §11).
pub const DICOMWEB_SERVICES: [&str; 5] = ["QIDO-RS", "WADO-RS", "STOW-RS", "WADO-URI", "UPS-RS"];

/// TLS protocol versions by name (`tls.version`); other values are written as `0x….`.
pub const TLS_VERSIONS: [&str; 5] = ["SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// Encapsulations the wire stage removes (`pacstap_decapsulated_frames_total{kind}`).
pub const TUNNEL_KINDS: [&str; 11] = [
    "vxlan",
    "geneve",
    "gre",
    "erspan_i",
    "erspan_ii",
    "erspan_iii",
    "mpls",
    "pppoe",
    "vn_tag",
    "e_tag",
    "cisco_metadata",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_round_trip_and_serde_writes_the_same_word() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_id(r.as_str()), Some(r));
            assert_eq!(Rule::ALL[r.index()], r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
            assert_eq!(serde_json::from_str::<Rule>(&format!("\"{r}\"")).unwrap(), r);
        }
        assert_eq!(Rule::from_id("bulk-export"), None);
        assert_eq!(Rule::BulkExport.to_string(), "bulk_export");
        assert_eq!(Rule::ALL.iter().min(), Some(&Rule::FIRST));
        assert_eq!(Rule::ALL.iter().max(), Some(&Rule::LAST));
    }

    #[test]
    fn entity_kinds_round_trip_and_serde_writes_the_same_word() {
        for k in EntityKind::ALL {
            assert_eq!(EntityKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(EntityKind::parse("AE"), None);
        assert_eq!(EntityKind::Ae.to_string(), "ae");
    }
}
