//! Link, tunnel, IP and TCP decoding of captured frames: checked, zero-copy, stateless.
//!
//! The second stage of the pipeline (ARCHITECTURE "Data flow"): a captured frame goes in, a
//! [`Packet`] — flow key, the TCP header fields reassembly needs, and the captured payload
//! borrowed from the frame — comes out, or the frame is counted in [`WireStats`] and dropped.
//!
//! # Why it looks like this
//!
//! * **Stateless.** No flow state, no IP defragmentation: each frame is decoded on its own, so
//!   this stage can run anywhere (the capture thread, before sharding) and cannot be made to hold
//!   memory by a hostile sender. An IP fragment (MF set or a non-zero offset), at any depth, is
//!   returned as `Err(IpFragment)` with [`Decoded::fragment`] set for the defragmentation stage,
//!   which feeds the reassembled datagram back here as a raw IP frame (so a fragmented VXLAN
//!   datagram is decapsulated once whole).
//! * **Tunnels are peeled here** ([`tunnel`]: VXLAN, Geneve, GRE, ERSPAN I/II/III, MPLS, PPPoE),
//!   at most [`MAX_ENCAPSULATIONS`] deep; the [`Packet`] is the innermost TCP segment, its flow
//!   key the inner 5-tuple (the tunnel id is not part of it: see [`tunnel`]). Which UDP ports
//!   mean VXLAN / Geneve is [`WireConfig`].
//! * **Fast path first.** Plain Ethernet / IPv4 / TCP ([`fast`]) is decoded by hand; everything
//!   else, tunnels included, takes the general path through etherparse. A tunnel costs the clean
//!   path nothing.
//! * **Snaplen-truncated frames are kept.** Decoding uses etherparse's `LaxSlicedPacket`, which
//!   falls back to the captured length when the IP header claims more. [`Packet::payload`] is what
//!   was captured; [`Packet::wire_payload_len`] is what the IP header says was sent (IP total
//!   length minus IP, extension and TCP headers), so reassembly records the missing tail as a gap
//!   instead of inventing bytes or misaligning the stream ([`WireStats::payload_cut`] counts them).
//! * **Never panics on input** (ARCHITECTURE rule 4): every read of a link or tunnel header is a
//!   `get`, every length is checked by etherparse or here; a frame that does not fit is counted
//!   as `truncated` or `malformed`, never an `Err` (rule 6).
//!
//! # Link types (tcpdump.org LINKTYPE_ values, <https://www.tcpdump.org/linktypes.html>)
//!
//! | LINKTYPE | value | header |
//! |---|---|---|
//! | `NULL` | 0 | 4-byte address family in the capturing host's byte order |
//! | `ETHERNET` | 1 | Ethernet II, with 802.1Q / 802.1ad / QinQ tags (0x8100, 0x88a8, 0x9100) |
//! | `RAW` | 101 (and DLT_RAW 12, or 14 on OpenBSD, found in old files) | none: IPv4 or IPv6 |
//! | `LOOP` | 108 | 4-byte address family, network byte order |
//! | `LINUX_SLL` | 113 | 16-byte Linux "cooked" header, protocol at offset 14 |
//! | `IPV4` / `IPV6` | 228 / 229 | none |
//! | `LINUX_SLL2` | 276 | 20-byte Linux "cooked" v2 header, protocol at offset 0 |
//!
//! # Files
//!
//! `link.rs` link headers and etherparse slicing; `fast.rs` the fast path; `ip.rs` a sliced IP
//! packet to a [`Packet`]; `tunnel/` decapsulation, one file per tunnel header; `stats.rs`
//! counters and the "why nothing was decoded" hint; `config.rs` [`WireConfig`].

// Every length, count and offset here comes from the wire or a file: no slice indexing that
// input controls (use `get`); a site that is provably in bounds says why in an `expect`.
#![deny(clippy::indexing_slicing)]

mod config;
mod fast;
mod ip;
mod link;
mod stats;
#[cfg(test)]
mod testutil;
pub mod tunnel;

