#!/usr/bin/env python3
"""Write pcap-samples/mirror/README.md from the tables scripts/make-samples-mirror leaves there
(captures.tsv, capture-commands.tsv, tool-versions.tsv, tshark-mirror-facts.tsv).

  mirror_readme.py DIR
"""
import shlex
import sys
from pathlib import Path

import mirror_facts
from samplelib import read_tsv as table

TAB = "\t"


def md_row(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


INTRO = """# Mirror-realism samples

Real captures of what a SPAN / mirror port, a cloud packet broker or a routed tap delivers to
pacstap, each beside a **plain capture of the same exchange** (same TCP connections, same
bytes), so a test can demand the same facts from both. Made by `scripts/make-samples-mirror`
(needs root; rebuilds everything from scratch; `--facts-only` redoes the tables and this file);
every exchange is real software (Orthanc 1.10 + DICOMweb plugin, dcmtk storescu / movescu /
storescp, curl, nginx, the MLLP sender and listener of `scripts/samples/common/hl7_mllp.py`) over the real
kernel in network namespaces it creates (`pm-*`), MTU 1500, every offload off, permanent
neighbour entries (no ARP), 0 kernel drops for every tcpdump. Synthetic patients and studies
only (`scripts/samples/scenarios/scen_data.py` pool studies 1-20, UIDs under 1.2.826.0.1.3680043.10.1234.20).

- **VXLAN** (`*.vxlan.pcap`): a kernel `vxlan` device (VNI 4242, UDP 4789, MTU 1450 over a 1500
  veth) between `pm-v-pacs` (192.168.100.10 / inner 10.20.0.10) and `pm-v-mod` (192.168.100.30 /
  inner 10.20.0.30); tcpdump on the underlay veth and, at the same time, on the vxlan device
  (`*.plain.pcap`: the inner frames of the same packets). `store.vxlan6.pcap`: the same over an
  IPv6 underlay (`pm-w-*`, fd00:64::10 / ::30, vxlan MTU 1430), a C-STORE of 5 instances to a
  dcmtk storescp.
- **IPv4 fragments** (`frag-*.frag.pcap`): client 10.30.1.30 - router - 576-byte link - router -
  server 10.30.2.10; the endpoints run with `net.ipv4.ip_no_pmtu_disc=1` (no DF bit, MSS 1460), so
  the routers fragment every full-size segment in both directions (RFC 791: 576 is the datagram
  every host must accept); tcpdump on the 576 link. `frag-*.plain.pcap` is what the endpoints sent
  (`tcpdump -Q out` on each endpoint, merged by mergecap): unfragmented.
  **No IPv6 fragments**: Linux never fragments TCP over IPv6 itself (TCP follows the path MTU and
  IPv6 routers do not fragment), so no real TCP-over-IPv6 fragment train could be made here. Also
  tried: VXLAN over an IPv6 underlay crossing a 1280-byte link; after the Packet Too Big the
  kernel's vxlan device fragments the inner IPv4 packet (`skb_tunnel_check_pmtu`), never the outer
  IPv6 one. The third-party captures in `shared/captures/suricata-verify/` (defrag IPv6, VLAN +
  IPv6) cover IPv6 fragments.
- **SPAN** (`move20.*.pcap`): a 20-study C-MOVE (WORKSTATION1 10.20.0.30 -> ORTHANC 10.20.0.10,
  sub-operations ORTHANC -> STORESCP 10.20.0.20: the addresses and AEs of
  `pcap-samples/scenarios/pacstap.toml`, so its `bulk_export` rule applies), captured on the
  PACS's bridge port by three tcpdumps at once: both directions (`move20.plain.pcap`), `-Q in`
  and `-Q out`. The direction files merged with the PACS's side delayed (`editcap -t`, `mergecap`)
  make the ACK-before-data variants; the duplicate and request-side variants are derived from the
  plain file (`scripts/samples/mirror/mirror_span.py`).
- **Re-wraps** (`mixed.<wrap>.pcap`): `mixed.plain.pcap` (the four plain VXLAN-lab exchanges,
  merged) with every frame wrapped by scapy in a tunnel this kernel has no module for, or with
  the switch tags of a fabric-extender (VN-Tag) or TrustSec (Cisco MetaData) port in it
  (`scripts/samples/mirror/mirror_rewrap.py`): inner bytes and timestamps untouched, outer checksums valid.
"""

NOTES = """## What tshark says

`tshark-mirror-facts.tsv` (one row per file), `tshark-mirror-flows.tsv` (inner TCP connections:
the SYN's inner addresses) and `tshark-mirror-app.tsv` (DIMSE messages with command, message id,
move destination, status, study / SOP instance UID; HTTP requests with the Basic-auth user name and
responses; TLS hellos with SNI, version, JA3 / JA3S; HL7 messages with MSH-9, MSH-10, MSA-1) are
written by `scripts/samples/mirror/mirror_facts.py`, which fails the regeneration unless every variant shows
tshark the same inner connections as its plain twin and the same multiset of application facts
(duplicates: the same set; request side: a subset). Two things tshark does not get right, kept as
they are because they are what the variants are for:

- `move20.span*.pcap`: tshark 4.0 takes a data segment that arrives after the ACK covering it for
  a "spurious retransmission" and leaves it out of TCP reassembly, so it loses DICOM PDVs (counted
  in `same_as_plain`). pacstap must not.
- `move20.oneway.pcap`: no responses, so no statuses.

The tshark commands (`{f}` = the file):

"""

TESTS = """## Tests

`tests/mirror_realism.rs` replays every variant and its plain twin through pacstap and compares
the multisets of events (type, 5-tuple, protocol object) with the fields that legitimately differ
removed (packet times, flow / incident ids; byte counts are kept: every variant carries the same
TCP payload), checks that the benign files raise no alert, and that the 20-study C-MOVE raises
the same `bulk_export` alert for WORKSTATION1 plain, mirrored, duplicated and request-side only.
It also compares pacstap with tshark on the third-party tunnel and fragment captures of
`shared/captures/suricata-verify/` (TCP packets, TCP connections, event endpoints).

| test | needs |
| --- | --- |
| `plain_twins_hold_the_exchanges_that_were_run`, `benign_variants_raise_no_alert`, `fragmented_samples_are_fragmented_and_their_twins_are_not`, `span_with_data_after_its_ack_gives_the_plain_facts`, `span_duplicates_give_the_plain_facts`, `span_request_side_only_gives_every_request`, `bulk_export_is_the_same_alert_plain_mirrored_duplicated`, `third_party_tunnels_without_inner_tcp_give_no_tcp` | passes today |
| `vxlan_underlay_gives_the_facts_of_the_inner_capture`, `rewrap_vlan_in_vxlan_gives_the_plain_facts` | decapsulation: VXLAN (+ inner 802.1Q) |
| `vxlan_over_ipv6_underlay_gives_the_facts_of_the_inner_capture` | decapsulation: VXLAN over IPv6 |
| `rewrap_geneve_gives_the_plain_facts` | decapsulation: Geneve |
| `rewrap_gre_ethernet_gives_the_plain_facts`, `rewrap_gre_ipv4_gives_the_plain_facts`, `third_party_gre_gives_the_inner_tcp_tshark_sees` | decapsulation: GRE |
| `rewrap_erspan2_gives_the_plain_facts`, `rewrap_erspan3_gives_the_plain_facts`, `rewrap_erspan3_platform_gives_the_plain_facts` | decapsulation: ERSPAN II / III |
| `rewrap_mpls_gives_the_plain_facts` | decapsulation: MPLS |
| `ipv4_fragments_give_the_facts_of_the_unfragmented_capture` | defragmentation: IPv4 |
| `third_party_fragments_give_the_inner_tcp_tshark_sees` | defragmentation: IPv4 and IPv6 |
| `span_with_one_side_1ms_late_gives_the_plain_facts` | ack-before-data (and a SYN seen after its SYN-ACK) |
"""


def main():
    d = Path(sys.argv[1])
    caps = table(d / "captures.tsv")
    facts = {r["file"]: r for r in table(d / "tshark-mirror-facts.tsv")}
    out = [INTRO, "## Files\n"]
    out.append(md_row(["file", "kind", "plain twin", "packets", "bytes", "encapsulation (tshark)", "IP fragments",
                       "TCP conns", "DIMSE", "HTTP msgs", "TLS hellos", "HL7 msgs", "same facts as twin"]))
    out.append(md_row(["---"] * 13))
    for c in caps:
        f = facts[c["file"]]
        out.append(md_row([f"`{c['file']}`", c["kind"], f"`{c['plain']}`" if c["plain"] else "", f["packets"],
                           f["bytes"], f"`{f['encapsulation']}`", f["ip_fragments"], f["tcp_streams"],
                           f["dimse"], f["http"], f["tls_hellos"], f["hl7_messages"], f["same_as_plain"]]))
    out.append("\n### Where each was tapped and how it was made\n")
    out.append(md_row(["file", "tap", "how"]))
    out.append(md_row(["---"] * 3))
    for c in caps:
        out.append(md_row([f"`{c['file']}`", c["tap"], c["how"]]))
    total = sum((d / c["file"]).stat().st_size for c in caps)
    out.append(f"\n{len(caps)} captures, {total} bytes in all.\n")
    out.append("## Client commands (as run, paths shortened)\n")
    out.append("| capture | command |\n| --- | --- |")
    for r in table(d / "capture-commands.tsv"):
        out.append(md_row([f"`{r['capture']}`", f"`{r['command']}`"]))
    out.append("\n## Tool versions\n")
    out.append("| tool | version |\n| --- | --- |")
    for r in table(d / "tool-versions.tsv"):
        out.append(md_row([r["tool"], r["version"]]))
    out.append("")
    out.append(NOTES)
    for cmd in mirror_facts.COMMANDS:
        words = ["{f}" if c == "{f}" else c.replace(mirror_facts.AGG, "$'\\x1e'") if mirror_facts.AGG in c
                 else shlex.quote(c) for c in cmd]
        out.append("    " + " ".join(words))
    out.append("")
    out.append(TESTS)
    (d / "README.md").write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
