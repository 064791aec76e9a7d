//! The stop-at-tag sniff of a data set's first bytes, grown under the decoder memory budget.

use super::Ctx;
use crate::dicom::dataset::{sniff_dataset, DatasetFacts, Sniff, TransferSyntax};

/// First sniff attempt after this many data set bytes; then at 2×, 4×, … up to the prefix cap,
/// so re-walking the prefix costs O(prefix) in total. 1 KiB holds (0020,000D) of most
/// C-STORE data sets and every query identifier.
pub(super) const FIRST_SNIFF_AT: usize = 1024;

/// Prefix buffers up to this capacity are kept for the next data set; larger ones (a sniff
/// that needed most of the 64 KiB prefix) are freed so idle flows stay small.
const KEEP_PREFIX_BUFFER: usize = 4 << 10;

#[derive(Debug)]
pub(super) struct Sniffer {
    /// Decided at the first data set fragment from its presentation context; `None` when the
    /// context is unknown (then guessed from the bytes).
    pub(super) ts: Option<TransferSyntax>,
    pub(super) ts_set: bool,
    pub(super) prefix: Vec<u8>,
    pub(super) next_try: usize,
}

impl Sniffer {
    fn syntax(&self, bytes: &[u8]) -> TransferSyntax {
        self.ts.unwrap_or_else(|| TransferSyntax::guess(bytes))
    }

    /// Take data set bytes. Returns how many were copied into the prefix, and the facts once
    /// the sniff is over (passed the stop tag, or the prefix cap reached).
    /// `refused` is set when the memory budget would not let the prefix grow: the sniff then
    /// ends with what it has.
    pub(super) fn feed(
        &mut self,
        ctx: &mut Ctx<'_>,
        bytes: &[u8],
        cap: usize,
        refused: &mut bool,
    ) -> (usize, Option<DatasetFacts>) {
        // Fast path: nothing buffered yet and this slice alone is worth a try: sniff in place.
        if self.prefix.is_empty() && bytes.len() >= self.next_try.min(cap) {
            let view = bytes.get(..bytes.len().min(cap)).unwrap_or_default();
            match sniff_dataset(view, self.syntax(view), cap) {
                Sniff::Done(f) => return (0, Some(f)),
                Sniff::NeedMore(f) if view.len() >= cap => return (0, Some(f)),
                Sniff::NeedMore(_) => self.next_try = view.len().saturating_mul(2).min(cap).max(1),
            }
        }
        let mut kept = 0usize;
        let mut rest = bytes;
        loop {
            let goal = self.next_try.min(cap);
            let take = goal.saturating_sub(self.prefix.len()).min(rest.len());
            if !ctx.reserve(&mut self.prefix, take) {
                *refused = true;
                return (kept, Some(self.finish(cap)));
            }
            self.prefix.extend_from_slice(rest.get(..take).unwrap_or_default());
            kept += take;
            rest = rest.get(take..).unwrap_or_default();
            if self.prefix.len() < goal {
                return (kept, None);
            }
            match sniff_dataset(&self.prefix, self.syntax(&self.prefix), cap) {
                Sniff::Done(f) => return (kept, Some(f)),
                Sniff::NeedMore(f) if self.prefix.len() >= cap => return (kept, Some(f)),
                Sniff::NeedMore(_) => self.next_try = self.next_try.saturating_mul(2).max(1),
            }
        }
    }

    /// The data set ended (or was cut by a gap): whatever the prefix says.
    pub(super) fn finish(&self, cap: usize) -> DatasetFacts {
        if self.prefix.is_empty() {
            return DatasetFacts::default();
        }
        sniff_dataset(&self.prefix, self.syntax(&self.prefix), cap).facts()
    }
}

/// Return a sniff prefix buffer to the direction's pool.
pub(super) fn recycle(pool: &mut Vec<u8>, mut prefix: Vec<u8>) {
    if prefix.capacity() <= KEEP_PREFIX_BUFFER {
        prefix.clear();
        *pool = prefix;
    }
}
