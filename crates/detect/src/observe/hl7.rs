//! HL7 v2 messages: master file notifications (admin changes) and messages to receivers
//! outside the inventory.

use super::{Observation, Observer};
use crate::config::canonical_ip;
use crate::dest::Dest;
use crate::entity::EntRef;
use crate::rules::UnknownDest;
use pacstap_core::{Direction, Hl7Event, ProtocolEvent};

/// Records of a master file notification named in the alert; the rest are counted.
const NAMED_RECORDS: usize = 3;

/// Longest message type named (HL7 v2.5 §2.A.47 MSG: 3 + 3 + 7 characters, 2 separators).
const MAX_TYPE: usize = 15;

pub(super) fn message<'a>(o: &Observer<'_>, ev: &'a ProtocolEvent, m: &'a Hl7Event, seen: &mut Vec<Observation<'a>>) {
    let dir = m.direction.unwrap_or(Direction::ToServer);
    let (sender, receiver, port) = match dir {
        Direction::ToServer => (ev.flow.client.ip, ev.flow.server.ip, Some(ev.flow.server.port)),
        Direction::ToClient => (ev.flow.server.ip, ev.flow.client.ip, None),
    };
    if let Some(adm) = &m.admin_event {
        // HL7 v2.5 ch. 8: a master file notification changes staff / practitioner /
        // location records.
        let mut detail = format!("HL7 {} {}", m.message_type, adm.kind);
        if let Some(app) = &m.sending_application {
            detail.push_str(&format!(" from {app}"));
        }
        let recs: Vec<String> = adm
            .records
            .iter()
            .take(NAMED_RECORDS)
            .map(|r| {
                format!(
                    "{} {}",
                    r.action.as_deref().unwrap_or(&r.event_code),
                    r.primary_key.as_deref().unwrap_or("?")
                )
            })
            .collect();
        if !recs.is_empty() {
            detail.push_str(&format!(": {}", recs.join(", ")));
            if adm.records_total as usize > recs.len() {
                detail.push_str(&format!(" (+{})", adm.records_total as usize - recs.len()));
            }
        }
        seen.push(Observation::AdminAction {
            actor: EntRef::Ip(sender),
            detail,
        });
    }
    let is_ack = m.ack_code.is_some() || m.message_type.starts_with("ACK");
    if !is_ack {
        if let Some(why) = o.inv.hl7_destination_unknown(receiver, port) {
            let label = match port {
                Some(p) => format!("HL7 receiver {}:{p}", canonical_ip(receiver)),
                None => format!("HL7 receiver {}", canonical_ip(receiver)),
            };
            seen.push(Observation::UnknownDestination(UnknownDest {
                entity: EntRef::Ip(receiver),
                label,
                dest: Dest::Server(receiver, port),
                why,
                studies: Vec::new(),
                volume: None,
                // HL7 v2.5 §2.A.47: MSG is 3+3+7 characters and two separators; longer is
                // not a message type, so it is cut there.
                what: Some(format!(
                    "HL7 {}",
                    m.message_type.chars().take(MAX_TYPE).collect::<String>()
                )),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observed;
    use crate::testkit::*;
    use crate::Detector;
    use pacstap_core::{EventBody, Hl7AdminEvent, Hl7MasterFileRecord};

    fn hl7(message_type: &str) -> Hl7Event {
        Hl7Event {
            message_type: message_type.into(),
            control_id: "1".into(),
            sending_application: Some("HIS".into()),
            direction: Some(Direction::ToServer),
            ..Default::default()
        }
    }

    #[test]
    fn a_master_file_notification_is_an_admin_action_naming_three_records() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.8:40000", "10.0.0.7:2575");
        let mut m = hl7("MFN^M02");
        let rec = |k: &str| Hl7MasterFileRecord {
            event_code: "MAD".into(),
            action: Some("add".into()),
            primary_key: Some(k.into()),
        };
        m.admin_event = Some(Hl7AdminEvent {
            kind: "staff_master_file_change".into(),
            records: vec![rec("S1"), rec("S2"), rec("S3"), rec("S4")],
            records_total: 5,
            ..Default::default()
        });
        let ev = event(0, f, EventBody::Hl7(m));
        let seen = observed(&d, &ev);
        let Some(Observation::AdminAction { actor, detail }) = seen.first() else {
            panic!("{seen:?}")
        };
        assert_eq!(*actor, EntRef::Ip(f.client.ip));
        assert_eq!(
            detail,
            "HL7 MFN^M02 staff_master_file_change from HIS: add S1, add S2, add S3 (+2)"
        );
    }

    #[test]
    fn an_ack_is_no_transfer_to_an_unknown_receiver() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.8:40000", "203.0.113.9:2575");
        let msg = event(0, f, EventBody::Hl7(hl7("ADT^A01")));
        let seen = observed(&d, &msg);
        let Some(Observation::UnknownDestination(u)) = seen.first() else {
            panic!("{seen:?}")
        };
        assert_eq!(u.label, "HL7 receiver 203.0.113.9:2575");
        let ack = event(0, f, EventBody::Hl7(hl7("ACK^A01")));
        assert!(observed(&d, &ack).is_empty());
    }
}
