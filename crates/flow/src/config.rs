//! Bounds of the flow table and its reassemblers, and the counters that say when they were hit.
//!
//! Every buffer and table here has a cap, and hitting a cap is counted (ARCHITECTURE rule 5): a tap
//! sees whatever the network carries, including traffic built to exhaust its memory.

use std::time::Duration;

/// Bounds of the flow table. Each default says where its number comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// A flow with no packet for this long (packet time) is ended with `CloseReason::Timeout`.
    ///
    /// Default 600 s: longer than the idle gaps inside a DICOM association that is still working
    /// (C-MOVE sub-operations waiting on a slow archive take minutes), shorter than Suricata's
    /// 3600 s established-flow timeout, because a host that vanished without FIN or RST should not
    /// hold its flow for an hour. Zeek uses 5 min (`tcp_inactivity_timeout`).
    pub idle_timeout: Duration,
    /// Flows held at once; when full, the least recently active flow is evicted.
    ///
    /// Default 2^18 = 262 144: a hospital segment has a few thousand concurrent connections, so this
    /// leaves two orders of magnitude for scans and SYN floods while keeping the table itself
    /// (about 350 bytes per flow: entry, index and list links) near 90 MB, plus decoder state.
    pub max_flows: usize,
    /// Out-of-order bytes held per direction (plus [`PIECE_OVERHEAD`] per buffered piece).
    ///
    /// Default 1 MiB: the bandwidth-delay product of a 10 Gb/s LAN with a 1 ms round trip is
    /// 1.25 MB, and a receiver cannot have more than that in flight beyond a hole; more than this
    /// waiting on one hole means the hole was lost by the capture, not delayed.
    ///
    /// [`PIECE_OVERHEAD`]: crate::PIECE_OVERHEAD
    pub max_buffered_bytes_per_dir: usize,
    /// Out-of-order bytes held by all flows together (same accounting).
    ///
    /// Default 64 MiB: 64 directions fully buffered at once, a fixed memory budget per flow
    /// worker however many flows are reordering.
    pub max_buffered_bytes_total: usize,
    /// Holes (separate islands of buffered data) per direction.
    ///
    /// Default 64: a TCP receiver can describe at most 4 holes at a time (SACK, RFC 2018 §3) and
    /// real loss within one window leaves a handful; dozens of islands are noise or an evasion
    /// attempt, and each one costs a tree node.
    pub max_holes_per_dir: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout: Duration::from_secs(600),
            max_flows: 262_144,
            max_buffered_bytes_per_dir: 1 << 20,
            max_buffered_bytes_total: 64 << 20,
            max_holes_per_dir: 64,
        }
    }
}

/// What the flow table did, for metrics and the summary. All counters only grow, except
/// [`FlowStats::buffered_bytes`], which is a gauge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowStats {
    /// TCP packets fed to [`FlowTable::process`](crate::FlowTable::process).
    pub packets: u64,
    /// TCP payload bytes those packets carried on the wire (including bytes the snaplen cut off).
    pub payload_bytes: u64,
    pub flows_created: u64,
    /// Every `on_flow_end`, whatever the reason (so `flows_created - flows_ended` = active flows).
    pub flows_ended: u64,
    /// Flows ended because the table was full (`CloseReason::Evicted`).
    pub flows_evicted: u64,
    /// Times a new flow found the table full.
    pub flow_table_full: u64,
    /// Flows ended by the idle timeout.
    pub flows_timed_out: u64,
    /// Flows ended because a SYN opened a new connection on the same addresses and ports.
    pub flows_reused: u64,
    /// Flows whose handshake was not seen.
    pub midstream_pickups: u64,
    /// `ChunkBody::Gap`s delivered.
    pub gaps: u64,
    /// Bytes those gaps stand for.
    pub gap_bytes: u64,
    /// Gaps declared because the receiver acknowledged bytes the capture never saw.
    pub ack_gaps: u64,
    /// Bytes seen more than once (the later copies are dropped).
    pub retransmitted_bytes: u64,
    /// Overlaps whose bytes differed from the first copy (which is what was delivered).
    pub overlap_conflicts: u64,
    /// Segments that arrived ahead of a hole and were buffered.
    pub out_of_order_segments: u64,
    /// Holes skipped because a buffer cap (per direction or global) was hit.
    pub buffer_cap_hits: u64,
    /// Holes skipped because a direction had more than `max_holes_per_dir`.
    pub hole_cap_hits: u64,
    /// Packets whose captured payload is shorter than on the wire (snaplen).
    pub truncated_packets: u64,
    /// Bytes sent after the direction's FIN (dropped).
    pub bytes_after_fin: u64,
    /// Packets that created no flow: no payload and no SYN for an unknown flow (e.g. a bare ACK or
    /// RST of a connection that already ended).
    pub ignored_packets: u64,
    /// Gauge: bytes held in reassembly buffers now, including per-piece overhead.
    pub buffered_bytes: u64,
}

impl FlowStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &FlowStats) {
        let FlowStats {
            packets,
            payload_bytes,
            flows_created,
            flows_ended,
            flows_evicted,
            flow_table_full,
            flows_timed_out,
            flows_reused,
            midstream_pickups,
            gaps,
            gap_bytes,
            ack_gaps,
            retransmitted_bytes,
            overlap_conflicts,
            out_of_order_segments,
            buffer_cap_hits,
            hole_cap_hits,
            truncated_packets,
            bytes_after_fin,
            ignored_packets,
            buffered_bytes,
        } = other;
        self.packets += packets;
        self.payload_bytes += payload_bytes;
        self.flows_created += flows_created;
        self.flows_ended += flows_ended;
        self.flows_evicted += flows_evicted;
        self.flow_table_full += flow_table_full;
        self.flows_timed_out += flows_timed_out;
        self.flows_reused += flows_reused;
        self.midstream_pickups += midstream_pickups;
        self.gaps += gaps;
        self.gap_bytes += gap_bytes;
        self.ack_gaps += ack_gaps;
        self.retransmitted_bytes += retransmitted_bytes;
        self.overlap_conflicts += overlap_conflicts;
        self.out_of_order_segments += out_of_order_segments;
        self.buffer_cap_hits += buffer_cap_hits;
        self.hole_cap_hits += hole_cap_hits;
        self.truncated_packets += truncated_packets;
        self.bytes_after_fin += bytes_after_fin;
        self.ignored_packets += ignored_packets;
        self.buffered_bytes += buffered_bytes;
    }
}
