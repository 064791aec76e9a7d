//! pacstap's detection engine (issue 4): protocol events in, alerts out.
//!
//! [`Detector::observe`] takes [`ProtocolEvent`](pacstap_core::ProtocolEvent)s in packet-time
//! order and pushes alerts (CONTRACT §2 `alert`) for the rules of the PACS security checklist:
//! login failures per user / AE and per source, a success after a failure burst, new devices
//! and locations, admin changes, bulk and above-baseline exports, unknown destinations and
//! sharing spikes. Counting is done in sliding windows over packet time (exact, bounded per
//! entity; entities evicted oldest-idle-first beyond `detect.max_entities`). Learned state
//! (devices per entity, countries, node addresses, export baselines, destinations alerted
//! on) survives restarts through [`StateStore`].

pub mod config;
mod detector;
mod entity;
mod error;
mod geo;
mod incident;
mod learned;
mod name;
mod rule;
mod state;
mod stats;
mod text;
mod window;

pub use config::{Config, ConfigError};
pub use detector::Detector;
pub use entity::EntityKind;
pub use error::DetectError;
pub use learned::{Baseline, LearnedDestination, LearnedEntity, LearnedState, STATE_VERSION};
pub use rule::Rule;
pub use state::StateStore;
pub use stats::{AlertCounts, DetectStats};
