//! PPPoE session stage (RFC 2516 §4, EtherType 0x8864) carrying PPP (RFC 1661 §2).
//!
//! ```text
//! | VER(4)=1 | TYPE(4)=1 | CODE(8)=0 | SESSION_ID(16) | LENGTH(16) | PPP protocol | payload
//! ```
//!
//! PPP protocol 0x0021 is IPv4, 0x0057 IPv6 (IANA PPP DLL protocol numbers); anything else (LCP,
//! IPCP, CHAP…) is control traffic, counted as non-IP. A one-byte protocol field (PFC, RFC 1661
//! §6.5: PFC "SHOULD NOT" be used on PPPoE per RFC 2516 §7, yet allowed) is recognised by its odd
//! low bit. LENGTH covers the PPP frame; when the capture has less, what was captured is used.
//! The discovery stage (0x8863) is not traffic.

use crate::NotDecoded;

/// EtherType of the PPPoE session stage.
pub(crate) const ETHER_TYPE: u16 = 0x8864;
const HEADER_LEN: usize = 6;

/// What the PPP frame carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ppp<'a> {
    /// An IP packet (EtherType 0x0800 or 0x86DD) and its bytes.
    Ip(u16, &'a [u8]),
    NotIp,
}

/// The session id and the PPP payload.
pub(crate) fn decap(data: &[u8]) -> Result<(u16, Ppp<'_>), NotDecoded> {
    let h: &[u8; HEADER_LEN] = data
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    if h[0] != 0x11 || h[1] != 0 {
        return Err(NotDecoded::Malformed);
    }
    let session = u16::from_be_bytes([h[2], h[3]]);
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let ppp = data.get(HEADER_LEN..).unwrap_or_default();
    let ppp = ppp.get(..len).unwrap_or(ppp);
    let first = *ppp.first().ok_or(NotDecoded::Truncated)?;
    let (protocol, rest) = if first & 1 == 1 {
        (u16::from(first), ppp.get(1..).unwrap_or_default())
    } else {
        let p: [u8; 2] = ppp
            .get(..2)
            .and_then(|p| p.try_into().ok())
            .ok_or(NotDecoded::Truncated)?;
        (u16::from_be_bytes(p), ppp.get(2..).unwrap_or_default())
    };
    Ok((
        session,
        match protocol {
            0x0021 => Ppp::Ip(0x0800, rest),
            0x0057 => Ppp::Ip(0x86dd, rest),
            _ => Ppp::NotIp,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ipv4_ipv6_and_control() {
        let mut p = vec![0x11, 0, 0x12, 0x34, 0, 6, 0x00, 0x21, 0x45, 1, 2, 3, 0xff, 0xff];
        // LENGTH (6) cuts the trailing padding.
        assert_eq!(decap(&p), Ok((0x1234, Ppp::Ip(0x0800, &[0x45, 1, 2, 3][..]))));
        for cut in 0..8 {
            assert_eq!(decap(&p[..cut]), Err(NotDecoded::Truncated), "{cut}");
        }
        p[7] = 0x57;
        assert_eq!(decap(&p).unwrap().1, Ppp::Ip(0x86dd, &[0x45, 1, 2, 3][..]));
        p[6] = 0xc0; // LCP 0xc021
        p[7] = 0x21;
        assert_eq!(decap(&p).unwrap().1, Ppp::NotIp);
        // Compressed protocol field.
        let c = [0x11, 0, 0, 1, 0, 3, 0x21, 0x45, 0];
        assert_eq!(decap(&c).unwrap().1, Ppp::Ip(0x0800, &[0x45, 0][..]));
        // Not version 1 type 1, or a discovery code.
        assert_eq!(decap(&[0x21, 0, 0, 1, 0, 0]), Err(NotDecoded::Malformed));
        assert_eq!(decap(&[0x11, 0x09, 0, 1, 0, 0]), Err(NotDecoded::Malformed));
    }
}
