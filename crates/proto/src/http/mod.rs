//! HTTP/1.x (RFC 9110, RFC 9112) and DICOMweb (PS3.18) as seen from a tap.
//!
//! - [`config`]: the decoder's settings and caps;
//! - [`parser`]: pure pieces: probe, start lines, heads (httparse), framing, chunk-size lines,
//!   the user of an `Authorization` header (fuzz and bench entry points);
//! - [`auth`]: the user an `Authorization` header or a login form names (never the secret);
//! - [`url`]: request targets, normalised path segments, the URL shown in events;
//! - [`dicomweb`]: QIDO-RS / WADO-RS / STOW-RS / WADO-URI classification and UIDs;
//! - [`patterns`]: the admin and share action tables;
//! - `stream`: the per-direction message walker (heads, bodies skipped by framing, gaps, resync);
//! - `state`: request/response pairing and the `http` events.
//!
//! One `http` event per transaction, emitted when both its request and its response are
//! complete, or when the flow ends (then `status` is absent if no response was seen). Bodies
//! are never buffered, except the first 4 KiB of a login form read for its user name.

pub mod auth;
pub mod config;
pub mod dcm4chee;
pub mod dicomweb;
mod event;
pub mod orthanc;
pub mod parser;
pub mod patterns;
mod state;
mod stream;
pub mod url;
pub mod zip_prefix;

pub use config::{HttpConfig, RESYNC_GIVE_UP_BYTES};
pub use event::HttpAnomaly;
pub use parser::probe;
pub use patterns::{default_admin_patterns, default_share_patterns, AdminPattern};

use crate::budget::Lease;
use crate::decoder::{resync_exhausted, Decoder};
use crate::Ctx;
use crate::ProtoConfig;
use pacstap_core::{ChunkBody, CloseReason, Direction, StreamChunk};
use parser::Role;
use state::{Session, SessionSink};
use std::fmt;
use stream::HalfStream;

/// Counters of the http decoder.
#[derive(Debug, Clone, Default)]
pub struct HttpStats {
    /// Flows decoded as HTTP.
    pub flows: u64,
    /// Request heads read.
    pub requests: u64,
    /// Final response heads read.
    pub responses: u64,
    /// Interim (1xx) response heads read.
    pub interim_responses: u64,
    /// `http` events emitted.
    pub transactions: u64,
    /// Of which without any response.
    pub transactions_without_response: u64,
    /// Responses to no known request (midstream, lost requests).
    pub orphan_responses: u64,
    /// Of those, the ones reported as transactions of their own (`request_missing`: requests
    /// had been lost, so they answer one of those).
    pub responses_without_request_reported: u64,
    /// Wire bytes of emitted transactions.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Body bytes passed over without being kept.
    pub body_bytes_skipped: u64,
    /// Bytes passed over while looking for a start line.
    pub resync_bytes_skipped: u64,
    pub dicomweb_qido_rs: u64,
    pub dicomweb_wado_rs: u64,
    pub dicomweb_stow_rs: u64,
    pub dicomweb_wado_uri: u64,
    /// UPS-RS.
    pub dicomweb_other: u64,
    /// 401/403 to a request that carried credentials: failed logins.
    pub auth_failures: u64,
    /// 401/403 to a request without credentials (the normal first step of Basic/Digest).
    pub auth_challenges: u64,
    pub admin_actions: u64,
    pub share_actions: u64,
    /// Connections that switched protocols (101) or became a CONNECT tunnel; given up.
    pub tunnels: u64,
    /// HTTP/2 prior-knowledge connections; given up.
    pub http2_flows: u64,
    /// Flows given up without ever showing a start line.
    pub flows_given_up: u64,
}

impl HttpStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &HttpStats) {
        let HttpStats {
            flows,
            requests,
            responses,
            interim_responses,
            transactions,
            transactions_without_response,
            orphan_responses,
            responses_without_request_reported,
            request_bytes,
            response_bytes,
            body_bytes_skipped,
            resync_bytes_skipped,
            dicomweb_qido_rs,
            dicomweb_wado_rs,
            dicomweb_stow_rs,
            dicomweb_wado_uri,
            dicomweb_other,
            auth_failures,
            auth_challenges,
            admin_actions,
            share_actions,
            tunnels,
            http2_flows,
            flows_given_up,
        } = other;
        self.flows += flows;
        self.requests += requests;
        self.responses += responses;
        self.interim_responses += interim_responses;
        self.transactions += transactions;
        self.transactions_without_response += transactions_without_response;
        self.orphan_responses += orphan_responses;
        self.responses_without_request_reported += responses_without_request_reported;
        self.request_bytes += request_bytes;
        self.response_bytes += response_bytes;
        self.body_bytes_skipped += body_bytes_skipped;
        self.resync_bytes_skipped += resync_bytes_skipped;
        self.dicomweb_qido_rs += dicomweb_qido_rs;
        self.dicomweb_wado_rs += dicomweb_wado_rs;
        self.dicomweb_stow_rs += dicomweb_stow_rs;
        self.dicomweb_wado_uri += dicomweb_wado_uri;
        self.dicomweb_other += dicomweb_other;
        self.auth_failures += auth_failures;
        self.auth_challenges += auth_challenges;
        self.admin_actions += admin_actions;
        self.share_actions += share_actions;
        self.tunnels += tunnels;
        self.http2_flows += http2_flows;
        self.flows_given_up += flows_given_up;
    }
}

/// Per-flow HTTP state, stored in the flow table (`FlowState::Http`).
pub struct HttpFlow {
    /// Indexed by `Direction::index`: requests to the server, responses to the client.
    streams: [HalfStream; 2],
    session: Session,
    data_bytes: u64,
    counted: bool,
    /// Charge against the decoder memory budget (kept by the analyzer).
    pub(crate) lease: crate::Lease,
}

impl fmt::Debug for HttpFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFlow")
            .field("data_bytes", &self.data_bytes)
            .field("session", &self.session)
            .finish()
    }
}

impl HttpFlow {
    /// `midstream`: the flow's first bytes were not a request (decided by port); both
    /// directions resynchronise. `handshake_seen`: its TCP handshake was captured, so requests
    /// before the first one seen were not sent before the capture began (a response first is
    /// then one mirrored ahead of its request, or one whose request a gap took, which the gap
    /// itself says).
    pub fn new(cfg: &ProtoConfig, midstream: bool, handshake_seen: bool) -> Self {
        let max = cfg.http.max_header_bytes.max(64);
        HttpFlow {
            streams: [
                HalfStream::new(Role::Request, midstream, max),
                HalfStream::new(Role::Response, midstream, max),
            ],
            session: Session::new(midstream, handshake_seen),
            data_bytes: 0,
            counted: false,
            lease: crate::Lease::default(),
        }
    }
}

