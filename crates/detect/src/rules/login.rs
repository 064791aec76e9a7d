//! `login_failures_user`, `login_failures_source` and `login_success_after_failures`: failed
//! logins counted per account (user identity, calling AE) and per source address, and a
//! success after more than `threshold` failures not yet consumed by an earlier alert.

use crate::config::canonical_ip;
use crate::detector::Detector;
use crate::engine::{Measurer, Occurrence};
use crate::entity::{Ctx, EntRef};
use crate::learned::push_capped;
use crate::rule::Rule;
use crate::scope::{Detail, Scope};
use crate::window::SlidingWindow;
use pacstap_core::ProtocolEvent;
use std::net::IpAddr;

/// Sources (per account) or accounts (per source) of recent failed logins named in alerts.
const FAILURE_CONTEXT: usize = 10;

impl Detector {
    pub(crate) fn login_failure(
        &mut self,
        user: Option<&str>,
        ae: Option<&str>,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let r = &self.cfg.rules;
        let per_user = r.login_failures_user.enabled || r.login_success_after_failures.enabled;
        let per_source = r.login_failures_source.enabled || r.login_success_after_failures.enabled;
        let account = user.or(ae).unwrap_or("(unnamed)");
        let client = canonical_ip(client);
        let ents = [
            user.filter(|_| per_user)
                .map(|u| (EntRef::User(u), Rule::LoginFailuresUser)),
            ae.filter(|_| per_user)
                .map(|a| (EntRef::Ae(a), Rule::LoginFailuresUser)),
            per_source.then_some((EntRef::Ip(client), Rule::LoginFailuresSource)),
        ];
        let now = self.now;
        for (ent, rule) in ents.into_iter().flatten() {
            let idx = self.entities.get_or_insert(ent, now);
            let (span, cap) = (self.p.fail_span, self.p.window_cap);
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            // What the alert will name: sources of an account's failures, accounts of a source's.
            let known_ctx = match rule {
                Rule::LoginFailuresUser => s.st.failure_context.contains(&Ctx::Ip(client)),
                _ => {
                    s.st.failure_context
                        .iter()
                        .any(|c| matches!(c, Ctx::Name(n) if **n == *account))
                }
            };
            if !known_ctx {
                let c = match rule {
                    Rule::LoginFailuresUser => Ctx::Ip(client),
                    _ => Ctx::Name(account.into()),
                };
                push_capped(&mut s.st.failure_context, c, FAILURE_CONTEXT);
            }
            let w = s.st.failures.get_or_insert_with(|| SlidingWindow::events(span, cap));
            w.expire(now);
            w.add(now, ev.ts.0, 0, None, ev.flow.id);
            self.stats.window_items_dropped += w.take_dropped();
            let enabled = match rule {
                Rule::LoginFailuresUser => self.cfg.rules.login_failures_user.enabled,
                _ => self.cfg.rules.login_failures_source.enabled,
            };
            if !enabled {
                continue;
            }
            let m = Measurer {
                p: &self.p,
                cfg: &self.cfg,
                learned: &self.learned,
                now,
            }
            .measure(&mut s.st, s.kind, &s.id, rule);
            if let Some(m) = m {
                let scope = if rule == Rule::LoginFailuresUser {
                    Scope {
                        detail: Some(Detail::Addr(client)),
                        ..Scope::default()
                    }
                } else {
                    Scope {
                        extras: &[account],
                        ..Scope::default()
                    }
                };
                self.apply(idx, rule, &m, Occurrence::on(&ev.flow, ev.ts.0, scope), out);
            }
        }
    }

    pub(crate) fn login_success(
        &mut self,
        user: Option<&str>,
        ae: Option<&str>,
        client: IpAddr,
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let rule = &self.cfg.rules.login_success_after_failures;
        if !rule.enabled {
            return;
        }
        let threshold = rule.threshold;
        let now = self.now;
        let cutoff = now.saturating_sub(self.p.lsaf_win);
        let candidates = [user.map(EntRef::User), ae.map(EntRef::Ae), Some(EntRef::Ip(client))];
        let mut found: [Option<u32>; 3] = [None; 3];
        let mut fired: Option<(EntRef<'_>, u64, i64)> = None;
        for (i, ent) in candidates.iter().enumerate() {
            let Some(ent) = ent else { continue };
            let Some(idx) = self.entities.find(*ent) else { continue };
            if let Some(f) = found.get_mut(i) {
                *f = Some(idx);
            }
            let Some(s) = self.entities.slot_mut(idx) else { continue };
            let Some(w) = s.st.failures.as_mut() else { continue };
            w.expire(now);
            let from = cutoff.max(s.st.failures_consumed);
            let n = w.count_after(from);
            if fired.is_none() && n > threshold {
                let first = w.items().iter().map(|i| i.ts).find(|t| *t > from).unwrap_or(now);
                fired = Some((*ent, n, first));
            }
        }
        let Some((ent, n, first)) = fired else { return };
        for idx in found.into_iter().flatten() {
            if let Some(s) = self.entities.slot_mut(idx) {
                s.st.failures_consumed = now;
            }
        }
        let detail = canonical_ip(client).to_string();
        let idx = self.instant(
            Rule::LoginSuccessAfterFailures,
            ent,
            Scope::text(&detail),
            ev,
            Some((n, threshold)),
            out,
        );
        if let Some(s) = idx.and_then(|i| self.entities.slot_mut(i)) {
            if let Some(inc) = s.st.incident_mut(Rule::LoginSuccessAfterFailures) {
                inc.first_seen = inc.first_seen.min(first);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    #[test]
    fn the_ninth_failure_fires_and_a_success_after_them_fires_too() {
        let mut r = Run::new("");
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        for i in 0..8 {
            r.feed(http_ev(http(i * SEC, f, "/app", 401, Some("bob"))));
        }
        assert!(
            r.alerts("login_failures_user").is_empty(),
            "8 is the threshold, not above it"
        );
        r.feed(http_ev(http(8 * SEC, f, "/app", 401, Some("bob"))));
        let a = r.alerts("login_failures_user");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].entity.id.as_str(), a[0].count, a[0].threshold),
            ("bob", 9, Some(8))
        );
        // Per source: 20 is its threshold, 9 stay below.
        assert!(r.alerts("login_failures_source").is_empty());
        r.feed(http_ev(http(9 * SEC, f, "/app", 200, Some("bob"))));
        let s = r.alerts("login_success_after_failures");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].entity.id.as_str(), s[0].count), ("bob", 9));
        // The failures are consumed: the next success is quiet.
        r.feed(http_ev(http(10 * SEC, f, "/app", 200, Some("bob"))));
        assert_eq!(r.alerts("login_success_after_failures").len(), 1);
    }
}
