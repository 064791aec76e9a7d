#!/usr/bin/env python3
"""Part 2 of pcap-samples/README.md: the DICOMweb / HTTPS / HL7 samples of scripts/make-samples-web.

Imported by samples_readme.py (which writes the whole README) when SAMPLES_DIR has
tshark-web-facts.tsv; renders only from the tables that make-samples-web wrote:
tshark-web-{facts,http,tls,hl7}.tsv, hl7-messages.tsv, web-capture-commands.tsv,
web-tool-versions.tsv. Never reads or rewrites a capture.
"""
import shlex
from collections import OrderedDict
from pathlib import Path

import web_facts
from samplelib import md_table
from samplelib import read_tsv as tsv

WEB_CAPTURES = web_facts.CAPTURES
WEB_TABLES = ["tshark-web-facts.tsv", "tshark-web-http.tsv", "tshark-web-tls.tsv", "tshark-web-hl7.tsv",
              "hl7-messages.tsv", "web-capture-commands.tsv", "web-tool-versions.tsv"]
CT_STUDY = "1.2.826.0.1.3680043.10.1234.1.1"


def present(d):
    return (Path(d) / "tshark-web-facts.tsv").exists()


def cmd(c):
    def one(x):
        if x == "{f}":
            return "F"
        if "\t" in x:  # a literal tab would be invisible in the README
            return '"' + x.replace("\t", "$(printf '\\t')") + '"'
        return shlex.quote(x)
    return " ".join(one(x) for x in c)


