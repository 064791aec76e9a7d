//! What the detector learns and keeps across restarts: devices, countries and server addresses
//! per entity, export baselines, and destinations already alerted on.
//!
//! [`LearnedState`] is the serialized, versioned form; [`Learned`] the run-time one (hash maps,
//! bounded by `detect.max_learned_entities`, oldest-idle evicted first and counted).

use crate::entity::EntityKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    pub last_seen: i64,
    pub devices: Vec<Box<str>>,
    pub countries: Vec<Box<str>>,
    pub nodes: Vec<Box<str>>,
    pub baseline: Option<Baseline>,
}

/// Push to a capped list, dropping the oldest entry when full; returns whether one was dropped.
pub(crate) fn push_capped(v: &mut Vec<Box<str>>, item: &str, cap: usize) -> bool {
    let mut dropped = false;
    while v.len() >= cap.max(1) {
        v.remove(0);
        dropped = true;
    }
    v.push(item.into());
    dropped
}

fn kind_index(k: EntityKind) -> usize {
    match k {
        EntityKind::User => 0,
        EntityKind::Ae => 1,
        EntityKind::Ip | EntityKind::Device => 2,
    }
}

const KINDS: [EntityKind; 3] = [EntityKind::User, EntityKind::Ae, EntityKind::Ip];

#[derive(Debug)]
pub(crate) struct Learned {
    pub started: Option<i64>,
    maps: [HashMap<Box<str>, Known, ahash::RandomState>; 3],
    pub destinations: HashMap<(EntityKind, Box<str>), i64, ahash::RandomState>,
    max: usize,
    pub evicted: u64,
}

impl Learned {
    pub(crate) fn new(max: usize) -> Self {
        Learned {
            started: None,
            maps: Default::default(),
            destinations: HashMap::default(),
            max: max.max(1),
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }

    pub(crate) fn get(&self, kind: EntityKind, id: &str) -> Option<&Known> {
        self.maps.get(kind_index(kind)).and_then(|m| m.get(id))
    }

    /// The entity's record, created if new (evicting the idlest 1% when full). The flag says
    /// whether it was created.
    pub(crate) fn entry(&mut self, kind: EntityKind, id: &str, now: i64) -> (&mut Known, bool) {
        let ki = kind_index(kind);
        let exists = self.maps.get(ki).is_some_and(|m| m.contains_key(id));
        if !exists && self.len() >= self.max {
            self.evict_idlest();
        }
        let map = &mut self.maps[ki % 3];
        let created = !exists;
        let k = map.entry(id.into()).or_default();
        k.last_seen = k.last_seen.max(now);
        (k, created)
    }

    /// Evict the idlest ~1% of entities in one pass (amortises the sort).
    fn evict_idlest(&mut self) {
        let mut all: Vec<(i64, usize, Box<str>)> = Vec::with_capacity(self.len());
        for (i, m) in self.maps.iter().enumerate() {
            all.extend(m.iter().map(|(k, v)| (v.last_seen, i, k.clone())));
        }
        let n = (all.len() / 100).max(1);
        all.sort_unstable();
        for (_, i, k) in all.into_iter().take(n) {
            if let Some(m) = self.maps.get_mut(i) {
                m.remove(&k);
                self.evicted += 1;
            }
        }
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
        for (kind, m) in KINDS.iter().zip(self.maps.iter()) {
            for (id, k) in m {
                entities.push(LearnedEntity {
                    kind: kind.as_str().to_string(),
                    id: id.to_string(),
                    last_seen_ns: k.last_seen,
                    devices: k.devices.iter().map(|s| s.to_string()).collect(),
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
        for e in &st.entities {
            let Some(kind) = EntityKind::parse(&e.kind) else {
                skipped += 1;
                continue;
            };
            let (k, _) = self.entry(kind, &e.id, e.last_seen_ns);
            for d in &e.devices {
                if !k.devices.iter().any(|x| **x == **d) {
                    push_capped(&mut k.devices, d, max_devices);
                }
            }
            for c in &e.countries {
                if !k.countries.iter().any(|x| **x == **c) {
                    push_capped(&mut k.countries, c, max_devices);
                }
            }
            for n in &e.node_addresses {
                if !k.nodes.iter().any(|x| **x == **n) {
                    push_capped(&mut k.nodes, n, max_devices);
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
        let (k, created) = l.entry(EntityKind::Ae, "WS1", 10);
        assert!(created);
        push_capped(&mut k.devices, "10.0.0.1", 4);
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
