//! ERSPAN, Cisco's encapsulated remote SPAN (draft-foschiano-erspan-03), carried in GRE.
//!
//! * **Type I**: GRE protocol 0x88BE without a sequence number: no ERSPAN header, the mirrored
//!   Ethernet frame follows the GRE header directly (§4.1; Wireshark tells type I from II the
//!   same way).
//! * **Type II**: GRE 0x88BE with a sequence number, then 8 bytes (§4.2):
//!   `Ver(4)=1 VLAN(12) | COS(3) En(2) T(1) Session ID(10) | Reserved(12) Index(20)`.
//! * **Type III**: GRE 0x22EB, then 12 bytes (§4.3):
//!   `Ver(4)=2 VLAN(12) | COS(3) BSO(2) T(1) Session ID(10) | Timestamp(32) | SGT(16) |
//!   P(1) FT(5) HW ID(6) D(1) Gra(2) O(1)`, and with O set an 8-byte platform-specific
//!   sub-header. Frame type (FT) 0 is an Ethernet frame, 2 an IP packet; others are reserved.
//!
//! A version that does not match its GRE protocol, or an unknown frame type, is counted as an
//! unsupported tunnel: guessing where the mirrored frame starts would decode garbage.

use crate::NotDecoded;

/// GRE protocol type of ERSPAN types I and II.
pub(crate) const TYPE_II_PROTOCOL: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
pub(crate) const TYPE_III_PROTOCOL: u16 = 0x22eb;

const TYPE_II_LEN: usize = 8;
const TYPE_III_LEN: usize = 12;
const PLATFORM_SUBHEADER_LEN: usize = 8;

/// What the ERSPAN header says the mirrored data is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Mirrored<'a> {
    Ethernet(&'a [u8]),
    Ip(&'a [u8]),
}

/// Type II: the 10-bit session id and the mirrored Ethernet frame.
pub(crate) fn type_ii(gre_payload: &[u8]) -> Result<(u16, &[u8]), NotDecoded> {
    let h: &[u8; TYPE_II_LEN] = gre_payload
        .get(..TYPE_II_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    if h[0] >> 4 != 1 {
        return Err(NotDecoded::UnsupportedTunnel);
    }
    let session = u16::from_be_bytes([h[2], h[3]]) & 0x03ff;
    Ok((session, gre_payload.get(TYPE_II_LEN..).unwrap_or_default()))
}

/// Type III: the 10-bit session id and the mirrored frame or packet.
pub(crate) fn type_iii(gre_payload: &[u8]) -> Result<(u16, Mirrored<'_>), NotDecoded> {
    let h: &[u8; TYPE_III_LEN] = gre_payload
        .get(..TYPE_III_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    if h[0] >> 4 != 2 {
        return Err(NotDecoded::UnsupportedTunnel);
    }
    let session = u16::from_be_bytes([h[2], h[3]]) & 0x03ff;
    let last = u16::from_be_bytes([h[10], h[11]]);
    let frame_type = (last >> 10) & 0x1f;
    let len = if last & 1 != 0 {
        TYPE_III_LEN + PLATFORM_SUBHEADER_LEN
    } else {
        TYPE_III_LEN
    };
    let payload = gre_payload.get(len..).ok_or(NotDecoded::Truncated)?;
    match frame_type {
        0 => Ok((session, Mirrored::Ethernet(payload))),
        2 => Ok((session, Mirrored::Ip(payload))),
        _ => Err(NotDecoded::UnsupportedTunnel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ii_header() {
        // Ver 1, VLAN 100, COS 5, En 3, T 0, session 0x2aa, index 0x12345.
        let mut p = vec![0x10, 0x64, 0b1011_1010, 0xaa, 0x00, 0x01, 0x23, 0x45];
        p.extend_from_slice(b"eth");
        assert_eq!(type_ii(&p), Ok((0x2aa, &b"eth"[..])));
        for cut in 0..TYPE_II_LEN {
            assert_eq!(type_ii(&p[..cut]), Err(NotDecoded::Truncated), "{cut}");
        }
        p[0] = 0x20;
        assert_eq!(type_ii(&p), Err(NotDecoded::UnsupportedTunnel));
    }

    fn type_iii_header(frame_type: u16, o: bool) -> Vec<u8> {
        let mut p = vec![0x20, 0x0a, 0x00, 0x07, 1, 2, 3, 4, 0, 0];
        p.extend_from_slice(&((frame_type << 10) | u16::from(o)).to_be_bytes());
        if o {
            p.extend_from_slice(&[0xee; PLATFORM_SUBHEADER_LEN]);
        }
        p
    }

    #[test]
    fn type_iii_header_with_and_without_platform_subheader() {
        for o in [false, true] {
            let mut p = type_iii_header(0, o);
            let len = p.len();
            p.extend_from_slice(b"eth");
            assert_eq!(type_iii(&p), Ok((7, Mirrored::Ethernet(&b"eth"[..]))), "{o}");
            for cut in 0..len {
                assert_eq!(type_iii(&p[..cut]), Err(NotDecoded::Truncated), "{o} {cut}");
            }
        }
        let mut ip = type_iii_header(2, false);
        ip.push(0x45);
        assert_eq!(type_iii(&ip), Ok((7, Mirrored::Ip(&[0x45][..]))));
        assert_eq!(type_iii(&type_iii_header(5, false)), Err(NotDecoded::UnsupportedTunnel));
        let mut v1 = type_iii_header(0, false);
        v1[0] = 0x10;
        assert_eq!(type_iii(&v1), Err(NotDecoded::UnsupportedTunnel));
    }
}
