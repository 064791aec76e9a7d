#!/usr/bin/env python3
"""Ask tshark what is in the web/TLS/HL7 samples; write the TSV fact tables and check them.

  web_facts.py SAMPLES_DIR  -> writes SAMPLES_DIR/tshark-web-facts.tsv  (one row per capture)
                                      SAMPLES_DIR/tshark-web-http.tsv   (one row per HTTP exchange)
                                      SAMPLES_DIR/tshark-web-tls.tsv    (one row per TLS connection)
                                      SAMPLES_DIR/tshark-web-hl7.tsv    (one row per HL7 message)
                               and checks them against EXPECTED and SAMPLES_DIR/hl7-messages.tsv
                               (exit 1 on mismatch)

Only tshark/capinfos look at the captures (the commands are the CMD_* lists below, printed
verbatim into pcap-samples/README.md). Credentials never reach the tables: for Basic auth only
the user name is kept, for a Bearer token only the JWT payload's `sub`.
"""
import base64
import csv
import json
import sys
from collections import Counter, OrderedDict
from pathlib import Path

from samplelib import run, write_tsv

CAPTURES = ["dicomweb.pcap", "https-tls12.pcap", "https-tls13.pcap", "hl7-mllp.pcap",
            "hl7-nonstandard-port.pcap"]
HL7_DECODE = ["-d", "tcp.port==2575,hl7", "-d", "tcp.port==6661,hl7"]
TAB = "\t"

CMD_HTTP = ["tshark", "-n", "-r", "{f}", "-Y", "http", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
            "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
            "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri",
            "-e", "http.authorization", "-e", "http.authbasic", "-e", "http.content_type",
            "-e", "http.content_length_header", "-e", "mime_multipart.header.content-type",
            "-e", "http.response.code", "-e", "http.request_in", "-e", "http.connection",
            "-e", "http.www_authenticate"]
CMD_TLS = ["tshark", "-n", "-r", "{f}", "-Y", "tls.handshake.type==1 || tls.handshake.type==2", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,",
           "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
           "-e", "tcp.dstport", "-e", "tls.handshake.type", "-e", "tls.handshake.version",
           "-e", "tls.handshake.extensions.supported_version", "-e", "tls.handshake.extensions_server_name",
           "-e", "tls.handshake.extensions_alpn_str", "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s",
           "-e", "tls.handshake.ciphersuite", "-e", "x509ce.dNSName",
           "-e", "tls.handshake.ja3_full", "-e", "tls.handshake.ja3s_full"]
# the HL7 segments come last, tab-aggregated (one column per segment); tshark shows CR as \r
CMD_HL7 = ["tshark", "-n", "-r", "{f}", *HL7_DECODE, "-Y", "hl7", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=" + TAB, "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src",
           "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "hl7.message.type",
           "-e", "hl7.event.type", "-e", "tcp.segment.count", "-e", "hl7.segment"]
