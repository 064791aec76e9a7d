//! The subcommands' runners (`replay`, `capture`, `detect`, `report`, `state`, `selftest`;
//! `config check` is in `main`), and what they share: the config, the output checks made before
//! any packet is read, the metrics and Alertmanager clients. Usage errors are exit status 2, said
//! once, before any work starts.

mod capture;
mod detect;
mod detect_nats;
mod publish;
mod replay;
mod report;
mod selftest;
mod state;

pub use capture::run_capture;
pub use detect::run_detect;
pub use replay::run_replay;
pub use report::run_report;
pub use selftest::run_selftest;
pub use state::run_state;

use anyhow::Result;
use pacstap_output::term::{error, error_chain, warn};
use pacstap_output::{AlertmanagerClient, Metrics, MetricsServer};
use pacstap_safefile::{Existing, Kind};
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// `pacstap replay … | head` must end quietly, as other Unix tools do.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A bad config is bad usage (exit 2), checked before any input is read.
pub fn load_config(path: Option<&Path>) -> Result<pacstap::config::Config, ExitCode> {
    match path {
        Some(path) => pacstap::config::Config::load(path).map_err(|e| {
            error(&path.display().to_string(), &error_chain(&e));
            ExitCode::from(2)
        }),
        None => Ok(pacstap::config::Config::default()),
    }
}

/// `--decapsulate`, `--defrag-memory` and `--defrag-timeout` applied over the config's
/// `[decapsulate]` and `[defrag]` tables; a bad `--decapsulate` is bad usage (exit 2).
pub fn apply_overrides(
    config: &mut pacstap::config::Config,
    overrides: &pacstap::config::WireOverrides,
) -> Result<(), ExitCode> {
    overrides.apply(config).map_err(|e| {
        error("", &e.to_string());
        ExitCode::from(2)
    })
}

/// What replay and capture set up alike before any packet: the config file (or the defaults),
/// the wire options applied to it ([`apply_overrides`]), and the Alertmanager client. `Err` is the exit code, the
/// reason already said.
pub fn config_and_alertmanager(
    config: Option<&Path>,
    overrides: &pacstap::config::WireOverrides,
    alertmanager: Option<&str>,
) -> Result<(pacstap::config::Config, Option<Arc<AlertmanagerClient>>), ExitCode> {
    let mut config = load_config(config)?;
    apply_overrides(&mut config, overrides)?;
    Ok((config, start_alertmanager(alertmanager)?))
}

/// Registry and server for `--metrics-listen`.
/// `--alertmanager URL`: a bad URL is bad usage (exit 2), reported before any work starts.
pub fn start_alertmanager(url: Option<&str>) -> Result<Option<Arc<AlertmanagerClient>>, ExitCode> {
    match url.map(AlertmanagerClient::new) {
        None => Ok(None),
        Some(Ok(c)) => Ok(Some(Arc::new(c))),
        Some(Err(e)) => {
            error("--alertmanager", &error_chain(&e));
            Err(ExitCode::from(2))
        }
    }
}

/// Deliver what is still queued for Alertmanager (a few seconds at most), and say what was lost.
pub fn stop_alertmanager(client: Option<Arc<AlertmanagerClient>>) {
    if let Some(Ok(c)) = client.map(Arc::try_unwrap) {
        let endpoint = c.endpoint();
        let s = c.shutdown(std::time::Duration::from_secs(5));
        if s.dropped > 0 || s.rejected > 0 {
            warn(
                &format!("Alertmanager {endpoint}"),
                &format!(
                    "{} alerts delivered, {} dropped, {} rejected",
                    s.sent, s.dropped, s.rejected
                ),
            );
        }
    }
}

/// `--metrics-listen ADDR`: an address that cannot be served (malformed, in use, not ours) is
/// bad usage (exit 2), reported once with the reason.
pub fn start_metrics(addr: &str) -> Result<(Arc<Metrics>, MetricsServer), ExitCode> {
    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            error("creating the metrics registry", &error_chain(&e));
            return Err(ExitCode::from(1));
        }
    };
    match MetricsServer::spawn(addr, Arc::clone(&metrics)) {
        Ok(server) => Ok((metrics, server)),
        Err(e) => {
            error(
                "--metrics-listen",
                &format!("cannot serve metrics on {addr}: {}", error_chain(&e)),
            );
            Err(ExitCode::from(2))
        }
    }
}

