#!/usr/bin/env python3
"""Ask tshark what is in every scenario capture; write the fact tables and check them against
what scripts/make-scenarios did (scen_spec.EXPECT_FACTS). Only tshark / capinfos read the pcaps.

  scen_facts.py SCEN_DIR  -> SCEN_DIR/scenario-facts.tsv         one row per capture (counts)
                             SCEN_DIR/scenario-associations.tsv  one row per DICOM association
                             SCEN_DIR/scenario-http.tsv          one row per HTTP request/response
                             SCEN_DIR/scenario-hl7.tsv           one row per HL7 message
                             SCEN_DIR/scenario-tls.tsv           one row per TLS connection
                             exit 1 on any mismatch with scen_spec.EXPECT_FACTS

Multi-valued cells are `key=count` lists separated by single spaces, keys sorted. Credentials never
reach the tables: of a Basic-auth header only the user name is kept.
"""
import datetime
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path

from samplelib import run, write_tsv
from scen_spec import CAPTURES, EXPECT_FACTS

DICOM_PORTS = ("4242", "11112", "11115", "104")
DECODE = ["-o", "tcp.reassemble_out_of_order:TRUE",
          *[x for p in DICOM_PORTS for x in ("-d", f"tcp.port=={p},dicom")],
          "-d", "tcp.port==2575,hl7", "-d", "tcp.port==8042,http"]
TAB = "\t"

# the tshark commands (printed into README.md)
CMD_CAPINFOS = ["capinfos", "-T", "-M", "-c", "-s", "-u", "-a", "-e", "-S", "{f}"]
CMD_SYN = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
           "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"]
CMD_DICOM = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "dicom", "-T", "pdml"]
CMD_HTTP = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "http", "-T", "fields", "-E", "occurrence=f",
            "-e", "frame.number", "-e", "frame.time_epoch", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport",
            "-e", "ip.dst", "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri",
            "-e", "http.authbasic", "-e", "http.response.code", "-e", "http.request_in", "-e", "http.file_data"]
CMD_HL7 = ["tshark", "-n", "-r", "{f}", *DECODE, "-Y", "hl7", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=" + TAB, "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport",
           "-e", "ip.dst", "-e", "tcp.dstport", "-e", "hl7.segment"]
CMD_TLS_HELLO = ["tshark", "-n", "-r", "{f}", "-Y", "tls.handshake.type==1", "-T", "fields",
                 "-e", "tcp.stream", "-e", "tls.handshake.extensions_server_name"]
CMD_TLS_BYTES = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.port==443 && tcp.len>0", "-T", "fields",
                 "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.len"]
CMD_RST = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.reset==1"]
CMD_BADSUM = ["tshark", "-n", "-r", "{f}", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
              "-Y", "ip.checksum.status==0 || (tcp.checksum.status==0 && tcp.checksum!=0xffff)"]
CMD_TROUBLE = ["tshark", "-n", "-r", "{f}", "-Y",
               "tcp.analysis.retransmission || tcp.analysis.out_of_order || tcp.analysis.lost_segment"]

FACT_COLS = ["file", "bytes", "packets", "first_packet_utc", "last_packet_utc", "duration_s", "tcp_streams",
             "tcp_rst", "bad_checksums", "tcp_trouble",
             "assoc_rq", "assoc_ac", "assoc_rj", "reject_reasons", "release_rp", "abort", "calling_aes",
             "dimse", "dimse_status", "move_requests", "move_studies", "store_requests", "store_studies",
             "http_requests", "http_methods", "http_status", "http_user_status", "wado_rs_studies",
             "qido_requests", "share_posts", "share_recipients", "admin_requests",
             "hl7_messages", "hl7_acks", "hl7_receivers",
             "http_clients", "tls_connections", "tls_clients", "tls_sni", "tls_toclient_bytes"]

UID_RE = re.compile(r"^\(0020,000d\)\s+\d+\s+Study Instance UID\s+(?:\[UI\]\s+)?(\S+)", re.I)
CMD_TAG_RE = re.compile(r"^\((0000),(\w{4})\)\s+\d+\s+(.*)$")
DICOMWEB_STUDY_RE = re.compile(r"^/dicom-web/studies/([0-9.]+)(/.*)?$")


