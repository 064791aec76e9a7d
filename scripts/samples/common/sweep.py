"""What the sweeps of scripts/samples/mirror/ share: their common arguments, and one replay of a
variant read back as events (stdlib only)."""
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from pcaplib import read_pcap, write_pcap


def arguments(doc):
    """A parser with the arguments every sweep takes: the plain capture, the binary, the config."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("plain")
    ap.add_argument("--pacstap", default="target/release/pacstap")
    ap.add_argument("--config")
    return ap


def replay_events(pacstap, config, pcap, out):
    """Replays `pcap` (events written to `out`, warnings not shown) and yields its events."""
    cmd = [pacstap, "replay", "-q", "--events", str(out)]
    if config:
        cmd += ["--config", config]
    subprocess.run(cmd + [str(pcap)], check=True, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            yield json.loads(line)


def run(a, summary, variants, width):
    """Prints the plain capture's summary, then each variant's: `variants(plain)` yields
    (label, records, snaplen or None) for the copies to write and replay."""
    plain = read_pcap(a.plain)
    with tempfile.TemporaryDirectory() as tmp:
        out, variant = Path(tmp) / "events.jsonl", Path(tmp) / "variant.pcap"
        print(f"{'plain':<{width}} {summary(a.pacstap, a.config, a.plain, out)}")
        for label, records, snaplen in variants(plain):
            write_pcap(variant, plain, records, snaplen=snaplen)
            print(f"{label:<{width}} {summary(a.pacstap, a.config, variant, out)}")
