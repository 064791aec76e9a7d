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
    /// A failed login as `user` / calling AE `ae` (to called AE `called`) from `client`.
    pub(crate) fn login_failure(
        &mut self,
        (user, ae, called): (Option<&str>, Option<&str>, Option<&str>),
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
                // A source's list also holds up to FAILURE_CONTEXT called AE titles.
                let cap = match rule {
                    Rule::LoginFailuresUser => FAILURE_CONTEXT,
                    _ => 2 * FAILURE_CONTEXT,
                };
                push_capped(&mut s.st.failure_context, c, cap);
            }
            // Per source, the called AE titles tried too: their own FAILURE_CONTEXT slots,
            // never evicting the accounts.
            if let (Rule::LoginFailuresSource, Some(c)) = (rule, called) {
                let ctx = &mut s.st.failure_context;
                let called_n = ctx.iter().filter(|x| matches!(x, Ctx::Called(_))).count();
                if called_n < FAILURE_CONTEXT && !ctx.iter().any(|x| matches!(x, Ctx::Called(n) if **n == *c)) {
                    ctx.push(Ctx::Called(c.into()));
                }
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
                        detail: called.map(Detail::Text),
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
        // Credit the principal that logged in, by name (the user, else the AE title), with the
        // address beside it, even when the burst was counted for the address (issue 12 item 5:
        // "MR_SCANNER1 from 10.20.10.12", not "Address 10.20.10.12").
        let credited = user.map(EntRef::User).or(ae.map(EntRef::Ae)).unwrap_or(ent);
        let detail = canonical_ip(client).to_string();
        let counted_for = match ent {
            _ if ent == credited => None,
            EntRef::User(u) => Some(format!("failures counted for user {u}")),
            EntRef::Ae(a) => Some(format!("failures counted for AE {a}")),
            EntRef::Ip(ip) => Some(format!("failures counted for address {}", canonical_ip(ip))),
        };
        let extras: Vec<&str> = counted_for.as_deref().into_iter().collect();
        let scope = Scope {
            extras: &extras,
            ..Scope::text(&detail)
        };
        let idx = self.instant(
            Rule::LoginSuccessAfterFailures,
            credited,
            scope,
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

    #[test]
    fn a_scan_names_the_called_ae_titles_it_tried() {
        let mut r = Run::new("");
        let f = flow(1, "10.20.99.7:40000", "10.20.0.10:104");
        // nmap's dicom-brute: one calling AE, a new called AE title each time.
        for i in 0..25 {
            r.feed(assoc(i * SEC, f, "ECHOSCU", &format!("TITLE{i}"), false, None));
        }
        let a = r.alerts("login_failures_source");
        let first = a.first().expect("fired");
        assert_eq!(first.count, 21);
        assert_eq!(
            first.summary,
            "Address 10.20.99.7 had 21 failed logins in 10m (threshold 20); accounts tried: ECHOSCU; called AE titles tried: TITLE0, TITLE1, TITLE2, TITLE3, TITLE4, TITLE5, TITLE6, TITLE7, TITLE8, TITLE9 and others."
        );
    }

    #[test]
    fn a_success_after_an_address_burst_is_credited_to_the_ae_that_logged_in() {
        let mut r = Run::new("");
        let f = flow(1, "10.20.10.12:40000", "10.20.0.10:104");
        // A scan: rejected associations from 10.20.10.12, each with another calling AE.
        for i in 0..12 {
            r.feed(assoc(i * SEC, f, &format!("PROBE{i}"), "PACS", false, None));
        }
        r.feed(assoc(20 * SEC, f, "MR_SCANNER1", "PACS", true, None));
        let s = r.alerts("login_success_after_failures");
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].entity.kind.as_str(), s[0].entity.id.as_str()),
            ("ae", "MR_SCANNER1")
        );
        assert_eq!(
            s[0].summary,
            "AE MR_SCANNER1 logged in successfully from 10.20.10.12 right after 12 failed logins in 10m (failures counted for address 10.20.10.12) (threshold 5)."
        );
        let steps = s[0].response.join(" | ");
        assert!(!steps.contains("reset the credentials of MR_SCANNER1"), "{steps}");
        assert!(!steps.contains("isolate 10.20.10.12"), "{steps}");
    }

    #[test]
    fn a_success_fires_at_the_accept_and_not_again_at_the_command_or_the_end() {
        use pacstap_core::{DicomAccepted, DicomEvent, EventBody};
        let mut r = Run::new("");
        let f = flow(1, "10.20.10.12:40000", "10.20.0.10:104");
        for i in 0..6 {
            r.feed(assoc(i * SEC, f, "SCANNER9", "PACS", false, None));
        }
        let ac = DicomAccepted {
            calling_ae: "SCANNER9".into(),
            called_ae: "PACS".into(),
            user: None,
        };
        r.feed(event(10 * SEC, f, EventBody::Dicom(DicomEvent::Accepted(ac))));
        let s = r.alerts_with_time("login_success_after_failures");
        assert_eq!(s.len(), 1, "fired at the accept");
        assert_eq!(
            (s[0].0, s[0].1.entity.id.as_str(), s[0].1.count),
            (T0 + 10 * SEC, "SCANNER9", 6)
        );
        // The same association's end says nothing new.
        r.feed(assoc(12 * SEC, f, "SCANNER9", "PACS", true, None));
        assert_eq!(r.alerts("login_success_after_failures").len(), 1);
    }
}
