//! The appliance's own housekeeping as metrics: config reloads (SIGHUP), learned-state saves
//! and the process's resident memory, so an operator sees a reload that failed, a state file
//! that stopped being written, or memory creeping toward the unit's limit.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};
use std::time::{SystemTime, UNIX_EPOCH};

/// The two values of the `result` label.
pub const RESULTS: [&str; 2] = ["ok", "failed"];

pub(super) struct OpsMetrics {
    reloads: IntCounterVec,
    saves: IntCounterVec,
    last_save: Gauge,
    resident: IntGauge,
}

impl OpsMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<OpsMetrics> {
        let reloads = IntCounterVec::new(
            Opts::new(
                "pacstap_config_reloads_total",
                "Config reloads on SIGHUP, by result (failed: the running config was kept).",
            ),
            &["result"],
        )?;
        let saves = IntCounterVec::new(
            Opts::new(
                "pacstap_state_saves_total",
                "Writes of the learned-state file, by result.",
            ),
            &["result"],
        )?;
        let last_save = Gauge::new(
            "pacstap_state_last_save_timestamp_seconds",
            "Wall time of the latest successful learned-state save, seconds since the epoch (0: none yet).",
        )?;
        let resident = IntGauge::new(
            "pacstap_process_resident_memory_bytes",
            "Resident memory of the pacstap process (VmRSS of /proc/self/status), read at scrape time.",
        )?;
        r.register(Box::new(reloads.clone()))?;
        r.register(Box::new(saves.clone()))?;
        r.register(Box::new(last_save.clone()))?;
        r.register(Box::new(resident.clone()))?;
        // Both results exist from the first scrape, so `increase(...{result="failed"}[1h]) > 0`
        // works before the first failure.
        for result in RESULTS {
            reloads.with_label_values(&[result]);
            saves.with_label_values(&[result]);
        }
        Ok(OpsMetrics {
            reloads,
            saves,
            last_save,
            resident,
        })
    }

    pub(super) fn config_reload(&self, ok: bool) {
        self.reloads.with_label_values(&[result(ok)]).inc();
    }

    pub(super) fn state_save(&self, ok: bool) {
        self.saves.with_label_values(&[result(ok)]).inc();
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_save.set(now);
        }
    }

    /// Refresh the memory gauge (before each render).
    pub(super) fn refresh(&self) {
        if let Some(bytes) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| vm_rss_bytes(&s))
        {
            self.resident.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

fn result(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "failed"
    }
}

/// `VmRSS:   123456 kB` from `/proc/self/status`, in bytes. Read by hand rather than with the
/// prometheus crate's `process` feature, which pulls in `procfs` and its dependencies for this
/// one number; the status file (unlike `statm`) gives kB, so no page-size query (`sysconf`, unsafe)
/// is needed.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kb: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => kb.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_parsed_in_bytes() {
        let status = "Name:\tpacstap\nVmPeak:\t  9999 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("VmRSS: 12 MB\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS: x kB\n"), None);
        assert_eq!(vm_rss_bytes("Name: a\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS: 99999999999999999999 kB\n"), None);
    }

    #[test]
    fn own_resident_memory_is_read() {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss = vm_rss_bytes(&s).unwrap();
        assert!(rss > 100 * 1024, "{rss}");
    }
}
