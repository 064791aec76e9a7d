//! Event builders for the unit tests of the observers and rule families (the integration tests
//! in `tests/` have their own in `tests/common`).

use crate::{Config, Detector};
use pacstap_core::*;
use std::net::SocketAddr;

pub(crate) const SEC: i64 = 1_000_000_000;
/// 2026-11-28T00:00:00Z.
pub(crate) const T0: i64 = 1_795_824_000 * SEC;

pub(crate) fn flow(id: u64, client: &str, server: &str) -> FlowMeta {
    let c: SocketAddr = client.parse().expect("client addr");
    let s: SocketAddr = server.parse().expect("server addr");
    FlowMeta {
        id: FlowId(id),
        client: Endpoint::new(c.ip(), c.port()),
        server: Endpoint::new(s.ip(), s.port()),
        start: Timestamp(0),
        handshake_seen: true,
    }
}

pub(crate) fn event(t: i64, flow: FlowMeta, body: EventBody) -> ProtocolEvent {
    ProtocolEvent {
        ts: Timestamp(T0 + t),
        flow,
        body,
    }
}

pub(crate) fn assoc(
    t: i64,
    f: FlowMeta,
    calling: &str,
    called: &str,
    accepted: bool,
    user: Option<&str>,
) -> ProtocolEvent {
    let a = DicomAssociation {
        calling_ae: calling.into(),
        called_ae: called.into(),
        accepted,
        outcome: if accepted {
            AssociationOutcome::Released
        } else {
            AssociationOutcome::Rejected
        },
        reject: (!accepted).then_some(AssociationReject {
            result: 1,
            source: 1,
            reason: 1,
        }),
        user_identity: user.map(|u| UserIdentity {
            kind: "username_passcode".into(),
            username: Some(u.into()),
            server_response: None,
        }),
        abort: None,
        abstract_syntaxes: vec![],
        implementation_class_uid: None,
        implementation_version_name: None,
        max_pdu_length: Some(16384),
        bytes_toserver: 300,
        bytes_toclient: 200,
        commands: 0,
        start: Timestamp(T0 + t),
        end: Timestamp(T0 + t),
        request_seen: true,
        gap_bytes: 0,
        gaps: 0,
        reject_inferred: false,
    };
    event(t, f, EventBody::Dicom(DicomEvent::Association(a)))
}

/// A successful DIMSE command of `cmd` naming `studies`.
pub(crate) fn command(t: i64, f: FlowMeta, calling: &str, called: &str, cmd: &str, studies: &[&str]) -> ProtocolEvent {
    let c = DicomCommand {
        calling_ae: calling.into(),
        called_ae: called.into(),
        user: None,
        command: cmd.into(),
        message_id: 1,
        sop_class_uid: None,
        sop_instance_uid: None,
        move_destination: None,
        move_originator_ae: None,
        move_originator_message_id: None,
        query_level: Some("STUDY".into()),
        study_instance_uids: studies.iter().map(|s| s.to_string()).collect(),
        modality: None,
        status: Some("0x0000".into()),
        status_class: Some(StatusClass::Success),
        sub_operations: None,
        dataset_bytes: 0,
        lost_bytes: 0,
        incomplete: false,
        direction: Direction::ToServer,
        responses: 1,
        request_time: Timestamp(T0 + t),
        response_time: Some(Timestamp(T0 + t)),
    };
    event(t, f, EventBody::Dicom(DicomEvent::Command(c)))
}

pub(crate) fn cmove(t: i64, f: FlowMeta, calling: &str, dest: &str, studies: &[&str]) -> ProtocolEvent {
    let mut ev = command(t, f, calling, "PACS", "C-MOVE", studies);
    if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
        c.move_destination = Some(dest.into());
    }
    ev
}

pub(crate) fn http(t: i64, f: FlowMeta, url: &str, status: u16, user: Option<&str>) -> (i64, FlowMeta, HttpEvent) {
    let h = HttpEvent {
        method: "GET".into(),
        url: url.into(),
        status: Some(status),
        user: user.map(str::to_string),
        auth: user.map(|_| "basic".to_string()),
        ..Default::default()
    };
    (t, f, h)
}

pub(crate) fn http_ev((t, f, h): (i64, FlowMeta, HttpEvent)) -> ProtocolEvent {
    event(t, f, EventBody::Http(h))
}

pub(crate) fn wado(t: i64, f: FlowMeta, user: Option<&str>, study: &str) -> ProtocolEvent {
    let (t, f, mut h) = http(t, f, &format!("/dicom-web/studies/{study}"), 200, user);
    h.dicomweb = Some(DicomWeb {
        service: "WADO-RS".into(),
        study_instance_uid: Some(study.into()),
        ..Default::default()
    });
    http_ev((t, f, h))
}

pub(crate) fn study(n: impl std::fmt::Display) -> String {
    format!("1.2.826.0.1.3680043.10.1234.{n}")
}

pub(crate) fn config(toml: &str) -> Config {
    match toml::from_str::<Config>(toml) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    }
}

/// Events through a detector, alerts collected.
pub(crate) struct Run {
    pub(crate) det: Detector,
    pub(crate) out: Vec<ProtocolEvent>,
}

impl Run {
    pub(crate) fn new(toml: &str) -> Run {
        Run {
            det: Detector::new(&config(toml), None).expect("detector"),
            out: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, ev: ProtocolEvent) -> &mut Self {
        self.det.observe(&ev, &mut self.out);
        self
    }

    pub(crate) fn tick(&mut self, t: i64) -> &mut Self {
        self.det.tick(Timestamp(T0 + t), &mut self.out);
        self
    }

    /// The alerts of `rule`, first alerts and updates, in order.
    pub(crate) fn alerts(&self, rule: &str) -> Vec<&Alert> {
        self.out
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Alert(a) if a.rule == rule => Some(a),
                _ => None,
            })
            .collect()
    }

    /// The alerts of `rule` with the packet time each was written at.
    pub(crate) fn alerts_with_time(&self, rule: &str) -> Vec<(i64, &Alert)> {
        self.out
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Alert(a) if a.rule == rule => Some((e.ts.0, a)),
                _ => None,
            })
            .collect()
    }
}
