//! Live evidence (`capture --evidence-dir`): the detection thread's `EvidenceCutter` asks the
//! workers for the packets their rings hold of each alert's flows and appends them to the
//! incident's pcap. (Replay writes its evidence in a second pass over the files instead:
//! `crate::replay`.)
//!
//! The alert is written before its file exists, so it cannot carry the file's hash. After each
//! cut, the cutter therefore hands back an alert update (the incident's latest alert, same
//! `incident_id`, `update: true`) carrying `evidence.pcap` and the `pcap_sha256` of the file
//! just written ([`EvidenceCutter::take_sealed`]): every live incident ends with an alert that
//! proves its file as it stands (the custody log holds every version's hash).

use crossbeam_channel::{Receiver, Sender};
use pacstap_core::{EventBody, FlowId, ProtocolEvent};
use pacstap_output::term::warn;
use pacstap_output::EvidencePackets;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request to a worker: copy the packets it holds for these flows (live evidence).
pub(crate) struct EvidenceRequest {
    pub(crate) id: u64,
    /// Per flow: what the file already has of it (ring buffer epoch, frames seen).
    pub(crate) wants: Arc<[(FlowId, u64, u64)]>,
}

/// A worker's answer to an [`EvidenceRequest`].
pub(crate) struct EvidenceReply {
    pub(crate) id: u64,
    pub(crate) packets: EvidencePackets,
}

/// An incident's file, cut live from the workers' rings.
struct IncidentFile {
    /// Its flows, each with what the file already holds of it: the ring buffer's epoch and how
    /// many of that buffer's frames the last cut saw (see `EvidenceRing::snapshot_since`).
    flows: Vec<(FlowId, u64, u64)>,
    last_cut: Option<Instant>,
    /// Least time until the next cut: [`EVIDENCE_RECUT`], doubling with every cut up to
    /// [`EVIDENCE_RECUT_MAX`], so an incident that keeps growing for hours is cut every few
    /// minutes, not every ten seconds.
    interval: Duration,
    /// New flows since the last cut (an update that only raises the count changes no packets).
    dirty: bool,
    /// Cut once more after the last alert's cut: the flows go on after an alert (the rest of
    /// the transfer, the closing handshake), and the file should end with them.
    settle: bool,
    /// A cut of this file is waiting for the workers: the next one must start from its result.
    in_flight: bool,
    /// The incident's latest alert naming this file: each cut re-emits it as an update with
    /// the file's hash.
    alert: Option<Box<ProtocolEvent>>,
    /// SHA-256 of the file as the last cut left it.
    sha256: Option<String>,
}

/// A cut waiting for the workers' copies.
struct PendingCut {
    path: PathBuf,
    parts: Vec<EvidencePackets>,
    waiting: usize,
}

/// Live evidence (`capture --evidence-dir`), on the detection thread: each alert asks every
/// worker for the packets it holds of the alert's flows, and the copies are merged by time and
/// appended to the incident's pcap.
///
/// A file only grows: each cut asks for the frames the previous cuts did not have, so packets
/// already written stay even when a worker's ring forgets the flow later. It is cut when new
/// flows join the incident — at most every [`EVIDENCE_RECUT`], the interval doubling with each
/// cut up to [`EVIDENCE_RECUT_MAX`] — once more after that (so it ends with what followed the
/// alert), and at shutdown. An update that only raises the count cuts nothing. The packets are
/// those the workers still hold: each keeps a bounded ring per flow (the first frames with
/// payload up to the configured cap, then headers), and forgets the least recently active flows
/// when its share of `--evidence-memory` is used up.
pub(crate) struct EvidenceCutter {
    requests: Vec<Sender<EvidenceRequest>>,
    replies: Receiver<EvidenceReply>,
    next_id: u64,
    incidents: HashMap<PathBuf, IncidentFile>,
    pending: HashMap<u64, PendingCut>,
    written: Vec<PathBuf>,
    errors: u64,
    /// The sensor's host name for the custody log (read at the first write).
    host: Option<String>,
    /// Alert updates proving files just written, for the detection thread to emit.
    sealed: Vec<ProtocolEvent>,
}

