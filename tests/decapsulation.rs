//! A DICOM capture delivered through a tunnel gives exactly the events of the plain capture.
//!
//! The frames of `pcap-samples/store.pcap` and `move.pcap` are re-wrapped byte by byte, as a
//! mirror would deliver them — VXLAN (AWS / Azure traffic mirroring), Geneve, GRE transparent
//! bridging, ERSPAN I / II / III (Cisco / Arista remote SPAN), an MPLS Ethernet pseudowire,
//! MPLS-labelled IP, PPPoE, the switch tags of a fabric-extender or TrustSec port (VN-Tag, E-Tag,
//! Cisco MetaData, with and without a VLAN tag), and a tunnel inside a tunnel — written to a
//! temporary pcap (same timestamps), replayed, and the JSON lines compared with the plain
//! sample's.

mod common;
use common::*;
use pacstap_capture::{PacketSource, PcapFileSource};
use serde_json::Value;
use std::path::{Path, PathBuf};

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [192, 0, 2, 2];

/// RFC 1071 checksum over an IPv4 header.
fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An outer IPv4 header (RFC 791) around `payload`.
fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, protocol, 0, 0]);
    h.extend_from_slice(&A);
    h.extend_from_slice(&B);
    let c = ip_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x00, 0x1b, 0x21, 0, 0, 2, 0x00, 0x1b, 0x21, 0, 0, 1];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = 49152u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn gre(flags: u8, protocol: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut g = vec![flags, 0];
    g.extend_from_slice(&protocol.to_be_bytes());
    if flags & 0x20 != 0 {
        g.extend_from_slice(&0x1234u32.to_be_bytes());
    }
    if flags & 0x10 != 0 {
        g.extend_from_slice(&seq.to_be_bytes());
    }
    g.extend_from_slice(payload);
    ethernet(0x0800, &ipv4(47, &g))
}

/// `frame` with `tag` (EtherType and body, one or more tags) put between its MAC addresses and
/// its EtherType.
fn tagged(frame: &[u8], tag: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(tag);
    f.extend_from_slice(&frame[12..]);
    f
}

/// The tunnel kinds, each a function from (frame number, inner Ethernet frame) to the mirror's frame.
type Wrap = fn(u32, &[u8]) -> Vec<u8>;

fn wraps() -> Vec<(&'static str, Wrap)> {
    vec![
        ("vxlan", |_, f| {
            let mut p = vec![0x08, 0, 0, 0, 0, 0x30, 0x39, 0]; // RFC 7348 §5, VNI 12345
            p.extend_from_slice(f);
            ethernet(0x0800, &ipv4(17, &udp(4789, &p)))
        }),
        ("vxlan 8472", |_, f| {
            let mut p = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
            p.extend_from_slice(f);
            ethernet(0x0800, &ipv4(17, &udp(8472, &p)))
        }),
        ("geneve", |_, f| {
            // RFC 8926 §3.4, one 4-byte option.
            let mut p = vec![1, 0, 0x65, 0x58, 0, 0, 7, 0, 0x01, 0x02, 0x03, 0x00];
            p.extend_from_slice(f);
            ethernet(0x0800, &ipv4(17, &udp(6081, &p)))
        }),
        ("gre teb", |_, f| gre(0x20, 0x6558, 0, f)),
        ("erspan i", |_, f| gre(0x00, 0x88be, 0, f)),
        ("erspan ii", |n, f| {
            let mut p = vec![0x10, 0x64, 0x00, 0x2a, 0, 0, 0, 0]; // version 1, VLAN 100, session 42
            p.extend_from_slice(f);
            gre(0x10, 0x88be, n, &p)
        }),
        ("erspan iii", |n, f| {
            let mut p = vec![0x20, 0x64, 0x00, 0x2a, 0, 0, 0, 0, 0, 0, 0x00, 0x01]; // O set
            p.extend_from_slice(&[0; 8]);
            p.extend_from_slice(f);
            gre(0x10, 0x22eb, n, &p)
        }),
        ("mpls pseudowire", |_, f| {
            let mut p = (((1000u32) << 12) | 64).to_be_bytes().to_vec();
            p.extend_from_slice(&(((16u32) << 12) | 0x100 | 64).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0]); // control word (RFC 4385)
            p.extend_from_slice(f);
            ethernet(0x8847, &p)
        }),
        ("mpls ip", |_, f| {
            let mut p = (((2000u32) << 12) | 0x100 | 64).to_be_bytes().to_vec();
            p.extend_from_slice(&f[14..]);
            ethernet(0x8847, &p)
        }),
        ("pppoe", |_, f| {
            let ip = &f[14..];
            let mut p = vec![0x11, 0, 0, 7];
            p.extend_from_slice(&(ip.len() as u16 + 2).to_be_bytes());
            p.extend_from_slice(&[0x00, 0x21]);
            p.extend_from_slice(ip);
            ethernet(0x8864, &p)
        }),
        // Switch tags after the MAC addresses (a SPAN of fabric-extender or TrustSec ports).
        ("vn-tag", |_, f| tagged(f, &[0x89, 0x26, 0x80, 0x05, 0x00, 0x07])),
        ("e-tag", |_, f| {
            tagged(f, &[0x89, 0x3f, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00])
        }),
        ("cisco metadata", |_, f| {
            tagged(f, &[0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x0a])
        }),
        ("vlan + cisco metadata", |_, f| {
            tagged(
                f,
                &[0x81, 0x00, 0x00, 0x64, 0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x0a],
            )
        }),
        ("vn-tag + vlan", |_, f| {
            tagged(f, &[0x89, 0x26, 0x80, 0x05, 0x00, 0x07, 0x81, 0x00, 0x00, 0x64])
        }),
        ("geneve in erspan ii", |n, f| {
            let mut g = vec![0, 0, 0x65, 0x58, 0, 0, 9, 0];
            g.extend_from_slice(f);
            let inner = ethernet(0x0800, &ipv4(17, &udp(6081, &g)));
            let mut p = vec![0x10, 0x64, 0x00, 0x2a, 0, 0, 0, 0];
            p.extend_from_slice(&inner);
            gre(0x10, 0x88be, n, &p)
        }),
    ]
}

