//! DICOM associations and DIMSE commands.
//!
//! Who exported: the association's user identity when negotiated, else the calling AE. The
//! user identity arrives with the association event, after the commands, so a retrieve is
//! observed as a [`Observation::Retrieve`] that the held-export queue attributes later.

use super::{non_empty, Observation, Observer};
use crate::dest::Dest;
use crate::entity::EntRef;
use crate::rules::UnknownDest;
use crate::scope::{Detail, StudyItem};
use pacstap_core::{
    AssociationOutcome, DicomAccepted, DicomAssociation, DicomCommand, Direction, ProtocolEvent, StatusClass,
};

pub(super) fn association<'a>(ev: &'a ProtocolEvent, a: &'a DicomAssociation, seen: &mut Vec<Observation<'a>>) {
    let client = ev.flow.client.ip;
    let calling = non_empty(&a.calling_ae);
    let user = a
        .user_identity
        .as_ref()
        .and_then(|u| u.username.as_deref())
        .and_then(non_empty);
    if a.outcome == AssociationOutcome::Rejected || (!a.accepted && a.reject.is_some()) {
        // PS3.8 §9.3.4 A-ASSOCIATE-RJ: a failed login for the user identity (if any), the
        // calling AE and the source address.
        seen.push(Observation::LoginFailed {
            user,
            ae: calling,
            client,
            called: non_empty(&a.called_ae),
        });
    } else if a.accepted {
        seen.push(Observation::LoginSucceeded {
            user,
            ae: calling,
            client,
        });
        if let Some(ae) = calling {
            seen.push(Observation::DeviceUsed {
                entity: EntRef::Ae(ae),
                client,
            });
        }
        if let Some(u) = user {
            seen.push(Observation::DeviceUsed {
                entity: EntRef::User(u),
                client,
            });
            seen.push(Observation::LocationUsed { user: u, client });
        }
        if let Some(called) = non_empty(&a.called_ae) {
            seen.push(Observation::NodeAnswered {
                ae: called,
                ip: ev.flow.server.ip,
                port: ev.flow.server.port,
            });
            seen.push(Observation::NodeServing {
                ae: called,
                server: ev.flow.server.ip,
            });
        }
    }
    seen.push(Observation::AssociationEnded { user, ae: calling });
}

/// The A-ASSOCIATE-AC (PS3.8 §9.3.3) at its packet: the login succeeded now, before any
/// command (an association may carry none) and long before its end.
pub(super) fn accepted<'a>(ev: &'a ProtocolEvent, a: &'a DicomAccepted, seen: &mut Vec<Observation<'a>>) {
    if let Some(ae) = non_empty(&a.calling_ae) {
        seen.push(Observation::AssociationUsed {
            user: a.user.as_deref().and_then(non_empty),
            ae,
            client: ev.flow.client.ip,
        });
    }
}

/// Whether a C-MOVE / C-GET / C-STORE moved data: success or warning, pending (final response
/// not seen), or no response at all (the request was sent; err towards counting); a failure or
/// cancel only if some sub-operations completed.
fn transferred(c: &DicomCommand) -> bool {
    match c.status_class {
        None | Some(StatusClass::Success | StatusClass::Warning | StatusClass::Pending) => true,
        Some(StatusClass::Failure | StatusClass::Cancel) => c
            .sub_operations
            .is_some_and(|s| u32::from(s.completed) + u32::from(s.warning) > 0),
    }
}

