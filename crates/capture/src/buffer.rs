//! A bounded read buffer over a file: the only place bytes enter the process.
//!
//! Why not `pcap_parser::PcapReaderIterator`: it reads once per refill, turns I/O errors into a
//! bare `ReadError`, and treats an inconsistent block (a length inside the block that exceeds the
//! block) as "need more data", so a corrupt file makes it refill until the buffer is full. Owning
//! the buffer lets the reader check every length against the block and the cap first, and know
//! the exact file offset of every block for [`crate::Damage`].

use std::io::{self, Read};

use crate::read_ahead::{Chunk, ReadAhead};

/// What a [`ReadBuffer`] reads from: any reader, or a file read ahead in whole chunks
/// ([`ReadAhead`]), which the buffer takes over without copying them.
pub(crate) trait Source: Read {
    /// The read-ahead end, when this source reads ahead.
    fn ahead(&mut self) -> Option<&mut ReadAhead> {
        None
    }
}

impl Source for &[u8] {}

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
    /// `data` is a buffer of the read-ahead pool (to be handed back), not the buffer this was
    /// made with.
    pooled: bool,
}

impl<R: Source> ReadBuffer<R> {
    pub(crate) fn new(reader: R, initial: usize, max: usize) -> Self {
        ReadBuffer {
            data: vec![0; initial.min(max)],
            pos: 0,
            end: 0,
            offset: 0,
            reader,
            eof: false,
            max,
            pooled: false,
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

    /// What the buffer reads from, to change it (the bytes already read stay).
    pub(crate) fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
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
        if self.reader.ahead().is_some() {
            return self.fill_ahead(need);
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

    /// [`Self::fill`] from chunks read ahead: the unconsumed tail goes into the headroom in front
    /// of the next chunk, which becomes the buffer, so the chunk's bytes are never copied; a tail
    /// longer than the headroom (a record above 128 KiB) is completed by copying instead, in a
    /// buffer that grows to at most the cap plus one chunk.
    fn fill_ahead(&mut self, need: usize) -> io::Result<bool> {
        while self.end - self.pos < need && !self.eof {
            let Some(ahead) = self.reader.ahead() else {
                break;
            };
            let Chunk { mut buf, start, end } = match ahead.next_chunk() {
                None => {
                    self.eof = true;
                    break;
                }
                Some(chunk) => chunk?,
            };
            let tail = self.end - self.pos;
            if tail <= start {
                let front = start - tail;
                if let (Some(to), Some(from)) = (buf.get_mut(front..start), self.data.get(self.pos..self.end)) {
                    to.copy_from_slice(from);
                }
                let old = std::mem::replace(&mut self.data, buf);
                if self.pooled {
                    ahead.recycle(old);
                }
                self.pooled = true;
                self.pos = front;
                self.end = end;
            } else {
                self.data.copy_within(self.pos..self.end, 0);
                self.pos = 0;
                self.end = tail;
                let len = end - start;
                if self.data.len() < tail + len {
                    self.data.resize(tail + len, 0);
                }
                if let (Some(to), Some(from)) = (self.data.get_mut(tail..tail + len), buf.get(start..end)) {
                    to.copy_from_slice(from);
                }
                self.end = tail + len;
                ahead.recycle(buf);
            }
        }
        Ok(self.end - self.pos >= need)
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

    impl Source for Trickle<'_> {}

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

    /// A file read ahead in chunks, nothing else.
    struct Ahead(ReadAhead);

    impl Read for Ahead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("chunks only"))
        }
    }

    impl Source for Ahead {
        fn ahead(&mut self) -> Option<&mut ReadAhead> {
            Some(&mut self.0)
        }
    }

    fn ahead_over(bytes: &[u8]) -> Ahead {
        use std::io::Write;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pacstap-buffer-ahead-{}-{n}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        Ahead(ReadAhead::start(f).unwrap())
    }

    #[test]
    fn chunks_read_ahead_give_the_same_bytes_and_offsets_for_small_and_large_records() {
        use crate::read_ahead::{CHUNK, HEADROOM};
        let data: Vec<u8> = (0..(5 * CHUNK + 777)).map(|i| (i * 7 % 253) as u8).collect();
        let mut b = ReadBuffer::new(ahead_over(&data), 0, 1 << 20);
        // Records of 1,500 bytes (fast path: the tail fits the headroom) and records larger
        // than the headroom (slow path: copied), each crossing chunk boundaries.
        let sizes = [1500, 1500, HEADROOM + 1000, 1500, 3 * HEADROOM, 1, 1500];
        let mut at = 0usize;
        for &n in sizes.iter().cycle() {
            if at + n > data.len() {
                assert!(!b.ensure(n).unwrap(), "the file ends before {n} more bytes");
                assert_eq!(b.available(), &data[at..]);
                break;
            }
            assert!(b.ensure(n).unwrap());
            assert_eq!(&b.available()[..n], &data[at..at + n], "record at {at} of {n} bytes");
            assert_eq!(b.offset(), at as u64);
            b.consume(n);
            at += n;
        }
    }

    /// A record above the headroom grows the buffer, which is then no longer the pool's size:
    /// a file of many such records, each followed by small ones (so that the grown buffer is
    /// given back), must still be read to its end, never leaving the reader waiting for a
    /// buffer that will not come back.
    #[test]
    fn many_records_larger_than_the_headroom_do_not_drain_the_pool() {
        use crate::read_ahead::{CHUNK, HEADROOM, POOL};
        let sizes = [HEADROOM + CHUNK / 2 + 7, 3 * HEADROOM / 2, 10, 2 * CHUNK, 1];
        let total: usize = sizes.iter().sum::<usize>() * 6 * POOL;
        let data: Vec<u8> = (0..total).map(|i| (i * 13 % 251) as u8).collect();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = ReadBuffer::new(ahead_over(&data), 0, 1 << 20);
            let mut at = 0;
            for &n in sizes.iter().cycle() {
                if !b.ensure(n).unwrap() {
                    break;
                }
                assert_eq!(&b.available()[..n], &data[at..at + n], "record at {at}");
                b.consume(n);
                at += n;
            }
            done_tx.send(at).unwrap();
        });
        let read = done
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the reader stalled: the pool ran out of buffers");
        assert_eq!(read, total);
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