def nlines(cmd, f):
    out, _, _ = run(cmd, f)
    return len([x for x in out.splitlines() if x.strip()])


def kv(counter):
    """Counter -> 'k=v k=v' with sorted keys ('' when empty)."""
    return " ".join(f"{k}={counter[k]}" for k in sorted(counter))


def utc(epoch):
    try:
        t = datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc)
    except ValueError:
        return "?"
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def field(node, name):
    return [f.get("show") for f in node.iter("field") if f.get("name") == name]


def first(node, name, default=""):
    v = field(node, name)
    return v[0] if v else default


def streams(f):
    """tcp.stream -> (client ip, client port, server ip, server port), from the SYNs."""
    out, _, _ = run(CMD_SYN, f)
    s = {}
    for ln in out.splitlines():
        p = ln.split(TAB)
        if len(p) == 5:
            s[p[0]] = tuple(p[1:])
    return s


# ------------------------------------------------------------------ DICOM (PDML)
def dicom_facts(f, conn):
    out, _, _ = run(CMD_DICOM, f)
    assocs = OrderedDict()
    cmds = []
    if "<packet>" not in out:
        return assocs, cmds
    root = ET.fromstring(out)
    pending = {}  # (stream, src) -> command row waiting for its data set
    for pkt in root.iter("packet"):
        stream = first(pkt, "tcp.stream")
        src = f"{first(pkt, 'ip.src')}:{first(pkt, 'tcp.srcport')}"
        c = conn.get(stream)
        client = f"{c[0]}:{c[1]}" if c else "?"
        server = f"{c[2]}:{c[3]}" if c else "?"
        a = assocs.setdefault(stream, OrderedDict(stream=stream, client=client, server=server, calling="",
                                                  called="", pdus=[], reject="", commands=[], move_dest=Counter(),
                                                  move_uids=[], store_uids=[], time=first(pkt, "frame.time_epoch")))
        for proto in pkt.iter("proto"):
            if proto.get("name") != "dicom":
                continue
            types = field(proto, "dicom.pdu.type")
            a["pdus"] += types
            if "0x01" in types:
                a["calling"] = first(proto, "dicom.assoc.ae.calling").strip()
                a["called"] = first(proto, "dicom.assoc.ae.called").strip()
            if "0x03" in types:
                a["reject"] = "/".join([first(proto, "dicom.assoc.reject.result"),
                                        first(proto, "dicom.assoc.reject.source"),
                                        first(proto, "dicom.assoc.reject.reason")])
            for pdv in proto.iter("field"):
                if not (pdv.get("show") or "").startswith("PDV"):
                    continue
                tags, uid = {}, None
                for ch in pdv:
                    s = ch.get("show") or ""
                    m = CMD_TAG_RE.match(s)
                    if m:
                        parts = re.split(r"\s{2,}", m.group(3), maxsplit=1)
                        tags[int(m.group(2), 16)] = parts[1].strip() if len(parts) > 1 else ""
                    m = UID_RE.match(s)
                    if m:
                        uid = m.group(1)
                if 0x100 in tags:
                    sm = re.search(r"\(0x([0-9a-fA-F]+)\)\s*$", tags.get(0x900, ""))
                    row = OrderedDict(stream=stream, src=src, command=tags[0x100],
                                      status=("0x%04x" % int(sm.group(1), 16)) if sm else "",
                                      move_destination=tags.get(0x600, ""), study_uid="")
                    cmds.append(row)
                    a["commands"].append(row["command"])
                    if row["command"] == "C-MOVE-RQ":
                        a["move_dest"][row["move_destination"]] += 1
                    if tags.get(0x800, "") != "257":
                        pending[(stream, src)] = row
                elif uid is not None and (stream, src) in pending:
                    row = pending.pop((stream, src))
                    row["study_uid"] = uid
                    if row["command"] == "C-MOVE-RQ":
                        a["move_uids"].append(uid)
                    elif row["command"] == "C-STORE-RQ":
                        a["store_uids"].append(uid)
    return assocs, cmds


