//! A worker thread ([`worker_loop`]): decodes the frames of the flows it owns with its own
//! [`FlowShard`], passes the events on tagged with their frame's number, and serves live
//! evidence requests from its ring.

use super::dispatch::Batch;
use super::order::{Item, ItemKind, WorkerOutput, AT_END, ENDING};
use super::shared::Shared;
use crate::detection::METRICS_EVERY;
use crate::evidence_cut::{EvidenceReply, EvidenceRequest};
use crate::shard::{FlowShard, ShardStats};
use crossbeam_channel::{select, Receiver, Sender};
use pacstap_core::Timestamp;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// While frames wait, a worker serves at most one evidence request per this many batches.
pub(crate) const BATCHES_BETWEEN_REQUESTS: usize = 8;

/// A worker's evidence side: requests in, copies out. `None` without `--evidence-dir`.
pub(crate) struct WorkerEvidence {
    pub(crate) requests: Receiver<EvidenceRequest>,
    pub(crate) replies: Sender<EvidenceReply>,
}

impl WorkerEvidence {
    pub(crate) fn serve(&self, shard: &FlowShard, req: EvidenceRequest) {
        let packets = shard.evidence_since(&req.wants);
        let _ = self.replies.send(EvidenceReply { id: req.id, packets });
    }
}

/// A worker thread: decode the frames of its flows, pass events on in frame order; with
/// evidence, answer requests for the packets of its flows, until detection no longer needs them.
pub(crate) fn worker_loop(
    worker: usize,
    mut shard: FlowShard,
    rx: Receiver<Batch>,
    pool: Sender<Batch>,
    out: Sender<WorkerOutput>,
    evidence: Option<WorkerEvidence>,
    shared: Arc<Shared>,
) -> ShardStats {
    let mut events = Vec::new();
    let mut last_ts = Timestamp(i64::MIN);
    let mut ports_seen = 0;
    let mut next_publish = Instant::now();
    let publish = |shard: &FlowShard| {
        if let Some(slot) = shared.shards.get(worker) {
            if let Ok(mut s) = slot.lock() {
                *s = shard.stats();
            }
        }
    };
    let never = crossbeam_channel::never();
    let requests = evidence.as_ref().map_or(&never, |e| &e.requests);
    // Counters published since the last batch (a quiet link must not leave metrics stale).
    let mut published = true;
    // Batches since the last evidence request served: copying an incident's packets takes
    // milliseconds, so while frames are waiting a request is served only every few batches,
    // never back to back (the queue absorbs one copy, not a run of them).
    let mut batches_since_request = usize::MAX;
    loop {
        let requests_now = if batches_since_request >= BATCHES_BETWEEN_REQUESTS || rx.is_empty() {
            requests
        } else {
            &never
        };
        let mut batch = select! {
            recv(rx) -> msg => match msg {
                Ok(b) => b,
                Err(_) => break,
            },
            recv(requests_now) -> req => {
                if let (Ok(req), Some(e)) = (req, &evidence) {
                    e.serve(&shard, req);
                    batches_since_request = 0;
                }
                continue;
            },
            default(METRICS_EVERY) => {
                if !published {
                    publish(&shard);
                    published = true;
                }
                continue;
            },
        };
        published = false;
        batches_since_request = batches_since_request.saturating_add(1);
        let generation = shared.ports_generation.load(Ordering::Acquire);
        if generation != ports_seen {
            ports_seen = generation;
            if let Ok(Some(cfg)) = shared.ports.lock().map(|c| c.clone()) {
                shard.set_port_hints(&cfg);
            }
        }
        // New wire settings (a reload) apply from this batch's first frame: the capture thread
        // sharded this batch's frames with them.
        if let Some(w) = batch.wire.take() {
            shard.set_wire_config(w.wire);
            shard.set_defrag_config(w.defrag);
        }
        let mut items = Vec::with_capacity(8);
        for m in &batch.frames {
            if m.tick {
                items.push(Item {
                    seq: m.seq,
                    kind: ItemKind::Tick(m.ts),
                });
            }
            if m.datagram {
                shard.datagram(&batch.frame(m), &mut events);
            } else {
                shard.frame(&batch.frame(m), &mut events);
            }
            for ev in events.drain(..) {
                items.push(Item {
                    seq: m.seq,
                    kind: ItemKind::Event(Box::new(ev), m.received),
                });
            }
        }
        last_ts = last_ts.max(batch.last_ts);
        let through = batch.through;
        batch.clear();
        let _ = pool.try_send(batch);
        if out.send(WorkerOutput { worker, items, through }).is_err() {
            break;
        }
        let now = Instant::now();
        if now >= next_publish {
            next_publish = now + METRICS_EVERY;
            publish(&shard);
            published = true;
        }
    }
    // The capture is over: end every open flow at the capture's last packet time, as replay
    // does at the end of its input.
    let end = if last_ts.0 == i64::MIN {
        shard.last_ts().unwrap_or_default()
    } else {
        last_ts
    };
    // A step at a time, each step's events handed over before the next (see `finish_step`).
    loop {
        let more = shard.finish_step(end, &mut events);
        let now = Instant::now();
        let items = events
            .drain(..)
            .map(|ev| Item {
                seq: AT_END,
                kind: ItemKind::Event(Box::new(ev), now),
            })
            .collect();
        let through = if more { ENDING } else { AT_END };
        if out.send(WorkerOutput { worker, items, through }).is_err() || !more {
            break;
        }
    }
    drop(out);
    publish(&shard);
    // Alerts raised at the very end (detection's own finish) still want their packets.
    if let Some(e) = &evidence {
        for req in e.requests.iter() {
            e.serve(&shard, req);
        }
    }
    shard.stats()
}
