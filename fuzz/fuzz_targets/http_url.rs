//! The URL shown in `http` events, on hostile request targets: never panics, never longer than
//! its cap, and never carries a JWT (in the path, a key, a value, or nested in one). The same
//! targets through the REST download classifiers (Orthanc, dcm4chee-arc's exports), whose ids
//! and destinations are bounded, and as a `create-archive` body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::http::{dcm4chee, orthanc, parser, url};

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let t = url::split_target(target);
    for method in ["GET", "POST"] {
        if let Some(d) = orthanc::classify(method, &url::segments(t.path), t.query) {
            assert!(d.ids.len() <= orthanc::MAX_IDS && d.ids.iter().all(|i| i.len() <= 64));
        }
    }
    assert!(orthanc::ids_from_body(data).len() <= orthanc::MAX_IDS);
    if let Some(d) = dcm4chee::classify("POST", &url::segments(t.path)) {
        assert!(d.destination.is_some_and(|to| to.chars().count() <= 64 + "exporter ".len()));
    }
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
