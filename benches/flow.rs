//! Criterion benches of the flow stage's hot path on real traffic: the bundled C-STORE capture
//! (dcmtk storescu -> storescp, real checksums) decoded once, then fed through `FlowTable`
//! alone with every defence at its default (checksum auto, delivered history, ACK wait,
//! duplicate counting) and, for comparison, with checksum validation off and with no delivered
//! history. The synthetic reassembly benches in `decode.rs` run with zero checksums (validation
//! off), so they do not see what validation and the history cost.
//!
//! Run: `cargo bench --bench flow`. For the end-to-end number on the large capture, see
//! `benches/replay-throughput`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pacstap_capture::PacketSource;
use pacstap_core::{ChunkBody, CloseReason, FlowMeta, Interest, StreamChunk, StreamHandler, Timestamp};
use pacstap_flow::{ChecksumMode, FlowConfig, FlowTable};
use pacstap_wire::WireDecoder;
use std::hint::black_box;
use std::path::PathBuf;

/// Counts delivered bytes: the cheapest consumer, so the bench measures the flow stage.
#[derive(Default)]
struct CountingHandler {
    bytes: u64,
}

impl StreamHandler<()> for CountingHandler {
    fn on_chunk(&mut self, _: &mut (), _: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
        if let ChunkBody::Data(d) = chunk.body {
            self.bytes += d.len() as u64;
        }
        Interest::Continue
    }
    fn on_flow_end(&mut self, _: (), _: &FlowMeta, _: CloseReason, _: Timestamp) {}
}

/// The frames of a bundled capture (time, link type, bytes).
fn frames(name: &str) -> Vec<(Timestamp, u32, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pcap-samples")
        .join(name);
    let mut src = pacstap_capture::PcapFileSource::open(&path).expect("sample");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame() {
        out.push((f.ts, f.linktype, f.data.to_vec()));
    }
    out
}

fn bench_flow(c: &mut Criterion) {
    let frames = frames("store.pcap");
    let payload: u64 = {
        let mut dec = WireDecoder::new();
        frames
            .iter()
            .filter_map(|(ts, lt, f)| dec.decode(*ts, *lt, f))
            .map(|p| p.payload.len() as u64)
            .sum()
    };
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Bytes(payload));
    let configs = [
        ("store_pcap/defaults", FlowConfig::default()),
        (
            "store_pcap/checksum_off",
            FlowConfig {
                checksum: ChecksumMode::Off,
                ..FlowConfig::default()
            },
        ),
        (
            "store_pcap/no_history",
            FlowConfig {
                delivered_history_bytes: 0,
                ..FlowConfig::default()
            },
        ),
    ];
    for (name, cfg) in configs {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (FlowTable::<()>::new(cfg.clone()), WireDecoder::new()),
                |(mut table, mut dec)| {
                    let mut h = CountingHandler::default();
                    for (ts, lt, f) in &frames {
                        if let Some(p) = dec.decode(*ts, *lt, f) {
                            table.process(&p, &mut h);
                        }
                    }
                    table.flush(Timestamp(i64::MAX), &mut h);
                    assert_eq!(table.stats().bad_checksums, 0);
                    black_box(h.bytes)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
