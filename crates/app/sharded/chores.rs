//! The detection thread's periodic work besides detecting ([`Chores`]): on SIGHUP, reopen the
//! events file ([`EventsTarget`]) and reload the config.

use super::shared::Shared;
use crate::config::add_ports;
use crate::config::Config;
use crate::detection::Detection;
use anyhow::{Context, Result};
use pacstap_output::term::{error_chain, say};
use pacstap_output::Metrics;
use pacstap_safefile::{Existing, Kind};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    match Config::load(path) {
        Ok(cfg) if &cfg == detection.config() => {
            count_reload(chores, true);
            say(&format!("config {} unchanged", path.display()));
        }
        Ok(cfg) => {
            let ports_changed = cfg.ports != detection.config().ports;
            match detection.reload_config(&cfg) {
                Ok(()) => {
                    count_reload(chores, true);
                    say(&format!("reloaded config {}", path.display()))
                }
                Err(e) => {
                    count_reload(chores, false);
                    let msg = format!(
                        "config {} not reloaded, keeping the running one: {}",
                        path.display(),
                        error_chain(e.as_ref())
                    );
                    say(&format!("error: {msg}"));
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
            say(&format!("error: {msg}"));
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
