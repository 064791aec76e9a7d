//! TCP control segments judged the way the endpoints judge them.
//!
//! A passive tap that believed every RST and SYN could be blinded by one spoofed packet: the
//! endpoints drop a RST whose sequence number is not the one they expect and answer an
//! unexpected SYN with a challenge ACK (RFC 5961 §3, §4), and the transfer goes on unseen.
//! The tap knows what a receiver expects from what it saw of the sender (the end of its
//! highest segment, SND.NXT) and of the receiver (its latest ACK, RCV.NXT), and how far the
//! receiver's window reaches (its advertised window, scaled as negotiated in the handshake,
//! RFC 7323 §2).

use pacstap_core::TcpFlags;

use crate::reassembly::seq_delta;

/// What a RST does to a connection (RFC 5961 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RstVerdict {
    /// Its sequence number is exactly what the receiver expects: the connection is reset.
    Exact,
    /// Within the receive window but not exact: the endpoint sends a challenge ACK and stays up;
    /// the tap cannot see how that ends, so it reports it and keeps the flow.
    InWindow,
    /// Outside the window: endpoints drop it, and so does the tap.
    OutOfWindow,
}

/// What the tap knows about one direction's sequence space.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SeqView {
    /// One past the highest sequence number this direction sent (SYN and FIN count one each).
    pub snd_max: Option<u32>,
    /// The latest ACK the other side sent for this direction: its RCV.NXT.
    pub peer_ack: Option<u32>,
    /// The other side's latest advertised window, unscaled.
    pub peer_window: u16,
}

impl SeqView {
    /// A segment of this direction at `seq` occupying `len` sequence numbers. It moves SND.NXT
    /// only when it starts within the receiver's window beyond it (`shift`: as in
    /// [`SeqView::judge_rst`]): the receiver drops anything further, so a blind spoofer's far-off
    /// segment must not move the point an exact RST is judged by.
    pub fn sent(&mut self, seq: u32, len: u32, shift: Option<u8>) {
        let end = seq.wrapping_add(len);
        let window = (u64::from(self.peer_window) << shift.unwrap_or(14).min(14)).max(65_535);
        self.snd_max = Some(match self.snd_max {
            Some(m) if seq_delta(end, m) <= 0 => m,
            Some(m) if seq_delta(seq, m) > window as i64 => m,
            _ => end,
        });
    }

    /// Whether a FIN, or the first data byte of a segment, at `seq` is within what the receiver
    /// accepts: no further ahead of the last acknowledgment (RCV.NXT) than its window (RFC 9293
    /// §3.10.7.4; at least 64 KiB, and with the largest scale when the handshake was not seen).
    /// A SPAN port may show the receiver's ACKs late, so `seq` within the window of what this
    /// direction had sent before it (`sent_before`, its SND.MAX) is accepted too: only one far
    /// from both is dropped. Unknown without an ACK from the receiver (a one-sided capture):
    /// accepted. Behind RCV.NXT is a retransmission, or the ACK of it shown late: accepted
    /// (reassembly compares and skips bytes it delivered).
    pub fn in_window(&self, seq: u32, shift: Option<u8>, sent_before: Option<u32>) -> bool {
        let Some(rcv_nxt) = self.peer_ack else {
            return true;
        };
        let window = (u64::from(self.peer_window) << shift.unwrap_or(14).min(14)).max(65_535);
        let near = |r: u32| seq_delta(seq, r) <= window as i64;
        near(rcv_nxt) || sent_before.is_some_and(near)
    }

    /// Judge a RST sent by this direction at `seq`. `shift`: the receiver's window scale, when
    /// the handshake negotiated one. `None` when nothing is known of this direction yet (nothing
    /// to check against: it is believed, as before validation existed).
    pub fn judge_rst(&self, seq: u32, shift: Option<u8>) -> Option<RstVerdict> {
        let candidates = [self.peer_ack, self.snd_max];
        if candidates.iter().all(Option::is_none) {
            return None;
        }
        if candidates.contains(&Some(seq)) {
            return Some(RstVerdict::Exact);
        }
        // Without the handshake the scale is unknown: assume the largest (RFC 7323 §2.3: 14).
        let window = u64::from(self.peer_window) << shift.unwrap_or(14).min(14);
        let rcv_nxt = self.peer_ack.or(self.snd_max).unwrap_or(seq);
        let d = seq_delta(seq, rcv_nxt);
        if d >= 0 && (d as u64) < window.max(1) {
            Some(RstVerdict::InWindow)
        } else {
            Some(RstVerdict::OutOfWindow)
        }
    }
}

