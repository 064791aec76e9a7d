//! `pacstap`: passive network-tap analyzer for hospital imaging networks.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pacstap_output::term::{error_chain, for_terminal, say};
use pacstap_output::{AlertmanagerClient, Metrics, MetricsServer};
use pacstap_safefile::{Existing, Kind};
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
    /// Several files are merged in timestamp order (e.g. a rotated capture; at most 64 are
    /// open at once, however many are named). A file damaged part-way is decoded up to the
    /// damage and reported as a warning.
    ///
    /// Exit status: 0 done; 1 an input could not be read at all (the other inputs are still
    /// replayed, and each unreadable one is named), or the run failed; 2 bad usage, including
    /// an output (--events, --state directory, --evidence-dir, --metrics-listen) that cannot
    /// be written or served, found before any packet is read.
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
    /// Turn event files into a self-contained HTML report (+ JSON + CSV) for the people who
    /// receive an investigation: incidents, study ledger, timeline, inventory and flow map,
    /// the checklist answered from the wire.
    ///
    /// Inputs are event files from `replay` or `capture` (plain or gzip). Writes FILE.html
    /// (`--output`), FILE.json beside it, and the ledger and incidents as CSV (`--csv DIR`, or
    /// beside the HTML). `--study UID` prints one study's trail instead and writes nothing.
    /// Exit status: 0 done; 1 an input could not be read or an output written; 2 bad usage.
    Report(ReportArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Event files (JSON lines, plain or gzip-compressed).
    #[arg(required = true, value_name = "EVENTS")]
    events: Vec<PathBuf>,

    /// The HTML file to write (the JSON goes beside it, same name with `.json`).
    #[arg(long, short = 'o', value_name = "FILE", default_value = "pacstap-report.html")]
    output: PathBuf,

    /// Directory for the CSV files (`<name>-ledger.csv`, `<name>-incidents.csv`); default:
    /// beside the HTML.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,

    /// Only events at or after this time (UTC: `2026-11-28`, `2026-11-28T07:00`, RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,

    /// Only events before this time (UTC, same forms as --from).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,

    /// Only one entity's own events and alerts: `user:NAME`, `ae:TITLE` or `ip:ADDRESS`.
    #[arg(long, value_name = "KIND:ID")]
    entity: Option<String>,

    /// The site config: its `networks.internal` (besides RFC 1918) and `users.admins` are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print this study's trail (every access and transfer) on stdout; write no file.
    #[arg(long, value_name = "UID")]
    study: Option<String>,
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

    /// Where JSON-lines events go; `-` is stdout. A file is created (or emptied) with mode 0600
    /// (events carry user names); a symbolic link there is refused.
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

    /// Tunnels to peel before reading TCP, for mirror traffic delivered encapsulated (cloud
    /// traffic mirroring sends VXLAN; Cisco / Arista remote SPAN sends ERSPAN in GRE).
    /// GRE, ERSPAN I/II/III, MPLS and PPPoE are recognised by protocol number and always
    /// peeled; VXLAN and Geneve only by UDP destination port: by default VXLAN 4789 and
    /// Geneve 6081. Repeatable; each SPEC is one of: `vxlan=4789,8472` (VXLAN on these ports,
    /// e.g. 8472 for Linux's historical port), `geneve=6081`, `vxlan=none`, `none` (peel
    /// nothing), `default`. Overrides the config's `[decapsulate]` table. The replay summary
    /// counts the frames of each tunnel, and warns when most frames go to an unknown UDP port.
    #[arg(long = "decapsulate", value_name = "SPEC")]
    decapsulate: Vec<String>,

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

    #[command(flatten)]
    defrag: DefragArgs,

    /// After the replay, write the HTML report of its events to FILE (as `pacstap report
    /// --config ... -o FILE EVENTS`); needs `--events PATH` (a file).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// IP defragmentation limits, shared by `replay` and `capture`.
#[derive(clap::Args)]
struct DefragArgs {
    /// Memory for IP fragments waiting for the rest of their datagram, bytes (oldest datagrams
    /// evicted first when full; default 16 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = pacstap_defrag::DefragConfig::default().memory)]
    defrag_memory: usize,

    /// Seconds of packet time a fragmented datagram may take to arrive in full (default: 30 for
    /// IPv4 as Linux, 60 for IPv6 as RFC 8200).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    defrag_timeout: Option<u64>,
}

impl DefragArgs {
    fn config(&self) -> pacstap_defrag::DefragConfig {
        let mut c = pacstap_defrag::DefragConfig {
            memory: self.defrag_memory,
            ..Default::default()
        };
        if let Some(secs) = self.defrag_timeout {
            c.timeout_v4 = std::time::Duration::from_secs(secs);
            c.timeout_v6 = c.timeout_v4;
        }
        c
    }
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

    /// Where JSON-lines events go (appended, mode 0600; reopened on SIGHUP); `-` is stdout
    /// (journald). A symbolic link there is refused.
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

    /// Tunnels to peel before reading TCP, for mirror traffic delivered encapsulated (cloud
    /// traffic mirroring sends VXLAN; Cisco / Arista remote SPAN sends ERSPAN in GRE).
    /// GRE, ERSPAN I/II/III, MPLS and PPPoE are recognised by protocol number and always
    /// peeled; VXLAN and Geneve only by UDP destination port: by default VXLAN 4789 and
    /// Geneve 6081. Repeatable; each SPEC is one of: `vxlan=4789,8472` (VXLAN on these ports,
    /// e.g. 8472 for Linux's historical port), `geneve=6081`, `vxlan=none`, `none` (peel
    /// nothing), `default`. Overrides the config's `[decapsulate]` table. The replay summary
    /// counts the frames of each tunnel, and warns when most frames go to an unknown UDP port.
    #[arg(long = "decapsulate", value_name = "SPEC")]
    decapsulate: Vec<String>,
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

    #[command(flatten)]
    defrag: DefragArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => match pacstap_detect::Config::load(&file) {
            Ok(cfg) => {
                // Goes to a terminal too: a config file's strings are escaped like the wire's.
                print!("{}", for_terminal(&cfg.render_effective()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                say(&format!("{}: {}", file.display(), error_chain(&e)));
                ExitCode::from(2)
            }
        },
        Command::Capture(args) => match run_capture(args) {
            Ok(code) => code,
            Err(e) => {
                say(&format!("error: {}", error_chain(e.as_ref())));
                ExitCode::from(1)
            }
        },
        Command::Report(args) => match run_report(args) {
            Ok(code) => code,
            Err(e) => {
                if is_broken_pipe(&e) {
                    return ExitCode::SUCCESS;
                }
                say(&format!("error: {}", error_chain(e.as_ref())));
                ExitCode::from(1)
            }
        },
        Command::Replay(args) => match run_replay(args) {
            Ok(code) => code,
            Err(e) => {
                if is_broken_pipe(&e) {
                    return ExitCode::SUCCESS;
                }
                say(&format!("error: {}", error_chain(e.as_ref())));
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
            say(&format!("{}: {}", path.display(), error_chain(&e)));
            ExitCode::from(2)
        }),
        None => Ok(pacstap_detect::Config::default()),
    }
}

/// `--decapsulate` values applied over the config's `[decapsulate]` table; a bad one is bad
/// usage (exit 2).
fn apply_decapsulate(config: &mut pacstap_detect::Config, specs: &[String]) -> Result<(), ExitCode> {
    let d = &mut config.decapsulate;
    let mut wire = pacstap_wire::WireConfig {
        enabled: d.enabled,
        vxlan_ports: std::mem::take(&mut d.vxlan_ports),
        geneve_ports: std::mem::take(&mut d.geneve_ports),
    };
    for spec in specs {
        if let Err(e) = wire.apply_spec(spec) {
            eprintln!("pacstap: {e}");
            return Err(ExitCode::from(2));
        }
    }
    d.enabled = wire.enabled;
    d.vxlan_ports = wire.vxlan_ports;
    d.geneve_ports = wire.geneve_ports;
    Ok(())
}

/// Registry and server for `--metrics-listen`.
/// `--alertmanager URL`: a bad URL is bad usage (exit 2), reported before any work starts.
fn start_alertmanager(url: Option<&str>) -> Result<Option<Arc<AlertmanagerClient>>, ExitCode> {
    match url.map(AlertmanagerClient::new) {
        None => Ok(None),
        Some(Ok(c)) => Ok(Some(Arc::new(c))),
        Some(Err(e)) => {
            say(&format!("--alertmanager: {}", error_chain(&e)));
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
            say(&format!(
                "warning: Alertmanager {endpoint}: {} alerts delivered, {} dropped, {} rejected",
                s.sent, s.dropped, s.rejected
            ));
        }
    }
}

/// `--metrics-listen ADDR`: an address that cannot be served (malformed, in use, not ours) is
/// bad usage (exit 2), reported once with the reason.
fn start_metrics(addr: &str) -> Result<(Arc<Metrics>, MetricsServer), ExitCode> {
    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            say(&format!("error: creating the metrics registry: {}", error_chain(&e)));
            return Err(ExitCode::from(1));
        }
    };
    match MetricsServer::spawn(addr, Arc::clone(&metrics)) {
        Ok(server) => Ok((metrics, server)),
        Err(e) => {
            say(&format!(
                "--metrics-listen: cannot serve metrics on {addr}: {}",
                error_chain(&e)
            ));
            Err(ExitCode::from(2))
        }
    }
}

