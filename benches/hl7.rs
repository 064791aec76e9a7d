//! Criterion benches of the hl7 decoder (HL7 v2 over MLLP).
//!
//! Run: `cargo bench --bench hl7`. The stream bench feeds a realistic feed through the whole
//! analyzer (probe, deframer, header parse, ACK pairing, event building) in 1448-byte chunks
//! (an Ethernet MSS): ADT^A01 / ORU^R01 messages each answered by an ACK, one ORU in four
//! carrying a 200 KB base64 PDF in OBX-5 (`with_pdfs`) or none (`small`). It reports bytes/s
//! and messages/s (ACKs included).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pacstap_core::{
    ChunkBody, CloseReason, Direction, Endpoint, FlowId, FlowMeta, StreamChunk, StreamHandler, Timestamp,
};
use pacstap_proto::hl7::{parse_message, probe};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

const MSS: usize = 1448;

fn frame(segs: &[String]) -> Vec<u8> {
    let mut f = vec![0x0B];
    for s in segs {
        f.extend_from_slice(s.as_bytes());
        f.push(b'\r');
    }
    f.extend_from_slice(&[0x1C, 0x0D]);
    f
}

fn msh(mtype: &str, id: u32, apps: &str) -> String {
    format!("MSH|^~\\&|{apps}|20260101120000||{mtype}|MSG{id:06}|P|2.5.1")
}

const PID: &str =
    "PID|1||SYN0001^^^HOSP^MR~99887766^^^SSA^SS||SYNTH^ALPHA^Q||19700101|F|||1 TEST ST^^TESTTOWN^^12345||555-0100";

/// The conversation: each message to the server followed by its ACK; and the message count.
fn feed(with_pdfs: bool) -> (Vec<(Direction, Vec<u8>)>, u64) {
    let pdf = "JVBERi0xLjQK".repeat(200_000 / 12);
    let (mut conv, mut n) = (Vec::new(), 0);
    for i in 0..64u32 {
        let m = if i % 2 == 0 {
            frame(&[
                msh("ADT^A01^ADT_A01", i, "ADT|HOSP|RIS|RADIOLOGY"),
                "EVN|A01|20260101120000|||rad1".into(),
                PID.into(),
                "PV1|1|I|WARD1^101^1||||1234^DOC^ONE|||MED||||||||V0001".into(),
                "NK1|1|SYNTH^BETA|SPO".into(),
                "AL1|1||^PENICILLIN".into(),
            ])
        } else {
            let obx_pdf = if with_pdfs && i % 8 == 1 {
                format!("OBX|3|ED|PDF^Report PDF||^application^pdf^Base64^{pdf}||||||F")
            } else {
                "OBX|3|TX|IMP^Impression||No acute findings.||||||F".into()
            };
            frame(&[
                msh("ORU^R01^ORU_R01", i, "RIS|RADIOLOGY|EMR|HOSP"),
                PID.into(),
                "OBR|1|ORD1|ACC1|71020^CHEST XRAY 2V^CPT|||20260101110000".into(),
                "OBX|1|TX|FIND^Findings||Lungs are clear.||||||F".into(),
                "OBX|2|TX|FIND^Findings||Heart size normal.||||||F".into(),
                obx_pdf,
                "NTE|1||Signed by rad1".into(),
            ])
        };
        conv.push((Direction::ToServer, m));
        let ack = frame(&[
            msh("ACK^A01^ACK", 100_000 + i, "RIS|RADIOLOGY|ADT|HOSP"),
            format!("MSA|AA|MSG{i:06}"),
        ]);
        conv.push((Direction::ToClient, ack));
        n += 2;
    }
    (conv, n)
}

fn meta() -> FlowMeta {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 20, 0, 30));
    FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(ip, 40_000),
        server: Endpoint::new(ip, 2575),
        start: Timestamp(0),
        handshake_seen: true,
    }
}

/// Feed the conversation in MSS-sized chunks; returns the events emitted.
fn run(conv: &[(Direction, Vec<u8>)]) -> usize {
    let meta = meta();
    let mut an = Analyzer::new(ProtoConfig::default());
    let mut st = FlowState::default();
    let mut offsets = [0u64; 2];
    let mut t = 0i64;
    for (dir, bytes) in conv {
        for piece in bytes.chunks(MSS) {
            let chunk = StreamChunk {
                flow: meta.id,
                dir: *dir,
                ts: Timestamp(t),
                offset: offsets[dir.index()],
                body: ChunkBody::Data(piece),
            };
            offsets[dir.index()] += piece.len() as u64;
            t += 10_000;
            let _ = an.on_chunk(&mut st, &meta, chunk);
        }
    }
    an.on_flow_end(st, &meta, CloseReason::Fin, Timestamp(t));
    an.drain_events().count()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hl7_stream");
    for (name, with_pdfs) in [("with_pdfs", true), ("small", false)] {
        let (conv, messages) = feed(with_pdfs);
        let total: u64 = conv.iter().map(|(_, b)| b.len() as u64).sum();
        assert_eq!(run(&conv) as u64, messages, "one event per message, no anomalies");
        g.throughput(Throughput::Bytes(total));
        g.bench_function(format!("{name}_1448_bytes"), |b| b.iter(|| black_box(run(&conv))));
        g.throughput(Throughput::Elements(messages));
        g.bench_function(format!("{name}_1448_messages"), |b| b.iter(|| black_box(run(&conv))));
    }
    g.finish();

    // The pure header parse of one ADT (MSH + patient segments it passes over).
    let adt = frame(&[
        msh("ADT^A01^ADT_A01", 1, "ADT|HOSP|RIS|RADIOLOGY"),
        "EVN|A01|20260101120000".into(),
        PID.into(),
        "PV1|1|I|WARD1^101^1".into(),
    ]);
    let body = &adt[1..adt.len() - 2];
    let mut g = c.benchmark_group("hl7_parser");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_message_adt", |b| {
        b.iter(|| black_box(parse_message(black_box(body), 256).is_ok()))
    });
    g.bench_function("probe", |b| b.iter(|| black_box(probe(black_box(&adt[..16])))));
    g.finish();

    // Many one-message flows: per-flow setup cost (two deframers, the pairing maps).
    let ack = vec![(
        Direction::ToServer,
        frame(&[msh("ADT^A01", 7, "A|B|C|D"), "EVN|A01".into()]),
    )];
    let mut g = c.benchmark_group("hl7_flow");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_message_flow", |b| {
        b.iter_batched(|| (), |_| black_box(run(&ack)), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
