//! Builders for synthetic event sequences, from the core event structs.
#![allow(dead_code)]

use pacstap_core::*;
use pacstap_detect::{Config, Detector};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// 2026-11-28T00:00:00Z.
pub const T0: i64 = 1_795_824_000;
pub const SEC: i64 = 1_000_000_000;
pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

pub fn ts(offset_ns: i64) -> Timestamp {
    Timestamp(T0 * SEC + offset_ns)
}

static NEXT_FLOW: AtomicU64 = AtomicU64::new(1);

pub fn flow(client: &str, server: &str) -> FlowMeta {
    let c: SocketAddr = client.parse().expect("client addr");
    let s: SocketAddr = server.parse().expect("server addr");
    FlowMeta {
        id: FlowId(NEXT_FLOW.fetch_add(1, Ordering::Relaxed)),
        client: Endpoint::new(c.ip(), c.port()),
        server: Endpoint::new(s.ip(), s.port()),
        start: Timestamp(0),
        handshake_seen: true,
    }
}

pub fn event(t: i64, flow: FlowMeta, body: EventBody) -> ProtocolEvent {
    ProtocolEvent { ts: ts(t), flow, body }
}

pub fn assoc(t: i64, f: FlowMeta, calling: &str, called: &str, accepted: bool, user: Option<&str>) -> ProtocolEvent {
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
        abort: None,
        user_identity: user.map(|u| UserIdentity {
            kind: "username_passcode".into(),
            username: Some(u.into()),
            server_response: None,
        }),
        abstract_syntaxes: vec![],
        implementation_class_uid: None,
        implementation_version_name: None,
        max_pdu_length: Some(16384),
        bytes_toserver: 300,
        bytes_toclient: 200,
        commands: 0,
        start: ts(t),
        end: ts(t),
        request_seen: true,
        gap_bytes: 0,
        gaps: 0,
        reject_inferred: false,
    };
    event(t, f, EventBody::Dicom(DicomEvent::Association(a)))
}

fn command(t: i64, _f: FlowMeta, calling: &str, called: &str, cmd: &str, studies: &[&str]) -> DicomCommand {
    DicomCommand {
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
        request_time: ts(t),
        response_time: Some(ts(t)),
    }
}

pub fn cmove(t: i64, f: FlowMeta, calling: &str, called: &str, dest: &str, studies: &[&str]) -> ProtocolEvent {
    let mut c = command(t, f, calling, called, "C-MOVE", studies);
    c.move_destination = Some(dest.into());
    c.sub_operations = Some(SubOperations {
        completed: 3,
        ..Default::default()
    });
    event(t, f, EventBody::Dicom(DicomEvent::Command(c)))
}

pub fn cget(t: i64, f: FlowMeta, calling: &str, called: &str, studies: &[&str]) -> ProtocolEvent {
    let c = command(t, f, calling, called, "C-GET", studies);
    event(t, f, EventBody::Dicom(DicomEvent::Command(c)))
}

pub fn cstore(t: i64, f: FlowMeta, calling: &str, called: &str, study: &str) -> ProtocolEvent {
    let mut c = command(t, f, calling, called, "C-STORE", &[study]);
    c.sop_instance_uid = Some(format!("{study}.1"));
    event(t, f, EventBody::Dicom(DicomEvent::Command(c)))
}

pub fn failed(mut ev: ProtocolEvent) -> ProtocolEvent {
    if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
        c.status = Some("0xA801".into());
        c.status_class = Some(StatusClass::Failure);
        c.sub_operations = None;
    }
    ev
}

pub fn http(t: i64, _f: FlowMeta, method: &str, url: &str, status: u16, user: Option<&str>) -> HttpEvent {
    HttpEvent {
        method: method.into(),
        url: url.into(),
        status: Some(status),
        user: user.map(str::to_string),
        auth: user.map(|_| "basic".to_string()),
        request_time: ts(t),
        ..Default::default()
    }
}

pub fn http_ev(t: i64, f: FlowMeta, h: HttpEvent) -> ProtocolEvent {
    event(t, f, EventBody::Http(h))
}

pub fn login(t: i64, f: FlowMeta, status: u16, user: &str) -> ProtocolEvent {
    http_ev(t, f, http(t, f, "GET", "/app/worklist", status, Some(user)))
}

pub fn wado(t: i64, f: FlowMeta, user: Option<&str>, study: &str) -> ProtocolEvent {
    let mut h = http(t, f, "GET", &format!("/dicom-web/studies/{study}"), 200, user);
    h.dicomweb = Some(DicomWeb {
        service: "WADO-RS".into(),
        study_instance_uid: Some(study.into()),
        ..Default::default()
    });
    http_ev(t, f, h)
}

pub fn admin_http(t: i64, f: FlowMeta, user: &str, action: &str, status: u16) -> ProtocolEvent {
    let mut h = http(t, f, "POST", "/admin/realms/pacs/users", status, Some(user));
    h.admin_action = Some(action.into());
    http_ev(t, f, h)
}

