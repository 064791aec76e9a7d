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
    // Bytes sent, not only seen: a capture that lost or cut frames (a header-only capture
    // keeps a few percent of a download) would otherwise hide most of a bulk download.
    let bytes = t.bytes_sent_toclient();
    if bytes == 0 {
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
        bytes,
        sni: t.sni.as_deref(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observed;
    use crate::testkit::*;
    use crate::Detector;
    use pacstap_core::EventBody;

    fn tls(f: pacstap_core::FlowMeta, ja4: Option<String>, bytes: u64) -> ProtocolEvent {
        let t = TlsEvent {
            ja4,
            sni: Some("pacs.example".into()),
            bytes_toclient: bytes,
            ..Default::default()
        };
        event(0, f, EventBody::Tls(t))
    }

    #[test]
    fn a_download_from_an_image_server_is_observed_with_its_bytes() {
        let toml = "[[inventory.dicom]]\nae = \"PACS\"\nip = \"10.0.0.5\"\nrole = \"pacs\"\n";
        let d = Detector::new(&config(toml), None).unwrap();
        let from_pacs = tls(flow(1, "10.0.0.9:40000", "10.0.0.5:443"), None, 5_000);
        let seen = observed(&d, &from_pacs);
        assert!(matches!(
            seen[..],
            [Observation::HttpsDownload {
                bytes: 5_000,
                sni: Some("pacs.example")
            }]
        ));
        // Another internal server is no image server once the inventory names one.
        let elsewhere = tls(flow(2, "10.0.0.9:40000", "10.0.0.6:443"), None, 5_000);
        assert!(observed(&d, &elsewhere).is_empty());
        // Bytes the capture lost (or cut: a header-only capture) were sent all the same.
        let mut cut = tls(flow(3, "10.0.0.9:40000", "10.0.0.5:443"), None, 300);
        if let EventBody::Tls(t) = &mut cut.body {
            t.gap_bytes_toclient = 4_700;
        }
        assert!(matches!(
            observed(&d, &cut)[..],
            [Observation::HttpsDownload { bytes: 5_000, .. }]
        ));
    }

    #[test]
    fn only_fingerprints_of_plausible_length_are_kept() {
        let d = Detector::new(&config(""), None).unwrap();
        let f = flow(1, "10.0.0.9:40000", "10.0.0.5:443");
        let ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
        let ok = tls(f, Some(ja4.into()), 0);
        assert!(matches!(observed(&d, &ok)[..], [Observation::TlsFingerprint { ja4: j }] if j == ja4));
        let long = tls(f, Some("x".repeat(MAX_JA4 + 1)), 0);
        assert!(observed(&d, &long).is_empty());
    }
}
