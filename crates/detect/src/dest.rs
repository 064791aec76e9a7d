//! Where data went: the destination of an export or a transfer (ARCHITECTURE "Detection
//! semantics": the AE / IP that received the data is the destination), in the two forms an
//! alert names it — the evidence list (`evidence.destinations`, compact and sortable by a SIEM)
//! and the summary sentence (as the summary has always worded it).

use crate::config::canonical_ip;
use crate::name::Name;
use std::net::{IpAddr, SocketAddr};

/// A receiver of images or messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    /// A DICOM AE (a C-MOVE's move destination, a C-STORE's called AE, a C-GET requester),
    /// with the address it received at when seen, and its listening port when it was the
    /// server of that connection (a requester's port is ephemeral and not named).
    Ae {
        ae: Name,
        ip: Option<IpAddr>,
        port: Option<u16>,
    },
    /// A client that downloaded (WADO-RS / WADO-URI, HTTPS, an AE-less C-GET requester).
    Client(IpAddr),
    /// A server that was sent data (an HL7 receiver, a STOW-RS server); port when known.
    Server(IpAddr, Option<u16>),
}

impl Dest {
    pub(crate) fn ae(ae: &str, ip: Option<IpAddr>, port: Option<u16>) -> Dest {
        Dest::Ae {
            ae: Name::new(ae),
            ip: ip.map(canonical_ip),
            port,
        }
    }

    /// The `evidence.destinations` entry: `EXTPACS (198.51.100.7:104)`, `WS2 (10.20.30.32)`,
    /// `EXTPACS`, `10.20.30.31`, `198.51.100.7:2575`, `[2001:db8::7]:2575`.
    pub(crate) fn evidence(&self) -> String {
        match self {
            Dest::Ae { ae, ip: Some(ip), port } => format!("{} ({})", ae.as_str(), addr(*ip, *port)),
            Dest::Ae { ae, ip: None, .. } => ae.as_str().to_string(),
            Dest::Client(ip) => canonical_ip(*ip).to_string(),
            Dest::Server(ip, port) => addr(*ip, *port),
        }
    }

    /// The summary's wording: `AE EXTPACS (198.51.100.7)`, `client 10.20.30.31`.
    pub(crate) fn summary(&self) -> String {
        match self {
            Dest::Ae { ae, ip: Some(ip), .. } => format!("AE {} ({})", ae.as_str(), canonical_ip(*ip)),
            Dest::Ae { ae, ip: None, .. } => format!("AE {}", ae.as_str()),
            Dest::Client(ip) => format!("client {}", canonical_ip(*ip)),
            Dest::Server(ip, port) => addr(*ip, *port),
        }
    }
}

/// `ip:port` (IPv6 in brackets), or the bare address without a port.
fn addr(ip: IpAddr, port: Option<u16>) -> String {
    let ip = canonical_ip(ip);
    match port {
        Some(p) => SocketAddr::new(ip, p).to_string(),
        None => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn evidence_and_summary_forms() {
        let d = Dest::ae("EXTPACS", Some(ip("198.51.100.7")), Some(104));
        assert_eq!(d.evidence(), "EXTPACS (198.51.100.7:104)");
        assert_eq!(d.summary(), "AE EXTPACS (198.51.100.7)");
        let d = Dest::ae("WS2", Some(ip("::ffff:10.20.30.32")), None);
        assert_eq!(d.evidence(), "WS2 (10.20.30.32)", "IPv4-mapped shown as IPv4");
        assert_eq!(Dest::ae("EXTPACS", None, Some(104)).evidence(), "EXTPACS");
        assert_eq!(Dest::Client(ip("10.20.30.31")).evidence(), "10.20.30.31");
        assert_eq!(Dest::Client(ip("10.20.30.31")).summary(), "client 10.20.30.31");
        assert_eq!(
            Dest::Server(ip("2001:db8::7"), Some(2575)).evidence(),
            "[2001:db8::7]:2575"
        );
        assert_eq!(Dest::Server(ip("198.51.100.7"), None).evidence(), "198.51.100.7");
    }
}
