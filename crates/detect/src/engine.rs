//! The rule engine's core: a rule's count now ([`Measurer`]), and driving one (rule, entity)
//! incident from it (open, grow, close; [`Detector::apply`]), with the severity and the alert
//! event it produces ([`AlertSink`]). The rule families in `rules/` feed it; it knows no
//! protocol.

use crate::config::Config;
use crate::detector::{Detector, Params};
use crate::entity::{EntRef, EntityKind, EntityState};
use crate::incident::Incident;
use crate::learned::Learned;
use crate::rule::Rule;
use crate::scope::Scope;
use crate::stats::DetectStats;
use crate::text;
use crate::window::{Added, SlidingWindow};
use pacstap_core::{Alert, AlertEntity, EventBody, FlowId, FlowMeta, ProtocolEvent, Severity, Timestamp};

/// What a rule's count says now.
#[derive(Debug, Clone)]
pub(crate) struct Measure {
    pub(crate) count: u64,
    pub(crate) threshold: u64,
    pub(crate) over: bool,
    pub(crate) window: i64,
    /// Replaces the incident's `extra` (e.g. the baseline sentence).
    pub(crate) extra: Option<String>,
    /// `count` and `threshold` are HTTPS bytes (`bulk_export` of encrypted downloads).
    pub(crate) bytes: bool,
}

/// Where alerts go: the stats that count them, the output they are pushed to, and the packet
/// time they carry.
pub(crate) struct AlertSink<'a> {
    pub(crate) stats: &'a mut DetectStats,
    pub(crate) out: &'a mut Vec<ProtocolEvent>,
    pub(crate) now: i64,
}

impl AlertSink<'_> {
    /// Push the alert (first or update) of an incident about entity `kind` / `id`, on the flow
    /// that first alerted for it (else `flow`), and mark it reported.
    pub(crate) fn emit(&mut self, kind: EntityKind, id: &str, inc: &mut Incident, update: bool, flow: FlowMeta) {
        if inc.incident_id.is_empty() {
            inc.incident_id = crate::incident::incident_id(inc.rule.id(), kind.as_str(), id, inc.first_seen);
        }
        let flow = *inc.alert_flow.get_or_insert(flow);
        let alert = Alert {
            rule: inc.rule.id().to_string(),
            severity: inc.severity,
            entity: AlertEntity {
                kind: kind.as_str().to_string(),
                id: id.to_string(),
            },
            count: inc.peak.max(inc.count),
            threshold: inc.threshold,
            window_seconds: Some(u64::try_from(inc.window / 1_000_000_000).unwrap_or(0)),
            first_seen: Timestamp(inc.first_seen),
            last_seen: Timestamp(inc.last_seen),
            summary: text::summary(inc, kind, id),
            evidence: inc.evidence(),
            response: text::response(inc, kind, id),
            update,
            incident_id: inc.incident_id.clone(),
        };
        self.stats.alerts.record(inc.rule, inc.severity, update);
        inc.mark_reported(self.now);
        self.out.push(ProtocolEvent {
            ts: Timestamp(self.now),
            flow,
            body: EventBody::Alert(alert),
        });
    }
}

/// One occurrence fed to an incident: the flow and time it was seen on, and what it adds
/// (`flow: None`: a re-evaluation without a new occurrence, e.g. at housekeeping).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Occurrence<'a> {
    pub(crate) flow: Option<&'a FlowMeta>,
    pub(crate) ts: i64,
    pub(crate) scope: Scope<'a>,
}

impl<'a> Occurrence<'a> {
    /// Seen at `ts` on `flow`, adding `scope`.
    pub(crate) fn on(flow: &'a FlowMeta, ts: i64, scope: Scope<'a>) -> Self {
        Occurrence {
            flow: Some(flow),
            ts,
            scope,
        }
    }

    /// Nothing new: the count changed with time alone.
    pub(crate) fn none(now: i64) -> Self {
        Occurrence {
            flow: None,
            ts: now,
            scope: Scope::default(),
        }
    }
}

