//! Entities (users, AEs, source / destination addresses) and their live window state.
//!
//! The table holds at most `max_entities`; beyond it the entity idle the longest (least
//! recently touched, in packet-time order) is evicted and counted. Entities live in a slab (their
//! `u32` slot is what open incidents are keyed by); recency is a `hashlink::LinkedHashSet` of
//! slots, least recently touched first, so a touch and an eviction are each one O(1) hash
//! operation.

use crate::dest::Dest;
use crate::incident::Incident;
use crate::name::Name;
use crate::rule::Rule;
use crate::window::{ByteWindow, SlidingWindow};
use hashlink::LinkedHashSet;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// CONTRACT §2 `entity.kind`: the enum lives in `pacstap-core`; re-exported at its old path.
pub use pacstap_core::EntityKind;

/// A borrowed entity name, for look-ups without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntRef<'a> {
    User(&'a str),
    Ae(&'a str),
    Ip(IpAddr),
}

impl EntRef<'_> {
    pub(crate) fn kind(&self) -> EntityKind {
        match self {
            EntRef::User(_) => EntityKind::User,
            EntRef::Ae(_) => EntityKind::Ae,
            EntRef::Ip(_) => EntityKind::Ip,
        }
    }
}

/// Who a DICOM association acts as, owned (remembered per client address in
/// `address_identity.rs`): its user identity when it negotiated one, else its calling AE, as
/// an export is attributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    User(Name),
    Ae(Name),
}

impl Caller {
    pub(crate) fn new(user: Option<&str>, ae: &str) -> Caller {
        match user {
            Some(u) => Caller::User(Name::new(u)),
            None => Caller::Ae(Name::new(ae)),
        }
    }

    pub(crate) fn entity(&self) -> EntRef<'_> {
        match self {
            Caller::User(u) => EntRef::User(u.as_str()),
            Caller::Ae(ae) => EntRef::Ae(ae.as_str()),
        }
    }
}

/// Live per-entity state; windows are allocated on first use.
#[derive(Debug, Default)]
pub(crate) struct EntityState {
    /// Failed logins (events). Inline: the windows used on the hot path cost no extra miss.
    pub failures: Option<SlidingWindow>,
    /// Distinct studies exported, `bulk_export` window.
    pub bulk: Option<SlidingWindow>,
    /// Distinct studies exported, `export_above_baseline` window.
    pub baseline: Option<SlidingWindow>,
    /// Share actions (events).
    pub shares: Option<Box<SlidingWindow>>,
    /// Distinct share recipients.
    pub recipients: Option<Box<SlidingWindow>>,
    /// Bytes HTTPS image servers sent this client address, `bulk_export` window.
    pub https: Option<Box<ByteWindow>>,
    /// Recent export destinations with the time each was last used (at most
    /// [`MAX_EXPORT_DESTS`]), so an export incident names every destination of the exports
    /// behind its count, not only those from the moment it fired on.
    pub export_dests: Vec<(i64, Dest)>,
    /// What recent exports moved (instances, bytes, data flows), so an export incident that
    /// opens on its 16th study counts the volume of the 15 before it (`moves.rs`).
    pub export_volume: Option<Box<crate::moves::VolumeMarks>>,
    /// Open incidents, at most one per rule.
    pub incidents: Vec<Incident>,
    /// Last `new_device` / `new_location` alert: (time, rule, what was new).
    pub identity_alert: Option<(i64, Rule, String)>,
    /// `login_success_after_failures` has used the failures up to this time.
    pub failures_consumed: i64,
    /// Recent failed logins: their sources (user / AE entities) or accounts (address entities).
    pub failure_context: Vec<Ctx>,
    /// The address this user / AE last logged in from, checked against its devices at this
    /// time: a repeat within a minute skips the learned-state look-up.
    pub device_ok: Option<(IpAddr, i64)>,
}

/// A source address or an account name, kept without formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ctx {
    Ip(IpAddr),
    Name(Box<str>),
    /// A called AE title a source tried (a scan walks through many: issue 12 item 5).
    Called(Box<str>),
}

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ctx::Ip(ip) => write!(f, "{ip}"),
            Ctx::Name(n) | Ctx::Called(n) => f.write_str(n),
        }
    }
}

/// Export destinations remembered per entity: a workstation or user sends to a handful.
pub(crate) const MAX_EXPORT_DESTS: usize = 16;

