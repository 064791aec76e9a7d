//! Events per second through `Detector::observe` with 10^5 entities (issue 4 target: ≥ 1 M/s
//! on one core). Was `pacstap-detect`'s ignored test `throughput_1e5_entities`
//! (crates/detect/tests/throughput.rs); the event builders are that crate's test helpers.

#[path = "../../crates/detect/tests/common/mod.rs"]
mod common;
use crate::Size;
use common::*;
use pacstap_core::ProtocolEvent;
use pacstap_detect::Detector;
use std::time::Instant;

const ENTITIES: usize = 100_000;

/// A mixed workload over `ENTITIES` users, each with its own workstation address.
///
/// `storm = false` is a busy hospital: WADO-RS retrievals of each user's own few studies,
/// modalities storing into the PACS, web logins with a few failures, C-MOVEs with their
/// association ends; 100 000 events per second of packet time, nearly no alerts.
/// `storm = true` is an attack-like mix: random studies from a shared pool and 20 % failed
/// logins at 10^6 events per second, so most users end up with open incidents.
fn workload(n: usize, storm: bool) -> Vec<ProtocolEvent> {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let users: Vec<String> = (0..ENTITIES).map(|i| format!("user{i}")).collect();
    let pool = if storm { 50_000 } else { ENTITIES * 8 };
    let studies: Vec<String> = (0..pool).map(study).collect();
    let step = if storm { 1_000 } else { 10_000 };
    let mut out = Vec::with_capacity(n + n / 10);
    for k in 0..n {
        let r = next();
        let u = (r % ENTITIES as u64) as usize;
        let user = &users[u];
        let ip = format!("10.{}.{}.{}:40000", 100 + u / 65_536, (u / 256) % 256, u % 256);
        let st = if storm {
            &studies[(next() % pool as u64) as usize]
        } else {
            &studies[u * 8 + (next() % 8) as usize]
        };
        let t = k as i64 * step;
        let dice = (next() % 100) as u32;
        let (fail, ok, store) = if storm { (20, 10, 20) } else { (3, 17, 30) };
        let ev = match dice {
            d if d < 40 => wado(t, flow(&ip, "10.20.0.10:8042"), Some(user), st),
            d if d < 40 + fail => login(t, flow(&ip, "10.20.0.10:8042"), 401, user),
            d if d < 40 + fail + ok => login(t, flow(&ip, "10.20.0.10:8042"), 200, user),
            d if d < 40 + fail + ok + store => {
                cstore(t, flow("10.20.0.30:40000", "10.20.0.10:4242"), "MODALITY1", "PACS1", st)
            }
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

fn measure(label: &str, toml: &str, warm: &[ProtocolEvent], events: &mut [ProtocolEvent], rounds: usize) -> f64 {
    let cfg = config(toml);
    let mut det = Detector::new(&cfg, None).expect("detector");
    let mut out = Vec::new();
    // Warm-up: every entity created, windows allocated.
    for ev in warm.iter() {
        det.observe(ev, &mut out);
    }
    let warm_end = warm.last().map_or(0, |e| e.ts.0 - events[0].ts.0 + 1_000);
    let span = events.last().map_or(0, |e| e.ts.0 - events[0].ts.0 + 1_000);
    for ev in events.iter_mut() {
        ev.ts.0 += warm_end;
    }
    out.clear();
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..rounds {
        for ev in events.iter_mut() {
            det.observe(ev, &mut out);
            ev.ts.0 += span;
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
    for (rule, sev, first, updates) in st.alerts.iter() {
        println!("    {rule} {}: {first} alerts, {updates} updates", sev.as_str());
    }
    rate
}

pub fn run(size: Size) {
    let roomy_cfg = "[detect]\nmax_entities = 400000\nmax_learned_entities = 400000\n";
    let warm = workload(size.pick(1_000_000, 2_000), false);
    let mut day = warm.clone();
    let roomy = measure(
        "hospital day, 10^5 users, no eviction",
        roomy_cfg,
        &warm,
        &mut day,
        size.pick(3, 1),
    );
    let mut day = warm.clone();
    let tight = measure(
        "hospital day, 10^5 users, max_entities = 10^5 (evicting)",
        "[detect]\nmax_entities = 100000\n",
        &warm,
        &mut day,
        size.pick(3, 1),
    );
    drop(day);
    drop(warm);
    let mut storm = workload(size.pick(1_000_000, 2_000), true);
    let warm_storm = storm.clone();
    let stormy = measure(
        "alert storm, 10^5 users",
        roomy_cfg,
        &warm_storm,
        &mut storm,
        size.pick(3, 1),
    );
    println!(
        "throughput_1e5_entities: {:.2} M events/s (evicting: {:.2}; alert storm: {:.2})",
        roomy / 1e6,
        tight / 1e6,
        stormy / 1e6
    );
}
