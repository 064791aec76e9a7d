//! The PACS security checklist answered from the wire: for each item, what the traffic shows
//! and the connections that prove it. The encryption, generic-account and admin findings are
//! the `posture` events' (`pacstap_core::PostureFinding`: one list of ids, wording and tests);
//! posture events in the input (an appliance's events file) count here too.

use crate::ev::{Ev, Networks};
use crate::ledger::Action;
use crate::model::{Finding, Inventory};
use crate::time::Micros;
use pacstap_core::{is_generic_name, is_password_scheme, is_tls_below_1_2, is_weak_cipher, PostureFinding};
use std::collections::{BTreeMap, HashMap};

/// Systems listed per finding (the 20 with the most events; the summary counts them all).
pub const MAX_DETAILS: usize = 20;
/// Connections cited per finding.
pub const MAX_FLOWS: usize = 10;
/// Distinct keys counted per finding, users watched for concurrent use, devices per user.
pub const MAX_KEYS: usize = 10_000;
pub const MAX_DEVICES_PER_USER: usize = 16;
/// Two devices using one account within 15 minutes count as "at the same time" (a person
/// does not walk between reading rooms faster; shorter than the 30 min export window).
pub const CONCURRENT_WINDOW: Micros = 15 * 60 * 1_000_000;

/// Counts per key (a user, a pair of systems) and the first flows.
#[derive(Default)]
struct Tally {
    keys: HashMap<String, u64>,
    extra: u64,
    total: u64,
    flows: Vec<u64>,
    scratch: String,
}

impl Tally {
    /// The key is formatted into a buffer kept for the next call and copied only when new:
    /// most events repeat a key (the same systems), and this runs for every event.
    fn add(&mut self, key: std::fmt::Arguments<'_>, flow: u64) {
        use std::fmt::Write;
        self.total += 1;
        if self.flows.len() < MAX_FLOWS && !self.flows.contains(&flow) {
            self.flows.push(flow);
        }
        self.scratch.clear();
        let _ = self.scratch.write_fmt(key);
        let n = self.keys.len();
        match self.keys.get_mut(self.scratch.as_str()) {
            Some(c) => *c += 1,
            None if n >= MAX_KEYS => self.extra += 1,
            None => {
                self.keys.insert(self.scratch.clone(), 1);
            }
        }
    }

    fn details(&self) -> Vec<String> {
        let mut v: Vec<(&String, &u64)> = self.keys.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(MAX_DETAILS)
            .map(|(k, c)| format!("{k} ({c})"))
            .collect()
    }

    fn systems(&self) -> usize {
        self.keys.len() + usize::from(self.extra > 0)
    }
}

#[derive(Default)]
pub struct Checks {
    devices: HashMap<String, Vec<(String, Micros)>>,
    concurrent: Tally,
    generic: Tally,
    admin_actions: Tally,
    admin_actors: BTreeMap<String, u64>,
    password_admin: Tally,
    bearer_admin: Tally,
    unknown_scheme_admin: Tally,
    rules: Tally,
    admin_alerts: Tally,
    hl7_admin: Tally,
    transfers: Tally,
    external_transfers: Tally,
    shares: Tally,
    dicom_clear: Tally,
    dicom_tls: Tally,
    hl7_clear: Tally,
    http_creds: Tally,
    old_tls: Tally,
    weak_cipher: Tally,
    /// `posture` events read back, per finding: `system: detail`.
    posture: BTreeMap<PostureFinding, Tally>,
    alerts: u64,
}

