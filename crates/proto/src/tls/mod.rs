//! TLS metadata for HTTPS portals, DICOM TLS (port 2762, PS3.15 Annex B) and HL7 over TLS:
//! what a tap can know without keys.
//!
//! - [`config`]: the decoder's caps (its ports are [`crate::ProtoConfig::tls_ports`]);
//! - [`parser`]: pure record-header, probe and hello/certificate parsing (tls-parser inside);
//! - [`fingerprint`]: JA3, JA3S and JA4;
//! - `stream`: the per-direction record walker — skips encrypted records by length without
//!   buffering, reassembles the handshake messages it needs (capped), resynchronises after
//!   gaps and midstream pickups;
//! - `state`: what the connection has shown (hellos, certificate, records per direction);
//! - `event`: the certificate record and [`TlsAnomaly`];
//! - this file: the flow ([`TlsFlow`], a [`crate::Decoder`]) and its one `tls` event
//!   (CONTRACT §2), emitted when the flow ends.

pub mod config;
mod event;
pub mod fingerprint;
pub mod parser;
mod state;
mod stream;

pub use config::RESYNC_GIVE_UP_BYTES;
pub use event::TlsAnomaly;
pub use fingerprint::{ja3, ja3_string, ja3s, ja4, ja4_parts};
pub use parser::{
    parse_certificate, parse_client_hello, parse_client_hello_prefix, parse_record_header, parse_server_hello,
    CertificateSummary, ClientHello, ContentType, HandshakeType, RecordHeader, ServerHello,
};
pub use stream::MAX_HANDSHAKE_MESSAGE;

use crate::budget::Lease;
use crate::decoder::{at, at_mut, resync_exhausted, Decoder};
use crate::{Ctx, Probe, ProtoConfig};
use pacstap_core::{ChunkBody, CloseReason, Direction, EventBody, StreamChunk, Timestamp};
use parser::version_name;
use state::{Session, SessionSink};
use std::collections::BTreeMap;
use stream::RecordStream;

/// Counters of the tls decoder (`ProtoStats.tls`).
#[derive(Debug, Clone, Default)]
pub struct TlsStats {
    /// `tls` events emitted (connections decoded as TLS).
    pub connections: u64,
    /// Of those, connections whose start was not seen.
    pub midstream_connections: u64,
    /// ClientHellos parsed (the first of each connection).
    pub client_hellos: u64,
    /// ServerHellos parsed, HelloRetryRequests included.
    pub server_hellos: u64,
    pub hello_retry_requests: u64,
    /// Server certificates read (TLS ≤ 1.2).
    pub certificates: u64,
    /// SSLv2-compatible ClientHellos: counted, skipped.
    pub sslv2_client_hellos: u64,
    /// Negotiated versions, one per connection (`TLS 1.2`, `TLS 1.3`, …, `other`).
    pub versions: BTreeMap<&'static str, u64>,
    /// Records read.
    pub records: u64,
    /// Records passed over by length (application data, anything encrypted, heartbeats).
    pub records_skipped: u64,
    /// Handshake messages over [`MAX_HANDSHAKE_MESSAGE`] (the cap hits).
    pub handshake_cap_hits: u64,
    /// Wanted handshake messages that lost bytes to capture gaps.
    pub handshake_messages_lost: u64,
    /// Clear-text alerts.
    pub alerts: u64,
    /// Times a stream lost record sync (gap past a record end, implausible header).
    pub resyncs: u64,
    /// Bytes passed over while looking for a record header.
    pub resync_bytes: u64,
    /// TCP payload bytes delivered to the decoder, both ways.
    pub bytes: u64,
    /// Flows claimed by port that turned out not to be TLS.
    pub flows_given_up: u64,
}

