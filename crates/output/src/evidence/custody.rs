//! Chain of custody for evidence pcaps (NIST SP 800-86 §3.1.2: record who collected what,
//! when, and a hash that shows it unchanged since): every time a pcap is written or grown, one
//! JSON line is appended to `custody.jsonl` in the evidence directory, naming the file, its
//! SHA-256 and size as written, its first and last packet times, the incident it belongs to,
//! the sensor's host name and the wall-clock time of the write.
//!
//! The log is only ever appended to (`O_APPEND`, mode 0600, never through a symbolic link:
//! `pacstap_safefile`), so a second run into the same directory adds lines and an earlier
//! file's record stays. To verify a file: `sha256sum FILE` equals the `sha256` of its last
//! line in the log (`pacstap evidence verify DIR` does it for every file).
//!
//! No patient data: the file names carry time, rule and incident id only, and nothing of the
//! packets' payload is logged.

use pacstap_core::Timestamp;
use pacstap_safefile::{open_private, Existing, Kind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The custody log's file name in the evidence directory.
pub const CUSTODY_LOG: &str = "custody.jsonl";

/// Longest host name kept (RFC 1035 §2.3.4: 255 octets for a full domain name).
const MAX_HOST: usize = 255;

/// One line of `custody.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyEntry {
    /// The pcap's file name, relative to the evidence directory.
    pub file: String,
    /// SHA-256 of the whole file as written, lower-case hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// First and last packet time in the file, RFC 3339 UTC (absent when it holds none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_packet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_packet: Option<String>,
    pub incident_id: String,
    /// The sensor's host name (who collected it).
    pub host: String,
    /// Wall-clock time of the write, RFC 3339 UTC.
    pub written_at: String,
}

/// What [`pcap_facts`] reads from a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapFacts {
    pub sha256: String,
    pub size: u64,
    pub first_packet: Option<Timestamp>,
    pub last_packet: Option<Timestamp>,
}

/// SHA-256, size and first / last packet time of a legacy pcap as the evidence writer makes
/// it (little-endian, microseconds; `pcap_writer`). One streaming read; a record header that
/// does not fit only ends the time scan (the hash still covers every byte).
pub fn pcap_facts(path: &Path) -> io::Result<PcapFacts> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut scan = RecordScan::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        h.update(chunk);
        scan.feed(chunk);
        size += n as u64;
    }
    Ok(PcapFacts {
        sha256: hex(&h.finalize()),
        size,
        first_packet: scan.first,
        last_packet: scan.last,
    })
}

/// SHA-256 of a file, lower-case hex (what `sha256sum` prints).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    pcap_facts(path).map(|f| f.sha256)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Walks record headers across read chunks: skip the 24-byte file header, then per record a
/// 16-byte header (ts_sec, ts_usec, incl_len, orig_len) and `incl_len` bytes.
#[derive(Default)]
struct RecordScan {
    /// Bytes still to skip (file header, record data).
    skip: u64,
    started: bool,
    header: Vec<u8>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

impl RecordScan {
    fn feed(&mut self, mut chunk: &[u8]) {
        if !self.started {
            self.started = true;
            self.skip = 24;
        }
        while !chunk.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(chunk.len());
                chunk = chunk.get(n..).unwrap_or_default();
                self.skip -= n as u64;
                continue;
            }
            let need = 16 - self.header.len();
            let n = need.min(chunk.len());
            self.header.extend_from_slice(chunk.get(..n).unwrap_or_default());
            chunk = chunk.get(n..).unwrap_or_default();
            if self.header.len() == 16 {
                let word = |i: usize| {
                    self.header
                        .get(i..i + 4)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u32::from_le_bytes)
                };
                let ts = Timestamp::from_secs_nanos(u64::from(word(0)), u64::from(word(4)) * 1000);
                self.first.get_or_insert(ts);
                self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
                self.skip = u64::from(word(8));
                self.header.clear();
            }
        }
    }
}

/// The sensor's host name: the kernel's (`/proc/sys/kernel/hostname`), else `$HOSTNAME`, else
/// `unknown`. Capped and stripped of control characters.
pub fn sensor_host() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let h: String = raw.trim().chars().filter(|c| !c.is_control()).take(MAX_HOST).collect();
    if h.is_empty() {
        "unknown".into()
    } else {
        h
    }
}

