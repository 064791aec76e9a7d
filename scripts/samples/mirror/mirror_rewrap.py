#!/usr/bin/env python3
"""Tunnel re-wraps of a real plain capture, for the encapsulations this kernel cannot make (no
gre / geneve / erspan modules, no switch tags): scripts/make-samples-mirror.

  mirror_rewrap.py PLAIN.pcap OUTDIR   writes OUTDIR/mixed.<wrap>.pcap for every wrap of WRAPS
                                       and prints one captures.tsv line per file

Every frame of PLAIN (Ethernet/IPv4/TCP, captured on the VXLAN lab's vxlan device) becomes one
frame of each output, with its timestamp; the inner bytes are untouched (inner Ethernet kept,
or cut off where the tunnel carries IP). The outer headers are built by scapy (2.8: layers
scapy.layers.inet.GRE, scapy.layers.vxlan, scapy.contrib.geneve / erspan / mpls), with every
checksum computed. Outer addresses are documentation ones (RFC 5737 192.0.2.0/24): tunnel end
points .10 (PACS side) and .30 (client side); for ERSPAN a switch .1 sending every mirrored
frame to a collector .2 (a mirror session is one-way).
"""
import sys
from pathlib import Path

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from pcaplib import Pcap, Record, read_pcap, write_pcap

PACS_INNER = bytes([10, 20, 0, 10])
MAC_A, MAC_B = "02:00:c0:00:02:0a", "02:00:c0:00:02:1e"
VTEP_A, VTEP_B = "192.0.2.10", "192.0.2.30"
SWITCH, COLLECTOR = "192.0.2.1", "192.0.2.2"
VNI = 4242
ERSPAN_SESSION = 42
GRE_KEY = 0x00001092  # 4242


def ends(frame):
    """outer (src mac, dst mac, src ip, dst ip) by the inner direction"""
    if frame[26:30] == PACS_INNER:
        return MAC_A, MAC_B, VTEP_A, VTEP_B
    return MAC_B, MAC_A, VTEP_B, VTEP_A


def udp_sport(frame):
    """a per-flow source port like the kernel's (RFC 7348 §5: a hash of the inner headers)"""
    h = sum(frame[26:38]) * 131 % 16384
    return 49152 + h


def geneve(i, t, frame):
    sm, dm, s, d = ends(frame)
    return Ether(src=sm, dst=dm) / IP(src=s, dst=d, id=i & 0xFFFF, flags="DF") / \
        UDP(sport=udp_sport(frame), dport=6081) / GENEVE(vni=VNI, proto=0x6558) / Raw(frame)


def gre_eth(i, t, frame):
    sm, dm, s, d = ends(frame)
    return Ether(src=sm, dst=dm) / IP(src=s, dst=d, id=i & 0xFFFF, flags="DF") / \
        GRE(key_present=1, seqnum_present=1, key=GRE_KEY, sequence_number=i, proto=0x6558) / Raw(frame)


def gre_ip(i, t, frame):
    sm, dm, s, d = ends(frame)
    return Ether(src=sm, dst=dm) / IP(src=s, dst=d, id=i & 0xFFFF, flags="DF") / \
        GRE(key_present=1, seqnum_present=1, key=GRE_KEY, sequence_number=i, proto=0x0800) / Raw(frame[14:])


def mirror_outer(i, proto):
    return Ether(src="02:00:c0:00:02:01", dst="02:00:c0:00:02:02") / \
        IP(src=SWITCH, dst=COLLECTOR, id=i & 0xFFFF, ttl=255) / GRE(seqnum_present=1, sequence_number=i, proto=proto)


def erspan2(i, t, frame):
    return mirror_outer(i, 0x88BE) / ERSPAN_II(ver=1, vlan=0, cos=0, en=0, t=0, session_id=ERSPAN_SESSION,
                                                index=7) / Raw(frame)


