//! What the decoder saw, counted: [`WireStats`], the bounded [`TopPorts`] summary of UDP
//! destination ports that were not decoded, and [`decode_hint`], the one plain sentence that
//! tells a user why most of a capture gave nothing.

use crate::tunnel::TunnelKind;

/// What the decoder saw, by outcome. Every frame is counted in `frames` and in exactly one of
/// `tcp`, `non_tcp`, `non_ip`, `truncated`, `malformed`, `ip_fragments`, `unsupported_link`,
/// `too_deep`, `unsupported_tunnel`. In addition: `vlan_tagged` counts the frames that carried at
/// least one VLAN tag (at any depth), `payload_cut` the TCP packets whose payload the snaplen cut,
/// and `vxlan` … `cisco_metadata` the frames that carried that encapsulation or tag (once per
/// frame, whatever came of the frame; ERSPAN frames count as ERSPAN, not as GRE).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WireStats {
    pub frames: u64,
    /// Decoded into a [`pacstap_core::Packet`].
    pub tcp: u64,
    /// IP, but not TCP (UDP, ICMP, …).
    pub non_tcp: u64,
    /// Not IP (ARP, LLDP, STP, netlink, …).
    pub non_ip: u64,
    /// A link, tunnel, IP or TCP header cut short by the snaplen or the frame's end.
    pub truncated: u64,
    /// A header whose contents are invalid (bad IP version, IHL below 5, TCP data offset below 5…).
    pub malformed: u64,
    /// IP fragments, handed to the defragmentation stage ([`crate::Decoded::fragment`]).
    pub ip_fragments: u64,
    /// A link type this decoder does not know.
    pub unsupported_link: u64,
    /// More nested encapsulations than [`crate::MAX_ENCAPSULATIONS`] (or MPLS labels than its cap).
    pub too_deep: u64,
    /// A tunnel this decoder recognises but does not decode (GRE version 1 / PPTP, GRE source
    /// routing, an unknown ERSPAN version or frame type, Geneve version ≠ 0, a GRE or Geneve
    /// protocol type that is not Ethernet, IP or MPLS).
    pub unsupported_tunnel: u64,
    pub vlan_tagged: u64,
    /// TCP packets whose captured payload is shorter than the IP header says was sent (snaplen).
    pub payload_cut: u64,
    pub vxlan: u64,
    pub geneve: u64,
    /// GRE carrying Ethernet, IP or MPLS (ERSPAN is counted in `erspan_*` instead).
    pub gre: u64,
    pub erspan_i: u64,
    pub erspan_ii: u64,
    pub erspan_iii: u64,
    pub mpls: u64,
    pub pppoe: u64,
    /// Frames that carried a switch tag between the MAC addresses and the EtherType (a SPAN of
    /// fabric-extender or TrustSec ports): VN-Tag, IEEE 802.1BR E-Tag, Cisco MetaData.
    pub vn_tag: u64,
    pub e_tag: u64,
    pub cisco_metadata: u64,
    /// Destination ports of the UDP datagrams that were not decoded (for [`decode_hint`]).
    pub udp_ports: TopPorts,
}

