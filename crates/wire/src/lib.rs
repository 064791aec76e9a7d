//! Link, IP and TCP decoding of captured frames: checked, zero-copy, stateless.
//!
//! The second stage of the pipeline (ARCHITECTURE "Data flow"): a captured frame goes in, a
//! [`Packet`] — flow key, the TCP header fields reassembly needs, and the captured payload
//! borrowed from the frame — comes out, or the frame is counted in [`WireStats`] and dropped.
//!
//! # Why it looks like this
//!
//! * **Stateless.** No flow state, no IP defragmentation: each frame is decoded on its own, so
//!   this stage can run anywhere (the capture thread, before sharding) and cannot be made to hold
//!   memory by a hostile sender. IP fragments (MF set or a non-zero offset) are counted in
//!   [`WireStats::ip_fragments`] and skipped: reassembling them is out of scope for now — DICOM and
//!   HL7 run over TCP with path-MTU discovery, so fragments are rare and mostly attacks.
//! * **Snaplen-truncated frames are kept.** Decoding uses etherparse's `LaxSlicedPacket`, which
//!   falls back to the captured length when the IP header claims more. [`Packet::payload`] is what
//!   was captured; [`Packet::wire_payload_len`] is what the IP header says was sent (IP total
//!   length minus IP, extension and TCP headers), so reassembly records the missing tail as a gap
//!   instead of inventing bytes or misaligning the stream.
//! * **Never panics on input** (ARCHITECTURE rule 4): every read of a link header is a `get`, every
//!   length is checked by etherparse or here; a frame that does not fit is counted as `truncated`
//!   or `malformed`, never an `Err` (rule 6).
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
//! The two Linux cooked headers are decoded here (etherparse's lax parser has no entry point for
//! them, and SLL2 not at all); what follows them is sliced by etherparse from the EtherType on.

use etherparse::err::packet::SliceError;
use etherparse::err::Layer;
use etherparse::{ip_number, EtherType, LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pacstap_core::{Endpoint, FlowKey, Packet, TcpFlags, TcpHeader, Timestamp};
use std::net::IpAddr;

/// tcpdump LINKTYPE_ numbers this decoder understands (<https://www.tcpdump.org/linktypes.html>).
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// IEEE 802.3 Ethernet (Ethernet II framing).
    pub const ETHERNET: u32 = 1;
    /// `DLT_RAW` on most platforms, as written by some old tools instead of 101.
    pub const DLT_RAW: u32 = 12;
    /// `DLT_RAW` on OpenBSD, likewise.
    pub const DLT_RAW_OPENBSD: u32 = 14;
    /// Raw IP: the frame starts with an IPv4 or IPv6 header.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux "cooked" capture (`any` device), v1.
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux "cooked" capture, v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// What the decoder saw, by outcome. Every frame is counted in `frames` and in exactly one of
/// `tcp`, `non_tcp`, `non_ip`, `truncated`, `malformed`, `ip_fragments`, `unsupported_link`;
/// `vlan_tagged` counts, in addition, the frames that carried at least one VLAN tag.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WireStats {
    pub frames: u64,
    /// Decoded into a [`Packet`].
    pub tcp: u64,
    /// IP, but not TCP (UDP, ICMP, …).
    pub non_tcp: u64,
    /// Not IP (ARP, LLDP, STP, netlink, …).
    pub non_ip: u64,
    /// A link, IP or TCP header cut short by the snaplen or the frame's end.
    pub truncated: u64,
    /// A header whose contents are invalid (bad IP version, IHL below 5, TCP data offset below 5…).
    pub malformed: u64,
    /// IP fragments, skipped: no defragmentation (see the crate docs).
    pub ip_fragments: u64,
    /// A link type this decoder does not know.
    pub unsupported_link: u64,
    pub vlan_tagged: u64,
}

impl WireStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &WireStats) {
        let WireStats {
            frames,
            tcp,
            non_tcp,
            non_ip,
            truncated,
            malformed,
            ip_fragments,
            unsupported_link,
            vlan_tagged,
        } = other;
        self.frames += frames;
        self.tcp += tcp;
        self.non_tcp += non_tcp;
        self.non_ip += non_ip;
        self.truncated += truncated;
        self.malformed += malformed;
        self.ip_fragments += ip_fragments;
        self.unsupported_link += unsupported_link;
        self.vlan_tagged += vlan_tagged;
    }
}

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
    #[error("IP fragment (not reassembled)")]
    IpFragment,
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
}

