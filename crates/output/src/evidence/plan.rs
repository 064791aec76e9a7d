//! Evidence pcaps (`--evidence-dir`): for each alert, the packets of the flows behind it, in a
//! file Wireshark opens, readable only by its owner (mode 0600: the payload is patient data).
//!
//! Replay writes them in a second pass over the input: during the first pass an alert only
//! registers which flows it names ([`EvidencePlan::add`]); then the files are written from the
//! original packets. Memory stays bounded by the number of alerted flows, never by traffic.

use super::pcap_writer::{write_pcap_header, write_record};
use pacstap_core::{Alert, FlowKey, FlowMeta, Timestamp};
use pacstap_safefile::{open_private, Existing, Kind};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Incidents with an evidence file; past this, alerts still fire but get no pcap (counted).
/// Each open file costs a descriptor and a write buffer.
pub const MAX_EVIDENCE_FILES: usize = 256;

/// Which flows go into which evidence file.
#[derive(Debug, Default)]
pub struct EvidencePlan {
    dir: PathBuf,
    /// File index by incident (rule, entity kind, entity id).
    incidents: HashMap<(String, String, String), usize>,
    files: Vec<PathBuf>,
    /// The incident id of each file (same index as `files`), for the custody log.
    incident_ids: Vec<String>,
    /// Canonical flow key → (file, the flow's first packet time), for the second pass.
    flows: HashMap<FlowKey, Vec<(usize, Timestamp)>>,
    /// Alerts that got no file because of [`MAX_EVIDENCE_FILES`].
    pub dropped_incidents: u64,
}

impl EvidencePlan {
    pub fn new(dir: &Path) -> Self {
        EvidencePlan {
            dir: dir.to_owned(),
            ..Self::default()
        }
    }

    /// Register an alert: returns the evidence file path to put in `alert.evidence.pcap`.
    /// `flow` resolves a flow id of the alert's evidence to its endpoints (None: unknown).
    pub fn add(&mut self, alert: &Alert, flow: impl Fn(pacstap_core::FlowId) -> Option<FlowMeta>) -> Option<PathBuf> {
        let key = (alert.rule.clone(), alert.entity.kind.clone(), alert.entity.id.clone());
        let idx = match self.incidents.get(&key) {
            Some(&i) => i,
            None => {
                if self.files.len() >= MAX_EVIDENCE_FILES {
                    self.dropped_incidents += 1;
                    return None;
                }
                self.files.push(self.dir.join(evidence_file_name(alert)));
                self.incident_ids.push(alert.incident_id.clone());
                self.incidents.insert(key, self.files.len() - 1);
                self.files.len() - 1
            }
        };
        for id in &alert.evidence.flow_ids {
            if let Some(meta) = flow(*id) {
                let (k, _) = FlowKey {
                    src: meta.client,
                    dst: meta.server,
                }
                .canonical();
                let entry = self.flows.entry(k).or_default();
                if !entry.iter().any(|(f, start)| *f == idx && *start == meta.start) {
                    entry.push((idx, meta.start));
                }
            }
        }
        self.files.get(idx).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files this plan will write.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The files with the incident id each belongs to (for the custody log).
    pub fn files_with_incidents(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files
            .iter()
            .zip(&self.incident_ids)
            .map(|(p, i)| (p.as_path(), i.as_str()))
    }

    /// Open the evidence files for the second pass: mode 0600, never through a symbolic link
    /// (the names are predictable from the alert), never into a file someone else owns or that
    /// has another name (`pacstap_safefile::open_private`). The error names the file.
    pub fn writer(&self, linktype: u32, max_payload_per_flow: u64) -> io::Result<EvidenceWriter<'_>> {
        pacstap_safefile::create_private_dir(&self.dir)?;
        let mut outs = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let f = open_private(path, Existing::Truncate, Kind::Regular)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let mut w = BufWriter::new(f);
            write_pcap_header(&mut w, linktype)?;
            outs.push(w);
        }
        Ok(EvidenceWriter {
            plan: self,
            outs,
            linktype,
            max_payload_per_flow,
            payload_written: HashMap::new(),
            skipped_linktype: 0,
        })
    }
}

/// Writes frames of planned flows to their evidence files.
pub struct EvidenceWriter<'p> {
    plan: &'p EvidencePlan,
    outs: Vec<BufWriter<File>>,
    linktype: u32,
    max_payload_per_flow: u64,
    payload_written: HashMap<(usize, FlowKey), u64>,
    /// Frames of another link type than the files' (a legacy pcap holds one).
    pub skipped_linktype: u64,
}

