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
            }));
        }
    }
}
