//! The link layer: tcpdump LINKTYPE_ numbers, the link header of each, and the etherparse
//! slicing of what follows (Ethernet with its VLAN tags, an EtherType's payload, or IP).
//!
//! The two Linux cooked headers are decoded here (etherparse's lax parser has no entry point for
//! them, and SLL2 not at all); what follows them is sliced by etherparse from the EtherType on.

use crate::NotDecoded;
use etherparse::{EtherType, LaxSlicedPacket};

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

/// Where the network layer starts, after a link header or a tunnel header.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link<'a> {
    /// A whole Ethernet II frame, for etherparse to slice (including VLAN tags).
    Ethernet(&'a [u8]),
    /// A payload identified by an EtherType (Linux cooked captures, GRE, Geneve, PPPoE).
    EtherType(u16, &'a [u8]),
    /// An IPv4 or IPv6 header.
    Ip(&'a [u8]),
}

/// Slices `link` with etherparse: as far as it goes, with what stopped it in `stop_err`, or an
/// error when not even the first header is there.
#[inline(always)]
pub(crate) fn slice(link: Link<'_>) -> Result<LaxSlicedPacket<'_>, NotDecoded> {
    match link {
        Link::Ethernet(frame) => LaxSlicedPacket::from_ethernet(frame)
            // Only a length error is possible here: shorter than the 14-byte Ethernet header.
            .map_err(|_| NotDecoded::Truncated),
        Link::EtherType(ether_type, payload) => Ok(LaxSlicedPacket::from_ether_type(EtherType(ether_type), payload)),
        Link::Ip(packet) => LaxSlicedPacket::from_ip(packet).map_err(|e| match e {
            etherparse::err::ip::LaxHeaderSliceError::Len(_) => NotDecoded::Truncated,
            etherparse::err::ip::LaxHeaderSliceError::Content(_) => NotDecoded::Malformed,
        }),
    }
}

/// Strips the link header, per LINKTYPE.
#[inline]
pub(crate) fn link_payload(linktype: u32, data: &[u8]) -> Result<Link<'_>, NotDecoded> {
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
pub(crate) fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = data.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}
