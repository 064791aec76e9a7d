//! The most recently delivered bytes of one direction, to tell a conflicting retransmission of
//! delivered data from a plain one.
//!
//! The first copy of a byte is what the decoders read; a later copy that differs is either a
//! broken stack or an evasion attempt (overlapping segments with different content, read one
//! way by the tap and another by the receiver), and is reported either way. Bytes still buffered
//! are compared in `reassembly.rs`; bytes already delivered are gone from there, so this keeps
//! the last few KiB of them (`FlowConfig::delivered_history_bytes`), allocated on a direction's
//! first delivery under a global budget (`FlowConfig::delivered_history_total`).

/// A ring of the last `buf.len()` bytes delivered, ending at stream offset `end`.
#[derive(Debug)]
pub(crate) struct History {
    buf: Box<[u8]>,
    /// Stream offset just past the last byte recorded.
    end: u64,
    /// Valid bytes: `[end - len, end)`.
    len: usize,
}

impl History {
    pub fn new(cap: usize) -> Self {
        History {
            buf: vec![0; cap].into_boxed_slice(),
            end: 0,
            len: 0,
        }
    }

    /// Bytes this history holds (its allocation).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// `data` was delivered at offset `at`. A discontinuity (a gap) restarts the window.
    pub fn record(&mut self, at: u64, data: &[u8]) {
        let cap = self.buf.len();
        if cap == 0 {
            return;
        }
        if at != self.end {
            self.len = 0;
        }
        self.end = at.saturating_add(data.len() as u64);
        let tail = data.get(data.len().saturating_sub(cap)..).unwrap_or(&[]);
        let mut pos = (self.end - tail.len() as u64) % cap as u64;
        let mut rest = tail;
        while !rest.is_empty() {
            let p = usize::try_from(pos).unwrap_or(0);
            let n = (cap - p).min(rest.len());
            if let (Some(dst), Some(src)) = (self.buf.get_mut(p..p + n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            rest = rest.get(n..).unwrap_or(&[]);
            pos = 0;
        }
        self.len = (self.len + data.len()).min(cap);
    }

    /// Whether `data` (at stream offset `start`) differs from the recorded bytes where both exist.
    pub fn differs(&self, start: u64, data: &[u8]) -> bool {
        let cap = self.buf.len() as u64;
        let lo = start.max(self.end - self.len as u64);
        let hi = start.saturating_add(data.len() as u64).min(self.end);
        let mut off = lo;
        while off < hi {
            let p = off % cap;
            let n = (cap - p).min(hi - off);
            let (p, n) = (p as usize, n as usize);
            let i = (off - start) as usize;
            if self.buf.get(p..p + n) != data.get(i..i + n) {
                return true;
            }
            off += n as u64;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_across_the_ring_edge_and_compares_them() {
        let mut h = History::new(8);
        h.record(0, b"abcdef");
        h.record(6, b"ghij"); // wraps: holds "cdefghij"
        assert!(!h.differs(2, b"cdefghij"));
        assert!(!h.differs(0, b"XXcdef"), "bytes older than the window are not compared");
        assert!(h.differs(7, b"hXj"));
        assert!(!h.differs(9, b"jklm"), "bytes not delivered yet are not compared");
        h.record(20, b"xyz"); // after a gap: only what follows it
        assert!(!h.differs(5, b"QQQ"));
        assert!(h.differs(20, b"xYz"));
        let mut big = History::new(4);
        big.record(0, b"0123456789");
        assert!(!big.differs(6, b"6789"));
        assert!(big.differs(6, b"6780"));
    }
}
