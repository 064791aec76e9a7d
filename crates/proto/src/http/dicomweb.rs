//! DICOMweb classification of a request (PS3.18 §10): which service a URL is, and the
//! Study/Series/SOP Instance UIDs it names.
//!
//! Servers mount DICOMweb under any prefix (Orthanc `/dicom-web/`, dcm4chee-arc
//! `/dcm4chee-arc/aets/DCM4CHEE/rs/`, Google Healthcare `…/dicomStores/x/dicomWeb/`), so the
//! resource path is found by its own shape wherever it starts: a `studies`, `series`,
//! `instances` (or `workitems`) segment followed by what PS3.18 §10.4 (WADO-RS), §10.5
//! (STOW-RS), §10.6 (QIDO-RS) and §11 (UPS-RS) allow after it, to the end of the path.
//! A segment in a UID position must be a UID (PS3.5 §9.1: digits and dots, at most 64
//! characters), which also keeps Orthanc's own REST API (`/studies/{sha1-like id}`) out.

use super::url::percent_decode;
use super::url::query_pairs;
use pacstap_core::DicomWeb;
use std::borrow::Cow;

/// PS3.5 §9.1: a UID is at most 64 characters of digits and `.`, components non-empty.
/// (The no-leading-zero rule is not enforced: real devices break it and still mean a UID.)
pub fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
}

/// The service names of the contract (CONTRACT §2 `http.dicomweb.service`).
pub mod service {
    pub const QIDO_RS: &str = "QIDO-RS";
    pub const WADO_RS: &str = "WADO-RS";
    pub const STOW_RS: &str = "STOW-RS";
    pub const WADO_URI: &str = "WADO-URI";
    /// Extension: Unified Procedure Step (PS3.18 §11).
    pub const UPS_RS: &str = "UPS-RS";
}

#[derive(Debug, Default)]
struct Resource<'s> {
    study: Option<&'s str>,
    series: Option<&'s str>,
    sop: Option<&'s str>,
    /// The path ends on a collection (no UID after it): a search, or a STOW to `studies`.
    collection: Option<&'static str>,
    /// A sub-resource after the UIDs (`metadata`, `rendered`, …).
    resource: Option<&'static str>,
    workitems: bool,
}

fn eq(seg: &str, word: &str) -> bool {
    seg.eq_ignore_ascii_case(word)
}

/// The sub-resources of a study, series or instance (PS3.18 §10.4.1 Table 10.4.1-1).
fn sub_resource(seg: &str) -> Option<&'static str> {
    ["metadata", "rendered", "thumbnail", "bulkdata", "pixeldata", "frames"]
        .into_iter()
        .find(|w| eq(seg, w))
}

