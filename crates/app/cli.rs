//! The command line: clap's definitions of every subcommand and option, with their help texts
//! (what `pacstap --help` prints). The runners are in `commands/`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
pacstap detect --from events.jsonl --config new.toml   re-detection: detection over archived events\n  \
pacstap capture -i eth1 --events events.jsonl     live, metrics on 127.0.0.1:9718\n  \
pacstap selftest -i eth1                          fire drill: a bundled sample must raise an alert"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Investigate pcap / pcapng files: decode every TCP connection and write events.
    ///
    /// Several files are merged in timestamp order (e.g. a rotated capture; at most 64 are
    /// open at once, however many are named). A file damaged part-way is decoded up to the
    /// damage and reported as a warning.
    ///
    /// Exit status: 0 done; 1 an input could not be read at all (the other inputs are still
    /// replayed, and each unreadable one is named), or the run failed; 2 bad usage, including
    /// an output (--events, --state directory, --evidence-dir, --metrics-listen, --report) that
    /// cannot be written or served, found before any packet is read.
    ///
    /// `--events FILE` is overwritten (capture appends).
    #[command(after_help = "Examples:\n  \
pacstap replay capture.pcap\n      \
events to stdout, the summary on stderr\n  \
pacstap replay --events out.jsonl day1.pcapng day2.pcap.gz\n      \
several files (compressed too), merged by time; out.jsonl is overwritten\n  \
pacstap replay --config site.toml --alerts-only capture.pcap\n      \
alerts only, with your inventory\n  \
pacstap replay --config site.toml --state s.json --events e.jsonl \\\n        \
--report r.html capture.pcap\n      \
keep learned state, then write the HTML report\n      \
(see `pacstap state show --state s.json`)\n  \
pacstap replay --evidence-dir ev/ --events e.jsonl capture.pcap\n      \
a pcap of each alert's flows, SHA-256 in ev/custody.jsonl\n  \
pacstap replay -q --events e.jsonl capture.pcap\n      \
no summary; warnings (damaged or unreadable inputs) are still printed")]
    Replay(ReplayArgs),
    /// Appliance: capture live from an interface (a SPAN / mirror port) until SIGINT/SIGTERM.
    #[command(long_about = capture_long_about())]
    #[command(after_help = "Examples:\n  \
pacstap capture -i eth1 --config /etc/pacstap/pacstap.toml \\\n        \
--events /var/log/pacstap/events.jsonl\n      \
the appliance: events appended, metrics on 127.0.0.1:9718\n  \
pacstap capture -i eth1 --bpf 'tcp or (vlan and tcp)'\n      \
a BPF filter with spaces: quote it (or set [capture] bpf in the config)\n  \
pacstap capture -i eth1 --state none --metrics-listen off\n      \
keep nothing, serve nothing\n  \
pacstap capture -i eth1 --alertmanager http://127.0.0.1:9093 \\\n        \
--evidence-dir /var/lib/pacstap/evidence\n      \
push alerts to Alertmanager, keep a pcap of each alert's flows")]
    Capture(CaptureArgs),
    /// Re-detection: run detection over events instead of packets, e.g. archived events files
    /// with a different config (a new rule or threshold tried on last month, without its pcaps).
    ///
    /// Inputs are event files from `replay` or `capture` (JSON lines, plain or gzip), merged in
    /// packet-time order. Alerts, posture findings and stats lines in them are skipped:
    /// detection raises its own with this config. Events that carry an `event_id` (published
    /// by a sensor) are applied once even if given twice. Output as replay's: events and the
    /// new alerts on --events, learned state, Alertmanager, metrics.
    ///
    /// Exit status: 0 done (lines that are not events are skipped and counted); 1 an input
    /// could not be read, or the run failed; 2 bad usage.
    #[command(after_help = "Examples:\n  \
