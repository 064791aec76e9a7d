//! Learned state survives restarts; a corrupt state file is set aside and reported.

mod common;
use common::*;
use pacstap_detect::{Config, DetectError, Detector, LearnedState, StateStore, STATE_VERSION};
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pacstap-detect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WEB: &str = "10.20.0.10:8042";

fn run_with(cfg: &Config, state: Option<LearnedState>) -> Run {
    Run {
        det: Detector::new(cfg, state).expect("detector"),
        out: Vec::new(),
    }
}

#[test]
fn devices_survive_a_restart() {
    let dir = TempDir::new("restart");
    let path = dir.0.join("state.json");
    let cfg = config(LAB);

    // Day 1: rad4 is learned on its workstation.
    let mut day1 = Run::new(&cfg);
    day1.feed(login(0, flow("10.20.30.50:1", WEB), 200, "rad4"));
    day1.assert_silent("first sighting");
    let (store, loaded, warning) = StateStore::open(&path).expect("open");
    assert!(loaded.is_none() && warning.is_none());
    store.save(&day1.det.learned_state()).expect("save");
    assert!(!dir.0.join("state.json.tmp").exists(), "no temporary file left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Day 2, after a restart: a new device for the known user fires.
    let (_store, loaded, warning) = StateStore::open(&path).expect("reopen");
    assert!(warning.is_none());
    let loaded = loaded.expect("state");
    assert_eq!(loaded, day1.det.learned_state());
    let mut day2 = run_with(&cfg, Some(loaded));
    day2.feed(login(DAY, flow("10.20.30.50:1", WEB), 200, "rad4"));
    day2.assert_silent("known device");
    day2.feed(login(DAY + MIN, flow("10.20.30.99:1", WEB), 200, "rad4"));
    assert_eq!(day2.fired(), vec![fired("new_device", "user", "rad4", 1)]);

    // Without the state the same day is silent: rad4 would be a never-seen user.
    let mut fresh = Run::new(&cfg);
    fresh.feed(login(DAY + MIN, flow("10.20.30.99:1", WEB), 200, "rad4"));
    fresh.assert_silent("fresh state");
}

#[test]
fn baselines_and_destinations_survive_a_restart() {
    let dir = TempDir::new("baseline");
    let path = dir.0.join("state.json");
    let cfg = config(LAB);
    let f = flow("10.20.30.31:1", WEB);
    let mut weeks = Run::new(&cfg);
    for week in 0..3 {
        weeks.feed(wado(week * 7 * DAY, f, Some("rad1"), &study(1000 + week)));
    }
    // An unknown destination, alerted once.
    let m = flow("10.20.30.31:2", "10.20.0.10:4242");
    weeks.feed(cmove(HOUR, m, "WS1", "PACS1", "EVILAE", &[&study(1)]));
    weeks.feed(assoc(HOUR + SEC, m, "WS1", "PACS1", true, None));
    assert_eq!(weeks.fired(), vec![fired("unknown_destination", "ae", "EVILAE", 1)]);
    let (store, _, _) = StateStore::open(&path).expect("open");
    store.save(&weeks.det.learned_state()).expect("save");

    let (_, loaded, _) = StateStore::open(&path).expect("reopen");
    let mut burst = run_with(&cfg, loaded);
    for i in 0..10 {
        burst.feed(wado(21 * DAY + i * 5 * MIN, f, Some("rad1"), &study(i)));
    }
    let m = flow("10.20.30.31:3", "10.20.0.10:4242");
    burst.feed(cmove(21 * DAY + HOUR, m, "WS1", "PACS1", "EVILAE", &[&study(2)]));
    burst.feed(assoc(21 * DAY + HOUR + SEC, m, "WS1", "PACS1", true, None));
    let rules: Vec<String> = burst.fired().into_iter().map(|f| f.0).collect();
    assert_eq!(
        rules,
        vec!["export_above_baseline"],
        "baseline kept; EVILAE already reported"
    );
}

#[test]
fn corrupt_state_is_set_aside_and_reported() {
    let dir = TempDir::new("corrupt");
    let path = dir.0.join("state.json");
    std::fs::write(&path, b"{\"version\": 1, \"entities\": [ truncated").expect("write");
    let (store, loaded, warning) = StateStore::open(&path).expect("open");
    assert!(loaded.is_none());
    let warning = warning.expect("a corrupt file is reported");
    assert!(warning.contains("state.json.corrupt-1"), "{warning}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read(dir.0.join("state.json.corrupt-1")).expect("kept"),
        b"{\"version\": 1, \"entities\": [ truncated"
    );
    // The store still works, and a second corrupt file does not overwrite the first.
    store.save(&LearnedState::default()).expect("save");
    std::fs::write(&path, b"\x00\x01garbage").expect("write");
    let (_, loaded, warning) = StateStore::open(&path).expect("open");
    assert!(loaded.is_none());
    assert!(warning.expect("warning").contains("corrupt-2"));
    assert!(dir.0.join("state.json.corrupt-1").exists());
}

#[test]
fn newer_state_versions_are_refused_untouched() {
    let dir = TempDir::new("version");
    let path = dir.0.join("state.json");
    let body = format!("{{\"version\": {}, \"entities\": []}}", STATE_VERSION + 1);
    std::fs::write(&path, &body).expect("write");
    let err = StateStore::open(&path).expect_err("newer version");
    assert!(matches!(err, DetectError::StateVersion { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), body);
    let st = LearnedState {
        version: STATE_VERSION + 1,
        ..LearnedState::default()
    };
    assert!(Detector::new(&Config::default(), Some(st)).is_err());
}

#[test]
fn stale_temporary_file_is_ignored() {
    let dir = TempDir::new("tmp");
    let path = dir.0.join("state.json");
    let (store, _, _) = StateStore::open(&path).expect("open");
    store.save(&LearnedState::default()).expect("save");
    // A crash mid-save leaves a partial temporary file: the state is the renamed one.
    std::fs::write(dir.0.join("state.json.tmp"), b"{partial").expect("write");
    let (_, loaded, warning) = StateStore::open(&path).expect("open");
    assert_eq!(loaded, Some(LearnedState::default()));
    assert!(warning.is_none());
    assert!(!dir.0.join("state.json.tmp").exists());
}

#[test]
fn state_is_bounded() {
    let cfg = config("[detect]\nmax_learned_entities = 100\n");
    let mut r = Run::new(&cfg);
    for i in 0..1000 {
        r.feed(login(i * SEC, flow("10.20.30.31:1", WEB), 200, &format!("u{i}")));
    }
    let st = r.det.learned_state();
    assert!(st.entities.len() <= 100, "{}", st.entities.len());
    assert!(r.det.stats().learned_evicted >= 900);
}
