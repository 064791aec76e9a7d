//! The counters and settings the sharded pipeline's threads share (metrics, the report, port
//! hints after a config reload).

use crate::config::Config;
use crate::shard::ShardStats;
use pacstap_defrag::{DefragConfig, DefragStats};
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
    /// The wire stage's settings after a config reload, with a generation to notice them: the
    /// capture thread applies them at its next frame and hands them to each worker in-band,
    /// with the first batch it sends it after that frame ([`WireSettings`]).
    pub(crate) wire: Mutex<Option<WireSettings>>,
    pub(crate) wire_generation: AtomicU64,
}

/// What a reload may change below detection: the tunnels to peel (`[decapsulate]`) and the
/// defragmenter's limits (`[defrag]`). Carried by the first batch each worker gets after the
/// capture thread switched, so a worker decodes every frame with the settings the capture
/// thread sharded it with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireSettings {
    pub(crate) wire: pacstap_wire::WireConfig,
    pub(crate) defrag: DefragConfig,
}

impl WireSettings {
    pub(crate) fn of(config: &Config) -> WireSettings {
        WireSettings {
            wire: crate::config::wire_config(config),
            defrag: crate::config::defrag_config(config),
        }
    }
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
            wire: Mutex::new(None),
            wire_generation: AtomicU64::new(0),
        }
    }

    /// Publishes new wire settings (a reload) for the capture thread to pick up.
    pub(crate) fn publish_wire(&self, settings: WireSettings) {
        if let Ok(mut w) = self.wire.lock() {
            *w = Some(settings);
        }
        self.wire_generation.fetch_add(1, Ordering::Release);
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