/// The value of TCP option `kind` when its length byte is `len` (RFC 9293 §3.2: kind, length,
/// value; kinds 0 and 1 are single bytes), or `None` when absent or the options are malformed.
fn option(tcp_header: &[u8], kind: u8, len: usize) -> Option<&[u8]> {
    let data_offset = usize::from(tcp_header.get(12)? >> 4) * 4;
    let mut opts = tcp_header.get(20..data_offset.min(tcp_header.len()))?;
    while let Some((&k, rest)) = opts.split_first() {
        match k {
            0 => return None,
            1 => opts = rest,
            _ => {
                let l = usize::from(*rest.first()?);
                if l < 2 {
                    return None;
                }
                if k == kind && l == len {
                    return opts.get(2..l);
                }
                opts = opts.get(l..)?;
            }
        }
    }
    None
}

/// The window scale option of a SYN's TCP header (RFC 7323 §2.2: kind 3, length 3), if present.
pub(crate) fn window_scale(tcp_header: &[u8]) -> Option<u8> {
    option(tcp_header, 3, 3)?.first().copied()
}

/// TSval of the timestamps option (RFC 7323 §3.2: kind 8, length 10), if present.
pub(crate) fn timestamp(tcp_header: &[u8]) -> Option<u32> {
    // Linux, the BSDs and macOS put it first, after two NOPs (RFC 7323 Appendix A's layout):
    // read there without walking the options, on every data segment.
    if let (Some([1, 1, 8, 10]), Some(v)) = (tcp_header.get(20..24), tcp_header.get(24..28)) {
        if usize::from(tcp_header.get(12).map_or(0, |b| b >> 4)) * 4 >= 32 {
            return Some(u32::from_be_bytes(v.try_into().ok()?));
        }
    }
    let v = option(tcp_header, 8, 10)?;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// The urgent pointer: bytes 18-19 of the TCP header (RFC 9293 §3.1); 0 when not captured.
pub(crate) fn urgent_pointer(tcp_header: &[u8]) -> u16 {
    tcp_header
        .get(18..20)
        .and_then(|p| <[u8; 2]>::try_from(p).ok())
        .map_or(0, u16::from_be_bytes)
}

/// Whether a receiver drops a segment for lacking the ACK bit: data or a FIN with none of ACK,
/// SYN and RST. RFC 9293 §3.10.7.4 (fifth, "check the ACK field"): with the ACK bit off, a
/// segment that is not a SYN or RST is dropped in every state that could take its data or FIN
/// (Linux `tcp_validate_incoming`: SKB_DROP_REASON_TCP_FLAGS), so a decoy with no flags, or PSH
/// alone, is read by nobody (fragroute's `tcp_chaff null`).
pub(crate) fn dropped_without_ack(flags: TcpFlags, len: u64) -> bool {
    !flags.ack() && !flags.syn() && !flags.rst() && (len > 0 || flags.fin())
}

/// The IP TTL (IPv4 byte 8, RFC 791 §3.1) or hop limit (IPv6 byte 7, RFC 8200 §3) of the
/// innermost IP header; `None` when it was not handed over.
#[inline]
pub(crate) fn ttl(ip_header: &[u8]) -> Option<u8> {
    match ip_header.first()? >> 4 {
        4 => ip_header.get(8).copied(),
        6 => ip_header.get(7).copied(),
        _ => None,
    }
}

/// A cheap fingerprint of a frame for telling an exact duplicate (the same frame mirrored twice,
/// e.g. ingress and egress of one switch port) from a retransmission: a retransmission has a new
/// IPv4 identification and usually a new timestamp option, so a new TCP checksum.
pub(crate) fn fingerprint(ip_header: &[u8], tcp_header: &[u8], seq: u32, ack: u32, wire_len: u32) -> u64 {
    let ip_id = match ip_header.first() {
        Some(b) if b >> 4 == 4 => ip_header
            .get(4..6)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map_or(0, |v| u64::from(u16::from_be_bytes(v))),
        _ => 0,
    };
    let csum_flags = tcp_header
        .get(12..18)
        .and_then(|v| <[u8; 6]>::try_from(v).ok())
        .map_or(0, |[a, b, c, d, e, f]| u64::from_be_bytes([0, 0, a, b, c, d, e, f]));
    (u64::from(seq) | u64::from(ack) << 32)
        ^ (csum_flags.rotate_left(17) ^ ip_id.rotate_left(5) ^ u64::from(wire_len).rotate_left(40))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// How many of a direction's last frames a copy is compared with. A SPAN session that mirrors
/// both sides of a router (or ingress and egress of one port on a busy switch) delivers each
/// copy a few frames after its original, not right after it: other frames of the same
/// direction come between. Measured on the 20-C-MOVE mirror sample with each of its 972 frames
/// copied 40 µs later (new VLAN, new MACs, TTL − 1): comparing with the last frame counted 309
/// copies, the last 4 640, the last 8 919, and the last 16 or 32 no more than 8.
/// Eight fingerprints are 64 bytes a direction, and one vector compare a frame.
pub(crate) const RECENT_FRAMES: usize = 8;

/// Fingerprints ([`fingerprint`]) of a direction's last [`RECENT_FRAMES`] frames, newest first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecentFrames([u64; RECENT_FRAMES]);

impl RecentFrames {
    /// Whether `fp` is one of the last frames' fingerprints (the frame is a copy); if not, it
    /// becomes the newest. A copy is not added again, so an original and its copy take one place.
    pub(crate) fn seen_or_add(&mut self, fp: u64) -> bool {
        if self.0.contains(&fp) {
            return true;
        }
        self.0.rotate_right(1);
        self.0[0] = fp;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> SeqView {
        SeqView {
            snd_max: Some(10_000),
            peer_ack: Some(9_000),
            peer_window: 1000,
        }
    }

    #[test]
    fn a_copy_a_few_frames_behind_its_original_is_recognised_and_an_older_one_is_not() {
        let mut r = RecentFrames::default();
        let n = RECENT_FRAMES as u64;
        for fp in 1..=n {
            assert!(!r.seen_or_add(fp));
        }
        // 1 is the oldest remembered: still recognised; copies do not push originals out.
        assert!(r.seen_or_add(1));
        assert!(r.seen_or_add(n));
        assert!(!r.seen_or_add(n + 1));
        // 1 is now one frame too far back: a frame like it is no longer taken for a copy.
        assert!(!r.seen_or_add(1));
        assert!(r.seen_or_add(n + 1));
    }

    #[test]
    fn rst_exact_in_window_and_out_of_window() {
        let v = view();
        assert_eq!(v.judge_rst(9_000, Some(0)), Some(RstVerdict::Exact), "RCV.NXT");
        assert_eq!(v.judge_rst(10_000, Some(0)), Some(RstVerdict::Exact), "SND.NXT");
        assert_eq!(v.judge_rst(9_500, Some(0)), Some(RstVerdict::InWindow));
        assert_eq!(v.judge_rst(10_001, Some(0)), Some(RstVerdict::OutOfWindow));
        assert_eq!(v.judge_rst(8_999, Some(0)), Some(RstVerdict::OutOfWindow));
        assert_eq!(
            v.judge_rst(9_000 + 1000 * 128 - 1, Some(7)),
            Some(RstVerdict::InWindow),
            "scaled"
        );
        assert_eq!(v.judge_rst(0x8000_0000, None), Some(RstVerdict::OutOfWindow));
        assert_eq!(SeqView::default().judge_rst(5, None), None);
    }

    #[test]
    fn snd_max_follows_sequence_wraps() {
        let mut v = SeqView::default();
        v.sent(u32::MAX - 10, 5, Some(0));
        v.sent(u32::MAX - 2, 10, Some(0));
        assert_eq!(v.snd_max, Some(7));
        v.sent(u32::MAX - 20, 3, Some(0));
        assert_eq!(v.snd_max, Some(7), "an old segment does not move it back");
        v.sent(0x4000_0000, 1, Some(0));
        assert_eq!(v.snd_max, Some(7), "nor one far beyond the window");
    }

    #[test]
    fn timestamp_is_read_where_linux_puts_it_and_anywhere_else() {
        let header = |opts: &[u8]| {
            let mut h = vec![0u8; 20];
            h.extend_from_slice(opts);
            h[12] = ((h.len() / 4) as u8) << 4;
            h
        };
        // Data segment: NOP, NOP, TS.
        let data = header(&[1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 9]);
        assert_eq!(timestamp(&data), Some(256));
        // SYN: MSS, SACK permitted, TS, NOP, window scale.
        let syn = header(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7]);
        assert_eq!((timestamp(&syn), window_scale(&syn)), (Some(7), Some(7)));
        // The data offset says the options end before the option: not there.
        let mut short = data.clone();
        short[12] = 6 << 4;
        assert_eq!(timestamp(&short), None);
        assert_eq!(timestamp(&data[..26]), None, "cut by the snaplen");
        assert_eq!(timestamp(&header(&[1, 1, 1, 1])), None);
    }

    #[test]
    fn window_scale_is_read_from_the_options() {
        // MSS, SACK permitted, timestamps, NOP, window scale 7 (Linux's SYN).
        let mut h = vec![0u8; 20];
        h[12] = 10 << 4;
        h.extend_from_slice(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        assert_eq!(window_scale(&h), Some(7));
        h[12] = 5 << 4;
        assert_eq!(window_scale(&h), None, "options beyond the data offset are not read");
        let mut bad = vec![0u8; 20];
        bad[12] = 6 << 4;
        bad.extend_from_slice(&[9, 0, 3, 3]);
        assert_eq!(window_scale(&bad), None, "a zero-length option ends the walk");
    }
}
