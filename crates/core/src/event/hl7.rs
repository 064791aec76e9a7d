//! `hl7` events (CONTRACT §2): one per HL7 v2 message. Patient segments are never emitted.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hl7Event {
    /// MSH-9, e.g. `ADT^A01`.
    pub message_type: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-12.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_facility: Option<String>,
    /// MSA-1 of ACK messages: `AA` `AE` `AR` `CA` `CE` `CR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_code: Option<String>,
}
