//! Counters of the detector, for the Prometheus exporter and the replay summary. Labels are
//! bounded: rule ids and severities only (ARCHITECTURE rule 12).

use crate::rule::Rule;
use pacstap_core::Severity;

const SEVERITIES: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::High, Severity::Critical];

fn sev_index(s: Severity) -> usize {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

/// One count of a rule × severity table (0 where none: the table covers every rule).
fn cell(t: &[[u64; 4]; Rule::COUNT], rule: Rule, sev: Severity) -> u64 {
    t.get(rule.index())
        .and_then(|row| row.get(sev_index(sev)))
        .copied()
        .unwrap_or(0)
}

/// Alerts by rule and severity (first alerts and updates separately).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertCounts {
    first: [[u64; 4]; Rule::COUNT],
    updates: [[u64; 4]; Rule::COUNT],
}

impl AlertCounts {
    pub(crate) fn record(&mut self, rule: Rule, sev: Severity, update: bool) {
        let t = if update { &mut self.updates } else { &mut self.first };
        if let Some(row) = t.get_mut(rule.index()) {
            if let Some(c) = row.get_mut(sev_index(sev)) {
                *c += 1;
            }
        }
    }

    /// New incidents (alerts with `update: false`).
    pub fn alerts(&self, rule: Rule, sev: Severity) -> u64 {
        cell(&self.first, rule, sev)
    }

    /// Updates of open incidents (`update: true`).
    pub fn updates(&self, rule: Rule, sev: Severity) -> u64 {
        cell(&self.updates, rule, sev)
    }

    /// Every (rule id, severity, alerts, updates) with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Severity, u64, u64)> + '_ {
        Rule::ALL.into_iter().flat_map(move |r| {
            SEVERITIES.into_iter().filter_map(move |s| {
                let (a, u) = (self.alerts(r, s), self.updates(r, s));
                (a + u > 0).then_some((r.id(), s, a, u))
            })
        })
    }

    /// All new incidents.
    pub fn total(&self) -> u64 {
        self.first.iter().flatten().sum()
    }
}

/// What the detector did and holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Protocol events observed.
    pub events: u64,
    pub alerts: AlertCounts,
    /// Entities with live window state now, and evicted (idle the longest) so far.
    pub entities_tracked: u64,
    pub entities_evicted: u64,
    /// Open incidents dropped because their entity was evicted.
    pub incidents_evicted: u64,
    /// Open incidents now.
    pub incidents_open: u64,
    /// Entities with learned state now, and evicted so far.
    pub learned_entities: u64,
    pub learned_evicted: u64,
    /// Devices / countries / addresses forgotten at `detect.max_devices_per_entity`.
    pub devices_dropped: u64,
    /// Window items dropped at `detect.max_window_items` (counts saturated there).
    pub window_items_dropped: u64,
    /// Distinct (entity, study) exports counted.
    pub studies_exported: u64,
    /// Exports by admins / service accounts, not counted by the export rules.
    pub exports_exempt: u64,
    /// Bytes that image servers sent clients over TLS, counted by `bulk_export`.
    pub https_bytes: u64,
    /// DICOM flows whose exports wait for the association's user identity.
    pub pending_flows: u64,
    /// Flows attributed to the calling AE after `detect.identity_wait`, and flows flushed
    /// early at `detect.max_pending_flows` or the per-flow cap.
    pub identity_wait_expired: u64,
    pub pending_overflow: u64,
    /// C-MOVEs whose response came before some of their sub-operations (a mirror's skew), that
    /// waited for them (`late_moves.rs`).
    pub moves_waited_for_sub_operations: u64,
    /// Downloads (WADO, REST API) seen without their request, counted for the user their
    /// client address authenticated as just before or after (`address_identity.rs`, `held.rs`).
    pub downloads_user_inherited: u64,
    /// Of those seen without their request, the ones that waited for their address's next
    /// authenticated request (no user was known for it yet).
    pub downloads_parked: u64,
    /// C-MOVE / C-GET exports on associations whose A-ASSOCIATE-RQ was not captured, counted
    /// for the one user or calling AE their client address associated as just before or
    /// after (`address_identity.rs`).
    pub exports_caller_inherited: u64,
    /// Associations whose A-ASSOCIATE-RQ was lost, named by the Move Originator AE of a
    /// C-MOVE's sub-operations their SCP sent (`held.rs`).
    pub callers_from_sub_operations: u64,
    /// C-MOVEs known only by their sub-operations (`moves.rs` orphans), counted as exports of
    /// their Move Originator AE.
    pub moves_seen_by_sub_operations_only: u64,
    /// Sub-operations no C-MOVE took, though one with their originator and message id was
    /// seen just then (it had counted its studies): they added only volume.
    pub sub_operations_volume_only: u64,
    /// Sub-operations no C-MOVE took, sent by an AE or address not in the DICOM inventory
    /// (or outside the internal networks): not counted (anyone may name a Move Originator).
    pub sub_operations_from_unknown_senders: u64,
    /// GeoIP look-ups made / answered with a country.
    pub geoip_lookups: u64,
    pub geoip_hits: u64,
    /// Learned-state entries that could not be loaded (unknown kinds, bad numbers).
    pub state_entries_skipped: u64,
}
