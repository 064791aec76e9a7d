//! The fixed label sets of pacstap's metrics and the folds that keep every label bounded
//! (ARCHITECTURE rule 12): a value outside its set is counted as `other`, never as itself.
/// DICOMweb services (PS3.18 §10) the `service` label may take.
pub use pacstap_core::vocab::DICOMWEB_SERVICES;
/// DIMSE command names (PS3.7 §9.3, §10.3) the `command` label may take; anything else is `other`.
pub use pacstap_core::vocab::DIMSE_COMMANDS;

/// HL7 v2 message types (HL7 table 0076, the families seen on imaging and ADT feeds) the `type`
/// label may take; any other first component of MSH-9 is `other`.
pub const HL7_MESSAGE_TYPES: [&str; 28] = [
    "ACK", "ADT", "BAR", "DFT", "MDM", "MFK", "MFN", "MFQ", "OMG", "OMI", "OML", "ORG", "ORI", "ORL", "ORM", "ORR",
    "ORU", "OUL", "QBP", "QRY", "RDE", "RAS", "RSP", "SIU", "SRM", "SRR", "VXU", "RDS",
];

/// HL7 acknowledgment codes (HL7 table 0008) the `code` label may take.
pub const HL7_ACK_CODES: [&str; 6] = ["AA", "AE", "AR", "CA", "CE", "CR"];
/// TLS versions the `version` label may take (the decoder folds anything else into `other`).
pub use pacstap_core::vocab::TLS_VERSIONS;
/// `kind` label values of `pacstap_decapsulated_frames_total`: pacstap-wire's `TunnelKind` names
/// (the list lives in core, which wire's tests hold its names to; a name not listed is `other`).
pub use pacstap_core::vocab::TUNNEL_KINDS;
use pacstap_core::Rule;

/// Rule ids (CONTRACT §2) the `rule` label may take: core's [`Rule::ALL`], by name.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time over 0..COUNT: an index out of bounds fails the build"
)]
pub const RULES: [&str; Rule::COUNT] = {
    let mut names = [""; Rule::COUNT];
    let mut i = 0;
    while i < Rule::COUNT {
        names[i] = Rule::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The flow stage's TCP counters: `pacstap_tcp_<name>_total`, with their help text.
pub const TCP_COUNTERS: [(&str, &str); 31] = [
    (
        "bad_checksums",
        "Segments dropped for a bad IPv4 header or TCP checksum.",
    ),
    (
        "unverifiable_checksums",
        "Segments whose checksum could not be checked (snaplen): accepted.",
    ),
    (
        "ack_before_data",
        "Holes the receiver acknowledged before the capture saw their data.",
    ),
    (
        "ack_before_data_filled",
        "Acknowledged holes whose data arrived while kept open (delayed, not lost).",
    ),
    ("ack_gaps", "Acknowledged holes given up as gaps (capture loss)."),
    (
        "causal_holds",
        "Segments held until the bytes they acknowledge were captured (a SPAN port showed the answer first).",
    ),
    (
        "causal_hold_overflows",
        "Times segments held for causal order were delivered early at a cap.",
    ),
    (
        "rst_accepted",
        "RSTs with the sequence number the receiver expects (connection reset).",
    ),
    (
        "rst_in_window",
        "RSTs in the window but not exact (challenged by the endpoint; flow kept).",
    ),
    ("rst_out_of_window", "RSTs outside the window (dropped)."),
    (
        "syn_on_established",
        "SYNs on an open connection that no SYN-ACK confirmed (dropped).",
    ),
    (
        "data_after_close",
        "Packets carrying data after their connection's teardown.",
    ),
    (
        "syn_data_ignored",
        "SYNs whose data the receiver did not take (dropped, never decoded).",
    ),
    (
        "fin_ignored",
        "FINs beyond the receiver's window or run past by the sender's data (dropped).",
    ),
    (
        "urgent_data",
        "Urgent (URG) bytes taken out of the stream, as the receiving stack takes them out.",
    ),
    (
        "paws_rejected",
        "Data segments older than the receiver's TS.Recent (PAWS, RFC 7323): dropped.",
    ),
    (
        "low_ttl_held",
        "Data segments with a lower IP TTL than their direction's, held until the stream decided.",
    ),
    (
        "low_ttl_decoys",
        "Held low-TTL segments that differed from the bytes the receiver read (TTL decoys).",
    ),
    (
        "low_ttl_taken",
        "Held low-TTL segments taken because no other copy of their bytes came.",
    ),
    (
        "rst_low_ttl",
        "RSTs with a lower IP TTL than their direction's: not taken.",
    ),
    (
        "without_ack",
        "Segments with data or a FIN but no ACK, SYN or RST bit: dropped, as receivers drop them.",
    ),
    (
        "data_out_of_window",
        "Data segments starting beyond the receiver's window and never acknowledged: dropped.",
    ),
    (
        "data_out_of_window_taken",
        "Data segments held for starting beyond the window, then acknowledged: taken.",
    ),
    (
        "overlap_conflicts",
        "Retransmitted bytes that differ from the copy buffered or delivered.",
    ),
    (
        "timestamp_jumps",
        "Packets stamped far ahead of the clock, not confirmed by the next ones.",
    ),
    (
        "evicted_half_open",
        "Flows evicted from a full table that never carried payload.",
    ),
    ("evicted_established", "Flows evicted with payload no decoder wanted."),
    ("evicted_decoding", "Flows evicted while a decoder was reading them."),
    (
        "one_sided_flows",
        "Ended flows of which only one direction was captured.",
    ),
    (
        "duplicate_frames",
        "Frames identical to one of the last 8 of their direction (mirrored twice: ingress and egress of a port, or both sides of a router).",
    ),
    (
        "snaplen_cut_segments",
        "TCP segments whose payload the capture's snaplen cut short (the missing bytes are gaps).",
    ),
];
/// `value` if it is in `known`, else `"other"`: the fold that keeps a label bounded.
pub(super) fn fold<'a>(value: &'a str, known: &[&'static str]) -> &'a str {
    if known.contains(&value) {
        value
    } else {
        "other"
    }
}

/// `2xx`-style class of an HTTP status (RFC 9110 §15), `none` without a response.
pub(super) fn http_status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
    }
}

/// The `type` label of an HL7 message: MSH-9's first component (`ADT` of `ADT^A01^ADT_A01`),
/// folded into `other` unless it is a known family.
pub fn hl7_type_family(message_type: &str) -> &str {
    let first = message_type.split('^').next().unwrap_or("").trim();
    fold(first, &HL7_MESSAGE_TYPES)
}

/// `outcome` values of `pacstap_ip_fragments_total` (`pacstap_defrag::DefragStats::outcomes`).
pub(super) const IP_FRAGMENT_OUTCOMES: [&str; 9] = [
    "reassembled",
    "timed_out",
    "overlapping",
    "too_many",
    "too_big",
    "evicted",
    "tiny",
    "malformed",
    "truncated",
];

/// `proto` label of an anomaly name: the part before the first dot (`dicom` of
/// `dicom.pdu_too_large`).
pub(super) fn anomaly_proto(name: &str) -> &str {
    name.split_once('.').map_or("other", |(p, _)| p)
}
