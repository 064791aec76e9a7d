//! DIMSE request/response pairing on an association (PS3.7 §9.3, §10.3): a request opens a
//! pending command, its final response (or the association's end) emits the `command` event.

use super::sniff::{Sniffer, FIRST_SNIFF_AT};
use super::{at_mut, event, Ctx, DatasetProgress, Session, Target};
use crate::dicom::association::Association;
use crate::dicom::command::{CommandField, CommandSet};
use crate::dicom::DicomAnomaly;
use pacstap_core::{DicomCommand, Direction, StatusClass};

impl Session {
    /// `cut`: the command set was cut by a capture gap (`Assembly::cmd_cut`); `cmd` holds the
    /// elements before the hole, and the command is reported incomplete.
    pub(super) fn on_command(
        &mut self,
        ctx: &mut Ctx<'_>,
        raw: Direction,
        cmd: &CommandSet<'_>,
        context: u8,
        cut: bool,
    ) {
        if self.assoc.is_none() {
            if self.ended_any {
                self.anomaly(
                    ctx,
                    DicomAnomaly::UnexpectedPdu,
                    format_args!("P-DATA-TF after the association ended"),
                );
            }
            self.implicit(ctx, false);
        }
        if let Some(a) = self.assoc.as_mut().filter(|a| a.request_seen && !a.accepted) {
            // Reported at the association's end if the A-ASSOCIATE-AC never comes (a mirror
            // delivers the acceptor's side late often enough).
            a.pdata_before_ac = true;
        }
        // Picked up mid-association: a DIMSE command is only ever sent on an established
        // association (PS3.8 §7.1.1), so it proves the A-ASSOCIATE-AC we did not see.
        if let Some(a) = self.assoc.as_mut().filter(|a| !a.request_seen) {
            a.accepted = true;
        }
        let field = cmd.field();
        if field.is_response() {
            self.on_response(ctx, raw, cmd, cut);
        } else {
            self.on_request(ctx, raw, cmd, context, cut);
        }
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, raw: Direction, cmd: &CommandSet<'_>, context: u8, cut: bool) {
        let cap = ctx.cfg.max_pending_commands;
        let Some(a) = self.assoc.as_mut() else {
            return;
        };
        let dir = a.norm(raw);
        a.commands += 1;
        ctx.stats.commands += 1;
        let mut ev = event::new_command(
            cmd,
            dir,
            ctx.ts,
            a.context(context).map(|pc| pc.abstract_syntax.as_str()),
        );
        ev.incomplete = cut;
        // A cut set may have lost its Command Data Set Type; these requests always carry a
        // data set (PS3.4 C.4, PS3.7 §9.3.1-9.3.4: the object, or the identifier).
        let with_data =
            cmd.has_data_set() || (cut && cmd.data_set_type.is_none() && cmd.field().request_carries_data_set());
        if cmd.command_field == CommandField::C_CANCEL || (cut && cmd.message_id.is_none()) {
            // PS3.7 §9.3.2.3: C-CANCEL has no response; it names the request it cancels. A
            // request cut before its Message ID cannot be paired with its response: reported
            // as it is.
            if cmd.command_field == CommandField::C_CANCEL {
                ev.message_id = cmd.message_id_responded_to.or(cmd.message_id).unwrap_or(0);
            }
            ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, ev));
            return;
        }
        let key = (dir, ev.message_id);
        if let Some(i) = a.pending_index(key) {
            // Message id reused before the answer: the old request will never be matched.
            let old = a.pending.remove(i);
            ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, old));
        }
        let mut evicted = false;
        while a.pending.len() >= cap.max(1) {
            let old = a.pending.remove(0);
            ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, old));
            evicted = true;
        }
        if let Some(i) = a.answered_early.iter().position(|e| (e.direction, e.message_id) == key) {
            // Its final response came first (after a gap): one command with both.
            let early = a.answered_early.remove(i);
            event::answer_with(&mut ev, early);
            if !with_data {
                ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, ev));
                return;
            }
            // Emitted once its data set (the identifier with the study) has been read.
        }
        a.pending.push(ev);
        if with_data {
            let m = at_mut(&mut self.msgs, raw);
            let prefix = std::mem::take(&mut m.pool);
            m.ds = Some(DatasetProgress {
                target: Target::Request(key),
                bytes: 0,
                lost: 0,
                sniff: Some(Sniffer {
                    ts: None,
                    ts_set: false,
                    prefix,
                    next_try: FIRST_SNIFF_AT,
                }),
            });
        }
        if evicted {
            self.anomaly(
                ctx,
                DicomAnomaly::TooManyPending,
                format_args!("more than {cap} requests awaiting a response"),
            );
        }
    }

    fn on_response(&mut self, ctx: &mut Ctx<'_>, raw: Direction, cmd: &CommandSet<'_>, cut: bool) {
        let Some(a) = self.assoc.as_mut() else {
            return;
        };
        if cut && cmd.message_id_responded_to.is_none() {
            // Cut before the Message ID Being Responded To: which request it answers is unknown.
            return;
        }
        let key = (a.norm(raw).reverse(), cmd.message_id_responded_to.unwrap_or(0));
        // PS3.7 §C: FF00H/FF01H are pending; anything else (or no status at all) is final. A
        // set cut before its Status is final only for commands that have no pending responses
        // (PS3.7 §9.3: only C-FIND, C-GET and C-MOVE have them); for those it is taken as
        // pending, and the request is reported without its status at the association's end.
        let is_final = match cmd.status {
            None if cut => !cmd.field().may_answer_pending(),
            status => !matches!(status.map(StatusClass::of), Some(StatusClass::Pending)),
        };
        let target = match a.pending_index(key) {
            Some(i) => {
                if let Some(p) = a.pending.get_mut(i) {
                    event::apply_response(p, cmd, ctx.ts, is_final);
                    p.incomplete |= cut;
                }
                if !is_final {
                    Target::Response(key)
                } else {
                    let ev = a.pending.remove(i);
                    if cmd.has_data_set() {
                        Target::Final(Box::new(ev))
                    } else {
                        ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, ev));
                        Target::Orphan
                    }
                }
            }
            None if is_final && (a.gaps > 0 || !cmd.has_data_set()) => {
                // Its request fell in a capture gap, or is still behind one: a SPAN port's
                // hole is kept open a while (ACK before data), and the response can be
                // delivered before the request bytes that follow the hole, which is declared a
                // gap only when the wait ends. Built from what the response tells (command,
                // SOP class/instance, status, sub-operations); incomplete once bytes were lost,
                // complete if its request still comes and none was (a late mirror). A response
                // with a data set comes only after a gap here (the arm's condition).
                let mut ev = event::new_command(cmd, key.0, ctx.ts, None);
                ev.message_id = key.1;
                ev.incomplete = a.gaps > 0 || cut;
                event::apply_response(&mut ev, cmd, ctx.ts, true);
                if cmd.has_data_set() {
                    a.commands += 1;
                    ctx.stats.commands += 1;
                    Target::Final(Box::new(ev))
                } else {
                    // Its request may still come: reported once then, with both (else a C-MOVE
                    // counted twice: once from its response, once from its request without
                    // one); otherwise decided when it can wait no longer (`settle_early`).
                    // Bounded with the pending requests.
                    let cap = ctx.cfg.max_pending_commands.max(1);
                    while !a.answered_early.is_empty() && a.pending.len() + a.answered_early.len() >= cap {
                        let old = a.answered_early.remove(0);
                        settle_early(ctx, &mut self.anomaly_events, a, old);
                    }
                    a.answered_early.push(ev);
                    Target::Orphan
                }
            }
            None => {
                if a.lossless {
                    let (name, id) = (crate::dicom::command::command_name(cmd.command_field), key.1);
                    self.anomaly(
                        ctx,
                        DicomAnomaly::ResponseWithoutRequest,
                        format_args!("{name} response to message {id}"),
                    );
                }
                Target::Orphan
            }
        };
        if cmd.has_data_set() {
            at_mut(&mut self.msgs, raw).ds = Some(DatasetProgress {
                target,
                bytes: 0,
                lost: 0,
                sniff: None,
            });
        }
    }
}

/// A final response whose request never came (`Association::answered_early`), decided when it
/// can wait no longer: at the association's end, or when the pending cap needs its room. After a
/// capture gap its request fell in the gap: it is reported as a command with what the response
/// tells, marked incomplete. On an association that lost nothing, it answered nothing
/// (`dicom.response_without_request`, as when no request could be behind a hole). Picked up
/// mid-stream, its request came before the capture: dropped, as before.
pub(super) fn settle_early(ctx: &mut Ctx<'_>, emitted: &mut u32, a: &mut Association, mut ev: DicomCommand) {
    if a.gaps > 0 {
        ev.incomplete = true;
        a.commands += 1;
        ctx.stats.commands += 1;
        ctx.events.push(event::command_event(ctx.ts, ctx.meta, a, ev));
    } else if a.lossless {
        ctx.anomaly(
            emitted,
            a.swapped,
            DicomAnomaly::ResponseWithoutRequest,
            format_args!("{} response to message {}", ev.command, ev.message_id),
        );
    }
}
