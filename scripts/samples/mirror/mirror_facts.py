#!/usr/bin/env python3
"""Ask tshark what each capture of pcap-samples/mirror/ holds; write the fact tables and check
that every variant shows tshark the same inner flows and application facts as its plain twin.

  mirror_facts.py DIR   reads DIR/captures.tsv (file, kind, plain, tap, how) and writes
      DIR/tshark-mirror-facts.tsv  one row per capture: packets, encapsulation, IP fragments,
                                   inner TCP streams, DIMSE / HTTP / TLS / HL7 counts, and
                                   whether its facts equal those of its plain capture
      DIR/tshark-mirror-flows.tsv  one row per inner TCP connection (client, server: the SYN's
                                   inner addresses and ports)
      DIR/tshark-mirror-app.tsv    one row per application fact: DIMSE message (command, message
                                   id, move destination, status, study / SOP instance UID), HTTP
                                   request / response (method, URI, Basic-auth user, status), TLS
                                   hello (SNI, version, JA3 / JA3S), HL7 message (type, control
                                   id, ACK code)
  exit 1 when a variant differs from its plain capture in a way its kind does not explain:
      vxlan / ipv4-fragments / span-ack-before-data / the re-wraps: same flows, same multiset
      of application facts; span-duplicates: same flows, same SET of facts (tshark dissects
      both copies); span-request-side: same flows, facts a subset of the plain capture's.

Only tshark / capinfos read the captures (the CMD_* lists, printed into README.md). "Inner"
is the last IP header of a frame (tshark -E occurrence=l). Patient attributes never reach the
tables: of a DICOM data set only the study and SOP instance UIDs are kept, of an HL7 message only
MSH-9 / MSH-10 / MSA-1; of a Basic-auth header only the user name.
"""
import csv
import re
import sys
from collections import Counter
from pathlib import Path

from samplelib import run_checked as run
from samplelib import write_tsv

TAB = "\t"
DECODE = ["-d", "tcp.port==4242,dicom", "-d", "tcp.port==11112,dicom", "-d", "tcp.port==2575,hl7"]
CMD_CAPINFOS = ["capinfos", "-T", "-M", "-c", "-s", "{f}"]
CMD_PROTOS = ["tshark", "-n", "-r", "{f}", "-T", "fields", "-e", "frame.protocols"]
CMD_FRAGS = ["tshark", "-n", "-r", "{f}", "-Y", "ip.flags.mf==1 || ip.frag_offset>0", "-T", "fields",
             "-e", "frame.number"]
CMD_SYN = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
           "-E", "occurrence=l", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"]
CMD_DICOM = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "dicom", "-O", "dicom"]
CMD_HTTP = ["tshark", "-n", "-r", "{f}", "-Y", "http", "-T", "fields", "-E", "occurrence=l",
            "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "http.request.method",
            "-e", "http.request.uri", "-e", "http.authbasic", "-e", "http.response.code"]
CMD_TLS = ["tshark", "-n", "-r", "{f}", "-Y", "tls.handshake.type==1 || tls.handshake.type==2", "-T", "fields",
           "-E", "occurrence=l", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
           "-e", "tls.handshake.type", "-e", "tls.handshake.extensions_server_name",
           "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.version",
           "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s"]
AGG = "\x1e"   # ASCII record separator: never inside an HL7 segment
CMD_HL7 = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "hl7", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=" + AGG, "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
           "-e", "hl7.segment"]
COMMANDS = [CMD_CAPINFOS, CMD_PROTOS, CMD_FRAGS, CMD_SYN, CMD_DICOM, CMD_HTTP, CMD_TLS, CMD_HL7]

SERVER_PORTS = {"4242", "11112", "8042", "443", "2575"}
# DICOM tags kept from tshark's -O dicom text (command set + the two UIDs of a data set)
DICOM_TAGS = {"(0000,0100)": "command", "(0000,0110)": "message_id", "(0000,0120)": "responded_id",
              "(0000,0600)": "move_destination", "(0000,0900)": "status", "(0020,000d)": "study_uid",
              "(0008,0018)": "sop_instance_uid"}


def rows(cmd, f):
    # split on newlines only: str.splitlines() would also split on the \x1e aggregator
    return [ln.split(TAB) for ln in run(cmd, f).split("\n") if ln.strip()]


