//! DICOM Upper Layer (PS3.8) and DIMSE (PS3.7) over TCP, as seen from a tap.
//!
//! - [`config`]: the decoder's caps (its settings are fields of [`crate::ProtoConfig`]);
//! - [`parser`]: pure PDU / PDV / control-PDU parsing (fuzz and bench entry points);
//! - [`command`]: the group-0000 command set scan;
//! - [`dataset`]: the stop-at-tag data set sniff;
//! - [`part10`]: the study a DICOM file names (a WADO-RS response seen without its request);
//! - `stream`: the per-direction streaming walker (lookahead, buffering, resync);
//! - `association`: one association's negotiated facts, byte counts and pending requests;
//! - `state`: the session over associations, request/response pairing (`state/dimse`), the
//!   walker's sink (`state/sink`) and the data set sniff prefix (`state/sniff`);
//! - `event`: the contract's event structs and [`DicomAnomaly`].

mod association;
pub mod command;
pub mod config;
pub mod dataset;
mod event;
pub mod parser;
pub mod part10;
mod state;
mod stream;

pub use command::{command_name, parse_command_set, CommandField, CommandSet, MalformedCommand};
pub use config::RESYNC_GIVE_UP_BYTES;
pub use dataset::{inflate_prefix, sniff_dataset, DatasetFacts, Sniff, TransferSyntax};
pub use event::DicomAnomaly;
pub use parser::{
    find_user_identity, parse_control_pdu, parse_pdu_header, parse_pdv_header, pdv_items, plausible_pdu_header,
    probe_associate_rq, ControlPdu, ParseStatus, Parsed, ParsedControl, PduHeader, PduType, PdvHeader, Plausible,
};
pub use part10::study_in_file;

use crate::budget::Lease;
use crate::decoder::{resync_exhausted, Decoder};
use pacstap_core::{AssociationOutcome, ChunkBody, CloseReason, Direction, StreamChunk};
use state::{Ctx, Session, SessionSink};
use std::fmt;
use stream::PduStream;

/// Per-flow DICOM state, stored in the flow table (`FlowState::Dicom`).
pub struct DicomFlow {
    /// Indexed by the flow layer's direction (`Direction::index`).
    streams: [PduStream; 2],
    session: Session,
    data_bytes: u64,
    /// Charge against the decoder memory budget (kept by the analyzer).
    pub(crate) lease: Lease,
}

impl fmt::Debug for DicomFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DicomFlow")
            .field("pdus", &self.session.pdus)
            .field("data_bytes", &self.data_bytes)
            .finish()
    }
}

impl DicomFlow {
    /// `resync`: the flow did not start with an A-ASSOCIATE-RQ; scan for PDU headers.
    /// `probation`: only a partial RQ-looking prefix was seen on a non-DICOM port.
    pub(crate) fn new(resync: bool, probation: bool) -> Self {
        DicomFlow {
            streams: [PduStream::new(resync), PduStream::new(resync)],
            session: Session::new(probation),
            data_bytes: 0,
            lease: Lease::default(),
        }
    }
}

impl Decoder for DicomFlow {
    /// Handle one chunk; `false` when the flow turned out not to be DICOM.
    fn on_chunk(&mut self, ctx: &mut Ctx<'_>, chunk: &StreamChunk<'_>) -> bool {
        let raw = chunk.dir;
        let max_control = ctx.cfg.max_control_pdu_bytes;
        let stream = state::at_mut(&mut self.streams, raw);
        match chunk.body {
            ChunkBody::Data(data) => {
                self.data_bytes = self.data_bytes.saturating_add(data.len() as u64);
                let mut sink = SessionSink {
                    session: &mut self.session,
                    ctx,
                    raw,
                };
                stream.feed(data, &mut sink, max_control);
            }
            ChunkBody::Gap(len) => {
                self.session.gap(ctx, raw, len);
                let mut sink = SessionSink {
                    session: &mut self.session,
                    ctx,
                    raw,
                };
                stream.gap(len, &mut sink);
            }
            // A half-close changes nothing for the tap; the outcome comes with the flow end.
            ChunkBody::Close(_) => {}
        }
        if self.session.not_dicom {
            return false;
        }
        let never_locked = self.session.pdus == 0 && self.streams.iter().any(PduStream::is_resyncing);
        if let Some(n) = resync_exhausted(never_locked, self.data_bytes, RESYNC_GIVE_UP_BYTES) {
            self.session.give_up(
                ctx,
                format_args!("no DICOM PDU header found in {n} bytes on a DICOM port; flow given up"),
            );
            return false;
        }
        true
    }

    /// The flow left the table: end the open association (CONTRACT §2 outcomes).
    fn finish(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        let outcome = match reason {
            CloseReason::Fin => AssociationOutcome::Closed,
            CloseReason::Rst => AssociationOutcome::Reset,
            CloseReason::Timeout | CloseReason::EndOfCapture | CloseReason::Evicted => AssociationOutcome::Incomplete,
        };
        for raw in [Direction::ToServer, Direction::ToClient] {
            let stream = state::at_mut(&mut self.streams, raw);
            let mut sink = SessionSink {
                session: &mut self.session,
                ctx,
                raw,
            };
            stream.finish(&mut sink);
        }
        self.session.flow_end(ctx, outcome);
    }

    /// Capacity of every buffer this flow holds (for the memory budget).
    fn held_bytes(&self) -> usize {
        self.streams.iter().map(PduStream::held_bytes).sum::<usize>() + self.session.held_bytes()
    }

