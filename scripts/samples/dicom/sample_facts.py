#!/usr/bin/env python3
"""Ask tshark what is in every sample; write the TSV fact tables and check them.

  sample_facts.py SAMPLES_DIR  -> writes SAMPLES_DIR/tshark-facts.tsv,
                                  SAMPLES_DIR/tshark-associations.tsv,
                                  SAMPLES_DIR/tshark-dimse.tsv
                                  and checks the counts against EXPECTED (exit 1 on mismatch)

The counting commands are exactly the ones documented in pcap-samples/README.md
(see CMD_PDU / CMD_DIMSE below); the per-association and per-DIMSE tables come from one
`tshark -T pdml` pass over the same decode settings.
"""
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from pathlib import Path

from samplelib import run

# out-of-order reassembly on: without it tshark 4.0 loses a PDU now and then in
# store-reordered.pcap (depends on where the swaps fall)
DECODE = ["-o", "tcp.reassemble_out_of_order:TRUE", "-d", "tcp.port==4242,dicom", "-d", "tcp.port==11112,dicom"]
# PDU types (field dicom.pdu.type), one entry per PDU, comma-aggregated per frame
CMD_PDU = ["tshark", "-n", "-r", "{f}", *DECODE, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-e", "dicom.pdu.type"]
# DIMSE commands: the (0000,0100) Command Field line of every command PDV in the PDML
CMD_DIMSE = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "dicom", "-T", "pdml"]
DIMSE_RE = re.compile(r'show="\(0000,0100\) +2 Command Field +([A-Z-]+)')
CMD_RST = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.reset==1"]
CMD_BADSUM = ["tshark", "-n", "-r", "{f}", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
              "-Y", "ip.checksum.status==0 || (tcp.checksum.status==0 && tcp.checksum!=0xffff)"]
# Linux may emit 0xffff where the folded checksum is 0x0000 (both mean zero in one's
# complement, RFC 1624 section 3); tshark calls that Bad. Valid on the wire: counted apart.
CMD_FFFF = ["tshark", "-n", "-r", "{f}", "-o", "tcp.check_checksum:TRUE",
            "-Y", "tcp.checksum.status==0 && tcp.checksum==0xffff"]
CMD_ANALYSIS = ["tshark", "-n", "-r", "{f}", "-T", "fields", "-e", "tcp.analysis.out_of_order",
                "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.lost_segment",
                "-e", "tcp.analysis.ack_lost_segment"]
CMD_CAPINFOS = ["capinfos", "-T", "-M", "-t", "-E", "-c", "{f}"]

PDU_NAMES = OrderedDict([("0x01", "assoc_rq"), ("0x02", "assoc_ac"), ("0x03", "assoc_rj"),
                         ("0x04", "p_data"), ("0x05", "release_rq"), ("0x06", "release_rp"),
                         ("0x07", "abort")])
DIMSE_NAMES = ["C-ECHO-RQ", "C-ECHO-RSP", "C-STORE-RQ", "C-STORE-RSP", "C-FIND-RQ", "C-FIND-RSP",
               "C-MOVE-RQ", "C-MOVE-RSP", "C-GET-RQ", "C-GET-RSP", "C-CANCEL-RQ"]

# Counts that the real captures (and the lossless derived variants) must show.
# columns: assoc_rq assoc_ac assoc_rj p_data release_rq release_rp abort tcp_rst
#          + DIMSE counts (missing = 0)
_STORE = dict(assoc_rq=1, assoc_ac=1, release_rq=1, release_rp=1, **{"C-STORE-RQ": 8, "C-STORE-RSP": 8})
_ECHO = dict(assoc_rq=1, assoc_ac=1, release_rq=1, release_rp=1, **{"C-ECHO-RQ": 1, "C-ECHO-RSP": 1})
EXPECTED = {
    "echo.pcap": _ECHO,
    "echo-sll2.pcap": _ECHO,
    "echo-qinq.pcap": _ECHO,
    "reject.pcap": dict(assoc_rq=2, assoc_rj=2),
    "store.pcap": _STORE,
    "store.pcapng": _STORE,
    "store-vlan.pcap": _STORE,
    "store-ipv6.pcap": _STORE,
    "store-reordered.pcap": _STORE,
    "store-duplicated.pcap": _STORE,
    "find.pcap": dict(assoc_rq=1, assoc_ac=1, release_rq=1, release_rp=1,
                      **{"C-FIND-RQ": 1, "C-FIND-RSP": 4}),
    "move.pcap": dict(assoc_rq=2, assoc_ac=2, release_rq=2, release_rp=2,
                      **{"C-MOVE-RQ": 1, "C-MOVE-RSP": 3, "C-STORE-RQ": 3, "C-STORE-RSP": 3}),
    "get.pcap": dict(assoc_rq=1, assoc_ac=1, release_rq=1, release_rp=1,
                     **{"C-GET-RQ": 1, "C-GET-RSP": 4, "C-STORE-RQ": 3, "C-STORE-RSP": 3}),
    "abort.pcap": dict(assoc_rq=2, assoc_ac=2, abort=1, tcp_rst=1,
                       **{"C-ECHO-RQ": 2, "C-ECHO-RSP": 2}),
    "user-identity.pcap": dict(assoc_rq=2, assoc_ac=2, release_rq=2, release_rp=2,
                               **{"C-ECHO-RQ": 2, "C-ECHO-RSP": 2}),
}

