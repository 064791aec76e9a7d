"""What each capture of pcap-samples/scenarios/ contains and which alerts it must / must not raise.

The spec of the scenario pipeline: scripts/samples/scenarios/make reads CAPTURES and
CAPTURE_GROUPS from here (`scen_spec.py steps`) and runs, in this order, the capture function of
each step (`capture_<first capture, - as _>`); it refuses to start when a step has no function
or a function no step. scen_facts.py checks the captures against EXPECT_FACTS (tshark), and
scen_readme.py renders README.md and expected-alerts.json (which tests/detection_scenarios.rs
replays) from SCENARIOS. A new scenario is a capture here, its facts, its SCENARIOS entry, and
its capture function in make.

Usage: scen_spec.py steps   one capture step per line: the captures it makes, space separated

Alert counts are the FINAL count of the one incident (CONTRACT §2: fire once when the count rises
above the threshold, then updates as it grows). `first_at` is the count at which the first alert
line is due (threshold + 1) where that is well defined.
"""

ROOT = "1.2.826.0.1.3680043.10.1234"


def pool(n):
    return f"{ROOT}.20.{n}"


def pools(a, b):
    return [pool(n) for n in range(a, b + 1)]


CAPTURES = ["login-failures-dicom.pcap", "login-failures-http.pcap", "new-device.pcap",
            "bulk-export-move.pcap", "bulk-export-wado.pcap", "bulk-export-rest.pcap", "bulk-export-rest-push.pcap",
            "unknown-destination.pcap",
            "admin-change.pcap", "sharing-spike.pcap", "benign-modality-store.pcap",
            "benign-service-account.pcap", "benign-admin-export.pcap", "benign-radiologist-day.pcap",
            "benign-rest-viewer.pcap",
            "baseline-history.pcap", "baseline-burst.pcap", "bulk-export-https.pcap",
            "benign-https-viewer.pcap", "location-history.pcap", "new-location.pcap", "benign-location.pcap"]

# captures made together by one capture function (one history feeds several replays); every
# other capture is a step of its own
CAPTURE_GROUPS = [["baseline-history.pcap", "baseline-burst.pcap"],
                  ["location-history.pcap", "new-location.pcap", "benign-location.pcap"]]


def steps():
    """The capture steps in CAPTURES order: a group where its first capture comes."""
    out, done = [], set()
    for c in CAPTURES:
        if c in done:
            continue
        group = next((g for g in CAPTURE_GROUPS if c in g), [c])
        assert group[0] == c, f"{c}: a capture group is listed in CAPTURES from its first capture"
        out.append(group)
        done.update(group)
    return out


