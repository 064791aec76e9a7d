//! `posture` events (issue 13): a security-posture finding seen on the wire for one system
//! (DICOM in clear, TLS below 1.2, a generic account in use …). The detector's posture
//! tracker emits one per finding per system, again at most once a day of packet time, so an
//! appliance reports them continuously; `pacstap report`'s checklist names the same findings.
//! This file is the one list of finding ids, their wording and the tests behind them, so the
//! events and the report's checklist cannot drift apart.

use crate::flow::FlowId;
use serde::Serialize;

/// A posture finding (`posture.finding`, snake_case id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PostureFinding {
    /// DICOM on a clear port (104 / 11112 or any port the decoder read it on) without TLS.
    DicomInClear,
    /// HL7 v2 over MLLP without TLS.
    Hl7InClear,
    /// Credentials in clear: HTTP Basic (or any password scheme) over plain HTTP, a DICOM
    /// User Identity with a passcode (PS3.7 §D.3.3.7) on a clear association.
    HttpCredentialsInClear,
    /// A TLS connection that chose a version below 1.2 (RFC 8996 deprecates 1.0 and 1.1).
    TlsBelow12,
    /// A server certificate that was expired at packet time, or self-signed.
    Certificates,
    /// A TLS connection that chose a weak cipher suite ([`WEAK_CIPHER_PARTS`]).
    WeakCiphers,
    /// An account name that identifies no person ([`GENERIC_NAMES`]) in use.
    GenericAccountNames,
    /// An admin action by a user not listed in `users.admins`.
    UnlistedAdmin,
}

impl PostureFinding {
    /// Every finding, in the checklist's order.
    pub const ALL: [PostureFinding; 8] = [
        PostureFinding::GenericAccountNames,
        PostureFinding::UnlistedAdmin,
        PostureFinding::DicomInClear,
        PostureFinding::Hl7InClear,
        PostureFinding::HttpCredentialsInClear,
        PostureFinding::TlsBelow12,
        PostureFinding::Certificates,
        PostureFinding::WeakCiphers,
    ];

    /// The snake_case id (`posture.finding`).
    pub fn id(self) -> &'static str {
        match self {
            PostureFinding::DicomInClear => "dicom_in_clear",
            PostureFinding::Hl7InClear => "hl7_in_clear",
            PostureFinding::HttpCredentialsInClear => "http_credentials_in_clear",
            PostureFinding::TlsBelow12 => "tls_below_1_2",
            PostureFinding::Certificates => "certificates",
            PostureFinding::WeakCiphers => "weak_ciphers",
            PostureFinding::GenericAccountNames => "generic_account_names",
            PostureFinding::UnlistedAdmin => "unlisted_admin",
        }
    }

    /// The finding from its id (reading events back, e.g. in the report).
    pub fn from_id(id: &str) -> Option<PostureFinding> {
        PostureFinding::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The checklist item (the report's finding id) this belongs to: most are items of their
    /// own; generic names are part of "unique identities", unlisted admins of "least privilege".
    pub fn checklist_item(self) -> &'static str {
        match self {
            PostureFinding::GenericAccountNames => "unique_identities",
            PostureFinding::UnlistedAdmin => "least_privilege",
            f => f.id(),
        }
    }

    /// Its wording, shared by the report's checklist.
    pub fn title(self) -> &'static str {
        match self {
            PostureFinding::DicomInClear => "Encryption in transit: DICOM in clear",
            PostureFinding::Hl7InClear => "Encryption in transit: HL7 MLLP in clear",
            PostureFinding::HttpCredentialsInClear => "Encryption in transit: HTTP credentials in clear",
            PostureFinding::TlsBelow12 => "Encryption in transit: TLS below 1.2",
            PostureFinding::Certificates => "Encryption in transit: expired or self-signed certificates",
            PostureFinding::WeakCiphers => "Encryption in transit: weak cipher suites",
            PostureFinding::GenericAccountNames => "Unique identities: generic account names in use",
            PostureFinding::UnlistedAdmin => "Least privilege: admin actions by users not in users.admins",
        }
    }
}

