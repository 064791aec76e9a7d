//! Each rule fires on its scenario with the exact (rule, entity, count), and stays silent on
//! benign traffic.

mod common;
use common::*;
use pacstap_core::{DicomEvent, EventBody, Hl7Event, Severity};
use pacstap_detect::Rule;

const WS: &str = "10.20.30.40:50000";
const PACS: &str = "10.20.0.10:4242";
const WEB: &str = "10.20.0.10:8042";

// ---- login_failures_user / login_failures_source ----

#[test]
fn rejected_associations_fire_per_user_and_ae() {
    let mut r = Run::lab();
    for i in 0..9 {
        r.feed(assoc(i * 20 * SEC, flow(WS, PACS), "WS9", "PACS1", false, Some("rad2")));
    }
    assert_eq!(
        r.fired(),
        vec![
            fired("login_failures_user", "user", "rad2", 9),
            fired("login_failures_user", "ae", "WS9", 9),
        ]
    );
    let a = &r.of_rule("login_failures_user")[0];
    assert_eq!(a.threshold, Some(8));
    assert_eq!(a.window_seconds, Some(600));
    assert_eq!(a.severity, Severity::Warning);
    assert_eq!(a.evidence.flow_ids_total, 9);
    assert_eq!(a.first_seen, ts(0));
    assert_eq!(a.last_seen, ts(8 * 20 * SEC));
    assert!(
        a.summary.contains("rad2") && a.summary.contains("9 times"),
        "{}",
        a.summary
    );
    assert!(a.response[0].contains("lock account rad2"), "{:?}", a.response);
    assert!(a.response.iter().any(|s| s.starts_with("preserve evidence")));
    assert!(a.response.iter().any(|s| s.starts_with("scope")));
    assert!(a.response.iter().any(|s| s.starts_with("reset")));
}

#[test]
fn http_401_on_authenticated_requests_are_failures() {
    let mut r = Run::lab();
    for i in 0..9 {
        r.feed(login(i * SEC, flow(WS, WEB), 401, "rad3"));
    }
    // Unauthenticated 401s (the browser's first request before the challenge) are not.
    for i in 0..30 {
        let f = flow("10.20.30.41:1", WEB);
        r.feed(http_ev(i * SEC, f, http(i * SEC, f, "GET", "/", 401, None)));
    }
    assert_eq!(r.fired(), vec![fired("login_failures_user", "user", "rad3", 9)]);
}

#[test]
fn many_accounts_from_one_source_fire_per_source() {
    let mut r = Run::lab();
    for i in 0..21 {
        let ae = format!("SCAN{}", i % 7);
        r.feed(assoc(
            i * 10 * SEC,
            flow("10.20.99.5:40000", PACS),
            &ae,
            "PACS1",
            false,
            None,
        ));
    }
    assert_eq!(r.fired(), vec![fired("login_failures_source", "ip", "10.20.99.5", 21)]);
    let a = &r.of_rule("login_failures_source")[0];
    assert_eq!(a.threshold, Some(20));
    assert!(a.summary.contains("SCAN0"), "{}", a.summary);
    // An internal address: find the device first, never isolate a scanner blind.
    assert!(
        a.response[0].contains("find the device and person behind 10.20.99.5"),
        "{:?}",
        a.response
    );
}

#[test]
fn one_incident_is_one_alert_then_rearms() {
    let mut r = Run::lab();
    // 30 failures in 5 minutes: one alert, updates as it grows.
    for i in 0..30 {
        r.feed(login(i * 10 * SEC, flow(WS, WEB), 401, "rad2"));
    }
    let first: Vec<_> = r
        .of_rule("login_failures_user")
        .into_iter()
        .filter(|a| !a.update)
        .collect();
    assert_eq!(first.len(), 1);
    let updates: Vec<_> = r
        .of_rule("login_failures_user")
        .into_iter()
        .filter(|a| a.update)
        .collect();
    assert!(!updates.is_empty(), "the incident grew: updates expected");
    assert!(updates.len() <= 3, "updates are rate-limited: {}", updates.len());
    assert!(updates.windows(2).all(|w| w[0].count <= w[1].count));
    // Quiet for longer than the window: the count falls to zero, the rule re-arms.
    r.tick(20 * MIN);
    let before = r.out.len();
    for i in 0..8 {
        r.feed(login(21 * MIN + i * SEC, flow(WS, WEB), 401, "rad2"));
    }
    assert_eq!(r.out.len(), before, "8 is not above the threshold");
    r.feed(login(22 * MIN, flow(WS, WEB), 401, "rad2"));
    let first: Vec<_> = r
        .of_rule("login_failures_user")
        .into_iter()
        .filter(|a| !a.update)
        .collect();
    assert_eq!(first.len(), 2, "re-armed after falling back: a new incident");
    assert_eq!(first[1].count, 9);
}

