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
    /// Whether IP and TCP checksums are validated before a segment may enter reassembly or change
    /// flow state. Default [`ChecksumMode::Auto`].
    pub checksum: ChecksumMode,
    /// Auto mode: verifiable segments looked at before the verdict is final
    /// ([`crate::checksum::AUTO_SAMPLE`]); validation stops once more than a tenth of this many
    /// are bad in the way offload makes them. Each of N workers gets its share (1000 / N), as
    /// with the flow cap: a worker sees about 1/N of the segments, and with the whole sample
    /// each, most workers of an offloaded capture kept validating, dropping every segment of
    /// their flows, long after one table would have stopped (with 3 workers, 28 of the 50
    /// events of `pcap-samples/hostile-tcp/offloaded-lo.pcap`).
    pub checksum_sample: u64,
    /// How long a hole the receiver already acknowledged is kept open for its data to arrive
    /// (packet time), before it is declared a gap.
    ///
    /// Default 500 ms: the two directions of a SPAN port reach the tap through different queues,
    /// so a segment can arrive after the peer's ACK that covers it ("ACKed segment that wasn't
    /// captured" in Wireshark); the skew between those queues is microseconds to milliseconds,
    /// and 500 ms is above Linux's minimum retransmission timeout (200 ms, RFC 6298 §2.4 allows
    /// 1 s): a segment later than that was lost by the capture, not delayed.
    pub ack_wait: Duration,
    /// Packets of the flow (either direction) after which an acknowledged hole is given up.
    ///
    /// Default 32: a delayed segment arrives within a few frames of the ACK that overtook it; 32
    /// packets of the same connection later it is not coming.
    pub ack_wait_segments: u32,
    /// Bytes acknowledged beyond the delivery point after which a hole is given up at once.
    ///
    /// Default 64 KiB: the largest unscaled TCP window (RFC 9293 §3.1); an ACK that far ahead
    /// covers more than one delayed segment, i.e. real capture loss.
    pub ack_wait_bytes: u64,
    /// Bytes of one direction held per flow while the other direction waits for acknowledged
    /// bytes, so the decoders read a request before the answer a SPAN port showed first
    /// (`table::causal`). Past it the held segments are delivered at once.
    ///
    /// Default 256 KiB: a millisecond of skew between a SPAN port's two queues carries about
    /// 125 KB of a 1 Gbit/s answer; four full 64 KiB windows.
    pub causal_hold_bytes: usize,
    /// Bytes of the most recently delivered data kept per direction to tell a conflicting
    /// retransmission of delivered bytes (an overlap with different content) from a plain one.
    ///
    /// Default 4 KiB: more than two full-size Ethernet segments (MSS 1460), which covers the
    /// retransmission of the last segments sent; older bytes are not compared.
    pub delivered_history_bytes: usize,
    /// All flows' delivered-bytes histories together; directions beyond it keep none.
    ///
    /// Default 64 MiB: 16 384 directions with the default history, far above the connections of
    /// a PACS segment that carry data at once; a flood of empty flows allocates none.
    pub delivered_history_total: usize,
    /// TCP anomaly events emitted per flow (all are still counted in [`FlowStats`]): a flow
    /// under attack must not flood the event stream. Default 16, as the decoders' own cap.
    pub max_anomaly_events_per_flow: u32,
}

/// Checksum validation (CLI `--checksum auto|on|off`), as Suricata's `checksum-validation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Validate, unless most of the first packets turn out bad: then the capture was taken on a
    /// sending host with checksum offload, and validation is switched off (see `checksum.rs`).
    #[default]
    Auto,
    /// Always validate: a segment with a bad checksum never enters reassembly.
    On,
    /// Never validate.
    Off,
}

