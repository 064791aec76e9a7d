//! `pacstap selftest`: the documented fire drill. A small real capture with a known alert is
//! built into the binary; the drill runs it through the pipeline and says whether the alert came
//! out, so an operator can tell "pacstap works" from "nothing happened on the network".
//!
//! - Without an interface: the sample is replayed (the `replay` code path: files → decoders →
//!   detection) under a built-in config; no privileges, nothing written outside a private
//!   temporary directory that is removed afterwards.
//! - With `-i IF`: a live capture is opened on IF (as `capture` opens it: libpcap, the sharded
//!   pipeline), the sample's frames are written onto IF through a second libpcap handle
//!   (`pcap_sendpacket`), and the capture must decode them and raise the alert within
//!   `--timeout`. The kernel hands the capture a copy of every frame sent on the interface, so
//!   this checks the live path end to end (ring, decoders, detection) without a second host.
//!   A running `pacstap capture` on the same interface sees the frames too and raises the same
//!   alert into its events file, metrics and Alertmanager: the drill for the whole chain.
//!
//! The sample is `pcap-samples/scenarios/login-failures-dicom.pcap` (140 frames, 15 KB, made by
//! `scripts/make-scenarios` in a lab): the calling AE `SCANNER9` is rejected 12 times, then
//! accepted, which is `login_success_after_failures` (severity high) for ae `SCANNER9`. It carries
//! lab addresses (10.20.0.10, 10.20.0.30) and no patient data.

use anyhow::{anyhow, Context, Result};
use pacstap::config::Config;
use pacstap_capture::{LiveConfig, PacketSource, PcapFileSource};
use pacstap_core::EventBody;
use pacstap_output::term::{error_chain, for_terminal, say};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::SelftestArgs;

/// The bundled capture (see the module docs for what it holds).
pub const SAMPLE: &[u8] = include_bytes!("../../../pcap-samples/scenarios/login-failures-dicom.pcap");
/// Where [`SAMPLE`] comes from in the repository (named in the drill's output).
pub const SAMPLE_NAME: &str = "pcap-samples/scenarios/login-failures-dicom.pcap";
/// The rule the sample must raise, its severity and its entity.
pub const EXPECTED_RULE: &str = "login_success_after_failures";
pub const EXPECTED_SEVERITY: &str = "high";
pub const EXPECTED_ENTITY: (&str, &str) = ("ae", "SCANNER9");
/// The sample's two hosts: the live capture is filtered to them, so real traffic on a busy
/// mirror port is neither decoded nor mistaken for the drill.
pub const SAMPLE_HOSTS: [&str; 2] = ["10.20.0.10", "10.20.0.30"];

/// The config the drill runs under, written out so the drill does not depend on defaults that
/// may change: the login thresholds of `pcap-samples/scenarios/pacstap.toml` (CONTRACT §3), the
/// sample's DICOM port 4242, and no learning period (the sample is the only traffic).
pub const CONFIG: &str = r#"
[rules.login_failures_user]
threshold = 8
window = "10m"

[rules.login_failures_source]
threshold = 20
window = "10m"

[rules.login_success_after_failures]
threshold = 5
window = "10m"

[detect]
learning_period = "0"

[ports]
dicom = [104, 4242, 11112]
"#;

/// What a drill found: the alerts of the expected rule, and the numbers behind them.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `(rule, severity, entity kind, entity id)` of every alert line (first alerts and updates).
    pub alerts: Vec<(String, String, String, String)>,
    pub frames: u64,
    pub events: u64,
}

impl Outcome {
    /// Whether the expected alert is among those raised.
    pub fn passed(&self) -> bool {
        self.alerts.iter().any(|(rule, sev, kind, id)| {
            rule == EXPECTED_RULE && sev == EXPECTED_SEVERITY && (kind.as_str(), id.as_str()) == EXPECTED_ENTITY
        })
    }
}

/// A private temporary directory (mode 0700), removed on drop, pass or fail.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("pacstap-selftest-{}-{nanos}", std::process::id()));
        // create_private_dir refuses an existing path that is not ours (a planted link).
        pacstap_safefile::create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The drill's config ([`CONFIG`]).
pub fn config() -> Result<Config> {
    Config::from_toml_str(CONFIG).map_err(|e| anyhow!("the built-in selftest config: {e}"))
}

/// Writes [`SAMPLE`] into `dir` (mode 0600) and returns its path.
fn write_sample(dir: &Path) -> Result<PathBuf> {
    use std::io::Write;
    let path = dir.join("selftest.pcap");
    let mut f = pacstap_safefile::open_private(
        &path,
        pacstap_safefile::Existing::Truncate,
        pacstap_safefile::Kind::Regular,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(SAMPLE)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The drill without an interface: [`SAMPLE`] through `replay`'s pipeline.
pub fn offline() -> Result<Outcome> {
    let tmp = TempDir::new()?;
    let pcap = write_sample(&tmp.0)?;
    let opts = pacstap::ReplayOptions::new(vec![pcap]).with_config(config()?);
    let report = pacstap::replay(opts, true)?;
    let alerts = report
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Alert(a) => Some((
                a.rule.clone(),
                a.severity.as_str().to_string(),
                a.entity.kind.clone(),
                a.entity.id.clone(),
            )),
            _ => None,
        })
        .collect();
    Ok(Outcome {
        alerts,
        frames: report.frames,
        // Collected, not written anywhere.
        events: report.events.len() as u64,
    })
}

