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
