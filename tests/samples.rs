//! End-to-end facts over the bundled real captures (pcap-samples/README.md says how each was
//! made). Each test asserts what the software on the wire really did: AE titles, outcomes,
//! study UIDs, move destinations, statuses.

mod common;
use common::*;
use std::collections::BTreeSet;

#[test]
fn echo_is_one_released_association_with_one_successful_c_echo() {
    let (_, ev) = replay(&["echo.pcap"]);
    let a = associations(&ev);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["calling_ae"], "MODALITY1");
    assert_eq!(a[0]["called_ae"], "ORTHANC");
    assert_eq!(a[0]["accepted"], true);
    assert_eq!(a[0]["outcome"], "released");
    assert_eq!(a[0]["commands"], 1);
    assert_eq!(a[0]["implementation_version_name"], "OFFIS_DCMTK_367");
    assert_eq!(strs(&a[0]["abstract_syntaxes"]), vec!["1.2.840.10008.1.1"]);
    let echo = commands(&ev, "C-ECHO");
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0]["status"], "0x0000");
    assert_eq!(echo[0]["status_class"], "success");
    // EVE envelope: the client is the initiator, the server the PACS port.
    let line = ev.iter().find(|e| e["dicom"]["type"] == "association").unwrap();
    assert_eq!(line["src_ip"], "10.20.0.30");
    assert_eq!(line["dest_ip"], "10.20.0.10");
    assert_eq!(line["dest_port"], 4242);
    assert_eq!(line["event_type"], "dicom");
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
}

/// The eight C-STOREs of store.pcap: (SOP instance UID, study UID, modality, status).
fn store_facts(ev: &[serde_json::Value]) -> BTreeSet<(String, String, String, String)> {
    commands(ev, "C-STORE")
        .iter()
        .map(|c| {
            (
                c["sop_instance_uid"].as_str().unwrap_or("").to_owned(),
                strs(&c["study_instance_uids"]).join(","),
                c["modality"].as_str().unwrap_or("").to_owned(),
                c["status"].as_str().unwrap_or("none").to_owned(),
            )
        })
        .collect()
}

#[test]
fn store_decodes_eight_instances_of_three_studies() {
    let (report, ev) = replay(&["store.pcap"]);
    let a = associations(&ev);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["calling_ae"], "MODALITY1");
    assert_eq!(a[0]["outcome"], "released");
    assert_eq!(a[0]["commands"], 8);
    let stores = commands(&ev, "C-STORE");
    assert_eq!(stores.len(), 8);
    assert!(stores
        .iter()
        .all(|c| c["status_class"] == "success" && c["direction"] == "toserver"));
    let studies: BTreeSet<String> = stores.iter().flat_map(|c| strs(&c["study_instance_uids"])).collect();
    assert_eq!(
        studies,
        BTreeSet::from([STUDY_CT.to_owned(), STUDY_MR.to_owned(), STUDY_CR.to_owned()])
    );
    let modalities: BTreeSet<&str> = stores.iter().filter_map(|c| c["modality"].as_str()).collect();
    assert_eq!(modalities, BTreeSet::from(["CR", "CT", "MR"]));
    // The 1 MB CR instance: its data set is 1,065,606 bytes on the wire (wire-datasets.tsv),
    // spread over 66 P-DATA PDUs and ~750 segments; counted, never buffered.
    let big = stores
        .iter()
        .find(|c| c["sop_instance_uid"] == format!("{UID_ROOT}.1.3.1.1"))
        .expect("big CR");
    assert_eq!(big["dataset_bytes"], 1_065_606);
    assert_eq!(big["study_instance_uids"][0], STUDY_CR);
    // Implicit VR LE data sets (MR) are sniffed too.
    let mr = stores
        .iter()
        .find(|c| c["sop_instance_uid"] == format!("{UID_ROOT}.1.2.1.1"))
        .expect("MR 1");
    assert_eq!(mr["modality"], "MR");
    assert_eq!(mr["dataset_bytes"], 8830);
    assert_eq!(report.flow.gaps, 0);
    assert!(report.proto.anomalies.is_empty(), "{:?}", report.proto.anomalies);
}

#[test]
fn find_is_a_study_level_query_with_three_matches() {
    let (_, ev) = replay(&["find.pcap"]);
    let f = commands(&ev, "C-FIND");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["calling_ae"], "WORKSTATION1");
    assert_eq!(f[0]["query_level"], "STUDY");
    assert_eq!(f[0]["status_class"], "success");
    // 3 pending responses (one per study) + the final one.
    assert_eq!(f[0]["responses"], 4);
    assert_eq!(f[0]["sop_class_uid"], "1.2.840.10008.5.1.4.1.2.2.1");
}

