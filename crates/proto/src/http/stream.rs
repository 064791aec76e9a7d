//! Streaming message walker for one direction of an HTTP/1.x connection (RFC 9112).
//!
//! TCP delivers arbitrary pieces; this state machine finds head boundaries (buffering at most
//! `max_header_bytes` of a head, copying nothing when a head lies inside one chunk), passes
//! over bodies by their framing (Content-Length, chunked with extensions and trailers, or
//! until close) at O(1) per chunk without copying them, keeps in step across capture gaps that
//! fall inside a body of known length, and otherwise resynchronises on the next start line.
//! What the messages mean is the [`MessageSink`]'s business.

use super::parser::{find_head_end, parse_chunk_line, start_line, Framing, Role};
use super::HttpAnomaly;
use crate::Probe;

/// A chunk-size line longer than this is not one: 16 hex digits plus extensions, which real
/// peers do not send (hyper caps the line at 4 KiB too, h11 at 16 KiB for the whole line
/// including extensions, Node.js at 16 KiB for all chunk extensions of a message).
pub const MAX_CHUNK_LINE: usize = 4 << 10;

/// A head buffer that grew beyond this is freed after use rather than kept with the flow.
const KEEP_HEAD_BUFFER: usize = 8 << 10;

/// What the sink wants after a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadOutcome {
    /// Pass over a body framed like this; `sniff`: hand its bytes to [`MessageSink::body_data`].
    /// `unsure`: a response whose request is unknown; it may answer a HEAD and have no body
    /// despite its Content-Length, which shows when a status line follows the head at once.
    Body {
        framing: Framing,
        sniff: bool,
        unsure: bool,
    },
    /// Not a usable head (or a body that cannot be delimited): resynchronise after it.
    Resync,
    /// This direction stops being HTTP (tunnel, HTTP/2).
    Stop,
}