pub use config::{DecapsulateSpecError, WireConfig, GENEVE_PORT, VXLAN_PORT};
pub use link::linktype;
pub use stats::{decode_hint, TopPorts, WireStats};
pub use tunnel::{Encapsulations, TunnelInfo, TunnelKind, MAX_ENCAPSULATIONS};

use pacstap_core::{Packet, Timestamp};
use std::sync::LazyLock;

/// Why a frame did not yield a [`Packet`]. A classification, not a failure of ours: each maps to
/// one [`WireStats`] counter.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDecoded {
    #[error("IP but not TCP")]
    NonTcp,
    #[error("not IP")]
    NonIp,
    #[error("header truncated")]
    Truncated,
    #[error("malformed header")]
    Malformed,
    #[error("IP fragment (for the defragmentation stage)")]
    IpFragment,
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
    #[error("encapsulations nested too deep")]
    TooDeep,
    #[error("unsupported tunnel")]
    UnsupportedTunnel,
}

/// The result of decoding one frame.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub packet: Result<Packet<'a>, NotDecoded>,
    /// The frame carried at least one 802.1Q / 802.1ad VLAN tag (outer or inner).
    pub vlan_tagged: bool,
    /// With `Err(NotDecoded::IpFragment)`: the fragmented IP packet, from the first byte of its
    /// IP header to the end of what was captured (link and tunnel headers peeled), for the
    /// defragmentation stage. `None` otherwise.
    pub fragment: Option<&'a [u8]>,
    /// The outermost tunnel the frame came through (for counters; not part of the flow key).
    pub tunnel: Option<TunnelInfo>,
    /// Every encapsulation kind peeled from the frame.
    pub encapsulations: Encapsulations,
    /// With `Err(NonTcp)` for a UDP datagram: its destination port (for [`decode_hint`]).
    pub udp_port: Option<u16>,
}

impl<'a> Decoded<'a> {
    /// An outcome with nothing else known.
    #[inline]
    pub(crate) fn outcome(packet: Result<Packet<'a>, NotDecoded>) -> Decoded<'a> {
        Decoded {
            packet,
            vlan_tagged: false,
            fragment: None,
            tunnel: None,
            encapsulations: Encapsulations::default(),
            udp_port: None,
        }
    }
}

/// Decodes frames and counts what it saw. Stateless apart from the counters.
#[derive(Debug, Default, Clone)]
pub struct WireDecoder {
    pub stats: WireStats,
    config: WireConfig,
}

impl WireDecoder {
    /// A decoder with the default [`WireConfig`] (VXLAN on 4789, Geneve on 6081, the rest on).
    pub fn new() -> Self {
        WireDecoder::default()
    }

    pub fn with_config(config: WireConfig) -> Self {
        WireDecoder {
            stats: WireStats::default(),
            config,
        }
    }

    pub fn config(&self) -> &WireConfig {
        &self.config
    }

    /// Decode the following frames with `config` (the counters are kept).
    pub fn set_config(&mut self, config: WireConfig) {
        self.config = config;
    }

    /// Decodes one captured frame of link type `linktype`; `None` for anything but a TCP segment
    /// (counted in [`WireDecoder::stats`]). The packet borrows `data`.
    #[inline]
    pub fn decode<'a>(&mut self, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Option<Packet<'a>> {
        self.decode_full(ts, linktype, data).packet.ok()
    }

