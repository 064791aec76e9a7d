//! `--publish` on replay and capture (issue 15): the publisher is started before the first
//! packet (a bad URL or an unreadable credentials file is bad usage, exit 2), and its totals
//! are said at the end.

use pacstap::config::Config;
use pacstap_jetstream::{PublishCounters, Publisher};
use pacstap_output::term::{say, warn};
use std::process::ExitCode;
use std::sync::Arc;

/// `--publish URLS` over `[publish] servers`; `None` when neither names a server.
pub fn start_publisher(arg: Option<&str>, config: &Config) -> Result<Option<Publisher>, ExitCode> {
    let servers = match arg {
        Some(list) => match pacstap_jetstream::publish::parse_server_list(list) {
            Ok(s) => s,
            Err(e) => {
                say(&format!("--publish: {e}"));
                return Err(ExitCode::from(2));
            }
        },
        None if config.publish.servers.is_empty() => return Ok(None),
        None => config.publish.servers.clone(),
    };
    let settings = config.publish.settings(servers);
    // Checked now, not by the publisher thread later, where it could only drop every event.
    for path in [
        &settings.credentials,
        &settings.tls.ca,
        &settings.tls.cert,
        &settings.tls.key,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = std::fs::File::open(path) {
            say(&format!("[publish]: cannot read {}: {e}", path.display()));
            return Err(ExitCode::from(2));
        }
    }
    match Publisher::start(settings) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            say(&format!("--publish: {e}"));
            Err(ExitCode::from(2))
        }
    }
}

/// The publisher's totals at the end of the run; loss is said even with `--quiet`.
pub fn say_published(counters: Option<&Arc<PublishCounters>>, quiet: bool) {
    let Some(c) = counters else { return };
    let t = c.totals();
    let lost = t.dropped > 0 || t.failed > 0;
    if quiet && !lost {
        return;
    }
    let what = format!(
        "{} acked, {} dropped, {} failed ({} retries)",
        t.acked, t.dropped, t.failed, t.retried
    );
    if lost {
        warn("published to NATS JetStream", &what);
    } else {
        say(&format!("published to NATS JetStream: {what}"));
    }
}
