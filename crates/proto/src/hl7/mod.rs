//! HL7 v2 over MLLP (HL7 v2.5 chapter 2 and Appendix C), as seen from a tap.
//!
//! - [`parser`]: pure parsing: the content probe, delimiters from MSH-1/MSH-2, field access
//!   with MSH numbering, unescaping, the header summary (MSH, MSA, MFI, MFE);
//! - [`config`]: the decoder's settings and caps;
//! - `stream`: the per-direction MLLP deframer (frames, segments, bounded kept prefix,
//!   resync);
//! - `state`: acknowledgment pairing;
//! - `event`: the `hl7` event of a message and [`Hl7Anomaly`].
//!
//! One `hl7` event per message (CONTRACT §2). Patient segments (PID, PD1, NK1, PV1, PV2, OBX,
//! NTE, IN1, GT1, AL1, DG1, …) are never copied, let alone emitted: only their counts are.

pub mod config;
mod event;
pub mod parser;
mod state;
mod stream;

pub use config::{Hl7Config, RESYNC_GIVE_UP_BYTES};
pub use event::Hl7Anomaly;
pub use parser::{
    field, find_frame_byte, parse_delimiters, parse_message, render, segments, unescape_into, Ack, Delimiters,
    MalformedMsh, MasterFile, MasterFileRecord, MessageHeader, Render, SegmentId,
};

use crate::budget::Lease;
use crate::decoder::Decoder;
use crate::{Ctx, Probe, ProtoConfig};
use pacstap_core::{ChunkBody, CloseReason, Direction, StreamChunk};
use state::{Session, SessionSink};
use std::collections::BTreeMap;
use stream::Deframer;

/// Counters of the hl7 decoder.
#[derive(Debug, Clone, Default)]
pub struct Hl7Stats {
    /// Flows decoded as HL7/MLLP.
    pub flows: u64,
    /// MLLP frames read (including frames cut short).
    pub frames: u64,
    /// Message events emitted.
    pub messages: u64,
    /// Messages without their end block (emitted with `truncated`).
    pub truncated_messages: u64,
    /// Messages whose MSH could not be read (no event).
    pub malformed_messages: u64,
    /// Acknowledgments by MSA-1 code (`AA` `AE` `AR` `CA` `CE` `CR`, else `other`).
    pub acks: BTreeMap<&'static str, u64>,
    /// Master file notifications (MFN) seen.
    pub admin_events: u64,
    /// Payload bytes handed to the decoder.
    pub bytes: u64,
    /// Message bytes passed over without a copy (every segment but MSH, MSA, MFI, MFE).
    pub bytes_skipped: u64,
    /// Bytes passed over outside frames (resynchronising, bad framing).
    pub resync_bytes: u64,
    /// Messages whose kept segments hit `max_kept_bytes`.
    pub kept_bytes_capped: u64,
    /// Messages forgotten unacknowledged because `max_outstanding` was reached.
    pub outstanding_evictions: u64,
}

impl Hl7Stats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &Hl7Stats) {
        let Hl7Stats {
            flows,
            frames,
            messages,
            truncated_messages,
            malformed_messages,
            acks,
            admin_events,
            bytes,
            bytes_skipped,
            resync_bytes,
            kept_bytes_capped,
            outstanding_evictions,
        } = other;
        self.flows += flows;
        self.frames += frames;
        self.messages += messages;
        self.truncated_messages += truncated_messages;
        self.malformed_messages += malformed_messages;
        for (k, v) in acks {
            *self.acks.entry(k).or_insert(0) += v;
        }
        self.admin_events += admin_events;
        self.bytes += bytes;
        self.bytes_skipped += bytes_skipped;
        self.resync_bytes += resync_bytes;
        self.kept_bytes_capped += kept_bytes_capped;
        self.outstanding_evictions += outstanding_evictions;
    }
}

/// Content probe on a flow's first bytes: `<VT>MSH` (or a batch header), after optional
/// CR/LF keep-alives.
pub fn probe(data: &[u8]) -> Probe {
    parser::probe(data)
}

/// Per-flow state.
#[derive(Debug)]
pub struct Hl7Flow {
    /// Indexed by `Direction::index`.
    deframers: [Deframer; 2],
    session: Session,
    midstream: bool,
    started: bool,
    /// Charge against the decoder memory budget (kept by the analyzer).
    pub(crate) lease: crate::Lease,
}

impl Hl7Flow {
    /// `midstream`: the flow was claimed by port, its start was not seen: resynchronise on the
    /// next `<VT>MSH`.
    pub fn new(cfg: &ProtoConfig, midstream: bool) -> Self {
        let c = &cfg.hl7;
        let deframer = || Deframer::new(midstream, c.max_kept_bytes, c.max_message_bytes);
        Hl7Flow {
            deframers: [deframer(), deframer()],
            session: Session::default(),
            midstream,
            started: false,
            lease: crate::Lease::default(),
        }
    }

    fn end_direction(
        deframer: &mut Deframer,
        session: &mut Session,
        ctx: &mut Ctx<'_>,
        dir: Direction,
        reason: CloseReason,
    ) {
        let open = deframer.finish(&mut SessionSink { session, ctx, dir });
        // At the end of the capture, a timeout or an eviction the message was only cut by us.
        if open && matches!(reason, CloseReason::Fin | CloseReason::Rst) {
            session.anomaly(
                ctx,
                Hl7Anomaly::TruncatedMessage,
                format!("connection closed ({reason:?}) inside a message"),
            );
        }
    }
}