impl EvidenceWriter<'_> {
    /// Offer one frame: `key` is its packet's flow key, `payload_len` its TCP payload length
    /// (the last bytes of the frame). Headers are always written; payload only within the
    /// per-flow budget.
    pub fn frame(
        &mut self,
        ts: Timestamp,
        linktype: u32,
        data: &[u8],
        key: &FlowKey,
        payload_len: usize,
    ) -> io::Result<()> {
        let (k, _) = key.canonical();
        let Some(targets) = self.plan.flows.get(&k) else {
            return Ok(());
        };
        if linktype != self.linktype {
            self.skipped_linktype += 1;
            return Ok(());
        }
        let headers = data.len().saturating_sub(payload_len);
        for &(file, start) in targets {
            // A flow id names one connection; an earlier one on the same ports is not it.
            if ts < start {
                continue;
            }
            let used = self.payload_written.entry((file, k)).or_default();
            let room = self.max_payload_per_flow.saturating_sub(*used);
            let take = (payload_len as u64).min(room) as usize;
            *used += take as u64;
            let Some(bytes) = data.get(..headers + take) else {
                continue;
            };
            if let Some(out) = self.outs.get_mut(file) {
                write_record(out, ts, bytes, data.len())?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        for o in &mut self.outs {
            o.flush()?;
        }
        Ok(())
    }
}

/// An incident's evidence file name: `<first seen, UTC>_<rule>_<incident id>.pcap`, e.g.
/// `2026-03-01T075343Z_bulk_export_0123456789abcdef.pcap`. The time is readable and sorts with
/// the name (ISO 8601 basic time, no ':' so the name is valid on every filesystem and in a
/// Windows share an investigator copies it to); the incident id makes it unique and ties it to
/// the alerts. No entity id: user names and AE titles stay out of directory listings.
pub fn evidence_file_name(alert: &Alert) -> String {
    format!(
        "{}_{}_{}.pcap",
        compact_utc(alert.first_seen),
        sanitize(&alert.rule),
        sanitize(&alert.incident_id)
    )
}

/// `2026-03-01T075343Z`: second precision, UTC (RFC 3339 with the separators of the time
/// taken out).
fn compact_utc(t: Timestamp) -> String {
    let full = t.rfc3339(); // 2026-03-01T07:53:43.123456Z
    let date_time = full.get(..19).unwrap_or(&full);
    format!("{}Z", date_time.replace(':', ""))
}

/// Keeps file names portable: rule names and ids come from config and alerts.
fn sanitize(id: &str) -> String {
    let s: String = id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::os::unix::fs::PermissionsExt;

    fn meta(port: u16, start: i64) -> FlowMeta {
        FlowMeta {
            id: FlowId(port as u64),
            client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port),
            server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 104),
            start: Timestamp(start),
            handshake_seen: true,
        }
    }

    fn alert(flows: &[u64]) -> Alert {
        Alert {
            rule: "bulk_export".into(),
            severity: Severity::High,
            entity: AlertEntity {
                kind: "ae".into(),
                id: "WORK/STATION 1".into(),
            },
            count: 16,
            threshold: Some(15),
            window_seconds: Some(1800),
            first_seen: Timestamp(1_000_000),
            last_seen: Timestamp(2_000_000),
            summary: String::new(),
            evidence: AlertEvidence {
                flow_ids: flows.iter().map(|f| FlowId(*f)).collect(),
                ..Default::default()
            },
            response: vec![],
            update: false,
            incident_id: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn writes_only_the_alerted_flow_with_capped_payload_and_mode_0600() {
        let dir = std::env::temp_dir().join(format!("pacstap-evidence-{}", std::process::id()));
        let mut plan = EvidencePlan::new(&dir);
        let path = plan
            .add(&alert(&[5000]), |id| (id.0 == 5000).then(|| meta(5000, 10)))
            .unwrap();
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .eq("1970-01-01T000000Z_bulk_export_0123456789abcdef.pcap"));
        // An update of the same incident reuses the file.
        assert_eq!(plan.add(&alert(&[5000]), |_| None), Some(path.clone()));
        let mut w = plan.writer(1, 100).unwrap();
        let m = meta(5000, 10);
        let to_server = FlowKey {
            src: m.client,
            dst: m.server,
        };
        let to_client = FlowKey {
            src: m.server,
            dst: m.client,
        };
        let other = FlowKey {
            src: meta(6000, 0).client,
            dst: m.server,
        };
        let frame = vec![0u8; 54 + 80];
        w.frame(Timestamp(5), 1, &frame, &to_server, 80).unwrap(); // before the flow began
        w.frame(Timestamp(20), 1, &frame, &to_server, 80).unwrap();
        w.frame(Timestamp(30), 1, &frame, &to_client, 80).unwrap(); // 20 bytes of budget left
        w.frame(Timestamp(40), 1, &frame, &other, 80).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Header + (16 + 54 + 80) + (16 + 54 + 20).
        assert_eq!(bytes.len(), 24 + 150 + 90);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The evidence name is predictable (first-seen time, rule, incident id): a link planted there
    /// must not receive the patient payload.
    #[test]
    fn a_link_planted_at_the_evidence_name_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("pacstap-evidence-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut plan = EvidencePlan::new(&dir);
        let path = plan
            .add(&alert(&[5000]), |id| (id.0 == 5000).then(|| meta(5000, 10)))
            .unwrap();
        let victim = dir.join("readable-by-all");
        std::fs::write(&victim, b"").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = plan.writer(1, 100).err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("symbolic link"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"");
        std::fs::remove_dir_all(&dir).ok();
    }
}
