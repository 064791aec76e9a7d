//! Our own failures (ARCHITECTURE rule 6: bad traffic is an event, not an `Err`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The GeoIP database (`geoip.database` / `geoip.csv`) could not be opened or read.
    #[error("geoip database {}: {message}", path.display())]
    GeoIp { path: PathBuf, message: String },
    /// The learned-state file could not be read or written.
    #[error("state file {}: {source}", path.display())]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state could not be serialized.
    #[error("state file {}: {message}", path.display())]
    StateEncode { path: PathBuf, message: String },
    /// A learned state from a newer pacstap.
    #[error("learned state version {found} is newer than this pacstap understands (up to {supported})")]
    StateVersion { found: u32, supported: u32 },
}
