//! One POST to Alertmanager over HTTP/1.1, plain or TLS, with [`ureq`] (rustls, ring provider):
//! a client that handles timeouts per phase, chunk-free bodies and TLS is not pacstap's job to
//! write. This file maps the options onto ureq's settings and its outcome onto [`PostError`].

use super::payload::capped;
use super::target::Target;
use super::{AlertmanagerError, AlertmanagerOptions};
use std::io;
use std::path::Path;
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

/// The response is read only for its status and an error message: never more than this, head
/// or body. Alertmanager answers with a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// The system's CA bundles, first found wins: they hold the distribution's roots plus the
/// hospital's own CA once an administrator installed it (`update-ca-certificates`,
/// `update-ca-trust`), which is what an internal Alertmanager's certificate chains to.
/// Without any, ureq's built-in Mozilla roots (webpki-roots) apply.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",             // SUSE
    "/etc/ssl/cert.pem",                  // others
];

/// A CA bundle larger than this is not a CA bundle (Debian's is ~220 KB).
const MAX_CA_FILE_BYTES: u64 = 16 << 20;

/// How a POST failed.
#[derive(Debug)]
pub(super) enum PostError {
    /// May succeed later: network trouble, timeout, 408, 429, 5xx.
    Transient(String),
    /// Will not succeed by resending the same alerts: other 4xx.
    Rejected(String),
}

/// The HTTP client of one [`super::AlertmanagerClient`].
pub(super) struct Poster {
    agent: Agent,
    url: String,
    authority: String,
    host: String,
}

impl Poster {
    pub(super) fn new(target: &Target, options: &AlertmanagerOptions) -> Result<Poster, AlertmanagerError> {
        let mut tls = TlsConfig::builder();
        if target.tls {
            tls = tls.root_certs(root_certs(options.ca_file.as_deref())?);
        }
        let config = Agent::config_builder()
            // Non-2xx answers are classified here, with their body for the message.
            .http_status_as_error(false)
            // A POST is not redirected (ureq refuses 307/308 with a body anyway).
            .max_redirects(0)
            // Direct, as before ureq: an `http_proxy` in the environment is for web traffic,
            // not for alerts to an Alertmanager on the management network.
            .proxy(None)
            .user_agent(format!("pacstap/{}", env!("CARGO_PKG_VERSION")))
            // One request per connection, as alerts are rare: nothing idles between batches.
            .max_idle_connections(0)
            .max_response_header_size(MAX_RESPONSE_BYTES)
            .timeout_resolve(Some(options.connect_timeout))
            .timeout_connect(Some(options.connect_timeout))
            .timeout_send_request(Some(options.io_timeout))
            .timeout_send_body(Some(options.io_timeout))
            .timeout_recv_response(Some(options.io_timeout))
            .timeout_recv_body(Some(options.io_timeout))
            .tls_config(tls.build())
            .build();
        Ok(Poster {
            agent: Agent::new_with_config(config),
            url: target.display(),
            authority: target.authority.clone(),
            host: target.host.clone(),
        })
    }

    /// POST `payload`; `deadline_left` (a shutdown in progress) bounds the whole exchange.
    pub(super) fn post(&self, payload: &[u8], deadline_left: Option<Duration>) -> Result<(), PostError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Connection", "close");
        if let Some(left) = deadline_left {
            request = request.config().timeout_global(Some(left)).build();
        }
        match request.send(payload) {
            Ok(response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let body = response
                    .into_body()
                    .into_with_config()
                    .limit(MAX_RESPONSE_BYTES as u64)
                    .lossy_utf8(true)
                    .read_to_string()
                    .unwrap_or_default();
                Err(classify(status, &body))
            }
            Err(e) => Err(PostError::Transient(self.describe(e))),
        }
    }

    /// A failure in words an operator can act on (the last error, and the warning on stderr).
    fn describe(&self, e: ureq::Error) -> String {
        match e {
            ureq::Error::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::NetworkDown
                        | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                format!("connect to {}: {e}", self.authority)
            }
            ureq::Error::Io(e) => format!("talking to {}: {e}", self.authority),
            ureq::Error::HostNotFound => format!("cannot resolve {}", self.host),
            ureq::Error::Timeout(t) => format!("{} did not answer in time ({t})", self.authority),
            e => format!("{}: {e}", self.authority),
        }
    }
}

/// A non-2xx status and the start of its body as a [`PostError`]. Alertmanager answers 400 for
/// a batch in which some alert failed validation (after storing the valid ones): resending the
/// same batch cannot help, so 4xx other than 408 (timeout) and 429 (slow down) is `Rejected`.
pub(super) fn classify(status: u16, body: &str) -> PostError {
    let text = capped(body.trim(), 200);
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    match status {
        408 | 429 => PostError::Transient(message),
        400..=499 => PostError::Rejected(message),
        _ => PostError::Transient(message),
    }
}

/// Roots for https: `ca_file` when given (a PEM bundle: the CA of an internal Alertmanager),
/// else the system bundle, else the built-in Mozilla roots.
fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts, AlertmanagerError> {
    if let Some(path) = ca_file {
        return load_pem_certs(path).map_err(|reason| AlertmanagerError::CaFile {
            path: path.to_owned(),
            reason,
        });
    }
    for bundle in SYSTEM_CA_BUNDLES {
        // A bundle that cannot be read or holds nothing usable is passed over.
        if let Ok(roots) = load_pem_certs(Path::new(bundle)) {
            return Ok(roots);
        }
    }
    Ok(RootCerts::WebPki)
}

fn load_pem_certs(path: &Path) -> Result<RootCerts, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_CA_FILE_BYTES {
        return Err(format!("larger than {MAX_CA_FILE_BYTES} bytes"));
    }
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(RootCerts::from(certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_whether_resending_can_help() {
        assert!(matches!(classify(429, "slow"), PostError::Transient(m) if m == "HTTP 429: slow"));
        assert!(matches!(classify(408, ""), PostError::Transient(m) if m == "HTTP 408"));
        assert!(matches!(classify(404, "no"), PostError::Rejected(_)));
        assert!(matches!(classify(400, " bad \n"), PostError::Rejected(m) if m == "HTTP 400: bad"));
        assert!(matches!(classify(502, "gw"), PostError::Transient(_)));
        assert!(matches!(classify(301, ""), PostError::Transient(_)));
        let long = "x".repeat(1000);
        let PostError::Transient(m) = classify(500, &long) else {
            panic!()
        };
        assert_eq!(m.chars().count(), "HTTP 500: ".len() + 200);
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/alertmanager/testdata");
        assert!(load_pem_certs(&dir.join("ca.pem")).is_ok());
        assert_eq!(
            load_pem_certs(&dir.join("server.key")).err().unwrap(),
            "no PEM certificate in it"
        );
        assert!(load_pem_certs(&dir.join("missing.pem")).is_err());
    }
}