SAMPLE_ORDER = ["echo.pcap", "echo-sll2.pcap", "echo-qinq.pcap", "reject.pcap", "store.pcap",
                "store.pcapng", "store-vlan.pcap", "store-ipv6.pcap", "store-reordered.pcap",
                "store-duplicated.pcap", "store-dropped.pcap", "store-truncated.pcap", "find.pcap",
                "move.pcap", "move-midstream.pcap", "get.pcap", "abort.pcap", "user-identity.pcap"]


def field(pkt, name):
    return [f.get("show") for f in pkt.iter("field") if f.get("name") == name]


def first(pkt, name, default=""):
    v = field(pkt, name)
    return v[0] if v else default


def parse_cmd_tag(show):
    m = re.match(r"\((\w{4}),(\w{4})\)\s+\d+\s+(.*)$", show)
    if not m:
        return None
    tag = (int(m.group(1), 16), int(m.group(2), 16))
    parts = re.split(r"\s{2,}", m.group(3), maxsplit=1)
    return tag, (parts[1].strip() if len(parts) > 1 else "")


def pdml_facts(f):
    out, err, rc = run(CMD_DIMSE, f)
    assocs = OrderedDict()  # tcp.stream -> dict
    dimse = []
    if not out.strip():
        return assocs, dimse
    if "</pdml>" not in out:  # truncated input: close the document
        out = out[:out.rfind("</packet>") + len("</packet>")] + "\n</pdml>\n"
    root = ET.fromstring(out)
    for pkt in root.iter("packet"):
        frame = first(pkt, "frame.number")
        stream = first(pkt, "tcp.stream")
        src = first(pkt, "ip.src") or first(pkt, "ipv6.src")
        dst = first(pkt, "ip.dst") or first(pkt, "ipv6.dst")
        sport, dport = first(pkt, "tcp.srcport"), first(pkt, "tcp.dstport")
        server_is_dst = dport in ("4242", "11112")
        a = assocs.setdefault(stream, OrderedDict(
            stream=stream,
            client=f"{src}:{sport}" if server_is_dst else f"{dst}:{dport}",
            server=f"{dst}:{dport}" if server_is_dst else f"{src}:{sport}",
            calling="", called="", user_identity="", pdus=[], commands=[],
            reject="", abort="", rq_pcs="", ac_accepted="", rq_max_pdu="", ac_max_pdu="",
            rq_impl="", ac_impl=""))
        for proto in pkt.iter("proto"):
            if proto.get("name") != "dicom":
                continue
            for ptype in field(proto, "dicom.pdu.type"):
                a["pdus"].append(ptype)
            if first(proto, "dicom.pdu.type") == "0x01":
                a["calling"] = first(proto, "dicom.assoc.ae.calling").strip()
                a["called"] = first(proto, "dicom.assoc.ae.called").strip()
                ut = first(proto, "dicom.userinfo.user_identify.type")
                if ut:
                    a["user_identity"] = "type={} primary={} secondary={} response_requested={}".format(
                        ut, first(proto, "dicom.userinfo.user_identify.primary_field"),
                        first(proto, "dicom.userinfo.user_identify.secondary_field") or "-",
                        first(proto, "dicom.userinfo.user_identify.response_requested"))
            if first(proto, "dicom.pdu.type") == "0x01":
                a["rq_pcs"] = str(len(field(proto, "dicom.pctx.id")))
                a["rq_max_pdu"] = first(proto, "dicom.max_pdu_len")
                a["rq_impl"] = "{} {}".format(first(proto, "dicom.userinfo.uid"),
                                              first(proto, "dicom.userinfo.version")).strip()
            if first(proto, "dicom.pdu.type") == "0x02":
                a["ac_accepted"] = "{}/{}".format(
                    sum(1 for x in field(proto, "dicom.pctx.result") if int(x, 0) == 0),
                    len(field(proto, "dicom.pctx.result")))
                a["ac_max_pdu"] = first(proto, "dicom.max_pdu_len")
                a["ac_impl"] = "{} {}".format(first(proto, "dicom.userinfo.uid"),
                                              first(proto, "dicom.userinfo.version")).strip()
            if "0x03" in field(proto, "dicom.pdu.type"):
                a["reject"] = "result={} source={} reason={}".format(
                    first(proto, "dicom.assoc.reject.result"), first(proto, "dicom.assoc.reject.source"),
                    first(proto, "dicom.assoc.reject.reason"))
            if "0x07" in field(proto, "dicom.pdu.type"):
                a["abort"] = "source={} reason={} from={}".format(
                    first(proto, "dicom.assoc.abort.source"), first(proto, "dicom.assoc.abort.reason"),
                    "client" if server_is_dst else "server")
            # command PDVs: unnamed fields whose show starts with "(0000,"
            for pdv in proto.iter("field"):
                if not (pdv.get("show") or "").startswith("PDV"):
                    continue
                tags = {}
                for ch in pdv:
                    s = ch.get("show") or ""
                    if s.startswith("(0000,"):
                        t = parse_cmd_tag(s)
                        if t:
                            tags[t[0]] = t[1]
                if (0, 0x100) not in tags:
                    continue
                ctx = first(pdv, "dicom.pdv.ctx")
                ctx_name = next((x.get("showname", "") for x in pdv.iter("field")
                                 if x.get("name") == "dicom.pdv.ctx"), "")
                tm = re.search(r"\((.*?)(,|\))", ctx_name)
                ts_name = tm.group(1).split(":")[0] if tm else ""
                status = tags.get((0, 0x900), "")
                sm = re.search(r"\(0x([0-9a-fA-F]+)\)\s*$", status)
                row = OrderedDict(
                    file=Path(f).name, frame=frame, tcp_stream=stream,
                    direction=f"{src}:{sport}->{dst}:{dport}", pctx=ctx, pctx_transfer_syntax=ts_name or "-",
                    command=tags[(0, 0x100)],
                    message_id=tags.get((0, 0x110), ""),
                    responded_to=tags.get((0, 0x120), ""),
                    affected_sop_class=tags.get((0, 0x2), "").split(" ")[0],
                    affected_sop_instance=tags.get((0, 0x1000), ""),
                    move_destination=tags.get((0, 0x600), ""),
                    status=("0x%04x" % int(sm.group(1), 16)) if sm else "",
                    remaining=tags.get((0, 0x1020), ""), completed=tags.get((0, 0x1021), ""),
                    failed=tags.get((0, 0x1022), ""), warning=tags.get((0, 0x1023), ""),
                    dataset=("no" if tags.get((0, 0x800), "") == "257" else "yes"))
                dimse.append(row)
                a["commands"].append(row["command"])
    return assocs, dimse


