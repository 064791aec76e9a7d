//! Putting the workers' outputs back into frame order ([`FrameOrder`]), so detection sees
//! replay's sequence whatever the number of workers.

use pacstap_core::{ProtocolEvent, Timestamp};
use std::collections::VecDeque;
use std::time::Instant;

/// What a worker sends the detection thread: its events in frame order, and how far it got.
pub(crate) struct WorkerOutput {
    pub(crate) worker: usize,
    pub(crate) items: Vec<Item>,
    /// Every frame numbered up to this one has been decoded by this worker, or was another's.
    pub(crate) through: u64,
}

/// One step for detection, at its frame's number.
pub(crate) struct Item {
    pub(crate) seq: u64,
    pub(crate) kind: ItemKind,
}

pub(crate) enum ItemKind {
    /// Detection's clock advances to this packet time ([`Detection::tick`]).
    Tick(Timestamp),
    /// A decoded event, and when its frame left the capture (for the latency histogram).
    Event(Box<ProtocolEvent>, Instant),
}

/// Frame number of the events the workers produce at the end (flows flushed at shutdown):
/// after every real frame.
pub(crate) const AT_END: u64 = u64::MAX;

/// Progress of a worker that has decoded all its frames and is still ending its open flows
/// (a step at a time, `FlowShard::finish_step`): its events so far are numbered [`AT_END`].
pub(crate) const ENDING: u64 = AT_END - 1;

/// Puts the workers' outputs back into frame order.
///
/// An item numbered `s` may go to detection once every worker has reported progress through
/// `s`: no worker can still produce anything numbered below it. Each worker's items arrive in
/// order, so the next item is the smallest head among the workers' queues.
pub(crate) struct FrameOrder {
    pub(crate) queues: Vec<VecDeque<Item>>,
    pub(crate) through: Vec<u64>,
}

impl FrameOrder {
    pub(crate) fn new(workers: usize) -> FrameOrder {
        FrameOrder {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            through: vec![0; workers],
        }
    }

    pub(crate) fn push(&mut self, out: WorkerOutput) {
        if let (Some(q), Some(t)) = (self.queues.get_mut(out.worker), self.through.get_mut(out.worker)) {
            q.extend(out.items);
            *t = (*t).max(out.through);
        }
    }

    /// The worker whose queue holds the next item in frame order, if it is safe to release:
    /// no worker can still produce anything numbered below it.
    ///
    /// The events of flows ended at the end of the input ([`AT_END`]) go worker by worker, in
    /// worker order: worker k's as they come once every worker has decoded all its frames and
    /// the workers before k have ended all their flows. So a worker's end streams out while it
    /// ends its flows, instead of all of them waiting here for the last worker.
    pub(crate) fn next_ready(&self) -> Option<(usize, &Item)> {
        let limit = self.through.iter().copied().min().unwrap_or(0);
        self.queues
            .iter()
            .enumerate()
            .filter_map(|(k, q)| q.front().map(|i| (k, i)))
            .min_by_key(|(_, i)| i.seq)
            .filter(|&(k, i)| {
                i.seq <= limit
                    || (i.seq == AT_END
                        && limit >= ENDING
                        && self
                            .through
                            .get(..k)
                            .is_some_and(|before| before.iter().all(|&t| t == AT_END)))
            })
    }

    /// The next item in frame order, if it is safe to release.
    pub(crate) fn pop(&mut self) -> Option<Item> {
        let (k, _) = self.next_ready()?;
        self.queues.get_mut(k)?.pop_front()
    }

    /// Whether the next item to release is an event of frame `seq` (more events of one frame).
    pub(crate) fn next_is_event_of(&self, seq: u64) -> bool {
        self.next_ready()
            .is_some_and(|(_, i)| i.seq == seq && matches!(i.kind, ItemKind::Event(..)))
    }

    pub(crate) fn finished(&self) -> bool {
        self.through.iter().all(|&t| t == AT_END) && self.queues.iter().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_item(seq: u64) -> Item {
        let ep = |a: [u8; 4], port| pacstap_core::Endpoint {
            ip: std::net::IpAddr::from(a),
            port,
        };
        let ev = ProtocolEvent {
            ts: Timestamp(1),
            flow: pacstap_core::FlowMeta {
                id: pacstap_core::FlowId(seq),
                client: ep([10, 0, 0, 1], 40000),
                server: ep([10, 0, 0, 2], 104),
                start: Timestamp(0),
                handshake_seen: true,
            },
            body: pacstap_core::EventBody::Anomaly(pacstap_core::Anomaly {
                proto: "tcp",
                name: "test",
                detail: None,
            }),
        };
        Item {
            seq,
            kind: ItemKind::Event(Box::new(ev), Instant::now()),
        }
    }

    fn seqs(order: &mut FrameOrder) -> Vec<u64> {
        std::iter::from_fn(|| order.pop()).map(|i| i.seq).collect()
    }

    #[test]
    fn frame_order_releases_items_only_when_every_worker_is_past_them() {
        let mut order = FrameOrder::new(2);
        order.push(WorkerOutput {
            worker: 0,
            items: vec![event_item(1), event_item(4)],
            through: 5,
        });
        assert!(seqs(&mut order).is_empty(), "worker 1 has reported nothing yet");
        order.push(WorkerOutput {
            worker: 1,
            items: vec![event_item(2), event_item(3), event_item(7)],
            through: 8,
        });
        assert_eq!(seqs(&mut order), vec![1, 2, 3, 4]);
        order.push(WorkerOutput {
            worker: 0,
            items: vec![event_item(AT_END)],
            through: AT_END,
        });
        assert_eq!(seqs(&mut order), vec![7]);
        assert!(!order.finished());
        order.push(WorkerOutput {
            worker: 1,
            items: vec![event_item(AT_END)],
            through: AT_END,
        });
        assert_eq!(seqs(&mut order), vec![AT_END, AT_END]);
        assert!(order.finished());
    }

    #[test]
    fn flows_ended_at_the_end_stream_out_worker_by_worker() {
        let mut order = FrameOrder::new(2);
        let push = |order: &mut FrameOrder, worker, n, through| {
            order.push(WorkerOutput {
                worker,
                items: (0..n).map(|_| event_item(AT_END)).collect(),
                through,
            })
        };
        push(&mut order, 0, 2, ENDING);
        assert!(seqs(&mut order).is_empty(), "worker 1 may still decode frames");
        push(&mut order, 1, 3, ENDING);
        assert_eq!(
            seqs(&mut order).len(),
            2,
            "worker 0's first step, before it has finished"
        );
        push(&mut order, 1, 1, AT_END);
        assert!(seqs(&mut order).is_empty(), "worker 1's wait for worker 0 to finish");
        push(&mut order, 0, 1, AT_END);
        assert_eq!(seqs(&mut order).len(), 1 + 4);
        assert!(order.finished());
    }
}
