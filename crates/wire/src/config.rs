//! Which encapsulations the decoder peels: [`WireConfig`], and the `--decapsulate` syntax.

/// What the decoder decapsulates. GRE (with ERSPAN), MPLS, PPPoE and the switch tags (VN-Tag,
/// E-Tag, Cisco MetaData) are recognised by their IP protocol or EtherType, which nothing else
/// uses, so they need no setting; VXLAN and Geneve are recognised only by a UDP destination
/// port, which any application may use, so their ports are a setting (defaults: the IANA ports, VXLAN 4789 per RFC 7348 §5, Geneve 6081 per RFC 8926
/// §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireConfig {
    /// Peel tunnels at all (`--decapsulate none` turns every kind off).
    pub enabled: bool,
    pub vxlan_ports: Vec<u16>,
    pub geneve_ports: Vec<u16>,
}

/// IANA's VXLAN port (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;
/// IANA's Geneve port (RFC 8926 §3.3).
pub const GENEVE_PORT: u16 = 6081;

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            enabled: true,
            vxlan_ports: vec![VXLAN_PORT],
            geneve_ports: vec![GENEVE_PORT],
        }
    }
}

/// A `--decapsulate` value that does not parse.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("--decapsulate {spec:?}: {reason} (expected none, default, vxlan=PORT[,PORT…] or geneve=PORT[,PORT…]; vxlan=none turns VXLAN off)")]
pub struct DecapsulateSpecError {
    pub spec: String,
    pub reason: String,
}

impl WireConfig {
    /// Applies one `--decapsulate` value: `none` (no decapsulation at all), `default`,
    /// `vxlan=4789,8472` / `geneve=6081` (that kind's UDP ports, replacing the previous list;
    /// `vxlan=none` turns it off). Naming ports turns decapsulation back on.
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), DecapsulateSpecError> {
        let err = |reason: &str| DecapsulateSpecError {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        match spec.trim() {
            "none" => {
                self.enabled = false;
                return Ok(());
            }
            "default" => {
                *self = WireConfig::default();
                return Ok(());
            }
            _ => {}
        }
        let (kind, ports) = spec.split_once('=').ok_or_else(|| err("no `=`"))?;
        let ports: Vec<u16> = match ports.trim() {
            "none" | "" => Vec::new(),
            list => list
                .split(',')
                .map(|p| match p.trim().parse::<u16>() {
                    Ok(0) | Err(_) => Err(err(&format!("{p:?} is not a UDP port"))),
                    Ok(p) => Ok(p),
                })
                .collect::<Result<_, _>>()?,
        };
        match kind.trim() {
            "vxlan" => self.vxlan_ports = ports,
            "geneve" => self.geneve_ports = ports,
            other => {
                return Err(err(&format!(
                    "unknown kind {other:?} (GRE, ERSPAN, MPLS and PPPoE need no port)"
                )))
            }
        }
        self.enabled = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let mut c = WireConfig::default();
        c.apply_spec("vxlan=4789, 8472").unwrap();
        assert_eq!(c.vxlan_ports, [4789, 8472]);
        c.apply_spec("geneve=none").unwrap();
        assert!(c.geneve_ports.is_empty() && c.enabled);
        c.apply_spec("none").unwrap();
        assert!(!c.enabled);
        c.apply_spec("default").unwrap();
        assert_eq!(c, WireConfig::default());
        for bad in ["vxlan", "vxlan=0", "vxlan=70000", "gre=47", "vxlan=1,x"] {
            let e = c.apply_spec(bad).unwrap_err();
            assert!(e.to_string().contains("expected none"), "{e}");
        }
    }
}
