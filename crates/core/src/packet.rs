//! A decoded TCP packet: the output of `pacstap-wire`, the input of `pacstap-flow`.

use crate::flow::FlowKey;
use crate::time::Timestamp;

/// TCP flag bits (RFC 9293 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// The TCP header fields reassembly needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpHeader {
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
}

/// One TCP segment, borrowed from the capture buffer (no copy).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub ts: Timestamp,
    pub key: FlowKey,
    pub tcp: TcpHeader,
    /// TCP payload actually captured (may be shorter than on the wire if the snaplen cut it).
    pub payload: &'a [u8],
    /// Payload length the IP header claims; larger than `payload.len()` when snaplen truncated
    /// the frame — reassembly then records a gap rather than inventing bytes.
    pub wire_payload_len: u32,
    /// The innermost IP header as captured (IPv4 with its options, or the fixed IPv6 header):
    /// checksum validation needs it (ARCHITECTURE: control flags and checksums are validated
    /// the way endpoints validate them before a segment may change flow state).
    pub ip_header: &'a [u8],
    /// The TCP header as captured, options included (the checksum is at offset 16). With
    /// `payload` and the addresses in `key` it is everything the TCP checksum covers.
    pub tcp_header: &'a [u8],
}