/// The result of decoding one frame.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub packet: Result<Packet<'a>, NotDecoded>,
    /// The frame carried at least one 802.1Q / 802.1ad VLAN tag.
    pub vlan_tagged: bool,
    /// With `Err(NotDecoded::IpFragment)`: the fragmented IP packet, from the first byte of its
    /// IP header to the end of what was captured (link and tunnel headers peeled), for the
    /// defragmentation stage. `None` otherwise.
    pub fragment: Option<&'a [u8]>,
}

/// Decodes frames and counts what it saw. Stateless apart from the counters.
#[derive(Debug, Default, Clone)]
pub struct WireDecoder {
    pub stats: WireStats,
}

impl WireDecoder {
    pub fn new() -> Self {
        WireDecoder::default()
    }

    /// Decodes one captured frame of link type `linktype`; `None` for anything but a TCP segment
    /// (counted in [`WireDecoder::stats`]). The packet borrows `data`.
    #[inline]
    pub fn decode<'a>(&mut self, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Option<Packet<'a>> {
        let d = decode_frame(ts, linktype, data);
        let s = &mut self.stats;
        s.frames += 1;
        s.vlan_tagged += u64::from(d.vlan_tagged);
        match d.packet {
            Ok(p) => {
                s.tcp += 1;
                return Some(p);
            }
            Err(NotDecoded::NonTcp) => s.non_tcp += 1,
            Err(NotDecoded::NonIp) => s.non_ip += 1,
            Err(NotDecoded::Truncated) => s.truncated += 1,
            Err(NotDecoded::Malformed) => s.malformed += 1,
            Err(NotDecoded::IpFragment) => s.ip_fragments += 1,
            Err(NotDecoded::UnsupportedLink(_)) => s.unsupported_link += 1,
        }
        None
    }
}

/// Where the network layer starts, after the link header.
enum Link<'a> {
    /// A whole Ethernet II frame, for etherparse to slice (including VLAN tags).
    Ethernet(&'a [u8]),
    /// A payload identified by an EtherType (Linux cooked captures).
    EtherType(u16, &'a [u8]),
    /// An IPv4 or IPv6 header.
    Ip(&'a [u8]),
}

/// Decodes one frame without counting: the pure function behind [`WireDecoder::decode`].
pub fn decode_frame(ts: Timestamp, linktype: u32, data: &[u8]) -> Decoded<'_> {
    fast_path(ts, linktype, data).unwrap_or_else(|| general_path(ts, linktype, data))
}

/// Every link type through etherparse: the reference the fast path is tested against.
fn general_path(ts: Timestamp, linktype: u32, data: &[u8]) -> Decoded<'_> {
    let link = match link_payload(linktype, data) {
        Ok(l) => l,
        Err(e) => {
            return Decoded {
                packet: Err(e),
                vlan_tagged: false,
                fragment: None,
            }
        }
    };
    let sliced = match link {
        Link::Ethernet(frame) => match LaxSlicedPacket::from_ethernet(frame) {
            Ok(s) => s,
            // Only a length error is possible here: shorter than the 14-byte Ethernet header.
            Err(_) => {
                return Decoded {
                    packet: Err(NotDecoded::Truncated),
                    vlan_tagged: false,
                    fragment: None,
                }
            }
        },
        Link::EtherType(ether_type, payload) => LaxSlicedPacket::from_ether_type(EtherType(ether_type), payload),
        Link::Ip(packet) => match LaxSlicedPacket::from_ip(packet) {
            Ok(s) => s,
            Err(etherparse::err::ip::LaxHeaderSliceError::Len(_)) => {
                return Decoded {
                    packet: Err(NotDecoded::Truncated),
                    vlan_tagged: false,
                    fragment: None,
                }
            }
            Err(etherparse::err::ip::LaxHeaderSliceError::Content(_)) => {
                return Decoded {
                    packet: Err(NotDecoded::Malformed),
                    vlan_tagged: false,
                    fragment: None,
                }
            }
        },
    };
    let vlan_tagged = sliced.link_exts.iter().any(|e| matches!(e, LaxLinkExtSlice::Vlan(_)));
    let packet = tcp_packet(ts, data, &sliced);
    let fragment = match packet {
        Err(NotDecoded::IpFragment) => fragment_slice(data, &sliced),
        _ => None,
    };
    Decoded {
        packet,
        vlan_tagged,
        fragment,
    }
}

