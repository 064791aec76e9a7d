//! Tunnel decapsulation: the general decoding path, which peels encapsulations until it reaches
//! a TCP segment (or a reason there is none).
//!
//! A mirror does not always deliver frames as they were on the wire. Cloud traffic mirroring
//! (AWS VPC Traffic Mirroring, Azure vTAP) sends VXLAN; Cisco and Arista remote SPAN send ERSPAN
//! in GRE; Linux and VMware overlays use VXLAN or Geneve; carrier links carry MPLS and PPPoE.
//! Each frame is peeled here, statelessly, layer by layer:
//!
//! | layer | recognised by | header | inner |
//! |---|---|---|---|
//! | VXLAN ([`vxlan`], RFC 7348) | UDP destination port in [`WireConfig::vxlan_ports`] | 8 bytes, VNI | Ethernet |
//! | Geneve ([`geneve`], RFC 8926) | UDP destination port in [`WireConfig::geneve_ports`] | 8 bytes + options, VNI | Ethernet (0x6558), IPv4, IPv6, MPLS |
//! | GRE ([`gre`], RFC 2784 / 2890) | IP protocol 47 | 4–16 bytes, key | Ethernet (0x6558), IPv4, IPv6, MPLS |
//! | ERSPAN I / II / III ([`erspan`], draft-foschiano-erspan-03) | GRE 0x88BE (I: no sequence number), 0x22EB | 0 / 8 / 12(+8) bytes, session | Ethernet (III: or IP) |
//! | MPLS ([`mpls`], RFC 3032) | EtherType 0x8847 / 0x8848 | 4 bytes per label | IP, or Ethernet (pseudowire) |
//! | PPPoE ([`pppoe`], RFC 2516) | EtherType 0x8864 | 6 + 2 bytes, session | IPv4, IPv6 |
//! | VN-Tag, E-Tag, Cisco MetaData ([`tags`]) | EtherType 0x8926, 0x893F, 0x8909 | 4, 6, 6 bytes | the EtherType after the tag |
//!
//! VLAN / QinQ tags inside any inner Ethernet frame are etherparse's, as on the outer frame.
//!
//! # Why hand-decoded
//!
//! etherparse 0.21 slices Ethernet, VLAN, MACsec, IPv4/IPv6 and UDP — used here for every
//! Ethernet, IP and UDP layer, inner or outer — but has no VXLAN, Geneve, GRE, ERSPAN, MPLS or
//! PPPoE. The crates that have some of them (pnet_packet: GRE, VXLAN) miss the others (Geneve,
//! ERSPAN, MPLS) and bring a second packet model beside etherparse's; each header is a few fixed
//! fields, so each gets a small checked decoder in its own file, with its spec's layout.
//!
//! # Bounded
//!
//! Each frame is peeled at most [`MAX_ENCAPSULATIONS`] times; a frame nested deeper (a
//! tunnel-in-tunnel bomb) is counted as `too_deep`, not decoded. Every layer is a bounds-checked
//! slice of the frame: no copy, no allocation, no state, so decoding a frame costs at most that
//! many etherparse slicings.
//!
//! # The tunnel id is not part of the flow key
//!
//! The [`Packet`]'s key is the inner 5-tuple only; the outermost tunnel's id (VNI, ERSPAN session,
//! GRE key, MPLS label, PPPoE session) is reported on [`Decoded::tunnel`] for counters. A mirror
//! delivers copies: the same connection seen through two ERSPAN sessions, or as ingress and
//! egress copies of one port, must merge as duplicates (which reassembly already absorbs), not
//! become two flows with every event twice. A hospital's address plan does not reuse the same
//! addresses across the overlays a sensor is given; if one ever did, the two tenants' flows would
//! share a key — the lesser evil, and visible as overlap conflicts in the summary.

pub(crate) mod erspan;
pub(crate) mod geneve;
pub(crate) mod gre;
pub(crate) mod mpls;
pub(crate) mod pppoe;
pub(crate) mod tags;
pub(crate) mod vxlan;

use crate::ip::{fragment_slice, tcp_packet};
use crate::link::{link_payload, slice, Link};
use crate::{Decoded, NotDecoded, WireConfig};
use etherparse::{ip_number, LaxLinkExtSlice, LaxSlicedPacket, TransportSlice};
#[cfg(doc)]
use pacstap_core::Packet;
use pacstap_core::Timestamp;