    /// As [`WireDecoder::decode`], with everything the decoder found (the fragment for the
    /// defragmentation stage, the tunnel), counted.
    #[inline]
    pub fn decode_full<'a>(&mut self, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Decoded<'a> {
        let d = decode_frame_with(&self.config, ts, linktype, data);
        let s = &mut self.stats;
        s.frames += 1;
        s.vlan_tagged += u64::from(d.vlan_tagged);
        match d.packet {
            Ok(p) => {
                s.tcp += 1;
                s.payload_cut += u64::from(p.payload.len() < p.wire_payload_len as usize);
            }
            Err(NotDecoded::NonTcp) => {
                s.non_tcp += 1;
                if let Some(port) = d.udp_port {
                    s.udp_ports.add(port, 1);
                }
            }
            Err(NotDecoded::NonIp) => s.non_ip += 1,
            Err(NotDecoded::Truncated) => s.truncated += 1,
            Err(NotDecoded::Malformed) => s.malformed += 1,
            Err(NotDecoded::IpFragment) => s.ip_fragments += 1,
            Err(NotDecoded::UnsupportedLink(_)) => s.unsupported_link += 1,
            Err(NotDecoded::TooDeep) => s.too_deep += 1,
            Err(NotDecoded::UnsupportedTunnel) => s.unsupported_tunnel += 1,
        }
        if !d.encapsulations.is_empty() {
            for kind in d.encapsulations.iter() {
                *s.decapsulated_mut(kind) += 1;
            }
        }
        d
    }
}

static DEFAULT_CONFIG: LazyLock<WireConfig> = LazyLock::new(WireConfig::default);

/// Decodes one frame without counting, with the default [`WireConfig`]: the pure function behind
/// [`WireDecoder::decode`].
pub fn decode_frame(ts: Timestamp, linktype: u32, data: &[u8]) -> Decoded<'_> {
    decode_frame_with(&DEFAULT_CONFIG, ts, linktype, data)
}

