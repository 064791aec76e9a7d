//! IPv4 header and TCP checksums, validated the way the receiving endpoint validates them.
//!
//! A receiver silently drops a segment whose checksum is wrong (RFC 9293 §3.1, RFC 791 §3.1), so
//! a tap that believes such a segment can be lied to: a decoy copy of a segment with a bad
//! checksum, placed before the real one, would otherwise be what the decoders read. A segment
//! that fails here never enters reassembly and never changes flow state.
//!
//! The one's-complement sum (RFC 1071) is written here rather than taken from etherparse's
//! `Sum16BitWords` (or the `internet-checksum` crate): those add one word at a time with an
//! end-around carry, a dependency chain the compiler cannot vectorise, and this runs over every
//! captured byte. Adding 32-bit words into a 64-bit accumulator needs no carry at all (2^32
//! words, 16 GiB, before it could overflow) and vectorises; folding the result to 16 bits gives
//! the same sum, since the sum of 16-bit words is independent of byte order and word size
//! (RFC 1071 §2 (B), (C)). Every part summed (pseudo-header, TCP header, payload) starts at a
//! multiple of four bytes, so the words line up as one run; only the last part may end unevenly,
//! and its tail is zero-padded as RFC 9293 §3.1 says.
//!
//! Captures taken on a sending host carry invalid checksums for what that host sent (the NIC
//! fills them in after the capture point: checksum offload). [`ChecksumMode::Auto`] handles that
//! as Suricata's `checksum-validation: auto` does: validate, and when more than one in ten of the
//! first [`AUTO_SAMPLE`] verifiable segments are bad, stop validating and say so. An offloading
//! host's own segments are all bad, and in a download its own are the ACKs, a third to a half of
//! the packets: a majority rule would miss that, one in ten does not, and a healthy network does
//! not come near it (real corruption is far below 1 %, and the link layer's CRC drops most of it
//! before TCP sees it). The verdict is taken as soon as it cannot change, so an offloaded capture
//! loses at most its first [`AUTO_SAMPLE`]` / 10` bad segments. Each table judges on its own:
//! with N workers, each samples its share of the segments (`FlowConfig::checksum_sample`).
//!
//! Unlike Suricata's, the sample counts only the bad segments that look like offload: answered
//! by their receiver, without a good copy, in a direction that never carried a good segment
//! (`offload`). Bad-checksum decoys next to every segment (fragroute's `tcp_chaff cksum`),
//! floods of bad segments nobody answers (hping3 `--badcksum`) and bad segments spoofed onto a
//! live connection therefore cannot switch validation off; on a live SPAN port, where offload
//! cannot occur, `--checksum on` also rules out what is left (a whole fabricated conversation,
//! both directions bad).

use std::net::IpAddr;

use pacstap_core::Packet;

use crate::config::{ChecksumMode, FlowStats};

mod offload;
use offload::OffloadJudge;

/// Verifiable segments the auto mode looks at before its verdict is final (Suricata's
/// `CHECKSUM_SAMPLE_COUNT`).
pub const AUTO_SAMPLE: u64 = 1000;

/// The smallest sample a table is given, however many workers share the capture: a verdict on
/// fewer than 100 segments (more than 10 bad) would let a handful of spoofed ones decide it.
pub const MIN_SAMPLE: u64 = 100;

/// Auto mode: validation stops when more than `AUTO_SAMPLE / AUTO_BAD_DIVISOR` of the sample is
/// bad (Suricata's `CHECKSUM_INVALID_RATIO`, 10).
const AUTO_BAD_DIVISOR: u64 = 10;

/// IP protocol number of TCP (IANA), in the pseudo-header.
const PROTO_TCP: u8 = 6;

