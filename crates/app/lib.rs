//! pacstap as a library: the pipeline that the binary, the integration tests and the benches
//! share, so that what the tests measure is exactly what users run.

pub mod live;
pub mod pipeline;
pub mod progress;

pub use live::{capture, CaptureOptions, CaptureReport, EventsTarget};
pub use pipeline::{replay, Detection, DetectionSettings, FlowShard, Pipeline, ReplayOptions, ReplayReport};
