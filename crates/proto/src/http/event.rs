//! What the http decoder emits: the request side of each `http` event (the response side is
//! filled as the response is read), and its anomaly names.

use super::dicomweb;
use super::parser::{credentials, RequestHead};
use super::patterns::find_action;
use super::url::{display_url, header_text, hostname, segments, split_target};
use crate::anomaly::anomaly_names;
use crate::Ctx;
use pacstap_core::HttpEvent;

/// Header values kept in events are cut at these many characters (User-Agent strings are
/// 50-250 characters; 512 leaves room without letting a hostile client bloat every event).
const MAX_USER_AGENT: usize = 512;
const MAX_FORWARDED: usize = 256;

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

/// The request side of the event: everything but status and byte counts.
pub(super) fn request_event(ctx: &Ctx<'_>, h: &RequestHead<'_>) -> HttpEvent {
    let cfg = &ctx.cfg.http;
    let target = split_target(h.target);
    let segs = segments(target.path);
    let (url, url_truncated) = display_url(h.target, cfg.max_url_chars);
    let creds = h.fields.authorization.and_then(credentials);
    // An absolute-form (or CONNECT authority-form) target's host wins over Host (RFC 9112 §3.2.2).
    let host = target
        .authority
        .and_then(|a| hostname(a.as_bytes()))
        .or_else(|| h.fields.host.and_then(hostname));
    HttpEvent {
        method: super::url::truncate_chars(h.method.to_string(), 32).0,
        hostname: host,
        url,
        url_truncated,
        user_agent: h.fields.user_agent.map(|v| header_text(v, MAX_USER_AGENT)),
        user: creds.as_ref().and_then(|c| c.user.clone()),
        auth: creds.map(|c| c.scheme),
        x_forwarded_for: h.fields.x_forwarded_for.map(|v| header_text(v, MAX_FORWARDED)),
        protocol: Some(format!("HTTP/1.{}", h.minor)),
        dicomweb: dicomweb::classify(h.method, &segs, target.query),
        download: super::orthanc::classify(h.method, &segs, target.query)
            .or_else(|| super::dcm4chee::classify(h.method, &segs)),
        admin_action: find_action(&cfg.admin_patterns, h.method, &segs).map(str::to_string),
        share_action: find_action(&cfg.share_patterns, h.method, &segs).map(str::to_string),
        request_time: ctx.ts,
        ..HttpEvent::default()
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