#[test]
fn slow_failures_never_fill_the_window() {
    let mut r = Run::lab();
    // One failure every two minutes all day: at most 5 in any 10 minutes.
    for i in 0..300 {
        r.feed(login(i * 2 * MIN, flow(WS, WEB), 401, "rad2"));
    }
    r.assert_silent("slow failures");
}

// ---- login_success_after_failures ----

#[test]
fn success_right_after_a_failure_burst_fires_once() {
    let mut r = Run::lab();
    for i in 0..6 {
        r.feed(login(i * SEC, flow("10.20.30.31:1", WEB), 401, "rad1"));
    }
    r.feed(login(10 * SEC, flow("10.20.30.31:1", WEB), 200, "rad1"));
    r.feed(login(11 * SEC, flow("10.20.30.31:1", WEB), 200, "rad1"));
    assert_eq!(
        r.fired(),
        vec![fired("login_success_after_failures", "user", "rad1", 6)]
    );
    let a = &r.of_rule("login_success_after_failures")[0];
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.evidence.flow_ids_total, 7);
    assert!(a.summary.contains("10.20.30.31"), "{}", a.summary);
    assert!(a.response[0].contains("disable account rad1"), "{:?}", a.response);
}

#[test]
fn a_typo_then_success_is_not_a_burst() {
    let mut r = Run::lab();
    r.feed(login(0, flow("10.20.30.31:1", WEB), 401, "rad1"));
    r.feed(login(5 * SEC, flow("10.20.30.31:1", WEB), 200, "rad1"));
    r.assert_silent("one typo");
}

// ---- new_device ----

#[test]
fn known_user_from_a_new_device_fires() {
    let mut r = Run::lab();
    // rad1 is in the inventory with 10.20.30.31.
    r.feed(login(0, flow("10.20.30.31:1", WEB), 200, "rad1"));
    r.assert_silent("inventory device");
    r.feed(login(MIN, flow("10.20.77.7:1", WEB), 200, "rad1"));
    assert_eq!(r.fired(), vec![fired("new_device", "user", "rad1", 1)]);
    let a = &r.of_rule("new_device")[0];
    assert!(a.summary.contains("10.20.77.7"), "{}", a.summary);
    assert!(a.response[0].contains("10.20.77.7") && a.response[0].contains("disable account rad1"));
    // The device is learned: no second alert.
    r.feed(login(2 * MIN, flow("10.20.77.7:1", WEB), 200, "rad1"));
    assert_eq!(r.of_rule("new_device").len(), 1);
}

#[test]
fn learned_user_from_a_new_device_fires_and_never_seen_users_are_learned_silently() {
    let mut r = Run::lab();
    r.feed(login(0, flow("10.20.30.50:1", WEB), 200, "rad4"));
    r.assert_silent("first sighting is learned");
    r.feed(login(HOUR, flow("10.20.30.50:1", WEB), 200, "rad4"));
    r.assert_silent("same device");
    r.feed(login(2 * HOUR, flow("10.20.30.51:1", WEB), 200, "rad4"));
    assert_eq!(r.fired(), vec![fired("new_device", "user", "rad4", 1)]);
    // Failed attempts from yet another device count as failures, not devices.
    r.feed(login(3 * HOUR, flow("10.20.30.52:1", WEB), 401, "rad4"));
    assert_eq!(r.of_rule("new_device").len(), 1);
}

#[test]
fn ae_from_a_new_address_fires() {
    let mut r = Run::lab();
    r.feed(assoc(0, flow("10.20.30.31:1", PACS), "WS1", "PACS1", true, None));
    r.assert_silent("WS1 at its inventory address");
    r.feed(assoc(MIN, flow("10.20.30.99:1", PACS), "WS1", "PACS1", true, None));
    assert_eq!(r.fired(), vec![fired("new_device", "ae", "WS1", 1)]);
    // WS1 is an inventory node: checked with its owner, never blocked as if unknown.
    let steps = &r.of_rule("new_device")[0].response;
    assert!(steps[0].contains("AE WS1 (an inventory node)"), "{steps:?}");
    assert!(!steps.join(" ").contains("block AE WS1"), "{steps:?}");
}

#[test]
fn user_identity_on_an_association_is_a_login() {
    let mut r = Run::lab();
    r.feed(assoc(
        0,
        flow("10.20.30.31:1", PACS),
        "WS1",
        "PACS1",
        true,
        Some("rad1"),
    ));
    r.feed(assoc(
        MIN,
        flow("10.20.30.31:2", PACS),
        "WS1",
        "PACS1",
        true,
        Some("rad1"),
    ));
    r.assert_silent("rad1 on WS1");
    // rad1's credentials used from WS2.
    r.feed(assoc(
        2 * MIN,
        flow("10.20.30.32:1", PACS),
        "WS2",
        "PACS1",
        true,
        Some("rad1"),
    ));
    assert_eq!(r.fired(), vec![fired("new_device", "user", "rad1", 1)]);
}

