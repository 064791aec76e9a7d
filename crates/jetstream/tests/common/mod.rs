//! A nats-server for tests: started on a free loopback port, killed on drop (even when the
//! test fails), plus publishing helpers with the sensors' format.
#![allow(dead_code)]

use pacstap_jetstream::stream::{ensure_stream, StreamSettings, MSG_ID_HEADER};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server child, killed (and its store removed) on drop even when the test fails.
pub struct Server {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl Server {
    pub fn start(args: Vec<String>, port: u16) -> Server {
        let mut s = Server {
            child: None,
            port,
            args,
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server on {} never listened", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TempDir(PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pacstap-js-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn have_nats() -> bool {
    let ok = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("nats-server not installed: test skipped");
    }
    ok
}

pub fn single(dir: &Path) -> Server {
    let port = free_port();
    let args = vec![
        "-js".into(),
        "-a".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-sd".into(),
        dir.display().to_string(),
    ];
    Server::start(args, port)
}

/// Publish `ids` as EVE-like lines from `host`.
pub fn publish(servers: &[String], settings: &StreamSettings, host: &str, ids: std::ops::Range<u32>) {
    let lines = ids
        .map(|i| {
            let id = format!("{host}-{i}");
            let body = format!(r#"{{"event_type":"dicom","host":"{host}","event_id":"{id}","n":{i}}}"#);
            (host.to_string(), id, body)
        })
        .collect();
    publish_lines(servers, settings, lines);
}

/// Publish `(host, event_id, body)` to `<prefix>.<host>.dicom` with `Nats-Msg-Id`, awaiting
/// each JetStream ack (retrying while a cluster elects a new leader).
pub fn publish_lines(servers: &[String], settings: &StreamSettings, lines: Vec<(String, String, String)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while ensure_stream(&js, settings).await.is_err() {
            assert!(Instant::now() < deadline, "stream never created");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (host, id, body) in lines {
            loop {
                let mut h = async_nats::HeaderMap::new();
                h.insert(MSG_ID_HEADER, id.as_str());
                let ok = match js
                    .publish_with_headers(settings.subject(&host, "dicom"), h, body.clone().into())
                    .await
                {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "publish of {id} never acked");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        client.flush().await.unwrap();
    });
}
