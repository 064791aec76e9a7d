//! The pure HTTP pieces on hostile bytes: heads, framing, chunk-size lines, credentials (Basic,
//! JWT, Digest), URL handling, DICOMweb classification and the admin/share tables. Never
//! panics, and the caps hold: URLs and user names never exceed their character limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::http::{dicomweb, parser, patterns, url};

fuzz_target!(|data: &[u8]| {
    let _ = parser::probe(data);
    let _ = parser::start_line(data, parser::Role::Request);
    let _ = parser::start_line(data, parser::Role::Response);
    let mut st = 0u8;
    let _ = parser::find_head_end(&mut st, data);
    if let Some(h) = parser::parse_request_head(data) {
        let _ = parser::request_framing(&h.fields);
        let t = url::split_target(h.target);
        let segs = url::segments(t.path);
        assert!(segs.len() <= url::MAX_SEGMENTS);
        let _ = dicomweb::classify(h.method, &segs, t.query);
        let _ = patterns::find_action(&patterns::default_admin_patterns(), h.method, &segs);
        let _ = patterns::find_action(&patterns::default_share_patterns(), h.method, &segs);
        let (u, _) = url::display_url(h.target, 64);
        assert!(u.chars().count() <= 64);
        if let Some(host) = h.fields.host {
            let _ = url::hostname(host);
        }
        if let Some(a) = h.fields.authorization {
            if let Some(c) = parser::credentials(a) {
                assert!(c.user.map_or(0, |u| u.chars().count()) <= parser::MAX_USER_CHARS);
            }
        }
    }
    if let Some(h) = parser::parse_response_head(data) {
        let _ = parser::response_framing(h.status, "GET", &h.fields);
        let _ = parser::response_framing(h.status, "HEAD", &h.fields);
    }
    let _ = parser::parse_chunk_line(data);
    if let Some(c) = parser::credentials(data) {
        assert!(c.user.map_or(0, |u| u.chars().count()) <= parser::MAX_USER_CHARS);
    }
    let _ = parser::jwt_user(data);
    let _ = parser::json_top_level_strings(data, ["preferred_username", "sub"]);
    let _ = parser::form_field(data, "username");
    if let Ok(s) = std::str::from_utf8(data) {
        let t = url::split_target(s);
        let segs = url::segments(t.path);
        let _ = dicomweb::classify("GET", &segs, t.query);
        let _ = dicomweb::classify("POST", &segs, t.query);
        let (glob, path) = s.split_once('\n').unwrap_or((s, ""));
        let _ = patterns::path_matches(glob, &url::segments(path));
        let _ = patterns::segment_matches(glob, path);
        let _ = url::percent_decode(s);
        let _ = url::form_decode(s);
    }
});
