//! What the tls decoder emits beyond its `tls` event: its anomaly names.

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
