//! Replay's evidence seal (`replay --evidence-dir`): each written pcap is hashed and logged in
//! the directory's custody log (`pacstap_output::record_custody`), and each alert naming a
//! pcap gets its `evidence.pcap_sha256` (CONTRACT §2).
//!
//! Replay writes the pcaps in a second pass over the input, after every alert was emitted, so
//! the hash is not known when an alert is. With `--evidence-dir`, the events therefore go to a
//! spool file in the evidence directory (private, like it: the events hold what the pcaps do)
//! and are copied to the real output after the second pass, with the hash added to each
//! alert that names a pcap. Memory stays bounded (one line at a time); the events arrive at
//! the end of the replay instead of during it. An incident's updates all name the same file
//! (replay writes it once, with every flow of the incident), so they all carry its one hash.
//! Live capture cuts and grows its files after the alert is written: there the custody log
//! holds each version's hash (`crate::evidence_cut`).

use crate::replay::ReplayOptions;
use crate::report::ReplayReport;
use anyhow::{Context, Result};
use pacstap_core::EventBody;
use pacstap_output::EvidencePlan;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

/// Events held back until the evidence is hashed.
pub(crate) struct EventsSpool {
    real: Box<dyn Write>,
    path: PathBuf,
}

/// With `--evidence-dir` and an events output: send the events to a spool file instead.
pub(crate) fn spool_events(opts: &mut ReplayOptions) -> Result<Option<EventsSpool>> {
    let (Some(dir), true) = (opts.evidence_dir.as_deref(), opts.events.is_some()) else {
        return Ok(None);
    };
    pacstap_safefile::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (file, path) = pacstap_safefile::create_temp(dir, "events-spool")
        .with_context(|| format!("creating the events spool in {}", dir.display()))?;
    let real = opts.events.replace(Box::new(BufWriter::new(file)));
    Ok(real.map(|real| EventsSpool { real, path }))
}

/// After the second pass: hash each planned file and append its custody line. Returns each
/// file with its SHA-256.
pub(crate) fn record_custody(plan: &EvidencePlan) -> Result<Vec<(PathBuf, String)>> {
    let host = pacstap_output::sensor_host();
    let mut out = Vec::new();
    for (path, incident) in plan.files_with_incidents() {
        let dir = pacstap_safefile::parent_dir(path);
        let e = pacstap_output::record_custody(&dir, path, incident, &host)
            .with_context(|| format!("recording custody of {}", path.display()))?;
        out.push((path.to_owned(), e.sha256));
    }
    Ok(out)
}

/// The end of a replay: the hashes go into the collected alerts and the spooled event lines,
/// which are copied to the real output. On a replay error the spool is still copied (the
/// events written so far are not lost), unchanged.
pub(crate) fn seal(report: Result<ReplayReport>, spool: Option<EventsSpool>) -> Result<ReplayReport> {
    let mut report = match report {
        Ok(r) => r,
        Err(e) => {
            if let Some(s) = spool {
                let _ = copy_spool(s, &HashMap::new());
            }
            return Err(e);
        }
    };
    let hashes: HashMap<String, String> = report
        .evidence_sha256
        .iter()
        .map(|(p, h)| (p.display().to_string(), h.clone()))
        .collect();
    for ev in &mut report.events {
        if let EventBody::Alert(a) = &mut ev.body {
            if let Some(h) = a.evidence.pcap.as_ref().and_then(|p| hashes.get(p)) {
                a.evidence.pcap_sha256 = Some(h.clone());
            }
        }
    }
    if let Some(s) = spool {
        copy_spool(s, &hashes).context("writing events")?;
    }
    Ok(report)
}

fn copy_spool(spool: EventsSpool, hashes: &HashMap<String, String>) -> std::io::Result<()> {
    let EventsSpool { mut real, path } = spool;
    let result = (|| {
        let mut r = BufReader::new(File::open(&path)?);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                break;
            }
            real.write_all(add_hash(&line, hashes).as_bytes())?;
        }
        real.flush()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// `"pcap":"<path>"` in an alert line gets `,"pcap_sha256":"<hex>"` after it. Textual: the
/// line is ours (the JSON-lines sink wrote it) and a `"` inside any string value is escaped,
/// so `"pcap":"` can only be the evidence key; re-serializing would reorder nothing but costs
/// a parse of every event.
fn add_hash(line: &str, hashes: &HashMap<String, String>) -> String {
    const KEY: &str = "\"pcap\":";
    let Some(at) = line.find(KEY) else {
        return line.to_string();
    };
    let value_at = at + KEY.len();
    let rest = line.get(value_at..).unwrap_or_default();
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    let Some(Ok(path)) = stream.next() else {
        return line.to_string();
    };
    let end = value_at + stream.byte_offset();
    match (hashes.get(&path), line.get(..end), line.get(end..)) {
        (Some(h), Some(head), Some(tail)) => format!("{head},\"pcap_sha256\":\"{h}\"{tail}"),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_the_pcap_it_names_and_other_lines_pass_unchanged() {
        let hashes = HashMap::from([("/ev/a \"b\".pcap".to_string(), "ab".repeat(32))]);
        let line = r#"{"alert":{"evidence":{"flow_ids":[1],"pcap":"/ev/a \"b\".pcap"},"response":[]}}"#;
        let out = add_hash(&format!("{line}\n"), &hashes);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["alert"]["evidence"]["pcap_sha256"], "ab".repeat(32));
        assert!(out.ends_with("}}\n"));
        let other = r#"{"event_type":"dicom","summary":"\"pcap\":\"x\""}"#;
        assert_eq!(add_hash(other, &hashes), other);
        let unknown = r#"{"alert":{"evidence":{"pcap":"/elsewhere.pcap"}}}"#;
        assert_eq!(add_hash(unknown, &hashes), unknown);
        assert_eq!(add_hash(r#"{"pcap":"#, &hashes), r#"{"pcap":"#);
    }
}
