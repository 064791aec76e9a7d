//! Criterion benches of the DICOM decoder: PDU header split, command set scan, data set
//! sniff, and the whole analyzer over the real C-STORE conversation of pcap-samples/store.pcap.
//!
//! Run: `cargo bench --bench dicom`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pacstap_capture::{MergedSource, PacketSource};
use pacstap_core::*;
use pacstap_flow::{FlowConfig, FlowTable};
use pacstap_proto::dicom::{parse_command_set, parse_pdu_header, sniff_dataset, TransferSyntax};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use pacstap_wire::WireDecoder;
use std::hint::black_box;
use std::path::PathBuf;

/// One implicit-VR-LE element (tag, value), padded to even length.
fn implicit(out: &mut Vec<u8>, group: u16, element: u16, value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(&v);
}

/// One explicit-VR-LE element with a short (2-byte) length.
fn explicit(out: &mut Vec<u8>, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    out.extend_from_slice(&v);
}

/// A C-STORE-RQ command set (PS3.7 §9.3.1.1), group length first.
fn store_command() -> Vec<u8> {
    let mut body = Vec::new();
    implicit(&mut body, 0x0000, 0x0002, b"1.2.840.10008.5.1.4.1.1.2");
    implicit(&mut body, 0x0000, 0x0100, &1u16.to_le_bytes());
    implicit(&mut body, 0x0000, 0x0110, &7u16.to_le_bytes());
    implicit(&mut body, 0x0000, 0x0700, &0u16.to_le_bytes());
    implicit(&mut body, 0x0000, 0x0800, &0u16.to_le_bytes());
    implicit(&mut body, 0x0000, 0x1000, b"1.2.826.0.1.3680043.10.1234.1.1.1.1");
    let mut cmd = Vec::new();
    implicit(&mut cmd, 0x0000, 0x0000, &(body.len() as u32).to_le_bytes());
    cmd.extend_from_slice(&body);
    cmd
}

/// The head of a CT data set as a modality sends it.
fn ct_dataset() -> Vec<u8> {
    let mut d = Vec::new();
    explicit(&mut d, 0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2");
    explicit(&mut d, 0x0008, 0x0018, b"UI", b"1.2.826.0.1.3680043.10.1234.1.1.1.1");
    explicit(&mut d, 0x0008, 0x0020, b"DA", b"20261127");
    explicit(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    explicit(&mut d, 0x0008, 0x1030, b"LO", b"CT CHEST WITHOUT CONTRAST");
    explicit(&mut d, 0x0010, 0x0010, b"PN", b"SYNTH^ALPHA");
    explicit(&mut d, 0x0010, 0x0020, b"LO", b"SYN0001");
    explicit(&mut d, 0x0020, 0x000D, b"UI", b"1.2.826.0.1.3680043.10.1234.1.1");
    explicit(&mut d, 0x0020, 0x000E, b"UI", b"1.2.826.0.1.3680043.10.1234.1.1.1");
    d.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0, 0, 0x20, 0]);
    d
}

/// Every reassembled chunk of store.pcap, captured once so the bench measures the analyzer.
struct Recorder {
    chunks: Vec<(FlowMeta, Direction, u64, Option<Vec<u8>>)>,
}

impl StreamHandler<()> for Recorder {
    fn on_chunk(&mut self, _: &mut (), meta: &FlowMeta, c: StreamChunk<'_>) -> Interest {
        if let ChunkBody::Data(d) = c.body {
            self.chunks.push((*meta, c.dir, c.offset, Some(d.to_vec())));
        }
        Interest::Continue
    }
    fn on_flow_end(&mut self, _: (), meta: &FlowMeta, _: CloseReason, _: Timestamp) {
        self.chunks.push((*meta, Direction::ToServer, 0, None));
    }
}

#[allow(clippy::type_complexity)]
fn store_chunks() -> Option<Vec<(FlowMeta, Direction, u64, Option<Vec<u8>>)>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcap-samples/store.pcap");
    let mut src = MergedSource::open(&[path]).ok()?;
    let mut wire = WireDecoder::new();
    let mut table: FlowTable<()> = FlowTable::new(FlowConfig::default());
    let mut rec = Recorder { chunks: Vec::new() };
    let mut last = Timestamp::ZERO;
    while let Some(f) = src.next_frame() {
        last = f.ts;
        if let Some(p) = wire.decode(f.ts, f.linktype, f.data) {
            table.process(&p, &mut rec);
        }
    }
    table.flush(last, &mut rec);
    Some(rec.chunks)
}

fn bench_parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("dicom");
    let pdata_header = [0x04u8, 0, 0, 0, 0x40, 0x00, 0, 0, 0x3f, 0xfc, 0x01, 0x00];
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_pdu_header", |b| {
        b.iter(|| black_box(parse_pdu_header(black_box(&pdata_header))))
    });
    let cmd = store_command();
    g.throughput(Throughput::Bytes(cmd.len() as u64));
    g.bench_function("parse_command_set_c_store_rq", |b| {
        b.iter(|| black_box(parse_command_set(black_box(&cmd)).map(|c| c.field().0)))
    });
    let ds = ct_dataset();
    g.throughput(Throughput::Bytes(ds.len() as u64));
    g.bench_function("sniff_dataset_explicit_le", |b| {
        b.iter(|| black_box(sniff_dataset(black_box(&ds), TransferSyntax::ExplicitVrLittleEndian, 64 << 10).facts()))
    });
    g.finish();
}

fn bench_analyzer(c: &mut Criterion) {
    let Some(chunks) = store_chunks() else {
        eprintln!("skipping analyzer bench: pcap-samples/store.pcap missing");
        return;
    };
    let bytes: u64 = chunks.iter().filter_map(|c| c.3.as_ref()).map(|d| d.len() as u64).sum();
    let mut g = c.benchmark_group("dicom");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("analyzer_store_pcap_chunks", |b| {
        b.iter(|| {
            let mut an = Analyzer::new(ProtoConfig::default());
            let mut st = FlowState::default();
            for (meta, dir, offset, data) in &chunks {
                match data {
                    Some(d) => {
                        let chunk = StreamChunk {
                            flow: meta.id,
                            dir: *dir,
                            ts: meta.start,
                            offset: *offset,
                            body: ChunkBody::Data(d),
                        };
                        let _ = an.on_chunk(&mut st, meta, chunk);
                    }
                    None => an.on_flow_end(std::mem::take(&mut st), meta, CloseReason::Fin, meta.start),
                }
            }
            black_box(an.drain_events().count())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parsers, bench_analyzer);
criterion_main!(benches);
