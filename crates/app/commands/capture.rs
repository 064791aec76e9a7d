//! `pacstap capture`: options to [`pacstap::CaptureOptions`], signals, checks, then the run.

use super::publish::{say_published, start_publisher};
use super::{check_outputs, config_and_alertmanager, is_stdout, start_metrics, stop_alertmanager};
use crate::cli::CaptureArgs;
use anyhow::{Context, Result};
use pacstap_output::term::{error, error_chain, for_terminal, say};
use pacstap_safefile::Existing;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run_capture(args: CaptureArgs) -> Result<ExitCode> {
    let overrides = args.wire_overrides();
    let (config, alertmanager) =
        match config_and_alertmanager(args.config.as_deref(), &overrides, args.alertmanager.as_deref()) {
            Ok(both) => both,
            Err(code) => return Ok(code),
        };
    let mut live = pacstap_capture::LiveConfig::new(args.interface);
    // `--bpf` over the config's `[capture] bpf`.
    live.bpf = args.bpf.or_else(|| config.capture.bpf.clone());
    live.snaplen = args.snaplen;
    live.buffer_size = args.buffer_size;
    live.promiscuous = !args.no_promisc;
    let mut opts = pacstap::CaptureOptions::new(live).with_config(config);
    opts.config_path = args.config;
    // A SIGHUP reload applies the same options over the reloaded file.
    opts.overrides = overrides;
    opts.alerts_only = args.alerts_only;
    opts.events = if is_stdout(&args.events) {
        pacstap::EventsTarget::Stdout
    } else {
        pacstap::EventsTarget::File(PathBuf::from(&args.events))
    };
    opts.state = (args.state != "none").then(|| PathBuf::from(&args.state));
    let mut opts = opts.with_dicom_ports(&args.dicom_ports);
    opts.flow.checksum = args.checksum;
    opts.workers = match args.workers {
        0 => pacstap::sharded::default_workers(),
        n => usize::from(n),
    };
    opts.evidence_dir = args.evidence_dir;
    opts.evidence_memory = args.evidence_memory;
    // Signals first, so a SIGTERM during start-up is not the default (immediate) death.
    // A second SIGINT/SIGTERM while shutting down exits at once (status 130).
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&opts.stop))
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, Arc::clone(&opts.stop)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(SIGHUP, Arc::clone(&opts.reload)).context("installing signal handlers")?;

    if let Err(code) = check_outputs(
        Some((&args.events, Existing::Append)),
        opts.state.as_deref(),
        opts.evidence_dir.as_deref(),
    ) {
        return Ok(code);
    }
    // Before the interface opens: a bad URL is bad usage, said before any work.
    opts.publisher = match start_publisher(args.publish.as_deref(), &opts.config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let source = match pacstap::capture::open_capture(&opts.live) {
        Ok(s) => s,
        Err(e @ pacstap_capture::LiveError::Filter { .. }) | Err(e @ pacstap_capture::LiveError::Setting(_)) => {
            error("", &error_chain(&e));
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    // Served only once the capture is open: a healthy /healthz means capturing.
    let server = match args.metrics_listen.as_str() {
        "off" | "none" => None,
        addr => match start_metrics(addr) {
            Ok((metrics, server)) => {
                // `--idle-alarm` over the config's `[capture] idle_alarm`; counted from now.
                let alarm = args.idle_alarm.unwrap_or(opts.config.capture.idle_alarm);
                metrics.set_idle_alarm(Some(alarm.0));
                opts.metrics = Some(metrics);
                Some(server)
            }
            Err(code) => return Ok(code),
        },
    };
    say(&format!(
        "capturing on {} (linktype {}, {} worker{}){}",
        source.interface(),
        source.linktype(),
        opts.workers,
        if opts.workers == 1 { "" } else { "s" },
        server
            .as_ref()
            .map(|s| format!(", metrics at http://{}/metrics", s.local_addr()))
            .unwrap_or_default()
    ));
    opts.alertmanager = alertmanager.clone();
    let published = opts.publisher.as_ref().map(pacstap_jetstream::Publisher::counters);
    let report = pacstap::capture(opts, source)?;
    stop_alertmanager(alertmanager);
    say_published(published.as_ref(), args.quiet);
    if !args.quiet {
        eprint!("{}", for_terminal(&report.render_summary()));
    }
    for w in report.pipeline.warnings() {
        w.print();
    }
    drop(server);
    if let Some(e) = report.capture_error {
        error("capture stopped", &e);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
