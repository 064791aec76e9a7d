//! Observers: protocol events in, observations out. This is ARCHITECTURE's
//! `Observation { entity, kind, value, ts } -> rules`: each variant of [`Observation`] is a
//! kind, its fields the entity and the value; the time and the flow are those of the event it
//! came from, handed to the rules alongside.
//!
//! An observer reads one event and says what happened in the detector's terms (a failed or
//! successful login, an export of studies to a destination, an admin action, a share) without
//! counting anything: it only reads the inventory, the config and the detector's small memory
//! of where AEs answer ([`Observer`]). The detector feeds the observations, in the order they
//! were made, to the rule families in `rules/`, which count and alert. Nothing here trusts the
//! event: names are trimmed and looked up, never indexed.

mod dicom;
mod hl7;
mod http;
mod tls;

use crate::bounded_map::BoundedMap;
use crate::config::Config;
use crate::dest::Dest;
use crate::entity::EntRef;
use crate::inventory::InventoryIndex;
use crate::name::Name;
use crate::rules::UnknownDest;
use crate::scope::StudyItem;
use pacstap_core::{DicomEvent, EventBody, ProtocolEvent};
use std::net::IpAddr;

/// `s` trimmed, unless that leaves nothing (names on the wire are often space-padded).
pub(crate) fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// What the observers may read: the detector's configuration, inventory and memory of where
/// AEs answer, and the seeded hasher that turns study UIDs into window keys.
pub(crate) struct Observer<'d> {
    pub(crate) inv: &'d InventoryIndex,
    pub(crate) cfg: &'d Config,
    /// AE → the address (and port) it last answered at as a server.
    pub(crate) node_addr: &'d BoundedMap<Name, (IpAddr, u16)>,
    pub(crate) hasher: &'d ahash::RandomState,
}

impl Observer<'_> {
    /// The window key of a study UID (seeded: the same in every run).
    pub(crate) fn study_key(&self, uid: &str) -> u64 {
        self.hasher.hash_one(uid)
    }

    /// What `ev` says happened, appended to `seen` in the order the rules must see it.
    pub(crate) fn observe<'a>(&self, ev: &'a ProtocolEvent, seen: &mut Vec<Observation<'a>>) {
        match &ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => dicom::association(ev, a, seen),
            EventBody::Dicom(DicomEvent::Command(c)) => dicom::command(self, ev, c, seen),
            EventBody::Dicom(DicomEvent::Accepted(a)) => dicom::accepted(ev, a, seen),
            EventBody::Http(h) => http::request(self, ev, h, seen),
            EventBody::Tls(t) => tls::connection(self, ev, t, seen),
            EventBody::Hl7(m) => hl7::message(self, ev, m, seen),
            EventBody::Alert(_) | EventBody::Anomaly(_) | EventBody::Posture(_) => {}
        }
    }
}

