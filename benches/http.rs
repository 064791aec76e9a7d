//! Criterion benches of the http decoder: a realistic Orthanc DICOMweb WADO-RS retrieval (a
//! study as a 1 MiB multipart/related body) delivered in 1448-byte segments, many small
//! keep-alive QIDO-RS transactions, and the pure head parser.
//!
//! Run: `cargo bench --bench http`. The WADO-RS bench reports bytes (MB/s through the whole
//! analyzer: probe, walker, pairing, event); the QIDO bench reports transactions per second.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pacstap_core::{
    ChunkBody, CloseReason, Direction, Endpoint, FlowId, FlowMeta, Interest, StreamChunk, StreamHandler, Timestamp,
};
use pacstap_proto::http::parser::parse_request_head;
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

const MSS: usize = 1448;
const ST: &str = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.92402465.76095170";

fn meta() -> FlowMeta {
    FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 20, 30, 31)), 51544),
        server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 10)), 8042),
        start: Timestamp(0),
        handshake_seen: true,
    }
}

/// What OHIF sends to Orthanc for a study retrieval (headers as a browser sends them).
fn wado_request() -> Vec<u8> {
    format!(
        "GET /dicom-web/studies/{ST} HTTP/1.1\r\nHost: pacs.hospital.example:8042\r\n\
         Connection: keep-alive\r\nsec-ch-ua-platform: \"Windows\"\r\n\
         Authorization: Basic cmFkMTpzM2NyM3QtcHc=\r\n\
         User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
         Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=*\r\n\
         Origin: https://viewer.hospital.example\r\nReferer: https://viewer.hospital.example/\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: de-DE,de;q=0.9,en;q=0.8\r\n\r\n"
    )
    .into_bytes()
}

/// Orthanc's answer: a multipart/related body of ~1 MiB (four instances), as 1448-byte segments.
fn wado_response_segments() -> Vec<Vec<u8>> {
    let boundary = "a4a8a7c8-3f1e-4c84-9d6b-0c1f8a4e2b77";
    let mut body = Vec::new();
    for i in 0..4u8 {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(&[0u8; 128]);
        body.extend_from_slice(b"DICM");
        body.extend((0..(256 << 10)).map(|j: u32| (j as u8).wrapping_mul(31).wrapping_add(i)));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut stream = format!(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    stream.extend_from_slice(&body);
    stream.chunks(MSS).map(<[u8]>::to_vec).collect()
}

struct Flow {
    an: Analyzer,
    st: FlowState,
    meta: FlowMeta,
    off: [u64; 2],
}

impl Flow {
    fn new() -> Self {
        Flow {
            an: Analyzer::new(ProtoConfig::default()),
            st: FlowState::default(),
            meta: meta(),
            off: [0; 2],
        }
    }

    fn feed(&mut self, dir: Direction, data: &[u8]) {
        let chunk = StreamChunk {
            flow: self.meta.id,
            dir,
            ts: Timestamp(1),
            offset: self.off[dir.index()],
            body: ChunkBody::Data(data),
        };
        self.off[dir.index()] += data.len() as u64;
        let meta = self.meta;
        let i = self.an.on_chunk(&mut self.st, &meta, chunk);
        debug_assert_eq!(i, Interest::Continue);
    }

    fn end(mut self) -> usize {
        let st = std::mem::take(&mut self.st);
        let meta = self.meta;
        self.an.on_flow_end(st, &meta, CloseReason::Fin, Timestamp(2));
        self.an.drain_events().count()
    }
}

fn bench_wado(c: &mut Criterion) {
    let req = wado_request();
    let segs = wado_response_segments();
    let total: usize = req.len() + segs.iter().map(Vec::len).sum::<usize>();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("wado_rs_study_1MiB_in_1448B_segments", |b| {
        b.iter_batched(
            Flow::new,
            |mut f| {
                f.feed(Direction::ToServer, &req);
                for s in &segs {
                    f.feed(Direction::ToClient, black_box(s));
                }
                assert_eq!(f.end(), 1);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_qido(c: &mut Criterion) {
    const N: usize = 100;
    let req = "GET /dicom-web/studies?PatientID=12345&StudyDate=20260101-20261231&limit=25&includefield=00081030 HTTP/1.1\r\n\
         Host: pacs.hospital.example:8042\r\nAuthorization: Basic cmFkMTpzM2NyM3QtcHc=\r\n\
         User-Agent: OHIF/3.8\r\nAccept: application/dicom+json\r\n\r\n"
        .as_bytes()
        .to_vec();
    let json = format!(r#"[{{"0020000D":{{"vr":"UI","Value":["{ST}"]}},"00100020":{{"vr":"LO","Value":["12345"]}}}}]"#);
    let rsp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{json}\r\n0\r\n\r\n",
        json.len()
    )
    .into_bytes();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("qido_rs_keepalive_transactions", |b| {
        b.iter_batched(
            Flow::new,
            |mut f| {
                for _ in 0..N {
                    f.feed(Direction::ToServer, black_box(&req));
                    f.feed(Direction::ToClient, black_box(&rsp));
                }
                assert_eq!(f.end(), N);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let req = wado_request();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("parse_request_head", |b| {
        b.iter(|| black_box(parse_request_head(black_box(&req))).map(|h| h.fields.count))
    });
    g.finish();
}

criterion_group!(benches, bench_wado, bench_qido, bench_parse);
criterion_main!(benches);
