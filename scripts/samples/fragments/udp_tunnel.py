#!/usr/bin/env python3
"""A userspace VXLAN tunnel endpoint over IPv6 UDP (RFC 7348 framing), for the IPv6 fragment
sample: Ethernet frames read from a TAP device are sent to the peer as VXLAN over an ordinary
IPv6 UDP socket, and the peer's datagrams are written back to the TAP.

Why userspace: the kernel's own vxlan device never fragments its IPv6 underlay (it answers the
inner sender with "packet too big" instead), and a TCP sender never fragments either. An
ordinary UDP socket does: a datagram larger than the path MTU is fragmented by the kernel at
the source (RFC 8200 section 4.5), which is how real IPv6 fragment trains arise (tunnels,
DNS, media). So the fragments in the capture are the kernel's, not hand-built.

Usage (inside a network namespace): udp_tunnel.py TAPNAME LOCAL6 PEER6 [VNI]
"""
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
VXLAN_PORT = 4789


def main():
    tap_name, local, peer = sys.argv[1], sys.argv[2], sys.argv[3]
    vni = int(sys.argv[4]) if len(sys.argv) > 4 else 6666
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", tap_name.encode(), IFF_TAP | IFF_NO_PI))
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((local, VXLAN_PORT))
    sock.connect((peer, VXLAN_PORT))
    # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DONT: send datagrams larger than the path MTU as
    # fragments instead of failing with EMSGSIZE.
    sock.setsockopt(socket.IPPROTO_IPV6, 23, 0)
    header = struct.pack("!II", 0x08000000, vni << 8)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([tap, sock], [], [])
        if tap in ready:
            frame = os.read(tap, 65535)
            try:
                sock.send(header + frame)
            except OSError:
                pass  # peer not up yet (ICMP unreachable): a real tunnel drops too
        if sock in ready:
            try:
                data = sock.recv(65535)
            except OSError:
                continue
            if len(data) > 8 and data[0] & 0x08:
                try:
                    os.write(tap, data[8:])
                except OSError:
                    pass  # the TAP is not up yet: the frame is dropped, as a down link drops it


if __name__ == "__main__":
    main()
