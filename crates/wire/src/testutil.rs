//! Frame builders for the unit tests, byte by byte from the RFCs.
#![allow(dead_code)]

use crate::{decode_frame_with, Decoded, WireConfig, WireDecoder, WireStats};
use pacstap_core::{Endpoint, Packet, TcpFlags, TcpHeader, Timestamp};
use std::net::{IpAddr, Ipv4Addr};

pub(crate) const TS: Timestamp = Timestamp(1_700_000_000_000_000_000);
pub(crate) const A4: [u8; 4] = [10, 0, 0, 1];
pub(crate) const B4: [u8; 4] = [10, 0, 0, 2];
pub(crate) const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(crate) const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub(crate) const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;

// ---- frame builders, byte by byte from the RFCs ----

/// TCP header (RFC 9293 §3.1) with `opts` option bytes (a multiple of 4), then the payload.
pub(crate) fn tcp(sport: u16, dport: u16, flags: u8, opts: usize, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    t.extend_from_slice(&0x5566_7788u32.to_be_bytes());
    t.push((((20 + opts) / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.resize(t.len() + opts, 1); // NOPs
    t.extend_from_slice(payload);
    t
}

/// IPv4 header (RFC 791 §3.1) without options; `frag` is (more fragments, offset in 8-byte units).
pub(crate) fn ipv4(proto: u8, frag: (bool, u16), payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&((u16::from(frag.0) << 13) | frag.1).to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&A4);
    p.extend_from_slice(&B4);
    p.extend_from_slice(payload);
    p
}

/// IPv6 header (RFC 8200 §3); `exts` are (next header, bytes) of extension headers, in order.
pub(crate) fn ipv6(exts: &[(u8, Vec<u8>)], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, ext)) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |e| e.0);
        body.push(next);
        body.extend_from_slice(&ext[1..]);
    }
    body.extend_from_slice(payload);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.push(exts.first().map_or(proto, |e| e.0));
    p.push(64);
    p.extend_from_slice(&A6);
    p.extend_from_slice(&B6);
    p.extend_from_slice(&body);
    p
}

/// An 8-byte Hop-by-Hop or Destination Options header: PadN to fill (RFC 8200 §4.2).
pub(crate) fn opts_ext(kind: u8) -> (u8, Vec<u8>) {
    (kind, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

/// A Fragment header (RFC 8200 §4.5).
pub(crate) fn frag_ext(offset: u16, more: bool) -> (u8, Vec<u8>) {
    let v = (offset << 3) | u16::from(more);
    let [a, b] = v.to_be_bytes();
    (44, vec![0, 0, a, b, 0, 0, 0, 7])
}

/// Ethernet II (IEEE 802.3 §3.2.6) with VLAN tags (TPID, TCI) before the EtherType.
pub(crate) fn eth(tags: &[u16], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) fn sll(arphrd: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0];
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) fn sll2(arphrd: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
    f.extend_from_slice(&arphrd.to_be_bytes());
    f.extend_from_slice(&[4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(payload);
    f
}

pub(crate) fn v4_tcp(payload: &[u8]) -> Vec<u8> {
    ipv4(
        6,
        (false, 0),
        &tcp(40000, 104, TcpFlags::ACK | TcpFlags::PSH, 0, payload),
    )
}

pub(crate) fn decode_one(linktype: u32, frame: &[u8]) -> (Option<Packet<'_>>, WireStats) {
    let mut d = WireDecoder::new();
    let p = d.decode(TS, linktype, frame);
    (p, d.stats)
}

pub(crate) fn assert_v4_packet(p: &Packet<'_>, payload: &[u8]) {
    assert_eq!(p.ts, TS);
    assert_eq!(p.key.src, Endpoint::new(IpAddr::V4(Ipv4Addr::from(A4)), 40000));
    assert_eq!(p.key.dst, Endpoint::new(IpAddr::V4(Ipv4Addr::from(B4)), 104));
    assert_eq!(
        p.tcp,
        TcpHeader {
            seq: 0x1122_3344,
            ack: 0x5566_7788,
            flags: TcpFlags(0x18),
            window: 8192
        }
    );
    assert_eq!(p.payload, payload);
    assert_eq!(p.wire_payload_len, payload.len() as u32);
}

/// UDP header (RFC 768) with a zero checksum, then the payload.
pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// Decodes with `cfg`, counting.
pub(crate) fn decode_cfg<'a>(cfg: &WireConfig, linktype: u32, frame: &'a [u8]) -> (Decoded<'a>, WireStats) {
    let mut d = WireDecoder::with_config(cfg.clone());
    let _ = d.decode(TS, linktype, frame);
    (decode_frame_with(cfg, TS, linktype, frame), d.stats)
}

/// The payload of a decoded packet, for short assertions.
pub(crate) fn payload_of<'a>(p: &Packet<'a>) -> &'a [u8] {
    p.payload
}
