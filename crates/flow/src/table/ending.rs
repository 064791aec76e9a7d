//! How flows leave the table: ended (delivering what they still hold), timed out by the sweep,
//! or finished once an acknowledged hole they waited on is given up.

use pacstap_core::{CloseReason, Direction, Interest, StreamHandler, Timestamp};

use super::{sink, Flow, FlowTable, RECENT_ENDS, RECENT_IDS, SWEEP_INTERVAL};

/// Flows one sweep ends at most (see [`FlowTable::sweep`]).
pub(crate) const SWEEP_MAX: usize = 1024;
use crate::activity::Class;
use crate::reassembly::{Budget, HalfStream};

impl<S: Default> FlowTable<S> {
    /// Give up the acknowledged holes that waited `FlowConfig::ack_wait` of packet time, in flows
    /// that have gone quiet (a flow's own packets check their holes as they come).
    pub(super) fn expire_ack_waits<H: StreamHandler<S>>(&mut self, h: &mut H) {
        let now = self.clock.now();
        while let Some(&(deadline, idx, id)) = self.ack_waits.front() {
            if deadline > now {
                break;
            }
            self.ack_waits.pop_front();
            let mut b = Budget {
                cfg: &self.cfg,
                stats: &mut self.stats,
                now,
            };
            let Some(flow) = self
                .slots
                .get_mut(idx as usize)
                .and_then(Option::as_mut)
                .filter(|f| f.meta.id == id && !f.ignored)
            else {
                continue;
            };
            let Flow {
                half,
                state,
                meta,
                causal,
                ..
            } = flow;
            let mut interest = Interest::Continue;
            for d in Direction::BOTH {
                if interest == Interest::Continue && half[d].waiting() {
                    interest = half[d].tick(&mut b, &mut sink(h, state, meta, d, deadline));
                }
            }
            // A wait given up releases what was held for it (`causal`).
            let go_on = interest == Interest::Continue;
            let (_, i) = super::causal::release_if_over(causal, half, go_on, now, &mut b, h, state, meta);
            if go_on {
                interest = i;
            }
            if interest == Interest::Ignore {
                flow.ignored = true;
                for hs in flow.half.iter_mut() {
                    hs.clear(&mut b);
                }
                if let Some(c) = flow.causal.take() {
                    c.discard(&mut b);
                }
            }
            let still = flow
                .half
                .iter()
                .filter_map(HalfStream::waiting_since)
                .chain(flow.causal.as_ref().map(|c| c.since))
                .min();
            let done = flow.half.to_server.is_closed() && flow.half.to_client.is_closed();
            if flow.ignored {
                // The handler let go while its hole was given up: it moves to its new class's
                // list, as if active now (rare; keeps each list in time order).
                flow.last_active = now;
                self.activity.touch(idx, Class::Ignored);
            }
            if done {
                // Stamped with when the wait expired, as timeouts are.
                self.end_flow(idx, CloseReason::Fin, deadline, h);
            } else if let Some(since) = still {
                // Waiting on packets rather than time, or a newer hole: look again later. At the
                // end of the clock's range (a capture stamped centuries ahead) there is no later:
                // re-arming at `now` would loop here forever, so the flow keeps what it holds
                // until it ends (bounded by the caps; the flush at the end delivers it).
                let next = since.add(self.cfg.ack_wait).max(now.add(SWEEP_INTERVAL));
                if next > now {
                    self.ack_waits.push_back((next, idx, id));
                }
            }
        }
    }

    /// Remove a flow: deliver what it still holds (holes as gaps), then `on_flow_end`.
    pub(super) fn end_flow<H: StreamHandler<S>>(&mut self, idx: u32, reason: CloseReason, ts: Timestamp, h: &mut H) {
        let Some(mut flow) = self.slots.get_mut(idx as usize).and_then(Option::take) else {
            return;
        };
        self.activity.unlink(idx);
        self.free.push(idx);
        self.index.remove(&flow.key);
        let mut b = Budget {
            cfg: &self.cfg,
            stats: &mut self.stats,
            now: self.clock.now(),
        };
        let mut released = Interest::Continue;
        if let Some(mut c) = flow.causal.take() {
            // The flow ends: what was held for causal order is delivered before the rest.
            let Flow {
                half,
                state,
                meta,
                ignored,
                ..
            } = &mut flow;
            if *ignored {
                c.discard(&mut b);
            } else {
                let d = c.dir;
                released = c.replay(super::causal::ALL, &mut half[d], &mut b, h, state, meta);
            }
        }
        if !flow.ignored && released == Interest::Continue {
            for dir in Direction::BOTH {
                let Flow { half, state, meta, .. } = &mut flow;
                if half[dir].finish(&mut b, &mut sink(h, state, meta, dir, ts)) == Interest::Ignore {
                    break;
                }
            }
        }
        for hs in flow.half.iter_mut() {
            hs.clear(&mut b);
        }
        if flow.seen.to_server != flow.seen.to_client {
            self.stats.one_sided_flows += 1;
        }
        if matches!(reason, CloseReason::Fin | CloseReason::Rst) {
            if self.recent_ends[0].len() >= RECENT_ENDS {
                let newer = std::mem::take(&mut self.recent_ends[0]);
                self.recent_ends[1] = newer;
            }
            let (client, server) = (
                flow.seqs[Direction::ToServer].snd_max,
                flow.seqs[Direction::ToClient].snd_max,
            );
            let (sent, isn) = if flow.client_first {
                ([client, server], [flow.client_isn, flow.server_isn])
            } else {
                ([server, client], [flow.server_isn, flow.client_isn])
            };
            self.recent_ends[0].insert(flow.key, super::Ended { sent, isn, at: ts });
        }
        self.stats.flows_ended += 1;
        if self.recent_ids.len() >= RECENT_IDS {
            self.recent_ids.pop_front();
        }
        self.recent_ids.push_back(flow.meta.id);
        h.on_flow_end(flow.state, &flow.meta, reason, ts);
    }

    /// End flows idle for longer than the timeout, oldest first; stop at the first that is not,
    /// or after [`SWEEP_MAX`] of them: the rest end at the next packets, a step each. A sweep
    /// ends its flows within one packet, whose events are all gathered before any is written:
    /// after a flood of 262,144 connections that each opened a DICOM association, one sweep
    /// ending them all took 500 MB more.
    pub(super) fn sweep<H: StreamHandler<S>>(&mut self, h: &mut H) {
        let idle = self.cfg.idle_timeout;
        let now = self.clock.now();
        self.next_sweep = now.add(SWEEP_INTERVAL.min(idle));
        let mut ended = 0;
        while let Some(idx) = self.oldest() {
            let Some(last) = self.slot(idx).map(|f| f.last_active) else {
                break;
            };
            if now.since(last) <= idle {
                break;
            }
            if ended == SWEEP_MAX {
                // More are due: sweep again at the next packet.
                self.next_sweep = now;
                break;
            }
            ended += 1;
            self.stats.flows_timed_out += 1;
            // Stamped with when it expired, not when the sweep noticed.
            self.end_flow(idx, CloseReason::Timeout, last.add(idle), h);
        }
    }
}