impl WireStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &WireStats) {
        let WireStats {
            frames,
            tcp,
            non_tcp,
            non_ip,
            truncated,
            malformed,
            ip_fragments,
            unsupported_link,
            too_deep,
            unsupported_tunnel,
            vlan_tagged,
            payload_cut,
            vxlan,
            geneve,
            gre,
            erspan_i,
            erspan_ii,
            erspan_iii,
            mpls,
            pppoe,
            vn_tag,
            e_tag,
            cisco_metadata,
            udp_ports,
        } = other;
        self.frames += frames;
        self.tcp += tcp;
        self.non_tcp += non_tcp;
        self.non_ip += non_ip;
        self.truncated += truncated;
        self.malformed += malformed;
        self.ip_fragments += ip_fragments;
        self.unsupported_link += unsupported_link;
        self.too_deep += too_deep;
        self.unsupported_tunnel += unsupported_tunnel;
        self.vlan_tagged += vlan_tagged;
        self.payload_cut += payload_cut;
        self.vxlan += vxlan;
        self.geneve += geneve;
        self.gre += gre;
        self.erspan_i += erspan_i;
        self.erspan_ii += erspan_ii;
        self.erspan_iii += erspan_iii;
        self.mpls += mpls;
        self.pppoe += pppoe;
        self.vn_tag += vn_tag;
        self.e_tag += e_tag;
        self.cisco_metadata += cisco_metadata;
        self.udp_ports.merge(udp_ports);
    }

    /// The counter of frames that carried `kind`.
    pub fn decapsulated(&self, kind: TunnelKind) -> u64 {
        match kind {
            TunnelKind::Vxlan => self.vxlan,
            TunnelKind::Geneve => self.geneve,
            TunnelKind::Gre => self.gre,
            TunnelKind::ErspanI => self.erspan_i,
            TunnelKind::ErspanII => self.erspan_ii,
            TunnelKind::ErspanIII => self.erspan_iii,
            TunnelKind::Mpls => self.mpls,
            TunnelKind::Pppoe => self.pppoe,
            TunnelKind::VnTag => self.vn_tag,
            TunnelKind::ETag => self.e_tag,
            TunnelKind::CiscoMetadata => self.cisco_metadata,
        }
    }

    pub(crate) fn decapsulated_mut(&mut self, kind: TunnelKind) -> &mut u64 {
        match kind {
            TunnelKind::Vxlan => &mut self.vxlan,
            TunnelKind::Geneve => &mut self.geneve,
            TunnelKind::Gre => &mut self.gre,
            TunnelKind::ErspanI => &mut self.erspan_i,
            TunnelKind::ErspanII => &mut self.erspan_ii,
            TunnelKind::ErspanIII => &mut self.erspan_iii,
            TunnelKind::Mpls => &mut self.mpls,
            TunnelKind::Pppoe => &mut self.pppoe,
            TunnelKind::VnTag => &mut self.vn_tag,
            TunnelKind::ETag => &mut self.e_tag,
            TunnelKind::CiscoMetadata => &mut self.cisco_metadata,
        }
    }
}

/// The most frequent UDP destination ports, approximately, in fixed memory: the Space-Saving
/// summary (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements
/// in Data Streams", ICDT 2005). With [`TopPorts::SLOTS`] slots, any port sent more than
/// 1/SLOTS of the datagrams is held, and a count overestimates by at most the smallest count
/// held. That is all the hint needs ("most frames go to port N"), at 16 × 16 bytes per decoder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopPorts {
    /// (port, count); count 0 is an empty slot.
    slots: [(u16, u64); TopPorts::SLOTS],
}

impl TopPorts {
    pub const SLOTS: usize = 16;

    /// Counts `n` datagrams to `port`.
    pub fn add(&mut self, port: u16, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(slot) = self.slots.iter_mut().find(|s| s.1 > 0 && s.0 == port) {
            slot.1 = slot.1.saturating_add(n);
            return;
        }
        // An empty slot has count 0, so it is the minimum; else the least counted is replaced
        // and inherits its count (the Space-Saving overestimate).
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.1) {
            *min = (port, min.1.saturating_add(n));
        }
    }

    /// Another summary's counts, added port by port (still an overestimate, never an underestimate
    /// of a port held by both).
    pub fn merge(&mut self, other: &TopPorts) {
        for &(port, n) in &other.slots {
            self.add(port, n);
        }
    }

    /// The most counted port and its (over)estimated count.
    pub fn top(&self) -> Option<(u16, u64)> {
        self.slots
            .iter()
            .copied()
            .filter(|s| s.1 > 0)
            .max_by_key(|s| (s.1, u16::MAX - s.0))
    }
}

/// UDP ports of encapsulations a mirror delivers, for the hint: (port, what it probably is, the
/// option that decodes it, if one does).
const TUNNEL_PORTS: [(u16, &str, Option<&str>); 6] = [
    (4789, "VXLAN (IANA port)", Some("--decapsulate vxlan=4789")),
    (
        8472,
        "VXLAN on Linux's historical default port",
        Some("--decapsulate vxlan=4789,8472"),
    ),
    (6081, "Geneve (IANA port)", Some("--decapsulate geneve=6081")),
    (4790, "VXLAN-GPE, which pacstap does not decode", None),
    (4754, "GRE-in-UDP (RFC 8086), which pacstap does not decode", None),
    (2152, "GTP-U (mobile core), which pacstap does not decode", None),
];

