//! Association and DIMSE command tracking for one DICOM connection.
//!
//! The per-direction walkers (`stream.rs`) report PDUs and PDV fragments; [`Session`] turns
//! them into associations (PS3.8 §7, state machine simplified to what a passive observer can
//! know) and request/response pairs (PS3.7 §9.3, §10.3), and emits the contract's events.
//!
//! Directions: `raw` is the flow layer's direction of a chunk; an association normalises it so
//! that `ToServer` always means "from the association requester". The two differ when the
//! A-ASSOCIATE-RQ came from what the flow layer took for the server.

pub(crate) use super::association::{Association, Key, PresContext};
use super::command::{parse_command_set, MalformedCommand};
use super::dataset::{DatasetFacts, TransferSyntax};
use super::event::{self, Ending};
use super::parser::{
    parse_control_pdu, AssociateAc, AssociateRq, ControlPdu, ParsedControl, PduType, PdvHeader,
    ASSOCIATE_AE_TITLES_END, MAX_PRESENTATION_CONTEXTS, PDU_HEADER_LEN,
};
use super::DicomAnomaly;
pub(crate) use crate::decoder::{at, at_mut};
pub(crate) use crate::Ctx;
pub(crate) use sink::SessionSink;
use sniff::{recycle, Sniffer};

mod dimse;
mod sink;
mod sniff;

use pacstap_core::{AssociationAbort, AssociationOutcome, AssociationReject, DicomCommand, Direction};
use std::fmt;

/// Everything the session needs from the analyzer for one chunk.
impl Ctx<'_> {
    /// Count an anomaly; emit it unless this flow already emitted its share (rule 6).
    fn anomaly(&mut self, emitted: &mut u32, swapped: bool, name: DicomAnomaly, detail: fmt::Arguments<'_>) {
        *self.stats.anomalies.entry(name.as_str()).or_default() += 1;
        if *emitted < self.cfg.max_anomaly_events_per_flow {
            *emitted += 1;
            let detail = detail.to_string();
            let detail = (!detail.is_empty()).then_some(detail);
            self.events
                .push(event::anomaly_event(self.ts, self.meta, swapped, name, detail));
        }
    }
}

/// What the data set following a command belongs to.
#[derive(Debug)]
enum Target {
    /// A request's data set (C-STORE instance, query identifier): sniffed and counted.
    Request(Key),
    /// A pending response's data set (e.g. a C-FIND match): counted for its request.
    Response(Key),
    /// The final response's data set: its request is emitted when the data set ends.
    Final(Box<DicomCommand>),
    /// No known command (lost to a gap, or the capture began mid-message).
    Orphan,
}

#[derive(Debug)]
struct DatasetProgress {
    target: Target,
    /// Bytes seen.
    bytes: u64,
    /// Bytes lost to capture gaps (in step).
    lost: u64,
    sniff: Option<Sniffer>,
}

/// Message reassembly for one (raw) direction (PS3.8 §E.2: fragments of one message never
/// interleave with another's in the same direction).
#[derive(Debug, Default)]
struct Assembly {
    /// Command fragments so far (bounded by `max_command_bytes`); capacity kept between
    /// commands so steady traffic does not allocate per PDV.
    cmd: Vec<u8>,
    cmd_active: bool,
    cmd_overflow: bool,
    /// A capture gap cut the command set being read: `cmd` holds the bytes before the hole,
    /// and nothing after it is added (element boundaries past a hole are unknown).
    cmd_cut: bool,
    cmd_context: u8,
    ds: Option<DatasetProgress>,
    /// Spare prefix buffer, reused across data sets.
    pool: Vec<u8>,
}

/// Per-connection DICOM state.
#[derive(Debug, Default)]
pub(crate) struct Session {
    assoc: Option<Association>,
    /// Indexed by raw direction.
    msgs: [Assembly; 2],
    /// PDU bytes seen while no association was open (the RQ itself), by raw direction.
    loose_bytes: [u64; 2],
    /// The PDU being read in this raw direction is an A-ASSOCIATE-RQ: its bytes belong to the
    /// association it opens, not to one still open.
    reading_rq: [bool; 2],
    anomaly_events: u32,
    /// Flow picked up by a partial RQ-looking prefix on a non-DICOM port: the first PDU must
    /// turn out to be an A-ASSOCIATE-RQ or the flow is not DICOM after all.
    pub(crate) probation: bool,
    pub(crate) not_dicom: bool,
    /// An association ended on this flow already (later release/abort PDUs are collisions).
    ended_any: bool,
    pub(crate) pdus: u64,
}

