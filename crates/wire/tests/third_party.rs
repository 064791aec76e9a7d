//! Real third-party tunnel captures (suricata-verify, MIT; see `shared/captures/README.md`):
//! the inner TCP 5-tuples and payload byte totals pacstap decodes equal tshark's on the same
//! file, and the frames counted per encapsulation equal the frames tshark dissects with it.
//!
//! The captures live outside the repository, in `shared/captures/` beside the clone: found by
//! walking up from this crate; the test is skipped, saying why, when they (or tshark) are absent.

use pacstap_capture::{PacketSource, PcapFileSource};
use pacstap_core::Timestamp;
use pacstap_wire::{TunnelKind, WireDecoder, WireStats};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn captures_dir() -> Option<PathBuf> {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared/captures/suricata-verify");
        if c.is_dir() {
            return Some(c);
        }
        dir = d.parent();
    }
    None
}

/// "src sport dst dport" → payload bytes, over the file's TCP segments (empty ones included,
/// as a count of 0 bytes).
type Tuples = BTreeMap<String, (u64, u64)>;

fn pacstap(path: &Path) -> (Tuples, WireStats) {
    let mut src = PcapFileSource::open(path).expect("open capture");
    let mut dec = WireDecoder::new();
    let mut tuples = Tuples::new();
    while let Some(f) = src.next_frame() {
        if let Some(p) = dec.decode(Timestamp(f.ts.0), f.linktype, f.data) {
            let k = format!(
                "{} {} {} {}",
                p.key.src.ip, p.key.src.port, p.key.dst.ip, p.key.dst.port
            );
            let e = tuples.entry(k).or_default();
            e.0 += 1;
            e.1 += u64::from(p.wire_payload_len);
        }
    }
    assert!(src.damage().is_none(), "{path:?} damaged");
    (tuples, dec.stats)
}

/// The innermost IP / TCP fields of every TCP frame, and each frame's protocol stack.
fn tshark(path: &Path) -> Option<(Tuples, Vec<String>)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "occurrence=l", "-E", "separator=|"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
        ])
        .args(["-e", "tcp.dstport", "-e", "tcp.len", "-e", "frame.protocols"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut tuples = Tuples::new();
    let mut stacks = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [src4, src6, sport, dst4, dst6, dport, len, protocols] = f[..] else {
            panic!("tshark line {line:?}");
        };
        stacks.push(protocols.to_owned());
        // The innermost IP: the last of the stack (an IPv6 inner behind an IPv4 outer too).
        if sport.is_empty() || protocols.contains(":icmp") {
            continue;
        }
        let inner_v6 = protocols.rfind(":ipv6:").unwrap_or(0) > protocols.rfind(":ip:").unwrap_or(0);
        let (src, dst) = if inner_v6 { (src6, dst6) } else { (src4, dst4) };
        let e = tuples.entry(format!("{src} {sport} {dst} {dport}")).or_default();
        e.0 += 1;
        e.1 += len.parse::<u64>().unwrap_or(0);
    }
    Some((tuples, stacks))
}

/// Frames whose stack has `needle` (and not `unless`).
fn frames_with(stacks: &[String], needle: &str, unless: Option<&str>) -> u64 {
    stacks
        .iter()
        .filter(|s| s.split(':').any(|p| p == needle) && unless.is_none_or(|u| !s.split(':').any(|p| p == u)))
        .count() as u64
}

fn check(file: &str, expect_tcp: bool) {
    let Some(dir) = captures_dir() else {
        eprintln!(
            "skipped: no shared/captures/suricata-verify above {}",
            env!("CARGO_MANIFEST_DIR")
        );
        return;
    };
    let path = dir.join(file);
    let Some((want, stacks)) = tshark(&path) else {
        eprintln!("skipped: tshark is not available");
        return;
    };
    let (got, s) = pacstap(&path);
    assert_eq!(got, want, "{file}: inner TCP 5-tuples (segments, payload bytes)");
    assert_eq!(!got.is_empty(), expect_tcp, "{file}");
    assert_eq!(s.frames, stacks.len() as u64, "{file}");
    let erspan = s.decapsulated(TunnelKind::ErspanI)
        + s.decapsulated(TunnelKind::ErspanII)
        + s.decapsulated(TunnelKind::ErspanIII);
    assert_eq!(s.vxlan, frames_with(&stacks, "vxlan", None), "{file} vxlan {s:?}");
    assert_eq!(s.geneve, frames_with(&stacks, "geneve", None), "{file} geneve {s:?}");
    assert_eq!(s.gre, frames_with(&stacks, "gre", Some("erspan")), "{file} gre {s:?}");
    assert_eq!(erspan, frames_with(&stacks, "erspan", None), "{file} erspan {s:?}");
    assert_eq!(s.mpls, frames_with(&stacks, "mpls", None), "{file} mpls {s:?}");
    assert_eq!(s.pppoe, frames_with(&stacks, "pppoes", None), "{file} pppoe {s:?}");
    // Nothing the tunnels carried was lost to a decoding failure.
    assert_eq!(
        (s.truncated, s.malformed, s.too_deep, s.unsupported_tunnel),
        (0, 0, 0, 0),
        "{file} {s:?}"
    );
    // Inner non-TCP (UDP, ICMP) and non-IP (ARP, CDP) frames are what tshark says they are.
    let tcp = stacks.iter().filter(|s| s.split(':').any(|p| p == "tcp")).count() as u64;
    assert_eq!(s.tcp, tcp, "{file} {s:?}");
}

#[test]
fn vxlan_decoder_01() {
    check("vxlan-decoder-01__input.pcap", false);
}

#[test]
fn geneve_decoder() {
    check("geneve-decoder__input.pcap", false);
}

#[test]
fn gre_udp_in_vlan() {
    check("bug-5633-gre-01__gre-udp.pcap", false);
}

#[test]
fn gre_sample_with_tcp() {
    check("bug-5633-gre-02__gre-sample.pcap", true);
}

#[test]
fn erspan_type_i() {
    check("decode-erspan-typeI-02__input.pcap", false);
    let path = captures_dir().map(|d| d.join("decode-erspan-typeI-02__input.pcap"));
    if let Some(p) = path.filter(|p| p.exists()) {
        let (_, s) = pacstap(&p);
        assert_eq!((s.erspan_i, s.vlan_tagged), (42, 42), "{s:?}");
    }
}

#[test]
fn erspan_type_ii() {
    check("decode-erspan-typeII-01__input.pcap", false);
    if let Some(p) = captures_dir().map(|d| d.join("decode-erspan-typeII-01__input.pcap")) {
        let (_, s) = pacstap(&p);
        assert_eq!(s.erspan_ii, 6, "{s:?}");
    }
}

#[test]
fn pppoe_session_http() {
    check("bug-4810__pppoe-session-http.pcap", true);
}
