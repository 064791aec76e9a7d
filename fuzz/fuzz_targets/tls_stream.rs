//! The whole analyzer fed a hostile TLS conversation: the input is cut into chunks of both
//! directions (and gaps) by its own bytes, the way reassembly would deliver them, on a TLS
//! port (midstream pickup) or off it (content probe). Never panics; every event formats.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::*;
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let meta = FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(ip, 50000),
        server: Endpoint::new(ip, if selector & 1 == 0 { 443 } else { 9000 }),
        start: Timestamp(0),
        handshake_seen: true,
    };
    let mut an = Analyzer::new(ProtoConfig::default());
    let mut state = FlowState::default();
    let mut offsets = [0u64; 2];
    let mut i = 0i64;
    // Each record: 1 control byte (direction, gap flag) + 2 length bytes, then that many bytes.
    while rest.len() >= 3 {
        let (ctl, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let dir = if ctl & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let body = if ctl & 0x80 != 0 {
            ChunkBody::Gap(u64::from(ctl & 0x7f) * 97 + 1)
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
        if an.on_chunk(&mut state, &meta, c) == Interest::Ignore {
            break;
        }
    }
    an.on_flow_end(state, &meta, CloseReason::EndOfCapture, Timestamp(i));
    for ev in an.drain_events() {
        let _ = format!("{ev:?}");
    }
});
