//! `pacstap`: passive network-tap analyzer for hospital imaging networks.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pacstap_output::{AlertmanagerClient, Metrics, MetricsServer};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "pacstap",
    version,
    about = "Passive network-tap analyzer for hospital imaging networks",
    long_about = "pacstap reads pcap / pcapng files (captures of a SPAN / mirror port), reassembles TCP, \
decodes DICOM associations and DIMSE commands (C-STORE, C-MOVE, C-GET, C-FIND, C-ECHO), DICOMweb / HTTP, \
TLS metadata and HL7 over MLLP, raises alerts for the PACS security checklist (login failures, new devices, \
admin changes, bulk exports, unknown destinations, sharing spikes), and writes one JSON event per line in \
Suricata's EVE layout.\n\n\
Examples:\n  \
pacstap replay capture.pcap                       events to stdout, summary on stderr\n  \
pacstap replay --events out.jsonl day1.pcapng day2.pcap   several files, merged by time\n  \
pacstap replay capture.pcap | jq 'select(.dicom.type==\"command\")'\n  \
pacstap replay --config site.toml --alerts-only capture.pcap   alerts only\n  \
pacstap config check site.toml                    validate a config, print effective settings\n  \
pacstap capture -i eth1 --events events.jsonl     live, metrics on 127.0.0.1:9718"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Investigate pcap / pcapng files: decode every TCP connection and write events.
    ///
    /// Several files are merged in timestamp order (e.g. a rotated capture). A file damaged
    /// part-way is decoded up to the damage and reported; exit status 1 only when an input
    /// cannot be read at all.
    Replay(ReplayArgs),
    /// Appliance: capture live from an interface (a SPAN / mirror port) until SIGINT/SIGTERM.
    ///
    /// Same decoders and detection as `replay`: the same packets give the same events.
    /// SIGINT/SIGTERM: open flows end (open associations become `incomplete`), learned state is
    /// saved, outputs are flushed, exit 0. SIGHUP: reopen the events file (log rotation) and
    /// reload --config (detection keeps its windows and learned state; new `[ports]` apply to
    /// connections that start after the reload).
    /// Needs CAP_NET_RAW (root, or the capability granted by the systemd unit); pacstap does not
    /// change user itself.
    Capture(CaptureArgs),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a TOML config and print the effective settings (defaults included).
    ///
    /// Exit status 0 when valid; 2 with a message naming the key and line when not.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// pcap or pcapng files (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP; IPv4 and IPv6).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,

    /// Where JSON-lines events go; `-` is stdout.
    #[arg(long, value_name = "PATH", default_value = "-")]
    events: String,

    /// Write only `event_type = "alert"` lines.
    #[arg(long)]
    alerts_only: bool,

    /// TOML config (networks, inventory, users, rule thresholds, ports); without it the
    /// built-in defaults (the checklist's seed thresholds) apply. See `pacstap config check`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where learned state (known devices, baselines, alerted destinations) persists between
    /// runs. Without it every replay starts fresh and keeps nothing.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,

    /// For each alert, write the packets of the flows behind it as a pcap in DIR (mode 0600;
    /// headers always, payload up to `[evidence] max_payload_bytes_per_flow`).
    #[arg(long, value_name = "DIR")]
    evidence_dir: Option<PathBuf>,

    /// Do not print the summary on stderr at the end.
    #[arg(long, short = 'q')]
    quiet: bool,

    /// IP and TCP checksum validation: `auto` validates unless more than one in ten of the
    /// first 1000 segments are bad (a capture taken on a sending host with checksum offload),
    /// `on` always (a segment with a bad checksum never reaches the decoders), `off` never.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    checksum: pacstap_flow::ChecksumMode,

    /// Extra TCP ports to treat as DICOM even without a visible A-ASSOCIATE-RQ
    /// (mid-association pickup). Content detection works on any port regardless.
    #[arg(long = "dicom-port", value_name = "PORT")]
    dicom_ports: Vec<u16>,

    /// Also push each alert to a Prometheus Alertmanager at URL (`http://host:port[/prefix]`,
    /// POST /api/v2/alerts; labels rule, severity, entity_kind, entity). Queued and sent in the
    /// background; never slows decoding. https is not supported: use http on the management
    /// network or a TLS-terminating proxy.
    #[arg(long, value_name = "URL")]
    alertmanager: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics (and /healthz) while replaying.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,

    /// With --metrics-listen: keep serving this many seconds after the replay ends (to scrape
    /// the final values).
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics_listen")]
    metrics_linger: u64,

    /// Decode flows on N worker threads (the live pipeline's threads, over the files): faster
    /// on large captures with many connections, same events. `0` = one per core left after
    /// the reading thread, at most 8.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    workers: u16,
}

#[derive(clap::Args)]
struct CaptureArgs {
    /// Interface to capture on (e.g. the NIC of the mirror port; `any` for all).
    #[arg(long, short = 'i', value_name = "IF")]
    interface: String,

    /// BPF filter (tcpdump syntax), applied in the kernel, e.g. `tcp`.
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,

