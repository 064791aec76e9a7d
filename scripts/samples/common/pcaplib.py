"""Minimal classic-pcap reader/writer and Ethernet/IPv4/IPv6/TCP helpers (stdlib only).

Used by pcap_variants.py (derived samples) and make-bench-pcap sanity checks.
"""
import struct
from dataclasses import dataclass

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276


@dataclass
class Record:
    ts_sec: int
    ts_frac: int
    data: bytes
    orig_len: int


@dataclass
class Pcap:
    endian: str          # '<' or '>'
    magic: int
    version: tuple
    snaplen: int
    linktype: int
    records: list

    def header_bytes(self, snaplen=None):
        return struct.pack(self.endian + "IHHiIII", self.magic, self.version[0], self.version[1],
                           0, 0, snaplen if snaplen is not None else self.snaplen, self.linktype)


def read_pcap(path):
    with open(path, "rb") as f:
        buf = f.read()
    magic_le = struct.unpack("<I", buf[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    elif struct.unpack(">I", buf[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D):
        e = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    magic, vmaj, vmin, _tz, _sig, snaplen, linktype = struct.unpack(e + "IHHiIII", buf[:24])
    recs = []
    off = 24
    while off + 16 <= len(buf):
        ts_sec, ts_frac, incl, orig = struct.unpack(e + "IIII", buf[off:off + 16])
        if off + 16 + incl > len(buf):
            break  # truncated record
        recs.append(Record(ts_sec, ts_frac, buf[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    return Pcap(e, magic, (vmaj, vmin), snaplen, linktype, recs)


def record_offsets(p):
    """Byte offset of each record header in the file written by write_pcap."""
    offs, off = [], 24
    for r in p.records:
        offs.append(off)
        off += 16 + len(r.data)
    return offs


def write_pcap(path, p, records=None, snaplen=None):
    records = p.records if records is None else records
    with open(path, "wb") as f:
        f.write(p.header_bytes(snaplen))
        for r in records:
            f.write(struct.pack(p.endian + "IIII", r.ts_sec, r.ts_frac, len(r.data), r.orig_len))
            f.write(r.data)


def with_data(r, data, ts=None):
    """Copy of record r carrying new frame bytes (orig_len adjusted by the same delta)."""
    ts_sec, ts_frac = ts if ts else (r.ts_sec, r.ts_frac)
    return Record(ts_sec, ts_frac, bytes(data), r.orig_len - len(r.data) + len(data))


@dataclass
class Tcp:
    l3_off: int          # offset of the IP header in the frame
    l4_off: int          # offset of the TCP header
    payload_off: int
    payload_len: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int

    @property
    def syn(self): return bool(self.flags & 0x02)

    @property
    def fin(self): return bool(self.flags & 0x01)

    @property
    def rst(self): return bool(self.flags & 0x04)


def ip4_str(b):
    return ".".join(str(x) for x in b)


def parse_tcp(frame, linktype=LINKTYPE_ETHERNET):
    """Return Tcp for an Ethernet(+VLAN)/IPv4 or IPv6/TCP frame, else None."""
    if linktype == LINKTYPE_ETHERNET:
        off = 12
        etype = struct.unpack("!H", frame[off:off + 2])[0]
        off += 2
        while etype in (0x8100, 0x88A8):
            etype = struct.unpack("!H", frame[off + 2:off + 4])[0]
            off += 4
    elif linktype == LINKTYPE_LINUX_SLL2:
        etype = struct.unpack("!H", frame[0:2])[0]
        off = 20
    else:
        return None
    if etype == 0x0800:
        ihl = (frame[off] & 0x0F) * 4
        if frame[off + 9] != 6:
            return None
        total = struct.unpack("!H", frame[off + 2:off + 4])[0]
        src, dst = ip4_str(frame[off + 12:off + 16]), ip4_str(frame[off + 16:off + 20])
        l4 = off + ihl
        end = off + total
    elif etype == 0x86DD:
        if frame[off + 6] != 6:
            return None
        plen = struct.unpack("!H", frame[off + 4:off + 6])[0]
        import ipaddress
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        dst = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
        l4 = off + 40
        end = l4 + plen
    else:
        return None
    sport, dport, seq, ack, doff_flags = struct.unpack("!HHIIH", frame[l4:l4 + 14])
    thl = (doff_flags >> 12) * 4
    flags = doff_flags & 0x01FF
    return Tcp(off, l4, l4 + thl, end - (l4 + thl), src, dst, sport, dport, seq, ack, flags)


def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