def outcome(a):
    p = a["pdus"]
    if "0x03" in p:
        return "rejected"
    if "0x07" in p:
        return "aborted"
    if "0x05" in p and "0x06" in p:
        return "released"
    return "incomplete"


def compress(cmds):
    out = []
    for c in cmds:
        if out and out[-1][0] == c:
            out[-1][1] += 1
        else:
            out.append([c, 1])
    return " ".join(c if n == 1 else f"{c}x{n}" for c, n in out)


# ------------------------------------------------------------------ HTTP
def classify(method, uri):
    path = uri.split("?", 1)[0]
    if path.startswith("/dicom-web/"):
        if method == "POST":
            return "STOW-RS"
        if "?" in uri or path.endswith(("/studies", "/series", "/instances")):
            return "QIDO-RS"
        return "WADO-RS"
    if path.startswith("/modalities"):
        return "Orthanc REST (admin)" if method in ("PUT", "DELETE", "POST") else "Orthanc REST"
    if re.search(r"/shares?$", path) and method == "POST":
        return "share link"
    return "other"


def body_text(v):
    if not v:
        return ""
    if re.fullmatch(r"[0-9a-fA-F:]+", v) and len(v) % 2 == 0 and ":" not in v[:1]:
        try:
            return bytes.fromhex(v.replace(":", "")).decode("utf-8", "replace")
        except ValueError:
            return v
    return v


def http_rows(f, conn):
    out, _, _ = run(CMD_HTTP, f)
    reqs, resps = OrderedDict(), {}
    for ln in out.splitlines():
        r = ln.split(TAB)
        r += [""] * (13 - len(r))
        frame, t, stream, method, uri, auth, code, req_in, data = r[0], r[1], r[2], r[7], r[8], r[9], r[10], r[11], r[12]
        if method:
            user = auth.split(":", 1)[0] if auth else ""
            recipient = ""
            if classify(method, uri) == "share link":
                try:
                    recipient = json.loads(body_text(data)).get("recipient", "")
                except (ValueError, AttributeError):
                    recipient = "?"
            c = conn.get(stream)
            reqs[frame] = OrderedDict(frame=frame, time_utc=utc(t), stream=stream,
                                      client=f"{c[0]}:{c[1]}" if c else f"{r[3]}:{r[4]}",
                                      server=f"{c[2]}:{c[3]}" if c else f"{r[5]}:{r[6]}",
                                      method=method, uri=uri, user=user or "-", status="",
                                      service=classify(method, uri), study_uid="", recipient=recipient or "-")
            m = DICOMWEB_STUDY_RE.match(uri.split("?", 1)[0])
            if m:
                reqs[frame]["study_uid"] = m.group(1)
        elif code:
            resps[req_in] = code
    for fr, q in reqs.items():
        q["status"] = resps.get(fr, "none")
        q["study_uid"] = q["study_uid"] or "-"
    return list(reqs.values())


# ------------------------------------------------------------------ HL7
def hl7_rows(f):
    out, _, _ = run(CMD_HL7, f)
    rows = []
    for ln in out.splitlines():
        r = ln.split(TAB)
        segs = [s for s in r[6:] if s]
        msh = next((s for s in segs if s.startswith("MSH")), "")
        msa = next((s for s in segs if s.startswith("MSA")), "")
        mf = msh.split("|")
        mtype = mf[8] if len(mf) > 8 else "?"
        ctrl = mf[9] if len(mf) > 9 else "?"
        rows.append(OrderedDict(frame=r[0], stream=r[1], src=f"{r[2]}:{r[3]}", dst=f"{r[4]}:{r[5]}",
                                message_type="^".join(mtype.split("^")[:2]), control_id=ctrl,
                                sending_app=mf[2] if len(mf) > 2 else "", receiving_app=mf[4] if len(mf) > 4 else "",
                                ack_code=(msa.split("|") + ["", ""])[1] if msa else "-",
                                segments="+".join(s.split("|", 1)[0] for s in segs)))
    return rows