#[test]
fn move_names_destination_and_the_resulting_stores() {
    let (_, ev) = replay(&["move.pcap"]);
    let m = commands(&ev, "C-MOVE");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["calling_ae"], "WORKSTATION1");
    assert_eq!(m[0]["called_ae"], "ORTHANC");
    assert_eq!(m[0]["move_destination"], "STORESCP");
    assert_eq!(m[0]["query_level"], "STUDY");
    assert_eq!(strs(&m[0]["study_instance_uids"]), vec![STUDY_MR]);
    assert_eq!(m[0]["sub_operations"]["completed"], 3);
    assert_eq!(m[0]["sub_operations"]["failed"], 0);
    assert_eq!(m[0]["status"], "0x0000");
    // Orthanc's own association to STORESCP carries the three MR instances.
    let a = associations(&ev);
    assert_eq!(a.len(), 2);
    let sub = a
        .iter()
        .find(|a| a["called_ae"] == "STORESCP")
        .expect("ORTHANC→STORESCP association");
    assert_eq!(sub["calling_ae"], "ORTHANC");
    assert_eq!(sub["outcome"], "released");
    let stores = commands(&ev, "C-STORE");
    assert_eq!(stores.len(), 3);
    assert!(stores
        .iter()
        .all(|c| c["called_ae"] == "STORESCP" && c["study_instance_uids"][0] == STUDY_MR));
}

#[test]
fn get_brings_stores_back_to_the_client() {
    let (_, ev) = replay(&["get.pcap"]);
    let g = commands(&ev, "C-GET");
    assert_eq!(g.len(), 1);
    assert_eq!(strs(&g[0]["study_instance_uids"]), vec![STUDY_CT]);
    assert_eq!(g[0]["sub_operations"]["completed"], 3);
    let stores = commands(&ev, "C-STORE");
    assert_eq!(stores.len(), 3);
    assert!(stores
        .iter()
        .all(|c| c["direction"] == "toclient" && c["status_class"] == "success"));
    assert!(stores
        .iter()
        .all(|c| c["study_instance_uids"][0] == STUDY_CT && c["modality"] == "CT"));
}

#[test]
fn reject_reports_codes_per_association() {
    let (_, ev) = replay(&["reject.pcap"]);
    let a = associations(&ev);
    assert_eq!(a.len(), 2);
    let called: BTreeSet<&str> = a.iter().filter_map(|a| a["called_ae"].as_str()).collect();
    assert_eq!(called, BTreeSet::from(["NOSUCHAE", "NOSUCHPACS"]));
    for a in a {
        assert_eq!(a["accepted"], false);
        assert_eq!(a["outcome"], "rejected");
        // PS3.8 §9.3.4: rejected-permanent, service-user, called-AE-title-not-recognized.
        assert_eq!(a["reject"], serde_json::json!({"result": 1, "source": 1, "reason": 7}));
        assert_eq!(a["commands"], 0);
    }
}

#[test]
fn abort_and_reset_are_told_apart() {
    let (_, ev) = replay(&["abort.pcap"]);
    let a = associations(&ev);
    assert_eq!(a.len(), 2);
    let aborted = a.iter().find(|a| a["calling_ae"] == "PYABORT").unwrap();
    assert_eq!(aborted["outcome"], "aborted");
    assert_eq!(aborted["abort"], serde_json::json!({"source": 0, "reason": 0}));
    let reset = a.iter().find(|a| a["calling_ae"] == "PYRESET").unwrap();
    assert_eq!(reset["outcome"], "reset");
    assert!(reset.get("abort").is_none());
}

#[test]
fn user_identity_names_the_user_never_the_passcode() {
    let (_, ev) = replay(&["user-identity.pcap"]);
    let a = associations(&ev);
    let two = a.iter().find(|a| a["calling_ae"] == "PYUSERID2").unwrap();
    assert_eq!(two["user_identity"]["type"], "username_passcode");
    assert_eq!(two["user_identity"]["username"], "rad1");
    let one = a.iter().find(|a| a["calling_ae"] == "PYUSERID1").unwrap();
    assert_eq!(one["user_identity"]["type"], "username");
    // Each command names the association's user, so exports are attributed as they happen.
    let echoes = commands(&ev, "C-ECHO");
    assert_eq!(echoes.len(), 2);
    assert!(echoes.iter().all(|c| c["user"] == "rad1"), "{echoes:?}");
    let text = serde_json::to_string(&ev).unwrap();
    assert!(!text.contains("secret-passcode"), "the passcode leaked into events");
}

#[test]
fn no_patient_data_in_any_event() {
    let all = [
        "echo.pcap",
        "store.pcap",
        "find.pcap",
        "move.pcap",
        "get.pcap",
        "reject.pcap",
        "abort.pcap",
        "user-identity.pcap",
    ];
    let (_, ev) = replay(&all);
    let text = serde_json::to_string(&ev).unwrap();
    for secret in ["SYNTH", "SYN0001", "SYN0002", "SYN0003", "ALPHA", "BRAVO", "CHARLIE"] {
        assert!(!text.contains(secret), "patient data {secret:?} in events");
    }
}