impl Detector {
    /// An instant rule's occurrence: opens an incident, or grows the open one. Returns the
    /// entity's slot.
    pub(crate) fn instant(
        &mut self,
        rule: Rule,
        ent: EntRef<'_>,
        scope: Scope<'_>,
        ev: &ProtocolEvent,
        count: Option<(u64, u64)>,
        out: &mut Vec<ProtocolEvent>,
    ) -> Option<u32> {
        let now = self.now;
        let idx = self.entities.get_or_insert(ent, now);
        let window = match rule {
            Rule::NewDevice => crate::detector::nanos(self.cfg.rules.new_device.window),
            Rule::NewLocation => crate::detector::nanos(self.cfg.rules.new_location.window),
            Rule::AdminChange => crate::detector::nanos(self.cfg.rules.admin_change.window),
            Rule::UnknownDestination => crate::detector::nanos(self.cfg.rules.unknown_destination.window),
            _ => self.p.lsaf_win,
        };
        let occurrences = self
            .entities
            .slot(idx)
            .and_then(|s| s.st.incident(rule))
            .filter(|i| now.saturating_sub(i.last_seen) <= i.window)
            .map_or(1, |i| i.count.saturating_add(1));
        let (c, threshold) = match count {
            Some((c, t)) => (c, Some(t)),
            None => (occurrences, None),
        };
        let m = Measure {
            count: c,
            threshold: threshold.unwrap_or(0),
            over: true,
            window,
            extra: None,
            bytes: false,
        };
        // An expired incident closes before a new one opens.
        let stale = self
            .entities
            .slot(idx)
            .and_then(|s| s.st.incident(rule))
            .is_some_and(|i| now.saturating_sub(i.last_seen) > i.window);
        if stale {
            let closing = Measure {
                over: false,
                ..m.clone()
            };
            self.apply(idx, rule, &closing, Occurrence::none(now), out);
        }
        self.apply_with_threshold(idx, rule, &m, threshold, Occurrence::on(&ev.flow, ev.ts.0, scope), out);
        Some(idx)
    }

