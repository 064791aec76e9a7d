#!/usr/bin/env python3
"""A TCP relay that slips one out-of-band byte into what it forwards: the attacker's host of
scripts/samples/hostile-tcp/make-urgent.

Usage: urgent_relay.py LISTEN_PORT SERVER_HOST SERVER_PORT MODE
  MODE plain:  forward both directions unchanged.
  MODE urgent: in the first P-DATA-TF PDU (type 0x04, PS3.8 §9.3.5) the client sends, forward
               its first 12 bytes, then send one byte "Z" with MSG_OOB (the kernel sets URG and
               the urgent pointer just past it), then the rest. A receiver that does not ask for
               SO_OOBINLINE never reads that byte (Linux tcp_recvmsg skips urg_seq), so the
               server sees the client's PDU unchanged.

One connection, then exit. TCP_NODELAY on the server side, so each send is its own segment.
"""
import socket
import sys
import threading


def main():
    port, host, sport, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)
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
    injected = mode != "urgent"
    while data := cli.recv(65536):
        if injected:
            srv.sendall(data)
            continue
        buf += data
        # Walk whole PDUs (6-byte header: type, reserved, 4-byte big-endian length).
        while len(buf) >= 6:
            n = 6 + int.from_bytes(buf[2:6], "big")
            if len(buf) < n:
                break
            pdu, buf = buf[:n], buf[n:]
            if not injected and pdu[0] == 0x04:
                srv.sendall(pdu[:12])
                srv.send(b"Z", socket.MSG_OOB)
                srv.sendall(pdu[12:])
                injected = True
            else:
                srv.sendall(pdu)
        if injected and buf:
            srv.sendall(buf)
            buf = b""
    srv.shutdown(socket.SHUT_WR)
    t.join()
    print("injected" if injected and mode == "urgent" else "plain", flush=True)


if __name__ == "__main__":
    main()