#[test]
fn tls_fingerprint_is_a_device() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", "10.20.0.10:443");
    r.feed(tls_ev(0, f, "t13d1516h2_8daaf6152771_e5627efa2ab1"));
    r.feed(login(SEC, f, 200, "rad1"));
    r.assert_silent("first fingerprint of a user is learned with its first login");
    let g = flow("10.20.30.31:2", "10.20.0.10:443");
    r.feed(tls_ev(MIN, g, "t13d1516h2_8daaf6152771_000000000000"));
    r.feed(login(MIN + SEC, g, 200, "rad1"));
    assert_eq!(r.fired(), vec![fired("new_device", "user", "rad1", 1)]);
    assert!(r.of_rule("new_device")[0]
        .summary
        .contains("ja4:t13d1516h2_8daaf6152771_000000000000"));
}

#[test]
fn learning_period_learns_silently() {
    let cfg = config(&format!("{LAB}\n[detect]\nlearning_period = \"1d\"\n"));
    let mut r = Run::new(&cfg);
    r.feed(login(0, flow("10.20.30.50:1", WEB), 200, "rad4"));
    r.feed(login(HOUR, flow("10.20.30.51:1", WEB), 200, "rad4"));
    r.assert_silent("second device inside the learning period");
    r.feed(login(2 * DAY, flow("10.20.30.51:1", WEB), 200, "rad4"));
    r.assert_silent("learned during the period");
    r.feed(login(2 * DAY + HOUR, flow("10.20.30.52:1", WEB), 200, "rad4"));
    assert_eq!(r.fired(), vec![fired("new_device", "user", "rad4", 1)]);
}

// ---- new_location ----

fn geo_csv() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("pacstap-detect-geo-{}.csv", std::process::id()));
    std::fs::write(&p, "network,country\n203.0.113.0/24,FR\n198.51.100.0/24,DE\n").expect("write csv");
    p
}

#[test]
fn new_country_fires_with_a_csv_database() {
    let csv = geo_csv();
    let cfg = config(&format!("{LAB}\n[geoip]\ncsv = {:?}\n", csv.display().to_string()));
    let mut r = Run::new(&cfg);
    // The database is read once, when the rules are built: nothing needs the file after.
    std::fs::remove_file(&csv).expect("remove the csv");
    r.feed(login(0, flow("203.0.113.5:1", WEB), 200, "ext1"));
    r.feed(login(HOUR, flow("203.0.113.5:1", WEB), 200, "ext1"));
    r.assert_silent("first country learned");
    r.feed(login(2 * HOUR, flow("198.51.100.7:1", WEB), 200, "ext1"));
    let rules: Vec<String> = r.fired().into_iter().map(|f| f.0).collect();
    assert_eq!(rules, vec!["new_device", "new_location"]);
    let a = &r.of_rule("new_location")[0];
    assert_eq!((a.entity.kind.as_str(), a.entity.id.as_str()), ("user", "ext1"));
    assert!(a.summary.contains("DE") && a.summary.contains("FR"), "{}", a.summary);
    assert!(r.det.stats().geoip_hits >= 3);
}

#[test]
fn new_location_is_skipped_without_a_database() {
    let mut r = Run::lab();
    r.feed(login(0, flow("203.0.113.5:1", WEB), 200, "ext1"));
    r.feed(login(HOUR, flow("198.51.100.7:1", WEB), 200, "ext1"));
    assert!(r.of_rule("new_location").is_empty());
    assert_eq!(r.det.stats().geoip_lookups, 0);
}

// ---- admin_change ----

#[test]
fn admin_actions_fire_immediately() {
    let mut r = Run::lab();
    r.feed(admin_http(0, flow(WS, WEB), "itadmin", "keycloak_user_create", 201));
    assert_eq!(r.fired(), vec![fired("admin_change", "user", "itadmin", 1)]);
    let a = &r.of_rule("admin_change")[0];
    assert_eq!(a.threshold, None);
    assert!(a.summary.contains("keycloak_user_create"), "{}", a.summary);
    // A refused attempt is not a change (and counts as a failed login).
    r.feed(admin_http(SEC, flow(WS, WEB), "rad2", "keycloak_role_mapping", 403));
    assert_eq!(r.of_rule("admin_change").len(), 1);
    // More changes by the same admin in the window: the same incident.
    for i in 0..12 {
        r.feed(admin_http(
            MIN + i * SEC,
            flow(WS, WEB),
            "itadmin",
            "keycloak_user_update",
            204,
        ));
    }
    assert_eq!(r.fired().len(), 1);
    let last = r.of_rule("admin_change").into_iter().last().cloned();
    assert!(last.is_some_and(|a| a.update && a.count >= 11));
}

#[test]
fn hl7_master_file_change_fires() {
    let mut r = Run::lab();
    let f = flow("10.20.0.70:40000", "10.20.0.60:2575");
    let mut m: Hl7Event = hl7(0, f, "MFN^M02^MFN_M02");
    // The admin record type is not re-exported by core; fill it in place.
    m.admin_event = Some(Default::default());
    if let Some(adm) = m.admin_event.as_mut() {
        adm.kind = "staff_master_file_change".into();
        adm.master_file_id = Some("STF".into());
        adm.records_total = 1;
    }
    r.feed(hl7_ev(0, f, m));
    assert_eq!(r.fired(), vec![fired("admin_change", "ip", "10.20.0.70", 1)]);
    assert!(r.of_rule("admin_change")[0]
        .summary
        .contains("staff_master_file_change"));
}

