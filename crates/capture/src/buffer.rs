//! A bounded read buffer over a file: the only place bytes enter the process.
//!
//! Why not `pcap_parser::PcapReaderIterator`: it reads once per refill, turns I/O errors into a
//! bare `ReadError`, and treats an inconsistent block (a length inside the block that exceeds the
//! block) as "need more data", so a corrupt file makes it refill until the buffer is full. Owning
//! the buffer lets the reader check every length against the block and the cap first, and know
//! the exact file offset of every block for [`crate::Damage`].

use std::io::{self, Read};

pub(crate) struct ReadBuffer<R> {
    data: Vec<u8>,
    /// `data[pos..end]` are read but not consumed.
    pos: usize,
    end: usize,
    /// File offset of `data[pos]`.
    offset: u64,
    reader: R,
    eof: bool,
    /// The buffer never grows beyond this.
    max: usize,
}

impl<R: Read> ReadBuffer<R> {
    pub(crate) fn new(reader: R, initial: usize, max: usize) -> Self {
        ReadBuffer {
            data: vec![0; initial.min(max)],
            pos: 0,
            end: 0,
            offset: 0,
            reader,
            eof: false,
            max,
        }
    }

    /// The same buffer reading on from file offset `offset` (a file reopened and positioned
    /// there, or a closed file that remembers where it was).
    pub(crate) fn at_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// What the buffer reads from.
    pub(crate) fn reader(&self) -> &R {
        &self.reader
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub(crate) fn available(&self) -> &[u8] {
        self.data.get(self.pos..self.end).unwrap_or(&[])
    }

    /// File offset of the first available byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.pos += n;
        self.offset += n as u64;
    }

    /// Makes at least `need` bytes available, reading as needed. `Ok(false)`: the file ends first.
    ///
    /// `need` must not exceed the cap given to [`ReadBuffer::new`] (callers check lengths from the
    /// file against it before asking); if it does, this is an `InvalidInput` error.
    #[inline]
    pub(crate) fn ensure(&mut self, need: usize) -> io::Result<bool> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        self.fill(need)
    }

    #[cold]
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if need > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read request exceeds the buffer cap",
            ));
        }
        // Move the unconsumed tail (shorter than `need`, so cheap) to the front, then read into all
        // the free space so one system call serves many frames.
        if self.pos > 0 {
            self.data.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if need > self.data.len() {
            let grown = need.max(self.data.len().saturating_mul(2)).min(self.max);
            self.data.resize(grown, 0);
        }
        while self.end < need && !self.eof {
            // `end <= data.len()` always (it only grows by what a read put into `data[end..]`);
            // an empty tail reads 0 bytes, which ends the input as before.
            let Some(free) = self.data.get_mut(self.end..) else {
                break;
            };
            match self.reader.read(free) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end >= need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `chunk` bytes per call, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_reads_are_retried_and_offsets_tracked() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mut b = ReadBuffer::new(Trickle { data: &data, chunk: 3 }, 16, 64);
        assert!(b.ensure(10).unwrap());
        assert_eq!(&b.available()[..10], &data[..10]);
        b.consume(7);
        assert_eq!(b.offset(), 7);
        assert!(b.ensure(40).unwrap(), "grows up to the cap");
        assert_eq!(&b.available()[..40], &data[7..47]);
        assert!(b.ensure(65).is_err(), "beyond the cap");
        let left = b.available().len() as u64;
        b.consume(1000);
        assert_eq!(b.offset(), 7 + left, "consume stops at the data read");
    }

    #[test]
    fn reports_end_of_file() {
        let data = [1u8, 2, 3];
        let mut b = ReadBuffer::new(&data[..], 8, 8);
        assert!(!b.ensure(4).unwrap());
        assert_eq!(b.available(), &data);
        b.consume(3);
        assert!(!b.ensure(1).unwrap());
        assert_eq!(b.offset(), 3);
    }
}
