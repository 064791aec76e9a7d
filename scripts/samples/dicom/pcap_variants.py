#!/usr/bin/env python3
"""Derive the edited samples from the real captures (stdlib only, deterministic).

  pcap_variants.py SRC_DIR OUT_DIR  -> writes the derived .pcap files into OUT_DIR and
                                       prints a JSON description of every edit (frame
                                       numbers are 1-based, as in tshark/Wireshark)

Edits (all frame numbers refer to the SOURCE file unless said otherwise):
  store-reordered.pcap   4 pairs of back-to-back client->PACS data segments swapped
                         (frame bytes swapped, timestamps left in place, so time stays
                         monotonic and the later-sequence segment arrives first)
  store-duplicated.pcap  4 data segments repeated immediately (exact copy, same
                         timestamp) + 1 repeated 5 frames later (spurious retransmission)
  store-dropped.pcap     1 client->PACS data segment in the middle of the >1 MB
                         instance's P-DATA removed (a segment that holds no PDU/PDV header)
  move-midstream.pcap    every frame before the first client data segment after the
                         A-ASSOCIATE-AC of the C-MOVE association removed (TCP handshake,
                         A-ASSOCIATE-RQ/-AC gone; the capture starts with the C-MOVE-RQ)
  store-vlan.pcap        802.1Q tag (TPID 0x8100, PCP 0, VID 100) inserted in every frame
  echo-qinq.pcap         QinQ: outer 802.1ad (TPID 0x88a8, VID 200), inner 802.1Q VID 100
  store-ipv6.pcap        IPv4 -> IPv6 (10.20.0.N -> fd00::N with N written in decimal digits,
                         e.g. 10.20.0.10 -> fd00::10), hop limit = TTL, traffic class = TOS,
                         flow label 0, TCP checksum recomputed; frames grow by 20 bytes
  store-truncated.pcap   store.pcap cut part-way through the data of a record in the
                         middle of the >1 MB instance
"""
import ipaddress
import json
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))  # pcaplib, also without lab.sh
from pcaplib import (Record, csum16, parse_tcp, read_pcap, record_offsets,  # noqa: E402
                     with_data, write_pcap)

PACS_PORT = 4242
BIG_SOP = "1.2.826.0.1.3680043.10.1234.1.3.1.1"


# ---------------------------------------------------------------- stream tools

def client_segments(p, server_port=PACS_PORT, server_ip=None):
    """Client->server data segments of each connection to server_port.
    Returns {conn: [(rec_index, rel_start, rel_end)]} with conn=(cip, cport, sip)."""
    isn, out = {}, {}
    for i, r in enumerate(p.records):
        t = parse_tcp(r.data, p.linktype)
        if t is None or t.dport != server_port or (server_ip and t.dst != server_ip):
            continue
        conn = (t.src, t.sport, t.dst)
        if t.syn:
            isn[conn] = t.seq + 1
            continue
        if t.payload_len and conn in isn:
            rel = (t.seq - isn[conn]) & 0xFFFFFFFF
            out.setdefault(conn, []).append((i, rel, rel + t.payload_len))
    return out


def flow_segments(p):
    """Data segments per direction: {(src, sport, dst, dport): [(rec_index, rel_start, rel_end)]}.
    rel 0 = first payload byte after the SYN (or the lowest seq seen if the SYN is missing)."""
    isn, segs = {}, {}
    for i, r in enumerate(p.records):
        t = parse_tcp(r.data, p.linktype)
        if t is None:
            continue
        key = (t.src, t.sport, t.dst, t.dport)
        if t.syn:
            isn[key] = t.seq + 1
        elif t.payload_len:
            segs.setdefault(key, []).append((i, t.seq, t.seq + t.payload_len))
    out = {}
    for key, ss in segs.items():
        base = isn.get(key, min(a for _, a, _ in ss))
        out[key] = [(i, (a - base) & 0xFFFFFFFF, ((a - base) & 0xFFFFFFFF) + (b - a)) for i, a, b in ss]
    return out


DIMSE_CMD = {0x0001: "C-STORE-RQ", 0x8001: "C-STORE-RSP", 0x0010: "C-GET-RQ", 0x8010: "C-GET-RSP",
             0x0020: "C-FIND-RQ", 0x8020: "C-FIND-RSP", 0x0021: "C-MOVE-RQ", 0x8021: "C-MOVE-RSP",
             0x0030: "C-ECHO-RQ", 0x8030: "C-ECHO-RSP", 0x0FFF: "C-CANCEL-RQ"}


