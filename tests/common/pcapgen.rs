//! A tiny classic-pcap reader/writer (and pcapng writer) and Ethernet/IPv4/TCP frame editor
//! for tests that build large attacked captures at run time from the real ones (a 270 k SYN
//! flood, 10 MiB of MLLP start bytes, thousands of pinned associations): too large to commit,
//! cheap to generate.
//!
//! Written by hand on purpose: the tests must not depend on the crates under test to build
//! their inputs, and this needs only the few header fields below. Input is our own bundled
//! captures (little-endian microsecond pcap, Ethernet, IPv4 without options), so a frame that
//! is not that panics: it is a test bug, not hostile data.

use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct Frame {
    /// Packet time in microseconds since the epoch.
    pub ts_us: u64,
    pub data: Vec<u8>,
}

/// Reads a classic little-endian pcap (what scapy and tcpdump wrote for pcap-samples/).
pub fn read_pcap(path: &Path) -> Vec<Frame> {
    let buf = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &buf[..4],
        &0xA1B2_C3D4u32.to_le_bytes(),
        "{}: LE µs pcap",
        path.display()
    );
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
    assert_eq!(u32_at(20), 1, "Ethernet");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= buf.len() {
        let (sec, usec, incl) = (u32_at(off), u32_at(off + 4), u32_at(off + 8) as usize);
        let data = buf[off + 16..off + 16 + incl].to_vec();
        out.push(Frame {
            ts_us: sec as u64 * 1_000_000 + usec as u64,
            data,
        });
        off += 16 + incl;
    }
    out
}

/// Streams frames into a classic pcap (Ethernet, snaplen 262144) at `w`.
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W) -> Self {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        w.write_all(&h).unwrap();
        PcapWriter { w }
    }

    pub fn frame(&mut self, ts_us: u64, data: &[u8]) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.w.write_all(&h).unwrap();
        self.w.write_all(data).unwrap();
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

pub fn write_pcap(path: &Path, frames: &[Frame]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = PcapWriter::new(f);
    for fr in frames {
        w.frame(fr.ts_us, &fr.data);
    }
    w.into_inner().flush().unwrap();
}

