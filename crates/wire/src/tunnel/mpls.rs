//! MPLS label stacks (RFC 3032 §2.1): EtherType 0x8847 (unicast) or 0x8848 (multicast).
//!
//! Each stack entry is 4 bytes, `Label(20) TC(3) S(1) TTL(8)`; S (bottom of stack) marks the
//! last. MPLS does not say what follows the stack — the label's binding does, which a tap never
//! sees — so, as Wireshark does by default, the first nibble of the payload decides:
//!
//! | nibble | payload |
//! |---|---|
//! | 4 / 6 | an IPv4 / IPv6 packet |
//! | 0 | the pseudowire control word (RFC 4385 §3: first nibble 0000, 4 bytes), then an Ethernet frame (RFC 4448 Ethernet pseudowire); unless only the reading without a control word puts a known EtherType (IP, VLAN, ARP, MPLS, PPPoE) at the EtherType's place: then an Ethernet frame whose destination MAC starts with 0 (e.g. a locally administered 02:…) |
//! | 1 | the pseudowire associated channel (RFC 4385 §3, OAM): not traffic, counted as non-IP |
//! | other | an Ethernet frame without a control word (a destination MAC starting with 0, 1, 4 or 6 is misread: RFC 4448 §4.6 recommends the control word for exactly that reason) |
//!
//! The stack is capped at [`MAX_LABELS`] entries.

use crate::NotDecoded;

/// Label stack entries read before giving up (the frame is counted as nested too deep). Real
/// stacks are short: an L3VPN or pseudowire pushes 2–3 labels, segment routing with
/// fast-reroute rarely more than 10 (RFC 8491's Maximum SID Depth is advertised per node in one
/// byte, and hardware reports ≤ 12); 16 leaves room without letting a frame make us walk its
/// whole length.
pub(crate) const MAX_LABELS: usize = 16;

/// Where the stack ends and what follows it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Payload<'a> {
    Ip(&'a [u8]),
    Ethernet(&'a [u8]),
    /// Pseudowire associated channel (OAM), or an empty payload.
    NotTraffic,
}

/// The top label and what the stack carries.
pub(crate) fn decap(data: &[u8]) -> Result<(u32, Payload<'_>), NotDecoded> {
    let mut top = None;
    for i in 0..MAX_LABELS {
        let at = i * 4;
        let e: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|e| e.try_into().ok())
            .ok_or(NotDecoded::Truncated)?;
        let entry = u32::from_be_bytes(e);
        let label = entry >> 12;
        top.get_or_insert(label);
        if entry & 0x100 != 0 {
            let payload = data.get(at + 4..).unwrap_or_default();
            return Ok((top.unwrap_or(label), classify(payload)?));
        }
    }
    Err(NotDecoded::TooDeep)
}

fn classify(payload: &[u8]) -> Result<Payload<'_>, NotDecoded> {
    let Some(first) = payload.first() else {
        return Ok(Payload::NotTraffic);
    };
    Ok(match first >> 4 {
        4 | 6 => Payload::Ip(payload),
        0 if !known_ether_type(payload, 4 + 12) && known_ether_type(payload, 12) => Payload::Ethernet(payload),
        0 => Payload::Ethernet(payload.get(4..).ok_or(NotDecoded::Truncated)?),
        1 => Payload::NotTraffic,
        _ => Payload::Ethernet(payload),
    })
}

/// An EtherType a pseudowire's Ethernet frame plausibly carries, at `at`.
fn known_ether_type(payload: &[u8], at: usize) -> bool {
    matches!(
        crate::link::be16(payload, at),
        Some(0x0800 | 0x86dd | 0x8100 | 0x88a8 | 0x9100 | 0x0806 | 0x8847 | 0x8848 | 0x8864)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(labels: &[u32]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            let bos = u32::from(i + 1 == labels.len());
            s.extend_from_slice(&((l << 12) | (bos << 8) | 64).to_be_bytes());
        }
        s
    }

    #[test]
    fn stack_then_payload_by_first_nibble() {
        let mut p = stack(&[100, 200, 300]);
        let len = p.len();
        p.extend_from_slice(&[0x45, 0, 0, 20]);
        assert_eq!(decap(&p), Ok((100, Payload::Ip(&[0x45, 0, 0, 20][..]))));
        for cut in 0..len {
            assert_eq!(decap(&p[..cut]), Err(NotDecoded::Truncated), "{cut}");
        }
        assert_eq!(decap(&p[..len]), Ok((100, Payload::NotTraffic)));
        // Control word, then Ethernet.
        let mut pw = stack(&[16]);
        pw.extend_from_slice(&[0, 0, 0, 1, 0x02, 0xaa]);
        assert_eq!(decap(&pw), Ok((16, Payload::Ethernet(&[0x02, 0xaa][..]))));
        assert_eq!(decap(&pw[..6]), Err(NotDecoded::Truncated));
        // No control word, a MAC starting with 0: the EtherType's place tells.
        let mut mac0 = stack(&[16]);
        mac0.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45]);
        assert_eq!(decap(&mac0).unwrap().1, Payload::Ethernet(&mac0[4..]));
        // No control word: a MAC starting with 0xa.
        let mut raw = stack(&[16]);
        raw.extend_from_slice(&[0xa0, 0xbb]);
        assert_eq!(decap(&raw), Ok((16, Payload::Ethernet(&[0xa0, 0xbb][..]))));
        // Associated channel.
        let mut ach = stack(&[13]);
        ach.extend_from_slice(&[0x10, 0, 0, 0x21]);
        assert_eq!(decap(&ach), Ok((13, Payload::NotTraffic)));
    }

    #[test]
    fn stack_cap() {
        let labels: Vec<u32> = (1..=MAX_LABELS as u32).collect();
        let mut p = stack(&labels);
        p.push(0x45);
        assert_eq!(decap(&p).unwrap().0, 1);
        let labels: Vec<u32> = (0..=MAX_LABELS as u32).collect();
        assert_eq!(decap(&stack(&labels)), Err(NotDecoded::TooDeep));
    }
}