CMD_PAYLOAD = ["tshark", "-n", "-r", "{f}", "-T", "fields", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.len"]
CMD_RST = ["tshark", "-n", "-r", "{f}", "-Y", "tcp.flags.reset==1"]
CMD_BADSUM = ["tshark", "-n", "-r", "{f}", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
              "-Y", "ip.checksum.status==0 || (tcp.checksum.status==0 && tcp.checksum!=0xffff)"]
CMD_FFFF = ["tshark", "-n", "-r", "{f}", "-o", "tcp.check_checksum:TRUE",
            "-Y", "tcp.checksum.status==0 && tcp.checksum==0xffff"]
CMD_ANALYSIS = ["tshark", "-n", "-r", "{f}", "-T", "fields", "-e", "tcp.analysis.out_of_order",
                "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.lost_segment"]
CMD_CAPINFOS = ["capinfos", "-T", "-M", "-t", "-E", "-c", "{f}"]

SERVER_PORTS = {"8042", "443", "2575", "6661"}
TLS_VERSION = {"0x0301": "TLS 1.0", "0x0302": "TLS 1.1", "0x0303": "TLS 1.2", "0x0304": "TLS 1.3"}
CIPHER = {"0xc030": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "0xc02f": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
          "0x1301": "TLS_AES_128_GCM_SHA256", "0x1302": "TLS_AES_256_GCM_SHA384",
          "0x1303": "TLS_CHACHA20_POLY1305_SHA256", "0xcca8": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}

FACT_COLS = ["file", "format", "linktype", "packets", "bytes", "tcp_streams", "c2s_payload_bytes",
             "s2c_payload_bytes", "http_requests", "GET", "POST", "PUT", "DELETE", "http_responses",
             "http_200", "http_401", "http_other", "http_auth_basic", "http_auth_bearer", "http_auth_none",
             "max_requests_per_connection", "tls_client_hellos", "tls_server_hellos", "tls_versions",
             "tls_ciphers", "sni", "alpn_offered", "alpn_selected", "ja3", "ja3s", "hl7_messages",
             "hl7_acks", "hl7_types", "ack_AA", "ack_AE", "ack_AR", "tcp_rst", "tcp_out_of_order",
             "tcp_retransmission", "tcp_lost_segment", "bad_checksums", "tcp_checksum_0xffff",
             "tshark_read_error"]

# what the captures must show (counts; the HL7 rows are also checked against hl7-messages.tsv)
EXPECTED = {
    "dicomweb.pcap": dict(tcp_streams=13, http_requests=16, GET=13, POST=1, PUT=1, DELETE=1, http_responses=16,
                          http_200=11, http_401=5, http_other=0, http_auth_basic=14, http_auth_bearer=1,
                          http_auth_none=1, max_requests_per_connection=3, tls_client_hellos=0, hl7_messages=0),
    "https-tls12.pcap": dict(tcp_streams=1, http_requests=0, tls_client_hellos=1, tls_server_hellos=1,
                             tls_versions="TLS 1.2", sni="pacs.example.test", alpn_offered="http/1.1",
                             alpn_selected="http/1.1", hl7_messages=0),
    "https-tls13.pcap": dict(tcp_streams=2, http_requests=0, tls_client_hellos=2, tls_server_hellos=2,
                             tls_versions="TLS 1.3", sni="pacs.example.test", alpn_offered="h2,http/1.1",
                             alpn_selected="", hl7_messages=0),
    "hl7-mllp.pcap": dict(tcp_streams=1, hl7_messages=5, hl7_acks=5, ack_AA=3, ack_AE=1, ack_AR=1, http_requests=0),
    "hl7-nonstandard-port.pcap": dict(tcp_streams=1, hl7_messages=2, hl7_acks=2, ack_AA=2, http_requests=0),
}
# every file: no resets, no bad checksums, no TCP trouble, readable
ALWAYS = dict(tcp_rst=0, bad_checksums=0, tcp_out_of_order=0, tcp_retransmission=0, tcp_lost_segment=0,
              tshark_read_error="no")


def lines(cmd, f):
    out, _, _ = run(cmd, f)
    return [ln.split(TAB) for ln in out.splitlines() if ln.strip()]


def uniq(seq):
    return list(OrderedDict.fromkeys(x for x in seq if x))


def classify(method, uri):
    """DICOMweb service by URL (PS3.18), our label, not tshark's."""
    path = uri.split("?", 1)[0]
    if path == "/wado":
        return "WADO-URI"
    if path.startswith("/dicom-web/"):
        if method == "POST":
            return "STOW-RS"
        if "?" in uri or path.endswith(("/studies", "/series", "/instances")):
            return "QIDO-RS"
        return "WADO-RS"
    return "Orthanc REST"


def jwt_sub(token):
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
        return f"JWT sub={claims.get('sub')}"
    except Exception:  # not a JWT
        return "opaque"


def endpoints(r):
    src, sport, dst, dport = r[2], r[3], r[4], r[5]
    if sport in SERVER_PORTS:
        return f"{dst}:{dport}", f"{src}:{sport}", "s2c"
    return f"{src}:{sport}", f"{dst}:{dport}", "c2s"


def http_rows(name, f):
    reqs, resps = OrderedDict(), {}
    for r in lines(CMD_HTTP, f):
        r += [""] * (17 - len(r))
        (frame, stream, _, _, _, _, method, uri, authz, authbasic, ctype, clen, parts, code, req_in, conn,
         wwwauth) = r[:17]
        client, server, _ = endpoints(r)
        if method:
            if authz.startswith("Basic "):
                auth = "Basic " + authbasic.split(":", 1)[0]
            elif authz.startswith("Bearer "):
                auth = "Bearer (" + jwt_sub(authz[7:]) + ")"
            else:
                auth = authz.split(" ", 1)[0] if authz else "none"
            reqs[frame] = OrderedDict(file=name, tcp_stream=stream, request_frame=frame, response_frame="",
                                      client=client, server=server, method=method, uri=uri,
                                      service=classify(method, uri), auth=auth, request_content_type=ctype,
                                      request_content_length=clen,
                                      request_parts=str(len(parts.split("|"))) if parts else "0")
        elif code:
            resps[req_in] = dict(response_frame=frame, status=code, response_content_type=ctype,
                                 response_content_length=clen or "-",
                                 response_parts=str(len(parts.split("|"))) if parts else "0",
                                 connection=conn, www_authenticate=wwwauth)
    rows = []
    for frame, q in reqs.items():
        q.update(resps.get(frame, dict(status="")))
        rows.append(q)
    return rows


def tls_rows(name, f):
    conns = OrderedDict()
    for r in lines(CMD_TLS, f):
        r += [""] * (17 - len(r))
        (frame, stream, _, _, _, _, types, hver, supver, sni, alpn, ja3, ja3s, ciphers, dns, ja3_full,
         ja3s_full) = r[:17]
        client, server, _ = endpoints(r)
        c = conns.setdefault(stream, OrderedDict(file=name, tcp_stream=stream, client=client, server=server))
        t = types.split(",")
        if "1" in t:
            c.update(client_hello_frame=frame, sni=sni, alpn_offered=alpn, supported_versions_offered=supver,
                     ja3=ja3, ja3_full=ja3_full)
        if "2" in t:
            v = supver or hver  # TLS 1.3: supported_versions in ServerHello; legacy version stays 0x0303
            c.update(server_hello_frame=frame, negotiated=TLS_VERSION.get(v, v), server_hello_version=hver,
                     server_supported_version=supver, cipher=ciphers.split(",")[0],
                     cipher_name=CIPHER.get(ciphers.split(",")[0], ""), alpn_selected=alpn, ja3s=ja3s,
                     ja3s_full=ja3s_full, cert_dns_name=dns)
    return list(conns.values())


def hl7_rows(name, f):
    rows = []
    for r in lines(CMD_HL7, f):
        segs = [s[:-2] if s.endswith("\\r") else s for s in r[9:]]
        client, server, direction = endpoints(r)
        by = {}
        for s in segs:
            by.setdefault(s[:3], s.split("|"))
        msh = by.get("MSH", [])
        msa = by.get("MSA", [])
        g = lambda lst, i: lst[i] if len(lst) > i else ""
        rows.append(OrderedDict(
            file=name, tcp_stream=r[1], frame=r[0], direction=direction, client=client, server=server,
            message_type=f"{r[6]}^{r[7]}", msh9=g(msh, 8), msh10_control_id=g(msh, 9), hl7_version=g(msh, 11),
            msa1_ack_code=g(msa, 1), msa2_acked_control_id=g(msa, 2), msa3_text=g(msa, 3),
            segments="+".join(s[:3] for s in segs), tcp_segments=r[8] or "1",
            message_bytes=str(sum(len(s) + 1 for s in segs)),
            largest_segment_bytes=str(max(len(s) for s in segs)) if segs else "0"))
    return rows


def file_facts(name, f, http, tls, hl7):
    out, err, _ = run(CMD_CAPINFOS, f)
    info = dict(zip(*[ln.split(TAB) for ln in out.strip().splitlines()[:2]])) if out.strip() else {}
    fact = OrderedDict((c, 0) for c in FACT_COLS)
    fact.update(file=name, format=info.get("File type", "?"), linktype=info.get("File encapsulation", "?"),
                packets=info.get("Number of packets", "?"), bytes=f.stat().st_size)
    streams, c2s, s2c = set(), 0, 0
    for r in lines(CMD_PAYLOAD, f):
        if len(r) < 3 or not r[2]:
            continue
        streams.add(r[0])
        if r[1] == "10.20.0.10":
            s2c += int(r[2])
        else:
            c2s += int(r[2])
    fact.update(tcp_streams=len(streams), c2s_payload_bytes=c2s, s2c_payload_bytes=s2c)
    fact["http_requests"] = len(http)
    for q in http:
        if q["method"] in fact:
            fact[q["method"]] += 1
        if q.get("status"):
            fact["http_responses"] += 1
            key = f"http_{q['status']}"
            fact[key if key in fact else "http_other"] += 1
        a = q["auth"].split(" ", 1)[0].lower()
        fact[f"http_auth_{a}" if f"http_auth_{a}" in fact else "http_auth_none"] += 1
    per_conn = Counter(q["tcp_stream"] for q in http)
    fact["max_requests_per_connection"] = max(per_conn.values()) if per_conn else 0
    fact["tls_client_hellos"] = sum(1 for c in tls if c.get("client_hello_frame"))
    fact["tls_server_hellos"] = sum(1 for c in tls if c.get("server_hello_frame"))
    fact["tls_versions"] = ",".join(uniq(c.get("negotiated", "") for c in tls))
    fact["tls_ciphers"] = ",".join(uniq(c.get("cipher", "") for c in tls))
    fact["sni"] = ",".join(uniq(c.get("sni", "") for c in tls))
    fact["alpn_offered"] = ",".join(sorted(set(",".join(c.get("alpn_offered", "") for c in tls).split(",")) - {""}))
    fact["alpn_selected"] = ",".join(uniq(c.get("alpn_selected", "") for c in tls))
    fact["ja3"] = ",".join(uniq(c.get("ja3", "") for c in tls))
    fact["ja3s"] = ",".join(uniq(c.get("ja3s", "") for c in tls))
    msgs = [m for m in hl7 if m["direction"] == "c2s"]
    acks = [m for m in hl7 if m["direction"] == "s2c"]
    fact["hl7_messages"], fact["hl7_acks"] = len(msgs), len(acks)
    fact["hl7_types"] = ",".join(m["message_type"] for m in msgs)
    for a in acks:
        k = "ack_" + a["msa1_ack_code"]
        if k in fact:
            fact[k] += 1
    fact["tcp_rst"] = len(run(CMD_RST, f)[0].splitlines())
    an = lines(CMD_ANALYSIS, f)
    fact["tcp_out_of_order"] = sum(1 for r in an if len(r) > 0 and r[0])
    fact["tcp_retransmission"] = sum(1 for r in an if len(r) > 1 and r[1])
    fact["tcp_lost_segment"] = sum(1 for r in an if len(r) > 2 and r[2])
    fact["bad_checksums"] = len(run(CMD_BADSUM, f)[0].splitlines())
    fact["tcp_checksum_0xffff"] = len(run(CMD_FFFF, f)[0].splitlines())
    fact["tshark_read_error"] = "yes" if run(CMD_PAYLOAD, f)[2] != 0 else "no"
    return fact


def main():
    d = Path(sys.argv[1])
    facts, http_all, tls_all, hl7_all = [], [], [], []
    for name in CAPTURES:
        f = d / name
        http, tls, hl7 = http_rows(name, f), tls_rows(name, f), hl7_rows(name, f)
        facts.append(file_facts(name, f, http, tls, hl7))
        http_all += http
        tls_all += tls
        hl7_all += hl7
    write_tsv(d / "tshark-web-facts.tsv", facts, FACT_COLS)
    write_tsv(d / "tshark-web-http.tsv", http_all,
              ["file", "tcp_stream", "request_frame", "response_frame", "client", "server", "method", "uri",
               "service", "auth", "request_content_type", "request_content_length", "request_parts", "status",
               "response_content_type", "response_content_length", "response_parts", "connection",
               "www_authenticate"])
    write_tsv(d / "tshark-web-tls.tsv", tls_all,
              ["file", "tcp_stream", "client", "server", "client_hello_frame", "sni", "alpn_offered",
               "supported_versions_offered", "ja3", "server_hello_frame", "negotiated", "server_hello_version",
               "server_supported_version", "cipher", "cipher_name", "alpn_selected", "ja3s", "cert_dns_name",
               "ja3_full", "ja3s_full"])
    write_tsv(d / "tshark-web-hl7.tsv", hl7_all,
              ["file", "tcp_stream", "frame", "direction", "client", "server", "message_type", "msh9",
               "msh10_control_id", "hl7_version", "msa1_ack_code", "msa2_acked_control_id", "msa3_text",
               "segments", "message_bytes", "largest_segment_bytes", "tcp_segments"])

    # ---- checks
    bad = []
    for fact in facts:
        for k, v in {**ALWAYS, **EXPECTED[fact["file"]]}.items():
            if str(fact[k]) != str(v):
                bad.append(f"{fact['file']}: {k} = {fact[k]}, expected {v}")
    for h in http_all:
        if h["auth"].startswith("Basic") and h["status"] == "200" and h["auth"] not in ("Basic rad1", "Basic admin"):
            bad.append(f"{h['file']} frame {h['request_frame']}: 200 for {h['auth']}")
    with open(d / "hl7-messages.tsv", newline="") as fh:
        manifest = list(csv.DictReader(fh, delimiter=TAB, quoting=csv.QUOTE_NONE))
    want = {"hl7-mllp.pcap": [m for m in manifest if m["set"] == "main"],
            "hl7-nonstandard-port.pcap": [m for m in manifest if m["set"] == "alt"]}
    for name, ms in want.items():
        got_msgs = [m for m in hl7_all if m["file"] == name and m["direction"] == "c2s"]
        got_acks = [m for m in hl7_all if m["file"] == name and m["direction"] == "s2c"]
        exp = [(m["message_type"], m["control_id"], m["message_bytes"], m["segments"]) for m in ms]
        got = [(m["message_type"], m["msh10_control_id"], m["message_bytes"], m["segments"]) for m in got_msgs]
        if exp != got:
            bad.append(f"{name}: HL7 messages {got} != manifest {exp}")
        exp_a = [(m["ack_code"], m["control_id"]) for m in ms]
        got_a = [(a["msa1_ack_code"], a["msa2_acked_control_id"]) for a in got_acks]
        if exp_a != got_a:
            bad.append(f"{name}: ACKs {got_a} != expected {exp_a}")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
