//! VXLAN (RFC 7348 §5): an 8-byte header after a UDP header, then a whole Ethernet frame.
//!
//! ```text
//!  0               1               2               3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! Recognised by the UDP destination port only (IANA 4789, plus the ports the operator adds:
//! Linux's historical default is 8472). The I flag says the VNI is valid; Wireshark decodes the
//! inner frame whatever the flags say, and so do we (the VNI is then `None`). VXLAN-GPE (UDP
//! 4790, draft-ietf-nvo3-vxlan-gpe) has a next-protocol field in the reserved bits: it is a
//! different header and is not decoded here.

use crate::NotDecoded;

/// The fixed header length (RFC 7348 §5).
pub(crate) const HEADER_LEN: usize = 8;

/// The VNI (when the I flag is set) and the inner Ethernet frame.
pub(crate) fn decap(udp_payload: &[u8]) -> Result<(Option<u32>, &[u8]), NotDecoded> {
    let h: &[u8; HEADER_LEN] = udp_payload
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    let vni = (h[0] & 0x08 != 0).then(|| u32::from_be_bytes([0, h[4], h[5], h[6]]));
    Ok((vni, udp_payload.get(HEADER_LEN..).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_and_inner_frame() {
        let mut p = vec![0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0x00];
        p.extend_from_slice(b"inner");
        assert_eq!(decap(&p), Ok((Some(0x12_3456), &b"inner"[..])));
        // I flag clear: still decoded (as Wireshark does), without a VNI.
        p[0] = 0;
        assert_eq!(decap(&p), Ok((None, &b"inner"[..])));
        for cut in 0..HEADER_LEN {
            assert_eq!(decap(&p[..cut]), Err(NotDecoded::Truncated), "{cut}");
        }
        assert_eq!(decap(&p[..HEADER_LEN]), Ok((None, &b""[..])));
    }
}
