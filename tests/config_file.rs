//! Config files (read by the app, `pacstap::config`): errors name the key and line; the
//! effective config round-trips; detection starts on its part.

use pacstap::config::{Config, ConfigError};
use pacstap_detect::Detector;

/// A small inventory, so the rendered file has every kind of table.
const LAB: &str = r#"
[[inventory.dicom]]
ae = "PACS1"
ip = "10.20.0.10"
role = "pacs"

[[inventory.hl7]]
ip = "10.20.0.30"
port = 2575

[[inventory.users]]
name = "rad1"
devices = ["10.20.30.31"]
"#;

#[test]
fn load_reports_key_and_line() {
    let p = std::env::temp_dir().join(format!("pacstap-detect-cfg-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        "[networks]\ninternal = [\"10.0.0.0/8\"]\n\n[rules.bulk_export]\nthreshold = 15\nwindow = \"30m\"\n\n[rules.login_failures_user]\nthreshold = -3\n",
    )
    .expect("write");
    let err = Config::load(&p).expect_err("negative threshold");
    let msg = err.to_string();
    assert!(
        msg.starts_with("rules.login_failures_user.threshold at line 9, column 13: "),
        "{msg}"
    );
    assert_eq!(err.key(), Some("rules.login_failures_user.threshold"));
    let _ = std::fs::remove_file(&p);
    let missing = Config::load(std::path::Path::new("/nonexistent/pacstap.toml")).expect_err("missing");
    assert!(matches!(missing, ConfigError::Io { .. }));
    assert!(missing.to_string().contains("/nonexistent/pacstap.toml"));
}

#[test]
fn full_config_round_trips_through_render_effective() {
    let text = format!(
        "{}\n{}",
        LAB,
        r#"
[networks]
internal = ["10.0.0.0/8", "2001:db8:1::/48", "192.0.2.7"]

[rules.bulk_export]
threshold = 40
window = "1h30m"
severity = "critical"

[rules.export_above_baseline]
factor = 4.5
min_history = "3d"

[rules.sharing_spike]
recipients_threshold = 3

[rules.new_device]
enabled = false

[detect]
max_entities = 5000
learning_period = "14d"
identity_wait = "90s"

[evidence]
max_payload_bytes_per_flow = 4096

[ports]
dicom = [104]
"#
    );
    let cfg = Config::from_toml_str(&text).expect("parse");
    assert_eq!(cfg.rules.bulk_export.window.as_secs(), 5400);
    assert!(!cfg.rules.new_device.enabled);
    let rendered = cfg.render_effective();
    let back = Config::from_toml_str(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(back, cfg);
    assert_eq!(back.render_effective(), rendered);
    // Every rule and section appears, defaults included.
    for key in [
        "[rules.login_failures_user]",
        "[rules.login_failures_source]",
        "[rules.login_success_after_failures]",
        "[rules.new_device]",
        "[rules.new_location]",
        "[rules.admin_change]",
        "[rules.bulk_export]",
        "[rules.export_above_baseline]",
        "[rules.unknown_destination]",
        "[rules.sharing_spike]",
        "[detect]",
        "[evidence]",
        "[ports]",
        "[networks]",
        "[[inventory.dicom]]",
        "192.0.2.7/32",
    ] {
        assert!(rendered.contains(key), "{key} missing from\n{rendered}");
    }
    assert!(Detector::new(&back.detect_config(), None).is_ok());
}

#[test]
fn missing_geoip_database_is_an_error_naming_the_file() {
    let cfg = Config::from_toml_str("[geoip]\ndatabase = \"/nonexistent/GeoLite2-Country.mmdb\"\n").expect("parse");
    let err = Detector::new(&cfg.detect_config(), None).expect_err("missing mmdb");
    assert!(err.to_string().contains("/nonexistent/GeoLite2-Country.mmdb"), "{err}");
    let both = Config::from_toml_str("[geoip]\ndatabase = \"a.mmdb\"\ncsv = \"b.csv\"\n").expect_err("both");
    assert!(both.to_string().starts_with("geoip.csv at line 3"), "{both}");
}
