//! The per-connection TLS state: what the hellos, certificate and records of both directions
//! have shown (the session), and the sink through which one direction's record walker
//! reports to it.

use super::event::certificate_record;
use super::parser::{alert_name, cipher_suite_name, hex, version, version_string};
use super::stream::RecordSink;
use super::{
    fingerprint, parse_certificate, parse_client_hello, parse_client_hello_prefix, parse_server_hello, ClientHello,
    ContentType, HandshakeType, RecordHeader, TlsAnomaly,
};
use crate::decoder::at_mut;
use crate::Ctx;
use pacstap_core::{Direction, TlsEvent};

/// What the connection has shown so far.
#[derive(Debug, Default)]
pub(super) struct Session {
    pub(super) event: TlsEvent,
    pub(super) client_hello: bool,
    pub(super) client_session_id: Vec<u8>,
    /// A ServerHello (not a HelloRetryRequest) was read.
    pub(super) server_hello: bool,
    pub(super) negotiated: Option<u16>,
    /// ChangeCipherSpec sent, per direction.
    pub(super) ccs: [bool; 2],
    /// Application data records sent after the ServerHello (or at all, midstream), per direction.
    pub(super) app_data: [bool; 2],
    pub(super) data_bytes: [u64; 2],
    pub(super) anomalies_emitted: u32,
}

impl Session {
    pub(super) fn anomaly(&mut self, ctx: &mut Ctx<'_>, name: TlsAnomaly, detail: String) {
        ctx.flow_anomaly(&mut self.anomalies_emitted, name, Some(detail));
    }

    pub(super) fn client_hello(&mut self, ctx: &mut Ctx<'_>, body: &[u8], in_sync: bool) {
        let Some(ch) = parse_client_hello(body) else {
            if in_sync {
                self.anomaly(ctx, TlsAnomaly::MalformedClientHello, format!("{} bytes", body.len()));
            }
            return;
        };
        if ch.malformed > 0 {
            self.anomaly(
                ctx,
                TlsAnomaly::MalformedExtension,
                format!("client_hello: {}", ch.malformed),
            );
        }
        let (hash, string) = fingerprint::ja3(&ch);
        self.event.ja3 = Some(hash);
        self.event.ja3_string = Some(string);
        self.event.ja4 = Some(fingerprint::ja4(&ch));
        self.take_hello(ctx, ch);
    }

    /// What a ClientHello, whole or cut, tells besides its fingerprints.
    fn take_hello(&mut self, ctx: &mut Ctx<'_>, ch: ClientHello) {
        ctx.stats.tls.client_hellos += 1;
        self.client_hello = true;
        let ev = &mut self.event;
        ev.sni = ch.sni.as_deref().map(|s| String::from_utf8_lossy(s).into_owned());
        ev.alpn = ch
            .alpn
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        ev.client_version = Some(version_string(ch.version));
        self.client_session_id = ch.session_id;
    }

    /// A ClientHello cut by a capture gap (a header-only capture cuts every one longer than
    /// its frames): the server name, offered ALPN and version when the bytes before the hole
    /// hold them. No JA3 / JA4: they need every extension, and a fingerprint of a part would
    /// name a client that does not exist.
    pub(super) fn client_hello_prefix(&mut self, ctx: &mut Ctx<'_>, prefix: &[u8]) {
        if self.client_hello {
            return;
        }
        if let Some(ch) = parse_client_hello_prefix(prefix) {
            self.take_hello(ctx, ch);
        }
    }

    pub(super) fn server_hello(&mut self, ctx: &mut Ctx<'_>, body: &[u8], in_sync: bool) {
        let Some(sh) = parse_server_hello(body) else {
            if in_sync {
                self.anomaly(ctx, TlsAnomaly::MalformedServerHello, format!("{} bytes", body.len()));
            }
            return;
        };
        ctx.stats.tls.server_hellos += 1;
        if sh.malformed > 0 {
            self.anomaly(
                ctx,
                TlsAnomaly::MalformedExtension,
                format!("server_hello: {}", sh.malformed),
            );
        }
        if sh.hello_retry {
            // The real ServerHello follows the client's second ClientHello (RFC 8446 §4.1.4).
            ctx.stats.tls.hello_retry_requests += 1;
            self.event.hello_retry = true;
            return;
        }
        self.server_hello = true;
        let v = sh.negotiated_version();
        self.negotiated = Some(v);
        let ev = &mut self.event;
        ev.version = Some(version_string(v));
        ev.cipher_suite =
            Some(cipher_suite_name(sh.cipher).map_or_else(|| format!("0x{:04x}", sh.cipher), str::to_string));
        ev.cipher_suite_id = Some(format!("0x{:04x}", sh.cipher));
        let (hash, string) = fingerprint::ja3s(&sh);
        ev.ja3s = Some(hash);
        ev.ja3s_string = Some(string);
        ev.alpn_selected = sh.alpn.as_deref().map(|a| String::from_utf8_lossy(a).into_owned());
        ev.session_resumed = if v >= version::TLS_1_3 {
            Some(sh.psk)
        } else if self.client_hello {
            // RFC 5246 §7.4.1.3 (and RFC 5077 §3.4 for tickets): the server echoes the
            // client's session id when it resumes.
            Some(!sh.session_id.is_empty() && sh.session_id == self.client_session_id)
        } else {
            None
        };
    }