def outcome(a, rst_streams):
    p = a["pdus"]
    if "0x03" in p:
        return "rejected"
    if "0x07" in p:
        return "aborted"
    if "0x05" in p and "0x06" in p:
        return "released"
    if a["stream"] in rst_streams:
        return "reset"
    return "incomplete"


def compress(cmds):
    out = []
    for c in cmds:
        if out and out[-1][0] == c:
            out[-1][1] += 1
        else:
            out.append([c, 1])
    return " ".join(c if n == 1 else f"{c}x{n}" for c, n in out)


def facts_for(f):
    row = OrderedDict(file=f.name)
    ci, _, _ = run(CMD_CAPINFOS, f)
    lines = [x.split("\t") for x in ci.strip().split("\n")]
    info = dict(zip(lines[0], lines[1])) if len(lines) > 1 else {}
    row["format"] = info.get("File type", "?")
    row["linktype"] = info.get("File encapsulation", "?")
    row["packets"] = info.get("Number of packets", "?")
    row["bytes"] = str(f.stat().st_size)
    out, err, rc = run(CMD_PDU, f)
    cnt = Counter(t for line in out.splitlines() for t in line.split(",") if t)
    for code, name in PDU_NAMES.items():
        row[name] = cnt.get(code, 0)
    out, err, rc = run(CMD_DIMSE, f)
    dc = Counter(DIMSE_RE.findall(out))
    out, _, _ = run(CMD_RST, f)
    row["tcp_rst"] = len([x for x in out.splitlines() if x.strip()])
    for n in DIMSE_NAMES:
        row[n] = dc.get(n, 0)
    out, _, _ = run(CMD_ANALYSIS, f)
    an = [line.split("\t") for line in out.splitlines()]
    row["tcp_out_of_order"] = sum(1 for x in an if x[0])
    row["tcp_retransmission"] = sum(1 for x in an if len(x) > 1 and x[1])
    row["tcp_lost_segment"] = sum(1 for x in an if len(x) > 2 and x[2])
    row["tcp_ack_lost_segment"] = sum(1 for x in an if len(x) > 3 and x[3])
    out, _, _ = run(CMD_BADSUM, f)
    row["bad_checksums"] = len([x for x in out.splitlines() if x.strip()])
    _, err, rc = run(["tshark", "-n", "-r", "{f}", "-c", "1000000"], f)
    row["tshark_read_error"] = "cut short in the middle of a packet" if "cut short" in err else ("yes" if rc else "no")
    out, _, _ = run(CMD_FFFF, f)
    row["tcp_checksum_0xffff"] = len([x for x in out.splitlines() if x.strip()])
    return row


