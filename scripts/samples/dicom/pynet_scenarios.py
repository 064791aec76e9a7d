#!/usr/bin/env python3
"""pynetdicom clients for scripts/make-samples (run inside the client netns).

  pynet_scenarios.py abort  HOST PORT   associate (calling PYABORT), C-ECHO, A-ABORT
  pynet_scenarios.py reset  HOST PORT   associate (calling PYRESET), C-ECHO, then TCP RST
                                        (SO_LINGER 0 + close, no A-ABORT / A-RELEASE)
  pynet_scenarios.py userid HOST PORT   two associations with User Identity negotiation:
                                        type 2 (rad1 / secret-passcode, calling PYUSERID2),
                                        type 1 (rad1 only, positive response requested,
                                        calling PYUSERID1); each does one C-ECHO and releases
"""
import os
import socket
import struct
import sys
import time

from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import Verification

CALLED = "ORTHANC"


def ae(calling):
    a = AE(ae_title=calling)
    a.add_requested_context(Verification)
    a.acse_timeout = 10
    a.dimse_timeout = 10
    a.network_timeout = 10
    return a


def echo(assoc):
    status = assoc.send_c_echo()
    code = status.Status if status else None
    print(f"C-ECHO status: {code!r}")
    if code != 0:
        raise SystemExit("C-ECHO failed")


def do_abort(host, port):
    assoc = ae("PYABORT").associate(host, port, ae_title=CALLED)
    if not assoc.is_established:
        raise SystemExit("association not established")
    echo(assoc)
    assoc.abort()
    print("sent A-ABORT")


def do_reset(host, port):
    assoc = ae("PYRESET").associate(host, port, ae_title=CALLED)
    if not assoc.is_established:
        raise SystemExit("association not established")
    echo(assoc)
    sock = assoc.dul.socket.socket
    # linger on, timeout 0: close() sends RST instead of FIN
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    print("closing socket with RST", flush=True)
    sys.stdout.flush()
    os._exit(0)  # the fd is closed by the kernel at exit -> RST; no A-ABORT


def do_userid(host, port):
    for calling, utype, primary, secondary, rsp in [
        ("PYUSERID2", 2, b"rad1", b"secret-passcode", False),
        ("PYUSERID1", 1, b"rad1", b"", True),
    ]:
        ui = UserIdentityNegotiation()
        ui.user_identity_type = utype
        ui.positive_response_requested = rsp
        ui.primary_field = primary
        if utype == 2:
            ui.secondary_field = secondary
        assoc = ae(calling).associate(host, port, ae_title=CALLED, ext_neg=[ui])
        if not assoc.is_established:
            raise SystemExit(f"{calling}: association not established")
        echo(assoc)
        assoc.release()
        print(f"{calling}: user identity type {utype} ok")
        time.sleep(0.5)


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"abort": do_abort, "reset": do_reset, "userid": do_userid}[cmd](host, port)


if __name__ == "__main__":
    main()