/// Encapsulations peeled from one frame before it is counted `too_deep` instead. The deepest
/// stacks seen in practice are three: a mirror tunnel (ERSPAN or VXLAN) around an overlay
/// (VXLAN / Geneve) around MPLS or PPPoE. Eight leaves room for odd but honest setups while
/// bounding the work per frame to eight etherparse slicings.
pub const MAX_ENCAPSULATIONS: usize = 8;

/// A kind of encapsulation the decoder peels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    Gre,
    ErspanI,
    ErspanII,
    ErspanIII,
    Mpls,
    Pppoe,
    /// Cisco VN-Tag (UCS / Nexus fabric extenders).
    VnTag,
    /// IEEE 802.1BR E-Tag (bridge port extension).
    ETag,
    /// Cisco MetaData: TrustSec inline SGT tagging.
    CiscoMetadata,
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 11] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::ErspanI,
        TunnelKind::ErspanII,
        TunnelKind::ErspanIII,
        TunnelKind::Mpls,
        TunnelKind::Pppoe,
        TunnelKind::VnTag,
        TunnelKind::ETag,
        TunnelKind::CiscoMetadata,
    ];

    /// The snake_case name used in counters and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::ErspanI => "erspan_i",
            TunnelKind::ErspanII => "erspan_ii",
            TunnelKind::ErspanIII => "erspan_iii",
            TunnelKind::Mpls => "mpls",
            TunnelKind::Pppoe => "pppoe",
            TunnelKind::VnTag => "vn_tag",
            TunnelKind::ETag => "e_tag",
            TunnelKind::CiscoMetadata => "cisco_metadata",
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A tunnel a frame came through, and its id where the header has one: VXLAN / Geneve VNI,
/// ERSPAN II / III session id, GRE key, top MPLS label, PPPoE session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelInfo {
    pub kind: TunnelKind,
    pub id: Option<u32>,
}

/// The set of encapsulation kinds one frame carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Encapsulations(u16);

impl Encapsulations {
    pub fn contains(self, kind: TunnelKind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = TunnelKind> {
        TunnelKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    fn insert(&mut self, kind: TunnelKind) {
        self.0 |= kind.bit();
    }
}

/// The tunnel header found below a layer: its kind, and its id and inner layer, or why not.
type Inner<'a> = (TunnelKind, Result<(Option<u32>, Link<'a>), NotDecoded>);

/// Every link type and every encapsulation through etherparse and the tunnel decoders: the
/// reference the fast path is tested against. The first layer is decoded here as it was before
/// tunnels existed; only a frame that is not TCP there goes on to [`peel`], so IPv6, QinQ and
/// the other general-path frames pay nothing for the tunnels.
#[inline]
pub(crate) fn general_path<'a>(cfg: &WireConfig, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Decoded<'a> {
    let sliced = match link_payload(linktype, data).and_then(slice) {
        Ok(s) => s,
        Err(e) => return Decoded::outcome(Err(e)),
    };
    let vlan_tagged = sliced.link_exts.iter().any(|e| matches!(e, LaxLinkExtSlice::Vlan(_)));
    match tcp_packet(ts, data, &sliced) {
        Ok(p) => Decoded {
            vlan_tagged,
            ..Decoded::outcome(Ok(p))
        },
        Err(NotDecoded::IpFragment) => Decoded {
            vlan_tagged,
            fragment: fragment_slice(data, &sliced),
            ..Decoded::outcome(Err(NotDecoded::IpFragment))
        },
        Err(e @ (NotDecoded::NonTcp | NotDecoded::NonIp)) => peel(cfg, ts, data, &sliced, e, vlan_tagged),
        Err(e) => Decoded {
            vlan_tagged,
            ..Decoded::outcome(Err(e))
        },
    }
}

/// The UDP destination port of a datagram that was not decapsulated.
fn udp_port(s: &LaxSlicedPacket<'_>) -> Option<u16> {
    match &s.transport {
        Some(TransportSlice::Udp(u)) => Some(u.destination_port()),
        _ => None,
    }
}

