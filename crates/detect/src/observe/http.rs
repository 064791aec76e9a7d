//! HTTP requests (with their responses): logins by status and credentials, admin and share
//! actions the decoder recognised, and DICOMweb transfers (WADO downloads are exports; WADO
//! and STOW-RS to addresses outside the inventory are unknown destinations).

use super::{non_empty, Observation, Observer};
use crate::dest::Dest;
use crate::entity::EntRef;
use crate::rules::UnknownDest;
use crate::scope::to_items;
use pacstap_core::{CountedStudy, DicomWeb, HttpEvent, ProtocolEvent, RestDownload};

pub(super) fn request<'a>(o: &Observer<'_>, ev: &'a ProtocolEvent, h: &'a HttpEvent, seen: &mut Vec<Observation<'a>>) {
    let client = ev.flow.client.ip;
    let user = h.user.as_deref().and_then(non_empty);
    let ok = h.status.is_some_and(|s| (200..300).contains(&s));
    let not_refused = !matches!(h.status, Some(s) if s >= 400);
    // CONTRACT §2: an HTTP 401/403 on an authenticated request is a failed login.
    if matches!(h.status, Some(401 | 403)) && (user.is_some() || h.auth.is_some()) {
        seen.push(Observation::LoginFailed {
            user,
            ae: None,
            client,
            called: None,
        });
    } else if ok {
        if let Some(u) = user {
            seen.push(Observation::LoginSucceeded {
                user: Some(u),
                ae: None,
                client,
            });
            seen.push(Observation::DeviceUsed {
                entity: EntRef::User(u),
                client,
            });
            seen.push(Observation::LocationUsed { user: u, client });
            seen.push(Observation::WebUserSeen { user: u, client });
        }
    }
    let actor = user.map_or(EntRef::Ip(client), EntRef::User);
    if let Some(action) = h.admin_action.as_deref().and_then(non_empty) {
        if not_refused {
            let detail = format!("{action} ({} {})", h.method, h.url);
            seen.push(Observation::AdminAction { actor, detail });
        }
    }
    if let Some(share) = h.share_action.as_deref().and_then(non_empty) {
        if not_refused {
            let mut recipients = share_recipients(h);
            let internal = &o.cfg.rules.sharing_spike.internal_domains;
            recipients.retain(|r| !is_internal_recipient(r, internal));
            seen.push(Observation::Share {
                actor,
                action: share,
                recipients,
            });
        }
    }
    // A retrieval whose response was not seen whole (lost in a capture gap, or cut by the end
    // of the capture) still moved its study, most likely: counted, as a C-MOVE without its
    // response is. Refused ones (4xx, 5xx) are not. With 10% of bulk-export-wado.pcap's frames
    // dropped, 4 of its 17 retrievals lost their response and the bulk export went unseen.
    let moved = ok || (h.status.is_none() && h.incomplete);
    if !moved {
        return;
    }
    let studies: Vec<(u64, Option<&'a str>)> = match (&h.dicomweb, &h.download) {
        (Some(dw), _) if matches!(dw.service.as_str(), "WADO-RS" | "WADO-URI") => {
            vec![match dw.study_instance_uid.as_deref().and_then(non_empty) {
                Some(uid) => (o.study_key(uid), Some(uid)),
                // A response seen without its request nor its study (the file's start lost
                // too) is one retrieval of a study not known to be another's.
                None if h.request_missing => (o.hasher.hash_one((ev.flow.id, ev.ts.0)), None),
                None => (o.study_key(&h.url), None),
            }]
        }
        (Some(dw), _) => {
            if dw.service == "STOW-RS" {
                stow_to_unknown_server(o, ev, dw, seen);
            }
            return;
        }
        (None, Some(d)) => rest_download_studies(o, d),
        (None, None) => return,
    };
    if studies.is_empty() {
        return;
    }
    // A push the PACS was told to make: the node or peer it names (Orthanc's name for it, not
    // an AE title, so not checked against the inventory: the C-STOREs that follow are).
    if let Some(to) = h.download.as_ref().and_then(|d| d.destination.as_deref()) {
        seen.push(Observation::Download {
            entity: actor,
            user_unseen: false,
            studies,
            dest: Dest::ae(to, None, None),
            bytes: 0,
        });
        return;
    }
    // The client downloads: its address is the destination.
    let dest = Dest::Client(client);
    if let Some(why) = o.inv.dicom_destination_unknown(None, Some(client)) {
        seen.push(Observation::UnknownDestination(UnknownDest {
            entity: EntRef::Ip(client),
            label: dest.summary(),
            dest: dest.clone(),
            why,
            studies: to_items(&studies),
            volume: None,
            what: None,
        }));
    }
    seen.push(Observation::Download {
        entity: actor,
        user_unseen: h.request_missing && user.is_none(),
        studies,
        dest,
        bytes: h.response_bytes,
    });
}

