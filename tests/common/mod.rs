//! Shared helpers of the integration tests: replay a bundled sample through the real pipeline
//! and look at its events as the JSON users get.

#![allow(dead_code)]

use pacstap_output::EveRecord;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub const UID_ROOT: &str = "1.2.826.0.1.3680043.10.1234";
pub const STUDY_CT: &str = "1.2.826.0.1.3680043.10.1234.1.1";
pub const STUDY_MR: &str = "1.2.826.0.1.3680043.10.1234.1.2";
pub const STUDY_CR: &str = "1.2.826.0.1.3680043.10.1234.1.3";

pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("pcap-samples")
        .join(name)
}

/// Replays sample files and returns the report and every event as JSON (exactly the lines
/// `pacstap replay` would write).
pub fn replay(names: &[&str]) -> (pacstap::ReplayReport, Vec<Value>) {
    let paths = names.iter().map(|n| sample(n)).collect();
    let report = pacstap::replay(pacstap::ReplayOptions::new(paths), true).expect("replay");
    let events = report
        .events
        .iter()
        .map(|e| serde_json::to_value(EveRecord::new(e)).expect("json"))
        .collect();
    (report, events)
}

pub fn associations(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["dicom"]["type"] == "association")
        .map(|e| &e["dicom"])
        .collect()
}

pub fn commands<'a>(events: &'a [Value], command: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["dicom"]["type"] == "command" && e["dicom"]["command"] == command)
        .map(|e| &e["dicom"])
        .collect()
}

pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A fresh directory under the system temp dir, named by the test's tag and process id, that
/// is removed when dropped: a passing run leaves nothing behind (CI machines run the suite many
/// times), a failing one keeps it and says where, so the captures and events it holds can be
/// looked at.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("pacstap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create the scratch directory");
        Scratch(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for Scratch {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

/// Run-time builders of large attacked captures (tests/hostile.rs).
pub mod pcapgen;

/// Replays through the real binary and the facts of its events (tests/hostile.rs).
pub mod eve_run;

/// Pcap files as a live feed (what `capture` gets from libpcap), for the sharded pipeline.
pub struct FilesAsLive(pub pacstap_capture::MergedSource);

impl pacstap::live::FrameFeed for FilesAsLive {
    fn next_frame(&mut self) -> pacstap::live::Next<'_> {
        use pacstap_capture::PacketSource;
        match self.0.next_frame() {
            Some(f) => pacstap::live::Next::Frame(f),
            None => pacstap::live::Next::End,
        }
    }
    fn stats(&mut self) -> pacstap_capture::LiveStats {
        pacstap_capture::LiveStats::default()
    }
    fn lossless(&self) -> bool {
        true
    }
}

/// tshark's DICOM lines of a capture (its DICOM ports 4242 and 11112, out-of-order segments
/// reassembled as pacstap does) with the given `-T fields` options (`-e`, `-E` …), as text;
/// `None` when tshark is not installed.
pub fn tshark_dicom_fields(path: &std::path::Path, fields: &[&str]) -> Option<String> {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-o", "tcp.reassemble_out_of_order:TRUE", "-r"])
        .arg(path)
        .args([
            "-d",
            "tcp.port==4242,dicom",
            "-d",
            "tcp.port==11112,dicom",
            "-Y",
            "dicom",
            "-T",
            "fields",
        ])
        .args(fields)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
