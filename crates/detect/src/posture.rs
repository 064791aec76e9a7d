//! The posture tracker (issue 13): security-posture findings from the events detection
//! sees: DICOM and HL7 in clear, credentials in clear, TLS below 1.2, expired or self-signed
//! certificates, weak cipher suites, generic accounts, admin actions by users not in
//! `users.admins`. One `posture` event per finding per system the first time it is seen, then
//! at most one per [`REPEAT_AFTER`] of packet time (carrying how often it was seen since), so
//! an appliance reports its posture continuously without an event per connection.
//!
//! Bounded: one entry per (finding, system) up to [`MAX_TRACKED`]; past it the oldest entry
//! is forgotten (that system's finding may then be reported again early: more lines, never
//! more memory). The finding ids, wording and tests are `pacstap_core`'s, shared with the
//! report's checklist.

use crate::bounded_map::BoundedMap;
use pacstap_core::{
    is_generic_name, is_tls_below_1_2, is_weak_cipher, DicomEvent, EventBody, FlowId, PostureEvent, PostureFinding,
    ProtocolEvent, Timestamp, MAX_POSTURE_FLOWS,
};
use std::time::Duration;

/// A finding is repeated at most once a day of packet time: the daily review an operator
/// does, and long enough that a busy clear-text link costs one line a day, not one per
/// association.
pub const REPEAT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// (finding, system) pairs remembered. A site has hundreds of systems, not tens of
/// thousands; 10 000 pairs cover that with room. An entry is ~150 B typically, at most
/// ~900 B (a 256-byte key held twice, map and FIFO order, and 10 flow ids): ~9 MB worst.
pub const MAX_TRACKED: usize = 10_000;

/// Longest system / detail string kept (AE titles are 16 bytes, PS3.5 §6.2; host names 253,
/// RFC 1035 §2.3.4): the wire cannot make a key or an event large.
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone)]
struct Seen {
    /// When the last posture event for this key was emitted.
    emitted: Timestamp,
    /// Events that showed it since (not counting the one emitted).
    count: u64,
    flows: Vec<FlowId>,
}

/// Streaming posture tracker: sees each protocol event once, in packet order.
#[derive(Debug)]
pub struct PostureTracker {
    seen: BoundedMap<(PostureFinding, String), Seen>,
    /// `users.admins`; empty: unknown, so admin actions are not judged.
    admins: Vec<String>,
    emitted: u64,
}

impl PostureTracker {
    pub fn new(admins: Vec<String>) -> Self {
        Self::with_cap(admins, MAX_TRACKED)
    }

    fn with_cap(admins: Vec<String>, cap: usize) -> Self {
        PostureTracker {
            seen: BoundedMap::new(cap),
            admins,
            emitted: 0,
        }
    }

    /// The admins changed (config reload).
    pub fn set_admins(&mut self, admins: Vec<String>) {
        self.admins = admins;
    }