/// What a REST API retrieval (`HttpEvent.download`) exported ([`RestDownload::counted_studies`]):
/// named studies keyed as a WADO retrieval or a C-MOVE of the same study is, resources by API,
/// level and id.
fn rest_download_studies<'a>(o: &Observer<'_>, d: &'a RestDownload) -> Vec<(u64, Option<&'a str>)> {
    d.counted_studies()
        .into_iter()
        .map(|c| match c {
            CountedStudy::Named(uid) => (o.study_key(uid), Some(uid)),
            CountedStudy::Resource(id) => (o.hasher.hash_one((d.api.as_str(), d.level.as_str(), id)), None),
        })
        .collect()
}

/// A STOW-RS store to a server outside the inventory: images sent to an unknown destination.
fn stow_to_unknown_server<'a>(
    o: &Observer<'_>,
    ev: &'a ProtocolEvent,
    dw: &'a DicomWeb,
    seen: &mut Vec<Observation<'a>>,
) {
    let server = ev.flow.server.ip;
    if let Some(why) = o.inv.dicom_destination_unknown(None, Some(server)) {
        let studies: Vec<(u64, Option<&str>)> = dw
            .study_instance_uid
            .as_deref()
            .and_then(non_empty)
            .map(|u| vec![(o.study_key(u), Some(u))])
            .unwrap_or_default();
        seen.push(Observation::UnknownDestination(UnknownDest {
            entity: EntRef::Ip(server),
            label: format!("STOW-RS server {}", ev.flow.server),
            dest: Dest::Server(server, Some(ev.flow.server.port)),
            why,
            studies: to_items(&studies),
            volume: None,
            what: None,
        }));
    }
}

/// Recipients of a share action: those the HTTP decoder read from the request body
/// (`HttpEvent.share_recipients`), else those named in the query string (`email`,
/// `recipient`, `to`, `mail`). At most 16, each at most 256 bytes, lower-cased.
fn share_recipients(h: &HttpEvent) -> Vec<String> {
    if !h.share_recipients.is_empty() {
        return h
            .share_recipients
            .iter()
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty() && r.len() <= 256)
            .take(16)
            .collect();
    }
    let Some((_, query)) = h.url.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(k.to_ascii_lowercase().as_str(), "email" | "recipient" | "to" | "mail"))
        .map(|(_, v)| v.replace("%40", "@").to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .take(16)
        .collect()
}

