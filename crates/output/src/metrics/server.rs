//! The tiny HTTP server behind `--metrics-listen`: `GET /metrics` and `GET /healthz`.

use super::registry::Metrics;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Requests larger than this are not HTTP GETs a scraper sends; the connection is closed.
const MAX_REQUEST: usize = 8 * 1024;

/// A slow or silent client holds the (single) server thread at most this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics` and `GET /healthz` over HTTP/1.0-style one-request connections, on one thread.
///
/// Deliberately minimal: a scraper every 15 s and an orchestrator's health check are the only
/// clients. Connections are served one at a time, each bounded by [`MAX_REQUEST`] and
/// [`CLIENT_TIMEOUT`], so a misbehaving client can delay a scrape but not exhaust anything.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (errors are the caller's to report: address in use, no permission) and
    /// serves on a background thread.
    pub fn spawn(addr: &str, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pacstap-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        let _ = serve(stream, &metrics);
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn serve(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    // Read the request head (we need only its first line).
    loop {
        let n = match buf.get_mut(len..) {
            Some(rest) if !rest.is_empty() => stream.read(rest)?,
            _ => break,
        };
        if n == 0 {
            break;
        }
        len += n;
        let head = buf.get(..len).unwrap_or(&[]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    let head = buf.get(..len).unwrap_or(&[]);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        ("GET" | "HEAD", "/healthz") => match metrics.health() {
            Ok(()) => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
            Err(reason) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                format!("{reason}\n"),
            ),
        },
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_metrics_healthz_and_nothing_else() {
        let m = Arc::new(Metrics::new().unwrap());
        let server = MetricsServer::spawn("127.0.0.1:0", Arc::clone(&m)).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"));
        assert!(r.contains("# TYPE pacstap_packets_total counter"));
        assert!(get("GET /healthz HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nok\n"));
        m.set_healthy(false);
        assert!(get("GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 503"));
        assert!(get("GET /other HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
        // A request head larger than the cap is answered (405/404) or closed, never buffered.
        let big = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(MAX_REQUEST * 2));
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        let _ = s.write_all(big.as_bytes());
        server.shutdown();
    }

    #[test]
    fn healthz_reports_drops_and_idleness_with_the_reason() {
        let m = Arc::new(Metrics::new().unwrap());
        let server = MetricsServer::spawn("127.0.0.1:0", Arc::clone(&m)).unwrap();
        let get = || {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let mut snap = crate::StatsSnapshot {
            packets: 5,
            ..Default::default()
        };
        m.update(&snap);
        assert!(get().ends_with("\r\n\r\nok\n"));
        snap.kernel_drops = 4;
        m.update(&snap);
        let r = get();
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("\r\n\r\ndropping: 4 frames dropped"), "{r}");
        // An alarm already exceeded (1 ns, no packet since it was set) names idleness first.
        m.set_idle_alarm(Some(Duration::from_nanos(1)));
        let r = get();
        assert!(r.contains("\r\n\r\nidle: no packet"), "{r}");
        server.shutdown();
    }
}
