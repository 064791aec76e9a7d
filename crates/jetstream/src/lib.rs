//! pacstap's events over NATS JetStream (issue 15): sensors publish every event to
//! `<prefix>.<host>.<event_type>`, a central `pacstap detect --from nats://…` reads all of
//! them through one durable pull consumer. JetStream, not something home-made, because it
//! already is the distributed part: clustered, persistent, replicated streams, durable
//! consumers and de-duplication by `Nats-Msg-Id`.
//!
//! The async runtime (tokio, for `async-nats`) is confined to the threads this crate starts:
//! the decoding and detection threads only see bounded channels.

pub mod checkpoint;
pub mod consume;
pub mod consume_central;
pub mod publish;
mod publish_worker;
pub mod stream;

pub use pacstap_core::PublishTotals;
pub use publish::{PublishCounters, PublishSettings, Publisher, TlsSettings};