#[test]
fn dicom_node_moving_to_a_new_address_is_a_node_change() {
    let mut r = Run::lab();
    r.feed(assoc(0, flow("10.20.30.31:1", PACS), "WS1", "PACS1", true, None));
    r.assert_silent("PACS1 at its address");
    r.feed(assoc(
        MIN,
        flow("10.20.30.31:2", "10.20.0.99:4242"),
        "WS1",
        "PACS1",
        true,
        None,
    ));
    assert_eq!(r.fired(), vec![fired("admin_change", "ae", "PACS1", 1)]);
    assert!(r.of_rule("admin_change")[0].summary.contains("10.20.0.99"));
}

// ---- bulk_export ----

#[allow(clippy::too_many_arguments)]
fn move_studies(
    r: &mut Run,
    t0: i64,
    client: &str,
    calling: &str,
    dest: &str,
    user: Option<&str>,
    n: usize,
    step: i64,
) {
    let f = flow(client, PACS);
    for i in 0..n {
        let mut ev = cmove(t0 + i as i64 * step, f, calling, "PACS1", dest, &[&study(i)]);
        // As the decoder does: each command carries the A-ASSOCIATE-RQ's user identity.
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
            c.user = user.map(str::to_string);
        }
        r.feed(ev);
    }
    r.feed(assoc(t0 + n as i64 * step, f, calling, "PACS1", true, user));
}

#[test]
fn bulk_move_by_an_ae_fires_with_its_studies() {
    let mut r = Run::lab();
    move_studies(&mut r, 0, "10.20.30.32:1", "WS2", "WS2", None, 16, MIN);
    assert_eq!(r.fired(), vec![fired("bulk_export", "ae", "WS2", 16)]);
    let a = &r.of_rule("bulk_export")[0];
    assert_eq!(a.threshold, Some(15));
    assert_eq!(a.window_seconds, Some(1800));
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.evidence.study_instance_uids_total, 16);
    assert_eq!(a.evidence.study_instance_uids.len(), 16);
    assert!(a.evidence.study_instance_uids.contains(&study(0)));
    assert!(a.summary.contains("AE WS2"), "{}", a.summary);
    assert!(
        a.response[0].contains("owner of AE WS2 (an inventory node)"),
        "{:?}",
        a.response
    );
    assert!(
        a.response.iter().any(|s| s.contains("users.service_accounts")),
        "{:?}",
        a.response
    );
}

#[test]
fn commands_naming_their_user_are_attributed_at_once() {
    // The decoder copies the association's user identity onto each command: the export is
    // the user's as it happens, with no wait for the association's end (an admin's long
    // association must not fall back to its AE).
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", PACS);
    for i in 0..16 {
        let mut ev = cmove(i * MIN, f, "WS1", "PACS1", "WS1", &[&study(i)]);
        if let EventBody::Dicom(DicomEvent::Command(c)) = &mut ev.body {
            c.user = Some("rad1".into());
        }
        r.feed(ev);
    }
    assert_eq!(r.fired(), vec![fired("bulk_export", "user", "rad1", 16)]);
    assert!(r.of_rule("bulk_export").iter().all(|a| a.entity.kind == "user"));
}

#[test]
fn bulk_move_is_attributed_to_the_user_identity() {
    let mut r = Run::lab();
    // rad1 logs in from WS1 (its device) and moves 20 studies to WS1 in one association.
    move_studies(&mut r, 0, "10.20.30.31:1", "WS1", "WS1", Some("rad1"), 20, 5 * SEC);
    // The commands name rad1 (the decoder copies the identity from the A-ASSOCIATE-RQ): the
    // alert fires on the 16th study, as it happens, and the rest grow the same incident.
    assert_eq!(r.fired(), vec![fired("bulk_export", "user", "rad1", 16)]);
    let a = r.of_rule("bulk_export")[0].clone();
    assert_eq!(a.last_seen, ts(15 * 5 * SEC), "fired on the 16th study's C-MOVE");
    r.finish();
    let last = r.of_rule("bulk_export").into_iter().last().unwrap();
    assert_eq!(last.count, 20, "the last update counts all");
    assert!(
        a.response[0].contains("disable account rad1 or revoke its sessions"),
        "{:?}",
        a.response
    );
    assert_eq!(
        a.first_seen,
        ts(0),
        "first_seen is the first export, not the association end"
    );
}

#[test]
fn long_midstream_associations_are_attributed_to_the_address_consistently() {
    let mut r = Run::lab();
    // 40 studies over 20 minutes in one association decoded without its A-ASSOCIATE-RQ (no
    // calling AE, so no word on a user identity): the wait runs out after 5 minutes.
    move_studies(&mut r, 0, "10.20.30.31:1", "", "WS1", None, 40, 30 * SEC);
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.31", 16)]);
    assert_eq!(r.det.stats().identity_wait_expired, 1);
}