/// Peels the encapsulations below `outer` (a layer that was not TCP, `not_tcp` saying which)
/// until a TCP segment, something that is no tunnel, or the depth cap.
#[inline(never)]
fn peel<'a>(
    cfg: &WireConfig,
    ts: Timestamp,
    data: &'a [u8],
    outer: &LaxSlicedPacket<'a>,
    not_tcp: NotDecoded,
    vlan_tagged: bool,
) -> Decoded<'a> {
    let mut vlan_tagged = vlan_tagged;
    let mut not_tcp = not_tcp;
    let mut tunnel = None;
    let mut encapsulations = Encapsulations::default();
    let mut peeled = 0usize;
    let mut step = cfg.enabled.then(|| inner(cfg, outer)).flatten();
    let mut last_udp_port = step.is_none().then(|| udp_port(outer)).flatten();
    let done = |packet, vlan_tagged, tunnel, encapsulations, fragment, udp_port| Decoded {
        packet,
        vlan_tagged,
        fragment,
        tunnel,
        encapsulations,
        udp_port,
    };
    loop {
        let Some((kind, found)) = step else {
            return done(Err(not_tcp), vlan_tagged, tunnel, encapsulations, None, last_udp_port);
        };
        if peeled == MAX_ENCAPSULATIONS {
            return done(
                Err(NotDecoded::TooDeep),
                vlan_tagged,
                tunnel,
                encapsulations,
                None,
                None,
            );
        }
        peeled += 1;
        encapsulations.insert(kind);
        let link = match found {
            Ok((id, next)) => {
                tunnel.get_or_insert(TunnelInfo { kind, id });
                next
            }
            Err(e) => return done(Err(e), vlan_tagged, tunnel, encapsulations, None, None),
        };
        let sliced = match slice(link) {
            Ok(s) => s,
            Err(e) => return done(Err(e), vlan_tagged, tunnel, encapsulations, None, None),
        };
        vlan_tagged |= sliced.link_exts.iter().any(|e| matches!(e, LaxLinkExtSlice::Vlan(_)));
        match tcp_packet(ts, data, &sliced) {
            Ok(p) => return done(Ok(p), vlan_tagged, tunnel, encapsulations, None, None),
            Err(NotDecoded::IpFragment) => {
                let fragment = fragment_slice(data, &sliced);
                return done(
                    Err(NotDecoded::IpFragment),
                    vlan_tagged,
                    tunnel,
                    encapsulations,
                    fragment,
                    None,
                );
            }
            Err(e @ (NotDecoded::NonTcp | NotDecoded::NonIp)) => {
                not_tcp = e;
                step = inner(cfg, &sliced);
                last_udp_port = step.is_none().then(|| udp_port(&sliced)).flatten();
            }
            Err(e) => return done(Err(e), vlan_tagged, tunnel, encapsulations, None, None),
        }
    }
}

/// The encapsulation below a layer that was not TCP, if it is one the decoder peels.
fn inner<'a>(cfg: &WireConfig, s: &LaxSlicedPacket<'a>) -> Option<Inner<'a>> {
    if let Some(TransportSlice::Udp(u)) = &s.transport {
        let port = u.destination_port();
        if cfg.vxlan_ports.contains(&port) {
            let r = vxlan::decap(u.payload()).map(|(vni, frame)| (vni, Link::Ethernet(frame)));
            return Some((TunnelKind::Vxlan, r));
        }
        if cfg.geneve_ports.contains(&port) {
            let r = geneve::decap(u.payload()).and_then(|g| Ok((Some(g.vni), by_ether_type(g.protocol, g.payload)?)));
            return Some((TunnelKind::Geneve, r));
        }
        return None;
    }
    if s.transport.is_none() {
        if let Some(p) = s.ip_payload() {
            return (p.ip_number == ip_number::GRE).then(|| gre_inner(p.payload));
        }
    }
    if s.net.is_none() && s.stop_err.is_none() {
        let e = s.ether_payload()?;
        return match e.ether_type.0 {
            0x8847 | 0x8848 => Some((
                TunnelKind::Mpls,
                mpls::decap(e.payload).and_then(|(label, payload)| {
                    let link = match payload {
                        mpls::Payload::Ip(p) => Link::Ip(p),
                        mpls::Payload::Ethernet(f) => Link::Ethernet(f),
                        mpls::Payload::NotTraffic => return Err(NotDecoded::NonIp),
                    };
                    Ok((Some(label), link))
                }),
            )),
            pppoe::ETHER_TYPE => Some((
                TunnelKind::Pppoe,
                pppoe::decap(e.payload).and_then(|(session, ppp)| match ppp {
                    pppoe::Ppp::Ip(ether_type, p) => Ok((Some(u32::from(session)), Link::EtherType(ether_type, p))),
                    pppoe::Ppp::NotIp => Err(NotDecoded::NonIp),
                }),
            )),
            ether_type => tags::tag(ether_type).map(|(kind, len)| {
                let r = tags::decap(len, e.payload).map(|(next, payload)| (None, Link::EtherType(next, payload)));
                (kind, r)
            }),
        };
    }
    None
}