pub(super) fn command<'a>(
    o: &Observer<'_>,
    ev: &'a ProtocolEvent,
    c: &'a DicomCommand,
    seen: &mut Vec<Observation<'a>>,
) {
    // Commands flow only after an A-ASSOCIATE-AC (PS3.8 §9.3.3): the login succeeded.
    if let Some(ae) = non_empty(&c.calling_ae) {
        seen.push(Observation::AssociationUsed {
            user: c.user.as_deref().and_then(non_empty),
            ae,
            client: ev.flow.client.ip,
        });
    }
    if !transferred(c) {
        return;
    }
    let client = ev.flow.client.ip;
    let server = ev.flow.server.ip;
    let calling = non_empty(&c.calling_ae);
    let user = c.user.as_deref().and_then(non_empty);
    match c.command.as_str() {
        "C-MOVE" => {
            // PS3.7 §9.1.4: the sub-operations' C-STOREs go to the Move Destination AE,
            // at the address the SCP has configured for it: the one that AE was last seen
            // answering at (its C-STOREs usually end before the C-MOVE's final response).
            let dest_ae = c.move_destination.as_deref().and_then(non_empty);
            let node = dest_ae.and_then(|d| o.node_addr.get(d).copied());
            let dest_ip = node.map(|(ip, _)| ip);
            let dest = dest_ae.map(|d| Dest::ae(d, dest_ip, node.map(|(_, port)| port)));
            let studies = studies_of(o, c, ev);
            if let (Some(d), Some(dest)) = (dest_ae, &dest) {
                if let Some(why) = o.inv.dicom_destination_unknown(Some(d), dest_ip) {
                    seen.push(Observation::UnknownDestination(UnknownDest {
                        entity: EntRef::Ae(d),
                        label: Detail::Ae(dest_ae, dest_ip).render(),
                        dest: dest.clone(),
                        why,
                        studies: studies.clone(),
                        volume: None,
                        what: None,
                    }));
                }
            }
            seen.push(Observation::Retrieve {
                user,
                calling,
                studies,
                dest,
                moved: dest_ae.map(|d| (c.message_id, d, c.request_time.0)),
                move_id: Some(c.message_id),
                requested: c.request_time.0,
            });
        }
        "C-GET" => {
            // The requester receives the images: it is the destination.
            let studies = studies_of(o, c, ev);
            let dest = match calling {
                Some(ae) => Dest::ae(ae, Some(client), None),
                None => Dest::Client(client),
            };
            if let Some(why) = o.inv.dicom_destination_unknown(calling, Some(client)) {
                let label = match calling {
                    Some(_) => Detail::Ae(calling, Some(client)).render(),
                    None => Detail::Addr(client).render(),
                };
                seen.push(Observation::UnknownDestination(UnknownDest {
                    entity: calling.map_or(EntRef::Ip(client), EntRef::Ae),
                    label,
                    dest: dest.clone(),
                    why,
                    studies: studies.clone(),
                    volume: None,
                    what: None,
                }));
            }
            seen.push(Observation::Retrieve {
                user,
                calling,
                studies,
                dest: Some(dest),
                moved: None,
                move_id: None,
                requested: c.request_time.0,
            });
        }
        "C-STORE" => {
            let (dest_ae, dest_ip, dest_port) = match c.direction {
                Direction::ToServer => (non_empty(&c.called_ae), server, Some(ev.flow.server.port)),
                // C-GET sub-operations flow back to the requester.
                Direction::ToClient => (calling, client, None),
            };
            if c.direction == Direction::ToServer {
                if let Some(ae) = dest_ae {
                    seen.push(Observation::NodeAnswered {
                        ae,
                        ip: dest_ip,
                        port: ev.flow.server.port,
                    });
                }
            }
            // PS3.7 §9.1.1.1: a C-MOVE sub-operation names the C-MOVE that caused it.
            if let (Some(originator), Some(message_id), Some(dest)) = (
                c.move_originator_ae.as_deref().and_then(non_empty),
                c.move_originator_message_id,
                dest_ae,
            ) {
                seen.push(Observation::SubOperation {
                    originator,
                    message_id,
                    dest_ae: dest,
                    bytes: c.dataset_bytes,
                    request_time: c.request_time.0,
                    study: named_studies(o, c).next(),
                    sender: calling,
                });
            }
            if let Some(why) = o.inv.dicom_destination_unknown(dest_ae, Some(dest_ip)) {
                let label = match dest_ae {
                    Some(ae) => format!("AE {ae} ({dest_ip})"),
                    None => dest_ip.to_string(),
                };
                let dest = match dest_ae {
                    Some(ae) => Dest::ae(ae, Some(dest_ip), dest_port),
                    None => Dest::Server(dest_ip, dest_port),
                };
                seen.push(Observation::UnknownDestination(UnknownDest {
                    entity: dest_ae.map_or(EntRef::Ip(dest_ip), EntRef::Ae),
                    label,
                    dest,
                    why,
                    studies: studies_of(o, c, ev),
                    volume: Some((1, c.dataset_bytes)),
                    what: None,
                }));
            }
        }
        _ => {}
    }
}

