//! The HTTPS half of `bulk_export`: bytes that image servers sent one client over TLS in the
//! rule's window, against `rules.bulk_export.https_bytes`.

mod common;
use common::*;
use pacstap_core::Severity;

const MB: u64 = 1_000_000;
/// The lab's PACS (inventory role `pacs`) answering HTTPS.
const PACS_TLS: &str = "10.20.0.10:443";

fn lab_with(extra: &str) -> Run {
    Run::new(&config(&format!(
        "{LAB}\n[rules.bulk_export]\nhttps_bytes = 100_000_000\n{extra}"
    )))
}

#[test]
fn a_client_downloading_above_the_volume_fires_once_with_its_servers() {
    let mut r = lab_with("");
    // 30 MB per connection, one a minute: the 4th passes 100 MB.
    for i in 0..6 {
        let f = flow(&format!("10.20.30.31:{}", 40000 + i), PACS_TLS);
        r.feed(tls_download(i * MIN, f, Some("pacs.example.test"), 30 * MB));
    }
    r.finish();
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 120 * MB)]);
    let first = &r.of_rule("bulk_export")[0];
    assert_eq!(first.threshold, Some(100 * MB));
    assert_eq!(first.severity, Severity::High);
    assert_eq!(first.evidence.flow_ids_total, 4);
    assert_eq!(first.evidence.destinations, vec!["10.20.30.31"]);
    assert_eq!(first.evidence.study_instance_uids_total, 0);
    assert!(
        first.summary.contains("downloaded 120.0 MB over HTTPS")
            && first.summary.contains("threshold 100.0 MB")
            && first.summary.contains("pacs.example.test (10.20.0.10:443)"),
        "{}",
        first.summary
    );
    assert!(
        // An internal client is a device to find first, not one to isolate blind (issue 12).
        first.response[0].contains("find the device and person behind 10.20.30.31"),
        "{:?}",
        first.response
    );
    assert!(
        first.response[1].contains("access logs of pacs.example.test"),
        "{:?}",
        first.response
    );
    let last = r.of_rule("bulk_export").into_iter().last().cloned().unwrap();
    assert_eq!(last.count, 180 * MB, "the incident grew by the later downloads");
    assert_eq!(r.det.stats().https_bytes, 180 * MB);
}

#[test]
fn normal_viewing_stays_below_the_volume() {
    let mut r = lab_with("");
    // A viewer pulling 5 MB every two minutes all morning: at most 75 MB in any 30 minutes.
    for i in 0..120 {
        let f = flow("10.20.30.31:40000", PACS_TLS);
        r.feed(tls_download(i * 2 * MIN, f, Some("pacs.example.test"), 5 * MB));
    }
    r.finish();
    r.assert_silent("steady viewing");
}

#[test]
fn uploads_and_other_servers_do_not_count() {
    let mut r = lab_with("");
    // An internal HTTPS server that is not an image server (software updates).
    for i in 0..5 {
        let f = flow("10.20.30.31:40000", "10.20.9.9:443");
        r.feed(tls_download(i * SEC, f, Some("updates.example.test"), 500 * MB));
    }
    // Uploads to the PACS: bytes to the server, not to the client.
    let mut up = tls_download(MIN, flow("10.20.30.31:1", PACS_TLS), None, 0);
    if let pacstap_core::EventBody::Tls(t) = &mut up.body {
        t.bytes_toserver = 900 * MB;
    }
    r.feed(up);
    r.finish();
    r.assert_silent("not downloads from an image server");
}

#[test]
fn explicit_servers_replace_the_inventory_and_replication_is_not_a_download() {
    let mut r = lab_with("https_servers = [\"10.20.5.0/24\"]\n");
    // The inventory PACS no longer counts ...
    r.feed(tls_download(0, flow("10.20.30.31:1", PACS_TLS), None, 500 * MB));
    r.assert_silent("10.20.0.10 is not in https_servers");
    // ... the viewer front end does; between two listed servers it is replication.
    r.feed(tls_download(SEC, flow("10.20.5.6:1", "10.20.5.7:443"), None, 500 * MB));
    r.assert_silent("server to server");
    r.feed(tls_download(
        2 * SEC,
        flow("10.20.30.31:2", "10.20.5.7:443"),
        Some("viewer.example.test"),
        500 * MB,
    ));
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 500 * MB)]);
}

