//! A sequence of hostile TCP segments on a few flows, interpreted from the fuzz input: the
//! reassembler never panics, never delivers more bytes than the segments carried plus gaps,
//! keeps its memory accounting within the configured caps (reassembly buffers and delivered-
//! bytes histories), and emits at most its per-flow share of `tcp.*` anomaly events. The
//! input also picks the checksum mode, raw header bytes for the checksum, window-scale,
//! timestamp (PAWS) and urgent-pointer parsers, IP headers whose TTL may fall below the flow's
//! (segments held for it), and timestamps that jump far ahead and back (the guarded clock).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::*;
use pacstap_flow::{ChecksumMode, FlowConfig, FlowTable};
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
    let Some((&mode, data)) = data.split_first() else { return };
    let cfg = FlowConfig {
        max_flows: 4,
        max_buffered_bytes_per_dir: 4096,
        max_buffered_bytes_total: 8192,
        max_holes_per_dir: 4,
        delivered_history_bytes: 64,
        delivered_history_total: 192,
        checksum: match mode % 3 {
            0 => ChecksumMode::Auto,
            1 => ChecksumMode::On,
            _ => ChecksumMode::Off,
        },
        ..FlowConfig::default()
    };
    let cap_events = u64::from(cfg.max_anomaly_events_per_flow);
    let mut table: FlowTable<()> = FlowTable::new(cfg);
    let mut sink = Sink { data: 0 };
    let mut sent = 0u64;
    let mut events = 0u64;
    let payload = [0xabu8; 256];
    let mut ts = 1u64 << 20;
    // Each segment: 16 bytes of header material from the input.
    for rec in data.chunks_exact(16) {
        let port_a = 1000 + u16::from(rec[0] & 3);
        let (src, dst) = if rec[1] & 1 == 0 { (port_a, 104) } else { (104, port_a) };
        let seq = u32::from_le_bytes([rec[2], rec[3], rec[4], rec[5]]);
        let ack = u32::from_le_bytes([rec[6], rec[7], rec[8], rec[9]]);
        let len = usize::from(rec[10]);
        // Mostly small steps; sometimes years ahead, sometimes back.
        ts = match rec[12] >> 5 {
            0 => ts.wrapping_add(u64::from(rec[13]) << 40),
            1 => ts.saturating_sub(u64::from(rec[13])),
            _ => ts + u64::from(rec[13]),
        };
        // Raw header bytes straight from the input: the checksum and option parsers read them,
        // and the urgent pointer (bytes 18-19, small so it lands in or near the payload).
        // Options (bytes 20-31) from the input too: timestamps for the PAWS check.
        let mut hdr = [0u8; 32];
        hdr[..16].copy_from_slice(rec);
        hdr[16..18].copy_from_slice(&rec[..2]);
        hdr[18..20].copy_from_slice(&u16::from(rec[13] >> 3).to_be_bytes());
        hdr[20..32].copy_from_slice(&rec[4..16]);
        let hdr_len = usize::from(rec[14] & 0x3f).min(hdr.len());
        let tcp_header = &hdr[..hdr_len];
        let ip_header = if rec[15] & 1 == 0 { &rec[..usize::from(rec[15] >> 3).min(16)] } else { &[][..] };
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pkt = Packet {
            ts: Timestamp::from_secs_nanos(ts.min(1 << 40), 0),
            key: FlowKey {
                src: Endpoint::new(ip, src),
                dst: Endpoint::new(ip, dst),
            },
            tcp: TcpHeader {
                seq,
                ack,
                flags: TcpFlags(rec[11]),
                window: u16::from_le_bytes([rec[12], rec[13]]),
            },
            payload: &payload[..len],
            ip_header,
            tcp_header,
            wire_payload_len: len as u32,
        };
        sent += len as u64;
        table.process(&pkt, &mut sink);
        events += table.drain_events().count() as u64;
        let st = table.stats();
        assert!(st.buffered_bytes <= 8192, "buffered {}", st.buffered_bytes);
        assert!(st.history_bytes <= 192, "history {}", st.history_bytes);
    }
    table.flush(Timestamp::from_secs_nanos(1 << 41, 0), &mut sink);
    events += table.drain_events().count() as u64;
    let st = table.stats();
    assert!(sink.data <= sent, "delivered {} > sent {}", sink.data, sent);
    assert_eq!(table.active_flows(), 0);
    assert_eq!((st.buffered_bytes, st.history_bytes), (0, 0));
    assert_eq!(st.flows_created, st.flows_ended);
    assert!(events <= st.flows_created * cap_events + cap_events, "{events} anomaly events");
});
