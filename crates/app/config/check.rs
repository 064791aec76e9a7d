//! Semantic checks of a parsed configuration (issue 14): what is well-typed TOML but cannot mean
//! what the operator meant. Errors: a user's device that is neither an address, a CIDR range, a
//! MAC nor a `ja4:` fingerprint (a host name there raised a false `new_device` on every login);
//! the same AE listed twice with different addresses (which one is the node?). Warnings: the
//! same AE listed twice alike; an admin / service account that is no inventory user or AE
//! (a typo exempts nobody). `pacstap config check` lists them all with their lines; loading a
//! config for replay or capture refuses the first error.

use super::locate;
use super::{Config, ConfigError, ConfigIssue};
use pacstap_detect::config::AddrMatch;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// How bad a finding is: an error refuses the config, a warning is only shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// One semantic finding, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub issue: ConfigIssue,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{l}: {}", self.issue)
    }
}

/// A MAC address as `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (IEEE 802 EUI-48 notation).
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Config {
    /// Every semantic finding, as `(level, key path, message)`.
    pub(super) fn semantic(&self) -> Vec<(Level, String, String)> {
        let mut out = Vec::new();
        for (i, u) in self.inventory.users.iter().enumerate() {
            for (j, d) in u.devices.iter().enumerate() {
                let t = d.trim();
                if t.to_ascii_lowercase().starts_with("ja4:") || is_mac(t) {
                    continue;
                }
                let problem = match AddrMatch::parse(t) {
                    Ok(AddrMatch::Any) => Some(format!("{t:?} is not a device (an IP, a CIDR range, a MAC or ja4:…)")),
                    Ok(_) => None,
                    Err(e) => Some(e),
                };
                if let Some(m) = problem {
                    out.push((Level::Error, format!("inventory.users[{i}].devices[{j}]"), m));
                }
            }
        }
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.inventory.dicom.iter().enumerate() {
            let ae = n.ae.trim();
            let Some(&f) = first_of.get(ae) else {
                first_of.insert(ae, i);
                continue;
            };
            let same = self.inventory.dicom.get(f).is_some_and(|first| first.ip == n.ip);
            let (level, m) = if same {
                (
                    Level::Warning,
                    format!("AE {ae:?} is listed again (as inventory.dicom[{f}])"),
                )
            } else {
                (
                    Level::Error,
                    format!(
                        "AE {ae:?} is listed twice with different addresses (also inventory.dicom[{f}]); \
                         give one entry all its addresses: ip = [\"…\", \"…\"]"
                    ),
                )
            };
            out.push((level, format!("inventory.dicom[{i}].ae"), m));
        }
        let inv = &self.inventory;
        if !(inv.users.is_empty() && inv.dicom.is_empty()) {
            let known = |s: &str| {
                s.parse::<IpAddr>().is_ok()
                    || inv.users.iter().any(|u| u.name.trim() == s)
                    || inv.dicom.iter().any(|n| n.ae.trim() == s)
            };
            for (key, list) in [
                ("users.admins", &self.users.admins),
                ("users.service_accounts", &self.users.service_accounts),
            ] {
                for (i, name) in list.iter().enumerate() {
                    let t = name.trim();
                    if !known(t) {
                        out.push((
                            Level::Warning,
                            format!("{key}[{i}]"),
                            format!("{t:?} is neither an inventory user nor an inventory AE (a typo exempts nobody)"),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Parse, validate and run the semantic checks, keeping every finding (for
    /// `pacstap config check`). A TOML or validation error is still returned as the error.
    pub fn check_str(s: &str) -> Result<(Config, Vec<Finding>), ConfigError> {
        let cfg = Config::parse_validated(s)?;
        let findings = cfg
            .semantic()
            .into_iter()
            .map(|(level, key, message)| Finding {
                level,
                issue: locate::at_key(s, &key, message),
            })
            .collect();
        Ok((cfg, findings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table-driven: each config gives exactly these findings, `level key-at-line: contains`.
    #[test]
    fn semantic_findings_with_lines() {
        let head = "[networks]\ninternal = [\"10.0.0.0/8\"]\n";
        // (level, located key, text the message contains)
        type Want<'a> = &'a [(Level, &'a str, &'a str)];
        let cases: &[(&str, Want)] = &[
            (
                "[[inventory.users]]\nname = \"rad1\"\ndevices = [\"10.20.30.31\", \"10.20.30.0/24\", \"ja4:t13\", \"AA:bb:cc:dd:ee:ff\", \"fd00::1\"]\n",
                &[],
            ),
            (
                "[[inventory.users]]\nname = \"rad1\"\ndevices = [\"10.20.30.31\", \"10.20.30.999\"]\n",
                &[(Level::Error, "inventory.users[0].devices[1] at line 5", "not a valid IP address")],
            ),
            (
                "[[inventory.users]]\nname = \"rad1\"\ndevices = [\"ws-rad1.example\"]\n",
                &[(Level::Error, "inventory.users[0].devices[0] at line 5", "is a host name")],
            ),
            (
                "[[inventory.users]]\nname = \"rad1\"\ndevices = [\"*\"]\n",
                &[(Level::Error, "inventory.users[0].devices[0] at line 5", "is not a device")],
            ),
            (
                "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.6\"\n",
                &[(Level::Error, "inventory.dicom[1].ae at line 7", "listed twice with different addresses")],
            ),
            (
                "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n",
                &[(Level::Warning, "inventory.dicom[1].ae at line 7", "listed again")],
            ),
            (
                "[users]\nadmins = [\"root\", \"rad1\", \"10.9.9.9\", \"PACS\"]\n[[inventory.users]]\nname = \"rad1\"\n[[inventory.dicom]]\nae = \"PACS\"\n",
                &[(Level::Warning, "users.admins[0] at line 4", "neither an inventory user nor an inventory AE")],
            ),
            // No inventory at all: nothing to compare admins with.
            ("[users]\nadmins = [\"root\"]\n", &[]),
        ];
        for (body, want) in cases {
            let doc = format!("{head}{body}");
            let (_, got) = Config::check_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert_eq!(got.len(), want.len(), "{doc}\n{got:?}");
            for (g, (level, at, contains)) in got.iter().zip(want.iter()) {
                let text = g.issue.to_string();
                assert_eq!(g.level, *level, "{text}");
                assert!(text.starts_with(at), "{text} should start with {at}");
                assert!(text.contains(contains), "{text} should contain {contains}");
            }
            // An error refuses the config for replay and capture; a warning does not.
            let refused = Config::from_toml_str(&doc).is_err();
            assert_eq!(refused, want.iter().any(|w| w.0 == Level::Error), "{doc}");
        }
    }

    /// Addresses are parsed where they are read: a bad `ip` (single or in a list, a host name
    /// or an impossible address) is a located error; lists and CIDRs are accepted.
    #[test]
    fn address_fields_take_ips_lists_and_ranges() {
        let ok = [
            "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\n",
            "[[inventory.dicom]]\nae = \"PACS\"\nip = [\"10.0.0.5\", \"fd00::5\"]\n",
            "[[inventory.dicom]]\nae = \"WS\"\nip = \"10.3.0.0/24\"\n",
            "[[inventory.hl7]]\nip = [\"10.0.0.7\", \"10.0.1.0/28\"]\nport = 2575\n",
        ];
        for doc in ok {
            let c = Config::from_toml_str(doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert_eq!(
                Config::from_toml_str(&c.render_effective()).unwrap(),
                c,
                "round trip {doc}"
            );
        }
        let bad = [
            (
                "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.20.30.999\"\n",
                "inventory.dicom[0].ip at line 3",
                "not a valid IP",
            ),
            (
                "[[inventory.dicom]]\nae = \"PACS\"\nip = \"pacs.example\"\n",
                "inventory.dicom[0].ip at line 3",
                "host name",
            ),
            (
                "[[inventory.dicom]]\nae = \"PACS\"\nip = [\"10.0.0.5\", \"pacs.example\"]\n",
                "inventory.dicom[0].ip",
                "host name",
            ),
            (
                "[[inventory.hl7]]\nip = \"ris\"\n",
                "inventory.hl7[0].ip at line 2",
                "host name",
            ),
            (
                "[[inventory.hl7]]\nip = []\n",
                "inventory.hl7[0].ip at line 2",
                "empty address list",
            ),
        ];
        for (doc, at, contains) in bad {
            let e = Config::from_toml_str(doc).unwrap_err().to_string();
            assert!(e.starts_with(at) && e.contains(contains), "{doc}: {e}");
        }
    }
}
