//! pacstap's detection engine (issue 4): protocol events in, alerts out.
//!
//! [`Detector::observe`] takes [`ProtocolEvent`](pacstap_core::ProtocolEvent)s in packet-time
//! order and pushes `alert` events (CONTRACT §2) on the flow that triggered them;
//! [`Detector::tick`] lets windows expire without events; [`Detector::finish`] ends a run
//! (held exports attributed, grown incidents reported). Learned state (devices per entity,
//! countries, node addresses, export baselines, destinations alerted on) survives restarts
//! through [`Detector::learned_state`] and [`StateStore`] (atomic writes; a corrupt file is set
//! aside as `<path>.corrupt-<n>` and reported).
//!
//! Rules (CONTRACT §2 ids; thresholds, windows and severities from [`Config`]):
//!
//! | rule | entity | counts / fires |
//! |---|---|---|
//! | `login_failures_user` | user, AE | A-ASSOCIATE-RJ (per user identity and calling AE), HTTP 401/403 with credentials: events in window > threshold |
//! | `login_failures_source` | ip | the same failures per source address |
//! | `login_success_after_failures` | user > AE > ip | a success when more than `threshold` failures (not yet consumed by an earlier alert) are in the window |
//! | `new_device` | user, AE | accepted association / authenticated 2xx from an address (or JA4) never seen for a known entity; first sighting, first device of a kind, and the learning period learn silently |
//! | `new_location` | user | GeoIP country never seen for the user (external addresses only; skipped without a database) |
//! | `admin_change` | user / ip / AE | HTTP `admin_action` (not refused), HL7 MFN (`admin_event`), an AE answering at a new address |
//! | `bulk_export` | user > AE > ip | distinct StudyInstanceUIDs exported (C-MOVE, C-GET, WADO-RS/URI) in window > threshold; admins and service accounts exempt. HTTPS (studies invisible): per client ip, bytes image servers sent it over TLS in window > `https_bytes` (count and threshold in bytes) |
//! | `export_above_baseline` | as above | distinct studies in window > max(threshold, factor × decayed rate), once the entity has `min_history` |
//! | `unknown_destination` | AE / ip | images to an AE not in the inventory (or not at its address), any image or HL7 flow to an address outside `networks.internal`; once per destination, ever |
//! | `sharing_spike` | user / ip | share actions > threshold, or distinct external recipients > `recipients_threshold` |
//!
//! Every alert about a transfer names where the data went in `evidence.destinations` (capped,
//! with `destinations_total`): a C-MOVE's destination AE with the address its C-STOREs went
//! to, a C-GET requester, a C-STORE's called AE and address, a WADO / HTTPS client, an HL7
//! receiver, share recipients. Rules about no transfer leave it out.
//!
//! One incident per (rule, entity): the first alert has `update: false`; growth is reported as
//! `update: true` at most once per `detect.update_interval` (at once when the count grew by a
//! threshold's worth); the rule re-arms when the count is back at or below the threshold (or,
//! for instant rules, after a quiet window). An export alert within its window after a
//! `new_device` / `new_location` alert for the same entity is `critical`.
//!
//! Counting is exact and bounded: windows saturate at `detect.max_window_items` (every
//! threshold must be below it), entities beyond `detect.max_entities` and learned entities
//! beyond `detect.max_learned_entities` are evicted least-recently-used first, and every cap
//! hit is counted in [`DetectStats`].
//!
//! Layout: `observe/` turns events into observations (one file per protocol), `rules/` counts
//! them (one file per rule family), `engine.rs` opens, grows and closes incidents,
//! `held.rs` holds retrieves until their user is known, `inventory.rs` answers what the config
//! knows, and `detector.rs` ties them together (`observe`, `tick`, `finish`).

// Input-controlled indexing is how a tap crashes (the workspace allows the lint only for the
// crates not yet cleaned): every index here is a `get`, a `PerDirection`, or a site marked with
// its reason. Tests index freely: a panic there is a failed test.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod address_identity;
mod bounded_map;
pub mod config;
mod dest;
mod detector;
mod engine;
mod entity;
mod error;
mod geo;
mod held;
mod incident;
mod inventory;
mod late_moves;
mod learned;
pub mod learned_view;
mod moves;
mod name;
mod observe;
pub mod posture;
mod rule;
mod rules;
mod scope;
mod seen_moves;
mod state;
mod stats;
#[cfg(test)]
mod testkit;
mod text;
mod window;

pub use config::{Config, DetectConfig};
pub use detector::Detector;
pub use entity::EntityKind;
pub use error::DetectError;
pub use learned::{Baseline, LearnedDestination, LearnedEntity, LearnedState, STATE_VERSION};
pub use posture::PostureTracker;
pub use rule::Rule;
pub use state::StateStore;
pub use stats::{AlertCounts, DetectStats};
