//! `pacstap detect --from FILE...`: the checks replay makes (config, outputs, Alertmanager,
//! metrics), then events from the source through [`pacstap::ingest`] into the same
//! [`pacstap::Detection`] replay uses, and a short summary on stderr.

use super::{check_outputs, config_and_alertmanager, is_stdout, start_metrics, stop_alertmanager};
use crate::cli::DetectArgs;
use anyhow::{Context, Result};
use pacstap::ingest::{self, Ingest, IngestOptions};
use pacstap::{Detection, DetectionSettings};
use pacstap_output::term::{for_terminal, say, warn};
use pacstap_safefile::{Existing, Kind};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run_detect(args: DetectArgs) -> Result<ExitCode> {
    if super::detect_nats::is_nats(&args.from) {
        return super::detect_nats::run_detect_nats(args);
    }
    let (config, alertmanager) = match config_and_alertmanager(
        args.config.as_deref(),
        &pacstap::config::WireOverrides::default(),
        args.alertmanager.as_deref(),
    ) {
        Ok(both) => both,
        Err(code) => return Ok(code),
    };
    // `--events` is emptied before anything is read: never one of the inputs.
    if let Some(input) = args.from.iter().find(|f| same_file(f, &args.events)) {
        say(&for_terminal(&format!(
            "--events {} is also an input (--from {input}): it would be emptied before it is read",
            args.events
        )));
        return Ok(ExitCode::from(2));
    }
    let state = args.state.clone().filter(|p| p.as_os_str() != "none");
    let checked = match check_outputs(Some((&args.events, Existing::Truncate)), state.as_deref(), None) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let mut source = match ingest::open_source(&args.from) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("{e:#}"));
            return Ok(ExitCode::from(1));
        }
    };
    let server = match &args.metrics_listen {
        Some(addr) => match start_metrics(addr) {
            Ok(s) => Some(s),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let events: Box<dyn Write> = match checked.events {
        Some(f) => Box::new(f),
        None if is_stdout(&args.events) => Box::new(io::stdout().lock()),
        None => Box::new(
            pacstap_safefile::open_private(Path::new(&args.events), Existing::Truncate, Kind::RegularOrStream)
                .with_context(|| format!("cannot write events file {}", args.events))?,
        ),
    };
    let mut detection = Detection::new(DetectionSettings {
        config,
        state,
        evidence_dir: None,
        events: Some(events),
        alerts_only: args.alerts_only,
        collect: false,
        metrics: server.as_ref().map(|(m, _)| Arc::clone(m)),
        alertmanager: alertmanager.clone(),
    })?;
    for w in detection.state_warnings() {
        warn("state", &w.to_string());
    }
    let mut ingest = Ingest::new(IngestOptions {
        reorder_window: args.reorder_window,
        ..IngestOptions::default()
    });
    ingest::run(source.as_mut(), &mut ingest, &mut detection)?;
    stop_alertmanager(alertmanager);
    let stats = source.stats();
    let counts = ingest.counts();
    if !args.quiet {
        let mut s = format!(
            "detect: {} lines read, {} events applied, {} lines written",
            stats.lines,
            counts.applied,
            detection.events_written()
        );
        if counts.derived > 0 {
            s.push_str(&format!(
                "; {} alert/posture/stats lines skipped (derived anew)",
                counts.derived
            ));
        }
        if counts.duplicates > 0 {
            s.push_str(&format!("; {} duplicates (event_id) skipped", counts.duplicates));
        }
        say(&for_terminal(&s));
    }
    // Data loss and disorder are never quiet.
    if stats.unreadable > 0 {
        warn(
            "input",
            &format!(
                "{} lines are not events and were skipped (first: {})",
                stats.unreadable,
                stats.first_unreadable.as_deref().unwrap_or("?")
            ),
        );
    }
    if counts.reorder.late > 0 || counts.reorder.overflowed > 0 {
        warn(
            "order",
            &format!(
                "{} events applied out of time order ({} later than the --reorder-window, {} past the reorder buffer's cap)",
                counts.reorder.late + counts.reorder.overflowed,
                counts.reorder.late,
                counts.reorder.overflowed
            ),
        );
    }
    for w in &stats.warnings {
        warn("input", &w.to_string());
    }
    Ok(if stats.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether two paths name the same existing file (device and inode, so links and `./x` count).
fn same_file(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
