//! One direction of a TLS connection as a stream of records (RFC 8446 §5.1, RFC 5246 §6.2).
//!
//! Headers are read 5 bytes at a time (held across TCP segments); record bodies the tap has no
//! use for — application data, anything after ChangeCipherSpec — are passed over by length
//! without being buffered. Handshake records feed a second, message-level stream: handshake
//! messages may be split over several records and coalesced within one (RFC 8446 §5.1), so
//! they are reassembled, up to [`MAX_HANDSHAKE_MESSAGE`], only for the message types the
//! session asks for. After a gap or an implausible header the stream scans for the next
//! plausible record header.

use super::parser::{
    parse_record_header, sslv2_client_hello_len, ContentType, HandshakeType, RecordHeader, HANDSHAKE_HEADER_LEN,
    RECORD_HEADER_LEN,
};
use crate::carry::Carry;

/// Cap on one reassembled handshake message. ClientHellos are 0.2-2 KB (a post-quantum
/// X25519MLKEM768 key share adds 1216 bytes); a TLS 1.2 Certificate message carries the chain,
/// typically 1-8 KB, rarely past 16 KB. 64 KiB keeps every real one while bounding what a peer
/// can make us hold (the length field allows 16 MiB, RFC 8446 §4).
pub const MAX_HANDSHAKE_MESSAGE: usize = 64 << 10;

/// What the record stream reports, in stream order.
pub(crate) trait RecordSink {
    /// A record header was accepted. `encrypted`: this direction already sent its
    /// ChangeCipherSpec, so the body is opaque.
    fn on_record(&mut self, header: &RecordHeader, encrypted: bool);
    /// Whether to reassemble handshake messages of this type (else they are skipped by length).
    fn wants(&self, msg_type: HandshakeType) -> bool;
    /// A wanted handshake message, whole: its body after the 4-byte header. `in_sync`: as for
    /// [`RecordSink::on_desync`]; a message that fails to parse right after a resynchronisation
    /// is more likely a misread than a malformed message.
    fn on_handshake(&mut self, msg_type: HandshakeType, body: &[u8], in_sync: bool);
    /// A wanted handshake message longer than [`MAX_HANDSHAKE_MESSAGE`]; skipped.
    fn on_handshake_too_large(&mut self, msg_type: HandshakeType, len: u32);
    /// A wanted handshake message that lost bytes to a capture gap; dropped. `prefix`: its
    /// body bytes before the hole (empty when none were kept).
    fn on_handshake_lost(&mut self, msg_type: HandshakeType, prefix: &[u8]);
    /// A clear-text alert (RFC 8446 §6): a 2-byte alert record before ChangeCipherSpec.
    /// (Encrypted alerts are longer; alerts fragmented over records, allowed before TLS 1.3
    /// but not seen in practice, are ignored.)
    fn on_alert(&mut self, level: u8, description: u8);
    /// A ChangeCipherSpec record ended. Returns whether what follows from this side is
    /// encrypted: yes up to TLS 1.2 (RFC 5246 §7.1); in TLS 1.3 it is the middlebox
    /// compatibility no-op (RFC 8446 §D.4) — encrypted handshake messages travel as
    /// application_data records there, and a ClientHello or ServerHello after a
    /// HelloRetryRequest may follow it in the clear.
    fn on_change_cipher_spec(&mut self) -> bool;
    /// An implausible header where one was due. `in_sync`: the stream had read at least two
    /// consecutive records (or began at the connection start), so this is a real anomaly
    /// rather than a failed guess after a resynchronisation.
    fn on_desync(&mut self, header: [u8; RECORD_HEADER_LEN], in_sync: bool);
    /// Bytes passed over while looking for a record header.
    fn on_resync_skip(&mut self, bytes: u64);
    /// An SSLv2-compatible ClientHello (RFC 5246 Appendix E.2) of `len` bytes: counted, skipped.
    fn on_sslv2_hello(&mut self, len: u16);
    /// Make room for `more` bytes in `buf` (decoder memory budget); `false`: refused. The
    /// default does not budget (tests, fuzzing).
    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        buf.reserve_exact(more);
        true
    }
    /// The memory budget refused to hold a wanted handshake message of `len` bytes; skipped.
    fn on_budget_refused(&mut self, _msg_type: HandshakeType, _len: usize) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a record header into `hdr`.
    Header,
    /// Inside a record body: `remaining` bytes to go.
    Body { content_type: ContentType, remaining: u16 },
    /// Looking for a plausible header; `hdr` holds the last bytes of the previous chunk.
    Resync,
    /// Inside an SSLv2-compatible ClientHello.
    Sslv2 { remaining: u16 },
}

