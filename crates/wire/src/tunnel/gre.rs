//! GRE (RFC 2784 §2.1 with the key and sequence number of RFC 2890 §2): IP protocol 47.
//!
//! ```text
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |      Checksum (optional)      |     Reserved1 / Offset        |  C or R set
//! |                         Key (optional)                        |  K set
//! |                 Sequence Number (optional)                    |  S set
//! ```
//!
//! Version 0 only. Version 1 is PPTP's "enhanced GRE" (RFC 2637 §4.1), carrying PPP, not ours:
//! counted as an unsupported tunnel, as is RFC 1701 source routing (R set: a variable list of
//! routing entries follows, obsoleted by RFC 2784 and not seen in mirroring). The protocol type
//! is an EtherType (0x6558 Transparent Ethernet Bridging, 0x0800, 0x86DD, 0x8847 MPLS, 0x88BE /
//! 0x22EB ERSPAN): what it selects is decided by the caller.

use crate::NotDecoded;

/// A decoded GRE header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Gre<'a> {
    pub protocol: u16,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    pub payload: &'a [u8],
}

const C: u8 = 0x80;
const R: u8 = 0x40;
const K: u8 = 0x20;
const S: u8 = 0x10;

pub(crate) fn decap(ip_payload: &[u8]) -> Result<Gre<'_>, NotDecoded> {
    let h: &[u8; 4] = ip_payload
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(NotDecoded::Truncated)?;
    let (flags, version) = (h[0], h[1] & 0x07);
    if version != 0 || flags & R != 0 {
        return Err(NotDecoded::UnsupportedTunnel);
    }
    let mut at = 4usize;
    if flags & C != 0 {
        at += 4;
    }
    let mut word = |present: bool| -> Result<Option<u32>, NotDecoded> {
        if !present {
            return Ok(None);
        }
        let w: [u8; 4] = ip_payload
            .get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .ok_or(NotDecoded::Truncated)?;
        at += 4;
        Ok(Some(u32::from_be_bytes(w)))
    };
    let key = word(flags & K != 0)?;
    let sequence = word(flags & S != 0)?;
    Ok(Gre {
        protocol: u16::from_be_bytes([h[2], h[3]]),
        key,
        sequence,
        payload: ip_payload.get(at..).ok_or(NotDecoded::Truncated)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, protocol: u16) -> Vec<u8> {
        let mut h = vec![flags, 0];
        h.extend_from_slice(&protocol.to_be_bytes());
        if flags & C != 0 {
            h.extend_from_slice(&[0xbe, 0xef, 0, 0]);
        }
        if flags & K != 0 {
            h.extend_from_slice(&7u32.to_be_bytes());
        }
        if flags & S != 0 {
            h.extend_from_slice(&9u32.to_be_bytes());
        }
        h
    }

    #[test]
    fn every_combination_of_optional_fields() {
        for flags in 0..8u8 {
            let flags = ((flags & 4) << 5) | ((flags & 2) << 4) | ((flags & 1) << 4); // C, K, S
            let mut p = header(flags, 0x6558);
            let len = p.len();
            p.extend_from_slice(b"eth");
            let g = decap(&p).unwrap();
            assert_eq!(g.protocol, 0x6558);
            assert_eq!(g.key, (flags & K != 0).then_some(7));
            assert_eq!(g.sequence, (flags & S != 0).then_some(9));
            assert_eq!(g.payload, b"eth");
            for cut in 0..len {
                assert_eq!(decap(&p[..cut]), Err(NotDecoded::Truncated), "{flags:x} {cut}");
            }
            assert_eq!(decap(&p[..len]).unwrap().payload, b"");
        }
    }

    #[test]
    fn pptp_and_source_routing_are_unsupported() {
        let mut pptp = header(K | S, 0x880b);
        pptp[1] = 0x01;
        assert_eq!(decap(&pptp), Err(NotDecoded::UnsupportedTunnel));
        let routed = header(R, 0x0800);
        assert_eq!(decap(&routed), Err(NotDecoded::UnsupportedTunnel));
    }
}
