//! Looking into and editing a learned-state file offline (`pacstap state show | forget`,
//! issue 14): why did a second replay raise no `unknown_destination`? Because the first one
//! learned the destination; `show` says so and when, `forget` takes it back.
//!
//! Pure functions over [`LearnedState`]; the caller reads and writes the file through
//! [`crate::StateStore`] (atomic, mode 0600). "Older than" is measured back from the newest
//! packet time the state recorded (`last_packet_ns`), never the wall clock: a state learned
//! from last year's capture ages by that capture's time (ARCHITECTURE: packet time is the only
//! clock below output).

use crate::learned::{LearnedEntity, LearnedState};
use pacstap_core::Timestamp;
use std::fmt::Write as _;
use std::time::Duration;

/// An entity named on the command line as `KIND:ID` (`user:rad1`, `ae:PACS1`, `ip:10.0.0.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityName {
    pub kind: String,
    pub id: String,
}

impl EntityName {
    /// `KIND:ID`; the id may itself contain `:` (an IPv6 address).
    pub fn parse(s: &str) -> Result<EntityName, String> {
        let (kind, id) = s
            .split_once(':')
            .ok_or_else(|| format!("expected KIND:ID (user:rad1, ae:PACS1, ip:10.0.0.5), found {s:?}"))?;
        let kind = kind.trim().to_ascii_lowercase();
        if !matches!(kind.as_str(), "user" | "ae" | "ip") {
            return Err(format!("unknown entity kind {kind:?}: user, ae or ip"));
        }
        if id.trim().is_empty() {
            return Err(format!("no id after {kind}:"));
        }
        Ok(EntityName {
            kind,
            id: id.trim().to_string(),
        })
    }

    fn is(&self, kind: &str, id: &str) -> bool {
        self.kind == kind && self.id == id
    }
}

fn time(ns: i64) -> String {
    Timestamp(ns).rfc3339()
}

fn entity_lines(out: &mut String, e: &LearnedEntity) {
    let _ = writeln!(out, "{}:{}  last seen {}", e.kind, e.id, time(e.last_seen_ns));
    if !e.devices.is_empty() {
        let _ = writeln!(out, "  devices: {}", e.devices.join(", "));
    }
    if !e.countries.is_empty() {
        let _ = writeln!(out, "  countries: {}", e.countries.join(", "));
    }
    if !e.node_addresses.is_empty() {
        let _ = writeln!(out, "  answers at: {}", e.node_addresses.join(", "));
    }
    if let Some(b) = &e.baseline {
        let _ = writeln!(
            out,
            "  export baseline: {:.1} studies (decayed) as of {}, history since {}",
            b.decayed_studies,
            time(b.updated_ns),
            time(b.first_ns)
        );
    }
}

/// What a state holds, as text: learning start, each entity (devices, countries, node
/// addresses, baseline, when last seen) and each destination already alerted on (when first
/// seen: `unknown_destination` alerts once per destination, ever). With `only`, that entity and
/// destinations of that name.
pub fn render(st: &LearnedState, only: Option<&EntityName>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "learned state, format version {}", st.version);
    if let Some(t) = st.learning_started_ns {
        let _ = writeln!(out, "learning started {}", time(t));
    }
    if let Some(t) = st.last_packet_ns {
        let _ = writeln!(out, "newest packet {}", time(t));
    }
    let ents: Vec<&LearnedEntity> = st
        .entities
        .iter()
        .filter(|e| only.is_none_or(|n| n.is(&e.kind, &e.id)))
        .collect();
    let dests: Vec<_> = st
        .destinations
        .iter()
        .filter(|d| only.is_none_or(|n| n.is(&d.kind, &d.id)))
        .collect();
    let _ = writeln!(out, "\nentities: {}", ents.len());
    for e in ents {
        entity_lines(&mut out, e);
    }
    let _ = writeln!(
        out,
        "\ndestinations already alerted on (unknown_destination fires once per destination): {}",
        dests.len()
    );
    for d in dests {
        let _ = writeln!(out, "{}:{}  first seen {}", d.kind, d.id, time(d.first_seen_ns));
    }
    out
}

/// What to forget.
#[derive(Debug, Clone)]
pub enum Forget {
    /// The entity and any destination of that name.
    Entity(EntityName),
    /// Entities last seen, and destinations first seen, more than this before the newest
    /// packet time in the state.
    OlderThan(Duration),
}