    /// Posture events emitted so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Look at `ev`; append the posture events it causes to `out`.
    pub fn observe(&mut self, ev: &ProtocolEvent, out: &mut Vec<ProtocolEvent>) {
        let account = |u: &str| format!("{} from {}", u, ev.flow.client.ip);
        // The system is the server's address: AE titles, HL7 application names, Host headers
        // and SNI are the client's to choose, so a scanner cycling through them would make a
        // "system" per guess; they go in `detail` instead.
        if matches!(
            ev.body,
            EventBody::Dicom(DicomEvent::Command(_) | DicomEvent::Accepted(_))
                | EventBody::Alert(_)
                | EventBody::Anomaly(_)
                | EventBody::Posture(_)
        ) {
            // Most events (every DIMSE command) say nothing about posture: no string for them.
            return;
        }
        let system = std::net::SocketAddr::new(ev.flow.server.ip, ev.flow.server.port).to_string();
        match &ev.body {
            EventBody::Dicom(DicomEvent::Association(a)) => {
                // Decoded at all means in clear: a DICOM TLS association is a `tls` event.
                let detail = format!("association in clear, called AE {}", a.called_ae);
                self.note(ev, PostureFinding::DicomInClear, &system, "dicom", &detail, out);
                if let Some(id) = &a.user_identity {
                    if id.kind == "username_passcode" {
                        self.note(
                            ev,
                            PostureFinding::HttpCredentialsInClear,
                            &system,
                            "dicom",
                            "DICOM user identity with passcode",
                            out,
                        );
                    }
                    if let Some(u) = id.username.as_deref().filter(|u| is_generic_name(u)) {
                        self.note(ev, PostureFinding::GenericAccountNames, &account(u), "dicom", u, out);
                    }
                }
            }
            EventBody::Hl7(m) => {
                let detail = format!(
                    "MLLP in clear: {} → {}",
                    m.sending_application.as_deref().unwrap_or("?"),
                    m.receiving_application.as_deref().unwrap_or("?")
                );
                self.note(ev, PostureFinding::Hl7InClear, &system, "hl7", &detail, out);
            }
            EventBody::Http(h) => {
                // Basic and form logins carry the password itself; Digest / NTLM a hash of it.
                if let Some(s @ ("basic" | "form")) = h.auth.as_deref() {
                    let detail = match h.hostname.as_deref() {
                        Some(n) => format!("{s}, host {n}"),
                        None => s.to_string(),
                    };
                    self.note(
                        ev,
                        PostureFinding::HttpCredentialsInClear,
                        &system,
                        "http",
                        &detail,
                        out,
                    );
                }
                if let Some(u) = h.user.as_deref() {
                    if is_generic_name(u) {
                        self.note(ev, PostureFinding::GenericAccountNames, &account(u), "http", u, out);
                    }
                    if let Some(act) = h.admin_action.as_deref() {
                        if !self.admins.is_empty() && !self.admins.iter().any(|a| a == u) {
                            self.note(ev, PostureFinding::UnlistedAdmin, &account(u), "http", act, out);
                        }
                    }
                }
            }
            EventBody::Tls(t) => {
                let sni = |d: &str| match t.sni.as_deref() {
                    Some(n) => format!("{d}, SNI {n}"),
                    None => d.to_string(),
                };
                if let Some(v) = t.version.as_deref().filter(|v| is_tls_below_1_2(v)) {
                    self.note(ev, PostureFinding::TlsBelow12, &system, "tls", &sni(v), out);
                }
                if let Some(c) = t.cipher_suite.as_deref().filter(|c| is_weak_cipher(c)) {
                    self.note(ev, PostureFinding::WeakCiphers, &system, "tls", &sni(c), out);
                }
                if let Some(cert) = &t.certificate {
                    let expired = cert.not_after.is_some_and(|na| na < ev.ts);
                    let self_signed = matches!((&cert.subject, &cert.issuer), (Some(s), Some(i)) if s == i);
                    if expired || self_signed {
                        let what = match (expired, self_signed) {
                            (true, true) => "expired, self-signed",
                            (true, false) => "expired",
                            _ => "self-signed",
                        };
                        let detail = format!("{what}: {}", cert.subject.as_deref().unwrap_or("?"));
                        self.note(ev, PostureFinding::Certificates, &system, "tls", &detail, out);
                    }
                }
            }
            EventBody::Dicom(DicomEvent::Command(_) | DicomEvent::Accepted(_))
            | EventBody::Alert(_)
            | EventBody::Anomaly(_)
            | EventBody::Posture(_) => {}
        }
    }