#[test]
fn without_image_servers_in_the_config_any_internal_tls_server_counts() {
    let mut r = Run::new(&config("[rules.bulk_export]\nhttps_bytes = 100_000_000\n"));
    r.feed(tls_download(0, flow("10.20.30.31:1", "10.20.9.9:443"), None, 150 * MB));
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 150 * MB)]);
    // An outside server is not ours to export from.
    let mut r = Run::new(&config("[rules.bulk_export]\nhttps_bytes = 100_000_000\n"));
    r.feed(tls_download(
        0,
        flow("10.20.30.31:1", "198.51.100.9:443"),
        None,
        150 * MB,
    ));
    r.assert_silent("external server");
}

#[test]
fn the_window_slides_and_the_rule_rearms() {
    let mut r = lab_with("");
    let f = || flow("10.20.30.31:1", PACS_TLS);
    r.feed(tls_download(0, f(), None, 60 * MB));
    r.feed(tls_download(29 * MIN, f(), None, 60 * MB));
    assert_eq!(r.fired().len(), 1, "120 MB within 30 minutes");
    // The first download leaves the window: back to 60 MB, the incident closes.
    r.tick(31 * MIN);
    r.feed(tls_download(40 * MIN, f(), None, 30 * MB));
    assert_eq!(r.fired().len(), 1, "90 MB: still one incident");
    r.tick(2 * HOUR);
    r.feed(tls_download(2 * HOUR + MIN, f(), None, 60 * MB));
    r.feed(tls_download(2 * HOUR + 2 * MIN, f(), None, 60 * MB));
    assert_eq!(r.fired().len(), 2, "re-armed: a new incident");
}

#[test]
fn exempt_addresses_and_a_zero_threshold_are_silent() {
    let mut r = Run::new(&config(&format!(
        "{}\n[rules.bulk_export]\nhttps_bytes = 100_000_000\n",
        LAB.replace(
            "service_accounts = [\"ROUTER\", \"prefetch\"]",
            "service_accounts = [\"ROUTER\", \"10.20.30.31\"]"
        )
    )));
    r.feed(tls_download(0, flow("10.20.30.31:1", PACS_TLS), None, 500 * MB));
    r.assert_silent("a service account's address");
    assert_eq!(r.det.stats().exports_exempt, 1);
    let mut r = Run::new(&config(&format!("{LAB}\n[rules.bulk_export]\nhttps_bytes = 0\n")));
    r.feed(tls_download(0, flow("10.20.30.31:1", PACS_TLS), None, 5_000 * MB));
    r.assert_silent("https_bytes = 0 turns the volume off");
}

#[test]
fn the_default_volume_is_two_gigabytes_in_the_rule_window() {
    let mut r = Run::lab();
    let f = || flow("10.20.30.31:1", PACS_TLS);
    r.feed(tls_download(0, f(), None, 1_900 * MB));
    r.assert_silent("1.9 GB");
    r.feed(tls_download(10 * MIN, f(), None, 200 * MB));
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 2_100 * MB)]);
    assert_eq!(r.of_rule("bulk_export")[0].window_seconds, Some(1800));
}

#[test]
fn studies_and_volume_of_one_address_stay_one_incident() {
    // An address that both retrieves studies over plain HTTP without a user and downloads over
    // HTTPS: one bulk_export incident, counted in the unit that opened it.
    let mut r = lab_with("");
    let web = flow("10.20.30.31:1", "10.20.0.10:8042");
    for i in 0..16 {
        r.feed(wado(i * SEC, web, None, &study(i)));
    }
    r.feed(tls_download(MIN, flow("10.20.30.31:2", PACS_TLS), None, 500 * MB));
    r.finish();
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 16)]);
    let last = r.of_rule("bulk_export").into_iter().last().cloned().unwrap();
    assert_eq!(last.threshold, Some(15), "still counted in studies");
}

#[test]
fn hostile_tls_totals_and_names_are_bounded() {
    let mut r = lab_with("");
    // A huge SNI, totals that would overflow a sum, and far more connections than a window
    // keeps: the sum saturates, the items merge, the label is cut.
    let sni = "é".repeat(2000);
    for i in 0..2_000 {
        let f = flow("10.20.30.31:1", PACS_TLS);
        r.feed(tls_download(i * SEC / 10, f, Some(&sni), u64::MAX / 3));
    }
    r.finish();
    let last = r.of_rule("bulk_export").into_iter().last().cloned().unwrap();
    assert_eq!(last.count, u64::MAX, "saturated, not wrapped");
    assert!(last.summary.len() < 4_000, "{}", last.summary.len());
    assert!(
        r.det.stats().window_items_dropped > 0,
        "merges at the window cap are counted"
    );
    assert_eq!(r.fired().len(), 1);
}
