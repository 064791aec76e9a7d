//! Switch tags that sit between the MAC addresses and the EtherType, as a VLAN tag does, and
//! reach a tap in SPAN copies of the ports that carry them.
//!
//! ```text
//! VN-Tag (Cisco, EtherType 0x8926, IEEE 802.1Qbh draft):
//!   | D(1) P(1) DVIF_ID(14) | L(1) R(1) VER(2) SVIF_ID(12) | EtherType | payload
//! E-Tag (IEEE 802.1BR-2012 §7.7, E-TPID 0x893F):
//!   | E-PCP(3) E-DEI(1) IN_E-CID_base(12) | RES(2) GRP(2) E-CID_base(12) | IN_E-CID_ext(8) E-CID_ext(8) | EtherType | payload
//! Cisco MetaData (TrustSec inline SGT tagging, EtherType 0x8909):
//!   | VERSION(8) | LENGTH(8) | OPTION TYPE/LENGTH(16) | SGT(16) | EtherType | payload
//! ```
//!
//! Why: a port mirrored in a Cisco UCS / Nexus fabric (VN-Tag, 802.1BR port extenders) or on a
//! TrustSec link with inline tagging (Cisco MetaData) delivers every frame with the tag in it.
//! etherparse knows none of them and stops at the unknown EtherType, so without this every
//! frame of such a mirror would be counted non-IP. Each tag is a fixed header followed by the
//! EtherType of what it carries (Wireshark's `vntag`, `etag` and `cmd` dissectors read them the
//! same way; Snort 3 and Arkime skip the Cisco MetaData header the same six bytes). None of them
//! identifies a tunnel: like a VLAN tag, the tag is not reported as a tunnel id.

use super::TunnelKind;
use crate::NotDecoded;

/// EtherType of a VN-Tag.
pub(crate) const VN_TAG: u16 = 0x8926;
/// E-TPID of an IEEE 802.1BR E-Tag.
pub(crate) const E_TAG: u16 = 0x893F;
/// EtherType of the Cisco MetaData header.
pub(crate) const CISCO_METADATA: u16 = 0x8909;

/// The EtherType and payload after a tag of `tag_len` bytes (the tag without its own EtherType).
/// An EtherType below 0x0600 is an IEEE 802.3 length: LLC, not IP.
pub(crate) fn decap(tag_len: usize, data: &[u8]) -> Result<(u16, &[u8]), NotDecoded> {
    let next: [u8; 2] = data
        .get(tag_len..tag_len + 2)
        .and_then(|b| b.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    let ether_type = u16::from_be_bytes(next);
    if ether_type < 0x0600 {
        return Err(NotDecoded::NonIp);
    }
    Ok((ether_type, data.get(tag_len + 2..).unwrap_or_default()))
}

/// The kind of tag an EtherType announces and the bytes of the tag after that EtherType (before
/// the next one); `None` for an EtherType that is not one of these tags.
pub(crate) fn tag(ether_type: u16) -> Option<(TunnelKind, usize)> {
    match ether_type {
        VN_TAG => Some((TunnelKind::VnTag, 4)),
        E_TAG => Some((TunnelKind::ETag, 6)),
        // Version 1 with its one SGT option is all that is deployed (and all Wireshark reads).
        CISCO_METADATA => Some((TunnelKind::CiscoMetadata, 6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tag_gives_the_ether_type_and_payload_after_it() {
        let vn = [0x80, 0x05, 0x00, 0x07, 0x08, 0x00, 0x45];
        assert_eq!(decap(tag(VN_TAG).unwrap().1, &vn), Ok((0x0800, &[0x45u8][..])));
        let e = [0, 0, 0, 0x2a, 0, 0, 0x81, 0x00, 0, 5];
        assert_eq!(decap(tag(E_TAG).unwrap().1, &e), Ok((0x8100, &[0u8, 5][..])));
        let cmd = [0x01, 0x01, 0x00, 0x01, 0x00, 0x0a, 0x86, 0xdd];
        assert_eq!(decap(tag(CISCO_METADATA).unwrap().1, &cmd), Ok((0x86dd, &[][..])));
        assert_eq!(tag(0x0800), None);
        assert_eq!(tag(CISCO_METADATA).map(|t| t.0), Some(TunnelKind::CiscoMetadata));
    }

    #[test]
    fn short_or_llc_payloads_are_not_decoded() {
        for cut in 0..6 {
            let vn = [0x80, 0x05, 0x00, 0x07, 0x08, 0x00];
            assert_eq!(decap(4, &vn[..cut]), Err(NotDecoded::Truncated), "cut {cut}");
        }
        assert_eq!(decap(4, &[0, 0, 0, 0, 0x05, 0xdc, 0xaa]), Err(NotDecoded::NonIp));
    }
}