    /// Drive one (rule, entity) incident from a fresh measure; instant rules carry no threshold.
    pub(crate) fn apply(
        &mut self,
        idx: u32,
        rule: Rule,
        m: &Measure,
        occ: Occurrence<'_>,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let threshold = match rule {
            Rule::NewDevice | Rule::NewLocation | Rule::AdminChange | Rule::UnknownDestination => None,
            _ => Some(m.threshold),
        };
        self.apply_with_threshold(idx, rule, m, threshold, occ, out);
    }

    /// Drive one (rule, entity) incident from a fresh measure: open it (fire), grow it (update
    /// at a bounded rate), or close it (re-arm; a last update if it grew unreported).
    fn apply_with_threshold(
        &mut self,
        idx: u32,
        rule: Rule,
        m: &Measure,
        threshold: Option<u64>,
        occ: Occurrence<'_>,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let Occurrence { flow, ts, scope } = occ;
        let now = self.now;
        let caps = self.p.caps;
        let interval = self.p.update_interval;
        let severity = self.severity_of(rule);
        let Some(s) = self.entities.slot_mut(idx) else { return };
        let kind = s.kind;
        if let Some((pos, inc)) = s.st.incidents.iter_mut().enumerate().find(|(_, i)| i.rule == rule) {
            inc.set_count(m.count);
            inc.threshold = threshold.or(inc.threshold);
            if let Some(f) = flow {
                inc.last_flow = *f;
                scope.record_into(inc, ts, f.id, caps);
            }
            if let Some(e) = &m.extra {
                inc.extra = vec![e.clone()];
            }
            if !m.over {
                let mut inc = s.st.incidents.remove(pos);
                if inc.grown() {
                    let f = inc.last_flow;
                    AlertSink {
                        stats: &mut self.stats,
                        out,
                        now,
                    }
                    .emit(kind, &s.id, &mut inc, true, f);
                }
                self.entities.open.remove(&(idx, rule));
            } else if inc.update_due(now, interval) && !self.deferred.as_ref().is_some_and(|d| d.contains(&(idx, rule)))
            {
                let f = flow.copied().unwrap_or(inc.last_flow);
                AlertSink {
                    stats: &mut self.stats,
                    out,
                    now,
                }
                .emit(kind, &s.id, inc, true, f);
            }
            return;
        }
        if !m.over {
            return;
        }
        let Some(flow) = flow else { return };
        let mut inc = Incident::new(rule, severity, ts, m.window, threshold, *flow);
        inc.bytes = m.bytes;
        inc.entity_known = match kind {
            EntityKind::Ae => self.inv.knows_ae(&s.id),
            EntityKind::Ip => s.id.parse().is_ok_and(|ip| self.inv.is_internal(ip)),
            EntityKind::User | EntityKind::Device => false,
        };
        inc.entity_label = self.inv.label(kind, &s.id).map(str::to_string);
        inc.set_count(m.count);
        // Scope from the window behind the count.
        let cutoff = now.saturating_sub(m.window);
        if let Some(w) = window_of(&s.st, rule) {
            let export = matches!(rule, Rule::BulkExport | Rule::ExportAboveBaseline);
            for item in w.items() {
                if item.ts > cutoff {
                    inc.seen(item.ts);
                    inc.add_flow(item.flow, caps);
                }
                if let (true, Some(u)) = (export, item.label) {
                    inc.add_study(item.key, u, caps);
                }
            }
        }
        if rule == Rule::BulkExport {
            // Encrypted downloads behind the count: their connections and servers.
            if let Some(hw) = s.st.https.as_deref() {
                for item in hw.items().filter(|i| i.ts > cutoff) {
                    inc.seen(item.ts);
                    inc.add_flow(item.flow, caps);
                    if let (true, Some(l)) = (m.bytes, item.label.as_deref()) {
                        inc.add_detail(l);
                    }
                }
            }
        }
        let mut scope = scope;
        if rule.is_export() {
            // What the exports behind the count moved, and the associations that carried it
            // (the current one's included: it was marked before the count was taken).
            if let Some(v) = s.st.export_volume.as_deref() {
                for mark in v.since(cutoff) {
                    inc.add_volume(mark.instances, mark.bytes);
                    for f in &mark.flows {
                        inc.add_flow(*f, caps);
                    }
                }
                scope.volume = None;
                scope.data_flows = &[];
            }
            // Where the exports behind the count went, not only the one that crossed it.
            for (t, d) in &s.st.export_dests {
                if *t > cutoff {
                    inc.add_destination(&d.evidence(), caps);
                    if !m.bytes {
                        inc.add_detail(&d.summary());
                    }
                }
            }
        }
        if rule == Rule::SharingSpike {
            if let Some(rw) = s.st.recipients.as_deref() {
                for item in rw.items() {
                    if let Some(l) = item.label {
                        inc.add_extra(l);
                        inc.add_destination(l, caps);
                    }
                }
            }
        }
        // Failed logins: the sources (per account) or accounts (per source) seen recently.
        if matches!(rule, Rule::LoginFailuresUser | Rule::LoginFailuresSource) {
            for c in &s.st.failure_context {
                match (rule, c) {
                    (Rule::LoginFailuresUser, _) => inc.add_detail(&c.to_string()),
                    (_, crate::entity::Ctx::Called(n)) => inc.add_detail(n),
                    _ => inc.add_extra(&c.to_string()),
                }
            }
        }
        scope.record_into(&mut inc, ts, flow.id, caps);
        if let Some(e) = &m.extra {
            inc.extra = vec![e.clone()];
        }
        // An export right after a new device / location for the same entity is critical.
        if rule.is_export() {
            if let Some((t0, r0, what)) = &s.st.identity_alert {
                if now.saturating_sub(*t0) <= m.window {
                    inc.severity = Severity::Critical;
                    inc.correlation = Some(format!(
                        "follows a {} alert for {} at {} ({what})",
                        r0.id(),
                        text::entity_phrase(kind, &s.id),
                        Timestamp(*t0)
                    ));
                }
            }
        }
        match self.deferred.as_mut() {
            Some(d) => d.push((idx, rule)),
            None => AlertSink {
                stats: &mut self.stats,
                out,
                now,
            }
            .emit(kind, &s.id, &mut inc, false, *flow),
        }
        s.st.incidents.push(inc);
        self.entities.open.insert((idx, rule));
    }

    fn severity_of(&self, rule: Rule) -> Severity {
        let r = &self.cfg.rules;
        match rule {
            Rule::LoginFailuresUser => r.login_failures_user.severity,
            Rule::LoginFailuresSource => r.login_failures_source.severity,
            Rule::LoginSuccessAfterFailures => r.login_success_after_failures.severity,
            Rule::NewDevice => r.new_device.severity,
            Rule::NewLocation => r.new_location.severity,
            Rule::AdminChange => r.admin_change.severity,
            Rule::BulkExport => r.bulk_export.severity,
            Rule::ExportAboveBaseline => r.export_above_baseline.severity,
            Rule::UnknownDestination => r.unknown_destination.severity,
            Rule::SharingSpike => r.sharing_spike.severity,
        }
    }
}