#[test]
fn held_midstream_exports_fall_back_to_the_client_address() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:1", PACS);
    for i in 0..16 {
        r.feed(cmove(i * SEC, f, "", "PACS1", "WS2", &[&study(i as usize)]));
    }
    r.assert_silent("waiting for the association's user identity");
    r.tick(5 * MIN);
    assert_eq!(r.fired(), vec![fired("bulk_export", "ip", "10.20.30.32", 16)]);
    assert_eq!(r.det.stats().identity_wait_expired, 1);
}

#[test]
fn bulk_wado_by_a_web_user_fires_and_grows() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", WEB);
    for i in 0..60 {
        r.feed(wado(i * 10 * SEC, f, Some("rad1"), &study(i)));
    }
    assert_eq!(r.fired(), vec![fired("bulk_export", "user", "rad1", 16)]);
    let all = r.of_rule("bulk_export");
    let updates: Vec<_> = all.iter().filter(|a| a.update).collect();
    assert!(!updates.is_empty());
    // 450 s of growth after firing: at most one update a minute, plus jumps of 15 studies.
    assert!(updates.len() <= 10, "bounded update rate: {}", updates.len());
    assert!(updates
        .last()
        .is_some_and(|a| a.count >= 55 && a.evidence.study_instance_uids_total >= 55));
    // Repeated retrievals of the same studies are not new studies.
    let n = r.out.len();
    for i in 0..60 {
        r.feed(wado(10 * MIN + i * SEC, f, Some("rad1"), &study(i % 5)));
    }
    assert!(r.out[n..]
        .iter()
        .all(|e| matches!(&e.body, pacstap_core::EventBody::Alert(a) if a.update)));
    assert_eq!(r.fired().len(), 1);
}

#[test]
fn failed_moves_are_not_exports() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:1", PACS);
    for i in 0..30 {
        r.feed(failed(cmove(i * SEC, f, "WS2", "PACS1", "WS2", &[&study(i as usize)])));
    }
    r.feed(assoc(40 * SEC, f, "WS2", "PACS1", true, None));
    r.assert_silent("failed C-MOVEs moved nothing");
}

#[test]
fn c_get_is_an_export_by_the_requester() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:1", PACS);
    for i in 0..16 {
        r.feed(cget(i * SEC, f, "WS2", "PACS1", &[&study(i as usize)]));
    }
    r.feed(assoc(MIN, f, "WS2", "PACS1", true, None));
    assert_eq!(r.fired(), vec![fired("bulk_export", "ae", "WS2", 16)]);
}

// ---- correlation ----

#[test]
fn export_after_new_device_is_critical() {
    let mut r = Run::lab();
    r.feed(login(0, flow("10.20.30.31:1", WEB), 200, "rad1"));
    // rad1 from a never-seen device, then a bulk download.
    let f = flow("10.20.66.6:1", WEB);
    for i in 0..16 {
        r.feed(wado(10 * MIN + i as i64 * SEC, f, Some("rad1"), &study(i)));
    }
    assert_eq!(
        r.fired(),
        vec![
            fired("new_device", "user", "rad1", 1),
            fired("bulk_export", "user", "rad1", 16)
        ]
    );
    let a = &r.of_rule("bulk_export")[0];
    assert_eq!(a.severity, Severity::Critical);
    assert!(a.summary.contains("new_device"), "{}", a.summary);
}

#[test]
fn export_long_after_new_device_is_not_escalated() {
    let mut r = Run::lab();
    r.feed(login(0, flow("10.20.66.6:1", WEB), 200, "rad1"));
    let f = flow("10.20.66.6:1", WEB);
    for i in 0..16 {
        r.feed(wado(2 * HOUR + i as i64 * SEC, f, Some("rad1"), &study(i)));
    }
    assert_eq!(r.of_rule("bulk_export")[0].severity, Severity::High);
}

// ---- export_above_baseline ----

#[test]
fn one_study_a_week_then_ten_in_an_hour_fires() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", WEB);
    for week in 0..3 {
        r.feed(wado(week * 7 * DAY, f, Some("rad1"), &study(1000 + week as usize)));
    }
    for i in 0..10 {
        r.feed(wado(21 * DAY + i as i64 * 5 * MIN, f, Some("rad1"), &study(i)));
    }
    let fired = r.fired();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (fired[0].0.as_str(), fired[0].2.as_str()),
        ("export_above_baseline", "rad1")
    );
    assert_eq!(
        fired[0].3, 6,
        "fires when the count passes max(threshold 5, 10 × baseline)"
    );
    let a = &r.of_rule("export_above_baseline")[0];
    assert_eq!(a.threshold, Some(5));
    // The baseline is the history before the window, in natural units.
    assert!(a.summary.contains("(usually about 1 study a week;"), "{}", a.summary);
    assert!(r.of_rule("bulk_export").is_empty(), "10 is not a bulk export");
}

