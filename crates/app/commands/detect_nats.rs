//! `pacstap detect --from nats://…`: the central detector's command (issue 15 item 2). The same
//! checks as `detect --from FILE` (config, outputs, Alertmanager, metrics), then
//! [`pacstap::ingest::nats`] until `--idle-exit` or SIGINT / SIGTERM, and a summary on stderr.
//! The events file is appended to, not emptied: a restarted detector continues the alert log
//! it wrote before.

use super::{check_outputs, config_and_alertmanager, is_stdout, start_metrics, stop_alertmanager};
use crate::cli::DetectArgs;
use anyhow::{Context, Result};
use pacstap::ingest::nats::{nats_servers, run_central, CentralDetector, NatsOptions};
use pacstap_detect::StateStore;
use pacstap_output::term::{for_terminal, say, warn};
use pacstap_safefile::{Existing, Kind};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Whether `--from` names NATS servers (then every value must).
pub fn is_nats(from: &[String]) -> bool {
    from.iter().any(|f| f.starts_with("nats://"))
}

pub fn run_detect_nats(args: DetectArgs) -> Result<ExitCode> {
    if !args.from.iter().all(|f| f.starts_with("nats://")) {
        say("--from: NATS servers (nats://…) and event files cannot be mixed in one run");
        return Ok(ExitCode::from(2));
    }
    let (config, alertmanager) = match config_and_alertmanager(
        args.config.as_deref(),
        &pacstap::config::WireOverrides::default(),
        args.alertmanager.as_deref(),
    ) {
        Ok(both) => both,
        Err(code) => return Ok(code),
    };
    let state = args.state.clone().filter(|p| p.as_os_str() != "none");
    let checked = match check_outputs(Some((&args.events, Existing::Append)), state.as_deref(), None) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // The checkpoint: --checkpoint, else beside the state file, else none.
    let checkpoint: Option<PathBuf> = args.checkpoint.clone().or_else(|| {
        state
            .as_deref()
            .map(|s| pacstap_safefile::parent_dir(s).join("checkpoint.json"))
    });
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let server = match &args.metrics_listen {
        Some(addr) => match start_metrics(addr) {
            Ok(s) => Some(s),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let events: Box<dyn Write> = match checked.events {
        Some(f) => Box::new(f),
        None if is_stdout(&args.events) => Box::new(io::stdout()),
        None => Box::new(
            pacstap_safefile::open_private(Path::new(&args.events), Existing::Append, Kind::RegularOrStream)
                .with_context(|| format!("cannot write events file {}", args.events))?,
        ),
    };
    let (store, learned) = match &state {
        Some(p) => {
            let (store, learned, warning) = StateStore::open(p).context("opening the state file")?;
            if let Some(w) = warning {
                warn("state", &w.to_string());
            }
            (Some(store), learned)
        }
        None => (None, None),
    };
    let mut det = CentralDetector::new(
        config.detect_config(),
        learned,
        Some(events),
        alertmanager.clone(),
        server.as_ref().map(|(m, _)| Arc::clone(m)),
    )?;
    let opts = NatsOptions {
        servers: nats_servers(&args.from),
        stream: args.stream.clone(),
        durable: args.durable.clone(),
        checkpoint,
        idle_exit: args.idle_exit.map(std::time::Duration::from_secs),
        reorder_window: args.reorder_window,
        stop,
    };
    let stats = run_central(&opts, &mut det, store.as_ref())?;
    stop_alertmanager(alertmanager);
    if !args.quiet {
        let mut s = format!(
            "detect: {} events applied from NATS ({} re-read to rebuild the windows), {} alerts written, {} checkpoints",
            stats.applied, stats.warmed, stats.alerts, stats.checkpoints
        );
        if stats.suppressed > 0 {
            s.push_str(&format!(
                "; {} alerts already written before a restart, not repeated",
                stats.suppressed
            ));
        }
        if stats.duplicates > 0 {
            s.push_str(&format!("; {} duplicates (event_id) skipped", stats.duplicates));
        }
        if det.derived > 0 {
            s.push_str(&format!(
                "; {} alert/posture/stats lines skipped (derived anew)",
                det.derived
            ));
        }
        say(&for_terminal(&s));
    }
    if det.unreadable > 0 || stats.late > 0 || stats.warm_missing > 0 || stats.holes > 0 {
        warn(
            "stream",
            &format!(
                "{} messages were not events, {} events came later than the --reorder-window, {} events to rebuild the windows were no longer in the stream, {} stream sequences never came",
                det.unreadable, stats.late, stats.warm_missing, stats.holes
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}