/// Whether an e-mail recipient is in one of our domains (or a subdomain of one).
fn is_internal_recipient(r: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = r.rsplit_once('@') else {
        return false;
    };
    domains.iter().any(|d| {
        let d = d.trim().trim_start_matches('@');
        domain.eq_ignore_ascii_case(d)
            || (domain.len() > d.len()
                && domain
                    .get(domain.len() - d.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(d))
                && domain.as_bytes().get(domain.len() - d.len() - 1) == Some(&b'.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observed;
    use crate::testkit::*;
    use crate::Detector;

    #[test]
    fn a_401_on_an_authenticated_request_is_a_failed_login() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let ev = http_ev(http(0, f, "/app", 401, Some("bob")));
        let seen = observed(&d, &ev);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(
            seen[0],
            Observation::LoginFailed { user: Some("bob"), ae: None, client, .. } if client == f.client.ip
        ));
        // Without credentials a 401 is a challenge, not a failed login.
        let anon = http_ev(http(0, f, "/app", 401, None));
        assert!(observed(&d, &anon).is_empty());
    }

    #[test]
    fn a_2xx_with_a_user_is_a_login_from_a_device_and_a_location() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let ev = http_ev(http(0, f, "/app", 200, Some("bob")));
        let seen = observed(&d, &ev);
        assert!(matches!(seen[0], Observation::LoginSucceeded { user: Some("bob"), .. }));
        assert!(matches!(
            seen[1],
            Observation::DeviceUsed {
                entity: EntRef::User("bob"),
                ..
            }
        ));
        assert!(matches!(seen[2], Observation::LocationUsed { user: "bob", .. }));
        assert!(matches!(seen[3], Observation::WebUserSeen { user: "bob", client } if client == f.client.ip));
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn share_recipients_in_our_domains_are_dropped() {
        let d = Detector::new(
            &config("[rules.sharing_spike]\ninternal_domains = [\"hospital.org\"]\n"),
            None,
        )
        .unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let (t, f, mut h) = http(
            0,
            f,
            "/s?email=A%40Ext.com&to=b@mail.hospital.org&x=c@y.com",
            201,
            Some("bob"),
        );
        h.share_action = Some("share_link_created".into());
        let ev = http_ev((t, f, h));
        let seen = observed(&d, &ev);
        let share = seen.iter().find_map(|o| match o {
            Observation::Share { action, recipients, .. } => Some((*action, recipients.clone())),
            _ => None,
        });
        assert_eq!(share, Some(("share_link_created", vec!["a@ext.com".to_string()])));
        assert!(is_internal_recipient("x@hospital.org", &["@hospital.org".into()]));
        assert!(!is_internal_recipient("x@evilhospital.org", &["hospital.org".into()]));
    }

    #[test]
    fn a_wado_download_outside_the_networks_is_an_unknown_destination_then_an_export() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "203.0.113.7:40000", "10.0.0.5:443");
        let ev = wado(0, f, None, "1.2.3");
        let seen = observed(&d, &ev);
        assert_eq!(seen.len(), 2, "{seen:?}");
        let Observation::UnknownDestination(u) = &seen[0] else {
            panic!("{seen:?}")
        };
        assert_eq!(
            (u.label.as_str(), u.why),
            ("client 203.0.113.7", "outside the internal networks")
        );
        let Observation::Download { entity, studies, .. } = &seen[1] else {
            panic!("{seen:?}")
        };
        let study = &studies[0];
        assert_eq!(*entity, EntRef::Ip(f.client.ip));
        assert_eq!(study.1, Some("1.2.3"));
        assert_eq!(study.0, d.hasher.hash_one("1.2.3"));
    }

    #[test]
    fn a_retrieval_whose_response_was_not_seen_whole_is_still_a_download() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let downloads = |status: Option<u16>, incomplete: bool| {
            let mut ev = wado(0, f, Some("bob"), "1.2.3");
            if let pacstap_core::EventBody::Http(h) = &mut ev.body {
                h.status = status;
                h.incomplete = incomplete;
            }
            observed(&d, &ev)
                .iter()
                .filter(|o| matches!(o, Observation::Download { .. }))
                .count()
        };
        assert_eq!(downloads(Some(200), false), 1);
        assert_eq!(downloads(None, true), 1, "the response fell in a gap or was cut off");
        assert_eq!(downloads(Some(404), false), 0, "refused");
        assert_eq!(downloads(Some(404), true), 0, "refused, even if cut");
        assert_eq!(downloads(None, false), 0, "no sign it was answered at all");
    }

    #[test]
    fn rest_downloads_count_the_study_their_file_names_else_each_resource() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:8042");
        let studies = |level: &str, format: &str, ids: &[&str], uid: Option<&str>, status: u16| {
            let (t, f, mut h) = http(0, f, "/x", status, Some("bob"));
            h.download = Some(RestDownload {
                api: "orthanc".into(),
                level: level.into(),
                format: format.into(),
                ids: ids.iter().map(|i| i.to_string()).collect(),
                study_instance_uids: uid.map(str::to_owned).into_iter().collect(),
                destination: None,
            });
            let ev = http_ev((t, f, h));
            observed(&d, &ev)
                .iter()
                .filter_map(|o| match o {
                    Observation::Download { studies, .. } => Some(
                        studies
                            .iter()
                            .map(|(k, u)| (*k, u.map(str::to_owned)))
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .flatten()
                .collect::<Vec<_>>()
        };
        let named = vec![(d.hasher.hash_one("1.2.3"), Some("1.2.3".to_owned()))];
        // A study's or a series' ZIP, a DICOM file: the study their file named, keyed as a WADO
        // retrieval or a C-MOVE of that study is.
        assert_eq!(studies("studies", "archive", &["s1"], Some("1.2.3"), 200), named);
        assert_eq!(studies("series", "media", &["r1"], Some("1.2.3"), 200), named);
        assert_eq!(studies("instances", "file", &["i1"], Some("1.2.3"), 200), named);
        // Not read: a ZIP counts its resource; a file counts nothing (a viewer's hundred
        // instances are not a hundred studies).
        let unnamed = studies("studies", "archive", &["s1"], None, 200);
        assert_eq!((unnamed.len(), unnamed[0].1.clone()), (1, None));
        assert!(studies("instances", "file", &["i1"], None, 200).is_empty());
        // A list, a patient: each resource one study.
        assert_eq!(
            studies("resources", "archive", &["a", "b", "c"], Some("1.2.3"), 200).len(),
            3
        );
        assert_eq!(studies("patients", "archive", &["p"], Some("1.2.3"), 200).len(), 1);
        // Refused: nothing moved.
        assert!(studies("studies", "archive", &["s1"], Some("1.2.3"), 403).is_empty());
    }

    #[test]
    fn a_push_the_pacs_was_told_to_make_is_the_requesters_export_to_the_named_node() {
        let d = Detector::new(&config(""), None).unwrap();
        // From outside: a download there would also be an unknown destination; a push is not.
        let f = flow(1, "203.0.113.7:40000", "10.0.0.5:8042");
        let (t, f, mut h) = http(0, f, "/modalities/storescp/store", 200, Some("bob"));
        h.download = Some(RestDownload {
            api: "orthanc".into(),
            level: "resources".into(),
            format: "store".into(),
            ids: vec!["a".into(), "b".into()],
            study_instance_uids: Vec::new(),
            destination: Some("modality storescp".into()),
        });
        let ev = http_ev((t, f, h));
        let seen = observed(&d, &ev);
        assert!(
            !seen.iter().any(|o| matches!(o, Observation::UnknownDestination(_))),
            "{seen:?}"
        );
        let pushed = seen.iter().find_map(|o| match o {
            Observation::Download {
                entity, studies, dest, ..
            } => Some((*entity, studies.len(), dest.evidence())),
            _ => None,
        });
        assert_eq!(pushed, Some((EntRef::User("bob"), 2, "modality storescp".to_owned())));
    }
}
