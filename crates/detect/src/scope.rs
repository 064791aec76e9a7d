//! What one observation adds to an incident, and how the things an alert names are worded.
//!
//! Names (a source, a destination AE and its address) are kept borrowed and rendered to text
//! only when an incident takes them: most observations open no incident, and formatting an
//! address per event would cost more than the counting itself.

use crate::config::canonical_ip;
use crate::dest::Dest;
use crate::incident::{EvidenceCaps, Incident};
use pacstap_core::FlowId;
use std::net::IpAddr;

/// A study in an export: its key, and its UID when there is one (a patient-level C-MOVE has
/// none: it counts as one thing, unlisted).
#[derive(Debug, Clone)]
pub(crate) struct StudyItem {
    pub(crate) key: u64,
    pub(crate) uid: Option<String>,
}

/// Something an alert names (a source, a destination), rendered only when an alert needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Detail<'a> {
    Text(&'a str),
    Addr(IpAddr),
    /// A destination AE and its address when known; `None`: unnamed.
    Ae(Option<&'a str>, Option<IpAddr>),
    /// Where an export went, as the summary words it.
    Dest(&'a Dest),
}

impl Detail<'_> {
    pub(crate) fn render(self) -> String {
        match self {
            Detail::Text(s) => s.to_string(),
            Detail::Addr(ip) => canonical_ip(ip).to_string(),
            Detail::Ae(Some(ae), Some(ip)) => format!("AE {ae} ({})", canonical_ip(ip)),
            Detail::Ae(Some(ae), None) => format!("AE {ae}"),
            Detail::Ae(None, _) => "an unnamed destination".to_string(),
            Detail::Dest(d) => d.summary(),
        }
    }
}

/// What one observation adds to an incident: its studies, where the data went
/// (`evidence.destinations`: `dest`, rendered only when an incident takes it, and `dests`
/// already text), the thing its summary names, and a second list (sources, recipients, the
/// reason a destination is unknown).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) studies: &'a [(u64, Option<&'a str>)],
    pub(crate) dest: Option<&'a Dest>,
    pub(crate) dests: &'a [&'a str],
    pub(crate) detail: Option<Detail<'a>>,
    pub(crate) extras: &'a [&'a str],
    /// Flows that carried the data besides the one observed (a C-MOVE's sub-operation
    /// associations): named in the evidence, so its pcap holds the data, not only the request.
    pub(crate) data_flows: &'a [FlowId],
    /// Instances and bytes this observation moved (`volume`).
    pub(crate) volume: Option<(u64, u64)>,
    /// Another incident of the same story (`related`).
    pub(crate) related: Option<&'a str>,
    /// The data went somewhere the inventory does not know.
    pub(crate) dest_unknown: bool,
}

impl Scope<'_> {
    /// Add this scope to an incident: its time, flow, studies, destinations, detail line and
    /// extras (rendering its names now that one needs them).
    pub(crate) fn record_into(&self, inc: &mut Incident, ts: i64, flow: FlowId, caps: EvidenceCaps) {
        let detail = self.detail.map(Detail::render);
        let dest = self.dest.map(Dest::evidence);
        let mut dests: Vec<&str> = self.dests.to_vec();
        dests.extend(dest.as_deref());
        inc.seen(ts);
        inc.add_flow(flow, caps);
        for &(k, uid) in self.studies {
            if let Some(u) = uid {
                inc.add_study(k, u, caps);
            }
        }
        for d in &dests {
            inc.add_destination(d, caps);
        }
        if let Some(d) = detail.as_deref() {
            inc.add_detail(d);
        }
        for e in self.extras {
            inc.add_extra(e);
        }
        for f in self.data_flows {
            inc.add_flow(*f, caps);
        }
        if let Some((n, b)) = self.volume {
            inc.add_volume(n, b);
        }
        if let Some(r) = self.related {
            inc.add_related(r);
        }
        inc.dest_unknown |= self.dest_unknown;
    }
}

impl<'a> Scope<'a> {
    pub(crate) fn text(detail: &'a str) -> Self {
        Scope {
            detail: Some(Detail::Text(detail)),
            ..Scope::default()
        }
    }
}

/// Owned study items from borrowed (key, UID) pairs.
pub(crate) fn to_items(v: &[(u64, Option<&str>)]) -> Vec<StudyItem> {
    v.iter()
        .map(|(k, u)| StudyItem {
            key: *k,
            uid: u.map(str::to_string),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_worded_for_the_summary() {
        let ip: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(Detail::Addr(ip).render(), "10.0.0.9");
        assert_eq!(Detail::Ae(Some("ARCHIVE"), Some(ip)).render(), "AE ARCHIVE (10.0.0.9)");
        assert_eq!(Detail::Ae(Some("ARCHIVE"), None).render(), "AE ARCHIVE");
        assert_eq!(Detail::Ae(None, Some(ip)).render(), "an unnamed destination");
        assert_eq!(Detail::Text("as is").render(), "as is");
    }

    #[test]
    fn to_items_keeps_keys_and_uids() {
        let items = to_items(&[(7, Some("1.2.3")), (8, None)]);
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].key, items[0].uid.as_deref()), (7, Some("1.2.3")));
        assert_eq!((items[1].key, items[1].uid.as_deref()), (8, None));
    }

    #[test]
    fn a_text_scope_names_only_its_detail() {
        let s = Scope::text("x");
        assert!(matches!(s.detail, Some(Detail::Text("x"))));
        assert!(s.studies.is_empty() && s.dest.is_none() && s.dests.is_empty() && s.extras.is_empty());
    }
}