/// Wall-clock now as RFC 3339 UTC (custody records when a file was written, not packet time).
pub fn wall_clock_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs(), u64::from(d.subsec_nanos())).rfc3339()
}

/// Hash `pcap` and append its line to `custody.jsonl` in `dir` (created 0600 if missing;
/// appended, never truncated; a link there is refused). Returns the entry written.
pub fn record_custody(dir: &Path, pcap: &Path, incident_id: &str, host: &str) -> io::Result<CustodyEntry> {
    let facts = pcap_facts(pcap)?;
    let entry = CustodyEntry {
        file: pcap
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: facts.sha256,
        size: facts.size,
        first_packet: facts.first_packet.map(Timestamp::rfc3339),
        last_packet: facts.last_packet.map(Timestamp::rfc3339),
        incident_id: incident_id.to_string(),
        host: host.to_string(),
        written_at: wall_clock_now(),
    };
    append_custody(dir, &entry)?;
    Ok(entry)
}

/// Append one line to `custody.jsonl` in `dir`, in a single write (O_APPEND keeps concurrent
/// lines whole).
pub fn append_custody(dir: &Path, entry: &CustodyEntry) -> io::Result<()> {
    let path = dir.join(CUSTODY_LOG);
    let mut f = open_private(&path, Existing::Append, Kind::Regular)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_data()
}

/// Read `custody.jsonl` in `dir`: each parsable line (others are counted in the second value).
pub fn read_custody(dir: &Path) -> io::Result<(Vec<CustodyEntry>, u64)> {
    let mut out = Vec::new();
    let bad = each_custody_line(dir, |e| out.push(e))?;
    Ok((out, bad))
}

/// Stream `custody.jsonl` in `dir` line by line (it grows with every cut of a live capture;
/// it is never read whole). Returns how many lines are not custody entries.
fn each_custody_line(dir: &Path, mut f: impl FnMut(CustodyEntry)) -> io::Result<u64> {
    use std::io::BufRead;
    let r = io::BufReader::new(File::open(dir.join(CUSTODY_LOG))?);
    let mut bad = 0;
    for line in r.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(e) => f(e),
            Err(_) => bad += 1,
        }
    }
    Ok(bad)
}

/// How one evidence file compares with the last custody line naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its SHA-256 is the logged one.
    Intact,
    /// Its SHA-256 differs (the file changed since it was logged).
    Changed { logged: String, now: String },
    /// Logged but cannot be read (gone, or the log names no plain file in the directory).
    Unreadable(String),
    /// A pcap in the directory that no custody line names.
    NotLogged,
}

