#!/usr/bin/env python3
"""Header-only sweep: copies of one plain capture with every frame cut to N bytes, each replayed and
summarised (not a test: a measurement for README / closing notes).

  snaplen_sweep.py [--pacstap BIN] [--config TOML] [--snaplen N,N] [--truncating] PLAIN.pcap

What `tcpdump -s N` or `editcap -s N` writes: each record keeps the first N bytes of its frame and
its original length. With --truncating the record's own length is the cut one too (a mirror port
that truncates frames: only the IP header still says what was lost). For each it prints the
associations (AE pair named or not, accepted), the DICOM commands by name with how many have a
status, the HTTP exchanges with a status, the TLS server names, the alerts (signature id and
count) and the anomaly names, beside the plain capture's. Only stdlib + pcaplib.py
(scripts/samples/common).
"""
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from pcaplib import Record  # noqa: E402
from sweep import arguments, replay_events, run  # noqa: E402


def summary(pacstap, config, pcap, out):
    """What the events of one replay say, in one line."""
    assocs, commands, with_status = collections.Counter(), collections.Counter(), collections.Counter()
    http, sni, alerts, anomalies = [0, 0], [], [], collections.Counter()
    for e in replay_events(pacstap, config, pcap, out):
        kind = e["event_type"]
        if kind == "dicom" and e["dicom"].get("type") == "association":
            d = e["dicom"]
            named = "named" if d.get("calling_ae") and d.get("called_ae") else "unnamed"
            assocs[f'{named}{" accepted" if d.get("accepted") else ""}'] += 1
        elif kind == "dicom" and e["dicom"].get("type") == "command":
            commands[e["dicom"]["command"]] += 1
            with_status[e["dicom"]["command"]] += e["dicom"].get("status") is not None
        elif kind == "http":
            http[0] += 1
            http[1] += e["http"].get("status") is not None
        elif kind == "tls":
            sni.append(e["tls"].get("sni"))
        elif kind == "alert":
            alerts.append(f'{e["alert"].get("signature_id")}:{e["alert"].get("count")}')
        elif kind == "anomaly":
            anomalies[e["anomaly"]["name"]] += 1
    cmds = {k: f"{v} ({with_status[k]} with status)" for k, v in sorted(commands.items())}
    return (f"associations {dict(sorted(assocs.items()))}  commands {cmds}  "
            f"http {http[0]} ({http[1]} with status)  tls sni {sni}  alerts {alerts}  "
            f"anomalies {dict(sorted(anomalies.items()))}")


def main():
    ap = arguments(__doc__)
    ap.add_argument("--snaplen", default="96,128,160,200,256", help="bytes kept of each frame")
    ap.add_argument("--truncating", action="store_true",
                    help="the record's own length is the cut one (a truncating mirror port)")
    a = ap.parse_args()

    def variants(plain):
        for n in (int(s) for s in a.snaplen.split(",")):
            yield str(n), [Record(r.ts_sec, r.ts_frac, r.data[:n], len(r.data[:n]) if a.truncating else r.orig_len)
                           for r in plain.records], n

    run(a, summary, variants, 8)

if __name__ == "__main__":
    main()
