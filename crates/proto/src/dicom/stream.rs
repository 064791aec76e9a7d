//! Streaming PDU / PDV walker for one direction of a DICOM connection.
//!
//! The pure parsers in `parser.rs` need whole headers; TCP delivers arbitrary pieces. This
//! state machine keeps at most [`MAX_LOOKAHEAD`] bytes of header lookahead across chunk
//! boundaries, buffers control PDUs (bounded by `max_control_pdu_bytes`), and hands PDV payload
//! to its sink as borrowed slices: a P-DATA-TF of any length costs O(1) per chunk and no copy.
//! It knows nothing about associations or commands; those live behind [`PduSink`]. (One
//! exception: at a gap's end it asks `command::headless_command_len` whether the bytes there
//! are a command set whose PDU and PDV headers were lost.)

use super::command::headless_command_len;
use super::parser::{
    parse_pdu_header, parse_pdv_header, plausible_pdu_header, ParseStatus, Parsed, PduHeader, PduType, PdvHeader,
    Plausible, MAX_LOOKAHEAD, PDU_HEADER_LEN, PDV_HEADER_LEN,
};
use super::DicomAnomaly;
use crate::carry::Carry;
use std::fmt;

/// Largest command set read without its headers at a gap's end. Real command sets are 60-300
/// bytes (a C-STORE-RQ with 64-character UIDs and a move originator is about 200); this only
/// bounds how far a look-alike could run.
const MAX_HEADLESS_COMMAND: usize = 4 << 10;

/// Control PDU buffers above this are freed after use instead of kept for the next PDU:
/// A-ASSOCIATE-RQ/AC (1-30 KiB) come once per association, every other control PDU is
/// 10 bytes (PS3.8 §9.3.4-9.3.8), so nothing big needs to stay allocated per flow.
const KEEP_CONTROL_BUFFER: usize = 1 << 10;

/// Bytes of a control PDU kept when the whole PDU cannot be (over `max_control_pdu_bytes`, or
/// the memory budget refused it): the 74-byte header and fixed fields of an A-ASSOCIATE-RQ
/// (PS3.8 §9.3.2: AE titles at bytes 11-42) and the first variable items, so the association
/// is still named.
pub(crate) const CONTROL_PREFIX: usize = 1 << 10;

