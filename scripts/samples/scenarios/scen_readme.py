#!/usr/bin/env python3
"""Render pcap-samples/scenarios/README.md and expected-alerts.json from scen_spec.py and the tables
that scripts/make-scenarios and scen_facts.py wrote into SCEN_DIR.

  scen_readme.py SCEN_DIR
"""
import re
import json
import sys
from collections import Counter, OrderedDict
from pathlib import Path

import scen_facts
from samplelib import md_rows as md_table
from samplelib import read_tsv as tsv
from scen_spec import CAPTURES, SCENARIOS, SEVERITY

TAB = "\t"


def n(x):
    return f"{int(x):,}"


def entity(a):
    return f"{a['kind']} `{a['id']}`"


def count_cell(a):
    if a.get("count") is None:
        return a.get("count_note", "-")
    return str(a["count"])


def fact_lines(r):
    """The tshark facts of one capture, as bullet lines."""
    L = [f"packets {n(r['packets'])}, {n(r['bytes'])} bytes, first packet {r['first_packet_utc']}, "
         f"last {r['last_packet_utc']} ({duration(r['duration_s'])}), {r['tcp_streams']} TCP connections; "
         f"TCP RST {r['tcp_rst']}, bad checksums {r['bad_checksums']}, retransmissions/out-of-order/lost "
         f"{r['tcp_trouble']}"]
    if r["assoc_rq"] != "0":
        L.append(f"DICOM: A-ASSOCIATE-RQ {r['assoc_rq']}, -AC {r['assoc_ac']}, -RJ {r['assoc_rj']}, "
                 f"A-RELEASE-RP {r['release_rp']}, A-ABORT {r['abort']}; calling AEs (per RQ): `{r['calling_aes']}`")
        if r["reject_reasons"]:
            L.append(f"rejections by result/source/reason: `{r['reject_reasons']}` "
                     "(1/1/7 = rejected-permanent, service-user, called-AE-title-not-recognized; "
                     "1/1/3 = ... calling-AE-title-not-recognized)")
        L.append(f"DIMSE: `{r['dimse'] or '-'}`; response statuses: `{r['dimse_status'] or '-'}`")
        if r["move_requests"]:
            L.append(f"C-MOVE requests (calling->destination): `{r['move_requests']}`; distinct StudyInstanceUIDs "
                     f"in the identifiers: `{r['move_studies']}`")
        if r["store_studies"]:
            L.append(f"distinct StudyInstanceUIDs in C-STORE data sets (calling->called): `{r['store_studies']}`")
    if r["http_requests"] != "0":
        L.append(f"HTTP: {r['http_requests']} requests `{r['http_methods']}`, responses `{r['http_status']}`; "
                 f"per Basic-auth user `{r['http_user_status']}`; per client `{r['http_clients']}`")
        extra = []
        if r["qido_requests"]:
            extra.append(f"QIDO-RS requests per user `{r['qido_requests']}`")
        if r["wado_rs_studies"]:
            extra.append(f"distinct studies retrieved with WADO-RS (2xx) per user `{r['wado_rs_studies']}`")
        if r["share_posts"]:
            extra.append(f"share POSTs (user:status) `{r['share_posts']}`, distinct recipients `{r['share_recipients']}`")
        if r["admin_requests"]:
            extra.append(f"admin REST calls (user:method:status) `{r['admin_requests']}`")
        if extra:
            L.append("; ".join(extra))
    if r["hl7_messages"]:
        L.append(f"HL7: messages `{r['hl7_messages']}` to `{r['hl7_receivers']}`, ACK codes `{r['hl7_acks']}`")
    if r.get("tls_connections", "0") not in ("", "0"):
        L.append(f"TLS (port 443, encrypted: no HTTP visible): {r['tls_connections']} connections from "
                 f"`{r['tls_clients']}`, SNI `{r['tls_sni']}`; TCP payload bytes server -> client per client "
                 f"`{r['tls_toclient_bytes']}`")
    return L


