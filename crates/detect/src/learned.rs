//! What the detector learns and keeps across restarts: devices, countries and server addresses
//! per entity, export baselines, and destinations already alerted on.
//!
//! [`LearnedState`] is the serialized, versioned form; [`Learned`] the run-time one (hash maps,
//! bounded by `detect.max_learned_entities`, oldest-idle evicted first and counted).

use crate::config::canonical_ip;
use crate::entity::EntityKind;
use crate::name::Name;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// Version of the [`LearnedState`] layout written by this build.
pub const STATE_VERSION: u32 = 1;

/// Learned state, as persisted by [`crate::StateStore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedState {
    pub version: u32,
    /// Packet time (ns since the epoch) when learning began, for `detect.learning_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_started_ns: Option<i64>,
    /// Newest packet time seen when the state was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_packet_ns: Option<i64>,
    #[serde(default)]
    pub entities: Vec<LearnedEntity>,
    #[serde(default)]
    pub destinations: Vec<LearnedDestination>,
}

impl Default for LearnedState {
    fn default() -> Self {
        LearnedState {
            version: STATE_VERSION,
            learning_started_ns: None,
            last_packet_ns: None,
            entities: Vec::new(),
            destinations: Vec::new(),
        }
    }
}

/// One user / AE / address and what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedEntity {
    /// `user`, `ae`, `ip`.
    pub kind: String,
    pub id: String,
    pub last_seen_ns: i64,
    /// Devices it logged in from: IP addresses, `ja4:<fingerprint>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// ISO country codes it logged in from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// AEs: the addresses it answered associations at (node configuration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// An exponentially decayed count of distinct studies exported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Studies, each weighted by `exp(-age / tau)`, as of `updated_ns`.
    pub decayed_studies: f64,
    pub updated_ns: i64,
    /// First export seen (the history the rule needs before it may fire).
    pub first_ns: i64,
}

impl Baseline {
    pub(crate) fn new(now: i64) -> Self {
        Baseline {
            decayed_studies: 0.0,
            updated_ns: now,
            first_ns: now,
        }
    }

    fn decayed_at(&self, now: i64, tau_ns: f64) -> f64 {
        let dt = now.saturating_sub(self.updated_ns).max(0) as f64;
        let v = self.decayed_studies * (-dt / tau_ns).exp();
        if v.is_finite() {
            v.max(0.0)
        } else {
            0.0
        }
    }

    /// Count one more study at `now`.
    pub(crate) fn add(&mut self, now: i64, tau_ns: f64) {
        if now >= self.updated_ns {
            self.decayed_studies = self.decayed_at(now, tau_ns) + 1.0;
            self.updated_ns = now;
        } else {
            // A late study: weight it by its own age.
            let dt = self.updated_ns.saturating_sub(now) as f64;
            self.decayed_studies += (-dt / tau_ns).exp();
        }
        if !self.decayed_studies.is_finite() {
            self.decayed_studies = 0.0;
        }
        self.first_ns = self.first_ns.min(now);
    }

    /// Learned rate in studies per `window_ns`: the decayed count over the decayed length of
    /// history (`tau · (1 − e^{−age/tau})`), so a young entity is not judged on time it was
    /// not observed.
    /// (Alerts use [`Baseline::rate_before`]; this whole-history rate stays for its tests.)
    #[cfg(test)]
    pub(crate) fn per_window(&self, now: i64, tau_ns: f64, window_ns: i64) -> f64 {
        let age = now.saturating_sub(self.first_ns).max(0) as f64;
        let effective = tau_ns * (1.0 - (-age / tau_ns).exp());
        if effective <= 0.0 || !effective.is_finite() {
            return 0.0;
        }
        let r = self.decayed_at(now, tau_ns) / effective * window_ns as f64;
        if r.is_finite() {
            r
        } else {
            0.0
        }
    }