    /// Bytes captured per frame (262144 = whole frames; smaller values cut payload, which the
    /// decoders then see as gaps).
    #[arg(long, value_name = "N", default_value_t = pacstap_capture::DEFAULT_SNAPLEN)]
    snaplen: u32,

    /// Kernel capture buffer, bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = pacstap_capture::DEFAULT_BUFFER_SIZE)]
    buffer_size: usize,

    /// Do not put the interface in promiscuous mode (a mirror port needs it; a host capture
    /// of its own traffic does not).
    #[arg(long)]
    no_promisc: bool,

    /// Where JSON-lines events go (appended; reopened on SIGHUP); `-` is stdout (journald).
    #[arg(long, value_name = "PATH", default_value = "-")]
    events: String,

    /// Write only `event_type = "alert"` lines.
    #[arg(long)]
    alerts_only: bool,

    /// TOML config (see `pacstap config check`); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where learned state persists (saved every 5 minutes and at shutdown); `none` keeps
    /// nothing.
    #[arg(long, value_name = "PATH", default_value = "/var/lib/pacstap/state.json")]
    state: String,

    /// Also push each alert to a Prometheus Alertmanager at URL (`http://host:port[/prefix]`,
    /// POST /api/v2/alerts; labels rule, severity, entity_kind, entity). Queued and sent in the
    /// background; never slows decoding. https is not supported: use http on the management
    /// network or a TLS-terminating proxy.
    #[arg(long, value_name = "URL")]
    alertmanager: Option<String>,

    /// Prometheus metrics and /healthz at http://ADDR/; `off` disables them.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9718")]
    metrics_listen: String,

    /// For each alert, write the packets of the flows behind it as a pcap there (mode 0600),
    /// cut from the recent packets the workers keep per flow: the first frames with payload up
    /// to `[evidence] max_payload_bytes_per_flow`, then headers. Appended to as flows join the
    /// incident (10 s apart at first, backing off to 5 min) and at shutdown.
    #[arg(long, value_name = "DIR")]
    evidence_dir: Option<PathBuf>,

    /// With --evidence-dir: memory for the packets kept for evidence, over all workers
    /// (bytes; least recently active flows are forgotten first).
    #[arg(long, value_name = "BYTES", default_value_t = pacstap::live::DEFAULT_EVIDENCE_MEMORY, requires = "evidence_dir")]
    evidence_memory: usize,

    /// IP and TCP checksum validation: `auto` validates unless more than one in ten of the
    /// first 1000 segments are bad (a capture taken on a sending host with checksum offload),
    /// `on` always (a segment with a bad checksum never reaches the decoders), `off` never.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    checksum: pacstap_flow::ChecksumMode,

    /// Extra TCP ports to treat as DICOM even without a visible A-ASSOCIATE-RQ.
    #[arg(long = "dicom-port", value_name = "PORT")]
    dicom_ports: Vec<u16>,

    /// Worker threads decoding flows (each owns the flows that hash to it); `0` = one per core
    /// left after the capture thread, at most 8. One worker decodes about 5 M frames/s of
    /// DICOM traffic; the capture thread reads and shards about 2 M/s per core.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    workers: u16,

