#!/usr/bin/env python3
"""Write pcap-samples/README.md from the fact tables (called by scripts/make-samples).

  samples_readme.py SAMPLES_DIR

Reads SAMPLES_DIR/{tshark-facts,tshark-associations,tshark-dimse,dicom-instances,
wire-datasets,tool-versions,capture-commands}.tsv and SAMPLES_DIR/derived-edits.json.
Also cross-checks that every C-STORE data set reassembled from store/move/get equals the
data set of the synthetic file it came from (exit 1 otherwise).

If SAMPLES_DIR also holds the tables of scripts/make-samples-web (tshark-web-facts.tsv, ...),
a second part about the DICOMweb / HTTPS / HL7 captures is rendered by web_readme.py. Reads
tables only: running this never touches a capture (it is how make-samples-web updates the README).
"""
import csv
import json
import sys
from collections import OrderedDict
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in scripts/samples from the import below
from samplelib import md_table, read_tsv  # noqa: E402
import web_readme  # noqa: E402  (part 2 of the README, scripts/samples/web/web_readme.py)


def tsv(path):
    # the DICOM tables are read with csv's default quoting, as they always were
    return read_tsv(path, quoting=csv.QUOTE_MINIMAL)


DESCRIPTION = OrderedDict([
    ("echo.pcap", ("real", "echo", """dcmtk `echoscu` (calling AE `MODALITY1`, pt-mod 10.20.0.30) sends one
C-ECHO to `ORTHANC` (pt-pacs 10.20.0.10:4242). Association accepted, C-ECHO-RSP status 0x0000,
released normally. Captured on bridge port `pacs0`.""")),
    ("echo-sll2.pcap", ("real", "echo", """The very same association as `echo.pcap`, captured at the same time by a
second tcpdump with `-i any` inside the PACS namespace (pt-pacs): link type LINUX_SLL2 (276),
20-byte cooked header (interface index, packet type 0 = to us / 4 = outgoing), no Ethernet header.""")),
    ("echo-qinq.pcap", ("derived", None, """`echo.pcap` with two VLAN tags inserted after the MAC addresses:
outer 802.1ad S-tag (TPID 0x88a8, VID 200), inner 802.1Q C-tag (TPID 0x8100, VID 100), PCP 0,
DEI 0. Same packets, timestamps and DICOM content as `echo.pcap`.""")),
    ("reject.pcap", ("real", "reject", """Two associations rejected by Orthanc because the called AE title is wrong
(`DicomCheckCalledAet: true`): `echoscu` MODALITY1 -> `NOSUCHAE` (Verification), then 0.5 s later
`findscu` WORKSTATION1 -> `NOSUCHPACS` (Study Root FIND). Each: A-ASSOCIATE-RQ, A-ASSOCIATE-RJ with
result 1 (rejected-permanent), source 1 (DICOM UL service-user), reason 7 (called-AE-title-not-recognized),
then TCP FIN from both sides. No P-DATA.""")),
    ("store.pcap", ("real", "store", """dcmtk `storescu -R` (calling `MODALITY1`) stores all 8 synthetic instances (3 studies,
table below) to `ORTHANC` in ONE association, in the order CT 1-3, MR 1-3, CR 1 (the 1,065,932-byte
file; its data set is 1,065,606 bytes on the wire in {big_pdus} P-DATA PDUs of at most 16,384 bytes
spread over {big_segs} TCP segments), CR 2. `-R` proposes, per SOP class, one presentation context with Explicit VR LE only and
one with Explicit VR BE + Implicit VR LE; Orthanc accepts all 6 (ids 1,3,5,7,9,11; odd ids choose
Implicit VR LE). CT and CR 1 travel on Explicit VR LE (ids 1 and 9), MR 1-3 and CR 2 on Implicit
VR LE (ids 7 and 11). All 8 C-STORE-RSP status 0x0000; released.""")),
    ("store.pcapng", ("derived", None, """`editcap -F pcapng store.pcap store.pcapng`: same packets in pcapng
(one SHB, one IDB with link type 1, one EPB per packet, microsecond timestamps).""")),
    ("store-vlan.pcap", ("derived", None, """`store.pcap` with an 802.1Q tag (TPID 0x8100, PCP 0, DEI 0, VID 100)
inserted into every frame (frames 4 bytes longer).""")),
    ("store-ipv6.pcap", ("derived", None, """`store.pcap` rewritten to IPv6: 10.20.0.10 -> fd00::10, 10.20.0.30 -> fd00::30
(the IPv4 last octet written as the last IPv6 group, digits unchanged), EtherType 0x86dd, traffic class
= IPv4 TOS, flow label 0, hop limit = IPv4 TTL, next header 6, TCP header/options/payload unchanged
except the TCP checksum, recomputed over the IPv6 pseudo-header (tshark validates all of them). Frames
grow by 20 bytes, so full-size segments are 1534-byte frames (IPv6 packet 1520 > MTU 1500: this is a
rewrite, not a real IPv6 capture; the MSS option still says 1460).""")),
    ("store-reordered.pcap", ("derived", None, """`store.pcap` with 4 pairs of back-to-back client->PACS data segments
exchanged (frame bytes swapped, timestamps kept in their slots, so time stays monotonic and the
higher-sequence segment comes first). Same packet count and bytes; the TCP payload stream is
unchanged once reordered, so every DIMSE message and data set is identical to `store.pcap`.""")),
    ("store-duplicated.pcap", ("derived", None, """`store.pcap` plus 5 exact copies of client->PACS data segments: 4 inserted
right after their original (same timestamp) and 1 inserted 5 frames later (timestamp of the frame it
follows), like a spurious retransmission. The de-duplicated payload stream is identical to
`store.pcap`.""")),
    ("store-dropped.pcap", ("derived", None, """`store.pcap` minus ONE client->PACS data segment in the middle of
the data set of the >1 MB CR instance ({removed_len} bytes; a segment that contains no PDU or PDV header, so a decoder can
re-synchronise at the next PDU using the PDU length it already knows). The endpoints did get that
segment (later ACKs cover it): it is a capture loss, not a network loss. Expected decode: 8 C-STORE-RQ
and 8 C-STORE-RSP (all 0x0000) as in `store.pcap`, but the data set of
1.2.826.0.1.3680043.10.1234.1.3.1.1 has a {removed_len}-byte hole and must be reported as incomplete/gap;
the other 7 data sets are intact.""")),
    ("store-truncated.pcap", ("derived", None, """The first bytes of `store.pcap`, cut in the middle of the data of one record
(the record header is present and announces more bytes than the file holds). The cut falls in the
data set of the >1 MB CR instance. Readers must report truncation, not crash, and keep everything
decoded before the cut (6 complete C-STORE exchanges, the 7th C-STORE-RQ started).""")),
    ("find.pcap", ("real", "find", """dcmtk `findscu -S` (Study Root, calling `WORKSTATION1`) sends one STUDY-level
C-FIND with PatientName `SYNTH*` (plus empty PatientID, StudyInstanceUID, StudyDate,
StudyDescription, AccessionNumber, ModalitiesInStudy) to `ORTHANC`. Orthanc answers 3 pending
C-FIND-RSP (status 0xff00), one per study, each with an identifier, then the final C-FIND-RSP
status 0x0000 without data set (Orthanc writes all four at once; see `tshark-dimse.tsv` for the
frames). Released.""")),
    ("move.pcap", ("real", "move", """dcmtk `movescu -S` (calling `WORKSTATION1`) asks `ORTHANC` to C-MOVE the MR study
1.2.826.0.1.3680043.10.1234.1.2 to move destination `STORESCP`. The capture holds BOTH associations:
(stream 0) WORKSTATION1 10.20.0.30 -> ORTHANC 10.20.0.10:4242 with C-MOVE-RQ and 3 C-MOVE-RSP
(pending 0xff00 with remaining/completed 2/1 and 1/2, then final 0x0000 with completed 3); and
(stream 1) the sub-association Orthanc opens itself: calling `ORTHANC` 10.20.0.10 -> called
`STORESCP` 10.20.0.20:11112 (dcmtk `storescp` in pt-ws) with 3 C-STORE-RQ/RSP (MR instances in
the order .3, .2, .1, Implicit VR LE as stored, carrying Move Originator AE `WORKSTATION1` and Move
Originator Message ID 1). Both associations are released normally.""")),
    ("move-midstream.pcap", ("derived", None, """`move.pcap` without its first frames: the TCP handshake, A-ASSOCIATE-RQ and
A-ASSOCIATE-AC of the WORKSTATION1->ORTHANC association (and the ACKs between) are gone; the file
starts with the client segment holding the first bytes of the P-DATA PDU that carries the C-MOVE-RQ
(PDU boundary aligned). Presentation context 3 and its transfer syntax are therefore unknown to a
decoder (the C-MOVE command set is always Implicit VR LE; the identifier was sent with Explicit VR LE).
The ORTHANC->STORESCP sub-association is complete.""")),
    ("get.pcap", ("real", "get", """dcmtk `getscu -S` (calling `WORKSTATION1`) sends C-GET for the CT study
1.2.826.0.1.3680043.10.1234.1.1 to `ORTHANC`. The A-ASSOCIATE-RQ proposes 121 presentation
contexts with SCP/SCU role selection (it spans several TCP segments). Orthanc sends the 3 CT
instances back as C-STORE-RQ on the SAME association (presentation context 33, Explicit VR LE, order
.3, .2, .1), interleaved with C-GET-RSP pending (0xff00: remaining/completed 2/1, 1/2, 0/3) and a
final C-GET-RSP 0x0000 (completed 3) - 4 C-GET-RSP in total. Released.""")),
    ("abort.pcap", ("real", "abort", """Two pynetdicom associations to `ORTHANC`, each with one C-ECHO (status 0x0000):
(stream 0) calling `PYABORT`: after the C-ECHO the client sends A-ABORT (source 0 = service-user,
reason 0), then the TCP connection is closed with FIN/ACK by both sides. Outcome: aborted.
(stream 1) calling `PYRESET`: after the C-ECHO the client closes its socket with SO_LINGER 0, so
the kernel sends a TCP RST; there is no A-ABORT and no A-RELEASE. Outcome: reset.""")),
    ("user-identity.pcap", ("real", "user-identity", """Two pynetdicom associations to `ORTHANC` with a User Identity
sub-item (0x58) in the A-ASSOCIATE-RQ user information, each followed by one C-ECHO and a release:
(stream 0) calling `PYUSERID2`: type 2 (username and passcode), primary field `rad1`, secondary
field `secret-passcode`, positive response requested 0; (stream 1) calling `PYUSERID1`: type 1
(username only), primary `rad1`, empty secondary field, positive response requested 1. Orthanc ignores
the identity: both A-ASSOCIATE-AC carry no User Identity response item. A passive analyser must
never log `secret-passcode`.""")),
])