/// Sum of `data` as native-endian 32-bit words, the tail zero-padded (see the module docs).
///
/// Read 32 bytes at a time as four 64-bit words, each split into its two 32-bit halves, into
/// four accumulators: wide loads and independent adds that the compiler turns into a few
/// vector instructions per 32 bytes even for the baseline x86-64 target (SSE2), about twice
/// as fast as widening one 32-bit word at a time. Each add is below 2^33, so a 64-bit
/// accumulator takes 2^31 of them (16 GiB) before it could overflow; a segment is at most
/// 64 KiB (or 4 GiB for an IPv6 jumbogram, RFC 2675).
fn sum32(data: &[u8]) -> u64 {
    #[inline(always)]
    fn halves(w: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let w = u64::from_ne_bytes(b);
        (w & 0xFFFF_FFFF) + (w >> 32)
    }
    let mut blocks = data.chunks_exact(32);
    let mut acc = [0u64; 4];
    for blk in blocks.by_ref() {
        for (a, w) in acc.iter_mut().zip(blk.chunks_exact(8)) {
            *a += halves(w);
        }
    }
    let mut words = blocks.remainder().chunks_exact(4);
    let mut sum = acc.iter().sum::<u64>();
    for w in words.by_ref() {
        sum += u64::from(u32::from_ne_bytes(<[u8; 4]>::try_from(w).unwrap_or_default()));
    }
    let mut tail = [0u8; 4];
    for (t, &b) in tail.iter_mut().zip(words.remainder()) {
        *t = b;
    }
    sum + u64::from(u32::from_ne_bytes(tail))
}

/// Whether a one's-complement sum accumulated by [`sum32`] is all ones: the check of a header
/// or segment that includes its own checksum field (RFC 1071 §1).
fn all_ones(mut sum: u64) -> bool {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum == 0xFFFF
}

/// What a packet's checksums say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    Good,
    Bad,
    /// The bytes it covers were not all captured (snaplen), or the headers were not handed over.
    Unverifiable,
}

/// Validate the IPv4 header checksum (when the innermost header is IPv4) and the TCP checksum over
/// the pseudo-header (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6), header and payload.
pub(crate) fn check(pkt: &Packet<'_>) -> Checked {
    let ip = pkt.ip_header;
    if ip.first().is_some_and(|b| b >> 4 == 4) && !all_ones(sum32(ip)) {
        return Checked::Bad;
    }
    let tcp = pkt.tcp_header;
    // A TCP header is a whole number of 32-bit words (its data offset, RFC 9293 §3.1), so header
    // and payload sum as one run; anything else was not a TCP header we can check.
    if tcp.len() < 20 || !tcp.len().is_multiple_of(4) || pkt.payload.len() as u64 != u64::from(pkt.wire_payload_len) {
        return Checked::Unverifiable;
    }
    let tcp_len = tcp.len() as u64 + pkt.payload.len() as u64;
    let sum = match (pkt.key.src.ip, pkt.key.dst.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let Ok(len) = u16::try_from(tcp_len) else {
                return Checked::Unverifiable;
            };
            let mut pseudo = [0u8; 12];
            pseudo[..4].copy_from_slice(&s.octets());
            pseudo[4..8].copy_from_slice(&d.octets());
            pseudo[9] = PROTO_TCP;
            pseudo[10..].copy_from_slice(&len.to_be_bytes());
            sum32(&pseudo)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok(len) = u32::try_from(tcp_len) else {
                return Checked::Unverifiable;
            };
            let mut pseudo = [0u8; 40];
            pseudo[..16].copy_from_slice(&s.octets());
            pseudo[16..32].copy_from_slice(&d.octets());
            pseudo[32..36].copy_from_slice(&len.to_be_bytes());
            pseudo[39] = PROTO_TCP;
            sum32(&pseudo)
        }
        _ => return Checked::Unverifiable,
    };
    if all_ones(sum + sum32(tcp) + sum32(pkt.payload)) {
        Checked::Good
    } else {
        Checked::Bad
    }
}

/// The per-table validation policy: the mode, and in auto mode the sample and its verdict.
#[derive(Debug)]
pub(crate) struct ChecksumPolicy {
    mode: ChecksumMode,
    /// Auto mode decided the capture is offloaded: validation is off from then on.
    offloaded: bool,
    /// Auto mode, until the verdict: which bad segments are offload evidence.
    judge: OffloadJudge,
    /// Auto mode: verifiable segments in the sample (`FlowConfig::checksum_sample`).
    sample: u64,
}

impl ChecksumPolicy {
    /// `sample`: see `FlowConfig::checksum_sample` (at least [`MIN_SAMPLE`]).
    pub fn new(mode: ChecksumMode, sample: u64) -> Self {
        ChecksumPolicy {
            mode,
            offloaded: false,
            judge: OffloadJudge::default(),
            sample: sample.max(MIN_SAMPLE),
        }
    }