/// Receiver of what the walker finds.
pub(crate) trait PduSink {
    /// A PDU header was read. `false`: stop reading this direction (probe failed).
    fn pdu_header(&mut self, header: &PduHeader) -> bool;
    /// A complete control PDU, header included; its length was bounded by the walker.
    fn control_pdu(&mut self, pdu: &[u8]);
    /// The first bytes (header included) of a control PDU that could not be held whole
    /// (over the cap, refused by the memory budget, or cut by a gap or the flow's end).
    fn control_prefix(&mut self, _prefix: &[u8]) {}
    /// `n` bytes of PDUs (headers included) were seen on the wire.
    fn wire(&mut self, _n: u64) {}
    /// Make room for `more` bytes in `buf` (decoder memory budget); `false`: refused. The
    /// default does not budget (tests, fuzzing).
    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        buf.reserve(more);
        true
    }
    /// The memory budget refused to hold a message: report it (the walker goes on without).
    fn budget_refused(&mut self, _what: fmt::Arguments<'_>) {}
    fn pdv_begin(&mut self, pdv: &PdvHeader);
    /// Payload of the current PDV, in order, in as large slices as the chunks allow.
    fn pdv_data(&mut self, pdv: &PdvHeader, bytes: &[u8]);
    /// `len` payload bytes of the current PDV were lost to a capture gap.
    fn pdv_gap(&mut self, pdv: &PdvHeader, len: u64);
    fn pdv_end(&mut self, pdv: &PdvHeader);
    /// Partial message state of this direction is no longer trustworthy: drop it.
    fn lost_sync(&mut self);
    /// Locked onto a plausible PDU header after skipping `skipped` bytes.
    fn resynced(&mut self, skipped: u64);
    fn anomaly(&mut self, name: DicomAnomaly, detail: fmt::Arguments<'_>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a PDU header.
    Header,
    /// Buffering the first `keep` bytes of a control PDU of `total` bytes (header included)
    /// into `ctrl`; `keep < total` when only a prefix is held (then the rest is skipped).
    Control { keep: usize, total: u64, whole: bool },
    /// Passing over `left` bytes (an oversized or unknown PDU, or the rest of a broken one).
    Skip { left: u64 },
    /// Inside a P-DATA-TF with `pdu_left` body bytes to go, expecting a PDV item header.
    PdvHeader { pdu_left: u32 },
    /// Inside a PDV value.
    PdvValue {
        pdu_left: u32,
        pdv_left: u32,
        pdv: PdvHeader,
    },
    /// Scanning for the next plausible PDU header.
    Resync,
}

/// One direction's walker.
#[derive(Debug)]
pub(crate) struct PduStream {
    state: State,
    /// Header lookahead (≤ 6 bytes) or, while resynchronising, the unscanned tail of the
    /// previous chunk (< 12 bytes).
    look: Carry<MAX_LOOKAHEAD>,
    ctrl: Vec<u8>,
    /// Bytes passed over while resynchronising, reported when a header is found.
    skipped: u64,
    /// Just locked on by resync: a bad header right after is silently another resync, not an
    /// anomaly (the lock may have been on look-alike bytes inside a data set).
    tentative: bool,
    headers_since_lock: u8,
    stopped: bool,
    /// The PDU being read: its type, its claimed length (header included) and bytes seen.
    cur: Option<(super::parser::PduType, u64)>,
    cur_seen: u64,
    /// The resync just started at a gap's end: the bytes there may be a command set whose PDU
    /// and PDV headers fell in the gap (`command::headless_command_len`).
    after_gap: bool,
}

impl PduStream {
    /// `resync`: start by scanning (capture began mid-stream) rather than expecting a header.
    pub(crate) fn new(resync: bool) -> Self {
        PduStream {
            state: if resync { State::Resync } else { State::Header },
            look: Carry::new(),
            ctrl: Vec::new(),
            skipped: 0,
            tentative: resync,
            headers_since_lock: 0,
            stopped: false,
            cur: None,
            cur_seen: 0,
            after_gap: false,
        }
    }

    /// Capacity of the buffers this walker holds (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.ctrl.capacity()
    }

    /// Count `n` bytes of the current PDU as seen.
    fn seen(&mut self, sink: &mut impl PduSink, n: usize) {
        if n > 0 {
            self.cur_seen = self.cur_seen.saturating_add(n as u64);
            sink.wire(n as u64);
        }
    }

    /// A control PDU being buffered is lost (gap, flow end): hand over what was held when it
    /// covers at least the PDU header, so a cut A-ASSOCIATE-RQ still names its association.
    fn flush_partial_control(&mut self, sink: &mut impl PduSink) {
        if let State::Control { .. } = self.state {
            if self.ctrl.len() > PDU_HEADER_LEN {
                sink.control_prefix(&self.ctrl);
            }
        }
    }

    /// The direction ended: a control PDU cut short still names what it can, and a PDU that
    /// claimed more bytes than were seen is reported (sizes in events are bytes seen).
    pub(crate) fn finish(&mut self, sink: &mut impl PduSink) {
        self.flush_partial_control(sink);
        let mid_pdu = !matches!(self.state, State::Header | State::Resync);
        if let (true, Some((t, claimed))) = (mid_pdu, self.cur) {
            if claimed > self.cur_seen {
                sink.anomaly(
                    DicomAnomaly::PduTruncated,
                    format_args!(
                        "{} claimed {} bytes, {} seen before the connection ended",
                        t.name(),
                        claimed,
                        self.cur_seen
                    ),
                );
            }
        }
        self.state = State::Header;
        self.cur = None;
        self.release_ctrl();
    }

    pub(crate) fn is_resyncing(&self) -> bool {
        self.state == State::Resync
    }

    /// Feed in-order bytes.
    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut impl PduSink, max_control: u32) {
        let mut pos = 0usize;
        while pos < data.len() && !self.stopped {
            let rest = data.get(pos..).unwrap_or_default();
            match self.step(rest, sink, max_control) {
                ParseStatus::Done { consumed } => pos += consumed,
                ParseStatus::Skip { bytes } => pos += bytes,
                ParseStatus::NeedMore { consumed, .. } => pos += consumed,
                ParseStatus::Desync => self.enter_resync(&[]),
            }
        }
    }

    /// `len` bytes were lost. Inside a PDV value, a control PDU or a PDU being skipped whose
    /// remaining length covers the hole, the walker stays in step by subtracting (a command set
    /// or control PDU so cut is handed over as the prefix before the hole); anywhere else the
    /// partial message is dropped and it resynchronises.
    ///
    /// Why command sets and control PDUs too: a capture with a short snaplen (header-only
    /// captures, 96-256 bytes a frame) cuts every segment, so every command and A-ASSOCIATE
    /// PDU longer than a frame's captured payload ends in a hole. Their lengths, read before
    /// the hole, still say where the next PDV and PDU begin, and their first bytes name the
    /// AE titles, the command and its message ID.
    pub(crate) fn gap(&mut self, len: u64, sink: &mut impl PduSink) {
        match self.state {
            // Not right after a resync lock, which may be on look-alike bytes: no AE titles or
            // acceptance from those.
            State::Control { total, .. } if !self.tentative && len <= total.saturating_sub(self.ctrl.len() as u64) => {
                let left = total.saturating_sub(self.ctrl.len() as u64) - len;
                self.flush_partial_control(sink);
                self.release_ctrl();
                self.state = if left == 0 { State::Header } else { State::Skip { left } };
            }
            State::PdvValue {
                pdu_left,
                pdv_left,
                pdv,
            } if len <= u64::from(pdv_left) => {
                let l = len as u32; // ≤ pdv_left
                sink.pdv_gap(&pdv, len);
                let (pdu_left, pdv_left) = (pdu_left.saturating_sub(l), pdv_left - l);
                if pdv_left == 0 {
                    sink.pdv_end(&pdv);
                    // At the PDU's end, expect the next header now: a flow that ends here ends
                    // between PDUs, not inside one.
                    self.state = if pdu_left == 0 {
                        State::Header
                    } else {
                        State::PdvHeader { pdu_left }
                    };
                } else {
                    self.state = State::PdvValue {
                        pdu_left,
                        pdv_left,
                        pdv,
                    };
                }
            }
            State::Skip { left } if len <= left => {
                self.state = if left == len {
                    State::Header
                } else {
                    State::Skip { left: left - len }
                };
            }
            _ => {
                // Gap bytes are not counted as skipped: `dicom.resync` reports only bytes the
                // scanner had to pass over.
                self.flush_partial_control(sink);
                sink.lost_sync();
                self.enter_resync(&[]);
                self.after_gap = true;
            }
        }
    }

    /// Bytes of `look` the resync scan should still consider (e.g. the tail of a bad header).
    fn enter_resync(&mut self, carry: &[u8]) {
        self.state = State::Resync;
        self.after_gap = false;
        let n = carry.len().min(MAX_LOOKAHEAD - 1);
        self.look.set(carry.get(..n).unwrap_or_default());
        self.release_ctrl();
    }

    fn release_ctrl(&mut self) {
        if self.ctrl.capacity() > KEEP_CONTROL_BUFFER {
            self.ctrl = Vec::new();
        } else {
            self.ctrl.clear();
        }
    }

    /// Collect `n` bytes of header into lookahead, or read them straight from `data`.
    /// Returns the header bytes and how many bytes of `data` were used.
    fn gather(&mut self, data: &[u8], n: usize) -> Result<([u8; MAX_LOOKAHEAD], usize), ParseStatus> {
        match self.look.gather(data, n) {
            (Some(header), used) => Ok((header, used)),
            (None, consumed) => Err(ParseStatus::NeedMore {
                consumed,
                needed: self.look.missing(n),
            }),
        }
    }

    fn step(&mut self, data: &[u8], sink: &mut impl PduSink, max_control: u32) -> ParseStatus {
        match self.state {
            State::Header => self.step_header(data, sink, max_control),
            State::Control { keep, total, whole } => {
                let want = keep.saturating_sub(self.ctrl.len());
                let take = want.min(data.len());
                // Room for `keep` was reserved when the header was read.
                self.ctrl.extend_from_slice(data.get(..take).unwrap_or_default());
                self.seen(sink, take);
                if self.ctrl.len() < keep {
                    return ParseStatus::NeedMore {
                        consumed: take,
                        needed: keep - self.ctrl.len(),
                    };
                }
                let rest = total.saturating_sub(keep as u64);
                if whole {
                    sink.control_pdu(&self.ctrl);
                    self.state = State::Header;
                } else {
                    sink.control_prefix(&self.ctrl);
                    self.state = State::Skip { left: rest };
                }
                self.release_ctrl();
                ParseStatus::Done { consumed: take }
            }
            State::Skip { left } => {
                let take = left.min(data.len() as u64) as usize;
                self.seen(sink, take);
                let left = left - take as u64;
                self.state = if left == 0 { State::Header } else { State::Skip { left } };
                ParseStatus::Skip { bytes: take }
            }
            State::PdvHeader { pdu_left } => self.step_pdv_header(data, pdu_left, sink),
            State::PdvValue {
                pdu_left,
                pdv_left,
                pdv,
            } => {
                let take = (pdv_left as usize).min(data.len());
                self.seen(sink, take);
                sink.pdv_data(&pdv, data.get(..take).unwrap_or_default());
                let t = take as u32; // ≤ pdv_left
                let (pdu_left, pdv_left) = (pdu_left.saturating_sub(t), pdv_left - t);
                if pdv_left == 0 {
                    sink.pdv_end(&pdv);
                    self.state = State::PdvHeader { pdu_left };
                } else {
                    self.state = State::PdvValue {
                        pdu_left,
                        pdv_left,
                        pdv,
                    };
                }
                ParseStatus::Done { consumed: take }
            }
            State::Resync => self.step_resync(data, sink, max_control),
        }
    }

    fn step_header(&mut self, data: &[u8], sink: &mut impl PduSink, max_control: u32) -> ParseStatus {
        let (bytes, consumed) = match self.gather(data, PDU_HEADER_LEN) {
            Ok(x) => x,
            Err(status) => return status,
        };
        let Parsed::Done { value: h, .. } = parse_pdu_header(&bytes) else {
            return ParseStatus::Desync;
        };
        let carry = bytes.get(1..PDU_HEADER_LEN).unwrap_or_default();
        if !h.pdu_type.is_known() {
            // PS3.8 §9.3.1 lists types 01H-07H only. An unknown type with a sane length is
            // passed over (rule 3: keep unknowns); anything else means we are out of step.
            if !self.tentative {
                sink.anomaly(
                    DicomAnomaly::UnknownPduType,
                    format_args!("PDU type 0x{:02X}", h.pdu_type.0),
                );
            }
            if h.reserved == 0 && h.length <= max_control && !self.tentative {
                self.cur = Some((h.pdu_type, h.total_len()));
                self.cur_seen = 0;
                self.seen(sink, PDU_HEADER_LEN);
                self.state = State::Skip {
                    left: u64::from(h.length),
                };
                return ParseStatus::Done { consumed };
            }
            sink.lost_sync();
            self.enter_resync(carry);
            return ParseStatus::Done { consumed };
        }
        self.headers_since_lock = self.headers_since_lock.saturating_add(1);
        if self.headers_since_lock >= 2 {
            self.tentative = false;
        }
        if !sink.pdu_header(&h) {
            self.stopped = true;
            return ParseStatus::Done { consumed };
        }
        self.cur = Some((h.pdu_type, h.total_len()));
        self.cur_seen = 0;
        self.seen(sink, PDU_HEADER_LEN);
        if h.pdu_type == PduType::P_DATA_TF {
            self.state = State::PdvHeader { pdu_left: h.length };
            if (h.length as usize) < PDV_HEADER_LEN {
                sink.anomaly(
                    DicomAnomaly::MalformedPdv,
                    format_args!("P-DATA-TF of {} bytes holds no PDV item", h.length),
                );
                self.state = State::Skip {
                    left: u64::from(h.length),
                };
            }
        } else {
            // Control PDUs are buffered whole and handed to dicom-ul, so they are bounded here
            // (ARCHITECTURE rule 5) by the cap and by the memory budget. One that cannot be held
            // whole keeps its first CONTROL_PREFIX bytes (the AE titles of an RQ) and the rest
            // is passed over.
            let total = h.total_len();
            let mut keep = PDU_HEADER_LEN + h.length as usize;
            let mut whole = true;
            self.release_ctrl();
            if h.length > max_control {
                sink.anomaly(
                    DicomAnomaly::PduTooLarge,
                    format_args!(
                        "{} claims {} bytes, over the {} byte cap",
                        h.pdu_type.name(),
                        h.length,
                        max_control
                    ),
                );
                keep = CONTROL_PREFIX;
                whole = false;
            } else if !sink.reserve(&mut self.ctrl, keep) {
                sink.budget_refused(format_args!("{} of {} bytes", h.pdu_type.name(), h.length));
                keep = CONTROL_PREFIX;
                whole = false;
            }
            keep = keep.min(PDU_HEADER_LEN + h.length as usize);
            if keep > self.ctrl.capacity() && !sink.reserve(&mut self.ctrl, keep) {
                // Not even the prefix: pass over the whole PDU.
                keep = 0;
            }
            if keep == 0 {
                self.state = State::Skip {
                    left: u64::from(h.length),
                };
            } else {
                self.ctrl
                    .extend_from_slice(bytes.get(..PDU_HEADER_LEN).unwrap_or_default());
                self.state = State::Control { keep, total, whole };
            }
        }
        ParseStatus::Done { consumed }
    }

    fn step_pdv_header(&mut self, data: &[u8], pdu_left: u32, sink: &mut impl PduSink) -> ParseStatus {
        if pdu_left == 0 {
            self.state = State::Header;
            return ParseStatus::Done { consumed: 0 };
        }
        if (pdu_left as usize) < PDV_HEADER_LEN {
            return self.malformed_pdv(sink, pdu_left, format_args!("{pdu_left} trailing bytes in P-DATA-TF"));
        }
        let (bytes, consumed) = match self.gather(data, PDV_HEADER_LEN) {
            Ok(x) => x,
            Err(status) => return status,
        };
        let body_left = pdu_left - PDV_HEADER_LEN as u32;
        self.seen(sink, PDV_HEADER_LEN);
        let pdv = match parse_pdv_header(&bytes) {
            Parsed::Done { value, .. } if value.value_len() <= body_left => value,
            _ => {
                self.state = State::Skip {
                    left: u64::from(body_left),
                };
                let item = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                let st = self.malformed_pdv(
                    sink,
                    body_left,
                    format_args!("PDV item length {item} in a P-DATA-TF with {pdu_left} bytes left"),
                );
                return match st {
                    ParseStatus::Done { .. } => ParseStatus::Done { consumed },
                    other => other,
                };
            }
        };
        if pdv.context_id % 2 == 0 && !self.tentative {
            // PS3.8 §9.3.2.2: presentation context IDs are odd. Lengths are consistent, so go on.
            sink.anomaly(
                DicomAnomaly::MalformedPdv,
                format_args!("even presentation context id {}", pdv.context_id),
            );
        }
        sink.pdv_begin(&pdv);
        if pdv.value_len() == 0 {
            sink.pdv_end(&pdv);
            self.state = State::PdvHeader { pdu_left: body_left };
        } else {
            self.state = State::PdvValue {
                pdu_left: body_left,
                pdv_left: pdv.value_len(),
                pdv,
            };
        }
        ParseStatus::Done { consumed }
    }

    /// A PDV that does not fit its PDU: the PDU boundary is still known, so drop the message
    /// and skip to it. Right after a resync lock the lock itself was probably wrong: rescan.
    fn malformed_pdv(&mut self, sink: &mut impl PduSink, skip: u32, detail: fmt::Arguments<'_>) -> ParseStatus {
        sink.lost_sync();
        if self.tentative {
            self.enter_resync(&[]);
        } else {
            sink.anomaly(DicomAnomaly::MalformedPdv, detail);
            self.state = State::Skip { left: u64::from(skip) };
        }
        ParseStatus::Done { consumed: 0 }
    }

    fn lock(&mut self, sink: &mut impl PduSink) {
        sink.resynced(self.skipped);
        self.skipped = 0;
        self.tentative = true;
        self.headers_since_lock = 0;
        self.state = State::Header;
    }

    /// Scan for a plausible PDU header: every start position is examined once (the < 12-byte
    /// tail of one chunk is carried into the next), so the cost is linear in the bytes seen.
    fn step_resync(&mut self, data: &[u8], sink: &mut impl PduSink, max_control: u32) -> ParseStatus {
        if std::mem::take(&mut self.after_gap) && self.look.is_empty() {
            if let Some(len) = headless_command_len(data, MAX_HEADLESS_COMMAND) {
                // Read it as the single, last fragment of a command on an unknown presentation
                // context (0: none is numbered so), in a P-DATA-TF that ends with it.
                let len = len as u32; // ≤ MAX_HEADLESS_COMMAND
                let pdv = PdvHeader {
                    item_length: len + 2,
                    context_id: 0,
                    control: 0x03,
                };
                self.cur = None;
                sink.pdv_begin(&pdv);
                self.state = State::PdvValue {
                    pdu_left: len,
                    pdv_left: len,
                    pdv,
                };
                return ParseStatus::Done { consumed: 0 };
            }
        }
        if !self.look.is_empty() {
            let carry_len = self.look.len();
            let (win, wlen) = self.look.joined::<{ 2 * MAX_LOOKAHEAD }>(data);
            let extra = wlen - carry_len;
            for i in 0..carry_len {
                let cand = win.get(i..wlen).unwrap_or_default();
                match plausible_pdu_header(cand, max_control) {
                    Plausible::Yes => {
                        self.skipped += i as u64;
                        self.look.clear();
                        self.lock(sink);
                        // Re-feed the carried bytes of the header; they cannot desync because
                        // the plausibility test is stricter than the normal parse.
                        let mut carried = [0u8; MAX_LOOKAHEAD];
                        let n = carry_len - i;
                        if let (Some(d), Some(s)) = (carried.get_mut(..n), win.get(i..carry_len)) {
                            d.copy_from_slice(s);
                        }
                        self.feed(carried.get(..n).unwrap_or_default(), sink, max_control);
                        return ParseStatus::Done { consumed: 0 };
                    }
                    Plausible::NeedMore { needed } => {
                        // Only when `data` was too short to decide: keep the tail.
                        self.look.set(win.get(i..wlen).unwrap_or_default());
                        self.skipped += i as u64;
                        return ParseStatus::NeedMore {
                            consumed: extra,
                            needed,
                        };
                    }
                    Plausible::No => {}
                }
            }
            self.skipped += carry_len as u64;
            self.look.clear();
        }
        for (j, &b) in data.iter().enumerate() {
            // Cheap pre-filter: PDU types are 01H-07H.
            if !(1..=7).contains(&b) {
                continue;
            }
            let cand = data.get(j..).unwrap_or_default();
            match plausible_pdu_header(cand, max_control) {
                Plausible::Yes => {
                    self.skipped += j as u64;
                    self.lock(sink);
                    return ParseStatus::Done { consumed: j };
                }
                Plausible::NeedMore { needed } => {
                    let n = cand.len().min(MAX_LOOKAHEAD - 1);
                    self.look.set(cand.get(..n).unwrap_or_default());
                    self.skipped += j as u64;
                    return ParseStatus::NeedMore {
                        consumed: data.len(),
                        needed,
                    };
                }
                Plausible::No => {}
            }
        }
        self.skipped += data.len() as u64;
        ParseStatus::Skip { bytes: data.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// Records what the walker reports.
    #[derive(Default, Debug)]
    struct Rec {
        log: Vec<String>,
    }

    impl PduSink for Rec {
        fn pdu_header(&mut self, h: &PduHeader) -> bool {
            self.log.push(format!("pdu {} {}", h.pdu_type.0, h.length));
            true
        }
        fn control_pdu(&mut self, pdu: &[u8]) {
            self.log.push(format!("control {}", pdu.len()));
        }
        fn control_prefix(&mut self, prefix: &[u8]) {
            self.log.push(format!("prefix {}", prefix.len()));
        }
        fn pdv_begin(&mut self, pdv: &PdvHeader) {
            self.log.push(format!("begin {} {}", pdv.context_id, pdv.control));
        }
        fn pdv_data(&mut self, _pdv: &PdvHeader, bytes: &[u8]) {
            // Merge consecutive data records so the log is split-independent.
            if let Some(last) = self.log.last_mut() {
                if let Some(n) = last.strip_prefix("data ") {
                    let n: usize = n.parse().unwrap();
                    *last = format!("data {}", n + bytes.len());
                    return;
                }
            }
            self.log.push(format!("data {}", bytes.len()));
        }
        fn pdv_gap(&mut self, _pdv: &PdvHeader, len: u64) {
            self.log.push(format!("gap {len}"));
        }
        fn pdv_end(&mut self, pdv: &PdvHeader) {
            self.log.push(format!("end {}", pdv.control));
        }
        fn lost_sync(&mut self) {
            self.log.push("lost".into());
        }
        fn resynced(&mut self, skipped: u64) {
            self.log.push(format!("resync {skipped}"));
        }
        fn anomaly(&mut self, name: DicomAnomaly, _detail: fmt::Arguments<'_>) {
            self.log.push(name.as_str().into());
        }
    }

    fn stream_bytes() -> Vec<u8> {
        let mut s = associate_rq("A", "B", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        s.extend(pdata(&[(1, 3, &[9u8; 40][..]), (1, 0, &[7u8; 100][..])]));
        s.extend(pdata(&[(1, 2, &[7u8; 33][..])]));
        s.extend(release_rq());
        s
    }

    fn run(chunks: &[&[u8]], resync: bool) -> Vec<String> {
        let mut s = PduStream::new(resync);
        let mut r = Rec::default();
        for c in chunks {
            s.feed(c, &mut r, 1 << 18);
        }
        r.log
    }

    #[test]
    fn every_split_point_gives_the_same_log() {
        let bytes = stream_bytes();
        let whole = run(&[&bytes], false);
        assert!(whole.contains(&"control 10".to_string()));
        assert!(whole.contains(&"data 100".to_string()));
        for a in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..a], &bytes[a..]], false), whole, "split at {a}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&singles, false), whole);
        // Three pieces, a sample of pairs.
        for a in (0..bytes.len()).step_by(7) {
            for b in (a..bytes.len()).step_by(11) {
                assert_eq!(run(&[&bytes[..a], &bytes[a..b], &bytes[b..]], false), whole);
            }
        }
    }

    #[test]
    fn resync_finds_the_next_header_at_every_split() {
        let mut bytes = vec![0xEEu8; 37];
        bytes.extend(pdata(&[(3, 3, &[1u8; 20][..])]));
        bytes.extend(release_rp());
        let whole = run(&[&bytes], true);
        assert_eq!(whole.first().map(String::as_str), Some("resync 37"));
        assert!(whole.contains(&"control 10".to_string()), "{whole:?}");
        for a in 0..=bytes.len() {
            assert_eq!(run(&[&bytes[..a], &bytes[a..]], true), whole, "split at {a}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&singles, true), whole);
    }

    #[test]
    fn gap_inside_dataset_stays_in_step() {
        let p = pdata(&[(1, 2, &[5u8; 1000][..])]);
        let mut s = PduStream::new(false);
        let mut r = Rec::default();
        s.feed(&p[..100], &mut r, 1 << 18);
        s.gap(500, &mut r);
        s.feed(&p[600..], &mut r, 1 << 18);
        s.feed(&release_rq(), &mut r, 1 << 18);
        assert_eq!(
            r.log,
            [
                "pdu 4 1006",
                "begin 1 2",
                "data 88",
                "gap 500",
                "data 412",
                "end 2",
                "pdu 5 4",
                "control 10"
            ]
        );
    }

    #[test]
    fn gap_inside_a_command_set_stays_in_step() {
        // A command PDV of 100 bytes (control 3: command, last) whose bytes 40..70 are lost,
        // as a short snaplen loses the end of every segment.
        let mut bytes = pdata(&[(1, 3, &[5u8; 100][..])]);
        bytes.extend(pdata(&[(1, 2, &[6u8; 20][..])]));
        let mut s = PduStream::new(false);
        let mut r = Rec::default();
        s.feed(&bytes[..52], &mut r, 1 << 18);
        s.gap(30, &mut r);
        s.feed(&bytes[82..], &mut r, 1 << 18);
        assert_eq!(
            r.log,
            [
                "pdu 4 106",
                "begin 1 3",
                "data 40",
                "gap 30",
                "data 30",
                "end 3",
                "pdu 4 26",
                "begin 1 2",
                "data 20",
                "end 2"
            ]
        );
    }

    #[test]
    fn gap_inside_a_control_pdu_hands_its_prefix_and_stays_in_step() {
        let rq = associate_rq("CALLING", "CALLED", &[(1, CT_STORAGE, &[EXPLICIT_LE])], None);
        let mut bytes = rq.clone();
        bytes.extend(release_rq());
        for (cut, left) in [(62usize, 10usize), (42, 0), (80, 1)] {
            let lost = rq.len() - cut - left;
            let mut s = PduStream::new(false);
            let mut r = Rec::default();
            s.feed(&bytes[..cut], &mut r, 1 << 18);
            s.gap(lost as u64, &mut r);
            s.feed(&bytes[cut + lost..], &mut r, 1 << 18);
            assert_eq!(
                r.log,
                [
                    format!("pdu 1 {}", rq.len() - 6),
                    format!("prefix {cut}"),
                    "pdu 5 4".into(),
                    "control 10".into()
                ],
                "cut at {cut}, {left} bytes after the hole"
            );
        }
        // A hole past the PDU's end: where the next PDU starts is unknown.
        let mut s = PduStream::new(false);
        let mut r = Rec::default();
        s.feed(&bytes[..62], &mut r, 1 << 18);
        s.gap((rq.len() - 62 + 3) as u64, &mut r);
        assert_eq!(r.log[1..], ["prefix 62", "lost"]);
    }

    #[test]
    fn gap_across_boundary_resyncs() {
        let mut bytes = pdata(&[(1, 2, &[5u8; 100][..])]);
        bytes.extend(pdata(&[(1, 2, &[6u8; 100][..])]));
        bytes.extend(release_rq());
        let mut s = PduStream::new(false);
        let mut r = Rec::default();
        s.feed(&bytes[..50], &mut r, 1 << 18);
        // Lose the end of the first PDU and the start of the second.
        s.gap(100, &mut r);
        s.feed(&bytes[150..], &mut r, 1 << 18);
        let log = r.log.join(",");
        assert!(log.contains("lost"), "{log}");
        assert!(log.ends_with("pdu 5 4,control 10"), "{log}");
    }

    #[test]
    fn oversized_and_unknown_pdus_are_skipped() {
        let mut big = vec![1u8, 0];
        big.extend_from_slice(&1000u32.to_be_bytes());
        big.extend(vec![0u8; 1000]);
        let mut unknown = vec![0x09u8, 0, 0, 0, 0, 3, 1, 2, 3];
        unknown.extend(release_rq());
        big.extend(unknown);
        let mut s = PduStream::new(false);
        let mut r = Rec::default();
        s.feed(&big, &mut r, 100);
        assert_eq!(
            r.log,
            [
                "pdu 1 1000",
                "dicom.pdu_too_large",
                // Its first bytes (up to CONTROL_PREFIX), for the AE titles.
                "prefix 1006",
                "dicom.unknown_pdu_type",
                "pdu 5 4",
                "control 10"
            ]
        );
    }

    #[test]
    fn malformed_pdv_skips_to_pdu_end() {
        // PDV item claims 50 bytes inside a PDU of 10.
        let mut b = vec![4u8, 0, 0, 0, 0, 10, 0, 0, 0, 50, 1, 3, 0, 0, 0, 0];
        b.extend(release_rq());
        assert_eq!(
            run(&[&b], false),
            ["pdu 4 10", "lost", "dicom.malformed_pdv", "pdu 5 4", "control 10"]
        );
    }

    #[test]
    fn garbage_never_panics_or_loops() {
        let mut rng = Lcg(99);
        let base = stream_bytes();
        for round in 0..3_000 {
            let mut bytes = base.clone();
            for _ in 0..(rng.next() % 8) {
                let i = (rng.next() as usize) % bytes.len();
                bytes[i] = rng.next() as u8;
            }
            if round % 3 == 0 {
                bytes = (0..(rng.next() % 500)).map(|_| (rng.next() % 8) as u8).collect();
            }
            let mut s = PduStream::new(round % 2 == 0);
            let mut r = Rec::default();
            let mut at = 0;
            while at < bytes.len() {
                let n = 1 + (rng.next() as usize) % 64;
                let end = (at + n).min(bytes.len());
                s.feed(&bytes[at..end], &mut r, 1 << 12);
                if matches!(rng.next() % 50, 0) {
                    s.gap(rng.next() % 100, &mut r);
                }
                at = end;
            }
        }
    }
}
