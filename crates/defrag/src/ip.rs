//! Reading one IP fragment and writing the reassembled datagram: pure functions over bytes.
//!
//! Written by hand rather than with etherparse: etherparse slices a fragment but has no
//! reassembly, and what is needed here is two header layouts (RFC 791 §3.1, RFC 8200 §3–§4.5)
//! with the exact byte positions to rewrite, which a slicing library does not hand out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol / IPv6 next-header number of TCP (IANA "Assigned Internet Protocol Numbers").
pub(crate) const TCP: u8 = 6;
/// UDP: carries VXLAN and Geneve tunnels (held only for their ports, see the crate docs).
pub(crate) const UDP: u8 = 17;
/// GRE (RFC 2784): carries GRE and ERSPAN mirror tunnels.
pub(crate) const GRE: u8 = 47;

/// IPv6 extension headers that may come before a Fragment header (RFC 8200 §4.1 order:
/// Hop-by-Hop Options 0, Destination Options 60, Routing 43) and the Fragment header (44).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;
/// At most this many extension headers are walked before the Fragment header. RFC 8200 §4.1
/// allows each of Hop-by-Hop, Routing and Destination Options once before it (Destination
/// Options twice in all); 8 leaves room for odd but valid stacks and bounds hostile ones.
const MAX_EXT_HEADERS: usize = 8;

/// Which datagram a fragment belongs to: RFC 791 §3.2 (source, destination, protocol,
/// identification) for IPv4; RFC 8200 §4.5 (source, destination, identification) for IPv6,
/// where `proto` is left 0 (the Fragment header's next header is only meaningful in the first
/// fragment, so it must not split a datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
}

/// How the reassembled datagram's header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    /// `next_header_at`: the byte of the unfragmentable part that named the Fragment header
    /// (byte 6 of the IPv6 header, or the first byte of the extension header before it).
    V6 {
        next_header_at: usize,
    },
}

/// One fragment, borrowed from the captured packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment<'a> {
    pub key: Key,
    pub family: Family,
    /// IPv4: the protocol; IPv6: the Fragment header's next header (the fragmentable part's first).
    pub proto: u8,
    /// Offset of `data` in the datagram's payload, in bytes.
    pub offset: u32,
    /// More Fragments.
    pub more: bool,
    /// IPv4: the header with options; IPv6: the unfragmentable part (header and extension
    /// headers before the Fragment header). Only the first fragment's is kept.
    pub header: &'a [u8],
    /// The fragment's share of the payload, trimmed to the length the IP header gives (so an
    /// Ethernet trailer is not taken for data).
    pub data: &'a [u8],
}

/// Why bytes handed over as a fragment are not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Shorter than its IP header says (snaplen): its bytes are not all there to join.
    Truncated,
    /// Not a valid IPv4 / IPv6 header, or an extension-header chain we do not walk.
    Malformed,
    /// A whole packet: no offset and no More Fragments (an IPv6 atomic fragment, RFC 6946,
    /// is one; the wire decoder decodes those itself).
    NotFragment,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Reads the IP packet `ip` (from its first header byte to the end of the capture) as a fragment.
pub(crate) fn parse(ip: &[u8]) -> Result<Fragment<'_>, Reject> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => parse_v4(ip),
        Some(6) => parse_v6(ip),
        Some(_) => Err(Reject::Malformed),
        None => Err(Reject::Truncated),
    }
}

/// RFC 791 §3.1: IHL at byte 0 (low nibble, 32-bit words), total length 2, identification 4,
/// flags (bit 0x2000 of the 16-bit word at 6: More Fragments) and offset (low 13 bits, 8-byte
/// units), protocol 9, addresses 12 and 16.
fn parse_v4(ip: &[u8]) -> Result<Fragment<'_>, Reject> {
    let h: &[u8; 20] = ip.get(..20).and_then(|h| h.try_into().ok()).ok_or(Reject::Truncated)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl {
        return Err(Reject::Malformed);
    }
    let packet = ip.get(..total).ok_or(Reject::Truncated)?;
    let flags = u16::from_be_bytes([h[6], h[7]]);
    let more = flags & 0x2000 != 0;
    let offset = u32::from(flags & 0x1fff) * 8;
    if !more && offset == 0 {
        return Err(Reject::NotFragment);
    }
    let (header, data) = (packet.get(..ihl), packet.get(ihl..));
    let (Some(header), Some(data)) = (header, data) else {
        return Err(Reject::Truncated);
    };
    Ok(Fragment {
        key: Key {
            src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            proto: h[9],
            id: u32::from(u16::from_be_bytes([h[4], h[5]])),
        },
        family: Family::V4,
        proto: h[9],
        offset,
        more,
        header,
        data,
    })
}

