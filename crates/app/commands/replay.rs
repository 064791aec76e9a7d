//! `pacstap replay`: options to [`pacstap::ReplayOptions`], checks, the run, then the report
//! when `--report` asks for one.

use super::publish::{say_published, start_publisher};
use super::{
    check_outputs, check_report_output, config_and_alertmanager, is_stdout, run_report, start_metrics,
    stop_alertmanager,
};
use crate::cli::{ReplayArgs, ReportArgs};
use anyhow::{Context, Result};
use pacstap_output::term::{error, for_terminal, say};
use pacstap_safefile::{Existing, Kind};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    if args.report.is_some() && is_stdout(&args.events) {
        error("--report", "needs --events PATH (a file the report then reads)");
        return Ok(ExitCode::from(2));
    }
    let report_after = args.report.clone().map(|output| ReportArgs {
        events: vec![PathBuf::from(&args.events)],
        output,
        csv: None,
        from: None,
        to: None,
        entity: None,
        config: args.config.clone(),
        study: None,
    });
    let overrides = args.wire_overrides();
    let (config, alertmanager) =
        match config_and_alertmanager(args.config.as_deref(), &overrides, args.alertmanager.as_deref()) {
            Ok(both) => both,
            Err(code) => return Ok(code),
        };
    if let Some(html) = &args.report {
        if let Err(code) = check_report_output(html) {
            return Ok(code);
        }
    }
    // `--state none` means no state, as for capture (not a file named `none`).
    let state = args.state.clone().filter(|p| p.as_os_str() != "none");
    let checked = match check_outputs(
        Some((&args.events, Existing::Truncate)),
        state.as_deref(),
        args.evidence_dir.as_deref(),
    ) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let server = match &args.metrics_listen {
        Some(addr) => match start_metrics(addr) {
            Ok(s) => Some(s),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let publisher = match start_publisher(args.publish.as_deref(), &config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let published = publisher.as_ref().map(pacstap_jetstream::Publisher::counters);
    let events: Box<dyn Write> = match checked.events {
        Some(f) => Box::new(f),
        None if is_stdout(&args.events) => Box::new(io::stdout().lock()),
        // A FIFO, opened only now.
        None => Box::new(
            pacstap_safefile::open_private(Path::new(&args.events), Existing::Truncate, Kind::RegularOrStream)
                .with_context(|| format!("cannot write events file {}", args.events))?,
        ),
    };
    let mut opts = pacstap::ReplayOptions::new(args.pcaps).with_config(config);
    opts.state = state;
    opts.evidence_dir = args.evidence_dir;
    opts.events = Some(events);
    opts.alerts_only = args.alerts_only;
    opts.progress = true;
    opts.metrics = server.as_ref().map(|(m, _)| Arc::clone(m));
    opts.workers = match args.workers {
        0 => pacstap::sharded::default_workers(),
        n => usize::from(n),
    };
    for p in args.dicom_ports {
        if !opts.proto.dicom_ports.contains(&p) {
            opts.proto.dicom_ports.push(p);
        }
    }
    opts.flow.checksum = args.checksum;
    opts.alertmanager = alertmanager.clone();
    opts.publisher = publisher;
    let report = pacstap::replay(opts, false)?;
    stop_alertmanager(alertmanager);
    say_published(published.as_ref(), args.quiet);
    if !args.quiet {
        eprint!("{}", for_terminal(&report.render_summary()));
    }
    // Data loss is never quiet (not even with -q): state set aside, inputs not read or damaged.
    for w in report.warnings() {
        w.print();
    }
    if let Some((_, server)) = &server {
        if args.metrics_linger > 0 {
            say(&format!(
                "serving metrics at http://{}/metrics for {} s",
                server.local_addr(),
                args.metrics_linger
            ));
            std::thread::sleep(std::time::Duration::from_secs(args.metrics_linger));
        }
    }
    if let Some(r) = report_after {
        let code = run_report(r)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    // Some inputs could not be read at all: the rest was replayed, but the run is partial.
    if !report.unreadable.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