def datasets(path):
    """Rows (flow, n, command, sop_instance, dataset_len, dataset_sha256) for every DIMSE
    message that carries a data set, reassembled from the TCP payload by this script."""
    import hashlib
    p = read_pcap(path)
    rows = []
    for key, segs in flow_segments(p).items():
        if 4242 not in (key[1], key[3]) and 11112 not in (key[1], key[3]):
            continue
        stream = stream_bytes(p, segs)
        n, cmd, data, cmd_buf = 0, None, bytearray(), b""
        for pstart, ptype, pend, pdvs in pdus(stream):
            for vstart, vend, ctx, flags in pdvs:
                val = stream[vstart + 6:vend]
                if flags & 1:
                    cmd_buf += val
                    if flags & 2:
                        cmd = parse_command(cmd_buf)
                        cmd_buf = b""
                        n += 1
                else:
                    data += val
                    if flags & 2:
                        code = struct.unpack("<H", cmd[(0, 0x100)])[0]
                        sop = cmd.get((0, 0x1000), b"").rstrip(b"\0 ").decode()
                        rows.append((f"{key[0]}:{key[1]}->{key[2]}:{key[3]}", n, DIMSE_CMD.get(code, hex(code)),
                                     sop or "-", len(data), hashlib.sha256(data).hexdigest()))
                        data = bytearray()
    return rows


def stream_bytes(p, segs):
    buf = bytearray()
    for i, a, b in sorted(segs, key=lambda s: s[1]):
        t = parse_tcp(p.records[i].data, p.linktype)
        data = p.records[i].data[t.payload_off:t.payload_off + t.payload_len]
        if a == len(buf):
            buf += data
        elif a < len(buf):
            buf += data[len(buf) - a:]
        else:
            raise ValueError("gap in stream")
    return bytes(buf)


def parse_command(cmd):
    """Implicit VR LE command set -> {(group, elem): bytes}."""
    out, off = {}, 0
    while off + 8 <= len(cmd):
        g, e, ln = struct.unpack("<HHI", cmd[off:off + 8])
        out[(g, e)] = cmd[off + 8:off + 8 + ln]
        off += 8 + ln
    return out


def pdus(stream):
    """Yield (pdu_start, pdu_type, pdu_end, pdvs) with pdvs=[(start, end, ctx, flags)]."""
    off = 0
    while off + 6 <= len(stream):
        ptype = stream[off]
        plen = struct.unpack("!I", stream[off + 2:off + 6])[0]
        end = off + 6 + plen
        pdvs = []
        if ptype == 4:
            q = off + 6
            while q + 6 <= end:
                vlen = struct.unpack("!I", stream[q:q + 4])[0]
                pdvs.append((q, q + 4 + vlen, stream[q + 4], stream[q + 5]))
                q += 4 + vlen
        yield off, ptype, end, pdvs
        off = end


def dimse_layout(stream):
    """List of messages: dict(command, sop_instance, cmd_range, data_range, pdu_starts)."""
    msgs, cur, cmd_buf = [], None, b""
    for pstart, ptype, pend, pdvs in pdus(stream):
        for vstart, vend, ctx, flags in pdvs:
            val = stream[vstart + 6:vend]
            if flags & 1:
                cmd_buf += val
                if flags & 2:
                    c = parse_command(cmd_buf)
                    cmd_buf = b""
                    cur = dict(command=struct.unpack("<H", c[(0, 0x100)])[0],
                               sop_instance=c.get((0, 0x1000), b"").rstrip(b"\0 ").decode(),
                               ctx=ctx, cmd_start=vstart, data_start=None, data_end=None,
                               pdu_starts=[])
                    msgs.append(cur)
            else:
                if cur["data_start"] is None:
                    cur["data_start"] = vstart
                cur["data_end"] = vend
                cur["pdu_starts"].append(pstart)
    return msgs


# ------------------------------------------------------------------ variants

def reorder(p):
    segs = [s for ss in client_segments(p).values() for s in ss]
    idx = [s[0] for s in segs]
    # candidate pairs: consecutive records that are both client data segments of the same conn
    cands = [k for k in range(len(idx) - 1) if idx[k + 1] == idx[k] + 1]
    picks, used = [], set()
    for frac in (0.2, 0.4, 0.6, 0.8):
        target = int(len(cands) * frac)
        for k in cands[target:] + cands[:target]:
            if k not in used and k + 1 not in used and k - 1 not in used:
                picks.append(k)
                used.update({k, k + 1})
                break
    recs = list(p.records)
    swapped = []
    for k in picks:
        a, b = idx[k], idx[k + 1]
        recs[a], recs[b] = (with_data(p.records[b], p.records[b].data, (p.records[a].ts_sec, p.records[a].ts_frac)),
                            with_data(p.records[a], p.records[a].data, (p.records[b].ts_sec, p.records[b].ts_frac)))
        swapped.append([a + 1, b + 1])
    return recs, dict(swapped_frame_pairs=swapped,
                      note="frames N and N+1 (both client->PACS data segments of the same connection) "
                           "exchange places; timestamps stay in their slots. Packet count unchanged.")


