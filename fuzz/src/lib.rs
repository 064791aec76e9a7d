//! The harness the `*_stream` fuzz targets share: a hostile conversation, cut by the fuzz input
//! itself into chunks of both directions, gaps and half-closes — the way reassembly delivers
//! them — fed through the whole protocol analyzer.

use pacstap_core::*;
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::net::{IpAddr, Ipv4Addr};

/// How a target reads its input as a conversation.
pub struct Conversation {
    /// The server's port: a protocol's port makes the analyzer resync mid-stream; another port
    /// leaves the flow to the content probes.
    pub server_port: u16,
    /// Record lengths as 2 bytes (big endian) instead of 1, for protocols whose interesting
    /// units (TLS handshakes) are larger than 255 bytes.
    pub wide_lengths: bool,
    /// A gap record skips `(n + 1) * gap_unit` bytes.
    pub gap_unit: u64,
}

/// Feed `data` as a conversation: each record is a control byte (bit 0: direction, bit 7:
/// gap, bit 6: FIN of that direction), a length, then that many payload bytes. Never panics;
/// every event it emits must format.
pub fn feed(cfg: ProtoConfig, conv: &Conversation, data: &[u8]) {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let meta = FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(ip, 50000),
        server: Endpoint::new(ip, conv.server_port),
        start: Timestamp(0),
        handshake_seen: true,
    };
    let mut an = Analyzer::new(cfg);
    let mut state = FlowState::default();
    let mut offsets = [0u64; 2];
    let mut rest = data;
    let mut i = 0i64;
    let header = if conv.wide_lengths { 3 } else { 2 };
    while rest.len() >= header {
        let ctl = rest[0];
        let len = if conv.wide_lengths {
            usize::from(u16::from_be_bytes([rest[1], rest[2]]))
        } else {
            usize::from(rest[1])
        };
        rest = &rest[header..];
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        let dir = if ctl & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let body = if ctl & 0x80 != 0 {
            ChunkBody::Gap((u64::from(ctl & 0x3f) + 1) * conv.gap_unit)
        } else if ctl & 0x40 != 0 {
            ChunkBody::Close(CloseReason::Fin)
        } else {
            ChunkBody::Data(chunk)
        };
        let c = StreamChunk {
            flow: meta.id,
            dir,
            ts: Timestamp(i),
            offset: offsets[dir.index()],
            body,
        };
        offsets[dir.index()] += match body {
            ChunkBody::Data(d) => d.len() as u64,
            ChunkBody::Gap(g) => g,
            ChunkBody::Close(_) => 0,
        };
        i += 1;
        let interest = an.on_chunk(&mut state, &meta, c);
        // The decoder memory budget holds after every chunk.
        assert!(an.budget().used() <= an.budget().limit());
        if interest == Interest::Ignore {
            break;
        }
    }
    an.on_flow_end(state, &meta, CloseReason::EndOfCapture, Timestamp(i));
    // Everything a flow held returns to the budget when it ends.
    assert_eq!(an.budget().used(), 0);
    for ev in an.drain_events() {
        let _ = format!("{ev:?}");
    }
}