#[test]
fn steady_heavy_user_does_not_fire() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", WEB);
    let mut n = 0;
    for day in 0..21 {
        for hour in 8..16 {
            for k in 0..12 {
                r.feed(wado(day * DAY + hour * HOUR + k * 5 * MIN, f, Some("rad1"), &study(n)));
                n += 1;
            }
        }
    }
    r.assert_silent("12 studies an hour, every working day");
}

#[test]
fn no_history_no_baseline_alert() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", WEB);
    for i in 0..12 {
        r.feed(wado(i * 5 * MIN, f, Some("rad1"), &study(i as usize)));
    }
    r.assert_silent("a new user's first hour has no baseline");
}

// ---- unknown_destination ----

#[test]
fn move_to_an_unknown_ae_fires_once_per_destination() {
    let mut r = Run::lab();
    move_studies(&mut r, 0, "10.20.30.31:1", "WS1", "EVILAE", None, 3, SEC);
    assert_eq!(r.fired(), vec![fired("unknown_destination", "ae", "EVILAE", 1)]);
    let a = r.of_rule("unknown_destination").into_iter().last().cloned();
    let a = a.expect("alert");
    assert_eq!(a.severity, Severity::High);
    r.finish();
    let last = r
        .of_rule("unknown_destination")
        .into_iter()
        .last()
        .cloned()
        .expect("alert");
    assert_eq!(last.evidence.study_instance_uids_total, 3);
    assert!(last.summary.contains("not in the DICOM inventory"), "{}", last.summary);
    assert!(
        last.response[0].contains("block destination AE EVILAE"),
        "{:?}",
        last.response
    );
    // Hours later, more studies to the same destination: already reported.
    move_studies(&mut r, 5 * HOUR, "10.20.30.31:1", "WS1", "EVILAE", None, 3, SEC);
    assert_eq!(r.fired().len(), 1, "{:?}", r.fired());
}

#[test]
fn images_to_an_external_address_fire() {
    let mut r = Run::lab();
    // PACS pushing to a node outside the internal networks (e.g. a sub-operation of a move).
    let f = flow("10.20.0.10:50000", "203.0.113.9:104");
    r.feed(cstore(0, f, "PACS1", "CLOUDAE", &study(1)));
    r.feed(cstore(SEC, f, "PACS1", "CLOUDAE", &study(2)));
    assert_eq!(r.fired(), vec![fired("unknown_destination", "ae", "CLOUDAE", 1)]);
    assert!(r.of_rule("unknown_destination")[0]
        .summary
        .contains("outside the internal networks"));
    // A web client outside the internal networks downloading a study.
    r.feed(wado(MIN, flow("198.51.100.20:1", WEB), Some("rad1"), &study(3)));
    assert!(r
        .fired()
        .contains(&fired("unknown_destination", "ip", "198.51.100.20", 1)));
}

#[test]
fn hl7_to_an_unknown_receiver_fires() {
    let mut r = Run::lab();
    let known = flow("10.20.0.70:1", "10.20.0.60:2575");
    r.feed(hl7_ev(0, known, hl7(0, known, "ADT^A01")));
    r.assert_silent("HL7 to the inventory receiver");
    let unknown = flow("10.20.0.70:2", "10.20.5.5:2575");
    r.feed(hl7_ev(SEC, unknown, hl7(SEC, unknown, "ORU^R01")));
    assert_eq!(r.fired(), vec![fired("unknown_destination", "ip", "10.20.5.5", 1)]);
    assert!(r.of_rule("unknown_destination")[0]
        .summary
        .contains("HL7 receiver 10.20.5.5:2575"));
}

#[test]
fn without_an_inventory_only_external_addresses_are_unknown() {
    let mut r = Run::new(&config(""));
    move_studies(&mut r, 0, "10.20.30.31:1", "WS1", "ANYAE", None, 3, SEC);
    let f = flow("10.20.0.10:50000", "10.20.0.21:104");
    r.feed(cstore(SEC, f, "PACS1", "ANYAE", &study(1)));
    r.assert_silent("no inventory configured");
}

// ---- sharing_spike ----

#[test]
fn share_link_burst_fires() {
    let mut r = Run::lab();
    for i in 0..11 {
        r.feed(share_http(i * MIN, flow(WS, WEB), "rad2", None));
    }
    assert_eq!(r.fired(), vec![fired("sharing_spike", "user", "rad2", 11)]);
    assert!(r.of_rule("sharing_spike")[0].response[0].contains("revoke the share links created by user rad2"));
}

#[test]
fn many_distinct_recipients_fire() {
    let mut r = Run::lab();
    for i in 0..6 {
        r.feed(share_http(
            i * MIN,
            flow(WS, WEB),
            "rad2",
            Some(&format!("x{i}%40mail.example")),
        ));
    }
    assert_eq!(r.fired(), vec![fired("sharing_spike", "user", "rad2", 6)]);
    assert!(r.of_rule("sharing_spike")[0].summary.contains("x0@mail.example"));
}