/// One direction's record walker.
#[derive(Debug)]
pub(crate) struct RecordStream {
    state: State,
    /// No byte of this direction seen yet: only the very first message may be SSLv2.
    fresh: bool,
    /// This side sent ChangeCipherSpec: its later handshake and alert records are encrypted
    /// (RFC 5246 §7.1).
    encrypted: bool,
    /// Consecutive headers accepted since the last (re)synchronisation; from 2 on, or when the
    /// stream began at the connection start, the stream is known to be in sync.
    chained: u32,
    trusted_start: bool,
    /// A record header cut by a chunk boundary, or the unscanned tail while resynchronising.
    hdr: Carry<RECORD_HEADER_LEN>,
    /// The current record is a 2-byte clear-text alert; its bytes so far.
    alert: Option<([u8; 2], usize)>,
    handshake: HandshakeReader,
}

impl RecordStream {
    /// Capacity of the buffers this walker holds (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.handshake.buf.capacity()
    }

    /// `midstream`: the start of this direction was not seen; look for a header first.
    pub(crate) fn new(midstream: bool) -> Self {
        RecordStream {
            state: if midstream { State::Resync } else { State::Header },
            fresh: true,
            encrypted: false,
            chained: 0,
            trusted_start: !midstream,
            hdr: Carry::new(),
            alert: None,
            handshake: HandshakeReader::default(),
        }
    }

    /// Whether the stream is known to be on record boundaries.
    pub(crate) fn in_sync(&self) -> bool {
        !matches!(self.state, State::Resync) && (self.trusted_start || self.chained >= 2)
    }

    /// Walk `data`, reporting to `sink`.
    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) {
        if std::mem::replace(&mut self.fresh, false) {
            // The first bytes may be an SSLv2-compatible hello (which the content probe
            // refuses, so such a flow is claimed by port). Decided on the first chunk, which
            // holds the 11 bytes needed unless the whole direction is shorter.
            if let Some(len) = sslv2_client_hello_len(data) {
                sink.on_sslv2_hello(len);
                self.state = State::Sslv2 { remaining: len + 2 };
                self.trusted_start = true;
            }
        }
        let mut rest = data;
        while !rest.is_empty() {
            match self.state {
                State::Header => rest = self.read_header(rest, sink),
                State::Body {
                    content_type,
                    remaining,
                } => {
                    let n = rest.len().min(usize::from(remaining));
                    let (part, tail) = rest.split_at(n);
                    self.body(content_type, part, sink);
                    // n ≤ remaining, which is a u16.
                    let remaining = remaining - n as u16;
                    self.state = State::Body {
                        content_type,
                        remaining,
                    };
                    if remaining == 0 {
                        self.end_record(content_type, sink);
                    }
                    rest = tail;
                }
                State::Resync => rest = self.resync(rest, sink),
                State::Sslv2 { remaining } => {
                    let n = rest.len().min(usize::from(remaining));
                    let remaining = remaining - n as u16;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Sslv2 { remaining }
                    };
                    rest = rest.get(n..).unwrap_or_default();
                }
            }
        }
    }

    /// `len` bytes of this direction were lost.
    pub(crate) fn gap(&mut self, len: u64, sink: &mut dyn RecordSink) {
        self.fresh = false;
        match self.state {
            // Lost inside the current record: its end is still known, stay in sync.
            State::Body {
                content_type,
                remaining,
            } if len <= u64::from(remaining) => {
                let remaining = remaining - len as u16;
                if content_type == ContentType::HANDSHAKE && !self.encrypted {
                    self.handshake.gap(len, sink);
                }
                self.alert = None;
                self.state = State::Body {
                    content_type,
                    remaining,
                };
                if remaining == 0 {
                    self.end_record(content_type, sink);
                }
            }
            State::Sslv2 { remaining } if len <= u64::from(remaining) => {
                let remaining = remaining - len as u16;
                self.state = if remaining == 0 {
                    State::Header
                } else {
                    State::Sslv2 { remaining }
                };
            }
            _ => self.lose_sync(sink),
        }
    }

    fn lose_sync(&mut self, sink: &mut dyn RecordSink) {
        self.handshake.reset(sink);
        self.state = State::Resync;
        self.hdr.clear();
        self.chained = 0;
        self.trusted_start = false;
        self.alert = None;
    }

    fn read_header<'d>(&mut self, data: &'d [u8], sink: &mut dyn RecordSink) -> &'d [u8] {
        let (header, used) = self.hdr.gather(data, RECORD_HEADER_LEN);
        let rest = data.get(used..).unwrap_or_default();
        let Some(h) = header else {
            return rest;
        };
        match parse_record_header(&h) {
            Some(header) => self.accept(header, sink),
            None => {
                sink.on_desync(h, self.in_sync());
                self.lose_sync(sink);
                // The next header may begin inside these five bytes.
                self.hdr.set(h.get(1..).unwrap_or_default());
            }
        }
        rest
    }

    fn accept(&mut self, header: RecordHeader, sink: &mut dyn RecordSink) {
        self.chained = self.chained.saturating_add(1);
        sink.on_record(&header, self.encrypted);
        if header.content_type == ContentType::HANDSHAKE && !self.encrypted {
            self.handshake.record_start();
        }
        self.alert =
            (header.content_type == ContentType::ALERT && header.length == 2 && !self.encrypted).then_some(([0; 2], 0));
        self.state = State::Body {
            content_type: header.content_type,
            remaining: header.length,
        };
        if header.length == 0 {
            self.end_record(header.content_type, sink);
        }
    }

    fn body(&mut self, content_type: ContentType, part: &[u8], sink: &mut dyn RecordSink) {
        if self.encrypted {
            return;
        }
        match content_type {
            ContentType::HANDSHAKE => {
                let in_sync = self.in_sync();
                self.handshake.feed(part, in_sync, sink);
            }
            ContentType::ALERT => {
                if let Some((bytes, len)) = &mut self.alert {
                    for &b in part {
                        if let Some(slot) = bytes.get_mut(*len) {
                            *slot = b;
                            *len += 1;
                        }
                    }
                    if *len == 2 {
                        sink.on_alert(bytes[0], bytes[1]);
                        self.alert = None;
                    }
                }
            }
            _ => {}
        }
    }

    fn end_record(&mut self, content_type: ContentType, sink: &mut dyn RecordSink) {
        self.state = State::Header;
        if content_type == ContentType::CHANGE_CIPHER_SPEC && !self.encrypted && sink.on_change_cipher_spec() {
            self.encrypted = true;
            self.handshake.reset(sink);
        }
    }

    /// Scan for a plausible header. Candidates may straddle chunks: the last ≤ 4 bytes of the
    /// previous chunk wait in `hdr`.
    fn resync<'d>(&mut self, data: &'d [u8], sink: &mut dyn RecordSink) -> &'d [u8] {
        let k = self.hdr.len();
        if k > 0 {
            // Candidates at the carried bytes need at most 4 bytes of `data` to be judged.
            let (win, total) = self.hdr.joined::<{ 2 * RECORD_HEADER_LEN }>(data);
            for i in 0..k {
                let cand = win.get(i..total).unwrap_or_default();
                if cand.len() < RECORD_HEADER_LEN {
                    // Too few bytes to judge a candidate at `i`: hold them for the next chunk.
                    sink.on_resync_skip(i as u64);
                    self.hdr.set(cand);
                    return &[];
                }
                if let Some(header) = cand.get(..RECORD_HEADER_LEN).and_then(parse_record_header) {
                    sink.on_resync_skip(i as u64);
                    self.hdr.clear();
                    self.accept(header, sink);
                    return data.get(RECORD_HEADER_LEN - (k - i)..).unwrap_or_default();
                }
            }
            sink.on_resync_skip(k as u64);
            self.hdr.clear();
        }
        let found = data.windows(RECORD_HEADER_LEN).enumerate().find_map(|(p, w)| {
            // Cheap pre-filter before the full check: content type 20-24, major version 3.
            if matches!(w, [t, 3, ..] if t.wrapping_sub(20) < 5) {
                parse_record_header(w).map(|h| (p, h))
            } else {
                None
            }
        });
        match found {
            Some((p, header)) => {
                sink.on_resync_skip(p as u64);
                self.accept(header, sink);
                data.get(p + RECORD_HEADER_LEN..).unwrap_or_default()
            }
            None => {
                let cut = data.len() - data.len().min(RECORD_HEADER_LEN - 1);
                sink.on_resync_skip(cut as u64);
                self.hdr.set(data.get(cut..).unwrap_or_default());
                &[]
            }
        }
    }
}

