//! The detection thread's periodic work besides detecting ([`Chores`]): on SIGHUP, reopen the
//! events file ([`EventsTarget`]) and reload the config.
//!
//! A reload changes detection at once, the decoders' `[ports]` for connections that start from
//! then on, and the wire stage's `[decapsulate]` and `[defrag]` from the capture thread's next
//! frame (handed to each worker in-band with its next batch, `shared::WireSettings`). Flows in
//! progress keep decoding: a tunnel port added makes the inner flows it carries visible from
//! that frame on (picked up mid-stream, as a flow seen late); a port removed leaves its inner
//! flows without packets (they end by idle timeout, their data since counted as not TCP); new
//! defragmentation limits apply to the next fragment, pending datagrams keep theirs (a smaller
//! memory cap evicts the oldest at once). The command-line options (`--decapsulate`,
//! `--defrag-*`) are applied again over the reloaded file: they still win. What a reload cannot
//! apply (`[capture]`, the live evidence rings' size) is named in a warning: it needs a restart
//! ([`RELOAD_NEEDS_RESTART`]).

use super::shared::{Shared, WireSettings};
use crate::config::add_ports;
use crate::config::{Config, WireOverrides};
use crate::detection::Detection;
use anyhow::{Context, Result};
use pacstap_output::term::{error, error_chain, say, warn};
use pacstap_output::Metrics;
use pacstap_safefile::{Existing, Kind};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a SIGHUP reload applies, and from when: the one list `capture --help`
/// ([`reload_help`]) is written from, and that `tests/reload_docs.rs` holds the docs (README,
/// deploy/README.md, deploy/pacstap.toml, the unit) and the config's tables to. Tables of
/// detection apply at once: [`Detection::reload_config`] rebuilds the rules, inventory and
/// GeoIP lookups but keeps the sliding windows (re-spanned), open incidents and learned state.
pub const RELOAD_AT_ONCE: &[&str] = &["networks", "inventory", "users", "rules", "geoip", "detect", "evidence"];
/// Port hints: a connection keeps the decoder it was given when it started.
pub const RELOAD_NEW_CONNECTIONS: &[&str] = &["ports"];
/// The wire stage's tables: handed to the workers with the capture thread's next frame.
pub const RELOAD_NEXT_FRAME: &[&str] = &["decapsulate", "defrag"];
/// Read once, when capture starts (the open interface and its filter, the /healthz alarm, the
/// size of the live evidence rings): a change needs a restart, and the reload says so.
pub const RELOAD_NEEDS_RESTART: &[&str] = &["capture", "evidence.max_payload_bytes_per_flow", "publish"];

/// The reload paragraph of `pacstap capture --help`, from the lists above.
pub fn reload_help() -> String {
    let tables = |t: &[&str]| t.iter().map(|t| format!("[{t}]")).collect::<Vec<_>>().join(" ");
    format!(
        "SIGHUP: reopen the events file (log rotation) and reload --config. {} apply at once \
         (sliding windows, open incidents and learned state are kept); {} applies to connections \
         that start after the reload; {} apply from the next captured frame; {} need a restart, \
         as do the command-line options. A config that does not load is reported and the \
         running one kept.",
        tables(RELOAD_AT_ONCE),
        tables(RELOAD_NEW_CONNECTIONS),
        tables(RELOAD_NEXT_FRAME),
        tables(RELOAD_NEEDS_RESTART)
    )
}

/// The settings of `new` that a reload cannot apply ([`RELOAD_NEEDS_RESTART`]) and that differ
/// from `old`, as `table.key` names.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.capture.bpf != new.capture.bpf {
        out.push("capture.bpf");
    }
    if old.capture.idle_alarm != new.capture.idle_alarm {
        out.push("capture.idle_alarm");
    }
    if old.evidence.max_payload_bytes_per_flow != new.evidence.max_payload_bytes_per_flow {
        out.push("evidence.max_payload_bytes_per_flow");
    }
    // The publisher's connection, stream and queue are set up once, at start.
    if old.publish != new.publish {
        out.push("publish");
    }
    out
}