/// Receiver of what the walker finds.
pub(crate) trait MessageSink {
    /// A complete head (start line to the empty line). `tentative`: the first head after a
    /// resynchronisation lock, which may have locked on look-alike bytes; a failure then is
    /// not an anomaly.
    fn head(&mut self, role: Role, head: &[u8], tentative: bool) -> HeadOutcome;
    /// A head exceeded the byte cap (`budget`: the decoder memory budget refused to hold
    /// more of it); `partial` is its first bytes (up to `max_header_bytes`).
    fn head_too_large(&mut self, role: Role, partial: &[u8], tentative: bool, budget: bool);
    /// A head was cut by a capture gap; `partial` is what was read of it.
    fn head_cut(&mut self, _role: Role, _partial: &[u8]) {}
    /// Make room for `more` bytes in `buf` (decoder memory budget); `false`: refused. The
    /// default does not budget (tests, fuzzing).
    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        buf.reserve(more);
        true
    }
    /// Body payload of a message whose head asked for it (`sniff`), in order (chunk data
    /// without its framing).
    fn body_data(&mut self, role: Role, data: &[u8]);
    /// The current message ended: `bytes` on the wire (head, body, framing); `complete`: it
    /// ended where its framing said.
    fn message_end(&mut self, role: Role, bytes: u64, complete: bool);
    /// `len` bytes of the current message were lost to a capture gap, in step.
    fn gap_in_message(&mut self, role: Role, len: u64);
    /// Message boundaries of this direction were lost (gap, malformed framing).
    fn lost_sync(&mut self, role: Role, why: &'static str);
    /// Locked onto a start line after passing over `skipped` bytes.
    fn resynced(&mut self, role: Role, skipped: u64);
    fn anomaly(&mut self, name: HttpAnomaly, detail: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between messages: leading empty lines are skipped (RFC 9112 §2.2), then a head starts.
    Idle,
    /// Inside a head; `buf` holds its bytes when it spans chunks.
    Head,
    /// Passing over the rest of a head that exceeded the cap, up to its end.
    HeadSkip { tentative: bool },
    /// Body bytes left of a Content-Length body.
    Length(u64),
    /// A Content-Length body of a response to an unknown request: no body if a status line
    /// comes next (it answered a HEAD), else `Length`.
    LengthUnsure(u64),
    /// Expecting a chunk-size line (`buf` holds it when it spans chunks).
    ChunkSize,
    /// Chunk data bytes left.
    ChunkData(u64),
    /// The CRLF after chunk data; `cr`: the CR was seen.
    ChunkEnd { cr: bool },
    /// The trailer section after the last chunk, up to its empty line.
    Trailers,
    /// A response body delimited by the connection close.
    UntilClose,
    /// Scanning for a start line.
    Resync,
    /// Nothing more to read here.
    Stopped,
}

/// One direction's walker.
#[derive(Debug)]
pub(crate) struct HalfStream {
    role: Role,
    phase: Phase,
    max_header: usize,
    /// Head or chunk-size line bytes spanning chunks.
    buf: Vec<u8>,
    /// `find_head_end` state for the head or the trailers.
    dfa: u8,
    /// Trailer bytes so far (capped like a head).
    trailer_bytes: usize,
    /// Wire bytes of the current message so far.
    msg_bytes: u64,
    /// Empty lines before the next head, added to it.
    carry: u64,
    sniff: bool,
    // Resynchronisation.
    at_line_start: bool,
    cand: [u8; 16],
    cand_len: usize,
    skipped: u64,
    tentative: bool,
    /// Ever parsed a head (the flow is HTTP).
    pub(crate) locked: bool,
    /// Body bytes passed over since last drained (for `HttpStats`).
    pub(crate) body_bytes: u64,
    /// Bytes passed over while resynchronising since last drained.
    pub(crate) resync_bytes: u64,
}

impl HalfStream {
    /// `resync`: begin by scanning for a start line (the connection start was not captured).
    pub(crate) fn new(role: Role, resync: bool, max_header: usize) -> Self {
        HalfStream {
            role,
            phase: if resync { Phase::Resync } else { Phase::Idle },
            max_header,
            buf: Vec::new(),
            dfa: 0,
            trailer_bytes: 0,
            msg_bytes: 0,
            carry: 0,
            sniff: false,
            at_line_start: true,
            cand: [0; 16],
            cand_len: 0,
            skipped: 0,
            tentative: resync,
            locked: false,
            body_bytes: 0,
            resync_bytes: 0,
        }
    }

    /// Capacity of the buffers this walker holds (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Feed in-order bytes.
    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut impl MessageSink) {
        let mut pos = 0usize;
        // Every step consumes bytes or moves to a phase that will; the bound is a backstop.
        let mut idle_steps = 0u32;
        while pos < data.len() && self.phase != Phase::Stopped {
            let rest = data.get(pos..).unwrap_or_default();
            let used = self.step(rest, sink);
            pos += used;
            if used == 0 {
                idle_steps += 1;
                if idle_steps > 8 {
                    self.enter_resync(false);
                    pos += 1;
                    idle_steps = 0;
                }
            } else {
                idle_steps = 0;
            }
        }
    }

    fn step(&mut self, rest: &[u8], sink: &mut impl MessageSink) -> usize {
        match self.phase {
            Phase::Idle => {
                let n = rest.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
                self.carry += n as u64;
                if n < rest.len() {
                    self.phase = Phase::Head;
                    self.dfa = 0;
                    self.buf.clear();
                    self.msg_bytes = std::mem::take(&mut self.carry);
                }
                n
            }
            Phase::Head => self.step_head(rest, sink),
            Phase::HeadSkip { tentative } => {
                let end = find_head_end(&mut self.dfa, rest);
                let seen = end.unwrap_or(rest.len());
                self.msg_bytes += seen as u64;
                if end.is_some() {
                    self.end_skipped_head(sink, tentative);
                }
                seen
            }
            Phase::Length(left) => {
                let n = take(left, rest.len());
                if self.sniff {
                    sink.body_data(self.role, rest.get(..n).unwrap_or_default());
                }
                self.msg_bytes += n as u64;
                self.body_bytes += n as u64;
                let left = left - n as u64;
                self.phase = Phase::Length(left);
                if left == 0 {
                    self.end_message(sink, true);
                }
                n
            }
            Phase::LengthUnsure(left) => {
                if start_line(rest, Role::Response) == Probe::Yes {
                    self.end_message(sink, true);
                } else {
                    self.phase = Phase::Length(left);
                }
                0
            }
            Phase::ChunkData(left) => {
                let n = take(left, rest.len());
                if self.sniff {
                    sink.body_data(self.role, rest.get(..n).unwrap_or_default());
                }
                self.msg_bytes += n as u64;
                self.body_bytes += n as u64;
                let left = left - n as u64;
                self.phase = if left == 0 {
                    Phase::ChunkEnd { cr: false }
                } else {
                    Phase::ChunkData(left)
                };
                n
            }
            Phase::ChunkSize => self.step_chunk_size(rest, sink),
            Phase::ChunkEnd { cr } => match rest.first() {
                Some(b'\r') if !cr => {
                    self.msg_bytes += 1;
                    self.phase = Phase::ChunkEnd { cr: true };
                    1
                }
                Some(b'\n') => {
                    self.msg_bytes += 1;
                    self.phase = Phase::ChunkSize;
                    self.buf.clear();
                    1
                }
                _ => {
                    self.broken_message(
                        sink,
                        HttpAnomaly::MalformedChunk,
                        "chunk data not followed by CRLF",
                        false,
                    );
                    0
                }
            },
            Phase::Trailers => {
                let end = find_head_end(&mut self.dfa, rest);
                let seen = end.unwrap_or(rest.len());
                let room = self.max_header.saturating_sub(self.trailer_bytes);
                if seen > room {
                    // Count exactly the cap, whatever the chunking; resync scans the rest.
                    self.msg_bytes += room as u64;
                    self.broken_message(sink, HttpAnomaly::HeaderTooLarge, "trailer section over the cap", false);
                    return room;
                }
                self.trailer_bytes += seen;
                self.msg_bytes += seen as u64;
                if end.is_some() {
                    self.end_message(sink, true);
                }
                seen
            }
            Phase::UntilClose => {
                if self.sniff {
                    sink.body_data(self.role, rest);
                }
                self.msg_bytes += rest.len() as u64;
                self.body_bytes += rest.len() as u64;
                rest.len()
            }
            Phase::Resync => self.step_resync(rest, sink),
            Phase::Stopped => rest.len(),
        }
    }

    fn step_head(&mut self, rest: &[u8], sink: &mut impl MessageSink) -> usize {
        let end = find_head_end(&mut self.dfa, rest);
        let seen = end.unwrap_or(rest.len());
        let over_cap = self.buf.len().saturating_add(seen) > self.max_header;
        // Bytes this step must copy into `buf` (a head inside one chunk is read in place).
        let copy = match end {
            _ if over_cap && self.buf.is_empty() => 0,
            _ if over_cap => self.max_header.saturating_sub(self.buf.len()).min(rest.len()),
            None => rest.len(),
            Some(_) if self.buf.is_empty() => 0,
            Some(e) => e,
        };
        let refused = copy > 0 && !sink.reserve(&mut self.buf, copy);
        if over_cap || refused {
            // What was read of the head still gives its start line, Host and user.
            let tentative = std::mem::take(&mut self.tentative);
            if self.buf.is_empty() {
                let part = rest.get(..seen.min(self.max_header)).unwrap_or_default();
                sink.head_too_large(self.role, part, tentative, refused);
            } else {
                if !refused {
                    self.buf.extend_from_slice(rest.get(..copy).unwrap_or_default());
                }
                sink.head_too_large(self.role, &self.buf, tentative, refused);
            }
            if refused {
                // Give everything back: the budget is short, and a kept spare buffer would be
                // charged to this flow for nothing.
                self.buf = Vec::new();
            }
            self.release_buf();
            self.msg_bytes += seen as u64;
            self.phase = Phase::HeadSkip { tentative };
            if end.is_some() {
                self.end_skipped_head(sink, tentative);
            }
            return seen;
        }
        self.msg_bytes += seen as u64;
        let Some(e) = end else {
            self.buf.extend_from_slice(rest);
            return rest.len();
        };
        let tentative = std::mem::take(&mut self.tentative);
        let outcome = if self.buf.is_empty() {
            sink.head(self.role, rest.get(..e).unwrap_or_default(), tentative)
        } else {
            self.buf.extend_from_slice(rest.get(..e).unwrap_or_default());
            sink.head(self.role, &self.buf, tentative)
        };
        self.release_buf();
        match outcome {
            HeadOutcome::Body { framing, sniff, unsure } => {
                self.locked = true;
                self.sniff = sniff;
                self.start_body(framing, sink);
                if let (true, Phase::Length(n)) = (unsure, self.phase) {
                    self.phase = Phase::LengthUnsure(n);
                }
            }
            HeadOutcome::Resync => {
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
                self.enter_resync(true);
                if !tentative {
                    sink.lost_sync(self.role, "unusable head");
                }
            }
            HeadOutcome::Stop => {
                self.locked = true;
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), true);
                self.phase = Phase::Stopped;
            }
        }
        e
    }

    /// The end of a head over the cap: its body's framing is unknown, so resynchronise there.
    fn end_skipped_head(&mut self, sink: &mut impl MessageSink, tentative: bool) {
        sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
        self.enter_resync(true);
        if !tentative {
            sink.lost_sync(self.role, "header block over the cap");
        }
    }

    fn release_buf(&mut self) {
        if self.buf.capacity() > KEEP_HEAD_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    fn start_body(&mut self, framing: Framing, sink: &mut impl MessageSink) {
        match framing {
            Framing::Empty => self.end_message(sink, true),
            Framing::Length(n) => self.phase = Phase::Length(n),
            Framing::Chunked => {
                self.phase = Phase::ChunkSize;
                self.buf.clear();
            }
            Framing::UntilClose => self.phase = Phase::UntilClose,
            Framing::Tunnel => {
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), true);
                self.phase = Phase::Stopped;
            }
        }
    }

    fn step_chunk_size(&mut self, rest: &[u8], sink: &mut impl MessageSink) -> usize {
        let nl = rest.iter().position(|&b| b == b'\n');
        let seen = nl.map_or(rest.len(), |p| p + 1);
        if self.buf.len().saturating_add(seen) > MAX_CHUNK_LINE {
            // Count exactly the cap, whatever the chunking; resync scans the rest.
            let room = MAX_CHUNK_LINE.saturating_sub(self.buf.len());
            self.msg_bytes += room as u64;
            self.broken_message(sink, HttpAnomaly::MalformedChunk, "chunk-size line over the cap", false);
            return room;
        }
        self.msg_bytes += seen as u64;
        let Some(p) = nl else {
            self.buf.extend_from_slice(rest);
            return rest.len();
        };
        let size = {
            let line = if self.buf.is_empty() {
                rest.get(..p).unwrap_or_default()
            } else {
                self.buf.extend_from_slice(rest.get(..p).unwrap_or_default());
                &self.buf
            };
            parse_chunk_line(line.strip_suffix(b"\r").unwrap_or(line))
        };
        self.buf.clear();
        match size {
            Some(0) => {
                self.phase = Phase::Trailers;
                self.dfa = 1;
                self.trailer_bytes = 0;
            }
            Some(n) => self.phase = Phase::ChunkData(n),
            None => self.broken_message(sink, HttpAnomaly::MalformedChunk, "invalid chunk-size line", true),
        }
        seen
    }

    /// Scan for a start line at a line start. A candidate cut by the chunk end is kept in
    /// `cand` (at most 12 bytes decide, see `parser::start_line`).
    fn step_resync(&mut self, rest: &[u8], sink: &mut impl MessageSink) -> usize {
        if self.cand_len > 0 {
            let mut joined = [0u8; 32];
            let c = self.cand_len.min(16);
            let add = rest.len().min(16);
            if let (Some(dst), Some(src)) = (joined.get_mut(..c), self.cand.get(..c)) {
                dst.copy_from_slice(src);
            }
            if let (Some(dst), Some(src)) = (joined.get_mut(c..c + add), rest.get(..add)) {
                dst.copy_from_slice(src);
            }
            match start_line(joined.get(..c + add).unwrap_or_default(), self.role) {
                Probe::Yes => {
                    let cand = self.cand;
                    self.cand_len = 0;
                    self.lock(sink, c as u64);
                    self.buf.extend_from_slice(cand.get(..c).unwrap_or_default());
                    self.msg_bytes = c as u64;
                    return 0;
                }
                Probe::NeedMore if c + add <= self.cand.len() => {
                    // Still consistent (so under 12 bytes): all of `rest` joins the candidate.
                    if let Some(dst) = self.cand.get_mut(c..c + add) {
                        dst.copy_from_slice(rest.get(..add).unwrap_or_default());
                    }
                    self.cand_len = c + add;
                    self.skipped += add as u64;
                    return add;
                }
                Probe::No | Probe::NeedMore => {
                    self.cand_len = 0;
                    self.at_line_start = false;
                }
            }
        }
        let mut i = 0usize;
        while i < rest.len() {
            if self.at_line_start {
                let here = rest.get(i..).unwrap_or_default();
                match start_line(here, self.role) {
                    Probe::Yes => {
                        self.skipped += i as u64;
                        self.lock(sink, 0);
                        return i;
                    }
                    Probe::NeedMore if here.len() < 16 => {
                        if let Some(dst) = self.cand.get_mut(..here.len()) {
                            dst.copy_from_slice(here);
                        }
                        self.cand_len = here.len();
                        self.skipped += rest.len() as u64;
                        return rest.len();
                    }
                    _ => self.at_line_start = false,
                }
            }
            match rest.get(i..).and_then(|r| r.iter().position(|&b| b == b'\n')) {
                Some(p) => {
                    i += p + 1;
                    self.at_line_start = true;
                }
                None => i = rest.len(),
            }
        }
        self.skipped += rest.len() as u64;
        rest.len()
    }

    /// Locked onto a start line; `cand` of the skipped bytes belong to the head.
    fn lock(&mut self, sink: &mut impl MessageSink, cand: u64) {
        let skipped = self.skipped.saturating_sub(cand);
        self.resync_bytes += skipped;
        if skipped > 0 {
            sink.resynced(self.role, skipped);
        }
        self.skipped = 0;
        self.phase = Phase::Head;
        self.dfa = 0;
        self.buf.clear();
        self.msg_bytes = 0;
        self.carry = 0;
        self.tentative = true;
    }

    fn enter_resync(&mut self, at_line_start: bool) {
        self.phase = Phase::Resync;
        self.at_line_start = at_line_start;
        self.cand_len = 0;
        self.skipped = 0;
        self.sniff = false;
        self.carry = 0;
    }

    fn end_message(&mut self, sink: &mut impl MessageSink, complete: bool) {
        sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), complete);
        self.sniff = false;
        self.phase = Phase::Idle;
    }

    /// The framing of the current message broke: end it incomplete and resynchronise.
    fn broken_message(
        &mut self,
        sink: &mut impl MessageSink,
        name: HttpAnomaly,
        why: &'static str,
        at_line_start: bool,
    ) {
        sink.anomaly(name, why.to_string());
        sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
        self.release_buf();
        self.enter_resync(at_line_start);
        sink.lost_sync(self.role, why);
    }

    /// `len` bytes were lost. Inside a body whose remaining length covers the hole (or one
    /// read until close) the walker stays in step; anywhere else the current message is ended
    /// and it resynchronises. Returns whether it stayed in step.
    pub(crate) fn gap(&mut self, len: u64, sink: &mut impl MessageSink) -> bool {
        match self.phase {
            Phase::Stopped => return true,
            Phase::Resync => {
                self.cand_len = 0;
                self.at_line_start = true;
                self.skipped += len;
                return false;
            }
            Phase::Length(left) | Phase::LengthUnsure(left) if len <= left => {
                self.msg_bytes += len;
                self.body_bytes += len;
                sink.gap_in_message(self.role, len);
                self.phase = Phase::Length(left - len);
                if left == len {
                    self.end_message(sink, true);
                }
                return true;
            }
            Phase::ChunkData(left) if len <= left => {
                self.msg_bytes += len;
                self.body_bytes += len;
                sink.gap_in_message(self.role, len);
                self.phase = if left == len {
                    Phase::ChunkEnd { cr: false }
                } else {
                    Phase::ChunkData(left - len)
                };
                return true;
            }
            Phase::UntilClose => {
                self.msg_bytes += len;
                self.body_bytes += len;
                sink.gap_in_message(self.role, len);
                return true;
            }
            Phase::Length(left) | Phase::LengthUnsure(left) => {
                // The body ended inside the hole: the message is whole, what followed is lost.
                self.msg_bytes += left;
                self.body_bytes += left;
                sink.gap_in_message(self.role, left);
                self.end_message(sink, true);
            }
            Phase::Idle => {
                self.carry = 0;
            }
            Phase::Head => {
                // What was read still names the request (method, URL, Host, user) or gives the
                // response's status: a capture with a short snaplen cuts every head.
                sink.head_cut(self.role, &self.buf);
                sink.gap_in_message(self.role, len);
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
                self.release_buf();
            }
            Phase::HeadSkip { .. }
            | Phase::ChunkSize
            | Phase::ChunkData(_)
            | Phase::ChunkEnd { .. }
            | Phase::Trailers => {
                sink.gap_in_message(self.role, len);
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
                self.release_buf();
            }
        }
        self.enter_resync(true);
        self.tentative = true;
        sink.lost_sync(self.role, "capture gap");
        false
    }

    /// The direction ended with a FIN: a body read until close is complete, anything else in
    /// progress is not.
    pub(crate) fn close(&mut self, sink: &mut impl MessageSink) {
        self.end(sink, true);
    }

    /// The direction ended; `fin`: by a FIN (else by RST, timeout or the end of the capture,
    /// so a body read until close may be cut short).
    pub(crate) fn end(&mut self, sink: &mut impl MessageSink, fin: bool) {
        match self.phase {
            Phase::UntilClose => {
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), fin);
            }
            Phase::Head
            | Phase::HeadSkip { .. }
            | Phase::Length(_)
            | Phase::LengthUnsure(_)
            | Phase::ChunkSize
            | Phase::ChunkData(_)
            | Phase::ChunkEnd { .. }
            | Phase::Trailers => {
                sink.message_end(self.role, std::mem::take(&mut self.msg_bytes), false);
            }
            Phase::Idle | Phase::Resync | Phase::Stopped => {}
        }
        self.release_buf();
        self.phase = Phase::Stopped;
    }
}

