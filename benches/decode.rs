//! Criterion benches of the per-packet stages: wire decode, TCP reassembly, DICOM decoding,
//! and the whole replay pipeline on a bundled real capture.
//!
//! Run: `cargo bench --bench decode`. Throughput is reported in bytes of frames/payload, so
//! criterion prints GB/s directly. For the end-to-end number on a large capture, and the
//! comparison with tshark, see `benches/replay-throughput`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pacstap_core::{CloseReason, FlowMeta, Interest, StreamChunk, StreamHandler, Timestamp};
use pacstap_flow::{ChecksumMode, FlowConfig, FlowTable};
use pacstap_wire::WireDecoder;
use std::hint::black_box;
use std::path::PathBuf;

const MSS: usize = 1448;

/// An Ethernet/IPv4/TCP frame carrying `payload`. Its checksums are left zero, so the reassembly
/// benches run with checksum validation off; its cost is measured on real captures by
/// `benches/replay-throughput` (`--checksum auto` against `--checksum off`).
fn frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&[10, 20, 0, 30, 10, 20, 0, 10]);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&11112u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Counts delivered bytes; the cheapest possible consumer, so the bench measures reassembly.
#[derive(Default)]
struct CountingHandler {
    bytes: u64,
}

impl StreamHandler<()> for CountingHandler {
    fn on_chunk(&mut self, _: &mut (), _: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
        if let pacstap_core::ChunkBody::Data(d) = chunk.body {
            self.bytes += d.len() as u64;
        }
        Interest::Continue
    }
    fn on_flow_end(&mut self, _: (), _: &FlowMeta, _: CloseReason, _: Timestamp) {}
}

fn segments(n: usize, swap_pairs: bool) -> Vec<Vec<u8>> {
    let payload = vec![0x5au8; MSS];
    let mut v = vec![frame(999, 0x02, &[])];
    let mut data: Vec<Vec<u8>> = (0..n).map(|i| frame(1000 + (i * MSS) as u32, 0x18, &payload)).collect();
    if swap_pairs {
        for pair in data.chunks_mut(2) {
            pair.reverse();
        }
    }
    v.extend(data);
    v
}

/// An outer Ethernet / IPv4 header around `payload` (IP protocol `protocol`).
fn outer_ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 3, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        protocol,
        0,
        0,
    ]);
    f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    f.extend_from_slice(payload);
    f
}

/// The same 1514-byte frame as a mirror delivers it: VXLAN (RFC 7348), GRE transparent
/// bridging with a key (RFC 2784/2890), ERSPAN II (draft-foschiano-erspan), MPLS-labelled IP.
fn tunnelled(inner: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut vxlan = vec![0xc0, 0x00, 0x12, 0xb5];
    vxlan.extend_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    vxlan.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0, 1, 0]);
    vxlan.extend_from_slice(inner);
    let mut gre = vec![0x20, 0, 0x65, 0x58, 0, 0, 0, 1];
    gre.extend_from_slice(inner);
    let mut erspan = vec![0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x64, 0, 0x2a, 0, 0, 0, 0];
    erspan.extend_from_slice(inner);
    let mut mpls = vec![
        0x02, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 3, 0x88, 0x47, 0x00, 0x3e, 0x81, 0x40,
    ];
    mpls.extend_from_slice(&inner[14..]);
    vec![
        ("decode_vxlan_1564", outer_ipv4(17, &vxlan)),
        ("decode_gre_teb_1556", outer_ipv4(47, &gre)),
        ("decode_erspan_ii_1564", outer_ipv4(47, &erspan)),
        ("decode_mpls_ipv4_1504", mpls),
    ]
}

fn bench_wire(c: &mut Criterion) {
    let f = frame(1, 0x18, &[0u8; MSS]);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(f.len() as u64));
    g.bench_function("decode_eth_ipv4_tcp_1514", |b| {
        let mut dec = WireDecoder::new();
        b.iter(|| black_box(dec.decode(Timestamp(1), 1, black_box(&f)).map(|p| p.payload.len())))
    });
    for (name, t) in tunnelled(&f) {
        assert_eq!(
            WireDecoder::new().decode(Timestamp(1), 1, &t).map(|p| p.payload.len()),
            Some(MSS),
            "{name}"
        );
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function(name, |b| {
            let mut dec = WireDecoder::new();
            b.iter(|| black_box(dec.decode(Timestamp(1), 1, black_box(&t)).map(|p| p.payload.len())))
        });
    }
    g.finish();
}

fn bench_reassembly(c: &mut Criterion) {
    let mut g = c.benchmark_group("reassembly");
    for (name, swap) in [("in_order", false), ("pairs_swapped", true)] {
        let frames = segments(2000, swap);
        g.throughput(Throughput::Bytes((2000 * MSS) as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let cfg = FlowConfig {
                        checksum: ChecksumMode::Off,
                        ..FlowConfig::default()
                    };
                    (FlowTable::<()>::new(cfg), WireDecoder::new())
                },
                |(mut table, mut dec)| {
                    let mut h = CountingHandler::default();
                    for f in &frames {
                        if let Some(p) = dec.decode(Timestamp(1), 1, f) {
                            table.process(&p, &mut h);
                        }
                    }
                    black_box(h.bytes)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// The whole pipeline (capture → events) on the bundled real C-STORE capture, events discarded.
fn bench_replay_sample(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcap-samples/store.pcap");
    let Ok(meta) = std::fs::metadata(&path) else {
        eprintln!("skipping replay bench: {} missing", path.display());
        return;
    };
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Bytes(meta.len()));
    g.sample_size(20);
    g.bench_function("store_pcap", |b| {
        b.iter(|| {
            let report = pacstap::replay(pacstap::ReplayOptions::new(vec![path.clone()]), false).expect("replay");
            black_box(report.summary.associations())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_wire, bench_reassembly, bench_replay_sample);
criterion_main!(benches);
