//! The test helpers of every protocol: a harness that drives the [`Analyzer`] like the flow
//! table does, deterministic garbage, and event accessors; per-protocol builders and vectors
//! in `testutil/<proto>.rs`; captured test data in `crates/proto/testdata/<proto>/` (each with
//! how it was made).

mod dicom;
pub mod tls;

pub use self::dicom::*;

use crate::{Analyzer, FlowState, ProtoConfig};
use pacstap_core::{
    ChunkBody, CloseReason, Direction, Endpoint, FlowId, FlowMeta, Interest, ProtocolEvent, StreamChunk, StreamHandler,
    Timestamp,
};
use std::net::{IpAddr, Ipv4Addr};

/// Deterministic pseudo-random numbers for the garbage loops (Knuth's MMIX LCG).
pub struct Lcg(pub u64);

impl Lcg {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

pub fn meta(client_port: u16, server_port: u16) -> FlowMeta {
    FlowMeta {
        id: FlowId(77),
        client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), client_port),
        server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), server_port),
        start: Timestamp(1_000_000_000),
        handshake_seen: true,
    }
}

/// Drives an [`Analyzer`] the way the flow table does. Time stands still unless a test moves
/// `ts`, so the same bytes cut differently give identical events.
pub struct Harness {
    pub an: Analyzer,
    pub st: FlowState,
    pub meta: FlowMeta,
    pub ts: i64,
    offsets: [u64; 2],
    pub last_interest: Interest,
    /// Events drained after every call.
    pub out: Vec<ProtocolEvent>,
}

impl Harness {
    pub fn new(cfg: ProtoConfig, client_port: u16, server_port: u16) -> Self {
        Harness {
            an: Analyzer::new(cfg),
            st: FlowState::default(),
            meta: meta(client_port, server_port),
            ts: 1_795_773_600_000_000_000,
            offsets: [0; 2],
            last_interest: Interest::Continue,
            out: Vec::new(),
        }
    }

    pub fn dicom() -> Self {
        Harness::new(ProtoConfig::default(), 50_000, 104)
    }

    fn chunk(&mut self, dir: Direction, body: ChunkBody<'_>) -> Interest {
        let offset = self.offsets[dir.index()];
        match body {
            ChunkBody::Data(d) => self.offsets[dir.index()] += d.len() as u64,
            ChunkBody::Gap(n) => self.offsets[dir.index()] += n,
            ChunkBody::Close(_) => {}
        }
        let chunk = StreamChunk {
            flow: self.meta.id,
            dir,
            ts: Timestamp(self.ts),
            offset,
            body,
        };
        let meta = self.meta;
        self.last_interest = self.an.on_chunk(&mut self.st, &meta, chunk);
        self.out.extend(self.an.drain_events());
        self.last_interest
    }

    pub fn data(&mut self, dir: Direction, bytes: &[u8]) -> Interest {
        self.chunk(dir, ChunkBody::Data(bytes))
    }

    /// Deliver `bytes` cut at the given offsets.
    pub fn data_split(&mut self, dir: Direction, bytes: &[u8], cuts: &[usize]) {
        let mut from = 0;
        for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let c = c.clamp(from, bytes.len());
            if c > from {
                let _ = self.data(dir, &bytes[from..c]);
            }
            from = c;
        }
    }

    pub fn gap(&mut self, dir: Direction, len: u64) -> Interest {
        self.chunk(dir, ChunkBody::Gap(len))
    }

    pub fn close(&mut self, dir: Direction, reason: CloseReason) -> Interest {
        self.chunk(dir, ChunkBody::Close(reason))
    }

    /// End the flow; returns every event of the run.
    pub fn end(&mut self, reason: CloseReason) -> Vec<ProtocolEvent> {
        let st = std::mem::take(&mut self.st);
        let meta = self.meta;
        self.an.on_flow_end(st, &meta, reason, Timestamp(self.ts));
        self.out.extend(self.an.drain_events());
        std::mem::take(&mut self.out)
    }

    /// Events so far (taken).
    pub fn events(&mut self) -> Vec<ProtocolEvent> {
        std::mem::take(&mut self.out)
    }
}

/// Flatten events into the DICOM bodies, for assertions.
pub fn dicom_bodies(events: &[ProtocolEvent]) -> Vec<pacstap_core::DicomEvent> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            pacstap_core::EventBody::Dicom(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

pub fn anomaly_names(events: &[ProtocolEvent]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            pacstap_core::EventBody::Anomaly(a) => Some(a.name),
            _ => None,
        })
        .collect()
}

/// One payload-carrying TCP segment of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Packet time, microseconds since the epoch.
    pub us: i64,
    pub dir: Direction,
    pub bytes: Vec<u8>,
}

/// The TCP connections of a capture in `crates/proto/testdata/` (all are classic
/// little-endian pcap, Ethernet, IPv4, as tcpdump writes them on `lo`), in order of their
/// first packet, each as its payload-carrying segments in capture order. `server_port` tells
/// the directions apart. The one reader every protocol's tests use: test data is always the
/// real capture, never an extract of it.
pub fn pcap_connections(pcap: &[u8], server_port: u16) -> Vec<Vec<Segment>> {
    let u32le = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    assert_eq!(u32le(pcap, 0), 0xa1b2_c3d4, "classic little-endian pcap (microseconds)");
    assert_eq!(u32le(pcap, 20), 1, "Ethernet");
    let mut conns: Vec<(u16, Vec<Segment>)> = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let us = i64::from(u32le(pcap, at)) * 1_000_000 + i64::from(u32le(pcap, at + 4));
        let len = u32le(pcap, at + 8) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        at += 16 + len;
        if frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 6 {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[ihl..total];
        let (sport, dport) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        let (client, dir) = if dport == server_port {
            (sport, Direction::ToServer)
        } else {
            (dport, Direction::ToClient)
        };
        let i = match conns.iter().position(|(p, _)| *p == client) {
            Some(i) => i,
            None => {
                conns.push((client, Vec::new()));
                conns.len() - 1
            }
        };
        if !payload.is_empty() {
            conns[i].1.push(Segment {
                us,
                dir,
                bytes: payload.to_vec(),
            });
        }
    }
    conns.into_iter().map(|(_, c)| c).collect()
}

/// One ZIP local file entry (PKWARE APPNOTE.TXT §4.3.7) holding `data`, deflated or stored;
/// with `descriptor` its sizes are left to a data descriptor (general purpose flag bit 3), as
/// a streaming writer does.
pub fn zip_entry(name: &str, data: &[u8], deflate: bool, descriptor: bool) -> Vec<u8> {
    use flate2::write::DeflateEncoder;
    use flate2::Compression;
    use std::io::Write;
    let stored = if deflate {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("in memory");
        e.finish().expect("in memory")
    } else {
        data.to_vec()
    };
    let mut h = b"PK\x03\x04".to_vec();
    h.extend_from_slice(&20u16.to_le_bytes());
    h.extend_from_slice(&(if descriptor { 8u16 } else { 0 }).to_le_bytes());
    h.extend_from_slice(&(if deflate { 8u16 } else { 0 }).to_le_bytes());
    h.extend_from_slice(&[0; 8]); // time, date, crc-32
    let size = if descriptor { 0 } else { stored.len() as u32 };
    h.extend_from_slice(&size.to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(&stored);
    h
}