impl Checks {
    pub fn add(&mut self, ev: &Ev<'_>, action: Option<&Action<'_>>, nets: &Networks) {
        let pair = || format!("{} → {}", ev.src, ev.dst);
        if let Some(user) = ev.user() {
            self.identity(user, ev);
        }
        match ev.ty {
            "dicom" if ev.s("type") == Some("association") => self.dicom_clear.add(
                format_args!(
                    "{}@{} → {}@{}",
                    ev.s("calling_ae").unwrap_or("?"),
                    ev.src,
                    ev.s("called_ae").unwrap_or("?"),
                    ev.dst
                ),
                ev.flow,
            ),
            "http" => {
                if let Some(u) = ev.user() {
                    self.http_creds.add(
                        format_args!(
                            "user {u}: {} ({})",
                            pair(),
                            ev.s("auth").unwrap_or("scheme not recorded")
                        ),
                        ev.flow,
                    );
                }
                if let Some(act) = ev.s("admin_action") {
                    let actor = ev
                        .user()
                        .map_or_else(|| format!("(no user) {}", ev.src), str::to_string);
                    self.admin_actions.add(format_args!("{actor}: {act}"), ev.flow);
                    *self.admin_actors.entry(actor.clone()).or_default() += 1;
                    match ev.s("auth") {
                        Some(s) if is_password_scheme(s) => self
                            .password_admin
                            .add(format_args!("{actor} ({s}) → {}", ev.dst), ev.flow),
                        Some(s) => self
                            .bearer_admin
                            .add(format_args!("{actor} ({s}) → {}", ev.dst), ev.flow),
                        None => self
                            .unknown_scheme_admin
                            .add(format_args!("{actor} → {}", ev.dst), ev.flow),
                    }
                }
                if let Some(s) = ev.s("share_action") {
                    let n = ev.b.share_recipients.len;
                    self.shares.add(
                        format_args!("{}: {s}, {n} recipients", ev.user().unwrap_or(ev.src)),
                        ev.flow,
                    );
                }
            }
            "hl7" => {
                self.hl7_clear.add(
                    format_args!("{} {}", ev.s("sending_application").unwrap_or("?"), pair()),
                    ev.flow,
                );
                if let Some(t) = ev.b.admin_event.v.kind.get() {
                    let actor = format!("{}@{}", ev.s("sending_application").unwrap_or("?"), ev.src);
                    self.hl7_admin.add(format_args!("{actor}: {t}"), ev.flow);
                    *self.admin_actors.entry(actor).or_default() += 1;
                }
            }
            "tls" => {
                // DICOM over TLS: the registered port 2762 (PS3.15 Annex B.1, IANA dicom-tls).
                if ev.dport == 2762 {
                    self.dicom_tls.add(format_args!("{} → {}", ev.src, ev.dst), ev.flow);
                }
                if let Some(v) = ev.s("version") {
                    if is_tls_below_1_2(v) {
                        self.old_tls.add(format_args!("{} {v}", pair()), ev.flow);
                    }
                }
                if let Some(c) = ev.s("cipher_suite") {
                    if is_weak_cipher(c) {
                        self.weak_cipher.add(format_args!("{} {c}", pair()), ev.flow);
                    }
                }
            }
            "posture" => {
                if let Some(f) = ev.s("finding").and_then(PostureFinding::from_id) {
                    let n = self.posture.len();
                    if self.posture.contains_key(&f) || n < PostureFinding::ALL.len() {
                        self.posture.entry(f).or_default().add(
                            format_args!("{}: {}", ev.s("system").unwrap_or("?"), ev.s("detail").unwrap_or("")),
                            ev.flow,
                        );
                    }
                }
            }
            "alert" => {
                self.alerts += 1;
                let rule = ev.s("rule").unwrap_or("?");
                if !ev.is_update() {
                    self.rules.add(format_args!("{rule}"), ev.flow);
                    if rule == "admin_change" {
                        self.admin_alerts
                            .add(format_args!("{}", ev.s("summary").unwrap_or("?")), ev.flow);
                    }
                }
            }
            _ => {}
        }
        if let Some(a) = action.filter(|a| a.kind == "transfer") {
            self.transfers
                .add(format_args!("{}: {} → {}", a.by, a.from, a.to), ev.flow);
            if !nets.internal(&a.to) {
                self.external_transfers
                    .add(format_args!("{} → {} ({})", a.from, a.to, a.how), ev.flow);
            }
        }
    }

