#!/usr/bin/env python3
"""Tiny synthetic studies for scripts/make-scenarios (pydicom, via synth_dicom.make_instance).

  scen_data.py studies OUTDIR   write OUTDIR/pool/P01.dcm .. P50.dcm (the PACS's archive, loaded
                                into Orthanc before any capture) and OUTDIR/modality/M001.dcm ..
                                M100.dcm (stored by MODALITY1 during benign-modality-store);
                                prints the manifest (TSV) on stdout
  scen_data.py manifest         print the manifest without writing

One study = one series = one 32x32 16-bit MONOCHROME2 instance (~2.6 KB file), Explicit VR LE.
Synthetic patients only (SYNTH^POOLnn / SYNTH^MODnnn), UIDs under the made-up root of
synth_dicom.py: pool study n = ROOT.20.n, modality study n = ROOT.21.n; series = study + ".1",
SOP instance = series + ".1". Byte-identical on every run (fixed values, pinned pydicom).
"""
import hashlib
import sys
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from synth_dicom import CR_IMAGE, CT_IMAGE, MR_IMAGE, ROOT, encode, make_instance

POOL_N = 50
MODALITY_N = 100
KINDS = [("CT", CT_IMAGE, "SYNTH CT HEAD"), ("MR", MR_IMAGE, "SYNTH MR KNEE"), ("CR", CR_IMAGE, "SYNTH CR CHEST")]


def study_uid(kind, n):
    return f"{ROOT}.{20 if kind == 'pool' else 21}.{n}"


def studies():
    """(set, key, n, study dict, study uid)"""
    for n in range(1, POOL_N + 1):
        mod, sop, desc = KINDS[(n - 1) % 3]
        st = dict(name=f"SYNTH^POOL{n:02d}", pid=f"SYNP{n:04d}", sex="O", birth="19750101",
                  modality=mod, sop_class=sop, date=f"2024{1 + (n - 1) // 28:02d}{1 + (n - 1) % 28:02d}",
                  time="100000", accession=f"SYNPA{n:04d}", study_id=str(n), desc=desc)
        yield "pool", f"P{n:02d}", n, st, study_uid("pool", n)
    for n in range(1, MODALITY_N + 1):
        st = dict(name=f"SYNTH^MOD{n:03d}", pid=f"SYNM{n:04d}", sex="O", birth="19800101",
                  modality="CT", sop_class=CT_IMAGE, date="20240301", time=f"{8 + n // 20:02d}{(n * 7) % 60:02d}00",
                  accession=f"SYNMA{n:04d}", study_id=str(n), desc="SYNTH CT MODALITY DAY")
        yield "modality", f"M{n:03d}", n, st, study_uid("modality", n)


def main(argv):
    if argv[:1] == ["studies"] and len(argv) == 2:
        out = Path(argv[1])
    elif argv == ["manifest"]:
        out = None
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("set\tkey\tfile\tstudy_instance_uid\tpatient_name\tpatient_id\tmodality\tsop_instance_uid"
          "\tfile_bytes\tfile_sha256")
    for sset, key, n, st, suid in studies():
        ds = make_instance(st, n, 1, 32, 32, ExplicitVRLittleEndian, study_uid=suid,
                           series_uid=suid + ".1", sop_uid=suid + ".1.1", seed=n + (0 if sset == "pool" else 500))
        raw = encode(ds)
        rel = f"{sset}/{key}.dcm"
        if out is not None:
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(raw)
        print("\t".join([sset, key, rel, suid, st["name"], st["pid"], st["modality"], suid + ".1.1",
                         str(len(raw)), hashlib.sha256(raw).hexdigest()]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