    fn note(
        &mut self,
        ev: &ProtocolEvent,
        finding: PostureFinding,
        system: &str,
        protocol: &'static str,
        detail: &str,
        out: &mut Vec<ProtocolEvent>,
    ) {
        let key = (finding, clip(system));
        let (count, flows) = match self.seen.get(&key) {
            Some(s) if ev.ts.since(s.emitted) < REPEAT_AFTER => {
                let mut s = s.clone();
                s.count = s.count.saturating_add(1);
                if s.flows.len() < MAX_POSTURE_FLOWS && !s.flows.contains(&ev.flow.id) {
                    s.flows.push(ev.flow.id);
                }
                self.seen.insert(key, s);
                return;
            }
            Some(s) => {
                let mut flows = s.flows.clone();
                if flows.len() < MAX_POSTURE_FLOWS && !flows.contains(&ev.flow.id) {
                    flows.push(ev.flow.id);
                }
                (s.count.saturating_add(1), flows)
            }
            None => (1, vec![ev.flow.id]),
        };
        self.seen.insert(
            key.clone(),
            Seen {
                emitted: ev.ts,
                count: 0,
                flows: Vec::new(),
            },
        );
        self.emitted += 1;
        out.push(ProtocolEvent {
            ts: ev.ts,
            flow: ev.flow,
            body: EventBody::Posture(PostureEvent {
                finding,
                system: key.1,
                protocol,
                detail: clip(detail),
                flow_ids: flows,
                count,
            }),
        });
    }
}