/// `--events -`, or `/dev/stdout`: a symbolic link (to `/proc/self/fd/1`), which the file
/// writer refuses to follow, and which means stdout anyway.
fn is_stdout(events: &str) -> bool {
    events == "-" || events == "/dev/stdout"
}

/// Every output is checked before the first packet is read, so a run does not decode for
/// hours (or name evidence files in alerts) and then fail to write: the events file opens
/// (mode 0600, never through a symbolic link), learned state can be written in its directory,
/// the evidence directory exists or can be made and takes files. A failure is bad usage
/// (exit 2), said once with the path and the reason.
struct CheckedOutputs {
    /// `--events PATH` (replay: opened and emptied here; capture: checked, opened by the run).
    events: Option<std::fs::File>,
}

fn check_outputs(
    events: Option<(&str, Existing)>,
    state: Option<&Path>,
    evidence_dir: Option<&Path>,
) -> Result<CheckedOutputs, ExitCode> {
    let fail = |what: String| {
        say(&what);
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
        if let Err(e) = pacstap::live::check_state_dir(state) {
            return Err(fail(error_chain(e.as_ref())));
        }
    }
    if let Some(dir) = evidence_dir {
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

fn run_capture(args: CaptureArgs) -> Result<ExitCode> {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Err(code) = apply_decapsulate(&mut config, &args.decapsulate) {
        return Ok(code);
    }
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
    opts.events = if is_stdout(&args.events) {
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
    opts.defrag = args.defrag.config();
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
    let source = match pacstap::live::open_capture(&opts.live) {
        Ok(s) => s,
        Err(e @ pacstap_capture::LiveError::Filter { .. }) | Err(e @ pacstap_capture::LiveError::Setting(_)) => {
            say(&error_chain(&e));
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    // Served only once the capture is open: a healthy /healthz means capturing.
    let server = match args.metrics_listen.as_str() {
        "off" | "none" => None,
        addr => match start_metrics(addr) {
            Ok((metrics, server)) => {
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
    let report = pacstap::capture(opts, source)?;
    stop_alertmanager(alertmanager);
    if !args.quiet {
        eprint!("{}", for_terminal(&report.render_summary()));
    } else {
        for w in report.pipeline.warnings() {
            say(&format!("warning: {w}"));
        }
    }
    drop(server);
    if let Some(e) = report.capture_error {
        say(&format!("error: capture stopped: {e}"));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    if args.report.is_some() && is_stdout(&args.events) {
        say("--report needs --events PATH (a file the report then reads)");
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
    let mut config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Err(code) = apply_decapsulate(&mut config, &args.decapsulate) {
        return Ok(code);
    }
    let alertmanager = match start_alertmanager(args.alertmanager.as_deref()) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let checked = match check_outputs(
        Some((&args.events, Existing::Truncate)),
        args.state.as_deref(),
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
    opts.state = args.state;
    opts.evidence_dir = args.evidence_dir;
    opts.events = Some(events);
    opts.alerts_only = args.alerts_only;
    opts.progress = true;
    opts.metrics = server.as_ref().map(|(m, _)| Arc::clone(m));
    opts.defrag = args.defrag.config();
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
        eprint!("{}", for_terminal(&report.render_summary()));
    } else {
        // Data loss is never quiet: state set aside, inputs not read or damaged.
        for w in report.warnings() {
            say(&format!("warning: {w}"));
        }
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

/// `pacstap report`: bad arguments are exit 2 before any input is read.
fn run_report(args: ReportArgs) -> Result<ExitCode> {
    let usage = |msg: String| {
        say(&msg);
        Ok(ExitCode::from(2))
    };
    let mut opts = pacstap_report::Options {
        inputs: args.events.clone(),
        ..Default::default()
    };
    for (arg, text, slot) in [("--from", &args.from, &mut opts.from), ("--to", &args.to, &mut opts.to)] {
        if let Some(t) = text {
            match pacstap_report::time::parse(t) {
                Some(v) => *slot = Some(v),
                None => {
                    return usage(format!(
                        "{arg} {t:?}: expected a UTC time such as 2026-11-28 or 2026-11-28T07:00:00Z"
                    ))
                }
            }
        }
    }
    opts.from_text = args.from.clone();
    opts.to_text = args.to.clone();
    if let Some(e) = &args.entity {
        match e.parse() {
            Ok(f) => opts.entity = Some(f),
            Err(msg) => return usage(format!("--entity: {msg}")),
        }
    }
    if let Some(path) = &args.config {
        let cfg = match load_config(Some(path)) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        opts.networks.0.extend(cfg.networks.internal.iter().map(|n| n.0));
        opts.admins = Some(cfg.users.admins.clone());
    }
    opts.only_study = args.study.clone();
    let report = pacstap_report::build(&opts)?;
    if let Some(uid) = &args.study {
        let mut out = io::stdout().lock();
        out.write_all(for_terminal(&pacstap_report::study_trail(&report, uid)).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Reports carry user names and AE titles: written like the events file (mode 0600, never
    // through a symbolic link).
    let write = |path: &Path, fill: &dyn Fn(&mut io::BufWriter<std::fs::File>) -> io::Result<()>| -> Result<()> {
        let f = pacstap_safefile::open_private(path, Existing::Truncate, Kind::Regular)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = io::BufWriter::new(f);
        fill(&mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    let html = args.output.clone();
    let stem = html
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pacstap-report".into());
    let json = html.with_extension("json");
    let csv_dir = args
        .csv
        .clone()
        .unwrap_or_else(|| html.parent().map(Path::to_path_buf).unwrap_or_default());
    if let Some(dir) = &args.csv {
        pacstap_safefile::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let ledger_csv = csv_dir.join(format!("{stem}-ledger.csv"));
    let incidents_csv = csv_dir.join(format!("{stem}-incidents.csv"));
    write(&html, &|w| {
        w.write_all(pacstap_report::html::render(&report).as_bytes())
    })?;
    write(&json, &|w| pacstap_report::to_json(&report, w))?;
    write(&ledger_csv, &|w| pacstap_report::csv::ledger(&report, w))?;
    write(&incidents_csv, &|w| pacstap_report::csv::incidents(&report, w))?;
    say(&format!(
        "report: {} events, {} incidents, {} studies -> {} ({}; {}, {})",
        report.input.events,
        report.incidents.len(),
        report.studies_total,
        html.display(),
        json.display(),
        ledger_csv.display(),
        incidents_csv.display()
    ));
    Ok(ExitCode::SUCCESS)
}
