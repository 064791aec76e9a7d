#!/usr/bin/env python3
"""Synthetic HL7 v2.5 over MLLP for scripts/make-samples-web (uses the `hl7` package, 0.4.5,
for parsing, ACK building and its asyncio MLLP streams on both ends).

  hl7_mllp.py serve --ready FILE HOST PORT [PORT ...]
        MLLP listener (the "PACS/RIS interface engine" in pt-pacs): for every message
        received it answers an original-mode ACK built by hl7.Message.create_ack(); the
        acknowledgment code comes from ACK_POLICY (AA unless listed). Runs until killed.
  hl7_mllp.py send HOST PORT SET      send the messages of SET (main | alt) over ONE
        connection, one at a time, waiting for each ACK; exit 1 unless every ACK has the
        expected code and MSA-2 = the message's MSH-10. Prints one TSV line per message.
  hl7_mllp.py manifest                TSV of every message of every set (what tests expect)

Everything is synthetic: patient SYNTH^ALPHA / SYN0001 (the CT patient of
scripts/samples/dicom/synth_dicom.py), staff SYNTH^STAFF, accession SYNACC0001, fixed timestamps.
"""
import argparse
import asyncio
import base64
import hashlib
import sys

import hl7
from hl7.mllp import open_hl7_connection, start_hl7_server

LIMIT = 4 << 20  # asyncio stream limit (default 64 KiB is below the ORU^R01 size)

HDR = "MSH|^~\\&|PTRIS|PTHOSP|PTPACS|PTHOSP|{ts}||{type}|{ctrl}|P|2.5"
PID = ("PID|1||SYN0001^^^PTHOSP^MR||SYNTH^ALPHA||19700101|F|||"
       "1 SYNTHETIC STREET^^TESTVILLE^^00000^XX||^PRN^PH^^^^^^^^^555 0100")
PV1 = "PV1|1|O|RAD^CT1^1^PTHOSP||||SYNDR1^SYNTH^DOCTOR^^^^^^PTHOSP|||RAD||||||||SYNVISIT0001"

# (message type for MSH-9 comparison) -> (ack code, MSA-3 text, ERR segment)
ACK_POLICY = {
    "ORM^O01": ("AE", "Unknown ordering provider",
                "ERR||ORC^1^12|103^Table value not found^HL70357|E"),
    "MFN^M02": ("AR", "Unsupported message type",
                "ERR||MSH^1^9|200^Unsupported message type^HL70357|E"),
}


def synthetic_pdf(n=75_000):
    """n deterministic bytes that start like a PDF (not a real document)."""
    head = b"%PDF-1.4\n% SYNTHETIC pacstap sample report, not a real document\n"
    out = bytearray(head)
    block = hashlib.sha256(b"pacstap-hl7-oru").digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def seg(*segments):
    """HL7 segments, each terminated by CR (also the last one, as str(hl7.Message) does)."""
    return "".join(s + "\r" for s in segments)


def messages():
    """set -> list of (message type, control id, text)."""
    b64 = base64.b64encode(synthetic_pdf()).decode("ascii")  # 100,000 characters
    m = {"main": [], "alt": []}

    def add(s, mtype, struct, ctrl, ts, *body):
        m[s].append((mtype, ctrl, seg(HDR.format(ts=ts, type=f"{mtype}^{struct}", ctrl=ctrl), *body)))

    add("main", "ADT^A01", "ADT_A01", "PTADT0001", "20240102080000",
        "EVN|A01|20240102080000", PID, PV1)
    add("main", "ORM^O01", "ORM_O01", "PTORM0002", "20240102081000",
        PID, PV1,
        "ORC|NW|PTORD0001^PTRIS||||SC||^^^20240102081500^^R||20240102081000|||SYNDR9^SYNTH^UNKNOWN",
        "OBR|1|PTORD0001^PTRIS||CTCHEST^CT CHEST^L|||20240102081500|||||||||SYNDR9^SYNTH^UNKNOWN|"
        "|SYNACC0001|||||CT|||^^^20240102081500^^R")
    add("main", "ORU^R01", "ORU_R01", "PTORU0003", "20240102100000",
        PID, PV1,
        "OBR|1|PTORD0001^PTRIS|PTFIL0001^PTPACS|CTCHEST^CT CHEST^L|||20240102081500|||||||||"
        "SYNDR1^SYNTH^DOCTOR||SYNACC0001|||||20240102100000||CT|F",
        "OBX|1|TX|REPORT^Report text^L||SYNTHETIC REPORT. CT CHEST. NO FINDINGS.||||||F",
        f"OBX|2|ED|PDF^Report PDF^L||PTPACS^AP^PDF^Base64^{b64}||||||F")
    add("main", "MFN^M02", "MFN_M02", "PTMFN0004", "20240102090000",
        "MFI|STF^Staff Master File^HL70175||UPD|||AL",
        "MFE|MAD|PTMFN0004-1|20240102090000|SYNST1^^^PTHOSP|CWE",
        "STF|SYNST1^^^PTHOSP|SYNST1|SYNTH^STAFF^ONE||F|19800101|A|RAD||^WPN^PH^^^^^^^^^555 0101")
    add("main", "ADT^A08", "ADT_A01", "PTADT0005", "20240102110000",
        "EVN|A08|20240102110000",
        PID.replace("1 SYNTHETIC STREET", "2 SYNTHETIC STREET"), PV1)
    add("alt", "ADT^A04", "ADT_A01", "PTADT0006", "20240103070000",
        "EVN|A04|20240103070000", PID, PV1.replace("SYNVISIT0001", "SYNVISIT0002"))
    add("alt", "ADT^A03", "ADT_A03", "PTADT0007", "20240103120000",
        "EVN|A03|20240103120000", PID, PV1.replace("SYNVISIT0001", "SYNVISIT0002"))
    return m


