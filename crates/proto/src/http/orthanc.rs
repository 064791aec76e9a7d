//! Retrievals through Orthanc's own REST API (book.orthanc-server.com, "REST API of
//! Orthanc"), which DICOMweb classification does not see: Orthanc Explorer's "Download ZIP" and
//! "Download DICOMDIR" buttons, its per-instance "Download DICOM file", and any script with an
//! account's credentials use these routes, so a bulk export through them must count as one
//! through WADO-RS does.
//!
//! - `GET|POST /{patients|studies|series}/{id}/archive` (a ZIP of the resource's DICOM files)
//!   and `/media` (the same with a DICOMDIR);
//! - `GET /instances/{id}/file` (one DICOM file; its study is read from the response);
//! - `POST /tools/create-archive`, `/tools/create-media`, `/tools/create-media-extended` with
//!   the resources in the JSON body (an array of ids, or `{"Resources": [...]}`), and the
//!   same routes as `GET` with `?resources=id1,id2` (Orthanc 1.11.3 and later);
//! - `POST /modalities/{name}/store` and `/peers/{name}/store`: the PACS sends the resources of
//!   the body (the same forms, or one bare id) to a DICOM node or another Orthanc, on its own
//!   connection; the requester exports them there (`format: store`).
//!
//! Orthanc resource ids are SHA-1 hashes of the DICOM identifiers, written as five groups of
//! eight hex digits; ids of any other shape (letters, digits, `-` and `.`, at most 64
//! characters) are taken too, so a proxy's or a fork's naming still counts, but nothing longer
//! or stranger: the ids go into the event.

use std::borrow::Cow;

use pacstap_core::RestDownload;

use super::url::{percent_decode, query_pairs};

/// The API name in [`RestDownload::api`].
pub const API: &str = "orthanc";

/// Most ids kept from a list.
pub const MAX_IDS: usize = 64;

/// Whether `s` can be a resource id.
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn eq(seg: &str, word: &str) -> bool {
    seg.eq_ignore_ascii_case(word)
}