/// GRE and what its protocol type selects: ERSPAN I / II / III, or an Ethernet, IP or MPLS
/// payload.
fn gre_inner(ip_payload: &[u8]) -> Inner<'_> {
    let g = match gre::decap(ip_payload) {
        Ok(g) => g,
        Err(e) => return (TunnelKind::Gre, Err(e)),
    };
    match g.protocol {
        erspan::TYPE_II_PROTOCOL if g.sequence.is_none() => {
            (TunnelKind::ErspanI, Ok((None, Link::Ethernet(g.payload))))
        }
        erspan::TYPE_II_PROTOCOL => (
            TunnelKind::ErspanII,
            erspan::type_ii(g.payload).map(|(session, frame)| (Some(u32::from(session)), Link::Ethernet(frame))),
        ),
        erspan::TYPE_III_PROTOCOL => (
            TunnelKind::ErspanIII,
            erspan::type_iii(g.payload).map(|(session, mirrored)| {
                let link = match mirrored {
                    erspan::Mirrored::Ethernet(f) => Link::Ethernet(f),
                    erspan::Mirrored::Ip(p) => Link::Ip(p),
                };
                (Some(u32::from(session)), link)
            }),
        ),
        protocol => (TunnelKind::Gre, by_ether_type(protocol, g.payload).map(|l| (g.key, l))),
    }
}