/// Least wall time between the first two cuts of one incident's evidence file (it doubles).
pub const EVIDENCE_RECUT: Duration = Duration::from_secs(10);
/// Most wall time between two cuts of a file whose incident keeps growing.
pub const EVIDENCE_RECUT_MAX: Duration = Duration::from_secs(300);
/// Flows per evidence file (an alert names at most its capped list; updates add more).
const EVIDENCE_FLOWS_PER_FILE: usize = 256;

impl EvidenceCutter {
    /// A cutter taking the workers' copies from `replies`; each worker is then connected with
    /// [`EvidenceCutter::add_worker`].
    pub(crate) fn new(replies: Receiver<EvidenceReply>, workers: usize) -> EvidenceCutter {
        EvidenceCutter {
            requests: Vec::with_capacity(workers),
            replies,
            next_id: 0,
            incidents: HashMap::new(),
            pending: HashMap::new(),
            written: Vec::new(),
            errors: 0,
            host: None,
            sealed: Vec::new(),
        }
    }

    /// Where to send one more worker its requests.
    pub(crate) fn add_worker(&mut self, requests: Sender<EvidenceRequest>) {
        self.requests.push(requests);
    }

    /// Cut `alert`'s flows into its file `path` (its `evidence.pcap`).
    pub(crate) fn request(&mut self, path: PathBuf, flows: Vec<FlowId>, alert: ProtocolEvent) {
        let inc = self.incidents.entry(path.clone()).or_insert(IncidentFile {
            flows: Vec::new(),
            last_cut: None,
            interval: EVIDENCE_RECUT,
            dirty: true,
            settle: false,
            in_flight: false,
            alert: None,
            sha256: None,
        });
        for f in flows {
            if inc.flows.len() < EVIDENCE_FLOWS_PER_FILE && !inc.flows.iter().any(|w| w.0 == f) {
                inc.flows.push((f, 0, 0));
                inc.dirty = true;
            }
        }
        // An update that changes no packets (a higher count) cuts nothing: it is proven at
        // once by the file as it stands, so the incident still ends with a proving alert.
        // Otherwise the coming cut proves it.
        if let (false, false, Some(sha256)) = (inc.dirty, inc.in_flight, inc.sha256.clone()) {
            self.sealed.extend(sealed_update(&alert, &path, sha256));
        }
        inc.alert = Some(Box::new(alert));
    }