    /// Whether `pkt` may enter reassembly. Counts what it found in `stats`.
    pub fn admit(&mut self, pkt: &Packet<'_>, stats: &mut FlowStats) -> bool {
        let sampling = self.mode == ChecksumMode::Auto && stats.checksum_sampled < self.sample;
        let validating = match self.mode {
            ChecksumMode::Off => false,
            ChecksumMode::On => true,
            ChecksumMode::Auto => !self.offloaded,
        };
        if !validating && !sampling {
            return true;
        }
        let verdict = check(pkt);
        if sampling && verdict != Checked::Unverifiable {
            // The sample runs to its end even after the verdict, for the summary's ratio.
            stats.checksum_sampled += 1;
            if verdict == Checked::Bad {
                stats.checksum_sample_bad += 1;
            }
        }
        // Judged until the verdict; a bad segment of the sample is judged once its windows have
        // passed, which may be after the sample's end.
        let judging = self.mode == ChecksumMode::Auto && !self.offloaded && (sampling || self.judge.pending());
        if judging {
            match verdict {
                Checked::Good => stats.checksum_twins += u64::from(self.judge.good(pkt)),
                Checked::Bad if sampling => stats.checksum_twins += u64::from(self.judge.bad(pkt)),
                _ => {}
            }
            if self.judge.evidence > self.sample / AUTO_BAD_DIVISOR {
                self.offloaded = true;
                stats.checksum_offloaded = 1;
                self.judge = OffloadJudge::default();
            }
        }
        match verdict {
            Checked::Good => true,
            Checked::Unverifiable => {
                if validating {
                    stats.unverifiable_checksums += 1;
                }
                true
            }
            Checked::Bad if validating => {
                stats.bad_checksums += 1;
                false
            }
            Checked::Bad => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::offload::TWIN_WINDOW;
    use super::*;
    use etherparse::PacketBuilder;
    use pacstap_core::{Endpoint, FlowKey, TcpFlags, TcpHeader, Timestamp};

    /// A real IPv4/TCP packet built by etherparse (which computes both checksums), split into the
    /// slices the wire stage hands over.
    fn built(v6: bool, payload: &[u8]) -> Vec<u8> {
        let b = if v6 {
            PacketBuilder::ipv6(
                [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let b = b.tcp(40000, 104, 12345, 65535).ack(777);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn packet(bytes: &[u8], v6: bool, payload_len: usize) -> Packet<'_> {
        let ip_len = if v6 { 40 } else { 20 };
        let (ip, rest) = bytes.split_at(ip_len);
        let (tcp, payload) = rest.split_at(rest.len() - payload_len);
        let (s, d) = if v6 {
            let mut s = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            let mut d = [0u8; 16];
            d.copy_from_slice(&ip[24..40]);
            (IpAddr::from(s), IpAddr::from(d))
        } else {
            (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]))
        };
        Packet {
            ts: Timestamp(0),
            key: FlowKey {
                src: Endpoint::new(s, 40000),
                dst: Endpoint::new(d, 104),
            },
            tcp: TcpHeader {
                seq: 12345,
                ack: 777,
                flags: TcpFlags(TcpFlags::ACK),
                window: 65535,
            },
            payload,
            wire_payload_len: payload.len() as u32,
            ip_header: ip,
            tcp_header: tcp,
        }
    }

    /// An IPv4 segment carrying `payload`, and the same with its last byte changed (a bad TCP
    /// checksum).
    fn good_and_bad(payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let good = built(false, payload);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        (good, bad)
    }

    /// `pkt` as sent by the other endpoint (the pseudo-header's sum does not depend on the
    /// addresses' order, so its checksum verdict is the same).
    fn from_the_other_side(mut pkt: Packet<'_>) -> Packet<'_> {
        pkt.key = pkt.key.reversed();
        pkt
    }

    #[test]
    fn good_ipv4_and_ipv6_segments_pass_and_any_flipped_bit_fails() {
        for v6 in [false, true] {
            for payload in [&b""[..], b"x", b"hello world, odd length"] {
                let mut bytes = built(v6, payload);
                assert_eq!(
                    check(&packet(&bytes, v6, payload.len())),
                    Checked::Good,
                    "v6 {v6} {payload:?}"
                );
                let last = bytes.len() - 1;
                bytes[last] ^= 0x40;
                assert_eq!(check(&packet(&bytes, v6, payload.len())), Checked::Bad);
            }
        }
        // The IPv4 header checksum on its own: a changed TTL.
        let mut bytes = built(false, b"abc");
        bytes[8] = 63;
        assert_eq!(check(&packet(&bytes, false, 3)), Checked::Bad);
    }

    #[test]
    fn word_sum_folds_to_the_rfc_1071_sum_of_every_length() {
        use etherparse::checksum::Sum16BitWords;
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for n in 0..data.len() {
            let mut folded = sum32(&data[..n]);
            while folded > 0xFFFF {
                folded = (folded & 0xFFFF) + (folded >> 16);
            }
            let reference = !Sum16BitWords::new().add_slice(&data[..n]).ones_complement();
            assert_eq!(folded as u16 % 0xFFFF, reference % 0xFFFF, "length {n}");
        }
        assert!(all_ones(0xFFFF) && all_ones(0x1_FFFE) && !all_ones(0) && !all_ones(0xFFFE));
    }

    #[test]
    fn snaplen_cut_or_missing_headers_are_unverifiable() {
        let bytes = built(false, b"abcdef");
        let mut p = packet(&bytes, false, 6);
        p.wire_payload_len = 1400;
        assert_eq!(check(&p), Checked::Unverifiable);
        let mut p = packet(&bytes, false, 6);
        p.tcp_header = &[];
        assert_eq!(check(&p), Checked::Unverifiable);
    }

    #[test]
    fn auto_mode_stops_validating_an_offloaded_capture() {
        let (good, bad) = good_and_bad(b"data");
        // The whole sample (one table), a worker's share of it, and a share below the minimum.
        for (share, sample) in [
            (AUTO_SAMPLE, AUTO_SAMPLE),
            (AUTO_SAMPLE / 4, AUTO_SAMPLE / 4),
            (3, MIN_SAMPLE),
        ] {
            let mut stats = FlowStats::default();
            let mut p = ChecksumPolicy::new(ChecksumMode::Auto, share);
            // One bad in two, each a segment of its own (no good copy of it comes), all sent by
            // the offloading host (the other direction is the one answering): validation holds
            // while the verdict is open, bad ones are refused; each is evidence once its twin
            // window has passed.
            let mut refused = 0;
            for i in 0..AUTO_SAMPLE {
                let bytes = if i % 2 == 0 { &good } else { &bad };
                let mut pkt = packet(bytes, false, 4);
                pkt.tcp.seq = i as u32;
                if i % 2 == 1 {
                    pkt = from_the_other_side(pkt);
                }
                if !p.admit(&pkt, &mut stats) {
                    refused += 1;
                }
            }
            assert_eq!(
                refused,
                sample / AUTO_BAD_DIVISOR + 1 + TWIN_WINDOW / 2,
                "sample {sample}: bad ones refused up to the verdict"
            );
            assert_eq!(stats.checksum_twins, 0);
            assert_eq!(stats.checksum_offloaded, 1);
            assert_eq!(
                (stats.checksum_sampled, stats.checksum_sample_bad),
                (sample, sample / 2)
            );
            assert!(p.admit(&packet(&bad, false, 4), &mut stats), "offloaded: not validated");
        }
    }

    #[test]
    fn auto_mode_keeps_validating_through_a_flood_of_bad_segments_nobody_answers() {
        let good = built(false, b"");
        let mut bad = good.clone();
        bad[30] ^= 1;
        for fixed_tuple in [false, true] {
            let mut stats = FlowStats::default();
            let mut p = ChecksumPolicy::new(ChecksumMode::Auto, AUTO_SAMPLE);
            // 900 bad SYN-like segments, from random sources or all from one, before 100 good
            // ones of a real connection (whose two directions answer each other).
            for i in 0..900u16 {
                let mut pkt = packet(&bad, false, 0);
                if !fixed_tuple {
                    pkt.key.src = Endpoint::new(IpAddr::from([198, 51, (i >> 8) as u8, i as u8]), 1024 + i);
                }
                assert!(!p.admit(&pkt, &mut stats));
            }
            for i in 0..100 {
                let mut pkt = packet(&good, false, 0);
                if i % 2 == 1 {
                    pkt = from_the_other_side(pkt);
                }
                assert!(p.admit(&pkt, &mut stats));
            }
            assert_eq!(stats.checksum_offloaded, 0, "fixed tuple {fixed_tuple}");
            assert_eq!((stats.checksum_sampled, stats.checksum_sample_bad), (1000, 900));
            assert!(!p.admit(&packet(&bad, false, 0), &mut stats), "still validating");
        }
    }

    #[test]
    fn auto_mode_keeps_validating_through_bad_segments_spoofed_onto_a_live_connection() {
        // A live connection, both directions good, and between its packets bad segments with
        // its own 4-tuple in both directions (so each is "answered"), no good copy of any.
        let (good, bad) = good_and_bad(b"data");
        let mut stats = FlowStats::default();
        let mut p = ChecksumPolicy::new(ChecksumMode::Auto, AUTO_SAMPLE);
        for i in 0..AUTO_SAMPLE as u32 {
            let mut pkt = packet(if i % 4 < 2 { &good } else { &bad }, false, 4);
            pkt.tcp.seq = 100_000 + i;
            if i % 2 == 1 {
                pkt = from_the_other_side(pkt);
            }
            assert_eq!(p.admit(&pkt, &mut stats), i % 4 < 2, "packet {i}");
        }
        assert_eq!(stats.checksum_offloaded, 0);
        assert_eq!(stats.checksum_sample_bad, AUTO_SAMPLE / 2);
    }

    #[test]
    fn auto_mode_keeps_validating_when_bad_segments_are_copies_of_good_ones() {
        // fragroute's `tcp_chaff cksum`: next to every data segment, before or after it, a copy
        // with a bad checksum. One packet in two is bad, yet nothing is offloaded.
        let (good, bad) = good_and_bad(b"data");
        let mut stats = FlowStats::default();
        let mut p = ChecksumPolicy::new(ChecksumMode::Auto, AUTO_SAMPLE);
        let mut refused = 0;
        for i in 0..AUTO_SAMPLE as u32 {
            let order: [&Vec<u8>; 2] = if i % 3 == 0 { [&good, &bad] } else { [&bad, &good] };
            for bytes in order {
                let mut pkt = packet(bytes, false, 4);
                pkt.tcp.seq = i * 4;
                refused += u64::from(!p.admit(&pkt, &mut stats));
            }
        }
        assert_eq!(stats.checksum_offloaded, 0);
        assert_eq!(refused, u64::from(AUTO_SAMPLE as u32), "every decoy refused");
        assert_eq!(stats.checksum_twins, AUTO_SAMPLE / 2, "the sampled ones, all twins");
        assert_eq!(stats.bad_checksums, AUTO_SAMPLE);
    }

    #[test]
    fn auto_mode_keeps_validating_a_healthy_capture_and_on_off_are_fixed() {
        let (good, bad) = good_and_bad(b"data");
        let mut stats = FlowStats::default();
        let mut p = ChecksumPolicy::new(ChecksumMode::Auto, AUTO_SAMPLE);
        for i in 0..2000u64 {
            let bytes = if i % 20 == 0 { &bad } else { &good };
            let _ = p.admit(&packet(bytes, false, 4), &mut stats);
        }
        assert_eq!(stats.checksum_offloaded, 0);
        assert!(
            !p.admit(&packet(&bad, false, 4), &mut stats),
            "still validating after the sample"
        );
        assert_eq!(stats.bad_checksums, 101);

        let mut stats = FlowStats::default();
        let mut on = ChecksumPolicy::new(ChecksumMode::On, AUTO_SAMPLE);
        let mut off = ChecksumPolicy::new(ChecksumMode::Off, AUTO_SAMPLE);
        for _ in 0..500 {
            assert!(!on.admit(&packet(&bad, false, 4), &mut stats));
            assert!(off.admit(&packet(&bad, false, 4), &mut stats));
        }
        assert_eq!((stats.bad_checksums, stats.checksum_offloaded), (500, 0));
    }
}
