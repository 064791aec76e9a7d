#!/usr/bin/env python3
"""SPAN skew stress: many randomly skewed and duplicated copies of one plain capture, each replayed
and compared with the plain capture's facts (not a test: a measurement for README / closing notes).

  span_stress.py [--pacstap BIN] [--config TOML] [--seeds N] [--delays US,US] [--dup P,P]
                 [--within F] PLAIN.pcap

Each variant delays every frame of one direction by a random constant (0..delay us, drawn per
direction: the two directions of a SPAN session reach the tap through different queues), adds
F * delay of random jitter per frame (--within, default 0: a direction keeps its own order), and
duplicates each frame with probability P a few microseconds later (ingress and egress copies).
A variant passes when its events, less run-local fields, are the plain capture's multiset and it
raises no anomaly. Prints each failure and a total; exit status 1 if any failed.
Only stdlib + pcaplib.py (scripts/samples/common).
"""
import argparse
import collections
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from pcaplib import Pcap, Record, read_pcap, write_pcap  # noqa: E402

VOLATILE = {"timestamp", "start", "end", "request_time", "response_time", "first_seen", "last_seen",
            "ack_latency_seconds", "flow_id", "flow_ids", "incident_id", "pcap", "pcap_sha256", "event_id"}


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def events(pacstap, config, pcap, out):
    cmd = [pacstap, "replay", "-q", "--events", str(out)]
    if config:
        cmd += ["--config", config]
    subprocess.run(cmd + [str(pcap)], check=True)
    evs = [json.loads(line) for line in open(out)]
    facts = collections.Counter(json.dumps(strip(e), sort_keys=True) for e in evs
                                if e["event_type"] != "anomaly")
    anomalies = sorted({e["anomaly"]["name"] for e in evs if e["event_type"] == "anomaly"})
    return facts, anomalies


def variant(plain, out, seed, delay, within, dup):
    rnd = random.Random(seed)
    side_delay = {}
    recs = []
    for i, r in enumerate(plain.records):
        t = r.ts_sec * 1_000_000 + r.ts_frac
        side = r.data[26:30] if len(r.data) >= 34 else b""  # IPv4 source: the direction
        d = side_delay.setdefault(side, rnd.randint(0, delay))
        t += d + (rnd.randint(0, int(delay * within)) if within > 0 else 0)
        recs.append((t, i, r))
        if rnd.random() < dup:
            recs.append((t + rnd.randint(1, 50), i, r))
    recs.sort(key=lambda x: (x[0], x[1]))
    out_recs = [Record(t // 1_000_000, t % 1_000_000, r.data, r.orig_len) for t, _, r in recs]
    write_pcap(out, Pcap(plain.endian, plain.magic, plain.version, plain.snaplen, plain.linktype, out_recs),
               out_recs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("plain")
    ap.add_argument("--pacstap", default="target/release/pacstap")
    ap.add_argument("--config")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--delays", default="1000,5000,20000", help="largest per-direction delays, us")
    ap.add_argument("--dup", default="0.05", help="duplicate probabilities")
    ap.add_argument("--within", type=float, default=0.0)
    a = ap.parse_args()
    plain = read_pcap(a.plain)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        want, want_anomalies = events(a.pacstap, a.config, a.plain, tmp / "plain.jsonl")
        total = failed = 0
        for delay in (int(x) for x in a.delays.split(",")):
            for dup in (float(x) for x in a.dup.split(",")):
                for seed in range(1, a.seeds + 1):
                    variant(plain, tmp / "v.pcap", seed, delay, a.within, dup)
                    got, anomalies = events(a.pacstap, a.config, tmp / "v.pcap", tmp / "v.jsonl")
                    total += 1
                    new = sorted(set(anomalies) - set(want_anomalies))
                    if got != want or new:
                        failed += 1
                        print(f"delay={delay}us dup={dup} seed={seed}: {sum((want - got).values())} facts "
                              f"missing, {sum((got - want).values())} extra, new anomalies {new}")
        print(f"{total - failed} of {total} variants give the plain facts with no new anomaly")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
