//! The human part of an alert: one summary sentence and the first response steps, naming the
//! entity (CONTRACT §2: contain first, then preserve evidence, scope, reset).

use crate::config::Dur;
use crate::entity::EntityKind;
use crate::incident::Incident;
use crate::rule::Rule;
use std::time::Duration;

fn window_text(nanos: i64) -> String {
    Dur(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))).to_string()
}

/// `1 study`, `2 studies`: the count with its noun, singular for one.
pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A span in the unit a reader thinks in: `8 s`, `12 min`, `3 h`, `5 days` (rounded down;
/// under a second is `under 1 s`).
pub(crate) fn span_text(nanos: i64) -> String {
    let s = nanos.max(0) / 1_000_000_000;
    match s {
        0 => "under 1 s".to_string(),
        1..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => counted(u64::try_from(s / 86_400).unwrap_or(0), "day", "days"),
    }
}

/// A learned rate (studies per nanosecond) in the unit that makes it a whole-ish number:
/// `usually about 1 study a week`, `usually about 12 studies a day`.
pub(crate) fn usual_rate(per_ns: f64) -> String {
    const HOUR: f64 = 3600e9;
    let units = [
        (HOUR, "an hour"),
        (24.0 * HOUR, "a day"),
        (7.0 * 24.0 * HOUR, "a week"),
        (30.0 * 24.0 * HOUR, "a month"),
    ];
    for (len, unit) in units {
        let n = per_ns * len;
        // From 0.6 up, "about 1" reads closer than the next unit's count (and a decayed
        // estimate of a weekly habit lands near 0.7 a week).
        if n >= 0.6 {
            let n = n.round().min(1e12) as u64;
            return format!("usually about {} {unit}", counted(n, "study", "studies"));
        }
    }
    "usually fewer than 1 study a month".to_string()
}

/// The HL7 message types that left (`HL7 ORU^R01, HL7 ADT^A01`), for an HL7 destination.
fn hl7_types(inc: &Incident) -> Option<String> {
    let t: Vec<&str> = inc
        .extra
        .iter()
        .skip(1)
        .filter(|e| e.starts_with("HL7 "))
        .map(String::as_str)
        .collect();
    (!t.is_empty()).then(|| t.join(", "))
}

/// What a transfer incident moved beyond its studies: ` (60 instances, 12.3 MB)`, or only the
/// bytes where instances are not counted (WADO); empty when nothing was measured.
fn volume_text(inc: &Incident) -> String {
    match inc.volume() {
        Some(v) if v.instances > 0 => format!(
            " ({}, {})",
            counted(v.instances, "instance", "instances"),
            bytes_text(v.bytes)
        ),
        Some(v) if v.bytes > 0 => format!(" ({})", bytes_text(v.bytes)),
        _ => String::new(),
    }
}

/// "user rad2", "AE WS1", "address 10.0.0.5".
pub(crate) fn entity_phrase(kind: EntityKind, id: &str) -> String {
    match kind {
        EntityKind::User => format!("user {id}"),
        EntityKind::Ae => format!("AE {id}"),
        EntityKind::Ip => format!("address {id}"),
        EntityKind::Device => format!("device {id}"),
    }
}

fn capitalized(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// Decimal units (`pacstap_core::units`), counts below 1000 in "bytes".
pub(crate) fn bytes_text(n: u64) -> String {
    pacstap_core::units::decimal_bytes(n, "bytes", pacstap_core::units::TO_PB)
}

fn list(items: &[String], total: u64) -> String {
    let mut s = items.join(", ");
    let shown = items.len() as u64;
    if total > shown {
        s.push_str(&format!(" and {} more", total - shown));
    }
    s
}

/// The containment step for an entity, for what it is: an account is disabled; an AE title
/// the site's inventory lists (a modality, the archive) is checked with its owner, never
/// blocked as if unknown; an AE nobody listed is refused at the PACS; an internal address is a
/// device to find before isolating (it may be a scanner in use); an outside one is blocked.
pub(crate) fn contain(kind: EntityKind, id: &str, known: bool) -> String {
    match (kind, known) {
        (EntityKind::User, _) => format!("disable account {id} or revoke its sessions"),
        (EntityKind::Ae, true) => format!(
            "confirm with the owner of AE {id} (an inventory node) that this was expected; if not, suspend its PACS access while it is checked"
        ),
        (EntityKind::Ae, false) => format!("block AE {id} at the PACS (remove it from the allowed DICOM nodes)"),
        (EntityKind::Ip | EntityKind::Device, true) => format!(
            "find the device and person behind {id} (DHCP, switch and PACS logs); isolate it only once it is known not to be a clinical device in use"
        ),
        (EntityKind::Ip | EntityKind::Device, false) => format!("block {id} at the firewall"),
    }
}

/// The reset step: only an account has credentials. For an AE title or an address, the
/// account used through it is found and reset.
pub(crate) fn reset(kind: EntityKind, id: &str, when: &str) -> String {
    match kind {
        EntityKind::User => format!("reset the credentials of {id} with its owner{when}"),
        EntityKind::Ae => format!(
            "find the operator or account that used AE {id} (PACS / modality logs) and reset that account's credentials{when}; an AE title has none"
        ),
        EntityKind::Ip | EntityKind::Device => {
            format!("find the account used from {id} and reset that account's credentials{when}")
        }
    }
}

/// How to exempt an entity that moves studies by design (a routing engine, an archive's
/// prefetch): the `users.service_accounts` list (CONTRACT §2 exempts admins and service
/// accounts from `bulk_export`).
fn exempt_hint(kind: EntityKind, id: &str) -> Option<String> {
    match kind {
        EntityKind::User | EntityKind::Ae => Some(format!(
            "if {} is a routing engine or archive that moves studies by design, add \"{id}\" to users.service_accounts in the config",
            entity_phrase(kind, id)
        )),
        _ => None,
    }
}

pub(crate) fn summary(inc: &Incident, kind: EntityKind, id: &str) -> String {
    let mut who = capitalized(entity_phrase(kind, id));
    if let Some(label) = &inc.entity_label {
        who = format!("{who} ({label})");
    }
    let win = window_text(inc.window);
    let t = inc.threshold.unwrap_or(0);
    let details = list(&inc.details, inc.details_total);
    let mut s = match inc.rule {
        Rule::LoginFailuresUser => {
            format!(
                "{who} failed to log in {} times in {win} (threshold {t}); from {details}.",
                inc.count
            )
        }
        Rule::LoginFailuresSource => {
            let accounts = if inc.extra.is_empty() {
                String::new()
            } else {
                format!("; accounts tried: {}", inc.extra.join(", "))
            };
            // A scan walks through called AE titles: name them too (those listed first; a
            // repeat past the list may be counted again, so no exact "and N more").
            let called = match inc.details.len() {
                0 => String::new(),
                n => format!(
                    "; called AE titles tried: {}{}",
                    inc.details.join(", "),
                    if inc.details_total > n as u64 { " and others" } else { "" }
                ),
            };
            format!(
                "{who} had {} in {win} (threshold {t}){accounts}{called}.",
                counted(inc.count, "failed login", "failed logins"),
            )
        }
        Rule::LoginSuccessAfterFailures => {
            let whose = inc.extra.first().map(|e| format!(" ({e})")).unwrap_or_default();
            format!(
                "{who} logged in successfully from {details} right after {} in {win}{whose} (threshold {t}).",
                counted(inc.count, "failed login", "failed logins"),
            )
        }
        Rule::NewDevice => {
            let known = inc.extra.first().map(|e| format!(" ({e})")).unwrap_or_default();
            if inc.count > 1 {
                format!(
                    "{who} logged in from {} devices never seen for it: {details}{known}.",
                    inc.count
                )
            } else {
                format!("{who} logged in from a device never seen for it: {details}{known}.")
            }
        }
        Rule::NewLocation => {
            let before = inc.extra.first().map(|e| format!(" ({e})")).unwrap_or_default();
            format!("{who} logged in from a country never seen for it: {details}{before}.")
        }
        Rule::AdminChange => {
            if inc.count > 1 {
                format!("{who} made {} admin changes: {details}.", inc.count)
            } else {
                format!("{who} made an admin change: {details}.")
            }
        }
        Rule::BulkExport if inc.bytes => format!(
            "{who} downloaded {} over HTTPS in {win} (threshold {}) from {details}; the studies are inside the encryption.",
            bytes_text(inc.count),
            bytes_text(t)
        ),
        Rule::BulkExport => format!(
            "{who} exported {}{} in {} (rule: more than {t} in {}) to {details}.",
            counted(inc.count, "distinct study", "distinct studies"),
            volume_text(inc),
            span_text(inc.last_seen.saturating_sub(inc.first_seen)),
            span_text(inc.window),
        ),
        Rule::ExportAboveBaseline => {
            let base = inc.extra.first().map(String::as_str).unwrap_or("its learned baseline");
            format!(
                "{who} exported {}{} in {} (window {}), above {t} ({base}) to {details}.",
                counted(inc.count, "distinct study", "distinct studies"),
                volume_text(inc),
                span_text(inc.last_seen.saturating_sub(inc.first_seen)),
                span_text(inc.window),
            )
        }
        Rule::UnknownDestination => {
            let why = inc.extra.first().map(String::as_str).unwrap_or("unknown");
            let transfers = counted(inc.count, "transfer", "transfers");
            let what = if inc.studies_total > 0 {
                format!(
                    "{} in {transfers}{}",
                    counted(inc.studies_total, "distinct study", "distinct studies"),
                    volume_text(inc)
                )
            } else {
                format!("{transfers}{}", volume_text(inc))
            };
            // The details already name the destination with its address ("AE EXTPACS
            // (198.51.100.7)"); the entity is said once, not wrapped around them.
            let to = if inc.details.is_empty() {
                entity_phrase(kind, id)
            } else {
                details
            };
            let left = match hl7_types(inc) {
                Some(t) => format!(" ({t})"),
                None => String::new(),
            };
            format!("Data sent to {to}, which is {why}: {what}{left}.")
        }
        Rule::SharingSpike => {
            let recipients = if inc.extra.is_empty() {
                String::new()
            } else {
                format!("; recipients: {}", inc.extra.join(", "))
            };
            format!(
                "{who} made {} share actions in {win} (threshold {t}): {details}{recipients}.",
                inc.count
            )
        }
    };
    if let Some(c) = &inc.correlation {
        s.push_str(" Critical: ");
        s.push_str(c);
        s.push('.');
    }
    s
}

pub(crate) fn response(inc: &Incident, kind: EntityKind, id: &str) -> Vec<String> {
    let first = |v: &Vec<String>| v.first().cloned().unwrap_or_default();
    let known = inc.entity_known;
    let contain = |k, i: &str| contain(k, i, known);
    let who = entity_phrase(kind, id);
    let preserve = format!("preserve evidence: keep the listed flows and the PACS / identity-provider logs for {who}");
    let studies = inc.studies_total;
    let scope_studies = |verb: &str| {
        if studies > 0 {
            format!(
                "scope: the {} listed were {verb}: hand the list to the privacy officer",
                counted(studies, "study", "studies")
            )
        } else {
            format!("scope: list what the listed flows carried ({verb}) from the PACS / interface-engine logs")
        }
    };
    let mut steps = match inc.rule {
        Rule::LoginFailuresUser => vec![
            match kind {
                EntityKind::User => format!("lock account {id} until its owner confirms the attempts"),
                _ => contain(kind, id),
            },
            preserve,
            format!(
                "scope: check for successful logins as {who} from {}",
                list(&inc.details, inc.details_total)
            ),
            reset(kind, id, ""),
        ],
        Rule::LoginFailuresSource => vec![
            contain(kind, id),
            preserve,
            format!("scope: check the accounts tried from {who} for successful logins"),
            format!("reset the passwords of any account that {who} got into"),
        ],
        Rule::LoginSuccessAfterFailures => vec![
            contain(kind, id),
            preserve,
            format!("scope: list what {who} accessed after the login (studies viewed, exported, shared)"),
            reset(kind, id, ""),
        ],
        Rule::NewDevice => vec![
            format!(
                "confirm with the owner of {who} that {} is theirs; if not, {}",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: list what {who} did from {}", first(&inc.details)),
            reset(kind, id, " if the device is not theirs"),
        ],
        Rule::NewLocation => vec![
            format!(
                "confirm with the owner of {who} the login from {}; if not theirs, {}",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: list what {who} did from {}", first(&inc.details)),
            reset(kind, id, " if the login was not theirs"),
        ],
        Rule::AdminChange => vec![
            format!(
                "confirm {} by {who} with the PACS administrators; if unauthorised, {} and revert it",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: review every other admin change by {who}"),
            match kind {
                EntityKind::User => format!("reset the admin credentials used by {id}"),
                _ => reset(kind, id, ""),
            },
        ],
        Rule::BulkExport if inc.bytes => vec![
            contain(kind, id),
            format!(
                "find who used {who} in the window: the web server / reverse-proxy access logs of {} and the viewer's audit log",
                list(&inc.details, inc.details_total)
            ),
            format!("preserve evidence: keep the listed flows and those access logs for {who}"),
            format!("scope: list the studies {who} retrieved from those logs and hand the list to the privacy officer"),
            format!("reset the credentials of the account that used {who}"),
        ],
        Rule::BulkExport | Rule::ExportAboveBaseline => vec![
            contain(kind, id),
            if inc.dest_unknown {
                format!(
                    "block the destination {} at the PACS and the firewall (it is not one of the site's nodes)",
                    list(&inc.details, inc.details_total)
                )
            } else {
                format!(
                    "check why {} received these studies; it is a known node, so do not block it",
                    list(&inc.details, inc.details_total)
                )
            },
            preserve,
            scope_studies(&format!("exported by {who}")),
            reset(kind, id, ""),
        ],
        Rule::UnknownDestination if hl7_types(inc).is_some() => {
            // HL7 leaves from the interface engine / HIS, not the PACS: the route is stopped there.
            let types = hl7_types(inc).unwrap_or_default();
            vec![
                format!("stop the interface-engine route that sends {types} to {who}, then block {who} at the firewall"),
                format!("preserve evidence: keep the listed flows and the interface engine's message log for {who}"),
                format!("scope: list the {types} messages sent to {who} from the interface engine's log and the patients they name, for the privacy officer"),
                format!("find who configured the route to {who} and review that account's access"),
            ]
        }
        Rule::UnknownDestination => vec![
            format!(
                "block destination {who} at the sending system (PACS node list, interface-engine route) and at the firewall"
            ),
            format!("preserve evidence: keep the listed flows and the sender's audit log for {who}"),
            scope_studies(&format!("sent to {who}")),
            format!("find who configured or requested sending to {who} and reset that account's access"),
        ],
        Rule::SharingSpike => vec![
            format!("revoke the share links created by {who}; {}", contain(kind, id)),
            preserve,
            format!("scope: list the studies and recipients shared by {who}"),
            reset(kind, id, ""),
        ],
    };
    if inc.rule.is_export() && !inc.bytes {
        steps.extend(exempt_hint(kind, id));
    }
    steps
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_decimal_units() {
        assert_eq!(bytes_text(999), "999 bytes");
        assert_eq!(bytes_text(1000), "1.0 kB");
        assert_eq!(bytes_text(20_000_000), "20.0 MB");
        assert_eq!(bytes_text(2_000_000_000), "2.0 GB");
        assert_eq!(bytes_text(2_147_483_648), "2.1 GB");
        assert_eq!(bytes_text(u64::MAX), "18446.7 PB");
    }

    fn incident(rule: Rule, known: bool, dest_unknown: bool, studies: u64) -> Incident {
        use pacstap_core::{Endpoint, FlowId, FlowMeta, Severity, Timestamp};
        let ep = Endpoint::new("10.0.0.1".parse().unwrap(), 1);
        let flow = FlowMeta {
            id: FlowId(1),
            client: ep,
            server: ep,
            start: Timestamp(0),
            handshake_seen: true,
        };
        let mut i = Incident::new(rule, Severity::High, 0, 1_800_000_000_000, Some(15), flow);
        i.entity_known = known;
        i.dest_unknown = dest_unknown;
        i.add_detail("AE VNA_ARCHIVE (10.20.0.40)");
        let caps = crate::incident::EvidenceCaps {
            flows: 10,
            studies: 10,
            destinations: 10,
            tracked: 100,
        };
        for n in 0..studies {
            i.add_study(n, &format!("1.2.{n}"), caps);
        }
        i.set_count(16);
        i
    }

    /// Issue 12 item 4: every rule x entity kind x situation, the advice never does what
    /// cannot or must not be done to that kind of thing.
    #[test]
    fn response_steps_never_give_advice_wrong_for_the_entity() {
        let kinds = [
            (EntityKind::User, "rad2"),
            (EntityKind::Ae, "MR_SCANNER1"),
            (EntityKind::Ip, "10.20.10.12"),
        ];
        for rule in Rule::ALL {
            for (kind, id) in kinds {
                for known in [false, true] {
                    for dest_unknown in [false, true] {
                        let inc = incident(rule, known, dest_unknown, 0);
                        let steps = response(&inc, kind, id).join(" | ");
                        let case = format!("{rule:?} {kind:?} known={known} dest_unknown={dest_unknown}: {steps}");
                        assert!(steps.len() > 40, "{case}");
                        if kind != EntityKind::User {
                            assert!(!steps.contains(&format!("reset the credentials of {id}")), "{case}");
                            assert!(!steps.contains(&format!("credentials of AE {id}")), "{case}");
                            assert!(!steps.contains(&format!("lock account {id}")), "{case}");
                        }
                        if known {
                            // An inventory node or internal device is never blocked as unknown.
                            assert!(!steps.contains(&format!("block AE {id}")), "{case}");
                            assert!(!steps.contains(&format!("block {id} at the firewall")), "{case}");
                            assert!(!steps.contains(&format!("isolate {id}:")), "{case}");
                        }
                        if rule.is_export() && !dest_unknown {
                            assert!(!steps.contains("block the destination"), "{case}");
                            assert!(steps.contains("known node, so do not block it"), "{case}");
                        }
                        if rule.is_export() && kind != EntityKind::Ip {
                            assert!(steps.contains("users.service_accounts"), "{case}");
                        }
                        assert!(!steps.contains("the 0 listed"), "{case}");
                    }
                }
            }
        }
    }

    /// The fourth kind of entity: an HL7 endpoint (an address the interface engine sent to).
    #[test]
    fn hl7_destinations_are_stopped_at_the_interface_engine_and_name_what_left() {
        for rule in Rule::ALL {
            let mut inc = incident(rule, false, true, 0);
            inc.details = vec!["HL7 receiver 203.0.113.50:2575".into()];
            inc.add_extra("outside the internal networks");
            inc.add_extra("HL7 ORU^R01");
            let steps = response(&inc, EntityKind::Ip, "203.0.113.50").join(" | ");
            assert!(
                !steps.contains("reset the credentials of 203.0.113.50"),
                "{rule:?}: {steps}"
            );
            assert!(!steps.contains("the 0 listed"), "{rule:?}: {steps}");
            if rule == Rule::UnknownDestination {
                assert!(!steps.contains("PACS"), "the HIS sent it, not the PACS: {steps}");
                assert!(steps.contains("HL7 ORU^R01"), "{steps}");
                let s = summary(&inc, EntityKind::Ip, "203.0.113.50");
                assert!(s.ends_with("16 transfers (HL7 ORU^R01)."), "{s}");
            }
        }
    }

    #[test]
    fn learned_rates_read_in_natural_units() {
        let week = 7.0 * 86_400e9;
        assert_eq!(usual_rate(1.0 / week), "usually about 1 study a week");
        assert_eq!(usual_rate(12.0 / 86_400e9), "usually about 12 studies a day");
        assert_eq!(usual_rate(3.0 / 3600e9), "usually about 3 studies an hour");
        assert_eq!(usual_rate(0.0), "usually fewer than 1 study a month");
    }

    #[test]
    fn spans_plurals_and_volume_read_naturally() {
        assert_eq!(span_text(8_400_000_000), "8 s");
        assert_eq!(span_text(1_800_000_000_000), "30 min");
        assert_eq!(span_text(3 * 86_400 * 1_000_000_000), "3 days");
        assert_eq!(span_text(86_400 * 1_000_000_000 * 2 - 1), "47 h");
        assert_eq!(counted(1, "transfer", "transfers"), "1 transfer");
        assert_eq!(counted(2, "transfer", "transfers"), "2 transfers");
        let mut inc = incident(Rule::BulkExport, false, true, 20);
        inc.set_count(20);
        inc.seen(8_000_000_000);
        inc.add_volume(60, 12_345_678);
        assert_eq!(
            summary(&inc, EntityKind::Ae, "WORKSTATION1"),
            "AE WORKSTATION1 exported 20 distinct studies (60 instances, 12.3 MB) in 8 s (rule: more than 15 in 30 min) to AE VNA_ARCHIVE (10.20.0.40)."
        );
        let mut u = incident(Rule::UnknownDestination, false, true, 0);
        u.set_count(1);
        assert_eq!(
            summary(&u, EntityKind::Ae, "VNA_ARCHIVE"),
            "Data sent to AE VNA_ARCHIVE (10.20.0.40), which is unknown: 1 transfer."
        );
    }
}