/// Writes `frames` (ns timestamp, bytes) as a nanosecond pcap of Ethernet frames.
fn write_pcap(path: &Path, frames: &[(i64, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts, f) in frames {
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

fn events(path: PathBuf, vxlan_ports: &[u16]) -> (pacstap::ReplayReport, Vec<Value>) {
    let mut config = pacstap::config::Config::default();
    config.decapsulate.vxlan_ports = vxlan_ports.to_vec();
    let opts = pacstap::ReplayOptions::new(vec![path]).with_config(config);
    let report = pacstap::replay(opts, true).expect("replay");
    let events = report
        .events
        .iter()
        .map(|e| serde_json::to_value(pacstap_output::EveRecord::new(e)).unwrap())
        .collect();
    (report, events)
}

#[test]
fn tunnelled_dicom_gives_the_plain_events() {
    for name in ["store.pcap", "move.pcap"] {
        let (plain_report, plain) = replay(&[name]);
        assert!(plain.len() > 2, "{name}");
        let mut src = PcapFileSource::open(&sample(name)).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = src.next_frame() {
            assert_eq!(f.linktype, 1);
            frames.push((f.ts.0, f.data.to_vec()));
        }
        for (kind, wrap) in wraps() {
            let wrapped: Vec<(i64, Vec<u8>)> = frames
                .iter()
                .enumerate()
                .map(|(i, (ts, f))| (*ts, wrap(i as u32, f)))
                .collect();
            let path = std::env::temp_dir().join(format!(
                "pacstap-decap-{}-{}-{}",
                std::process::id(),
                kind.replace(' ', "-"),
                name
            ));
            write_pcap(&path, &wrapped);
            let (report, got) = events(path.clone(), &[4789, 8472]);
            std::fs::remove_file(&path).ok();
            assert_eq!(got, plain, "{name} in {kind}: events differ");
            let w = &report.wire;
            assert_eq!(
                (w.frames, w.tcp),
                (plain_report.wire.frames, plain_report.wire.tcp),
                "{name} {kind}"
            );
            let counted = match kind {
                "vxlan" | "vxlan 8472" => w.vxlan,
                "geneve" => w.geneve,
                "gre teb" => w.gre,
                "erspan i" => w.erspan_i,
                "erspan ii" => w.erspan_ii,
                "erspan iii" => w.erspan_iii,
                "mpls pseudowire" | "mpls ip" => w.mpls,
                "pppoe" => w.pppoe,
                "vn-tag" => w.vn_tag,
                "vn-tag + vlan" => w.vn_tag.min(w.vlan_tagged),
                "e-tag" => w.e_tag,
                "cisco metadata" => w.cisco_metadata,
                "vlan + cisco metadata" => w.cisco_metadata.min(w.vlan_tagged),
                _ => w.erspan_ii.min(w.geneve),
            };
            assert_eq!(counted, w.frames, "{name} {kind}: {w:?}");
        }
    }
}

#[test]
fn vxlan_on_an_unknown_port_is_explained() {
    let name = "store.pcap";
    let mut src = PcapFileSource::open(&sample(name)).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame() {
        let mut p = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        p.extend_from_slice(f.data);
        frames.push((f.ts.0, ethernet(0x0800, &ipv4(17, &udp(8472, &p)))));
    }
    let path = std::env::temp_dir().join(format!("pacstap-decap-{}-hint.pcap", std::process::id()));
    write_pcap(&path, &frames);
    let (report, got) = events(path.clone(), &[4789]);
    std::fs::remove_file(&path).ok();
    assert!(got.is_empty());
    assert_eq!(report.wire.non_tcp, frames.len() as u64);
    let warnings: Vec<String> = report.warnings().iter().map(ToString::to_string).collect();
    assert!(
        warnings.contains(
            &"input: 100% of frames are UDP to port 8472: VXLAN on Linux's historical default port? try --decapsulate vxlan=4789,8472".to_owned()
        ),
        "{warnings:?}"
    );
}