/// The inner layer a GRE or Geneve protocol type (an EtherType) selects.
fn by_ether_type(protocol: u16, payload: &[u8]) -> Result<Link<'_>, NotDecoded> {
    match protocol {
        // Transparent Ethernet Bridging (RFC 1701 §3.3 protocol types; RFC 8926 §3.4).
        0x6558 => Ok(Link::Ethernet(payload)),
        0x0800 | 0x86dd | 0x8847 | 0x8848 => Ok(Link::EtherType(protocol, payload)),
        _ => Err(NotDecoded::UnsupportedTunnel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds' names are exactly core's list, which metrics label by.
    #[test]
    fn kind_names_are_the_vocabulary_metrics_use() {
        let names: Vec<&str> = TunnelKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, pacstap_core::vocab::TUNNEL_KINDS);
    }
    use crate::linktype;
    use crate::testutil::*;
    use crate::{decode_frame_with, WireStats};
    use pacstap_core::{Endpoint, TcpFlags};
    use std::net::{IpAddr, Ipv4Addr};

    // ---- wrappers, byte by byte from each spec ----

    /// The inner frame every test wraps: Ethernet / IPv4 / TCP 40000 → 104 carrying `payload`.
    fn inner_eth(payload: &[u8]) -> Vec<u8> {
        eth(&[], 0x0800, &v4_tcp(payload))
    }

    fn over_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        eth(&[], 0x0800, &ipv4(17, (false, 0), &udp(54321, dport, payload)))
    }

    /// RFC 7348 §5, I flag set.
    fn vxlan_hdr(vni: u32) -> Vec<u8> {
        let v = vni.to_be_bytes();
        vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0]
    }

    fn vxlan(port: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
        over_udp(port, &[vxlan_hdr(vni), inner.to_vec()].concat())
    }

    /// RFC 8926 §3.4 with one 8-byte option (class 0x0103, type 0x80, length 1 word).
    fn geneve(protocol: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
        let v = vni.to_be_bytes();
        let mut g = vec![2, 0];
        g.extend_from_slice(&protocol.to_be_bytes());
        g.extend_from_slice(&[v[1], v[2], v[3], 0]);
        g.extend_from_slice(&[0x01, 0x03, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        g.extend_from_slice(inner);
        over_udp(6081, &g)
    }

    /// RFC 2784 / 2890: `flags` among C (0x80), K (0x20), S (0x10).
    fn gre_hdr(flags: u8, protocol: u16) -> Vec<u8> {
        let mut g = vec![flags, 0];
        g.extend_from_slice(&protocol.to_be_bytes());
        if flags & 0x80 != 0 {
            g.extend_from_slice(&[0, 0, 0, 0]);
        }
        if flags & 0x20 != 0 {
            g.extend_from_slice(&0x0000_0abcu32.to_be_bytes());
        }
        if flags & 0x10 != 0 {
            g.extend_from_slice(&77u32.to_be_bytes());
        }
        g
    }

    fn gre(flags: u16, protocol: u16, inner: &[u8]) -> Vec<u8> {
        eth(&[], 0x0800, &gre_ip(flags as u8, protocol, inner))
    }

    fn gre_ip(flags: u8, protocol: u16, inner: &[u8]) -> Vec<u8> {
        ipv4(47, (false, 0), &[gre_hdr(flags, protocol), inner.to_vec()].concat())
    }

    /// draft-foschiano-erspan-03 §4.2: version 1, VLAN 10, session 0x155.
    fn erspan_ii(inner: &[u8]) -> Vec<u8> {
        let mut h = vec![0x10, 0x0a, 0x01, 0x55, 0, 0, 0, 1];
        h.extend_from_slice(inner);
        gre(0x10, 0x88be, &h)
    }

    /// §4.3: version 2, session 0x2aa, frame type `ft`, with the platform sub-header when `o`.
    fn erspan_iii(ft: u16, o: bool, inner: &[u8]) -> Vec<u8> {
        let mut h = vec![0x20, 0x0a, 0x02, 0xaa, 0, 0, 0, 9, 0, 0];
        h.extend_from_slice(&((ft << 10) | u16::from(o)).to_be_bytes());
        if o {
            h.extend_from_slice(&[0x55; 8]);
        }
        h.extend_from_slice(inner);
        gre(0x10, 0x22eb, &h)
    }

    /// RFC 3032 label stack (bottom of stack on the last) then `payload`, in Ethernet 0x8847.
    fn mpls(labels: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            let bos = u32::from(i + 1 == labels.len());
            s.extend_from_slice(&((l << 12) | (bos << 8) | 255).to_be_bytes());
        }
        s.extend_from_slice(payload);
        eth(&[], 0x8847, &s)
    }

    /// RFC 2516 session, PPP IPv4.
    fn pppoe(ip: &[u8]) -> Vec<u8> {
        let mut p = vec![0x11, 0, 0x00, 0x2a];
        p.extend_from_slice(&(ip.len() as u16 + 2).to_be_bytes());
        p.extend_from_slice(&[0x00, 0x21]);
        p.extend_from_slice(ip);
        eth(&[], 0x8864, &p)
    }

    fn assert_inner(d: &Decoded<'_>, frame: &[u8], payload: &[u8]) {
        let p = d
            .packet
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?} {:?}", d.encapsulations));
        assert_eq!(p.key.src, Endpoint::new(IpAddr::V4(Ipv4Addr::from(A4)), 40000));
        assert_eq!(p.key.dst, Endpoint::new(IpAddr::V4(Ipv4Addr::from(B4)), 104));
        assert_eq!(p.payload, payload);
        assert_eq!(p.wire_payload_len, payload.len() as u32);
        assert_eq!(p.tcp.flags, TcpFlags(TcpFlags::ACK | TcpFlags::PSH));
        // The header slices are the inner ones, inside the frame.
        assert_eq!(p.ip_header.len(), 20);
        assert_eq!(p.tcp_header.len(), 20);
        let at = p.ip_header.as_ptr() as usize - frame.as_ptr() as usize;
        assert_eq!(&frame[at + 40..at + 40 + payload.len()], payload);
        assert_eq!(frame[at + 9], 6);
    }

    /// Every kind, with the id it reports and the counter it moves.
    fn cases() -> Vec<(&'static str, Vec<u8>, TunnelKind, Option<u32>)> {
        let body = b"A-ASSOCIATE-RQ";
        let ip = v4_tcp(body);
        let mut cw_eth = vec![0, 0, 0, 0];
        cw_eth.extend_from_slice(&inner_eth(body));
        vec![
            (
                "vxlan",
                vxlan(4789, 0x00ab_cdef, &inner_eth(body)),
                TunnelKind::Vxlan,
                Some(0xab_cdef),
            ),
            (
                "vxlan vlan",
                vxlan(4789, 7, &eth(&[0x8100], 0x0800, &ip)),
                TunnelKind::Vxlan,
                Some(7),
            ),
            (
                "geneve eth",
                geneve(0x6558, 42, &inner_eth(body)),
                TunnelKind::Geneve,
                Some(42),
            ),
            ("geneve ipv4", geneve(0x0800, 43, &ip), TunnelKind::Geneve, Some(43)),
            (
                "gre eth",
                gre(0x20, 0x6558, &inner_eth(body)),
                TunnelKind::Gre,
                Some(0xabc),
            ),
            ("gre ipv4 csum seq", gre(0x90, 0x0800, &ip), TunnelKind::Gre, None),
            (
                "erspan i",
                gre(0, 0x88be, &eth(&[0x8100], 0x0800, &ip)),
                TunnelKind::ErspanI,
                None,
            ),
            (
                "erspan ii",
                erspan_ii(&inner_eth(body)),
                TunnelKind::ErspanII,
                Some(0x155),
            ),
            (
                "erspan iii",
                erspan_iii(0, false, &inner_eth(body)),
                TunnelKind::ErspanIII,
                Some(0x2aa),
            ),
            (
                "erspan iii o",
                erspan_iii(0, true, &inner_eth(body)),
                TunnelKind::ErspanIII,
                Some(0x2aa),
            ),
            (
                "erspan iii ip",
                erspan_iii(2, false, &ip),
                TunnelKind::ErspanIII,
                Some(0x2aa),
            ),
            ("mpls ipv4", mpls(&[1000, 2000], &ip), TunnelKind::Mpls, Some(1000)),
            ("mpls pw cw", mpls(&[16], &cw_eth), TunnelKind::Mpls, Some(16)),
            (
                "mpls pw no cw",
                mpls(&[16], &inner_eth(body)),
                TunnelKind::Mpls,
                Some(16),
            ),
            ("pppoe", pppoe(&ip), TunnelKind::Pppoe, Some(0x2a)),
        ]
    }

    #[test]
    fn each_kind_yields_the_inner_packet() {
        let cfg = WireConfig::default();
        for (name, frame, kind, id) in cases() {
            let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &frame);
            assert_inner(&d, &frame, b"A-ASSOCIATE-RQ");
            assert_eq!(d.tunnel, Some(TunnelInfo { kind, id }), "{name}");
            assert_eq!(d.encapsulations.iter().collect::<Vec<_>>(), [kind], "{name}");
            assert_eq!((s.frames, s.tcp, s.decapsulated(kind)), (1, 1, 1), "{name}");
            assert_eq!(d.vlan_tagged, name.contains("vlan") || name == "erspan i", "{name}");
        }
    }

    #[test]
    fn every_truncation_point_is_counted_never_a_panic() {
        let cfg = WireConfig::default();
        for (name, frame, kind, _) in cases() {
            let whole = decode_frame_with(&cfg, TS, linktype::ETHERNET, &frame);
            let payload_at = {
                let p = whole.packet.unwrap();
                p.payload.as_ptr() as usize - frame.as_ptr() as usize
            };
            for cut in 0..frame.len() {
                let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &frame[..cut]);
                let outcomes =
                    s.tcp + s.non_tcp + s.non_ip + s.truncated + s.malformed + s.too_deep + s.unsupported_tunnel;
                assert_eq!(outcomes, 1, "{name} cut {cut}: {s:?}");
                if cut >= payload_at {
                    // Only the payload is short: decoded, the missing tail known.
                    let p = d.packet.unwrap();
                    assert_eq!(p.payload.len(), cut - payload_at, "{name} {cut}");
                    assert_eq!(p.wire_payload_len, 14, "{name} {cut}");
                    assert_eq!(s.payload_cut, 1);
                } else if cut >= 14 + 20 + 8 && s.decapsulated(kind) == 0 && kind != TunnelKind::Mpls {
                    panic!("{name} cut {cut}: tunnel not recognised: {s:?}");
                } else {
                    assert!(d.packet.is_err(), "{name} {cut}");
                }
            }
        }
    }

    #[test]
    fn tunnel_headers_cut_short_are_truncated() {
        // Cut right after the outer UDP / GRE header, inside the tunnel header.
        let cfg = WireConfig::default();
        let v = vxlan(4789, 1, &inner_eth(b"x"));
        for cut in 42..50 {
            let (_, s) = decode_cfg(&cfg, linktype::ETHERNET, &v[..cut]);
            assert_eq!((s.truncated, s.vxlan), (1, 1), "{cut}");
        }
        let e = erspan_ii(&inner_eth(b"x"));
        for cut in 34..34 + 8 + 8 {
            let (_, s) = decode_cfg(&cfg, linktype::ETHERNET, &e[..cut]);
            assert_eq!(s.truncated, 1, "{cut}");
        }
    }

    #[test]
    fn gre_in_gre_bomb_is_too_deep() {
        let ip = v4_tcp(b"deep");
        let nest = |n: usize| {
            let mut p = ip.clone();
            for _ in 0..n {
                p = gre_ip(0, 0x0800, &p);
            }
            p
        };
        let cfg = WireConfig::default();
        let ok = nest(MAX_ENCAPSULATIONS);
        let (d, s) = decode_cfg(&cfg, linktype::RAW, &ok);
        assert_eq!(d.packet.unwrap().payload, b"deep");
        assert_eq!((s.tcp, s.gre), (1, 1));
        for n in [MAX_ENCAPSULATIONS + 1, 50, 2000] {
            let bomb = nest(n);
            let start = std::time::Instant::now();
            let (d, s) = decode_cfg(&cfg, linktype::RAW, &bomb);
            assert_eq!(d.packet.unwrap_err(), NotDecoded::TooDeep);
            assert_eq!((s.too_deep, s.gre), (1, 1));
            // Bounded: the work stops at the cap, whatever the frame's length (generous for debug).
            assert!(start.elapsed() < std::time::Duration::from_millis(50), "{n}");
        }
        // Mixed nesting counts every kind once.
        let mixed = vxlan(4789, 1, &gre(0x00, 0x6558, &mpls(&[5], &v4_tcp(b"m"))));
        let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &mixed);
        assert_eq!(d.packet.unwrap().payload, b"m");
        assert_eq!((s.vxlan, s.gre, s.mpls), (1, 1, 1));
        assert_eq!(d.tunnel.unwrap().kind, TunnelKind::Vxlan);
    }

    #[test]
    fn ports_are_configurable_and_decapsulation_can_be_off() {
        let frame = vxlan(8472, 1, &inner_eth(b"x"));
        let (d, s) = decode_cfg(&WireConfig::default(), linktype::ETHERNET, &frame);
        assert_eq!(d.packet.unwrap_err(), NotDecoded::NonTcp);
        assert_eq!(d.udp_port, Some(8472));
        assert_eq!(s.udp_ports.top(), Some((8472, 1)));
        let mut cfg = WireConfig::default();
        cfg.apply_spec("vxlan=4789,8472").unwrap();
        assert!(decode_cfg(&cfg, linktype::ETHERNET, &frame).0.packet.is_ok());
        cfg.apply_spec("none").unwrap();
        let (_, s) = decode_cfg(&cfg, linktype::ETHERNET, &frame);
        assert_eq!((s.non_tcp, s.vxlan), (1, 0));
        let (_, s) = decode_cfg(&cfg, linktype::ETHERNET, &gre(0, 0x6558, &inner_eth(b"x")));
        assert_eq!((s.non_tcp, s.gre), (1, 0));
        let (_, s) = decode_cfg(&cfg, linktype::ETHERNET, &mpls(&[3], &v4_tcp(b"x")));
        assert_eq!((s.non_ip, s.mpls), (1, 0));
    }

    #[test]
    fn unsupported_tunnels_are_counted() {
        let cfg = WireConfig::default();
        let ip = v4_tcp(b"x");
        let mut pptp = gre(0x30, 0x880b, &[0xff, 0x03, 0x00, 0x21]);
        pptp[14 + 20 + 1] = 0x01; // version 1
        for (name, frame) in [
            ("pptp", pptp),
            ("gre wccp", gre(0, 0x883e, &ip)),
            ("geneve unknown protocol", geneve(0x1234, 1, &ip)),
            ("erspan iii frame type 5", erspan_iii(5, false, &ip)),
        ] {
            let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &frame);
            assert_eq!(d.packet.unwrap_err(), NotDecoded::UnsupportedTunnel, "{name}");
            assert_eq!(s.unsupported_tunnel, 1, "{name}");
        }
    }

    #[test]
    fn fragments_inside_and_outside_the_tunnel() {
        let cfg = WireConfig::default();
        // The inner packet is a fragment: it is handed over, tunnel headers peeled.
        let frag = ipv4(6, (true, 0), &tcp(1, 2, TcpFlags::ACK, 0, &[9; 32]));
        let frame = vxlan(4789, 1, &eth(&[], 0x0800, &frag));
        let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &frame);
        assert_eq!(d.packet.unwrap_err(), NotDecoded::IpFragment);
        assert_eq!(d.fragment, Some(&frag[..]));
        assert_eq!((s.ip_fragments, s.vxlan), (1, 1));
        // The outer VXLAN datagram is fragmented: the outer fragment is handed over; once
        // reassembled it comes back as a raw IP datagram and is decapsulated.
        let datagram = udp(54321, 4789, &[vxlan_hdr(1), inner_eth(b"whole")].concat());
        let first = ipv4(17, (true, 0), &datagram[..24]);
        let framed = eth(&[], 0x0800, &first);
        let d = decode_frame_with(&cfg, TS, linktype::ETHERNET, &framed);
        assert_eq!(d.fragment, Some(&first[..]));
        assert!(d.encapsulations.is_empty());
        let whole = ipv4(17, (false, 0), &datagram);
        let (d, s) = decode_cfg(&cfg, linktype::RAW, &whole);
        assert_eq!(d.packet.unwrap().payload, b"whole");
        assert_eq!(s.vxlan, 1);
    }

    #[test]
    fn ipv6_outer_and_inner() {
        let cfg = WireConfig::default();
        let inner6 = ipv6(&[], 6, &tcp(7, 8, TcpFlags::ACK, 0, b"six"));
        let outer = eth(
            &[],
            0x86dd,
            &ipv6(&[], 47, &[gre_hdr(0, 0x86dd), inner6.clone()].concat()),
        );
        let (d, s) = decode_cfg(&cfg, linktype::ETHERNET, &outer);
        let p = d.packet.unwrap();
        assert_eq!((p.payload, p.key.src.port), (&b"six"[..], 7));
        assert_eq!(s.gre, 1);
        let labelled = mpls(&[9], &inner6);
        let (d, _) = decode_cfg(&cfg, linktype::ETHERNET, &labelled);
        assert_eq!(d.packet.unwrap().payload, b"six");
    }

    #[test]
    fn garbage_inside_tunnels_never_panics() {
        let cfg = WireConfig::default();
        let mut d = crate::WireDecoder::with_config(cfg);
        let mut rng = 0x853c_49e6_748f_ea9bu64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut seen = WireStats::default();
        for (_, frame, _, _) in cases() {
            for _ in 0..3000 {
                let mut f = frame.clone();
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % f.len();
                    f[i] ^= next() as u8;
                }
                f.truncate((next() as usize) % (f.len() + 1));
                if let Some(p) = d.decode(TS, linktype::ETHERNET, &f) {
                    assert!(p.payload.len() <= f.len());
                }
            }
        }
        seen.merge(&d.stats);
        let s = &seen;
        let outcomes = s.tcp
            + s.non_tcp
            + s.non_ip
            + s.truncated
            + s.malformed
            + s.ip_fragments
            + s.too_deep
            + s.unsupported_tunnel;
        assert_eq!(outcomes, s.frames);
        assert!(s.tcp > 0 && s.truncated > 0 && s.unsupported_tunnel > 0, "{s:?}");
    }
}