pacstap detect --from events.jsonl --config new.toml --alerts-only   try a new threshold\n  \
pacstap detect --from 2026-11-*.jsonl.gz --config site.toml --events redetected.jsonl\n  \
pacstap detect --from a.jsonl --from b.jsonl --state s.json   learn baselines from archives")]
    Detect(DetectArgs),
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
    /// Evidence directories (`--evidence-dir`).
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Learned state (known devices, countries, destinations, baselines): show it, forget part.
    ///
    /// The state file (`--state` of replay and capture) is JSON, versioned by its `version`
    /// field (docs/state.md). A destination `unknown_destination` alerted on is remembered
    /// there: a second replay with the same `--state` does not alert on it again; `state show`
    /// says so, `state forget` takes it back. Stop `capture` before `forget`: capture writes its
    /// own state back every 5 minutes and at shutdown.
    ///
    /// Exit status: 0 done; 1 the state cannot be read or written; 2 bad usage.
    #[command(subcommand)]
    State(StateCommand),
    /// Fire drill: run a bundled capture with a known alert through pacstap and say whether the
    /// alert came out.
    ///
    /// Without `-i`: the sample (12 rejected DICOM associations of calling AE SCANNER9, then an
    /// accepted one) is replayed through the pipeline under a built-in config; prints
    /// `selftest: OK: alert login_success_after_failures (high) raised for ae SCANNER9`.
    /// No privileges needed, nothing written (a private temporary directory, removed).
    ///
    /// With `-i IF`: a live capture is opened on IF (needs CAP_NET_RAW, as `capture`), the
    /// sample's 140 frames are sent onto IF (lab addresses 10.20.0.10 and 10.20.0.30; the
    /// capture is filtered to them), and the capture must decode them and raise the alert
    /// within --timeout: the live path end to end. A `pacstap capture` running on IF (the
    /// service) sees the frames too and raises the same alert into its events file, metrics and
    /// Alertmanager: a drill for the whole chain up to Grafana. The frames go out of IF: on a
    /// SPAN destination port the switch drops them; do not run it on a port that forwards.
    ///
    /// Exit status: 0 the alert was raised; 1 it was not, or the drill could not run (the
    /// reason is said); 2 bad usage.
    #[command(after_help = "Examples:\n  \
pacstap selftest                      the pipeline, offline: decoders and detection work\n  \
sudo pacstap selftest -i eth1         the live path on the capture NIC (after install)\n  \
sudo pacstap selftest -i eth1 --timeout 30   a slower machine")]
    Selftest(SelftestArgs),
}

#[derive(clap::Args)]
pub struct SelftestArgs {
    /// Interface to drill on (the capture NIC): capture there, send the sample onto it.
    #[arg(long, short = 'i', value_name = "IF", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub interface: Option<String>,