def main():
    d = Path(sys.argv[1])
    files = [d / n for n in SAMPLE_ORDER if (d / n).exists()]
    missing = [n for n in SAMPLE_ORDER if not (d / n).exists()]
    if missing:
        print("missing samples: " + ", ".join(missing), file=sys.stderr)
        return 1
    rows, arows, drows, bad = [], [], [], []
    for f in files:
        r = facts_for(f)
        rows.append(r)
        exp = EXPECTED.get(f.name)
        if exp is not None:
            for k in list(PDU_NAMES.values()) + ["tcp_rst"] + DIMSE_NAMES:
                want = exp.get(k, 0)
                if k == "p_data":
                    continue
                if r[k] != want:
                    bad.append(f"{f.name}: {k} = {r[k]}, expected {want}")
            if r["bad_checksums"]:
                bad.append(f"{f.name}: {r['bad_checksums']} bad checksums")
        rst_out, _, _ = run(["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.reset==1", "-T", "fields",
                             "-e", "tcp.stream"], f)
        rst_streams = set(rst_out.split())
        assocs, dimse = pdml_facts(f)
        drows += dimse
        for a in assocs.values():
            if not a["pdus"] and not a["commands"]:
                continue
            arows.append(OrderedDict(
                file=f.name, tcp_stream=a["stream"], client=a["client"], server=a["server"],
                calling_ae=a["calling"] or "-", called_ae=a["called"] or "-",
                outcome=outcome(a, rst_streams), pdus=compress(
                    [PDU_NAMES[x] for x in a["pdus"] if x in PDU_NAMES]),
                dimse=compress(a["commands"]) or "-",
                user_identity=a["user_identity"] or "-", reject=a["reject"] or "-",
                abort=a["abort"] or "-", proposed_pcs=a["rq_pcs"] or "-",
                accepted_pcs=a["ac_accepted"] or "-", rq_max_pdu=a["rq_max_pdu"] or "-",
                ac_max_pdu=a["ac_max_pdu"] or "-", rq_implementation=a["rq_impl"] or "-",
                ac_implementation=a["ac_impl"] or "-"))
        # the DIMSE table must agree with the documented grep count
        per_file = Counter(x["command"] for x in dimse if x["file"] == f.name)
        for n in DIMSE_NAMES:
            if per_file.get(n, 0) != r[n]:
                bad.append(f"{f.name}: PDML table has {per_file.get(n, 0)} {n}, grep count {r[n]}")
    for name, table in (("tshark-facts.tsv", rows), ("tshark-associations.tsv", arows),
                        ("tshark-dimse.tsv", drows)):
        with open(d / name, "w") as fh:
            fh.write("\t".join(table[0].keys()) + "\n")
            for t in table:
                fh.write("\t".join(str(v) for v in t.values()) + "\n")
    for b in bad:
        print("FACT MISMATCH: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
