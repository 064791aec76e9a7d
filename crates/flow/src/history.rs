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
///
/// This runs for every delivered byte, so recording is one or two `memcpy`s and no division:
/// the ring position of `end` is kept (`head`) instead of being computed as `end % cap`.
#[derive(Debug)]
pub(crate) struct History {
    buf: Box<[u8]>,
    /// Stream offset just past the last byte recorded.
    end: u64,
    /// Valid bytes: `[end - len, end)`.
    len: usize,
    /// Ring position where the byte at offset `end` goes (`< buf.len()`, 0 when empty).
    head: usize,
}

impl History {
    pub fn new(cap: usize) -> Self {
        History {
            buf: vec![0; cap].into_boxed_slice(),
            end: 0,
            len: 0,
            head: 0,
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
            self.head = 0;
        }
        self.end = at.saturating_add(data.len() as u64);
        let tail = data.get(data.len().saturating_sub(cap)..).unwrap_or(&[]);
        // `tail.len() <= cap` and `head < cap`: at most one wrap.
        let first = (cap - self.head).min(tail.len());
        let (a, b) = tail.split_at(first);
        if let Some(dst) = self.buf.get_mut(self.head..self.head + first) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.buf.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.head = if b.is_empty() { self.head + first } else { b.len() };
        if self.head == cap {
            self.head = 0;
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
            // `end - off <= len <= cap`: the ring position of `off` is `head` moved back by it.
            let p = (self.head as u64 + cap - (self.end - off)) % cap;
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

    #[test]
    fn ring_position_follows_every_split_of_a_stream() {
        // Compare with a plain copy of the whole stream for every record size and cap.
        let stream: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for cap in [1usize, 3, 7, 16] {
            for step in 1..20usize {
                let mut h = History::new(cap);
                let mut at = 0;
                while at < stream.len() {
                    let to = (at + step).min(stream.len());
                    h.record(at as u64, &stream[at..to]);
                    at = to;
                    let lo = at.saturating_sub(cap);
                    assert!(!h.differs(lo as u64, &stream[lo..at]), "cap {cap} step {step} at {at}");
                    for i in lo..at {
                        let mut v = stream[lo..at].to_vec();
                        v[i - lo] ^= 0x80;
                        assert!(h.differs(lo as u64, &v), "cap {cap} step {step} byte {i}");
                    }
                    if lo > 0 {
                        let mut v = stream[lo - 1..at].to_vec();
                        v[0] ^= 0x80;
                        assert!(!h.differs(lo as u64 - 1, &v), "older than the window");
                    }
                }
            }
        }
    }
}
