#!/usr/bin/env python3
"""HL7 v2.5 over MLLP for scripts/make-scenarios (the `hl7` package 0.4.5 on both ends, helpers
from hl7_mllp.py).

  scen_hl7.py serve --ready FILE HOST PORT    MLLP listener: answers every message with an
        original-mode ACK, code AA (built by hl7.Message.create_ack). Runs until killed.
  scen_hl7.py send HOST PORT SET              send the messages of SET over ONE connection,
        waiting for each ACK; exit 1 unless every ACK is AA with MSA-2 = the message's MSH-10.
        Prints one TSV line per message.
  scen_hl7.py manifest                        TSV of every message of every set

Sets:
  mfn  MFN^M02 staff master file: one MFE record, event MAD (add) of staff SYNST2
       (SYNTH^STAFF^TWO), sent by the HR system PTHR to the PACS/RIS listener (admin-change.pcap)
  ext  ORU^R01 (short text report of pool study P29) and ADT^A08, sent by the PACS interface
       PTPACS to EXTREPORTS at an address outside the hospital (unknown-destination.pcap)

Synthetic only: patient SYNTH^POOL29 / SYNP0029, staff SYNTH^STAFF^TWO, fixed timestamps.
"""
import argparse
import asyncio
import sys

import hl7
from hl7.mllp import open_hl7_connection, start_hl7_server

from hl7_mllp import LIMIT, msg_type, seg

ROOT = "1.2.826.0.1.3680043.10.1234"
PID29 = "PID|1||SYNP0029^^^PTHOSP^MR||SYNTH^POOL29||19750101|O|||1 SYNTHETIC STREET^^TESTVILLE^^00000^XX"
PV1 = "PV1|1|O|RAD^CR1^1^PTHOSP||||SYNDR1^SYNTH^DOCTOR^^^^^^PTHOSP|||RAD||||||||SYNVISIT0029"


def msh(sending_app, receiving_app, ts, mtype, ctrl):
    return f"MSH|^~\\&|{sending_app}|PTHOSP|{receiving_app}|{'PTHOSP' if receiving_app == 'PTPACS' else 'EXTORG'}" \
           f"|{ts}||{mtype}|{ctrl}|P|2.5|||AL|NE"


def messages():
    """set -> list of (message type, control id, text)."""
    return {
        "mfn": [("MFN^M02", "PTMFN0101", seg(
            msh("PTHR", "PTPACS", "20240305090000", "MFN^M02^MFN_M02", "PTMFN0101"),
            "MFI|STF^Staff Master File^HL70175||UPD|||AL",
            "MFE|MAD|PTMFN0101-1|20240305090000|SYNST2^^^PTHOSP|CWE",
            "STF|SYNST2^^^PTHOSP|SYNST2|SYNTH^STAFF^TWO||M|19850505|A|RAD||^WPN^PH^^^^^^^^^555 0102",
            "PRA|SYNST2^^^PTHOSP||RAD^Radiology^L|I"))],
        "ext": [
            ("ORU^R01", "PTORU0201", seg(
                msh("PTPACS", "EXTREPORTS", "20240305100000", "ORU^R01^ORU_R01", "PTORU0201"),
                PID29, PV1,
                "OBR|1|PTORD0029^PTRIS|PTFIL0029^PTPACS|CRCHEST^CR CHEST^L|||20240305093000|||||||||"
                "SYNDR1^SYNTH^DOCTOR||SYNPA0029|||||20240305100000||CR|F",
                f"OBX|1|ST|STUDYUID^Study Instance UID^L||{ROOT}.20.29||||||F",
                "OBX|2|TX|REPORT^Report text^L||SYNTHETIC REPORT. CR CHEST. NO FINDINGS.||||||F")),
            ("ADT^A08", "PTADT0202", seg(
                msh("PTPACS", "EXTREPORTS", "20240305100500", "ADT^A08^ADT_A01", "PTADT0202"),
                "EVN|A08|20240305100500", PID29, PV1)),
        ],
    }


async def handle(reader, writer):
    peer = writer.get_extra_info("peername")
    try:
        while not reader.at_eof():
            try:
                msg = await reader.readmessage()
            except asyncio.IncompleteReadError:
                break
            ctrl = str(msg.segment("MSH")(10))
            writer.writemessage(msg.create_ack(ack_code="AA", message_id="ACK" + ctrl))
            await writer.drain()
            print(f"{peer[0]}:{peer[1]} {msg_type(msg)} {ctrl} -> AA", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def serve(host, port, ready):
    server = await start_hl7_server(handle, host, port, limit=LIMIT)
    with open(ready, "w") as f:
        f.write(f"listening {host}:{port}\n")
    await server.serve_forever()


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
        ok = code == "AA" and ack_ctrl == ctrl
        bad += not ok
        print(f"{mtype}\t{ctrl}\t{len(text)}\t{code}\t{ack_ctrl}\t{'ok' if ok else 'UNEXPECTED'}", flush=True)
        await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--ready", required=True)
    s.add_argument("host")
    s.add_argument("port", type=int)
    c = sub.add_parser("send")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("set", choices=sorted(messages()))
    sub.add_parser("manifest")
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a.host, a.port, a.ready))
    elif a.cmd == "send":
        return asyncio.run(send(a.host, a.port, a.set))
    else:
        print("set\tmessage_type\tcontrol_id\tmessage_bytes\tsegments")
        for which, msgs in messages().items():
            for mtype, ctrl, text in msgs:
                segs = "+".join(s.split("|", 1)[0] for s in text.rstrip("\r").split("\r"))
                print(f"{which}\t{mtype}\t{ctrl}\t{len(text)}\t{segs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