impl EntityState {
    /// Remember an export to `d` at `ts`; past [`MAX_EXPORT_DESTS`] the one used longest ago
    /// is forgotten.
    pub(crate) fn note_export_dest(&mut self, ts: i64, d: &Dest) {
        if let Some(e) = self.export_dests.iter_mut().find(|(_, x)| x == d) {
            e.0 = e.0.max(ts);
            return;
        }
        if self.export_dests.len() >= MAX_EXPORT_DESTS {
            if let Some(pos) = self
                .export_dests
                .iter()
                .enumerate()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(i, _)| i)
            {
                self.export_dests.swap_remove(pos);
            }
        }
        self.export_dests.push((ts, d.clone()));
    }

    pub(crate) fn incident(&self, rule: Rule) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.rule == rule)
    }

    pub(crate) fn incident_mut(&mut self, rule: Rule) -> Option<&mut Incident> {
        self.incidents.iter_mut().find(|i| i.rule == rule)
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub kind: EntityKind,
    pub id: Name,
    /// For address entities, the address itself (compared without formatting).
    ip: Option<IpAddr>,
    pub last_ts: i64,
    pub st: EntityState,
}

impl Slot {
    /// Whether this is the entity `e`.
    fn is(&self, e: EntRef<'_>) -> bool {
        match e {
            EntRef::User(s) => self.kind == EntityKind::User && *self.id == *s,
            EntRef::Ae(s) => self.kind == EntityKind::Ae && *self.id == *s,
            EntRef::Ip(ip) => self.ip == Some(ip),
        }
    }
}

#[derive(Debug)]
pub(crate) struct EntityTable {
    users: HashMap<Name, u32, ahash::RandomState>,
    aes: HashMap<Name, u32, ahash::RandomState>,
    ips: HashMap<IpAddr, u32, ahash::RandomState>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Live slots, least recently touched first.
    lru: LinkedHashSet<u32, ahash::RandomState>,
    len: usize,
    max: usize,
    /// Open incidents, for `tick` (ordered, so output is deterministic).
    pub open: BTreeSet<(u32, Rule)>,
    /// The last entity found: one event usually looks the same entity up several times.
    last: Cell<Option<u32>>,
    pub evicted: u64,
    pub evicted_open_incidents: u64,
}