#[test]
fn recipients_from_the_request_body_count_and_internal_domains_do_not() {
    let cfg = config(&format!(
        "{LAB}\n[rules.sharing_spike]\ninternal_domains = [\"hospital.example\"]\n"
    ));
    let mut r = Run::new(&cfg);
    for i in 0..8 {
        let mut ev = share_http(i * MIN, flow(WS, WEB), "rad2", None);
        if let pacstap_core::EventBody::Http(h) = &mut ev.body {
            h.share_recipients = vec![
                format!("colleague{i}@HOSPITAL.example"),
                format!("dr{i}@ward.hospital.example"),
            ];
        }
        r.feed(ev);
    }
    r.assert_silent("internal recipients are not external");
    let mut ev = share_http(10 * MIN, flow(WS, WEB), "rad2", None);
    if let pacstap_core::EventBody::Http(h) = &mut ev.body {
        h.share_recipients = (0..6).map(|i| format!("p{i}@mail.example")).collect();
    }
    r.feed(ev);
    assert_eq!(r.fired(), vec![fired("sharing_spike", "user", "rad2", 9)]);
    assert!(r.of_rule("sharing_spike")[0].summary.contains("p5@mail.example"));
}

#[test]
fn a_few_shares_are_normal() {
    let mut r = Run::lab();
    for i in 0..10 {
        r.feed(share_http(
            i * 10 * MIN,
            flow(WS, WEB),
            "rad2",
            Some("colleague%40hospital.example"),
        ));
    }
    r.assert_silent("ten shares to one colleague in 100 minutes");
}

// ---- benign traffic ----

#[test]
fn benign_modality_storing_100_studies() {
    let mut r = Run::lab();
    for s in 0..100 {
        let f = flow("10.20.0.30:40000", PACS);
        for inst in 0..5 {
            r.feed(cstore(s as i64 * MIN + inst * SEC, f, "MODALITY1", "PACS1", &study(s)));
        }
        r.feed(assoc(s as i64 * MIN + 10 * SEC, f, "MODALITY1", "PACS1", true, None));
    }
    r.finish();
    r.assert_silent("a modality storing 100 studies into the PACS");
}

#[test]
fn benign_service_account_routing_between_internal_nodes() {
    let mut r = Run::lab();
    // The routing engine moves 200 studies from the PACS to the archive; the PACS performs
    // the sub-operations as C-STOREs to the archive.
    for s in 0..200 {
        let t = s as i64 * 20 * SEC;
        let sub = flow("10.20.0.10:50000", "10.20.0.40:104");
        r.feed(cstore(t, sub, "PACS1", "ARCHIVE1", &study(s)));
        r.feed(assoc(t + SEC, sub, "PACS1", "ARCHIVE1", true, None));
        let f = flow("10.20.0.50:40000", PACS);
        r.feed(cmove(t + 2 * SEC, f, "ROUTER", "PACS1", "ARCHIVE1", &[&study(s)]));
        r.feed(assoc(t + 3 * SEC, f, "ROUTER", "PACS1", true, None));
    }
    // And a prefetch service user on the web API.
    for s in 0..50 {
        r.feed(wado(
            s as i64 * SEC,
            flow("10.20.0.51:1", WEB),
            Some("prefetch"),
            &study(s),
        ));
    }
    r.finish();
    r.assert_silent("configured service accounts moving studies internally");
    assert!(r.det.stats().exports_exempt >= 250);
}

#[test]
fn benign_admin_exporting() {
    let mut r = Run::lab();
    move_studies(
        &mut r,
        0,
        "10.20.30.32:1",
        "WS2",
        "STORESCP",
        Some("admin"),
        80,
        2 * SEC,
    );
    // WS2 first seen as the admin's device: learned silently.
    r.finish();
    r.assert_silent("an admin exporting to a known node");
}

#[test]
fn benign_radiologist_normal_day() {
    let mut r = Run::lab();
    let web = flow("10.20.30.31:1", WEB);
    let mut t = 8 * HOUR;
    // A typo, then the login.
    r.feed(login(t, web, 401, "rad1"));
    r.feed(login(t + 5 * SEC, web, 200, "rad1"));
    for case in 0..40usize {
        t += 12 * MIN;
        // Worklist and a QIDO search.
        let mut q = http(t, web, "GET", "/dicom-web/studies?PatientID=SYN0001", 200, Some("rad1"));
        q.dicomweb = Some(pacstap_core::DicomWeb {
            service: "QIDO-RS".into(),
            ..Default::default()
        });
        r.feed(http_ev(t, web, q));
        // The current study and a prior, frame by frame.
        for _ in 0..3 {
            r.feed(wado(t + MIN, web, Some("rad1"), &study(case)));
            r.feed(wado(t + 2 * MIN, web, Some("rad1"), &study(case + 500)));
        }
        // Now and then a C-MOVE of a prior to the workstation.
        if case % 8 == 0 {
            move_studies(&mut r, t + 3 * MIN, "10.20.30.31:2", "WS1", "WS1", Some("rad1"), 2, SEC);
        }
        // A share with a referring physician once in a while.
        if case % 10 == 0 {
            r.feed(share_http(
                t + 4 * MIN,
                web,
                "rad1",
                Some("referrer%40hospital.example"),
            ));
        }
    }
    r.finish();
    r.assert_silent("a radiologist's normal day");
}

