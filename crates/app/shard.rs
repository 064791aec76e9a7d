//! wire → defrag → flow → proto for the flows one thread owns ([`FlowShard`]): the part of the
//! pipeline that sees every packet. Replay runs one; live capture (`crate::sharded`) one per
//! worker.
//!
//! # IP fragments
//!
//! IP defragmentation (`pacstap-defrag`) runs on the frame path right after the wire decoder:
//! a frame the decoder finds to be a fragment is counted as a frame as usual, and pushed to the
//! [`Defragmenter`]; the datagram it completes is put behind the fragment frame's link header
//! ([`pacstap_defrag::reframe()`]) and goes through wire → flow → proto as one more frame, at the
//! completing fragment's packet time, not counted in `frames`/`bytes` (those are what was
//! captured). Where that runs:
//!
//! * one flow shard (replay, or a capture with one worker): inside [`FlowShard::frame`];
//! * several workers (`crate::sharded`): on the capture thread, before sharding, because the
//!   fragments of one datagram carry no ports (only the first has the TCP header) and so cannot
//!   be hashed to the worker owning their flow; the datagram is then sent to that worker, right
//!   after its last fragment, with the next frame number. Fragments are a tiny share of frames,
//!   and the capture thread already decodes every frame to shard it, so the common path pays one
//!   comparison. Both ways push the same fragments in the same order to one defragmenter, so
//!   the events are the same.
//!
//! Evidence: the ring and the replay's second pass keep the reassembled datagram (re-framed, so
//! it has the capture's link type and lands in the flow's pcap), not the fragments, which have
//! no ports to attribute them to a flow.

use crate::config::Config;
use crate::recent::RecentKeys;
use pacstap_capture::RawFrame;
use pacstap_core::{FlowId, FlowKey, ProtocolEvent, Timestamp};
use pacstap_defrag::{DefragConfig, DefragStats, Defragmenter};
use pacstap_flow::{FlowConfig, FlowTable};
use pacstap_output::{EvidencePackets, EvidenceRing, RingLimits, RingStats};
use pacstap_proto::{Analyzer, FlowState, ProtoConfig};
use pacstap_wire::WireDecoder;

/// Flows ended per [`FlowShard::finish_step`].
pub const FINISH_STEP: usize = 1024;

/// wire → flow → proto for the flows one thread owns: the part of the pipeline that sees
/// every packet. Replay has one; live capture has one per worker, each fed the flows that hash
/// to it, so no flow state is ever shared between threads.
pub struct FlowShard {
    wire: WireDecoder,
    /// IP fragments are joined here when this shard sees every frame (see the module docs);
    /// `None` when the capture thread joins them.
    defrag: Option<Defragmenter>,
    flows: FlowTable<FlowState>,
    analyzer: Analyzer,
    /// Live evidence: the recent packets of this shard's flows (`capture --evidence-dir`).
    ring: Option<EvidenceRing>,
    /// With the ring: recent flows' ids by canonical key, so the packets that follow a flow's
    /// end (the last ACK of the FIN exchange, a late retransmission) still go to its evidence,
    /// as replay's second pass puts them there.
    ended: RecentKeys,
    last_noted: Option<(FlowKey, FlowId)>,
    frames: u64,
    bytes: u64,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    first_linktype: Option<u32>,
}

/// A [`FlowShard`]'s counters, summable over shards ([`ShardStats::merge`]).
#[derive(Debug, Clone, Default)]
pub struct ShardStats {
    pub frames: u64,
    pub bytes: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    pub first_linktype: Option<u32>,
    pub active_flows: u64,
    pub wire: pacstap_wire::WireStats,
    pub defrag: DefragStats,
    pub flow: pacstap_flow::FlowStats,
    pub proto: pacstap_proto::ProtoStats,
}

