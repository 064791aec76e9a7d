//! `http` events (CONTRACT §2): one per request/response pair.

use serde::Serialize;

/// DICOMweb classification of a URL (PS3.18).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DicomWeb {
    /// `QIDO-RS`, `WADO-RS`, `STOW-RS`, `WADO-URI`.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
}

/// One HTTP transaction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpEvent {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub url: String,
    /// Response status; absent when no response was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Basic-auth user name or a JWT's `sub`/`preferred_username`; never a password or token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicomweb: Option<DicomWeb>,
}