    /// Learned rate in studies per nanosecond from the history *before* the window under
    /// judgement (issue 12 item 5: a spike must not raise its own baseline): the studies inside
    /// the window (`inside`, each decayed to `now`) are taken out, and the history ends where
    /// the window begins. `None` when there is no history before the window.
    pub(crate) fn rate_before(&self, now: i64, tau_ns: f64, window_ns: i64, inside: f64) -> Option<f64> {
        let start = now.saturating_sub(window_ns);
        let age = start.saturating_sub(self.first_ns);
        if age <= 0 {
            return None;
        }
        let effective = tau_ns * (1.0 - (-(age as f64) / tau_ns).exp());
        // What was learned before the window, as it stood when the window began.
        let before = (self.decayed_at(now, tau_ns) - inside).max(0.0) * (window_ns as f64 / tau_ns).exp();
        let r = before / effective;
        (r.is_finite() && effective > 0.0).then_some(r)
    }

    pub(crate) fn history(&self, now: i64) -> i64 {
        now.saturating_sub(self.first_ns)
    }
}

/// A destination `unknown_destination` has alerted on (alerted once, ever).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedDestination {
    pub kind: String,
    pub id: String,
    pub first_seen_ns: i64,
}

/// A device a login came from: an address (compared without formatting), or a key such as
/// `ja4:<fingerprint>` or a MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Device {
    Ip(IpAddr),
    Key(Box<str>),
}

impl Device {
    pub(crate) fn parse(s: &str) -> Device {
        let t = s.trim();
        match t.parse::<IpAddr>() {
            Ok(ip) => Device::Ip(canonical_ip(ip)),
            Err(_) => Device::Key(t.to_ascii_lowercase().into()),
        }
    }

