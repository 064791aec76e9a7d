//! Cross-field checks of a parsed configuration (what serde's per-field types cannot say,
//! e.g. every threshold below `detect.max_window_items`).

use super::*;

impl Config {
    /// Cross-field checks; the error names the key path.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        for (key, ports) in [
            ("decapsulate.vxlan_ports", &self.decapsulate.vxlan_ports),
            ("decapsulate.geneve_ports", &self.decapsulate.geneve_ports),
        ] {
            if ports.contains(&0) {
                return Err((key.into(), "0 is not a UDP port".into()));
            }
        }
        let d = &self.defrag;
        if !Defrag::MEMORY.contains(&d.memory) {
            return Err((
                "defrag.memory".into(),
                format!(
                    "must be {} to {} bytes (64 KiB to 1 GiB)",
                    Defrag::MEMORY.start(),
                    Defrag::MEMORY.end()
                ),
            ));
        }
        for (key, t) in [("defrag.timeout_v4", d.timeout_v4), ("defrag.timeout_v6", d.timeout_v6)] {
            let ok = Defrag::TIMEOUT_SECS.contains(&t.as_secs()) && t.0.subsec_nanos() == 0;
            if !ok {
                return Err((key.into(), "must be whole seconds from 1s to 1h".into()));
            }
        }
        if !Defrag::MAX_FRAGMENTS.contains(&d.max_fragments) {
            return Err((
                "defrag.max_fragments".into(),
                format!(
                    "must be {} to {} (RFC 791 §3.1: 65,535 bytes in 8-byte units)",
                    Defrag::MAX_FRAGMENTS.start(),
                    Defrag::MAX_FRAGMENTS.end()
                ),
            ));
        }
        let cap = self.detect.max_window_items as u64;
        if cap < 2 {
            return Err(("detect.max_window_items".into(), "must be at least 2".into()));
        }
        if self.detect.max_entities == 0 {
            return Err(("detect.max_entities".into(), "must be at least 1".into()));
        }
        if self.detect.max_learned_entities == 0 {
            return Err(("detect.max_learned_entities".into(), "must be at least 1".into()));
        }
        if self.detect.max_devices_per_entity == 0 {
            return Err(("detect.max_devices_per_entity".into(), "must be at least 1".into()));
        }
        let r = &self.rules;
        let windowed: [(&str, u64, Dur); 5] = [
            (
                "login_failures_user",
                r.login_failures_user.threshold,
                r.login_failures_user.window,
            ),
            (
                "login_failures_source",
                r.login_failures_source.threshold,
                r.login_failures_source.window,
            ),
            (
                "login_success_after_failures",
                r.login_success_after_failures.threshold,
                r.login_success_after_failures.window,
            ),
            ("bulk_export", r.bulk_export.threshold, r.bulk_export.window),
            (
                "export_above_baseline",
                r.export_above_baseline.threshold,
                r.export_above_baseline.window,
            ),
        ];
        for (id, threshold, window) in windowed {
            if threshold >= cap {
                return Err((
                    format!("rules.{id}.threshold"),
                    format!("must be below detect.max_window_items ({cap}): counts saturate there"),
                ));
            }
            if window.is_zero() {
                return Err((format!("rules.{id}.window"), "must be longer than 0s".into()));
            }
        }
        for (key, v) in [
            ("threshold", r.sharing_spike.threshold),
            ("recipients_threshold", r.sharing_spike.recipients_threshold),
        ] {
            if v >= cap {
                return Err((
                    format!("rules.sharing_spike.{key}"),
                    format!("must be below detect.max_window_items ({cap}): counts saturate there"),
                ));
            }
        }
        if r.sharing_spike.window.is_zero() {
            return Err(("rules.sharing_spike.window".into(), "must be longer than 0s".into()));
        }
        for (id, rule) in [
            ("new_device", &r.new_device),
            ("new_location", &r.new_location),
            ("admin_change", &r.admin_change),
            ("unknown_destination", &r.unknown_destination),
        ] {
            if rule.window.is_zero() {
                return Err((format!("rules.{id}.window"), "must be longer than 0s".into()));
            }
        }
        let b = &r.export_above_baseline;
        if !(b.factor.is_finite() && b.factor > 0.0) {
            return Err((
                "rules.export_above_baseline.factor".into(),
                "must be a positive number".into(),
            ));
        }
        if b.half_life.is_zero() {
            return Err((
                "rules.export_above_baseline.half_life".into(),
                "must be longer than 0s".into(),
            ));
        }
        if self.geoip.database.is_some() && self.geoip.csv.is_some() {
            return Err((
                "geoip.csv".into(),
                "give either geoip.database or geoip.csv, not both".into(),
            ));
        }
        for (i, node) in self.inventory.dicom.iter().enumerate() {
            let ae = node.ae.trim();
            // PS3.5 §6.2: an AE title is at most 16 characters, not all spaces.
            if ae.is_empty() || ae.chars().count() > 16 {
                return Err((
                    format!("inventory.dicom[{i}].ae"),
                    "an AE title has 1 to 16 characters (PS3.5 §6.2)".into(),
                ));
            }
        }
        for (i, u) in self.inventory.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err((format!("inventory.users[{i}].name"), "must not be empty".into()));
            }
        }
        if self.evidence.max_tracked_per_incident == 0 {
            return Err(("evidence.max_tracked_per_incident".into(), "must be at least 1".into()));
        }
        self.publish.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        Config::from_toml_str(s).unwrap_err().to_string()
    }

    /// Table-driven: each `[defrag]` body is accepted, or refused naming this key at this line
    /// with this text.
    #[test]
    fn defrag_table_bounds() {
        let ok = [
            "memory = 65536",
            "memory = 1073741824",
            "timeout_v4 = \"1s\"\ntimeout_v6 = \"1h\"",
            "max_fragments = 2",
            "max_fragments = 8192",
        ];
        for body in ok {
            let c = Config::from_toml_str(&format!("[defrag]\n{body}\n")).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(Config::from_toml_str(&c.render_effective()).unwrap(), c, "{body}");
        }
        let bad = [
            ("memory = 0", "defrag.memory at line 2, column 10: ", "64 KiB to 1 GiB"),
            ("memory = 65535", "defrag.memory at line 2", "64 KiB to 1 GiB"),
            ("memory = 1073741825", "defrag.memory at line 2", "64 KiB to 1 GiB"),
            ("memory = -1", "defrag.memory at line 2", "non-negative integer"),
            ("memory = \"16MiB\"", "defrag.memory at line 2", "non-negative integer"),
            (
                "\ntimeout_v4 = \"0s\"",
                "defrag.timeout_v4 at line 3, column 14: ",
                "1s to 1h",
            ),
            ("timeout_v6 = \"2h\"", "defrag.timeout_v6 at line 2", "1s to 1h"),
            (
                "timeout_v4 = \"1500ms\"",
                "defrag.timeout_v4 at line 2",
                "whole seconds",
            ),
            ("max_fragments = 0", "defrag.max_fragments at line 2", "2 to 8192"),
            ("max_fragments = 1", "defrag.max_fragments at line 2", "2 to 8192"),
            ("max_fragments = 100000", "defrag.max_fragments at line 2", "2 to 8192"),
            ("memroy = 65536", "defrag.memroy at line 2", "unknown field"),
        ];
        for (body, at, contains) in bad {
            let e = err(&format!("[defrag]\n{body}\n"));
            assert!(e.starts_with(at) && e.contains(contains), "{body}: {e}");
        }
    }

    #[test]
    fn validation_errors_name_key_and_line() {
        let e = err("[detect]\nmax_window_items = 100\n\n[rules.bulk_export]\nthreshold = 150\n");
        assert!(
            e.starts_with(
                "rules.bulk_export.threshold at line 5, column 13: must be below detect.max_window_items (100)"
            ),
            "{e}"
        );
        let e = err("[rules.bulk_export]\nwindow = \"0s\"\n");
        assert!(e.starts_with("rules.bulk_export.window at line 2, column 10: "), "{e}");
        // A key that is not in the file (default) is still named.
        let e = err("[detect]\nmax_window_items = 10\n");
        assert!(
            e.starts_with("rules.login_failures_source.threshold: must be below"),
            "{e}"
        );
        let e = err("[[inventory.dicom]]\nae = \"WAY-TOO-LONG-AE-TITLE\"\n");
        assert!(e.starts_with("inventory.dicom[0].ae at line 2, column 6"), "{e}");
    }
}
