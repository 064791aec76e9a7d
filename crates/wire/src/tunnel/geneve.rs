//! Geneve (RFC 8926 §3.4): an 8-byte header plus variable options after a UDP header.
//!
//! ```text
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! ```
//!
//! `Opt Len` counts 4-byte words of options (so at most 252 bytes); the options are skipped, not
//! read. The protocol type is an EtherType: 0x6558 (Transparent Ethernet Bridging) for an inner
//! Ethernet frame, 0x0800 / 0x86DD for an inner IP packet. Only version 0 exists (§3.4: a packet
//! with an unknown version MUST be dropped); another is counted as an unsupported tunnel.

use crate::NotDecoded;

/// The fixed part of the header (RFC 8926 §3.4).
pub(crate) const HEADER_LEN: usize = 8;

/// A decoded Geneve header: the VNI, the inner protocol (an EtherType) and what follows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Geneve<'a> {
    pub vni: u32,
    pub protocol: u16,
    pub payload: &'a [u8],
}

pub(crate) fn decap(udp_payload: &[u8]) -> Result<Geneve<'_>, NotDecoded> {
    let h: &[u8; HEADER_LEN] = udp_payload
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    if h[0] >> 6 != 0 {
        return Err(NotDecoded::UnsupportedTunnel);
    }
    let options = usize::from(h[0] & 0x3f) * 4;
    let payload = udp_payload.get(HEADER_LEN + options..).ok_or(NotDecoded::Truncated)?;
    Ok(Geneve {
        vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        protocol: u16::from_be_bytes([h[2], h[3]]),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opt_words: u8, protocol: u16) -> Vec<u8> {
        let mut h = vec![opt_words, 0];
        h.extend_from_slice(&protocol.to_be_bytes());
        h.extend_from_slice(&[0xab, 0xcd, 0xef, 0]);
        h.extend(std::iter::repeat_n(0x5a, usize::from(opt_words) * 4));
        h
    }

    #[test]
    fn options_are_skipped() {
        for words in [0u8, 1, 2, 63] {
            let mut p = header(words, 0x6558);
            p.extend_from_slice(b"frame");
            let g = decap(&p).unwrap();
            assert_eq!(
                (g.vni, g.protocol, g.payload),
                (0xab_cdef, 0x6558, &b"frame"[..]),
                "{words}"
            );
            // Every cut inside the header or its options.
            for cut in 0..HEADER_LEN + usize::from(words) * 4 {
                assert_eq!(decap(&p[..cut]), Err(NotDecoded::Truncated), "{words} {cut}");
            }
        }
    }

    #[test]
    fn unknown_version_is_unsupported() {
        let mut p = header(0, 0x0800);
        p[0] |= 0x40;
        assert_eq!(decap(&p), Err(NotDecoded::UnsupportedTunnel));
    }
}
