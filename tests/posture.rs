//! Posture events (issue 13) on a real scenario capture: DICOM in clear is reported once per
//! system, not once per association, and each posture event follows the event that showed it.

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn server(v: &Value) -> String {
    let ip: std::net::IpAddr = v["dest_ip"].as_str().unwrap().parse().unwrap();
    let port = u16::try_from(v["dest_port"].as_u64().unwrap()).unwrap();
    std::net::SocketAddr::new(ip, port).to_string()
}

#[test]
fn dicom_in_clear_is_one_posture_event_per_system() {
    let (_, events) = common::replay(&["scenarios/bulk-export-move.pcap"]);
    let assocs: Vec<&Value> = events.iter().filter(|e| e["dicom"]["type"] == "association").collect();
    let servers: BTreeSet<String> = assocs.iter().map(|a| server(a)).collect();
    let mut per_system: BTreeMap<String, u64> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if e["event_type"] != "posture" || e["posture"]["finding"] != "dicom_in_clear" {
            continue;
        }
        let p = &e["posture"];
        *per_system.entry(p["system"].as_str().unwrap().to_string()).or_default() += 1;
        assert_eq!(p["protocol"], "dicom");
        assert_eq!(p["count"], 1, "first sighting: {p}");
        // Right after the association that showed it, on its flow.
        let prev = &events[i - 1];
        assert_eq!(prev["dicom"]["type"], "association", "{prev}");
        assert_eq!(prev["flow_id"], e["flow_id"]);
        assert_eq!(p["flow_ids"], serde_json::json!([e["flow_id"]]));
    }
    assert!(
        assocs.len() > servers.len(),
        "{} associations, {servers:?}",
        assocs.len()
    );
    assert_eq!(per_system.keys().cloned().collect::<BTreeSet<_>>(), servers);
    assert!(per_system.values().all(|&n| n == 1), "{per_system:?}");
}
