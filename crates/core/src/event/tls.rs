//! `tls` events (CONTRACT §2): one per TLS connection, when it ends.

use crate::flow::Direction;
use crate::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Negotiated version, e.g. `TLS 1.2`, `TLS 1.3`: the ServerHello `supported_versions`
    /// extension (TLS 1.3, RFC 8446 §4.2.1), else its legacy version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// ALPN protocols offered by the client.
    pub alpn: Vec<String>,
    /// JA3 client fingerprint: md5 (hex) of [`TlsEvent::ja3_string`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    /// JA4 client fingerprint (FoxIO), e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// All TCP payload bytes delivered each way (bytes lost to capture gaps: `gap_bytes`).
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: Timestamp,
    pub end: Timestamp,

    /// Extension: the JA3 input, `SSLVersion,Ciphers,Extensions,EllipticCurves,PointFormats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3_string: Option<String>,
    /// Extension: JA3S server fingerprint, md5 (hex) of [`TlsEvent::ja3s_string`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<String>,
    /// Extension: the JA3S input, `SSLVersion,Cipher,Extensions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s_string: Option<String>,
    /// Extension: the negotiated cipher suite, IANA name (`TLS_AES_128_GCM_SHA256`), or
    /// `0x….` when the value is not in the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// Extension: the negotiated cipher suite's code, e.g. `0x1301`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suite_id: Option<String>,
    /// Extension: the ALPN protocol the server selected. Visible in the ServerHello up to
    /// TLS 1.2 only; TLS 1.3 sends it in the encrypted EncryptedExtensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_selected: Option<String>,
    /// Extension: the ClientHello legacy version (`TLS 1.2` for TLS 1.3 clients too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Extension: the server's certificate, when sent in the clear (TLS 1.2 and earlier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<TlsCertificate>,
    /// Extension: the server resumed a session (TLS ≤ 1.2: echoed the client's session id;
    /// TLS 1.3: accepted a pre-shared key). Absent when no ServerHello was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_resumed: Option<bool>,
    /// Extension: the server answered with a HelloRetryRequest (RFC 8446 §4.1.4).
    pub hello_retry: bool,
    /// Extension: both sides switched to encrypted traffic (ChangeCipherSpec, or TLS 1.3
    /// application-data records after the ServerHello, seen each way).
    pub handshake_complete: bool,
    /// Extension: the first alert sent in the clear (before encryption), e.g. a
    /// `handshake_failure` or `bad_certificate` that ended the handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<TlsAlert>,
    /// Extension: the start of the connection was not seen (claimed by port, or after a gap);
    /// fields from missed handshake messages are absent.
    pub midstream: bool,
    /// Extension: bytes lost to capture gaps, both ways.
    pub gap_bytes: u64,
    /// Extension: of `gap_bytes`, those the server sent the client (absent when none). A
    /// download's size is `bytes_toclient` plus these: a capture that lost or cut its frames
    /// (a header-only capture keeps a few percent of a download) saw fewer bytes than were sent.
    #[serde(skip_serializing_if = "super::is_zero_u64")]
    pub gap_bytes_toclient: u64,
}

impl TlsEvent {
    /// Bytes the server sent the client, seen or lost to capture gaps.
    pub fn bytes_sent_toclient(&self) -> u64 {
        self.bytes_toclient.saturating_add(self.gap_bytes_toclient)
    }
}

/// The server certificate (the first of the chain) as seen on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsCertificate {
    /// SHA-256 of the DER certificate, lowercase hex (what `openssl x509 -fingerprint -sha256`
    /// prints, without colons).
    pub sha256: String,
    /// Length of the DER certificate.
    pub der_bytes: u64,
    /// Certificates in the chain the server sent.
    pub chain_length: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// subjectAltName DNS names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

/// A TLS alert (RFC 8446 §6, RFC 5246 §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsAlert {
    /// Who sent it.
    pub direction: Direction,
    /// 1 = warning, 2 = fatal.
    pub level: u8,
    /// The AlertDescription code, e.g. 40.
    pub code: u8,
    /// Its registry name, e.g. `handshake_failure` (`unknown` when unassigned).
    pub description: String,
}

// `event.rs` re-exports only `TlsEvent`; these setters build the nested records so decoders
// need not name their types.
impl TlsEvent {
    /// Record a clear-text alert.
    pub fn set_alert(&mut self, direction: Direction, level: u8, code: u8, description: &str) {
        self.alert = Some(TlsAlert {
            direction,
            level,
            code,
            description: description.to_string(),
        });
    }
}
