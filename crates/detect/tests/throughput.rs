//! Events per second through `Detector::observe` with 10^5 entities (issue 4 target: ≥ 1 M/s
//! on one core). Run: `cargo test -p pacstap-detect --release -- --ignored --nocapture`.

mod common;
use common::*;
use pacstap_core::ProtocolEvent;
use pacstap_detect::Detector;
use std::time::Instant;

const ENTITIES: usize = 100_000;

/// A mixed workload over `ENTITIES` users (each with its own workstation address):
/// WADO-RS retrievals (exports), C-STOREs from modalities, failed and successful web logins,
/// and C-MOVEs with their association ends.
fn workload(n: usize) -> Vec<ProtocolEvent> {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let users: Vec<String> = (0..ENTITIES).map(|i| format!("user{i}")).collect();
    let studies: Vec<String> = (0..50_000).map(study).collect();
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let r = next();
        let u = (r % ENTITIES as u64) as usize;
        let user = &users[u];
        let ip = format!("10.{}.{}.{}:40000", 100 + u / 65_536, (u / 256) % 256, u % 256);
        let st = &studies[(next() % studies.len() as u64) as usize];
        let t = k as i64 * 1_000; // 1 µs of packet time per event
        let ev = match r % 10 {
            0..=3 => wado(t, flow(&ip, "10.20.0.10:8042"), Some(user), st),
            4 | 5 => cstore(t, flow("10.20.0.30:40000", "10.20.0.10:4242"), "MODALITY1", "PACS1", st),
            6 | 7 => login(t, flow(&ip, "10.20.0.10:8042"), 401, user),
            8 => login(t, flow(&ip, "10.20.0.10:8042"), 200, user),
            _ => {
                let f = flow(&ip, "10.20.0.10:4242");
                let ae = format!("WS{u}");
                out.push(cmove(t, f, &ae, "PACS1", "PACS1", &[st]));
                assoc(t, f, &ae, "PACS1", true, Some(user))
            }
        };
        out.push(ev);
    }
    out
}

fn measure(label: &str, toml: &str, events: &mut [ProtocolEvent], rounds: usize) -> f64 {
    let cfg = config(toml);
    let mut det = Detector::new(&cfg, None).expect("detector");
    let mut out = Vec::new();
    let span = events.last().map(|e| e.ts.0 - events[0].ts.0 + 1_000).unwrap_or(0);
    // Warm-up round: every entity created, windows allocated.
    for ev in events.iter() {
        det.observe(ev, &mut out);
    }
    out.clear();
    let start = Instant::now();
    let mut n = 0u64;
    for round in 1..=rounds {
        for ev in events.iter_mut() {
            ev.ts.0 += span * round as i64 - span * (round as i64 - 1);
            det.observe(ev, &mut out);
            n += 1;
        }
        out.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    let st = det.stats();
    println!(
        "{label}: {n} events in {secs:.3} s = {:.2} M events/s; entities tracked {}, evicted {}, learned {}, alerts {}",
        rate / 1e6,
        st.entities_tracked,
        st.entities_evicted,
        st.learned_entities,
        st.alerts.total()
    );
    rate
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn throughput_1e5_entities() {
    let mut events = workload(1_000_000);
    let roomy = measure(
        "10^5 users, no eviction",
        "[detect]\nmax_entities = 400000\nmax_learned_entities = 400000\n",
        &mut events,
        3,
    );
    let tight = measure(
        "10^5 users, max_entities = 10^5 (evicting)",
        "[detect]\nmax_entities = 100000\n",
        &mut events,
        3,
    );
    println!("throughput_1e5_entities: {:.2} M events/s (evicting: {:.2} M events/s)", roomy / 1e6, tight / 1e6);
}
