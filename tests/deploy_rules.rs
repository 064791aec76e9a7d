//! The Prometheus rules in `deploy/prometheus/`: every metric they use is one pacstap exports
//! (always checked, from the exporter's sources), and, where `promtool` is installed (Debian:
//! `apt-get install prometheus`), `promtool check rules` accepts them and `promtool test rules`
//! passes their unit tests (`pacstap-rules.test.yml`, e.g. the Alertmanager push alerts).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules_dir() -> PathBuf {
    root().join("deploy/prometheus")
}

/// `pacstap_...` words in `text`.
fn metric_words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text.get(i..).and_then(|t| t.find("pacstap_")) {
        let start = i + at;
        let before_ok = start == 0
            || !bytes
                .get(start - 1)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let end = text
            .get(start..)
            .and_then(|t| t.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')))
            .map_or(text.len(), |n| start + n);
        if before_ok {
            out.insert(text.get(start..end).unwrap_or("").to_owned());
        }
        i = end.max(start + 1);
    }
    out
}

/// Names the exporter registers: string literals in crates/output/src/metrics/, plus the
/// `pacstap_tcp_{name}_total` family built from `TCP_COUNTERS`.
fn exported() -> BTreeSet<String> {
    let dir = root().join("crates/output/src/metrics");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for w in metric_words(&text) {
            if text.contains(&format!("\"{w}\"")) {
                names.insert(w);
            }
        }
    }
    for (name, _) in pacstap_output::TCP_COUNTERS {
        names.insert(format!("pacstap_tcp_{name}_total"));
    }
    names
}

#[test]
fn rules_use_only_exported_metrics() {
    let known = exported();
    assert!(known.contains("pacstap_alertmanager_posts_failed_total"), "{known:?}");
    let mut used = BTreeSet::new();
    for f in ["pacstap-rules.yml", "pacstap-rules.test.yml"] {
        used.extend(metric_words(&std::fs::read_to_string(rules_dir().join(f)).unwrap()));
    }
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !known.contains(*n) && !known.contains(base)
        })
        .collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
    // The Alertmanager push alerts exist.
    let rules = std::fs::read_to_string(rules_dir().join("pacstap-rules.yml")).unwrap();
    assert!(rules.contains("alert: PacstapAlertmanagerPushFailing"));
    assert!(rules.contains("alert: PacstapAlertmanagerAlertsLost"));
    assert!(rules.contains("alert: PacstapConfigReloadFailed"));
    assert!(rules.contains("alert: PacstapStateSaveFailing"));
}

fn promtool(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).current_dir(dir).output() {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("SKIPPED promtool {args:?}: {e} (apt-get install prometheus)");
            None
        }
    }
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = rules_dir();
    for args in [
        &["check", "rules", "pacstap-rules.yml"][..],
        &["test", "rules", "pacstap-rules.test.yml"][..],
    ] {
        let Some(out) = promtool(&dir, args) else {
            return;
        };
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
