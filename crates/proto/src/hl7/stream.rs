//! Streaming MLLP deframer for one direction of an HL7 connection (HL7 v2.5 Appendix C.4.3,
//! "MLLP Release 2"): `<VT>` message `<FS><CR>`, any number per TCP segment, any message split
//! across any number of segments.
//!
//! Per byte of message content it does one thing: look for the next CR/LF, `<VT>` or `<FS>`
//! ([`find_frame_byte`]). At each segment start it reads the 3-character id and the character
//! after it, counts the segment, and either copies the segment (MSH, MSA, MFI, MFE only,
//! bounded by `max_kept`) or passes over it without a copy. An OBX carrying a base64 PDF of
//! megabytes costs one scan and no allocation. Batches (FHS/BHS, HL7 v2.5 §2.10.3) are split
//! into their messages at each MSH.
//!
//! It knows nothing of events: what it finds goes to a [`FrameSink`].

use super::parser::{find_frame_byte, is_delimiter, SegmentId, CARRIAGE_RETURN, END_BLOCK, LINE_FEED, START_BLOCK};
use super::Hl7Anomaly;

/// Distinct segment ids counted per message; further ids fold into `other`. The largest
/// standard message structures (e.g. ORU^R01, OML^O21 in HL7 v2.5) use about 30 distinct
/// segments, so 32 keeps every real message whole while bounding a hostile one.
pub const MAX_SEGMENT_IDS: usize = 32;

/// `kept` buffers above this are freed at the next message instead of reused.
const KEEP_KEPT_BUFFER: usize = 1 << 10;

/// Receiver of what the deframer finds.
pub(crate) trait FrameSink {
    /// A message ended (see [`MessageEnd`]); `msg` is reused after the call.
    fn message(&mut self, msg: &Message, end: MessageEnd);
    /// A frame ended (its messages were reported first).
    fn frame(&mut self);
    /// Bytes were passed over outside any frame: reported when the next frame is found
    /// (`locked`) or when the direction ends without one.
    fn skipped(&mut self, cause: ResyncCause, bytes: u64, locked: bool);
    fn anomaly(&mut self, name: Hl7Anomaly, detail: String);
    /// Make room for `more` bytes in `buf` (decoder memory budget); `false`: refused. The
    /// default does not budget (tests, fuzzing).
    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        buf.reserve(more);
        true
    }
    /// The memory budget refused to keep more of a message's header segments.
    fn budget_refused(&mut self, _kept: usize) {}
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageEnd {
    /// End block, or the next MSH / batch trailer inside a batch.
    Complete,
    /// A start block came before the end block.
    MissingEndBlock,
    /// A capture gap cut it.
    Gap,
    /// No end block within `max_message_bytes`.
    TooLarge,
    /// The direction or the flow ended inside it.
    FlowEnd,
}

impl MessageEnd {
    pub(crate) fn truncated(self) -> bool {
        self != MessageEnd::Complete
    }
}

/// Why bytes had to be passed over to find a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResyncCause {
    /// The flow was claimed by port; its first bytes were not a frame start.
    Midstream,
    /// Bytes other than CR/LF between frames (`hl7.bad_framing`).
    Garbage,
    Gap,
    TooLarge,
}

/// What is known of the message being read: the kept segments and counts. Never the content
/// of any other segment.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// MSH, MSA, MFI and MFE segments, each CR-terminated, at most `max_kept` bytes.
    pub kept: Vec<u8>,
    /// `kept` hit its cap.
    pub kept_capped: bool,
    /// Segments, MSH included.
    pub segments: u32,
    /// Per segment id (first [`MAX_SEGMENT_IDS`] distinct ids).
    pub counts: Vec<(SegmentId, u32)>,
    /// Segments past the distinct-id cap or without a valid id.
    pub other_segments: u32,
    /// Content bytes, from the MSH to the end block (or the next MSH in a batch).
    pub bytes: u64,
    /// Content bytes passed over without a copy.
    pub skipped: u64,
}