impl std::str::FromStr for ChecksumMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ChecksumMode::Auto),
            "on" => Ok(ChecksumMode::On),
            "off" => Ok(ChecksumMode::Off),
            other => Err(format!("checksum mode must be auto, on or off, not {other:?}")),
        }
    }
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout: Duration::from_secs(600),
            max_flows: 262_144,
            max_buffered_bytes_per_dir: 1 << 20,
            max_buffered_bytes_total: 64 << 20,
            max_holes_per_dir: 64,
            checksum: ChecksumMode::Auto,
            checksum_sample: crate::checksum::AUTO_SAMPLE,
            ack_wait: Duration::from_millis(500),
            ack_wait_segments: 32,
            ack_wait_bytes: 64 << 10,
            causal_hold_bytes: 256 << 10,
            delivered_history_bytes: 4 << 10,
            delivered_history_total: 64 << 20,
            max_anomaly_events_per_flow: 16,
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
    /// Gaps declared because the receiver acknowledged bytes the capture never saw, once the hole
    /// had waited its bound (`ack_wait`, `ack_wait_segments`, `ack_wait_bytes`) for them.
    pub ack_gaps: u64,
    /// Bytes seen more than once (the later copies are dropped).
    pub retransmitted_bytes: u64,
    /// Overlaps whose bytes differed from the copy buffered or recently delivered (the copy the
    /// receiver keeps is what was delivered, `reassembly`): the signature of evasion by
    /// overlapping segments.
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
    /// Segments dropped for a bad IPv4 header or TCP checksum (never reassembled).
    pub bad_checksums: u64,
    /// Segments whose checksum could not be checked (snaplen cut the payload, or headers missing): accepted.
    pub unverifiable_checksums: u64,
    /// Auto mode: verifiable segments among the first `checksum::AUTO_SAMPLE` looked at.
    pub checksum_sampled: u64,
    /// Auto mode: how many of those were bad.
    pub checksum_sample_bad: u64,
    /// Auto mode: 1 when validation was switched off as offloaded (summed over workers).
    pub checksum_offloaded: u64,
    /// Auto mode: bad-checksum data segments that also came with a good checksum (decoys, not
    /// offload; `checksum`), until the verdict.
    pub checksum_twins: u64,
    /// Holes the receiver acknowledged before their data was captured (SPAN queue skew or loss).
    pub ack_before_data: u64,
    /// Of those, holes whose data arrived while kept open (delayed, not lost).
    pub ack_before_data_filled: u64,
    /// Segments held until the other direction's acknowledged bytes came (`table::causal`):
    /// an answer the capture showed before its request.
    pub causal_holds: u64,
    /// Times held segments were delivered early, out of causal order, at a cap.
    pub causal_hold_overflows: u64,
    /// Gauge: bytes held for causal order now (counted with `buffered_bytes` against
    /// `max_buffered_bytes_total`).
    pub causal_held_bytes: u64,
    /// RSTs whose sequence number matched what the receiver expects (RFC 5961 §3.2): the flow ends.
    pub rst_accepted: u64,
    /// RSTs within the window but not exact: an endpoint answers with a challenge ACK and stays up.
    pub rst_in_window: u64,
    /// RSTs outside the window: endpoints drop them; so does the tap.
    pub rst_out_of_window: u64,
    /// SYNs (or SYN-ACKs) on an open connection that no handshake confirmed: ignored (RFC 5961 §4).
    pub syn_on_established: u64,
    /// Packets with data after their connection's teardown (beyond a FIN, or on a just-reset 4-tuple).
    pub data_after_close: u64,
    /// SYNs whose data the receiver did not take (its SYN-ACK acknowledged the SYN alone, or the
    /// sender sent the bytes again): dropped, never decoded (`reassembly::syn_data`).
    pub syn_data_ignored: u64,
    /// FINs the receiver would not take: beyond its window, or run past by the sender's data
    /// before the stream reached them (no sender sends bytes after its own FIN). Dropped.
    pub fin_ignored: u64,
    /// Urgent pointers (URG) naming a byte not yet delivered: that byte is taken out of the
    /// stream, as the receiving stack takes it out of what the application reads
    /// (`reassembly::urgent`).
    pub urgent_data: u64,
    /// Data segments of a timestamped connection whose TSval is older than the receiver's
    /// TS.Recent: dropped by it (RFC 7323 §5.3 PAWS), and here (`paws`).
    pub paws_rejected: u64,
    /// Data segments whose IP TTL was below the rest of their direction's, held until the stream
    /// showed whether the receiver got them (`reassembly::held`).
    pub low_ttl_held: u64,
    /// Of those, copies that differed from the bytes the receiver read instead (a decoy whose
    /// TTL ran out between the tap and the receiver).
    pub low_ttl_decoys: u64,
    /// Of those, copies taken because nothing else came for their bytes.
    pub low_ttl_taken: u64,
    /// RSTs whose IP TTL was below the rest of their direction's: not taken (a decoy that never
    /// reaches the receiver would otherwise end the flow here while it goes on there).
    pub rst_low_ttl: u64,
    /// Segments with data or a FIN but neither ACK, SYN nor RST: every receiver drops them
    /// (RFC 9293 §3.10.7.4), and so does the tap.
    pub without_ack: u64,
    /// Data segments that started beyond the receiver's window (from its last ACK and from what
    /// the sender had sent), held, and dropped as the receiver drops them (RFC 9293 §3.10.7.4)
    /// since no ACK of it came (`reassembly::held`).
    pub data_out_of_window: u64,
    /// Data segments held for starting beyond the window that the receiver then acknowledged:
    /// taken (the capture had missed the ACKs that opened the window).
    pub data_out_of_window_taken: u64,
    /// Packets stamped far ahead of the clock and not confirmed by the packets after them.
    pub timestamp_jumps: u64,
    /// Evictions of flows that never carried payload (half-open, SYN floods).
    pub evicted_half_open: u64,
    /// Evictions of flows with payload no decoder wanted.
    pub evicted_established: u64,
    /// Evictions of flows a decoder was still reading.
    pub evicted_decoding: u64,
    /// Ended flows of which only one direction was ever captured.
    pub one_sided_flows: u64,
    /// Frames identical (same IP id, TCP header and length) to the previous one of their
    /// direction: the same frame mirrored twice.
    pub duplicate_frames: u64,
    /// Gauge: bytes held in delivered-data histories now.
    pub history_bytes: u64,
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
            bad_checksums,
            unverifiable_checksums,
            checksum_sampled,
            checksum_sample_bad,
            checksum_offloaded,
            checksum_twins,
            ack_before_data,
            ack_before_data_filled,
            causal_holds,
            causal_hold_overflows,
            causal_held_bytes,
            rst_accepted,
            rst_in_window,
            rst_out_of_window,
            syn_on_established,
            data_after_close,
            syn_data_ignored,
            fin_ignored,
            urgent_data,
            paws_rejected,
            low_ttl_held,
            low_ttl_decoys,
            low_ttl_taken,
            rst_low_ttl,
            without_ack,
            data_out_of_window,
            data_out_of_window_taken,
            timestamp_jumps,
            evicted_half_open,
            evicted_established,
            evicted_decoding,
            one_sided_flows,
            duplicate_frames,
            history_bytes,
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
        self.bad_checksums += bad_checksums;
        self.unverifiable_checksums += unverifiable_checksums;
        self.checksum_sampled += checksum_sampled;
        self.checksum_sample_bad += checksum_sample_bad;
        self.checksum_offloaded += checksum_offloaded;
        self.checksum_twins += checksum_twins;
        self.ack_before_data += ack_before_data;
        self.ack_before_data_filled += ack_before_data_filled;
        self.causal_holds += causal_holds;
        self.causal_hold_overflows += causal_hold_overflows;
        self.causal_held_bytes += causal_held_bytes;
        self.rst_accepted += rst_accepted;
        self.rst_in_window += rst_in_window;
        self.rst_out_of_window += rst_out_of_window;
        self.syn_on_established += syn_on_established;
        self.data_after_close += data_after_close;
        self.syn_data_ignored += syn_data_ignored;
        self.fin_ignored += fin_ignored;
        self.urgent_data += urgent_data;
        self.paws_rejected += paws_rejected;
        self.low_ttl_held += low_ttl_held;
        self.low_ttl_decoys += low_ttl_decoys;
        self.low_ttl_taken += low_ttl_taken;
        self.rst_low_ttl += rst_low_ttl;
        self.without_ack += without_ack;
        self.data_out_of_window += data_out_of_window;
        self.data_out_of_window_taken += data_out_of_window_taken;
        self.timestamp_jumps += timestamp_jumps;
        self.evicted_half_open += evicted_half_open;
        self.evicted_established += evicted_established;
        self.evicted_decoding += evicted_decoding;
        self.one_sided_flows += one_sided_flows;
        self.duplicate_frames += duplicate_frames;
        self.history_bytes += history_bytes;
    }
}