/// RFC 8200 §3: payload length at byte 4, next header 6, addresses 8 and 24. Extension
/// headers (§4.3–4.6): next header at 0, length at 1 in 8-byte units not counting the first 8.
/// Fragment header (§4.5): next header 0, offset (13 bits, 8-byte units) and M flag (bit 0) in
/// the 16-bit word at 2, identification at 4.
fn parse_v6(ip: &[u8]) -> Result<Fragment<'_>, Reject> {
    let h = ip.get(..40).ok_or(Reject::Truncated)?;
    let payload_len = usize::from(be16(h, 4).ok_or(Reject::Truncated)?);
    // Payload length 0 means a Jumbo Payload option (RFC 2675 §3), which forbids a Fragment header.
    if payload_len == 0 {
        return Err(Reject::Malformed);
    }
    let packet = ip.get(..40 + payload_len).ok_or(Reject::Truncated)?;
    let addr = |at: usize| -> Result<IpAddr, Reject> {
        let b: [u8; 16] = packet
            .get(at..at + 16)
            .and_then(|b| b.try_into().ok())
            .ok_or(Reject::Truncated)?;
        Ok(IpAddr::V6(Ipv6Addr::from(b)))
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    let mut next = *packet.get(6).ok_or(Reject::Truncated)?;
    let mut next_header_at = 6;
    let mut at = 40usize;
    for _ in 0..=MAX_EXT_HEADERS {
        match next {
            FRAGMENT => {
                let fh = packet.get(at..at + 8).ok_or(Reject::Malformed)?;
                let word = be16(fh, 2).ok_or(Reject::Malformed)?;
                let offset = u32::from(word >> 3) * 8;
                let more = word & 1 != 0;
                if offset == 0 && !more {
                    return Err(Reject::NotFragment);
                }
                let (Some(header), Some(data)) = (packet.get(..at), packet.get(at + 8..)) else {
                    return Err(Reject::Malformed);
                };
                return Ok(Fragment {
                    key: Key {
                        src,
                        dst,
                        proto: 0,
                        id: be32(fh, 4).ok_or(Reject::Malformed)?,
                    },
                    family: Family::V6 { next_header_at },
                    proto: *fh.first().ok_or(Reject::Malformed)?,
                    offset,
                    more,
                    header,
                    data,
                });
            }
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let (Some(&n), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
                    return Err(Reject::Malformed);
                };
                next_header_at = at;
                next = n;
                at += (usize::from(len) + 1) * 8;
            }
            _ => return Err(Reject::NotFragment),
        }
    }
    Err(Reject::Malformed)
}

/// The whole datagram: the first fragment's header rewritten for an unfragmented packet, then
/// the joined payload. `None` when the result would not fit its length field (65,535 bytes:
/// IPv4 total length, RFC 791 §3.1; IPv6 payload length, RFC 8200 §3).
pub(crate) fn build(family: Family, header: &[u8], proto: u8, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header);
    match family {
        Family::V4 => {
            let total = u16::try_from(header.len() + payload.len()).ok()?;
            out.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
            // Flags and fragment offset: no More Fragments, offset 0 (the first fragment's DF is
            // clear by definition, so the word is 0).
            out.get_mut(6..8)?.copy_from_slice(&[0, 0]);
            out.get_mut(10..12)?.copy_from_slice(&[0, 0]);
            let sum = checksum(out.get(..header.len())?);
            out.get_mut(10..12)?.copy_from_slice(&sum.to_be_bytes());
        }
        Family::V6 { next_header_at } => {
            let len = u16::try_from((header.len() - 40.min(header.len())) + payload.len()).ok()?;
            out.get_mut(4..6)?.copy_from_slice(&len.to_be_bytes());
            *out.get_mut(next_header_at)? = proto;
        }
    }
    out.extend_from_slice(payload);
    Some(out)
}

/// The Internet checksum (RFC 1071): one's complement of the one's-complement sum of 16-bit words.
pub(crate) fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        if let &[a, b] = w {
            sum += u32::from(u16::from_be_bytes([a, b]));
        }
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_the_rfc_1071_example() {
        // RFC 1071 §3 example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        for len in 0..80 {
            for fill in [0u8, 0x45, 0x4f, 0x60, 0xff] {
                let mut b = vec![fill; len];
                if let Some(f) = b.first_mut() {
                    *f = if fill == 0x60 { 0x60 } else { 0x45 };
                }
                let _ = parse(&b);
            }
        }
    }

    #[test]
    fn v6_jumbo_and_atomic_are_not_fragments() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, FRAGMENT, 64];
        p.extend_from_slice(&[0; 32]);
        assert_eq!(parse(&p).unwrap_err(), Reject::Malformed, "payload length 0: jumbo");
        p[5] = 8;
        p.extend_from_slice(&[TCP, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse(&p).unwrap_err(), Reject::NotFragment, "atomic fragment");
    }
}
