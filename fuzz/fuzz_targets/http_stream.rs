//! The whole analyzer fed a hostile HTTP conversation: the first byte picks the port (an HTTP
//! port, so midstream resync runs, or another one, so only content claims the flow); the rest
//! is cut into chunks of both directions, gaps and half-closes by its own bytes, the way
//! reassembly would deliver them. Never panics; every event formats.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::*;
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let meta = FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(ip, 50000),
        server: Endpoint::new(ip, if sel & 1 == 0 { 8042 } else { 9000 }),
        start: Timestamp(0),
        handshake_seen: true,
    };
    let mut cfg = ProtoConfig::default();
    if sel & 2 != 0 {
        // Small caps reach the cap paths with small inputs.
        cfg.http.max_header_bytes = 256;
        cfg.http.max_pending_requests = 4;
        cfg.http.max_url_chars = 16;
    }
    let mut an = Analyzer::new(cfg);
    let mut state = FlowState::default();
    let mut offsets = [0u64; 2];
    let mut i = 0i64;
    // Each record: 1 control byte (direction, gap flag, close flag) + 1 length byte, then that many bytes.
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let dir = if ctl & 1 == 0 { Direction::ToServer } else { Direction::ToClient };
        let body = if ctl & 0x80 != 0 {
            ChunkBody::Gap(u64::from(ctl & 0x3f) + 1)
        } else if ctl & 0x40 != 0 {
            ChunkBody::Close(CloseReason::Fin)
        } else {
            ChunkBody::Data(chunk)
        };
        let c = StreamChunk { flow: meta.id, dir, ts: Timestamp(i), offset: offsets[dir.index()], body };
        offsets[dir.index()] += match body {
            ChunkBody::Data(d) => d.len() as u64,
            ChunkBody::Gap(g) => g,
            ChunkBody::Close(_) => 0,
        };
        i += 1;
        if an.on_chunk(&mut state, &meta, c) == Interest::Ignore {
            break;
        }
    }
    an.on_flow_end(state, &meta, CloseReason::EndOfCapture, Timestamp(i));
    for ev in an.drain_events() {
        let _ = format!("{ev:?}");
    }
});
