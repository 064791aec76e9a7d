//! Golden outputs: every bundled sample replays to exactly the JSON lines committed beside it
//! (`pcap-samples/<name>.expected.jsonl` for `<name>.pcap`, `<name>.pcapng.expected.jsonl` for
//! `<name>.pcapng`). These files were read when committed: they are the reviewed answer, so any
//! change to the events shows up here as a diff.
//!
//! The cases are the captures found in `pcap-samples/` itself (not its subdirectories: `attacks/`,
//! `fragments/`, `hostile-tcp/`, `mirror/` and `scenarios/` have their own tests asserting
//! specific facts — tests/hostile.rs, tests/fragments.rs, tests/mirror_realism.rs,
//! tests/detection_scenarios.rs). A new sample is picked up without editing this file; a sample
//! without its golden, or a golden without its sample, fails the test (nothing is skipped).
//!
//! After an intended change, or to create the golden of a new sample:
//! `UPDATE_GOLDEN=1 cargo test --test golden`, then read the diff.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const GOLDEN_SUFFIX: &str = ".expected.jsonl";

/// The golden file name of a capture: `store.pcap` → `store.expected.jsonl`,
/// `store.pcapng` → `store.pcapng.expected.jsonl` (so the two do not collide).
fn golden_name(capture: &str) -> String {
    format!("{}{GOLDEN_SUFFIX}", capture.strip_suffix(".pcap").unwrap_or(capture))
}

/// File names in `dir` (sorted, so failures always come in the same order).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// The captures directly in `pcap-samples/`, and the golden files there.
fn cases() -> (PathBuf, Vec<String>, Vec<String>) {
    let dir = sample("");
    let all = names(&dir);
    let captures = all
        .iter()
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .cloned()
        .collect();
    let goldens = all.iter().filter(|n| n.ends_with(GOLDEN_SUFFIX)).cloned().collect();
    (dir, captures, goldens)
}

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
    let (dir, captures, goldens) = cases();
    // The samples the README and the other tests rely on; a glob that found none would pass
    // vacuously.
    for must in ["store.pcap", "move.pcap", "dicomweb.pcap", "hl7-mllp.pcap"] {
        assert!(
            captures.iter().any(|c| c == must),
            "{must} not found in {}",
            dir.display()
        );
    }
    let mut failures = Vec::new();
    for g in &goldens {
        if !captures.iter().any(|c| golden_name(c) == *g) {
            failures.push(format!("{g}: golden without a capture (remove it, or add its capture)"));
        }
    }
    for f in &captures {
        let golden = dir.join(golden_name(f));
        let got = lines(f);
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = match std::fs::read_to_string(&golden) {
            Ok(w) => w,
            Err(e) => {
                failures.push(format!(
                    "{f}: no golden {} ({e}); create it with `UPDATE_GOLDEN=1 cargo test --test golden` \
                     and read it before committing",
                    golden.display()
                ));
                continue;
            }
        };
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

#[test]
fn golden_names_do_not_collide() {
    assert_eq!(golden_name("store.pcap"), "store.expected.jsonl");
    assert_eq!(golden_name("store.pcapng"), "store.pcapng.expected.jsonl");
    let (_, captures, _) = cases();
    let mut seen: Vec<String> = captures.iter().map(|c| golden_name(c)).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), captures.len(), "{captures:?}");
}