/// The window behind a rule's count.
fn window_of(st: &EntityState, rule: Rule) -> Option<&SlidingWindow> {
    match rule {
        Rule::LoginFailuresUser | Rule::LoginFailuresSource | Rule::LoginSuccessAfterFailures => st.failures.as_ref(),
        Rule::BulkExport => st.bulk.as_ref(),
        Rule::ExportAboveBaseline => st.baseline.as_ref(),
        Rule::SharingSpike => st.shares.as_deref(),
        _ => None,
    }
}

/// Add the studies of one export to a distinct-study window; returns how many were new in it.
pub(crate) fn add_studies(
    w: &mut SlidingWindow,
    now: i64,
    ts: i64,
    studies: &[(u64, Option<&str>)],
    flow: FlowId,
    stats: &mut DetectStats,
) -> u64 {
    w.expire(now);
    let new = studies
        .iter()
        .filter(|&&(key, uid)| w.add(now, ts, key, uid, flow) == Added::New)
        .count() as u64;
    stats.window_items_dropped += w.take_dropped();
    new
}

/// What a rule's count is measured against: settings, config, learned baselines, packet time.
#[derive(Clone, Copy)]
pub(crate) struct Measurer<'a> {
    pub(crate) p: &'a Params,
    pub(crate) cfg: &'a Config,
    pub(crate) learned: &'a Learned,
    pub(crate) now: i64,
}

impl Measurer<'_> {
    /// The rule's count for this entity now (expiring its window first). For instant rules:
    /// whether the open incident is still within its window of its last occurrence.
    pub(crate) fn measure(&self, st: &mut EntityState, kind: EntityKind, id: &str, rule: Rule) -> Option<Measure> {
        measure_now(self, st, kind, id, rule)
    }
}