/// One plain line when at least half of the frames gave nothing to analyse, saying the likely
/// reason: most frames are UDP to one port (a tunnel on a port not enabled?), or most are
/// not TCP at all. `None` when the capture looks fine. Meant for the end of a replay.
pub fn decode_hint(s: &WireStats) -> Option<String> {
    if s.frames == 0 {
        return None;
    }
    let pct = |n: u64| n.saturating_mul(100) / s.frames;
    if let Some((port, n)) = s.udp_ports.top() {
        // Space-Saving overestimates by at most the smallest slot; the non-TCP count bounds it.
        let n = n.min(s.non_tcp);
        if n.saturating_mul(2) >= s.frames {
            return Some(match TUNNEL_PORTS.iter().find(|t| t.0 == port) {
                Some((_, what, Some(option))) => {
                    format!("{}% of frames are UDP to port {port}: {what}? try {option}", pct(n))
                }
                Some((_, what, None)) => format!("{}% of frames are UDP to port {port}: {what}", pct(n)),
                None => format!(
                    "{}% of frames are UDP to port {port}, not TCP: a tunnel on another port? see --decapsulate",
                    pct(n)
                ),
            });
        }
    }
    // IP fragments are not lost: the defragmentation stage joins them and reports what it
    // could not (its own summary row), so they do not count as undecoded here.
    let undecoded = s.frames.saturating_sub(s.tcp).saturating_sub(s.ip_fragments);
    if undecoded.saturating_mul(2) < s.frames {
        return None;
    }
    let parts: Vec<String> = [
        (s.non_tcp, "not TCP"),
        (s.non_ip, "not IP"),
        (s.unsupported_tunnel, "an unsupported tunnel"),
        (s.too_deep, "nested too deep"),
        (s.truncated, "truncated"),
        (s.malformed, "malformed"),
        (s.unsupported_link, "an unsupported link type"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    Some(format!(
        "{}% of frames were not decoded as TCP ({}): pacstap reads TCP (DICOM, HTTP, TLS, HL7); see --decapsulate for tunnelled mirror traffic",
        pct(undecoded),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_counter() {
        let mut a = WireStats {
            frames: 3,
            vxlan: 1,
            too_deep: 2,
            ..WireStats::default()
        };
        a.udp_ports.add(8472, 2);
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!((b.frames, b.vxlan, b.too_deep), (6, 2, 4));
        assert_eq!(b.udp_ports.top(), Some((8472, 4)));
    }

    #[test]
    fn top_ports_is_bounded_and_finds_the_heavy_hitter() {
        let mut t = TopPorts::default();
        for i in 0..100_000u32 {
            // Every other datagram to 8472, the rest spread over 5000 ports.
            let port = if i % 2 == 0 { 8472 } else { 10_000 + (i % 5000) as u16 };
            t.add(port, 1);
        }
        let (port, n) = t.top().unwrap();
        assert_eq!(port, 8472);
        assert!((50_000..=50_000 + 100_000 / TopPorts::SLOTS as u64).contains(&n), "{n}");
        assert_eq!(std::mem::size_of::<TopPorts>(), TopPorts::SLOTS * 16);
    }

    #[test]
    fn hints() {
        let mut s = WireStats {
            frames: 100,
            non_tcp: 98,
            tcp: 2,
            ..WireStats::default()
        };
        s.udp_ports.add(8472, 98);
        assert_eq!(
            decode_hint(&s).unwrap(),
            "98% of frames are UDP to port 8472: VXLAN on Linux's historical default port? try --decapsulate vxlan=4789,8472"
        );
        let mut s2 = s.clone();
        s2.udp_ports = TopPorts::default();
        s2.udp_ports.add(4790, 60);
        assert!(decode_hint(&s2)
            .unwrap()
            .starts_with("60% of frames are UDP to port 4790: VXLAN-GPE"));
        s2.udp_ports = TopPorts::default();
        s2.udp_ports.add(53, 10);
        assert_eq!(
            decode_hint(&s2).unwrap(),
            "98% of frames were not decoded as TCP (98 not TCP): pacstap reads TCP (DICOM, HTTP, TLS, HL7); see --decapsulate for tunnelled mirror traffic"
        );
        let fine = WireStats {
            frames: 100,
            tcp: 60,
            non_tcp: 40,
            ..WireStats::default()
        };
        assert_eq!(decode_hint(&fine), None);
        assert_eq!(decode_hint(&WireStats::default()), None);
    }
}