// ---- engine bounds ----

#[test]
fn entities_are_bounded_and_evictions_counted() {
    let cfg = config("[detect]\nmax_entities = 50\n");
    let mut r = Run::new(&cfg);
    for i in 0..1000 {
        let user = format!("u{i}");
        r.feed(login(i as i64 * SEC, flow("10.20.30.31:1", WEB), 401, &user));
    }
    let st = r.det.stats();
    assert!(st.entities_tracked <= 50);
    assert!(st.entities_evicted >= 950);
    assert_eq!(st.events, 1000);
}

#[test]
fn disabled_rules_stay_silent() {
    let cfg = config("[rules.login_failures_user]\nenabled = false\n[rules.login_failures_source]\nenabled = false\n");
    let mut r = Run::new(&cfg);
    for i in 0..50 {
        r.feed(login(i * SEC, flow(WS, WEB), 401, "rad2"));
    }
    r.assert_silent("disabled");
}

#[test]
fn stats_count_alerts_by_rule_and_severity() {
    let mut r = Run::lab();
    move_studies(&mut r, 0, "10.20.30.32:1", "WS2", "WS2", None, 16, SEC);
    let st = r.det.stats();
    assert_eq!(st.alerts.alerts(Rule::BulkExport, Severity::High), 1);
    assert_eq!(st.alerts.total(), 1);
    let rows: Vec<_> = st.alerts.iter().collect();
    assert_eq!(rows, vec![("bulk_export", Severity::High, 1, 0)]);
    assert_eq!(st.studies_exported, 16);
}

#[test]
fn alert_events_carry_the_triggering_flow() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", WEB);
    for i in 0..16 {
        r.feed(wado(i as i64 * SEC, f, Some("rad1"), &study(i)));
    }
    let ev = r
        .out
        .iter()
        .find(|e| matches!(e.body, pacstap_core::EventBody::Alert(_)))
        .expect("alert event");
    assert_eq!(ev.flow.id, f.id);
    assert_eq!(ev.ts, ts(15 * SEC));
    assert_eq!(ev.body.event_type(), "alert");
}

// ---- config reload ----

/// SIGHUP with a lower threshold: the failures already in the window count toward the new one,
/// and an inventory change takes effect at once. A detector started afresh would have
/// forgotten the five failures.
#[test]
fn reconfigure_keeps_the_windows_and_applies_the_new_thresholds() {
    let mut r = Run::lab();
    for i in 0..5 {
        r.feed(login(i * SEC, flow(WS, WEB), 401, "rad4"));
    }
    r.assert_silent("5 failures, threshold 8");
    let mut cfg = r.det.config().clone();
    cfg.rules.login_failures_user.threshold = 5;
    r.det.reconfigure(&cfg).unwrap();
    assert_eq!(r.det.config().rules.login_failures_user.threshold, 5);
    r.feed(login(6 * SEC, flow(WS, WEB), 401, "rad4"));
    assert_eq!(r.fired(), vec![fired("login_failures_user", "user", "rad4", 6)]);
    assert_eq!(r.of_rule("login_failures_user")[0].threshold, Some(5));

    // A shorter window drops what it no longer covers: 2 minutes after, with a 1-minute
    // window, one new failure is one failure.
    let mut cfg = cfg.clone();
    cfg.rules.login_failures_user.window = pacstap_detect::config::Dur(std::time::Duration::from_secs(60));
    cfg.rules.login_failures_user.threshold = 1;
    cfg.rules.login_failures_source.window = pacstap_detect::config::Dur(std::time::Duration::from_secs(60));
    cfg.rules.login_success_after_failures.window = pacstap_detect::config::Dur(std::time::Duration::from_secs(60));
    r.det.reconfigure(&cfg).unwrap();
    r.feed(login(200 * SEC, flow(WS, WEB), 401, "rad5"));
    let rad5: Vec<_> = r.fired().into_iter().filter(|f| f.2 == "rad5").collect();
    assert!(rad5.is_empty(), "1 failure is not above a threshold of 1: {rad5:?}");
}

#[test]
fn reconfigure_refuses_a_config_that_cannot_start_and_keeps_the_old_one() {
    let mut r = Run::lab();
    let mut cfg = r.det.config().clone();
    cfg.geoip.csv = Some("/nonexistent/geoip.csv".into());
    cfg.rules.bulk_export.threshold = 1;
    assert!(r.det.reconfigure(&cfg).is_err());
    assert_eq!(r.det.config().rules.bulk_export.threshold, 15);
}