    /// With -i: seconds to wait for the alert after the first frame is sent.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

/// `capture --help`'s description; the SIGHUP paragraph is [`pacstap::sharded::reload_help`],
/// the list the docs are checked against (tests/reload_docs.rs).
fn capture_long_about() -> String {
    format!(
        "Appliance: capture live from an interface (a SPAN / mirror port) until SIGINT/SIGTERM.\n\n\
Same decoders and detection as `replay`: the same packets give the same events. \
SIGINT/SIGTERM: open flows end (open associations become `incomplete`), learned state is \
saved, outputs are flushed, exit 0.\n\n{}\n\n\
Needs CAP_NET_RAW (root, or the capability granted by the systemd unit); pacstap does not \
change user itself. `pacstap selftest -i IF` checks the live path on IF.\n\n\
`--events FILE` is appended to (replay overwrites).",
        pacstap::sharded::reload_help()
    )
}

#[derive(Subcommand)]
pub enum EvidenceCommand {
    /// Show the evidence pcaps untouched: recompute each file's SHA-256 and compare it with
    /// the last line naming it in DIR/custody.jsonl; pcaps the log does not name are reported.
    ///
    /// Exit status: 0 every file matches; 1 a file changed, is missing or is not logged, or
    /// the log cannot be read.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// Print what a state file holds: each entity (user, AE, address) with its devices,
    /// countries, node addresses, export baseline and when it was last seen, and each
    /// destination already alerted on with when it was first seen.
    #[command(after_help = "Examples:\n  \
pacstap state show                                   the appliance's state (/var/lib/pacstap/state.json)\n  \
pacstap state show --state s.json --entity ae:EXTPACS   one entity, and whether it was alerted on")]
    Show {
        #[arg(long, value_name = "PATH", default_value = "/var/lib/pacstap/state.json")]
        state: PathBuf,
        /// Only this entity: KIND:ID with KIND user, ae or ip (`ae:PACS1`, `ip:10.0.0.5`).
        #[arg(long, value_name = "KIND:ID", value_parser = pacstap_detect::learned_view::EntityName::parse)]
        entity: Option<pacstap_detect::learned_view::EntityName>,
    },
    /// Remove an entity (and a destination of that name), or everything older than a duration,
    /// from a state file (rewritten atomically, mode 0600).
    ///
    /// `--older-than D` counts back from the newest packet time the state recorded, not from
    /// now: a state learned from an old capture ages by that capture's clock.
    #[command(after_help = "Examples:\n  \
pacstap state forget --state s.json --entity ae:EXTPACS   unknown_destination may alert on it again\n  \
pacstap state forget --state s.json --older-than 90d     drop what was not seen for 90 days")]
    #[command(group(clap::ArgGroup::new("what").required(true).args(["entity", "older_than"])))]
    Forget {
        #[arg(long, value_name = "PATH", default_value = "/var/lib/pacstap/state.json")]
        state: PathBuf,
        /// KIND:ID with KIND user, ae or ip.
        #[arg(long, value_name = "KIND:ID", value_parser = pacstap_detect::learned_view::EntityName::parse)]
        entity: Option<pacstap_detect::learned_view::EntityName>,
        /// A duration: `90d`, `2w`, `12h`.
        #[arg(long, value_name = "D", value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    pacstap::config::Dur::parse(s).map(|d| d.0)
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Event files (JSON lines, plain or gzip-compressed).
    #[arg(required = true, value_name = "EVENTS")]
    pub events: Vec<PathBuf>,

    /// The HTML file to write (the JSON goes beside it, same name with `.json`).
    #[arg(long, short = 'o', value_name = "FILE", default_value = "pacstap-report.html")]
    pub output: PathBuf,

    /// Directory for the CSV files (`<name>-ledger.csv`, `<name>-incidents.csv`); default:
    /// beside the HTML.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,

    /// Only events at or after this time (UTC: `2026-11-28`, `2026-11-28T07:00`, RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Only events before this time (UTC, same forms as --from).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,

    /// Only one entity's own events and alerts: `user:NAME`, `ae:TITLE` or `ip:ADDRESS`.
    #[arg(long, value_name = "KIND:ID")]
    pub entity: Option<String>,

    /// The site config: its `networks.internal` (besides RFC 1918) and `users.admins` are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print this study's trail (every access and transfer) on stdout; write no file.
    #[arg(long, value_name = "UID")]
    pub study: Option<String>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a TOML config and print the effective settings (defaults included), then `OK`
    /// or every error and warning with its key and line.
    ///
    /// Checks types and ranges, addresses (an IP, a CIDR range or a list; a host name is an
    /// error), the same AE listed twice with different addresses (error), and admins or
    /// service accounts that are no inventory user or AE (warning). Exit status 0 when valid
    /// (warnings allowed); 2 when not: the same config would be refused by replay and capture.
    #[command(after_help = "Examples:\n  \
pacstap config check /etc/pacstap/pacstap.toml\n      \
before a SIGHUP reload or a restart: exit status 2 if it would be refused\n  \
pacstap config check site.toml | tail -n 5\n      \
just the verdict: `# OK`, or each error and warning with its line")]
    Check {
        /// The TOML config file to check (the file given to `--config`; see
        /// deploy/pacstap.toml for every key with its default).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// pcap or pcapng files, plain or gzip-compressed (`.pcap.gz`, `.pcapng.gz`, read as they are,
    /// no temporary copy) (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP; IPv4 and IPv6).
    #[arg(required = true, value_name = "PCAP")]
    pub pcaps: Vec<PathBuf>,

    /// Where JSON-lines events go; `-` is stdout. A file is created (or emptied) with mode 0600
    /// (events carry user names); a symbolic link there is refused.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub events: String,

    /// Write only `event_type = "alert"` lines.
    #[arg(long)]
    pub alerts_only: bool,

    /// TOML config (networks, inventory, users, rule thresholds, ports); without it the
    /// built-in defaults (the checklist's seed thresholds) apply. See `pacstap config check`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where learned state (known devices, baselines, alerted destinations) persists between
    /// runs. Without it, or with `none`, every replay starts fresh and keeps nothing. See
    /// `pacstap state show` for what a state file holds.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// For each alert, write the packets of the flows behind it as a pcap in DIR (mode 0600;
    /// headers always, payload up to `[evidence] max_payload_bytes_per_flow`), named
    /// `<UTC time>_<rule>_<incident id>.pcap` and logged with its SHA-256 in DIR/custody.jsonl
    /// (`pacstap evidence verify DIR`). Alerts carry `evidence.pcap_sha256`, so the events are
    /// written after the pcaps, at the end of the replay.
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,

    /// Do not print the summary on stderr at the end (warnings still are: data loss is never quiet).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Tunnels to peel before reading TCP, for mirror traffic delivered encapsulated (cloud
    /// traffic mirroring sends VXLAN; Cisco / Arista remote SPAN sends ERSPAN in GRE).
    /// GRE, ERSPAN I/II/III, MPLS, PPPoE and the VN-Tag / E-Tag / Cisco MetaData switch tags
    /// are recognised by protocol number or EtherType and always peeled; VXLAN and Geneve only
    /// by UDP destination port: by default VXLAN 4789 and Geneve 6081. Repeatable; each SPEC is
    /// one of: `vxlan=4789,8472` (VXLAN on these ports, e.g. 8472 for Linux's historical port),
    /// `geneve=6081`, `vxlan=none`, `none` (peel nothing), `default`. Overrides the config's `[decapsulate]` table. The replay summary
    /// counts the frames of each tunnel, and warns when most frames go to an unknown UDP port.
    #[arg(long = "decapsulate", value_name = "SPEC")]
    pub decapsulate: Vec<String>,

    /// IP and TCP checksum validation: `auto` validates unless more than one in ten of the
    /// first 1000 segments are bad the way offload makes them (a capture taken on a sending
    /// host): answered by their receiver, with no good copy, in a direction that never carried
    /// a good segment (bad decoys, floods nobody answers and bad segments spoofed onto a live
    /// connection do not count), `on` always (a segment with a bad checksum never reaches the
    /// decoders), `off` never.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub checksum: pacstap_flow::ChecksumMode,

    /// Extra TCP ports to treat as DICOM even without a visible A-ASSOCIATE-RQ
    /// (mid-association pickup). Content detection works on any port regardless.
    #[arg(long = "dicom-port", value_name = "PORT")]
    pub dicom_ports: Vec<u16>,

    /// Also push each alert to a Prometheus Alertmanager at URL (`http[s]://host:port[/prefix]`,
    /// POST /api/v2/alerts; labels rule, severity, entity_kind, entity). Queued and sent in the
    /// background; never slows decoding. An https server's certificate is checked against the
    /// system CA bundle (/etc/ssl/certs).
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,

    /// Also publish every event to NATS JetStream (`nats://HOST:PORT`, several comma-separated
    /// = one cluster) on `pacstap.<host>.<event_type>`, for a central `pacstap detect`. Over
    /// the config's `[publish] servers`; the rest of `[publish]` (host, stream, TLS, queue,
    /// local_detection) applies. Queued and sent in the background; never slows decoding.
    #[arg(long, value_name = "URLS")]
    pub publish: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics (and /healthz) while replaying.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// With --metrics-listen: keep serving this many seconds after the replay ends (to scrape
    /// the final values).
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics_listen")]
    pub metrics_linger: u64,

    /// Decode flows on N worker threads (the live pipeline's threads, over the files): faster
    /// on large captures with many connections, same events. `0` = one per core left after
    /// the reading thread, at most 8.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,

    #[command(flatten)]
    pub defrag: DefragArgs,

    /// After the replay, write the HTML report of its events to FILE (as `pacstap report
    /// --config ... -o FILE EVENTS`); needs `--events PATH` (a file).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DetectArgs {
    /// Where events come from: event files (JSON lines, plain or gzip-compressed). Repeatable,
    /// or several values; files are merged in packet-time order. Or NATS JetStream servers
    /// (`nats://HOST:PORT[,nats://HOST:PORT…]`): the central detector over every sensor's
    /// published events (docs/scale.md).
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub from: Vec<String>,

    /// Where JSON-lines events go (the input's protocol events and the new alerts); `-` is
    /// stdout. A file is created (or emptied) with mode 0600; a symbolic link there is refused.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub events: String,

    /// Write only `event_type = "alert"` lines.
    #[arg(long)]
    pub alerts_only: bool,

    /// TOML config (networks, inventory, users, rule thresholds), as for replay.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Learned state file, as for replay (`none`: keep nothing).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Push each alert to a Prometheus Alertmanager at URL, as replay does.
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics while detecting.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// The reorder watermark: an event may arrive this much packet time behind the newest
    /// seen and still be applied in order (`5s`, `500ms`, `1m`).
    #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_reorder_window)]
    pub reorder_window: std::time::Duration,

    /// `--from nats://…`: the JetStream durable consumer's name (what it acked survives
    /// restarts; two detectors with the same name share the work, with different names each
    /// sees everything).
    #[arg(long, value_name = "NAME", default_value = pacstap_jetstream::consume::DEFAULT_DURABLE)]
    pub durable: String,

    /// `--from nats://…`: the stream the sensors publish to.
    #[arg(long, value_name = "NAME", default_value = pacstap_jetstream::stream::DEFAULT_STREAM)]
    pub stream: String,

    /// `--from nats://…`: checkpoint file (default: checkpoint.json beside --state; without
    /// either, none: a restart resumes at the ack floor with empty windows).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// `--from nats://…`: stop when nothing arrived for SECS once the consumer is bound (then
    /// finish, checkpoint, exit).
    /// Without it the detector runs until SIGINT / SIGTERM.
    #[arg(long, value_name = "SECS")]
    pub idle_exit: Option<u64>,

    /// Do not print the summary on stderr at the end.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--reorder-window`: humantime's forms (`500ms` too, which the config's `Dur` does not take).
fn parse_reorder_window(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// IP defragmentation limits, shared by `replay` and `capture`; each overrides its key of the
/// config's `[defrag]` table.
#[derive(clap::Args)]
pub struct DefragArgs {
    /// Memory for IP fragments waiting for the rest of their datagram, bytes (oldest datagrams
    /// evicted first when full; default: the config's `[defrag] memory`, 16 MiB). 64 KiB to
    /// 1 GiB, as in the config.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(pacstap::config::Defrag::MEMORY))]
    pub defrag_memory: Option<u64>,

    /// Seconds of packet time a fragmented datagram may take to arrive in full, IPv4 and IPv6
    /// (default: the config's `[defrag] timeout_v4` / `timeout_v6`, 30 s as Linux and 60 s as
    /// RFC 8200).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(pacstap::config::Defrag::TIMEOUT_SECS))]
    pub defrag_timeout: Option<u64>,
}

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// Interface to capture on (e.g. the NIC of the mirror port; `any` for all).
    #[arg(long, short = 'i', value_name = "IF", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub interface: String,

    /// BPF filter (tcpdump syntax), applied in the kernel, e.g. `tcp`. Overrides the config's
    /// `[capture] bpf` (where a filter with spaces belongs under systemd).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,

    /// Bytes captured per frame (262144 = whole frames; smaller values cut payload, which the
    /// decoders then see as gaps).
    #[arg(long, value_name = "N", default_value_t = pacstap_capture::DEFAULT_SNAPLEN)]
    pub snaplen: u32,

    /// Kernel capture buffer, bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = pacstap_capture::DEFAULT_BUFFER_SIZE)]
    pub buffer_size: usize,

    /// Do not put the interface in promiscuous mode (a mirror port needs it; a host capture
    /// of its own traffic does not).
    #[arg(long)]
    pub no_promisc: bool,

    /// Where JSON-lines events go (appended, mode 0600; reopened on SIGHUP); `-` is stdout
    /// (journald). A symbolic link there is refused.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub events: String,

    /// Write only `event_type = "alert"` lines.
    #[arg(long)]
    pub alerts_only: bool,

    /// TOML config (see `pacstap config check`); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where learned state persists (saved every 5 minutes and at shutdown); `none` keeps
    /// nothing.
    #[arg(long, value_name = "PATH", default_value = "/var/lib/pacstap/state.json")]
    pub state: String,

    /// Also push each alert to a Prometheus Alertmanager at URL (`http[s]://host:port[/prefix]`,
    /// POST /api/v2/alerts; labels rule, severity, entity_kind, entity). Queued and sent in the
    /// background; never slows decoding. An https server's certificate is checked against the
    /// system CA bundle (/etc/ssl/certs).
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,

    /// Also publish every event to NATS JetStream (`nats://HOST:PORT`, several comma-separated
    /// = one cluster) on `pacstap.<host>.<event_type>`, for a central `pacstap detect`. Over
    /// the config's `[publish] servers`; the rest of `[publish]` (host, stream, TLS, queue,
    /// local_detection) applies. Queued and sent in the background; never slows decoding.
    #[arg(long, value_name = "URLS")]
    pub publish: Option<String>,

    /// Prometheus metrics and /healthz at http://ADDR/; `off` disables them.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9718")]
    pub metrics_listen: String,

    /// /healthz answers 503 after this long without a frame (`90s`, `5m`, `0` = never);
    /// overrides the config's `[capture] idle_alarm` (default 5m).
    #[arg(long, value_name = "DURATION", value_parser = pacstap_detect::config::Dur::parse)]
    pub idle_alarm: Option<pacstap_detect::config::Dur>,

    /// For each alert, write the packets of the flows behind it as a pcap there (mode 0600),
    /// cut from the recent packets the workers keep per flow: the first frames with payload up
    /// to `[evidence] max_payload_bytes_per_flow`, then headers. Appended to as flows join the
    /// incident (10 s apart at first, backing off to 5 min) and at shutdown; each write is
    /// logged with the file's SHA-256 in DIR/custody.jsonl.
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,

    /// With --evidence-dir: memory for the packets kept for evidence, over all workers
    /// (bytes; least recently active flows are forgotten first).
    #[arg(long, value_name = "BYTES", default_value_t = pacstap::capture::DEFAULT_EVIDENCE_MEMORY, requires = "evidence_dir")]
    pub evidence_memory: usize,

    /// Tunnels to peel before reading TCP, for mirror traffic delivered encapsulated (cloud
    /// traffic mirroring sends VXLAN; Cisco / Arista remote SPAN sends ERSPAN in GRE).
    /// GRE, ERSPAN I/II/III, MPLS, PPPoE and the VN-Tag / E-Tag / Cisco MetaData switch tags
    /// are recognised by protocol number or EtherType and always peeled; VXLAN and Geneve only
    /// by UDP destination port: by default VXLAN 4789 and Geneve 6081. Repeatable; each SPEC is
    /// one of: `vxlan=4789,8472` (VXLAN on these ports, e.g. 8472 for Linux's historical port),
    /// `geneve=6081`, `vxlan=none`, `none` (peel nothing), `default`. Overrides the config's `[decapsulate]` table. The replay summary
    /// counts the frames of each tunnel, and warns when most frames go to an unknown UDP port.
    #[arg(long = "decapsulate", value_name = "SPEC")]
    pub decapsulate: Vec<String>,
    /// IP and TCP checksum validation: `auto` validates unless more than one in ten of the
    /// first 1000 segments are bad the way offload makes them (a capture taken on a sending
    /// host): answered by their receiver, with no good copy, in a direction that never carried
    /// a good segment (bad decoys, floods nobody answers and bad segments spoofed onto a live
    /// connection do not count), `on` always (a segment with a bad checksum never reaches the
    /// decoders), `off` never.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub checksum: pacstap_flow::ChecksumMode,

    /// Extra TCP ports to treat as DICOM even without a visible A-ASSOCIATE-RQ.
    #[arg(long = "dicom-port", value_name = "PORT")]
    pub dicom_ports: Vec<u16>,

    /// Worker threads decoding flows (each owns the flows that hash to it); `0` = one per core
    /// left after the capture thread, at most 8. One worker decodes about 5 M frames/s of
    /// DICOM traffic; the capture thread reads and shards about 2 M/s per core.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,

    /// Do not print the summary on stderr at shutdown.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    #[command(flatten)]
    pub defrag: DefragArgs,
}

/// The options that override the config's wire tables, kept for a SIGHUP reload too.
fn wire_overrides(decapsulate: &[String], defrag: &DefragArgs) -> pacstap::config::WireOverrides {
    pacstap::config::WireOverrides {
        decapsulate: decapsulate.to_vec(),
        defrag_memory: defrag.defrag_memory,
        defrag_timeout: defrag.defrag_timeout,
    }
}

impl ReplayArgs {
    pub fn wire_overrides(&self) -> pacstap::config::WireOverrides {
        wire_overrides(&self.decapsulate, &self.defrag)
    }
}

impl CaptureArgs {
    pub fn wire_overrides(&self) -> pacstap::config::WireOverrides {
        wire_overrides(&self.decapsulate, &self.defrag)
    }
}
