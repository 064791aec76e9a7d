//! Reading a capture file ahead of the decoder, on a thread of its own (decompressing it there,
//! when it is compressed).
//!
//! Why: replaying a capture that is already in the page cache spends about half of its time in
//! the kernel copying the file into the process (`read(2)`: `copy_to_iter`, page lookups), time
//! in which the decoder waits. `cat` pays that copy too, and nothing else, which is why a
//! single-threaded reader cannot come near it. A second thread that reads the next chunks while
//! the decoder works on the current one hides the copy: the decoder's own work is unchanged and
//! the wall time becomes the larger of the two, not their sum. Mapping the file instead
//! (`mmap`) was measured: it removes the copy, but the decoder then takes the cache misses the
//! copy took (same time on one core, slower on two), and it needs `unsafe` (a file truncated
//! under the mapping raises SIGBUS), which this workspace forbids. With one CPU available the
//! thread is not started (`merge.rs`): it would only take turns with the decoder.
//!
//! Memory stays bounded: [`POOL`] buffers of [`HEADROOM`]` + `[`CHUNK`] bytes, recycled; the
//! reader blocks when the decoder is [`POOL`] chunks behind. (Handing buffers back in batches
//! of 4 from a pool of 8, so that the reader sleeps less often, was measured: 278 → 171
//! context switches per replay of the 231 MB bench capture, but 2–4 ms slower, 62 ms against
//! 58–60 ms, the larger pool's buffers being colder.) Each chunk keeps [`HEADROOM`] free
//! bytes in front of its data so that the unconsumed tail of the previous chunk (the start of a
//! record cut by the chunk boundary) can be put in front of it without moving the chunk: see
//! [`crate::buffer::ReadBuffer`]. A tail longer than the headroom (a record above 128 KiB)
//! takes the slower copying path there.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

/// Bytes read per chunk: large enough that a system call serves a few hundred frames, small
/// enough that a chunk stays in the decoding core's L2 cache.
pub(crate) const CHUNK: usize = 256 << 10;

/// Free bytes in front of each chunk's data, for the tail of the previous chunk. Frames of a
/// capture taken with segmentation offload (a loopback capture) reach 64 KiB: twice that.
pub(crate) const HEADROOM: usize = 128 << 10;

/// Buffers in circulation: one being decoded, one being read, two waiting.
pub(crate) const POOL: usize = 4;

/// One chunk of the file: its bytes are `buf[start..end]`, with `start` free bytes in front.
pub(crate) struct Chunk {
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The decoder's end of a file being read ahead.
pub(crate) struct ReadAhead {
    filled: Receiver<io::Result<Chunk>>,
    spare: SyncSender<Vec<u8>>,
}

impl ReadAhead {
    /// Starts reading `file` from its current position on a new thread. The thread ends at the
    /// end of the file, at a read error (handed over as the last chunk), or when this end is
    /// dropped.
    pub(crate) fn start<R: Read + Send + 'static>(file: R) -> io::Result<Self> {
        let (filled_tx, filled) = sync_channel(POOL - 2);
        let (spare, spare_rx) = sync_channel(POOL);
        std::thread::Builder::new()
            .name("pacstap-read".to_owned())
            .spawn(move || read_loop(file, &filled_tx, &spare_rx))?;
        Ok(ReadAhead { filled, spare })
    }

    /// The next chunk, or `None` at the end of the file.
    pub(crate) fn next_chunk(&mut self) -> Option<io::Result<Chunk>> {
        self.filled.recv().ok()
    }

    /// Hands a buffer of the pool back for reuse. One that was grown for a record above the
    /// headroom is replaced by a fresh one of the pool's size: the pool must never shrink, since
    /// the reader makes only [`POOL`] buffers and then waits for them to come back (when grown
    /// buffers were simply dropped, a capture of a few records above 128 KiB left the reader and
    /// the decoder waiting for each other forever).
    pub(crate) fn recycle(&self, mut buf: Vec<u8>) {
        if buf.len() != HEADROOM + CHUNK {
            buf = vec![0; HEADROOM + CHUNK];
        }
        // Full only if the reader has stopped; then the buffer is simply freed.
        let _ = self.spare.try_send(buf);
    }
}

fn read_loop(mut file: impl Read, filled: &SyncSender<io::Result<Chunk>>, spare: &Receiver<Vec<u8>>) {
    let mut made = 0;
    loop {
        let mut buf = match spare.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) if made < POOL => {
                made += 1;
                vec![0; HEADROOM + CHUNK]
            }
            // Wait for the decoder to finish with a chunk; it has gone if the channel is closed.
            Err(_) => match spare.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        let mut end = HEADROOM;
        let mut at_end = false;
        while end < buf.len() {
            match file.read(buf.get_mut(end..).unwrap_or_default()) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if end > HEADROOM {
                        let _ = filled.send(Ok(Chunk {
                            buf,
                            start: HEADROOM,
                            end,
                        }));
                    }
                    let _ = filled.send(Err(e));
                    return;
                }
            }
        }
        if end > HEADROOM
            && filled
                .send(Ok(Chunk {
                    buf,
                    start: HEADROOM,
                    end,
                }))
                .is_err()
        {
            return;
        }
        if at_end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> File {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pacstap-read-ahead-{}-{n}", std::process::id()));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn chunks_cover_the_file_in_order_and_buffers_are_reused() {
        let data: Vec<u8> = (0..(3 * CHUNK + 1234)).map(|i| (i % 251) as u8).collect();
        let mut r = ReadAhead::start(file_with(&data)).unwrap();
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(c) = r.next_chunk() {
            let c = c.unwrap();
            assert_eq!(c.start, HEADROOM, "every chunk keeps its headroom");
            got.extend_from_slice(&c.buf[c.start..c.end]);
            r.recycle(c.buf);
            chunks += 1;
        }
        assert_eq!(chunks, 4);
        assert_eq!(got, data);
    }

    #[test]
    fn an_empty_file_gives_no_chunk() {
        let mut r = ReadAhead::start(file_with(&[])).unwrap();
        assert!(r.next_chunk().is_none());
    }

    #[test]
    fn dropping_the_decoder_end_stops_the_reader() {
        let data = vec![7u8; 10 * CHUNK];
        let r = ReadAhead::start(file_with(&data)).unwrap();
        // The reader fills the channel and blocks; dropping must not hang or panic.
        drop(r);
    }
}