impl Session {
    pub(crate) fn new(probation: bool) -> Self {
        Session {
            probation,
            ..Session::default()
        }
    }

    /// Capacity of the message buffers held (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.msgs
            .iter()
            .map(|m| {
                m.cmd.capacity()
                    + m.pool.capacity()
                    + m.ds
                        .as_ref()
                        .and_then(|d| d.sniff.as_ref())
                        .map_or(0, |s| s.prefix.capacity())
            })
            .sum()
    }

    /// The flow is given up: say why (every give-up is an anomaly event).
    pub(crate) fn give_up(&mut self, ctx: &mut Ctx<'_>, why: fmt::Arguments<'_>) {
        self.anomaly(ctx, DicomAnomaly::GiveUp, why);
    }

    /// The memory budget refused a buffer: report it with the budget's state.
    pub(crate) fn budget_refused(&mut self, ctx: &mut Ctx<'_>, what: fmt::Arguments<'_>) {
        let detail = ctx.budget_detail(what);
        self.anomaly(ctx, DicomAnomaly::MemoryBudget, format_args!("{detail}"));
    }

    fn swapped(&self) -> bool {
        self.assoc.as_ref().is_some_and(|a| a.swapped)
    }

    fn anomaly(&mut self, ctx: &mut Ctx<'_>, name: DicomAnomaly, detail: fmt::Arguments<'_>) {
        let swapped = self.swapped();
        ctx.anomaly(&mut self.anomaly_events, swapped, name, detail);
    }

    /// Bytes lost in `raw`.
    pub(crate) fn gap(&mut self, ctx: &mut Ctx<'_>, raw: Direction, len: u64) {
        ctx.stats.gap_bytes += len;
        if let Some(a) = self.assoc.as_mut() {
            let d = a.norm(raw);
            let by_dir = at_mut(&mut a.gap_bytes_by_dir, d);
            *by_dir = by_dir.saturating_add(len);
            a.gaps = a.gaps.saturating_add(1);
            a.lossless = false;
            // A request in progress may have lost part of its data set, or of its responses
            // (C-FIND matches, C-MOVE progress), in this hole: it is marked, conservatively.
            for p in &mut a.pending {
                p.incomplete = true;
            }
        }
    }

    /// Start an association the capture did not see begin.
    fn implicit(&mut self, ctx: &Ctx<'_>, swapped: bool) {
        let mut a = Association::new(ctx.ts, swapped);
        for raw in [Direction::ToServer, Direction::ToClient] {
            let d = a.norm(raw);
            *at_mut(&mut a.bytes, d) += std::mem::take(at_mut(&mut self.loose_bytes, raw));
        }
        self.assoc = Some(a);
    }

    /// End the open association (if any): flush partial data sets, emit requests still
    /// pending without status, then the association itself.
    pub(crate) fn end_association(&mut self, ctx: &mut Ctx<'_>, ending: Ending) {
        for raw in [Direction::ToServer, Direction::ToClient] {
            self.drop_partial(ctx, raw);
        }
        let Some(mut a) = self.assoc.take() else {
            return;
        };
        // Responses whose request never came were answered before anything still pending.
        for ev in std::mem::take(&mut a.answered_early) {
            dimse::settle_early(ctx, &mut self.anomaly_events, &mut a, ev);
        }
        for mut ev in std::mem::take(&mut a.pending) {
            // Unanswered on an association that lost bytes: its response may have been in a
            // gap declared before the request was delivered (the request's own direction held
            // behind a hole), which marked only the commands pending then.
            ev.incomplete |= a.gaps > 0;
            ctx.events.push(event::command_event(ctx.ts, ctx.meta, &a, ev));
        }
        if a.pdata_before_ac && !a.accepted {
            self.anomaly(
                ctx,
                DicomAnomaly::UnexpectedPdu,
                format_args!("P-DATA-TF before A-ASSOCIATE-AC, and no A-ASSOCIATE-AC came"),
            );
        }
        if ctx.meta.handshake_seen && !a.request_seen && !a.accepted && a.commands == 0 && a.gap_bytes() == 0 {
            // The whole connection was captured and no request ever came: not a mid-stream
            // pickup but a client that did not speak DICOM (a scanner's probe, typically).
            self.anomaly(
                ctx,
                DicomAnomaly::NoAssociateRequest,
                format_args!(
                    "connection seen from its start; the client sent no A-ASSOCIATE-RQ, the association ended {}",
                    ending.outcome.as_str()
                ),
            );
        }
        ctx.events.push(event::association_event(ctx.ts, ctx.meta, &a, ending));
        ctx.stats.associations += 1;
        self.ended_any = true;
    }

    /// The flow ended (PS3.8 gives no outcome for this; CONTRACT §2 does).
    pub(crate) fn flow_end(&mut self, ctx: &mut Ctx<'_>, outcome: AssociationOutcome) {
        let ending = match &self.assoc {
            Some(a) if a.released_early => Ending::plain(AssociationOutcome::Released),
            Some(a) if a.refusal_lost() => Ending::refusal_lost(),
            _ => Ending::plain(outcome),
        };
        self.end_association(ctx, ending);
    }

    /// Partial message state of `raw` is lost: drop the command, close the data set.
    fn drop_partial(&mut self, ctx: &mut Ctx<'_>, raw: Direction) {
        let m = at_mut(&mut self.msgs, raw);
        m.cmd_active = false;
        m.cmd_cut = false;
        m.cmd.clear();
        self.finish_dataset(ctx, raw);
    }

    // ---- control PDUs -------------------------------------------------------------------

    /// The first bytes of a control PDU that could not be held whole (over the cap, refused by
    /// the memory budget, or cut by a capture gap or the snaplen): an A-ASSOCIATE-RQ still
    /// opens its association with the AE titles (and whatever user identity) its fixed fields
    /// and first items give, and an A-ASSOCIATE-AC still accepts it.
    ///
    /// Why from 42 bytes: the AE titles end at PS3.8 §9.3.2 byte 42, and a header-only capture
    /// (snaplen 128 with TCP timestamps leaves 62 bytes a frame) holds them but not the 74-byte
    /// fixed part. The PDU type alone says an AC accepted (PS3.8 §9.3.3); which presentation
    /// contexts it accepted is unknown then.
    pub(crate) fn control_prefix(&mut self, ctx: &mut Ctx<'_>, raw: Direction, prefix: &[u8]) {
        let version = prefix.get(6..8);
        if self.probation && version != Some(&[0, 1][..]) {
            // Picked up on a partial RQ-looking prefix off the DICOM ports, and the protocol
            // version (PS3.8 §9.3.2 bytes 7-8) is not 0001H: not DICOM after all.
            self.not_dicom = true;
            return;
        }
        match prefix.first().map(|&t| PduType(t)) {
            Some(PduType::ASSOCIATE_RQ) if prefix.len() >= PDU_HEADER_LEN + ASSOCIATE_AE_TITLES_END => {
                if let Some(ParsedControl {
                    pdu: ControlPdu::AssociateRq(rq),
                    ..
                }) = parse_control_pdu(prefix)
                {
                    self.on_associate_rq(ctx, raw, rq);
                    if let Some(a) = self.assoc.as_mut() {
                        // Its variable items (presentation contexts, maximum length) are unknown.
                        a.lossless = false;
                    }
                }
            }
            // Its protocol version, when captured, must be 0001H (PS3.8 §9.3.3 bytes 7-8).
            Some(PduType::ASSOCIATE_AC) if version.is_none_or(|v| v == [0, 1]) => {
                let answers_a_request = self.assoc.as_ref().is_some_and(|a| !a.accepted);
                self.on_associate_ac(ctx, raw, AssociateAc::default());
                if let Some(a) = self.assoc.as_mut().filter(|_| answers_a_request) {
                    a.lossless = false;
                }
            }
            _ => {}
        }
    }

    fn control_pdu(&mut self, ctx: &mut Ctx<'_>, raw: Direction, pdu: &[u8]) {
        let Some(parsed) = parse_control_pdu(pdu) else {
            return;
        };
        let is_associate = matches!(
            parsed.pdu,
            ControlPdu::AssociateRq(_) | ControlPdu::AssociateAc(_) | ControlPdu::AssociateRj { .. }
        );
        if let Some(why) = &parsed.malformed {
            if self.probation {
                self.not_dicom = true;
                return;
            }
            let name = if is_associate {
                DicomAnomaly::MalformedAssociate
            } else {
                DicomAnomaly::MalformedPdu
            };
            self.anomaly(ctx, name, format_args!("{why}"));
        }
        match parsed.pdu {
            ControlPdu::AssociateRq(rq) => self.on_associate_rq(ctx, raw, rq),
            ControlPdu::AssociateAc(ac) => self.on_associate_ac(ctx, raw, ac),
            ControlPdu::AssociateRj { result, source, reason } => {
                let ending = Ending {
                    outcome: AssociationOutcome::Rejected,
                    reject: Some(AssociationReject { result, source, reason }),
                    reject_inferred: false,
                    abort: None,
                };
                match &self.assoc {
                    Some(a) if !a.accepted => self.end_association(ctx, ending),
                    None if !self.ended_any => {
                        self.implicit(ctx, raw == Direction::ToServer);
                        self.end_association(ctx, ending);
                    }
                    _ => self.anomaly(ctx, DicomAnomaly::UnexpectedPdu, format_args!("A-ASSOCIATE-RJ")),
                }
            }
            ControlPdu::ReleaseRq => match self.assoc.as_mut() {
                Some(a) if a.released_early => self.end_association(ctx, Ending::plain(AssociationOutcome::Released)),
                Some(a) => a.release_requested = true,
                None if !self.ended_any => self.implicit(ctx, false),
                None => {}
            },
            ControlPdu::ReleaseRp => match self.assoc.as_mut() {
                // The answer before its request: wait for the request (or the connection's end).
                // Also on an association whose A-ASSOCIATE-RQ was not seen (lost, or before the
                // capture): the requester's bytes still behind a hole the reassembler keeps open
                // (its last commands, then its A-RELEASE-RQ) come after the RP, and ending here
                // split them off as "P-DATA-TF after the association ended" (a C-MOVE counted
                // twice with 10% of move20's frames dropped).
                Some(a) if !a.release_requested && !a.released_early => a.released_early = true,
                _ => self.end_by_peer(ctx, Ending::plain(AssociationOutcome::Released)),
            },
            ControlPdu::Abort { source, reason } => self.end_by_peer(
                ctx,
                Ending {
                    outcome: AssociationOutcome::Aborted,
                    reject: None,
                    abort: Some(AssociationAbort { source, reason }),
                    reject_inferred: false,
                },
            ),
        }
    }

    /// A-RELEASE-RP / A-ABORT. After an association ended they are release collisions
    /// (PS3.8 §7.2, both sides answer) or a trailing abort: nothing more to report.
    fn end_by_peer(&mut self, ctx: &mut Ctx<'_>, ending: Ending) {
        if self.assoc.is_none() {
            if self.ended_any {
                return;
            }
            self.implicit(ctx, false);
        }
        self.end_association(ctx, ending);
    }

    fn on_associate_rq(&mut self, ctx: &mut Ctx<'_>, raw: Direction, rq: AssociateRq) {
        if self.probation {
            self.probation = false;
        }
        if let Some(a) = self.assoc.as_mut() {
            // The acceptor's A-ASSOCIATE-AC came first and nothing else yet: a SPAN port that
            // delivers the requester's side late (its two directions queue apart) shows the
            // answer before the request. That is one association: the RQ fills in what the AC
            // could not say (AE titles, identity, abstract syntaxes).
            if !a.request_seen && a.accepted && a.commands == 0 && a.norm(raw) == Direction::ToServer {
                merge_late_rq(a, rq);
                for r in [Direction::ToServer, Direction::ToClient] {
                    let d = a.norm(r);
                    *at_mut(&mut a.bytes, d) += std::mem::take(at_mut(&mut self.loose_bytes, r));
                }
                *at_mut(&mut self.reading_rq, raw) = false;
                return;
            }
        }
        if let Some(old) = &self.assoc {
            // A new RQ on a connection whose association never ended (PS3.8 §9.1.1: one
            // association per connection). If we saw the old one begin, that is a protocol
            // violation; if not, we simply missed its end.
            if old.request_seen {
                self.anomaly(
                    ctx,
                    DicomAnomaly::UnexpectedPdu,
                    format_args!("A-ASSOCIATE-RQ inside an open association"),
                );
            }
            self.end_association(ctx, Ending::plain(AssociationOutcome::Incomplete));
        }
        for m in &mut self.msgs {
            m.cmd_active = false;
            m.cmd.clear();
            m.ds = None;
        }
        let mut a = Association::new(ctx.ts, raw == Direction::ToClient);
        for r in [Direction::ToServer, Direction::ToClient] {
            let d = a.norm(r);
            *at_mut(&mut a.bytes, d) += std::mem::take(at_mut(&mut self.loose_bytes, r));
        }
        a.request_seen = true;
        a.lossless = true;
        // The rest of this RQ (when only its first bytes were held) belongs to it.
        *at_mut(&mut self.reading_rq, raw) = false;
        a.calling_ae = rq.calling_ae;
        a.called_ae = rq.called_ae;
        a.identity = rq.user_identity;
        a.implementation_class_uid = rq.implementation_class_uid;
        a.implementation_version_name = rq.implementation_version_name;
        a.max_pdu_length = rq.max_pdu_length;
        a.contexts = rq
            .contexts
            .into_iter()
            .map(|pc| PresContext {
                id: pc.id,
                abstract_syntax: pc.abstract_syntax,
                accepted: false,
                ts: None,
            })
            .collect();
        self.assoc = Some(a);
    }

    fn on_associate_ac(&mut self, ctx: &mut Ctx<'_>, raw: Direction, ac: AssociateAc) {
        match &self.assoc {
            None if !self.ended_any => self.implicit(ctx, raw == Direction::ToServer),
            Some(a) if !a.accepted => {
                if a.request_seen && a.norm(raw) != Direction::ToClient {
                    self.anomaly(
                        ctx,
                        DicomAnomaly::UnexpectedPdu,
                        format_args!("A-ASSOCIATE-AC from the requester"),
                    );
                }
            }
            _ => {
                self.anomaly(ctx, DicomAnomaly::UnexpectedPdu, format_args!("A-ASSOCIATE-AC"));
                return;
            }
        }
        let Some(a) = self.assoc.as_mut() else {
            return;
        };
        a.accepted = true;
        if a.request_seen {
            // Detection's signal that the login succeeded at this packet (internal, never
            // written; the `association` event still comes at the end).
            ctx.events.push(event::accepted_event(ctx.ts, ctx.meta, a));
        }
        a.identity_response = ac.user_identity_response;
        a.ac_max_pdu_length = ac.max_pdu_length;
        for r in ac.contexts {
            // PS3.8 §9.3.3.2: result 0 = acceptance; the transfer syntax is only significant then.
            let accepted = r.result == 0;
            let ts = accepted.then(|| TransferSyntax::from_uid(&r.transfer_syntax));
            match a.contexts.iter().position(|pc| pc.id == r.id) {
                Some(i) => {
                    if let Some(pc) = a.contexts.get_mut(i) {
                        pc.accepted = accepted;
                        pc.ts = ts;
                    }
                }
                None if a.contexts.len() < MAX_PRESENTATION_CONTEXTS => a.contexts.push(PresContext {
                    id: r.id,
                    abstract_syntax: String::new(),
                    accepted,
                    ts,
                }),
                None => {}
            }
        }
    }

    // ---- P-DATA ---------------------------------------------------------------------------

    fn pdv_begin(&mut self, ctx: &mut Ctx<'_>, raw: Direction, pdv: &PdvHeader) {
        if pdv.is_command() {
            if at_mut(&mut self.msgs, raw).ds.is_some() {
                // The previous data set never had its last fragment.
                self.finish_dataset(ctx, raw);
            }
            let m = at_mut(&mut self.msgs, raw);
            if !m.cmd_active {
                m.cmd.clear();
                m.cmd_active = true;
                m.cmd_overflow = false;
                m.cmd_cut = false;
                m.cmd_context = pdv.context_id;
            }
            return;
        }
        if at_mut(&mut self.msgs, raw).cmd_active {
            let m = at_mut(&mut self.msgs, raw);
            m.cmd_active = false;
            m.cmd.clear();
            self.anomaly(
                ctx,
                DicomAnomaly::MalformedCommand,
                format_args!("data set fragment inside a command"),
            );
        }
        let ts = self
            .assoc
            .as_ref()
            .and_then(|a| a.context(pdv.context_id))
            .and_then(|pc| pc.ts);
        let m = at_mut(&mut self.msgs, raw);
        let ds = m.ds.get_or_insert(DatasetProgress {
            target: Target::Orphan,
            bytes: 0,
            lost: 0,
            sniff: None,
        });
        if let Some(s) = ds.sniff.as_mut() {
            if !s.ts_set {
                s.ts = ts;
                s.ts_set = true;
            }
        }
    }

    fn pdv_data(&mut self, ctx: &mut Ctx<'_>, raw: Direction, pdv: &PdvHeader, bytes: &[u8]) {
        let m = at_mut(&mut self.msgs, raw);
        if pdv.is_command() {
            if !m.cmd_active || m.cmd_overflow || m.cmd_cut {
                return;
            }
            if m.cmd.len().saturating_add(bytes.len()) > ctx.cfg.max_command_bytes {
                m.cmd_overflow = true;
                m.cmd = Vec::new();
                let cap = ctx.cfg.max_command_bytes;
                self.anomaly(
                    ctx,
                    DicomAnomaly::CommandTooLarge,
                    format_args!("command set over {cap} bytes"),
                );
                return;
            }
            if !ctx.reserve(&mut m.cmd, bytes.len()) {
                m.cmd_overflow = true;
                m.cmd = Vec::new();
                let n = bytes.len();
                self.budget_refused(ctx, format_args!("command set fragment of {n} bytes"));
                return;
            }
            m.cmd.extend_from_slice(bytes);
            return;
        }
        // Data set payload: the hot path of a C-STORE. Once the sniff is over this is two
        // additions per chunk, whatever the size of the data set.
        let Some(ds) = m.ds.as_mut() else {
            return;
        };
        ds.bytes = ds.bytes.saturating_add(bytes.len() as u64);
        let Some(sniff) = ds.sniff.as_mut() else {
            ctx.stats.dataset_bytes_skipped += bytes.len() as u64;
            return;
        };
        let mut refused = false;
        let (kept, facts) = sniff.feed(ctx, bytes, ctx.cfg.dataset_prefix_bytes, &mut refused);
        ctx.stats.dataset_bytes_skipped += (bytes.len() - kept.min(bytes.len())) as u64;
        if refused {
            self.budget_refused(ctx, format_args!("data set prefix for the study sniff"));
        }
        let m = at_mut(&mut self.msgs, raw);
        let Some(ds) = m.ds.as_mut() else {
            return;
        };
        if let Some(facts) = facts {
            if let Some(sn) = ds.sniff.take() {
                recycle(&mut m.pool, sn.prefix);
            }
            let key = match ds.target {
                Target::Request(key) => Some(key),
                _ => None,
            };
            self.apply_facts(key, facts);
        }
    }

    fn pdv_gap(&mut self, ctx: &mut Ctx<'_>, raw: Direction, pdv: &PdvHeader, len: u64) {
        let m = at_mut(&mut self.msgs, raw);
        if pdv.is_command() {
            m.cmd_cut |= m.cmd_active;
            return;
        }
        let Some(ds) = m.ds.as_mut() else {
            return;
        };
        ds.lost = ds.lost.saturating_add(len);
        // The prefix cannot grow past a hole: sniff what we have and stop.
        if let Some(sn) = ds.sniff.take() {
            let facts = sn.finish(ctx.cfg.dataset_prefix_bytes);
            recycle(&mut m.pool, sn.prefix);
            let key = match ds.target {
                Target::Request(key) => Some(key),
                _ => None,
            };
            self.apply_facts(key, facts);
        }
    }

    fn pdv_end(&mut self, ctx: &mut Ctx<'_>, raw: Direction, pdv: &PdvHeader) {
        if !pdv.is_last() {
            return;
        }
        if !pdv.is_command() {
            self.finish_dataset(ctx, raw);
            return;
        }
        let m = at_mut(&mut self.msgs, raw);
        if !m.cmd_active {
            return;
        }
        m.cmd_active = false;
        if m.cmd_overflow {
            m.cmd_overflow = false;
            return;
        }
        let buf = std::mem::take(&mut m.cmd);
        let context = m.cmd_context;
        let cut = std::mem::take(&mut m.cmd_cut);
        match parse_command_set(&buf) {
            Ok(cmd) => {
                // A set cut by a hole ends in a truncated element: expected, not malformed.
                match cmd.irregular {
                    Some(MalformedCommand::Truncated { .. }) if cut => {}
                    Some(why) => self.anomaly(ctx, DicomAnomaly::MalformedCommand, format_args!("{why}")),
                    None => {}
                }
                self.on_command(ctx, raw, &cmd, context, cut);
            }
            // Cut before its Command Field: nothing to report beyond the gap itself.
            Err(_) if cut => {}
            Err(why) => self.anomaly(ctx, DicomAnomaly::MalformedCommand, format_args!("{why}")),
        }
        let m = at_mut(&mut self.msgs, raw);
        m.cmd = buf;
        m.cmd.clear();
    }

    /// Close the data set in progress in `raw`: final sniff, bytes to their command, and the
    /// deferred emission of a final response that carried a data set.
    fn finish_dataset(&mut self, ctx: &mut Ctx<'_>, raw: Direction) {
        let m = at_mut(&mut self.msgs, raw);
        let Some(mut ds) = m.ds.take() else {
            return;
        };
        let key = match ds.target {
            Target::Request(key) => Some(key),
            _ => None,
        };
        if let Some(sn) = ds.sniff.take() {
            let facts = sn.finish(ctx.cfg.dataset_prefix_bytes);
            recycle(&mut m.pool, sn.prefix);
            self.apply_facts(key, facts);
        }
        let Some(a) = self.assoc.as_mut() else {
            return;
        };
        match ds.target {
            Target::Request(key) | Target::Response(key) => {
                let Some(i) = a.pending_index(key) else { return };
                if let Some(p) = a.pending.get_mut(i) {
                    p.dataset_bytes = p.dataset_bytes.saturating_add(ds.bytes);
                    p.lost_bytes = p.lost_bytes.saturating_add(ds.lost);
                    p.incomplete |= ds.lost > 0;
                }
                // A request whose final response came first (`answered_early`): complete now.
                let answered = a
                    .pending
                    .get(i)
                    .is_some_and(|p| matches!(ds.target, Target::Request(_)) && event::has_final_status(p));
                if answered {
                    let ev = a.pending.remove(i);
                    ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, ev));
                }
            }
            Target::Final(mut ev) => {
                ev.dataset_bytes = ev.dataset_bytes.saturating_add(ds.bytes);
                ev.lost_bytes = ev.lost_bytes.saturating_add(ds.lost);
                ev.incomplete |= ds.lost > 0;
                ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, *ev));
            }
            Target::Orphan => {}
        }
    }

    fn apply_facts(&mut self, key: Option<Key>, facts: DatasetFacts) {
        let (Some(key), Some(a)) = (key, self.assoc.as_mut()) else {
            return;
        };
        let Some(p) = a.pending_index(key).and_then(|i| a.pending.get_mut(i)) else {
            return;
        };
        if !facts.study_instance_uids.is_empty() {
            p.study_instance_uids = facts.study_instance_uids;
        }
        if facts.modality.is_some() {
            p.modality = facts.modality;
        }
        if facts.query_level.is_some() {
            p.query_level = facts.query_level;
        }
        if p.sop_instance_uid.is_none() {
            p.sop_instance_uid = facts.sop_instance_uid;
        }
    }
}

/// An A-ASSOCIATE-RQ seen after the A-ASSOCIATE-AC that answered it, folded into the
/// association the AC started: the RQ's fields, and the abstract syntax of each context the AC
/// already accepted or refused (matched by presentation context id, PS3.8 §9.3.2.2 / §9.3.3.2).
fn merge_late_rq(a: &mut Association, rq: AssociateRq) {
    a.request_seen = true;
    a.calling_ae = rq.calling_ae;
    a.called_ae = rq.called_ae;
    a.identity = rq.user_identity;
    a.implementation_class_uid = rq.implementation_class_uid;
    a.implementation_version_name = rq.implementation_version_name;
    a.max_pdu_length = rq.max_pdu_length;
    for pc in rq.contexts {
        let known = a.contexts.len();
        match a.contexts.iter_mut().find(|c| c.id == pc.id) {
            Some(c) => c.abstract_syntax = pc.abstract_syntax,
            None if known < MAX_PRESENTATION_CONTEXTS => a.contexts.push(PresContext {
                id: pc.id,
                abstract_syntax: pc.abstract_syntax,
                accepted: false,
                ts: None,
            }),
            None => {}
        }
    }
}