/// Where events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventsTarget {
    Stdout,
    /// Appended to; reopened on SIGHUP (log rotation).
    File(PathBuf),
    /// Nowhere (benchmarks), or not this code's to reopen (replay).
    #[default]
    Discard,
}

impl EventsTarget {
    pub(crate) fn open(&self) -> Result<Box<dyn Write>> {
        Ok(match self {
            EventsTarget::Stdout => Box::new(std::io::stdout()),
            // Appended, mode 0600 (events carry user names), never through a symbolic link.
            EventsTarget::File(p) => Box::new(
                pacstap_safefile::open_private(p, Existing::Append, Kind::RegularOrStream)
                    .with_context(|| format!("cannot open events file {}", p.display()))?,
            ),
            EventsTarget::Discard => Box::new(std::io::sink()),
        })
    }
}

/// The detection thread's periodic work besides detecting (wall time, about once a second).
#[derive(Default)]
pub struct Chores {
    pub metrics: Option<Arc<Metrics>>,
    /// Set by SIGHUP: reopen the events file, reload the config.
    pub reload: Option<Arc<AtomicBool>>,
    pub events: EventsTarget,
    pub config_path: Option<PathBuf>,
    pub extra_dicom_ports: Vec<u16>,
    /// The command-line options over the wire tables, applied again over a reloaded file.
    pub overrides: WireOverrides,
}

/// SIGHUP: reopen the events file (after log rotation moved it), then reload the config.
/// A config that does not load is reported and the running one kept.
pub(crate) fn reload(
    chores: &Chores,
    detection: &mut Detection,
    shared: &Shared,
    errors: &mut Vec<String>,
) -> Result<()> {
    if let EventsTarget::File(path) = &chores.events {
        detection.replace_events(chores.events.open()?)?;
        say(&format!("reopened events file {}", path.display()));
    }
    let Some(path) = &chores.config_path else {
        return Ok(());
    };
    let loaded = Config::load(path).map_err(|e| e.to_string()).and_then(|mut cfg| {
        chores.overrides.apply(&mut cfg)?;
        Ok(cfg)
    });
    match loaded {
        Ok(cfg) if &cfg == detection.config() => {
            count_reload(chores, true);
            say(&format!("config {} unchanged", path.display()));
        }
        Ok(cfg) => {
            let restart = needs_restart(detection.config(), &cfg);
            if !restart.is_empty() {
                warn(
                    &format!("config {}", path.display()),
                    &format!("{} changed: applied at the next restart only", restart.join(", ")),
                );
            }
            let ports_changed = cfg.ports != detection.config().ports;
            let wire_changes = wire_changes(detection.config(), &cfg);
            match detection.reload_config(&cfg) {
                Ok(()) if wire_changes.is_empty() => {
                    count_reload(chores, true);
                    say(&format!("reloaded config {}", path.display()))
                }
                Ok(()) => {
                    count_reload(chores, true);
                    shared.publish_wire(WireSettings::of(&cfg));
                    say(&format!(
                        "reloaded config {}; from the next frame on: {}",
                        path.display(),
                        wire_changes.join(", ")
                    ));
                }
                Err(e) => {
                    count_reload(chores, false);
                    let msg = format!(
                        "config {} not reloaded, keeping the running one: {}",
                        path.display(),
                        error_chain(e.as_ref())
                    );
                    error("", &msg);
                    errors.push(msg);
                    return Ok(());
                }
            }
            if ports_changed {
                let mut hints = cfg.clone();
                add_ports(&mut hints.ports.dicom, &chores.extra_dicom_ports);
                if let Ok(mut p) = shared.ports.lock() {
                    *p = Some(hints);
                }
                shared.ports_generation.fetch_add(1, Ordering::Release);
                say("new [ports] apply to connections that start from now on");
            }
        }
        Err(e) => {
            count_reload(chores, false);
            let msg = format!("config {} not reloaded, keeping the running one: {e}", path.display());
            error("", &msg);
            errors.push(msg);
        }
    }
    Ok(())
}