# tshark sanity: fact column -> exact value (see scen_facts.FACT_COLS for the cell formats)
_NO_DICOM = dict(assoc_rq=0, assoc_ac=0, assoc_rj=0)
_NO_HTTP = dict(http_requests=0)
_NO_HL7 = dict(hl7_messages="")
_NO_TLS = dict(tls_connections=0)
EXPECT_FACTS = {
    "login-failures-dicom.pcap": dict(
        tcp_streams=13, assoc_rq=13, assoc_ac=1, assoc_rj=12, release_rp=1, abort=0,
        reject_reasons="1/1/3=6 1/1/7=6", calling_aes="SCANNER9=13",
        dimse="C-FIND-RQ=1 C-FIND-RSP=2", dimse_status="C-FIND-RSP:0x0000=1 C-FIND-RSP:0xff00=1",
        **_NO_HTTP, **_NO_HL7),
    "login-failures-http.pcap": dict(
        tcp_streams=31, http_requests=31, http_methods="GET=31", http_status="200=1 401=30",
        http_user_status="admin=[401:2] rad2=[200:1,401:25] rad3=[401:2] root=[401:1]",
        **_NO_DICOM, **_NO_HL7),
    "new-device.pcap": dict(
        tcp_streams=5, http_requests=5, http_status="200=5", http_user_status="rad1=[200:3] rad5=[200:2]",
        qido_requests="rad1=3 rad5=2", wado_rs_studies="", **_NO_DICOM, **_NO_HL7),
    "bulk-export-move.pcap": dict(
        tcp_streams=21, assoc_rq=21, assoc_ac=21, assoc_rj=0, release_rp=21,
        calling_aes="ORTHANC=18 WORKSTATION1=3",
        dimse="C-MOVE-RQ=18 C-MOVE-RSP=18 C-STORE-RQ=18 C-STORE-RSP=18",
        dimse_status="C-MOVE-RSP:0x0000=18 C-STORE-RSP:0x0000=18",
        move_requests="WORKSTATION1->STORESCP=18", move_studies="WORKSTATION1->STORESCP=18",
        store_studies="ORTHANC->STORESCP=18", **_NO_HTTP, **_NO_HL7),
    "bulk-export-wado.pcap": dict(
        tcp_streams=17, http_requests=17, http_status="200=17", http_user_status="rad1=[200:17]",
        wado_rs_studies="rad1=17", **_NO_DICOM, **_NO_HL7),
    "bulk-export-rest.pcap": dict(
        tcp_streams=15, http_requests=15, http_methods="GET=14 POST=1", http_status="200=15",
        http_user_status="rad2=[200:15]", wado_rs_studies="", **_NO_DICOM, **_NO_HL7),
    "bulk-export-rest-push.pcap": dict(
        tcp_streams=2, http_requests=1, http_methods="POST=1", http_status="200=1",
        http_user_status="rad3=[200:1]", assoc_rq=1, assoc_ac=1, assoc_rj=0, release_rp=1,
        calling_aes="ORTHANC=1", dimse="C-STORE-RQ=16 C-STORE-RSP=16", dimse_status="C-STORE-RSP:0x0000=16",
        store_studies="ORTHANC->STORESCP=16", move_requests="", **_NO_HL7),
    "unknown-destination.pcap": dict(
        tcp_streams=4, assoc_rq=3, assoc_ac=3, assoc_rj=0, release_rp=3, calling_aes="ORTHANC=2 WORKSTATION1=1",
        dimse="C-MOVE-RQ=2 C-MOVE-RSP=2 C-STORE-RQ=2 C-STORE-RSP=2",
        dimse_status="C-MOVE-RSP:0x0000=2 C-STORE-RSP:0x0000=2",
        move_requests="WORKSTATION1->EXTPACS=2", move_studies="WORKSTATION1->EXTPACS=2",
        store_studies="ORTHANC->EXTPACS=2", hl7_messages="ADT^A08=1 ORU^R01=1", hl7_acks="AA=2",
        hl7_receivers="198.51.100.7:2575=2", **_NO_HTTP),
    "admin-change.pcap": dict(
        tcp_streams=4, http_requests=3, http_methods="DELETE=1 GET=1 PUT=1", http_status="200=3",
        admin_requests="admin:DELETE:200=1 admin:PUT:200=1", hl7_messages="MFN^M02=1", hl7_acks="AA=1",
        hl7_receivers="10.20.0.10:2575=1", **_NO_DICOM),
    "sharing-spike.pcap": dict(
        tcp_streams=12, http_requests=12, http_methods="POST=12", http_status="201=12",
        share_posts="rad3:201=12", share_recipients="rad3=12", **_NO_DICOM, **_NO_HL7),
    "benign-modality-store.pcap": dict(
        tcp_streams=100, assoc_rq=100, assoc_ac=100, assoc_rj=0, release_rp=100, calling_aes="MODALITY1=100",
        dimse="C-STORE-RQ=100 C-STORE-RSP=100", dimse_status="C-STORE-RSP:0x0000=100",
        store_studies="MODALITY1->ORTHANC=100", move_requests="", **_NO_HTTP, **_NO_HL7),
    "benign-service-account.pcap": dict(
        tcp_streams=22, assoc_rq=22, assoc_ac=22, assoc_rj=0, release_rp=22, calling_aes="ORTHANC=20 ROUTER1=2",
        dimse="C-MOVE-RQ=20 C-MOVE-RSP=20 C-STORE-RQ=20 C-STORE-RSP=20",
        dimse_status="C-MOVE-RSP:0x0000=20 C-STORE-RSP:0x0000=20",
        move_requests="ROUTER1->STORESCP=20", move_studies="ROUTER1->STORESCP=20",
        store_studies="ORTHANC->STORESCP=20", **_NO_HTTP, **_NO_HL7),
    "benign-admin-export.pcap": dict(
        tcp_streams=20, http_requests=20, http_status="200=20", http_user_status="admin=[200:20]",
        wado_rs_studies="admin=20", **_NO_DICOM, **_NO_HL7),
    "benign-radiologist-day.pcap": dict(
        tcp_streams=16, http_requests=9, http_status="200=9", http_user_status="rad1=[200:9]",
        qido_requests="rad1=3", wado_rs_studies="rad1=5",
        assoc_rq=7, assoc_ac=7, assoc_rj=0, release_rp=7, calling_aes="ORTHANC=3 RAD1WS=4",
        move_requests="RAD1WS->RAD1WS=3", move_studies="RAD1WS->RAD1WS=3", store_studies="ORTHANC->RAD1WS=3",
        **_NO_HL7),
    "benign-rest-viewer.pcap": dict(
        tcp_streams=63, http_requests=63, http_methods="GET=63", http_status="200=63",
        http_user_status="rad1=[200:63]", wado_rs_studies="", **_NO_DICOM, **_NO_HL7),
    "baseline-history.pcap": dict(
        tcp_streams=6, http_requests=6, http_status="200=6", wado_rs_studies="rad4=6", **_NO_DICOM, **_NO_HL7),
    "baseline-burst.pcap": dict(
        tcp_streams=10, http_requests=10, http_status="200=10", wado_rs_studies="rad4=10", **_NO_DICOM, **_NO_HL7),
    # HTTPS: tshark sees TLS only (no HTTP), one connection per curl
    "bulk-export-https.pcap": dict(
        tcp_streams=40, tls_connections=40, tls_sni="pacs.example.test=40", tls_clients="10.20.0.31=40",
        **_NO_HTTP, **_NO_DICOM, **_NO_HL7),
    "benign-https-viewer.pcap": dict(
        tcp_streams=5, tls_connections=5, tls_sni="pacs.example.test=5", tls_clients="10.20.0.30=5",
        **_NO_HTTP, **_NO_DICOM, **_NO_HL7),
    "location-history.pcap": dict(
        tcp_streams=6, http_requests=6, http_status="200=6", http_user_status="tele1=[200:6]",
        http_clients="203.0.113.10=6", qido_requests="tele1=6", wado_rs_studies="",
        **_NO_DICOM, **_NO_HL7, **_NO_TLS),
    "new-location.pcap": dict(
        tcp_streams=2, http_requests=2, http_status="200=2", http_user_status="tele1=[200:2]",
        http_clients="198.51.100.23=2", qido_requests="tele1=2", wado_rs_studies="",
        **_NO_DICOM, **_NO_HL7, **_NO_TLS),
    "benign-location.pcap": dict(
        tcp_streams=2, http_requests=2, http_status="200=2", http_user_status="tele1=[200:2]",
        http_clients="203.0.113.10=2", qido_requests="tele1=2", wado_rs_studies="",
        **_NO_DICOM, **_NO_HL7, **_NO_TLS),
}

