//! The DICOM analyzer's throughput on bulk C-STOREs: 64 data sets of 1 MiB, each in 16 KiB
//! P-DATA-TF PDUs, delivered as 1448-byte chunks (MSS-sized, as the flow table hands them
//! over), 16 rounds. Was `pacstap-proto`'s ignored test `dicom::tests::throughput`; the PDUs
//! are built here with dicom-ul as that crate's test helpers build them.

use crate::Size;
use dicom_ul::pdu::{
    self as ul, AssociationAC, AssociationRQ, Pdu, PresentationContextProposed, PresentationContextResult,
    PresentationContextResultReason, UserVariableItem,
};
use pacstap_core::{ChunkBody, Direction, Endpoint, FlowId, FlowMeta, StreamChunk, StreamHandler, Timestamp};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::net::{IpAddr, Ipv4Addr};

const CT_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const STUDY: &str = "1.2.826.0.1.3680043.2.1125.1";

fn write(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    ul::write_pdu(&mut out, pdu).expect("PDU encodes");
    out
}

/// A-ASSOCIATE-RQ MODALITY1 → PACS proposing CT Image Storage in explicit VR little endian.
fn associate_rq() -> Vec<u8> {
    write(&Pdu::AssociationRQ(AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "MODALITY1".into(),
        called_ae_title: "PACS".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: vec![PresentationContextProposed {
            id: 1,
            abstract_syntax: CT_STORAGE.into(),
            transfer_syntaxes: vec![EXPLICIT_LE.into()],
        }],
        user_variables: vec![
            UserVariableItem::MaxLength(16384),
            UserVariableItem::ImplementationClassUID("1.2.826.0.1.3680043.9.7433.1".into()),
        ],
    }))
}

/// A-ASSOCIATE-AC accepting that context.
fn associate_ac() -> Vec<u8> {
    write(&Pdu::AssociationAC(AssociationAC {
        protocol_version: 1,
        calling_ae_title: "MODALITY1".into(),
        called_ae_title: "PACS".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: vec![PresentationContextResult {
            id: 1,
            reason: PresentationContextResultReason::Acceptance,
            transfer_syntax: EXPLICIT_LE.into(),
        }],
        user_variables: vec![UserVariableItem::MaxLength(16384)],
    }))
}

/// P-DATA-TF with one PDV on context 1.
fn pdata(mch: u8, v: &[u8]) -> Vec<u8> {
    let mut out = vec![4, 0];
    out.extend_from_slice(&((6 + v.len()) as u32).to_be_bytes());
    out.extend_from_slice(&((v.len() + 2) as u32).to_be_bytes());
    out.extend_from_slice(&[1, mch]);
    out.extend_from_slice(v);
    out
}

/// One implicit-VR-LE command element; values padded to even length with NUL.
fn element(out: &mut Vec<u8>, el: u16, value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&el.to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(&v);
}

/// C-STORE-RQ command set (PS3.7 §9.3.1.1), group length first.
fn cmd_store_rq(id: u16, sop_instance: &str) -> Vec<u8> {
    let mut body = Vec::new();
    element(&mut body, 0x0002, CT_STORAGE.as_bytes());
    element(&mut body, 0x0100, &1u16.to_le_bytes());
    element(&mut body, 0x0110, &id.to_le_bytes());
    element(&mut body, 0x0700, &0u16.to_le_bytes());
    element(&mut body, 0x0800, &0u16.to_le_bytes());
    element(&mut body, 0x1000, sop_instance.as_bytes());
    let mut out = Vec::new();
    element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// One explicit-VR-LE data set element (OW with the 4-byte length form).
fn explicit(out: &mut Vec<u8>, group: u16, el: u16, vr: &[u8; 2], value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&el.to_le_bytes());
    out.extend_from_slice(vr);
    if vr == b"OW" {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&v);
}

/// A CT data set with `pixel_len` bytes of pixel data (synthetic patient).
fn store_dataset(sop_instance: &str, pixel_len: usize) -> Vec<u8> {
    let mut d = Vec::new();
    explicit(&mut d, 0x0008, 0x0016, b"UI", CT_STORAGE.as_bytes());
    explicit(&mut d, 0x0008, 0x0018, b"UI", sop_instance.as_bytes());
    explicit(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    explicit(&mut d, 0x0010, 0x0010, b"PN", b"SYNTH^ALPHA");
    explicit(&mut d, 0x0010, 0x0020, b"LO", b"SYN0001");
    explicit(&mut d, 0x0020, 0x000D, b"UI", STUDY.as_bytes());
    explicit(&mut d, 0x7FE0, 0x0010, b"OW", &vec![0xA5; pixel_len]);
    d
}

/// Drives the analyzer as the flow table does: consecutive offsets per direction, events
/// drained after every chunk.
struct Feed {
    an: Analyzer,
    st: FlowState,
    meta: FlowMeta,
    offsets: [u64; 2],
    events: usize,
}

impl Feed {
    fn data(&mut self, dir: Direction, bytes: &[u8]) {
        let i = usize::from(dir == Direction::ToClient);
        let offset = self.offsets[i];
        self.offsets[i] += bytes.len() as u64;
        let chunk = StreamChunk {
            flow: self.meta.id,
            dir,
            ts: Timestamp(1_795_773_600_000_000_000),
            offset,
            body: ChunkBody::Data(bytes),
        };
        let meta = self.meta;
        let _ = self.an.on_chunk(&mut self.st, &meta, chunk);
        self.events += self.an.drain_events().count();
    }
}

pub fn run(size: Size) {
    let mut h = Feed {
        an: Analyzer::new(ProtoConfig::default()),
        st: FlowState::default(),
        meta: FlowMeta {
            id: FlowId(77),
            client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50_000),
            server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 104),
            start: Timestamp(1_000_000_000),
            handshake_seen: true,
        },
        offsets: [0; 2],
        events: 0,
    };
    h.data(Direction::ToServer, &associate_rq());
    h.data(Direction::ToClient, &associate_ac());
    // 1 MiB C-STOREs in 16 KiB PDUs, delivered as 1448-byte segments (MSS-sized chunks).
    let mut msg = Vec::new();
    for id in 0..size.pick(64, 2) as u16 {
        let ds = store_dataset("1.2.3.1", size.pick(1 << 20, 64 << 10));
        msg.extend(pdata(3, &cmd_store_rq(id, "1.2.3.1")));
        let frags: Vec<&[u8]> = ds.chunks(16 << 10).collect();
        for (i, f) in frags.iter().enumerate() {
            msg.extend(pdata(if i + 1 == frags.len() { 2 } else { 0 }, f));
        }
    }
    let rounds = size.pick(16, 1);
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for seg in msg.chunks(1448) {
            h.data(Direction::ToServer, seg);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = (msg.len() * rounds) as f64;
    println!(
        "{:.0} MB/s over {:.0} MB ({} events)",
        bytes / secs / 1e6,
        bytes / 1e6,
        h.events
    );
}