    fn lease_mut(&mut self) -> &mut Lease {
        &mut self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::TransferSyntax;
    use crate::testutil::*;
    use crate::ProtoConfig;
    use pacstap_core::Direction::{self, ToClient, ToServer};
    use pacstap_core::{
        AssociationOutcome, CloseReason, DicomAssociation, DicomCommand, DicomEvent, EventBody, Interest,
        ProtocolEvent, StatusClass, SubOperations,
    };

    type Conv = Vec<(Direction, Vec<u8>)>;

    fn run(
        cfg: &ProtoConfig,
        port: u16,
        conv: &Conv,
        split: Option<(usize, usize)>,
        end: CloseReason,
    ) -> Vec<ProtocolEvent> {
        let mut h = Harness::new(cfg.clone(), 50_000, port);
        let base = h.ts;
        for (i, (dir, bytes)) in conv.iter().enumerate() {
            h.ts = base + i as i64 * 1_000_000;
            match split {
                Some((m, k)) if m == i => h.data_split(*dir, bytes, &[k]),
                Some((m, 0)) if m == usize::MAX => {
                    for b in bytes.chunks(1) {
                        let _ = h.data(*dir, b);
                    }
                }
                _ => {
                    let _ = h.data(*dir, bytes);
                }
            }
        }
        h.ts = base + conv.len() as i64 * 1_000_000;
        h.end(end)
    }

    /// Run the conversation whole, then with each message cut at every split point, then one
    /// byte at a time: the events must be the same every time.
    fn every_split(cfg: &ProtoConfig, port: u16, conv: &Conv, end: CloseReason) -> Vec<ProtocolEvent> {
        let whole = run(cfg, port, conv, None, end);
        let want = format!("{whole:?}");
        for (i, (_, bytes)) in conv.iter().enumerate() {
            for k in 1..bytes.len() {
                let got = format!("{:?}", run(cfg, port, conv, Some((i, k)), end));
                assert_eq!(got, want, "message {i} split at {k}");
            }
        }
        let got = format!("{:?}", run(cfg, port, conv, Some((usize::MAX, 0)), end));
        assert_eq!(got, want, "byte by byte");
        whole
    }

    fn associations(ev: &[ProtocolEvent]) -> Vec<DicomAssociation> {
        dicom_bodies(ev)
            .into_iter()
            .filter_map(|d| match d {
                DicomEvent::Association(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    fn commands(ev: &[ProtocolEvent]) -> Vec<DicomCommand> {
        dicom_bodies(ev)
            .into_iter()
            .filter_map(|d| match d {
                DicomEvent::Command(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn bytes_of(conv: &Conv, dir: Direction) -> u64 {
        conv.iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, b)| b.len() as u64)
            .sum()
    }

    fn no_secrets(ev: &[ProtocolEvent]) {
        let all = format!("{ev:?}");
        for secret in ["s3cret", "DOE^JANE", "PATIENT-ID-42"] {
            assert!(!all.contains(secret), "{secret} leaked");
        }
    }

    fn store_conv() -> Conv {
        let ds_explicit = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.100", STUDY_A, 300);
        let ds_implicit = store_dataset(TransferSyntax::ImplicitVrLittleEndian, "1.2.3.101", STUDY_B, 200);
        let store2 = cmd_store_rq(2, "1.2.3.100");
        let (c1, c2) = store2.split_at(30);
        let (d1, d2) = ds_explicit.split_at(100);
        vec![
            (
                ToServer,
                associate_rq(
                    "MODALITY1",
                    "PACS",
                    &[
                        (1, CT_STORAGE, &[EXPLICIT_LE, IMPLICIT_LE]),
                        (3, CT_STORAGE, &[IMPLICIT_LE]),
                        (5, VERIFICATION, &[IMPLICIT_LE]),
                        (7, MOVE_STUDY, &[IMPLICIT_LE]),
                    ],
                    Some((2, "rad1", "s3cret")),
                ),
            ),
            (
                ToClient,
                associate_ac(&[
                    (1, 0, EXPLICIT_LE),
                    (3, 0, IMPLICIT_LE),
                    (5, 0, IMPLICIT_LE),
                    (7, 3, IMPLICIT_LE),
                ]),
            ),
            (ToServer, pdata(&[(5, 3, &cmd_echo_rq(1))])),
            (ToClient, pdata(&[(5, 3, &cmd_rsp(0x8030, 1, 0x0000, None))])),
            // Command in two fragments, data set in two fragments over two PDUs.
            (ToServer, pdata(&[(1, 1, c1), (1, 3, c2), (1, 0, d1)])),
            (ToServer, pdata(&[(1, 2, d2)])),
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8001, 2, 0x0000, None))])),
            (
                ToServer,
                pdata(&[(3, 3, &cmd_store_rq(3, "1.2.3.101")), (3, 2, &ds_implicit)]),
            ),
            (ToClient, pdata(&[(3, 3, &cmd_rsp(0x8001, 3, 0xB000, None))])),
            (ToServer, release_rq()),
            (ToClient, release_rp()),
        ]
    }

    #[test]
    fn store_association_at_every_split_point() {
        let conv = store_conv();
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Fin);
        no_secrets(&ev);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));

        let a = associations(&ev);
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!((a.calling_ae.as_str(), a.called_ae.as_str()), ("MODALITY1", "PACS"));
        assert!(a.accepted && a.request_seen);
        assert_eq!(a.outcome, AssociationOutcome::Released);
        let id = a.user_identity.as_ref().unwrap();
        assert_eq!(
            (id.kind.as_str(), id.username.as_deref(), id.server_response),
            ("username_passcode", Some("rad1"), Some(true))
        );
        assert_eq!(a.abstract_syntaxes, vec![CT_STORAGE, VERIFICATION]);
        assert_eq!(a.implementation_class_uid.as_deref(), Some(IMPL_UID));
        assert_eq!(a.implementation_version_name.as_deref(), Some("PACSTAP_TEST"));
        assert_eq!(a.max_pdu_length, Some(16384));
        assert_eq!(a.commands, 3);
        assert_eq!(a.bytes_toserver, bytes_of(&conv, ToServer));
        assert_eq!(a.bytes_toclient, bytes_of(&conv, ToClient));
        assert_eq!(a.gap_bytes, 0);
        assert!(a.end > a.start);

