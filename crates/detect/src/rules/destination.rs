//! `unknown_destination`: images to an AE not in the inventory (or not at its address), any
//! image or HL7 flow to an address outside `networks.internal`. Once per destination, ever
//! (learned state remembers the destinations alerted on across restarts).

use crate::config::canonical_ip;
use crate::dest::Dest;
use crate::detector::Detector;
use crate::entity::EntRef;
use crate::rule::Rule;
use crate::scope::{Detail, Scope, StudyItem};
use pacstap_core::ProtocolEvent;

/// A transfer to a destination the inventory does not know, as the observers found it.
#[derive(Debug, Clone)]
pub(crate) struct UnknownDest<'a> {
    /// Who the alert is about: the destination AE, else its address.
    pub(crate) entity: EntRef<'a>,
    /// How the summary names the destination.
    pub(crate) label: String,
    /// Where the data went (`evidence.destinations`).
    pub(crate) dest: Dest,
    /// Why it is unknown (the inventory's answer).
    pub(crate) why: &'static str,
    /// The studies sent there, when the protocol names them.
    pub(crate) studies: Vec<StudyItem>,
    /// Instances and data set bytes it carried (a C-STORE: one and its data set).
    pub(crate) volume: Option<(u64, u64)>,
    /// What left, when the protocol says (`HL7 ORU^R01`): the alert names the message types.
    pub(crate) what: Option<String>,
}

impl Detector {
    /// `unknown_destination`: once per destination (remembered across restarts); while its
    /// incident is open, further transfers are updates with their studies.
    pub(crate) fn unknown_destination(
        &mut self,
        u: &UnknownDest<'_>,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let UnknownDest {
            entity: ent,
            ref label,
            ref dest,
            why,
            ref studies,
            volume,
            ref what,
        } = *u;
        if !self.cfg.rules.unknown_destination.enabled {
            return;
        }
        let items: Vec<(u64, Option<&str>)> = studies.iter().map(|s| (s.key, s.uid.as_deref())).collect();
        let now = self.now;
        let open = self
            .entities
            .find(ent)
            .and_then(|i| self.entities.slot(i))
            .and_then(|s| s.st.incident(Rule::UnknownDestination))
            .is_some_and(|i| now.saturating_sub(i.last_seen) <= i.window);
        if !open {
            let id = match ent {
                EntRef::User(s) | EntRef::Ae(s) => s.to_string(),
                EntRef::Ip(ip) => canonical_ip(ip).to_string(),
            };
            if !self.learned.add_destination(ent.kind(), &id, self.now) {
                return; // alerted on before
            }
        }
        // The reason first (the summary's "which is …"), then what left.
        let mut extras = vec![why];
        extras.extend(what.as_deref());
        let scope = Scope {
            studies: &items,
            dest: Some(dest),
            detail: Some(Detail::Text(label)),
            extras: &extras,
            volume,
            ..Scope::default()
        };
        let related = self.open_incident_id(ent, Rule::AdminChange);
        let scope = Scope {
            related: related.as_deref(),
            ..scope
        };
        self.instant(Rule::UnknownDestination, ent, scope, ev, None, out);
        // An inventory node at a new address: its admin_change names this incident too.
        self.relate_on(ent, Rule::UnknownDestination, Rule::AdminChange);
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::Detector;

    #[test]
    fn an_unknown_destination_is_alerted_on_once_ever() {
        let store = |t: i64| {
            command(
                t,
                flow(1, "10.0.0.9:40000", "203.0.113.5:104"),
                "WS1",
                "EXT",
                "C-STORE",
                &["1.2.3"],
            )
        };
        let mut r = Run::new("");
        r.feed(store(0));
        r.feed(store(SEC));
        let first: Vec<_> = r
            .alerts("unknown_destination")
            .into_iter()
            .filter(|a| !a.update)
            .collect();
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].entity.kind.as_str(), first[0].entity.id.as_str()),
            ("ae", "EXT")
        );
        assert!(
            first[0].summary.contains("outside the internal networks"),
            "{}",
            first[0].summary
        );
        // A restart with the learned state remembers it.
        let state = r.det.learned_state();
        let mut again = Run::new("");
        again.det = Detector::new(&config(""), Some(state)).unwrap();
        again.feed(store(7200 * SEC));
        assert!(again.alerts("unknown_destination").is_empty());
    }
}