/// Decodes one frame without counting, peeling the tunnels `config` enables.
#[inline]
pub fn decode_frame_with<'a>(config: &WireConfig, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Decoded<'a> {
    fast::fast_path(ts, linktype, data).unwrap_or_else(|| tunnel::general_path(config, ts, linktype, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::fast_path;
    use crate::testutil::*;
    use crate::tunnel::general_path;
    use pacstap_core::{Endpoint, TcpFlags};
    use std::net::{IpAddr, Ipv6Addr};

    // ---- link types ----

    #[test]
    fn ethernet_ipv4_tcp() {
        let frame = eth(&[], 0x0800, &v4_tcp(b"A-ASSOCIATE-RQ"));
        let (p, s) = decode_one(linktype::ETHERNET, &frame);
        assert_v4_packet(&p.unwrap(), b"A-ASSOCIATE-RQ");
        assert_eq!(
            s,
            WireStats {
                frames: 1,
                tcp: 1,
                ..WireStats::default()
            }
        );
    }

    #[test]
    fn ethernet_padding_and_tcp_options_are_not_payload() {
        // A bare ACK in a minimum-size frame: 6 bytes of Ethernet padding after the IP packet.
        let mut frame = eth(&[], 0x0800, &ipv4(6, (false, 0), &tcp(1, 2, TcpFlags::ACK, 4, &[])));
        assert_eq!(frame.len(), 58);
        frame.resize(60, 0);
        let p = decode_one(linktype::ETHERNET, &frame).0.unwrap();
        assert_eq!(p.payload, b"");
        assert_eq!(p.wire_payload_len, 0);
    }

    #[test]
    fn vlan_qinq_and_old_qinq_tpid() {
        for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x9100, 0x8100], &[0x8100, 0x8100]] {
            let frame = eth(tags, 0x0800, &v4_tcp(b"x"));
            let (p, s) = decode_one(linktype::ETHERNET, &frame);
            assert_v4_packet(&p.unwrap(), b"x");
            assert_eq!(s.vlan_tagged, 1, "{tags:x?}");
        }
        // Truncated inside the second tag.
        let frame = eth(&[0x88a8, 0x8100], 0x0800, &[]);
        let (p, s) = decode_one(linktype::ETHERNET, &frame[..20]);
        assert!(p.is_none());
        assert_eq!((s.truncated, s.vlan_tagged), (1, 1));
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let ip = v4_tcp(b"hello");
        assert_v4_packet(
            &decode_one(linktype::LINUX_SLL, &sll(1, 0x0800, &ip)).0.unwrap(),
            b"hello",
        );
        assert_v4_packet(
            &decode_one(linktype::LINUX_SLL2, &sll2(1, 0x0800, &ip)).0.unwrap(),
            b"hello",
        );
        // A VLAN tag left in the payload by the kernel is still followed.
        let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
        tagged.extend_from_slice(&ip);
        let frame = sll(1, 0x8100, &tagged);
        let (p, s) = decode_one(linktype::LINUX_SLL, &frame);
        assert!(p.is_some());
        assert_eq!(s.vlan_tagged, 1);
        // IPv6 over SLL2.
        let v6 = ipv6(&[], 6, &tcp(5, 6, SYN_ACK, 0, &[]));
        let frame = sll2(1, 0x86dd, &v6);
        let p = decode_one(linktype::LINUX_SLL2, &frame).0.unwrap();
        assert_eq!(p.key.src.ip, IpAddr::V6(Ipv6Addr::from(A6)));
        assert_eq!(p.tcp.flags, TcpFlags(SYN_ACK));
        // Netlink, 802.2 and short headers.
        assert_eq!(decode_one(linktype::LINUX_SLL, &sll(824, 0x0800, &ip)).1.non_ip, 1);
        assert_eq!(decode_one(linktype::LINUX_SLL2, &sll2(1, 0x0004, &ip)).1.non_ip, 1);
        assert_eq!(
            decode_one(linktype::LINUX_SLL, &sll(1, 0x0800, &[])[..15]).1.truncated,
            1
        );
        assert_eq!(
            decode_one(linktype::LINUX_SLL2, &sll2(1, 0x0800, &[])[..19])
                .1
                .truncated,
            1
        );
    }

    #[test]
    fn raw_ip_link_types() {
        let ip = v4_tcp(b"raw");
        for lt in [
            linktype::RAW,
            linktype::DLT_RAW,
            linktype::DLT_RAW_OPENBSD,
            linktype::IPV4,
        ] {
            assert_v4_packet(&decode_one(lt, &ip).0.unwrap(), b"raw");
        }
        let v6 = ipv6(&[], 6, &tcp(5, 6, TcpFlags::ACK, 0, b"six"));
        assert_eq!(decode_one(linktype::IPV6, &v6).0.unwrap().payload, b"six");
    }

    #[test]
    fn bsd_loopback_null_and_loop() {
        let ip = v4_tcp(b"lo");
        let v6 = ipv6(&[], 6, &tcp(5, 6, TcpFlags::ACK, 0, b"lo6"));
        let with_af = |af: [u8; 4], pkt: &[u8]| [&af[..], pkt].concat();
        // NULL: host byte order, either one.
        assert!(decode_one(linktype::NULL, &with_af(2u32.to_le_bytes(), &ip))
            .0
            .is_some());
        assert!(decode_one(linktype::NULL, &with_af(2u32.to_be_bytes(), &ip))
            .0
            .is_some());
        for af6 in [24u32, 28, 30] {
            assert!(
                decode_one(linktype::NULL, &with_af(af6.to_le_bytes(), &v6)).0.is_some(),
                "{af6}"
            );
        }
        // LOOP: network byte order.
        assert!(decode_one(linktype::LOOP, &with_af(2u32.to_be_bytes(), &ip))
            .0
            .is_some());
        assert!(decode_one(linktype::LOOP, &with_af(24u32.to_be_bytes(), &v6))
            .0
            .is_some());
        // Another family (AF_APPLETALK = 16), and a header cut short.
        assert_eq!(
            decode_one(linktype::NULL, &with_af(16u32.to_le_bytes(), &ip)).1.non_ip,
            1
        );
        assert_eq!(decode_one(linktype::LOOP, &[0, 0, 0]).1.truncated, 1);
    }

    #[test]
    fn unsupported_link_type_is_counted() {
        let frame = v4_tcp(b"");
        let (p, s) = decode_one(147, &frame);
        assert!(p.is_none());
        assert_eq!(s.unsupported_link, 1);
        assert_eq!(
            decode_frame(TS, 147, &[]).packet.unwrap_err(),
            NotDecoded::UnsupportedLink(147)
        );
    }

    // ---- IPv6 ----

    #[test]
    fn ipv6_with_extension_headers() {
        let seg = tcp(2000, 104, TcpFlags::ACK, 0, b"payload");
        let pkt = ipv6(&[opts_ext(0), opts_ext(60)], 6, &seg);
        let frame = eth(&[], 0x86dd, &pkt);
        let p = decode_one(linktype::ETHERNET, &frame).0.unwrap();
        assert_eq!(p.key.dst, Endpoint::new(IpAddr::V6(Ipv6Addr::from(B6)), 104));
        assert_eq!(p.payload, b"payload");
        assert_eq!(p.wire_payload_len, 7);
        // Truncated by the snaplen: the extension headers do not count in the claimed payload.
        let p = decode_one(linktype::ETHERNET, &frame[..frame.len() - 4]).0.unwrap();
        assert_eq!((p.payload, p.wire_payload_len), (&b"pay"[..], 7));
        // Cut inside the second extension header.
        let (p, s) = decode_one(linktype::ETHERNET, &frame[..14 + 40 + 12]);
        assert!(p.is_none());
        assert_eq!(s.truncated, 1);
    }

    // ---- truncation ----

    #[test]
    fn snaplen_truncated_payload_keeps_the_wire_length() {
        let body = vec![0x5a; 1400];
        let frame = eth(&[0x8100], 0x0800, &v4_tcp(&body));
        let header = 18 + 20 + 20;
        for snaplen in [header, header + 1, header + 700, frame.len() - 1] {
            let p = decode_one(linktype::ETHERNET, &frame[..snaplen]).0.unwrap();
            assert_eq!(p.payload.len(), snaplen - header);
            assert_eq!(p.wire_payload_len, 1400, "snaplen {snaplen}");
        }
        // Cut inside the TCP header, the IP header, the Ethernet header.
        for snaplen in [header - 1, 18 + 21, 18 + 19, 18, 13, 0] {
            let (p, s) = decode_one(linktype::ETHERNET, &frame[..snaplen]);
            assert!(p.is_none(), "{snaplen}");
            assert_eq!(s.truncated, 1, "snaplen {snaplen}: {s:?}");
        }
    }

    #[test]
    fn tso_zero_total_length_uses_the_captured_length() {
        // Captured on the sending host before segmentation offload: IPv4 total length 0.
        let mut ip = v4_tcp(&[7; 3000]);
        ip[2] = 0;
        ip[3] = 0;
        let p = decode_one(linktype::RAW, &ip).0.unwrap();
        assert_eq!((p.payload.len(), p.wire_payload_len), (3000, 3000));
    }

    // ---- not TCP ----

    #[test]
    fn udp_icmp_arp_lldp_are_not_tcp() {
        let udp = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0, 0, 1, 2, 3, 4];
        let (_, s) = decode_one(linktype::ETHERNET, &eth(&[], 0x0800, &ipv4(17, (false, 0), &udp)));
        assert_eq!(s.non_tcp, 1);
        let (_, s) = decode_one(linktype::RAW, &ipv4(1, (false, 0), &[8, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(s.non_tcp, 1);
        let (_, s) = decode_one(linktype::RAW, &ipv6(&[], 58, &[128, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(s.non_tcp, 1);
        // A UDP header cut short is still "not TCP", not a truncated TCP packet.
        let (_, s) = decode_one(linktype::RAW, &ipv4(17, (false, 0), &udp[..4]));
        assert_eq!(s.non_tcp, 1);
        let arp = [
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ];
        assert_eq!(decode_one(linktype::ETHERNET, &eth(&[], 0x0806, &arp)).1.non_ip, 1);
        assert_eq!(
            decode_one(linktype::ETHERNET, &eth(&[0x8100], 0x88cc, &[0; 30]))
                .1
                .non_ip,
            1
        );
        // 802.3 length field instead of an EtherType (STP, LLC).
        assert_eq!(
            decode_one(linktype::ETHERNET, &eth(&[], 0x0026, &[0x42; 38])).1.non_ip,
            1
        );
    }

    // ---- fragments ----

    #[test]
    fn ip_fragments_are_skipped_and_counted() {
        let seg = tcp(1, 2, TcpFlags::ACK, 0, &[9; 64]);
        for frag in [(true, 0), (true, 8), (false, 8)] {
            let pkt = ipv4(6, frag, &seg);
            let (p, s) = decode_one(linktype::RAW, &pkt);
            assert!(p.is_none());
            assert_eq!(s.ip_fragments, 1, "{frag:?}");
        }
        for (offset, more) in [(0, true), (16, false)] {
            let pkt = ipv6(&[frag_ext(offset, more)], 6, &seg);
            let (p, s) = decode_one(linktype::RAW, &pkt);
            assert!(p.is_none());
            assert_eq!(s.ip_fragments, 1);
        }
        // The defragmentation stage gets the fragmented IP packet, link header peeled.
        let pkt = ipv4(6, (true, 0), &seg);
        let framed = eth(&[0x8100], 0x0800, &pkt);
        let d = decode_frame(TS, linktype::ETHERNET, &framed);
        assert_eq!(d.fragment, Some(&pkt[..]));
        let pkt6 = ipv6(&[frag_ext(16, false)], 6, &seg);
        let d = decode_frame(TS, linktype::RAW, &pkt6);
        assert_eq!(d.fragment, Some(&pkt6[..]));
        // An IPv6 "atomic fragment" (offset 0, no more fragments; RFC 6946) is a whole packet.
        let pkt = ipv6(&[frag_ext(0, false)], 6, &seg);
        let p = decode_one(linktype::RAW, &pkt).0.unwrap();
        assert_eq!(p.payload.len(), 64);
        assert_eq!(p.ip_header, &pkt[..40]);
        assert_eq!(p.tcp_header.len(), 20);
    }

    #[test]
    fn packets_carry_their_ip_and_tcp_headers_for_checksums() {
        let ip = ipv4(6, (false, 0), &tcp(1, 2, TcpFlags::ACK, 8, &[7; 10]));
        let framed = eth(&[], 0x0800, &ip);
        let p = decode_one(linktype::ETHERNET, &framed).0.unwrap();
        assert_eq!(p.ip_header, &ip[..20]);
        assert_eq!(p.tcp_header, &ip[20..48]);
        assert_eq!(p.payload, &[7; 10]);
    }

    // ---- malformed ----

    #[test]
    fn malformed_headers_are_counted() {
        let mut bad_ihl = v4_tcp(b"");
        bad_ihl[0] = 0x44;
        assert_eq!(
            decode_one(linktype::ETHERNET, &eth(&[], 0x0800, &bad_ihl)).1.malformed,
            1
        );
        let mut bad_version = v4_tcp(b"");
        bad_version[0] = 0x75;
        assert_eq!(decode_one(linktype::RAW, &bad_version).1.malformed, 1);
        let mut bad_offset = v4_tcp(b"");
        bad_offset[20 + 12] = 0x40;
        assert_eq!(decode_one(linktype::RAW, &bad_offset).1.malformed, 1);
    }

    #[test]
    fn all_tcp_flag_bits_are_kept() {
        let pkt = ipv4(6, (false, 0), &tcp(1, 2, 0xff, 0, b""));
        let p = decode_one(linktype::RAW, &pkt).0.unwrap();
        assert_eq!(p.tcp.flags, TcpFlags(0xff));
        assert!(p.tcp.flags.syn() && p.tcp.flags.fin() && p.tcp.flags.rst() && p.tcp.flags.ack());
    }

    // ---- hostile input ----

    fn outcome_sum(s: &WireStats) -> u64 {
        s.tcp
            + s.non_tcp
            + s.non_ip
            + s.truncated
            + s.malformed
            + s.ip_fragments
            + s.unsupported_link
            + s.too_deep
            + s.unsupported_tunnel
    }

    #[test]
    fn garbage_of_every_length_never_panics() {
        let link_types = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, u32::MAX];
        let valid = [
            eth(&[0x88a8, 0x8100], 0x0800, &v4_tcp(&[1; 60])),
            eth(
                &[],
                0x86dd,
                &ipv6(&[opts_ext(0), frag_ext(0, false)], 6, &tcp(1, 2, 2, 8, &[2; 40])),
            ),
            sll2(1, 0x86dd, &ipv6(&[opts_ext(0)], 6, &tcp(1, 2, 2, 0, &[3; 50]))),
        ];
        let mut d = WireDecoder::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut buf = Vec::new();
        for len in 0..100usize {
            for lt in link_types {
                for fill in [0x00u8, 0xff, 0x45, 0x60] {
                    buf.clear();
                    buf.resize(len, fill);
                    let _ = d.decode(TS, lt, &buf);
                }
                for _ in 0..20 {
                    buf.clear();
                    buf.extend((0..len).map(|_| next() as u8));
                    let _ = d.decode(TS, lt, &buf);
                }
                // Valid frames cut to `len` with one byte flipped: reaches the deeper layers.
                for v in &valid {
                    buf.clear();
                    buf.extend_from_slice(&v[..len.min(v.len())]);
                    if !buf.is_empty() {
                        let i = (next() as usize) % buf.len();
                        buf[i] ^= next() as u8;
                    }
                    if let Some(p) = d.decode(TS, lt, &buf) {
                        assert!(p.payload.len() <= buf.len());
                    }
                }
            }
        }
        assert_eq!(outcome_sum(&d.stats), d.stats.frames);
        assert!(d.stats.tcp > 0 && d.stats.truncated > 0 && d.stats.malformed > 0);
    }

    fn same(a: &Decoded<'_>, b: &Decoded<'_>) -> bool {
        a.vlan_tagged == b.vlan_tagged
            && match (&a.packet, &b.packet) {
                (Ok(x), Ok(y)) => {
                    x.ts == y.ts
                        && x.key == y.key
                        && x.tcp == y.tcp
                        && std::ptr::eq(x.payload, y.payload)
                        && x.wire_payload_len == y.wire_payload_len
                        && std::ptr::eq(x.ip_header, y.ip_header)
                        && std::ptr::eq(x.tcp_header, y.tcp_header)
                }
                _ => false,
            }
    }

    #[test]
    fn fast_path_agrees_with_etherparse() {
        let mut with_options = ipv4(6, (false, 0), &tcp(1, 2, 0x12, 8, &[4; 33]));
        with_options[0] = 0x46;
        with_options.splice(20..20, [1, 1, 1, 0]);
        let df = {
            let mut p = v4_tcp(&[5; 99]);
            p[6] = 0x40;
            p
        };
        let frames = [
            (linktype::ETHERNET, eth(&[], 0x0800, &v4_tcp(&[1; 1460]))),
            (linktype::ETHERNET, eth(&[0x8100], 0x0800, &v4_tcp(&[2; 10]))),
            (linktype::ETHERNET, eth(&[], 0x0800, &with_options)),
            (linktype::ETHERNET, eth(&[], 0x0800, &df)),
            (linktype::RAW, v4_tcp(&[3; 200])),
            (linktype::IPV4, with_options.clone()),
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut fast_hits = 0;
        for (lt, frame) in &frames {
            for len in 0..=frame.len() {
                for flip in 0..4 {
                    let mut f = frame[..len].to_vec();
                    if flip > 0 && !f.is_empty() {
                        let i = (next() as usize) % f.len();
                        f[i] ^= 1 << (next() % 8);
                    }
                    if let Some(fast) = fast_path(TS, *lt, &f) {
                        fast_hits += 1;
                        let general = general_path(&WireConfig::default(), TS, *lt, &f);
                        assert!(same(&fast, &general), "lt {lt} len {len}: {fast:?} vs {general:?}");
                    }
                }
            }
        }
        assert!(fast_hits > 1000, "{fast_hits}");
    }
}