    /// TLS fingerprints and addresses are different kinds of device.
    pub(crate) fn is_fingerprint(&self) -> bool {
        matches!(self, Device::Key(k) if k.starts_with("ja4:"))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Ip(ip) => write!(f, "{ip}"),
            Device::Key(k) => f.write_str(k),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    pub last_seen: i64,
    pub devices: Vec<Device>,
    pub countries: Vec<Box<str>>,
    pub nodes: Vec<IpAddr>,
    pub baseline: Option<Baseline>,
}

/// Push to a capped list, dropping the oldest entry when full; returns whether one was dropped.
pub(crate) fn push_capped<T>(v: &mut Vec<T>, item: T, cap: usize) -> bool {
    let mut dropped = false;
    while v.len() >= cap.max(1) {
        v.remove(0);
        dropped = true;
    }
    v.push(item);
    dropped
}

fn kind_index(k: EntityKind) -> usize {
    match k {
        EntityKind::User => 0,
        EntityKind::Ae => 1,
        EntityKind::Ip | EntityKind::Device => 2,
    }
}

#[derive(Debug)]
struct LearnedSlot {
    kind: EntityKind,
    id: Name,
    k: Known,
}

/// Learned entities in a slab, indexed per kind, evicted least-recently-used first: recency is a
/// `hashlink::LinkedHashSet` of slots (least recently used first), so a touch and an eviction
/// are each one O(1) hash operation.
#[derive(Debug)]
pub(crate) struct Learned {
    pub started: Option<i64>,
    index: [HashMap<Name, u32, ahash::RandomState>; 3],
    slots: Vec<Option<LearnedSlot>>,
    free: Vec<u32>,
    /// Live slots, least recently used first.
    lru: hashlink::LinkedHashSet<u32, ahash::RandomState>,
    len: usize,
    pub destinations: HashMap<(EntityKind, Box<str>), i64, ahash::RandomState>,
    max: usize,
    pub evicted: u64,
}

impl Learned {
    pub(crate) fn new(max: usize) -> Self {
        Learned {
            started: None,
            index: Default::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: hashlink::LinkedHashSet::with_hasher(ahash::RandomState::new()),
            len: 0,
            destinations: HashMap::default(),
            max: max.max(1),
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A new cap (config reload), reached by the next insertions' evictions.
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    pub(crate) fn get(&self, kind: EntityKind, id: &str) -> Option<&Known> {
        let idx = *self.index.get(kind_index(kind))?.get(id)?;
        self.slots.get(idx as usize)?.as_ref().map(|s| &s.k)
    }

    fn touch(&mut self, idx: u32) {
        if self.slots.get(idx as usize).is_some_and(Option::is_some) && self.lru.back() != Some(&idx) {
            // Moves a present slot to the back, appends a new one.
            self.lru.insert(idx);
        }
    }

    fn evict_idlest(&mut self) {
        let Some(idx) = self.lru.pop_front() else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) {
            if let Some(m) = self.index.get_mut(kind_index(slot.kind)) {
                m.remove(&slot.id);
            }
            self.free.push(idx);
            self.len -= 1;
            self.evicted += 1;
        }
    }

    /// The entity's record, created if new (evicting the least recently used one when full),
    /// and marked used. The flag says whether it was created. Allocates only when it creates.
    pub(crate) fn entry(&mut self, kind: EntityKind, id: &str, now: i64) -> Option<(&mut Known, bool)> {
        let ki = kind_index(kind);
        let existing = self.index.get(ki)?.get(id).copied();
        let (idx, created) = match existing {
            Some(idx) => (idx, false),
            None => {
                if self.len >= self.max {
                    self.evict_idlest();
                }
                let slot = LearnedSlot {
                    kind,
                    id: Name::new(id),
                    k: Known::default(),
                };
                let idx = match self.free.pop() {
                    Some(i) => {
                        *self.slots.get_mut(i as usize)? = Some(slot);
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        u32::try_from(self.slots.len() - 1).ok()?
                    }
                };
                self.index.get_mut(ki)?.insert(Name::new(id), idx);
                self.len += 1;
                (idx, true)
            }
        };
        self.touch(idx);
        let k = &mut self.slots.get_mut(idx as usize)?.as_mut()?.k;
        k.last_seen = k.last_seen.max(now);
        Some((k, created))
    }

    /// Record an alerted destination; false if it was already known.
    pub(crate) fn add_destination(&mut self, kind: EntityKind, id: &str, now: i64) -> bool {
        if self.destinations.contains_key(&(kind, id.into())) {
            return false;
        }
        if self.destinations.len() >= self.max {
            let mut all: Vec<(i64, (EntityKind, Box<str>))> =
                self.destinations.iter().map(|(k, v)| (*v, k.clone())).collect();
            all.sort_unstable();
            let n = (all.len() / 100).max(1);
            for (_, k) in all.into_iter().take(n) {
                self.destinations.remove(&k);
                self.evicted += 1;
            }
        }
        self.destinations.insert((kind, id.into()), now);
        true
    }

    pub(crate) fn to_state(&self, last_packet: Option<i64>) -> LearnedState {
        let mut entities = Vec::with_capacity(self.len());
        for slot in self.slots.iter().flatten() {
            let k = &slot.k;
            {
                entities.push(LearnedEntity {
                    kind: slot.kind.as_str().to_string(),
                    id: slot.id.to_string(),
                    last_seen_ns: k.last_seen,
                    devices: k.devices.iter().map(|d| d.to_string()).collect(),
                    countries: k.countries.iter().map(|s| s.to_string()).collect(),
                    node_addresses: k.nodes.iter().map(|s| s.to_string()).collect(),
                    baseline: k.baseline,
                });
            }
        }
        entities.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        let mut destinations: Vec<LearnedDestination> = self
            .destinations
            .iter()
            .map(|((kind, id), t)| LearnedDestination {
                kind: kind.as_str().to_string(),
                id: id.to_string(),
                first_seen_ns: *t,
            })
            .collect();
        destinations.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        LearnedState {
            version: STATE_VERSION,
            learning_started_ns: self.started,
            last_packet_ns: last_packet,
            entities,
            destinations,
        }
    }

    /// Load a state; entries of unknown kinds are skipped (counted in the return value).
    pub(crate) fn load(&mut self, st: &LearnedState, max_devices: usize) -> u64 {
        let mut skipped = 0;
        self.started = st.learning_started_ns;
        // Oldest first, so the least recently seen are evicted first.
        let mut order: Vec<&LearnedEntity> = st.entities.iter().collect();
        order.sort_by_key(|e| e.last_seen_ns);
        for e in order {
            let Some(kind) = EntityKind::parse(&e.kind) else {
                skipped += 1;
                continue;
            };
            let Some((k, _)) = self.entry(kind, &e.id, e.last_seen_ns) else {
                skipped += 1;
                continue;
            };
            for d in &e.devices {
                let d = Device::parse(d);
                if !k.devices.contains(&d) {
                    push_capped(&mut k.devices, d, max_devices);
                }
            }
            for c in &e.countries {
                if !k.countries.iter().any(|x| **x == **c) {
                    push_capped(&mut k.countries, c.as_str().into(), max_devices);
                }
            }
            for n in &e.node_addresses {
                match n.parse::<IpAddr>() {
                    Ok(ip) if !k.nodes.contains(&canonical_ip(ip)) => {
                        push_capped(&mut k.nodes, canonical_ip(ip), max_devices);
                    }
                    Ok(_) => {}
                    Err(_) => skipped += 1,
                }
            }
            if let Some(b) = e.baseline {
                if b.decayed_studies.is_finite() && b.decayed_studies >= 0.0 {
                    k.baseline = Some(b);
                } else {
                    skipped += 1;
                }
            }
        }
        for d in &st.destinations {
            match EntityKind::parse(&d.kind) {
                Some(kind) => {
                    self.add_destination(kind, &d.id, d.first_seen_ns);
                }
                None => skipped += 1,
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn tau(half_life_h: i64) -> f64 {
        (half_life_h * HOUR) as f64 / std::f64::consts::LN_2
    }

    #[test]
    fn steady_rate_is_learned() {
        let t = tau(168);
        let mut b = Baseline::new(0);
        // Five studies an hour for four weeks.
        for h in 0..(24 * 28) {
            for k in 0..5 {
                b.add(h * HOUR + k * HOUR / 5, t);
            }
        }
        let r = b.per_window(24 * 28 * HOUR, t, HOUR);
        assert!((r - 5.0).abs() < 0.5, "{r}");
    }

    #[test]
    fn sparse_history_has_a_small_rate() {
        let t = tau(168);
        let mut b = Baseline::new(0);
        for week in 0..3 {
            b.add(week * 168 * HOUR, t);
        }
        let r = b.per_window(21 * 24 * HOUR, t, HOUR);
        assert!(r < 0.02, "{r}");
        assert_eq!(b.history(21 * 24 * HOUR), 21 * 24 * HOUR);
    }

    #[test]
    fn a_spike_does_not_raise_its_own_baseline() {
        let t = tau(168);
        let mut b = Baseline::new(0);
        // One study a week for six weeks, then ten in the last hour.
        for week in 0..6 {
            b.add(week * 168 * HOUR, t);
        }
        let now = 6 * 168 * HOUR;
        let inside: f64 = (0..10).map(|_| 1.0).sum();
        for _ in 0..10 {
            b.add(now, t);
        }
        let week = (168 * HOUR) as f64;
        let before = b.rate_before(now, t, HOUR, inside).unwrap() * week;
        assert!((0.6..1.3).contains(&before), "about one a week: {before}");
        let with = b.per_window(now, t, HOUR) * 168.0;
        assert!(with > 2.0 * before, "the whole history counts the spike: {with}");
        assert!(
            Baseline::new(now).rate_before(now, t, HOUR, 0.0).is_none(),
            "no history before"
        );
    }

    #[test]
    fn eviction_keeps_the_bound() {
        let mut l = Learned::new(100);
        for i in 0..1000 {
            l.entry(EntityKind::User, &format!("u{i}"), i);
        }
        assert!(l.len() <= 100);
        assert!(l.get(EntityKind::User, "u999").is_some());
        assert!(l.get(EntityKind::User, "u0").is_none());
        assert_eq!(l.evicted, 900);
    }

    #[test]
    fn state_round_trips() {
        let mut l = Learned::new(100);
        l.started = Some(5);
        let (k, created) = l.entry(EntityKind::Ae, "WS1", 10).unwrap();
        assert!(created);
        push_capped(&mut k.devices, Device::parse("10.0.0.1"), 4);
        push_capped(&mut k.devices, Device::parse("ja4:T13"), 4);
        push_capped(&mut k.nodes, "10.0.0.2".parse().unwrap(), 4);
        k.baseline = Some(Baseline::new(3));
        l.add_destination(EntityKind::Ae, "EVIL", 7);
        let st = l.to_state(Some(11));
        let json = serde_json::to_string(&st).unwrap();
        let back: LearnedState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
        let mut l2 = Learned::new(100);
        assert_eq!(l2.load(&back, 4), 0);
        assert_eq!(l2.to_state(Some(11)), st);
    }
}
