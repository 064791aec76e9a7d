//! Every transfer alert names where the data went (`evidence.destinations`): the move
//! destination with the address its C-STOREs went to, the C-GET requester, the WADO client, the
//! HL7 receiver, the share recipients; alerts about no transfer name none.

mod common;
use common::*;
use pacstap_core::Alert;

const PACS: &str = "10.20.0.10:4242";
const WEB: &str = "10.20.0.10:8042";

fn last<'a>(r: &'a Run, rule: &str, id: &str) -> &'a Alert {
    r.alerts()
        .into_iter()
        .rev()
        .find(|a| a.rule == rule && a.entity.id == id)
        .unwrap_or_else(|| panic!("no {rule} alert for {id}: {:#?}", r.alerts()))
}

/// The PACS performs a C-MOVE's sub-operation: an association to the destination AE at its
/// address with one C-STORE, ending before the C-MOVE's final response.
fn sub_store(r: &mut Run, t: i64, dest_ae: &str, dest: &str, s: &str) {
    let f = flow("10.20.0.10:50000", dest);
    r.feed(cstore(t, f, "PACS1", dest_ae, s));
    r.feed(assoc(t, f, "PACS1", dest_ae, true, None));
}

#[test]
fn move_to_an_outside_ae_names_it_with_the_address_its_stores_went_to() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:1", PACS);
    for i in 0..2 {
        sub_store(&mut r, i * SEC, "EXTPACS", "198.51.100.7:104", &study(i));
        r.feed(cmove(i * SEC + 1, f, "WS1", "PACS1", "EXTPACS", &[&study(i)]));
    }
    r.feed(assoc(3 * SEC, f, "WS1", "PACS1", true, None));
    r.finish();
    let a = last(&r, "unknown_destination", "EXTPACS");
    assert_eq!(a.evidence.destinations, vec!["EXTPACS (198.51.100.7:104)"]);
    assert_eq!(a.evidence.destinations_total, 1);
    assert_eq!(a.evidence.study_instance_uids_total, 2);
}

#[test]
fn bulk_move_names_every_destination_behind_its_count() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:1", PACS);
    // Ten studies to STORESCP, then six to ARCHIVE1: the 16th crosses the threshold, and
    // the alert names both destinations, each with the address its C-STOREs went to.
    for i in 0..16 {
        let (ae, addr) = if i < 10 {
            ("STORESCP", "10.20.0.20:11112")
        } else {
            ("ARCHIVE1", "10.20.0.40:104")
        };
        sub_store(&mut r, i as i64 * SEC, ae, addr, &study(i));
        r.feed(cmove(i as i64 * SEC + 1, f, "WS2", "PACS1", ae, &[&study(i)]));
    }
    r.feed(assoc(20 * SEC, f, "WS2", "PACS1", true, None));
    assert_eq!(r.fired(), vec![fired("bulk_export", "ae", "WS2", 16)]);
    let a = last(&r, "bulk_export", "WS2");
    assert_eq!(
        a.evidence.destinations,
        vec!["STORESCP (10.20.0.20:11112)", "ARCHIVE1 (10.20.0.40:104)"]
    );
    assert_eq!(a.evidence.destinations_total, 2);
    assert!(
        a.summary.contains("AE STORESCP (10.20.0.20)") && a.summary.contains("AE ARCHIVE1 (10.20.0.40)"),
        "{}",
        a.summary
    );
}

#[test]
fn move_destination_never_seen_is_named_without_an_address() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:1", PACS);
    for i in 0..16 {
        r.feed(cmove(i * SEC, f, "WS2", "PACS1", "WS2", &[&study(i)]));
    }
    r.feed(assoc(20 * SEC, f, "WS2", "PACS1", true, None));
    let a = last(&r, "bulk_export", "WS2");
    assert_eq!(a.evidence.destinations, vec!["WS2"]);
}

#[test]
fn c_get_names_the_requester_at_its_address() {
    let mut r = Run::lab();
    let f = flow("10.20.30.32:40000", PACS);
    for i in 0..16 {
        r.feed(cget(i * SEC, f, "WS2", "PACS1", &[&study(i)]));
    }
    r.feed(assoc(MIN, f, "WS2", "PACS1", true, None));
    let a = last(&r, "bulk_export", "WS2");
    assert_eq!(a.evidence.destinations, vec!["WS2 (10.20.30.32)"], "no ephemeral port");
}