def duplicate(p):
    segs = [s for ss in client_segments(p).values() for s in ss]
    n = len(segs)
    immediate = [segs[int(n * f)][0] for f in (0.15, 0.35, 0.55, 0.75)]
    late_src = segs[int(n * 0.9)][0]
    out, dup_frames = [], []
    for i, r in enumerate(p.records):
        out.append(r)
        if i in immediate:
            out.append(with_data(r, r.data))
            dup_frames.append(dict(source_frame=i + 1, kind="immediate", output_frame=len(out)))
        if i == late_src + 5:
            src = p.records[late_src]
            out.append(with_data(src, src.data, (r.ts_sec, r.ts_frac)))
            dup_frames.append(dict(source_frame=late_src + 1, kind="late (after 5 more frames)",
                                   output_frame=len(out)))
    return out, dict(duplicates=dup_frames, packets_added=len(dup_frames),
                     note="exact byte copies of client->PACS data segments; output_frame is the frame "
                          "number of the copy in store-duplicated.pcap")


def drop(p):
    conns = client_segments(p)
    for conn, segs in conns.items():
        stream = stream_bytes(p, segs)
        msgs = dimse_layout(stream)
        big = [m for m in msgs if m["command"] == 0x0001 and m["sop_instance"] == BIG_SOP]
        if not big:
            continue
        m = big[0]
        headers = []
        for pstart, ptype, pend, pdvs in pdus(stream):
            headers.append((pstart, pstart + 6))
            headers += [(vs, vs + 6) for vs, _, _, _ in pdvs]
        mid = (m["data_start"] + m["data_end"]) // 2
        best = None
        for i, a, b in segs:
            if a < m["data_start"] or b > m["data_end"]:
                continue
            if any(hs < b and he > a for hs, he in headers):
                continue
            if best is None or abs((a + b) // 2 - mid) < abs((best[1] + best[2]) // 2 - mid):
                best = (i, a, b)
        i, a, b = best
        # which PDU holds the hole
        pdu_no, pdu_rng = None, None
        for n, (pstart, ptype, pend, pdvs) in enumerate(pdus(stream), start=1):
            if pstart <= a < pend:
                pdu_no, pdu_rng = n, (pstart, pend)
        recs = [r for k, r in enumerate(p.records) if k != i]
        return recs, dict(
            removed_frame=i + 1, connection=f"{conn[0]}:{conn[1]} -> {conn[2]}:{PACS_PORT}",
            removed_stream_bytes=[a, b], removed_len=b - a,
            note="stream offsets are bytes of the client->PACS TCP payload (relative seq - 1, "
                 "i.e. 0 = first payload byte after the handshake), end exclusive",
            big_instance=BIG_SOP, big_instance_data_pdvs_stream_range=[m["data_start"], m["data_end"]],
            big_instance_data_pdus=len(m["pdu_starts"]),
            big_instance_client_segments=sum(1 for _, sa, sb in segs
                                             if sb > m["data_start"] and sa < m["data_end"]),
            hole_in_pdu_number=pdu_no, hole_pdu_stream_range=list(pdu_rng),
            pdus_in_client_stream=sum(1 for _ in pdus(stream)))
    raise SystemExit("big instance not found in store.pcap")


def midstream(p):
    # the client association to the PACS (C-MOVE); find its A-ASSOCIATE-AC then next client data
    isn = {}
    ac_seen, ac_frame = set(), None
    for i, r in enumerate(p.records):
        t = parse_tcp(r.data, p.linktype)
        if t is None or not t.payload_len:
            continue
        pay = r.data[t.payload_off:t.payload_off + t.payload_len]
        if t.sport == PACS_PORT and pay[0] == 0x02:
            ac_seen.add((t.dst, t.dport))
            ac_frame = ac_frame or i + 1
        elif t.dport == PACS_PORT and (t.src, t.sport) in ac_seen:
            first = i
            return p.records[first:], dict(
                removed_first_n=first, first_frame_kept_source_number=first + 1,
                a_associate_ac_source_frame=ac_frame,
                note="frames 1..N of move.pcap removed (TCP handshake, A-ASSOCIATE-RQ and -AC of the "
                     "WORKSTATION1->ORTHANC association, and the ACKs between); frame 1 of the "
                     "output is the P-DATA carrying the C-MOVE-RQ. The ORTHANC->STORESCP "
                     "sub-association starts later and is complete.")
    raise SystemExit("no C-MOVE data after A-ASSOCIATE-AC")


def vlan(p, tags):
    """tags: list of (tpid, vid) outermost first."""
    ins = b"".join(struct.pack("!HH", tpid, vid & 0x0FFF) for tpid, vid in tags)
    return [with_data(r, r.data[:12] + ins + r.data[12:]) for r in p.records]


def v6addr(v4):
    last = v4.split(".")[-1]
    return ipaddress.IPv6Address(f"fd00::{last}").packed


def to_ipv6(p):
    out, skipped = [], 0
    for r in p.records:
        d = r.data
        if struct.unpack("!H", d[12:14])[0] != 0x0800:
            skipped += 1
            continue
        ihl = (d[14] & 0x0F) * 4
        tos, total = d[15], struct.unpack("!H", d[16:18])[0]
        ttl, proto = d[22], d[23]
        src, dst = ".".join(map(str, d[26:30])), ".".join(map(str, d[30:34]))
        l4 = bytearray(d[14 + ihl:14 + total])
        trailer = d[14 + total:]
        s6, d6 = v6addr(src), v6addr(dst)
        if proto == 6:
            l4[16:18] = b"\0\0"
            pseudo = s6 + d6 + struct.pack("!IxxxB", len(l4), 6)
            l4[16:18] = struct.pack("!H", csum16(pseudo + bytes(l4)))
        hdr = struct.pack("!IHBB", (6 << 28) | (tos << 20), len(l4), proto, ttl) + s6 + d6
        out.append(with_data(r, d[:12] + b"\x86\xdd" + hdr + bytes(l4) + trailer))
    return out, dict(address_map={ip: f"fd00::{ip.split('.')[-1]}" for ip in
                                  ("10.20.0.10", "10.20.0.20", "10.20.0.30")},
                     non_ipv4_frames_dropped=skipped)


def truncate(src_path, p, out_path):
    conns = client_segments(p)
    segs = [s for ss in conns.values() for s in ss]
    stream = stream_bytes(p, segs)
    m = [m for m in dimse_layout(stream) if m["sop_instance"] == BIG_SOP and m["command"] == 1][0]
    target = m["data_start"] + (m["data_end"] - m["data_start"]) * 2 // 5
    rec = next(i for i, a, b in segs if a <= target < b)
    offs = record_offsets(p)
    caplen = len(p.records[rec].data)
    cut = offs[rec] + 16 + caplen // 2
    raw = Path(src_path).read_bytes()
    Path(out_path).write_bytes(raw[:cut])
    return dict(file_size=cut, complete_records=rec, cut_record_number=rec + 1,
                cut_record_header_offset=offs[rec], cut_record_caplen=caplen,
                cut_record_bytes_present=caplen // 2,
                note="the first complete_records records are intact; record number "
                     "cut_record_number has its 16-byte header but only half its data")


def main():
    if sys.argv[1] == "--datasets":
        print("file\tflow\tmessage_no\tcommand\taffected_sop_instance\tdataset_len\tdataset_sha256")
        for f in sys.argv[2:]:
            for row in datasets(f):
                print("\t".join([Path(f).name] + [str(x) for x in row]))
        return
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    facts = {}
    store = read_pcap(src / "store.pcap")
    move = read_pcap(src / "move.pcap")
    echo = read_pcap(src / "echo.pcap")

    recs, facts["store-reordered.pcap"] = reorder(store)
    write_pcap(out / "store-reordered.pcap", store, recs)
    recs, facts["store-duplicated.pcap"] = duplicate(store)
    write_pcap(out / "store-duplicated.pcap", store, recs)
    recs, facts["store-dropped.pcap"] = drop(store)
    write_pcap(out / "store-dropped.pcap", store, recs)
    recs, facts["move-midstream.pcap"] = midstream(move)
    write_pcap(out / "move-midstream.pcap", move, recs)
    write_pcap(out / "store-vlan.pcap", store, vlan(store, [(0x8100, 100)]))
    facts["store-vlan.pcap"] = dict(tags=[{"tpid": "0x8100", "vid": 100, "pcp": 0}])
    write_pcap(out / "echo-qinq.pcap", echo, vlan(echo, [(0x88A8, 200), (0x8100, 100)]))
    facts["echo-qinq.pcap"] = dict(tags=[{"tpid": "0x88a8", "vid": 200, "pcp": 0},
                                         {"tpid": "0x8100", "vid": 100, "pcp": 0}])
    recs, facts["store-ipv6.pcap"] = to_ipv6(store)
    write_pcap(out / "store-ipv6.pcap", store, recs)
    facts["store-truncated.pcap"] = truncate(src / "store.pcap", store, out / "store-truncated.pcap")
    json.dump(facts, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
