//! Packet time.

use serde::{Serialize, Serializer};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// A packet timestamp: nanoseconds since the Unix epoch (UTC).
///
/// Nanoseconds because pcapng can carry them; events print microseconds (CONTRACT §2).
/// `i64` nanoseconds reach the year 2262, and a hostile pcap header cannot overflow it because
/// constructors saturate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    /// From seconds and a sub-second part in nanoseconds (saturating).
    pub fn from_secs_nanos(secs: u64, nanos: u64) -> Self {
        let s = i64::try_from(secs).unwrap_or(i64::MAX);
        let n = i64::try_from(nanos).unwrap_or(i64::MAX);
        Timestamp(s.saturating_mul(1_000_000_000).saturating_add(n))
    }

    pub fn from_micros(us: i64) -> Self {
        Timestamp(us.saturating_mul(1000))
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn as_micros(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self + d`, saturating. A method rather than `impl Add`, so the saturation is visible
    /// at the call site.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (packets can be out of order).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 UTC with microseconds, e.g. `2026-11-27T10:00:01.123456Z`.
    pub fn rfc3339(self) -> String {
        let us = self.as_micros().max(0) as u64;
        let t = UNIX_EPOCH + Duration::from_micros(us);
        humantime::format_rfc3339_micros(t).to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_micros() {
        let t = Timestamp::from_secs_nanos(1_795_773_601, 123_456_789);
        assert_eq!(t.rfc3339(), "2026-11-27T10:00:01.123456Z");
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let t = Timestamp::from_secs_nanos(u64::MAX, u64::MAX);
        assert_eq!(t.0, i64::MAX);
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
    }
}
