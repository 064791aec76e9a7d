//! What the http decoder emits beyond its `http` events: its anomaly names.

use crate::anomaly::anomaly_names;

anomaly_names! {
    /// Anomaly names (ARCHITECTURE rule 6), all counted in `ProtoStats::anomalies`.
    pub enum HttpAnomaly ("http") {
        /// Bytes had to be skipped to find the next start line (midstream pickup, after a gap or
        /// broken framing).
        Resync = "http.resync",
        /// Bytes of the connection were lost to a capture gap.
        Gap = "http.gap",
        /// A header block (or trailer section) over `HttpConfig.max_header_bytes`.
        HeaderTooLarge = "http.header_too_large",
        /// More header fields than `parser::MAX_HEADERS`; read by the lenient scanner.
        TooManyHeaders = "http.too_many_headers",
        /// A request head that does not parse, or whose body cannot be delimited.
        MalformedRequest = "http.malformed_request",
        /// A response head that does not parse, or an invalid Content-Length.
        MalformedResponse = "http.malformed_response",
        /// A bad chunk-size line or missing CRLF after chunk data.
        MalformedChunk = "http.malformed_chunk",
        /// Both Transfer-Encoding and Content-Length (RFC 9112 §6.3 rule 3: a request smuggling
        /// indicator).
        ConflictingLength = "http.conflicting_length",
        /// A response when no request awaits one, on a connection whose requests were all seen.
        ResponseWithoutRequest = "http.response_without_request",
        /// More than `HttpConfig.max_pending_requests` requests awaiting responses; the oldest is
        /// emitted without its response.
        TooManyPending = "http.too_many_pending",
        /// HTTP/2 with prior knowledge (RFC 9113 §3.3): not decoded; the flow is given up.
        Http2Unsupported = "http.http2_unsupported",
        /// The decoder memory budget refused to hold more of a head; what was read is used.
        MemoryBudget = "http.memory_budget",
        /// The flow was given up (the detail says why): no more `http` events from it.
        GiveUp = "http.give_up",
    }
}

#[cfg(test)]
mod tests {
    use super::HttpAnomaly;

    /// The names are the CONTRACT's (events and `pacstap_anomalies_total` labels): pinned here
    /// so a renamed variant cannot change them.
    #[test]
    fn anomaly_names_are_fixed() {
        crate::anomaly::check::names(
            HttpAnomaly::ALL,
            &[
                "http.resync",
                "http.gap",
                "http.header_too_large",
                "http.too_many_headers",
                "http.malformed_request",
                "http.malformed_response",
                "http.malformed_chunk",
                "http.conflicting_length",
                "http.response_without_request",
                "http.too_many_pending",
                "http.http2_unsupported",
                "http.memory_budget",
                "http.give_up",
            ],
        );
    }
}