def commands_block(cmds):
    """Runs of more than 4 commands that differ only in numbers: first 2, a count, the last one."""
    out, i = [], 0
    shape = lambda c: re.sub(r"\d+", "#", c)
    while i < len(cmds):
        j = i
        while j + 1 < len(cmds) and shape(cmds[j + 1]) == shape(cmds[i]) and not cmds[i].startswith("#"):
            j += 1
        run = cmds[i:j + 1]
        if len(run) > 4:
            out += run[:2] + [f"# ... {len(run) - 3} more like these ..."] + run[-1:]
        else:
            out += run
        i = j + 1
    return "```\n" + "\n".join(out) + "\n```"


def duration(s):
    s = float(s)
    return f"{s / 86400:.1f} days ({s:,.0f} s)" if s > 86400 else f"{s} s"


def assoc_block(rows):
    if not rows:
        return ""
    if len(rows) <= 24:
        return md_table(["tcp", "start (UTC)", "client", "server", "calling", "called", "outcome", "reject r/s/r",
                         "DIMSE", "move dest", "studies"],
                        [[a["tcp_stream"], a["start_utc"][11:23], a["client"], a["server"], a["calling_ae"],
                          a["called_ae"], a["outcome"], a["reject"], a["dimse"], a["move_destination"],
                          short_uids(a["study_uids"])] for a in rows])
    g = Counter((a["calling_ae"], a["called_ae"], a["server"].rsplit(":", 1)[0], a["outcome"], a["dimse"])
                for a in rows)
    return ("Associations grouped (one row per kind; every association is in `scenario-associations.tsv`):\n\n"
            + md_table(["calling", "called", "server", "outcome", "DIMSE", "associations"],
                       [[*k, v] for k, v in sorted(g.items())]))


def short_uids(s):
    if s == "-":
        return "-"
    root = "1.2.826.0.1.3680043.10.1234."
    return " ".join(u.replace(root, "…") for u in s.split())


def http_block(rows):
    if not rows:
        return ""
    if len(rows) <= 20:
        multiday = len({h["time_utc"][:10] for h in rows}) > 1
        return md_table(["time (UTC)", "client", "user", "method", "URI", "status", "service", "recipient"],
                        [[h["time_utc"][:23].replace("T", " ") if multiday else h["time_utc"][11:23], h["client"], h["user"], h["method"], short_uids(h["uri"]), h["status"],
                          h["service"], h["recipient"]] for h in rows])
    g = OrderedDict()
    for h in rows:
        k = (h["client"].rsplit(":", 1)[0], h["user"], h["method"], h["service"], h["status"])
        e = g.setdefault(k, [0, h["time_utc"][11:23], ""])
        e[0] += 1
        e[2] = h["time_utc"][11:23]
    return ("HTTP requests grouped (every request is in `scenario-http.tsv`):\n\n"
            + md_table(["client", "user", "method", "service", "status", "requests", "first", "last"],
                       [[*k, v[0], v[1], v[2]] for k, v in g.items()]))


def tls_block(rows):
    if not rows:
        return ""
    if len(rows) <= 10:
        return md_table(["tcp", "client", "server", "SNI", "bytes to server", "bytes to client"],
                        [[t["tcp_stream"], t["client"], t["server"], t["sni"], n(t["bytes_toserver"]),
                          n(t["bytes_toclient"])] for t in rows])
    g = OrderedDict()
    for t in rows:
        k = (t["client"].rsplit(":", 1)[0], t["server"], t["sni"])
        e = g.setdefault(k, [0, 0, 0])
        e[0] += 1
        e[1] += int(t["bytes_toserver"])
        e[2] += int(t["bytes_toclient"])
    return ("TLS connections grouped (every connection is in `scenario-tls.tsv`):\n\n"
            + md_table(["client", "server", "SNI", "connections", "bytes to server", "bytes to client"],
                       [[*k, v[0], n(v[1]), n(v[2])] for k, v in g.items()]))