impl Decoder for Hl7Flow {
    /// Handle one chunk. Always `true`: an HL7 flow is never given up (see
    /// [`RESYNC_GIVE_UP_BYTES`]).
    fn on_chunk(&mut self, ctx: &mut Ctx<'_>, chunk: &StreamChunk<'_>) -> bool {
        if !self.started {
            self.started = true;
            ctx.stats.hl7.flows += 1;
            self.session.start(!self.midstream && ctx.meta.handshake_seen);
        }
        let dir = chunk.dir;
        let Hl7Flow { deframers, session, .. } = self;
        let Some(deframer) = deframers.get_mut(dir.index()) else {
            return true;
        };
        match chunk.body {
            ChunkBody::Data(data) => {
                ctx.stats.hl7.bytes = ctx.stats.hl7.bytes.saturating_add(data.len() as u64);
                deframer.feed(data, &mut SessionSink { session, ctx, dir });
            }
            ChunkBody::Gap(len) => {
                ctx.stats.gap_bytes = ctx.stats.gap_bytes.saturating_add(len);
                let cut = deframer.gap(&mut SessionSink { session, ctx, dir });
                session.lost(dir);
                let what = if cut { ", message cut" } else { "" };
                session.anomaly(ctx, Hl7Anomaly::Gap, format!("{len} bytes lost{what}"));
            }
            // The direction ended: a message still open was cut by the peer.
            ChunkBody::Close(reason) => Self::end_direction(deframer, session, ctx, dir, reason),
        }
        true
    }

    /// The flow left the table: report what is pending in both directions.
    fn finish(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        let Hl7Flow { deframers, session, .. } = self;
        for (deframer, dir) in deframers.iter_mut().zip([Direction::ToServer, Direction::ToClient]) {
            Self::end_direction(deframer, session, ctx, dir, reason);
        }
    }

    /// Capacity of every buffer this flow holds (for the memory budget).
    fn held_bytes(&self) -> usize {
        self.deframers.iter().map(Deframer::held_bytes).sum()
    }