    fn identity(&mut self, user: &str, ev: &Ev<'_>) {
        if is_generic_name(user) {
            self.generic.add(format_args!("{user} from {}", ev.src), ev.flow);
        }
        if !self.devices.contains_key(user) && self.devices.len() >= MAX_KEYS {
            return;
        }
        if !self.devices.contains_key(user) {
            self.devices.insert(user.to_string(), Vec::new());
        }
        let Some(devs) = self.devices.get_mut(user) else { return };
        for (ip, last) in devs.iter() {
            if ip != ev.src && (ev.t - *last).abs() <= CONCURRENT_WINDOW {
                let (a, b) = if ip.as_str() < ev.src {
                    (ip.as_str(), ev.src)
                } else {
                    (ev.src, ip.as_str())
                };
                self.concurrent.add(format_args!("{user}: {a} and {b}"), ev.flow);
                break;
            }
        }
        let n = devs.len();
        match devs.iter_mut().find(|(ip, _)| ip == ev.src) {
            Some(d) => d.1 = d.1.max(ev.t),
            None if n < MAX_DEVICES_PER_USER => devs.push((ev.src.to_string(), ev.t)),
            None => {}
        }
    }

    pub fn finish(self, inv: &Inventory, admins: Option<&[String]>) -> Vec<Finding> {
        let mut out = Vec::new();
        let f = |id, item, status, summary: String, t: Option<&Tally>| Finding {
            id,
            item,
            status,
            summary,
            details: t.map(Tally::details).unwrap_or_default(),
            flow_ids: t.map(|t| t.flows.clone()).unwrap_or_default(),
        };
        // 1. Unique identities.
        let mut uid = f(
            "unique_identities",
            "Unique identities",
            if self.concurrent.total + self.generic.total > 0 {
                "finding"
            } else {
                "ok"
            },
            format!(
                "{} account(s) used from several devices within 15 minutes; {} event(s) by generic account names ({}).",
                self.concurrent.systems(),
                self.generic.total,
                if self.generic.total > 0 { "see below" } else { "none" }
            ),
            Some(&self.concurrent),
        );
        uid.details
            .extend(self.generic.details().into_iter().map(|d| format!("generic name: {d}")));
        uid.flow_ids.extend(
            self.generic
                .flows
                .iter()
                .copied()
                .take(MAX_FLOWS.saturating_sub(uid.flow_ids.len())),
        );
        out.push(uid);
        // 2. Least privilege.
        let actors: Vec<&String> = self.admin_actors.keys().collect();
        let (status, summary) = match admins {
            _ if actors.is_empty() => ("ok", "No admin action (admin API call or HL7 master-file change) was seen.".to_string()),
            None => (
                "info",
                format!(
                    "Admin actions by {}; without --config the list of admins (users.admins) is unknown, so they are not compared.",
                    join(&actors)
                ),
            ),
            Some(admins) => {
                let others: Vec<&String> = actors
                    .iter()
                    .copied()
                    .filter(|a| !admins.iter().any(|x| x == *a))
                    .collect();
                if others.is_empty() {
                    ("ok", format!("Admin actions only by configured admins ({}).", join(&actors)))
                } else {
                    ("finding", format!("Admin actions by accounts or systems not in users.admins: {}.", join(&others)))
                }
            }
        };
        let mut lp = f(
            "least_privilege",
            "Least privilege",
            status,
            summary,
            Some(&self.admin_actions),
        );
        lp.details.extend(self.hl7_admin.details());
        out.push(lp);
        // 3. Password-only admin access.
        let (status, summary) = if self.password_admin.total > 0 {
            ("finding", format!("{} admin API call(s) authenticated by a password alone (Basic / Digest / form / NTLM); a second factor is not visible on the wire.", self.password_admin.total))
        } else if self.unknown_scheme_admin.total > 0 {
            ("info", format!("{} admin API call(s) with a user present but no recorded auth scheme (older events): the scheme cannot be judged.", self.unknown_scheme_admin.total))
        } else if self.bearer_admin.total > 0 {
            (
                "ok",
                format!(
                    "{} admin API call(s), all with tokens (bearer / negotiate), none with a password alone.",
                    self.bearer_admin.total
                ),
            )
        } else {
            (
                "ok",
                "No admin API call was seen in clear HTTP (calls inside TLS cannot be judged).".to_string(),
            )
        };
        let t = if self.password_admin.total > 0 {
            &self.password_admin
        } else if self.unknown_scheme_admin.total > 0 {
            &self.unknown_scheme_admin
        } else {
            &self.bearer_admin
        };
        out.push(f(
            "password_only_admin",
            "Password-only admin access",
            status,
            summary,
            Some(t),
        ));
        // 4. Alerting.
        out.push(f(
            "alerting",
            "Alerting",
            "info",
            if self.rules.total == 0 {
                "No rule fired.".to_string()
            } else {
                format!(
                    "{} incident(s) from {} rule(s) fired.",
                    self.rules.total,
                    self.rules.systems()
                )
            },
            Some(&self.rules),
        ));
        // 5. Admin and permission changes.
        let changes = self.admin_actions.total + self.hl7_admin.total;
        let mut ac = f(
            "admin_changes",
            "Admin and permission changes",
            if changes + self.admin_alerts.total > 0 {
                "finding"
            } else {
                "ok"
            },
            format!(
                "{} admin API call(s), {} HL7 master-file change(s), {} admin_change alert(s).",
                self.admin_actions.total, self.hl7_admin.total, self.admin_alerts.total
            ),
            Some(&self.admin_alerts),
        );
        ac.details.extend(self.admin_actions.details());
        out.push(ac);
        // 6. Exports and sharing.
        let mut ex = f(
            "exports_sharing",
            "Exports and sharing",
            if self.external_transfers.total + self.shares.total > 0 {
                "finding"
            } else {
                "info"
            },
            format!(
                "{} transfer(s) of images ({} to external addresses); {} share action(s).",
                self.transfers.total, self.external_transfers.total, self.shares.total
            ),
            Some(&self.transfers),
        );
        ex.details = self
            .external_transfers
            .details()
            .into_iter()
            .map(|d| format!("external: {d}"))
            .chain(self.shares.details().into_iter().map(|d| format!("share: {d}")))
            .chain(ex.details)
            .take(MAX_DETAILS * 2)
            .collect();
        out.push(ex);
        // 7. Encryption in transit.
        out.push(f(
            PostureFinding::DicomInClear.id(),
            PostureFinding::DicomInClear.title(),
            if self.dicom_clear.total > 0 { "finding" } else { "ok" },
            format!("DICOM in clear: {} association(s) between {} pair(s) of systems; DICOM TLS (port 2762): {} connection(s).", self.dicom_clear.total, self.dicom_clear.systems(), self.dicom_tls.total),
            Some(&self.dicom_clear),
        ));
        out.push(f(
            PostureFinding::Hl7InClear.id(),
            PostureFinding::Hl7InClear.title(),
            if self.hl7_clear.total > 0 { "finding" } else { "ok" },
            format!("HL7 MLLP in clear: {} message(s).", self.hl7_clear.total),
            Some(&self.hl7_clear),
        ));
        out.push(f(
            PostureFinding::HttpCredentialsInClear.id(),
            PostureFinding::HttpCredentialsInClear.title(),
            if self.http_creds.total > 0 { "finding" } else { "ok" },
            format!(
                "HTTP requests with credentials (Basic / bearer / form) in clear: {}.",
                self.http_creds.total
            ),
            Some(&self.http_creds),
        ));
        out.push(f(
            PostureFinding::TlsBelow12.id(),
            PostureFinding::TlsBelow12.title(),
            if self.old_tls.total > 0 { "finding" } else { "ok" },
            format!(
                "TLS connections that chose a version below 1.2: {}.",
                self.old_tls.total
            ),
            Some(&self.old_tls),
        ));
        let bad_certs: Vec<String> = inv
            .tls_servers
            .iter()
            .filter(|t| t.expired || t.self_signed)
            .map(|t| {
                format!(
                    "{} {}{}{}",
                    t.address,
                    t.certificate_subject.as_deref().unwrap_or(""),
                    if t.expired { " expired" } else { "" },
                    if t.self_signed { " self-signed" } else { "" }
                )
            })
            .take(MAX_DETAILS)
            .collect();
        out.push(Finding {
            id: PostureFinding::Certificates.id(),
            item: PostureFinding::Certificates.title(),
            status: if bad_certs.is_empty() { "ok" } else { "finding" },
            summary: format!(
                "{} server(s) with an expired or self-signed certificate (certificates are visible in TLS 1.2 and below only).",
                bad_certs.len()
            ),
            details: bad_certs,
            flow_ids: Vec::new(),
        });
        out.push(f(
            PostureFinding::WeakCiphers.id(),
            PostureFinding::WeakCiphers.title(),
            if self.weak_cipher.total > 0 { "finding" } else { "ok" },
            format!(
                "TLS connections that chose a weak cipher suite (RC4, DES, 3DES, NULL, EXPORT, anon, MD5): {}.",
                self.weak_cipher.total
            ),
            Some(&self.weak_cipher),
        ));
        // 8. Response routine.
        out.push(f(
            "response_routine",
            "Response routine",
            "not_knowable",
            format!(
                "Alerts exist: {} ({} alert line(s)). Whether they reached Alertmanager or a person cannot be known from events.",
                if self.alerts > 0 { "yes" } else { "no" },
                self.alerts
            ),
            None,
        ));
        add_posture(&mut out, &self.posture);
        out
    }
}

