//! A real `nats-server -js` for the JetStream tests (issue 15): one server with JetStream on a
//! free loopback port and its own temporary store directory, stopped and restarted on the same
//! port and directory (an outage the clients must ride through), killed and its directory
//! removed when the guard drops, even when the test fails.
//!
//! Use from a test file with `#[path = "common/nats.rs"] mod nats;` (std only, no crate).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `nats-server` can be run here (tests skip with a message when not).
pub fn available() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free TCP port on loopback (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// One `nats-server -js` process with its store directory.
pub struct NatsServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory, and waits until it accepts
    /// connections.
    pub fn start() -> NatsServer {
        let dir = std::env::temp_dir().join(format!("pacstap-nats-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create the store directory");
        Self::start_at(free_port(), dir)
    }

    /// A server that is not running yet: `port` and store directory reserved; [`Self::restart`]
    /// starts it (for "the server is away when the sensor starts").
    pub fn reserved() -> NatsServer {
        let mut s = Self::start();
        s.stop();
        s
    }

    fn start_at(port: u16, dir: PathBuf) -> NatsServer {
        let mut s = NatsServer { port, dir, child: None };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGKILL: an abrupt outage; JetStream recovers its store on restart).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port and store directory, waiting until it accepts
    /// connections (panics after 10 s).
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.join("js"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
