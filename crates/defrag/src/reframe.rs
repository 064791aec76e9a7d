//! A reassembled datagram back behind a link header, so it travels on as a frame.
//!
//! Downstream, a frame has one link type, and evidence pcaps keep one link type per file (classic
//! pcap has a single `network` field; frames of another link type are skipped and counted). A
//! datagram handed on as `LINKTYPE_RAW` would therefore vanish from an Ethernet capture's
//! evidence. So when the first byte of the fragment is preceded by nothing but a plain link
//! header — Ethernet with up to three VLAN tags, Linux cooked v1/v2, BSD loopback, or none —
//! the datagram gets a copy of the frame's link header (EtherType unchanged: it named the same
//! IP version) and keeps the frame's link type. Anything else before the IP header (a tunnel,
//! once the wire decoder peels them) cannot be copied as is — its length fields would lie — and
//! the datagram goes on as `LINKTYPE_RAW`.

use pacstap_wire::linktype;

/// A reassembled datagram as a frame of `linktype`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reframed {
    pub linktype: u32,
    pub data: Vec<u8>,
}

/// `datagram` (built from `fragment`'s datagram) as a frame: behind the link header of `frame`
/// (the captured frame `fragment` was found in) when that header is a plain link header, else
/// as raw IP.
pub fn reframe(frame_linktype: u32, frame: &[u8], fragment: &[u8], datagram: Vec<u8>) -> Reframed {
    match link_header(frame_linktype, frame, fragment, datagram.first().map(|b| b >> 4)) {
        Some(header) if !header.is_empty() => {
            let mut data = Vec::with_capacity(header.len() + datagram.len());
            data.extend_from_slice(header);
            data.extend_from_slice(&datagram);
            Reframed {
                linktype: frame_linktype,
                data,
            }
        }
        Some(_) => Reframed {
            linktype: frame_linktype,
            data: datagram,
        },
        None => Reframed {
            linktype: linktype::RAW,
            data: datagram,
        },
    }
}

/// The bytes of `frame` before `fragment`, when `fragment` is the frame's tail and those bytes
/// are exactly a link header of `frame_linktype` announcing IP version `version`.
fn link_header<'a>(frame_linktype: u32, frame: &'a [u8], fragment: &[u8], version: Option<u8>) -> Option<&'a [u8]> {
    // Where the fragment starts in the frame: plain address arithmetic on two slices of one
    // buffer (the wire decoder hands out a subslice), checked, no `unsafe`.
    let offset = (fragment.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
    if offset.checked_add(fragment.len())? != frame.len() {
        return None;
    }
    let header = frame.get(..offset)?;
    let ether_type: u16 = match version? {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return None,
    };
    let be16 = |at: usize| {
        header
            .get(at..at.saturating_add(2))
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
    };
    let plain = match frame_linktype {
        linktype::RAW | linktype::DLT_RAW | linktype::DLT_RAW_OPENBSD | linktype::IPV4 | linktype::IPV6 => {
            header.is_empty()
        }
        // Address family only (tcpdump LINKTYPE_NULL / LOOP).
        linktype::NULL | linktype::LOOP => header.len() == 4,
        // Destination, source, then (TPID, TCI) per tag and the EtherType (IEEE 802.1Q §9.3).
        linktype::ETHERNET => {
            let tags = header.len().checked_sub(14).filter(|n| n % 4 == 0).map(|n| n / 4);
            tags.is_some_and(|tags| {
                tags <= 3
                    && (0..tags).all(|i| matches!(be16(12 + 4 * i), Some(0x8100 | 0x88a8 | 0x9100)))
                    && be16(header.len() - 2) == Some(ether_type)
            })
        }
        // Protocol at 14 of 16 (SLL) or at 0 of 20 (SLL2).
        linktype::LINUX_SLL => header.len() == 16 && be16(14) == Some(ether_type),
        linktype::LINUX_SLL2 => header.len() == 20 && be16(0) == Some(ether_type),
        _ => false,
    };
    plain.then_some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(tags: &[u16], ether_type: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for t in tags {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&[0, 100]);
        }
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn ethernet_and_vlan_headers_are_reused() {
        let ip = [0x45u8; 28];
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100]] {
            let frame = eth(tags, 0x0800, &ip);
            let frag = &frame[frame.len() - ip.len()..];
            let r = reframe(linktype::ETHERNET, &frame, frag, vec![0x45, 1, 2]);
            assert_eq!(r.linktype, linktype::ETHERNET);
            assert_eq!(&r.data[..frame.len() - ip.len()], &frame[..frame.len() - ip.len()]);
            assert_eq!(&r.data[frame.len() - ip.len()..], &[0x45, 1, 2]);
        }
    }

    #[test]
    fn anything_else_before_the_ip_header_goes_on_as_raw() {
        let ip = [0x45u8; 28];
        // A tunnel-like prefix: an outer IPv4 + UDP before the inner packet.
        let mut outer = eth(&[], 0x0800, &[0x45; 28]);
        outer.extend_from_slice(&ip);
        let frag = &outer[outer.len() - ip.len()..];
        let r = reframe(linktype::ETHERNET, &outer, frag, vec![0x45, 9]);
        assert_eq!((r.linktype, r.data), (linktype::RAW, vec![0x45, 9]));
        // A fragment that is not the frame's tail, or not from the frame at all.
        let frame = eth(&[], 0x0800, &ip);
        let r = reframe(linktype::ETHERNET, &frame, &frame[14..20], vec![0x45]);
        assert_eq!(r.linktype, linktype::RAW);
        let r = reframe(linktype::ETHERNET, &frame, &ip, vec![0x45]);
        assert_eq!(r.linktype, linktype::RAW);
        // EtherType naming the other IP version.
        let r = reframe(linktype::ETHERNET, &frame, &frame[14..], vec![0x60]);
        assert_eq!(r.linktype, linktype::RAW);
        // Raw IP stays raw, without a header.
        let r = reframe(linktype::RAW, &ip, &ip, vec![0x45]);
        assert_eq!((r.linktype, r.data), (linktype::RAW, vec![0x45]));
    }

    #[test]
    fn linux_cooked_headers_are_reused() {
        let ip = [0x60u8; 48];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x86ddu16.to_be_bytes());
        sll.extend_from_slice(&ip);
        let r = reframe(linktype::LINUX_SLL, &sll, &sll[16..], vec![0x60, 7]);
        assert_eq!((r.linktype, r.data.len()), (linktype::LINUX_SLL, 18));
        let mut sll2 = 0x86ddu16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        let r = reframe(linktype::LINUX_SLL2, &sll2, &sll2[20..], vec![0x60, 7]);
        assert_eq!((r.linktype, r.data.len()), (linktype::LINUX_SLL2, 22));
    }
}