DESCRIPTION = OrderedDict([
    ("dicomweb.pcap", """Orthanc with the DICOMweb plugin (pt-pacs 10.20.0.10:8042, plain HTTP/1.1,
`AuthenticationEnabled`, users `rad1` and `admin`) and curl in pt-mod (10.20.0.30). In this order,
one curl run each unless said: (1) no credentials -> 401; (2-4) `rad1` with three wrong passwords
-> 401 x3 (one connection each, 0.2 s apart); (5) `rad1` right password, QIDO-RS `/dicom-web/studies`
on the still empty server -> 200 `[]`; (6) STOW-RS: `POST /dicom-web/studies`,
`multipart/related; type="application/dicom"` with the 3 CT instances of study
`1.2.826.0.1.3680043.10.1234.1.1` (SYNTH^ALPHA, 3 x 9,194-byte files) -> 200 with the
`application/dicom+json` store response; (7) QIDO-RS studies `?PatientID=SYN0001`, series of the study,
instances of series `...1.1.1`: three requests on ONE keep-alive connection (curl with 3 URLs);
(8) WADO-RS of the whole study (Accept `multipart/related; type="application/dicom"`; Orthanc answers
with `Connection: close` and no Content-Length: the body ends with the server's FIN) and, in the same curl
run but necessarily on a new connection, WADO-RS `/metadata`; (9) WADO-URI `/wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..`
of instance `...1.1.1.1`, first with `contentType=application/dicom` (the DICOM file, byte-identical to
`1-ct/1.dcm`), then without contentType (Orthanc renders a 64x64 8-bit JPEG/JFIF but labels it
`Content-Type: image/png`), both on one keep-alive connection; (10) a JWT-style
`Authorization: Bearer` token (synthetic, payload `sub`/`preferred_username` `rad2`) -> 401 (Orthanc
knows only basic auth); (11) `admin`: `PUT /modalities/NEWNODE` with JSON body
`{"AET":"NEWNODE","Host":"10.20.0.40","Port":104}` -> 200, (12) `admin`: `DELETE /modalities/NEWNODE`
-> 200 (both checked on pt-pacs's loopback, off the tap). Every 401 carries
`WWW-Authenticate: Basic realm="Orthanc Secure Area"`, `Content-Length: 0` and keeps the connection
open. The client sends the first FIN on every connection when its curl run ends, except the WADO-RS
study connection, which Orthanc closes first."""),
    ("https-tls12.pcap", """nginx in pt-pacs terminates TLS on 10.20.0.10:443 for `pacs.example.test`
(self-signed RSA-2048 certificate made by `openssl req` for that name, NEW KEY EVERY RUN) and proxies
everything but `/static/` to Orthanc on pt-pacs's loopback. ONE curl run in pt-mod with
`--http1.1 --tlsv1.2 --tls-max 1.2 -k --resolve pacs.example.test:443:10.20.0.10`: `GET
/static/synth-200k.bin` (204,800 bytes served by nginx) then, on the same TLS connection (`--next`),
STOW-RS of instance `3-cr/2.dcm` (`rad1`, basic auth inside TLS) through nginx to Orthanc. TLS 1.2:
ServerHello, Certificate (readable: SAN `pacs.example.test`), ServerKeyExchange and ServerHelloDone
are in clear; ALPN `http/1.1` offered and selected in clear. At the end curl sends its close_notify
(an Encrypted Alert record, content type 21) and the first FIN; nginx answers with its FIN."""),
    ("https-tls13.pcap", """Same server and same curl run as `https-tls12.pcap` but without version
options (curl + OpenSSL 3 default: TLS 1.3; stream 0), then 0.3 s later a second client:
`openssl s_client -connect 10.20.0.10:443 -servername pacs.example.test -alpn h2,http/1.1` with
stdin at EOF (stream 1): full handshake (nginx selects `h2`, seen only by s_client; then three encrypted
records from nginx, by their sizes two session tickets and its HTTP/2 SETTINGS), then the client's close_notify; no HTTP from the client. On
both connections the client's close_notify is an opaque type-23 record (90 bytes) and nginx sends the
first FIN, unlike TLS 1.2. In TLS 1.3 the ServerHello carries legacy version
0x0303 and the real one in `supported_versions` (0x0304); the certificate and the selected ALPN are
encrypted (EncryptedExtensions), so a passive observer sees only the offered ALPN and the SNI."""),
    ("hl7-mllp.pcap", """An MLLP listener in pt-pacs (10.20.0.10:2575; `scripts/samples/common/hl7_mllp.py serve`,
the `hl7` package's asyncio MLLP server) and a sender in pt-mod (`hl7_mllp.py send`, the `hl7`
package's MLLP client): ONE TCP connection, 5 HL7 v2.5 messages sent one at a time, each answered by an
original-mode ACK (built by `hl7.Message.create_ack`, MSH-10 = `ACK` + the message's control id,
MSA-2 = the message's MSH-10) before the next is sent (0.2 s apart). MLLP framing: 0x0B, message
(every segment ends with CR, also the last), 0x1C 0x0D. The ORU^R01 carries a 100,000-character
base64 `ED` OBX (75,000 synthetic bytes that start like a PDF), so its MLLP block spans many TCP
segments. The listener answers AE (MSA-3 text + ERR) to ORM^O01 and AR (MSA-3 text + ERR) to MFN^M02,
AA to the rest. Patient SYNTH^ALPHA / SYN0001 / 19700101 / F (the CT patient of the DICOM samples),
accession SYNACC0001; the message timestamps are fixed, the ACKs' MSH-7 is the real time of the run."""),
    ("hl7-nonstandard-port.pcap", """Same listener and sender on the non-standard port 6661 (the listener
serves 2575 and 6661): one connection, ADT^A04 and ADT^A03, both acknowledged AA. A decoder has
to recognise MLLP/HL7 by content here (the port is not 2575)."""),
])


