//! Exports dcm4chee-arc is told to make through its REST API (dcm4chee-arc-light wiki, "UI
//! Triggered DICOM Export"; its swagger `export` services): the archive sends a study, series or
//! instance to a configured exporter (a DICOM node, a STOW-RS server, …) on its own
//! connection, so the requester exports it there, as with Orthanc's `/modalities/{name}/store`
//! (`orthanc.rs`).
//!
//! - `POST /aets/{aet}/rs/studies/{study}[/series/{series}[/instances/{instance}]]/export/{exporter}`
//!   (an exporter id, or `dicom:{AE}` for a direct C-STORE);
//! - `POST /aets/{aet}/dimse/{external}/studies/{study}[/…]/export/dicom:{AE}` (a C-MOVE from an
//!   external archive to `AE`, scheduled by this one).
//!
//! The study is named by its Study Instance UID in the URL, so it counts as the same study as a
//! WADO or C-MOVE of it. Exports of every study matching a query (`/export/{exporter}/studies?…`)
//! name no study and are not counted.

use std::borrow::Cow;

use pacstap_core::RestDownload;

use super::dicomweb::is_uid;

/// The API name in [`RestDownload::api`].
pub const API: &str = "dcm4chee";

/// Longest exporter id or AE kept as the destination.
const MAX_DESTINATION: usize = 64;

fn eq(seg: &str, word: &str) -> bool {
    seg.eq_ignore_ascii_case(word)
}

/// The export a request is, if it is one.
pub fn classify(method: &str, segs: &[Cow<'_, str>]) -> Option<RestDownload> {
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let (dest, rest) = match segs {
        [rest @ .., export, dest] if eq(export, "export") => (dest, rest),
        _ => return None,
    };
    if dest.is_empty() || dest.chars().count() > MAX_DESTINATION || dest.chars().any(char::is_control) {
        return None;
    }
    // The resource: studies/{uid}, then optionally series/{uid}, instances/{uid}.
    let at = rest.iter().position(|s| eq(s, "studies"))?;
    let study = rest.get(at + 1).filter(|u| is_uid(u))?;
    let tail = rest.get(at + 2..).unwrap_or_default();
    let level = match tail {
        [] => "studies",
        [s, u] if eq(s, "series") && is_uid(u) => "series",
        [s, u, i, v] if eq(s, "series") && is_uid(u) && eq(i, "instances") && is_uid(v) => "instances",
        _ => return None,
    };
    // Below the study: `/aets/{aet}/rs/` (this archive) or `/aets/{aet}/dimse/{external}/`.
    let via = rest.get(..at).unwrap_or_default();
    if !via.iter().any(|s| eq(s, "rs") || eq(s, "dimse")) {
        return None;
    }
    Some(RestDownload {
        api: API.into(),
        level: level.into(),
        format: "store".into(),
        ids: vec![study.to_string()],
        study_instance_uids: vec![study.to_string()],
        destination: Some(format!("exporter {dest}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::url::segments;

    const ST: &str = "1.2.826.0.1.3680043.10.1234.20.1";
    const SE: &str = "1.2.826.0.1.3680043.10.1234.20.1.1";

    fn c(method: &str, path: &str) -> Option<(String, Vec<String>, Option<String>)> {
        classify(method, &segments(path)).map(|d| (d.level, d.study_instance_uids, d.destination))
    }

    #[test]
    fn exports_name_their_study_and_exporter() {
        assert_eq!(
            c(
                "POST",
                &format!("/dcm4chee-arc/aets/DCM4CHEE/rs/studies/{ST}/export/STORESCP")
            ),
            Some(("studies".into(), vec![ST.into()], Some("exporter STORESCP".into())))
        );
        assert_eq!(
            c(
                "POST",
                &format!("/dcm4chee-arc/aets/DCM4CHEE/dimse/EXT/studies/{ST}/series/{SE}/export/dicom:WS2")
            ),
            Some(("series".into(), vec![ST.into()], Some("exporter dicom:WS2".into())))
        );
    }

    #[test]
    fn not_exports() {
        for (m, p) in [
            (
                "GET",
                format!("/dcm4chee-arc/aets/DCM4CHEE/rs/studies/{ST}/export/STORESCP"),
            ),
            ("POST", format!("/dcm4chee-arc/aets/DCM4CHEE/rs/studies/{ST}")),
            ("POST", "/dcm4chee-arc/aets/DCM4CHEE/export/STORESCP/studies".to_owned()),
            (
                "POST",
                "/dcm4chee-arc/aets/DCM4CHEE/rs/studies/not-a-uid/export/X".to_owned(),
            ),
            (
                "POST",
                format!("/dcm4chee-arc/aets/DCM4CHEE/rs/studies/{ST}/foo/{SE}/export/X"),
            ),
            ("POST", format!("/elsewhere/studies/{ST}/export/X")),
            (
                "POST",
                format!("/dcm4chee-arc/aets/A/rs/studies/{ST}/export/{}", "x".repeat(65)),
            ),
        ] {
            assert_eq!(c(m, &p), None, "{m} {p}");
        }
    }
}