# ------------------------------------------------------------------ TLS (port 443)
def tls_rows(f, conn):
    """One row per TLS connection (port 443): its SNI and the TCP payload bytes each way."""
    sni = {}
    out, _, _ = run(CMD_TLS_HELLO, f)
    for ln in out.splitlines():
        r = ln.split(TAB) + [""]
        sni.setdefault(r[0], r[1])
    toserver, toclient = Counter(), Counter()
    out, _, _ = run(CMD_TLS_BYTES, f)
    for ln in out.splitlines():
        r = ln.split(TAB)
        if len(r) != 3:
            continue
        (toclient if r[1] == "443" else toserver)[r[0]] += int(r[2])
    rows = []
    for stream, c in sorted(conn.items(), key=lambda kv: int(kv[0])):
        if c[3] != "443":
            continue
        rows.append(OrderedDict(tcp_stream=stream, client=f"{c[0]}:{c[1]}", server=f"{c[2]}:{c[3]}",
                                sni=sni.get(stream, "") or "-", bytes_toserver=toserver[stream],
                                bytes_toclient=toclient[stream]))
    return rows


# ------------------------------------------------------------------ per file
def facts_for(f):
    row = OrderedDict((c, "") for c in FACT_COLS)
    row["file"] = f.name
    ci, _, _ = run(CMD_CAPINFOS, f)
    ls = [x.split(TAB) for x in ci.strip().split("\n")]
    info = dict(zip(ls[0], ls[1])) if len(ls) > 1 else {}
    row["bytes"] = str(f.stat().st_size)
    row["packets"] = info.get("Number of packets", "?")
    row["first_packet_utc"] = utc(info.get("Start time", ""))
    row["last_packet_utc"] = utc(info.get("End time", ""))
    row["duration_s"] = "%.1f" % float(info.get("Capture duration (seconds)", "0") or 0)
    conn = streams(f)
    row["tcp_streams"] = str(len(conn))
    row["tcp_rst"] = str(nlines(CMD_RST, f))
    row["bad_checksums"] = str(nlines(CMD_BADSUM, f))
    row["tcp_trouble"] = str(nlines(CMD_TROUBLE, f))

    assocs, cmds = dicom_facts(f, conn)
    arows = []
    pdus = Counter(p for a in assocs.values() for p in a["pdus"])
    row["assoc_rq"], row["assoc_ac"], row["assoc_rj"] = (str(pdus.get(x, 0)) for x in ("0x01", "0x02", "0x03"))
    row["release_rp"], row["abort"] = str(pdus.get("0x06", 0)), str(pdus.get("0x07", 0))
    row["reject_reasons"] = kv(Counter(a["reject"] for a in assocs.values() if a["reject"]))
    row["calling_aes"] = kv(Counter(a["calling"] for a in assocs.values() if a["calling"]))
    row["dimse"] = kv(Counter(c["command"] for c in cmds))
    row["dimse_status"] = kv(Counter(f"{c['command']}:{c['status']}" for c in cmds if c["status"]))
    mv, mvu, st, stu = Counter(), defaultdict(set), Counter(), defaultdict(set)
    for a in assocs.values():
        for d, n in a["move_dest"].items():
            mv[f"{a['calling']}->{d}"] += n
        for u in a["move_uids"]:
            d = next(iter(a["move_dest"]), "?") if len(a["move_dest"]) == 1 else "?"
            mvu[f"{a['calling']}->{d}"].add(u)
        for u in a["store_uids"]:
            stu[f"{a['calling']}->{a['called']}"].add(u)
        st[f"{a['calling']}->{a['called']}"] += a["commands"].count("C-STORE-RQ")
        if not a["pdus"]:
            continue
        arows.append(OrderedDict(file=f.name, tcp_stream=a["stream"], start_utc=utc(a["time"]),
                                 client=a["client"], server=a["server"],
                                 calling_ae=a["calling"] or "-", called_ae=a["called"] or "-", outcome=outcome(a),
                                 reject=a["reject"] or "-", dimse=compress(a["commands"]) or "-",
                                 move_destination=" ".join(sorted(a["move_dest"])) or "-",
                                 study_uids=" ".join(dict.fromkeys(a["move_uids"] + a["store_uids"])) or "-"))
    row["move_requests"] = kv(mv)
    row["move_studies"] = kv(Counter({k: len(v) for k, v in mvu.items()}))
    row["store_requests"] = kv(Counter({k: v for k, v in st.items() if v}))
    row["store_studies"] = kv(Counter({k: len(v) for k, v in stu.items()}))

    hrows = http_rows(f, conn)
    for h in hrows:
        h["file"] = f.name
        h.move_to_end("file", last=False)
    row["http_requests"] = str(len(hrows))
    row["http_methods"] = kv(Counter(h["method"] for h in hrows))
    row["http_status"] = kv(Counter(h["status"] for h in hrows))
    us = defaultdict(Counter)
    for h in hrows:
        us[h["user"]][h["status"]] += 1
    row["http_user_status"] = " ".join(f"{u}=[{','.join(f'{k}:{v}' for k, v in sorted(c.items()))}]"
                                       for u, c in sorted(us.items()))
    wado = defaultdict(set)
    for h in hrows:
        if h["service"] == "WADO-RS" and h["status"].startswith("2") and h["study_uid"] != "-":
            wado[h["user"]].add(h["study_uid"])
    row["wado_rs_studies"] = kv(Counter({u: len(s) for u, s in wado.items()}))
    row["qido_requests"] = kv(Counter(h["user"] for h in hrows if h["service"] == "QIDO-RS"))
    row["share_posts"] = kv(Counter(f"{h['user']}:{h['status']}" for h in hrows if h["service"] == "share link"))
    rec = defaultdict(set)
    for h in hrows:
        if h["service"] == "share link" and h["recipient"] != "-":
            rec[h["user"]].add(h["recipient"])
    row["share_recipients"] = kv(Counter({u: len(s) for u, s in rec.items()}))
    row["admin_requests"] = kv(Counter(f"{h['user']}:{h['method']}:{h['status']}" for h in hrows
                                       if h["service"] == "Orthanc REST (admin)"))

    lrows = hl7_rows(f)
    for h in lrows:
        h["file"] = f.name
        h.move_to_end("file", last=False)
    msgs = [h for h in lrows if not h["message_type"].startswith("ACK")]
    row["hl7_messages"] = kv(Counter(h["message_type"] for h in msgs))
    row["hl7_acks"] = kv(Counter(h["ack_code"] for h in lrows if h["message_type"].startswith("ACK")))
    row["hl7_receivers"] = kv(Counter(h["dst"] for h in msgs))
    row["http_clients"] = kv(Counter(h["client"].rsplit(":", 1)[0] for h in hrows))

    trows = tls_rows(f, conn)
    for t in trows:
        t["file"] = f.name
        t.move_to_end("file", last=False)
    row["tls_connections"] = str(len(trows))
    row["tls_clients"] = kv(Counter(t["client"].rsplit(":", 1)[0] for t in trows))
    row["tls_sni"] = kv(Counter(t["sni"] for t in trows))
    per_client = Counter()
    for t in trows:
        per_client[t["client"].rsplit(":", 1)[0]] += t["bytes_toclient"]
    row["tls_toclient_bytes"] = kv(per_client)
    return row, arows, hrows, lrows, trows


def main():
    d = Path(sys.argv[1])
    missing = [n for n in CAPTURES if not (d / n).exists()]
    if missing:
        print("missing captures: " + ", ".join(missing), file=sys.stderr)
        return 1
    rows, arows, hrows, lrows, trows, bad = [], [], [], [], [], []
    for name in CAPTURES:
        r, a, h, l7, t = facts_for(d / name)
        rows.append(r)
        arows += a
        hrows += h
        lrows += l7
        trows += t
        for k, want in EXPECT_FACTS.get(name, {}).items():
            if str(r[k]) != str(want):
                bad.append(f"{name}: {k} = {r[k]!r}, expected {want!r}")
        for k in ("tcp_rst", "bad_checksums", "tcp_trouble"):
            if r[k] != "0":
                bad.append(f"{name}: {k} = {r[k]}")
    write_tsv(d / "scenario-facts.tsv", rows, FACT_COLS)
    write_tsv(d / "scenario-associations.tsv", arows)
    write_tsv(d / "scenario-http.tsv", hrows)
    write_tsv(d / "scenario-hl7.tsv", lrows)
    write_tsv(d / "scenario-tls.tsv", trows)
    for b in bad:
        print("FACT MISMATCH: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