        let c = commands(&ev);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].command, "C-ECHO");
        assert_eq!(c[0].sop_class_uid.as_deref(), Some(VERIFICATION));
        assert_eq!(c[0].status.as_deref(), Some("0x0000"));
        let s = &c[1];
        assert_eq!((s.command.as_str(), s.message_id), ("C-STORE", 2));
        assert_eq!((s.calling_ae.as_str(), s.called_ae.as_str()), ("MODALITY1", "PACS"));
        assert_eq!(s.sop_class_uid.as_deref(), Some(CT_STORAGE));
        assert_eq!(s.sop_instance_uid.as_deref(), Some("1.2.3.100"));
        assert_eq!(s.study_instance_uids, vec![STUDY_A]);
        assert_eq!(s.modality.as_deref(), Some("CT"));
        assert_eq!(s.status_class, Some(StatusClass::Success));
        assert_eq!(s.direction, ToServer);
        assert_eq!(
            s.dataset_bytes,
            store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.100", STUDY_A, 300).len() as u64
        );
        assert_eq!(s.responses, 1);
        assert!(s.response_time.unwrap() > s.request_time);
        let s = &c[2];
        assert_eq!(s.study_instance_uids, vec![STUDY_B]);
        assert_eq!(s.sop_instance_uid.as_deref(), Some("1.2.3.101"));
        assert_eq!(
            (s.status.as_deref(), s.status_class),
            (Some("0xB000"), Some(StatusClass::Warning))
        );

        // Events name the requester as src.
        let m = meta(50_000, 104);
        assert!(ev.iter().all(|e| e.flow.client == m.client));
    }

    #[test]
    fn stores_in_big_endian_and_deflated() {
        for (uid, ts) in [
            (EXPLICIT_BE, TransferSyntax::ExplicitVrBigEndian),
            (DEFLATED, TransferSyntax::DeflatedExplicitVrLittleEndian),
        ] {
            let ds = store_dataset(ts, "1.2.3.9", STUDY_A, 5000);
            let conv: Conv = vec![
                (ToServer, associate_rq("CT1", "PACS", &[(1, CT_STORAGE, &[uid])], None)),
                (ToClient, associate_ac(&[(1, 0, uid)])),
                (ToServer, pdata(&[(1, 3, &cmd_store_rq(9, "1.2.3.9")), (1, 2, &ds)])),
                (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8001, 9, 0, None))])),
            ];
            let ev = run(&ProtoConfig::default(), 104, &conv, None, CloseReason::Fin);
            let c = commands(&ev);
            assert_eq!(c[0].study_instance_uids, vec![STUDY_A], "{uid}");
            assert_eq!(c[0].modality.as_deref(), Some("CT"));
            assert_eq!(associations(&ev)[0].outcome, AssociationOutcome::Closed);
            no_secrets(&ev);
        }
    }

    #[test]
    fn move_with_sub_operations() {
        let ident = identifier(
            TransferSyntax::ImplicitVrLittleEndian,
            "STUDY",
            &format!("{STUDY_A}\\{STUDY_B}"),
        );
        let conv: Conv = vec![
            (
                ToServer,
                associate_rq(
                    "WORKSTATION",
                    "PACS",
                    &[(1, MOVE_STUDY, &[IMPLICIT_LE])],
                    Some((1, "rad2", "")),
                ),
            ),
            (ToClient, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            (
                ToServer,
                pdata(&[(1, 3, &cmd_move_rq(7, "EXTERNAL_AE")), (1, 2, &ident)]),
            ),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp(0x8021, 7, 0xFF00, Some((3, 1, 0, 0))))]),
            ),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp(0x8021, 7, 0xFF00, Some((1, 2, 0, 1))))]),
            ),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp(0x8021, 7, 0x0000, Some((0, 3, 0, 1))))]),
            ),
            (ToServer, abort(0, 0)),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Rst);
        no_secrets(&ev);
        let c = commands(&ev);
        assert_eq!(c.len(), 1);
        let m = &c[0];
        assert_eq!(m.command, "C-MOVE");
        assert_eq!(m.move_destination.as_deref(), Some("EXTERNAL_AE"));
        assert_eq!(m.query_level.as_deref(), Some("STUDY"));
        assert_eq!(m.study_instance_uids, vec![STUDY_A, STUDY_B]);
        assert_eq!(
            m.sub_operations,
            Some(SubOperations {
                completed: 3,
                failed: 0,
                warning: 1,
                remaining: 0
            })
        );
        assert_eq!(m.responses, 3);
        assert_eq!(m.status.as_deref(), Some("0x0000"));
        assert_eq!(m.dataset_bytes, ident.len() as u64);
        let a = &associations(&ev)[0];
        assert_eq!(a.outcome, AssociationOutcome::Aborted);
        assert_eq!(a.abort.map(|x| (x.source, x.reason)), Some((0, 0)));
        assert_eq!(
            a.user_identity.as_ref().map(|u| u.username.as_deref()),
            Some(Some("rad2"))
        );
    }

    #[test]
    fn get_with_store_sub_operations_to_client() {
        let ident = identifier(TransferSyntax::ExplicitVrLittleEndian, "STUDY", STUDY_A);
        let ds = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.55", STUDY_A, 64);
        let conv: Conv = vec![
            (
                ToServer,
                associate_rq(
                    "VIEWER",
                    "PACS",
                    &[(1, GET_STUDY, &[EXPLICIT_LE]), (3, CT_STORAGE, &[EXPLICIT_LE])],
                    None,
                ),
            ),
            (ToClient, associate_ac(&[(1, 0, EXPLICIT_LE), (3, 0, EXPLICIT_LE)])),
            (ToServer, pdata(&[(1, 3, &cmd_get_rq(1)), (1, 2, &ident)])),
            // The acceptor sends the C-STORE sub-operation to the requester, message id 1 too.
            (ToClient, pdata(&[(3, 3, &cmd_store_rq(1, "1.2.3.55")), (3, 2, &ds)])),
            (ToServer, pdata(&[(3, 3, &cmd_rsp(0x8001, 1, 0x0000, None))])),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp(0x8010, 1, 0x0000, Some((0, 1, 0, 0))))]),
            ),
            (ToServer, release_rq()),
            (ToClient, release_rp()),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let c = commands(&ev);
        assert_eq!(c.len(), 2);
        let store = c.iter().find(|c| c.command == "C-STORE").unwrap();
        assert_eq!(store.direction, ToClient);
        assert_eq!(store.study_instance_uids, vec![STUDY_A]);
        assert_eq!(store.status_class, Some(StatusClass::Success));
        let get = c.iter().find(|c| c.command == "C-GET").unwrap();
        assert_eq!(get.direction, ToServer);
        assert_eq!(get.study_instance_uids, vec![STUDY_A]);
        assert_eq!(get.sub_operations.map(|s| s.completed), Some(1));
        assert_eq!(associations(&ev)[0].commands, 2);
    }

    #[test]
    fn reject_then_new_association_on_same_flow() {
        let rq = associate_rq("UNKNOWN_AE", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        let conv: Conv = vec![
            (ToServer, rq.clone()),
            (ToClient, associate_rj(1, 1, 3)),
            (
                ToServer,
                associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None),
            ),
            (ToClient, associate_ac(&[(1, 0, EXPLICIT_LE)])),
            (ToServer, release_rq()),
            (ToClient, release_rp()),
        ];
        let ev = every_split(&ProtoConfig::default(), 11112, &conv, CloseReason::Fin);
        let a = associations(&ev);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].calling_ae, "UNKNOWN_AE");
        assert!(!a[0].accepted);
        assert_eq!(a[0].outcome, AssociationOutcome::Rejected);
        assert_eq!(a[0].reject.map(|r| (r.result, r.source, r.reason)), Some((1, 1, 3)));
        assert_eq!(a[0].bytes_toserver, rq.len() as u64);
        assert_eq!(a[0].bytes_toclient, 10);
        assert!(a[0].abstract_syntaxes.is_empty());
        assert_eq!(a[1].calling_ae, "MODALITY1");
        assert_eq!(a[1].outcome, AssociationOutcome::Released);
        assert!(anomaly_names(&ev).is_empty());
    }

    /// The acceptor's reply to an A-ASSOCIATE-RQ lost by the capture: 10 bytes (an A-ASSOCIATE-RJ
    /// or an A-ABORT) and nothing after is a rejection (its reason unknown); any other size, a
    /// loss on the request side too, or a command after it is not.
    #[test]
    fn a_lost_reply_of_a_rejections_size_is_a_rejection() {
        let rq = associate_rq("SCANNER9", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        let run_with = |toclient_gap: u64, toserver_gap: u64, end: CloseReason| {
            let mut h = Harness::new(ProtoConfig::default(), 50_000, 11112);
            let _ = h.data(ToServer, &rq);
            if toserver_gap > 0 {
                let _ = h.gap(ToServer, toserver_gap);
            }
            let _ = h.gap(ToClient, toclient_gap);
            associations(&h.end(end))
        };
        for end in [CloseReason::Fin, CloseReason::Rst, CloseReason::EndOfCapture] {
            let a = run_with(10, 0, end);
            assert_eq!(a.len(), 1);
            assert_eq!(
                (a[0].outcome, a[0].reject_inferred, a[0].reject.is_none(), a[0].accepted),
                (AssociationOutcome::Rejected, true, true, false),
                "{end:?}"
            );
            assert_eq!(
                (a[0].calling_ae.as_str(), a[0].bytes_toclient, a[0].gap_bytes),
                ("SCANNER9", 0, 10)
            );
        }
        // An A-ASSOCIATE-AC is never 10 bytes; a lost request side makes the size meaningless.
        for (toclient, toserver) in [(74, 0), (9, 0), (11, 0), (10, 20)] {
            let a = run_with(toclient, toserver, CloseReason::Fin);
            assert_eq!(
                (a[0].outcome, a[0].reject_inferred),
                (AssociationOutcome::Closed, false),
                "{toclient}/{toserver}"
            );
        }
        // Bytes of the reply captured: whatever it was, it was read, not inferred.
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 11112);
        let _ = h.data(ToServer, &rq);
        let _ = h.data(ToClient, &associate_rj(1, 1, 7));
        let a = associations(&h.end(CloseReason::Fin));
        assert_eq!((a[0].reject.map(|r| r.reason), a[0].reject_inferred), (Some(7), false));
        // The requester went on as if accepted (a command): the 10 lost bytes were not a refusal.
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 11112);
        let _ = h.data(ToServer, &rq);
        let _ = h.gap(ToClient, 10);
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(1))]));
        let a = associations(&h.end(CloseReason::Fin));
        assert!(!a[0].reject_inferred && a[0].outcome != AssociationOutcome::Rejected);
    }

    #[test]
    fn find_counts_matches_and_reset_ends() {
        let ident = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", "");
        let m1 = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_A);
        let m2 = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_B);
        let conv: Conv = vec![
            (
                ToServer,
                associate_rq("WS1", "PACS", &[(1, FIND_STUDY, &[IMPLICIT_LE])], None),
            ),
            (ToClient, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            (ToServer, pdata(&[(1, 3, &cmd_find_rq(4)), (1, 2, &ident)])),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp_ds(0x8020, 4, 0xFF00, None, true)), (1, 2, &m1)]),
            ),
            (
                ToClient,
                pdata(&[(1, 3, &cmd_rsp_ds(0x8020, 4, 0xFF00, None, true)), (1, 2, &m2)]),
            ),
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8020, 4, 0x0000, None))])),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Rst);
        no_secrets(&ev);
        let c = &commands(&ev)[0];
        assert_eq!(c.command, "C-FIND");
        assert_eq!(c.responses, 3);
        assert_eq!(c.query_level.as_deref(), Some("STUDY"));
        assert!(c.study_instance_uids.is_empty());
        assert_eq!(c.dataset_bytes, (ident.len() + m1.len() + m2.len()) as u64);
        assert_eq!(associations(&ev)[0].outcome, AssociationOutcome::Reset);
    }

    #[test]
    fn final_response_with_data_set_waits_for_it() {
        let body = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_A);
        let conv: Conv = vec![
            (
                ToServer,
                associate_rq("WS1", "PACS", &[(1, FIND_STUDY, &[IMPLICIT_LE])], None),
            ),
            (ToClient, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            (ToServer, pdata(&[(1, 3, &cmd_echo_rq(9))])),
            (ToClient, pdata(&[(1, 3, &cmd_rsp_ds(0x8030, 9, 0x0000, None, true))])),
            (ToClient, pdata(&[(1, 2, &body)])),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Fin);
        let c = &commands(&ev)[0];
        assert_eq!(c.dataset_bytes, body.len() as u64);
        assert_eq!(c.status.as_deref(), Some("0x0000"));
    }

    #[test]
    fn requester_on_the_flow_server_side_is_swapped() {
        // The flow layer took the acceptor for the client: the RQ travels "to client".
        let rq = associate_rq("MODALITY1", "PACS", &[(1, VERIFICATION, &[IMPLICIT_LE])], None);
        let conv: Conv = vec![
            (ToClient, rq.clone()),
            (ToServer, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            (ToClient, pdata(&[(1, 3, &cmd_echo_rq(1))])),
            (ToServer, pdata(&[(1, 3, &cmd_rsp(0x8030, 1, 0, None))])),
            (ToClient, release_rq()),
            (ToServer, release_rp()),
        ];
        let ev = every_split(&ProtoConfig::default(), 5555, &conv, CloseReason::Fin);
        let m = meta(50_000, 5555);
        assert!(!ev.is_empty());
        for e in &ev {
            assert_eq!((e.flow.client, e.flow.server), (m.server, m.client));
        }
        let a = &associations(&ev)[0];
        assert_eq!(a.bytes_toserver, bytes_of(&conv, ToClient));
        assert_eq!(a.outcome, AssociationOutcome::Released);
        let c = &commands(&ev)[0];
        assert_eq!((c.direction, c.status_class), (ToServer, Some(StatusClass::Success)));
    }

    #[test]
    fn a_command_before_the_accept_is_an_anomaly_only_if_the_accept_never_comes() {
        // A SPAN port delivers the acceptor's side late: the requester's first command (which
        // it sent only once accepted) is read before the A-ASSOCIATE-AC.
        let rq = associate_rq("MODALITY1", "PACS", &[(1, VERIFICATION, &[IMPLICIT_LE])], None);
        let late_ac: Conv = vec![
            (ToServer, rq.clone()),
            (ToServer, pdata(&[(1, 3, &cmd_echo_rq(1))])),
            (ToClient, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8030, 1, 0, None))])),
            (ToServer, release_rq()),
            (ToClient, release_rp()),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &late_ac, CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let a = &associations(&ev)[0];
        assert!(a.request_seen && a.accepted);
        assert_eq!(commands(&ev)[0].status.as_deref(), Some("0x0000"));
        // No A-ASSOCIATE-AC at all: reported when the association ends.
        let never: Conv = vec![(ToServer, rq), (ToServer, pdata(&[(1, 3, &cmd_echo_rq(1))]))];
        let ev = every_split(&ProtoConfig::default(), 104, &never, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec!["dicom.unexpected_pdu"]);
    }

    #[test]
    fn a_connection_seen_whole_without_a_request_is_a_probe_not_a_pickup() {
        // nmap -sV's NULL probe: the client connects and says nothing; storescp aborts after
        // its ARTIM timeout with two A-ABORTs, 0/0 then 2/2 (as captured from nmap 7.93).
        let probe = |handshake_seen: bool| {
            let mut h = Harness::new(ProtoConfig::default(), 50_000, 11112);
            h.meta.handshake_seen = handshake_seen;
            let _ = h.data(ToClient, &abort(0, 0));
            let _ = h.data(ToClient, &abort(2, 2));
            h.end(CloseReason::Fin)
        };
        let ev = probe(true);
        let a = &associations(&ev)[0];
        assert!(!a.request_seen && !a.accepted);
        assert_eq!(a.outcome, AssociationOutcome::Aborted);
        assert_eq!(anomaly_names(&ev), vec!["dicom.no_associate_request"]);
        // Picked up mid-stream (no handshake): the request may simply not have been captured.
        assert!(anomaly_names(&probe(false)).is_empty());
    }

    #[test]
    fn mid_association_start_resyncs() {
        let ds = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.7", STUDY_B, 100);
        let mut first = vec![0x11u8; 123]; // tail of a PDU whose start was not captured
        first.extend(pdata(&[(1, 3, &cmd_store_rq(5, "1.2.3.7")), (1, 2, &ds)]));
        let conv: Conv = vec![
            (ToServer, first),
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8001, 5, 0, None))])),
            (ToServer, release_rq()),
            (ToClient, release_rp()),
        ];
        let ev = every_split(&ProtoConfig::default(), 104, &conv, CloseReason::Fin);
        let a = &associations(&ev)[0];
        assert!(!a.request_seen);
        assert!(a.calling_ae.is_empty() && a.called_ae.is_empty());
        assert_eq!(a.outcome, AssociationOutcome::Released);
        assert_eq!(a.commands, 1);
        let c = &commands(&ev)[0];
        assert_eq!(c.study_instance_uids, vec![STUDY_B]);
        assert_eq!(c.status_class, Some(StatusClass::Success));
        assert_eq!(anomaly_names(&ev), vec!["dicom.resync"]);
    }

    #[test]
    fn mid_association_response_first_is_not_an_anomaly() {
        let conv: Conv = vec![
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8001, 5, 0, None))])),
            (ToServer, pdata(&[(1, 3, &cmd_echo_rq(6))])),
            (ToClient, pdata(&[(1, 3, &cmd_rsp(0x8030, 6, 0, None))])),
        ];
        let ev = run(&ProtoConfig::default(), 104, &conv, None, CloseReason::Timeout);
        assert!(anomaly_names(&ev).is_empty());
        assert_eq!(commands(&ev).len(), 1);
        assert_eq!(associations(&ev)[0].outcome, AssociationOutcome::Incomplete);
    }

    #[test]
    fn gap_inside_data_set_and_across_pdus() {
        let mut h = Harness::dicom();
        let _ = h.data(
            ToServer,
            &associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None),
        );
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, EXPLICIT_LE)]));
        let ds = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.8", STUDY_A, 10_000);
        let p = pdata(&[(1, 3, &cmd_store_rq(2, "1.2.3.8")), (1, 2, &ds)]);
        // Lose 4000 bytes of pixel data: the walker stays in step.
        let _ = h.data(ToServer, &p[..3000]);
        let _ = h.gap(ToServer, 4000);
        let _ = h.data(ToServer, &p[7000..]);
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8001, 2, 0, None))]));
        // Lose the end of one PDU and the start of the next: resynchronise.
        let p3 = pdata(&[(1, 3, &cmd_store_rq(3, "1.2.3.9")), (1, 2, &ds)]);
        let _ = h.data(ToServer, &p3[..500]);
        let _ = h.gap(ToServer, (p3.len() - 500 + 20) as u64);
        let echo = pdata(&[(1, 3, &cmd_echo_rq(4))]);
        let _ = h.data(ToServer, &echo[20..]);
        let _ = h.data(ToServer, &echo);
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8001, 3, 0, None))]));
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8030, 4, 0, None))]));
        let _ = h.data(ToServer, &release_rq());
        let _ = h.data(ToClient, &release_rp());
        let ev = h.end(CloseReason::Fin);
        let c = commands(&ev);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].study_instance_uids, vec![STUDY_A]);
        // Sizes are bytes seen; the hole is `lost_bytes` and marks the command.
        assert_eq!(c[0].dataset_bytes, ds.len() as u64 - 4000);
        assert_eq!((c[0].lost_bytes, c[0].incomplete), (4000, true));
        assert_eq!(c[0].status_class, Some(StatusClass::Success));
        assert_eq!(c[1].message_id, 3);
        // Store 3 lost its data set's end (out of step): incomplete, with its response.
        assert!(c[1].incomplete);
        assert_eq!(c[1].status_class, Some(StatusClass::Success));
        assert!(!c[2].incomplete);
        assert_eq!(c[2].command, "C-ECHO");
        assert_eq!(c[2].status.as_deref(), Some("0x0000"));
        let a = &associations(&ev)[0];
        assert_eq!(a.gap_bytes, 4000 + (p3.len() - 500 + 20) as u64);
        assert_eq!(a.gaps, 2);
        assert_eq!(a.outcome, AssociationOutcome::Released);
        assert_eq!(h.an.stats().gap_bytes, a.gap_bytes);
        // Resynchronisation skipped the 14-byte tail of the cut echo PDU; no
        // response_without_request once bytes were lost.
        assert_eq!(anomaly_names(&ev), vec!["dicom.resync"]);
    }

    #[test]
    fn pending_requests_are_emitted_when_the_association_ends() {
        let mut h = Harness::dicom();
        let _ = h.data(
            ToServer,
            &associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None),
        );
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, EXPLICIT_LE)]));
        let ds = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.8", STUDY_A, 100);
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_store_rq(2, "1.2.3.8")), (1, 2, &ds)]));
        let ev = h.end(CloseReason::EndOfCapture);
        let c = &commands(&ev)[0];
        assert_eq!(c.status, None);
        assert_eq!(c.status_class, None);
        assert_eq!(c.study_instance_uids, vec![STUDY_A]);
        assert_eq!(associations(&ev)[0].outcome, AssociationOutcome::Incomplete);
    }

    #[test]
    fn limits_and_anomalies() {
        let cfg = ProtoConfig {
            max_pending_commands: 2,
            max_command_bytes: 100,
            max_anomaly_events_per_flow: 3,
            ..ProtoConfig::default()
        };
        let mut h = Harness::new(cfg, 50_000, 104);
        let _ = h.data(
            ToServer,
            &associate_rq("MODALITY1", "PACS", &[(1, VERIFICATION, &[IMPLICIT_LE])], None),
        );
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]));
        for id in 1..=3 {
            let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(id))]));
        }
        // Response to nothing on a clean association.
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8030, 99, 0, None))]));
        // An oversized command.
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_store_rq(5, &"1.2".repeat(40)))]));
        // A control PDU over the cap: a 300 KiB A-ASSOCIATE-AC.
        let mut big = vec![2u8, 0];
        big.extend_from_slice(&(300u32 << 10).to_be_bytes());
        big.extend(vec![0u8; 300 << 10]);
        let _ = h.data(ToClient, &big);
        let ev = h.end(CloseReason::Fin);
        let stats = h.an.stats();
        for name in [
            "dicom.too_many_pending",
            "dicom.response_without_request",
            "dicom.command_too_large",
            "dicom.pdu_too_large",
        ] {
            assert_eq!(stats.anomalies.get(name), Some(&1), "{name}: {:?}", stats.anomalies);
        }
        assert_eq!(anomaly_names(&ev).len(), 3);
        let c = commands(&ev);
        // Echo 1 was evicted without status; 2 and 3 end with the association.
        assert_eq!(c.iter().map(|c| c.message_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(c.iter().all(|c| c.status.is_none()));
        // The oversized command was never read, so it is not counted.
        assert_eq!(associations(&ev)[0].commands, 3);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(2026);
        let base: Vec<u8> = store_conv().into_iter().flat_map(|(_, b)| b).collect();
        for round in 0..400 {
            let port = if round % 2 == 0 { 104 } else { 7000 };
            let mut h = Harness::new(ProtoConfig::default(), 50_000, port);
            let mut stream: Vec<u8> = match round % 4 {
                0 => (0..(rng.next() % 4000)).map(|_| rng.next() as u8).collect(),
                1 => (0..(rng.next() % 4000)).map(|_| (rng.next() % 8) as u8).collect(),
                _ => base.clone(),
            };
            if round % 4 >= 2 {
                for _ in 0..(1 + rng.next() % 20) {
                    let i = (rng.next() as usize) % stream.len();
                    stream[i] = rng.next() as u8;
                }
            }
            let mut at = 0;
            while at < stream.len() {
                let n = 1 + (rng.next() as usize) % 300;
                let end = (at + n).min(stream.len());
                let dir = if matches!(rng.next() % 3, 0) {
                    ToClient
                } else {
                    ToServer
                };
                match rng.next() % 40 {
                    0 => {
                        let _ = h.gap(dir, rng.next() % 5000);
                    }
                    1 => {
                        let _ = h.close(dir, CloseReason::Fin);
                    }
                    _ => {
                        let _ = h.data(dir, &stream[at..end]);
                    }
                }
                at = end;
                if h.last_interest == Interest::Ignore {
                    break;
                }
            }
            let ev = h.end(CloseReason::EndOfCapture);
            assert!(ev
                .iter()
                .all(|e| matches!(e.body, EventBody::Dicom(_) | EventBody::Anomaly(_))));
            assert!(anomaly_names(&ev).len() <= 16);
        }
    }

    #[test]
    fn large_store_is_streamed_not_buffered() {
        // 64 MiB of pixel data in 16 KiB PDUs, delivered in 64 KiB chunks.
        let mut h = Harness::dicom();
        let _ = h.data(
            ToServer,
            &associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None),
        );
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, EXPLICIT_LE)]));
        let head = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.1", STUDY_A, 0);
        let pixels: u32 = 64 << 20;
        let mut ds_head = head[..head.len() - 12].to_vec();
        ds_head.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
        ds_head.extend_from_slice(&pixels.to_le_bytes());
        let _ = h.data(
            ToServer,
            &pdata(&[(1, 3, &cmd_store_rq(1, "1.2.3.1")), (1, 0, &ds_head)]),
        );
        let frag = 16 << 10;
        let piece = pdata(&[(1, 0, &vec![0x5A; frag])]);
        let chunk = piece.repeat(4);
        let mut final_chunk = piece.repeat(3);
        final_chunk.extend(pdata(&[(1, 2, &vec![0x5A; frag])]));
        let n = (pixels as usize) / (4 * frag);
        for i in 0..n {
            let _ = h.data(ToServer, if i == n - 1 { &final_chunk } else { &chunk });
        }
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8001, 1, 0, None))]));
        let ev = h.end(CloseReason::Fin);
        let c = &commands(&ev)[0];
        assert_eq!(c.dataset_bytes, ds_head.len() as u64 + u64::from(pixels));
        assert_eq!(c.study_instance_uids, vec![STUDY_A]);
        assert_eq!(c.status_class, Some(StatusClass::Success));
        // Only the sniffed prefix (first try: 1 KiB) was ever copied.
        assert!(h.an.stats().dataset_bytes_skipped >= u64::from(pixels) - 1024);
    }

    #[test]
    fn identity_types_and_close_reasons() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        // A JWT's user is its `preferred_username` (else `sub`) claim, as for HTTP Bearer.
        let jwt = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"4c1f-uuid","preferred_username":"rad1","exp":1}"#),
            URL_SAFE_NO_PAD.encode("sig")
        );
        let sub_only = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"svc-router"}"#)
        );
        let expect = [
            (1, "alice", "username", Some("alice")),
            (2, "alice", "username_passcode", Some("alice")),
            (3, "alice", "kerberos", None),
            (4, "alice", "saml", None),
            (5, "alice", "jwt", None),
            (5, jwt.as_str(), "jwt", Some("rad1")),
            (5, sub_only.as_str(), "jwt", Some("svc-router")),
        ];
        let reasons = [
            (CloseReason::Fin, AssociationOutcome::Closed),
            (CloseReason::Rst, AssociationOutcome::Reset),
            (CloseReason::Timeout, AssociationOutcome::Incomplete),
            (CloseReason::EndOfCapture, AssociationOutcome::Incomplete),
            (CloseReason::Evicted, AssociationOutcome::Incomplete),
        ];
        for ((kind, primary, name, user), (reason, outcome)) in expect.into_iter().zip(reasons.into_iter().cycle()) {
            let conv: Conv = vec![
                (
                    ToServer,
                    associate_rq(
                        "SCU",
                        "PACS",
                        &[(1, VERIFICATION, &[IMPLICIT_LE])],
                        Some((kind, primary, "tok3n")),
                    ),
                ),
                (ToClient, associate_ac(&[(1, 0, IMPLICIT_LE)])),
            ];
            let ev = run(&ProtoConfig::default(), 104, &conv, None, reason);
            assert!(!format!("{ev:?}").contains("tok3n"));
            if kind == 5 && primary.len() > 10 {
                assert!(!format!("{ev:?}").contains(primary), "the token is never reported");
            }
            let a = &associations(&ev)[0];
            let id = a.user_identity.as_ref().unwrap();
            assert_eq!((id.kind.as_str(), id.username.as_deref()), (name, user));
            assert_eq!(a.outcome, outcome);
        }
    }

    #[test]
    fn bad_traffic_becomes_named_anomalies() {
        let mut rq = associate_rq("MODALITY1", "PACS", &[(1, VERIFICATION, &[IMPLICIT_LE])], None);
        rq[74] = 0x99; // application context item type: dicom-ul refuses the RQ
        let mut h = Harness::dicom();
        let _ = h.data(ToServer, &rq);
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]));
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]));
        let _ = h.data(ToServer, &pdata(&[(1, 3, &[0x08, 0, 0x10, 0, 2, 0, 0, 0, 1, 2])]));
        let _ = h.data(ToServer, &pdata(&[(2, 3, &cmd_echo_rq(1))]));
        let _ = h.data(ToServer, &[0x09, 0, 0, 0, 0, 2, 0, 0]);
        let _ = h.data(ToServer, &release_rq());
        let _ = h.data(ToClient, &release_rp());
        let ev = h.end(CloseReason::Fin);
        assert_eq!(
            anomaly_names(&ev),
            vec![
                "dicom.malformed_associate",
                "dicom.unexpected_pdu",
                "dicom.malformed_command",
                "dicom.malformed_pdv",
                "dicom.unknown_pdu_type",
            ]
        );
        let a = &associations(&ev)[0];
        // The refused RQ still names the association.
        assert_eq!((a.calling_ae.as_str(), a.called_ae.as_str()), ("MODALITY1", "PACS"));
        assert_eq!(a.outcome, AssociationOutcome::Released);
        assert_eq!(commands(&ev).len(), 1);
        assert!(ev.iter().all(|e| e.flow.client == h.meta.client));
    }

    #[test]
    fn huge_associate_rq_is_reported_with_its_ae_titles() {
        // An RQ claiming 0xFFFFFFFF bytes, on a DICOM port and off one, whole or in pieces.
        let mut rq = associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        rq[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        for port in [104, 9999] {
            for cut in [None, Some(3), Some(40)] {
                let mut h = Harness::new(ProtoConfig::default(), 50_000, port);
                match cut {
                    Some(k) => h.data_split(ToServer, &rq, &[k]),
                    None => {
                        let _ = h.data(ToServer, &rq);
                    }
                }
                let _ = h.data(ToServer, &[0u8; 3000]);
                let ev = h.end(CloseReason::Fin);
                let an: Vec<_> = ev
                    .iter()
                    .filter_map(|e| match &e.body {
                        EventBody::Anomaly(a) => Some(a.clone()),
                        _ => None,
                    })
                    .collect();
                assert_eq!(an[0].name, "dicom.pdu_too_large", "{port} {cut:?}: {an:?}");
                assert!(an[0].detail.as_deref().unwrap().contains("4294967295"), "{an:?}");
                // The connection ended long before the claimed length: reported too.
                assert_eq!(an[1].name, "dicom.pdu_truncated");
                let a = associations(&ev);
                assert_eq!(a.len(), 1, "{port} {cut:?}: {ev:?}");
                assert_eq!(
                    (a[0].calling_ae.as_str(), a[0].called_ae.as_str()),
                    ("MODALITY1", "PACS")
                );
                assert_eq!(a[0].bytes_toserver, rq.len() as u64 + 3000);
            }
        }
    }

    #[test]
    fn unfinished_rq_still_names_the_association() {
        let rq = associate_rq(
            "CT7",
            "ARCHIVE",
            &[(1, CT_STORAGE, &[EXPLICIT_LE])],
            Some((1, "tech", "")),
        );
        let mut h = Harness::dicom();
        let _ = h.data(ToServer, &rq[..rq.len() - 5]);
        let ev = h.end(CloseReason::Rst);
        let a = &associations(&ev)[0];
        assert_eq!((a.calling_ae.as_str(), a.called_ae.as_str()), ("CT7", "ARCHIVE"));
        assert_eq!(a.outcome, AssociationOutcome::Reset);
        assert_eq!(a.bytes_toserver, rq.len() as u64 - 5);
        assert_eq!(anomaly_names(&ev), vec!["dicom.pdu_truncated"]);
    }

    #[test]
    fn sizes_are_bytes_seen_and_negotiated_max_is_checked() {
        let mut h = Harness::dicom();
        let _ = h.data(
            ToServer,
            &associate_rq("MODALITY1", "PACS", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None),
        );
        // Both sides announce a Maximum Length of 16384 (testutil).
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, EXPLICIT_LE)]));
        let seen_before = h.an.stats().pdus;
        assert_eq!(seen_before, 2);
        // Two 20 KiB P-DATA-TFs to the requester (above its 16384) each: reported once.
        let ds = store_dataset(TransferSyntax::ExplicitVrLittleEndian, "1.2.3.5", STUDY_A, 20_000);
        for id in [7, 8] {
            let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_store_rq(id, "1.2.3.5")), (1, 2, &ds)]));
        }
        // A P-DATA-TF claiming 4 GB; 100 KB of it seen before the connection ends.
        let mut p = pdata(&[(1, 3, &cmd_store_rq(9, "1.2.3.6"))]);
        let mut huge = vec![4u8, 0];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&(u32::MAX - 4).to_be_bytes());
        huge.extend_from_slice(&[1, 0]);
        huge.extend(vec![0u8; 100_000 - huge.len()]);
        p.extend(&huge);
        let _ = h.data(ToServer, &p);
        let ev = h.end(CloseReason::Fin);
        let names = anomaly_names(&ev);
        // Once per direction, however many PDUs are above it.
        assert_eq!(
            names,
            vec![
                "dicom.pdu_above_negotiated_max",
                "dicom.pdu_above_negotiated_max",
                "dicom.pdu_truncated"
            ]
        );
        let a = &associations(&ev)[0];
        assert!(a.bytes_toserver < 200_000, "{}", a.bytes_toserver);
        let c = commands(&ev);
        let c9 = c.iter().find(|c| c.message_id == 9).unwrap();
        assert_eq!(c9.dataset_bytes, 100_000 - 12);
    }

    /// A Study Root C-MOVE association WS1 → PACS, accepted.
    fn move_association() -> Harness {
        let mut h = Harness::dicom();
        let _ = h.data(
            ToServer,
            &associate_rq("WS1", "PACS", &[(1, MOVE_STUDY, &[IMPLICIT_LE])], None),
        );
        let _ = h.data(ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]));
        h
    }

    /// C-MOVE 5 of STUDY_A to STORESCP, with its success status and 3 completed sub-operations.
    fn assert_whole_move_5(c: &DicomCommand) {
        assert_eq!((c.command.as_str(), c.message_id), ("C-MOVE", 5));
        assert_eq!(c.move_destination.as_deref(), Some("STORESCP"));
        assert_eq!(c.study_instance_uids, vec![STUDY_A]);
        assert_eq!(c.status.as_deref(), Some("0x0000"));
        assert_eq!(c.sub_operations.map(|s| s.completed), Some(3));
    }

    #[test]
    fn response_whose_request_fell_in_a_gap_is_reported_incomplete() {
        let mut h = move_association();
        // The C-MOVE request is lost whole; its final response arrives.
        let mv = pdata(&[(1, 3, &cmd_move_rq(5, "STORESCP"))]);
        let _ = h.gap(ToServer, mv.len() as u64);
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8021, 5, 0, Some((0, 3, 0, 0))))]));
        // A C-ECHO whose response is lost: reported without status, marked.
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(6))]));
        let _ = h.gap(ToClient, 80);
        let ev = h.end(CloseReason::Timeout);
        let c = commands(&ev);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!((c[0].command.as_str(), c[0].message_id), ("C-MOVE", 5));
        assert!(c[0].incomplete);
        assert_eq!(c[0].status.as_deref(), Some("0x0000"));
        assert_eq!(c[0].sub_operations.map(|s| s.completed), Some(3));
        assert_eq!((c[1].command.as_str(), c[1].status.as_deref()), ("C-ECHO", None));
        assert!(c[1].incomplete);
        let a = &associations(&ev)[0];
        assert_eq!((a.gaps, a.commands), (2, 2));
    }

    #[test]
    fn a_response_decoded_before_its_request_after_a_gap_makes_one_command() {
        // A gap in the requester's direction, and the next C-MOVE's final response delivered
        // before the request bytes that follow the hole (the hole was kept open a while): the
        // request comes after its response. One C-MOVE with study and status, not one built
        // from the response and another from the request without one.
        let ident = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_A);
        let mut h = move_association();
        let _ = h.gap(ToServer, 500);
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8021, 5, 0, Some((0, 3, 0, 0))))]));
        let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8030, 6, 0, None))]));
        assert!(commands(&h.events()).is_empty(), "both wait for their requests");
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_move_rq(5, "STORESCP")), (1, 2, &ident)]));
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(6))]));
        let ev = h.end(CloseReason::Timeout);
        let c = commands(&ev);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_whole_move_5(&c[0]);
        assert!(c[0].incomplete, "the order was broken by a gap");
        assert_eq!(
            (c[1].command.as_str(), c[1].status.as_deref()),
            ("C-ECHO", Some("0x0000"))
        );
        assert_eq!(associations(&ev)[0].commands, 2);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
    }

    #[test]
    fn a_command_whose_pdu_headers_fell_in_a_gap_is_still_read() {
        // dcmtk and Orthanc send each P-DATA-TF's PDU + PDV headers (12 bytes) in a segment of
        // their own; a capture that lost that segment resumes at the command set. The C-MOVE
        // request and its final response both lost their headers: still one C-MOVE with its
        // destination, study (the identifier's PDU is whole), status and sub-operations.
        let ident = identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_A);
        let mut h = move_association();
        let rq = pdata(&[(1, 3, &cmd_move_rq(5, "STORESCP"))]);
        let _ = h.gap(ToServer, 12);
        let _ = h.data(ToServer, &rq[12..]);
        let _ = h.data(ToServer, &pdata(&[(1, 2, &ident)]));
        let rsp = pdata(&[(1, 3, &cmd_rsp(0x8021, 5, 0, Some((0, 3, 0, 0))))]);
        let _ = h.gap(ToClient, 12);
        let _ = h.data(ToClient, &rsp[12..]);
        let _ = h.data(ToServer, &release_rq());
        let _ = h.data(ToClient, &release_rp());
        let ev = h.end(CloseReason::Fin);
        let c = commands(&ev);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_whole_move_5(&c[0]);
        assert!(c[0].incomplete);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let a = &associations(&ev)[0];
        assert_eq!((a.gaps, a.outcome), (2, AssociationOutcome::Released));
    }

    #[test]
    fn bytes_after_a_gap_that_only_look_like_a_command_set_are_not_read_as_one() {
        // A group length element followed by something that is not a command set (a data set
        // value of zeros, a length past the bytes): resynchronised past, no command, no
        // `dicom.malformed_command`.
        for tail in [vec![0u8; 64], {
            let mut t = vec![0, 0, 0, 0, 4, 0, 0, 0, 0xFF, 0xFF, 0, 0];
            t.extend([0u8; 40]);
            t
        }] {
            let mut h = Harness::dicom();
            let _ = h.data(
                ToServer,
                &associate_rq("WS1", "PACS", &[(1, VERIFICATION, &[IMPLICIT_LE])], None),
            );
            let _ = h.data(ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]));
            let _ = h.gap(ToServer, 12);
            let mut bytes = vec![0, 0, 0, 0, 4, 0, 0, 0];
            bytes.extend_from_slice(&(tail.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&tail);
            let _ = h.data(ToServer, &bytes);
            let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(2))]));
            let _ = h.data(ToClient, &pdata(&[(1, 3, &cmd_rsp(0x8030, 2, 0, None))]));
            let ev = h.end(CloseReason::Fin);
            let c = commands(&ev);
            assert_eq!(c.len(), 1, "{c:?}");
            assert_eq!((c[0].command.as_str(), c[0].message_id), ("C-ECHO", 2));
            assert!(
                !anomaly_names(&ev).contains(&"dicom.malformed_command"),
                "{:?}",
                anomaly_names(&ev)
            );
        }
    }

    /// What a capture with a short snaplen delivers of `bytes` sent in one segment: the first
    /// `keep` bytes, then a gap.
    fn cut(h: &mut Harness, dir: Direction, bytes: &[u8], keep: usize) {
        let _ = h.data(dir, &bytes[..keep]);
        let _ = h.gap(dir, (bytes.len() - keep) as u64);
    }

    /// Bytes of a command set up to the end of its element `(0000,element)` (whose value is 2
    /// bytes: a US).
    fn through_us_element(cmd: &[u8], element: u16) -> usize {
        let tag = [0, 0, element as u8, (element >> 8) as u8, 2, 0, 0, 0];
        cmd.windows(8).position(|w| w == tag).unwrap() + 10
    }

    #[test]
    fn a_header_only_capture_still_names_the_association_and_its_commands() {
        // Every segment cut at the snaplen: the A-ASSOCIATE-RQ keeps its AE titles (62 bytes:
        // snaplen 128 with TCP timestamps), the AC its type, the C-MOVE request its Message ID,
        // its response its Status; PDU and PDV headers (a segment of their own, as dcmtk and
        // Orthanc send them) are whole. The walker stays in step through every hole.
        let mut h = Harness::dicom();
        let rq = associate_rq("WS1", "PACS", &[(1, MOVE_STUDY, &[IMPLICIT_LE])], None);
        cut(&mut h, ToServer, &rq, 62);
        cut(&mut h, ToClient, &associate_ac(&[(1, 0, IMPLICIT_LE)]), 62);
        let cmd = cmd_move_rq(5, "STORESCP");
        let rq_pdu = pdata(&[(1, 3, &cmd)]);
        let _ = h.data(ToServer, &rq_pdu[..12]);
        cut(&mut h, ToServer, &rq_pdu[12..], through_us_element(&cmd, 0x0110));
        let ident = pdata(&[(
            1,
            2,
            &identifier(TransferSyntax::ImplicitVrLittleEndian, "STUDY", STUDY_A),
        )]);
        let _ = h.data(ToServer, &ident[..12]);
        cut(&mut h, ToServer, &ident[12..], 20);
        let rsp = cmd_rsp(0x8021, 5, 0, Some((0, 3, 0, 0)));
        let rsp_pdu = pdata(&[(1, 3, &rsp)]);
        let _ = h.data(ToClient, &rsp_pdu[..12]);
        cut(&mut h, ToClient, &rsp_pdu[12..], through_us_element(&rsp, 0x0900));
        let _ = h.data(ToServer, &release_rq());
        let _ = h.data(ToClient, &release_rp());
        let ev = h.end(CloseReason::Fin);
        let c = commands(&ev);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].command.as_str(), c[0].message_id), ("C-MOVE", 5));
        assert_eq!((c[0].calling_ae.as_str(), c[0].called_ae.as_str()), ("WS1", "PACS"));
        assert_eq!(c[0].status.as_deref(), Some("0x0000"));
        assert_eq!(c[0].move_destination, None, "cut off");
        assert!(c[0].incomplete);
        let a = &associations(&ev)[0];
        assert_eq!((a.calling_ae.as_str(), a.called_ae.as_str()), ("WS1", "PACS"));
        assert!(a.accepted, "the AC's type says so");
        assert_eq!((a.commands, a.outcome), (1, AssociationOutcome::Released));
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
    }

    #[test]
    fn command_sets_cut_before_their_ids_or_status_report_what_they_hold() {
        let mut h = move_association();
        // Cut before its Message ID: reported at once, unpaired; its response, cut before the
        // Message ID Being Responded To, answers nothing we can name.
        let cmd = cmd_move_rq(5, "STORESCP");
        let rq_pdu = pdata(&[(1, 3, &cmd)]);
        let _ = h.data(ToServer, &rq_pdu[..12]);
        cut(&mut h, ToServer, &rq_pdu[12..], through_us_element(&cmd, 0x0100));
        let early = commands(&h.events());
        assert_eq!(early.len(), 1, "reported when read: {early:?}");
        assert_eq!((early[0].command.as_str(), early[0].message_id), ("C-MOVE", 0));
        assert!(early[0].incomplete && early[0].status.is_none());
        let rsp = cmd_rsp(0x8021, 5, 0, Some((0, 3, 0, 0)));
        let rsp_pdu = pdata(&[(1, 3, &rsp)]);
        let _ = h.data(ToClient, &rsp_pdu[..12]);
        cut(&mut h, ToClient, &rsp_pdu[12..], through_us_element(&rsp, 0x0100));
        // C-MOVE 6: its response cut before the Status may be a pending one: it waits, and is
        // reported at the end without status. C-ECHO 7: no pending responses exist for it, so
        // a response without its Status is its final one.
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_move_rq(6, "STORESCP"))]));
        let rsp = cmd_rsp(0x8021, 6, 0xFF00, Some((2, 1, 0, 0)));
        let rsp_pdu = pdata(&[(1, 3, &rsp)]);
        let _ = h.data(ToClient, &rsp_pdu[..12]);
        cut(&mut h, ToClient, &rsp_pdu[12..], through_us_element(&rsp, 0x0120));
        let _ = h.data(ToServer, &pdata(&[(1, 3, &cmd_echo_rq(7))]));
        let rsp = cmd_rsp(0x8030, 7, 0, None);
        let rsp_pdu = pdata(&[(1, 3, &rsp)]);
        let _ = h.data(ToClient, &rsp_pdu[..12]);
        cut(&mut h, ToClient, &rsp_pdu[12..], through_us_element(&rsp, 0x0120));
        let ev = h.end(CloseReason::Fin);
        let c = commands(&ev);
        let got: Vec<_> = c
            .iter()
            .map(|c| {
                (
                    c.command.as_str(),
                    c.message_id,
                    c.responses,
                    c.status.as_deref(),
                    c.incomplete,
                )
            })
            .collect();
        assert_eq!(got, [("C-ECHO", 7, 1, None, true), ("C-MOVE", 6, 1, None, true)]);
        assert_eq!(associations(&ev)[0].commands, 3);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
    }
}