impl Decoder for HttpFlow {
    /// Handle one chunk; `false` when the flow is given up (HTTP/2, a tunnel, or no HTTP found).
    fn on_chunk(&mut self, ctx: &mut Ctx<'_>, chunk: &StreamChunk<'_>) -> bool {
        if !self.counted {
            self.counted = true;
            ctx.stats.http.flows += 1;
        }
        let Some(stream) = self.streams.get_mut(chunk.dir.index()) else {
            return false;
        };
        let mut sink = SessionSink {
            session: &mut self.session,
            ctx,
        };
        match chunk.body {
            ChunkBody::Data(data) => {
                self.data_bytes = self.data_bytes.saturating_add(data.len() as u64);
                if chunk.dir == Direction::ToServer && !data.is_empty() {
                    sink.session.request_seen = true;
                }
                stream.feed(data, &mut sink);
            }
            ChunkBody::Gap(len) => {
                sink.ctx.stats.gap_bytes += len;
                let in_step = stream.gap(len, &mut sink);
                if !in_step && chunk.dir == Direction::ToServer {
                    // Whatever the walker was doing (resynchronising already, say: a flow whose
                    // first request was lost), requests may have gone with these bytes.
                    sink.session.requests_missed = true;
                }
                if !stream.is_stopped() {
                    let detail = if in_step {
                        format!("{len} bytes lost inside a body, still in step")
                    } else {
                        format!("{len} bytes lost, resynchronising")
                    };
                    sink.ctx
                        .flow_anomaly(&mut sink.session.anomalies_emitted, HttpAnomaly::Gap, Some(detail));
                }
            }
            // This direction ended: a response read until close is complete.
            ChunkBody::Close(_) => stream.close(&mut sink),
        }
        for s in &mut self.streams {
            ctx.stats.http.body_bytes_skipped += std::mem::take(&mut s.body_bytes);
            ctx.stats.http.resync_bytes_skipped += std::mem::take(&mut s.resync_bytes);
        }
        if self.session.stop {
            self.session.flush(ctx);
            return false;
        }
        let locked = self.streams.iter().any(|s| s.locked);
        if let Some(n) = resync_exhausted(!locked, self.data_bytes, RESYNC_GIVE_UP_BYTES) {
            ctx.stats.http.flows_given_up += 1;
            ctx.flow_anomaly(
                &mut self.session.anomalies_emitted,
                HttpAnomaly::GiveUp,
                Some(format!("no HTTP start line in {n} bytes; flow given up")),
            );
            self.session.flush(ctx);
            return false;
        }
        true
    }

    /// The flow left the table: end what is in progress and emit every open transaction.
    fn finish(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        let mut sink = SessionSink {
            session: &mut self.session,
            ctx,
        };
        // A direction that saw its FIN is already closed; one still open was cut by RST,
        // timeout, eviction or the end of the capture (`Fin` here means both FINs were seen).
        for s in &mut self.streams {
            s.end(&mut sink, reason == CloseReason::Fin);
        }
        for s in &mut self.streams {
            ctx.stats.http.body_bytes_skipped += std::mem::take(&mut s.body_bytes);
            ctx.stats.http.resync_bytes_skipped += std::mem::take(&mut s.resync_bytes);
        }
        self.session.flush(ctx);
    }

    /// Capacity of every buffer this flow holds (for the memory budget).
    fn held_bytes(&self) -> usize {
        self.streams.iter().map(HalfStream::held_bytes).sum::<usize>() + self.session.held_bytes()
    }

