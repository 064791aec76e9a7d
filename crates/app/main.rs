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
    long_about = "pacstap reads packets from a SPAN / mirror port or from pcap files, reassembles TCP, \
decodes DICOM associations and DIMSE commands (C-STORE, C-MOVE, C-GET, C-FIND, C-ECHO), and writes \
one JSON event per line in Suricata's EVE layout.\n\n\
Examples:\n  \
pacstap replay capture.pcap                       events to stdout, summary on stderr\n  \
pacstap replay --events out.jsonl day1.pcapng day2.pcap   several files, merged by time\n  \
pacstap replay capture.pcap | jq 'select(.dicom.type==\"command\")'"
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
    let events: Box<dyn Write> = if args.events == "-" {
        Box::new(io::stdout().lock())
    } else {
        let f = std::fs::File::create(&args.events)
            .with_context(|| format!("cannot create events file {}", args.events))?;
        Box::new(f)
    };
    let mut opts = pacstap::ReplayOptions::new(args.pcaps);
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