def hl7_block(rows):
    if not rows:
        return ""
    return md_table(["frame", "from", "to", "type", "control id", "MSH-3 -> MSH-5", "ACK", "segments"],
                    [[h["frame"], h["src"], h["dst"], h["message_type"], h["control_id"],
                      f"{h['sending_app']} -> {h['receiving_app']}", h["ack_code"], h["segments"]] for h in rows])


def alerts_table(alerts):
    rows = []
    for a in alerts:
        ev = []
        if a.get("device"):
            ev.append(f"device {a['device']}")
        if a.get("destinations"):
            ev.append("destinations: " + ", ".join(f"`{d}`" for d in a["destinations"]))
        if a.get("studies"):
            ev.append(f"{len(a['studies'])} studies: {short_uids(' '.join(a['studies']))}")
        if a.get("count_note"):
            ev.insert(0, f"count = {a['count_note']}")
        ev.append(a.get("note", ""))
        thr = f"{a['threshold']} / {a['window']} s" if a.get("threshold") is not None else "- (instant)"
        rows.append([f"`{a['rule']}`", entity(a), count_cell(a), thr, a.get("first_at", "-"), SEVERITY[a["rule"]],
                     "; ".join(x for x in ev if x)])
    return md_table(["rule", "entity", "count", "threshold / window", "first alert at count", "severity (default)",
                     "evidence / notes"], rows)


