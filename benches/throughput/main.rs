//! Throughput measurements that are not criterion benches: each runs one fixed workload
//! (best of a few rounds where the machine is shared) and prints what it measured; nothing
//! asserts on time. They were `#[ignore]`d tests in the crates they measure (issue 11 item 8).
//!
//! Run: `cargo bench --bench throughput` (all five, ~1 min) or name some:
//! `cargo bench --bench throughput -- wire capture dicom evidence detect`.
//! Without `--bench` (`cargo test --benches`) every workload runs once at a tiny size, as a
//! smoke test, and prints nothing worth reading.
//!
//! - `wire`: `WireDecoder::decode` fast path (Ethernet / IPv4 / TCP) and general path (QinQ /
//!   IPv6), full-size and empty frames: ns/frame and GB/s.
//! - `capture`: `PcapFileSource` against pcap-parser's own `LegacyPcapReader` over a 256 MiB
//!   file of 1514-byte frames (page-cached after the first pass): GB/s and ns/frame.
//! - `dicom`: the DICOM analyzer over 64 C-STOREs of 1 MiB in 16 KiB PDUs, delivered in
//!   1448-byte chunks (MSS-sized), 16 rounds: MB/s.
//! - `evidence`: `EvidenceRing::record` per frame, over budget (evicting), within budget, and
//!   headers only: ns/frame.
//! - `detect`: `Detector::observe` with 10^5 entities (issue 4 target: ≥ 1 M events/s on one
//!   core): a hospital day, the same with eviction, and an alert storm.

mod capture;
mod detect;
mod dicom;
mod evidence;
mod wire;

/// How big a run is: `Full` under `cargo bench`, `Smoke` otherwise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Full,
    Smoke,
}

impl Size {
    /// `full` under `cargo bench`, `smoke` (at least 1) otherwise.
    pub fn pick(self, full: usize, smoke: usize) -> usize {
        match self {
            Size::Full => full,
            Size::Smoke => smoke.max(1),
        }
    }
}

/// A measurement's name (what to give on the command line) and its workload.
type Measurement = (&'static str, fn(Size));

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = if args.iter().any(|a| a == "--bench") {
        Size::Full
    } else {
        Size::Smoke
    };
    let names: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let all: [Measurement; 5] = [
        ("wire", wire::run),
        ("capture", capture::run),
        ("dicom", dicom::run),
        ("evidence", evidence::run),
        ("detect", detect::run),
    ];
    for (name, run) in all {
        if names.is_empty() || names.iter().any(|n| name.contains(n)) {
            println!("== {name}");
            run(size);
        }
    }
}