/// `pacstap_config_reloads_total{result}`: an unchanged config counts as a successful reload.
fn count_reload(chores: &Chores, ok: bool) {
    if let Some(m) = &chores.metrics {
        m.config_reload(ok);
    }
}

/// What a reload changes below detection, one `table.key old → new` per changed key (for the
/// reload log line); empty when `[decapsulate]` and `[defrag]` are unchanged.
pub(crate) fn wire_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut key = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name} {a} → {b}"));
        }
    };
    let (a, b) = (&old.decapsulate, &new.decapsulate);
    key("decapsulate.enabled", a.enabled.to_string(), b.enabled.to_string());
    key(
        "decapsulate.vxlan_ports",
        format!("{:?}", a.vxlan_ports),
        format!("{:?}", b.vxlan_ports),
    );
    key(
        "decapsulate.geneve_ports",
        format!("{:?}", a.geneve_ports),
        format!("{:?}", b.geneve_ports),
    );
    let (a, b) = (&old.defrag, &new.defrag);
    key("defrag.memory", a.memory.to_string(), b.memory.to_string());
    key("defrag.timeout_v4", a.timeout_v4.to_string(), b.timeout_v4.to_string());
    key("defrag.timeout_v6", a.timeout_v6.to_string(), b.timeout_v6.to_string());
    key(
        "defrag.max_fragments",
        a.max_fragments.to_string(),
        b.max_fragments.to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_line_names_each_changed_wire_key() {
        let old = Config::default();
        assert!(wire_changes(&old, &old).is_empty());
        let mut new = Config::from_toml_str(
            "[decapsulate]\nvxlan_ports = [4789, 8472]\n[defrag]\nmemory = 1048576\ntimeout_v6 = \"2m\"\n[ports]\nhttp = [81]\n",
        )
        .unwrap();
        assert_eq!(
            wire_changes(&old, &new),
            [
                "decapsulate.vxlan_ports [4789] → [4789, 8472]",
                "defrag.memory 16777216 → 1048576",
                "defrag.timeout_v6 1m → 2m",
            ]
        );
        // The command line still wins over the reloaded file.
        let o = WireOverrides {
            decapsulate: vec!["vxlan=4789".into()],
            defrag_memory: Some(16 << 20),
            ..Default::default()
        };
        o.apply(&mut new).unwrap();
        assert_eq!(wire_changes(&old, &new), ["defrag.timeout_v6 1m → 2m"]);
        // [ports] is no wire setting: it has its own path.
        assert_ne!(old.ports, new.ports);
    }

    #[test]
    fn a_changed_capture_table_is_named_as_needing_a_restart() {
        let old = Config::default();
        assert!(needs_restart(&old, &old).is_empty());
        let new = Config::from_toml_str(
            "[capture]\nbpf = \"tcp or (vlan and tcp)\"\n[evidence]\nmax_payload_bytes_per_flow = 4096\n[rules.bulk_export]\nthreshold = 3\n",
        )
        .unwrap();
        assert_eq!(
            needs_restart(&old, &new),
            ["capture.bpf", "evidence.max_payload_bytes_per_flow"]
        );
        let publishing = Config::from_toml_str("[publish]\nhost = \"site-b\"\n").unwrap();
        assert_eq!(needs_restart(&old, &publishing), ["publish"]);
        let help = reload_help();
        assert!(
            help.contains("[capture] [evidence.max_payload_bytes_per_flow] [publish] need a restart"),
            "{help}"
        );
        assert!(
            help.contains("[ports] applies to connections that start after the reload"),
            "{help}"
        );
    }
}