impl TlsStats {
    /// Adds `other`'s counts (gauges included: they are per-owner amounts that sum), so the
    /// counters of several workers, each owning some flows, read as one. Every field is named:
    /// a counter added to the struct and not here does not compile.
    pub fn merge(&mut self, other: &TlsStats) {
        let TlsStats {
            connections,
            midstream_connections,
            client_hellos,
            server_hellos,
            hello_retry_requests,
            certificates,
            sslv2_client_hellos,
            versions,
            records,
            records_skipped,
            handshake_cap_hits,
            handshake_messages_lost,
            alerts,
            resyncs,
            resync_bytes,
            bytes,
            flows_given_up,
        } = other;
        self.connections += connections;
        self.midstream_connections += midstream_connections;
        self.client_hellos += client_hellos;
        self.server_hellos += server_hellos;
        self.hello_retry_requests += hello_retry_requests;
        self.certificates += certificates;
        self.sslv2_client_hellos += sslv2_client_hellos;
        for (k, v) in versions {
            *self.versions.entry(k).or_insert(0) += v;
        }
        self.records += records;
        self.records_skipped += records_skipped;
        self.handshake_cap_hits += handshake_cap_hits;
        self.handshake_messages_lost += handshake_messages_lost;
        self.alerts += alerts;
        self.resyncs += resyncs;
        self.resync_bytes += resync_bytes;
        self.bytes += bytes;
        self.flows_given_up += flows_given_up;
    }
}

/// Content probe on a flow's first bytes (see [`parser::probe`]).
pub fn probe(data: &[u8]) -> Probe {
    parser::probe(data)
}

/// Per-flow TLS state, stored in the flow table (`FlowState::Tls`).
#[derive(Debug)]
pub struct TlsFlow {
    /// Indexed by `Direction::index`.
    streams: [RecordStream; 2],
    session: Session,
    finished: bool,
    /// Charge against the decoder memory budget (kept by the analyzer).
    pub(crate) lease: crate::Lease,
}

impl TlsFlow {
    /// `midstream`: claimed by port, the flow's first bytes were not a ClientHello; both
    /// directions look for a record header first. `start`: time of the first chunk.
    pub fn new(_cfg: &ProtoConfig, midstream: bool, start: Timestamp) -> Self {
        let mut session = Session::default();
        session.event.start = start;
        session.event.midstream = midstream;
        TlsFlow {
            streams: [RecordStream::new(midstream), RecordStream::new(midstream)],
            session,
            finished: false,
            lease: crate::Lease::default(),
        }
    }
}

impl Decoder for TlsFlow {
    /// Handle one chunk; `false` when a flow claimed by port turns out not to be TLS.
    fn on_chunk(&mut self, ctx: &mut Ctx<'_>, chunk: &StreamChunk<'_>) -> bool {
        let dir = chunk.dir;
        let Some(stream) = self.streams.get_mut(dir.index()) else {
            return true;
        };
        let mut sink = SessionSink {
            session: &mut self.session,
            ctx,
            dir,
        };
        match chunk.body {
            ChunkBody::Data(data) => {
                let n = data.len() as u64;
                let counter = at_mut(&mut sink.session.data_bytes, dir);
                *counter = counter.saturating_add(n);
                sink.ctx.stats.tls.bytes += n;
                stream.feed(data, &mut sink);
            }
            ChunkBody::Gap(len) => {
                let ev = &mut sink.session.event;
                ev.gap_bytes = ev.gap_bytes.saturating_add(len);
                if dir == Direction::ToClient {
                    ev.gap_bytes_toclient = ev.gap_bytes_toclient.saturating_add(len);
                }
                sink.ctx.stats.gap_bytes += len;
                stream.gap(len, &mut sink);
            }
            // A half-close changes nothing; the event comes with the flow end.
            ChunkBody::Close(_) => {}
        }
        let s = &self.session;
        let seen = s.data_bytes.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let never_tls =
            s.event.midstream && !s.client_hello && !s.server_hello && !self.streams.iter().any(RecordStream::in_sync);
        if let Some(seen) = resync_exhausted(never_tls, seen, RESYNC_GIVE_UP_BYTES) {
            ctx.stats.tls.flows_given_up += 1;
            self.session.anomaly(
                ctx,
                TlsAnomaly::GiveUp,
                format!("no TLS record chain in {seen} bytes on a TLS port; flow given up"),
            );
            return false;
        }
        true
    }

    /// The flow left the table: emit its `tls` event.
    fn finish(&mut self, ctx: &mut Ctx<'_>, _reason: CloseReason) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let s = &mut self.session;
        let complete = s.handshake_complete();
        let mut ev = std::mem::take(&mut s.event);
        ev.bytes_toserver = *at(&s.data_bytes, Direction::ToServer);
        ev.bytes_toclient = *at(&s.data_bytes, Direction::ToClient);
        ev.end = ctx.ts;
        ev.handshake_complete = complete;
        let stats = &mut ctx.stats.tls;
        stats.connections += 1;
        if ev.midstream {
            stats.midstream_connections += 1;
        }
        if let Some(v) = s.negotiated {
            *stats.versions.entry(version_name(v).unwrap_or("other")).or_default() += 1;
        }
        ctx.emit(EventBody::Tls(ev));
    }