/// Serialized as its [`PostureFinding::id`] (serde's snake_case would say `tls_below12`).
impl Serialize for PostureFinding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// `event_type: "posture"`: one finding for one system. No patient data: systems are
/// addresses, AE titles and host names; details name versions, suites and account names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureEvent {
    pub finding: PostureFinding,
    /// The system the finding is about: `AE@address` (DICOM), `application@address` (HL7),
    /// `address` or `host (address)` (HTTP, TLS), `user from address` (accounts).
    pub system: String,
    /// The protocol it was seen in: `dicom`, `hl7`, `http`, `tls`.
    pub protocol: &'static str,
    /// What was seen, e.g. `TLS 1.0`, `TLS_RSA_WITH_RC4_128_SHA`, `basic`.
    pub detail: String,
    /// Flows that show it since the last posture event for this finding and system (the first
    /// few, [`MAX_POSTURE_FLOWS`]).
    pub flow_ids: Vec<FlowId>,
    /// Events that showed it since the last posture event for this finding and system,
    /// including this one.
    pub count: u64,
}

/// Flows cited per posture event: enough to open a few in Wireshark, bounded per event.
pub const MAX_POSTURE_FLOWS: usize = 10;

/// Account names that identify no person (checklist: unique identities).
pub const GENERIC_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "radiology",
    "radiologist",
    "user",
    "guest",
    "test",
    "pacs",
    "service",
    "orthanc",
    "dicom",
    "scanner",
    "modality",
    "tech",
    "reading",
    "shared",
    "demo",
    "support",
];

/// Cipher-suite name parts that mark a weak suite (RFC 7465 RC4, RFC 8996-era 3DES / DES,
/// export and NULL suites, anonymous key exchange, MD5 MACs).
pub const WEAK_CIPHER_PARTS: &[&str] = &["RC4", "_DES_", "3DES", "DES40", "EXPORT", "NULL", "_anon_", "_MD5"];

/// A generic account name (case-insensitive).
pub fn is_generic_name(user: &str) -> bool {
    GENERIC_NAMES.iter().any(|g| g.eq_ignore_ascii_case(user))
}

/// A weak cipher suite, by its IANA name.
pub fn is_weak_cipher(suite: &str) -> bool {
    WEAK_CIPHER_PARTS.iter().any(|w| suite.contains(w))
}

/// A negotiated version below TLS 1.2 (as `tls.version` names them).
pub fn is_tls_below_1_2(version: &str) -> bool {
    matches!(version, "TLS 1.0" | "TLS 1.1" | "SSL 3.0" | "SSL 2.0")
}

/// HTTP auth schemes that send a password (not a token) with the request.
pub fn is_password_scheme(scheme: &str) -> bool {
    matches!(scheme, "basic" | "digest" | "form" | "ntlm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_serialize_as_snake_case() {
        for f in PostureFinding::ALL {
            assert_eq!(PostureFinding::from_id(f.id()), Some(f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.id());
        }
        assert_eq!(PostureFinding::from_id("nope"), None);
        assert_eq!(PostureFinding::TlsBelow12.id(), "tls_below_1_2");
        assert_eq!(
            PostureFinding::GenericAccountNames.checklist_item(),
            "unique_identities"
        );
    }

    #[test]
    fn the_tests_behind_the_findings() {
        assert!(is_generic_name("Admin") && !is_generic_name("rad1"));
        assert!(is_weak_cipher("TLS_RSA_WITH_RC4_128_SHA") && !is_weak_cipher("TLS_AES_128_GCM_SHA256"));
        assert!(is_tls_below_1_2("TLS 1.1") && !is_tls_below_1_2("TLS 1.2"));
    }
}
