//! `pacstap selftest` (issue 14, the fire drill): offline, the bundled sample must raise its
//! alert; with `-i IF`, the live path on a veth pair (one end in a network namespace this test
//! creates, deleted by a drop guard) must decode the frames the drill sends and raise it too.
//! The live test needs root and `ip`; it is skipped with a message otherwise.

use std::process::{Command, Output};

fn pacstap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pacstap"))
        .args(args)
        .output()
        .expect("running pacstap")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const OK_LINE: &str = "selftest: OK: alert login_success_after_failures (high) for ae SCANNER9 raised";

#[test]
fn the_offline_drill_says_ok_and_exits_0() {
    let out = pacstap(&["selftest"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with(OK_LINE), "{stdout}");
    assert!(stdout.contains("140 frames replayed"), "{stdout}");
    // It says what it did, on stderr.
    assert!(
        stderr.contains("pcap-samples/scenarios/login-failures-dicom.pcap"),
        "{stderr}"
    );
}

#[test]
fn the_help_explains_the_drill_with_examples() {
    let out = pacstap(&["selftest", "--help"]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    for want in [
        "Examples:",
        "pacstap selftest -i eth1",
        "login_success_after_failures",
        "--timeout",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    // And the top-level help names it.
    assert!(text(&pacstap(&["--help"]).stdout).contains("selftest"));
}

#[test]
fn bad_usage_is_exit_2() {
    assert_eq!(pacstap(&["selftest", "-i", ""]).status.code(), Some(2));
    assert_eq!(pacstap(&["selftest", "--timeout", "0"]).status.code(), Some(2));
}

#[test]
fn an_interface_that_cannot_be_opened_fails_with_the_reason() {
    let out = pacstap(&["selftest", "-i", "pacstapnoif0"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("selftest: FAILED") && stderr.contains("pacstapnoif0"),
        "{stderr}"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", text(&out.stderr)))
    }
}

/// A veth pair: the drill's end in this namespace, its peer (up, so the link has carrier) in
/// a namespace of its own. Both deleted on drop.
struct Veth {
    ns: String,
    local: String,
}

impl Veth {
    fn create() -> Result<Veth, String> {
        let id = std::process::id() % 100_000;
        let v = Veth {
            ns: format!("pacstap-selftest-{id}"),
            local: format!("ptst{id}"),
        };
        let peer = format!("ptsp{id}");
        // Leftovers of a killed earlier run with the same pid.
        let _ = Command::new("ip").args(["netns", "del", &v.ns]).output();
        let _ = Command::new("ip").args(["link", "del", &v.local]).output();
        run(Command::new("ip").args(["netns", "add", &v.ns]))?;
        run(Command::new("ip").args([
            "link", "add", &v.local, "type", "veth", "peer", "name", &peer, "netns", &v.ns,
        ]))?;
        run(Command::new("ip").args(["link", "set", &v.local, "up"]))?;
        run(Command::new("ip").args(["-n", &v.ns, "link", "set", &peer, "up"]))?;
        Ok(v)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip").args(["link", "del", &self.local]).output();
    }
}

#[test]
fn the_live_drill_on_a_veth_raises_the_alert() {
    if !is_root() || !on_path("ip") {
        eprintln!(
            "SKIPPED the_live_drill_on_a_veth_raises_the_alert: needs root and ip (root: {})",
            is_root()
        );
        return;
    }
    let veth = Veth::create().expect("veth pair");
    let out = pacstap(&["selftest", "-i", &veth.local, "--timeout", "60"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with(OK_LINE), "{stdout}");
    assert!(
        stdout.contains(&format!("140 frames sent on {}, 140 captured", veth.local)),
        "{stdout}"
    );
    assert!(stderr.contains(&format!("capturing on {}", veth.local)), "{stderr}");
}
