//! A sequence of hostile TCP segments on a few flows, interpreted from the fuzz input: the
//! reassembler never panics, never delivers more bytes than the segments carried plus gaps,
//! and keeps its memory accounting within the configured caps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::*;
use pacstap_flow::{FlowConfig, FlowTable};
use std::net::{IpAddr, Ipv4Addr};

struct Sink {
    data: u64,
}

impl StreamHandler<()> for Sink {
    fn on_chunk(&mut self, _: &mut (), _: &FlowMeta, chunk: StreamChunk<'_>) -> Interest {
        if let ChunkBody::Data(d) = chunk.body {
            self.data += d.len() as u64;
        }
        Interest::Continue
    }
    fn on_flow_end(&mut self, _: (), _: &FlowMeta, _: CloseReason, _: Timestamp) {}
}

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig {
        max_flows: 4,
        max_buffered_bytes_per_dir: 4096,
        max_buffered_bytes_total: 8192,
        max_holes_per_dir: 4,
        ..FlowConfig::default()
    };
    let mut table: FlowTable<()> = FlowTable::new(cfg);
    let mut sink = Sink { data: 0 };
    let mut sent = 0u64;
    let payload = [0xabu8; 256];
    // Each segment: 12 bytes of header material from the input.
    for (i, rec) in data.chunks_exact(12).enumerate() {
        let port_a = 1000 + u16::from(rec[0] & 3);
        let (src, dst) = if rec[1] & 1 == 0 { (port_a, 104) } else { (104, port_a) };
        let seq = u32::from_le_bytes([rec[2], rec[3], rec[4], rec[5]]);
        let ack = u32::from_le_bytes([rec[6], rec[7], rec[8], rec[9]]);
        let len = usize::from(rec[10]);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pkt = Packet {
            ts: Timestamp::from_secs_nanos(i as u64, 0),
            key: FlowKey {
                src: Endpoint::new(ip, src),
                dst: Endpoint::new(ip, dst),
            },
            tcp: TcpHeader {
                seq,
                ack,
                flags: TcpFlags(rec[11]),
                window: 0,
            },
            payload: &payload[..len],
            ip_header: &[],
            tcp_header: &[],
            wire_payload_len: len as u32,
        };
        sent += len as u64;
        table.process(&pkt, &mut sink);
    }
    table.flush(Timestamp::from_secs_nanos(1 << 20, 0), &mut sink);
    assert!(sink.data <= sent, "delivered {} > sent {}", sink.data, sent);
    assert_eq!(table.active_flows(), 0);
});