def main():
    d = Path(sys.argv[1])
    facts = {r["file"]: r for r in tsv(d / "scenario-facts.tsv")}
    assocs, https, hl7s = tsv(d / "scenario-associations.tsv"), tsv(d / "scenario-http.tsv"), tsv(d / "scenario-hl7.tsv")
    cmds = tsv(d / "capture-commands.tsv")
    versions = tsv(d / "tool-versions.tsv")
    shifts = tsv(d / "baseline-shifts.tsv")
    lshifts = tsv(d / "location-shifts.tsv")
    tlss = tsv(d / "scenario-tls.tsv")
    geoip = (d / "geoip.csv").read_text()
    studies = tsv(d / "studies.tsv")
    config = (d / "pacstap.toml").read_text()
    sizes = {f: (d / f).stat().st_size for f in CAPTURES}

    # counts that are tshark facts of the capture (bytes)
    for s in SCENARIOS:
        for a in s["alerts"]:
            if a.get("count_from"):
                f, col, key = a["count_from"]
                cell = dict(x.split("=", 1) for x in facts[f][col].split())
                a["count"] = int(cell[key])

    # ----------------------------------------------------------- expected-alerts.json
    ej = OrderedDict(
        generated_by="scripts/make-scenarios (scripts/samples/scenarios/scen_spec.py)",
        config="pacstap.toml",
        semantics="Each scenario is replayed on its own, fresh state (no --state), with --config pacstap.toml; "
                  "`files` in the given order in ONE replay. `alerts` lists one incident per (rule, entity): "
                  "`count` is the incident's final count (null where only the studies are exact, see count_note), "
                  "`first_alert_at_count` the count at which the first alert line is due. no_other_alerts: any "
                  "alert not listed is a failure.",
        scenarios=[])
    for s in SCENARIOS:
        ej["scenarios"].append(OrderedDict(
            files=s["files"],
            replay="pacstap replay --config pacstap.toml --alerts-only " + " ".join(s["files"]),
            title=s["title"],
            alerts=[OrderedDict((k, v) for k, v in [
                ("rule", a["rule"]), ("entity", {"kind": a["kind"], "id": a["id"]}), ("count", a.get("count")),
                ("count_note", a.get("count_note")), ("threshold", a.get("threshold")),
                ("window_seconds", a.get("window")),
                ("first_alert_at_count", a["first_at"] if isinstance(a.get("first_at"), int) else None),
                ("severity_default", SEVERITY[a["rule"]]), ("device", a.get("device")),
                ("destinations", a.get("destinations")),
                ("study_instance_uids", a.get("studies")), ("note", a.get("note"))] if v is not None)
                for a in s["alerts"]],
            must_not=[OrderedDict(rule=r, entity=e, why=w) for r, e, w in s["not_alerts"]],
            no_other_alerts=True))
    (d / "expected-alerts.json").write_text(json.dumps(ej, indent=2) + "\n")

    # ------------------------------------------------------------------- README
    W = []
    w = W.append
    w("# pcap-samples/scenarios: real captures for the detection rules\n")
    w("GENERATED by `scripts/make-scenarios` (do not edit by hand; re-run the script). Everything is synthetic: "
      "patients `SYNTH^...`, IDs `SYNP00nn` / `SYNM0nnn`, UIDs under the made-up root `1.2.826.0.1.3680043.10.1234`, "
      "lab passwords like `rad1-pass`, e-mail recipients at `example.org`, the \"external\" host in TEST-NET-2 "
      "(198.51.100.0/24, RFC 5737).\n")
    w("Real software on the wire (Orthanc 1.10 + DICOMweb plugin, dcmtk, curl, nginx, the python `hl7` package over "
      "MLLP) in a lab of Linux network namespaces, captured with tcpdump on the PACS's bridge port. Each capture is "
      "one situation that a CONTRACT §2 detection rule is about, or benign traffic that must stay silent. Only "
      "`baseline-history.pcap` and `location-history.pcap` are edited: real captures shifted back by whole weeks "
      "with `editcap -t` and merged with `mergecap`.\n")
    w("```\nsudo scripts/make-scenarios               # ~7 min; needs root (netns, tcpdump); installs missing tools\n"
      "sudo scripts/make-scenarios --facts-only  # keep the captures, redo the tables, expected-alerts.json, README\n"
      "sudo scripts/make-scenarios --only bulk-export-https,benign-https-viewer\n"
      "                                          # redo these captures (a group: all of it), keep the others\n```\n")
    w("Regenerating changes timestamps, client ports and packet counts; AE titles, IPs, MACs, users, study UIDs, "
      "the DICOM files and the counts below (associations, rejections, DIMSE messages, HTTP statuses, distinct "
      "studies, HL7 messages) stay the same: the script checks them with tshark (`scripts/samples/scenarios/scen_facts.py`, "
      "expected values in `scripts/samples/scenarios/scen_spec.py`) and fails otherwise.\n")
    total = sum(p.stat().st_size for p in d.iterdir() if p.is_file() and p.name != "README.md")
    w(f"Total size of this directory without this README: {n(total)} bytes.\n")

    w("## How to use\n")
    w("Replay each scenario on its own with the config of this directory and fresh state (no `--state`):\n")
    w("```\npacstap replay --config pcap-samples/scenarios/pacstap.toml --alerts-only pcap-samples/scenarios/bulk-export-move.pcap\n"
      "# the baseline pair in ONE run (history first):\n"
      "pacstap replay --config pcap-samples/scenarios/pacstap.toml --alerts-only \\\n"
      "    pcap-samples/scenarios/baseline-history.pcap pcap-samples/scenarios/baseline-burst.pcap\n"
      "# new_location: the location history first, then one of the two endings\n"
      "pacstap replay --config pcap-samples/scenarios/pacstap.toml --alerts-only \\\n"
      "    pcap-samples/scenarios/location-history.pcap pcap-samples/scenarios/new-location.pcap\n```\n")
    w("The tables below say which alerts each replay MUST produce (rule, entity kind + id, final count) and that "
      "NO other alert may appear. The same, machine-readable: `expected-alerts.json`. Counts are final counts of "
      "one incident per (rule, entity) (the alert fires once when the count rises above the threshold and is "
      "then updated as the incident grows); \"first alert at\" is the count at which the first alert line is due.\n")

    w("## Expected alerts (all scenarios)\n")
    rows = []
    for s in SCENARIOS:
        files = " + ".join(f"`{f}`" for f in s["files"])
        if not s["alerts"]:
            rows.append([files, "**none**", "-", "-", "-"])
        for a in s["alerts"]:
            thr = f"{a['threshold']} / {a['window']} s" if a.get("threshold") is not None else "instant"
            rows.append([files, f"`{a['rule']}`", entity(a), count_cell(a), thr])
    w(md_table(["capture(s)", "rule", "entity", "count", "threshold / window"], rows) + "\n")
    w("`bulk_export` of `bulk-export-https.pcap` counts BYTES (count and threshold): inside TLS the studies cannot be "
      "seen, so the rule counts what the image server sent the client (`rules.bulk_export.https_bytes`). Every "
      "alert about a transfer names where the data went in `evidence.destinations` (column \"evidence / notes\" "
      "of the per-capture tables). Not covered by a capture: the `critical` escalation (export after `new_device` / "
      "`new_location` for the same entity).\n")

    w("## Files\n")
    w(md_table(["file", "bytes", "packets", "duration", "what"],
               [[f"`{f}`", n(sizes[f]), n(facts[f]["packets"]), duration(facts[f]['duration_s']),
                 next(s["title"] for s in SCENARIOS if f in s["files"])] for f in CAPTURES]) + "\n")
    w("Also here: `pacstap.toml` (the detector config), `geoip.csv` (its synthetic GeoIP table), "
      "`expected-alerts.json`, `scenario-facts.tsv` (one row of "
      "tshark counts per capture), `scenario-associations.tsv` (every DICOM association), `scenario-http.tsv` "
      "(every HTTP request with its status; user names only, never passwords), `scenario-hl7.tsv` (every HL7 "
      "message and ACK), `scenario-tls.tsv` (every TLS connection: SNI, bytes each way), `studies.tsv` (the "
      "synthetic DICOM files), `hl7-messages.tsv`, `baseline-shifts.tsv`, `location-shifts.tsv`, "
      "`capture-commands.tsv` (every client command, in order), `tool-versions.tsv`.\n")

    w("## Lab\n")
    w("```\n"
      " pts-mod  10.20.0.30  02:00:0a:14:00:1e  clients (dcmtk, curl, MLLP); storescp AE RAD1WS :11115\n"
      " pts-mod2 10.20.0.31  02:00:0a:14:00:1f  a second client machine (the new device)\n"
      " pts-rtr  10.20.0.50  02:00:0a:14:00:32  routing engine, calling AE ROUTER1 (movescu)\n"
      " pts-ws   10.20.0.20  02:00:0a:14:00:14  storescp AE STORESCP :11112\n"
      " pts-ext  198.51.100.7 02:00:c6:33:64:07 \"outside\": storescp AE EXTPACS :104, MLLP listener :2575\n"
      " pts-exta 203.0.113.10 02:00:cb:00:71:0a \"outside\" client, country XA (tele1's home office)\n"
      " pts-extb 198.51.100.23 02:00:c6:33:64:17 \"outside\" client, country XB\n"
      "        |   each: eth0 <-veth-> <host>0 port of br0 in pts-sw\n"
      "   [mod0] [mod20] [rtr0] [ws0] [ext0] [exta0] [extb0] ---- br0 (pts-sw) ---- [pacs0]  <== tcpdump -i pacs0 (the tap)\n"
      "                                                                                 |\n"
      " pts-pacs 10.20.0.10  02:00:0a:14:00:0a  Orthanc AE ORTHANC :4242, HTTP :8042 (DICOMweb plugin, basic auth);\n"
      "                                         nginx :80 (share portal), :443 (HTTPS front end of Orthanc,\n"
      "                                         pacs.example.test); MLLP listener :2575\n"
      "```\n")
    w("- Namespaces are prefixed `pts-` (not the `pt-` of `scripts/make-samples`), so the two scripts can run at the "
      "same time. One L2 segment, MTU 1500; TSO/GSO/GRO/LRO/SG/TX-checksum offloads off on every veth and br0 "
      "(wire-sized frames, final checksums); IPv6 off; permanent neighbour entries with fixed MACs (no ARP). "
      "The outside hosts 198.51.100.7, 203.0.113.10 and 198.51.100.23 (documentation ranges, RFC 5737) live on the "
      "same bridge: pts-pacs has an on-link /32 route to each (`198.51.100.7/32 dev eth0`, ...), each of them an "
      "on-link route `10.20.0.0/24 dev eth0`, and they have neighbour entries for the PACS only; no namespace has a "
      "default route or any link outside pts-sw, so nothing can leave the lab.\n"
      "- Capture: `ip netns exec pts-sw tcpdump -Z root -n -s 0 -U -B 4096 -i pacs0 -w FILE`, stopped with SIGINT "
      "1.5 s after the last client command; the script fails unless tcpdump reports `0 packets dropped by kernel`. "
      "Everything to or from 10.20.0.10 is seen once, including Orthanc's own outbound associations for C-MOVE. "
      "Readiness checks, the upload of the pool studies and the registration of SCANNER9 use pts-pacs's loopback "
      "or happen before a capture starts: they are not in any file.\n"
      "- Orthanc (temp dir): `DicomAet` ORTHANC, `DicomCheckCalledAet` true, `StrictAetComparison` true, "
      "`DicomCheckModalityHost` true, `DicomAlwaysAllowEcho/Store/Find/FindWorklist/Get/Move` all **false** "
      "(only the modalities below may associate), `DicomModalities`: STORESCP 10.20.0.20:11112, WORKSTATION1 "
      "10.20.0.30 (echo/find/move/get), MODALITY1 10.20.0.30 (echo/store), RAD1WS 10.20.0.30:11115 "
      "(echo/find/move/get), ROUTER1 10.20.0.50 (echo/find/move/store), EXTPACS 198.51.100.7:104 (destination "
      "only); `SynchronousCMove` true, `MaximumPduLength` 16384, `DicomAssociationCloseDelay` 0; HTTP 8042 with "
      "`AuthenticationEnabled` and `RegisteredUsers` rad1..rad5 + admin (password `<user>-pass`), DICOMweb at "
      "`/dicom-web/`. Orthanc 1.10 proposes 126 storage presentation contexts (its common storage SOP classes, each twice) on "
      "every outbound association, so each C-MOVE sub-association carries a ~9.5 KB A-ASSOCIATE-RQ.\n"
      "- storescp (dcmtk): `storescp --aetitle AE +uf --output-directory DIR PORT` for STORESCP, EXTPACS, RAD1WS. "
      "MLLP listeners: `scripts/samples/scenarios/scen_hl7.py serve` (ACK AA to everything). nginx portal: see "
      "`sharing-spike.pcap`; nginx HTTPS front end (`listen 10.20.0.10:443 ssl http2`, TLS 1.2/1.3, a self-signed "
      "RSA-2048 certificate for `pacs.example.test` made by `openssl req -x509` on every run, `proxy_pass "
      "http://127.0.0.1:8042`): see `bulk-export-https.pcap`. Orthanc also has the user `tele1` (password "
      "`tele1-pass`).\n"
      "- dcmtk tools are called by absolute path (`/usr/bin/...`): pip's pynetdicom installs entry points of the same "
      "names that may shadow dcmtk on `$PATH`.\n")

    w("## The detector config (`pacstap.toml`)\n")
    w("```toml\n" + config.rstrip() + "\n```\n")

    w("## The GeoIP table (`geoip.csv`)\n")
    w("`pacstap.toml` names it with `[geoip] csv = \"geoip.csv\"`: a relative path in a config file is relative to "
      "the file's directory. Made-up countries (user-assigned ISO 3166 codes) for documentation ranges; every "
      "other address has no country (internal ones are never looked up).\n")
    w("```\n" + geoip.rstrip() + "\n```\n")

    w("## Synthetic studies (`studies.tsv`)\n")
    pool = [s for s in studies if s["set"] == "pool"]
    mod = [s for s in studies if s["set"] == "modality"]
    w(f"Written by `scripts/samples/scenarios/scen_data.py` (pydicom, via `synth_dicom.make_instance`; byte-identical on every run): "
      f"one study = one series = one 32x32 16-bit MONOCHROME2 instance, Explicit VR Little Endian, "
      f"{min(int(s['file_bytes']) for s in studies):,}-{max(int(s['file_bytes']) for s in studies):,} bytes per file.\n")
    w(f"- **pool** P01..P{len(pool):02d}: the PACS's archive, uploaded into Orthanc over REST on the loopback before "
      f"the first capture. StudyInstanceUID of Pn = `1.2.826.0.1.3680043.10.1234.20.n`, series = study + `.1`, "
      f"instance = series + `.1`; patient `SYNTH^POOLnn` / `SYNP00nn`; modality CT, MR, CR in turn.\n"
      f"- **modality** M001..M{len(mod):03d}: stored by MODALITY1 in `benign-modality-store.pcap`. StudyInstanceUID "
      f"of Mn = `1.2.826.0.1.3680043.10.1234.21.n`; patient `SYNTH^MODnnn`; CT.\n")
    w(md_table(["pool studies", "used by"], [
        ["P01-P18", "bulk-export-move (WORKSTATION1 -> STORESCP)"],
        ["P01-P17", "bulk-export-wado (rad1)"],
        ["P01-P18", "bulk-export-rest (rad2: P01-P16 as ZIPs, P17 as a DICOM file, P18's JSON record)"],
        ["P01-P16", "bulk-export-rest-push (rad3: pushed to STORESCP by Orthanc)"],
        ["P21-P40", "benign-rest-viewer (rad1: records and previews of 20, ZIPs of P21, P22)"],
        ["P01-P20", "benign-service-account (ROUTER1 -> STORESCP), benign-admin-export (admin)"],
        ["P01", "login-failures-dicom (SCANNER9's C-FIND)"],
        ["P01-P12", "sharing-spike (named in the share requests' JSON)"],
        ["P21-P25, P26-P28", "benign-radiologist-day (rad1 WADO-RS; RAD1WS C-MOVE)"],
        ["P29-P30", "unknown-destination (-> EXTPACS)"],
        ["P31-P36", "baseline-history (rad4, one a week)"],
        ["P41-P50", "baseline-burst (rad4)"],
        ["P01-P40", "bulk-export-https (10.20.0.31 over HTTPS)"],
        ["P21-P23", "benign-https-viewer (rad1's viewer over HTTPS)"],
        ["P07", "location-history, new-location, benign-location (tele1's QIDO-RS searches)"],
    ]) + "\n")

    w("## Per-capture details\n")
    w("Counts are what tshark decodes (commands at the end); \"studies\" are distinct StudyInstanceUIDs. Short UIDs "
      "`…20.n` stand for `1.2.826.0.1.3680043.10.1234.20.n` (pool study Pn).\n")
    described = set()
    for s in SCENARIOS:
        w(f"### {' + '.join(f'`{f}`' for f in s['files'])}: {s['title']}\n")
        for p in s["what"]:
            w(p + "\n")
        w(f"Who: {s['actors']}.\n")
        if s["files"][0] == "baseline-history.pcap":
            w(md_table(["capture", "study", "StudyInstanceUID", "editcap -t (seconds)", "shift"],
                       [[x["capture"], x["pool_study"], f"`{x['study_instance_uid']}`", x["shift_seconds"], x["shift"]]
                        for x in shifts]) + "\n")
            w("`editcap -t <shift_seconds> hist-k.pcap hist-k.shifted.pcap` for k = 1..6, then "
              "`mergecap -F pcap -w baseline-history.pcap hist-{1..6}.shifted.pcap` (chronological merge).\n")
        if s["files"][0] == "location-history.pcap" and "location-history.pcap" not in described:
            w(md_table(["capture", "client", "editcap -t (seconds)", "shift"],
                       [[x["capture"], x["client"], x["shift_seconds"], x["shift"]] for x in lshifts]) + "\n")
            w("`editcap -t <shift_seconds> lochist-k.pcap lochist-k.shifted.pcap` for k = 1..3, then "
              "`mergecap -F pcap -w location-history.pcap lochist-{1..3}.shifted.pcap` (chronological merge).\n")
        for f in s["files"]:
            if f in described:
                w(f"**`{f}`**: as above.\n")
                continue
            described.add(f)
            stem = f[:-5]
            c = [x["command"] for x in cmds if x["scenario"] == stem]
            if len(s["files"]) > 1:
                w(f"**`{f}`**\n")
            w("Commands (in order; `<dicom>` = the synthetic files, `<tmp>` = the script's temp dir):\n")
            w(commands_block(c) + "\n")
            w("tshark:\n")
            for ln in fact_lines(facts[f]):
                w(f"- {ln}")
            w("")
            blk = assoc_block([a for a in assocs if a["file"] == f])
            if blk:
                w(blk + "\n")
            blk = http_block([h for h in https if h["file"] == f])
            if blk:
                w(blk + "\n")
            blk = hl7_block([h for h in hl7s if h["file"] == f])
            if blk:
                w(blk + "\n")
            blk = tls_block([t for t in tlss if t["file"] == f])
            if blk:
                w(blk + "\n")
        replay = " ".join(s["files"])
        w(f"**MUST alert** (`pacstap replay --config pacstap.toml {replay}`):\n")
        w((alerts_table(s["alerts"]) if s["alerts"] else "nothing: no alert of any rule.") + "\n")
        w("**MUST NOT alert** (besides: no alert other than the ones above):\n")
        w(md_table(["rule", "entity", "why"], [[f"`{r}`" if r[0].isalpha() else r, e or "-", why or "-"]
                                                for r, e, why in s["not_alerts"]]) + "\n")

    w("## tshark commands\n")
    w("Decode settings for every command: `" + " ".join(scen_facts.DECODE) + "` (port 80 is HTTP by default).\n")
    w("```")
    for name in ("CMD_CAPINFOS", "CMD_SYN", "CMD_DICOM", "CMD_HTTP", "CMD_HL7", "CMD_TLS_HELLO", "CMD_TLS_BYTES",
                 "CMD_RST", "CMD_BADSUM", "CMD_TROUBLE"):
        cmd = list(getattr(scen_facts, name))
        dec = scen_facts.DECODE
        for i in range(len(cmd)):
            if cmd[i:i + len(dec)] == dec:
                cmd[i:i + len(dec)] = ["<decode>"]
                break
        shown = []
        for x in cmd:
            x = "FILE" if x == "{f}" else x
            if "\t" in x:
                shown.append("$'" + x.replace("\t", "\\t") + "'")
            else:
                shown.append(f"'{x}'" if x != "<decode>" and any(ch in x for ch in " |&=!<>()") else x)
        w(" ".join(shown))
    w("```\n")
    w("DICOM facts come from the PDML: PDU types, A-ASSOCIATE-RQ AE titles, A-ASSOCIATE-RJ result/source/reason, "
      "the command PDVs' (0000,0100) Command Field, (0000,0600) Move Destination, (0000,0900) Status, and the "
      "(0020,000D) StudyInstanceUID of the data set PDV that follows a C-MOVE-RQ / C-STORE-RQ on the same "
      "connection and direction. Client/server of a connection: the sender of its SYN. TLS facts: the SNI of each "
      "connection's ClientHello, and the sum of `tcp.len` each way on port 443 (what pacstap's `tls` event reports "
      "as `bytes_toclient` / `bytes_toserver` when nothing was lost).\n")

    w("## Tool versions\n")
    w(md_table(["tool", "version"], [[v["tool"], v["version"]] for v in versions]) + "\n")
    (d / "README.md").write_text("\n".join(W))
    return 0


if __name__ == "__main__":
    sys.exit(main())
