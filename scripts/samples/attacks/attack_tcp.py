"""TCP surgery on real captures, as an on-path attacker (or a broken capture) would do it.

Used by scripts/make-samples-attacks. Works on scapy packet lists (rdpcap) of Ethernet/IPv4/TCP
captures. Every helper keeps the capture a valid TCP conversation where it says so: payload
changes of a different length shift the later sequence numbers of that direction and the
acknowledgements of the other, so the endpoints' view stays consistent and only the bytes the
attacker chose differ. Deterministic: random values come from a seeded random.Random.
"""
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

MSS = 1448  # what the lab's Linux endpoints used (MTU 1500, timestamps on)
SEQ_MOD = 1 << 32


def tcp_payload(p):
    return bytes(p[TCP].payload) if TCP in p else b""


def is_dir(p, src_port, dst_port):
    return TCP in p and p[TCP].sport == src_port and p[TCP].dport == dst_port


def seg_len(p):
    t = p[TCP]
    return len(tcp_payload(p)) + (1 if t.flags.S else 0) + (1 if t.flags.F else 0)


def next_seq(pkts, upto, sport, dport):
    """The sequence number that follows everything sent sport->dport before index `upto`
    (the receiver's RCV.NXT, RFC 9293 §3.3.1, when nothing was lost)."""
    nxt = None
    for p in pkts[:upto]:
        if is_dir(p, sport, dport):
            end = (p[TCP].seq + seg_len(p)) % SEQ_MOD
            if nxt is None or ((end - nxt) % SEQ_MOD) < (SEQ_MOD >> 1):
                nxt = end
    return nxt


def rebuild(p):
    """Recompute lengths and checksums after an edit (scapy fills deleted fields)."""
    q = p.copy()
    del q[IP].len
    del q[IP].chksum
    del q[TCP].chksum
    out = Ether(bytes(q))
    out.time = p.time
    return out


def with_payload(p, payload):
    q = p.copy()
    q[TCP].remove_payload()
    if payload:
        q[TCP].add_payload(Raw(payload))
    return rebuild(q)


def bad_checksum(p):
    """Same packet with a TCP checksum that is wrong (off by one's complement of 1), so every
    endpoint drops it (RFC 9293 §3.1: a segment with a bad checksum is discarded)."""
    q = p.copy()
    good = q[TCP].chksum
    q[TCP].chksum = (good + 1) & 0xFFFF if good != 0xFFFF else 0x1234
    out = Ether(bytes(q))
    out.time = p.time
    assert out[TCP].chksum != good
    return out


def control(template, sport, dport, seq, ack, flags, t):
    """A payload-free segment sport->dport built on `template`'s addresses, MACs and TTL
    (a packet of that direction), with a correct checksum."""
    q = template.copy()
    q[TCP].remove_payload()
    q[TCP].sport, q[TCP].dport = sport, dport
    q[TCP].seq, q[TCP].ack = seq % SEQ_MOD, ack % SEQ_MOD
    q[TCP].flags = flags
    q[TCP].options = [] if "S" not in flags else [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    del q[TCP].dataofs
    q = rebuild(q)
    q.time = t
    return q


def between(pkts, i):
    """A timestamp strictly between packet i-1 and packet i (or 1 µs before i)."""
    a, b = pkts[i - 1].time, pkts[i].time
    return (a + b) / 2 if b > a else b


def replace_payload(pkts, i, new_payload, mss=MSS):
    """Replace the payload of data segment i by `new_payload` (cut into MSS-sized segments
    with the same headers, all at i's time) and shift the rest of the connection: later
    sequence numbers of that direction and acknowledgements of the reverse one move by the
    length difference. Returns a new list."""
    p = pkts[i]
    sport, dport = p[TCP].sport, p[TCP].dport
    delta = len(new_payload) - len(tcp_payload(p))
    base = p[TCP].seq
    segs = []
    for off in range(0, max(len(new_payload), 1), mss):
        q = p.copy()
        q[TCP].seq = (base + off) % SEQ_MOD
        segs.append(with_payload(q, new_payload[off:off + mss]))
    out = list(pkts[:i]) + segs
    for q in pkts[i + 1:]:
        if delta and is_dir(q, sport, dport):
            q = q.copy()
            q[TCP].seq = (q[TCP].seq + delta) % SEQ_MOD
            q = rebuild(q)
        elif delta and is_dir(q, dport, sport) and q[TCP].flags.A:
            q = q.copy()
            q[TCP].ack = (q[TCP].ack + delta) % SEQ_MOD
            # SACK blocks would name the old numbers; the lab captures carry none after
            # a payload edit point (no loss on a veth), so only ack moves.
            q = rebuild(q)
        out.append(q)
    return out


def find(pkts, pred, start=0):
    for i in range(start, len(pkts)):
        if pred(pkts[i]):
            return i
    raise LookupError("no packet matches")


def find_all(pkts, pred):
    return [i for i, p in enumerate(pkts) if pred(p)]
