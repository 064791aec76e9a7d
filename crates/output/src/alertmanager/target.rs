//! `--alertmanager <URL>`: validated once, at construction, so bad usage is reported at startup
//! rather than at the first alert. The WHATWG parser of the `url` crate does the parsing; the
//! checks before it refuse what it would silently repair (it drops tabs and newlines, and accepts
//! credentials, queries and fragments that have no meaning for an API endpoint).

use super::{AlertmanagerError, API_PATH};
use url::{Host, Url};

/// Where alerts go: validated at construction, resolved at each attempt (by ureq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// `https` (TLS, rustls) or `http`.
    pub(super) tls: bool,
    /// Host name or address, without IPv6 brackets.
    pub(super) host: String,
    pub(super) port: u16,
    /// Request path: prefix + [`API_PATH`].
    pub(super) path: String,
    /// `host:port` (IPv6 in brackets): the `Host:` header ureq sends.
    pub(super) authority: String,
}

impl Target {
    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The URL requests go to, port always explicit (also what messages show).
    pub(super) fn display(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.authority, self.path)
    }
}

/// The URL as it may be shown in a message: user info (a password) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_owned(),
    }
}

/// `http[s]://host[:port][/prefix]` → where to POST. Port 80 / 443 by default; a prefix (an
/// Alertmanager behind a path-routing proxy) gets [`API_PATH`] appended unless it already ends
/// with it.
pub(super) fn parse_url(url: &str) -> Result<Target, AlertmanagerError> {
    let url = url.trim();
    let invalid = |reason: &str| AlertmanagerError::InvalidUrl {
        url: redact(url),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("no http:// or https:// scheme"));
    };
    let tls = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err(invalid(&format!("unsupported scheme `{scheme}`")));
    };
    // The WHATWG parser strips tabs and newlines instead of refusing them.
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("spaces or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("a query string or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    if !authority.starts_with('[') && authority.matches(':').count() > 1 {
        return Err(invalid("IPv6 addresses go in brackets, e.g. http://[::1]:9093"));
    }
    let parsed = Url::parse(url).map_err(|e| {
        invalid(match e {
            url::ParseError::EmptyHost => "no host",
            url::ParseError::InvalidPort => "bad port",
            url::ParseError::InvalidIpv6Address => "not an IPv6 address in brackets",
            url::ParseError::InvalidIpv4Address
            | url::ParseError::InvalidDomainCharacter
            | url::ParseError::IdnaError => "not a host name or IPv4 address",
            _ => "not a URL",
        })
    })?;
    let (host, bracketed) = match parsed.host() {
        None => return Err(invalid("no host")),
        Some(Host::Ipv6(a)) => (a.to_string(), true),
        Some(Host::Ipv4(a)) => (a.to_string(), false),
        Some(Host::Domain(d)) => {
            // After IDNA: letters, digits and `-` in labels (RFC 1123 §2.1), `_` as some
            // internal DNS names have. Anything else is not a name a resolver answers.
            if d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                return Err(invalid("not a host name or IPv4 address"));
            }
            (d.to_owned(), false)
        }
    };
    let port = parsed
        .port_or_known_default()
        .filter(|&p| p != 0)
        .ok_or_else(|| invalid("bad port"))?;
    let prefix = parsed.path().trim_end_matches('/');
    // Someone who pasted the whole API URL means that URL.
    let path = if prefix.ends_with(API_PATH) {
        prefix.to_owned()
    } else {
        format!("{prefix}{API_PATH}")
    };
    let authority = if bracketed {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        tls,
        host,
        port,
        path,
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_host_port_and_api_path() {
        let t = parse_url("http://[::1]:9093/x/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 9093, false));
        assert_eq!(t.authority, "[::1]:9093");
        assert_eq!(t.path, "/x/api/v2/alerts");
        // Host names are case-insensitive (RFC 4343); the WHATWG parser lowercases them.
        let t = parse_url(" HTTP://Alertmanager.example ").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("alertmanager.example", 80, API_PATH)
        );
        let t = parse_url("http://am:9093/api/v2/alerts").unwrap();
        assert_eq!(t.path, API_PATH, "a full API URL is taken as it is");
        assert_eq!(parse_url("http://10.0.0.5:9093//").unwrap().path, API_PATH);
        let t = parse_url("https://am.example/alertmanager").unwrap();
        assert_eq!((t.tls, t.port), (true, 443));
        assert_eq!(t.display(), "https://am.example:443/alertmanager/api/v2/alerts");
        let t = parse_url("HTTPS://[2001:db8::5]:9443").unwrap();
        assert_eq!(t.display(), "https://[2001:db8::5]:9443/api/v2/alerts");
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("am.example:9093", "no http:// or https:// scheme"),
            ("ftp://am.example", "unsupported scheme `ftp`"),
            ("http://", "no host"),
            ("http://:9093", "no host"),
            ("http://am:0", "bad port"),
            ("https://am:99999", "bad port"),
            ("http://am:port", "bad port"),
            ("http://am/x?y=1", "a query string or fragment"),
            ("http://am/x#y", "a query string or fragment"),
            (
                "http://::1:9093",
                "IPv6 addresses go in brackets, e.g. http://[::1]:9093",
            ),
            ("http://[::1", "not an IPv6 address in brackets"),
            ("http://[nothost]:9093", "not an IPv6 address in brackets"),
            ("http://am example", "spaces or control characters"),
            ("http://am\r\nX-Injected: 1", "spaces or control characters"),
            ("http://am\tx:9093", "spaces or control characters"),
            ("http://am!x:9093", "not a host name or IPv4 address"),
            (
                "http://admin:s3cret@am:9093",
                "credentials in the URL are not supported",
            ),
        ] {
            match parse_url(bad) {
                Err(AlertmanagerError::InvalidUrl { url, reason: r }) => {
                    assert_eq!(r, reason, "{bad:?}");
                    assert!(!url.contains("s3cret"), "{url}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
