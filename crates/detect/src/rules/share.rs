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