/// One thing an event says happened (at the event's time, on its flow).
#[derive(Debug, Clone)]
pub(crate) enum Observation<'a> {
    /// A failed login: A-ASSOCIATE-RJ (PS3.8 §9.3.4), HTTP 401/403 with credentials.
    LoginFailed {
        user: Option<&'a str>,
        ae: Option<&'a str>,
        client: IpAddr,
        /// The called AE title of a rejected association (what a scan tries).
        called: Option<&'a str>,
    },
    /// A successful login: an accepted association, an authenticated 2xx.
    LoginSucceeded {
        user: Option<&'a str>,
        ae: Option<&'a str>,
        client: IpAddr,
    },
    /// A user or AE seen logging in from `client` (and the flow's TLS fingerprint): `new_device`.
    DeviceUsed { entity: EntRef<'a>, client: IpAddr },
    /// A user seen logging in from `client`: `new_location`.
    LocationUsed { user: &'a str, client: IpAddr },
    /// An authenticated HTTP request from `client` succeeded: the address's user, for a
    /// download whose request was not seen (`address_identity.rs`).
    WebUserSeen { user: &'a str, client: IpAddr },
    /// An AE answered at this address: remembered to name it as a move destination.
    NodeAnswered { ae: &'a str, ip: IpAddr, port: u16 },
    /// An AE accepted an association at `server`: `admin_change` when the address is new.
    NodeServing { ae: &'a str, server: IpAddr },
    /// The A-ASSOCIATE-AC of an association whose A-ASSOCIATE-RQ was seen, or, when the decoder
    /// missed it, a command on such an association (it names its calling AE): the association
    /// was accepted, so a login succeeded, known before the association ends
    /// (`login_success_after_failures` fires on the first one, normally the accept's packet).
    AssociationUsed {
        user: Option<&'a str>,
        ae: &'a str,
        client: IpAddr,
    },
    /// The association ended, naming its user identity and calling AE (when its
    /// A-ASSOCIATE-RQ was captured): its held exports are released.
    AssociationEnded { user: Option<&'a str>, ae: Option<&'a str> },
    /// A C-MOVE / C-GET retrieve of `studies` to `dest`: held until its association names
    /// its user, unless the command already does.
    Retrieve {
        user: Option<&'a str>,
        calling: Option<&'a str>,
        studies: Vec<StudyItem>,
        dest: Option<Dest>,
        /// A C-MOVE's (message id, move destination AE, request time): what its
        /// sub-operation C-STOREs name (`moves.rs`).
        moved: Option<(u16, &'a str, i64)>,
        /// A C-MOVE's message id, also when its move destination is unknown (its request
        /// lost): its sub-operations name it.
        move_id: Option<u16>,
        /// When it was requested: an export happens at its request (a capture that misses
        /// the responses sees the same export times as one that has them).
        requested: i64,
    },
    /// A C-STORE sub-operation of the C-MOVE (`originator`, `message_id`), sent to `dest_ae`
    /// with `bytes` of data set.
    SubOperation {
        originator: &'a str,
        message_id: u16,
        dest_ae: &'a str,
        bytes: u64,
        request_time: i64,
        /// The study it stored (read from its data set), if the decoder saw it.
        study: Option<StudyItem>,
        /// Who sent it: the C-STORE's calling AE (the C-MOVE's SCP), when known.
        sender: Option<&'a str>,
    },
    /// A study downloaded by `entity` (WADO-RS / WADO-URI) to `dest`, attributed at once.
    Download {
        entity: EntRef<'a>,
        /// The request was not seen (`http.request_missing`): its user is unknown, not absent,
        /// and is taken to be the one the client address authenticated as just before.
        user_unseen: bool,
        /// The studies retrieved: one for a WADO retrieval, one per resource for a REST
        /// API's archive of several.
        studies: Vec<(u64, Option<&'a str>)>,
        dest: Dest,
        /// Response body bytes (`volume.bytes`; instances are not countable inside a
        /// multipart response without parsing it).
        bytes: u64,
    },
    /// Data sent to a destination the inventory does not know.
    UnknownDestination(UnknownDest<'a>),
    /// An administrative action (HTTP `admin_action` not refused, HL7 master file change).
    AdminAction { actor: EntRef<'a>, detail: String },
    /// A share action and its external recipients.
    Share {
        actor: EntRef<'a>,
        action: &'a str,
        recipients: Vec<String>,
    },
    /// The TLS client fingerprint of the flow (JA4), for the device of a login on it.
    TlsFingerprint { ja4: &'a str },
    /// An image server sent the client `bytes` over TLS (`sni`: the name the client asked for).
    HttpsDownload { bytes: u64, sni: Option<&'a str> },
}

/// What the observers make of `ev` for detector `d` (tests of the observer files).
#[cfg(test)]
pub(crate) fn observed<'a>(d: &crate::Detector, ev: &'a ProtocolEvent) -> Vec<Observation<'a>> {
    let mut seen = Vec::new();
    Observer {
        inv: &d.inv,
        cfg: &d.cfg,
        node_addr: &d.node_addr,
        hasher: &d.hasher,
    }
    .observe(ev, &mut seen);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_blank_ones_are_none() {
        assert_eq!(non_empty("  WS1 "), Some("WS1"));
        assert_eq!(non_empty(" \t"), None);
    }

    #[test]
    fn study_keys_are_seeded_alike_in_every_detector() {
        let a = crate::Detector::new(&Config::default(), None).unwrap();
        let b = crate::Detector::new(&Config::default(), None).unwrap();
        let key = |d: &crate::Detector| {
            Observer {
                inv: &d.inv,
                cfg: &d.cfg,
                node_addr: &d.node_addr,
                hasher: &d.hasher,
            }
            .study_key("1.2.3")
        };
        assert_eq!(key(&a), key(&b));
    }
}