fn measure_now(ctx: &Measurer<'_>, st: &mut EntityState, kind: EntityKind, id: &str, rule: Rule) -> Option<Measure> {
    let Measurer { p, cfg, learned, now } = *ctx;
    let r = &cfg.rules;
    match rule {
        Rule::LoginFailuresUser | Rule::LoginFailuresSource => {
            let (t, win) = if rule == Rule::LoginFailuresUser {
                (r.login_failures_user.threshold, p.lfu_win)
            } else {
                (r.login_failures_source.threshold, p.lfs_win)
            };
            let w = st.failures.as_mut()?;
            w.expire(now);
            let count = w.count_after(now.saturating_sub(win));
            Some(Measure {
                count,
                threshold: t,
                over: count > t,
                window: win,
                extra: None,
                bytes: false,
            })
        }
        Rule::BulkExport => {
            // Two measures of one export: distinct studies, and for encrypted downloads the
            // bytes served over HTTPS. Either above its threshold keeps the incident open; its
            // `count` is in the unit that opened it (studies when both are over).
            if st.bulk.is_none() && st.https.is_none() {
                return None;
            }
            let studies = st.bulk.as_mut().map_or(0, |w| {
                w.expire(now);
                w.count()
            });
            let bytes = st.https.as_deref_mut().map_or(0, |w| {
                w.expire(now);
                w.sum()
            });
            let (t, tb) = (r.bulk_export.threshold, p.https_bytes);
            let studies_over = studies > t;
            let bytes_over = tb > 0 && bytes > tb;
            let in_bytes = match st.incident(Rule::BulkExport) {
                Some(inc) => inc.bytes,
                None => bytes_over && !studies_over,
            };
            let (count, threshold) = if in_bytes { (bytes, tb) } else { (studies, t) };
            Some(Measure {
                count,
                threshold,
                over: studies_over || bytes_over,
                window: p.bulk_win,
                extra: None,
                bytes: in_bytes,
            })
        }
        Rule::ExportAboveBaseline => {
            let w = st.baseline.as_mut()?;
            w.expire(now);
            let count = w.count();
            let rule = &r.export_above_baseline;
            if count <= rule.threshold {
                // Below the floor the baseline cannot matter: skip the look-up.
                return Some(Measure {
                    count,
                    threshold: rule.threshold,
                    over: false,
                    window: w.span(),
                    extra: None,
                    bytes: false,
                });
            }
            // The baseline is the history before this window, so the spike being judged does
            // not raise its own bar.
            // The studies inside count at full weight: decayed over at most one window
            // (1 h by default) against a half-life of 7 days, each weighs over 0.99; this
            // keeps the measure O(1) per export (no walk over the window's items).
            let span = w.span();
            let inside = count as f64;
            let rate = learned
                .get(kind, id)
                .and_then(|k| k.baseline)
                .filter(|b| b.history(now).saturating_sub(span) >= p.min_history)
                .and_then(|b| b.rate_before(now, p.tau, span, inside));
            let (limit, extra) = match rate {
                Some(rate) => {
                    let per = rate * span as f64;
                    let scaled = (rule.factor * per).ceil();
                    let limit = if scaled.is_finite() && scaled < u64::MAX as f64 {
                        (scaled as u64).max(rule.threshold)
                    } else {
                        u64::MAX
                    };
                    let text = format!(
                        "{}; the rule allows {} × that, at least {}",
                        text::usual_rate(rate),
                        rule.factor,
                        rule.threshold
                    );
                    (limit, Some(text))
                }
                // Not enough history yet: the rule may not fire.
                _ => (u64::MAX, None),
            };
            Some(Measure {
                count,
                threshold: limit,
                over: count > limit,
                window: w.span(),
                extra,
                bytes: false,
            })
        }
        Rule::SharingSpike => {
            let rule = &r.sharing_spike;
            let w = st.shares.as_mut()?;
            w.expire(now);
            let count = w.count();
            let window = w.span();
            let rc = match st.recipients.as_mut() {
                Some(rw) => {
                    rw.expire(now);
                    rw.count()
                }
                None => 0,
            };
            Some(Measure {
                count,
                threshold: rule.threshold,
                over: count > rule.threshold || rc > rule.recipients_threshold,
                window,
                extra: None,
                bytes: false,
            })
        }
        Rule::NewDevice
        | Rule::NewLocation
        | Rule::AdminChange
        | Rule::UnknownDestination
        | Rule::LoginSuccessAfterFailures => {
            let inc = st.incident(rule)?;
            Some(Measure {
                count: inc.count,
                threshold: inc.threshold.unwrap_or(0),
                over: now.saturating_sub(inc.last_seen) <= inc.window,
                window: inc.window,
                extra: None,
                bytes: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::EntRef;
    use pacstap_core::{Endpoint, FlowId};

    const SEC: i64 = 1_000_000_000;

    fn flow(id: u64) -> FlowMeta {
        FlowMeta {
            id: FlowId(id),
            client: Endpoint::new("10.0.0.1".parse().unwrap(), 40_000),
            server: Endpoint::new("10.0.0.2".parse().unwrap(), 104),
            start: Timestamp(0),
            handshake_seen: true,
        }
    }

    fn failures(d: &mut Detector, idx: u32, n: i64, now: i64) {
        let s = d.entities.slot_mut(idx).unwrap();
        let w =
            s.st.failures
                .get_or_insert_with(|| SlidingWindow::events(600 * SEC, 1000));
        for i in 0..n {
            w.add(now, now - n + i, 0, None, FlowId(1));
        }
    }

    fn measure(d: &mut Detector, idx: u32, rule: Rule, now: i64) -> Option<Measure> {
        let s = d.entities.slot_mut(idx).unwrap();
        Measurer {
            p: &d.p,
            cfg: &d.cfg,
            learned: &d.learned,
            now,
        }
        .measure(&mut s.st, s.kind, &s.id, rule)
    }

    #[test]
    fn login_failures_are_over_the_threshold_on_the_ninth() {
        // Default `login_failures_user`: threshold 8 in 10 minutes.
        let mut d = Detector::new(&Config::default(), None).unwrap();
        let now = 1_000 * SEC;
        let idx = d.entities.get_or_insert(EntRef::User("bob"), now);
        assert!(
            measure(&mut d, idx, Rule::LoginFailuresUser, now).is_none(),
            "no window, no measure"
        );
        failures(&mut d, idx, 8, now);
        let m = measure(&mut d, idx, Rule::LoginFailuresUser, now).unwrap();
        assert_eq!((m.count, m.threshold, m.over, m.window), (8, 8, false, 600 * SEC));
        failures(&mut d, idx, 1, now);
        let m = measure(&mut d, idx, Rule::LoginFailuresUser, now).unwrap();
        assert_eq!((m.count, m.over), (9, true));
    }

    #[test]
    fn an_incident_fires_once_grows_at_a_bounded_rate_and_closes_with_a_last_update() {
        let mut d = Detector::new(&Config::default(), None).unwrap();
        let f = flow(7);
        let mut out = Vec::new();
        let now = 1_000 * SEC;
        d.now = now;
        let idx = d.entities.get_or_insert(EntRef::User("bob"), now);
        let over = |count| Measure {
            count,
            threshold: 8,
            over: true,
            window: 600 * SEC,
            extra: None,
            bytes: false,
        };
        d.apply(
            idx,
            Rule::LoginFailuresUser,
            &over(9),
            Occurrence::on(&f, now, Scope::default()),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let EventBody::Alert(a) = &out[0].body else {
            panic!("not an alert")
        };
        assert_eq!(
            (a.rule.as_str(), a.count, a.threshold, a.update),
            ("login_failures_user", 9, Some(8), false)
        );
        assert_eq!((a.entity.kind.as_str(), a.entity.id.as_str()), ("user", "bob"));
        assert_eq!(a.severity, Severity::Warning);
        assert!(d.entities.open.contains(&(idx, Rule::LoginFailuresUser)));
        // One more within the update interval (60 s): no alert.
        d.now = now + SEC;
        d.apply(
            idx,
            Rule::LoginFailuresUser,
            &over(10),
            Occurrence::on(&f, now + SEC, Scope::default()),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        // Back at the threshold: the incident closes, reporting the growth it had not reported.
        let back = Measure { over: false, ..over(8) };
        d.apply(
            idx,
            Rule::LoginFailuresUser,
            &back,
            Occurrence::none(now + 2 * SEC),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        let EventBody::Alert(a) = &out[1].body else {
            panic!("not an alert")
        };
        assert!(a.update);
        assert_eq!(a.count, 10, "the peak, not the count at closing");
        assert!(!d.entities.open.contains(&(idx, Rule::LoginFailuresUser)));
        assert_eq!(d.stats.alerts.alerts(Rule::LoginFailuresUser, Severity::Warning), 1);
        assert_eq!(d.stats.alerts.updates(Rule::LoginFailuresUser, Severity::Warning), 1);
    }
}
