//! The counters and settings the sharded pipeline's threads share (metrics, the report, port
//! hints after a config reload).

use crate::config::Config;
use crate::shard::ShardStats;
use pacstap_defrag::DefragStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters the threads share (for metrics and the report).
pub(crate) struct Shared {
    /// Per worker: frames dropped because its channel was full.
    pub(crate) pipeline_drops: Vec<AtomicU64>,
    pub(crate) kernel_drops: AtomicU64,
    pub(crate) if_drops: AtomicU64,
    /// Per worker: its shard's counters, refreshed about once a second.
    pub(crate) shards: Vec<Mutex<ShardStats>>,
    /// The capture thread's defragmenter's counters (several workers), likewise.
    pub(crate) defrag: Mutex<DefragStats>,
    /// Port hints for the workers after a config reload, with a generation to notice them.
    pub(crate) ports: Mutex<Option<Config>>,
    pub(crate) ports_generation: AtomicU64,
}

impl Shared {
    pub(crate) fn new(workers: usize) -> Shared {
        Shared {
            pipeline_drops: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            kernel_drops: AtomicU64::new(0),
            if_drops: AtomicU64::new(0),
            shards: (0..workers).map(|_| Mutex::new(ShardStats::default())).collect(),
            defrag: Mutex::new(DefragStats::default()),
            ports: Mutex::new(None),
            ports_generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn pipeline_drops(&self) -> Vec<u64> {
        self.pipeline_drops.iter().map(|d| d.load(Ordering::Relaxed)).collect()
    }

    /// All workers' counters as one.
    pub(crate) fn shard_stats(&self) -> ShardStats {
        let mut total = ShardStats::default();
        for s in &self.shards {
            if let Ok(s) = s.lock() {
                total.merge(&s);
            }
        }
        if let Ok(d) = self.defrag.lock() {
            total.defrag.merge(&d);
        }
        total
    }
}