/// The study UIDs a command names, as window keys.
fn named_studies<'c>(o: &'c Observer<'_>, c: &'c DicomCommand) -> impl Iterator<Item = StudyItem> + 'c {
    c.study_instance_uids
        .iter()
        .filter_map(|u| non_empty(u))
        .map(|u| StudyItem {
            key: o.study_key(u),
            uid: Some(u.to_string()),
        })
}

/// The studies a command names; a patient-level (or identifier-less) retrieve counts as one
/// unnamed thing per request.
fn studies_of(o: &Observer<'_>, c: &DicomCommand, ev: &ProtocolEvent) -> Vec<StudyItem> {
    let mut v: Vec<StudyItem> = named_studies(o, c).collect();
    if v.is_empty() {
        v.push(StudyItem {
            key: o.hasher.hash_one((ev.flow.id.0, c.message_id, c.request_time.0)),
            uid: None,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observed;
    use crate::testkit::*;
    use crate::Detector;
    use pacstap_core::{DicomEvent, EventBody};

    #[test]
    fn an_accepted_association_is_observed_in_rule_order() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let ev = assoc(0, f, " WS1 ", "PACS", true, Some("rad1"));
        let kinds: Vec<&str> = observed(&d, &ev)
            .iter()
            .map(|o| match o {
                Observation::LoginSucceeded {
                    user: Some("rad1"),
                    ae: Some("WS1"),
                    ..
                } => "login",
                Observation::DeviceUsed {
                    entity: EntRef::Ae("WS1"),
                    ..
                } => "device ae",
                Observation::DeviceUsed {
                    entity: EntRef::User("rad1"),
                    ..
                } => "device user",
                Observation::LocationUsed { user: "rad1", .. } => "location",
                Observation::NodeAnswered {
                    ae: "PACS", port: 104, ..
                } => "node",
                Observation::NodeServing { ae: "PACS", .. } => "serving",
                Observation::AssociationEnded {
                    user: Some("rad1"),
                    ae: Some("WS1"),
                } => "ended",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "login",
                "device ae",
                "device user",
                "location",
                "node",
                "serving",
                "ended"
            ]
        );
    }

    #[test]
    fn a_rejected_association_is_a_failed_login_of_user_and_ae() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let ev = assoc(0, f, "WS1", "PACS", false, Some("rad1"));
        let seen = observed(&d, &ev);
        assert!(matches!(
            seen[0],
            Observation::LoginFailed {
                user: Some("rad1"),
                ae: Some("WS1"),
                ..
            }
        ));
        assert!(matches!(
            seen[1],
            Observation::AssociationEnded {
                user: Some("rad1"),
                ae: Some("WS1")
            }
        ));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn a_failed_retrieve_that_moved_nothing_is_not_observed() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let mut ev = cmove(0, f, "WS1", "WS1", &["1.2.3"]);
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
            c.status_class = Some(StatusClass::Failure);
        }
        assert!(observed(&d, &ev)
            .iter()
            .all(|o| matches!(o, Observation::AssociationUsed { ae: "WS1", .. })));
    }

    #[test]
    fn a_move_to_an_ae_not_in_the_inventory_names_where_it_last_answered() {
        let toml = "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n";
        let mut d = Detector::new(&config(toml), None).unwrap();
        d.note_node("THIEF", "10.6.6.6".parse().unwrap(), 11112);
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:104");
        let ev = cmove(0, f, "WS1", "THIEF", &["1.2.3", "1.2.4"]);
        let seen = observed(&d, &ev);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(matches!(seen[0], Observation::AssociationUsed { ae: "WS1", .. }));
        let seen = &seen[1..];
        let Observation::UnknownDestination(u) = &seen[0] else {
            panic!("{seen:?}")
        };
        assert_eq!(u.label, "AE THIEF (10.6.6.6)");
        assert_eq!(u.why, "not in the DICOM inventory");
        assert_eq!(u.studies.len(), 2);
        let Observation::Retrieve {
            user: None,
            calling: Some("WS1"),
            studies,
            dest: Some(dest),
            ..
        } = &seen[1]
        else {
            panic!("{seen:?}")
        };
        assert_eq!(studies.len(), 2);
        assert_eq!(
            dest.evidence(),
            Dest::ae("THIEF", Some("10.6.6.6".parse().unwrap()), Some(11112)).evidence()
        );
    }
}