pub fn share_http(t: i64, f: FlowMeta, user: &str, recipient: Option<&str>) -> ProtocolEvent {
    let url = match recipient {
        Some(r) => format!("/studies/1.2.3/share?email={r}"),
        None => "/studies/1.2.3/share".to_string(),
    };
    let mut h = http(t, f, "POST", &url, 201, Some(user));
    h.share_action = Some("share_link_created".into());
    http_ev(t, f, h)
}

pub fn hl7(_t: i64, _f: FlowMeta, message_type: &str) -> Hl7Event {
    Hl7Event {
        message_type: message_type.into(),
        control_id: "1".into(),
        sending_application: Some("HIS".into()),
        direction: Some(Direction::ToServer),
        ..Default::default()
    }
}

pub fn hl7_ev(t: i64, f: FlowMeta, m: Hl7Event) -> ProtocolEvent {
    event(t, f, EventBody::Hl7(m))
}

pub fn tls_ev(t: i64, f: FlowMeta, ja4: &str) -> ProtocolEvent {
    let tls = TlsEvent {
        ja4: Some(ja4.into()),
        handshake_complete: true,
        start: ts(t),
        end: ts(t),
        ..Default::default()
    };
    event(t, f, EventBody::Tls(tls))
}

/// A TLS connection ending at `t` after the server sent `bytes_toclient` (a download).
pub fn tls_download(t: i64, f: FlowMeta, sni: Option<&str>, bytes_toclient: u64) -> ProtocolEvent {
    let tls = TlsEvent {
        sni: sni.map(str::to_string),
        version: Some("TLS 1.3".into()),
        handshake_complete: true,
        bytes_toserver: 2_000,
        bytes_toclient,
        start: ts(t - SEC),
        end: ts(t),
        ..Default::default()
    };
    event(t, f, EventBody::Tls(tls))
}

pub fn study(n: impl std::fmt::Display) -> String {
    format!("1.2.826.0.1.3680043.10.1234.{n}")
}

/// A config from TOML (panics on error: tests only).
pub fn config(toml: &str) -> Config {
    match toml::from_str::<Config>(toml) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    }
}

/// The lab of the sample captures, as an inventory.
pub const LAB: &str = r#"
[[inventory.dicom]]
ae = "PACS1"
ip = "10.20.0.10"
role = "pacs"

[[inventory.dicom]]
ae = "MODALITY1"
ip = "10.20.0.30"
role = "modality"

[[inventory.dicom]]
ae = "WS1"
ip = "10.20.30.31"
role = "workstation"

[[inventory.dicom]]
ae = "WS2"
ip = "10.20.30.32"
role = "workstation"

[[inventory.dicom]]
ae = "STORESCP"
ip = "10.20.0.20"
role = "workstation"

[[inventory.dicom]]
ae = "ARCHIVE1"
ip = "10.20.0.40"
role = "archive"

[[inventory.dicom]]
ae = "ROUTER"
ip = "10.20.0.50"
role = "router"

[[inventory.hl7]]
ip = "10.20.0.60"
port = 2575

[[inventory.users]]
name = "rad1"
devices = ["10.20.30.31"]
role = "radiologist"

[users]
admins = ["admin"]
service_accounts = ["ROUTER", "prefetch"]
"#;

/// Runs events through a detector, collecting alerts.
pub struct Run {
    pub det: Detector,
    pub out: Vec<ProtocolEvent>,
}

impl Run {
    pub fn new(cfg: &Config) -> Run {
        Run {
            det: Detector::new(cfg, None).expect("detector"),
            out: Vec::new(),
        }
    }

    pub fn lab() -> Run {
        Run::new(&config(LAB))
    }

    pub fn feed(&mut self, ev: ProtocolEvent) -> &mut Self {
        self.det.observe(&ev, &mut self.out);
        self
    }

    pub fn tick(&mut self, t: i64) -> &mut Self {
        self.det.tick(ts(t), &mut self.out);
        self
    }

    pub fn finish(&mut self) -> &mut Self {
        self.det.finish(&mut self.out);
        self
    }

    pub fn alerts(&self) -> Vec<&Alert> {
        self.out
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// First alerts (not updates) as (rule, entity kind, entity id, count).
    pub fn fired(&self) -> Vec<(String, String, String, u64)> {
        self.alerts()
            .into_iter()
            .filter(|a| !a.update)
            .map(|a| (a.rule.clone(), a.entity.kind.clone(), a.entity.id.clone(), a.count))
            .collect()
    }

    pub fn of_rule(&self, rule: &str) -> Vec<&Alert> {
        self.alerts().into_iter().filter(|a| a.rule == rule).collect()
    }

    pub fn assert_silent(&self, what: &str) {
        let a = self.alerts();
        assert!(a.is_empty(), "{what}: expected no alerts, got {:#?}", a);
    }
}

pub fn fired(rule: &str, kind: &str, id: &str, count: u64) -> (String, String, String, u64) {
    (rule.into(), kind.into(), id.into(), count)
}
