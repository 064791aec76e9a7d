#!/usr/bin/env python3
"""Regenerate mllp-loopback.pcap and mllp-loopback.tshark.tsv: a real HL7 v2.5 MLLP conversation on
127.0.0.1:2575 (synthetic patients only), captured with tcpdump -i lo.

    sudo python3 make_mllp.py        # needs tcpdump and tshark

The listener answers each message with an ACK whose MSA-2 is the message's MSH-10 (AA, except
AE for the ORM and AR for the second ADT), after 20 ms. The sender sends one message per
send(), except the last two ADT^A08, which share one send() (two frames in one segment).
The tests replay the pcap itself (crates/proto/src/testutil.rs `pcap_connections`), segment by
segment at its packet times; mllp-loopback.tshark.tsv is tshark's reading, their oracle.
"""
import base64, os, random, socket, subprocess, threading, time

PORT = 2575
HERE = os.path.dirname(os.path.abspath(__file__))
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def frame(segments):
    return VT + CR.join(s.encode() for s in segments) + CR + FS + CR


def msh(mtype, cid, ts="20260101120000", apps="RIS|RADIOLOGY|HIS|HOSP"):
    return f"MSH|^~\\&|{apps}|{ts}||{mtype}|{cid}|P|2.5.1"


def pid():
    return "PID|1||SYN0001^^^HOSP^MR||SYNTH^ALPHA||19700101|F|||1 TEST ST^^TESTTOWN"


random.seed(7)
pdf = base64.b64encode(random.randbytes(30000)).decode()
MESSAGES = [
    [msh("ADT^A01^ADT_A01", "MSG0001"), "EVN|A01|20260101120000", pid(), "PV1|1|I|WARD1^101^1"],
    [msh("ORM^O01^ORM_O01", "MSG0002"), pid(), "ORC|NW|ORD1", "OBR|1|ORD1||CT HEAD"],
    [msh("ORU^R01^ORU_R01", "MSG0003"), pid(), "OBR|1|ORD1||CT HEAD",
     "OBX|1|TX|REPORT||Normal study for SYNTH^ALPHA",
     f"OBX|2|ED|PDF||^application^pdf^Base64^{pdf}", "NTE|1||Signed"],
    [msh("MFN^M02^MFN_M02", "MSG0004"), "MFI|STF^Staff master file^HL70175||UPD|||AL",
     "MFE|MAD|MF0004-1|20260101120000|rad9^^^HOSP|CWE", "STF|rad9|U9^^^HOSP|NEWUSER^RADIOLOGIST",
     "PRA|rad9|RAD"],
    [msh("ADT^A08^ADT_A01", "MSG0005"), "EVN|A08|20260101120000", pid()],
    [msh("ADT^A08^ADT_A01", "MSG0006"), "EVN|A08|20260101120000", pid()],
]
ACK_CODE = {"MSG0002": "AE", "MSG0005": "AR"}


def listener(srv):
    conn, _ = srv.accept()
    buf = b""
    n = 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while FS + CR in buf:
            msg, buf = buf.split(FS + CR, 1)
            cid = msg.split(b"\r")[0].split(b"|")[9].decode()
            n += 1
            time.sleep(0.02)
            code = ACK_CODE.get(cid, "AA")
            conn.sendall(frame([msh("ACK^A01^ACK", f"ACK{n:04d}", "20260101120001", "HIS|HOSP|RIS|RADIOLOGY"), f"MSA|{code}|{cid}"]))
    conn.close()


def main():
    pcap = os.path.join(HERE, "mllp-loopback.pcap")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-w", pcap, "-U", f"tcp port {PORT}"],
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(1)
    t = threading.Thread(target=listener, args=(srv,))
    t.start()
    c = socket.create_connection(("127.0.0.1", PORT))
    frames = [frame(m) for m in MESSAGES]

    def read_acks(n):
        got = b""
        while got.count(FS + CR) < n:
            got += c.recv(65536)

    for f in frames[:-2]:
        c.sendall(f)
        read_acks(1)
        time.sleep(0.1)
    c.sendall(frames[-2] + frames[-1])
    read_acks(2)
    time.sleep(0.1)
    c.close()
    t.join()
    srv.close()
    time.sleep(1)
    dump.terminate()
    dump.wait()
    # The oracle: what tshark's HL7 dissector reads (message type, trigger event, MSH).
    out = subprocess.run(["tshark", "-r", pcap, "-d", f"tcp.port=={PORT},hl7", "-Y", "hl7", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.srcport", "-e", "hl7.message.type",
                          "-e", "hl7.event.type"], capture_output=True, text=True, check=True).stdout
    with open(os.path.join(HERE, "mllp-loopback.tshark.tsv"), "w") as f:
        f.write(out)


main()