impl ShardStats {
    /// Adds another shard's counts: the earliest start, the latest end, summed counters.
    pub fn merge(&mut self, o: &ShardStats) {
        // Every field by name, as in the stage counters' own `merge`.
        let ShardStats {
            frames,
            bytes,
            first_ts,
            last_ts,
            first_linktype,
            active_flows,
            wire,
            defrag,
            flow,
            proto,
        } = o;
        self.frames += frames;
        self.bytes += bytes;
        if first_ts.is_some() && (self.first_ts.is_none() || *first_ts < self.first_ts) {
            self.first_ts = *first_ts;
            self.first_linktype = *first_linktype;
        }
        self.last_ts = self.last_ts.max(*last_ts);
        self.active_flows += active_flows;
        self.wire.merge(wire);
        self.defrag.merge(defrag);
        self.flow.merge(flow);
        self.proto.merge(proto);
    }
}

impl FlowShard {
    pub fn new(flow: FlowConfig, proto: ProtoConfig) -> FlowShard {
        FlowShard {
            wire: WireDecoder::new(),
            defrag: None,
            flows: FlowTable::new(flow),
            analyzer: Analyzer::new(proto),
            ring: None,
            ended: RecentKeys::default(),
            last_noted: None,
            frames: 0,
            bytes: 0,
            first_ts: None,
            last_ts: None,
            first_linktype: None,
        }
    }

    /// Join IP fragments in this shard, within `config` (when it sees every frame).
    pub fn defragment(&mut self, config: DefragConfig) {
        self.defrag = Some(Defragmenter::new(config));
    }

    /// Decode one frame; the events it completes are appended to `out`, in order.
    pub fn frame(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        self.frames += 1;
        self.bytes += frame.data.len() as u64;
        if self.first_ts.is_none() {
            self.first_ts = Some(frame.ts);
            self.first_linktype = Some(frame.linktype);
        }
        self.last_ts = Some(self.last_ts.map_or(frame.ts, |t| t.max(frame.ts)));
        let fragments = self.wire.stats.ip_fragments;
        self.decode(frame, out);
        // The wire decoder counted a fragment: decode it once more for its bytes (fragments are
        // rare, so the common path only compares a counter).
        if self.wire.stats.ip_fragments != fragments {
            if let Some(defrag) = self.defrag.as_mut() {
                if let Some(datagram) = defragment(defrag, self.wire.config(), frame) {
                    self.datagram(&datagram.frame(frame), out);
                }
            }
        }
    }

    /// A reassembled datagram (as a frame, [`pacstap_defrag::reframe()`]) through wire → flow →
    /// proto, like a captured frame but not counted as one.
    pub fn datagram(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        self.decode(frame, out);
    }

    fn decode(&mut self, frame: &RawFrame<'_>, out: &mut Vec<ProtocolEvent>) {
        if let Some(pkt) = self.wire.decode(frame.ts, frame.linktype, frame.data) {
            let id = self.flows.process(&pkt, &mut self.analyzer);
            // The flow stage's own anomalies (`tcp.*`) come before what the decoders made of
            // the packet.
            if self.flows.has_events() {
                out.extend(self.flows.drain_events());
            }
            if let Some(ring) = self.ring.as_mut() {
                let key = pkt.key.canonical().0;
                let id = match id {
                    Some(id) => {
                        // Bulk transfers come as runs of one flow's packets: note each run once.
                        if self.last_noted != Some((key, id)) {
                            self.ended.insert(key, id);
                            self.last_noted = Some((key, id));
                        }
                        Some(id)
                    }
                    None => self.ended.get(&key),
                };
                if let Some(id) = id {
                    let payload = pkt.payload.len();
                    ring.record(id, frame.ts, frame.linktype, frame.data, frame.orig_len, payload);
                }
            }
            if self.analyzer.has_events() {
                out.extend(self.analyzer.drain_events());
            }
        }
    }

    /// Keep the recent packets of this shard's flows within `limits`, for live evidence.
    pub fn keep_evidence(&mut self, limits: RingLimits) {
        self.ring = Some(EvidenceRing::new(limits));
    }

    /// Copies of the packets held for the wanted flows (those this shard owns; others are
    /// skipped), after the frames a previous copy had (`EvidenceRing::snapshot_since`).
    pub fn evidence_since(&self, wants: &[(FlowId, u64, u64)]) -> EvidencePackets {
        self.ring.as_ref().map(|r| r.snapshot_since(wants)).unwrap_or_default()
    }