#[test]
fn derived_variants_decode_to_the_same_stores() {
    let (_, base) = replay(&["store.pcap"]);
    let want = store_facts(&base);
    assert_eq!(want.len(), 8);
    for variant in [
        "store.pcapng",
        "store-vlan.pcap",
        "store-ipv6.pcap",
        "store-reordered.pcap",
        "store-duplicated.pcap",
        "store-dropped.pcap",
    ] {
        let (report, ev) = replay(&[variant]);
        assert_eq!(store_facts(&ev), want, "{variant}");
        let a = associations(&ev);
        assert_eq!(a.len(), 1, "{variant}");
        assert_eq!(a[0]["outcome"], "released", "{variant}");
        if variant == "store-dropped.pcap" {
            // One 1448-byte segment inside the big CR data set is missing: reported as a
            // gap, and the decoder stays in step because it fell inside a data set value.
            assert_eq!(report.flow.gaps, 1);
            assert_eq!(report.flow.gap_bytes, 1448);
            assert_eq!(a[0]["gap_bytes"], 1448);
        } else {
            assert_eq!(report.flow.gaps, 0, "{variant}");
        }
    }
    let (_, v6) = replay(&["store-ipv6.pcap"]);
    assert_eq!(v6[0]["src_ip"], "fd00::30");
}

#[test]
fn truncated_file_keeps_what_came_before_the_damage() {
    let (report, ev) = replay(&["store-truncated.pcap"]);
    assert_eq!(report.damages.len(), 1);
    assert!(
        report.damages[0].reason.contains("truncated"),
        "{}",
        report.damages[0].reason
    );
    let stores = commands(&ev, "C-STORE");
    // tshark sees 7 C-STORE-RQ and 6 responses before the cut.
    assert_eq!(stores.len(), 7);
    assert_eq!(stores.iter().filter(|c| c["status_class"] == "success").count(), 6);
    let a = associations(&ev);
    assert_eq!(a[0]["outcome"], "incomplete");
    assert!(report
        .warnings()
        .iter()
        .any(|w| w.reason.starts_with("damaged at byte")));
}

#[test]
fn midstream_capture_still_yields_the_move() {
    let (report, ev) = replay(&["move-midstream.pcap"]);
    assert_eq!(report.flow.midstream_pickups, 1);
    let m = commands(&ev, "C-MOVE");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["move_destination"], "STORESCP");
    assert_eq!(strs(&m[0]["study_instance_uids"]), vec![STUDY_MR]);
    let a = associations(&ev);
    let blind = a
        .iter()
        .find(|a| a["request_seen"] == false)
        .expect("mid-association pickup");
    assert_eq!(blind["commands"], 1);
    // Commands flowed, so the association had been accepted before the capture began.
    assert_eq!(blind["accepted"], true);
}

#[test]
fn other_link_types_decode_the_echo() {
    for f in ["echo-qinq.pcap", "echo-sll2.pcap"] {
        let (report, ev) = replay(&[f]);
        assert_eq!(report.wire.tcp, 20, "{f}");
        let a = associations(&ev);
        assert_eq!(a.len(), 1, "{f}");
        assert_eq!(a[0]["calling_ae"], "MODALITY1", "{f}");
        assert_eq!(commands(&ev, "C-ECHO").len(), 1, "{f}");
    }
}

#[test]
fn several_files_merge_in_time_order() {
    let (_, ev) = replay(&["move.pcap", "echo.pcap", "find.pcap"]);
    let ts: Vec<&str> = ev.iter().map(|e| e["timestamp"].as_str().unwrap()).collect();
    // Association events are emitted when they end, and the three captures do not overlap
    // in time, so the echo (captured first) comes first.
    assert_eq!(ev[0]["dicom"]["command"], "C-ECHO");
    assert_eq!(associations(&ev).len(), 4);
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
}

/// Real loss is reported honestly: the summary names the association that lost bytes to the
/// capture's gap (issue 9), with its endpoints and the bytes lost.
#[test]
fn the_summary_names_the_associations_that_lost_bytes() {
    let report = pacstap::replay(pacstap::ReplayOptions::new(vec![sample("store-dropped.pcap")]), false).unwrap();
    let text = report.render_summary();
    assert!(text.contains("lost bytes             1 associations"), "{text}");
    assert!(
        text.contains("MODALITY1 → ORTHANC (10.20.0.30:52840 → 10.20.0.10:4242): 1448 bytes in 1 gap"),
        "{text}"
    );
    let clean = pacstap::replay(pacstap::ReplayOptions::new(vec![sample("store.pcap")]), false).unwrap();
    assert!(!clean.render_summary().contains("lost bytes"));
}