/// The common case without etherparse: Ethernet II with at most one 802.1Q tag (or raw IP),
/// then an unfragmented IPv4 packet carrying TCP, all headers captured. Anything else — IPv6, IP
/// options are fine but AH is not, fragments, short or odd headers — returns `None` and takes
/// the general path, which gives the same answer for these frames (checked by the
/// `fast_path_agrees_with_etherparse` test); this one only skips building a `LaxSlicedPacket`.
///
/// Offsets: Ethernet II destination (6), source (6), EtherType (2); an 802.1Q tag is TPID 0x8100
/// then TCI (2) before the EtherType (IEEE 802.1Q §9.3). IPv4 (RFC 791 §3.1): version/IHL at 0,
/// total length at 2, flags/fragment offset at 6, protocol at 9, addresses at 12 and 16.
/// TCP (RFC 9293 §3.1): ports at 0 and 2, sequence 4, acknowledgment 8, data offset 12 (high
/// nibble), flags 13, window 14.
#[inline]
fn fast_path(ts: Timestamp, linktype: u32, data: &[u8]) -> Option<Decoded<'_>> {
    let (ip, vlan_tagged) = match linktype {
        linktype::ETHERNET => match be16(data, 12)? {
            0x0800 => (data.get(14..)?, false),
            0x8100 if be16(data, 16)? == 0x0800 => (data.get(18..)?, true),
            _ => return None,
        },
        linktype::RAW | linktype::IPV4 => (data, false),
        _ => return None,
    };
    let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    // Version 4, protocol TCP, neither More Fragments nor an offset (the DF bit may be set).
    if h[0] >> 4 != 4 || ihl < 20 || h[9] != 6 || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // The same three cases as etherparse's lax IPv4 slicing: a total length below the header
    // (TSO captures write 0) means "use what was captured"; above the capture, the frame was cut.
    let (ip_payload, missing) = if total < ihl {
        (ip.get(ihl..)?, 0)
    } else if total > ip.len() {
        (ip.get(ihl..)?, total - ip.len())
    } else {
        (ip.get(ihl..total)?, 0)
    };
    let t: &[u8; 20] = ip_payload.get(..20)?.try_into().ok()?;
    let data_offset = usize::from(t[12] >> 4) * 4;
    if data_offset < 20 {
        return None;
    }
    let payload = ip_payload.get(data_offset..)?;
    let tcp_header = ip_payload.get(..data_offset)?;
    let ip_header = ip.get(..ihl)?;
    let src = IpAddr::V4([h[12], h[13], h[14], h[15]].into());
    let dst = IpAddr::V4([h[16], h[17], h[18], h[19]].into());
    let packet = Packet {
        ts,
        key: FlowKey {
            src: Endpoint::new(src, u16::from_be_bytes([t[0], t[1]])),
            dst: Endpoint::new(dst, u16::from_be_bytes([t[2], t[3]])),
        },
        tcp: TcpHeader {
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            flags: TcpFlags(t[13]),
            window: u16::from_be_bytes([t[14], t[15]]),
        },
        payload,
        wire_payload_len: u32::try_from(payload.len().saturating_add(missing)).unwrap_or(u32::MAX),
        ip_header,
        tcp_header,
    };
    Some(Decoded {
        packet: Ok(packet),
        vlan_tagged,
        fragment: None,
    })
}

/// Strips the link header, per LINKTYPE.
#[inline]
fn link_payload(linktype: u32, data: &[u8]) -> Result<Link<'_>, NotDecoded> {
    match linktype {
        linktype::ETHERNET => Ok(Link::Ethernet(data)),
        linktype::RAW | linktype::DLT_RAW | linktype::DLT_RAW_OPENBSD | linktype::IPV4 | linktype::IPV6 => {
            Ok(Link::Ip(data))
        }
        linktype::NULL | linktype::LOOP => {
            let af: [u8; 4] = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(NotDecoded::Truncated)?;
            // NULL: host byte order of the capturing machine, unknown to us; address families
            // are small numbers, so the byte order that gives one below 2^16 is the right one.
            let af = match linktype {
                linktype::LOOP => u32::from_be_bytes(af),
                _ => match u32::from_le_bytes(af) {
                    v if v <= 0xFFFF => v,
                    _ => u32::from_be_bytes(af),
                },
            };
            // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD),
            // 30 (macOS) or 10 (Linux) — tcpdump LINKTYPE_NULL.
            match af {
                2 | 10 | 24 | 28 | 30 => Ok(Link::Ip(data.get(4..).unwrap_or_default())),
                _ => Err(NotDecoded::NonIp),
            }
        }
        linktype::LINUX_SLL => {
            // tcpdump LINKTYPE_LINUX_SLL: packet type (2), ARPHRD_ type (2), address length (2),
            // address (8), protocol type (2).
            let (Some(arphrd), Some(protocol), Some(payload)) = (be16(data, 2), be16(data, 14), data.get(16..)) else {
                return Err(NotDecoded::Truncated);
            };
            sll_payload(arphrd, protocol, payload)
        }
        linktype::LINUX_SLL2 => {
            // tcpdump LINKTYPE_LINUX_SLL2: protocol type (2), reserved (2), interface index (4),
            // ARPHRD_ type (2), packet type (1), address length (1), address (8).
            let (Some(protocol), Some(arphrd), Some(payload)) = (be16(data, 0), be16(data, 8), data.get(20..)) else {
                return Err(NotDecoded::Truncated);
            };
            sll_payload(arphrd, protocol, payload)
        }
        other => Err(NotDecoded::UnsupportedLink(other)),
    }
}