/// Items that need more than alert lines to be answered.
const ANSWERED_BY_ALERTS: [&str; 2] = ["alerting", "response_routine"];

/// An input of alert lines only (an events file written with `--alerts-only`, which keeps
/// `alert` lines and nothing else, `posture` included) cannot show which systems talk in clear,
/// who made admin calls, or which TLS versions were chosen: every item but alerting and the
/// response routine is `not_knowable` and says which input it needs, rather than `ok` ("looked,
/// found none"), which would be false assurance.
pub fn mark_alerts_only(out: &mut [Finding]) {
    for f in out.iter_mut().filter(|f| !ANSWERED_BY_ALERTS.contains(&f.id)) {
        f.status = "not_knowable";
        f.summary = ALERTS_ONLY_NOTE.to_string();
        f.details.clear();
        f.flow_ids.clear();
    }
}

/// What an item says when the input has alert lines only.
pub const ALERTS_ONLY_NOTE: &str = "Not answerable from this input: it holds alert lines only (an events file written with --alerts-only). This item needs the full events file (replay or capture --events without --alerts-only).";

/// `posture` events (from a capture's events file) join their checklist item: an `ok` item
/// with posture findings becomes a `finding`, their systems are listed and their flows cited.
fn add_posture(out: &mut [Finding], posture: &BTreeMap<PostureFinding, Tally>) {
    for (f, t) in posture {
        let Some(item) = out.iter_mut().find(|i| i.id == f.checklist_item()) else {
            continue;
        };
        if item.status == "ok" || (item.status == "info" && *f == PostureFinding::UnlistedAdmin) {
            item.status = "finding";
        }
        item.summary.push_str(&format!(
            " Posture events ({}): {} for {} system(s).",
            f.id(),
            t.total,
            t.systems()
        ));
        item.details
            .extend(t.details().into_iter().map(|d| format!("posture {}: {d}", f.id())));
        for fl in &t.flows {
            if item.flow_ids.len() < MAX_FLOWS * 2 && !item.flow_ids.contains(fl) {
                item.flow_ids.push(*fl);
            }
        }
    }
}