#[test]
fn c_store_to_an_unknown_ae_names_the_called_ae_and_address() {
    let mut r = Run::lab();
    let f = flow("10.20.0.10:50000", "203.0.113.9:11112");
    r.feed(cstore(0, f, "PACS1", "CLOUDAE", &study(1)));
    let a = last(&r, "unknown_destination", "CLOUDAE");
    assert_eq!(a.evidence.destinations, vec!["CLOUDAE (203.0.113.9:11112)"]);
}

#[test]
fn wado_names_the_client_address() {
    let mut r = Run::lab();
    let f = flow("10.20.30.31:51234", WEB);
    for i in 0..16 {
        r.feed(wado(i * SEC, f, Some("rad1"), &study(i)));
    }
    let a = last(&r, "bulk_export", "rad1");
    assert_eq!(a.evidence.destinations, vec!["10.20.30.31"]);
    assert_eq!(a.evidence.destinations_total, 1);
    // From a second machine too: the incident grows by a destination.
    r.feed(wado(20 * SEC, flow("10.20.30.77:1", WEB), Some("rad1"), &study(99)));
    r.tick(5 * MIN).finish();
    let a = last(&r, "bulk_export", "rad1");
    assert_eq!(a.evidence.destinations, vec!["10.20.30.31", "10.20.30.77"]);
}

#[test]
fn hl7_to_an_outside_receiver_names_address_and_port() {
    let mut r = Run::lab();
    let f = flow("10.20.0.10:40000", "198.51.100.7:2575");
    r.feed(hl7_ev(0, f, hl7(0, f, "ORU^R01")));
    r.feed(hl7_ev(SEC, f, hl7(SEC, f, "ADT^A08")));
    r.finish();
    let a = last(&r, "unknown_destination", "198.51.100.7");
    assert_eq!(a.evidence.destinations, vec!["198.51.100.7:2575"]);
    assert_eq!(a.count, 2);
}

#[test]
fn share_recipients_are_the_destinations() {
    let mut r = Run::lab();
    for i in 0..6 {
        r.feed(share_http(
            i * MIN,
            flow("10.20.30.40:1", WEB),
            "rad2",
            Some(&format!("x{i}%40mail.example")),
        ));
    }
    let a = last(&r, "sharing_spike", "rad2");
    assert_eq!(a.evidence.destinations_total, 6);
    assert!(a.evidence.destinations.contains(&"x0@mail.example".to_string()));
}

#[test]
fn rules_about_no_transfer_name_no_destination() {
    let mut r = Run::lab();
    for i in 0..9 {
        r.feed(login(i * SEC, flow("10.20.30.40:1", WEB), 401, "rad2"));
    }
    r.feed(login(MIN, flow("10.20.77.7:1", WEB), 200, "rad1"));
    r.feed(login(MIN, flow("10.20.30.31:1", WEB), 200, "rad1"));
    r.feed(login(2 * MIN, flow("10.20.77.8:1", WEB), 200, "rad1"));
    r.feed(admin_http(
        3 * MIN,
        flow("10.20.30.40:1", WEB),
        "itadmin",
        "keycloak_user_create",
        201,
    ));
    let rules: Vec<&str> = r.alerts().iter().map(|a| a.rule.as_str()).collect();
    for want in ["login_failures_user", "new_device", "admin_change"] {
        assert!(rules.contains(&want), "{rules:?}");
    }
    for a in r.alerts() {
        assert!(
            a.evidence.destinations.is_empty() && a.evidence.destinations_total == 0,
            "{a:#?}"
        );
        let json = serde_json::to_value(a).unwrap();
        assert!(json["evidence"].get("destinations").is_none(), "{json}");
    }
}

#[test]
fn destination_lists_are_capped_with_a_total() {
    let cfg = config(&format!("{LAB}\n[evidence]\nmax_destinations = 2\n"));
    let mut r = Run::new(&cfg);
    for i in 0..16 {
        let f = flow(&format!("10.20.40.{i}:1"), WEB);
        r.feed(wado(i as i64 * SEC, f, Some("rad1"), &study(i)));
    }
    r.finish();
    let a = last(&r, "bulk_export", "rad1");
    assert_eq!(a.evidence.destinations.len(), 2);
    assert_eq!(a.evidence.destinations_total, 16);
}