/// Writes `frames` as a capture taken with `snaplen`: each record holds at most the first
/// `snaplen` bytes and keeps the frame's original length, as `tcpdump -s` and `editcap -s`
/// write them (header-only captures).
pub fn write_pcap_cut(path: &Path, frames: &[Frame], snaplen: usize) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(snaplen as u32).to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        let kept = &f.data[..f.data.len().min(snaplen)];
        out.extend_from_slice(&((f.ts_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((f.ts_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        out.extend_from_slice(kept);
    }
    std::fs::write(path, out).unwrap();
}

const IP: usize = 14;

/// Field view of an Ethernet/IPv4/TCP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload_off: usize,
    pub payload_len: usize,
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

fn be16(d: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([d[o], d[o + 1]])
}
fn be32(d: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(d[o..o + 4].try_into().unwrap())
}

/// Writes `frames` (Ethernet) as pcapng (one section, one interface at the default microsecond
/// resolution, Enhanced Packet Blocks) with their stamps moved `shift_us` ahead: pcapng's 64-bit
/// stamps reach past what a classic pcap's 32-bit seconds can say.
pub fn write_pcapng_shifted(path: &Path, frames: &[Frame], shift_us: u64) {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = 12 + body.len().div_ceil(4) * 4;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + (len - 12 - body.len()), 0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    };
    // Section header: byte-order magic, version 1.0, section length unknown.
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    // Interface: Ethernet, snaplen 262144, default resolution (microseconds).
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for f in frames {
        let ts = f.ts_us + shift_us;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&f.data);
        block(&mut out, 6, &epb);
    }
    std::fs::write(path, out).unwrap();
}

pub fn tcp(d: &[u8]) -> Option<Tcp> {
    if d.len() < IP + 40 || be16(d, 12) != 0x0800 || d[IP + 9] != 6 {
        return None;
    }
    let ihl = (d[IP] & 0x0F) as usize * 4;
    let l4 = IP + ihl;
    let total = be16(d, IP + 2) as usize;
    let thl = (d[l4 + 12] >> 4) as usize * 4;
    Some(Tcp {
        src: d[IP + 12..IP + 16].try_into().unwrap(),
        dst: d[IP + 16..IP + 20].try_into().unwrap(),
        sport: be16(d, l4),
        dport: be16(d, l4 + 2),
        seq: be32(d, l4 + 4),
        ack: be32(d, l4 + 8),
        flags: d[l4 + 13],
        payload_off: l4 + thl,
        payload_len: total - ihl - thl,
    })
}

pub fn payload(d: &[u8]) -> &[u8] {
    let t = tcp(d).expect("tcp frame");
    &d[t.payload_off..t.payload_off + t.payload_len]
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the IPv4 header and TCP checksums (RFC 791 §3.1, RFC 9293 §3.1).
pub fn fix_checksums(d: &mut [u8]) {
    let ihl = (d[IP] & 0x0F) as usize * 4;
    let total = be16(d, IP + 2) as usize;
    d[IP + 10..IP + 12].copy_from_slice(&[0, 0]);
    let c = csum_fold(csum_add(0, &d[IP..IP + ihl]));
    d[IP + 10..IP + 12].copy_from_slice(&c.to_be_bytes());
    let l4 = IP + ihl;
    let tcp_len = total - ihl;
    d[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let mut sum = csum_add(0, &d[IP + 12..IP + 20]);
    sum += 6 + tcp_len as u32;
    sum = csum_add(sum, &d[l4..l4 + tcp_len]);
    let c = csum_fold(sum);
    d[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// Whether the frame's IPv4 header and TCP checksums are right (what an endpoint checks).
pub fn checksums_ok(d: &[u8]) -> bool {
    let mut copy = d.to_vec();
    fix_checksums(&mut copy);
    copy == d
}

/// Sets sequence and acknowledgement numbers (checksums fixed).
pub fn set_seq_ack(d: &mut [u8], seq: u32, ack: u32) {
    let l4 = IP + (d[IP] & 0x0F) as usize * 4;
    d[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    d[l4 + 8..l4 + 12].copy_from_slice(&ack.to_be_bytes());
    fix_checksums(d);
}

/// Replaces the payload (IP total length and checksums fixed).
pub fn set_payload(d: &[u8], new: &[u8]) -> Vec<u8> {
    let t = tcp(d).expect("tcp frame");
    let mut out = d[..t.payload_off].to_vec();
    out.extend_from_slice(new);
    let total = (out.len() - IP) as u16;
    out[IP + 2..IP + 4].copy_from_slice(&total.to_be_bytes());
    fix_checksums(&mut out);
    out
}

/// The one's-complement partial sum of a payload, to build many segments carrying the same
/// bytes without summing them again ([`segment_summed`]).
pub fn payload_sum(payload: &[u8]) -> u32 {
    csum_fold_partial(csum_add(0, payload))
}

fn csum_fold_partial(mut sum: u32) -> u32 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

/// A new segment on `template`'s MACs and TTL: 20-byte IPv4 and 20-byte TCP headers (no
/// options), window 502, correct checksums.
#[allow(clippy::too_many_arguments)]
pub fn segment(
    template: &[u8],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let sum = payload_sum(payload);
    segment_summed(template, src, dst, sport, dport, seq, ack, flags, payload, sum)
}

/// [`segment`] with the payload's [`payload_sum`] given (an even-length payload or the last).
#[allow(clippy::too_many_arguments)]
pub fn segment_summed(
    template: &[u8],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
    sum: u32,
) -> Vec<u8> {
    let mut d = Vec::with_capacity(54 + payload.len());
    d.extend_from_slice(&template[..14]);
    let total = (40 + payload.len()) as u16;
    d.extend_from_slice(&[0x45, 0]);
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0x40, 0, template[IP + 8], 6, 0, 0]);
    d.extend_from_slice(&src);
    d.extend_from_slice(&dst);
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&ack.to_be_bytes());
    d.extend_from_slice(&[0x50, flags]);
    d.extend_from_slice(&502u16.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0]);
    let ip = csum_fold(csum_add(0, &d[IP..IP + 20]));
    d[IP + 10..IP + 12].copy_from_slice(&ip.to_be_bytes());
    let mut tcp_sum = csum_add(0, &d[IP + 12..IP + 20]) + 6 + 20 + payload.len() as u32;
    tcp_sum = csum_add(tcp_sum, &d[IP + 20..IP + 40]) + sum;
    let c = csum_fold(tcp_sum);
    d[IP + 36..IP + 38].copy_from_slice(&c.to_be_bytes());
    d.extend_from_slice(payload);
    d
}

/// Inserts `extra` bytes into the stream of frame `i`'s direction just before frame `i`'s own
/// payload (as `mss`-sized segments at frame i's time), and shifts the rest of the connection:
/// later sequence numbers of that direction and acknowledgements of the other move by
/// `extra.len()`, so the endpoints' conversation stays consistent.
pub fn splice_before(frames: &[Frame], i: usize, extra: &[u8], mss: usize) -> Vec<Frame> {
    let at = tcp(&frames[i].data).expect("tcp frame");
    let delta = extra.len() as u32;
    let mut out: Vec<Frame> = frames[..i].to_vec();
    for (n, chunk) in extra.chunks(mss).enumerate() {
        let mut d = set_payload(&frames[i].data, chunk);
        set_seq_ack(&mut d, at.seq.wrapping_add((n * mss) as u32), at.ack);
        out.push(Frame {
            ts_us: frames[i].ts_us,
            data: d,
        });
    }
    for f in &frames[i..] {
        let mut f = f.clone();
        if let Some(t) = tcp(&f.data) {
            if (t.sport, t.dport) == (at.sport, at.dport) {
                set_seq_ack(&mut f.data, t.seq.wrapping_add(delta), t.ack);
            } else if (t.sport, t.dport) == (at.dport, at.sport) && t.flags & ACK != 0 {
                set_seq_ack(&mut f.data, t.seq, t.ack.wrapping_add(delta));
            }
        }
        out.push(f);
    }
    out
}

/// A small deterministic PRNG (xorshift64*): attack inputs must be the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