impl Message {
    fn reset(&mut self) {
        // A header is a few hundred bytes; a buffer grown by a long MFN is not kept per flow.
        if self.kept.capacity() > KEEP_KEPT_BUFFER {
            self.kept = Vec::new();
        }
        self.kept.clear();
        self.kept_capped = false;
        self.segments = 0;
        self.counts.clear();
        self.other_segments = 0;
        self.bytes = 0;
        self.skipped = 0;
    }

    fn count(&mut self, id: Option<SegmentId>) {
        self.segments = self.segments.saturating_add(1);
        if let Some(id) = id {
            if let Some((_, n)) = self.counts.iter_mut().find(|(s, _)| *s == id) {
                *n = n.saturating_add(1);
                return;
            }
            if self.counts.len() < MAX_SEGMENT_IDS {
                self.counts.push((id, 1));
                return;
            }
        }
        self.other_segments = self.other_segments.saturating_add(1);
    }

    /// Segments with this id.
    pub fn count_of(&self, id: SegmentId) -> u32 {
        self.counts.iter().find(|(s, _)| *s == id).map_or(0, |(_, n)| *n)
    }

    fn keep(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.kept.len());
        if bytes.len() > room {
            self.kept_capped = true;
        }
        self.kept
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: CR/LF keep-alives are passed, `<VT>` opens a frame.
    Between,
    /// Right after `<FS>`: expecting the CR of the end block.
    AfterEnd,
    /// Scanning for the next `<VT>`.
    Resync,
    /// Inside a frame.
    Frame,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// At a segment start, `n` of the id + following character read into `id`.
    Start { id: [u8; 4], n: u8 },
    /// Copying a kept segment.
    Keep,
    /// Passing over a segment.
    Skip,
}

const SEG_START: Seg = Seg::Start { id: [0; 4], n: 0 };

/// One direction's deframer.
#[derive(Debug)]
pub(crate) struct Deframer {
    state: State,
    seg: Seg,
    /// The frame was found by the resync scan: it is a frame only if its first segment is
    /// MSH/FHS/BHS; otherwise its bytes were more garbage.
    tentative: bool,
    /// Inside a message (after its MSH).
    in_message: bool,
    /// MSH-1 of the current message (or FHS-1/BHS-1 of the batch).
    field_sep: u8,
    /// Content bytes of the current frame.
    frame_bytes: u64,
    /// `hl7.missing_msh` already reported for this frame.
    missing_reported: bool,
    msg: Message,
    cause: ResyncCause,
    /// Bytes passed over since the last frame, not yet reported.
    skipped: u64,
    /// Total bytes passed over outside frames.
    pub skipped_total: u64,
    /// A frame start was accepted at least once.
    pub locked_once: bool,
    max_kept: usize,
    max_message: u64,
}

impl Deframer {
    /// `midstream`: the direction's first bytes are not known to be a frame start.
    pub(crate) fn new(midstream: bool, max_kept: usize, max_message: u64) -> Self {
        Deframer {
            state: if midstream { State::Resync } else { State::Between },
            seg: SEG_START,
            tentative: false,
            in_message: false,
            field_sep: b'|',
            frame_bytes: 0,
            missing_reported: false,
            msg: Message::default(),
            cause: ResyncCause::Midstream,
            skipped: 0,
            skipped_total: 0,
            locked_once: false,
            max_kept,
            max_message,
        }
    }

    #[cfg(test)]
    pub(crate) fn kept_capacity(&self) -> usize {
        self.msg.kept.capacity()
    }

