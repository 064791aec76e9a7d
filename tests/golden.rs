//! Golden outputs: every bundled sample replays to exactly the JSON lines committed beside it
//! (`pcap-samples/<name>.expected.jsonl`). These files were read when committed: they are the
//! reviewed answer, so any change to the events shows up here as a diff.
//!
//! After an intended change: `UPDATE_GOLDEN=1 cargo test --test golden`, then read the diff.

mod common;
use common::*;

const GOLDEN: &[&str] = &[
    "echo.pcap",
    "store.pcap",
    "find.pcap",
    "move.pcap",
    "move-midstream.pcap",
    "get.pcap",
    "reject.pcap",
    "abort.pcap",
    "user-identity.pcap",
    "store-dropped.pcap",
    "store-truncated.pcap",
    "dicomweb.pcap",
    "https-tls12.pcap",
    "https-tls13.pcap",
    "hl7-mllp.pcap",
    "hl7-nonstandard-port.pcap",
];

fn lines(file: &str) -> String {
    let (report, _) = replay(&[file]);
    let mut s = String::new();
    for e in &report.events {
        s.push_str(&serde_json::to_string(&pacstap_output::EveRecord::new(e)).unwrap());
        s.push('\n');
    }
    s
}

#[test]
fn samples_match_their_golden_events() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for f in GOLDEN {
        let golden = sample(&format!("{}.expected.jsonl", f.trim_end_matches(".pcap")));
        let got = lines(f);
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        if got != want {
            let (i, (g, w)) = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (g, w))| g != w)
                .unwrap_or((0, ("(line count differs)", "")));
            failures.push(format!("{f}: line {}\n  got:  {g}\n  want: {w}", i + 1));
        }
    }
    assert!(failures.is_empty(), "golden mismatch:\n{}", failures.join("\n"));
}
