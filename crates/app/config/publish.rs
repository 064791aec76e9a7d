//! `[publish]`: the sensor side of issue 15 — every event also published to NATS JetStream
//! (pacstap-jetstream's `Publisher`). `--publish nats://…` on replay and capture overrides
//! `servers`; with no server in either, nothing is published and the rest is ignored.

use super::Dur;
use pacstap_jetstream::publish::{check_server_url, PublishSettings, TlsSettings, DEFAULT_QUEUE_CAPACITY};
use pacstap_jetstream::stream::StreamSettings;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[publish]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// `nats://HOST:PORT` URLs; several are one cluster. Empty: publish only with `--publish`.
    pub servers: Vec<String>,
    /// The JetStream stream (created if missing, as the central detector does).
    pub stream: String,
    /// Events go to `<subject_prefix>.<host>.<event_type>`.
    pub subject_prefix: String,
    /// The sensor's name (`host` field of every published event). Absent: the machine's
    /// host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A NATS `.creds` file (JWT and NKey seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// Events waiting to be published at most; past it the newest are dropped and counted.
    pub queue_capacity: usize,
    /// At shutdown, how long queued events still have to be acked (then they count dropped).
    pub drain_timeout: Dur,
    /// `false`: events are decoded, written and published, but no rule runs on this sensor
    /// (the central detector decides).
    pub local_detection: bool,
    pub tls: PublishTls,
}

/// `[publish.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PublishTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub require_tls: bool,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            servers: Vec::new(),
            stream: pacstap_jetstream::stream::DEFAULT_STREAM.to_string(),
            subject_prefix: pacstap_jetstream::stream::DEFAULT_SUBJECT_PREFIX.to_string(),
            host: None,
            credentials: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            drain_timeout: Dur(pacstap_jetstream::publish::DEFAULT_DRAIN_TIMEOUT),
            local_detection: true,
            tls: PublishTls::default(),
        }
    }
}

/// Queue bounds: at least one event; at most 10 million (~10 GiB of events at 1 KiB: a typo,
/// not a plan).
pub const QUEUE_CAPACITY: std::ops::RangeInclusive<usize> = 1..=10_000_000;
/// Drain bounds, seconds: 0 (drop what is queued at once) to 10 minutes (past systemd's
/// default stop timeout of 90 s the service would be killed anyway).
pub const DRAIN_SECS: std::ops::RangeInclusive<u64> = 0..=600;

impl PublishConfig {
    /// Checks of `[publish]` (key path, message), called by the config's validation.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, s) in self.servers.iter().enumerate() {
            check_server_url(s).map_err(|m| (format!("publish.servers[{i}]"), m))?;
        }
        let bad_token = |t: &str| t.is_empty() || t.chars().any(|c| matches!(c, '*' | '>') || c.is_whitespace());
        if self.subject_prefix.split('.').any(bad_token) {
            return Err((
                "publish.subject_prefix".into(),
                "must be NATS subject tokens separated by dots, without * > or spaces".into(),
            ));
        }
        // JetStream stream names may not hold these (they become file names and subjects).
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
        {
            return Err((
                "publish.stream".into(),
                "a stream name has no . * > / \\ or spaces".into(),
            ));
        }
        if self.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err((
                "publish.host".into(),
                "must not be empty (leave it out for the host name)".into(),
            ));
        }
        if !QUEUE_CAPACITY.contains(&self.queue_capacity) {
            return Err(("publish.queue_capacity".into(), "must be 1 to 10000000".into()));
        }
        if !DRAIN_SECS.contains(&self.drain_timeout.as_secs()) {
            return Err(("publish.drain_timeout".into(), "must be 0s to 10m".into()));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err((
                "publish.tls.key".into(),
                "give both publish.tls.cert and publish.tls.key, or neither".into(),
            ));
        }
        Ok(())
    }

    /// Relative paths (credentials, TLS files) against the config file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let tls = &mut self.tls;
        for p in [&mut self.credentials, &mut tls.ca, &mut tls.cert, &mut tls.key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The publisher's settings, with `servers` (from `--publish`, or this table's).
    pub fn settings(&self, servers: Vec<String>) -> PublishSettings {
        let host = self
            .host
            .clone()
            .unwrap_or_else(pacstap_jetstream::publish::default_host);
        let mut s = PublishSettings::new(servers, host);
        s.stream = StreamSettings {
            name: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            ..StreamSettings::default()
        };
        s.credentials = self.credentials.clone();
        s.tls = TlsSettings {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
            require_tls: self.tls.require_tls,
        };
        s.queue_capacity = self.queue_capacity;
        s.drain_timeout = self.drain_timeout.0;
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn publish_table_reads_and_round_trips() {
        let c = Config::from_toml_str(
            "[publish]\nservers = [\"nats://10.0.0.5:4222\", \"nats://10.0.0.6:4222\"]\nhost = \"site-a\"\n\
             queue_capacity = 500\ndrain_timeout = \"3s\"\nlocal_detection = false\n\
             [publish.tls]\nca = \"/etc/pacstap/ca.pem\"\nrequire_tls = true\n",
        )
        .unwrap();
        assert_eq!(c.publish.servers.len(), 2);
        assert!(!c.publish.local_detection);
        let s = c.publish.settings(c.publish.servers.clone());
        assert_eq!(s.host, "site-a");
        assert_eq!(s.queue_capacity, 500);
        assert_eq!(s.drain_timeout.as_secs(), 3);
        assert!(s.tls.require_tls);
        assert_eq!(s.stream.subject("site-a", "alert"), "pacstap.site-a.alert");
        assert_eq!(Config::from_toml_str(&c.render_effective()).unwrap(), c);
        let d = Config::default();
        assert!(d.publish.servers.is_empty() && d.publish.local_detection);
        assert_eq!(Config::from_toml_str(&d.render_effective()).unwrap(), d);
    }

    #[test]
    fn a_bad_publish_setting_names_its_key_and_line() {
        let err = |s: &str| Config::from_toml_str(s).unwrap_err().to_string();
        let e = err("[publish]\nservers = [\"nats://a:4222\",\n  \"http://b:4222\"]\n");
        assert!(e.starts_with("publish.servers[1] at line 3"), "{e}");
        assert!(e.contains("expected nats://"), "{e}");
        let e = err("[publish]\nservers = [\"nats://a\"]\n");
        assert!(e.starts_with("publish.servers[0] at line 2"), "{e}");
        let e = err("\n[publish]\nqueue_capacity = 0\n");
        assert!(e.starts_with("publish.queue_capacity at line 3"), "{e}");
        let e = err("[publish]\nsubject_prefix = \"a.*\"\n");
        assert!(e.starts_with("publish.subject_prefix at line 2"), "{e}");
        let e = err("[publish]\nstream = \"A.B\"\n");
        assert!(e.starts_with("publish.stream at line 2"), "{e}");
        let e = err("[publish.tls]\ncert = \"c.pem\"\n");
        assert!(e.starts_with("publish.tls.key"), "{e}");
        let e = err("[publish]\nsevers = []\n");
        assert!(e.contains("publish.severs"), "{e}");
    }
}