def render(d, w):
    d = Path(d)
    facts = {r["file"]: r for r in tsv(d / "tshark-web-facts.tsv")}
    http = tsv(d / "tshark-web-http.tsv")
    tls = tsv(d / "tshark-web-tls.tsv")
    hl7 = tsv(d / "tshark-web-hl7.tsv")
    manifest = tsv(d / "hl7-messages.tsv")
    cmds = tsv(d / "web-capture-commands.tsv")
    versions = tsv(d / "web-tool-versions.tsv")
    total = sum(int(facts[f]["bytes"]) for f in WEB_CAPTURES)

    w("# Part 2: DICOMweb, HTTPS (TLS 1.2 / 1.3) and HL7 v2 over MLLP\n")
    w("GENERATED by `scripts/make-samples-web` (then rendered into this README by "
      "`scripts/samples/dicom/samples_readme.py`, which only reads the tables). That script rewrites ONLY the "
      "files listed in this part; `scripts/make-samples` rewrites only the DICOM files of part 1 "
      "(and keeps these). Everything is synthetic, passwords included.\n")
    w("```\nsudo scripts/make-samples-web               # ~30 s; needs root; installs missing tools (nginx, hl7, ...)\n"
      "sudo scripts/make-samples-web --facts-only  # keep the captures, redo the part-2 tables and this README\n```\n")
    w("**Stable across regenerations**: IPs, MACs, server ports, methods, URIs (study/series/SOP UIDs), "
      "users, HTTP status codes and the request/response sequence, the STOW/HL7 payloads sent by the "
      "clients (byte-identical inputs), SNI, offered ALPN, JA3 and JA3S (as long as curl/OpenSSL/nginx "
      "are the same builds), negotiated versions and ciphers, HL7 message types, control ids and ACK codes. "
      "**Changes**: timestamps, client ports, TCP sequence numbers and ACK patterns (packet counts), "
      "frame numbers, TLS randoms/keys/session tickets and the server certificate (new key every run), "
      "Orthanc's multipart boundary and JSON response details (e.g. retrieve URLs), the ACKs' MSH-7.\n")
    w(f"Total size of the {len(WEB_CAPTURES)} captures of this part: {total:,} bytes.\n")

    w("## Files (part 2)\n")
    rows = []
    for name in WEB_CAPTURES:
        f = facts[name]
        rows.append(dict(file=f"`{name}`", bytes=f"{int(f['bytes']):,}", packets=f["packets"],
                         streams=f["tcp_streams"], c2s=f"{int(f['c2s_payload_bytes']):,}",
                         s2c=f"{int(f['s2c_payload_bytes']):,}"))
    w(md_table(rows, ["file", "bytes", "packets", "streams", "c2s", "s2c"],
               ["file", "bytes", "packets", "TCP connections", "client->server TCP payload bytes",
                "server->client TCP payload bytes"]))
    w("")
    w("All real captures, pcap, link type Ethernet, no derived variants. Also here: "
      "`tshark-web-facts.tsv` (one row per capture), `tshark-web-http.tsv` (one row per HTTP exchange), "
      "`tshark-web-tls.tsv` (one row per TLS connection, JA3/JA3S full strings included), "
      "`tshark-web-hl7.tsv` (one row per HL7 message or ACK), `hl7-messages.tsv` (what the sender sends, "
      "from `hl7_mllp.py manifest`), `web-capture-commands.tsv` and `web-tool-versions.tsv`.\n")

    w("## Lab and servers (part 2)\n")
    w("Same namespaces, addresses, MACs, MTU 1500, offloads off, IPv6 off and permanent neighbour "
      "entries as part 1 (pt-ws is not started), same tap: `ip netns exec pt-sw tcpdump -Z root -n -s 0 "
      "-U -B 4096 -i pacs0 -w FILE`, stopped 1.5 s after the client exits, 0 kernel drops required. "
      "Frames are wire-sized (max 1514 bytes), checksums final (`bad_checksums` 0).\n")
    w("""```
 pt-mod 10.20.0.30                                pt-pacs 10.20.0.10
 curl, openssl s_client,                          Orthanc + DICOMweb plugin   :8042 (HTTP, basic auth)
 hl7_mllp.py send                                 nginx (TLS, pacs.example.test) :443 -> 127.0.0.1:8042
        |                                         hl7_mllp.py serve           :2575, :6661 (MLLP)
   [mod0]-------- br0 (netns pt-sw) --------------[pacs0]  <== tcpdump -i pacs0
```
""")
    w("- Orthanc (temp config): `Plugins` [the Debian DICOMweb plugin `/usr/share/orthanc/plugins/libOrthancDicomWeb.so`], "
      "`DicomWeb` {`Enable` true, `Root` `/dicom-web/`, `EnableWado` true, `WadoRoot` `/wado`}, "
      "`AuthenticationEnabled` true, `RegisteredUsers` {`rad1`: `rad1-pass`, `admin`: `admin-pass`}, "
      "`HttpPort` 8042, `RemoteAccessAllowed` true, `KeepAlive` true, `HttpCompressionEnabled` false, "
      "`SslEnabled` false, `DicomServerEnabled` false. Orthanc has no roles: both users may do everything.")
    w("- nginx (temp config, run in pt-pacs as `nginx -c CONF -g 'daemon off;'`): `listen 10.20.0.10:443 ssl http2`, "
      "`server_name pacs.example.test`, `ssl_protocols TLSv1.2 TLSv1.3` (other TLS settings nginx/OpenSSL "
      "defaults), `location /static/` = the 204,800-byte synthetic file, everything else "
      "`proxy_pass http://127.0.0.1:8042` (HTTP/1.1, on pt-pacs's loopback: not on the tap). TLS in Orthanc "
      "itself is not used (Debian 12's Orthanc crashes on its first HTTPS request with OpenSSL 3).")
    w("- Certificate: `openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "
      "'/O=pacstap synthetic lab/CN=pacs.example.test' -addext subjectAltName=DNS:pacs.example.test`.")
    w("- Synthetic secrets on the wire (listed so that tests can assert a decoder never prints them): "
      "basic-auth passwords `rad1-pass`, `admin-pass`, `wrong-pass-1`, `wrong-pass-2`, `wrong-pass-3` "
      "(`dicomweb.pcap`, in clear); the bearer token of request 10 (header.payload.signature, base64url; "
      "header `{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"pacstap-synthetic\"}`, payload with "
      "`sub`/`preferred_username` `rad2`, `iss` `https://idp.example.test/realms/pacs`, signature = 256 "
      "meaningless bytes; made by `scripts/samples/web/web_helpers.py jwt`). The fact tables keep only the user "
      "name (Basic) or the JWT `sub` (Bearer).\n")
    w("### Tool versions used for the part-2 files\n")
    w(md_table(versions, ["tool", "version"]))
    w("")

    w("## Per-file details (part 2)\n")
    cmd_by = OrderedDict()
    for c in cmds:
        cmd_by.setdefault(c["scenario"], []).append(c["command"])
    for name, text in DESCRIPTION.items():
        f = facts[name]
        w(f"### `{name}`\n")
        w(" ".join(text.split()) + "\n")
        scen = name[:-len(".pcap")]
        if scen in cmd_by:
            lines = cmd_by[scen]
            notes = ["run in pt-mod while tcpdump ran on pacs0"]
            if any("<tmp>" in c for c in lines):
                notes.append("`<tmp>` = the script's temp dir")
            if any("<jwt>" in c for c in lines):
                notes.append("`<jwt>` = the bearer token described above")
            if any(" curl " in c for c in lines):
                notes.append("every curl also had `-sS -w '%{http_code} %{num_connects} %{url_effective}\\n'` "
                             "(the script checks the status codes), repeated after each `--next`")
            w("Commands (" + "; ".join(notes) + "):\n")
            w("```\n" + "\n".join(lines) + "\n```\n")
        keep = [k for k in web_facts.FACT_COLS if k not in ("file", "format", "linktype", "bytes")
                and f[k] not in ("0", "", "no")]
        w("tshark: " + ", ".join(f"{k}={f[k]}" for k in keep) + ".\n")
        rows = [r for r in http if r["file"] == name]
        if rows:
            for r in rows:
                r["uri_md"] = f"`{r['uri']}`"
                r["len"] = r["response_content_length"]
                r["parts"] = r["request_parts"] if r["request_parts"] != "0" else r["response_parts"]
                r["ctype"] = r["response_content_type"].split(";")[0]
            w(md_table(rows, ["tcp_stream", "request_frame", "method", "uri_md", "service", "auth", "status",
                              "ctype", "len", "parts", "connection"],
                       ["stream", "req frame", "method", "URI", "service", "auth", "status",
                        "response type", "resp Content-Length", "multipart parts", "Connection"]))
            w("")
        rows = [r for r in tls if r["file"] == name]
        if rows:
            w(md_table(rows, ["tcp_stream", "client", "sni", "alpn_offered", "ja3", "negotiated", "cipher_name",
                              "alpn_selected", "ja3s", "cert_dns_name"],
                       ["stream", "client", "SNI", "ALPN offered", "JA3", "negotiated", "cipher",
                        "ALPN selected (clear)", "JA3S", "cert SAN (clear)"]))
            w("")
            for r in rows:
                w(f"- stream {r['tcp_stream']} JA3 full: `{r['ja3_full']}`; JA3S full: `{r['ja3s_full']}`; "
                  f"ClientHello supported_versions: `{r['supported_versions_offered'] or '(none)'}`")
            w("")
        rows = [r for r in hl7 if r["file"] == name]
        if rows:
            w(md_table(rows, ["tcp_stream", "frame", "direction", "message_type", "msh10_control_id",
                              "msa1_ack_code", "msa2_acked_control_id", "msa3_text", "segments", "message_bytes",
                              "tcp_segments"],
                       ["stream", "frame", "dir", "type", "MSH-10", "MSA-1", "MSA-2", "MSA-3", "segments",
                        "bytes (without MLLP framing)", "TCP segments"]))
            w("")
    w("HL7 messages of the sender (`hl7-messages.tsv`, identical on every run; `set` main = "
      "`hl7-mllp.pcap`, alt = `hl7-nonstandard-port.pcap`):\n")
    w(md_table(manifest, ["set", "message_type", "control_id", "message_bytes", "ack_code", "segments"]))
    w("")

    w("## tshark commands (part 2)\n")
    w("Default preferences except the HL7 decode-as (tshark 4.0.17 on Debian 12); `F` = a file. "
      "`scripts/samples/web/web_facts.py` runs exactly these and derives every table from their output.\n")
    w("```sh\n# HTTP exchanges (tshark-web-http.tsv; requests and responses paired by http.request_in)\n"
      + cmd(web_facts.CMD_HTTP)
      + "\n\n# TLS ClientHello / ServerHello (tshark-web-tls.tsv; JA3 = MD5 of ja3_full)\n"
      + cmd(web_facts.CMD_TLS)
      + "\n\n# HL7 (tshark-web-hl7.tsv): one line per message, its segments tab-aggregated at the end\n"
      + cmd(web_facts.CMD_HL7)
      + "\n\n# TCP payload bytes per connection and direction, TCP connections\n" + cmd(web_facts.CMD_PAYLOAD)
      + "\n\n# resets, checksums, TCP analysis, format (as in part 1)\n" + cmd(web_facts.CMD_RST) + " | wc -l\n"
      + cmd(web_facts.CMD_BADSUM) + " | wc -l\n" + cmd(web_facts.CMD_ANALYSIS) + "\n"
      + cmd(web_facts.CMD_CAPINFOS) + "\n```\n")
    w("Quick looks: `tshark -r dicomweb.pcap -Y http -T fields -e http.request.method -e http.request.uri "
      "-e http.response.code`; `tshark -r https-tls13.pcap -Y tls.handshake.type==1 -T fields -e "
      "tls.handshake.ja3 -e tls.handshake.ja3_full -e tls.handshake.extensions_server_name -e "
      "tls.handshake.extensions_alpn_str`; `tshark -r hl7-mllp.pcap -d tcp.port==2575,hl7 -Y hl7 -O hl7`.\n")

    w("## Part-2 tables\n")
    w("- `tshark-web-facts.tsv`: per capture: capinfos format/link/packets, file bytes, TCP connections, "
      "TCP payload bytes each way (client = 10.20.0.30), HTTP requests by method and responses by status "
      "(`http_other` = any status but 200/401), requests by auth scheme (`http_auth_none` = no "
      "Authorization header), most requests on one connection, TLS ClientHellos/ServerHellos, negotiated "
      "versions, ServerHello ciphers, SNI, offered ALPN (sorted union), ALPN selected in clear, JA3, JA3S "
      "(unique, in order), HL7 messages (client->server) and ACKs (server->client), message types in order, "
      "ACKs by MSA-1 code, TCP resets / analysis, bad checksums, 0xffff checksums, read errors.")
    w("- `tshark-web-http.tsv`: frames of request and response, endpoints, method, URI, `service` "
      "(our label from the URL per PS3.18: QIDO-RS / WADO-RS / STOW-RS / WADO-URI / Orthanc REST - not "
      "tshark's), auth (`none`, `Basic USER`, `Bearer (JWT sub=...)`), request/response content type and "
      "Content-Length (`-` = no header), number of multipart parts tshark found, Connection header, "
      "WWW-Authenticate.")
    w("- `tshark-web-tls.tsv`: per TLS connection: ClientHello frame, SNI, offered ALPN, offered "
      "supported_versions, JA3 + full string, ServerHello frame, negotiated version (supported_versions "
      "of the ServerHello, else its legacy version), cipher, ALPN selected (TLS 1.2 only), JA3S + full "
      "string, certificate DNS SAN (TLS 1.2 only).")
    w("- `tshark-web-hl7.tsv`: per HL7 message: frame where tshark finished reassembling it, direction, "
      "type^event (`hl7.message.type`/`hl7.event.type`), MSH-9, MSH-10, MSH-12, MSA-1/2/3 (ACKs), "
      "segment ids, message bytes (segments + their CRs, without the MLLP 0x0B / 0x1C 0x0D), longest "
      "segment, TCP segments of the message (`tcp.segment.count`, 1 if unreassembled).\n")

    w("## Part-2 caveats and tshark quirks\n")
    w("- tshark's HL7 dissector numbers fields from the segment name: its `field 1` is the segment id, so "
      "for every segment but MSH tshark's `field N` is HL7 field N-1 (MSA `field 2` = MSA-1, the ACK code). "
      "For MSH the numbers coincide with HL7's (MSH-1 is the field separator). `hl7.segment` shows the raw "
      "segment with the CR written as `\\r`.")
    w("- HL7 needs decode-as (`-d tcp.port==2575,hl7 -d tcp.port==6661,hl7`): tshark 4.0 has no heuristic "
      "for MLLP. With it, tshark reassembles the ORU^R01 across its TCP segments.")
    w("- Orthanc's DICOMweb plugin 1.7 does not percent-decode WADO-URI parameters: "
      "`contentType=application%2Fdicom` gives 400 \"Unsupported content type\", so the capture uses "
      "`contentType=application/dicom` verbatim. Without contentType it sends a JPEG (JFIF) labelled "
      "`Content-Type: image/png` (tshark: \"HTTP body subdissector failed, trying heuristic subdissector\", "
      "then JFIF): a decoder must not trust the label for the payload type.")
    w("- The WADO-RS study response (`multipart/related`) has no Content-Length and no chunked encoding: "
      "`Connection: close`, the body ends at the server's FIN. Every other response has a Content-Length "
      "and `Connection: keep-alive`.")
    w("- Orthanc answers a Bearer token with the same 401 as missing/wrong basic credentials; nothing on "
      "the wire distinguishes a wrong password from an unknown user.")
    w("- TLS 1.3 (`https-tls13.pcap`): the ServerHello's `tls.handshake.version` is 0x0303; the negotiated "
      "version is its `supported_versions` 0x0304. After the handshake the records are opaque type 23 "
      "(application data), including the server's NewSessionTickets.")
    w("- curl with `--tls-max 1.2` sends a different ClientHello (no supported_versions, key_share, "
      "psk_key_exchange_modes, post-handshake auth or padding extension) than default curl: the JA3 "
      "differs between the two files although it is the same curl. In `https-tls13.pcap` openssl s_client "
      "(stream 1) and curl (stream 0) share OpenSSL's cipher and group lists; their JA3 differ only by the "
      "extension list (s_client adds session_ticket 35, lacks post_handshake_auth 49 and padding 21). JA3 "
      "ignores the SNI and ALPN values.\n")
