//! The closed lists of names that events carry and metrics label by.
//!
//! Why here: a metric label set must list every value a decoder can emit, or a new value lands in
//! `other` unnoticed; the output stage depends only on this crate, not on the decoders. So each
//! list lives here once, the decoders' naming functions are tested to produce exactly these names
//! (crates/proto `dicom::command`, `http::dicomweb`, `tls::parser`; crates/wire `tunnel`), and the
//! metrics read them from here. Adding a name is one edit here, and the owners' tests fail until
//! the decoder agrees.

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
pub const TUNNEL_KINDS: [&str; 8] = [
    "vxlan",
    "geneve",
    "gre",
    "erspan_i",
    "erspan_ii",
    "erspan_iii",
    "mpls",
    "pppoe",
];
