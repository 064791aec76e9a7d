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

/// Decimal units, as disks and network volumes are sold: `2.0 GB` is 2 000 000 000 bytes.
pub(crate) fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn list(items: &[String], total: u64) -> String {
    let mut s = items.join(", ");
    let shown = items.len() as u64;
    if total > shown {
        s.push_str(&format!(" and {} more", total - shown));
    }
    s
}

/// The containment step for an entity.
pub(crate) fn contain(kind: EntityKind, id: &str) -> String {
    match kind {
        EntityKind::User => format!("disable account {id} or revoke its sessions"),
        EntityKind::Ae => format!("block AE {id} at the PACS (remove it from the allowed DICOM nodes)"),
        EntityKind::Ip | EntityKind::Device => format!("isolate {id}: block it at the firewall or its switch port"),
    }
}

pub(crate) fn summary(inc: &Incident, kind: EntityKind, id: &str) -> String {
    let who = capitalized(entity_phrase(kind, id));
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
            format!(
                "{who} had {} failed logins in {win} (threshold {t}){accounts}.",
                inc.count
            )
        }
        Rule::LoginSuccessAfterFailures => format!(
            "{who} logged in successfully from {details} right after {} failed logins in {win} (threshold {t}).",
            inc.count
        ),
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
            "{who} exported {} distinct studies in {win} (threshold {t}) to {details}.",
            inc.count
        ),
        Rule::ExportAboveBaseline => {
            let base = inc.extra.first().map(String::as_str).unwrap_or("its learned baseline");
            format!(
                "{who} exported {} distinct studies in {win}, above {t} ({base}) to {details}.",
                inc.count
            )
        }
        Rule::UnknownDestination => {
            let why = inc.extra.first().map(String::as_str).unwrap_or("unknown");
            let what = if inc.studies_total > 0 {
                format!("{} distinct studies in {} transfers", inc.studies_total, inc.count)
            } else {
                format!("{} transfers", inc.count)
            };
            format!(
                "Data sent to {} ({details}), which is {why}: {what}.",
                entity_phrase(kind, id)
            )
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
    let preserve = format!("preserve evidence: keep the listed flows and the PACS / identity-provider logs for {id}");
    let reset = format!("reset the credentials of {id} with its owner");
    let studies = inc.studies_total;
    match inc.rule {
        Rule::LoginFailuresUser => vec![
            match kind {
                EntityKind::Ae => format!("block AE {id} at the PACS until its owner confirms the attempts"),
                _ => format!("lock account {id} until its owner confirms the attempts"),
            },
            preserve,
            format!(
                "scope: check for successful logins as {id} from {}",
                list(&inc.details, inc.details_total)
            ),
            reset,
        ],
        Rule::LoginFailuresSource => vec![
            contain(kind, id),
            preserve,
            format!("scope: check the accounts tried from {id} for successful logins"),
            format!("reset the passwords of any account that {id} got into"),
        ],
        Rule::LoginSuccessAfterFailures => vec![
            contain(kind, id),
            preserve,
            format!("scope: list what {id} accessed after the login (studies viewed, exported, shared)"),
            reset,
        ],
        Rule::NewDevice => vec![
            format!(
                "confirm with the owner of {id} that {} is theirs; if not, {}",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: list what {id} did from {}", first(&inc.details)),
            format!("reset the credentials of {id} if the device is not theirs"),
        ],
        Rule::NewLocation => vec![
            format!(
                "confirm with the owner of {id} the login from {}; if not theirs, {}",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: list what {id} did from {}", first(&inc.details)),
            format!("reset the credentials of {id} if the login was not theirs"),
        ],
        Rule::AdminChange => vec![
            format!(
                "confirm {} by {id} with the PACS administrators; if unauthorised, {} and revert it",
                first(&inc.details),
                contain(kind, id)
            ),
            preserve,
            format!("scope: review every other admin change by {id}"),
            format!("reset the admin credentials used by {id}"),
        ],
        Rule::BulkExport if inc.bytes => vec![
            contain(kind, id),
            format!(
                "find who used {id} in the window: the web server / reverse-proxy access logs of {} and the viewer's audit log",
                list(&inc.details, inc.details_total)
            ),
            format!("preserve evidence: keep the listed flows and those access logs for {id}"),
            format!("scope: list the studies {id} retrieved from those logs and hand the list to the privacy officer"),
            format!("reset the credentials of the account that used {id}"),
        ],
        Rule::BulkExport | Rule::ExportAboveBaseline => vec![
            contain(kind, id),
            format!(
                "block the destination {} at the PACS and the firewall",
                list(&inc.details, inc.details_total)
            ),
            preserve,
            format!("scope: the {studies} listed studies were exported by {id}: hand the list to the privacy officer"),
            reset,
        ],
        Rule::UnknownDestination => vec![
            format!("block destination {id} at the PACS (remove or deny the node) and at the firewall"),
            format!("preserve evidence: keep the listed flows and the PACS audit log for {id}"),
            format!("scope: the {studies} listed studies were sent to {id}: hand the list to the privacy officer"),
            format!("find who configured or requested sending to {id} and reset their access"),
        ],
        Rule::SharingSpike => vec![
            format!("revoke the share links created by {id}; {}", contain(kind, id)),
            preserve,
            format!("scope: list the studies and recipients shared by {id}"),
            reset,
        ],
    }
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
}