    /// Feed in-order bytes.
    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut impl FrameSink) {
        let mut pos = 0usize;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            // Every step consumes at least one byte or changes to a state that will.
            pos += match self.state {
                State::Between => self.between(rest),
                State::AfterEnd => self.after_end(rest, sink),
                State::Resync => self.resync(rest),
                State::Frame => self.frame(rest, sink),
            };
        }
    }

    /// Bytes were lost: the message being read (if any) is reported as cut, and the rest is
    /// found again at the next frame start (MLLP has no lengths to step over a hole with).
    /// Returns whether a message was cut.
    pub(crate) fn gap(&mut self, sink: &mut impl FrameSink) -> bool {
        let cut = self.state == State::Frame && !self.tentative && self.in_message;
        match self.state {
            State::Frame if self.tentative => self.abandon(),
            State::Frame => {
                if self.in_message {
                    self.end_message(MessageEnd::Gap, sink);
                }
                self.resync_from(ResyncCause::Gap);
            }
            State::Between | State::AfterEnd => self.resync_from(ResyncCause::Gap),
            State::Resync => {}
        }
        cut
    }

    /// The direction ended: report a message still open (as truncated) and any bytes passed
    /// over without finding a frame. Returns whether a message was open. Idempotent.
    pub(crate) fn finish(&mut self, sink: &mut impl FrameSink) -> bool {
        let mut open = false;
        if self.state == State::Frame {
            if self.tentative {
                self.abandon();
            } else {
                if self.in_message {
                    self.end_message(MessageEnd::FlowEnd, sink);
                    open = true;
                }
                sink.frame();
            }
        }
        if self.skipped > 0 {
            sink.skipped(self.cause, self.skipped, false);
            self.skipped = 0;
        }
        self.state = State::Between;
        self.seg = SEG_START;
        open
    }

    fn between(&mut self, rest: &[u8]) -> usize {
        let blank = rest
            .iter()
            .position(|&b| b != CARRIAGE_RETURN && b != LINE_FEED)
            .unwrap_or(rest.len());
        if blank > 0 {
            return blank;
        }
        if rest.first() == Some(&START_BLOCK) {
            self.open_frame(false);
            1
        } else {
            // Reported (as `hl7.bad_framing`) with its length when the next frame is found.
            self.resync_from(ResyncCause::Garbage);
            0
        }
    }

    fn after_end(&mut self, rest: &[u8], sink: &mut impl FrameSink) -> usize {
        self.state = State::Between;
        if rest.first() == Some(&CARRIAGE_RETURN) {
            1
        } else {
            sink.anomaly(Hl7Anomaly::BadFraming, "end block <FS> not followed by <CR>".into());
            0
        }
    }

    fn resync(&mut self, rest: &[u8]) -> usize {
        match rest.iter().position(|&b| b == START_BLOCK) {
            Some(i) => {
                self.add_skipped(i as u64);
                self.open_frame(true);
                i + 1
            }
            None => {
                self.add_skipped(rest.len() as u64);
                rest.len()
            }
        }
    }

    fn add_skipped(&mut self, n: u64) {
        self.skipped = self.skipped.saturating_add(n);
        self.skipped_total = self.skipped_total.saturating_add(n);
    }

    fn resync_from(&mut self, cause: ResyncCause) {
        self.state = State::Resync;
        self.cause = cause;
        self.tentative = false;
        self.in_message = false;
    }

    fn open_frame(&mut self, tentative: bool) {
        self.state = State::Frame;
        self.seg = SEG_START;
        self.tentative = tentative;
        self.in_message = false;
        self.frame_bytes = 0;
        self.missing_reported = false;
        if !tentative {
            self.locked_once = true;
        }
    }

    /// A tentative frame turned out not to be one: its bytes were garbage too.
    fn abandon(&mut self) {
        self.add_skipped(self.frame_bytes.saturating_add(1));
        self.state = State::Resync;
        self.tentative = false;
        self.in_message = false;
    }

    fn end_message(&mut self, end: MessageEnd, sink: &mut impl FrameSink) {
        self.in_message = false;
        sink.message(&self.msg, end);
    }

    /// One step inside a frame; returns bytes consumed (≥ 1).
    fn frame(&mut self, rest: &[u8], sink: &mut impl FrameSink) -> usize {
        match self.seg {
            Seg::Start { id, n } => {
                let Some(&b) = rest.first() else { return 0 };
                match b {
                    END_BLOCK => self.end_block(sink),
                    START_BLOCK => self.start_in_frame(sink),
                    CARRIAGE_RETURN | LINE_FEED => {
                        self.content(1);
                        if n > 0 {
                            self.short_segment(sink);
                        }
                        if self.state == State::Frame {
                            self.seg = SEG_START;
                        }
                    }
                    _ => {
                        self.content(1);
                        let mut id = id;
                        if let Some(slot) = id.get_mut(usize::from(n)) {
                            *slot = b;
                        }
                        if n + 1 == 4 {
                            self.classify(id, sink);
                        } else {
                            self.seg = Seg::Start { id, n: n + 1 };
                        }
                    }
                }
                self.check_size(sink);
                1
            }
            Seg::Keep | Seg::Skip => {
                let i = find_frame_byte(rest).unwrap_or(rest.len());
                let body = rest.get(..i).unwrap_or_default();
                if self.seg == Seg::Keep {
                    self.keep(body, sink);
                } else if self.in_message {
                    self.msg.skipped = self.msg.skipped.saturating_add(i as u64);
                }
                self.content(i as u64);
                match rest.get(i) {
                    None => {}
                    Some(&END_BLOCK) => {
                        self.close_kept_segment(sink);
                        self.end_block(sink);
                    }
                    Some(&START_BLOCK) => {
                        self.close_kept_segment(sink);
                        self.start_in_frame(sink);
                    }
                    Some(_) => {
                        // CR or LF: segment terminator.
                        self.content(1);
                        self.close_kept_segment(sink);
                        self.seg = SEG_START;
                    }
                }
                self.check_size(sink);
                if i < rest.len() {
                    i + 1
                } else {
                    i
                }
            }
        }
    }

    /// Kept segments are stored CR-terminated, whatever ended them.
    fn close_kept_segment(&mut self, sink: &mut impl FrameSink) {
        if self.seg == Seg::Keep {
            self.keep(&[CARRIAGE_RETURN], sink);
        }
    }

    /// Copy bytes of a kept segment, within `max_kept` and the decoder memory budget (a
    /// refusal caps the message's kept bytes where they are, as `max_kept` would).
    fn keep(&mut self, bytes: &[u8], sink: &mut impl FrameSink) {
        let room = self.max_kept.saturating_sub(self.msg.kept.len());
        let n = room.min(bytes.len());
        if n > 0 && !self.msg.kept_capped && !sink.reserve(&mut self.msg.kept, n) {
            self.msg.kept_capped = true;
            sink.budget_refused(self.msg.kept.len());
            return;
        }
        if !self.msg.kept_capped || n == 0 {
            self.msg.keep(bytes, self.max_kept);
        }
    }

    /// Capacity of the buffers this deframer holds (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.msg.kept.capacity()
    }

    /// Count content bytes of the frame (and of the message, when inside one).
    fn content(&mut self, n: u64) {
        self.frame_bytes = self.frame_bytes.saturating_add(n);
        if self.in_message {
            self.msg.bytes = self.msg.bytes.saturating_add(n);
        }
    }

    fn check_size(&mut self, sink: &mut impl FrameSink) {
        if self.state != State::Frame || self.frame_bytes <= self.max_message {
            return;
        }
        if self.tentative {
            self.abandon();
            return;
        }
        sink.anomaly(
            Hl7Anomaly::MessageTooLarge,
            format!("no end block within {} bytes", self.max_message),
        );
        if self.in_message {
            self.end_message(MessageEnd::TooLarge, sink);
        }
        sink.frame();
        self.resync_from(ResyncCause::TooLarge);
    }

    /// `<FS>`: the frame ends.
    fn end_block(&mut self, sink: &mut impl FrameSink) {
        if self.tentative {
            // `<VT>`, nothing that starts a message, `<FS>`: garbage, including the `<FS>`.
            self.add_skipped(1);
            self.abandon();
            return;
        }
        if self.in_message {
            self.in_message = false;
            sink.message(&self.msg, MessageEnd::Complete);
        }
        sink.frame();
        self.state = State::AfterEnd;
    }

    /// `<VT>` inside a frame: the sender started over without closing the frame.
    fn start_in_frame(&mut self, sink: &mut impl FrameSink) {
        if self.tentative {
            self.abandon();
            self.open_frame(true);
            return;
        }
        if self.frame_bytes == 0 {
            // `<VT><VT>`: the first start block opened nothing. Runs of them are junk, passed
            // over and reported once (`hl7.bad_framing`) with the next message, not a
            // missing end block each.
            self.cause = ResyncCause::Garbage;
            self.add_skipped(1);
            return;
        }
        if self.in_message {
            self.in_message = false;
            sink.message(&self.msg, MessageEnd::MissingEndBlock);
        }
        sink.anomaly(
            Hl7Anomaly::MissingEndBlock,
            format!("start block after {} bytes of an unterminated frame", self.frame_bytes),
        );
        sink.frame();
        self.open_frame(false);
    }

    /// A segment of 1-3 characters: no valid id and field separator.
    fn short_segment(&mut self, sink: &mut impl FrameSink) {
        if self.tentative {
            self.abandon();
        } else if self.in_message {
            self.msg.count(None);
        } else {
            self.report_missing_msh(None, sink);
        }
    }

    fn report_missing_msh(&mut self, id: Option<SegmentId>, sink: &mut impl FrameSink) {
        if !self.missing_reported {
            self.missing_reported = true;
            let detail = match id {
                Some(s) => format!("frame starts with {}, not MSH", s.as_str()),
                None => "frame starts with an invalid segment id, not MSH".to_string(),
            };
            sink.anomaly(Hl7Anomaly::MissingMsh, detail);
        }
    }

    /// The first four bytes of a segment are in: its id and the character after it.
    fn classify(&mut self, bytes: [u8; 4], sink: &mut impl FrameSink) {
        let [a, b, c, sep] = bytes;
        let id = SegmentId::parse([a, b, c]);
        let header = id.filter(|s| s.is_header() && is_delimiter(sep));
        if self.tentative {
            if header.is_none() {
                self.abandon();
                return;
            }
            self.tentative = false;
            self.locked_once = true;
        }
        if self.skipped > 0 && header.is_some() {
            sink.skipped(self.cause, self.skipped, true);
            self.skipped = 0;
        }
        self.seg = Seg::Skip;
        match (id, header) {
            (_, Some(h)) => {
                if self.in_message {
                    // A batch: the next message starts. Its first 4 bytes were counted
                    // into this one.
                    self.msg.bytes = self.msg.bytes.saturating_sub(4);
                    self.end_message(MessageEnd::Complete, sink);
                }
                self.field_sep = sep;
                if h == SegmentId::MSH {
                    self.in_message = true;
                    self.msg.reset();
                    self.msg.count(Some(h));
                    self.msg.bytes = 4;
                    self.keep(&bytes, sink);
                    self.seg = Seg::Keep;
                }
            }
            (Some(s), None) if s.is_batch_envelope() && sep == self.field_sep => {
                if self.in_message {
                    self.msg.bytes = self.msg.bytes.saturating_sub(4);
                    self.end_message(MessageEnd::Complete, sink);
                }
            }
            (Some(SegmentId::MSH), None) if !self.in_message && !self.missing_reported => {
                self.missing_reported = true;
                sink.anomaly(
                    Hl7Anomaly::MalformedMsh,
                    format!("MSH-1 field separator 0x{sep:02x} is not a delimiter"),
                );
            }
            _ if !self.in_message => self.report_missing_msh(id, sink),
            // Only a valid id followed by this message's field separator is counted under its
            // id: a line of free text broken by a raw LF never becomes a key.
            (Some(s), None) if sep == self.field_sep => {
                self.msg.count(Some(s));
                if s.is_kept() {
                    self.keep(&bytes, sink);
                    self.seg = Seg::Keep;
                }
            }
            _ => self.msg.count(None),
        }
    }
}