def ends(src, sport, dst, dport):
    """(client, server) of a packet by the well-known server ports of the lab"""
    a, b = f"{src}:{sport}", f"{dst}:{dport}"
    return (b, a) if sport in SERVER_PORTS and dport not in SERVER_PORTS else (a, b)


def dicom_facts(f):
    """one fact per PDV that carries a kept tag, from tshark -O dicom"""
    out, cur, src, dst, pdv = [], None, ("", ""), ("", ""), ""
    ip_re = re.compile(r"^Internet Protocol Version \d, Src: (\S+), Dst: (\S+)")
    tcp_re = re.compile(r"^Transmission Control Protocol, Src Port: (\d+), Dst Port: (\d+)")
    tag_re = re.compile(r"^\s+(\([0-9a-fA-F]{4},[0-9a-fA-F]{4}\))\s+\d+\s+.*?\s{2,}(?:\[[A-Z]{2}\] )?(.*?)\s*$")

    def flush():
        if cur and any(cur.get(k) for k in DICOM_TAGS.values()):
            out.append(cur)

    ip = ("", "")
    for ln in run(CMD_DICOM, f).splitlines():
        m = ip_re.match(ln)
        if m:
            ip = m.groups()   # the last IP header of the frame wins (inner)
            continue
        m = tcp_re.match(ln)
        if m:
            src, dst = (ip[0], m.group(1)), (ip[1], m.group(2))
            continue
        s = ln.strip()
        if s.startswith("PDV, "):
            flush()
            pdv = s[5:]
            client, server = ends(src[0], src[1], dst[0], dst[1])
            item = re.sub(r" ID=\d+.*", "", pdv)
            # a data PDV's label depends on tshark having seen its command: keep only "data"
            cur = dict(proto="dicom", client=client, server=server,
                       item=item if re.fullmatch(r"[CN]-[A-Z-]+-(RQ|RSP)", item) else "data")
            continue
        m = tag_re.match(ln)
        if m and cur is not None and m.group(1).lower() in DICOM_TAGS:
            key = DICOM_TAGS[m.group(1).lower()]
            val = re.sub(r" \(.*\)$", "", m.group(2)) if key == "status" else m.group(2).split(" ")[0]
            cur[key] = val
    flush()
    return [dict(proto=d["proto"], client=d["client"], server=d["server"],
                 fact=" ".join(f"{k}={d[k]}" for k in ["item", *DICOM_TAGS.values()] if d.get(k)))
            for d in out]


def http_facts(f):
    out = []
    for r in rows(CMD_HTTP, f):
        r += [""] * (8 - len(r))
        client, server = ends(*r[:4])
        user = r[6].split(":", 1)[0]
        if r[4]:
            fact = f"request {r[4]} {r[5]}" + (f" user={user}" if user else "")
        else:
            fact = f"response {r[7]}"
        out.append(dict(proto="http", client=client, server=server, fact=fact))
    return out


def tls_facts(f):
    out = []
    for r in rows(CMD_TLS, f):
        r += [""] * (10 - len(r))
        client, server = ends(*r[:4])
        kind = "client_hello" if r[4].split(",")[0] == "1" else "server_hello"
        if kind == "client_hello":
            fact = f"client_hello sni={r[5]} ja3={r[8]}"
        else:
            fact = f"server_hello version={r[6] or r[7]} ja3s={r[9]}"
        out.append(dict(proto="tls", client=client, server=server, fact=fact))
    return out


def hl7_facts(f):
    out = []
    for r in rows(CMD_HL7, f):
        # every column holds all occurrences (outer and inner IP): the last one is the inner
        client, server = ends(*(c.split(AGG)[-1] for c in r[:4]))
        segs = {}
        for s in r[4].split(AGG) if len(r) > 4 else []:
            s = s[:-2] if s.endswith("\\r") else s
            segs.setdefault(s[:3], s.split("|"))
        msh, msa = segs.get("MSH", []), segs.get("MSA", [])
        g = lambda lst, i: lst[i] if len(lst) > i else ""
        fact = f"{g(msh, 8)} control_id={g(msh, 9)}" + (f" ack={g(msa, 1)} acked={g(msa, 2)}" if msa else "")
        out.append(dict(proto="hl7", client=client, server=server, fact=fact))
    return out