/// `--events -`, or `/dev/stdout`: a symbolic link (to `/proc/self/fd/1`), which the file
/// writer refuses to follow, and which means stdout anyway.
pub fn is_stdout(events: &str) -> bool {
    events == "-" || events == "/dev/stdout"
}

/// Every output is checked before the first packet is read, so a run does not decode for
/// hours (or name evidence files in alerts) and then fail to write: the events file opens
/// (mode 0600, never through a symbolic link), learned state can be written in its directory,
/// the evidence directory exists or can be made and takes files. A failure is bad usage
/// (exit 2), said once with the path and the reason.
pub struct CheckedOutputs {
    /// `--events PATH` (replay: opened and emptied here; capture: checked, opened by the run).
    pub events: Option<std::fs::File>,
}

pub fn check_outputs(
    events: Option<(&str, Existing)>,
    state: Option<&Path>,
    evidence_dir: Option<&Path>,
) -> Result<CheckedOutputs, ExitCode> {
    let fail = |what: String| {
        error("", &what);
        ExitCode::from(2)
    };
    let mut checked = CheckedOutputs { events: None };
    if let Some((path, existing)) = events.filter(|(p, _)| !is_stdout(p)) {
        let p = Path::new(path);
        // A FIFO (a log shipper's pipe) is not opened early: an open for writing waits for its
        // reader, and closing it again would end the reader's input.
        let is_fifo = std::fs::symlink_metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        });
        if !is_fifo {
            match pacstap_safefile::open_private(p, existing, Kind::RegularOrStream) {
                Ok(f) => checked.events = Some(f),
                Err(e) => return Err(fail(format!("cannot write events file {path}: {}", error_chain(&e)))),
            }
        }
    }
    if let Some(state) = state {
        // The reason, not a later "Is a directory (os error 21)" after the run has started.
        let dir = pacstap_safefile::parent_dir(state);
        if state.is_dir() {
            return Err(fail(format!(
                "cannot keep learned state in {}: it is a directory; give a file path such as {}",
                state.display(),
                state.join("state.json").display()
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(fail(format!(
                "cannot keep learned state {}: {} is not a directory",
                state.display(),
                dir.display()
            )));
        }
        if let Err(e) = pacstap::capture::check_state_dir(state) {
            return Err(fail(error_chain(e.as_ref())));
        }
    }
    if let Some(dir) = evidence_dir {
        if dir.exists() && !dir.is_dir() {
            return Err(fail(format!(
                "cannot write evidence in {}: it is not a directory",
                dir.display()
            )));
        }
        let made = pacstap_safefile::create_private_dir(dir).and_then(|()| pacstap_safefile::check_dir_writable(dir));
        if let Err(e) = made {
            return Err(fail(format!(
                "cannot write evidence in {}: {}",
                dir.display(),
                error_chain(&e)
            )));
        }
    }
    Ok(checked)
}

/// `replay --report FILE`: the HTML, and its JSON and CSV files beside it, are written after the
/// replay; their directory is checked now, so a long replay does not end in "cannot write".
/// A failure is bad usage (exit 2), said once with the path and the reason.
pub fn check_report_output(html: &Path) -> Result<(), ExitCode> {
    let dir = pacstap_safefile::parent_dir(html);
    let why = if html.is_dir() {
        Some("it is a directory".to_string())
    } else if !dir.is_dir() {
        Some(format!("{} is not a directory", dir.display()))
    } else {
        pacstap_safefile::check_dir_writable(&dir)
            .err()
            .map(|e| error_chain(&e))
    };
    match why {
        Some(why) => {
            error("", &format!("cannot write report {}: {why}", html.display()));
            Err(ExitCode::from(2))
        }
        None => Ok(()),
    }
}