    pub(super) fn certificate(&mut self, ctx: &mut Ctx<'_>, body: &[u8], in_sync: bool) {
        match parse_certificate(body) {
            Some(c) => {
                ctx.stats.tls.certificates += 1;
                self.event.certificate = Some(certificate_record(&c));
            }
            // An empty chain (no certificate) is legal; anything else that fails is not.
            None if body == [0, 0, 0] => {}
            None if in_sync => self.anomaly(ctx, TlsAnomaly::MalformedCertificate, format!("{} bytes", body.len())),
            None => {}
        }
    }

    pub(super) fn handshake_complete(&self) -> bool {
        match self.negotiated {
            Some(v) if v >= version::TLS_1_3 => self.app_data == [true, true],
            Some(_) => self.ccs == [true, true],
            None => self.ccs.iter().zip(&self.app_data).all(|(ccs, app)| *ccs || *app),
        }
    }
}

/// The session and the analyzer context, as one direction's stream sees them.
pub(super) struct SessionSink<'s, 'c> {
    pub(super) session: &'s mut Session,
    pub(super) ctx: &'s mut Ctx<'c>,
    pub(super) dir: Direction,
}

impl RecordSink for SessionSink<'_, '_> {
    fn on_record(&mut self, header: &RecordHeader, encrypted: bool) {
        let stats = &mut self.ctx.stats.tls;
        stats.records += 1;
        let t = header.content_type;
        if encrypted
            || !matches!(
                t,
                ContentType::HANDSHAKE | ContentType::ALERT | ContentType::CHANGE_CIPHER_SPEC
            )
        {
            stats.records_skipped += 1;
        }
        if t == ContentType::APPLICATION_DATA && (self.session.server_hello || self.session.event.midstream) {
            *at_mut(&mut self.session.app_data, self.dir) = true;
        }
    }

    fn wants(&self, msg_type: HandshakeType) -> bool {
        let s = &self.session;
        match msg_type {
            HandshakeType::CLIENT_HELLO => !s.client_hello,
            HandshakeType::SERVER_HELLO => !s.server_hello,
            // Only up to TLS 1.2 is the Certificate in the clear; the server's own.
            HandshakeType::CERTIFICATE => {
                self.dir == Direction::ToClient
                    && s.event.certificate.is_none()
                    && s.negotiated.is_none_or(|v| v < version::TLS_1_3)
            }
            _ => false,
        }
    }

    fn on_handshake(&mut self, msg_type: HandshakeType, body: &[u8], in_sync: bool) {
        match msg_type {
            HandshakeType::CLIENT_HELLO => self.session.client_hello(self.ctx, body, in_sync),
            HandshakeType::SERVER_HELLO => self.session.server_hello(self.ctx, body, in_sync),
            HandshakeType::CERTIFICATE => self.session.certificate(self.ctx, body, in_sync),
            _ => {}
        }
    }

    fn on_handshake_too_large(&mut self, msg_type: HandshakeType, len: u32) {
        self.ctx.stats.tls.handshake_cap_hits += 1;
        self.session.anomaly(
            self.ctx,
            TlsAnomaly::HandshakeTooLarge,
            format!("type {} length {len}", msg_type.0),
        );
    }

    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        self.ctx.reserve(buf, more)
    }

    fn on_budget_refused(&mut self, msg_type: HandshakeType, len: usize) {
        let detail = self
            .ctx
            .budget_detail(format_args!("handshake message type {} of {len} bytes", msg_type.0));
        self.session.anomaly(self.ctx, TlsAnomaly::MemoryBudget, detail);
    }

    fn on_handshake_lost(&mut self, msg_type: HandshakeType, prefix: &[u8]) {
        self.ctx.stats.tls.handshake_messages_lost += 1;
        if msg_type == HandshakeType::CLIENT_HELLO {
            self.session.client_hello_prefix(self.ctx, prefix);
        }
    }

    fn on_alert(&mut self, level: u8, description: u8) {
        self.ctx.stats.tls.alerts += 1;
        if self.session.event.alert.is_none() {
            self.session
                .event
                .set_alert(self.dir, level, description, alert_name(description));
        }
    }

    fn on_change_cipher_spec(&mut self) -> bool {
        let s = &mut self.session;
        *at_mut(&mut s.ccs, self.dir) = true;
        // TLS 1.3 (known from the ServerHello or HelloRetryRequest, which precede any CCS
        // there): a compatibility no-op. Unknown (midstream): assume TLS 1.2.
        !(s.event.hello_retry || s.negotiated.is_some_and(|v| v >= version::TLS_1_3))
    }

    fn on_desync(&mut self, header: [u8; 5], in_sync: bool) {
        self.ctx.stats.tls.resyncs += 1;
        if in_sync {
            self.session
                .anomaly(self.ctx, TlsAnomaly::BadRecord, format!("header {}", hex(&header)));
        }
    }

    fn on_resync_skip(&mut self, bytes: u64) {
        self.ctx.stats.tls.resync_bytes += bytes;
    }

    fn on_sslv2_hello(&mut self, _len: u16) {
        self.ctx.stats.tls.sslv2_client_hellos += 1;
    }
}