def flows(f):
    return sorted({(f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}") for r in rows(CMD_SYN, f) if len(r) >= 4})


def summary(name, f, fl, app):
    ci = run(CMD_CAPINFOS, f).strip().splitlines()
    info = dict(zip(ci[0].split(TAB), ci[1].split(TAB))) if len(ci) >= 2 else {}
    protos = Counter(ln for ln in run(CMD_PROTOS, f).splitlines() if ":tcp" in ln)
    stack = protos.most_common(1)[0][0] if protos else ""
    stack = stack.split(":tcp")[0] + ":tcp" if stack else ""
    by = Counter(a["proto"] for a in app)
    dimse = Counter(a["fact"].split(" ")[0].removeprefix("item=") for a in app if a["proto"] == "dicom")
    return dict(file=name, packets=info.get("Number of packets", "?"), bytes=f.stat().st_size,
                encapsulation=stack, ip_fragments=len(run(CMD_FRAGS, f).splitlines()), tcp_streams=len(fl),
                dicom_pdvs=by["dicom"], dimse=" ".join(f"{k}={v}" for k, v in sorted(dimse.items())
                                                     if k.startswith(("C-", "N-")) and k.endswith(("RQ", "RSP"))),
                http=by["http"], tls_hellos=by["tls"], hl7_messages=by["hl7"])


def main():
    d = Path(sys.argv[1])
    with open(d / "captures.tsv", newline="") as fh:
        caps = list(csv.DictReader(fh, delimiter=TAB, quoting=csv.QUOTE_NONE))
    facts, flow_rows, app_rows, per = [], [], [], {}
    for c in caps:
        name, f = c["file"], d / c["file"]
        fl = flows(f)
        app = dicom_facts(f) + http_facts(f) + tls_facts(f) + hl7_facts(f)
        per[name] = (fl, app)
        facts.append(dict(summary(name, f, fl, app), kind=c["kind"], plain=c["plain"]))
        flow_rows += [dict(file=name, client=a, server=b) for a, b in fl]
        app_rows += [dict(file=name, **a) for a in app]
    bad = []
    for row in facts:
        if not row["plain"]:
            row["same_as_plain"] = "-"
            continue
        fl, app = per[row["file"]]
        pfl, papp = per[row["plain"]]
        key = lambda a: (a["proto"], a["client"], a["server"], a["fact"])
        got, want = Counter(map(key, app)), Counter(map(key, papp))
        if row["kind"] == "span-duplicates":
            ok, how = set(got) == set(want), "same set"
        elif row["kind"] == "span-request-side":
            ok, how = set(got) <= set(want) and len(got) > 0, "subset: the request side"
        elif row["kind"] == "span-ack-before-data":
            # tshark 4.0 takes a data segment that comes after the ACK covering it for a spurious
            # retransmission and does not reassemble it: it loses PDUs (pacstap must not)
            lost = sum((want - got).values())
            ok, how = got <= want, f"subset: tshark loses {lost} of {sum(want.values())} PDV facts"
        else:
            ok, how = got == want, "same multiset"
        ok = ok and fl == pfl
        row["same_as_plain"] = f"yes ({how})" if ok else "NO"
        if not ok:
            bad.append(f"{row['file']}: flows {fl == pfl}, facts differ from {row['plain']}: "
                       f"missing {list((want - got).items())[:3]}, extra {list((got - want).items())[:3]}")
        if row["kind"] == "ipv4-fragments" and row["ip_fragments"] == 0:
            bad.append(f"{row['file']}: no IP fragments")
    for row in facts:   # every capture carries its protocol, decoded by tshark through the wrapping
        if row["tcp_streams"] == 0 or (row["dicom_pdvs"] + row["http"] + row["tls_hellos"] + row["hl7_messages"]) == 0:
            bad.append(f"{row['file']}: tshark sees no inner TCP application traffic")
    write_tsv(d / "tshark-mirror-facts.tsv", facts,
              ["file", "kind", "plain", "packets", "bytes", "encapsulation", "ip_fragments", "tcp_streams",
               "dicom_pdvs", "dimse", "http", "tls_hellos", "hl7_messages", "same_as_plain"])
    write_tsv(d / "tshark-mirror-flows.tsv", flow_rows, ["file", "client", "server"])
    write_tsv(d / "tshark-mirror-app.tsv", app_rows, ["file", "proto", "client", "server", "fact"])
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