/// The handshake-message stream carried by one direction's clear-text handshake records.
#[derive(Debug, Default)]
struct HandshakeReader {
    /// A handshake header cut by a record or chunk boundary.
    hdr: Carry<HANDSHAKE_HEADER_LEN>,
    /// Reading a message body (the header is complete).
    in_body: bool,
    msg_type: u8,
    remaining: u32,
    /// Buffering this message (wanted and within the cap).
    keep: bool,
    buf: Vec<u8>,
    /// Bytes were lost mid-record: ignore handshake bytes until the next record starts.
    lost: bool,
}

impl HandshakeReader {
    fn record_start(&mut self) {
        if self.lost {
            self.lost = false;
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.hdr.clear();
        self.in_body = false;
        self.keep = false;
        self.remaining = 0;
        self.release();
    }

    /// Drop the buffer, giving large ones back to the allocator (a flow may live for hours).
    fn release(&mut self) {
        if self.buf.capacity() > 4096 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// Forget a partial message (gap, resynchronisation, or encryption began).
    fn reset(&mut self, sink: &mut dyn RecordSink) {
        if self.in_body && self.keep {
            sink.on_handshake_lost(HandshakeType(self.msg_type), &self.buf);
        }
        self.clear();
        self.lost = false;
    }

    fn gap(&mut self, len: u64, sink: &mut dyn RecordSink) {
        if self.lost {
            return;
        }
        if self.in_body && len <= u64::from(self.remaining) {
            // Inside the current message: skip the rest of it, its end is still known.
            if self.keep {
                sink.on_handshake_lost(HandshakeType(self.msg_type), &self.buf);
                self.keep = false;
                self.release();
            }
            self.remaining -= len as u32;
            if self.remaining == 0 {
                self.in_body = false;
            }
        } else {
            self.reset(sink);
            self.lost = true;
        }
    }

    fn feed(&mut self, data: &[u8], in_sync: bool, sink: &mut dyn RecordSink) {
        if self.lost {
            return;
        }
        let mut rest = data;
        while !rest.is_empty() {
            if !self.in_body {
                let (header, used) = self.hdr.gather(rest, HANDSHAKE_HEADER_LEN);
                rest = rest.get(used..).unwrap_or_default();
                let Some([t, l0, l1, l2]) = header else {
                    return;
                };
                let len = u32::from_be_bytes([0, l0, l1, l2]);
                self.msg_type = t;
                self.remaining = len;
                self.in_body = true;
                let msg_type = HandshakeType(t);
                self.keep = sink.wants(msg_type);
                if self.keep && len as usize > MAX_HANDSHAKE_MESSAGE {
                    sink.on_handshake_too_large(msg_type, len);
                    self.keep = false;
                }
                if len == 0 {
                    self.in_body = false;
                    if self.keep {
                        sink.on_handshake(msg_type, &[], in_sync);
                    }
                }
                continue;
            }
            let n = rest.len().min(self.remaining as usize);
            let (part, tail) = rest.split_at(n);
            rest = tail;
            // n ≤ remaining (a u32).
            self.remaining -= n as u32;
            if self.keep {
                if self.remaining == 0 && self.buf.is_empty() {
                    // The whole body is in this chunk: no copy.
                    sink.on_handshake(HandshakeType(self.msg_type), part, in_sync);
                } else {
                    let whole = n + self.remaining as usize;
                    if self.buf.is_empty() && !sink.reserve(&mut self.buf, whole) {
                        // The rest of this message is passed over by length.
                        sink.on_budget_refused(HandshakeType(self.msg_type), whole);
                        self.keep = false;
                    } else {
                        self.buf.extend_from_slice(part);
                        if self.remaining == 0 {
                            sink.on_handshake(HandshakeType(self.msg_type), &self.buf, in_sync);
                        }
                    }
                }
            }
            if self.remaining == 0 {
                self.in_body = false;
                self.keep = false;
                self.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tls::*;

    /// Records what the stream reports, as text, for comparing runs.
    #[derive(Default)]
    struct Log {
        lines: Vec<String>,
        skipped: u64,
        want_all: bool,
    }

    impl RecordSink for Log {
        fn on_record(&mut self, h: &RecordHeader, encrypted: bool) {
            self.lines
                .push(format!("record {} {} enc={encrypted}", h.content_type.0, h.length));
        }
        fn wants(&self, t: HandshakeType) -> bool {
            self.want_all || matches!(t.0, 1 | 2 | 11)
        }
        fn on_handshake(&mut self, t: HandshakeType, body: &[u8], _in_sync: bool) {
            self.lines.push(format!("hs {} {}", t.0, body.len()));
        }
        fn on_handshake_too_large(&mut self, t: HandshakeType, len: u32) {
            self.lines.push(format!("too_large {} {len}", t.0));
        }
        fn on_handshake_lost(&mut self, t: HandshakeType, prefix: &[u8]) {
            self.lines.push(format!("lost {} after {}", t.0, prefix.len()));
        }
        fn on_alert(&mut self, level: u8, d: u8) {
            self.lines.push(format!("alert {level} {d}"));
        }
        fn on_change_cipher_spec(&mut self) -> bool {
            self.lines.push("ccs".into());
            true
        }
        fn on_desync(&mut self, h: [u8; 5], in_sync: bool) {
            self.lines.push(format!("desync {h:?} {in_sync}"));
        }
        fn on_resync_skip(&mut self, bytes: u64) {
            self.skipped += bytes;
        }
        fn on_sslv2_hello(&mut self, len: u16) {
            self.lines.push(format!("sslv2 {len}"));
        }
    }

    fn walk(midstream: bool, pieces: &[&[u8]]) -> (Vec<String>, u64) {
        let mut s = RecordStream::new(midstream);
        let mut log = Log::default();
        for p in pieces {
            s.feed(p, &mut log);
        }
        (log.lines, log.skipped)
    }

    /// Every split point, and byte by byte, gives what the whole stream gives.
    fn every_split(midstream: bool, data: &[u8]) -> Vec<String> {
        let (whole, skipped) = walk(midstream, &[data]);
        for k in 0..=data.len() {
            let (a, b) = data.split_at(k);
            assert_eq!(walk(midstream, &[a, b]), (whole.clone(), skipped), "split at {k}");
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(walk(midstream, &bytes), (whole.clone(), skipped), "byte by byte");
        whole
    }

    #[test]
    fn tls12_server_flight_at_every_split() {
        let c = capture(CURL_TLS12);
        let stream = c.toclient.concat();
        let lines = every_split(false, &stream);
        assert_eq!(
            lines[..9],
            [
                "record 22 108 enc=false",
                "hs 2 104",
                "record 22 457 enc=false",
                "hs 11 453",
                "record 22 115 enc=false",
                "record 22 4 enc=false",
                "record 20 1 enc=false",
                "ccs",
                "record 22 40 enc=true"
            ]
        );
        assert!(lines.iter().all(|l| !l.starts_with("desync")));
    }

    #[test]
    fn handshake_message_across_records_and_segments() {
        // A ~1.8 KB post-quantum ClientHello in records of 700 bytes.
        let body = chrome_pq_client_hello("pacs.example.test");
        let msg = handshake(1, &body);
        assert!(msg.len() > 1800);
        let mut stream = records_of(22, &msg, 700);
        stream.extend(records_of(23, &[0xee; 3000], 1400));
        let lines = every_split(false, &stream);
        let hs: Vec<&String> = lines.iter().filter(|l| l.starts_with("hs")).collect();
        assert_eq!(hs, [&format!("hs 1 {}", body.len())]);
        assert_eq!(lines.iter().filter(|l| l.starts_with("record 23")).count(), 3);
    }

    #[test]
    fn coalesced_messages_and_unwanted_ones_skipped() {
        let mut msgs = handshake(2, &[7; 70]);
        msgs.extend(handshake(14, &[]));
        msgs.extend(handshake(12, &[1; 300]));
        msgs.extend(handshake(11, &[2; 10]));
        let stream = records_of(22, &msgs, 1 << 14);
        let lines = every_split(false, &stream);
        assert_eq!(lines, ["record 22 396 enc=false", "hs 2 70", "hs 11 10"]);
    }

    #[test]
    fn oversized_handshake_message_is_skipped_and_counted() {
        let big = handshake(11, &vec![3; MAX_HANDSHAKE_MESSAGE + 1]);
        let mut stream = records_of(22, &big, 1 << 14);
        stream.extend(records_of(22, &handshake(2, &[1; 50]), 1 << 14));
        let (lines, _) = walk(false, &[&stream]);
        let hs: Vec<&String> = lines.iter().filter(|l| !l.starts_with("record")).collect();
        assert_eq!(hs, ["too_large 11 65537", "hs 2 50"]);
    }

    #[test]
    fn alerts_and_ccs() {
        let mut stream = records_of(21, &[2, 40], 10);
        // An alert split over two records (legal before TLS 1.3, unseen): ignored.
        stream.extend(records_of(21, &[1, 0], 1));
        stream.extend(records_of(21, &[1, 0], 2));
        stream.extend(records_of(20, &[1], 1));
        stream.extend(records_of(21, &[0x99; 26], 100)); // encrypted alert
        let lines = every_split(false, &stream);
        let events: Vec<&String> = lines.iter().filter(|l| !l.starts_with("record")).collect();
        assert_eq!(events, ["alert 2 40", "alert 1 0", "ccs"]);
    }

    #[test]
    fn sslv2_hello_is_counted_and_skipped() {
        let mut stream = SSLV2_HELLO.to_vec();
        stream.extend(records_of(22, &handshake(1, &[5; 60]), 1000));
        for midstream in [false, true] {
            let (whole, skipped) = walk(midstream, &[&stream]);
            assert_eq!(whole, ["sslv2 46", "record 22 64 enc=false", "hs 1 60"]);
            assert_eq!(skipped, 0);
            for k in 11..stream.len() {
                let (a, b) = stream.split_at(k);
                assert_eq!(walk(midstream, &[a, b]).0, whole, "split at {k}");
            }
        }
        // Not at the start: a desync.
        let mut later = records_of(23, &[1; 10], 100);
        later.extend_from_slice(&SSLV2_HELLO);
        let (lines, _) = walk(false, &[&later]);
        assert!(lines[1].starts_with("desync"), "{lines:?}");
    }

    #[test]
    fn midstream_resync_finds_headers_at_any_alignment() {
        // 1000 bytes of the middle of an application data record, then records.
        let mut stream = vec![0x17u8; 7];
        stream.extend((0..1000u32).map(|i| (i * 7 % 251) as u8 | 0x80));
        let tail = {
            let mut t = records_of(23, &[0x42; 200], 100);
            t.extend(records_of(21, &[0x42; 26], 100));
            t
        };
        stream.extend_from_slice(&tail);
        let lines = every_split(true, &stream);
        assert_eq!(
            lines,
            [
                "record 23 100 enc=false",
                "record 23 100 enc=false",
                "record 21 26 enc=false"
            ]
        );
        let (_, skipped) = walk(true, &[&stream]);
        assert_eq!(skipped, 1007);
    }

    #[test]
    fn desync_then_resync() {
        let mut stream = records_of(23, &[1; 50], 100);
        stream.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
        stream.extend(records_of(23, &[2; 50], 100));
        stream.extend(records_of(23, &[3; 50], 100));
        let lines = every_split(false, &stream);
        assert_eq!(lines[1], "desync [222, 173, 190, 239, 0] true");
        assert_eq!(lines.iter().filter(|l| l.starts_with("record 23 50")).count(), 3);
    }

    #[test]
    fn gap_inside_a_record_keeps_sync() {
        let data = records_of(23, &[9; 1000], 1000);
        let mut s = RecordStream::new(false);
        let mut log = Log::default();
        s.feed(&data[..105], &mut log);
        s.gap(500, &mut log);
        s.feed(&data[605..], &mut log);
        s.feed(&records_of(21, &[2, 40], 10), &mut log);
        assert_eq!(
            log.lines,
            ["record 23 1000 enc=false", "record 21 2 enc=false", "alert 2 40"]
        );
        assert!(s.in_sync());

        // A gap inside a wanted handshake message drops it; the next one is read.
        let msg = handshake(11, &[4; 3000]);
        let mut stream = records_of(22, &msg, 1 << 14);
        let next = records_of(22, &handshake(2, &[1; 20]), 100);
        let mut s = RecordStream::new(false);
        let mut log = Log::default();
        s.feed(&stream[..1000], &mut log);
        s.gap(1000, &mut log);
        s.feed(&stream[2000..], &mut log);
        s.feed(&next, &mut log);
        assert_eq!(
            log.lines,
            [
                "record 22 3004 enc=false",
                "lost 11 after 991",
                "record 22 24 enc=false",
                "hs 2 20"
            ]
        );

        // A gap past the record's end: resynchronise on the record after the next.
        stream.extend_from_slice(&next);
        stream.extend_from_slice(&next);
        let mut s = RecordStream::new(false);
        let mut log = Log::default();
        s.feed(&stream[..1000], &mut log);
        s.gap(2009 + 3, &mut log);
        assert!(!s.in_sync());
        s.feed(&stream[3012..], &mut log);
        assert_eq!(log.lines.last().map(String::as_str), Some("hs 2 20"));
        assert_eq!(log.lines.iter().filter(|l| *l == "hs 2 20").count(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = crate::testutil::Lcg(7);
        for round in 0..300 {
            let len = (rng.next() % 3000) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Sprinkle plausible headers so the deeper paths run.
            for _ in 0..(rng.next() % 8) {
                if data.len() > 10 {
                    let at = (rng.next() as usize) % (data.len() - 10);
                    let t = [20, 21, 22, 23][(rng.next() % 4) as usize];
                    let hdr = [t, 3, (rng.next() % 5) as u8, 0, (rng.next() % 40) as u8];
                    data[at..at + 5].copy_from_slice(&hdr);
                    data[at + 5] = [1, 2, 11][(rng.next() % 3) as usize];
                }
            }
            let mut s = RecordStream::new(round % 2 == 0);
            let mut log = Log {
                want_all: round % 3 == 0,
                ..Log::default()
            };
            let mut at = 0;
            while at < data.len() {
                let n = 1 + (rng.next() as usize % 200);
                let end = (at + n).min(data.len());
                s.feed(&data[at..end], &mut log);
                if rng.next().is_multiple_of(10) {
                    s.gap(rng.next() % 300, &mut log);
                }
                at = end;
            }
        }
    }
}
