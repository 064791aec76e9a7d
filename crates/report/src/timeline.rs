//! Timeline: events per hour by protocol, alerts over time, exports per entity.

use crate::ev::{CapSet, Ev};
use crate::ledger::Action;
use crate::model::{AlertMark, EntityExports, TimeBin, Timeline};
use crate::time::{self, Micros, DAY, HOUR};
use std::collections::{BTreeMap, HashMap};

/// Hours tracked (100 000 h: over 11 years of traffic; events further out are counted in
/// the last bin's neighbours no more, only in the totals).
pub const MAX_HOURS: usize = 100_000;
/// A span longer than this is shown per day (a bar per hour stops being readable).
pub const HOURLY_UP_TO: Micros = 4 * DAY;
/// Entities with export counts (10 000), studies counted per entity (10 000), alerts listed (1 000).
pub const MAX_ENTITIES: usize = 10_000;
pub const MAX_STUDIES_PER_ENTITY: usize = 10_000;
pub const MAX_ALERT_MARKS: usize = 1_000;

#[derive(Default)]
struct Exports {
    transfers: u64,
    studies: CapSet,
    instances: u64,
    bytes: u64,
}

#[derive(Default)]
pub struct Time {
    hours: BTreeMap<Micros, [u64; 5]>,
    exports: HashMap<String, Exports>,
    alerts: Vec<AlertMark>,
    alerts_total: u64,
}

impl Time {
    pub fn add(&mut self, ev: &Ev<'_>) {
        let h = ev.t.div_euclid(HOUR) * HOUR;
        if !self.hours.contains_key(&h) && self.hours.len() >= MAX_HOURS {
            return;
        }
        let slot = match ev.ty {
            "dicom" => 0,
            "http" => 1,
            "tls" => 2,
            "hl7" => 3,
            "alert" => 4,
            _ => return,
        };
        if let Some(c) = self.hours.entry(h).or_default().get_mut(slot) {
            *c += 1;
        }
        if ev.ty == "alert" {
            self.alerts_total += 1;
            if self.alerts.len() < MAX_ALERT_MARKS {
                let (kind, id) = ev.entity();
                self.alerts.push(AlertMark {
                    time: ev.ts.to_string(),
                    rule: ev.s("rule").unwrap_or("").to_string(),
                    severity_name: ev.s("severity_name").unwrap_or("").to_string(),
                    entity: format!("{}:{}", kind.unwrap_or("?"), id.unwrap_or("?")),
                    incident_id: ev.s("incident_id").unwrap_or("").to_string(),
                    update: ev.is_update(),
                });
            }
        }
    }

    pub fn add_export(&mut self, a: &Action<'_>) {
        if a.kind != "transfer" {
            return;
        }
        if !self.exports.contains_key(&a.by) && self.exports.len() >= MAX_ENTITIES {
            return;
        }
        if !self.exports.contains_key(&a.by) {
            self.exports.insert(a.by.clone(), Exports::default());
        }
        let Some(e) = self.exports.get_mut(&a.by) else { return };
        e.transfers += 1;
        e.instances += a.instances.unwrap_or(0);
        e.bytes += a.bytes.unwrap_or(0);
        for s in &a.studies {
            e.studies.add(s, MAX_STUDIES_PER_ENTITY);
        }
    }

    pub fn finish(self) -> Timeline {
        let span = match (self.hours.keys().next(), self.hours.keys().next_back()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        let (bin, width) = if span <= HOURLY_UP_TO {
            ("hour", HOUR)
        } else {
            ("day", DAY)
        };
        let mut bins: BTreeMap<Micros, TimeBin> = BTreeMap::new();
        if let (Some(&a), Some(&b)) = (self.hours.keys().next(), self.hours.keys().next_back()) {
            // Empty bins too, so the chart's x axis is time (at most MAX_HOURS of them).
            let (a, b) = (a.div_euclid(width) * width, b.div_euclid(width) * width);
            let mut t = a;
            while t <= b && bins.len() < MAX_HOURS {
                bins.insert(
                    t,
                    TimeBin {
                        start: time::format_minutes(t),
                        ..TimeBin::default()
                    },
                );
                t += width;
            }
        }
        for (h, c) in self.hours {
            if let Some(b) = bins.get_mut(&(h.div_euclid(width) * width)) {
                b.dicom += c[0];
                b.http += c[1];
                b.tls += c[2];
                b.hl7 += c[3];
                b.alerts += c[4];
            }
        }
        let mut exports: Vec<EntityExports> = self
            .exports
            .into_iter()
            .map(|(entity, e)| EntityExports {
                entity,
                transfers: e.transfers,
                studies: e.studies.set.len() as u64 + e.studies.dropped,
                instances: e.instances,
                bytes: e.bytes,
            })
            .collect();
        exports.sort_by(|a, b| {
            b.studies
                .cmp(&a.studies)
                .then(b.bytes.cmp(&a.bytes))
                .then_with(|| a.entity.cmp(&b.entity))
        });
        Timeline {
            bin,
            bins: bins.into_values().collect(),
            exports_by_entity: exports,
            alerts: self.alerts,
            alerts_total: self.alerts_total,
        }
    }
}
