//! The settings the app derives from the configuration for the stages below detection: the
//! decoders' port hints, the wire stage's tunnels (the evidence ring's payload cap is read
//! where the ring is set up, `crate::capture`). Replay, capture and a config reload all take
//! them from here, or the same packets would decode differently.

use super::Config;
use pacstap_proto::ProtoConfig;

/// The decoders' port hints come from the config (CONTRACT §3 `[ports]`); replay and capture
/// must agree on them, or the same packets would decode differently.
pub fn apply_ports(proto: &mut ProtoConfig, config: &Config) {
    proto.dicom_ports = config.ports.dicom.clone();
    proto.http_ports = config.ports.http.clone();
    proto.tls_ports = config.ports.tls.clone();
    proto.hl7_ports = config.ports.hl7.clone();
}

/// The wire stage's tunnel settings from the config's `[decapsulate]` table (which `main`
/// has already overridden with `--decapsulate`).
pub fn wire_config(config: &Config) -> pacstap_wire::WireConfig {
    pacstap_wire::WireConfig {
        enabled: config.decapsulate.enabled,
        vxlan_ports: config.decapsulate.vxlan_ports.clone(),
        geneve_ports: config.decapsulate.geneve_ports.clone(),
    }
}

/// Adds `ports` to `to`, each once (`--dicom-port` over the config's `[ports]`).
pub fn add_ports(to: &mut Vec<u16>, ports: &[u16]) {
    for p in ports {
        if !to.contains(p) {
            to.push(*p);
        }
    }
}

/// The defragmenter's limits from the config's `[defrag]` table (which [`WireOverrides`] has
/// already overridden with `--defrag-memory` / `--defrag-timeout`).
pub fn defrag_config(config: &Config) -> pacstap_defrag::DefragConfig {
    let d = &config.defrag;
    pacstap_defrag::DefragConfig {
        memory: usize::try_from(d.memory).unwrap_or(usize::MAX),
        timeout_v4: d.timeout_v4.0,
        timeout_v6: d.timeout_v6.0,
        max_fragments: usize::try_from(d.max_fragments).unwrap_or(usize::MAX),
        // Fragmented mirror tunnels are held for the tunnels the wire stage peels.
        tunnel_udp_ports: match config.decapsulate.enabled {
            true => {
                let mut ports = config.decapsulate.vxlan_ports.clone();
                add_ports(&mut ports, &config.decapsulate.geneve_ports);
                ports
            }
            false => Vec::new(),
        },
        gre: config.decapsulate.enabled,
    }
}

/// The command-line options that override the config's wire tables (`--decapsulate` over
/// `[decapsulate]`, `--defrag-memory` / `--defrag-timeout` over `[defrag]`). Kept beside the
/// config path so a SIGHUP reload applies them again: the file changes, the command line
/// still wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireOverrides {
    pub decapsulate: Vec<String>,
    pub defrag_memory: Option<u64>,
    /// Seconds, for IPv4 and IPv6 alike.
    pub defrag_timeout: Option<u64>,
}

impl WireOverrides {
    /// Applies the options over `config`; the error is a bad `--decapsulate` spec.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        let d = &mut config.decapsulate;
        let mut wire = pacstap_wire::WireConfig {
            enabled: d.enabled,
            vxlan_ports: std::mem::take(&mut d.vxlan_ports),
            geneve_ports: std::mem::take(&mut d.geneve_ports),
        };
        let applied = self.decapsulate.iter().try_for_each(|spec| wire.apply_spec(spec));
        d.enabled = wire.enabled;
        d.vxlan_ports = wire.vxlan_ports;
        d.geneve_ports = wire.geneve_ports;
        applied.map_err(|e| e.to_string())?;
        if let Some(m) = self.defrag_memory {
            config.defrag.memory = m;
        }
        if let Some(s) = self.defrag_timeout {
            config.defrag.timeout_v4 = pacstap_detect::config::Dur::secs(s);
            config.defrag.timeout_v6 = config.defrag.timeout_v4;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = Config::from_toml_str("[defrag]\nmemory = 1048576\ntimeout_v6 = \"2m\"\n").unwrap();
        assert_eq!(defrag_config(&c).memory, 1 << 20);
        assert_eq!(defrag_config(&c).timeout_v6.as_secs(), 120);
        assert_eq!(defrag_config(&c).timeout_v4.as_secs(), 30, "default kept");
        let o = WireOverrides {
            decapsulate: vec!["vxlan=8472".into()],
            defrag_memory: Some(2 << 20),
            defrag_timeout: Some(10),
        };
        o.apply(&mut c).unwrap();
        let d = defrag_config(&c);
        assert_eq!(
            (d.memory, d.timeout_v4.as_secs(), d.timeout_v6.as_secs()),
            (2 << 20, 10, 10)
        );
        assert_eq!(wire_config(&c).vxlan_ports, [8472]);
        // No options: the file's values stand, the default config's equal the crate's defaults.
        let mut c = Config::default();
        WireOverrides::default().apply(&mut c).unwrap();
        assert_eq!(defrag_config(&c), pacstap_defrag::DefragConfig::default());
        let bad = WireOverrides {
            decapsulate: vec!["vxlan=nope".into()],
            ..Default::default()
        };
        assert!(bad.apply(&mut c).is_err());
    }
}
