//! The one stream every sensor writes and the central detector reads: its name, subjects and
//! retention, shared by both sides so whichever starts first creates it the same way.

use std::time::Duration;

/// Default stream name (`[publish] stream` / `--stream`).
pub const DEFAULT_STREAM: &str = "PACSTAP";
/// Default subject prefix: events go to `pacstap.<host>.<event_type>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "pacstap";
/// Header carrying the per-sensor, per-run unique event id, which JetStream uses to store a
/// retried publish only once (within [`StreamSettings::duplicate_window`]).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// How the events stream is laid out; both sides create it with [`ensure_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: String,
    pub subject_prefix: String,
    /// Copies kept by a JetStream cluster (1 on a single server; 3 on a 3-node cluster).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id`: a sensor's retries after an outage
    /// shorter than this are stored once.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: DEFAULT_STREAM.to_string(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl StreamSettings {
    /// The subject one event is published on. `host` and `event_type` are made subject-safe
    /// (a `.`, `*`, `>` or space in a host name would change the subject's meaning).
    pub fn subject(&self, host: &str, event_type: &str) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            subject_token(host),
            subject_token(event_type)
        )
    }

    /// Every subject of the stream (`<prefix>.>`).
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}

/// One subject token: characters that carry meaning in a NATS subject become `_`; empty
/// becomes `_`.
pub fn subject_token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() {
        "_".to_string()
    } else {
        t
    }
}

/// Creates the stream if it does not exist (file storage, limits retention), or returns the
/// existing one unchanged.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    settings: &StreamSettings,
) -> Result<async_nats::jetstream::stream::Stream, async_nats::jetstream::context::CreateStreamError> {
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: settings.name.clone(),
        subjects: vec![settings.all_subjects()],
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_cannot_change_the_subject_shape() {
        let s = StreamSettings::default();
        assert_eq!(s.subject("site-a", "dicom"), "pacstap.site-a.dicom");
        assert_eq!(s.subject("a.b *>", "alert"), "pacstap.a_b___.alert");
        assert_eq!(s.subject("", "alert"), "pacstap._.alert");
        assert_eq!(s.all_subjects(), "pacstap.>");
    }
}