def erspan3_ts(t):
    """ERSPAN III timestamp: 32 bits in 100 us units (granularity gra=0)"""
    return (t // 100) & 0xFFFFFFFF


def erspan3(i, t, frame):
    return mirror_outer(i, 0x22EB) / ERSPAN_III(ver=2, vlan=0, cos=0, bso=0, t=0, session_id=ERSPAN_SESSION,
                                                timestamp=erspan3_ts(t), sgt_other=0, p=0, ft=0, hw=5, d=0,
                                                gra=0, o=0) / Raw(frame)


def erspan3_platform(i, t, frame):
    return mirror_outer(i, 0x22EB) / ERSPAN_III(ver=2, vlan=0, cos=0, bso=0, t=0, session_id=ERSPAN_SESSION,
                                                timestamp=erspan3_ts(t), sgt_other=0, p=0, ft=0, hw=5, d=0,
                                                gra=0, o=1) / \
        ERSPAN_PlatformSpecific(platf_id=3, info1=7, info2=0) / Raw(frame)


def mpls(i, t, frame):
    sm, dm, _, _ = ends(frame)
    return Ether(src=sm, dst=dm, type=0x8847) / MPLS(label=1000, cos=0, s=0, ttl=64) / \
        MPLS(label=2042, cos=0, s=1, ttl=64) / Raw(frame[14:])


def vlan_in_vxlan(i, t, frame):
    sm, dm, s, d = ends(frame)
    inner = Ether(dst=frame[0:6], src=frame[6:12], type=0x8100) / Dot1Q(vlan=20, prio=0, type=0x0800) / \
        Raw(frame[14:])
    return Ether(src=sm, dst=dm) / IP(src=s, dst=d, id=i & 0xFFFF, flags="DF") / \
        UDP(sport=udp_sport(frame), dport=4789) / VXLAN(flags=0x08, vni=VNI) / inner


def switch_tagged(frame, tag):
    """the frame with a switch tag (its EtherType and body) between the MAC addresses and the EtherType"""
    return Raw(frame[:12] + tag + frame[12:])


def vntag_vlan(i, t, frame):
    # Cisco VN-Tag (EtherType 0x8926): direction 1, destination VIF 5, source VIF 7; then 802.1Q VLAN 20,
    # as the SPAN of a fabric-extender host port delivers it.
    return switch_tagged(frame, bytes([0x89, 0x26, 0x80, 0x05, 0x00, 0x07, 0x81, 0x00, 0x00, 0x14]))


def vlan_cmd(i, t, frame):
    # 802.1Q VLAN 20, then Cisco MetaData (EtherType 0x8909: version 1, length 1, SGT option, SGT 10),
    # as the SPAN of a TrustSec trunk with inline tagging delivers it.
    return switch_tagged(frame, bytes([0x81, 0x00, 0x00, 0x14, 0x89, 0x09, 0x01, 0x01, 0x00, 0x01, 0x00, 0x0A]))


# name -> (builder, what the file shows)
WRAPS = {
    "geneve": (geneve, "Geneve (UDP 6081, VNI 4242, protocol 0x6558) / inner Ethernet"),
    "gre-eth": (gre_eth, "GRE with key 4242 and sequence number, protocol 0x6558 (transparent Ethernet bridging) "
                         "/ inner Ethernet"),
    "gre-ip": (gre_ip, "GRE with key 4242 and sequence number, protocol 0x0800 / inner IPv4"),
    "erspan2": (erspan2, "GRE (sequence number) protocol 0x88BE / ERSPAN type II (session 42) / inner Ethernet"),
    "erspan3": (erspan3, "GRE (sequence number) protocol 0x22EB / ERSPAN type III, no platform sub-header (O=0) "
                         "/ inner Ethernet"),
    "erspan3-platform": (erspan3_platform, "GRE protocol 0x22EB / ERSPAN type III with the 8-byte platform "
                                           "specific sub-header (O=1, platform id 3) / inner Ethernet"),
    "mpls": (mpls, "Ethernet 0x8847 / MPLS labels 1000, 2042 (bottom of stack) / inner IPv4 (no control word)"),
    "vlan-in-vxlan": (vlan_in_vxlan, "VXLAN (UDP 4789, VNI 4242) / inner Ethernet / 802.1Q VLAN 20 / IPv4"),
    "vntag-vlan": (vntag_vlan, "Ethernet / Cisco VN-Tag (0x8926, VIF 5 <- 7) / 802.1Q VLAN 20 / IPv4"),
    "vlan-cmd": (vlan_cmd, "Ethernet / 802.1Q VLAN 20 / Cisco MetaData (0x8909, SGT 10) / IPv4"),
}


def main(argv):
    src, outdir = Path(argv[0]), Path(argv[1])
    p = read_pcap(src)
    assert p.linktype == 1, "plain capture must be Ethernet"
    for name, (build, what) in WRAPS.items():
        recs = []
        for i, r in enumerate(p.records):
            assert len(r.data) == r.orig_len, "plain capture must hold whole frames"
            t = r.ts_sec * 1_000_000 + r.ts_frac
            raw = bytes(build(i, t, r.data))
            recs.append(Record(r.ts_sec, r.ts_frac, raw, len(raw)))
        out = outdir / f"mixed.{name}.pcap"
        write_pcap(out, Pcap(p.endian, p.magic, p.version, 262144, 1, recs), recs)
        print(f"mixed.{name}.pcap\t{name}\tmixed.plain.pcap\tscapy re-wrap of mixed.plain.pcap\t{what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
