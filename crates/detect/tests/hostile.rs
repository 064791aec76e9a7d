//! Events come from the wire: any content, any order, any time must not panic the detector,
//! and its tables stay within their caps.

mod common;
use common::*;
use pacstap_core::*;
use pacstap_detect::{Config, Detector};
use proptest::prelude::*;

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_string()),
        "[A-Z0-9 ]{0,20}",
        "\\PC{0,40}",
        Just("a".repeat(5000)),
        Just("%40%40?&=email=".to_string()),
    ]
}

fn any_ts() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        (0i64..3 * HOUR).prop_map(|t| ts(t).0),
        any::<i64>(),
    ]
}

fn any_ip() -> impl Strategy<Value = std::net::IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(a, b)| std::net::IpAddr::from([10, 20, a, b])),
        any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
        any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
    ]
}

#[derive(Debug, Clone)]
enum Kind {
    Assoc {
        accepted: bool,
        user: Option<String>,
    },
    Cmd {
        cmd: String,
        dest: Option<String>,
        status: Option<u16>,
        toclient: bool,
    },
    Http {
        status: Option<u16>,
        user: Option<String>,
        service: Option<String>,
        admin: bool,
        share: bool,
    },
    Tls {
        sni: Option<String>,
        bytes_toclient: u64,
    },
    Hl7 {
        mfn: bool,
    },
    Anomaly,
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (any::<bool>(), proptest::option::of(any_text())).prop_map(|(accepted, user)| Kind::Assoc { accepted, user }),
        (
            prop_oneof![
                Just("C-MOVE"),
                Just("C-GET"),
                Just("C-STORE"),
                Just("C-FIND"),
                Just("0xFFFF")
            ],
            proptest::option::of(any_text()),
            proptest::option::of(any::<u16>()),
            any::<bool>()
        )
            .prop_map(|(cmd, dest, status, toclient)| Kind::Cmd {
                cmd: cmd.to_string(),
                dest,
                status,
                toclient
            }),
        (
            proptest::option::of(prop_oneof![Just(200u16), Just(401), Just(403), any::<u16>()]),
            proptest::option::of(any_text()),
            proptest::option::of(prop_oneof![
                Just("WADO-RS".to_string()),
                Just("STOW-RS".to_string()),
                any_text()
            ]),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(status, user, service, admin, share)| Kind::Http {
                status,
                user,
                service,
                admin,
                share
            }),
        (
            proptest::option::of(any_text()),
            prop_oneof![Just(0u64), Just(u64::MAX), 0u64..5_000, any::<u64>()]
        )
            .prop_map(|(sni, bytes_toclient)| Kind::Tls { sni, bytes_toclient }),
        any::<bool>().prop_map(|mfn| Kind::Hl7 { mfn }),
        Just(Kind::Anomaly),
    ]
}

fn build(
    kind: Kind,
    t: i64,
    client: std::net::IpAddr,
    server: std::net::IpAddr,
    name: String,
    uid: String,
) -> ProtocolEvent {
    let flow = FlowMeta {
        id: FlowId(u64::from(u32::from_ne_bytes([name.len() as u8, 0, 0, 1]))),
        client: Endpoint::new(client, 40000),
        server: Endpoint::new(server, 104),
        start: Timestamp(t),
        handshake_seen: false,
    };
    let body = match kind {
        Kind::Assoc { accepted, user } => {
            let mut ev = assoc(0, flow, &name, &uid, accepted, user.as_deref());
            ev.ts = Timestamp(t);
            return ev;
        }
        Kind::Cmd {
            cmd,
            dest,
            status,
            toclient,
        } => {
            let mut ev = cmove(0, flow, &name, "PACS1", "X", &[&uid, "", &name]);
            if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
                c.command = cmd;
                c.move_destination = dest;
                c.status_class = status.map(StatusClass::of);
                if toclient {
                    c.direction = Direction::ToClient;
                }
            }
            ev.body
        }
        Kind::Http {
            status,
            user,
            service,
            admin,
            share,
        } => {
            let mut h = http(0, flow, &name, &uid, 200, user.as_deref());
            h.status = status;
            h.dicomweb = service.map(|s| DicomWeb {
                service: s,
                study_instance_uid: Some(uid.clone()),
                ..Default::default()
            });
            if admin {
                h.admin_action = Some(name.clone());
            }
            if share {
                h.share_action = Some(uid.clone());
            }
            EventBody::Http(h)
        }
        Kind::Tls { sni, bytes_toclient } => EventBody::Tls(TlsEvent {
            ja4: Some(name),
            sni,
            bytes_toclient,
            ..Default::default()
        }),
        Kind::Hl7 { mfn } => {
            let mut m = hl7(0, flow, &name);
            if mfn {
                m.admin_event = Some(Default::default());
                if let Some(a) = m.admin_event.as_mut() {
                    a.records_total = u32::MAX;
                }
            }
            EventBody::Hl7(m)
        }
        Kind::Anomaly => EventBody::Anomaly(Anomaly {
            proto: "dicom",
            name: "dicom.pdu_too_large",
            detail: None,
        }),
    };
    ProtocolEvent {
        ts: Timestamp(t),
        flow,
        body,
    }
}

fn small_config() -> Config {
    config(&format!(
        "{LAB}\n[detect]\nmax_entities = 16\nmax_learned_entities = 16\nmax_window_items = 32\nmax_pending_flows = 4\nidentity_wait = \"1s\"\n\n[rules.login_failures_source]\nthreshold = 3\n[rules.login_failures_user]\nthreshold = 2\n[rules.bulk_export]\nthreshold = 2\nhttps_bytes = 1000\nhttps_servers = [\"10.20.0.0/24\"]\n"
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_events_never_panic_and_stay_bounded(
        events in prop::collection::vec((any_kind(), any_ts(), any_ip(), any_ip(), any_text(), any_text()), 1..120)
    ) {
        let cfg = small_config();
        let mut det = Detector::new(&cfg, None).expect("detector");
        let mut out = Vec::new();
        for (kind, t, c, s, name, uid) in events {
            det.observe(&build(kind, t, c, s, name, uid), &mut out);
            det.tick(Timestamp(t.saturating_add(SEC)), &mut out);
        }
        det.finish(&mut out);
        let st = det.stats();
        prop_assert!(st.entities_tracked <= 16);
        prop_assert!(st.learned_entities <= 16);
        prop_assert!(st.pending_flows <= 4);
        for e in &out {
            if let EventBody::Alert(a) = &e.body {
                prop_assert!(a.evidence.flow_ids.len() <= 100);
                prop_assert!(a.evidence.study_instance_uids.len() <= 100);
                prop_assert!(a.evidence.destinations.len() <= 100);
                prop_assert!(a.evidence.destinations.len() as u64 <= a.evidence.destinations_total);
                prop_assert!(!a.response.is_empty());
                prop_assert!(!a.summary.is_empty());
            }
        }
        // The state serializes and loads back.
        let state = det.learned_state();
        let json = serde_json::to_string(&state).expect("json");
        let back: pacstap_detect::LearnedState = serde_json::from_str(&json).expect("parse");
        prop_assert!(Detector::new(&cfg, Some(back)).is_ok());
    }
}