    /// Ask the workers for what is new in the files that are due (every file with news when
    /// `force`).
    pub(crate) fn cut_due(&mut self, now: Instant, force: bool) {
        let due: Vec<PathBuf> = self
            .incidents
            .iter()
            .filter(|(_, i)| {
                (i.dirty || i.settle)
                    && !i.in_flight
                    && (force || i.last_cut.is_none_or(|t| now.duration_since(t) >= i.interval))
            })
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            let Some(inc) = self.incidents.get_mut(&path) else {
                continue;
            };
            // A cut for news is followed by a settling cut; a settling cut by nothing more.
            inc.settle = inc.dirty;
            inc.dirty = false;
            if inc.last_cut.is_some() {
                inc.interval = (inc.interval * 2).min(EVIDENCE_RECUT_MAX);
            }
            inc.last_cut = Some(now);
            let wants: Arc<[(FlowId, u64, u64)]> = inc.flows.clone().into();
            let id = self.next_id;
            self.next_id += 1;
            let mut waiting = 0;
            for tx in &self.requests {
                let req = EvidenceRequest {
                    id,
                    wants: Arc::clone(&wants),
                };
                // Never wait for a worker: one that is this far behind misses this cut (its
                // frames come with the next one, or at shutdown).
                if tx.try_send(req).is_ok() {
                    waiting += 1;
                }
            }
            if waiting > 0 {
                inc.in_flight = true;
                self.pending.insert(
                    id,
                    PendingCut {
                        path,
                        parts: Vec::new(),
                        waiting,
                    },
                );
            }
        }
    }

    /// Take the workers' answers; append to the files whose answers are all in.
    pub(crate) fn collect(&mut self, wait: Option<Duration>) {
        let deadline = wait.map(|w| Instant::now() + w);
        while !self.pending.is_empty() {
            let reply = match deadline {
                None => self.replies.try_recv().ok(),
                Some(d) => self.replies.recv_deadline(d).ok(),
            };
            let Some(reply) = reply else {
                break;
            };
            let done = match self.pending.get_mut(&reply.id) {
                Some(p) => {
                    p.parts.push(reply.packets);
                    p.waiting = p.waiting.saturating_sub(1);
                    p.waiting == 0
                }
                None => false,
            };
            if done {
                if let Some(p) = self.pending.remove(&reply.id) {
                    self.write(p);
                }
            }
        }
    }

    /// Append a finished cut, and remember what each flow's part held for the next one.
    fn write(&mut self, p: PendingCut) {
        if let Some(inc) = self.incidents.get_mut(&p.path) {
            inc.in_flight = false;
            for fe in p.parts.iter().flat_map(EvidencePackets::flows) {
                if let Some(w) = inc.flows.iter_mut().find(|w| w.0 == fe.flow) {
                    *w = (fe.flow, fe.epoch, fe.seen);
                }
            }
        }
        if p.parts.iter().all(EvidencePackets::is_empty) && p.path.exists() {
            return;
        }
        match pacstap_output::append_evidence_pcap(&p.path, &p.parts) {
            Ok(_) => {
                if let Some(sha256) = self.record_custody(&p.path) {
                    if let Some(inc) = self.incidents.get_mut(&p.path) {
                        let alert = inc.alert.as_deref();
                        self.sealed
                            .extend(alert.and_then(|a| sealed_update(a, &p.path, sha256.clone())));
                        inc.sha256 = Some(sha256);
                    }
                }
                if !self.written.contains(&p.path) {
                    self.written.push(p.path);
                }
            }
            Err(e) => {
                self.errors += 1;
                warn(&p.path.display().to_string(), &format!("evidence not written: {e}"));
            }
        }
    }

    /// Log this version of the file in the custody log (one line per cut: a live file grows,
    /// and each line's hash is that of the file as it stood after the cut).
    /// Returns the file's SHA-256 when it was logged.
    fn record_custody(&mut self, path: &Path) -> Option<String> {
        let dir = pacstap_safefile::parent_dir(path);
        let host = self.host.get_or_insert_with(pacstap_output::sensor_host);
        match pacstap_output::record_custody(&dir, path, &incident_of(path), host) {
            Ok(entry) => Some(entry.sha256),
            Err(e) => {
                self.errors += 1;
                warn(
                    &path.display().to_string(),
                    &format!("custody of evidence not logged: {e}"),
                );
                None
            }
        }
    }

    /// Alert updates proving the files written since the last call (one per cut, in the
    /// order written), for [`crate::Detection::emit_evidence_update`].
    pub(crate) fn take_sealed(&mut self) -> Vec<ProtocolEvent> {
        std::mem::take(&mut self.sealed)
    }

    /// Shutdown: cut every file with news, and wait (a bounded time) for the copies.
    pub(crate) fn finish(&mut self) -> Vec<PathBuf> {
        // Cuts still out first, so the last cut starts from what they brought.
        self.collect(Some(Duration::from_secs(10)));
        self.cut_due(Instant::now(), true);
        self.collect(Some(Duration::from_secs(10)));
        let left: Vec<PendingCut> = self.pending.drain().map(|(_, p)| p).collect();
        for p in left {
            // Some worker did not answer in time: write what the others sent.
            self.write(p);
        }
        std::mem::take(&mut self.written)
    }
}

/// `alert` as the update that proves its file `path` as just written: same incident, `update`,
/// `evidence.pcap` and its `pcap_sha256`. None when `alert` is not an alert.
fn sealed_update(alert: &ProtocolEvent, path: &Path, sha256: String) -> Option<ProtocolEvent> {
    let mut ev = alert.clone();
    let EventBody::Alert(a) = &mut ev.body else {
        return None;
    };
    a.update = true;
    a.evidence.pcap = Some(path.display().to_string());
    a.evidence.pcap_sha256 = Some(sha256);
    Some(ev)
}

/// The incident id an evidence file name ends with (`<time>_<rule>_<incident id>.pcap`,
/// `pacstap_output::evidence_file_name`).
fn incident_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('_').next())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_id_is_read_back_from_the_file_name() {
        assert_eq!(
            incident_of(Path::new("/ev/2026-03-01T075343Z_bulk_export_0123456789abcdef.pcap")),
            "0123456789abcdef"
        );
    }
}