fn join(v: &[&String]) -> String {
    let mut s: Vec<&str> = v.iter().map(|x| x.as_str()).take(MAX_DETAILS).collect();
    if v.len() > MAX_DETAILS {
        s.push("…");
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::Line;

    fn ev_line(ts: &str, ty: &str, src: &str, dport: u16, body: &str) -> String {
        format!(
            r#"{{"timestamp":"{ts}","flow_id":{dport}{},"event_type":"{ty}","src_ip":"{src}","src_port":40000,"dest_ip":"10.20.0.10","dest_port":{dport},"{ty}":{body}}}"#,
            src.len()
        )
    }

    fn findings(lines: &[String], admins: Option<&[String]>) -> HashMap<&'static str, Finding> {
        let mut c = Checks::default();
        let nets = Networks::default();
        let values: Vec<Line> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        for v in &values {
            let ev = Ev::from_line(v).unwrap();
            let a = crate::ledger::action(&ev);
            c.add(&ev, a.as_ref(), &nets);
        }
        c.finish(&Inventory::default(), admins)
            .into_iter()
            .map(|f| (f.id, f))
            .collect()
    }

    #[test]
    fn an_alerts_only_input_makes_the_wire_items_not_knowable() {
        let alert = ev_line(
            "2026-11-28T07:00:00.000000Z",
            "alert",
            "10.20.0.30",
            4242,
            r#"{"rule":"bulk_export","severity_name":"high","entity":{"kind":"ae","id":"WS1"},"incident_id":"aa"}"#,
        );
        let f = findings(&[alert], None);
        let mut list: Vec<Finding> = f.into_values().collect();
        assert_eq!(
            list.iter().find(|f| f.id == "dicom_in_clear").unwrap().status,
            "ok",
            "without the note, no DICOM reads as none"
        );
        mark_alerts_only(&mut list);
        for f in &list {
            if ANSWERED_BY_ALERTS.contains(&f.id) {
                assert_ne!(f.summary, ALERTS_ONLY_NOTE);
            } else {
                assert_eq!(
                    (f.status, f.summary.as_str()),
                    ("not_knowable", ALERTS_ONLY_NOTE),
                    "{}",
                    f.id
                );
            }
        }
        let alerting = list.iter().find(|f| f.id == "alerting").unwrap();
        assert!(alerting.summary.contains("1 incident(s)"), "{}", alerting.summary);
    }

    #[test]
    fn checklist_findings_name_the_systems() {
        let lines = vec![
            ev_line(
                "2026-11-28T07:00:00.000000Z",
                "http",
                "10.20.0.30",
                8042,
                r#"{"method":"GET","url":"/x","user":"rad1","auth":"basic"}"#,
            ),
            ev_line(
                "2026-11-28T07:05:00.000000Z",
                "http",
                "10.20.0.31",
                8042,
                r#"{"method":"GET","url":"/x","user":"rad1","auth":"basic"}"#,
            ),
            ev_line(
                "2026-11-28T07:06:00.000000Z",
                "http",
                "10.20.0.30",
                8042,
                r#"{"method":"PUT","url":"/modalities/X","user":"rad2","auth":"basic","admin_action":"orthanc_modality_config"}"#,
            ),
            ev_line(
                "2026-11-28T07:07:00.000000Z",
                "http",
                "10.20.0.30",
                8042,
                r#"{"method":"PUT","url":"/modalities/Y","user":"admin","auth":"bearer","admin_action":"orthanc_modality_config"}"#,
            ),
            ev_line(
                "2026-11-28T07:08:00.000000Z",
                "dicom",
                "10.20.0.30",
                4242,
                r#"{"type":"association","calling_ae":"WS1","called_ae":"PACS","outcome":"released"}"#,
            ),
            ev_line(
                "2026-11-28T07:09:00.000000Z",
                "tls",
                "10.20.0.30",
                443,
                r#"{"version":"TLS 1.0","cipher_suite":"TLS_RSA_WITH_RC4_128_SHA"}"#,
            ),
            ev_line(
                "2026-11-28T07:10:00.000000Z",
                "hl7",
                "10.20.0.30",
                2575,
                r#"{"message_type":"ADT^A01","control_id":"1","sending_application":"RIS"}"#,
            ),
        ];
        let admins = vec!["admin".to_string()];
        let f = findings(&lines, Some(&admins));
        let uid = &f["unique_identities"];
        assert_eq!(uid.status, "finding");
        assert!(
            uid.details.iter().any(|d| d == "rad1: 10.20.0.30 and 10.20.0.31 (1)"),
            "{:?}",
            uid.details
        );
        assert!(
            uid.details
                .iter()
                .any(|d| d.starts_with("generic name: admin from 10.20.0.30")),
            "{:?}",
            uid.details
        );
        let lp = &f["least_privilege"];
        assert_eq!(lp.status, "finding");
        assert!(
            lp.summary.contains("rad2") && !lp.summary.contains("admin,"),
            "{}",
            lp.summary
        );
        let pw = &f["password_only_admin"];
        assert_eq!(pw.status, "finding");
        assert_eq!(pw.details, ["rad2 (basic) → 10.20.0.10 (1)"]);
        assert_eq!(f["http_credentials_in_clear"].status, "finding");
        assert_eq!(f["dicom_in_clear"].details, ["WS1@10.20.0.30 → PACS@10.20.0.10 (1)"]);
        assert_eq!(f["tls_below_1_2"].status, "finding");
        assert_eq!(
            f["weak_ciphers"].details,
            ["10.20.0.30 → 10.20.0.10 TLS_RSA_WITH_RC4_128_SHA (1)"]
        );
        assert_eq!(f["hl7_in_clear"].status, "finding");
        assert!(f["response_routine"].summary.starts_with("Alerts exist: no"));
        assert_eq!(f["certificates"].status, "ok");
        // Without --config the admins are unknown: facts, no verdict.
        assert_eq!(findings(&lines, None)["least_privilege"].status, "info");
    }

    #[test]
    fn devices_far_apart_in_time_are_not_concurrent() {
        let lines = vec![
            ev_line(
                "2026-11-28T07:00:00.000000Z",
                "http",
                "10.20.0.30",
                8042,
                r#"{"method":"GET","url":"/x","user":"rad1"}"#,
            ),
            ev_line(
                "2026-11-28T09:00:00.000000Z",
                "http",
                "10.20.0.31",
                8042,
                r#"{"method":"GET","url":"/x","user":"rad1"}"#,
            ),
        ];
        let f = findings(&lines, None);
        assert_eq!(f["unique_identities"].status, "ok");
        assert_eq!(f["password_only_admin"].status, "ok");
    }

    #[test]
    fn posture_events_join_their_checklist_item() {
        let lines = vec![
            ev_line(
                "2026-11-28T07:00:00.000000Z",
                "posture",
                "10.20.0.30",
                443,
                r#"{"finding":"tls_below_1_2","system":"10.20.0.10:443","protocol":"tls","detail":"TLS 1.0","flow_ids":[4439],"count":3}"#,
            ),
            ev_line(
                "2026-11-28T07:01:00.000000Z",
                "posture",
                "10.20.0.30",
                8042,
                r#"{"finding":"unlisted_admin","system":"rad2 from 10.20.0.30","protocol":"http","detail":"orthanc_modality_config","flow_ids":[80429],"count":1}"#,
            ),
            ev_line(
                "2026-11-28T07:02:00.000000Z",
                "posture",
                "10.20.0.30",
                8042,
                r#"{"finding":"no_such_finding","system":"x","protocol":"http","detail":"","flow_ids":[],"count":1}"#,
            ),
        ];
        let f = findings(&lines, None);
        let tls = &f["tls_below_1_2"];
        assert_eq!(tls.status, "finding");
        assert_eq!(tls.details, ["posture tls_below_1_2: 10.20.0.10:443: TLS 1.0 (1)"]);
        // The line's own flow (the one that showed it; ev_line: port then src length).
        assert_eq!(tls.flow_ids, [44310]);
        assert!(
            tls.summary
                .ends_with("Posture events (tls_below_1_2): 1 for 1 system(s)."),
            "{}",
            tls.summary
        );
        let lp = &f["least_privilege"];
        assert_eq!(lp.status, "finding");
        assert!(
            lp.details.iter().any(|d| d.contains("rad2 from 10.20.0.30")),
            "{:?}",
            lp.details
        );
        // An unknown finding id is ignored, not a crash; other items stay as they were.
        assert_eq!(f["weak_ciphers"].status, "ok");
        assert_eq!(
            PostureFinding::ALL
                .iter()
                .filter(|p| p.checklist_item() == "least_privilege")
                .count(),
            1
        );
    }
}
