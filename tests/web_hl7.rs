//! End-to-end facts over the real DICOMweb, HTTPS and HL7/MLLP captures (pcap-samples/README.md
//! part 2 says how each was made; tshark's view is in tshark-web-*.tsv).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn of_type<'a>(ev: &'a [Value], t: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event_type"] == t).collect()
}

#[test]
fn dicomweb_transactions_users_and_services() {
    let (_, ev) = replay(&["dicomweb.pcap"]);
    let http = of_type(&ev, "http");
    assert_eq!(http.len(), 16, "one event per request/response pair");
    let by_status = http.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e["http"]["status"].as_u64().unwrap_or(0)).or_insert(0) += 1;
        m
    });
    assert_eq!(by_status, BTreeMap::from([(200, 11), (401, 5)]));
    // Failed logins carry the user (never the password): 3 wrong passwords for rad1, one
    // unauthenticated request, one JWT whose `sub` is rad2.
    let failed_users: Vec<String> = http
        .iter()
        .filter(|e| e["http"]["status"] == 401)
        .map(|e| e["http"]["user"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(failed_users, vec!["-", "rad1", "rad1", "rad1", "rad2"]);
    let mut services = BTreeMap::new();
    for e in &http {
        if let Some(s) = e["http"]["dicomweb"]["service"].as_str() {
            *services.entry(s.to_owned()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        services,
        BTreeMap::from([
            ("QIDO-RS".into(), 9),
            ("STOW-RS".into(), 1),
            ("WADO-RS".into(), 2),
            ("WADO-URI".into(), 2)
        ])
    );
    // The WADO-RS retrieval of the CT study names it: an export of that study.
    let wado = http
        .iter()
        .find(|e| e["http"]["url"] == format!("/dicom-web/studies/{STUDY_CT}"))
        .expect("WADO-RS of the study");
    assert_eq!(wado["http"]["dicomweb"]["service"], "WADO-RS");
    assert_eq!(wado["http"]["dicomweb"]["study_instance_uid"], STUDY_CT);
    assert_eq!(wado["http"]["user"], "rad1");
    assert!(
        wado["http"]["response_bytes"].as_u64().unwrap() > 27_000,
        "three CT instances came back"
    );
    let uri = http
        .iter()
        .find(|e| e["http"]["dicomweb"]["service"] == "WADO-URI")
        .unwrap();
    assert_eq!(uri["http"]["dicomweb"]["sop_instance_uid"], format!("{STUDY_CT}.1.1"));
    assert_eq!(uri["http"]["hostname"], "10.20.0.10");
    // The admin's node configuration change is flagged.
    let put = http.iter().find(|e| e["http"]["method"] == "PUT").unwrap();
    assert_eq!(put["http"]["url"], "/modalities/NEWNODE");
    assert_eq!(put["http"]["user"], "admin");
    assert!(put["http"]["admin_action"].is_string(), "{put}");
    let text = serde_json::to_string(&ev).unwrap();
    for secret in ["rad1-pass", "wrong-pass", "admin-pass", "cmFkMTpyYWQxLXBhc3M", "eyJ"] {
        assert!(!text.contains(secret), "credential {secret:?} leaked into events");
    }
}

#[test]
fn tls12_metadata_and_ja3() {
    let (_, ev) = replay(&["https-tls12.pcap"]);
    let tls = of_type(&ev, "tls");
    assert_eq!(tls.len(), 1);
    let t = &tls[0]["tls"];
    assert_eq!(t["sni"], "pacs.example.test");
    assert_eq!(t["version"], "TLS 1.2");
    assert_eq!(t["ja3"], "87b9bfc7da97115ed2276737b09f8d74");
    assert_eq!(strs(&t["alpn"]), vec!["http/1.1"]);
    // The 204,800-byte file went to the client, encrypted: visible as volume.
    assert!(t["bytes_toclient"].as_u64().unwrap() > 204_800, "{t}");
    assert_eq!(tls[0]["dest_port"], 443);
    // TLS 1.2 sends the certificate in the clear.
    assert_eq!(
        t["certificate"]["subject"],
        "O=pacstap synthetic lab, CN=pacs.example.test"
    );
    assert_eq!(strs(&t["certificate"]["dns_names"]), vec!["pacs.example.test"]);
}

#[test]
fn tls13_version_from_supported_versions_and_two_clients() {
    let (_, ev) = replay(&["https-tls13.pcap"]);
    let tls = of_type(&ev, "tls");
    assert_eq!(tls.len(), 2);
    let mut ja3: Vec<&str> = tls.iter().map(|e| e["tls"]["ja3"].as_str().unwrap()).collect();
    ja3.sort();
    assert_eq!(
        ja3,
        vec!["0149f47eabf9a20d0893e2a44e5a6323", "5a1edc7f170af1014fc65c994878e63c"]
    );
    assert!(tls
        .iter()
        .all(|e| e["tls"]["version"] == "TLS 1.3" && e["tls"]["sni"] == "pacs.example.test"));
    let openssl = tls
        .iter()
        .find(|e| e["tls"]["ja3"] == "5a1edc7f170af1014fc65c994878e63c")
        .unwrap();
    assert_eq!(strs(&openssl["tls"]["alpn"]), vec!["h2", "http/1.1"]);
    assert!(tls
        .iter()
        .all(|e| e["tls"]["ja4"].as_str().is_some_and(|j| j.starts_with("t13d"))));
}

#[test]
fn hl7_messages_and_acks_without_patient_data() {
    let (_, ev) = replay(&["hl7-mllp.pcap"]);
    let hl7 = of_type(&ev, "hl7");
    let messages: Vec<(String, String)> = hl7
        .iter()
        .filter(|e| e["hl7"]["ack_code"].is_null())
        .map(|e| {
            (
                e["hl7"]["message_type"].as_str().unwrap().to_owned(),
                e["hl7"]["control_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("ADT^A01", "PTADT0001"),
        ("ORM^O01", "PTORM0002"),
        ("ORU^R01", "PTORU0003"),
        ("MFN^M02", "PTMFN0004"),
        ("ADT^A08", "PTADT0005"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let types: Vec<(String, String)> = messages
        .iter()
        .map(|(t, c)| (t.split('^').take(2).collect::<Vec<_>>().join("^"), c.clone()))
        .collect();
    assert_eq!(types, want);
    let acks: Vec<&str> = hl7.iter().filter_map(|e| e["hl7"]["ack_code"].as_str()).collect();
    assert_eq!(acks, vec!["AA", "AE", "AA", "AR", "AA"]);
    let first = &hl7[0]["hl7"];
    assert_eq!(first["version"], "2.5");
    assert!(first["sending_application"].is_string());
    let text = serde_json::to_string(&ev).unwrap();
    for secret in ["SYNTH", "ALPHA", "19700101", "SYN0001"] {
        assert!(!text.contains(secret), "patient data {secret:?} in events");
    }
}

#[test]
fn hl7_is_found_by_content_on_a_nonstandard_port() {
    let (_, ev) = replay(&["hl7-nonstandard-port.pcap"]);
    let hl7 = of_type(&ev, "hl7");
    assert_eq!(hl7.len(), 4, "two messages and their ACKs on port 6661");
    assert_eq!(hl7[0]["dest_port"], 6661);
    let ids: Vec<&str> = hl7.iter().filter_map(|e| e["hl7"]["control_id"].as_str()).collect();
    assert!(ids.contains(&"PTADT0006") && ids.contains(&"PTADT0007"), "{ids:?}");
}