    fn lease_mut(&mut self) -> &mut Lease {
        &mut self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{anomaly_names, Harness, Lcg};
    use crate::FlowState;
    use pacstap_core::Direction::{ToClient, ToServer};
    use pacstap_core::{EventBody, Hl7Event, Interest, ProtocolEvent};

    const PORT: u16 = 2575;

    fn msh(mtype: &str, id: &str) -> String {
        format!("MSH|^~\\&|RIS|RADIOLOGY|HIS|HOSP|20260101120000||{mtype}|{id}|P|2.5.1")
    }

    fn ack_msh(id: &str) -> String {
        format!("MSH|^~\\&|HIS|HOSP|RIS|RADIOLOGY|20260101120001||ACK^A01^ACK|{id}|P|2.5.1")
    }

    /// An MLLP frame of these segments (CR-terminated).
    fn frame(segs: &[&str]) -> Vec<u8> {
        let mut f = vec![0x0B];
        for s in segs {
            f.extend_from_slice(s.as_bytes());
            f.push(b'\r');
        }
        f.extend_from_slice(&[0x1C, 0x0D]);
        f
    }

    const PID: &str = "PID|1||SYN0001^^^HOSP^MR||SYNTH^ALPHA||19700101|F|||1 TEST ST^^TESTTOWN";
    const SECRETS: [&str; 6] = ["SYNTH", "ALPHA", "19700101", "SYN0001", "TESTTOWN", "Normal study"];

    fn adt(id: &str) -> Vec<u8> {
        frame(&[
            &msh("ADT^A01^ADT_A01", id),
            "EVN|A01|20260101120000",
            PID,
            "PV1|1|I|WARD1^101^1",
        ])
    }

    fn ack(id: &str, code: &str, acked: &str) -> Vec<u8> {
        frame(&[&ack_msh(id), &format!("MSA|{code}|{acked}")])
    }

    fn oru(id: &str, pdf_len: usize) -> Vec<u8> {
        let pdf = "QUJD".repeat(pdf_len / 4);
        frame(&[
            &msh("ORU^R01^ORU_R01", id),
            PID,
            "OBR|1|ORD1||CT HEAD",
            "OBX|1|TX|REPORT||Normal study for SYNTH^ALPHA",
            &format!("OBX|2|ED|PDF||^application^pdf^Base64^{pdf}"),
            "NTE|1||Signed",
        ])
    }

    fn mfn(id: &str) -> Vec<u8> {
        frame(&[
            &msh("MFN^M02^MFN_M02", id),
            "MFI|STF^Staff master file^HL70175||UPD|||AL",
            "MFE|MAD|MF1|20260101120000|rad9^^^HOSP|CWE",
            "STF|rad9|U9^^^HOSP|NEWUSER^RADIOLOGIST",
            "PRA|rad9|RAD",
            "MFE|MDC|MF2|20260101120000|rad2^^^HOSP|CWE",
            "STF|rad2",
        ])
    }

    fn hl7(ev: &[ProtocolEvent]) -> Vec<Hl7Event> {
        ev.iter()
            .filter_map(|e| match &e.body {
                EventBody::Hl7(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    fn no_patient_data(ev: &[ProtocolEvent]) {
        let all = format!("{ev:?}");
        for secret in SECRETS {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
    }

    fn hl7_flow(h: &Harness) -> &Hl7Flow {
        match &h.st {
            FlowState::Hl7(f) => f,
            other => panic!("not an HL7 flow: {other:?}"),
        }
    }

    type Conv = Vec<(Direction, Vec<u8>)>;

    /// Each conversation item at its own time, 10 ms apart; `split`: (item, cut) or byte by byte.
    fn run(conv: &Conv, split: Option<(usize, usize)>, port: u16, end: CloseReason) -> Vec<ProtocolEvent> {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, port);
        let base = h.ts;
        for (i, (dir, bytes)) in conv.iter().enumerate() {
            h.ts = base + i as i64 * 10_000_000;
            match split {
                Some((m, k)) if m == i => h.data_split(*dir, bytes, &[k]),
                Some((usize::MAX, _)) => {
                    for b in bytes.chunks(1) {
                        let _ = h.data(*dir, b);
                    }
                }
                _ => {
                    let _ = h.data(*dir, bytes);
                }
            }
        }
        h.end(end)
    }

    fn every_split(conv: &Conv, port: u16) -> Vec<ProtocolEvent> {
        let whole = run(conv, None, port, CloseReason::Fin);
        let want = format!("{whole:?}");
        for (i, (_, bytes)) in conv.iter().enumerate() {
            for k in 1..bytes.len() {
                assert_eq!(
                    format!("{:?}", run(conv, Some((i, k)), port, CloseReason::Fin)),
                    want,
                    "item {i} cut at {k}"
                );
            }
        }
        assert_eq!(
            format!("{:?}", run(conv, Some((usize::MAX, 0)), port, CloseReason::Fin)),
            want,
            "byte by byte"
        );
        whole
    }

    /// The loopback capture of `crates/proto/testdata/hl7/make_mllp.py`: (microseconds, direction, payload).
    fn loopback() -> Vec<(i64, Direction, Vec<u8>)> {
        let pcap = include_bytes!("../../testdata/hl7/mllp-loopback.pcap");
        crate::testutil::pcap_connections(pcap, PORT)
            .remove(0)
            .into_iter()
            .map(|s| (s.us, s.dir, s.bytes))
            .collect()
    }

    fn replay_loopback(chunk: usize) -> (Vec<ProtocolEvent>, Harness) {
        let mut h = Harness::new(ProtoConfig::default(), 38_324, PORT);
        for (us, dir, bytes) in loopback() {
            h.ts = us * 1000;
            for piece in bytes.chunks(chunk) {
                assert_eq!(h.data(dir, piece), Interest::Continue);
            }
        }
        let ev = h.end(CloseReason::Fin);
        (ev, h)
    }

    #[test]
    fn real_loopback_capture() {
        let (ev, h) = replay_loopback(usize::MAX);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        no_patient_data(&ev);
        let m = hl7(&ev);
        assert_eq!(m.len(), 12);

        // Message type and trigger of every message agree with tshark's HL7 dissector.
        let oracle: Vec<(String, String)> = include_str!("../../testdata/hl7/mllp-loopback.tshark.tsv")
            .lines()
            .flat_map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                c[2].split(',')
                    .zip(c[3].split(','))
                    .map(|(t, e)| (t.to_string(), e.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let ours: Vec<(String, String)> = m
            .iter()
            .map(|e| {
                let mut p = e.message_type.split('^');
                (p.next().unwrap().to_string(), p.next().unwrap().to_string())
            })
            .collect();
        assert_eq!(ours, oracle);

        let adt = &m[0];
        assert_eq!(adt.message_type, "ADT^A01");
        assert_eq!(adt.message_structure.as_deref(), Some("ADT_A01"));
        assert_eq!(adt.control_id, "MSG0001");
        assert_eq!(adt.version.as_deref(), Some("2.5.1"));
        assert_eq!(adt.sending_application.as_deref(), Some("RIS"));
        assert_eq!(adt.sending_facility.as_deref(), Some("RADIOLOGY"));
        assert_eq!(adt.receiving_application.as_deref(), Some("HIS"));
        assert_eq!(adt.receiving_facility.as_deref(), Some("HOSP"));
        assert_eq!(adt.message_time.as_deref(), Some("20260101120000"));
        assert_eq!(adt.direction, Some(ToServer));
        assert_eq!((adt.ack_code.as_ref(), adt.ack_latency_seconds), (None, None));
        assert_eq!(adt.segments, 4);
        let counts: Vec<(&str, u32)> = adt.segment_counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, vec![("EVN", 1), ("MSH", 1), ("PID", 1), ("PV1", 1)]);

        let a = &m[1];
        assert_eq!(a.message_type, "ACK^A01");
        assert_eq!(a.message_structure.as_deref(), Some("ACK"));
        assert_eq!(a.direction, Some(ToClient));
        assert_eq!(a.sending_application.as_deref(), Some("HIS"));
        assert_eq!(
            (a.ack_code.as_deref(), a.acked_control_id.as_deref()),
            (Some("AA"), Some("MSG0001"))
        );
        // The listener waits 20 ms before answering.
        let lat = a.ack_latency_seconds.unwrap();
        assert!((0.015..0.5).contains(&lat), "{lat}");
        let acks: Vec<(&str, &str)> = m
            .iter()
            .filter_map(|e| Some((e.ack_code.as_deref()?, e.acked_control_id.as_deref()?)))
            .collect();
        assert_eq!(
            acks,
            vec![
                ("AA", "MSG0001"),
                ("AE", "MSG0002"),
                ("AA", "MSG0003"),
                ("AA", "MSG0004"),
                ("AR", "MSG0005"),
                ("AA", "MSG0006")
            ]
        );
        assert!(m
            .iter()
            .filter(|e| e.ack_code.is_some())
            .all(|e| e.ack_latency_seconds.is_some()));

        let oru = &m[4];
        assert_eq!(oru.control_id, "MSG0003");
        assert_eq!(oru.segments, 6);
        assert_eq!(oru.segment_counts.get("OBX"), Some(&2));
        assert!(oru.message_bytes > 40_000);

        let mfn = &m[6];
        let admin = mfn.admin_event.as_ref().unwrap();
        assert_eq!(admin.kind, "staff_master_file_change");
        assert_eq!(admin.master_file_id.as_deref(), Some("STF"));
        assert_eq!(admin.file_event_code.as_deref(), Some("UPD"));
        assert_eq!(admin.records_total, 1);
        assert_eq!(admin.records[0].event_code, "MAD");
        assert_eq!(admin.records[0].action.as_deref(), Some("add"));
        assert_eq!(admin.records[0].primary_key.as_deref(), Some("rad9"));

        // Two frames in one segment, then their two ACKs.
        assert_eq!(
            (m[8].control_id.as_str(), m[9].control_id.as_str()),
            ("MSG0005", "MSG0006")
        );

        let s = &h.an.stats().hl7;
        assert_eq!((s.flows, s.frames, s.messages, s.truncated_messages), (1, 12, 12, 0));
        assert_eq!(s.acks.get("AA"), Some(&4));
        assert_eq!(s.acks.get("AE"), Some(&1));
        assert_eq!(s.acks.get("AR"), Some(&1));
        assert_eq!(s.admin_events, 1);
        assert!(s.bytes_skipped > 40_000);
        assert_eq!((s.resync_bytes, s.outstanding_evictions), (0, 0));

        // The same bytes in MSS-sized and in tiny pieces give the same events.
        for chunk in [1448, 7, 1] {
            assert_eq!(
                format!("{:?}", replay_loopback(chunk).0),
                format!("{ev:?}"),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn conversation_at_every_split_point() {
        let mut batch = vec![0x0B];
        for seg in [
            "FHS|^~\\&|RIS",
            "BHS|^~\\&|RIS",
            &msh("ADT^A08", "B1"),
            PID,
            &msh("ADT^A08", "B2"),
            PID,
            "BTS|2",
            "FTS|1",
        ] {
            batch.extend_from_slice(seg.as_bytes());
            batch.push(b'\r');
        }
        batch.extend_from_slice(&[0x1C, 0x0D]);
        let conv: Conv = vec![
            (ToServer, adt("M1")),
            (ToClient, ack("A1", "AA", "M1")),
            (ToServer, [b"\r\n".to_vec(), oru("M2", 600), mfn("M3")].concat()),
            (ToClient, [ack("A2", "AE", "M2"), ack("A3", "AA", "M3")].concat()),
            (ToServer, batch),
        ];
        let ev = every_split(&conv, PORT);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        no_patient_data(&ev);
        let m = hl7(&ev);
        let ids: Vec<&str> = m.iter().map(|e| e.control_id.as_str()).collect();
        assert_eq!(ids, vec!["M1", "A1", "M2", "M3", "A2", "A3", "B1", "B2"]);
        assert_eq!(m[1].ack_latency_seconds, Some(0.01));
        assert_eq!(m[4].ack_latency_seconds, Some(0.01));
        let admin = m[3].admin_event.as_ref().unwrap();
        assert_eq!(admin.records_total, 2);
        assert_eq!(admin.records[1].action.as_deref(), Some("deactivate"));
        assert_eq!(admin.records[1].primary_key.as_deref(), Some("rad2"));
        // Batch members are split at each MSH; the envelope is no message's segment.
        assert_eq!((m[6].segments, m[7].segments), (2, 2));
        assert_eq!(m[6].message_type, "ADT^A08");
        assert!(m[6].segment_counts.keys().all(|k| k == "MSH" || k == "PID"));
        // Off the HL7 port too: the content decides.
        assert_eq!(
            format!("{:?}", hl7(&run(&conv, None, 9999, CloseReason::Fin))),
            format!("{m:?}")
        );
    }

    #[test]
    fn msh_3_is_the_sending_application() {
        // A flow with a non-standard field separator; MSH-3 is the 2nd token after "MSH".
        let msg = frame(&["MSH#^~\\&#SENDER#SFAC#RECEIVER#RFAC#20260101##ADT^A04#X1#P#2.3", PID]);
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 7000);
        let _ = h.data(ToServer, &msg);
        let m = hl7(&h.end(CloseReason::Fin));
        assert_eq!(m[0].sending_application.as_deref(), Some("SENDER"));
        assert_eq!(m[0].sending_facility.as_deref(), Some("SFAC"));
        assert_eq!(m[0].receiving_application.as_deref(), Some("RECEIVER"));
        assert_eq!(m[0].receiving_facility.as_deref(), Some("RFAC"));
        assert_eq!(m[0].message_type, "ADT^A04");
        assert_eq!(m[0].control_id, "X1");
        assert_eq!(m[0].version.as_deref(), Some("2.3"));
    }

    #[test]
    fn patient_segments_never_reach_an_event() {
        // PID with a name and birth date, NK1, OBX free text, a raw LF inside the OBX text (a
        // broken sender), an unescaped-looking MSA-3 with the name, and an escaped MSH value.
        let msg = frame(&[
            &msh("ORU^R01", "P\\F\\1"),
            PID,
            "PD1|||SYNTH CLINIC",
            "NK1|1|SYNTH^BETA|MTH",
            "PV1|1|O",
            "OBX|1|TX|NOTE||SYNTH ALPHA born 19700101\nHIV positive\nPID|text line",
            "NTE|1||SYNTH^ALPHA",
            "IN1|1|PLAN|SYNTH INSURANCE",
            "GT1|1||SYNTH^ALPHA",
            "AL1|1||PENICILLIN",
            "DG1|1||C34.1",
        ]);
        let reply = frame(&[
            &ack_msh("A1"),
            "MSA|AE|P\\F\\1|Unknown patient SYNTH^ALPHA 19700101",
            "ERR|||SYNTH",
        ]);
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let _ = h.data(ToServer, &msg);
        let _ = h.data(ToClient, &reply);
        let ev = h.end(CloseReason::Fin);
        no_patient_data(&ev);
        for word in [
            "PENICILLIN",
            "C34.1",
            "HIV",
            "BETA",
            "CLINIC",
            "INSURANCE",
            "Unknown patient",
        ] {
            assert!(!format!("{ev:?}").contains(word), "{word} leaked");
        }
        let m = hl7(&ev);
        assert_eq!(m[0].control_id, "P|1");
        assert_eq!(m[1].acked_control_id.as_deref(), Some("P|1"));
        assert!(m[1].ack_latency_seconds.is_some());
        // The broken OBX lines are counted, but not under a name taken from their text —
        // except a line that looks exactly like a segment (`PID|`), which is only a count.
        assert_eq!(m[0].segment_counts.get("other"), Some(&1));
        assert_eq!(m[0].segment_counts.get("PID"), Some(&2));
        assert_eq!(m[0].segments, 13);
    }

    #[test]
    fn lf_and_crlf_terminators() {
        for sep in ["\n", "\r\n"] {
            let body = [msh("ADT^A01", "L1"), PID.to_string(), "PV1|1|I".to_string()].join(sep);
            let msg = [&[0x0B], body.as_bytes(), sep.as_bytes(), &[0x1C, 0x0D]].concat();
            let reply = [
                &[0x0B][..],
                ack_msh("L2").as_bytes(),
                sep.as_bytes(),
                b"MSA|AA|L1",
                &[0x1C, 0x0D],
            ]
            .concat();
            let conv: Conv = vec![(ToServer, msg), (ToClient, reply)];
            let ev = every_split(&conv, PORT);
            assert!(anomaly_names(&ev).is_empty());
            let m = hl7(&ev);
            assert_eq!((m[0].segments, m[0].version.as_deref()), (3, Some("2.5.1")));
            assert_eq!(m[1].ack_code.as_deref(), Some("AA"));
            assert_eq!(m[1].ack_latency_seconds, Some(0.01));
        }
    }

    #[test]
    fn gap_inside_a_message_then_resync() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let big = oru("G1", 20_000);
        let _ = h.data(ToServer, &big[..5000]);
        let _ = h.gap(ToServer, 3000);
        let _ = h.data(ToServer, &big[8000..]);
        let _ = h.data(ToServer, &adt("G2"));
        // A gap between messages: the next one is found without passing over anything.
        let _ = h.gap(ToServer, 100);
        let _ = h.data(ToServer, &adt("G3"));
        let ev = h.end(CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec!["hl7.gap", "hl7.resync", "hl7.gap"]);
        let m = hl7(&ev);
        let got: Vec<(&str, bool)> = m.iter().map(|e| (e.control_id.as_str(), e.truncated)).collect();
        assert_eq!(got, vec![("G1", true), ("G2", false), ("G3", false)]);
        // Only what was seen of the cut message is counted: MSH, PID, OBR, OBX, OBX (cut).
        assert_eq!(m[0].segments, 5);
        assert_eq!(h.an.stats().gap_bytes, 3100);
        assert_eq!(h.an.stats().hl7.resync_bytes, (big.len() - 8000) as u64);
    }

    #[test]
    fn a_header_cut_by_the_snaplen_is_truncated_not_malformed() {
        // A header-only capture keeps the start of each message's segment: the MSH up to its
        // sending facility, then a hole. The message is reported, truncated, with what was
        // kept; its missing MSH-9 / MSH-10 lie past the hole, which is `hl7.gap`, not
        // `hl7.malformed_msh`. A whole message without MSH-9 still is malformed.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let msg = adt("C1");
        let keep = msg.windows(10).position(|w| w == b"RADIOLOGY|").unwrap() + 10;
        let _ = h.data(ToServer, &msg[..keep]);
        let _ = h.gap(ToServer, (msg.len() - keep) as u64);
        let _ = h.data(ToServer, &adt("C2"));
        let _ = h.data(ToServer, &frame(&[&msh("ADT^A01", "C3")]));
        let _ = h.data(ToServer, &frame(&[&msh("", "C4")]));
        let ev = h.end(CloseReason::Fin);
        let m = hl7(&ev);
        let got: Vec<_> = m
            .iter()
            .map(|e| (e.sending_application.as_deref(), e.control_id.as_str(), e.truncated))
            .collect();
        assert_eq!(
            got,
            [
                (Some("RIS"), "", true),
                (Some("RIS"), "C2", false),
                (Some("RIS"), "C3", false),
                (Some("RIS"), "C4", false)
            ]
        );
        assert_eq!(anomaly_names(&ev), vec!["hl7.gap", "hl7.malformed_msh"]);
    }

    #[test]
    fn midstream_pickup_by_port() {
        let tail = &oru("T0", 3000)[1500..];
        let conv: Conv = vec![
            (ToServer, tail.to_vec()),
            (ToServer, adt("T1")),
            (ToClient, ack("T2", "AA", "T1")),
            // An ACK of a message sent before the capture began: not an anomaly midstream.
            (ToClient, ack("T3", "AA", "T0")),
        ];
        let ev = run(&conv, None, PORT, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec!["hl7.resync"]);
        let m = hl7(&ev);
        let ids: Vec<&str> = m.iter().map(|e| e.control_id.as_str()).collect();
        assert_eq!(ids, vec!["T1", "T2", "T3"]);
        assert!(m[1].ack_latency_seconds.is_some() && m[2].ack_latency_seconds.is_none());
        no_patient_data(&ev);
        // Off the HL7 ports the same bytes are not HL7.
        assert!(hl7(&run(&conv, None, 9999, CloseReason::Fin)).is_empty());
        // Every cut of the first piece locks on the same message.
        for k in 1..tail.len() {
            let got = run(&conv, Some((0, k)), PORT, CloseReason::Fin);
            assert_eq!(hl7(&got).len(), 3, "cut at {k}");
        }
    }

    #[test]
    fn probe_through_the_analyzer() {
        // `<VT>` alone, then the rest; CR/LF keep-alives first.
        for first in [&b"\x0b"[..], b"\x0bM", b"\r\n", b"\r\n\x0bMS"] {
            let msg = [b"\r\n".to_vec(), adt("P1")].concat();
            let msg = if first.starts_with(b"\r\n") { msg } else { adt("P1") };
            let mut h = Harness::new(ProtoConfig::default(), 40_000, 9000);
            assert_eq!(h.data(ToServer, &msg[..first.len()]), Interest::Continue);
            assert!(matches!(h.st, FlowState::Probing(_)), "{first:?}");
            let _ = h.data(ToServer, &msg[first.len()..]);
            assert!(matches!(h.st, FlowState::Hl7(_)));
            let ev = h.end(CloseReason::Fin);
            assert_eq!(hl7(&ev).len(), 1);
            assert!(anomaly_names(&ev).is_empty());
        }
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9000);
        assert_eq!(h.data(ToServer, b"\x0bPID|1||X\x1c\r"), Interest::Ignore);
    }

    #[test]
    fn framing_anomalies() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let _ = h.data(ToServer, &adt("F1"));
        // Garbage between frames (keep-alive CR/LF are fine).
        let _ = h.data(ToServer, b"\r\n\r\nHELLO");
        let _ = h.data(ToServer, &adt("F2"));
        // End block without its CR.
        let mut f3 = adt("F3");
        f3.pop();
        let _ = h.data(ToServer, &f3);
        // A new start block before the end block.
        let mut f4 = adt("F4");
        f4.truncate(f4.len() - 2);
        let _ = h.data(ToServer, &f4);
        let _ = h.data(ToServer, &adt("F5"));
        // A frame without MSH, and one whose MSH delimiters are broken.
        let _ = h.data(ToServer, &frame(&[PID, "PV1|1"]));
        let _ = h.data(ToServer, &frame(&["MSH|^^^^|X", PID]));
        let _ = h.data(ToServer, &frame(&["MSHA^~\\&AX", PID]));
        let _ = h.data(ToServer, &frame(&["MSH|^~\\&|APP|FAC"]));
        let ev = h.end(CloseReason::Fin);
        assert_eq!(
            anomaly_names(&ev),
            vec![
                "hl7.bad_framing",
                "hl7.bad_framing",
                "hl7.missing_end_block",
                "hl7.missing_msh",
                "hl7.malformed_msh",
                "hl7.malformed_msh",
                "hl7.malformed_msh",
            ]
        );
        let details: Vec<String> = ev
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Anomaly(a) => a.detail.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(details[0], "5 bytes outside a frame before the next frame");
        no_patient_data(&ev);
        let m = hl7(&ev);
        let got: Vec<(&str, bool)> = m.iter().map(|e| (e.control_id.as_str(), e.truncated)).collect();
        assert_eq!(
            got,
            vec![
                ("F1", false),
                ("F2", false),
                ("F3", false),
                ("F4", true),
                ("F5", false),
                ("", false)
            ]
        );
        assert_eq!(m[5].sending_application.as_deref(), Some("APP"));
        let s = &h.an.stats().hl7;
        assert_eq!((s.malformed_messages, s.resync_bytes), (1, 5));
    }

    #[test]
    fn oversized_message_is_cut_and_resynced() {
        let mut cfg = ProtoConfig::default();
        cfg.hl7.max_message_bytes = 4096;
        let mut h = Harness::new(cfg, 40_000, PORT);
        let big = oru("O1", 10_000);
        for piece in big.chunks(1448) {
            let _ = h.data(ToServer, piece);
        }
        let _ = h.data(ToServer, &adt("O2"));
        let ev = h.end(CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec!["hl7.message_too_large", "hl7.resync"]);
        let m = hl7(&ev);
        let got: Vec<(&str, bool)> = m.iter().map(|e| (e.control_id.as_str(), e.truncated)).collect();
        assert_eq!(got, vec![("O1", true), ("O2", false)]);
    }

    #[test]
    fn large_obx_is_streamed_not_buffered() {
        // An 8 MiB base64 OBX in 1448-byte segments.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let big = oru("L1", 8 << 20);
        for piece in big.chunks(1448) {
            let _ = h.data(ToServer, piece);
        }
        let f = hl7_flow(&h);
        assert!(f.deframers[0].kept_capacity() < 1024);
        let _ = h.data(ToClient, &ack("L2", "AA", "L1"));
        let ev = h.end(CloseReason::Fin);
        let m = hl7(&ev);
        assert_eq!(m[0].message_bytes, (big.len() - 3) as u64);
        assert_eq!(m[0].segments, 6);
        assert!(m[1].ack_latency_seconds.is_some());
        assert!(h.an.stats().hl7.bytes_skipped >= 8 << 20);
        assert!(anomaly_names(&ev).is_empty());
    }

    #[test]
    fn acknowledgment_pairing() {
        // Unknown MSA-2 on a connection seen whole.
        let conv: Conv = vec![
            (ToServer, adt("K1")),
            (ToClient, ack("K2", "AA", "NOPE")),
            (ToClient, ack("K3", "AA", "K1")),
            // A second application ACK of the same message: no longer outstanding.
            (ToClient, ack("K4", "AA", "K1")),
        ];
        let ev = run(&conv, None, PORT, CloseReason::Fin);
        assert_eq!(
            anomaly_names(&ev),
            vec!["hl7.ack_without_message", "hl7.ack_without_message"]
        );
        let m = hl7(&ev);
        assert_eq!(m[2].ack_latency_seconds, Some(0.02));

        // Enhanced mode: a commit ACK (CA) then an application ACK (AA), both timed.
        let conv: Conv = vec![
            (ToServer, adt("E1")),
            (ToClient, ack("E2", "CA", "E1")),
            (ToClient, ack("E3", "AA", "E1")),
        ];
        let ev = run(&conv, None, PORT, CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty());
        let m = hl7(&ev);
        assert_eq!(
            (m[1].ack_latency_seconds, m[2].ack_latency_seconds),
            (Some(0.01), Some(0.02))
        );

        // The outstanding map is bounded; evictions are counted, and an ACK of a forgotten
        // message is then not called an anomaly.
        let mut cfg = ProtoConfig::default();
        cfg.hl7.max_outstanding = 4;
        let mut h = Harness::new(cfg, 40_000, PORT);
        for i in 0..10 {
            let _ = h.data(ToServer, &adt(&format!("Q{i}")));
        }
        assert_eq!(hl7_flow(&h).session.outstanding(ToServer), 4);
        let _ = h.data(ToClient, &ack("R0", "AA", "Q0"));
        let _ = h.data(ToClient, &ack("R9", "AA", "Q9"));
        let ev = h.end(CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec!["hl7.too_many_outstanding"]);
        assert_eq!(h.an.stats().hl7.outstanding_evictions, 6);
        let m = hl7(&ev);
        assert!(m[10].ack_latency_seconds.is_none() && m[11].ack_latency_seconds.is_some());
        // Many acknowledged messages keep the map and its order queue small.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        for i in 0..5000 {
            let _ = h.data(ToServer, &adt(&format!("S{i}")));
            let _ = h.data(ToClient, &ack(&format!("T{i}"), "AA", &format!("S{i}")));
        }
        assert_eq!(hl7_flow(&h).session.outstanding(ToServer), 0);
        assert!(anomaly_names(&h.end(CloseReason::Fin)).is_empty());
    }

    #[test]
    fn flow_end_inside_a_message() {
        let msg = adt("X1");
        for (reason, anomalies) in [
            (CloseReason::Fin, vec!["hl7.truncated_message"]),
            (CloseReason::Rst, vec!["hl7.truncated_message"]),
            (CloseReason::EndOfCapture, vec![]),
            (CloseReason::Timeout, vec![]),
        ] {
            let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
            let _ = h.data(ToServer, &msg[..msg.len() - 10]);
            let ev = h.end(reason);
            assert_eq!(anomaly_names(&ev), anomalies, "{reason:?}");
            let m = hl7(&ev);
            assert_eq!((m.len(), m[0].truncated), (1, true));
        }
        // A direction's FIN inside a message reports it right away, once.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let _ = h.data(ToServer, &msg[..msg.len() - 10]);
        let _ = h.close(ToServer, CloseReason::Fin);
        assert_eq!(hl7(&h.events()).len(), 1);
        assert!(hl7(&h.end(CloseReason::Fin)).is_empty());
    }

    #[test]
    fn port_flow_without_frames_is_never_given_up() {
        // Junk on the HL7 port, then a real message: found, the junk one anomaly.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
        let junk = vec![0x41u8; 64 << 10];
        for _ in 0..((RESYNC_GIVE_UP_BYTES >> 16) + 2) {
            assert_eq!(h.data(ToServer, &junk), Interest::Continue);
        }
        let _ = h.data(ToServer, &mfn("M1"));
        let ev = h.end(CloseReason::Fin);
        let m = hl7(&ev);
        assert_eq!(m.len(), 1);
        assert!(m[0].admin_event.is_some());
        assert_eq!(anomaly_names(&ev), vec![Hl7Anomaly::Resync]);
    }

    #[test]
    fn start_block_flood_then_mfn_is_decoded() {
        // 10 MB of `<VT>`: as the flow's first bytes (claimed by port), and after a real
        // message. Either way the MFN that follows is decoded and the junk is one anomaly.
        let flood = vec![0x0Bu8; 1 << 20];
        for lead in [Vec::new(), adt("A1")] {
            let mut h = Harness::new(ProtoConfig::default(), 40_000, PORT);
            if !lead.is_empty() {
                let _ = h.data(ToServer, &lead);
            }
            for _ in 0..10 {
                assert_eq!(h.data(ToServer, &flood), Interest::Continue);
            }
            let _ = h.data(ToServer, &mfn("M2"));
            let ev = h.end(CloseReason::Fin);
            let m = hl7(&ev);
            let mfn_ev = m.iter().find(|e| e.control_id == "M2");
            assert!(mfn_ev.is_some_and(|e| e.admin_event.is_some()), "{m:?}");
            let names = anomaly_names(&ev);
            assert_eq!(names.len(), 1, "{names:?}");
            assert!(
                names[0] == Hl7Anomaly::Resync || names[0] == Hl7Anomaly::BadFraming,
                "{names:?}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(0x4C37);
        let parts: Vec<Vec<u8>> = vec![
            adt("Z1"),
            ack("Z2", "AA", "Z1"),
            oru("Z3", 300),
            mfn("Z4"),
            b"\x0bMSH".to_vec(),
            b"\x1c\r".to_vec(),
            b"\r\n".to_vec(),
            b"|^~\\&".to_vec(),
        ];
        for round in 0..400 {
            let mut cfg = ProtoConfig::default();
            cfg.hl7.max_message_bytes = 2048;
            cfg.hl7.max_kept_bytes = 64 + (rng.next() % 256) as usize;
            cfg.hl7.max_value_chars = 1 + (rng.next() % 40) as usize;
            cfg.hl7.max_outstanding = 1 + (rng.next() % 4) as usize;
            let mut stream = Vec::new();
            for _ in 0..(rng.next() % 12) {
                match rng.next() % 3 {
                    0 => stream.extend((0..rng.next() % 64).map(|_| (rng.next() % 256) as u8)),
                    _ => {
                        let p = &parts[(rng.next() % parts.len() as u64) as usize];
                        let mut p = p.clone();
                        if !p.is_empty() && rng.next().is_multiple_of(3) {
                            let at = (rng.next() % p.len() as u64) as usize;
                            p[at] = (rng.next() % 256) as u8;
                        }
                        stream.extend(p);
                    }
                }
            }
            // Each direction gets its own stream, so no direction is a splice of two (a
            // spliced MSH could carry anything, as a hostile sender's can).
            let half = (rng.next() % (stream.len() as u64 + 1)) as usize;
            let (a, b) = stream.split_at(half);
            let streams = [b.to_vec(), a.to_vec()];
            let port = if round % 2 == 0 { PORT } else { 7000 };
            let mut h = Harness::new(cfg, 40_000, port);
            let mut at = [0usize; 2];
            while at[0] < streams[0].len() || at[1] < streams[1].len() {
                let dir = if rng.next().is_multiple_of(4) {
                    ToClient
                } else {
                    ToServer
                };
                let (s, i) = (&streams[dir.index()], dir.index());
                if at[i] >= s.len() {
                    continue;
                }
                let end = (at[i] + 1 + (rng.next() % 200) as usize).min(s.len());
                match rng.next() % 10 {
                    0 => {
                        let _ = h.gap(dir, 1 + rng.next() % 500);
                    }
                    1 => {
                        let _ = h.close(dir, CloseReason::Fin);
                    }
                    _ => {
                        let _ = h.data(dir, &s[at[i]..end]);
                    }
                }
                h.ts += 1000;
                at[i] = end;
                if h.last_interest == Interest::Ignore {
                    break;
                }
            }
            let ev = h.end(CloseReason::EndOfCapture);
            assert!(anomaly_names(&ev).len() <= 16);
            no_patient_data(&ev);
            for e in hl7(&ev) {
                for v in [e.message_type.as_str(), e.control_id.as_str()] {
                    assert!(v.chars().count() <= 40);
                }
                assert!(e.segment_counts.len() <= stream::MAX_SEGMENT_IDS + 1);
            }
        }
    }

    #[test]
    fn config_defaults() {
        let c = Hl7Config::default();
        assert_eq!(c.max_kept_bytes, 8192);
        assert_eq!(c.max_message_bytes, 16 << 20);
        assert_eq!(c.max_outstanding, 1024);
        assert_eq!(c.max_value_chars, 256);
        assert_eq!(ProtoConfig::default().hl7_ports, vec![2575]);
    }
}
