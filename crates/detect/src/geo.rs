//! Country of an address, from an operator-supplied database: a MaxMind DB (GeoLite2 /
//! GeoIP2 Country or City) or a CSV of `cidr,country` lines. Nothing is ever looked up on the
//! network; without a database `new_location` is skipped silently.

use crate::error::DetectError;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

#[derive(Default)]
pub(crate) enum Geo {
    #[default]
    None,
    Mmdb(Box<maxminddb::Reader<Vec<u8>>>),
    Table(CidrTable),
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Geo::None => f.write_str("Geo::None"),
            Geo::Mmdb(_) => f.write_str("Geo::Mmdb"),
            Geo::Table(t) => write!(f, "Geo::Table({} ranges)", t.len),
        }
    }
}

impl Geo {
    pub(crate) fn open_mmdb(path: &Path) -> Result<Geo, DetectError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| DetectError::GeoIp {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Geo::Mmdb(Box::new(reader)))
    }

    pub(crate) fn open_csv(path: &Path) -> Result<Geo, DetectError> {
        let text = std::fs::read_to_string(path).map_err(|e| DetectError::GeoIp {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        CidrTable::parse(&text)
            .map(Geo::Table)
            .map_err(|(line, message)| DetectError::GeoIp {
                path: path.to_path_buf(),
                message: format!("line {line}: {message}"),
            })
    }

    pub(crate) fn is_some(&self) -> bool {
        !matches!(self, Geo::None)
    }

    /// ISO country code (upper case), if the database has one for the address.
    pub(crate) fn country(&self, ip: IpAddr) -> Option<String> {
        match self {
            Geo::None => None,
            Geo::Table(t) => t.lookup(ip).map(str::to_string),
            Geo::Mmdb(r) => {
                let rec: maxminddb::geoip2::Country<'_> = r.lookup(ip).ok().flatten()?;
                rec.country
                    .and_then(|c| c.iso_code)
                    .or_else(|| rec.registered_country.and_then(|c| c.iso_code))
                    .map(|s| s.to_ascii_uppercase())
            }
        }
    }
}

/// Longest-prefix match over CIDR ranges: one hash map per prefix length.
#[derive(Debug, Default)]
pub(crate) struct CidrTable {
    v4: Vec<(u8, HashMap<u32, Box<str>>)>,
    v6: Vec<(u8, HashMap<u128, Box<str>>)>,
    len: usize,
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(len.min(32))))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len.min(128))))
    }
}

impl CidrTable {
    /// `cidr,country[,…]` per line; blank lines, `#` comments and a header line (the first
    /// line that is not blank or a comment, when its first field is not an address) are
    /// skipped, so a table may start with comments saying where it came from.
    pub(crate) fn parse(text: &str) -> Result<CidrTable, (usize, String)> {
        let mut t = CidrTable::default();
        let mut first = true;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let header_allowed = std::mem::replace(&mut first, false);
            let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
            let net = fields.next().unwrap_or_default();
            let country = fields.next().unwrap_or_default();
            let parsed = net.parse::<IpNet>().or_else(|_| net.parse::<IpAddr>().map(IpNet::from));
            let Ok(net) = parsed else {
                if header_allowed {
                    continue; // header
                }
                return Err((i + 1, format!("expected an address range, found {net:?}")));
            };
            if country.is_empty() || country.len() > 8 {
                return Err((i + 1, format!("expected a country code, found {country:?}")));
            }
            t.insert(net, &country.to_ascii_uppercase());
        }
        Ok(t)
    }

    fn insert(&mut self, net: IpNet, country: &str) {
        let net = net.trunc();
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = mask4(u32::from(n.network()), len);
                match self.v4.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, m)) => {
                        m.insert(key, country.into());
                    }
                    None => {
                        self.v4.push((len, HashMap::from([(key, country.into())])));
                        self.v4.sort_by_key(|e| std::cmp::Reverse(e.0));
                    }
                }
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let key = mask6(u128::from(n.network()), len);
                match self.v6.iter_mut().find(|(l, _)| *l == len) {
                    Some((_, m)) => {
                        m.insert(key, country.into());
                    }
                    None => {
                        self.v6.push((len, HashMap::from([(key, country.into())])));
                        self.v6.sort_by_key(|e| std::cmp::Reverse(e.0));
                    }
                }
            }
        }
        self.len += 1;
    }

    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<&str> {
        match crate::config::canonical_ip(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, m)| m.get(&mask4(a, *len))).map(|s| &**s)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, m)| m.get(&mask6(a, *len))).map(|s| &**s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_longest_prefix() {
        let t = CidrTable::parse("network,country\n# test\n203.0.113.0/24,fr\n203.0.113.128/25,DE\n2001:db8::/32,NL\n")
            .unwrap();
        assert_eq!(t.lookup("203.0.113.5".parse().unwrap()), Some("FR"));
        assert_eq!(t.lookup("203.0.113.200".parse().unwrap()), Some("DE"));
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()), Some("NL"));
        assert_eq!(t.lookup("::ffff:203.0.113.5".parse().unwrap()), Some("FR"));
        assert_eq!(t.lookup("198.51.100.1".parse().unwrap()), None);
        assert_eq!(CidrTable::parse("1.2.3.0/24,FR\nbogus,DE\n").unwrap_err().0, 2);
        // Comments may come before the header; only one header.
        let t = CidrTable::parse("# synthetic\n\n# more\nnetwork,country\n203.0.113.0/24,XA\n").unwrap();
        assert_eq!(t.lookup("203.0.113.9".parse().unwrap()), Some("XA"));
        assert_eq!(
            CidrTable::parse("# c\nnetwork,country\nnetwork,country\n")
                .unwrap_err()
                .0,
            3
        );
    }
}