/// Parse `segs` (starting at a collection keyword) to its end; `None` if the rest of the path
/// is not a DICOMweb resource.
fn parse_resource<'s>(segs: &'s [Cow<'s, str>]) -> Option<Resource<'s>> {
    let mut r = Resource::default();
    let mut it = segs.iter().map(|s| &**s).peekable();
    let first = it.next()?;
    // The levels that may follow each collection, in order.
    let mut level: &str = if eq(first, "studies") {
        "studies"
    } else if eq(first, "series") {
        "series"
    } else if eq(first, "instances") {
        "instances"
    } else if eq(first, "workitems") {
        r.workitems = true;
        // UPS-RS: /workitems[/{uid}[/state|/cancelrequest|/subscribers/{ae}]] (PS3.18 §11).
        match it.next() {
            None => r.collection = Some("workitem"),
            Some(uid) if is_uid(uid) => r.sop = Some(uid),
            Some(_) => return None,
        }
        return Some(r);
    } else {
        return None;
    };
    loop {
        let Some(uid) = it.next() else {
            r.collection = Some(match level {
                "studies" => "study",
                "series" => "series",
                _ => "instance",
            });
            return Some(r);
        };
        if !is_uid(uid) {
            return None;
        }
        match level {
            "studies" => r.study = Some(uid),
            "series" => r.series = Some(uid),
            _ => r.sop = Some(uid),
        }
        let Some(next) = it.next() else {
            return Some(r);
        };
        if level == "studies" && eq(next, "series") {
            level = "series";
        } else if level != "instances" && eq(next, "instances") {
            level = "instances";
        } else if let Some(sub) = sub_resource(next) {
            r.resource = Some(sub);
            return match sub {
                // bulkdata/{anything} (§10.4.1.1.5); frames/{list}[/rendered|/thumbnail].
                "bulkdata" => Some(r),
                "frames" => {
                    let list = it.next()?;
                    if !list
                        .split(',')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    {
                        return None;
                    }
                    match it.next() {
                        None => Some(r),
                        Some(s) if eq(s, "rendered") || eq(s, "thumbnail") => {
                            r.resource = Some(if eq(s, "rendered") { "rendered" } else { "thumbnail" });
                            it.next().is_none().then_some(r)
                        }
                        Some(_) => None,
                    }
                }
                _ => it.next().is_none().then_some(r),
            };
        } else {
            return None;
        }
    }
}

/// First valid UID of a query parameter value (a UID list is comma-separated, PS3.18 §8.3.4.1).
fn first_uid(value: &str) -> Option<String> {
    let v = percent_decode(value);
    v.split(',').map(str::trim).find(|u| is_uid(u)).map(str::to_string)
}

/// Classify a request: `segs` are the normalised path segments (`url::segments`), `query` the
/// raw query. `None` when it is not DICOMweb.
pub fn classify(method: &str, segs: &[Cow<'_, str>], query: Option<&str>) -> Option<DicomWeb> {
    // HEAD transfers nothing: a search or a retrieval is a GET (PS3.18 §8.1).
    let get = method == "GET";
    // WADO-URI (PS3.18 §9.1): any path, recognised by `requestType=WADO`.
    if let Some(q) = query {
        let is_wado_uri =
            query_pairs(q).any(|(k, v)| eq(&percent_decode(k), "requestType") && eq(&percent_decode(v), "WADO"));
        if is_wado_uri && get {
            let mut dw = DicomWeb {
                service: service::WADO_URI.into(),
                ..DicomWeb::default()
            };
            for (k, v) in query_pairs(q) {
                let k = percent_decode(k);
                let slot = if eq(&k, "studyUID") {
                    &mut dw.study_instance_uid
                } else if eq(&k, "seriesUID") {
                    &mut dw.series_instance_uid
                } else if eq(&k, "objectUID") {
                    &mut dw.sop_instance_uid
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = first_uid(v);
                }
            }
            return Some(dw);
        }
    }
    let keyword = |s: &str| ["studies", "series", "instances", "workitems"].iter().any(|w| eq(s, w));
    let r = (0..segs.len())
        .filter(|&i| segs.get(i).is_some_and(|s| keyword(s)))
        .find_map(|i| parse_resource(segs.get(i..)?))?;
    let service = if r.workitems {
        service::UPS_RS
    } else if get {
        if r.collection.is_some() {
            service::QIDO_RS
        } else {
            service::WADO_RS
        }
    } else if method == "POST" && r.series.is_none() && r.sop.is_none() && r.resource.is_none() {
        // STOW-RS: POST …/studies[/{StudyInstanceUID}] (§10.5.1).
        if r.collection.is_some() && r.collection != Some("study") {
            return None;
        }
        service::STOW_RS
    } else {
        return None;
    };
    let mut dw = DicomWeb {
        service: service.into(),
        study_instance_uid: r.study.map(str::to_string),
        series_instance_uid: r.series.map(str::to_string),
        sop_instance_uid: r.sop.map(str::to_string),
        level: None,
        resource: r.resource.map(str::to_string),
    };
    if service == service::QIDO_RS {
        dw.level = r.collection.map(str::to_string);
        // Matching keys by keyword or by tag (PS3.18 §8.3.4.1).
        if let Some(q) = query {
            for (k, v) in query_pairs(q) {
                let k = percent_decode(k);
                let slot = if eq(&k, "StudyInstanceUID") || eq(&k, "0020000D") {
                    &mut dw.study_instance_uid
                } else if eq(&k, "SeriesInstanceUID") || eq(&k, "0020000E") {
                    &mut dw.series_instance_uid
                } else if eq(&k, "SOPInstanceUID") || eq(&k, "00080018") {
                    &mut dw.sop_instance_uid
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = first_uid(v);
                }
            }
        }
    }
    Some(dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The services this decoder names are exactly core's list, which metrics label by.
    #[test]
    fn service_names_are_the_vocabulary_metrics_use() {
        use service::*;
        assert_eq!(
            [QIDO_RS, WADO_RS, STOW_RS, WADO_URI, UPS_RS],
            pacstap_core::vocab::DICOMWEB_SERVICES
        );
    }
    use crate::http::url::{segments, split_target};

    const ST: &str = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.92402465.76095170";
    const SE: &str = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.96842950.07877442";
    const SO: &str = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.03296050.69180943";

    fn c(method: &str, target: &str) -> Option<DicomWeb> {
        let t = split_target(target);
        classify(method, &segments(t.path), t.query)
    }

    fn svc(method: &str, target: &str) -> Option<String> {
        c(method, target).map(|d| d.service)
    }

    #[test]
    fn uids() {
        assert!(is_uid(ST));
        assert!(is_uid("1"));
        assert!(!is_uid(""));
        assert!(!is_uid("1..2"));
        assert!(!is_uid(".1"));
        assert!(!is_uid("1.2."));
        assert!(!is_uid(&"1".repeat(65)));
        assert!(!is_uid("27f7126f-4f66c005-ac3b1ca5-f4ab3d0e-f1c00d3e"));
    }

    #[test]
    fn qido() {
        let d = c("GET", "/dicom-web/studies?PatientID=12345&limit=10").unwrap();
        assert_eq!(d.service, "QIDO-RS");
        assert_eq!(d.level.as_deref(), Some("study"));
        assert_eq!(d.study_instance_uid, None);
        let d = c("GET", &format!("/dicom-web/studies/{ST}/series?Modality=CT")).unwrap();
        assert_eq!((d.service.as_str(), d.level.as_deref()), ("QIDO-RS", Some("series")));
        assert_eq!(d.study_instance_uid.as_deref(), Some(ST));
        let d = c("GET", &format!("/rs/studies/{ST}/series/{SE}/instances")).unwrap();
        assert_eq!(
            (d.level.as_deref(), d.series_instance_uid.as_deref()),
            (Some("instance"), Some(SE))
        );
        let d = c("GET", &format!("/dicom-web/studies?StudyInstanceUID={ST}%2C1.2.3")).unwrap();
        assert_eq!(d.study_instance_uid.as_deref(), Some(ST));
        let d = c("GET", &format!("/dicom-web/series?0020000D={ST}&0020000E=bad")).unwrap();
        assert_eq!(d.level.as_deref(), Some("series"));
        assert_eq!(d.study_instance_uid.as_deref(), Some(ST));
        assert_eq!(d.series_instance_uid, None);
        assert_eq!(
            svc("GET", "/dicom-web/instances?SOPClassUID=1.2"),
            Some("QIDO-RS".into())
        );
        assert_eq!(
            svc("GET", &format!("/x/studies/{ST}/instances/")),
            Some("QIDO-RS".into())
        );
    }

    #[test]
    fn wado_rs() {
        for (target, resource) in [
            (format!("/dicom-web/studies/{ST}"), None),
            (
                format!("/dcm4chee-arc/aets/DCM4CHEE/rs/studies/{ST}/metadata"),
                Some("metadata"),
            ),
            (format!("/studies/{ST}/series/{SE}/rendered"), Some("rendered")),
            (format!("/studies/{ST}/series/{SE}/instances/{SO}"), None),
            (
                format!("/studies/{ST}/series/{SE}/instances/{SO}/frames/1,2,3"),
                Some("frames"),
            ),
            (
                format!("/studies/{ST}/series/{SE}/instances/{SO}/frames/1/rendered"),
                Some("rendered"),
            ),
            (
                format!("/studies/{ST}/series/{SE}/instances/{SO}/thumbnail"),
                Some("thumbnail"),
            ),
            (
                format!("/studies/{ST}/series/{SE}/instances/{SO}/bulkdata/7fe00010/x"),
                Some("bulkdata"),
            ),
            (
                format!("/v1/projects/p/locations/l/datasets/d/dicomStores/s/dicomWeb/studies/{ST}"),
                None,
            ),
        ] {
            let d = c("GET", &target).unwrap_or_else(|| panic!("{target}"));
            assert_eq!(d.service, "WADO-RS", "{target}");
            assert_eq!(d.study_instance_uid.as_deref(), Some(ST), "{target}");
            assert_eq!(d.resource.as_deref(), resource, "{target}");
            assert_eq!(d.level, None);
        }
        let d = c("GET", &format!("/studies/{ST}/series/{SE}/instances/{SO}")).unwrap();
        assert_eq!(d.sop_instance_uid.as_deref(), Some(SO));
        assert_eq!(d.series_instance_uid.as_deref(), Some(SE));
    }

    #[test]
    fn stow_rs() {
        assert_eq!(svc("POST", "/dicom-web/studies"), Some("STOW-RS".into()));
        let d = c("POST", &format!("/dicom-web/studies/{ST}")).unwrap();
        assert_eq!(
            (d.service.as_str(), d.study_instance_uid.as_deref()),
            ("STOW-RS", Some(ST))
        );
        assert_eq!(d.level, None);
        assert_eq!(svc("POST", &format!("/dicom-web/studies/{ST}/series")), None);
        assert_eq!(svc("POST", "/dicom-web/series"), None);
    }

    #[test]
    fn wado_uri() {
        let d = c(
            "GET",
            &format!(
                "/wado?requestType=WADO&studyUID={ST}&seriesUID={SE}&objectUID={SO}&contentType=application%2Fdicom"
            ),
        )
        .unwrap();
        assert_eq!(d.service, "WADO-URI");
        assert_eq!(
            (
                d.study_instance_uid.as_deref(),
                d.series_instance_uid.as_deref(),
                d.sop_instance_uid.as_deref()
            ),
            (Some(ST), Some(SE), Some(SO))
        );
        assert_eq!(svc("GET", "/wado?requesttype=wado"), Some("WADO-URI".into()));
    }

    #[test]
    fn not_dicomweb() {
        for (m, t) in [
            ("GET", "/"),
            ("GET", "/app/explorer.html"),
            ("GET", "/studies/27f7126f-4f66c005-ac3b1ca5-f4ab3d0e-f1c00d3e/archive"),
            ("GET", "/patients"),
            ("GET", &format!("/studies/{ST}/foo")),
            ("GET", &format!("/studies/{ST}/metadata/extra")),
            ("GET", &format!("/studies/{ST}/series/{SE}/instances/{SO}/frames/x")),
            ("GET", &format!("/studies/{ST}/series/{SE}/instances/{SO}/frames")),
            ("DELETE", &format!("/studies/{ST}")),
            ("PUT", "/studies"),
        ] {
            assert_eq!(c(m, t), None, "{m} {t}");
        }
    }

    #[test]
    fn prefix_containing_keywords() {
        // A prefix segment named like a collection does not hide the real resource.
        let d = c("GET", &format!("/studies/app/dicom-web/studies/{ST}")).unwrap();
        assert_eq!(
            (d.service.as_str(), d.study_instance_uid.as_deref()),
            ("WADO-RS", Some(ST))
        );
    }

    #[test]
    fn ups() {
        assert_eq!(svc("GET", "/dicom-web/workitems?x=1"), Some("UPS-RS".into()));
        assert_eq!(
            svc("PUT", &format!("/dicom-web/workitems/{SO}/state")),
            Some("UPS-RS".into())
        );
        assert_eq!(svc("GET", "/dicom-web/workitems/not-a-uid"), None);
        assert_eq!(
            svc("POST", &format!("/dicom-web/workitems/{SO}")),
            Some("UPS-RS".into())
        );
    }
}
