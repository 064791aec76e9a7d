//! Live evidence's packet ring fed hostile frames (any length, any claimed payload and wire
//! length, flows appearing, ending and coming back): it never panics, its memory stays within
//! the budget after every call, and a snapshot never holds more frames than were recorded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::{FlowId, Timestamp};
use pacstap_output::{EvidenceRing, RingLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, mut rest)) = data.split_first() else {
        return;
    };
    let limits = RingLimits {
        max_payload_per_flow: u64::from(knobs & 0x0f) * 97,
        head_frames: usize::from(knobs >> 4) + 1,
        tail_frames: 3,
        max_header_bytes: 64,
        budget_bytes: RingLimits::MIN_BUDGET,
        max_flows: 64,
    };
    let mut ring = EvidenceRing::new(limits);
    let mut recorded = 0u64;
    // What a previous cut saw of each flow: (flow, epoch, seen), for snapshot_since.
    let mut cuts: Vec<(FlowId, u64, u64)> = Vec::new();
    let mut ts = 0i64;
    while let [op, flow, len_hi, len_lo, payload, tail @ ..] = rest {
        let flow = FlowId(u64::from(*flow % 24));
        let len = (usize::from(*len_hi) << 8 | usize::from(*len_lo)) % 3000;
        let frame = tail.get(..len.min(tail.len())).unwrap_or(&[]);
        rest = tail.get(frame.len()..).unwrap_or(&[]);
        ts += i64::from(*op);
        match op % 8 {
            0 => ring.end_flow(flow),
            1 => {
                let snap = ring.snapshot(&[flow, FlowId(u64::from(*payload % 24))]);
                assert!(snap.len() as u64 <= recorded);
                cuts = snap.flows().iter().map(|f| (f.flow, f.epoch, f.seen)).collect();
            }
            2 => {
                // Only what the last cut did not see: never more frames than a full snapshot,
                // and for an unchanged buffer, nothing the cut had.
                let since = ring.snapshot_since(&cuts);
                let ids: Vec<FlowId> = cuts.iter().map(|c| c.0).collect();
                let full = ring.snapshot(&ids);
                assert!(since.len() <= full.len());
                for f in since.flows() {
                    if let Some(c) = cuts.iter().find(|c| c.0 == f.flow && c.1 == f.epoch) {
                        assert!(f.frames_kept <= f.seen.saturating_sub(c.2), "{f:?} {c:?}");
                    }
                }
            }
            _ => {
                let orig_len = u32::from(*payload) * 13;
                ring.record(flow, Timestamp(ts), 1, frame, orig_len, usize::from(*payload) * 7);
                recorded += 1;
            }
        }
        let s = ring.stats();
        assert!(s.bytes_held <= s.budget_bytes, "{s:?}");
    }
});