/// The cooked header's protocol field is an EtherType, except for netlink captures (then it is a
/// netlink family) and for values below 0x0600 (Linux `ETH_P_802_3`, `ETH_P_802_2`, CAN…).
#[inline]
fn sll_payload(arphrd: u16, protocol: u16, payload: &[u8]) -> Result<Link<'_>, NotDecoded> {
    const ARPHRD_NETLINK: u16 = 824;
    if arphrd == ARPHRD_NETLINK || protocol < 0x0600 {
        return Err(NotDecoded::NonIp);
    }
    Ok(Link::EtherType(protocol, payload))
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

/// How etherparse's stop error classifies the frame.
fn stop_reason(stop: Option<&(SliceError, Layer)>) -> NotDecoded {
    match stop {
        Some((SliceError::Len(_), _)) | None => NotDecoded::Truncated,
        Some(_) => NotDecoded::Malformed,
    }
}

/// From a sliced frame to a TCP [`Packet`], or the reason there is none.
#[inline]
fn tcp_packet<'a>(ts: Timestamp, data: &'a [u8], s: &LaxSlicedPacket<'a>) -> Result<Packet<'a>, NotDecoded> {
    // (source, destination, IP payload, bytes the IP header claims, bytes of it captured)
    let (src, dst, ip_payload, claimed, captured) = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let p = v4.payload();
            let auth = v4.extensions().auth.map_or(0, |a| a.slice().len());
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                p,
                usize::from(h.total_len()),
                h.slice().len() + auth + p.payload.len(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let p = v6.payload();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                p,
                // Fixed 40-byte header plus Payload Length (RFC 8200 §3).
                40 + usize::from(h.payload_length()),
                h.slice().len() + v6.extensions().slice().len() + p.payload.len(),
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Err(NotDecoded::NonIp),
        None => {
            // No IP: either the EtherType is not IP (no error) or slicing stopped at a link or
            // IP header.
            return Err(match &s.stop_err {
                None => NotDecoded::NonIp,
                stop => stop_reason(stop.as_ref()),
            });
        }
    };
    let tcp = match &s.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        _ => {
            if ip_payload.fragmented {
                return Err(NotDecoded::IpFragment);
            }
            return Err(match &s.stop_err {
                // Stopped at the TCP header, or before the transport (IPv6 extension headers,
                // IPsec AH): the frame is cut or broken, whatever it carried.
                Some((_, layer)) if ip_payload.ip_number == ip_number::TCP || !is_non_tcp_transport(*layer) => {
                    stop_reason(s.stop_err.as_ref())
                }
                _ => NotDecoded::NonTcp,
            });
        }
    };
    let payload = tcp.payload();
    let ip_header = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => within(data, v4.header().slice()),
        Some(LaxNetSlice::Ipv6(v6)) => within(data, v6.header().slice()),
        _ => None,
    }
    .unwrap_or_default();
    let tcp_header = tcp.header_slice();
    // When the snaplen cut the frame, the IP header still says how much was sent.
    let missing = if ip_payload.incomplete {
        claimed.saturating_sub(captured)
    } else {
        0
    };
    let wire_payload_len = u32::try_from(payload.len().saturating_add(missing)).unwrap_or(u32::MAX);
    Ok(Packet {
        ts,
        key: FlowKey {
            src: Endpoint::new(src, tcp.source_port()),
            dst: Endpoint::new(dst, tcp.destination_port()),
        },
        tcp: TcpHeader {
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            // Byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN (RFC 9293 §3.1).
            flags: TcpFlags(tcp.slice().get(13).copied().unwrap_or(0)),
            window: tcp.window_size(),
        },
        payload,
        wire_payload_len,
        ip_header,
        tcp_header,
    })
}