/// Check every file the custody log of `dir` names (against its last line: live files grow,
/// one line per version) and every `.pcap` in `dir` the log does not name. Sorted by file.
/// The second value counts log lines that are not custody entries.
pub fn verify_custody(dir: &Path) -> io::Result<(Vec<(String, Verdict)>, u64)> {
    // The last line per file: memory bounded by the files, not by the log's length.
    let mut last: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let bad = each_custody_line(dir, |e| {
        last.insert(e.file, e.sha256);
    })?;
    let mut out = Vec::new();
    for (file, logged) in &last {
        // Only plain names in `dir`: a log line cannot make this read elsewhere.
        let plain = !file.is_empty() && !file.contains('/') && file != "." && file != "..";
        let verdict = if !plain {
            Verdict::Unreadable("not a file name in the evidence directory".into())
        } else {
            match sha256_file(&dir.join(file)) {
                Ok(now) if now == *logged => Verdict::Intact,
                Ok(now) => Verdict::Changed {
                    logged: logged.clone(),
                    now,
                },
                Err(e) => Verdict::Unreadable(e.to_string()),
            }
        };
        out.push((file.clone(), verdict));
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pcap") && !last.contains_key(&name) {
            out.push((name, Verdict::NotLogged));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::pcap_writer::{write_pcap_header, write_record};
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pacstap-custody-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn pcap(path: &Path, times: &[i64]) {
        let mut v = Vec::new();
        write_pcap_header(&mut v, 1).unwrap();
        for t in times {
            // Records of different lengths, so the scan must skip the data right.
            write_record(&mut v, Timestamp(*t), &vec![0xaa; (*t % 97) as usize + 60], 1500).unwrap();
        }
        std::fs::write(path, v).unwrap();
    }

    #[test]
    fn facts_are_the_files_hash_size_and_packet_times() {
        let d = tempdir("facts");
        let p = d.join("x.pcap");
        let times = [
            1_795_773_601_123_456_000,
            1_795_773_602_000_001_000,
            1_795_773_700_500_000_000,
        ];
        pcap(&p, &times);
        let f = pcap_facts(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(f.size, bytes.len() as u64);
        assert_eq!(f.sha256, hex(&Sha256::digest(&bytes)));
        assert_eq!(f.first_packet.unwrap().rfc3339(), "2026-11-27T10:00:01.123456Z");
        assert_eq!(f.last_packet.unwrap().rfc3339(), "2026-11-27T10:01:40.500000Z");
        // The well-known digest of nothing, as `sha256sum` prints it.
        let empty = d.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            sha256_file(&empty).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn the_log_is_appended_private_and_never_through_a_link() {
        let d = tempdir("log");
        let p = d.join("x.pcap");
        pcap(&p, &[1_000_000_000]);
        let a = record_custody(&d, &p, "0123456789abcdef", "sensor1").unwrap();
        pcap(&p, &[1_000_000_000, 2_000_000_000]);
        let b = record_custody(&d, &p, "0123456789abcdef", "sensor1").unwrap();
        let (lines, bad) = read_custody(&d).unwrap();
        assert_eq!((lines, bad), (vec![a.clone(), b.clone()], 0));
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.file, "x.pcap");
        assert_eq!(b.last_packet.as_deref(), Some("1970-01-01T00:00:02.000000Z"));
        let mode = std::fs::metadata(d.join(CUSTODY_LOG)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A link planted at the log's name is refused, its target untouched.
        let other = tempdir("log-link");
        let victim = other.join("victim");
        std::fs::write(&victim, b"").unwrap();
        std::os::unix::fs::symlink(&victim, other.join(CUSTODY_LOG)).unwrap();
        let e = record_custody(&other, &p, "0123456789abcdef", "sensor1").unwrap_err();
        assert!(e.to_string().contains(CUSTODY_LOG), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"");
        std::fs::remove_dir_all(&d).ok();
        std::fs::remove_dir_all(&other).ok();
    }

    #[test]
    fn verify_names_intact_changed_missing_and_unlogged_files() {
        let d = tempdir("verify");
        for n in ["a.pcap", "b.pcap", "c.pcap"] {
            pcap(&d.join(n), &[1_000_000_000]);
            record_custody(&d, &d.join(n), "0123456789abcdef", "sensor1").unwrap();
        }
        // a grows (a second line, the one that counts), b is changed after, c is removed.
        pcap(&d.join("a.pcap"), &[1_000_000_000, 2_000_000_000]);
        record_custody(&d, &d.join("a.pcap"), "0123456789abcdef", "sensor1").unwrap();
        pcap(&d.join("b.pcap"), &[3_000_000_000]);
        std::fs::remove_file(d.join("c.pcap")).unwrap();
        pcap(&d.join("d.pcap"), &[1_000_000_000]);
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join(CUSTODY_LOG))
            .unwrap();
        log.write_all(b"not json\n").unwrap();
        let (v, bad) = verify_custody(&d).unwrap();
        assert_eq!(bad, 1);
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.pcap", "b.pcap", "c.pcap", "d.pcap"]);
        assert_eq!(v[0].1, Verdict::Intact);
        assert!(matches!(&v[1].1, Verdict::Changed { logged, now } if logged != now));
        assert!(matches!(v[2].1, Verdict::Unreadable(_)));
        assert_eq!(v[3].1, Verdict::NotLogged);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_truncated_record_header_ends_the_time_scan_without_panic() {
        let d = tempdir("trunc");
        let p = d.join("t.pcap");
        let mut v = Vec::new();
        write_pcap_header(&mut v, 1).unwrap();
        write_record(&mut v, Timestamp(5_000_000_000), &[1, 2, 3], 3).unwrap();
        v.extend_from_slice(&[0xff; 7]);
        std::fs::write(&p, &v).unwrap();
        let f = pcap_facts(&p).unwrap();
        assert_eq!(f.size, v.len() as u64);
        assert_eq!(f.last_packet, Some(Timestamp(5_000_000_000)));
        std::fs::remove_dir_all(&d).ok();
    }
}