/// At most [`MAX_TEXT`] bytes, cut on a character boundary.
fn clip(s: &str) -> String {
    crate::text::truncate(s, MAX_TEXT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assoc, event, flow, http, http_ev, SEC};
    use pacstap_core::{TlsCertificate, TlsEvent};

    fn postures(out: &[ProtocolEvent]) -> Vec<&PostureEvent> {
        out.iter()
            .filter_map(|e| match &e.body {
                EventBody::Posture(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dicom_in_clear_is_reported_once_per_system_then_again_after_a_day() {
        let mut t = PostureTracker::new(vec![]);
        let mut out = Vec::new();
        let pacs = flow(1, "10.0.0.5:40000", "10.0.0.10:104");
        let other = flow(2, "10.0.0.6:40000", "10.0.0.11:11112");
        for i in 0..5 {
            t.observe(&assoc(i * 60 * SEC, pacs, "CT1", "PACS", true, None), &mut out);
        }
        t.observe(&assoc(10 * SEC, other, "CT1", "ARCHIVE", true, None), &mut out);
        let p = postures(&out);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].finding, PostureFinding::DicomInClear);
        assert_eq!(p[0].system, "10.0.0.10:104");
        assert_eq!(p[0].detail, "association in clear, called AE PACS");
        assert_eq!(p[0].count, 1);
        assert_eq!(p[1].system, "10.0.0.11:11112");
        // 23 h later: still quiet; 24 h after the first: once more, counting the 4 + 1 since.
        t.observe(&assoc(23 * 3600 * SEC, pacs, "CT1", "PACS", true, None), &mut out);
        assert_eq!(postures(&out).len(), 2);
        t.observe(&assoc(24 * 3600 * SEC, pacs, "CT1", "PACS", true, None), &mut out);
        let p = postures(&out);
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].system, "10.0.0.10:104");
        assert_eq!(p[2].count, 6);
        assert_eq!(p[2].flow_ids, vec![FlowId(1)]);
        assert_eq!(t.emitted(), 3);
    }

    #[test]
    fn credentials_generic_names_and_unlisted_admins() {
        let mut t = PostureTracker::new(vec!["boss".into()]);
        let mut out = Vec::new();
        let f = flow(3, "10.0.0.7:50000", "10.0.0.10:8042");
        let mut h = http(0, f, "/modalities/X", 200, Some("admin"));
        h.2.admin_action = Some("orthanc_modality_config".into());
        t.observe(&http_ev(h), &mut out);
        let mut h = http(SEC, f, "/modalities/X", 200, Some("boss"));
        h.2.admin_action = Some("orthanc_modality_config".into());
        t.observe(&http_ev(h), &mut out);
        // A DICOM passcode in clear is a credential in clear too.
        t.observe(
            &assoc(
                2 * SEC,
                flow(4, "10.0.0.7:50001", "10.0.0.10:104"),
                "WS",
                "PACS",
                true,
                Some("rad1"),
            ),
            &mut out,
        );
        let got: Vec<(&str, &str, &str)> = postures(&out)
            .iter()
            .map(|p| (p.finding.id(), p.system.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("http_credentials_in_clear", "10.0.0.10:8042", "basic"),
                ("generic_account_names", "admin from 10.0.0.7", "admin"),
                ("unlisted_admin", "admin from 10.0.0.7", "orthanc_modality_config"),
                (
                    "dicom_in_clear",
                    "10.0.0.10:104",
                    "association in clear, called AE PACS"
                ),
                (
                    "http_credentials_in_clear",
                    "10.0.0.10:104",
                    "DICOM user identity with passcode"
                ),
            ]
        );
        // Without users.admins nobody is judged.
        let mut t = PostureTracker::new(vec![]);
        let mut out = Vec::new();
        let mut h = http(0, f, "/modalities/X", 200, Some("rad1"));
        h.2.admin_action = Some("orthanc_modality_config".into());
        t.observe(&http_ev(h), &mut out);
        assert!(postures(&out)
            .iter()
            .all(|p| p.finding != PostureFinding::UnlistedAdmin));
    }

    #[test]
    fn tls_versions_ciphers_and_certificates() {
        let mut t = PostureTracker::new(vec![]);
        let mut out = Vec::new();
        let tls = TlsEvent {
            sni: Some("pacs.example".into()),
            version: Some("TLS 1.0".into()),
            cipher_suite: Some("TLS_RSA_WITH_RC4_128_SHA".into()),
            certificate: Some(TlsCertificate {
                subject: Some("CN=pacs".into()),
                issuer: Some("CN=pacs".into()),
                not_after: Some(pacstap_core::Timestamp(0)),
                ..Default::default()
            }),
            ..Default::default()
        };
        t.observe(
            &event(0, flow(5, "10.0.0.8:1", "10.0.0.12:443"), EventBody::Tls(tls)),
            &mut out,
        );
        let got: Vec<(&str, &str, &str)> = postures(&out)
            .iter()
            .map(|p| (p.finding.id(), p.system.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("tls_below_1_2", "10.0.0.12:443", "TLS 1.0, SNI pacs.example"),
                (
                    "weak_ciphers",
                    "10.0.0.12:443",
                    "TLS_RSA_WITH_RC4_128_SHA, SNI pacs.example"
                ),
                ("certificates", "10.0.0.12:443", "expired, self-signed: CN=pacs"),
            ]
        );
        // TLS 1.3 with a good suite and no certificate in clear: nothing.
        let good = TlsEvent {
            version: Some("TLS 1.3".into()),
            cipher_suite: Some("TLS_AES_128_GCM_SHA256".into()),
            ..Default::default()
        };
        let n = out.len();
        t.observe(
            &event(0, flow(6, "10.0.0.8:2", "10.0.0.13:443"), EventBody::Tls(good)),
            &mut out,
        );
        assert_eq!(out.len(), n);
    }

    #[test]
    fn memory_is_capped_with_a_hundred_thousand_systems() {
        let mut t = PostureTracker::new(vec![]);
        let mut out = Vec::new();
        for i in 0..100_000u32 {
            let server = format!("10.{}.{}.{}:104", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
            let f = flow(u64::from(i), "192.168.0.1:40000", &server);
            assert!(server.parse::<std::net::SocketAddr>().is_ok());
            t.observe(&assoc(i64::from(i), f, "CT1", "PACS", true, None), &mut out);
        }
        assert_eq!(t.seen.len(), MAX_TRACKED);
        // Each system was new when seen: one event each, none lost.
        assert_eq!(out.len(), 100_000);
        // A key or detail longer than the cap is cut: the wire cannot grow an entry.
        let long = "A".repeat(10_000);
        t.observe(
            &assoc(0, flow(1, "192.168.0.1:1", "10.0.0.1:105"), "CT1", &long, true, None),
            &mut out,
        );
        match &out.last().unwrap().body {
            EventBody::Posture(p) => assert_eq!(p.detail.len(), MAX_TEXT),
            b => panic!("{b:?}"),
        }
        // A client cycling called AE titles against one server is one system.
        let n = out.len();
        for i in 0..1000 {
            let ae = format!("GUESS{i}");
            t.observe(
                &assoc(1, flow(2, "192.168.0.2:1", "10.0.0.1:105"), "X", &ae, false, None),
                &mut out,
            );
        }
        assert_eq!(out.len(), n);
    }
}
