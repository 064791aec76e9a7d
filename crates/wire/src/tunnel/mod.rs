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
//!
//! VLAN / QinQ tags inside any inner Ethernet frame are etherparse's, as on the outer frame.
//!
//! # Why hand-decoded
//!
//! etherparse 0.21 slices Ethernet, VLAN, MACsec, IPv4/IPv6 and UDP — used here for every
//! Ethernet, IP and UDP layer, inner or outer — but has no VXLAN, Geneve, GRE, ERSPAN, MPLS or
//! PPPoE. No maintained crate decodes these headers zero-copy over a borrowed frame (pnet's
//! packet types allocate-free but panic-prone accessors and no ERSPAN), and each is a few fixed
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
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 8] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::ErspanI,
        TunnelKind::ErspanII,
        TunnelKind::ErspanIII,
        TunnelKind::Mpls,
        TunnelKind::Pppoe,
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
/// reference the fast path is tested against.
pub(crate) fn general_path<'a>(cfg: &WireConfig, ts: Timestamp, linktype: u32, data: &'a [u8]) -> Decoded<'a> {
    let mut d = Decoded::outcome(Err(NotDecoded::Truncated));
    let mut link = match link_payload(linktype, data) {
        Ok(l) => l,
        Err(e) => return Decoded::outcome(Err(e)),
    };
    let mut peeled = 0usize;
    loop {
        let sliced = match slice(link) {
            Ok(s) => s,
            Err(e) => {
                d.packet = Err(e);
                return d;
            }
        };
        d.vlan_tagged |= sliced.link_exts.iter().any(|e| matches!(e, LaxLinkExtSlice::Vlan(_)));
        let not_tcp = match tcp_packet(ts, data, &sliced) {
            Ok(p) => {
                d.packet = Ok(p);
                return d;
            }
            Err(NotDecoded::IpFragment) => {
                d.packet = Err(NotDecoded::IpFragment);
                d.fragment = fragment_slice(data, &sliced);
                return d;
            }
            Err(e @ (NotDecoded::NonTcp | NotDecoded::NonIp)) => e,
            Err(e) => {
                d.packet = Err(e);
                return d;
            }
        };
        let Some((kind, inner)) = cfg.enabled.then(|| inner(cfg, &sliced)).flatten() else {
            if let Some(TransportSlice::Udp(u)) = &sliced.transport {
                d.udp_port = Some(u.destination_port());
            }
            d.packet = Err(not_tcp);
            return d;
        };
        if peeled == MAX_ENCAPSULATIONS {
            d.packet = Err(NotDecoded::TooDeep);
            return d;
        }
        peeled += 1;
        d.encapsulations.insert(kind);
        match inner {
            Ok((id, next)) => {
                d.tunnel.get_or_insert(crate::TunnelInfo { kind, id });
                link = next;
            }
            Err(e) => {
                d.packet = Err(e);
                return d;
            }
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
            _ => None,
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
        erspan::TYPE_II_PROTOCOL if g.sequence.is_none() => (TunnelKind::ErspanI, Ok((None, Link::Ethernet(g.payload)))),
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
