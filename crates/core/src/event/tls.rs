//! `tls` events (CONTRACT §2): one per TLS connection, when it ends.

use crate::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Negotiated version, e.g. `TLS 1.2`, `TLS 1.3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// ALPN protocols offered by the client.
    pub alpn: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: Timestamp,
    pub end: Timestamp,
}
