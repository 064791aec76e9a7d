//! TLS connections: the client's fingerprint (JA4, a device of a login on the same flow), and
//! the bytes an image server sent the client (the HTTPS half of `bulk_export`).
//!
//! The decoder emits one `tls` event per connection when it ends, with its totals, so a
//! download is observed when its connection closes (or times out in the flow table).

use super::{non_empty, Observation, Observer};
use crate::config::canonical_ip;
use pacstap_core::{ProtocolEvent, TlsEvent};

/// JA4 fingerprints are 36 characters; anything past this is not one and is not remembered.
const MAX_JA4: usize = 128;

pub(super) fn connection<'a>(
    o: &Observer<'_>,
    ev: &'a ProtocolEvent,
    t: &'a TlsEvent,
    seen: &mut Vec<Observation<'a>>,
) {
    if let Some(ja4) = t.ja4.as_deref().and_then(non_empty) {
        if ja4.len() <= MAX_JA4 {
            seen.push(Observation::TlsFingerprint { ja4 });
        }
    }
    if t.bytes_toclient == 0 {
        return;
    }
    // Downloads from an image server (`rules.bulk_export.https_servers`, by default the
    // inventory's `pacs` / `archive` nodes, else any internal TLS server); connections between
    // two listed image servers (replication) are not downloads.
    let client = canonical_ip(ev.flow.client.ip);
    let server = canonical_ip(ev.flow.server.ip);
    if !o.inv.is_image_server(server) || (!o.inv.https_any_internal && o.inv.is_image_server(client)) {
        return;
    }
    seen.push(Observation::HttpsDownload {
        bytes: t.bytes_toclient,
        sni: t.sni.as_deref(),
    });
}