    /// Do not print the summary on stderr at shutdown.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => match pacstap_detect::Config::load(&file) {
            Ok(cfg) => {
                print!("{}", cfg.render_effective());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pacstap: {}: {e}", file.display());
                ExitCode::from(2)
            }
        },
        Command::Capture(args) => match run_capture(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("pacstap: error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Replay(args) => match run_replay(args) {
            Ok(code) => code,
            Err(e) => {
                if is_broken_pipe(&e) {
                    return ExitCode::SUCCESS;
                }
                eprintln!("pacstap: error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// `pacstap replay … | head` must end quietly, as other Unix tools do.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A bad config is bad usage (exit 2), checked before any input is read.
fn load_config(path: Option<&Path>) -> Result<pacstap_detect::Config, ExitCode> {
    match path {
        Some(path) => pacstap_detect::Config::load(path).map_err(|e| {
            eprintln!("pacstap: {}: {e}", path.display());
            ExitCode::from(2)
        }),
        None => Ok(pacstap_detect::Config::default()),
    }
}

/// Registry and server for `--metrics-listen`.
/// `--alertmanager URL`: a bad URL is bad usage (exit 2), reported before any work starts.
fn start_alertmanager(url: Option<&str>) -> Result<Option<Arc<AlertmanagerClient>>, ExitCode> {
    match url.map(AlertmanagerClient::new) {
        None => Ok(None),
        Some(Ok(c)) => Ok(Some(Arc::new(c))),
        Some(Err(e)) => {
            eprintln!("pacstap: --alertmanager: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Deliver what is still queued for Alertmanager (a few seconds at most), and say what was lost.
fn stop_alertmanager(client: Option<Arc<AlertmanagerClient>>) {
    if let Some(Ok(c)) = client.map(Arc::try_unwrap) {
        let endpoint = c.endpoint();
        let s = c.shutdown(std::time::Duration::from_secs(5));
        if s.dropped > 0 || s.rejected > 0 {
            eprintln!(
                "pacstap: warning: Alertmanager {endpoint}: {} alerts delivered, {} dropped, {} rejected",
                s.sent, s.dropped, s.rejected
            );
        }
    }
}

fn start_metrics(addr: &str) -> Result<(Arc<Metrics>, MetricsServer)> {
    let metrics = Arc::new(Metrics::new().context("creating the metrics registry")?);
    let server =
        MetricsServer::spawn(addr, Arc::clone(&metrics)).with_context(|| format!("cannot serve metrics on {addr}"))?;
    Ok((metrics, server))
}

fn run_capture(args: CaptureArgs) -> Result<ExitCode> {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let alertmanager = match start_alertmanager(args.alertmanager.as_deref()) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let mut live = pacstap_capture::LiveConfig::new(args.interface);
    live.bpf = args.bpf;
    live.snaplen = args.snaplen;
    live.buffer_size = args.buffer_size;
    live.promiscuous = !args.no_promisc;
    let mut opts = pacstap::CaptureOptions::new(live).with_config(config);
    opts.config_path = args.config;
    opts.alerts_only = args.alerts_only;
    opts.events = if args.events == "-" {
        pacstap::EventsTarget::Stdout
    } else {
        pacstap::EventsTarget::File(PathBuf::from(&args.events))
    };
    opts.state = (args.state != "none").then(|| PathBuf::from(&args.state));
    let mut opts = opts.with_dicom_ports(&args.dicom_ports);
    opts.flow.checksum = args.checksum;
    opts.workers = match args.workers {
        0 => pacstap::live::default_workers(),
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

    if let Some(state) = &opts.state {
        if let Err(e) = pacstap::live::check_state_dir(state) {
            eprintln!("pacstap: {e:#}");
            return Ok(ExitCode::from(2));
        }
    }
    let source = match pacstap::live::open_capture(&opts.live) {
        Ok(s) => s,
        Err(e @ pacstap_capture::LiveError::Filter { .. }) | Err(e @ pacstap_capture::LiveError::Setting(_)) => {
            eprintln!("pacstap: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    // Served only once the capture is open: a healthy /healthz means capturing.
    let server = match args.metrics_listen.as_str() {
        "off" | "none" => None,
        addr => {
            let (metrics, server) = start_metrics(addr)?;
            opts.metrics = Some(metrics);
            Some(server)
        }
    };
    eprintln!(
        "pacstap: capturing on {} (linktype {}, {} worker{}){}",
        source.interface(),
        source.linktype(),
        opts.workers,
        if opts.workers == 1 { "" } else { "s" },
        server
            .as_ref()
            .map(|s| format!(", metrics at http://{}/metrics", s.local_addr()))
            .unwrap_or_default()
    );
    opts.alertmanager = alertmanager.clone();
    let report = pacstap::capture(opts, source)?;
    stop_alertmanager(alertmanager);
    if !args.quiet {
        eprint!("{}", report.render_summary());
    }
    drop(server);
    if let Some(e) = report.capture_error {
        eprintln!("pacstap: error: capture stopped: {e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let alertmanager = match start_alertmanager(args.alertmanager.as_deref()) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let server = match &args.metrics_listen {
        Some(addr) => Some(start_metrics(addr)?),
        None => None,
    };
    let events: Box<dyn Write> = if args.events == "-" {
        Box::new(io::stdout().lock())
    } else {
        let f = std::fs::File::create(&args.events)
            .with_context(|| format!("cannot create events file {}", args.events))?;
        Box::new(f)
    };
    let mut opts = pacstap::ReplayOptions::new(args.pcaps).with_config(config);
    opts.state = args.state;
    opts.evidence_dir = args.evidence_dir;
    opts.events = Some(events);
    opts.alerts_only = args.alerts_only;
    opts.progress = true;
    opts.metrics = server.as_ref().map(|(m, _)| Arc::clone(m));
    opts.workers = match args.workers {
        0 => pacstap::live::default_workers(),
        n => usize::from(n),
    };
    for p in args.dicom_ports {
        if !opts.proto.dicom_ports.contains(&p) {
            opts.proto.dicom_ports.push(p);
        }
    }
    opts.flow.checksum = args.checksum;
    opts.alertmanager = alertmanager.clone();
    let report = pacstap::replay(opts, false)?;
    stop_alertmanager(alertmanager);
    if !args.quiet {
        eprint!("{}", report.render_summary());
    } else {
        for d in &report.damages {
            eprintln!(
                "pacstap: warning: {} is damaged at byte {}: {}",
                d.path.display(),
                d.offset,
                d.reason
            );
        }
    }
    if let Some((_, server)) = &server {
        if args.metrics_linger > 0 {
            eprintln!(
                "pacstap: serving metrics at http://{}/metrics for {} s",
                server.local_addr(),
                args.metrics_linger
            );
            std::thread::sleep(std::time::Duration::from_secs(args.metrics_linger));
        }
    }
    Ok(ExitCode::SUCCESS)
}
