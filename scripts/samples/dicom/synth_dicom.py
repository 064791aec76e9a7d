#!/usr/bin/env python3
"""Write the synthetic DICOM instances used by scripts/make-samples.

Synthetic patients only. Every UID lives under a made-up root and every value
is fixed, so the files are byte-for-byte identical on every run (for a given
pydicom version).

Usage: synth_dicom.py OUTDIR            -> writes OUTDIR/<study>/<n>.dcm, prints a manifest
       synth_dicom.py --manifest        -> prints the manifest (TSV) without writing
       synth_dicom.py --bench OUTDIR N  -> writes N bench instances (0.5-5 MB) for make-bench-pcap
"""
import hashlib
import io
import struct
import sys
from array import array
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.10.1234"
IMPL_CLASS_UID = ROOT + ".0.1"
IMPL_VERSION = "PACSTAP_SYNTH1"

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"

TS_NAME = {ExplicitVRLittleEndian: "ExplicitVRLittleEndian",
           ImplicitVRLittleEndian: "ImplicitVRLittleEndian"}

# study key, patient name, patient id, sex, birth date, modality, SOP class,
# study date, time, accession, study id, description,
# list of instances: (rows, cols, transfer syntax)
STUDIES = [
    dict(key="ct", name="SYNTH^ALPHA", pid="SYN0001", sex="F", birth="19700101",
         modality="CT", sop_class=CT_IMAGE, date="20240102", time="081500",
         accession="SYNACC0001", study_id="1", desc="SYNTH CT CHEST",
         instances=[(64, 64, ExplicitVRLittleEndian)] * 3),
    dict(key="mr", name="SYNTH^BRAVO", pid="SYN0002", sex="M", birth="19800202",
         modality="MR", sop_class=MR_IMAGE, date="20240103", time="091500",
         accession="SYNACC0002", study_id="2", desc="SYNTH MR BRAIN",
         instances=[(64, 64, ImplicitVRLittleEndian)] * 3),
    dict(key="cr", name="SYNTH^CHARLIE", pid="SYN0003", sex="O", birth="19900303",
         modality="CR", sop_class=CR_IMAGE, date="20240104", time="101500",
         accession="SYNACC0003", study_id="3", desc="SYNTH CR THORAX",
         # first one is the > 1 MB instance (1024 x 520 x 16 bit = 1,064,960 bytes of pixels)
         instances=[(520, 1024, ExplicitVRLittleEndian), (64, 64, ImplicitVRLittleEndian)]),
]


def pixels(rows, cols, seed):
    """Deterministic 12-bit pattern: position dependent so a reordered or lost
    segment is visible in a reassembled image."""
    a = array("H", bytes(rows * cols * 2))
    i = 0
    for y in range(rows):
        base = (y * 5 + seed * 97) & 0xFFF
        for x in range(cols):
            a[i] = (base + x * 3 + ((x ^ y) & 0x3F)) & 0xFFF
            i += 1
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def make_instance(study, s_idx, i_idx, rows, cols, ts, study_uid=None,
                  series_uid=None, sop_uid=None, seed=None):
    study_uid = study_uid or f"{ROOT}.1.{s_idx}"
    series_uid = series_uid or f"{study_uid}.1"
    sop_uid = sop_uid or f"{series_uid}.{i_idx}"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = study["sop_class"]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPL_CLASS_UID
    meta.ImplementationVersionName = IMPL_VERSION

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if study["modality"] == "CT" else ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = study["sop_class"]
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study["date"]
    ds.SeriesDate = study["date"]
    ds.ContentDate = study["date"]
    ds.StudyTime = study["time"]
    ds.SeriesTime = study["time"]
    ds.ContentTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.Modality = study["modality"]
    ds.Manufacturer = "PACSTAP SYNTHETIC"
    ds.InstitutionName = "SYNTHETIC HOSPITAL"
    ds.ReferringPhysicianName = "SYNTH^REFERRER"
    ds.StudyDescription = study["desc"]
    ds.SeriesDescription = study["desc"] + " SERIES 1"
    ds.PatientName = study["name"]
    ds.PatientID = study["pid"]
    ds.PatientBirthDate = study["birth"]
    ds.PatientSex = study["sex"]
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study["study_id"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = i_idx
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if study["modality"] == "CT":
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
    ds.PixelData = pixels(rows, cols, seed if seed is not None else s_idx * 10 + i_idx)
    return ds


def encode(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dataset_part(raw):
    """Bytes after preamble + meta group: what a C-STORE carries on the wire."""
    glen = struct.unpack("<I", raw[132 + 8:132 + 12])[0]
    return raw[132 + 12 + glen:]


def write(ds, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = encode(ds)
    path.write_bytes(raw)
    return raw


def instances():
    for s_idx, st in enumerate(STUDIES, start=1):
        for i_idx, (rows, cols, ts) in enumerate(st["instances"], start=1):
            yield s_idx, i_idx, st, rows, cols, ts


def main(argv):
    if argv[:1] == ["--bench"]:
        out, count = Path(argv[1]), int(argv[2])
        # sizes cycle through ~0.5, 1, 2, 3.2, 5 MB
        shapes = [(512, 512), (512, 1024), (1024, 1024), (1280, 1280), (1600, 1600)]
        st = dict(STUDIES[2], key="bench", name="SYNTH^BENCH", pid="SYNB0001",
                  accession="SYNBENCH01", study_id="9", desc="SYNTH BENCH")
        study_uid = f"{ROOT}.9.1"
        for n in range(1, count + 1):
            rows, cols = shapes[(n - 1) % len(shapes)]
            ts = ExplicitVRLittleEndian if n % 3 else ImplicitVRLittleEndian
            ds = make_instance(st, 9, n, rows, cols, ts, study_uid=study_uid,
                               series_uid=f"{study_uid}.1", sop_uid=f"{study_uid}.1.{n}",
                               seed=n)
            write(ds, out / f"bench{n:03d}.dcm")
        return 0

    manifest_only = argv[:1] == ["--manifest"]
    out = None if manifest_only else Path(argv[0])
    print("file\tpatient_name\tpatient_id\tmodality\tsop_class_uid\tstudy_uid\tseries_uid\tsop_instance_uid"
          "\ttransfer_syntax\trows\tcols\tfile_size\tfile_sha256\tdataset_len\tdataset_sha256")
    for s_idx, i_idx, st, rows, cols, ts in instances():
        ds = make_instance(st, s_idx, i_idx, rows, cols, ts)
        rel = f"{s_idx}-{st['key']}/{i_idx}.dcm"
        raw = write(ds, out / rel) if out is not None else encode(ds)
        dsb = dataset_part(raw)
        print("\t".join([rel, st["name"], st["pid"], st["modality"], st["sop_class"],
                         ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                         TS_NAME[ts], str(rows), str(cols), str(len(raw)),
                         hashlib.sha256(raw).hexdigest(), str(len(dsb)),
                         hashlib.sha256(dsb).hexdigest()]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