    /// The evidence ring's counters, when it keeps one.
    pub fn evidence_stats(&self) -> Option<RingStats> {
        self.ring.as_ref().map(EvidenceRing::stats)
    }

    /// End of input, a step at a time: [`FINISH_STEP`] open flows end at `ts` (open associations
    /// become `incomplete`) and their events go to `out`. Whether flows remain: call again once
    /// `out` has been taken. In steps because a table of 262,144 open decoding flows ends with
    /// some 500,000 events: gathered at once they took half a GB at the end of a flood.
    pub fn finish_step(&mut self, ts: Timestamp, out: &mut Vec<ProtocolEvent>) -> bool {
        let more = self.flows.flush_some(ts, &mut self.analyzer, FINISH_STEP);
        out.extend(self.flows.drain_events());
        out.extend(self.analyzer.drain_events());
        more
    }

    /// The tunnels the wire stage peels (`[decapsulate]`, `--decapsulate`).
    pub fn set_wire_config(&mut self, config: pacstap_wire::WireConfig) {
        self.wire.set_config(config);
    }

    /// New defragmentation limits (`[defrag]`, on a config reload), when this shard joins
    /// fragments; pending datagrams are kept ([`Defragmenter::set_config`]).
    pub fn set_defrag_config(&mut self, config: DefragConfig) {
        if let Some(d) = self.defrag.as_mut() {
            d.set_config(config);
        }
    }

    /// New port hints (`[ports]`, on a config reload): flows decided from now on use them.
    pub fn set_port_hints(&mut self, config: &Config) {
        self.analyzer.set_port_hints(
            &config.ports.dicom,
            &config.ports.http,
            &config.ports.tls,
            &config.ports.hl7,
        );
    }

    /// Frames decoded so far (datagrams reassembled here not counted).
    #[inline]
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The link type of the first frame (the evidence pcaps' link type).
    pub fn first_linktype(&self) -> Option<u32> {
        self.first_linktype
    }

    pub fn last_ts(&self) -> Option<Timestamp> {
        self.last_ts
    }

    pub fn stats(&self) -> ShardStats {
        ShardStats {
            frames: self.frames,
            bytes: self.bytes,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            first_linktype: self.first_linktype,
            active_flows: self.flows.active_flows() as u64,
            wire: self.wire.stats.clone(),
            defrag: self.defrag.as_ref().map(Defragmenter::stats).unwrap_or_default(),
            flow: self.flows.stats().clone(),
            proto: self.analyzer.stats().clone(),
        }
    }
}

/// A datagram reassembled from IP fragments, as the frame that carries it on.
pub struct Datagram(pacstap_defrag::Reframed);

impl Datagram {
    /// As a frame at the completing fragment's time (`fragment`: that fragment's frame).
    pub fn frame<'a>(&'a self, fragment: &RawFrame<'_>) -> RawFrame<'a> {
        RawFrame {
            ts: fragment.ts,
            source: fragment.source,
            linktype: self.0.linktype,
            data: &self.0.data,
            orig_len: u32::try_from(self.0.data.len()).unwrap_or(u32::MAX),
        }
    }
}

/// Pushes `frame` (an IP fragment, as the wire decoder found) to `defrag`; the datagram it
/// completes, re-framed behind the fragment's link header.
pub fn defragment(
    defrag: &mut Defragmenter,
    wire: &pacstap_wire::WireConfig,
    frame: &RawFrame<'_>,
) -> Option<Datagram> {
    let fragment = pacstap_wire::decode_frame_with(wire, frame.ts, frame.linktype, frame.data).fragment?;
    defragment_decoded(defrag, frame, fragment)
}

/// [`defragment`] when the frame is already decoded (`fragment`: its `Decoded::fragment`).
pub fn defragment_decoded(defrag: &mut Defragmenter, frame: &RawFrame<'_>, fragment: &[u8]) -> Option<Datagram> {
    let datagram = defrag.push(frame.ts, fragment)?;
    Some(Datagram(pacstap_defrag::reframe(
        frame.linktype,
        frame.data,
        fragment,
        datagram,
    )))
}