/// The retrieval a request is, if it is one. A `resources` list posted in the body is filled
/// in later from the body (see [`ids_from_body`]); `ids` is then empty here.
pub fn classify(method: &str, segs: &[Cow<'_, str>], query: Option<&str>) -> Option<RestDownload> {
    let get = method.eq_ignore_ascii_case("GET");
    let post = method.eq_ignore_ascii_case("POST");
    if !get && !post {
        return None;
    }
    // `…/{level}/{id}/{last}`; for the tools, `…/tools/{last}`.
    let (level, id, last) = match segs {
        [.., level, id, last] => (Some(level), id, last),
        [.., id, last] => (None, id, last),
        _ => return None,
    };
    // /tools/create-archive | create-media | create-media-extended
    if eq(id, "tools") {
        let format = if eq(last, "create-archive") {
            "archive"
        } else if eq(last, "create-media") || eq(last, "create-media-extended") {
            "media"
        } else {
            return None;
        };
        let ids = if get { ids_from_query(query?) } else { Vec::new() };
        if get && ids.is_empty() {
            return None;
        }
        return Some(download("resources", format, ids));
    }
    let level = level?;
    if !is_id(id) {
        return None;
    }
    // /modalities/{name}/store, /peers/{name}/store: the PACS sends the resources in the body.
    if post && eq(last, "store") {
        let kind = if eq(level, "modalities") {
            "modality"
        } else if eq(level, "peers") {
            "peer"
        } else {
            return None;
        };
        return Some(RestDownload {
            destination: Some(format!("{kind} {id}")),
            ..download("resources", "store", Vec::new())
        });
    }
    if get && eq(level, "instances") && eq(last, "file") {
        return Some(download("instances", "file", vec![id.to_string()]));
    }
    let format = if eq(last, "archive") {
        "archive"
    } else if eq(last, "media") {
        "media"
    } else {
        return None;
    };
    let level = ["patients", "studies", "series"].into_iter().find(|l| eq(level, l))?;
    Some(download(level, format, vec![id.to_string()]))
}

/// [`RestDownload::api`] and [`RestDownload::level`] of a response whose request was not seen.
pub const UNKNOWN: &str = "unknown";

/// A DICOM file or ZIP (`format`) sent in answer to a request the capture lost: which API and
/// which resources are unknown; the body names the study.
pub fn unknown_request(format: &str) -> RestDownload {
    RestDownload {
        api: UNKNOWN.into(),
        level: UNKNOWN.into(),
        format: format.into(),
        ids: Vec::new(),
        study_instance_uids: Vec::new(),
        destination: None,
    }
}

fn download(level: &str, format: &str, ids: Vec<String>) -> RestDownload {
    RestDownload {
        api: API.into(),
        level: level.into(),
        format: format.into(),
        ids,
        study_instance_uids: Vec::new(),
        destination: None,
    }
}

/// `resources=id1,id2,…` (comma-separated, percent-encoded or not).
fn ids_from_query(query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (k, v) in query_pairs(query) {
        if !k.eq_ignore_ascii_case("resources") {
            continue;
        }
        for id in percent_decode(v).split(',') {
            let id = id.trim();
            if is_id(id) && ids.len() < MAX_IDS {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// The ids a `/tools/create-*` request body lists (its first bytes: what came before a cut).
pub fn ids_from_body(body: &[u8]) -> Vec<String> {
    let listed: Vec<String> = super::auth::json_string_array_or_key(body, "Resources", MAX_IDS)
        .into_iter()
        .filter(|id| is_id(id))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    // `/modalities/{name}/store` also takes one bare id as the whole body.
    std::str::from_utf8(body)
        .ok()
        .map(str::trim)
        .filter(|id| is_id(id))
        .map(|id| vec![id.to_owned()])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::url::{segments, split_target};

    const STUDY: &str = "27f7126f-4f66c005-ac3b1ca5-f4ab3d0e-f1c00d3e";

    fn c(method: &str, target: &str) -> Option<(String, String, Vec<String>)> {
        let t = split_target(target);
        classify(method, &segments(t.path), t.query).map(|d| (d.level, d.format, d.ids))
    }

    fn one(level: &str, format: &str, id: &str) -> Option<(String, String, Vec<String>)> {
        Some((level.into(), format.into(), vec![id.into()]))
    }

    #[test]
    fn resource_downloads() {
        assert_eq!(
            c("GET", &format!("/studies/{STUDY}/archive")),
            one("studies", "archive", STUDY)
        );
        assert_eq!(
            c("POST", &format!("/orthanc/series/{STUDY}/media")),
            one("series", "media", STUDY)
        );
        assert_eq!(
            c("GET", &format!("/Patients/{STUDY}/Archive?filename=x.zip")),
            one("patients", "archive", STUDY)
        );
        assert_eq!(
            c("GET", &format!("/instances/{STUDY}/file")),
            one("instances", "file", STUDY)
        );
    }

    #[test]
    fn create_archive_lists() {
        assert_eq!(
            c("GET", "/tools/create-archive?resources=a1,b2&transcode=x"),
            Some(("resources".into(), "archive".into(), vec!["a1".into(), "b2".into()]))
        );
        assert_eq!(
            c("GET", "/tools/create-media?resources=a1%2Cb2"),
            Some(("resources".into(), "media".into(), vec!["a1".into(), "b2".into()]))
        );
        // POST: the ids come from the body.
        assert_eq!(
            c("POST", "/tools/create-media-extended"),
            Some(("resources".into(), "media".into(), vec![]))
        );
        assert_eq!(c("GET", "/tools/create-archive"), None);
        assert_eq!(ids_from_body(br#"["a1", "b2", 3, {"x": 1}, "c3"]"#), ["a1", "b2", "c3"]);
        assert_eq!(
            ids_from_body(br#"{"Synchronous": true, "Resources": ["a1", "b/2", "c3"], "x": 1}"#),
            ["a1", "c3"]
        );
        // A prefix cut inside the list keeps what came before the cut.
        assert_eq!(ids_from_body(br#"{"Resources": ["a1", "b2", "c"#), ["a1", "b2"]);
        let many: Vec<String> = (0..100).map(|i| format!("\"id{i}\"")).collect();
        assert_eq!(ids_from_body(format!("[{}]", many.join(",")).as_bytes()).len(), MAX_IDS);
    }

    #[test]
    fn pushes_to_a_node_or_a_peer() {
        let t = split_target("/modalities/storescp/store");
        let d = classify("POST", &segments(t.path), t.query).unwrap();
        assert_eq!(
            (d.level.as_str(), d.format.as_str(), d.destination.as_deref()),
            ("resources", "store", Some("modality storescp"))
        );
        let d = classify("POST", &segments("/orthanc/peers/remote/store"), None).unwrap();
        assert_eq!(d.destination.as_deref(), Some("peer remote"));
        assert_eq!(c("GET", "/modalities/storescp/store"), None);
        assert_eq!(c("POST", "/modalities/storescp/move"), None);
        assert_eq!(c("POST", "/patients/p1/store"), None);
        assert_eq!(ids_from_body(b"  a1b2  "), ["a1b2"]);
        assert!(ids_from_body(b"not/an id").is_empty());
    }

    #[test]
    fn not_downloads() {
        for (m, t) in [
            ("GET", "/studies"),
            ("GET", &format!("/studies/{STUDY}")),
            ("GET", &format!("/instances/{STUDY}/preview")),
            ("POST", &format!("/instances/{STUDY}/file")),
            ("DELETE", &format!("/studies/{STUDY}/archive")),
            ("GET", &format!("/modalities/{STUDY}/archive")),
            ("GET", "/studies/a%2Fb/archive"),
            ("GET", &format!("/studies/{}/archive", "x".repeat(65))),
            ("POST", "/tools/reset"),
            ("GET", "/archive"),
        ] {
            assert_eq!(c(m, t), None, "{m} {t}");
        }
    }
}
