#!/usr/bin/env python3
"""SPAN-port variants of the 20-study C-MOVE for scripts/make-samples-mirror.

  mirror_span.py CAPDIR   reads CAPDIR/move20.{plain,from-pacs,to-pacs}.pcap (three tcpdumps on
                          the PACS's bridge port at the same time: both directions, -Q in, -Q out)
                          and writes
      move20.span.pcap    the two direction captures merged (mergecap) after delaying the PACS's
                          side (editcap -t D): a SPAN session whose two directions reach the
                          analyser by paths of different latency. D is the smallest of CANDIDATES
                          that puts at least TARGET of the data segments after the peer's ACK
                          covering them (measured on the files, before and after the merge).
      move20.span-1ms.pcap  the same with the PACS's side 1 ms late (a mirror path through another
                          switch or an ERSPAN collector): about half of the PACS's data segments,
                          and the SYN of each of its outbound connections, come after the peer's
                          answer.
      move20.dup.pcap     every frame of move20.plain.pcap twice (mergecap of the file and a
                          copy 2 us later): ingress and egress of one port both mirrored.
      move20.oneway.pcap  only the request side of each connection (tcpdump -r with a filter on
                          the server ports 4242 / 11112): a mirror that sees one direction.
  and prints one TSV line per variant: kind, description (for captures.tsv).
Only stdlib + pcaplib.py (to measure) and the Wireshark / tcpdump tools (to edit).
"""
import subprocess
import sys
from pathlib import Path

from pcaplib import parse_tcp, read_pcap

PACS = "10.20.0.10"
# Delays tried, in microseconds: a few us (two switch ports) up to 2 ms (a busy mirror path).
CANDIDATES = [5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000]
TARGET = 0.05


def us(r):
    return r.ts_sec * 1_000_000 + r.ts_frac


def segments(path):
    """(time us, Tcp) of every TCP frame, in file order."""
    p = read_pcap(path)
    out = []
    for r in p.records:
        t = parse_tcp(r.data, p.linktype)
        if t is not None:
            out.append((us(r), t))
    return out


def covered(ack, end):
    """ack covers end: ack >= end in sequence space (RFC 9293 modular comparison)."""
    return ((ack - end) & 0xFFFFFFFF) < 0x80000000


def first_covering_ack(data, acks):
    """For each data segment (t, Tcp) the time of the first peer packet whose ACK covers its last
    byte, or None. acks: peer packets by connection key, in time order."""
    out = []
    for t, s in data:
        end = (s.seq + s.payload_len) & 0xFFFFFFFF
        key = (s.dst, s.dport, s.src, s.sport)
        hit = None
        for ta, a in acks.get(key, []):
            if ta >= t and a.flags & 0x10 and covered(a.ack, end):
                hit = ta
                break
        out.append(hit)
    return out


def by_conn(segs):
    d = {}
    for t, s in segs:
        d.setdefault((s.src, s.sport, s.dst, s.dport), []).append((t, s))
    return d


def after_ack_fraction(merged):
    """Fraction of data segments that come after (in file order) a peer ACK covering them."""
    seen_ack = {}   # (src, sport, dst, dport) of the ACKer -> highest ack seen so far
    late = total = 0
    for _, s in merged:
        if s.payload_len > 0:
            total += 1
            a = seen_ack.get((s.dst, s.dport, s.src, s.sport))
            if a is not None and covered(a, (s.seq + s.payload_len) & 0xFFFFFFFF):
                late += 1
        if s.flags & 0x10:
            k = (s.src, s.sport, s.dst, s.dport)
            if k not in seen_ack or covered(s.ack, seen_ack[k]):
                seen_ack[k] = s.ack
    return late, total


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main(argv):
    cap = Path(argv[0])
    frm, to = cap / "move20.from-pacs.pcap", cap / "move20.to-pacs.pcap"
    f_segs, t_segs = segments(frm), segments(to)
    assert all(s.src == PACS for _, s in f_segs) and all(s.dst == PACS for _, s in t_segs), "direction split"
    data = [(t, s) for t, s in f_segs if s.payload_len > 0]
    n_data = len(data) + sum(1 for _, s in t_segs if s.payload_len > 0)
    ack_at = first_covering_ack(data, by_conn(t_segs))
    chosen = None
    for d in CANDIDATES:
        late = sum(1 for (t, _), ta in zip(data, ack_at) if ta is not None and t + d > ta)
        if late / n_data >= TARGET:
            chosen = d
            break
    if chosen is None:
        print(f"no candidate delay reaches {TARGET:.0%}", file=sys.stderr)
        return 1
    plain_late, _ = after_ack_fraction(segments(cap / "move20.plain.pcap"))
    if plain_late != 0:
        print(f"unexpected: {plain_late} data segments after their ACK in move20.plain.pcap", file=sys.stderr)
        return 1
    for kind, name, delay in [("span", "move20.span.pcap", chosen), ("span-1ms", "move20.span-1ms.pcap", 1000)]:
        delayed = cap / "move20.from-pacs.delayed.pcap"
        run("editcap", "-F", "pcap", "-t", f"{delay / 1e6:.6f}", str(frm), str(delayed))
        run("mergecap", "-F", "pcap", "-w", str(cap / name), str(delayed), str(to))
        delayed.unlink()
        late, total = after_ack_fraction(segments(cap / name))
        if late / total < TARGET:
            print(f"unexpected: {name}: {late}/{total} after their ACK", file=sys.stderr)
            return 1
        print(f"{kind}\teditcap -t {delay / 1e6:.6f} on the -Q in (from PACS) file, mergecap with the -Q out file: "
              f"{late} of {total} data segments ({100 * late / total:.1f}%) come after the peer's ACK covering "
              f"them (0 in move20.plain.pcap)")

    plain = cap / "move20.plain.pcap"
    copy = cap / "move20.copy.pcap"
    run("editcap", "-F", "pcap", "-t", "0.000002", str(plain), str(copy))
    run("mergecap", "-F", "pcap", "-w", str(cap / "move20.dup.pcap"), str(plain), str(copy))
    copy.unlink()
    n_plain = len(read_pcap(plain).records)
    n_dup = len(read_pcap(cap / "move20.dup.pcap").records)
    assert n_dup == 2 * n_plain, (n_dup, n_plain)
    print(f"dup\tmergecap of move20.plain.pcap and a copy shifted by editcap -t 0.000002: each of its "
          f"{n_plain} frames twice ({n_dup} frames)")

    run("tcpdump", "-r", str(plain), "-w", str(cap / "move20.oneway.pcap"), "tcp dst port 4242 or tcp dst port 11112")
    n_one = len(read_pcap(cap / "move20.oneway.pcap").records)
    print(f"oneway\ttcpdump -r move20.plain.pcap 'tcp dst port 4242 or tcp dst port 11112': the request side of "
          f"each connection (WORKSTATION1->ORTHANC, ORTHANC->STORESCP), {n_one} of {n_plain} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