/// Remove what `what` names; returns (entities, destinations) removed.
pub fn forget(st: &mut LearnedState, what: &Forget) -> (usize, usize) {
    let (e0, d0) = (st.entities.len(), st.destinations.len());
    match what {
        Forget::Entity(n) => {
            st.entities.retain(|e| !n.is(&e.kind, &e.id));
            st.destinations.retain(|d| !n.is(&d.kind, &d.id));
        }
        Forget::OlderThan(age) => {
            let newest = st
                .last_packet_ns
                .or_else(|| st.entities.iter().map(|e| e.last_seen_ns).max())
                .unwrap_or(0);
            let age = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
            let cut = newest.saturating_sub(age);
            st.entities.retain(|e| e.last_seen_ns >= cut);
            st.destinations.retain(|d| d.first_seen_ns >= cut);
        }
    }
    (e0 - st.entities.len(), d0 - st.destinations.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::{Baseline, LearnedDestination};

    const DAY: i64 = 86_400 * 1_000_000_000;
    const T0: i64 = 1_796_000_000 * 1_000_000_000;

    fn state() -> LearnedState {
        LearnedState {
            learning_started_ns: Some(T0),
            last_packet_ns: Some(T0 + 30 * DAY),
            entities: vec![
                LearnedEntity {
                    kind: "user".into(),
                    id: "rad1".into(),
                    last_seen_ns: T0 + 29 * DAY,
                    devices: vec!["10.20.30.31".into(), "ja4:t13d".into()],
                    countries: vec!["DE".into()],
                    node_addresses: vec![],
                    baseline: Some(Baseline {
                        decayed_studies: 3.25,
                        updated_ns: T0 + 29 * DAY,
                        first_ns: T0,
                    }),
                },
                LearnedEntity {
                    kind: "ae".into(),
                    id: "OLDWS".into(),
                    last_seen_ns: T0 + DAY,
                    devices: vec!["10.20.30.40".into()],
                    countries: vec![],
                    node_addresses: vec!["10.20.30.40".into()],
                    baseline: None,
                },
            ],
            destinations: vec![
                LearnedDestination {
                    kind: "ae".into(),
                    id: "EVIL".into(),
                    first_seen_ns: T0 + 2 * DAY,
                },
                LearnedDestination {
                    kind: "ip".into(),
                    id: "203.0.113.9".into(),
                    first_seen_ns: T0 + 25 * DAY,
                },
            ],
            ..LearnedState::default()
        }
    }

    #[test]
    fn entity_names_parse() {
        assert_eq!(
            EntityName::parse("ip:fd00::5").unwrap(),
            EntityName {
                kind: "ip".into(),
                id: "fd00::5".into()
            }
        );
        assert_eq!(EntityName::parse("AE:PACS1").unwrap().kind, "ae");
        for bad in ["rad1", "host:x", "user:", ""] {
            assert!(EntityName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn show_lists_what_was_learned_and_when() {
        let all = render(&state(), None);
        for want in [
            "format version 1",
            "learning started 2026-11-30T",
            "user:rad1  last seen 2026-12-29T",
            "  devices: 10.20.30.31, ja4:t13d",
            "  countries: DE",
            "  export baseline: 3.2 studies (decayed)",
            "ae:OLDWS  last seen",
            "  answers at: 10.20.30.40",
            "destinations already alerted on (unknown_destination fires once per destination): 2",
            "ae:EVIL  first seen 2026-12-02T",
        ] {
            assert!(all.contains(want), "{want:?} missing in\n{all}");
        }
        let one = render(&state(), Some(&EntityName::parse("ae:EVIL").unwrap()));
        assert!(
            one.contains("entities: 0") && one.contains("ae:EVIL  first seen"),
            "{one}"
        );
        assert!(!one.contains("rad1"), "{one}");
    }

    #[test]
    fn forget_an_entity_or_what_is_old() {
        let mut st = state();
        assert_eq!(
            forget(&mut st, &Forget::Entity(EntityName::parse("ae:EVIL").unwrap())),
            (0, 1)
        );
        assert_eq!(
            forget(&mut st, &Forget::Entity(EntityName::parse("user:rad1").unwrap())),
            (1, 0)
        );
        assert_eq!(st.entities.len(), 1);
        // Ten days back from the newest packet (day 30): OLDWS (day 1) and EVIL (day 2) go.
        let mut st = state();
        let removed = forget(&mut st, &Forget::OlderThan(Duration::from_secs(10 * 86_400)));
        assert_eq!(removed, (1, 1));
        assert_eq!(st.entities[0].id, "rad1");
        assert_eq!(st.destinations[0].id, "203.0.113.9");
    }
}
