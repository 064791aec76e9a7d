//! `pacstap`: passive network-tap analyzer for hospital imaging networks.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
pacstap replay --config site.toml --alerts-only capture.pcap   only the alerts, with your inventory\n  \
pacstap config check site.toml                    validate a config, print effective settings"
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

    /// Extra TCP ports to treat as DICOM even without a visible A-ASSOCIATE-RQ
    /// (mid-association pickup). Content detection works on any port regardless.
    #[arg(long = "dicom-port", value_name = "PORT")]
    dicom_ports: Vec<u16>,
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

fn run_replay(args: ReplayArgs) -> Result<ExitCode> {
    // A bad config is bad usage (exit 2), checked before any input is read.
    let config = match &args.config {
        Some(path) => match pacstap_detect::Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pacstap: {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        },
        None => pacstap_detect::Config::default(),
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
    for p in args.dicom_ports {
        if !opts.proto.dicom_ports.contains(&p) {
            opts.proto.dicom_ports.push(p);
        }
    }
    let report = pacstap::replay(opts, false)?;
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
    Ok(ExitCode::SUCCESS)
}