/// `min(left, avail)` as a `usize`.
fn take(left: u64, avail: usize) -> usize {
    usize::try_from(left).map_or(avail, |l| l.min(avail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parser::{parse_request_head, parse_response_head, request_framing, response_framing};

    /// Records what the walker reports.
    #[derive(Default)]
    struct Log {
        log: Vec<String>,
        sniffed: Vec<u8>,
    }

    impl MessageSink for Log {
        fn head(&mut self, role: Role, head: &[u8], tentative: bool) -> HeadOutcome {
            match role {
                Role::Request => match parse_request_head(head) {
                    Some(h) => {
                        self.log.push(format!(
                            "req {} {}{}",
                            h.method,
                            h.target,
                            if tentative { " ?" } else { "" }
                        ));
                        match request_framing(&h.fields).0 {
                            Ok(framing) => HeadOutcome::Body {
                                framing,
                                sniff: h.method == "POST",
                                unsure: false,
                            },
                            Err(_) => HeadOutcome::Resync,
                        }
                    }
                    None => {
                        self.log.push(format!("bad head{}", if tentative { " ?" } else { "" }));
                        HeadOutcome::Resync
                    }
                },
                Role::Response => match parse_response_head(head) {
                    Some(h) => {
                        self.log.push(format!("rsp {}", h.status));
                        HeadOutcome::Body {
                            framing: response_framing(h.status, "GET", &h.fields).0,
                            sniff: false,
                            unsure: true,
                        }
                    }
                    None => {
                        self.log.push("bad head".into());
                        HeadOutcome::Resync
                    }
                },
            }
        }
        fn head_too_large(&mut self, _: Role, partial: &[u8], _: bool, _: bool) {
            self.log.push(format!("too large {}", partial.len()));
        }
        fn body_data(&mut self, _: Role, data: &[u8]) {
            self.sniffed.extend_from_slice(data);
        }
        fn message_end(&mut self, _: Role, bytes: u64, complete: bool) {
            self.log.push(format!("end {bytes} {complete}"));
        }
        fn gap_in_message(&mut self, _: Role, len: u64) {
            self.log.push(format!("gap {len}"));
        }
        fn lost_sync(&mut self, _: Role, why: &'static str) {
            self.log.push(format!("lost: {why}"));
        }
        fn resynced(&mut self, _: Role, skipped: u64) {
            self.log.push(format!("resync {skipped}"));
        }
        fn anomaly(&mut self, name: HttpAnomaly, _: String) {
            self.log.push(name.to_string());
        }
    }

    fn run(role: Role, resync: bool, pieces: &[&[u8]]) -> Log {
        let mut s = HalfStream::new(role, resync, 1024);
        let mut l = Log::default();
        for p in pieces {
            s.feed(p, &mut l);
        }
        s.close(&mut l);
        l
    }

    /// Whole, cut at every point, and byte by byte: the same log.
    fn every_split(role: Role, resync: bool, bytes: &[u8]) -> Vec<String> {
        let whole = run(role, resync, &[bytes]);
        for k in 0..=bytes.len() {
            let got = run(role, resync, &[&bytes[..k], &bytes[k..]]);
            assert_eq!(got.log, whole.log, "split at {k}");
            assert_eq!(got.sniffed, whole.sniffed, "split at {k}");
        }
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(role, resync, &pieces).log, whole.log, "byte by byte");
        whole.log
    }

    const PIPELINE: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n\
        \r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
        PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"x\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
        GET /d HTTP/1.0\n\n";

    #[test]
    fn pipelined_requests() {
        let log = every_split(Role::Request, false, PIPELINE);
        assert_eq!(
            log,
            [
                "req GET /a",
                "end 28 true",
                "req POST /b",
                "end 46 true",
                "req PUT /c",
                "end 78 true",
                "req GET /d",
                "end 17 true"
            ]
        );
        assert_eq!(run(Role::Request, false, &[PIPELINE]).sniffed, b"hello");
    }

    #[test]
    fn responses_with_every_framing() {
        let bytes: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
            HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
            HTTP/1.0 200 OK\r\n\r\nuntil the end";
        let log = every_split(Role::Response, false, bytes);
        assert_eq!(
            log,
            [
                "rsp 100",
                "end 25 true",
                "rsp 200",
                "end 41 true",
                "rsp 304",
                "end 49 true",
                "rsp 200",
                "end 60 true",
                "rsp 200",
                "end 32 true"
            ]
        );
    }

    #[test]
    fn midstream_resync() {
        let bytes: &[u8] = b"ody bytes\r\nmore GET / not\r\nPOST x\r\nGET /real HTTP/1.1\r\n\r\n";
        let log = every_split(Role::Request, true, bytes);
        assert_eq!(log, ["resync 35", "req GET /real ?", "end 22 true"]);
        // A clean start needs no resync.
        let log = every_split(Role::Request, true, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(log, ["req GET / ?", "end 18 true"]);
        // A false lock is silently dropped.
        let log = every_split(
            Role::Request,
            true,
            b"x\nGET /not a head\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        );
        assert_eq!(
            log,
            ["resync 2", "bad head ?", "end 19 false", "req GET /b ?", "end 19 true"]
        );
    }

    #[test]
    fn gaps() {
        let mut s = HalfStream::new(Role::Request, false, 1024);
        let mut l = Log::default();
        s.feed(b"POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789", &mut l);
        assert!(s.gap(50, &mut l));
        s.feed(&[b'x'; 40], &mut l);
        // Past the body: lost, then resync on the next request.
        s.feed(b"PUT /b HTTP/1.1\r\nContent-Length: 10\r\n\r\n01", &mut l);
        assert!(!s.gap(20, &mut l));
        s.feed(b"tail of something\r\nGET /c HTTP/1.1\r\n\r\n", &mut l);
        s.close(&mut l);
        assert_eq!(
            l.log,
            [
                "req POST /a",
                "gap 50",
                "end 141 true",
                "req PUT /b",
                "gap 8",
                "end 49 true",
                "lost: capture gap",
                "resync 19",
                "req GET /c ?",
                "end 19 true"
            ]
        );
    }

    #[test]
    fn caps() {
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend_from_slice(&[b'a'; 2000]);
        big.extend_from_slice(b"\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
        let log = every_split(Role::Request, false, &big);
        assert_eq!(
            log,
            [
                "too large 1024",
                "end 2020 false",
                "lost: header block over the cap",
                "req GET /next ?",
                "end 22 true"
            ]
        );

        let mut chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        chunked.extend_from_slice(&[b'e'; 5000]);
        chunked.extend_from_slice(b"\r\nx\r\n0\r\n\r\nGET /n HTTP/1.1\r\n\r\n");
        let log = run(Role::Request, false, &[&chunked]).log;
        assert_eq!(log[..3], ["req POST /", "http.malformed_chunk", "end 4143 false"]);
        assert_eq!(log[log.len() - 2..], ["req GET /n ?", "end 19 true"]);

        let bad = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /n HTTP/1.1\r\n\r\n";
        let log = every_split(Role::Request, false, bad);
        assert_eq!(
            log,
            [
                "req POST /",
                "http.malformed_chunk",
                "end 51 false",
                "lost: invalid chunk-size line",
                "req GET /n ?",
                "end 19 true"
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = crate::testutil::Lcg(7);
        for round in 0..300 {
            let role = if round % 2 == 0 { Role::Request } else { Role::Response };
            let mut s = HalfStream::new(role, round % 3 == 0, 512);
            let mut l = Log::default();
            for _ in 0..20 {
                let len = (rng.next() % 200) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                // Sprinkle real tokens so the walker gets past the first line now and then.
                if matches!(rng.next() % 3, 0) {
                    let tok: &[u8] = match rng.next() % 6 {
                        0 => b"GET / HTTP/1.1\r\n",
                        1 => b"HTTP/1.1 200 OK\r\n",
                        2 => b"\r\n\r\n",
                        3 => b"Transfer-Encoding: chunked\r\n",
                        4 => b"Content-Length: 5\r\n",
                        _ => b"\n",
                    };
                    let at = (rng.next() as usize) % (v.len() + 1);
                    v.splice(at..at, tok.iter().copied());
                }
                if matches!(rng.next() % 10, 0) {
                    let _ = s.gap(rng.next() % 100, &mut l);
                } else {
                    s.feed(&v, &mut l);
                }
            }
            s.close(&mut l);
        }
    }
}
