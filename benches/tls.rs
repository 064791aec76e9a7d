//! Criterion benches of the tls decoder: ClientHello parsing with the JA3/JA4 fingerprints
//! (hellos per second), and the record walker skipping a 10 MB application data stream in
//! 1448-byte TCP segments (GB/s), through the analyzer as the flow table drives it.
//!
//! Run: `cargo bench --bench tls`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pacstap_core::{ChunkBody, Direction, Endpoint, FlowId, FlowMeta, Interest, StreamChunk, StreamHandler, Timestamp};
use pacstap_proto::tls::{ja3, ja4, parse_client_hello};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

/// A real ClientHello: curl 7.88 / OpenSSL 3.0, TLS 1.3, 517 bytes (crates/proto/testdata/tls/README.md).
const CURL_TLS13: &[u8] = include_bytes!("../crates/proto/testdata/tls/curl-tls13.pcap");

const MSS: usize = 1448;

/// The first TCP payload of a classic Ethernet/IPv4 pcap that starts a ClientHello record.
fn client_hello_record(pcap: &[u8]) -> Vec<u8> {
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        at += 16 + len;
        let ip = &frame[14..];
        let tcp = &ip[usize::from(ip[0] & 0xf) * 4..];
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        if payload.len() > 6 && payload[0] == 22 && payload[5] == 1 {
            return payload.to_vec();
        }
    }
    panic!("no ClientHello in the capture");
}

fn bench_client_hello(c: &mut Criterion) {
    let record = client_hello_record(CURL_TLS13);
    let body = &record[9..];
    let mut g = c.benchmark_group("tls_client_hello");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| black_box(parse_client_hello(black_box(body)))));
    g.bench_function("parse_ja3_ja4", |b| {
        b.iter(|| {
            let ch = parse_client_hello(black_box(body)).unwrap();
            black_box((ja3(&ch), ja4(&ch)))
        })
    });
    g.finish();
}

fn meta() -> FlowMeta {
    let ip = |a| IpAddr::V4(Ipv4Addr::new(10, 20, 0, a));
    FlowMeta {
        id: FlowId(9),
        client: Endpoint::new(ip(30), 50_000),
        server: Endpoint::new(ip(10), 2762),
        start: Timestamp(0),
        handshake_seen: true,
    }
}

/// 10 MB of full-size TLS 1.3 application data records (2^14 + 17 bytes: content type byte and
/// AEAD tag, RFC 8446 §5.2), as a server streaming a study would send.
fn app_data_stream(total: usize) -> Vec<u8> {
    const REC: usize = (1 << 14) + 17;
    let mut out = Vec::with_capacity(total + REC);
    while out.len() < total {
        out.extend_from_slice(&[23, 3, 3]);
        out.extend_from_slice(&(REC as u16).to_be_bytes());
        out.resize(out.len() + REC, 0xa5);
    }
    out
}

fn bench_record_skipping(c: &mut Criterion) {
    let hello = client_hello_record(CURL_TLS13);
    let stream = app_data_stream(10_000_000);
    let meta = meta();
    let mut g = c.benchmark_group("tls_records");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(20);
    g.bench_function("skip_app_data_10MB_1448", |b| {
        b.iter_batched(
            || {
                let mut an = Analyzer::new(ProtoConfig::default());
                let mut st = FlowState::default();
                let chunk = StreamChunk {
                    flow: meta.id,
                    dir: Direction::ToServer,
                    ts: Timestamp(1),
                    offset: 0,
                    body: ChunkBody::Data(&hello),
                };
                assert_eq!(an.on_chunk(&mut st, &meta, chunk), Interest::Continue);
                (an, st)
            },
            |(mut an, mut st)| {
                let mut offset = 0u64;
                for seg in stream.chunks(MSS) {
                    let chunk = StreamChunk {
                        flow: meta.id,
                        dir: Direction::ToClient,
                        ts: Timestamp(2),
                        offset,
                        body: ChunkBody::Data(seg),
                    };
                    offset += seg.len() as u64;
                    let _ = an.on_chunk(&mut st, &meta, chunk);
                }
                black_box(an.stats().tls.records)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_client_hello, bench_record_skipping);
criterion_main!(benches);
