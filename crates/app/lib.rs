//! pacstap as a library: the pipeline that the binary, the integration tests and the benches
//! share, so that what the tests measure is exactly what users run.
//!
//! # Layout
//!
//! The modules form a tree: each uses only those listed above it, never one beside or below.
//!
//! ```text
//! progress.rs      progress on stderr (wall clock, operator only)
//! config.rs        settings derived from the config for the stages below detection (port hints, tunnels)
//! recent.rs        bounded map of recently seen flows (evidence attribution)
//! report.rs        ReplayReport: what a run found, and the human summary
//! shard.rs         FlowShard: wire → defrag → flow → proto for the flows one thread owns
//! detection.rs     Detection: detect → outputs, on one thread; DetectionClock; metrics snapshot
//! evidence_cut.rs  live evidence: alerts' pcaps cut from the workers' rings
//! evidence_seal.rs replay evidence: custody log and the alerts' `pcap_sha256`
//! sharded/         the multi-threaded pipeline (Sharded): capture thread → workers → detection
//!   shared.rs        counters and port hints the threads share
//!   dispatch.rs      capture thread: number, shard (Sharder), batch, never block (FrameFeed)
//!   order.rs         workers' outputs back into frame order (FrameOrder)
//!   worker.rs        a worker: its FlowShard, evidence requests
//!   chores.rs        detection thread's housekeeping: SIGHUP, events file reopen, config reload
//!   mod.rs           Sharded::run: starts the threads, runs the detection loop
//! ingest/          `pacstap detect --from`: EVE lines (files, streams) → reorder, dedup → Detection
//! replay.rs        `pacstap replay`: Pipeline (one FlowShard + one Detection) or Sharded over files
//! capture.rs       `pacstap capture`: a live interface through Sharded
//! ```
//!
//! The binary (`main.rs`) adds `cli.rs` (the clap definitions and help texts) and `commands/`
//! (one runner per subcommand, and the checks they share), on top of this library.

// Indexing that input controls is how a tap crashes: `get` everywhere outside tests.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod capture;
pub mod config;
pub mod detection;
pub mod evidence_cut;
mod evidence_seal;
pub mod ingest;
pub mod progress;
pub mod recent;
pub mod replay;
pub mod report;
pub mod shard;
pub mod sharded;

pub use capture::{capture, CaptureOptions, CaptureReport};
pub use detection::{Detection, DetectionSettings};
pub use replay::{replay, Pipeline, ReplayOptions};
pub use report::ReplayReport;
pub use shard::FlowShard;
pub use sharded::EventsTarget;

/// The paths of `capture` and the sharded pipeline before the split (issue 11), kept so code
/// written against them still builds.
pub mod live {
    pub use crate::capture::{
        capture, check_state_dir, open_capture, CaptureOptions, CaptureReport, DEFAULT_EVIDENCE_MEMORY,
    };
    pub use crate::evidence_cut::{EVIDENCE_RECUT, EVIDENCE_RECUT_MAX};
    pub use crate::sharded::*;
}

/// The paths of `replay` and its stages before the split (issue 11), kept so code written
/// against them still builds.
pub mod pipeline {
    pub use crate::config::{apply_ports, wire_config};
    pub use crate::detection::{stats_snapshot, Detection, DetectionClock, DetectionSettings, METRICS_EVERY};
    pub use crate::replay::{replay, Pipeline, ReplayOptions};
    pub use crate::report::ReplayReport;
    pub use crate::shard::{defragment, defragment_decoded, Datagram, FlowShard, ShardStats};
}
