//! Criterion benches of IP defragmentation: the fragments of the bundled real fragmented
//! capture through the defragmenter alone, the whole replay of that capture next to the same
//! exchange captured whole (what fragments cost end to end), and a flood of first fragments
//! that never complete (eviction under the memory cap).
//!
//! Run: `cargo bench --bench defrag`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pacstap_capture::PacketSource;
use pacstap_core::Timestamp;
use pacstap_defrag::{DefragConfig, Defragmenter};
use std::hint::black_box;
use std::path::PathBuf;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pcap-samples/fragments")
        .join(name)
}

/// The IP fragments of a capture, with their packet times.
fn fragments(name: &str) -> Vec<(Timestamp, Vec<u8>)> {
    let mut src = pacstap_capture::PcapFileSource::open(&sample(name)).expect("sample");
    let mut out = Vec::new();
    while let Some(f) = src.next_frame() {
        if let Some(frag) = pacstap_wire::decode_frame(f.ts, f.linktype, f.data).fragment {
            out.push((f.ts, frag.to_vec()));
        }
    }
    out
}

fn defrag(c: &mut Criterion) {
    let frags = fragments("dicom-store-fragmented.pcap");
    let bytes: usize = frags.iter().map(|f| f.1.len()).sum();
    let mut g = c.benchmark_group("defrag");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("real_dicom_fragments", |b| {
        b.iter(|| {
            let mut d = Defragmenter::new(DefragConfig::default());
            let mut n = 0;
            for (ts, f) in &frags {
                n += d.push(*ts, f).map_or(0, |dg| dg.len());
            }
            black_box(n)
        })
    });

    // 10,000 first fragments of distinct datagrams under a 1 MiB cap: each push evicts.
    let mut first = frags.first().expect("a fragment").1.clone();
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("flood_of_first_fragments", |b| {
        b.iter(|| {
            let mut d = Defragmenter::new(DefragConfig {
                memory: 1 << 20,
                ..DefragConfig::default()
            });
            for i in 0..10_000u16 {
                first[4..6].copy_from_slice(&i.to_be_bytes());
                black_box(d.push(Timestamp(0), &first));
            }
            black_box(d.stats().evicted)
        })
    });

    for name in ["dicom-store.pcap", "dicom-store-fragmented.pcap"] {
        let len = std::fs::metadata(sample(name)).map(|m| m.len()).unwrap_or(0);
        g.throughput(Throughput::Bytes(len));
        g.bench_function(format!("replay/{name}"), |b| {
            b.iter(|| {
                let r = pacstap::replay(pacstap::ReplayOptions::new(vec![sample(name)]), false).expect("replay");
                black_box(r.events_written)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, defrag);
criterion_main!(benches);
