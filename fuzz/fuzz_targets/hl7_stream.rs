//! The whole analyzer on an HL7 port fed a hostile conversation: the input is cut into chunks
//! of both directions (and gaps, and half-closes) by its own bytes, the way reassembly would
//! deliver them. Never panics; every event it emits can be formatted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::*;
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let meta = FlowMeta {
        id: FlowId(1),
        client: Endpoint::new(ip, 50000),
        server: Endpoint::new(ip, 2575),
        start: Timestamp(0),
        handshake_seen: true,
    };
    let mut cfg = ProtoConfig::default();
    // Small caps so the fuzzer reaches them.
    cfg.hl7.max_message_bytes = 4096;
    cfg.hl7.max_kept_bytes = 512;
    cfg.hl7.max_outstanding = 4;
    let mut an = Analyzer::new(cfg);
    let mut state = FlowState::default();
    let mut offsets = [0u64; 2];
    let mut rest = data;
    let mut i = 0i64;
    // Each record: 1 control byte (direction, gap / close flags) + 1 length byte, then that many bytes.
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], usize::from(rest[1]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let dir = if ctl & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let body = if ctl & 0x80 != 0 {
            ChunkBody::Gap(u64::from(ctl & 0x3f) + 1)
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
        if an.on_chunk(&mut state, &meta, c) == Interest::Ignore {
            break;
        }
    }
    an.on_flow_end(state, &meta, CloseReason::EndOfCapture, Timestamp(i));
    for ev in an.drain_events() {
        let _ = format!("{ev:?}");
    }
});
