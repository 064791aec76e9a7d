//! `sharing_spike`: share actions per actor within the window, and distinct external
//! recipients, each against its threshold.

use crate::detector::Detector;
use crate::engine::{Measurer, Occurrence};
use crate::entity::EntRef;
use crate::rule::Rule;
use crate::scope::Scope;
use crate::window::SlidingWindow;
use pacstap_core::ProtocolEvent;

impl Detector {
    pub(crate) fn share(
        &mut self,
        actor: EntRef<'_>,
        action: &str,
        recipients: &[String],
        ev: &ProtocolEvent,
        out: &mut Vec<ProtocolEvent>,
    ) {
        if !self.cfg.rules.sharing_spike.enabled {
            return;
        }
        let now = self.now;
        let idx = self.entities.get_or_insert(actor, now);
        let (cap, span) = (self.p.window_cap, self.p.share_win);
        let keys: Vec<u64> = recipients.iter().map(|r| self.hasher.hash_one(r.as_str())).collect();
        let Some(s) = self.entities.slot_mut(idx) else { return };
        let w =
            s.st.shares
                .get_or_insert_with(|| Box::new(SlidingWindow::events(span, cap)));
        w.expire(now);
        w.add(now, ev.ts.0, 0, None, ev.flow.id);
        self.stats.window_items_dropped += w.take_dropped();
        if !recipients.is_empty() {
            let rw =
                s.st.recipients
                    .get_or_insert_with(|| Box::new(SlidingWindow::distinct(span, cap)));
            rw.expire(now);
            for (r, k) in recipients.iter().zip(&keys) {
                rw.add(now, ev.ts.0, *k, Some(r), ev.flow.id);
            }
            self.stats.window_items_dropped += rw.take_dropped();
        }
        let m = Measurer {
            p: &self.p,
            cfg: &self.cfg,
            learned: &self.learned,
            now,
        }
        .measure(&mut s.st, s.kind, &s.id, Rule::SharingSpike);
        if let Some(m) = m {
            // The outside recipients are where the shared studies go.
            let extras: Vec<&str> = recipients.iter().map(String::as_str).collect();
            let scope = Scope {
                dests: &extras,
                extras: &extras,
                ..Scope::text(action)
            };
            self.apply(
                idx,
                Rule::SharingSpike,
                &m,
                Occurrence::on(&ev.flow, ev.ts.0, scope),
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;

    fn share(t: i64, recipient: Option<&str>) -> pacstap_core::ProtocolEvent {
        let url = recipient.map_or("/share".to_string(), |r| format!("/share?email={r}"));
        let (t, f, mut h) = http(t, flow(1, "10.0.0.9:40000", "10.0.0.5:443"), &url, 201, Some("erin"));
        h.share_action = Some("share_link_created".into());
        http_ev((t, f, h))
    }

    #[test]
    fn the_eleventh_share_is_a_spike() {
        let mut r = Run::new("");
        for i in 0..10 {
            r.feed(share(i * SEC, None));
        }
        assert!(r.alerts("sharing_spike").is_empty());
        r.feed(share(10 * SEC, None));
        let a = r.alerts("sharing_spike");
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].entity.id.as_str(), a[0].count), ("erin", 11));
    }

    #[test]
    fn the_sixth_distinct_outside_recipient_is_a_spike() {
        let mut r = Run::new("");
        for i in 0..5 {
            r.feed(share(i * SEC, Some(&format!("x{i}@ext.com"))));
            r.feed(share(i * SEC, Some(&format!("x{i}@ext.com"))));
        }
        assert!(r.alerts("sharing_spike").is_empty(), "10 shares to 5 recipients");
        r.feed(share(6 * SEC, Some("x5@ext.com")));
        assert_eq!(r.alerts("sharing_spike").len(), 1);
    }
}