def main():
    d = Path(sys.argv[1])
    facts = {r["file"]: r for r in tsv(d / "tshark-facts.tsv")}
    assocs = tsv(d / "tshark-associations.tsv")
    dimse = tsv(d / "tshark-dimse.tsv")
    inst = tsv(d / "dicom-instances.tsv")
    wire = tsv(d / "wire-datasets.tsv")
    edits = json.loads((d / "derived-edits.json").read_text())
    versions = tsv(d / "tool-versions.tsv")
    cmds = tsv(d / "capture-commands.tsv")

    # ---- cross-check wire data sets against the files
    by_sop = {r["sop_instance_uid"]: r for r in inst}
    bad = []
    for w in wire:
        if w["command"] != "C-STORE-RQ":
            continue
        ref = by_sop.get(w["affected_sop_instance"])
        if ref is None or (w["dataset_len"], w["dataset_sha256"]) != (ref["dataset_len"], ref["dataset_sha256"]):
            bad.append(f"{w['file']}: data set of {w['affected_sop_instance']} differs from the file")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1

    # sizes without README.md; the README's own (new) size is added at the end (fixed point)
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file() and p.name != "README.md")
    web = web_readme.present(d)
    L = []
    w = L.append
    if web:
        w("# pcap-samples: real DICOM, DICOMweb, TLS and HL7 captures for pacstap tests\n")
        w("Two parts, made by two scripts. **Part 1** (DICOM upper layer): `scripts/make-samples`, "
          "described first. **Part 2** (DICOMweb over HTTP, HTTPS with TLS 1.2/1.3, HL7 v2 over MLLP): "
          "`scripts/make-samples-web`, described in [Part 2](#part-2-dicomweb-https-tls-12--13-and-hl7-v2-over-mllp) "
          "below. Each script rewrites only its own files; both re-render this README from the tables.\n")
    else:
        w("# pcap-samples: real DICOM captures for pacstap tests\n")
    w("GENERATED by `scripts/make-samples` (do not edit by hand; re-run the script, it rewrites every "
      + ("file of part 1" if web else "file here") + "). Everything is synthetic: patients `SYNTH^...`, IDs `SYN000n`, UIDs under the "
      "made-up root `1.2.826.0.1.3680043.10.1234`.\n")
    w("Real traffic between real DICOM software (Orthanc, dcmtk, pynetdicom) in a lab of Linux "
      "network namespaces, captured with tcpdump; a few files are derived from those by "
      "`scripts/samples/dicom/pcap_variants.py` (stdlib Python, documented edits) or `editcap`.\n")
    w("```\nsudo scripts/make-samples               # ~1.5 min; needs root (netns, tcpdump); installs missing tools\n"
      "sudo scripts/make-samples --facts-only  # keep the captures, redo the TSV tables and this README\n```\n")
    w("Regenerating the captures changes timestamps, ports and frame numbers, so anything pinned to the "
      "exact packets (e.g. golden `*.expected.jsonl` files kept next to the captures by the tests) has to "
      "be regenerated with them. Use `--facts-only` when only the fact scripts changed.\n")
    w("**What is stable across regenerations**: AE titles, IPs, MACs, server ports, study/series/SOP "
      "UIDs, the DICOM files (byte-identical), the data sets on the wire (`wire-datasets.tsv` hashes), "
      "and the counts of associations / PDUs / DIMSE messages / outcomes. **What changes**: "
      "timestamps, client ephemeral ports, TCP sequence numbers, exact packet counts (ACK "
      "patterns), frame numbers, and thus the frame numbers in `derived-edits.json`. The TSV/JSON "
      "files are regenerated together with the captures and always describe the committed files.\n")
    if web:
        part2 = set(web_readme.WEB_CAPTURES + web_readme.WEB_TABLES)
        t1 = sum(p.stat().st_size for p in d.iterdir()
                 if p.is_file() and p.name not in part2 and p.name != "README.md")
        w("Total size of this directory: @TOTAL@ bytes (part 1 with this README: @T1@).\n")
    else:
        t1 = total
        w("Total size of this directory: @TOTAL@ bytes.\n")

    w("## Files\n")
    rows = []
    for name in DESCRIPTION:
        f = facts[name]
        rows.append(dict(file=f"`{name}`", kind=DESCRIPTION[name][0], bytes=f"{int(f['bytes']):,}",
                         format=f["format"], link=f["linktype"], packets=f["packets"]))
    w(md_table(rows, ["file", "kind", "bytes", "format", "link", "packets"]))
    w("")
    w("Also here: `tshark-facts.tsv`, `tshark-associations.tsv`, `tshark-dimse.tsv` (what tshark "
      "decodes, see below), `wire-datasets.tsv` (data sets reassembled by `pcap_variants.py "
      "--datasets`, with SHA-256), `dicom-instances.tsv` (the synthetic files), "
      "`derived-edits.json` (exact edits of the derived files), `tool-versions.tsv` and "
      "`capture-commands.tsv` (what produced the captures).\n")

    w("## Lab\n")
    w("""```
 pt-mod 10.20.0.30 (eth0 02:00:0a:14:00:1e)     pt-pacs 10.20.0.10 (eth0 02:00:0a:14:00:0a)
 dcmtk echoscu/storescu/findscu/movescu/getscu  Orthanc AE ORTHANC, DICOM 4242, HTTP 8042
 pynetdicom clients                                   |
        |                                             |
   [mod0]-------- br0 (netns pt-sw) --------------[pacs0]  <== tcpdump -i pacs0 (the "tap")
                    |
                 [ws0]
                    |
 pt-ws 10.20.0.20 (eth0 02:00:0a:14:00:14): dcmtk storescp AE STORESCP, port 11112
```
""")
    w("- One /24 (10.20.0.0/24), veth pairs, MTU 1500. On every veth end and on br0: TSO, GSO, GRO, "
      "LRO, scatter-gather and TX checksum offload OFF (`ethtool -K DEV tso off gso off gro off lro off tx off sg off`; "
      "the script checks TSO/GSO/GRO/tx-checksumming are off with `ethtool -k`), so frames are wire-sized (max 1514 bytes: MSS 1460 minus 12 bytes of TCP timestamp option = 1448 bytes of payload) and checksums are final "
      "(tshark validates every IPv4/TCP checksum: `bad_checksums` = 0 in `tshark-facts.tsv`).")
    w("- IPv6 disabled in all namespaces and permanent neighbour entries with fixed MACs: the captures "
      "contain only IPv4/TCP, no ARP, no ND/MLD.")
    w("- Capture point: bridge port `pacs0` in namespace `pt-sw` (the PACS uplink), so every packet to "
      "or from 10.20.0.10 is seen once, including Orthanc's own outbound association to STORESCP "
      "during the C-MOVE. Command: `ip netns exec pt-sw tcpdump -Z root -n -s 0 -U -B 4096 -i pacs0 -w FILE` "
      "(stopped with SIGINT 1.5 s after the client exits; the script fails unless tcpdump reports "
      "`0 packets dropped by kernel`). `echo-sll2.pcap`: same but `ip netns exec pt-pacs tcpdump ... -i any`.")
    w("- Orthanc config (temp dir): `DicomAet` ORTHANC, `DicomPort` 4242, `DicomCheckCalledAet` true, "
      "`StrictAetComparison` true, `DicomModalities` {STORESCP 10.20.0.20:11112, WORKSTATION1 "
      "10.20.0.30:11113, MODALITY1 10.20.0.30:11114}, `DicomAlwaysAllowEcho`/`Store` true, "
      "`MaximumPduLength` 16384, `SynchronousCMove` true, `DicomAssociationCloseDelay` 0, "
      "`RemoteAccessAllowed` true, `HttpPort` 8042, no plugins. HTTP is only used on pt-pacs's "
      "loopback (never on the tapped link). storescp: `storescp --aetitle STORESCP --output-directory DIR 11112`.")
    w("- dcmtk tools are called by absolute path (`/usr/bin/...`): pip's pynetdicom installs Python "
      "entry points with the same names (storescu, echoscu, ...) that can shadow dcmtk on `$PATH`.\n")

    w("### Tool versions used for the committed files\n")
    w(md_table(versions, ["tool", "version"]))
    w("")

    w("## Synthetic DICOM instances (`dicom-instances.tsv`)\n")
    w("Written by `scripts/samples/dicom/synth_dicom.py` (pydicom, fixed values, byte-identical on every run). "
      "Pixel data: 16-bit MONOCHROME2, BitsStored 12, position-dependent pattern. "
      "`dataset_len`/`dataset_sha256` cover the bytes after the File Meta group, which is exactly "
      "what a C-STORE carries (checked against `wire-datasets.tsv` for store/move/get).\n")
    studies = OrderedDict()
    for r in inst:
        studies.setdefault(r["study_uid"], r)
    w(md_table([dict(study=f"`{s}`", patient=f"{r['patient_name']} / {r['patient_id']}",
                     modality=r["modality"], sop_class=r["sop_class_uid"],
                     n=sum(1 for x in inst if x["study_uid"] == s)) for s, r in studies.items()],
               ["study", "patient", "modality", "sop_class", "n"],
               ["StudyInstanceUID", "patient", "modality", "SOP class", "instances"]))
    w("")
    w(md_table([dict(file=r["file"], sop=f"`{r['sop_instance_uid']}`", ts=r["transfer_syntax"],
                     size=f"{int(r['file_size']):,}", dl=f"{int(r['dataset_len']):,}",
                     sha=r["dataset_sha256"][:16] + "...") for r in inst],
               ["file", "sop", "ts", "size", "dl", "sha"],
               ["file", "SOPInstanceUID", "transfer syntax", "file bytes", "data set bytes",
                "data set SHA-256 (full value in the TSV)"]))
    w("")
    w("Series UID = study UID + `.1`; SOP instance UID = series UID + `.n`.\n")

    w("## Per-file details\n")
    cmd_by = OrderedDict()
    for c in cmds:
        cmd_by.setdefault(c["scenario"], []).append(c["command"])
    for name, (kind, scen, text) in DESCRIPTION.items():
        w(f"### `{name}`\n")
        dr = edits.get("store-dropped.pcap", {})
        text = text.replace("{big_pdus}", str(dr.get("big_instance_data_pdus", "?"))).replace(
            "{big_segs}", str(dr.get("big_instance_client_segments", "?"))).replace(
            "{removed_len}", str(dr.get("removed_len", "?")))
        w(" ".join(text.split()) + "\n")
        if kind == "real" and scen in cmd_by:
            w("Commands (run inside pt-mod while tcpdump ran on pacs0; `<dicom>` = the synthetic files, "
              "`<tmp>` = the script's temp dir):\n")
            w("```\n" + "\n".join(cmd_by[scen]) + "\n```\n")
        if name in edits:
            w("Edit details (`derived-edits.json`):\n")
            for k, v in edits[name].items():
                w(f"- `{k}`: " + (v if isinstance(v, str) else "`" + json.dumps(v) + "`"))
            w("")
        f = facts[name]
        counts = ", ".join(f"{k}={f[k]}" for k in f if k not in ("file", "format", "linktype", "bytes")
                           and f[k] not in ("0", "no"))
        w(f"tshark: {counts}.\n")
        a_rows = [a for a in assocs if a["file"] == name]
        if a_rows:
            w(md_table(a_rows, ["tcp_stream", "client", "server", "calling_ae", "called_ae", "outcome",
                                "dimse"]))
            w("")
    w("## tshark commands (re-runnable by tests)\n")
    w("The DICOM ones use `-o tcp.reassemble_out_of_order:TRUE -d tcp.port==4242,dicom -d tcp.port==11112,dicom` "
      "and otherwise default preferences (tshark 4.0.17 on Debian 12). Without the out-of-order "
      "preference tshark sometimes loses a PDU in `store-reordered.pcap`. `F` = a file in this directory.\n")
    w("""```sh
# PDU counts (tshark-facts.tsv columns assoc_rq..abort): one dicom.pdu.type value per PDU,
# comma-separated when a frame holds several; count 0x01 A-ASSOCIATE-RQ, 0x02 -AC, 0x03 -RJ,
# 0x04 P-DATA-TF, 0x05 A-RELEASE-RQ, 0x06 A-RELEASE-RP, 0x07 A-ABORT
tshark -n -r F -o tcp.reassemble_out_of_order:TRUE -d tcp.port==4242,dicom -d tcp.port==11112,dicom -T fields -E occurrence=a -E aggregator=, -e dicom.pdu.type \\
  | tr ',' '\\n' | grep . | sort | uniq -c

# DIMSE message counts (columns C-ECHO-RQ..C-CANCEL-RQ): the Command Field (0000,0100) line of
# every command set in the PDML (tshark puts command-set elements in unnamed fields)
tshark -n -r F -o tcp.reassemble_out_of_order:TRUE -d tcp.port==4242,dicom -d tcp.port==11112,dicom -Y dicom -T pdml \\
  | grep -oE 'show="\\(0000,0100\\) +2 Command Field +[A-Z-]+' | awk '{print $NF}' | sort | uniq -c

# TCP resets (column tcp_rst)
tshark -n -r F -Y 'tcp.flags.reset==1' | wc -l

# checksum validation (column bad_checksums, must be 0)
tshark -n -r F -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -Y 'ip.checksum.status==0 || (tcp.checksum.status==0 && tcp.checksum!=0xffff)' | wc -l
# TCP checksum field 0xffff where tshark computes 0x0000 (column tcp_checksum_0xffff; valid, see caveats)
tshark -n -r F -o tcp.check_checksum:TRUE -Y 'tcp.checksum.status==0 && tcp.checksum==0xffff' | wc -l

# TCP analysis (columns tcp_out_of_order, tcp_retransmission, tcp_lost_segment, tcp_ack_lost_segment):
# number of frames where the field is present
tshark -n -r F -T fields -e tcp.analysis.out_of_order -e tcp.analysis.retransmission -e tcp.analysis.lost_segment -e tcp.analysis.ack_lost_segment

# format / link type / packets
capinfos -T -M -t -E -c F

# association and DIMSE tables (tshark-associations.tsv, tshark-dimse.tsv): one PDML pass,
# parsed by scripts/samples/dicom/sample_facts.py (same command as the DIMSE count)
tshark -n -r F -o tcp.reassemble_out_of_order:TRUE -d tcp.port==4242,dicom -d tcp.port==11112,dicom -Y dicom -T pdml
```
""")
    w("Association fields used: `dicom.assoc.ae.calling`, `dicom.assoc.ae.called`, "
      "`dicom.pctx.id`, `dicom.pctx.result`, `dicom.max_pdu_len`, `dicom.userinfo.uid`, "
      "`dicom.userinfo.version`, `dicom.userinfo.user_identify.{type,response_requested,primary_field,"
      "secondary_field}`, `dicom.assoc.reject.{result,source,reason}`, `dicom.assoc.abort.{source,reason}`, "
      "`dicom.pdv.ctx`.\n")

    w("## The fact tables\n")
    w("- `tshark-facts.tsv`: one row per file: `format`, `linktype`, `packets` (capinfos), `bytes` "
      "(file size), PDU counts `assoc_rq assoc_ac assoc_rj p_data release_rq release_rp abort`, "
      "`tcp_rst`, DIMSE counts `C-ECHO-RQ ... C-CANCEL-RQ`, TCP analysis counts, `bad_checksums`, "
      "`tshark_read_error`, `tcp_checksum_0xffff`.")
    w("- `tshark-associations.tsv`: one row per TCP connection that carries DICOM: `client`/`server` "
      "ip:port (server = the 4242/11112 side), `calling_ae`, `called_ae`, `outcome` "
      "(released = A-RELEASE-RQ+RP seen; rejected = A-ASSOCIATE-RJ; aborted = A-ABORT; reset = TCP RST "
      "without any of these; incomplete = none of these), `pdus` and `dimse` in order (`XxN` = N in a "
      "row), user identity, reject/abort parameters, proposed / accepted presentation contexts, max PDU "
      "lengths and implementation class UID + version name of requestor and acceptor.")
    w("- `tshark-dimse.tsv`: one row per DIMSE command set: `frame` (where tshark finished "
      "reassembling it), `tcp_stream`, direction, presentation context id + its transfer syntax, "
      "command, Message ID / Message ID Being Responded To, Affected SOP Class / Instance UID, Move "
      "Destination, Status (hex), sub-operation counters, whether a data set follows.")
    w("- `wire-datasets.tsv`: every DIMSE data set reassembled from the TCP payload by "
      "`scripts/samples/dicom/pcap_variants.py --datasets` (not tshark): flow, message number in that "
      "direction, command, Affected SOP Instance, length and SHA-256 of the data set bytes.")
    w("- `derived-edits.json`: frame numbers (1-based, as tshark) and byte ranges of each edit.\n")

    w("## Caveats and tshark quirks\n")
    fd = facts["store-dropped.pcap"]
    w("- `store-dropped.pcap`: tshark's own view of this file (here {} C-STORE-RQ, {} C-STORE-RSP, and the "
      "association row in `tshark-associations.tsv`) is an artifact of its TCP/PDU reassembly giving up at "
      "the hole; it is recorded, not asserted. The truth is in the description above: 8 RQ + 8 RSP (all "
      "0x0000), A-RELEASE-RQ/RP, one data set with a gap.".format(fd["C-STORE-RQ"], fd["C-STORE-RSP"]))
    w("- `store-truncated.pcap`: tshark/capinfos print \"appears to have been cut short in the middle of a "
      "packet\" and exit non-zero; the counts are for the complete records.")
    w("- `move-midstream.pcap`: tshark still decodes the C-MOVE-RQ/RSP (decode-as forces DICOM) but has no "
      "association for stream 0 (calling/called `-`, 0 A-ASSOCIATE-RQ for it).")
    w("- Orthanc sends C-MOVE/C-GET sub-operations in reverse instance order (.3, .2, .1) and, for "
      "C-GET only, a pending response after the last sub-operation (remaining 0) before the final one.")
    w("- TCP checksum 0xffff: Linux occasionally sends 0xffff where the folded checksum is 0x0000 (the "
      "two one's-complement zeros, RFC 1624 section 3); receivers accept it, tshark marks it Bad. About one "
      "packet in 65,536 is like this, so a regenerated capture may or may not contain one: "
      "`tcp_checksum_0xffff` in `tshark-facts.tsv` counts them (not included in `bad_checksums`). "
      "A checksum-validating decoder must accept both encodings of zero.")
    w("- The ~40 ms pauses between command and data segments are Nagle + delayed ACK (real behaviour, "
      "no tuning).")
    w("- The directory is @TOTALMB@ MB: 7 of the files are full copies of the ~1.2 MB store "
      "association (the >1 MB instance is what makes them useful).")
    if web:
        w("")
        web_readme.render(d, w)
    text = "\n".join(L) + "\n"
    size = len(text.encode())
    for _ in range(5):  # the README counts itself: iterate until its size is stable
        out = text.replace("@TOTAL@", f"{total + size:,}").replace("@T1@", f"{t1 + size:,}").replace(
            "@TOTALMB@", f"{(total + size) / 1e6:.1f}")
        if len(out.encode()) == size:
            break
        size = len(out.encode())
    (d / "README.md").write_text(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
