//! The bytes behind a capture file's read buffer: the file itself, the file decompressed (gzip),
//! or either read ahead on a thread of its own ([`crate::read_ahead`]).

use crate::buffer::Source;
use crate::read_ahead::ReadAhead;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The file behind the read buffer, or nothing while it is closed to free its descriptor
/// ([`PcapFileSource::close`]); the source remembers its offset and reopens there.
pub(crate) enum Reader {
    Open(File),
    /// A gzip-compressed capture (`.pcap.gz`, `.pcapng.gz`, or gzip magic), decompressed as it is
    /// read; every member of a multi-member file (`cat a.gz b.gz`) is read, as gzip(1) does.
    Gz(Box<MultiGzDecoder<Counted>>),
    /// Open, and read ahead on a thread of its own ([`PcapFileSource::read_ahead`]).
    Ahead(ReadAhead),
    Closed,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Reader::Open(f) => f.read(buf),
            Reader::Gz(g) => g.read(buf),
            Reader::Ahead(_) => Err(std::io::Error::other("a file read ahead is read in chunks")),
            Reader::Closed => Err(std::io::Error::other("read from a closed capture file")),
        }
    }
}

/// A compressed file counting the bytes read from it, for progress: the decompressed offset
/// says nothing about how much of the file is done. Shared with the read-ahead thread.
pub(crate) struct Counted {
    file: File,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// gzip's magic (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `file` is gzip-compressed: by its first two bytes (read without moving the file's
/// position), or by its name where they cannot be read that way (a pipe).
fn is_gzip(file: &File, path: &Path) -> bool {
    let mut magic = [0u8; 2];
    match file.read_at(&mut magic, 0) {
        Ok(2) => magic == GZIP_MAGIC,
        Ok(_) => false,
        Err(_) => path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")),
    }
}

impl Source for Reader {
    fn ahead(&mut self) -> Option<&mut ReadAhead> {
        match self {
            Reader::Ahead(a) => Some(a),
            _ => None,
        }
    }
}

impl Reader {
    /// Whether a file is behind it (open, decompressing, or read ahead).
    pub(crate) fn is_open(&self) -> bool {
        !matches!(self, Reader::Closed)
    }

    /// The same file read ahead on a thread of its own, decompressed there if it is compressed.
    /// `None` when a compressed file's thread could not start: its decompressor is gone with
    /// it, and the file must be reopened. A plain file whose thread cannot start is read as
    /// before; a reader already ahead or closed is returned as it is.
    pub(crate) fn read_ahead(self) -> Option<Reader> {
        match self {
            // The thread reads on from where the buffer stopped (the file's position); the
            // clone shares it, and the original closes here.
            Reader::Open(file) => Some(match file.try_clone().and_then(ReadAhead::start) {
                Ok(ahead) => Reader::Ahead(ahead),
                Err(_) => Reader::Open(file),
            }),
            Reader::Gz(gz) => ReadAhead::start(*gz).ok().map(Reader::Ahead),
            other => Some(other),
        }
    }

    /// The reader for a file just opened at `path`, and for a compressed one the counter of
    /// compressed bytes read (progress).
    pub(crate) fn open(file: File, path: &Path) -> (Reader, Option<Arc<AtomicU64>>) {
        if is_gzip(&file, path) {
            let read = Arc::new(AtomicU64::new(0));
            let counted = Counted {
                file,
                read: Arc::clone(&read),
            };
            (Reader::Gz(Box::new(MultiGzDecoder::new(counted))), Some(read))
        } else {
            (Reader::Open(file), None)
        }
    }

    /// The reader for a file reopened at `offset` (of the decompressed stream, for a
    /// compressed file, which cannot seek and is decompressed again up to there).
    pub(crate) fn reopen(mut file: File, compressed: Option<&Arc<AtomicU64>>, offset: u64) -> Result<Reader, String> {
        let Some(read) = compressed else {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| format!("cannot reopen: {e}"))?;
            return Ok(Reader::Open(file));
        };
        read.store(0, Ordering::Relaxed);
        let counted = Counted {
            file,
            read: Arc::clone(read),
        };
        let mut gz = MultiGzDecoder::new(counted);
        let skipped = std::io::copy(&mut Read::by_ref(&mut gz).take(offset), &mut std::io::sink())
            .map_err(|e| format!("cannot reopen: {e}"))?;
        if skipped != offset {
            return Err("the file changed while pacstap had it closed".to_owned());
        }
        Ok(Reader::Gz(Box::new(gz)))
    }
}
