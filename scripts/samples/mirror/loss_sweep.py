#!/usr/bin/env python3
"""Capture-loss sweep: copies of one plain capture with frames dropped at random, each replayed and
summarised (not a test: a measurement for README / closing notes).

  loss_sweep.py [--pacstap BIN] [--config TOML] [--loss PCT,PCT] [--seeds N] PLAIN.pcap

A SPAN port that drops frames under load loses them from the capture only: the endpoints got them,
so no retransmission ever shows. Each variant keeps a frame unless random.Random(seed).random()
* 100 < PCT (one draw per frame, in file order), so a (PCT, seed) pair names one variant exactly.
For each it prints the DICOM commands by name, the distinct Study Instance UIDs each kind names,
the alerts (signature id and count) and the anomaly names, beside the plain capture's.
Only stdlib + pcaplib.py (scripts/samples/common).
"""
import collections
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from sweep import arguments, replay_events, run  # noqa: E402


def summary(pacstap, config, pcap, out):
    """What the events of one replay say, in one line."""
    commands, alerts, anomalies = collections.Counter(), [], collections.Counter()
    studies = collections.defaultdict(set)
    for e in replay_events(pacstap, config, pcap, out):
        kind = e["event_type"]
        if kind == "dicom" and e["dicom"].get("type") == "command":
            commands[e["dicom"]["command"]] += 1
            studies[e["dicom"]["command"]].update(e["dicom"].get("study_instance_uids", []))
        elif kind == "alert":
            alerts.append(f'{e["alert"].get("signature_id")}:{e["alert"].get("count")}')
        elif kind == "anomaly":
            anomalies[e["anomaly"]["name"]] += 1
    named = {k: len(v) for k, v in sorted(studies.items())}
    return (f"commands {dict(sorted(commands.items()))}  studies named {named}  "
            f"alerts {alerts}  anomalies {dict(sorted(anomalies.items()))}")


def main():
    ap = arguments(__doc__)
    ap.add_argument("--loss", default="5,10,15", help="percentages of frames dropped")
    ap.add_argument("--seeds", type=int, default=6, help="seeds 1..N per percentage")
    a = ap.parse_args()

    def variants(plain):
        for pct in (float(p) for p in a.loss.split(",")):
            for seed in range(1, a.seeds + 1):
                rnd = random.Random(seed)
                kept = [r for r in plain.records if rnd.random() * 100 >= pct]
                yield f"{pct:g}% seed {seed}", kept, None

    run(a, summary, variants, 11)

if __name__ == "__main__":
    main()
