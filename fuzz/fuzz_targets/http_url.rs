//! The URL shown in `http` events, on hostile request targets: never panics, never longer than
//! its cap, and never carries a JWT (in the path, a key, a value, or nested in one).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::http::{parser, url};

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let (short, _) = url::display_url(target, 64);
    assert!(short.chars().count() <= 64);
    if target.len() > 2000 {
        return;
    }
    // Uncut: no token of the decoded URL is a JWT.
    let (u, cut) = url::display_url(target, 8192);
    assert!(!cut);
    let decoded = url::percent_decode(&u);
    for token in decoded.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        assert!(!parser::is_jwt(token), "JWT left in {u}");
    }
});