/// The IP packet (header on) inside `data` that etherparse found fragmented. etherparse's slices
/// borrow from `data`, so the header's position in `data` is the distance between the two
/// pointers (plain address arithmetic, no `unsafe`).
fn fragment_slice<'a>(data: &'a [u8], s: &LaxSlicedPacket<'a>) -> Option<&'a [u8]> {
    let header = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => v4.header().slice(),
        Some(LaxNetSlice::Ipv6(v6)) => v6.header().slice(),
        _ => return None,
    };
    let offset = (header.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    data.get(offset..)
}

/// `part` (a slice etherparse handed out with a shorter borrow) as a slice of `data`, found by
/// its position: etherparse only ever slices the frame it was given.
fn within<'a>(data: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let offset = (part.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    data.get(offset..offset.checked_add(part.len())?)
}

/// Layers at which etherparse stops for a transport other than TCP.
fn is_non_tcp_transport(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::UdpHeader
            | Layer::UdpPayload
            | Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6
            | Layer::Igmp
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TS: Timestamp = Timestamp(1_700_000_000_000_000_000);
    const A4: [u8; 4] = [10, 0, 0, 1];
    const B4: [u8; 4] = [10, 0, 0, 2];
    const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;

    // ---- frame builders, byte by byte from the RFCs ----

    /// TCP header (RFC 9293 §3.1) with `opts` option bytes (a multiple of 4), then the payload.
    fn tcp(sport: u16, dport: u16, flags: u8, opts: usize, payload: &[u8]) -> Vec<u8> {
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
    fn ipv4(proto: u8, frag: (bool, u16), payload: &[u8]) -> Vec<u8> {
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
    fn ipv6(exts: &[(u8, Vec<u8>)], proto: u8, payload: &[u8]) -> Vec<u8> {
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
    fn opts_ext(kind: u8) -> (u8, Vec<u8>) {
        (kind, vec![0, 0, 1, 4, 0, 0, 0, 0])
    }

    /// A Fragment header (RFC 8200 §4.5).
    fn frag_ext(offset: u16, more: bool) -> (u8, Vec<u8>) {
        let v = (offset << 3) | u16::from(more);
        let [a, b] = v.to_be_bytes();
        (44, vec![0, 0, a, b, 0, 0, 0, 7])
    }

    /// Ethernet II (IEEE 802.3 §3.2.6) with VLAN tags (TPID, TCI) before the EtherType.
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

    fn sll(arphrd: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0];
        f.extend_from_slice(&arphrd.to_be_bytes());
        f.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        f.extend_from_slice(&protocol.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn sll2(arphrd: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = protocol.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
        f.extend_from_slice(&arphrd.to_be_bytes());
        f.extend_from_slice(&[4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn v4_tcp(payload: &[u8]) -> Vec<u8> {
        ipv4(
            6,
            (false, 0),
            &tcp(40000, 104, TcpFlags::ACK | TcpFlags::PSH, 0, payload),
        )
    }

    fn decode_one(linktype: u32, frame: &[u8]) -> (Option<Packet<'_>>, WireStats) {
        let mut d = WireDecoder::new();
        let p = d.decode(TS, linktype, frame);
        (p, d.stats)
    }

    fn assert_v4_packet(p: &Packet<'_>, payload: &[u8]) {
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
        s.tcp + s.non_tcp + s.non_ip + s.truncated + s.malformed + s.ip_fragments + s.unsupported_link
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
                        let general = general_path(TS, *lt, &f);
                        assert!(same(&fast, &general), "lt {lt} len {len}: {fast:?} vs {general:?}");
                    }
                }
            }
        }
        assert!(fast_hits > 1000, "{fast_hits}");
    }

    /// Throughput of the fast path (Ethernet / IPv4 / TCP) and of the general path (QinQ /
    /// IPv6), on full-size and minimum-size frames. Not a test of speed — no assertion — just a
    /// quick measurement: `cargo test -p pacstap-wire --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore]
    fn throughput() {
        let cases = [
            ("eth/ipv4/tcp 1460", eth(&[], 0x0800, &v4_tcp(&[0x42; 1460]))),
            ("eth/ipv4/tcp 0", eth(&[], 0x0800, &v4_tcp(&[]))),
            (
                "qinq/ipv6/tcp 1440",
                eth(
                    &[0x88a8, 0x8100],
                    0x86dd,
                    &ipv6(&[], 6, &tcp(1, 2, 0x10, 0, &[7; 1440])),
                ),
            ),
            (
                "qinq/ipv6/tcp 0",
                eth(&[0x88a8, 0x8100], 0x86dd, &ipv6(&[], 6, &tcp(1, 2, 0x10, 0, &[]))),
            ),
        ];
        for (name, frame) in &cases {
            let mut d = WireDecoder::new();
            let n = 5_000_000u64;
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
            assert_eq!(d.stats.tcp, n);
        }
    }
}
