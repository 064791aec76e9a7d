//! Cost per frame of the evidence ring (see pacstap-output's evidence_ring module docs). Was
//! `pacstap-output`'s ignored test `evidence_ring::tests::cost_per_frame`.

use crate::Size;
use pacstap_core::{FlowId, Timestamp};
use pacstap_output::{EvidenceRing, RingLimits};

pub fn run(size: Size) {
    let f = vec![0xabu8; 1514];
    let tail_only = RingLimits {
        head_frames: 0,
        ..RingLimits::default()
    };
    for (what, flows, lim) in [
        (
            "1000 flows (each wants ~1.3 MB: over budget, evicting)",
            1000u64,
            RingLimits::default(),
        ),
        ("40 flows (within budget)", 40, RingLimits::default()),
        ("1000 flows, headers only (tail ring)", 1000, tail_only),
    ] {
        // Best of three: the build machine is shared.
        let mut best = f64::MAX;
        for _ in 0..size.pick(3, 1) {
            let mut r = EvidenceRing::new(lim);
            let n = size.pick(1_000_000, 2_000) as u64;
            let start = std::time::Instant::now();
            for i in 0..n {
                r.record(FlowId(i % flows), Timestamp(i as i64), 1, &f, 1514, 1460);
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            let st = r.stats();
            assert!(st.bytes_held <= st.budget_bytes);
            if ns < best {
                best = ns;
                println!("{what}: {ns:.1} ns/frame; {st:?}");
            }
        }
        println!("{what}: best {best:.1} ns/frame");
    }
}