    fn lease_mut(&mut self) -> &mut Lease {
        &mut self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::HttpAnomaly;
    use crate::testutil::{anomaly_names, part10_file, Harness, Lcg, PART10_STUDY};
    use crate::{FlowState, ProtoConfig};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use pacstap_core::Direction::{self, ToClient, ToServer};
    use pacstap_core::{CloseReason, EventBody, HttpEvent, Interest, ProtocolEvent};

    const ST: &str = "1.2.826.0.1.3680043.8.1055.1.20111102150758591.92402465.76095170";

    #[derive(Debug, Clone)]
    enum Rec {
        Data(Direction, Vec<u8>),
        Gap(Direction, u64),
    }

    type Conv = Vec<Rec>;

    /// Connection `i` of the loopback capture (see `crates/proto/testdata/http/README.md`).
    fn captured(i: usize) -> Conv {
        let pcap = include_bytes!("../../testdata/http/orthanc-like.pcap");
        crate::testutil::pcap_connections(pcap, 8042)
            .remove(i)
            .into_iter()
            .map(|s| Rec::Data(s.dir, s.bytes))
            .collect()
    }

    fn keepalive() -> Conv {
        captured(0)
    }

    fn pipelined() -> Conv {
        captured(1)
    }

    fn req(text: &str) -> Rec {
        Rec::Data(ToServer, text.as_bytes().to_vec())
    }

    fn rsp(text: &str) -> Rec {
        Rec::Data(ToClient, text.as_bytes().to_vec())
    }

    /// How a run cuts the records.
    #[derive(Clone, Copy)]
    enum Cut {
        Whole,
        /// Record `i` cut at byte `k`.
        At(usize, usize),
        ByteByByte,
    }

    fn run_on(cfg: &ProtoConfig, port: u16, conv: &Conv, cut: Cut, end: CloseReason) -> (Vec<ProtocolEvent>, Harness) {
        let mut h = Harness::new(cfg.clone(), 50_000, port);
        let base = h.ts;
        for (i, rec) in conv.iter().enumerate() {
            h.ts = base + i as i64 * 1_000_000;
            match rec {
                Rec::Gap(dir, len) => {
                    let _ = h.gap(*dir, *len);
                }
                Rec::Data(dir, bytes) => match cut {
                    Cut::At(m, k) if m == i => h.data_split(*dir, bytes, &[k]),
                    Cut::ByteByByte => {
                        for b in bytes.chunks(1) {
                            let _ = h.data(*dir, b);
                        }
                    }
                    _ => {
                        let _ = h.data(*dir, bytes);
                    }
                },
            }
        }
        h.ts = base + conv.len() as i64 * 1_000_000;
        let ev = h.end(end);
        (ev, h)
    }

    fn run(conv: &Conv) -> Vec<ProtocolEvent> {
        run_on(&ProtoConfig::default(), 8042, conv, Cut::Whole, CloseReason::Fin).0
    }

    /// Whole, each record cut at every point (at most ~200 points per record: every one for
    /// small records, evenly spread and around the ends for large ones), then byte by byte:
    /// the same events every time.
    fn every_split(port: u16, conv: &Conv) -> Vec<ProtocolEvent> {
        let cfg = ProtoConfig::default();
        let end = CloseReason::Fin;
        let whole = run_on(&cfg, port, conv, Cut::Whole, end).0;
        let want = format!("{whole:?}");
        for (i, rec) in conv.iter().enumerate() {
            let Rec::Data(_, bytes) = rec else { continue };
            let n = bytes.len();
            let cuts: Vec<usize> = if n <= 300 {
                (1..n).collect()
            } else {
                (1..100).chain((0..50).map(|j| j * n / 50)).chain(n - 50..n).collect()
            };
            for k in cuts {
                let got = format!("{:?}", run_on(&cfg, port, conv, Cut::At(i, k), end).0);
                assert_eq!(got, want, "record {i} cut at {k}");
            }
        }
        let got = format!("{:?}", run_on(&cfg, port, conv, Cut::ByteByByte, end).0);
        assert_eq!(got, want, "byte by byte");
        whole
    }

    fn http(ev: &[ProtocolEvent]) -> Vec<HttpEvent> {
        ev.iter()
            .filter_map(|e| match &e.body {
                EventBody::Http(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn captured_keepalive_conversation() {
        let ev = every_split(8042, &keepalive());
        assert_eq!(anomaly_names(&ev), Vec::<&str>::new());
        let tx = http(&ev);
        assert_eq!(tx.len(), 7);
        let dump = format!("{ev:?}");
        assert!(
            !dump.contains("s3cr3t") && !dump.contains("wrong"),
            "no password in events"
        );

        let q = &tx[0];
        assert_eq!((q.method.as_str(), q.status), ("GET", Some(200)));
        assert_eq!(
            q.url, "/dicom-web/studies?PatientID=REDACTED&limit=10",
            "no patient data in events"
        );
        assert_eq!(q.hostname.as_deref(), Some("127.0.0.1"));
        assert_eq!((q.user.as_deref(), q.auth.as_deref()), (Some("rad1"), Some("basic")));
        assert!(q.user_agent.as_deref().unwrap().starts_with("curl/"));
        assert_eq!(q.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(q.content_type.as_deref(), Some("application/dicom+json"));
        assert_eq!((q.request_bytes, q.response_bytes), (163, 140 + 66 + 67 + 20));
        let dw = q.dicomweb.as_ref().unwrap();
        assert_eq!((dw.service.as_str(), dw.level.as_deref()), ("QIDO-RS", Some("study")));
        assert!(!q.incomplete);

        let w = &tx[1];
        let dw = w.dicomweb.as_ref().unwrap();
        assert_eq!(
            (dw.service.as_str(), dw.study_instance_uid.as_deref()),
            ("WADO-RS", Some(ST))
        );
        assert_eq!((w.request_bytes, w.response_bytes), (243, 184 + 15573));
        assert!(w.content_type.as_deref().unwrap().starts_with("multipart/related"));

        let head = &tx[2];
        assert_eq!(
            (head.method.as_str(), head.status, head.response_bytes),
            ("HEAD", Some(200), 184)
        );
        assert_eq!(head.dicomweb, None, "a HEAD exports nothing");

        let stow = &tx[3];
        assert_eq!(
            (stow.method.as_str(), stow.status, stow.interim_responses),
            ("POST", Some(200), 1)
        );
        assert_eq!(stow.dicomweb.as_ref().unwrap().service, "STOW-RS");
        assert_eq!((stow.request_bytes, stow.response_bytes), (256 + 3000, 25 + 133 + 135));

        let put = &tx[4];
        assert_eq!(put.admin_action.as_deref(), Some("orthanc_modality_config"));
        assert_eq!((put.url.as_str(), put.status), ("/modalities/NEWPACS", Some(200)));

        let denied = &tx[5];
        assert_eq!((denied.status, denied.user.as_deref()), (Some(401), Some("rad1")));
        let not_modified = &tx[6];
        assert_eq!((not_modified.status, not_modified.response_bytes), (Some(304), 97));
        assert!(tx.iter().all(|t| t.request_time <= t.response_time.unwrap()));

        let (_, h) = run_on(
            &ProtoConfig::default(),
            8042,
            &keepalive(),
            Cut::Whole,
            CloseReason::Fin,
        );
        let st = &h.an.stats().http;
        assert_eq!(
            (
                st.flows,
                st.requests,
                st.responses,
                st.interim_responses,
                st.transactions
            ),
            (1, 7, 7, 1, 7)
        );
        assert_eq!(
            (st.dicomweb_qido_rs, st.dicomweb_wado_rs, st.dicomweb_stow_rs),
            (2, 1, 1)
        );
        assert_eq!((st.auth_failures, st.admin_actions), (1, 1));
        assert_eq!(st.body_bytes_skipped, 0x35 + 0x36 + 15573 + 3000 + 46 + 135 + 2 + 12);
    }

    #[test]
    fn captured_pipelined_bearer() {
        let ev = every_split(8042, &pipelined());
        assert_eq!(anomaly_names(&ev), Vec::<&str>::new());
        let tx = http(&ev);
        assert_eq!(tx.len(), 2);
        let jwt = include_str!("../../testdata/http/pipelined-bearer.jwt").trim();
        assert!(
            !format!("{ev:?}").contains(jwt.split('.').nth(1).unwrap()),
            "no token in events"
        );
        for t in &tx {
            assert_eq!((t.user.as_deref(), t.auth.as_deref()), (Some("rad2"), Some("bearer")));
            assert_eq!(t.hostname.as_deref(), Some("pacs.example.org"));
            assert_eq!(t.user_agent.as_deref(), Some("OHIF/3.8"));
            assert_eq!(t.status, Some(200));
            assert_eq!(t.response_bytes, 184 + 15573);
        }
        assert_eq!(tx[0].dicomweb.as_ref().unwrap().resource, None);
        assert_eq!(tx[1].dicomweb.as_ref().unwrap().resource.as_deref(), Some("metadata"));
        assert_eq!(tx[0].request_bytes + tx[1].request_bytes, 1035);
    }

    #[test]
    fn claimed_by_content_on_any_port() {
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9999);
        assert_eq!(h.data(ToServer, b"GE"), Interest::Continue);
        assert!(matches!(h.st, FlowState::Probing(_)));
        assert_eq!(
            h.data(ToServer, b"T /dicom-web/studies HTTP/1.1\r\nHost: x\r\n\r\n"),
            Interest::Continue
        );
        assert!(matches!(h.st, FlowState::Http(_)));
        let _ = h.data(ToClient, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]");
        let tx = http(&h.end(CloseReason::Fin));
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].url, "/dicom-web/studies");
        // A status line first is not HTTP by content.
        let mut h = Harness::new(ProtoConfig::default(), 40_000, 9999);
        assert_eq!(h.data(ToClient, b"HTTP/1.1 200 OK\r\n\r\n"), Interest::Ignore);
    }

    /// Cut the keepalive capture so that it starts inside the WADO-RS response body.
    fn keepalive_from_mid_body() -> Conv {
        let mut conv = keepalive();
        let at = conv
            .iter()
            .position(|r| matches!(r, Rec::Data(ToClient, b) if b.len() == 15573))
            .unwrap();
        let mut tail = conv.split_off(at);
        if let Rec::Data(_, b) = &mut tail[0] {
            b.drain(..5000);
        }
        tail
    }

    #[test]
    fn midstream_pickup_resyncs() {
        let conv = keepalive_from_mid_body();
        let ev = every_split(8042, &conv);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::Resync]);
        let tx = http(&ev);
        let methods: Vec<_> = tx.iter().map(|t| (t.method.as_str(), t.status)).collect();
        assert_eq!(
            methods,
            [
                ("HEAD", Some(200)),
                ("POST", Some(200)),
                ("PUT", Some(200)),
                ("GET", Some(401)),
                ("GET", Some(304))
            ]
        );
        // Off the HTTP ports, a flow that does not start with a request is not claimed.
        let (ev, _) = run_on(&ProtoConfig::default(), 9999, &conv, Cut::Whole, CloseReason::Fin);
        assert!(ev.is_empty());
    }

    #[test]
    fn gap_inside_a_body_stays_in_step() {
        let mut conv = keepalive();
        let at = conv
            .iter()
            .position(|r| matches!(r, Rec::Data(ToClient, b) if b.len() == 15573))
            .unwrap();
        let Rec::Data(_, body) = conv[at].clone() else {
            unreachable!()
        };
        conv.splice(
            at..=at,
            [
                Rec::Data(ToClient, body[..1000].to_vec()),
                Rec::Gap(ToClient, 5000),
                Rec::Data(ToClient, body[6000..].to_vec()),
            ],
        );
        let ev = every_split(8042, &conv);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::Gap]);
        let tx = http(&ev);
        assert_eq!(tx.len(), 7);
        assert_eq!(
            (tx[1].gap_bytes, tx[1].response_bytes, tx[1].incomplete),
            (5000, 184 + 15573, false)
        );
        assert!(tx.iter().all(|t| t.status.is_some()));
    }

    #[test]
    fn lost_request_leaves_a_response_reported_on_its_own() {
        // The HEAD request falls into a gap: its response (Content-Length, no body) answers
        // nothing known, and must not swallow the responses after it. It answers the request
        // the gap took, so it is reported from what it says.
        let mut conv = keepalive();
        let at = conv
            .iter()
            .position(|r| matches!(r, Rec::Data(ToServer, b) if b.starts_with(b"HEAD ")))
            .unwrap();
        let Rec::Data(_, b) = &conv[at] else { unreachable!() };
        conv[at] = Rec::Gap(ToServer, b.len() as u64);
        let (ev, h) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::Gap]);
        let tx = http(&ev);
        let got: Vec<_> = tx.iter().map(|t| (t.method.as_str(), t.status)).collect();
        assert_eq!(
            got,
            [
                ("GET", Some(200)),
                ("GET", Some(200)),
                ("", Some(200)),
                ("POST", Some(200)),
                ("PUT", Some(200)),
                ("GET", Some(401)),
                ("GET", Some(304))
            ]
        );
        let head = &tx[2];
        assert!(head.request_missing && head.incomplete);
        assert_eq!(
            (head.url.as_str(), head.request_bytes, head.user.as_deref()),
            ("", 0, None)
        );
        assert_eq!(head.request_time, head.response_time.unwrap());
        assert!(head.response_bytes > 0 && head.dicomweb.is_none(), "{head:?}");
        assert!(tx
            .iter()
            .filter(|t| !std::ptr::eq(*t, head))
            .all(|t| !t.request_missing));
        let st = &h.an.stats().http;
        assert_eq!((st.orphan_responses, st.responses_without_request_reported), (1, 1));
    }

    /// A WADO-RS response (a DICOM file dicom-object wrote, in one `multipart/related` part)
    /// framed by Content-Length or chunked.
    fn wado_response(chunked: bool) -> Rec {
        let mut body = b"--b0undary\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        body.extend_from_slice(&part10_file("1.2.840.10008.1.2.1"));
        body.extend_from_slice(b"\r\n--b0undary--\r\n");
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type=\"application/dicom\"; boundary=b0undary\r\n"
                .to_vec();
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for part in body.chunks(100) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        }
        Rec::Data(ToClient, out)
    }

    #[test]
    fn a_wado_response_whose_request_was_lost_names_its_study_from_the_file() {
        for chunked in [false, true] {
            let conv = vec![
                req("GET /dicom-web/studies/1.2.3 HTTP/1.1\r\nAuthorization: Basic cmFkMTpyYWQxLXBhc3M=\r\n\r\n"),
                rsp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
                Rec::Gap(ToServer, 96),
                wado_response(chunked),
                req("GET /dicom-web/studies HTTP/1.1\r\n\r\n"),
                rsp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            ];
            let ev = every_split(8042, &conv);
            let tx = http(&ev);
            let got: Vec<_> = tx
                .iter()
                .map(|t| (t.url.as_str(), t.status, t.request_missing))
                .collect();
            assert_eq!(
                got,
                [
                    ("/dicom-web/studies/1.2.3", Some(200), false),
                    ("", Some(200), true),
                    ("/dicom-web/studies", Some(404), false)
                ],
                "chunked {chunked}"
            );
            let lost = &tx[1];
            let dw = lost.dicomweb.as_ref().unwrap();
            assert_eq!(
                (dw.service.as_str(), dw.study_instance_uid.as_deref()),
                ("WADO-RS", Some(PART10_STUDY))
            );
            // The user of the lost request is not known (the connection's earlier one is not
            // taken for it here), and nothing of the patient leaks.
            assert!(lost.user.is_none() && lost.incomplete && lost.request_bytes == 0);
            assert!(!format!("{ev:?}").contains("DOE"));
            let Rec::Data(_, sent) = &conv[3] else { unreachable!() };
            assert_eq!(lost.response_bytes, sent.len() as u64);
        }
    }

    #[test]
    fn a_response_ahead_of_its_request_is_not_reported_on_its_own() {
        // Mirrored late, not lost: nothing was missed on the request side, so the response
        // answers nothing and its request comes whole (without a status: the pairing is by order).
        let conv = vec![
            wado_response(false),
            req("GET /dicom-web/studies/1.2.3 HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ];
        let (ev, h) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        assert!(http(&ev).iter().all(|t| !t.request_missing), "{ev:?}");
        let st = &h.an.stats().http;
        assert_eq!((st.orphan_responses, st.responses_without_request_reported), (1, 0));
    }

    /// The same response first on a connection whose handshake was captured, and no request
    /// byte ever after: its request was lost with the client's FIN (no later byte of the
    /// client's showed a gap). Reported at the connection's end, from the response alone; it
    /// was dropped silently, and a bulk download lost a study with it.
    #[test]
    fn a_response_whose_request_never_came_is_reported_at_the_end() {
        let conv = vec![wado_response(false)];
        let (ev, h) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        let tx = http(&ev);
        assert_eq!(tx.len(), 1, "{ev:?}");
        assert!(tx[0].request_missing && tx[0].status == Some(200));
        let dw = tx[0].dicomweb.as_ref().expect("a WADO-RS response");
        assert_eq!(dw.study_instance_uid.as_deref(), Some(PART10_STUDY));
        assert_eq!(h.an.stats().http.responses_without_request_reported, 1);
        // Two responses, then the request of the first after all: neither is reported alone.
        let conv = vec![
            wado_response(false),
            wado_response(false),
            req("GET /dicom-web/studies/1.2.3 HTTP/1.1\r\n\r\n"),
        ];
        let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        assert!(http(&ev).iter().all(|t| !t.request_missing), "{ev:?}");
    }

    #[test]
    fn lost_response_pairs_the_next_one_with_the_newest_request() {
        let conv = vec![
            req("GET /a HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
            Rec::Gap(ToClient, 5),
            req("GET /b HTTP/1.1\r\n\r\n"),
            Rec::Gap(ToClient, 120),
            req("GET /c HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ];
        let ev = run(&conv);
        let got: Vec<_> = http(&ev)
            .iter()
            .map(|t| (t.url.clone(), t.status, t.incomplete))
            .collect();
        assert_eq!(
            got,
            [
                ("/a".to_string(), Some(200), false),
                ("/b".to_string(), None, true),
                ("/c".to_string(), Some(404), false)
            ]
        );
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::Gap, HttpAnomaly::Gap]);
    }

    #[test]
    fn response_without_request_on_a_whole_flow() {
        let conv = vec![
            req("GET /a HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ];
        let ev = run(&conv);
        assert_eq!(http(&ev).len(), 1);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::ResponseWithoutRequest]);
    }

    #[test]
    fn flow_end_emits_what_is_pending() {
        let conv = vec![
            req("GET /dicom-web/studies/1.2.3 HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"),
        ];
        let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Rst);
        let tx = http(&ev);
        assert_eq!(tx.len(), 2);
        assert_eq!((tx[0].status, tx[0].incomplete), (Some(200), true));
        assert_eq!(tx[0].response_bytes, 43 + 7);
        assert_eq!(
            tx[0].dicomweb.as_ref().unwrap().study_instance_uid.as_deref(),
            Some("1.2.3")
        );
        assert_eq!((tx[1].status, tx[1].response_bytes), (None, 0));
    }

    /// Orthanc's own REST downloads on one keep-alive connection: a study ZIP (its first
    /// deflated entry names the study), a `create-archive` whose ids are in a form-labelled
    /// JSON body (as `curl -d` sends it), a DICOM file (chunked), and a ZIP read until the
    /// server closes. Each is `download`, with the study read from the body and never a byte
    /// of the patient in the events.
    #[test]
    fn orthanc_rest_downloads_name_their_studies_from_the_bodies() {
        use crate::testutil::zip_entry;
        let file = part10_file("1.2.840.10008.1.2.1");
        let zip = zip_entry("SYNP0001 DOE/CT000000.dcm", &file, true, false);
        let id = "27f7126f-4f66c005-ac3b1ca5-f4ab3d0e-f1c00d3e";
        let with_length = |ct: &str, body: &[u8]| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            Rec::Data(ToClient, r)
        };
        let mut chunked =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in file.chunks(100) {
            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let json = r#"{"Resources": ["a1", "b2"], "Synchronous": true}"#;
        let mut until_close = b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n".to_vec();
        until_close.extend_from_slice(&zip);
        let conv = vec![
            req(&format!("GET /studies/{id}/archive HTTP/1.1\r\nAuthorization: Basic cmFkMjpyYWQyLXBhc3M=\r\n\r\n")),
            with_length("application/zip", &zip),
            req(&format!(
                "POST /tools/create-archive HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )),
            with_length("application/zip", &zip_entry("x", b"not dicom", true, false)),
            req(&format!("GET /instances/{id}/file HTTP/1.1\r\n\r\n")),
            Rec::Data(ToClient, chunked),
            req(&format!("GET /series/{id}/media HTTP/1.1\r\n\r\n")),
            Rec::Data(ToClient, until_close),
        ];
        let ev = every_split(8042, &conv);
        let got: Vec<_> = http(&ev)
            .into_iter()
            .map(|t| {
                let d = t.download.expect("a download");
                (d.level, d.format, d.ids, d.study_instance_uids.first().cloned())
            })
            .collect();
        let study = Some(PART10_STUDY.to_owned());
        assert_eq!(
            got,
            [
                ("studies".into(), "archive".into(), vec![id.to_owned()], study.clone()),
                (
                    "resources".into(),
                    "archive".into(),
                    vec!["a1".into(), "b2".into()],
                    None
                ),
                ("instances".into(), "file".into(), vec![id.to_owned()], study.clone()),
                ("series".into(), "media".into(), vec![id.to_owned()], study),
            ]
        );
        assert!(!format!("{ev:?}").contains("DOE"));
    }

    #[test]
    fn response_until_close() {
        let conv = vec![
            req("GET /old HTTP/1.0\r\n\r\n"),
            rsp("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"),
            rsp("</html>"),
        ];
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        for r in &conv {
            if let Rec::Data(d, b) = r {
                let _ = h.data(*d, b);
            }
        }
        assert!(http(&h.out).is_empty());
        let _ = h.close(ToClient, CloseReason::Fin);
        let tx = http(&h.out);
        assert_eq!(tx.len(), 1, "emitted when the server closes");
        assert_eq!(
            (tx[0].response_bytes, tx[0].incomplete, tx[0].protocol.as_deref()),
            (57, false, Some("HTTP/1.0"))
        );
        // Cut by the end of the capture instead: the body may be short.
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        for r in &conv {
            if let Rec::Data(d, b) = r {
                let _ = h.data(*d, b);
            }
        }
        let tx = http(&h.end(CloseReason::EndOfCapture));
        assert_eq!((tx[0].status, tx[0].incomplete), (Some(200), true));
    }

    #[test]
    fn early_response_waits_for_the_request_body() {
        let auth = format!("Basic {}", STANDARD.encode("rad1:bad"));
        let conv = vec![
            req(&format!(
                "POST /dicom-web/studies HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: 10\r\n\r\n0123"
            )),
            rsp("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
            req("456789"),
        ];
        let (ev, h) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        let tx = http(&ev);
        assert_eq!(tx.len(), 1);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (tx[0].status, tx[0].user.as_deref(), tx[0].incomplete),
            (Some(401), Some("rad1"), false)
        );
        assert_eq!(tx[0].request_bytes, conv_len(&conv, ToServer));
        assert_eq!(h.an.stats().http.auth_failures, 1);
    }

    fn conv_len(conv: &Conv, dir: Direction) -> u64 {
        conv.iter()
            .map(|r| match r {
                Rec::Data(d, b) if *d == dir => b.len() as u64,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn login_form_user_without_password() {
        let body = "grant_type=password&client_id=ohif&username=rad3&password=hunter2";
        let conv = vec![
            req(&format!(
                "POST /realms/pacs/protocol/openid-connect/token HTTP/1.1\r\nHost: kc:8080\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            rsp("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        ];
        let ev = every_split(8080, &conv);
        let tx = http(&ev);
        assert_eq!(
            (tx[0].user.as_deref(), tx[0].auth.as_deref(), tx[0].status),
            (Some("rad3"), Some("form"), Some(401))
        );
        assert!(!format!("{ev:?}").contains("hunter2"));
    }

    #[test]
    fn admin_share_wado_uri_and_urls() {
        let jwt_payload = STANDARD.encode(r#"{"sub":"svc"}"#);
        let long = "a".repeat(3000);
        let conv = vec![
            req("POST /admin/realms/pacs/users HTTP/1.1\r\nHost: KC.example:8443\r\nContent-Length: 2\r\n\r\n{}"),
            rsp("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
            req("POST /api/studies/42/share HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            req(&format!(
                "GET /wado?requestType=WADO&studyUID={ST}&objectUID=1.2.3&access_token=abc.{jwt_payload}.sig HTTP/1.1\r\n\r\n"
            )),
            rsp("HTTP/1.1 200 OK\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\nDICM"),
            req(&format!("GET /{long} HTTP/1.1\r\n\r\n")),
            rsp("HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\n\r\n"),
            req("OPTIONS * HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 204 No Content\r\n\r\n"),
        ];
        let ev = run(&conv);
        assert_eq!(anomaly_names(&ev), Vec::<&str>::new());
        let tx = http(&ev);
        assert_eq!(tx.len(), 5);
        assert_eq!(tx[0].admin_action.as_deref(), Some("keycloak_user_create"));
        assert_eq!(tx[0].hostname.as_deref(), Some("kc.example"));
        assert_eq!(tx[1].share_action.as_deref(), Some("share_link_created"));
        let dw = tx[2].dicomweb.as_ref().unwrap();
        assert_eq!(
            (dw.service.as_str(), dw.study_instance_uid.as_deref()),
            ("WADO-URI", Some(ST))
        );
        assert!(tx[2].url.ends_with("&access_token=REDACTED"));
        assert!(!format!("{ev:?}").contains(&jwt_payload));
        assert!(tx[3].url_truncated);
        assert_eq!(tx[3].url.len(), 2048);
        assert_eq!((tx[4].url.as_str(), tx[4].status), ("*", Some(204)));
        let (_, h) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        let st = &h.an.stats().http;
        assert_eq!((st.admin_actions, st.share_actions, st.dicomweb_wado_uri), (1, 1, 1));
    }

    #[test]
    fn share_recipients_from_a_json_prefix() {
        let body = format!(
            r#"{{"studyInstanceUid":"{ST}","recipients":["ext1@gmail.com","ext2@example.net"],"message":"{}"}}"#,
            "x".repeat(10_000)
        );
        let conv = vec![
            req(&format!(
                "POST /portal/api/shares HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            rsp("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ];
        let tx = http(&every_split(8080, &conv));
        assert_eq!(tx[0].share_action.as_deref(), Some("share_link_created"));
        assert_eq!(tx[0].share_recipients, ["ext1@gmail.com", "ext2@example.net"]);
    }

    #[test]
    fn custom_tables() {
        let mut cfg = ProtoConfig::default();
        cfg.http.admin_patterns = vec![super::AdminPattern::new("GET", "/secret/**", "peek")];
        cfg.http.share_patterns.clear();
        let conv = vec![req(
            "GET /secret/x/y HTTP/1.1\r\n\r\nPOST /share HTTP/1.1\r\n\r\nPUT /modalities/X HTTP/1.1\r\n\r\n",
        )];
        let (ev, _) = run_on(&cfg, 8042, &conv, Cut::Whole, CloseReason::Fin);
        let tx = http(&ev);
        assert_eq!(tx[0].admin_action.as_deref(), Some("peek"));
        assert_eq!(
            (tx[1].share_action.as_deref(), tx[2].admin_action.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn header_cap_keeps_the_start_line() {
        let mut cfg = ProtoConfig::default();
        cfg.http.max_header_bytes = 1024;
        let big = format!(
            "GET /dicom-web/studies/{ST} HTTP/1.1\r\nCookie: {}\r\n\r\n",
            "c".repeat(5000)
        );
        let conv = vec![
            Rec::Data(ToServer, big.into_bytes()),
            rsp("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n"),
            req("GET /next HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ];
        let (ev, _) = run_on(&cfg, 8042, &conv, Cut::Whole, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::HeaderTooLarge]);
        let tx = http(&ev);
        assert_eq!(tx.len(), 2);
        assert_eq!((tx[0].status, tx[0].incomplete), (Some(431), true));
        assert_eq!(tx[0].dicomweb.as_ref().unwrap().study_instance_uid.as_deref(), Some(ST));
        assert_eq!((tx[1].url.as_str(), tx[1].status), ("/next", Some(200)));
    }

    #[test]
    fn oversized_head_keeps_host_and_user_read_before_the_cap() {
        // Host and Authorization come first; a 70 KB cookie takes the head past 64 KiB.
        let big = format!(
            "GET /dicom-web/studies HTTP/1.1\r\nHost: PACS.example:8042\r\nAuthorization: Basic {}\r\nCookie: {}\r\n\r\n",
            STANDARD.encode("radiologist:pw"),
            "c".repeat(70_000)
        );
        for cut in [Cut::Whole, Cut::At(0, 60), Cut::At(0, 40_000)] {
            let conv = vec![
                Rec::Data(ToServer, big.clone().into_bytes()),
                rsp("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n"),
                req("GET /next HTTP/1.1\r\nHost: pacs\r\n\r\n"),
                rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ];
            let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, cut, CloseReason::Fin);
            assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::HeaderTooLarge]);
            let tx = http(&ev);
            assert_eq!(tx.len(), 2);
            assert_eq!(tx[0].hostname.as_deref(), Some("pacs.example"));
            assert_eq!(tx[0].user.as_deref(), Some("radiologist"));
            assert_eq!(
                (tx[0].method.as_str(), tx[0].url.as_str()),
                ("GET", "/dicom-web/studies")
            );
            assert_eq!((tx[0].status, tx[0].incomplete), (Some(431), true));
            assert!(!format!("{ev:?}").contains("pw"));
            assert_eq!((tx[1].url.as_str(), tx[1].status), ("/next", Some(200)));
        }
    }

    #[test]
    fn memory_budget_refusal_keeps_what_was_read() {
        // A budget too small for a 20 KB head spread over segments: the head is given up
        // with a memory_budget anomaly, what was read still names the request.
        let cfg = ProtoConfig {
            max_decoder_memory_bytes: 8 << 10,
            decoder_memory_guaranteed_per_flow: 2 << 10,
            ..ProtoConfig::default()
        };
        let big = format!("GET /a HTTP/1.1\r\nHost: pacs\r\nX-Pad: {}\r\n\r\n", "p".repeat(20_000));
        let conv = vec![
            Rec::Data(ToServer, big.into_bytes()),
            req("GET /b HTTP/1.1\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ];
        let (ev, h) = run_on(&cfg, 8042, &conv, Cut::ByteByByte, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::MemoryBudget], "{ev:?}");
        let tx = http(&ev);
        assert_eq!(tx[0].hostname.as_deref(), Some("pacs"));
        assert!(tx[0].incomplete);
        // The response (to the first request, as HTTP/1.1 orders them) is read too.
        assert!(tx.iter().any(|t| t.url == "/b"));
        assert_eq!(tx[0].status, Some(200));
        assert!(h.an.stats().memory_cap_hits > 0);
        assert_eq!(h.an.budget().used(), 0);
    }

    #[test]
    fn gap_inside_a_head_then_next_request_decodes() {
        // The request cut by the gap is still reported from its start line (its Host line
        // is cut), with the response the server gave it.
        let conv = vec![
            req("GET /lost HTTP/1.1\r\nHost: pa"),
            Rec::Gap(ToServer, 40),
            req("GET /found HTTP/1.1\r\nHost: pacs\r\n\r\n"),
            rsp("HTTP/1.1 204 No Content\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            // And a response head cut by a gap: the next response is still paired.
            req("GET /two HTTP/1.1\r\nHost: pacs\r\n\r\n"),
            rsp("HTTP/1.1 200 O"),
            Rec::Gap(ToClient, 30),
            req("GET /three HTTP/1.1\r\nHost: pacs\r\n\r\n"),
            rsp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ];
        let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        let tx = http(&ev);
        let lost = tx.iter().find(|t| t.url == "/lost").unwrap();
        assert_eq!(
            (lost.hostname.as_deref(), lost.status, lost.incomplete),
            (None, Some(204), true)
        );
        let found = tx.iter().find(|t| t.url == "/found").unwrap();
        assert_eq!((found.hostname.as_deref(), found.status), (Some("pacs"), Some(200)));
        let three = tx.iter().find(|t| t.url == "/three").unwrap();
        assert_eq!(three.status, Some(404));
    }

    #[test]
    fn heads_cut_by_the_snaplen_still_give_their_requests_and_statuses() {
        // A header-only capture: each segment's first bytes, then a hole. The request's start
        // line and Host are whole, the response's status line is: one transaction, marked
        // incomplete; the next exchange (found again by resynchronising) likewise.
        let conv = vec![
            req("GET /dicom-web/studies/1.2.3/series HTTP/1.1\r\nHost: pacs\r\nAccept: appl"),
            Rec::Gap(ToServer, 200),
            rsp("HTTP/1.1 200 OK\r\nContent-Ty"),
            Rec::Gap(ToClient, 1400),
            Rec::Gap(ToClient, 900),
            req("GET /dicom-web/studies/1.2.4 HTTP/1.1\r\nHo"),
            Rec::Gap(ToServer, 150),
            rsp("HTTP/1.1 404 Not Found\r\nServer: ngi"),
            Rec::Gap(ToClient, 300),
            // Cut inside the start line: nothing can be said of it.
            req("DELETE /dicom-web/stu"),
            Rec::Gap(ToServer, 150),
        ];
        let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
        let tx = http(&ev);
        let got: Vec<_> = tx
            .iter()
            .map(|t| (t.url.as_str(), t.hostname.as_deref(), t.status, t.incomplete))
            .collect();
        assert_eq!(
            got,
            [
                ("/dicom-web/studies/1.2.3/series", Some("pacs"), Some(200), true),
                ("/dicom-web/studies/1.2.4", None, Some(404), true)
            ]
        );
    }

    #[test]
    fn a_cut_basic_authorization_names_its_user_only_once_past_the_colon() {
        // `admin:admin-pass`; the snaplen cuts each head somewhere in its credentials. Past the
        // user-id's colon the user is certain (RFC 7617: no colon in a user-id); before it, or
        // in a Bearer token, no one is named.
        let b64 = "YWRtaW46YWRtaW4tcGFzcw==";
        let head = |auth: &str| format!("GET /dicom-web/studies/1.2.3 HTTP/1.1\r\nHost: pacs\r\nAuthorization: {auth}");
        for (auth, user) in [
            (&b64[..23], Some("admin")),
            (&b64[..10], Some("admin")),
            // "YWRtaW46" is "admin:" exactly; one character less ends before the colon.
            (&b64[..8], Some("admin")),
            (&b64[..7], None),
            (&b64[..4], None),
            ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9", None),
        ] {
            let auth = if auth.starts_with("Bearer") {
                auth.to_string()
            } else {
                format!("Basic {auth}")
            };
            let conv = vec![
                req(&head(&auth)),
                Rec::Gap(ToServer, 50),
                rsp("HTTP/1.1 200 OK\r\nContent-Le"),
                Rec::Gap(ToClient, 500),
            ];
            let (ev, _) = run_on(&ProtoConfig::default(), 8042, &conv, Cut::Whole, CloseReason::Fin);
            let tx = http(&ev);
            assert_eq!(tx.len(), 1, "{auth}");
            assert_eq!((tx[0].user.as_deref(), tx[0].status), (user, Some(200)), "{auth}");
        }
    }

    #[test]
    fn pipelining_cap() {
        let mut many = String::new();
        for i in 0..70 {
            many.push_str(&format!("GET /r{i} HTTP/1.1\r\n\r\n"));
        }
        let (ev, h) = run_on(
            &ProtoConfig::default(),
            8042,
            &vec![req(&many)],
            Cut::Whole,
            CloseReason::Fin,
        );
        assert_eq!(http(&ev).len(), 70);
        assert_eq!(
            h.an.stats().anomalies.get(HttpAnomaly::TooManyPending.as_str()),
            Some(&6)
        );
    }

    #[test]
    fn smuggling_and_malformed() {
        let conv = vec![
            req("POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            req("BREW /pot HTCPCP/1.0\r\n\r\n"),
            req("PUT /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
            rsp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ];
        let ev = every_split(8042, &conv);
        assert_eq!(
            anomaly_names(&ev),
            vec![HttpAnomaly::ConflictingLength, HttpAnomaly::MalformedRequest]
        );
        let got: Vec<_> = http(&ev).iter().map(|t| (t.url.clone(), t.status)).collect();
        assert_eq!(got, [("/a".to_string(), Some(200)), ("/b".to_string(), Some(200))]);
    }

    #[test]
    fn http2_and_upgrades_are_given_up() {
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        assert_eq!(
            h.data(ToServer, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"),
            Interest::Ignore
        );
        assert_eq!(
            anomaly_names(&h.end(CloseReason::Fin)),
            vec![HttpAnomaly::Http2Unsupported]
        );
        assert_eq!(h.an.stats().http.http2_flows, 1);

        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        let _ = h.data(
            ToServer,
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        let i = h.data(
            ToClient,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        );
        assert_eq!(i, Interest::Ignore);
        let ev = h.end(CloseReason::Fin);
        // The give-up says why.
        assert_eq!(anomaly_names(&ev), vec![HttpAnomaly::GiveUp]);
        let tx = http(&ev);
        assert_eq!((tx.len(), tx[0].status), (1, Some(101)));

        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        let _ = h.data(
            ToServer,
            b"CONNECT pacs.example:443 HTTP/1.1\r\nHost: pacs.example:443\r\n\r\n",
        );
        assert_eq!(
            h.data(ToClient, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Interest::Ignore
        );
        let tx = http(&h.end(CloseReason::Fin));
        assert_eq!(
            (tx[0].hostname.as_deref(), tx[0].url.as_str()),
            (Some("pacs.example"), "pacs.example:443")
        );
    }

    #[test]
    fn never_http_on_an_http_port_is_given_up() {
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8080);
        let junk = vec![0x5au8; 1 << 20];
        for _ in 0..=(super::RESYNC_GIVE_UP_BYTES >> 20) {
            if h.data(ToClient, &junk) == Interest::Ignore {
                break;
            }
        }
        assert_eq!(h.last_interest, Interest::Ignore);
        assert_eq!(h.an.stats().http.flows_given_up, 1);
        assert_eq!(anomaly_names(&h.events()), vec![HttpAnomaly::GiveUp]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(42);
        let pieces: [&[u8]; 10] = [
            b"GET / HTTP/1.1\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"Content-Length: 7\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"Authorization: Basic cmFkMTpwdw==\r\n",
            b"HEAD /dicom-web/studies/1.2 HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
        ];
        for round in 0..400u64 {
            let port = if round % 2 == 0 { 8042 } else { 9000 };
            let mut h = Harness::new(ProtoConfig::default(), 50_000, port);
            if round % 3 == 0 {
                let _ = h.data(ToServer, b"GET / HTTP/1.1\r\n");
            }
            for _ in 0..30 {
                let dir = if matches!(rng.next() % 2, 0) {
                    ToServer
                } else {
                    ToClient
                };
                let mut v: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
                for _ in 0..rng.next() % 4 {
                    let p = pieces[(rng.next() % pieces.len() as u64) as usize];
                    let at = (rng.next() as usize) % (v.len() + 1);
                    v.splice(at..at, p.iter().copied());
                }
                let r = rng.next() % 20;
                let i = if r == 0 {
                    h.gap(dir, rng.next() % 50)
                } else if r == 1 {
                    h.close(dir, CloseReason::Fin)
                } else {
                    h.data(dir, &v)
                };
                if i == Interest::Ignore {
                    break;
                }
            }
            for e in h.end(CloseReason::EndOfCapture) {
                let _ = format!("{e:?}");
            }
        }
    }
}