impl EntityTable {
    pub(crate) fn new(max: usize) -> Self {
        EntityTable {
            users: HashMap::default(),
            aes: HashMap::default(),
            ips: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: LinkedHashSet::with_hasher(ahash::RandomState::new()),
            len: 0,
            max: max.max(1),
            open: BTreeSet::new(),
            last: Cell::new(None),
            evicted: 0,
            evicted_open_incidents: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn find(&self, e: EntRef<'_>) -> Option<u32> {
        if let Some(idx) = self.last.get() {
            if self.slot(idx).is_some_and(|s| s.is(e)) {
                return Some(idx);
            }
        }
        let found = match e {
            EntRef::User(s) => self.users.get(s).copied(),
            EntRef::Ae(s) => self.aes.get(s).copied(),
            EntRef::Ip(ip) => self.ips.get(&ip).copied(),
        };
        if found.is_some() {
            self.last.set(found);
        }
        found
    }

    pub(crate) fn slot(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    /// Every entity's state (config reload).
    pub(crate) fn states_mut(&mut self) -> impl Iterator<Item = &mut EntityState> {
        self.slots.iter_mut().flatten().map(|s| &mut s.st)
    }

    /// A new cap (config reload): a lower one is reached as idle entities are evicted by the
    /// next insertions.
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    pub(crate) fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    /// Mark as used now.
    pub(crate) fn touch(&mut self, idx: u32, ts: i64) {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return;
        };
        slot.last_ts = slot.last_ts.max(ts);
        // Repeated touches of the most recent entity (one event looks it up several times)
        // need no hash operation.
        if self.lru.back() != Some(&idx) {
            // Moves a present slot to the back, appends a new one.
            self.lru.insert(idx);
        }
    }

    /// The entity's slot, created (evicting the idlest entity if full) when new; touched.
    pub(crate) fn get_or_insert(&mut self, e: EntRef<'_>, ts: i64) -> u32 {
        if let Some(idx) = self.find(e) {
            self.touch(idx, ts);
            return idx;
        }
        if self.len >= self.max {
            self.evict_idlest();
        }
        let (kind, id): (EntityKind, Name) = match e {
            EntRef::User(s) => (EntityKind::User, Name::new(s)),
            EntRef::Ae(s) => (EntityKind::Ae, Name::new(s)),
            EntRef::Ip(ip) => (EntityKind::Ip, Name::new(&ip.to_string())),
        };
        let slot = Slot {
            kind,
            ip: match e {
                EntRef::Ip(ip) => Some(ip),
                _ => None,
            },
            id: id.clone(),
            last_ts: ts,
            st: EntityState::default(),
        };
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = Some(slot);
                }
                i
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        match e {
            EntRef::User(_) => self.users.insert(id, idx),
            EntRef::Ae(_) => self.aes.insert(id, idx),
            EntRef::Ip(ip) => self.ips.insert(ip, idx),
        };
        self.len += 1;
        self.touch(idx, ts);
        self.last.set(Some(idx));
        idx
    }

    fn evict_idlest(&mut self) {
        if let Some(idx) = self.lru.pop_front() {
            self.remove(idx);
            self.evicted += 1;
        }
    }

    fn remove(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) else {
            return;
        };
        self.lru.remove(&idx);
        if self.last.get() == Some(idx) {
            self.last.set(None);
        }
        match slot.kind {
            EntityKind::User => {
                self.users.remove(&slot.id);
            }
            EntityKind::Ae => {
                self.aes.remove(&slot.id);
            }
            EntityKind::Ip | EntityKind::Device => {
                if let Ok(ip) = slot.id.parse::<IpAddr>() {
                    self.ips.remove(&ip);
                }
            }
        }
        let open: Vec<(u32, Rule)> = self
            .open
            .range((idx, Rule::FIRST)..=(idx, Rule::LAST))
            .copied()
            .collect();
        self.evicted_open_incidents += open.len() as u64;
        for k in open {
            self.open.remove(&k);
        }
        self.free.push(idx);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_idlest_first() {
        let mut t = EntityTable::new(3);
        let a = t.get_or_insert(EntRef::User("a"), 1);
        let _b = t.get_or_insert(EntRef::User("b"), 2);
        let _c = t.get_or_insert(EntRef::Ae("c"), 3);
        t.touch(a, 4);
        t.get_or_insert(EntRef::Ip("10.0.0.1".parse().unwrap()), 5);
        assert_eq!(t.len(), 3);
        assert_eq!(t.evicted, 1);
        assert!(t.find(EntRef::User("b")).is_none(), "b was idle the longest");
        assert!(t.find(EntRef::User("a")).is_some());
        assert!(t.find(EntRef::Ae("c")).is_some());
        assert!(t.find(EntRef::Ip("10.0.0.1".parse().unwrap())).is_some());
    }

    #[test]
    fn stays_bounded_under_churn() {
        let mut t = EntityTable::new(100);
        for i in 0..10_000u32 {
            let name = format!("u{i}");
            let idx = t.get_or_insert(EntRef::User(&name), i64::from(i));
            // Keep u0 hot: it must survive.
            let hot = t.get_or_insert(EntRef::User("u0"), i64::from(i));
            assert_ne!(idx, u32::MAX);
            assert!(t.slot(hot).is_some());
        }
        assert_eq!(t.len(), 100);
        assert!(t.find(EntRef::User("u0")).is_some());
        assert_eq!(t.lru.len(), 100, "one recency entry per live entity");
        assert_eq!(t.evicted, 10_000 - 100 + 1 - 1);
    }
}

#[cfg(test)]
mod dest_tests {
    use super::*;

    #[test]
    fn export_destinations_stay_bounded_and_keep_the_recent_ones() {
        let mut st = EntityState::default();
        let d = |i: u8| Dest::Client(IpAddr::from([10, 0, 0, i]));
        st.note_export_dest(5, &d(0));
        for i in 1..40u8 {
            st.note_export_dest(i64::from(i) * 10, &d(i));
            st.note_export_dest(i64::from(i) * 10 + 1, &d(0)); // d(0) stays in use
        }
        assert_eq!(st.export_dests.len(), MAX_EXPORT_DESTS);
        assert!(st.export_dests.iter().any(|(t, x)| *x == d(0) && *t == 391));
        assert!(st.export_dests.iter().any(|(_, x)| *x == d(39)));
        assert!(!st.export_dests.iter().any(|(_, x)| *x == d(1)), "used longest ago");
    }
}