def expected_ack(mtype):
    return ACK_POLICY.get(mtype, ("AA", "", ""))


def msg_type(msg):
    msh = msg.segment("MSH")
    return f"{msh(9)(1)(1)}^{msh(9)(1)(2)}"


# ------------------------------------------------------------------ server
async def handle(reader, writer):
    peer = writer.get_extra_info("peername")
    try:
        while not reader.at_eof():
            try:
                msg = await reader.readmessage()
            except asyncio.IncompleteReadError:
                break
            mtype = msg_type(msg)
            ctrl = str(msg.segment("MSH")(10))
            code, text, err = expected_ack(mtype)
            ack = msg.create_ack(ack_code=code, message_id="ACK" + ctrl)
            if text:  # AE/AR: MSA-3 text message and an ERR segment
                lines = str(ack).rstrip("\r").split("\r")
                lines = [ln + "|" + text if ln.startswith("MSA|") else ln for ln in lines]
                ack = hl7.parse(seg(*lines, err))
            writer.writemessage(ack)
            await writer.drain()
            print(f"{peer[0]}:{peer[1]} {mtype} {ctrl} -> {code}", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def serve(host, ports, ready):
    servers = [await start_hl7_server(handle, host, p, limit=LIMIT) for p in ports]
    with open(ready, "w") as f:
        f.write("listening " + " ".join(map(str, ports)) + "\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


# ------------------------------------------------------------------ sender
async def send(host, port, which):
    reader, writer = await open_hl7_connection(host, port, limit=LIMIT)
    bad = 0
    for mtype, ctrl, text in messages()[which]:
        msg = hl7.parse(text)
        assert str(msg) == text, "hl7 round trip changed the message"
        writer.writemessage(msg)
        await writer.drain()
        ack = await reader.readmessage()
        code, ack_ctrl = str(ack.segment("MSA")(1)), str(ack.segment("MSA")(2))
        want = expected_ack(mtype)[0]
        ok = code == want and ack_ctrl == ctrl
        bad += not ok
        print(f"{mtype}\t{ctrl}\t{len(text)}\t{code}\t{ack_ctrl}\t{str(ack.segment('MSH')(10))}"
              f"\t{'ok' if ok else 'UNEXPECTED'}", flush=True)
        await asyncio.sleep(0.2)  # a feed, not a burst: one message per exchange on the wire
    writer.close()
    await writer.wait_closed()
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--ready", required=True)
    s.add_argument("host")
    s.add_argument("ports", nargs="+", type=int)
    c = sub.add_parser("send")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("set", choices=["main", "alt"])
    sub.add_parser("manifest")
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a.host, a.ports, a.ready))
    elif a.cmd == "send":
        return asyncio.run(send(a.host, a.port, a.set))
    else:
        print("set\tmessage_type\tcontrol_id\tmessage_bytes\tack_code\tsegments")
        for which, msgs in messages().items():
            for mtype, ctrl, text in msgs:
                segs = "+".join(s.split("|", 1)[0] for s in text.rstrip("\r").split("\r"))
                print(f"{which}\t{mtype}\t{ctrl}\t{len(text)}\t{expected_ack(mtype)[0]}\t{segs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
