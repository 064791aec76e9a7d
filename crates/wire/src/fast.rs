//! The fast path: plain Ethernet (or raw) / IPv4 / TCP decoded by hand, without etherparse.
//!
//! Most frames on a PACS mirror port are exactly that, so this path skips building a
//! `LaxSlicedPacket`; anything else — tunnels included — returns `None` here and takes the
//! general path, which gives the same answer for the frames this one accepts (the
//! `fast_path_agrees_with_etherparse` test in `lib.rs`).

use crate::link::{be16, linktype};
use crate::Decoded;
use pacstap_core::{Endpoint, FlowKey, Packet, TcpFlags, TcpHeader, Timestamp};
use std::net::IpAddr;

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
pub(crate) fn fast_path(ts: Timestamp, linktype: u32, data: &[u8]) -> Option<Decoded<'_>> {
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
        vlan_tagged,
        ..Decoded::outcome(Ok(packet))
    })
}