    /// Capacity of every buffer this flow holds (for the memory budget).
    fn held_bytes(&self) -> usize {
        self.streams.iter().map(RecordStream::held_bytes).sum::<usize>() + self.session.client_session_id.capacity()
    }

    fn lease_mut(&mut self) -> &mut Lease {
        &mut self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::TlsAnomaly;
    use crate::testutil::tls::*;
    use crate::testutil::{anomaly_names, Harness, Lcg};
    use crate::{FlowState, ProtoConfig};
    use pacstap_core::Direction::{self, ToClient, ToServer};
    use pacstap_core::{CloseReason, EventBody, Interest, ProtocolEvent, TlsEvent};

    type Conv = Vec<(Direction, Vec<u8>)>;

    fn tls_events(ev: &[ProtocolEvent]) -> Vec<TlsEvent> {
        ev.iter()
            .filter_map(|e| match &e.body {
                EventBody::Tls(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Feed the conversation, optionally cutting segment `split.0` at `split.1` (or every
    /// segment byte by byte when `split.0 == usize::MAX`).
    fn run(port: u16, conv: &Conv, split: Option<(usize, usize)>, end: CloseReason) -> (Vec<ProtocolEvent>, Harness) {
        let mut h = Harness::new(ProtoConfig::default(), 50_000, port);
        let base = h.ts;
        for (i, (dir, bytes)) in conv.iter().enumerate() {
            h.ts = base + i as i64 * 1_000_000;
            match split {
                Some((m, k)) if m == i => h.data_split(*dir, bytes, &[k]),
                Some((usize::MAX, _)) => {
                    for b in bytes.chunks(1) {
                        let _ = h.data(*dir, b);
                    }
                }
                _ => {
                    let _ = h.data(*dir, bytes);
                }
            }
        }
        h.ts = base + conv.len() as i64 * 1_000_000;
        let ev = h.end(end);
        (ev, h)
    }

    /// The events are the same whole, cut at every split point of every segment, and byte by
    /// byte.
    fn every_split(port: u16, conv: &Conv) -> Vec<ProtocolEvent> {
        let (whole, _) = run(port, conv, None, CloseReason::Fin);
        let want = format!("{whole:?}");
        for (i, (_, bytes)) in conv.iter().enumerate() {
            // Long application data segments: every split of their first and last 300 bytes.
            let ks: Vec<usize> = if bytes.len() > 700 {
                (1..300).chain(bytes.len() - 300..bytes.len()).collect()
            } else {
                (1..bytes.len()).collect()
            };
            for k in ks {
                let (got, _) = run(port, conv, Some((i, k)), CloseReason::Fin);
                assert_eq!(format!("{got:?}"), want, "segment {i} split at {k}");
            }
        }
        let (got, _) = run(port, conv, Some((usize::MAX, 0)), CloseReason::Fin);
        assert_eq!(format!("{got:?}"), want, "byte by byte");
        whole
    }

    fn one(ev: &[ProtocolEvent]) -> TlsEvent {
        let t = tls_events(ev);
        assert_eq!(t.len(), 1, "{ev:?}");
        t.into_iter().next().unwrap()
    }

    #[test]
    fn curl_tls12_at_every_split_point() {
        let c = capture(CURL_TLS12);
        let ev = every_split(8443, &c.segments);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert_eq!(t.sni.as_deref(), Some("pacs.example.test"));
        assert_eq!(t.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(t.client_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(t.alpn, ["h2", "http/1.1"]);
        assert_eq!(t.alpn_selected.as_deref(), Some("http/1.1"));
        assert_eq!(t.ja3.as_deref(), Some("87b9bfc7da97115ed2276737b09f8d74"));
        assert_eq!(t.ja4.as_deref(), Some("t12d2807h2_d943125447b4_a44c6288192a"));
        assert_eq!(t.ja3s.as_deref(), Some("405adaa88faa24941b8a00ebff13546a"));
        assert_eq!(t.ja3s_string.as_deref(), Some("771,49196,65281-11-16-23"));
        assert_eq!(
            t.cipher_suite.as_deref(),
            Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
        );
        assert_eq!(t.cipher_suite_id.as_deref(), Some("0xc02c"));
        let cert = t.certificate.as_ref().unwrap();
        assert_eq!(cert.sha256, SERVER_CERT_SHA256);
        assert_eq!((cert.der_bytes, cert.chain_length), (447, 1));
        assert_eq!(t.session_resumed, Some(false));
        assert!(t.handshake_complete && !t.hello_retry && !t.midstream);
        // The close_notify alerts went encrypted.
        assert!(t.alert.is_none());
        assert_eq!(t.bytes_toserver, c.bytes(ToServer));
        assert_eq!(t.bytes_toclient, c.bytes(ToClient));
        assert_eq!(t.gap_bytes, 0);
        assert!(t.end > t.start);
    }

    #[test]
    fn curl_tls13() {
        let c = capture(CURL_TLS13);
        let ev = every_split(8443, &c.segments);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert_eq!(t.sni.as_deref(), Some("pacs.example.test"));
        assert_eq!(t.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(t.client_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(t.ja3.as_deref(), Some("0149f47eabf9a20d0893e2a44e5a6323"));
        assert_eq!(t.ja4.as_deref(), Some("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"));
        assert_eq!(t.ja3s.as_deref(), Some("15af977ce25de452b96affa2addb1036"));
        assert_eq!(t.cipher_suite.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        // Encrypted in TLS 1.3: EncryptedExtensions (ALPN) and Certificate.
        assert!(t.alpn_selected.is_none() && t.certificate.is_none());
        assert_eq!(t.session_resumed, Some(false));
        assert!(t.handshake_complete);
        assert_eq!(t.bytes_toserver, c.bytes(ToServer));
        assert_eq!(t.bytes_toclient, c.bytes(ToClient));
    }

    #[test]
    fn s_client_with_alpn() {
        let c = capture(SCLIENT_ALPN);
        let (ev, h) = run(8443, &c.segments, None, CloseReason::Fin);
        let t = one(&ev);
        assert_eq!(t.alpn, ["h2", "http/1.1"]);
        assert_eq!(t.ja3.as_deref(), Some("5a1edc7f170af1014fc65c994878e63c"));
        assert_eq!(t.ja4.as_deref(), Some("t13d3111h2_e8f1e7e78f70_1f22a2ca17c4"));
        assert_eq!(t.version.as_deref(), Some("TLS 1.3"));
        let s = &h.an.stats().tls;
        assert_eq!((s.connections, s.client_hellos, s.server_hellos), (1, 1, 1));
        assert_eq!(s.versions.get("TLS 1.3"), Some(&1));
        assert_eq!(s.bytes, c.bytes(ToServer) + c.bytes(ToClient));
        assert!(s.records_skipped > 0 && s.records > s.records_skipped);
        assert_eq!(h.an.stats().events, 1);
    }

    #[test]
    fn tls12_session_resumption() {
        let conns = captures(SCLIENT_RESUME);
        assert_eq!(conns.len(), 2);
        let full = one(&run(8443, &conns[0].segments, None, CloseReason::Fin).0);
        assert_eq!(full.session_resumed, Some(false));
        assert!(full.certificate.is_some());
        let resumed = one(&every_split(8443, &conns[1].segments));
        assert_eq!(resumed.session_resumed, Some(true));
        assert!(resumed.certificate.is_none());
        assert_eq!(resumed.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(resumed.ja3.as_deref(), Some("871a754af286dfb70c1b53c6887c62e0"));
        assert!(resumed.handshake_complete);
    }

    #[test]
    fn hello_retry_request() {
        let c = capture(SCLIENT_HRR);
        let (ev, h) = run(8443, &c.segments, None, CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert!(t.hello_retry);
        assert_eq!(t.version.as_deref(), Some("TLS 1.3"));
        // The fingerprint is the first ClientHello's (tshark: the same JA3 for both).
        assert_eq!(t.ja3.as_deref(), Some("a4cb0a2566ce0ad47dcd4e59ad18f66e"));
        assert!(t.handshake_complete);
        let s = &h.an.stats().tls;
        assert_eq!((s.client_hellos, s.server_hellos, s.hello_retry_requests), (1, 2, 1));
    }

    fn pq_conv(segment: usize) -> (Conv, usize) {
        let body = chrome_pq_client_hello("pacs.example.test");
        // The ~1.9 KB hello in records of at most 1024 bytes, in segments of `segment` bytes.
        let recs = records_of(22, &handshake(1, &body), 1024);
        let mut conv: Conv = recs.chunks(segment).map(|s| (ToServer, s.to_vec())).collect();
        let sh = server_hello_body(0x0303, &[], 0x1301, &[(43, vec![3, 4]), (51, vec![0, 0x1d, 0, 32])]);
        let mut flight = records_of(22, &handshake(2, &sh), 1 << 14);
        flight.extend(records_of(20, &[1], 1));
        flight.extend(records_of(23, &[0x77; 3000], 1400));
        conv.push((ToClient, flight));
        let mut client = records_of(20, &[1], 1);
        client.extend(records_of(23, &[0x66; 300], 1400));
        conv.push((ToServer, client));
        (conv, recs.len())
    }

    #[test]
    fn post_quantum_client_hello_across_records_and_segments() {
        let (conv, _) = pq_conv(700);
        let ev = every_split(443, &conv);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert_eq!(t.sni.as_deref(), Some("pacs.example.test"));
        assert_eq!(t.ja4.as_deref(), Some("t13d1516h2_8daaf6152771_e5627efa2ab1"));
        assert_eq!(t.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(t.cipher_suite.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert!(t.handshake_complete);
        // Off the TLS ports too: content decides.
        let (ev, _) = run(9999, &conv, None, CloseReason::Fin);
        assert_eq!(one(&ev).ja4, t.ja4);
    }

    #[test]
    fn oversized_client_hello_is_capped_and_counted() {
        // A ClientHello with 70 KB of padding: five records, over the 64 KiB cap.
        let mut body = chrome_pq_client_hello("big.example.test");
        body.extend(vec![0; 70_000]);
        let recs = records_of(22, &handshake(1, &body), 1 << 14);
        let mut conv: Conv = recs.chunks(1448).map(|s| (ToServer, s.to_vec())).collect();
        conv.push((ToClient, records_of(21, &[2, 40], 2)));
        let (ev, h) = run(443, &conv, None, CloseReason::Rst);
        assert_eq!(anomaly_names(&ev), ["tls.handshake_too_large"]);
        let t = one(&ev);
        assert!(t.ja3.is_none() && t.sni.is_none());
        let a = t.alert.unwrap();
        assert_eq!(
            (a.direction, a.level, a.code, a.description.as_str()),
            (ToClient, 2, 40, "handshake_failure")
        );
        assert!(!t.handshake_complete);
        let s = &h.an.stats().tls;
        assert_eq!((s.handshake_cap_hits, s.alerts), (1, 1));
        assert_eq!(h.an.stats().anomalies.get("tls.handshake_too_large"), Some(&1));
    }

    #[test]
    fn midstream_by_port_counts_bytes_and_resyncs() {
        // Picked up inside an application data record, both ways.
        let mut to_server = vec![0x99u8; 333];
        to_server.extend(records_of(23, &[0x42; 5000], 1400));
        let mut to_client = vec![0x88u8; 1000];
        to_client.extend(records_of(23, &[0x43; 20_000], 16_000));
        let conv: Conv = vec![(ToServer, to_server.clone()), (ToClient, to_client.clone())];
        let ev = every_split(2762, &conv);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert!(t.midstream);
        assert!(t.sni.is_none() && t.version.is_none() && t.ja3.is_none());
        assert_eq!(t.bytes_toserver, to_server.len() as u64);
        assert_eq!(t.bytes_toclient, to_client.len() as u64);
        assert!(t.handshake_complete, "application data both ways");
        let (_, h) = run(2762, &conv, None, CloseReason::Fin);
        let s = &h.an.stats().tls;
        assert_eq!(s.resync_bytes, 1333);
        assert_eq!(s.midstream_connections, 1);
    }

    #[test]
    fn gap_before_client_hello_then_server_flight() {
        // The ClientHello was lost; the TLS 1.2 server flight is read midstream.
        let c = capture(CURL_TLS12);
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
        let ch_len = c.toserver[0].len() as u64;
        assert_eq!(h.gap(ToServer, ch_len), Interest::Continue);
        for (dir, bytes) in c.segments.iter().skip(1) {
            let _ = h.data(*dir, bytes);
        }
        let t = one(&h.end(CloseReason::Fin));
        assert!(t.midstream);
        assert!(t.ja3.is_none() && t.sni.is_none());
        assert_eq!(t.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(t.ja3s.as_deref(), Some("405adaa88faa24941b8a00ebff13546a"));
        assert_eq!(t.certificate.unwrap().sha256, SERVER_CERT_SHA256);
        // Resumption cannot be judged without the ClientHello.
        assert_eq!(t.session_resumed, None);
        assert_eq!(t.gap_bytes, ch_len);
        assert_eq!(t.bytes_toserver, c.bytes(ToServer) - ch_len);
    }

    #[test]
    fn gap_inside_application_data_keeps_sync() {
        let c = capture(CURL_TLS13);
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 8443);
        // Lose 1000 bytes from the middle of the server's 5212-byte segment (one record).
        for (dir, bytes) in &c.segments {
            if bytes.len() > 5000 {
                let _ = h.data(*dir, &bytes[..2000]);
                let _ = h.gap(*dir, 1000);
                let _ = h.data(*dir, &bytes[3000..]);
            } else {
                let _ = h.data(*dir, bytes);
            }
        }
        let ev = h.end(CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty());
        let t = one(&ev);
        assert_eq!(t.gap_bytes, 1000);
        assert_eq!(h.an.stats().tls.resyncs, 0);
        assert_eq!(t.ja3.as_deref(), Some("0149f47eabf9a20d0893e2a44e5a6323"));
    }

    #[test]
    fn gap_inside_the_client_hello_then_the_server_flight_decodes() {
        // Lose the middle of the ClientHello (a real capture): the server's messages that
        // follow are still read.
        let c = capture(CURL_TLS12);
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
        let ch = &c.toserver[0];
        let _ = h.data(ToServer, &ch[..40]);
        let _ = h.gap(ToServer, 60);
        let _ = h.data(ToServer, &ch[100..]);
        for (dir, bytes) in c.segments.iter().skip(1) {
            let _ = h.data(*dir, bytes);
        }
        let t = one(&h.end(CloseReason::Fin));
        assert!(t.ja3.is_none(), "the ClientHello was cut");
        assert_eq!(t.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(t.ja3s.as_deref(), Some("405adaa88faa24941b8a00ebff13546a"));
        assert_eq!(t.certificate.unwrap().sha256, SERVER_CERT_SHA256);
        assert_eq!(t.gap_bytes, 60);
    }

    #[test]
    fn a_client_hello_cut_by_the_snaplen_still_names_the_server() {
        // A header-only capture keeps the first bytes of the ClientHello's segment, then a
        // hole: the server name (curl sends it first) once the cut falls after it, never a
        // fingerprint of the part; the server's flight still decodes.
        let c = capture(CURL_TLS12);
        let whole = {
            let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
            for (dir, bytes) in &c.segments {
                let _ = h.data(*dir, bytes);
            }
            one(&h.end(CloseReason::Fin))
        };
        let sni = whole.sni.clone().expect("curl names its server");
        let ch = &c.toserver[0];
        let mut first_named = None;
        for cut in 1..ch.len() {
            let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
            let _ = h.data(ToServer, &ch[..cut]);
            let _ = h.gap(ToServer, (ch.len() - cut) as u64);
            for (dir, bytes) in c.segments.iter().skip(1) {
                let _ = h.data(*dir, bytes);
            }
            let t = one(&h.end(CloseReason::Fin));
            assert!(t.ja3.is_none() && t.ja4.is_none(), "cut at {cut}");
            assert_eq!(t.ja3s, whole.ja3s, "cut at {cut}");
            match (&t.sni, first_named) {
                (Some(name), _) => {
                    assert_eq!(name, &sni, "cut at {cut}");
                    assert_eq!(t.client_version.as_deref(), Some("TLS 1.2"));
                    first_named.get_or_insert(cut);
                }
                (None, None) => {}
                (None, Some(at)) => panic!("named at {at}, not at {cut}"),
            }
        }
        // Named from the end of the server_name extension (the host name is its last field)
        // on, not before.
        let end = ch.windows(sni.len()).position(|w| w == sni.as_bytes()).unwrap() + sni.len();
        assert_eq!(first_named, Some(end));
    }

    #[test]
    fn sslv2_hello_on_port_443() {
        let sh = server_hello_body(0x0301, &[9; 32], 0x002f, &[]);
        let mut flight = records_of(22, &handshake(2, &sh), 1 << 14);
        flight[1..3].copy_from_slice(&[3, 1]);
        let conv: Conv = vec![(ToServer, SSLV2_HELLO.to_vec()), (ToClient, flight)];
        let (ev, h) = run(443, &conv, None, CloseReason::Fin);
        assert!(anomaly_names(&ev).is_empty(), "{:?}", anomaly_names(&ev));
        let t = one(&ev);
        assert_eq!(t.version.as_deref(), Some("TLS 1.0"));
        assert_eq!(t.cipher_suite.as_deref(), Some("TLS_RSA_WITH_AES_128_CBC_SHA"));
        assert!(t.ja3.is_none());
        assert_eq!(h.an.stats().tls.sslv2_client_hellos, 1);
        // Off the TLS ports an SSLv2 hello is not claimed.
        let (ev, _) = run(9999, &conv, None, CloseReason::Fin);
        assert!(tls_events(&ev).is_empty());
    }

    #[test]
    fn bad_record_in_sync_is_an_anomaly() {
        let c = capture(CURL_TLS12);
        let mut conv = c.segments.clone();
        // Corrupt the header of the client's first application data record.
        let i = conv.iter().position(|(d, b)| *d == ToServer && b[0] == 23).unwrap();
        conv[i].1[1] = 0x7f;
        let (ev, h) = run(8443, &conv, None, CloseReason::Fin);
        assert_eq!(anomaly_names(&ev), ["tls.bad_record"]);
        assert_eq!(one(&ev).ja3.as_deref(), Some("87b9bfc7da97115ed2276737b09f8d74"));
        assert_eq!(h.an.stats().tls.resyncs, 1);
    }

    #[test]
    fn non_tls_on_a_tls_port_is_given_up() {
        let mut rng = Lcg(42);
        let junk: Vec<u8> = (0..64 << 10).map(|_| (rng.next() as u8) | 0x80).collect();
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
        for _ in 0..40 {
            if h.data(ToServer, &junk) == Interest::Ignore {
                break;
            }
        }
        assert_eq!(h.last_interest, Interest::Ignore);
        assert!(matches!(h.st, FlowState::Ignored));
        assert_eq!(anomaly_names(&h.events()), vec![TlsAnomaly::GiveUp]);
        assert!(h.end(CloseReason::Fin).is_empty());
        assert_eq!(h.an.stats().tls.flows_given_up, 1);
    }

    #[test]
    fn short_first_segment_is_held_then_decided() {
        let c = capture(CURL_TLS13);
        let ch = &c.toserver[0];
        let mut h = Harness::new(ProtoConfig::default(), 50_000, 7000);
        let _ = h.data(ToServer, &ch[..3]);
        assert!(matches!(h.st, FlowState::Probing(_)));
        let _ = h.data(ToServer, &ch[3..]);
        assert!(matches!(h.st, FlowState::Tls(_)));
        let t = one(&h.end(CloseReason::Timeout));
        assert_eq!(t.ja3.as_deref(), Some("0149f47eabf9a20d0893e2a44e5a6323"));
        assert_eq!(t.bytes_toserver, ch.len() as u64);
        assert!(!t.handshake_complete);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(1234);
        let real = capture(CURL_TLS12);
        for round in 0..200 {
            let port = [443, 8443, 9000][round % 3];
            let mut h = Harness::new(ProtoConfig::default(), 50_000, port);
            for (i, (dir, bytes)) in real.segments.iter().enumerate() {
                let mut b = bytes.clone();
                // Flip a few bytes of some segments, cut some short, insert gaps.
                for _ in 0..(rng.next() % 4) {
                    if !b.is_empty() {
                        let at = rng.next() as usize % b.len();
                        b[at] = rng.next() as u8;
                    }
                }
                if rng.next().is_multiple_of(5) {
                    b.truncate(rng.next() as usize % (b.len() + 1));
                }
                if i > 0 && rng.next().is_multiple_of(7) {
                    let _ = h.gap(*dir, rng.next() % 2000);
                }
                let cut = rng.next() as usize % (b.len() + 1);
                h.data_split(*dir, &b, &[cut]);
            }
            let ev = h.end(CloseReason::EndOfCapture);
            for e in &ev {
                let _ = format!("{e:?}");
            }
        }
        // Pure noise.
        for _ in 0..50 {
            let mut h = Harness::new(ProtoConfig::default(), 50_000, 443);
            for _ in 0..20 {
                let len = rng.next() as usize % 3000;
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let dir = if rng.next().is_multiple_of(2) {
                    ToServer
                } else {
                    ToClient
                };
                let _ = h.data(dir, &data);
            }
            let _ = h.end(CloseReason::Rst);
        }
    }
}
