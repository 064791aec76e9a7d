//! The reload documentation agrees everywhere with what SIGHUP does (issue 14): the lists in
//! `crates/app/sharded/chores.rs` (`RELOAD_*`) cover every table of the config exactly once,
//! `pacstap capture --help` is written from them, and every document that tells an operator
//! about reloads (README, deploy/README.md, deploy/pacstap.toml, the unit, docs/design.md)
//! names what needs a restart and none repeats the old wrong claims.

use pacstap::sharded::{reload_help, RELOAD_AT_ONCE, RELOAD_NEEDS_RESTART, RELOAD_NEW_CONNECTIONS, RELOAD_NEXT_FRAME};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whitespace runs (clap wraps help text; docs wrap lines) as one space; comment markers of
/// TOML / unit files dropped.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_start().trim_start_matches('#'))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_reload_lists_cover_every_config_table_once() {
    // The top-level tables of the effective config (every section pacstap knows).
    let effective = pacstap::config::Config::default().render_effective();
    let tables: BTreeSet<String> = effective
        .lines()
        .filter_map(|l| l.strip_prefix('[').and_then(|l| l.split(['.', ']']).next()))
        .map(|t| t.trim_start_matches('[').to_string())
        .collect();
    assert!(tables.contains("capture") && tables.contains("rules"), "{tables:?}");
    let mut listed = BTreeSet::new();
    for t in RELOAD_AT_ONCE
        .iter()
        .chain(RELOAD_NEW_CONNECTIONS)
        .chain(RELOAD_NEXT_FRAME)
        .chain(RELOAD_NEEDS_RESTART.iter().filter(|t| !t.contains('.')))
    {
        assert!(listed.insert(t.to_string()), "{t} listed twice");
    }
    // Tables the effective rendering omits when empty are still listed.
    for t in &tables {
        assert!(
            listed.contains(t),
            "config table [{t}] is in no RELOAD_* list: decide when a reload applies it"
        );
    }
    for t in &listed {
        let known = tables.contains(t) || t == "inventory";
        assert!(known, "RELOAD_* lists [{t}], which is no config table");
    }
    // A key listed as needing a restart belongs to a table reloaded otherwise.
    for k in RELOAD_NEEDS_RESTART.iter().filter(|t| t.contains('.')) {
        let table = k.split('.').next().unwrap();
        assert!(listed.contains(table), "{k}");
    }
}

#[test]
fn capture_help_says_what_a_reload_applies() {
    let out = Command::new(env!("CARGO_BIN_EXE_pacstap"))
        .args(["capture", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = normalize(&String::from_utf8_lossy(&out.stdout));
    assert!(help.contains(&normalize(&reload_help())), "{help}");
    for t in RELOAD_AT_ONCE {
        assert!(help.contains(&format!("[{t}]")), "{t}: {help}");
    }
    assert!(
        help.contains("[capture] [evidence.max_payload_bytes_per_flow] [publish] need a restart"),
        "{help}"
    );
}

/// Every document about reloads names what needs a restart, says that `[ports]` apply to new
/// connections, and none says what was once wrongly documented.
#[test]
fn every_reload_doc_says_the_same() {
    let docs = [
        "README.md",
        "deploy/README.md",
        "deploy/pacstap.toml",
        "deploy/pacstap.service",
        "docs/design.md",
    ];
    for doc in docs {
        let text = normalize(&std::fs::read_to_string(root().join(doc)).unwrap());
        assert!(text.contains("SIGHUP"), "{doc} does not say which signal reloads");
        assert!(
            text.contains("`[capture]`, `[publish]` and `[evidence] max_payload_bytes_per_flow` need a restart"),
            "{doc}: does not say that [capture], [publish] and the live evidence size need a restart"
        );
        for wrong in [
            "restarts the sliding windows empty",
            "[ports] changes need",
            "[capture] needs a restart",
        ] {
            assert!(!text.contains(wrong), "{doc} says {wrong:?}");
        }
    }
    // The documents that describe the whole reload name the tables applied at once and when
    // [ports] and the wire tables apply.
    for doc in ["README.md", "deploy/README.md", "deploy/pacstap.toml"] {
        let text = normalize(&std::fs::read_to_string(root().join(doc)).unwrap());
        for t in RELOAD_AT_ONCE {
            assert!(text.contains(&format!("[{t}]")), "{doc} does not name [{t}]");
        }
        assert!(
            text.contains("connections that start after the reload"),
            "{doc}: [ports]"
        );
        assert!(
            text.contains("next captured frame") || text.contains("capture thread's next frame"),
            "{doc}: [decapsulate] / [defrag]"
        );
    }
}
