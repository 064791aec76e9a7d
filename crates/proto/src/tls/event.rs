//! What the tls decoder emits: the certificate record of its `tls` event, and its anomaly
//! names.

use super::parser::hex;
use super::CertificateSummary;
use crate::anomaly::anomaly_names;

anomaly_names! {
    /// Anomaly names (ARCHITECTURE rule 6), all counted in `ProtoStats::anomalies`.
    pub enum TlsAnomaly ("tls") {
        /// An implausible record header in a stream that was in sync; the stream resynchronises.
        BadRecord = "tls.bad_record",
        /// A handshake message the decoder needed was longer than [`super::MAX_HANDSHAKE_MESSAGE`].
        HandshakeTooLarge = "tls.handshake_too_large",
        /// A ClientHello whose fixed part does not parse.
        MalformedClientHello = "tls.malformed_client_hello",
        /// A ServerHello whose fixed part does not parse.
        MalformedServerHello = "tls.malformed_server_hello",
        /// A hello extension whose contents do not parse, or trailing bytes in a hello.
        MalformedExtension = "tls.malformed_extension",
        /// A TLS ≤ 1.2 Certificate message that does not parse.
        MalformedCertificate = "tls.malformed_certificate",
        /// The decoder memory budget refused to hold a wanted handshake message; skipped.
        MemoryBudget = "tls.memory_budget",
        /// The flow was given up (the detail says why): no `tls` event follows.
        GiveUp = "tls.give_up",
    }
}

/// The event's view of a parsed certificate.
pub(super) fn certificate_record(c: &CertificateSummary) -> pacstap_core::TlsCertificate {
    let time = |secs: Option<i64>| {
        secs.and_then(|s| u64::try_from(s).ok())
            .map(|s| pacstap_core::Timestamp::from_secs_nanos(s, 0))
    };
    pacstap_core::TlsCertificate {
        sha256: hex(&c.sha256),
        der_bytes: c.der_bytes as u64,
        chain_length: c.chain_length as u64,
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        not_before: time(c.not_before),
        not_after: time(c.not_after),
        dns_names: c.dns_names.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::TlsAnomaly;

    /// The names are the CONTRACT's (events and `pacstap_anomalies_total` labels): pinned here
    /// so a renamed variant cannot change them.
    #[test]
    fn anomaly_names_are_fixed() {
        crate::anomaly::check::names(
            TlsAnomaly::ALL,
            &[
                "tls.bad_record",
                "tls.handshake_too_large",
                "tls.malformed_client_hello",
                "tls.malformed_server_hello",
                "tls.malformed_extension",
                "tls.malformed_certificate",
                "tls.memory_budget",
                "tls.give_up",
            ],
        );
    }
}
