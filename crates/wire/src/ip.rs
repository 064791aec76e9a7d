//! From an etherparse-sliced IP packet to a TCP [`Packet`], or the reason there is none; and
//! the slices of the frame (IP header, fragment) that later stages need.

use crate::NotDecoded;
use etherparse::err::packet::SliceError;
use etherparse::err::Layer;
use etherparse::{ip_number, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pacstap_core::{Endpoint, FlowKey, Packet, TcpFlags, TcpHeader, Timestamp};
use std::net::IpAddr;

/// How etherparse's stop error classifies the frame.
fn stop_reason(stop: Option<&(SliceError, Layer)>) -> NotDecoded {
    match stop {
        Some((SliceError::Len(_), _)) | None => NotDecoded::Truncated,
        Some(_) => NotDecoded::Malformed,
    }
}

/// From a sliced frame to a TCP [`Packet`], or the reason there is none.
#[inline]
pub(crate) fn tcp_packet<'a>(ts: Timestamp, data: &'a [u8], s: &LaxSlicedPacket<'a>) -> Result<Packet<'a>, NotDecoded> {
    // (source, destination, IP payload, bytes the IP header claims, bytes of it captured)
    let (src, dst, ip_payload, claimed, captured) = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let p = v4.payload();
            let auth = v4.extensions().auth.map_or(0, |a| a.slice().len());
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                p,
                usize::from(h.total_len()),
                h.slice().len() + auth + p.payload.len(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let p = v6.payload();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                p,
                // Fixed 40-byte header plus Payload Length (RFC 8200 §3).
                40 + usize::from(h.payload_length()),
                h.slice().len() + v6.extensions().slice().len() + p.payload.len(),
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Err(NotDecoded::NonIp),
        None => {
            // No IP: either the EtherType is not IP (no error) or slicing stopped at a link or
            // IP header.
            return Err(match &s.stop_err {
                None => NotDecoded::NonIp,
                stop => stop_reason(stop.as_ref()),
            });
        }
    };
    let tcp = match &s.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        _ => {
            if ip_payload.fragmented {
                return Err(NotDecoded::IpFragment);
            }
            return Err(match &s.stop_err {
                // Stopped at the TCP header, or before the transport (IPv6 extension headers,
                // IPsec AH): the frame is cut or broken, whatever it carried.
                Some((_, layer)) if ip_payload.ip_number == ip_number::TCP || !is_non_tcp_transport(*layer) => {
                    stop_reason(s.stop_err.as_ref())
                }
                _ => NotDecoded::NonTcp,
            });
        }
    };
    let payload = tcp.payload();
    let ip_header = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => within(data, v4.header().slice()),
        Some(LaxNetSlice::Ipv6(v6)) => within(data, v6.header().slice()),
        _ => None,
    }
    .unwrap_or_default();
    let tcp_header = tcp.header_slice();
    // When the snaplen cut the frame, the IP header still says how much was sent.
    let missing = if ip_payload.incomplete {
        claimed.saturating_sub(captured)
    } else {
        0
    };
    let wire_payload_len = u32::try_from(payload.len().saturating_add(missing)).unwrap_or(u32::MAX);
    Ok(Packet {
        ts,
        key: FlowKey {
            src: Endpoint::new(src, tcp.source_port()),
            dst: Endpoint::new(dst, tcp.destination_port()),
        },
        tcp: TcpHeader {
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            // Byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN (RFC 9293 §3.1).
            flags: TcpFlags(tcp.slice().get(13).copied().unwrap_or(0)),
            window: tcp.window_size(),
        },
        payload,
        wire_payload_len,
        ip_header,
        tcp_header,
    })
}

/// The IP packet (header on) inside `data` that etherparse found fragmented. etherparse's slices
/// borrow from `data`, so the header's position in `data` is the distance between the two
/// pointers (plain address arithmetic, no `unsafe`).
pub(crate) fn fragment_slice<'a>(data: &'a [u8], s: &LaxSlicedPacket<'a>) -> Option<&'a [u8]> {
    let header = match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => v4.header().slice(),
        Some(LaxNetSlice::Ipv6(v6)) => v6.header().slice(),
        _ => return None,
    };
    let offset = (header.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    data.get(offset..)
}

/// `part` (a slice etherparse handed out with a shorter borrow) as a slice of `data`, found by
/// its position: etherparse only ever slices the frame it was given.
fn within<'a>(data: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let offset = (part.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
    data.get(offset..offset.checked_add(part.len())?)
}

/// Layers at which etherparse stops for a transport other than TCP.
fn is_non_tcp_transport(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::UdpHeader
            | Layer::UdpPayload
            | Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6
            | Layer::Igmp
    )
}