# ----------------------------------------------------------------------------- scenarios
# alert: rule, kind, id, count (final), threshold, window (s), first_at, studies (UIDs in the
#        evidence, when the rule is about studies), destinations (evidence.destinations), note;
#        count_from = (capture, fact column, key): the count is that tshark fact (bytes vary
#        from one regeneration to the next: certificates, ports)
# not:   (rule, entity or None, why)
SCENARIOS = [
    dict(
        files=["login-failures-dicom.pcap"],
        title="DICOM login failures: 12 rejected associations, then accepted",
        what=[
            "From pts-mod (10.20.0.30) a device calling itself `SCANNER9` (dcmtk `echoscu`) first guesses the PACS's "
            "called AE title: `PACS`, `PACS1`, `ARCHIVE`, `DCM4CHEE`, `CONQUESTSRV1`, `ORTHANC1` - Orthanc "
            "(`DicomCheckCalledAet: true`) answers each with A-ASSOCIATE-RJ result 1 (rejected-permanent), source 1 "
            "(service-user), reason 7 (called-AE-title-not-recognized). Then it calls `ORTHANC` six times: rejected "
            "with reason 3 (calling-AE-title-not-recognized), because SCANNER9 is not in Orthanc's `DicomModalities` "
            "and every `DicomAlwaysAllow*` is false. One attempt every ~3 s.",
            "Someone then registers SCANNER9 in Orthanc (`PUT /modalities/scanner9` on pts-pacs's loopback: NOT on "
            "the tapped link, so invisible to pacstap) and 4 s later the same calling AE from the same address is "
            "accepted: `findscu` C-FIND (study level, PatientID=SYNP0001), 1 match, A-RELEASE.",
        ],
        actors="calling AE `SCANNER9` @ 10.20.0.30 (not in the inventory); called `ORTHANC` @ 10.20.0.10:4242",
        alerts=[
            dict(rule="login_failures_user", kind="ae", id="SCANNER9", count=12, threshold=8, window=600, first_at=9,
                 note="12 A-ASSOCIATE-RJ for calling AE SCANNER9 (6 x reason 7, 6 x reason 3) in ~35 s"),
            dict(rule="login_success_after_failures", kind="ae", id="SCANNER9", count=12, threshold=5, window=600,
                 note="the accepted association (C-FIND) right after the 12 failures; the same 12 failures are also "
                      "the source's (10.20.0.30): ONE alert, for the AE (the detector tries user, AE, then source)"),
        ],
        not_alerts=[
            ("login_failures_source", "ip 10.20.0.30", "12 failures from the source, threshold 20"),
            ("new_device", "ae SCANNER9", "never seen before (not in the inventory): learned silently"),
            ("admin_change", None, "the registration of SCANNER9 happened on the PACS's loopback, not on the wire; "
                                   "ORTHANC answers at its inventory address"),
            ("unknown_destination / bulk_export", None, "no images move"),
        ],
    ),
    dict(
        files=["login-failures-http.pcap"],
        title="HTTP login failures: password spraying, 25 wrong passwords for rad2, then rad2 gets in",
        what=[
            "From pts-mod (10.20.0.30), curl against Orthanc's DICOMweb (`GET /dicom-web/studies`, HTTP Basic auth), "
            "one connection per attempt, ~1.2 s apart: first 5 failures spread over other names "
            "(`admin` x2, `rad3` x2, `root` x1), then 25 wrong passwords for `rad2` (all 401), then `rad2` with the "
            "right password: 200 (QIDO-RS `?PatientID=SYNP0002`). 31 requests in ~40 s.",
        ],
        actors="source 10.20.0.30; users rad2 (inventory, device 10.20.0.30), admin, rad3, root",
        alerts=[
            dict(rule="login_failures_user", kind="user", id="rad2", count=25, threshold=8, window=600, first_at=9,
                 note="25 x 401 with user rad2"),
            dict(rule="login_failures_source", kind="ip", id="10.20.0.30", count=30, threshold=20, window=600,
                 first_at=21, note="30 x 401 from 10.20.0.30 (rad2 25, admin 2, rad3 2, root 1)"),
            dict(rule="login_success_after_failures", kind="user", id="rad2", count=25, threshold=5, window=600,
                 note="the 200 for rad2 right after its 25 failures (one alert, for the user)"),
        ],
        not_alerts=[
            ("login_failures_user", "user admin / rad3 / root", "2, 2 and 1 failures, threshold 8"),
            ("new_device", "user rad2", "logs in from its inventory device 10.20.0.30"),
            ("bulk_export", None, "QIDO only, no retrieval"),
        ],
    ),
    dict(
        files=["new-device.pcap"],
        title="New device: rad1 from its usual machine, then from a new one; a never-seen user",
        what=[
            "rad1 (inventory device 10.20.0.30) runs two QIDO-RS queries from pts-mod (10.20.0.30): 200, 200. "
            "~6 s later rad1 queries from pts-mod2 (10.20.0.31, a machine never used by rad1): 200. "
            "Then `rad5` (a valid Orthanc user that is NOT in the inventory and was never seen) queries twice from "
            "10.20.0.31: 200, 200. No retrieval (QIDO only).",
        ],
        actors="users rad1 (inventory, device 10.20.0.30), rad5 (not in the inventory); clients 10.20.0.30, 10.20.0.31",
        alerts=[
            dict(rule="new_device", kind="user", id="rad1", count=1, first_at=1, device="10.20.0.31",
                 note="first authenticated 2xx of rad1 from 10.20.0.31; known devices: 10.20.0.30"),
        ],
        not_alerts=[
            ("new_device", "user rad1 @ 10.20.0.30", "its inventory device"),
            ("new_device", "user rad5", "never-seen user: learned silently (it only ever uses 10.20.0.31)"),
            ("login_failures_* / bulk_export", None, "no failures, no retrieval"),
        ],
    ),
    dict(
        files=["bulk-export-move.pcap"],
        title="Bulk export over DICOM: WORKSTATION1 C-MOVEs 18 studies",
        what=[
            "dcmtk `movescu -S` from pts-mod, calling AE `WORKSTATION1` (a non-admin workstation), move destination "
            "`STORESCP` (pts-ws 10.20.0.20:11112, in the inventory): 3 associations ~5 s apart, each with 6 C-MOVE "
            "requests (Study Root, level STUDY, one StudyInstanceUID each) for pool studies P01..P18. For every "
            "C-MOVE Orthanc opens its own association ORTHANC -> STORESCP and sends the study's one instance "
            "(C-STORE 0x0000), then answers C-MOVE-RSP 0x0000 (completed 1). 18 distinct studies in ~12 s.",
        ],
        actors="requester AE WORKSTATION1 @ 10.20.0.30; destination AE STORESCP @ 10.20.0.20; PACS ORTHANC @ 10.20.0.10",
        alerts=[
            dict(rule="bulk_export", kind="ae", id="WORKSTATION1", count=18, threshold=15, window=1800,
                 first_at="16 or 18", destinations=["STORESCP (10.20.0.20:11112)"],
                 studies=pools(1, 18), note="destination STORESCP (10.20.0.20). First alert line: at the 16th study "
                 "if C-MOVEs are counted as they complete, at 18 if they are attributed when their association "
                 "ends (to wait for a user identity): the third association carries studies 13-18"),
        ],
        not_alerts=[
            ("unknown_destination", "ae STORESCP", "in the inventory at 10.20.0.20 (and internal)"),
            ("new_device", "ae WORKSTATION1 / ae ORTHANC", "both at their inventory addresses"),
            ("admin_change", None, "STORESCP answers at its inventory address"),
            ("export_above_baseline", None, "no history (min_history 7d)"),
        ],
    ),
    dict(
        files=["bulk-export-wado.pcap"],
        title="Bulk export over DICOMweb: rad1 retrieves 17 studies with WADO-RS",
        what=[
            "rad1 from its usual device 10.20.0.30: 17 x `GET /dicom-web/studies/{StudyInstanceUID}` with "
            "`Accept: multipart/related; type=\"application/dicom\"` (pool studies P01..P17), one curl each, ~1 s "
            "apart, all 200 (Orthanc streams each study with `Connection: close`).",
        ],
        actors="user rad1 (inventory, device 10.20.0.30); server Orthanc 10.20.0.10:8042",
        alerts=[
            dict(rule="bulk_export", kind="user", id="rad1", count=17, threshold=15, window=1800, first_at=16,
                 studies=pools(1, 17), destinations=["10.20.0.30"], note="destination: the client 10.20.0.30"),
        ],
        not_alerts=[
            ("new_device", "user rad1", "its inventory device"),
            ("unknown_destination", None, "the client is internal"),
        ],
    ),
    dict(
        files=["bulk-export-rest.pcap"],
        title="Bulk export over Orthanc's REST API: rad2 downloads 17 studies as ZIPs and a DICOM file",
        what=[
            "rad2 from its usual device 10.20.0.30, with curl against Orthanc's own REST API (not DICOMweb), one "
            "connection per request, ~1 s apart, all 200: 12 x `GET /studies/{id}/archive` (what Orthanc "
            "Explorer's \"Download ZIP\" button sends; pool studies P01..P12), one `POST /tools/create-archive` "
            "with `{\"Resources\": [4 study ids], \"Synchronous\": true}` (P13..P16, one ZIP), one "
            "`GET /instances/{id}/file` (P17's instance: `application/dicom`, the study read from the file), and "
            "one `GET /studies/{id}` (P18's JSON record: a read, not a download). The Orthanc ids were looked up "
            "on the PACS's loopback, off the tap.",
        ],
        actors="user rad2 (inventory, device 10.20.0.30); server Orthanc 10.20.0.10:8042",
        alerts=[
            dict(rule="bulk_export", kind="user", id="rad2", count=17, threshold=15, window=1800, first_at=16,
                 studies=pools(1, 12) + [pool(17)], destinations=["10.20.0.30"],
                 note="each study ZIP counts the study its first DICOM file names (P01..P12, read from the "
                      "deflated entry); the create-archive of 4 counts its 4 resource ids (one ZIP of several "
                      "studies: only its first file is read), the 16th study and the first alert line; the DICOM "
                      "file counts P17, its data set's study. 13 UIDs in the evidence; P18's JSON record is not a "
                      "download"),
        ],
        not_alerts=[
            ("new_device", "user rad2", "its inventory device"),
            ("unknown_destination", None, "the client is internal"),
            ("admin_change", None, "downloads are not configuration changes"),
        ],
    ),
    dict(
        files=["bulk-export-rest-push.pcap"],
        title="Bulk export by a push: rad3 has Orthanc send 16 studies to a DICOM node over its REST API",
        what=[
            "rad3 from its usual device 10.20.0.30, with curl: one `POST /modalities/storescp/store` with "
            "`{\"Resources\": [16 study ids], \"Synchronous\": true}` (pool studies P01..P16; Orthanc ids looked "
            "up on the PACS's loopback, off the tap): 200. Orthanc then opens one association ORTHANC -> STORESCP "
            "(10.20.0.20:11112) and sends the 16 instances (C-STORE 0x0000). Any Orthanc user may do this (no "
            "roles without the authorization plugin); the images leave on the PACS's own connection, not to the "
            "requester.",
        ],
        actors="user rad3 (inventory, device 10.20.0.30); PACS ORTHANC @ 10.20.0.10; destination AE STORESCP "
               "@ 10.20.0.20 (in the inventory; Orthanc's name for it: storescp)",
        alerts=[
            dict(rule="bulk_export", kind="user", id="rad3", count=16, threshold=15, window=1800, first_at=16,
                 destinations=["modality storescp"],
                 note="the 16 resource ids of the push request (Orthanc ids, not UIDs: no study UID in the "
                      "evidence); the destination as the URL names it"),
        ],
        not_alerts=[
            ("bulk_export", "ae ORTHANC", "the PACS's own C-STOREs to an inventory node (what it was told to do)"),
            ("unknown_destination", None, "STORESCP is in the inventory at 10.20.0.20"),
            ("admin_change", None, "a push is not a configuration change"),
            ("new_device", "user rad3", "its inventory device"),
        ],
    ),
    dict(
        files=["unknown-destination.pcap"],
        title="Unknown destination: C-MOVE to an outside AE, HL7 to an outside address",
        what=[
            "`movescu` calling AE WORKSTATION1 asks ORTHANC to move pool studies P29 and P30 (one association, 2 "
            "C-MOVE requests) to move destination `EXTPACS`, which Orthanc has in its `DicomModalities` as "
            "198.51.100.7:104 (pts-ext: a dcmtk storescp AE EXTPACS on the same bridge, address in TEST-NET-2, "
            "i.e. outside every internal network of the config). Orthanc opens two associations ORTHANC -> EXTPACS "
            "198.51.100.7:104 and stores one instance each (0x0000).",
            "3 s later the PACS's interface (python `hl7` MLLP client in pts-pacs) sends ORU^R01 (report of P29) and "
            "ADT^A08 to `EXTREPORTS` at 198.51.100.7:2575 over one connection; both ACKed AA.",
        ],
        actors="requester WORKSTATION1 @ 10.20.0.30; destination AE EXTPACS @ 198.51.100.7:104 (not in the inventory, "
               "external); HL7 sender 10.20.0.10 -> receiver 198.51.100.7:2575 (not in the HL7 inventory, external)",
        alerts=[
            dict(rule="unknown_destination", kind="ae", id="EXTPACS", count=4, first_at=1,
                 count_note="occurrences: 2 C-STORE-RQ ORTHANC -> EXTPACS 198.51.100.7:104 + 2 C-MOVE-RQ naming "
                 "EXTPACS; the studies (2) are the part that must not depend on how transfers are counted",
                 studies=pools(29, 30), destinations=["EXTPACS (198.51.100.7:104)"],
                 note="not in the DICOM inventory AND 198.51.100.7 is outside the internal networks; one alert "
                      "per destination (the C-MOVEs and the C-STOREs name the same one)"),
            dict(rule="unknown_destination", kind="ip", id="198.51.100.7", count=2, first_at=1,
                 destinations=["198.51.100.7:2575"],
                 count_note="occurrences: 2 HL7 messages (ORU^R01, ADT^A08); the ACKs coming back do not count",
                 note="HL7 receiver 198.51.100.7:2575: outside the internal networks, not in the HL7 inventory"),
        ],
        not_alerts=[
            ("bulk_export", "ae WORKSTATION1", "2 studies, threshold 15"),
            ("admin_change", "ae EXTPACS", "first sighting of EXTPACS: nothing it moved from"),
            ("new_device", None, "WORKSTATION1 and ORTHANC at their inventory addresses"),
        ],
    ),
    dict(
        files=["admin-change.pcap"],
        title="Admin changes: a DICOM node added and removed over REST, a staff record added over HL7",
        what=[
            "user `admin` from 10.20.0.30: `PUT /modalities/NEWNODE` with `{\"AET\":\"NEWNODE\",\"Host\":\"10.20.0.40\","
            "\"Port\":104}` (200), `GET /modalities` (200, a read: lists NEWNODE), `DELETE /modalities/NEWNODE` (200), "
            "~1 s apart, each its own connection (Orthanc REST API, HTTP Basic auth).",
            "2 s later the HR system (python `hl7` MLLP client in pts-mod, MSH-3 `PTHR`) sends MFN^M02 (MFI-1 STF, "
            "MFI-3 UPD, one MFE with event MAD = add, primary key SYNST2, STF + PRA segments) to the PACS/RIS listener "
            "10.20.0.10:2575; ACK AA.",
        ],
        actors="user admin (inventory, admin, device 10.20.0.30); HL7 sender 10.20.0.30 -> 10.20.0.10:2575 (in the HL7 inventory)",
        alerts=[
            dict(rule="admin_change", kind="user", id="admin", count=2, first_at=1,
                 note="PUT and DELETE /modalities/NEWNODE (built-in pattern `PUT|DELETE|POST **/modalities/*`, "
                      "orthanc_modality_config); one incident, updated by the second change"),
            dict(rule="admin_change", kind="ip", id="10.20.0.30", count=1, first_at=1,
                 note="HL7 MFN^M02 staff master file change (MFE MAD SYNST2); HL7 has no authenticated user, the "
                      "entity is the sender address"),
        ],
        not_alerts=[
            ("admin_change", "GET /modalities", "a read"),
            ("unknown_destination", "10.20.0.10:2575", "in the HL7 inventory"),
            ("new_device", "user admin", "its inventory device"),
        ],
    ),
    dict(
        files=["sharing-spike.pcap"],
        title="Sharing spike: rad3 creates 12 share links for 12 outside recipients",
        what=[
            "No Debian package has share links, so an nginx in pts-pacs (10.20.0.10:80, `server_name "
            "portal.example.test`) plays the portal: `location = /api/shares` answers every POST with a static "
            "`201` JSON (`return 201 '{\"id\":\"SYNTHETIC-SHARE\",...}'`); it checks no credentials.",
            "curl as `rad3` (Basic auth header, from its usual device 10.20.0.30): 12 x `POST /api/shares` with "
            "`Content-Type: application/json` and body `{\"recipient\":\"a<i>@example.org\",\"study\":\"<P<i> UID>\","
            "\"expires_days\":7,\"message\":\"SYNTHETIC share <i>\"}` for i = 1..12, ~4 s apart (~50 s): 12 share "
            "actions, 12 distinct recipients, all 201.",
            "Expected HTTP decoding: `POST /api/shares` matches the built-in share pattern `POST **/share*` "
            "(action `share_link_created`, crates/proto/src/http/patterns.rs); the recipient is the JSON key "
            "`recipient` of the request body.",
        ],
        actors="user rad3 (inventory, device 10.20.0.30); portal 10.20.0.10:80; recipients a1..a12@example.org",
        alerts=[
            dict(rule="sharing_spike", kind="user", id="rad3", count=12, threshold=10, window=3600, first_at=6,
                 note="count = share actions: 12 (> threshold 10); distinct outside recipients: 12 (> "
                      "recipients_threshold 5), the limit crossed first, at the 6th share (hence first alert at 6)"),
        ],
        not_alerts=[
            ("new_device", "user rad3", "its inventory device"),
            ("bulk_export", None, "sharing moves no images on the wire"),
            ("admin_change", None, "share links are not admin actions"),
        ],
    ),
    dict(
        files=["benign-modality-store.pcap"],
        title="Benign: a modality stores 100 studies into the PACS",
        what=[
            "dcmtk `storescu -R` calling AE `MODALITY1` (inventory role modality, 10.20.0.30) stores 100 synthetic "
            "single-instance CT studies (M001..M100) into ORTHANC, one association per study, ~0.2 s apart; all "
            "C-STORE-RSP 0x0000.",
        ],
        actors="MODALITY1 @ 10.20.0.30 -> ORTHANC @ 10.20.0.10:4242",
        alerts=[],
        not_alerts=[
            ("bulk_export", "ae MODALITY1", "storing INTO the PACS is not an export (100 distinct studies)"),
            ("unknown_destination", "ae ORTHANC", "in the inventory at 10.20.0.10"),
            ("new_device", "ae MODALITY1", "its inventory address"),
            ("any other rule", None, ""),
        ],
    ),
    dict(
        files=["benign-service-account.pcap"],
        title="Benign: the routing engine (service account) moves 20 studies between internal nodes",
        what=[
            "`movescu -S` calling AE `ROUTER1` from pts-rtr (10.20.0.50), listed in `[users] service_accounts` and in "
            "the inventory (role router), moves pool studies P01..P20 to STORESCP (10.20.0.20, inventory): 2 "
            "associations ~5 s apart with 10 C-MOVE requests each; Orthanc opens one association to STORESCP per "
            "C-MOVE. 20 distinct studies in ~6 s.",
        ],
        actors="ROUTER1 @ 10.20.0.50 (service account); destination STORESCP @ 10.20.0.20",
        alerts=[],
        not_alerts=[
            ("bulk_export", "ae ROUTER1", "20 distinct studies > 15, but a service account is exempt"),
            ("export_above_baseline", "ae ROUTER1", "exempt (and no history)"),
            ("unknown_destination", "ae STORESCP", "in the inventory"),
            ("new_device", "ae ROUTER1", "its inventory address"),
        ],
    ),
    dict(
        files=["benign-admin-export.pcap"],
        title="Benign: the admin exports 20 studies over DICOMweb",
        what=[
            "user `admin` (in `[users] admins`, device 10.20.0.30) retrieves pool studies P01..P20 with WADO-RS "
            "(`GET /dicom-web/studies/{uid}`), one curl each, ~0.5 s apart, all 200.",
        ],
        actors="user admin @ 10.20.0.30",
        alerts=[],
        not_alerts=[
            ("bulk_export", "user admin", "20 distinct studies > 15, but admins are exempt"),
            ("new_device", "user admin", "its inventory device"),
        ],
    ),
    dict(
        files=["benign-radiologist-day.pcap"],
        title="Benign: a radiologist's normal session",
        what=[
            "rad1 from 10.20.0.30 over DICOMweb: 3 QIDO-RS searches (`?PatientID=SYNP002*` (10 matches), "
            "`?ModalitiesInStudy=MR&limit=5`, `/studies/{P21}/series`), WADO-RS retrieval of 5 studies (P21..P25) "
            "~2 s apart, then `/studies/{P21}/metadata` (same study again). Then rad1's workstation AE `RAD1WS` "
            "(10.20.0.30, storescp on :11115) does one C-FIND (PatientName=SYNTH^POOL2*, 10 matches) and three "
            "C-MOVEs of one study each (P26, P27, P28; 3 associations ~3 s apart) to itself: Orthanc stores each to "
            "RAD1WS 10.20.0.30:11115.",
        ],
        actors="user rad1 (inventory, device 10.20.0.30); AE RAD1WS @ 10.20.0.30 (inventory workstation)",
        alerts=[],
        not_alerts=[
            ("bulk_export", "user rad1", "5 distinct studies, threshold 15"),
            ("bulk_export", "ae RAD1WS", "3 distinct studies"),
            ("unknown_destination", "ae RAD1WS", "in the inventory at 10.20.0.30"),
            ("new_device", "user rad1 / ae RAD1WS", "their inventory devices"),
        ],
    ),
    dict(
        files=["benign-rest-viewer.pcap"],
        title="Benign: a radiologist browsing Orthanc's REST API, two ZIP downloads",
        what=[
            "rad1 from 10.20.0.30, with curl, the requests Orthanc Explorer makes while browsing: `GET /studies`, "
            "then for each of 20 studies (P21..P40) its record `GET /studies/{id}`, its series "
            "`GET /studies/{id}/series` and its instance's preview image `GET /instances/{id}/preview` (PNG); then "
            "two study ZIPs, `GET /studies/{id}/archive` (P21, P22). 63 requests, all 200.",
        ],
        actors="user rad1 (inventory, device 10.20.0.30); server Orthanc 10.20.0.10:8042",
        alerts=[],
        not_alerts=[
            ("bulk_export", "user rad1", "2 studies downloaded (the ZIPs); records, series lists and preview "
                                         "images of 20 studies are viewing, not exports"),
            ("new_device", "user rad1", "its inventory device"),
            ("admin_change", None, "reads only"),
        ],
    ),
    dict(
        files=["baseline-history.pcap", "baseline-burst.pcap"],
        title="Export above baseline: one study a week for six weeks, then ten in a minute",
        what=[
            "rad4 (device 10.20.0.30) retrieves ONE study with WADO-RS per capture, six captures (pool P31..P36) "
            "taken a few seconds apart and then shifted back in time with `editcap -t` by 6, 5, 4, 3, 2 and 1 "
            "weeks (table `baseline-shifts.tsv`), merged with `mergecap -F pcap` into `baseline-history.pcap`: "
            "one study a week, the first 6 weeks before the burst.",
            "`baseline-burst.pcap` (real time, not shifted): rad4 retrieves 10 studies (P41..P50) with WADO-RS, ~3 s "
            "apart (~35 s).",
            "Replay BOTH in one run, history first: `pacstap replay --config pacstap.toml baseline-history.pcap "
            "baseline-burst.pcap` (replay orders all packets by timestamp).",
        ],
        actors="user rad4 (inventory, device 10.20.0.30)",
        alerts=[
            dict(rule="export_above_baseline", kind="user", id="rad4", count=10, threshold=5, window=3600, first_at=6,
                 studies=pools(41, 50),
                 note="10 distinct studies in the 1 h window vs a learned rate of ~1 study/week (history 6 weeks >= "
                      "min_history 7d): above threshold 5 and above factor 10 x baseline; 10 x the learned hourly "
                      "rate is far below 1, so the first alert is due at the 6th study"),
        ],
        not_alerts=[
            ("bulk_export", "user rad4", "10 distinct studies, threshold 15"),
            ("new_device", "user rad4", "its inventory device"),
            ("(baseline-history.pcap alone)", None, "nothing: one study a week"),
            ("(baseline-burst.pcap alone)", None, "nothing: no history (min_history 7d not reached), 10 <= 15"),
        ],
    ),
    dict(
        files=["bulk-export-https.pcap"],
        title="Bulk export over HTTPS: 10.20.0.31 pulls 40 studies through the TLS front end",
        what=[
            "nginx in pts-pacs terminates TLS for `pacs.example.test` on 10.20.0.10:443 (self-signed certificate, "
            "TLS 1.2/1.3) and proxies to Orthanc on pts-pacs's loopback (the proxied requests are not on the tapped "
            "link). From pts-mod2 (10.20.0.31) curl retrieves pool studies P01..P40 with WADO-RS "
            "(`GET https://pacs.example.test/dicom-web/studies/{uid}`, Basic auth as rad2, `-k --resolve`), one "
            "TLS connection per study, ~0.3 s apart: 40 TLS 1.3 connections, every response 200. curl runs with "
            "`--http1.1` (ALPN http/1.1): over HTTP/2 it closes with nginx's last frames unread, and every "
            "connection would end in a TCP reset.",
            "The count below is in bytes and changes when the capture is regenerated (a new certificate, other "
            "ports); the script takes it from tshark.",
            "On the wire only TLS is visible: the SNI, the handshake and the encrypted volume. Neither the user nor "
            "the studies can be seen, so the detector counts what the server sent the client over TLS "
            "(`rules.bulk_export.https_bytes`, 100 kB in this config, ~30 lab studies).",
        ],
        actors="client 10.20.0.31 (pts-mod2); HTTPS server pacs.example.test = 10.20.0.10:443 (the inventory PACS, "
               "role pacs: an image server for `https_servers` by default)",
        alerts=[
            dict(rule="bulk_export", kind="ip", id="10.20.0.31", count_from=("bulk-export-https.pcap",
                 "tls_toclient_bytes", "10.20.0.31"), threshold=100000, window=1800, destinations=["10.20.0.31"],
                 note="count and threshold in BYTES: every TCP payload byte 10.20.0.10:443 sent 10.20.0.31 in the "
                      "40 TLS connections (= the tshark sum of `tcp.len` from port 443, table `scenario-tls.tsv`); "
                      "the summary names pacs.example.test (10.20.0.10:443); no studies in the evidence"),
        ],
        not_alerts=[
            ("bulk_export", "user / ae", "the user and the studies are inside the encryption"),
            ("new_device", None, "no login is visible inside TLS"),
            ("unknown_destination", None, "the client is internal"),
        ],
    ),
    dict(
        files=["benign-https-viewer.pcap"],
        title="Benign: a radiologist's viewer over HTTPS",
        what=[
            "rad1's viewer on pts-mod (10.20.0.30) through the same HTTPS front end: one QIDO-RS search "
            "(`?PatientID=SYNP002*`, 10 matches), WADO-RS of P21, P22, P23 ~3 s apart, then the metadata of P21: "
            "5 TLS connections, all 200.",
        ],
        actors="client 10.20.0.30 (pts-mod); HTTPS server pacs.example.test = 10.20.0.10:443",
        alerts=[],
        not_alerts=[
            ("bulk_export", "ip 10.20.0.30", "a few tens of kB over HTTPS, threshold 100 kB"),
            ("any other rule", None, ""),
        ],
    ),
    dict(
        files=["location-history.pcap", "new-location.pcap"],
        title="New location: tele1 logs in from country XB after weeks from XA",
        what=[
            "`tele1`, a teleradiologist in the inventory with device 203.0.113.10 (pts-exta, outside the internal "
            "networks; country XA in this directory's `geoip.csv`), logs in to Orthanc's DICOMweb (HTTP Basic auth; a "
            "login is an authenticated request answered 2xx): a QIDO-RS search (`?PatientID=SYNP0007`) and a "
            "series look-up. Three such captures, shifted back by 3, 2 and 1 weeks with `editcap -t` (table "
            "`location-shifts.tsv`), merged with `mergecap -F pcap`: `location-history.pcap`.",
            "`new-location.pcap` (real time): the same two requests as tele1 from 198.51.100.23 (pts-extb, country "
            "XB).",
            "Replay BOTH in one run, history first: `pacstap replay --config pacstap.toml location-history.pcap "
            "new-location.pcap`. `pacstap.toml` names `geoip.csv` by a path relative to itself.",
        ],
        actors="user tele1 (inventory, device 203.0.113.10); clients 203.0.113.10 (XA), 198.51.100.23 (XB); server "
               "Orthanc 10.20.0.10:8042",
        alerts=[
            dict(rule="new_location", kind="user", id="tele1", count=1, first_at=1,
                 note="first login of tele1 from XB (from 198.51.100.23); seen before: XA, learned silently from "
                      "the history's first login (a user's first country is learned, not alerted)"),
            dict(rule="new_device", kind="user", id="tele1", count=1, first_at=1, device="198.51.100.23",
                 note="the same login is also from an address never seen for tele1 (known device: 203.0.113.10); a "
                      "login from another country is, on the wire, a login from another address"),
        ],
        not_alerts=[
            ("new_location", "user tele1 (second request)", "XB is known once the first one is seen: one alert"),
            ("unknown_destination", None, "QIDO only: no images leave"),
            ("(location-history.pcap alone)", None, "nothing: one country, the inventory device"),
            ("(new-location.pcap alone)", None, "new_device only: without the history XB is tele1's first country, "
                                                 "learned silently"),
        ],
    ),
    dict(
        files=["location-history.pcap", "benign-location.pcap"],
        title="Benign: tele1 logs in again from country XA",
        what=[
            "`benign-location.pcap` (real time): the same two requests as tele1 from its usual 203.0.113.10 (XA). "
            "Replay after the history: `pacstap replay --config pacstap.toml location-history.pcap "
            "benign-location.pcap`.",
        ],
        actors="user tele1 (inventory, device 203.0.113.10); client 203.0.113.10 (XA)",
        alerts=[],
        not_alerts=[
            ("new_location", "user tele1", "XA was seen in the history"),
            ("new_device", "user tele1", "its inventory device"),
        ],
    ),
]

# built-in default severities (crates/detect/src/config/mod.rs), not set in pacstap.toml
SEVERITY = dict(login_failures_user="warning", login_failures_source="warning", login_success_after_failures="high",
                new_device="warning", new_location="high", admin_change="warning", bulk_export="high",
                export_above_baseline="high", unknown_destination="high", sharing_spike="high")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] != ["steps"]:
        sys.exit(__doc__)
    for step in steps():
        print(" ".join(step))
