//! Throughput of the wire decoder's fast path (Ethernet / IPv4 / TCP) and of its general path
//! (QinQ / IPv6), on full-size and minimum-size frames. Was `pacstap-wire`'s ignored test
//! `tests::throughput`.

use crate::Size;
use pacstap_core::Timestamp;
use pacstap_wire::{linktype, WireDecoder};

/// TCP header (ACK, no options) with `payload`; checksums zero (the wire layer does not check
/// them: the flow table does).
fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    t.extend_from_slice(&0x5566_7788u32.to_be_bytes());
    t.push(5 << 4);
    t.push(flags);
    t.extend_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

fn v4_tcp(payload: &[u8]) -> Vec<u8> {
    let seg = tcp(40000, 104, 0x18, payload);
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + seg.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(&seg);
    p
}

fn v6_tcp(payload: &[u8]) -> Vec<u8> {
    let seg = tcp(1, 2, 0x10, payload);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    p.extend_from_slice(&[6, 64]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&seg);
    p
}

/// Ethernet with the given VLAN tag protocol ids (outermost first).
fn eth(tags: &[u16], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn run(size: Size) {
    let cases = [
        ("eth/ipv4/tcp 1460", eth(&[], 0x0800, &v4_tcp(&[0x42; 1460]))),
        ("eth/ipv4/tcp 0", eth(&[], 0x0800, &v4_tcp(&[]))),
        (
            "qinq/ipv6/tcp 1440",
            eth(&[0x88a8, 0x8100], 0x86dd, &v6_tcp(&[7; 1440])),
        ),
        ("qinq/ipv6/tcp 0", eth(&[0x88a8, 0x8100], 0x86dd, &v6_tcp(&[]))),
    ];
    for (name, frame) in &cases {
        let mut d = WireDecoder::new();
        let n = size.pick(5_000_000, 1_000) as u64;
        let start = std::time::Instant::now();
        let mut sum = 0u64;
        for i in 0..n {
            let p = d.decode(Timestamp(i as i64), linktype::ETHERNET, std::hint::black_box(frame));
            sum += u64::from(std::hint::black_box(p).map_or(0, |p| p.wire_payload_len));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:>20} ({} B): {:6.1} ns/frame, {:6.2} GB/s (sum {sum})",
            frame.len(),
            secs * 1e9 / n as f64,
            (n * frame.len() as u64) as f64 / secs / 1e9
        );
        // Every frame decoded: a builder that drifted from what the decoder accepts would
        // otherwise measure the reject path.
        assert_eq!(d.stats.tcp, n, "{name}: not every frame decoded");
    }
}
