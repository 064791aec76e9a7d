//! The [`PduSink`] of a [`Session`]: what the per-direction walker finds, turned into session
//! calls, with the byte counts (bytes seen on the wire) and the negotiated maximum PDU check.

use super::{at, at_mut, Ctx, Session};
use crate::dicom::parser::{PduHeader, PduType, PdvHeader, ASSOCIATE_FIXED_LEN};
use crate::dicom::stream::PduSink;
use crate::dicom::DicomAnomaly;
use pacstap_core::Direction;
use std::fmt;

/// The [`PduSink`] for one direction of a [`Session`].
pub(crate) struct SessionSink<'s, 'c> {
    pub session: &'s mut Session,
    pub ctx: &'s mut Ctx<'c>,
    pub raw: Direction,
}

impl SessionSink<'_, '_> {
    /// PS3.8 §D.1: a P-DATA-TF's variable field may not exceed the receiver's Maximum Length
    /// (0: no maximum). Reported once per direction and association; decoding goes on.
    fn check_negotiated_max(&mut self, length: u32) {
        let Some(a) = self.session.assoc.as_mut() else {
            return;
        };
        let d = a.norm(self.raw);
        // To the acceptor: its own maximum (from the AC); to the requester: the RQ's.
        let limit = match d {
            Direction::ToServer => a.ac_max_pdu_length,
            Direction::ToClient => a.max_pdu_length,
        };
        let Some(limit) = limit.filter(|&l| l > 0 && length > l) else {
            return;
        };
        let reported = at_mut(&mut a.over_max_reported, d);
        if std::mem::replace(reported, true) {
            return;
        }
        self.session.anomaly(
            self.ctx,
            DicomAnomaly::PduAboveNegotiatedMax,
            format_args!("P-DATA-TF of {length} bytes above the negotiated maximum of {limit}"),
        );
    }
}

impl PduSink for SessionSink<'_, '_> {
    fn pdu_header(&mut self, h: &PduHeader) -> bool {
        let s = &mut *self.session;
        if s.probation
            && !(h.pdu_type == PduType::ASSOCIATE_RQ && h.reserved == 0 && h.length as usize >= ASSOCIATE_FIXED_LEN)
        {
            s.not_dicom = true;
            return false;
        }
        if s.pdus == 0 {
            self.ctx.stats.dicom_flows += 1;
        }
        s.pdus += 1;
        self.ctx.stats.pdus += 1;
        *at_mut(&mut s.reading_rq, self.raw) = h.pdu_type == PduType::ASSOCIATE_RQ;
        if h.pdu_type == PduType::P_DATA_TF {
            self.check_negotiated_max(h.length);
        }
        true
    }

    fn wire(&mut self, n: u64) {
        let s = &mut *self.session;
        match s.assoc.as_mut() {
            Some(a) if !*at(&s.reading_rq, self.raw) => {
                let d = a.norm(self.raw);
                let b = at_mut(&mut a.bytes, d);
                *b = b.saturating_add(n);
            }
            _ => {
                let b = at_mut(&mut s.loose_bytes, self.raw);
                *b = b.saturating_add(n);
            }
        }
    }

    fn control_prefix(&mut self, prefix: &[u8]) {
        self.session.control_prefix(self.ctx, self.raw, prefix);
    }

    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        self.ctx.reserve(buf, more)
    }

    fn budget_refused(&mut self, what: fmt::Arguments<'_>) {
        self.session.budget_refused(self.ctx, what);
    }

    fn control_pdu(&mut self, pdu: &[u8]) {
        self.session.control_pdu(self.ctx, self.raw, pdu);
    }

    fn pdv_begin(&mut self, pdv: &PdvHeader) {
        self.session.pdv_begin(self.ctx, self.raw, pdv);
    }

    fn pdv_data(&mut self, pdv: &PdvHeader, bytes: &[u8]) {
        self.session.pdv_data(self.ctx, self.raw, pdv, bytes);
    }

    fn pdv_gap(&mut self, pdv: &PdvHeader, len: u64) {
        self.session.pdv_gap(self.ctx, self.raw, pdv, len);
    }

    fn pdv_end(&mut self, pdv: &PdvHeader) {
        self.session.pdv_end(self.ctx, self.raw, pdv);
    }

    fn lost_sync(&mut self) {
        self.session.drop_partial(self.ctx, self.raw);
        if let Some(a) = self.session.assoc.as_mut() {
            a.lossless = false;
        }
    }

    fn resynced(&mut self, skipped: u64) {
        if let Some(a) = self.session.assoc.as_mut() {
            a.lossless = false;
        }
        if skipped > 0 {
            self.session.anomaly(
                self.ctx,
                DicomAnomaly::Resync,
                format_args!("skipped {skipped} bytes to the next PDU header"),
            );
        }
    }

    fn anomaly(&mut self, name: DicomAnomaly, detail: fmt::Arguments<'_>) {
        self.session.anomaly(self.ctx, name, detail);
    }
}
