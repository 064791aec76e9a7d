//! What the JetStream publisher has done, at one moment: the one shape shared by the publisher
//! (`pacstap-jetstream`, which counts) and the metrics (`pacstap-output`, which exports it as
//! `pacstap_publish_*`), so that neither crate depends on the other.

/// The publisher's counters at one moment; all zero without `--publish`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishTotals {
    /// Events JetStream acknowledged.
    pub acked: u64,
    /// Events dropped: queue full, or still waiting when the shutdown drain ran out.
    pub dropped: u64,
    /// Publishes sent again after a failure.
    pub retried: u64,
    /// Events given up on after repeated refusals by the server.
    pub failed: u64,
    /// Events waiting (queued, in flight, to be retried).
    pub queue_depth: u64,
    /// Whether the client is connected to a server now.
    pub connected: bool,
}
