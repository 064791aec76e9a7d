//! The look-ahead carry every streaming walker needs: a fixed-size header (a DICOM PDU or PDV
//! header, a TLS record or handshake header) or the unscanned tail of a resync window may be
//! cut by a segment boundary, so its first bytes wait here for the next chunk. Written by hand
//! because it is a dozen lines over a stack array (no allocation, no input-controlled
//! indexing); each protocol used to carry its own copy.

/// Up to `N` bytes carried from one chunk to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Carry<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Carry<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Carry<N> {
    pub(crate) const fn new() -> Self {
        Carry { buf: [0; N], len: 0 }
    }

    /// The bytes carried.
    pub(crate) fn held(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Carry `bytes` instead of what was held (their first `N` when longer).
    pub(crate) fn set(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(N);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len = n;
    }

    /// Append the front of `data`, as much as fits; returns how many bytes were taken.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        let take = (N - self.len).min(data.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + take), data.get(..take)) {
            dst.copy_from_slice(src);
        }
        self.len += take;
        take
    }

    /// Complete an `n`-byte header (`n` ≤ `N`) from what is carried and the front of `data`.
    /// Returns the header once complete (the carry is then empty) and how many bytes of
    /// `data` were used; `None` means every byte of `data` was carried and more are needed.
    pub(crate) fn gather(&mut self, data: &[u8], n: usize) -> (Option<[u8; N]>, usize) {
        let n = n.min(N);
        let take = n.saturating_sub(self.len).min(data.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + take), data.get(..take)) {
            dst.copy_from_slice(src);
        }
        self.len += take;
        if self.len < n {
            return (None, take);
        }
        self.len = 0;
        // Only the header's `n` bytes: nothing of an earlier, longer carry shows behind it.
        let mut out = [0u8; N];
        if let (Some(dst), Some(src)) = (out.get_mut(..n), self.buf.get(..n)) {
            dst.copy_from_slice(src);
        }
        (Some(out), take)
    }

    /// Bytes still needed to complete an `n`-byte header.
    pub(crate) fn missing(&self, n: usize) -> usize {
        n.min(N).saturating_sub(self.len)
    }

    /// The carried bytes followed by the first bytes of `data`, `M` bytes at most: the window
    /// a resync scan needs to judge candidates that straddle the chunk boundary. Returns the
    /// window and its length.
    pub(crate) fn joined<const M: usize>(&self, data: &[u8]) -> ([u8; M], usize) {
        let mut win = [0u8; M];
        let k = self.len.min(M);
        let extra = data.len().min(M - k);
        if let (Some(dst), Some(src)) = (win.get_mut(..k), self.buf.get(..k)) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (win.get_mut(k..k + extra), data.get(..extra)) {
            dst.copy_from_slice(src);
        }
        (win, k + extra)
    }
}

#[cfg(test)]
mod tests {
    use super::Carry;

    #[test]
    fn gathers_a_header_at_every_split() {
        let header = [1u8, 2, 3, 4, 5, 6];
        for cut in 0..=header.len() {
            let mut c = Carry::<6>::new();
            let (first, rest) = header.split_at(cut);
            let (done, used) = c.gather(first, 6);
            assert_eq!(used, first.len());
            if cut < 6 {
                assert_eq!(done, None);
                assert_eq!(c.held(), first);
                assert_eq!(c.missing(6), 6 - cut);
                let mut tail = rest.to_vec();
                tail.extend_from_slice(b"body");
                let (done, used) = c.gather(&tail, 6);
                assert_eq!(done, Some(header), "cut at {cut}");
                assert_eq!(used, 6 - cut);
            } else {
                assert_eq!(done, Some(header));
            }
            assert!(c.is_empty());
        }
    }

    #[test]
    fn set_keeps_at_most_n_and_joined_is_bounded() {
        let mut c = Carry::<4>::new();
        c.set(b"abcdefgh");
        assert_eq!(c.held(), b"abcd");
        let (win, n) = c.joined::<8>(b"0123456789");
        assert_eq!(win.get(..n), Some(&b"abcd0123"[..]));
        c.set(b"xy");
        let (win, n) = c.joined::<8>(b"z");
        assert_eq!(win.get(..n), Some(&b"xyz"[..]));
        assert_eq!(c.len(), 2);
        c.clear();
        assert_eq!(c.held(), b"");
        assert_eq!(c.push(b"abc"), 3);
        assert_eq!(c.push(b"defg"), 1);
        assert_eq!(c.held(), b"abcd");
    }
}
