//! A sequence of IP fragments from arbitrary bytes: the defragmenter never panics, never holds
//! more than its memory cap after any push, and what it returns is one well-formed IP packet.
//!
//! Each record is either raw bytes handed over as a "fragment" (header parsing) or a fragment
//! synthesized from a few fuzzer-chosen fields (identification, offset, More Fragments, length,
//! IPv4 or IPv6), so the fuzzer spends its time in reassembly — overlaps, duplicates, ends,
//! evictions, timeouts — rather than in header checks. The synthesized fragments carry TCP, UDP
//! (to a tunnel port or not: only tunnels are held) or GRE (held only when the config says so).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::Timestamp;
use pacstap_defrag::{DefragConfig, Defragmenter};
use std::time::Duration;

fn v4(id: u8, proto: u8, offset8: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + data.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, id]);
    p.extend_from_slice(&((u16::from(more) << 13) | (offset8 & 0x1fff)).to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(data);
    p
}

fn v6(id: u8, proto: u8, offset8: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
    p.extend_from_slice(&[44, 64]);
    p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[proto, 0]);
    p.extend_from_slice(&(((offset8 & 0x1fff) << 3) | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, id]);
    p.extend_from_slice(data);
    p
}

fuzz_target!(|input: &[u8]| {
    let Some((&cfg, mut rest)) = input.split_first() else { return };
    // A small cap so eviction is reached; a short timeout so expiry is.
    let config = DefragConfig {
        memory: 512 + usize::from(cfg) * 64,
        timeout_v4: Duration::from_secs(2),
        timeout_v6: Duration::from_secs(3),
        max_fragments: 1 + usize::from(cfg % 16),
        tunnel_udp_ports: vec![4789, 6081],
        gre: cfg & 0x80 == 0,
    };
    let cap = config.memory;
    let mut d = Defragmenter::new(config);
    let mut ts = 0i64;
    while let [kind, a, b, c, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (data, next) = tail.split_at(len);
        rest = next;
        ts += i64::from(*c & 0x0f) * 300_000_000;
        let offset8 = u16::from_be_bytes([*a, *b]) % 64;
        let more = c & 0x80 != 0;
        // TCP mostly; UDP (whose first fragment's destination port decides: 4789 held, others
        // dropped) and GRE too.
        let proto = match (c >> 4) & 7 {
            0..=4 => 6,
            5 | 6 => 17,
            _ => 47,
        };
        let packet = match kind % 4 {
            0 => data.to_vec(),
            1 | 2 => v4(*kind >> 4, proto, offset8, more, data),
            _ => v6(*kind >> 4, proto, offset8, more, data),
        };
        if let Some(dg) = d.push(Timestamp(ts), &packet) {
            assert!(dg.len() <= 65_535 + 40);
            let decoded = pacstap_wire::decode_frame(Timestamp(ts), pacstap_wire::linktype::RAW, &dg);
            assert!(decoded.fragment.is_none(), "a reassembled datagram is no fragment");
        }
        assert!(d.held_bytes() <= cap, "{} > {cap}", d.held_bytes());
        assert_eq!(d.stats().held_bytes as usize, d.held_bytes());
    }
});