/// The alert lines of an events file (JSON lines; other lines are skipped).
fn alerts_in(events: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event_type").and_then(|t| t.as_str()) == Some("alert"))
        .filter_map(|v| {
            let a = v.get("alert")?;
            let s = |x: Option<&serde_json::Value>| x.and_then(|x| x.as_str()).unwrap_or("").to_string();
            let entity = a.get("entity");
            Some((
                s(a.get("rule")),
                s(a.get("severity_name")),
                s(entity.and_then(|e| e.get("kind"))),
                s(entity.and_then(|e| e.get("id"))),
            ))
        })
        .collect()
}

/// What the live drill did, besides the [`Outcome`].
#[derive(Debug, Default)]
pub struct LiveDrill {
    pub outcome: Outcome,
    pub sent: u64,
    pub send_errors: u64,
    pub first_send_error: Option<String>,
    /// From the first frame sent to the alert seen in the events file.
    pub alert_after: Option<Duration>,
}

/// The pause between two frames sent: 140 frames take a fifth of a second, far below what could
/// overflow a NIC queue or a veth backlog (`net.core.netdev_max_backlog`, 1000 frames).
const SEND_GAP: Duration = Duration::from_millis(1);

/// The drill on `interface`: open a capture there, send [`SAMPLE`]'s frames onto it, and wait up
/// to `timeout` for the alert. `Err` is an interface that cannot be opened or a run that failed.
pub fn live(interface: &str, timeout: Duration) -> Result<LiveDrill> {
    let tmp = TempDir::new()?;
    let pcap = write_sample(&tmp.0)?;
    let events = tmp.0.join("events.jsonl");
    let mut live = LiveConfig::new(interface);
    // Only the drill's frames: what this process sends is seen on the way out, so no
    // promiscuous mode is needed, and the filter keeps real traffic out of the drill.
    live.promiscuous = false;
    live.buffer_size = 8 << 20;
    live.bpf = Some(format!("tcp and host {} and host {}", SAMPLE_HOSTS[0], SAMPLE_HOSTS[1]));
    let source = pacstap::capture::open_capture(&live)?;
    let mut opts = pacstap::CaptureOptions::new(live).with_config(config()?);
    opts.events = pacstap::EventsTarget::File(events.clone());
    opts.workers = 1;
    let stop = Arc::clone(&opts.stop);
    let run = std::thread::Builder::new()
        .name("selftest-capture".into())
        .spawn(move || pacstap::capture(opts, source))
        .context("starting the capture thread")?;
    // Stop the capture thread however this function ends.
    struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(Arc::clone(&stop));

    let mut drill = LiveDrill::default();
    let started = Instant::now();
    send_sample(interface, &pcap, &mut drill)?;
    // Alerts are written as detection reaches them; wait for the expected one, then stop (which
    // also ends the open flows and flushes the events file).
    let deadline = started + timeout;
    while Instant::now() < deadline {
        let seen = alerts_in(&events);
        if seen.iter().any(|(rule, ..)| rule == EXPECTED_RULE) {
            drill.alert_after = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    let report = run.join().map_err(|_| anyhow!("the capture thread panicked"))??;
    drill.outcome = Outcome {
        alerts: alerts_in(&events),
        frames: report.live.frames,
        events: report.pipeline.events_written,
    };
    if let Some(e) = report.capture_error {
        return Err(anyhow!("capture stopped: {e}"));
    }
    Ok(drill)
}

/// Writes every frame of the sample onto `interface` through its own libpcap handle.
fn send_sample(interface: &str, pcap: &Path, drill: &mut LiveDrill) -> Result<()> {
    let mut out = pcap::Capture::from_device(interface)
        .and_then(|c| c.snaplen(64).buffer_size(1 << 16).open())
        .with_context(|| format!("opening {interface} for sending"))?;
    let mut src = PcapFileSource::open(pcap).with_context(|| format!("reading {}", pcap.display()))?;
    while let Some(frame) = src.next_frame() {
        match out.sendpacket(frame.data) {
            Ok(()) => drill.sent += 1,
            Err(e) => {
                drill.send_errors += 1;
                drill.first_send_error.get_or_insert_with(|| e.to_string());
            }
        }
        std::thread::sleep(SEND_GAP);
    }
    Ok(())
}

fn expected() -> String {
    format!(
        "alert {EXPECTED_RULE} ({EXPECTED_SEVERITY}) for {} {}",
        EXPECTED_ENTITY.0, EXPECTED_ENTITY.1
    )
}

/// `pacstap selftest [-i IF]`. Exit status 0: the alert came out; 1: it did not, or the drill
/// could not run (the reason said); 2: bad usage (an interface that does not exist, a bad
/// filter).
pub fn run_selftest(args: SelftestArgs) -> Result<ExitCode> {
    let Some(interface) = args.interface else {
        say(&format!(
            "selftest: replaying the bundled sample {SAMPLE_NAME} ({} bytes) through the pipeline",
            SAMPLE.len()
        ));
        let outcome = offline()?;
        return Ok(verdict(&outcome, &format!("{} frames replayed", outcome.frames)));
    };
    say(&format!(
        "selftest: capturing on {interface} and sending the bundled sample {SAMPLE_NAME} onto it \
         (frames between {} and {}; a pacstap capture running on {interface} sees them too)",
        SAMPLE_HOSTS[0], SAMPLE_HOSTS[1]
    ));
    let timeout = Duration::from_secs(args.timeout);
    let drill = match live(&interface, timeout) {
        Ok(d) => d,
        Err(e) => {
            let usage = e.downcast_ref::<pacstap_capture::LiveError>().is_some_and(|l| {
                matches!(
                    l,
                    pacstap_capture::LiveError::Filter { .. } | pacstap_capture::LiveError::Setting(_)
                )
            });
            say(&format!("selftest: FAILED: {}", error_chain(e.as_ref())));
            return Ok(ExitCode::from(if usage { 2 } else { 1 }));
        }
    };
    let mut how = format!(
        "{} frames sent on {interface}, {} captured",
        drill.sent, drill.outcome.frames
    );
    if drill.send_errors > 0 {
        how.push_str(&format!(
            ", {} not sent ({})",
            drill.send_errors,
            drill.first_send_error.as_deref().unwrap_or("?")
        ));
    }
    if let Some(after) = drill.alert_after {
        how.push_str(&format!(", alert after {:.1} s", after.as_secs_f64()));
    } else if drill.outcome.passed() {
        how.push_str(", alert at shutdown");
    }
    if !drill.outcome.passed() && drill.outcome.frames == 0 {
        how.push_str(&format!(
            "; nothing came back from {interface}: is it up (ip link set {interface} up)?"
        ));
    }
    Ok(verdict(&drill.outcome, &how))
}

/// Prints the one-line verdict on stdout and returns the exit status.
fn verdict(outcome: &Outcome, how: &str) -> ExitCode {
    if outcome.passed() {
        println!("selftest: OK: {} raised ({how})", expected());
        ExitCode::SUCCESS
    } else {
        let raised: Vec<String> = outcome.alerts.iter().map(|(r, s, ..)| format!("{r} ({s})")).collect();
        println!(
            "selftest: FAILED: no {} ({how}; {} events; alerts raised: {})",
            expected(),
            outcome.events,
            if raised.is_empty() {
                "none".to_string()
            } else {
                for_terminal(&raised.join(", ")).into_owned()
            }
        );
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_config_loads() {
        let c = config().unwrap();
        assert_eq!(c.rules.login_success_after_failures.threshold, 5);
        assert!(c.ports.dicom.contains(&4242));
    }

    /// The capture filter of the live drill lets every frame of the sample through: each is
    /// untagged Ethernet + IPv4 between the two hosts of [`SAMPLE_HOSTS`].
    #[test]
    fn every_sample_frame_is_between_the_filtered_hosts() {
        let tmp = TempDir::new().unwrap();
        let pcap = write_sample(&tmp.0).unwrap();
        let mut src = PcapFileSource::open(&pcap).unwrap();
        let hosts: Vec<std::net::Ipv4Addr> = SAMPLE_HOSTS.iter().map(|h| h.parse().unwrap()).collect();
        let mut n = 0;
        while let Some(f) = src.next_frame() {
            assert_eq!(f.linktype, 1);
            assert_eq!(&f.data[12..14], &[0x08, 0x00], "IPv4, no VLAN tag");
            assert_eq!(f.data[23], 6, "TCP");
            let ip = |at: usize| std::net::Ipv4Addr::new(f.data[at], f.data[at + 1], f.data[at + 2], f.data[at + 3]);
            assert!(hosts.contains(&ip(26)) && hosts.contains(&ip(30)));
            assert_ne!(ip(26), ip(30));
            // No frame above a standard MTU: sendable on any Ethernet interface.
            assert!(f.data.len() <= 1514, "{}", f.data.len());
            n += 1;
        }
        assert_eq!(n, 140);
    }

    #[test]
    fn the_offline_drill_raises_the_expected_alert() {
        let outcome = offline().unwrap();
        assert!(outcome.passed(), "{outcome:?}");
        assert_eq!(outcome.frames, 140);
        // The sample's other alert, at the lower severity; nothing else.
        let mut rules: Vec<&str> = outcome.alerts.iter().map(|a| a.0.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        assert_eq!(rules, ["login_failures_user", EXPECTED_RULE]);
    }

    #[test]
    fn an_outcome_without_the_alert_fails() {
        let mut o = Outcome::default();
        assert!(!o.passed());
        o.alerts
            .push((EXPECTED_RULE.into(), "warning".into(), "ae".into(), "SCANNER9".into()));
        assert!(!o.passed(), "wrong severity");
        o.alerts
            .push((EXPECTED_RULE.into(), "high".into(), "ae".into(), "SCANNER9".into()));
        assert!(o.passed());
    }
}
