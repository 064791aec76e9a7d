//! One capture file, legacy pcap or pcapng, read block by block.

use crate::buffer::ReadBuffer;
use crate::reader::Reader;
use crate::{CaptureError, Damage, PacketSource, RawFrame, BUFFER_SIZE, MAX_BLOCK};
use pacstap_core::Timestamp;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// libpcap's `MAXIMUM_SNAPLEN` (pcap-int.h), also Wireshark's `WTAP_MAX_PACKET_SIZE_STANDARD`: the
/// largest record a pcap writer produces for the link types we decode. A legacy record has no
/// framing but its own length, so a larger one (unless the file's snaplen announces it) means we
/// are no longer at a record boundary: the file is damaged there.
const LEGACY_MAX_CAPLEN: u32 = 262_144;

/// Interfaces kept per pcapng section. The interface id of the obsolete Packet Block is 16 bits
/// and no capture tool describes more interfaces than that; without a cap, a file of 20-byte
/// Interface Description Blocks would grow this table by one entry per 20 bytes read.
const MAX_INTERFACES: usize = 65_536;

// pcapng block type codes, draft-ietf-opsawg-pcapng §10.1 (Appendix A for the Packet Block).
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
/// Block type + block total length + trailing block total length (draft §3.1).
const MIN_BLOCK: usize = 12;
/// EPB and PB: the generic 12 bytes plus 20 bytes of fixed fields (draft §4.3, Appendix A).
const MIN_EPB: usize = 32;
/// SPB: the generic 12 bytes plus the 4-byte Original Packet Length (draft §4.4).
const MIN_SPB: usize = 16;
/// Offset of Packet Data in an EPB or PB, and in an SPB.
const EPB_DATA: usize = 28;
const SPB_DATA: usize = 12;

/// opt_endofopt, if_tsresol and if_tsoffset option codes (draft §3.5, §4.2).
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// A capture file being read: pcap (all four magics) or pcapng.
///
/// Frames come out in file order; the frame returned by [`PacketSource::next_frame`] borrows the
/// read buffer and is consumed at the start of the next call.
pub struct PcapFileSource {
    path: PathBuf,
    source: usize,
    buf: ReadBuffer<Reader>,
    format: Format,
    file_len: u64,
    /// For a compressed file, the compressed bytes read so far (progress is measured in those).
    compressed: Option<Arc<AtomicU64>>,
    /// Device and inode at open: a reopened file must be the same file.
    identity: (u64, u64),
    frames: u64,
    skipped: u64,
    damage: Option<Damage>,
    finished: bool,
    /// The frame last returned: where it lies in the buffer, and how much to consume next time.
    head: Option<Head>,
    /// Timestamp of the last frame, for Simple Packet Blocks (which carry none).
    last_ts: Timestamp,
}

enum Format {
    Legacy(Legacy),
    Ng(Ng),
}

#[derive(Clone, Copy)]
struct Legacy {
    big_endian: bool,
    nanos: bool,
    /// 16, or 24 in the "modified" format.
    record_header: usize,
    linktype: u32,
    max_caplen: u32,
}

struct Ng {
    big_endian: bool,
    /// Interfaces of the current section, in order of their IDBs (the interface id is the index).
    interfaces: Vec<Interface>,
}

/// What an Interface Description Block says about the frames captured on it (draft §4.2).
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`; default 10^6).
    units_per_sec: u128,
    /// Nanoseconds per unit when that is a whole number: a multiply instead of a 128-bit divide.
    ns_per_unit: Option<u64>,
    /// `if_tsoffset`, in nanoseconds.
    offset_ns: i128,
    /// False for an IDB that could not be parsed: kept so later interface ids still line up, but
    /// its frames are skipped.
    usable: bool,
}

#[derive(Clone, Copy, Debug)]
struct Head {
    ts: Timestamp,
    linktype: u32,
    /// The frame's bytes are `available()[start..start + len]`.
    start: usize,
    len: usize,
    orig_len: u32,
    /// Bytes of the whole block or record, consumed when the next frame is asked for.
    block_len: usize,
}

/// The outcome of reading one block or record.
enum Step {
    Frame(Head),
    /// A block that carries no frame (or none for us): skip its length.
    Skip(usize),
    /// A packet block whose content is unusable (unknown interface, data longer than the block):
    /// its framing is intact, so skip it, count it and go on.
    SkipFrame(usize),
    End,
    Damaged(String),
}

impl PcapFileSource {
    /// Opens a capture file and reads its file header (pcap) or first section header (pcapng).
    ///
    /// Errors: the file cannot be opened or read ([`CaptureError::Open`], [`CaptureError::Read`]),
    /// or it is empty or not a capture ([`CaptureError::NotPcap`]). Damage later in the file is
    /// not an error: see [`PcapFileSource::damage`].
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_owned(),
            source,
        })?;
        let meta = file.metadata().ok();
        let file_len = meta.as_ref().map_or(0, |m| m.len());
        let identity = meta.as_ref().map_or((0, 0), |m| (m.dev(), m.ino()));
        let (reader, compressed) = Reader::open(file, path);
        let mut buf = ReadBuffer::new(reader, initial_buffer(file_len), MAX_BLOCK);
        let not_pcap = |reason: String| CaptureError::NotPcap {
            path: path.to_owned(),
            reason,
        };
        let read_err = |source| CaptureError::Read {
            path: path.to_owned(),
            source,
        };

        if !buf.ensure(4).map_err(read_err)? {
            return Err(not_pcap(match buf.available().len() {
                0 => "the file is empty".to_owned(),
                n => format!("the file is only {n} bytes long"),
            }));
        }
        let magic: [u8; 4] = buf
            .available()
            .get(..4)
            .and_then(|m| m.try_into().ok())
            .unwrap_or_default();
        let format = if magic == SHB.to_le_bytes() {
            Format::Ng(Ng {
                big_endian: false,
                interfaces: Vec::new(),
            })
        } else if let Some((big_endian, nanos, record_header)) = legacy_magic(magic) {
            // File header, draft-ietf-opsawg-pcap §4: magic, version (2+2), two reserved words
            // (thiszone and sigfigs in old libpcap, always 0), SnapLen, LinkType.
            if !buf.ensure(24).map_err(read_err)? {
                return Err(not_pcap("truncated pcap file header".to_owned()));
            }
            let h = Fields {
                b: buf.available(),
                be: big_endian,
            };
            let snaplen = h.u32(16).unwrap_or(0);
            // The low 16 bits are the LinkType; the upper bits may carry FCS-length information
            // (draft-ietf-opsawg-pcap §4, libpcap `LT_LINKTYPE`), which we do not need.
            let linktype = h.u32(20).unwrap_or(0) & 0xFFFF;
            let cap = u32::try_from(MAX_BLOCK - 24).unwrap_or(u32::MAX);
            buf.consume(24);
            Format::Legacy(Legacy {
                big_endian,
                nanos,
                record_header,
                linktype,
                max_caplen: LEGACY_MAX_CAPLEN.max(snaplen).min(cap),
            })
        } else {
            return Err(not_pcap(format!(
                "unrecognised magic number {:02x} {:02x} {:02x} {:02x}",
                magic[0], magic[1], magic[2], magic[3]
            )));
        };

        let mut src = PcapFileSource {
            path: path.to_owned(),
            source: 0,
            buf,
            format,
            file_len,
            compressed,
            identity,
            frames: 0,
            skipped: 0,
            damage: None,
            finished: false,
            head: None,
            last_ts: Timestamp::ZERO,
        };
        if matches!(src.format, Format::Ng(_)) {
            // The first block must be a valid Section Header Block, else this is not pcapng.
            match src.read_step() {
                Step::Skip(n) => src.buf.consume(n),
                Step::Damaged(reason) => return Err(not_pcap(format!("bad pcapng section header: {reason}"))),
                _ => return Err(not_pcap("bad pcapng section header".to_owned())),
            }
        }
        Ok(src)
    }

    /// The path this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size in bytes at open (0 if unknown, e.g. a pipe): with [`Self::bytes_consumed`], progress.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Bytes of the file read so far, up to the end of the frame last returned.
    pub fn bytes_consumed(&self) -> u64 {
        if let Some(read) = &self.compressed {
            return read.load(Ordering::Relaxed);
        }
        self.buf.offset() + self.head.map_or(0, |h| h.block_len as u64)
    }

    /// Where and why reading stopped early, if it did.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Packet blocks skipped because their content was unusable while their framing was intact:
    /// unknown interface id, captured length beyond the block, a block too short for its fields.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The file's index in a [`crate::MergedSource`], reported as [`RawFrame::source`].
    pub(crate) fn set_source(&mut self, index: usize) {
        self.source = index;
    }

    /// Consumes the frame last returned and reads up to the next one.
    pub(crate) fn advance(&mut self) {
        if let Some(h) = self.head.take() {
            self.buf.consume(h.block_len);
        }
        if self.finished {
            return;
        }
        loop {
            let offset = self.buf.offset();
            match self.read_step() {
                Step::Frame(h) => {
                    self.frames += 1;
                    self.last_ts = h.ts;
                    self.head = Some(h);
                    return;
                }
                Step::Skip(n) => self.buf.consume(n),
                Step::SkipFrame(n) => {
                    self.skipped += 1;
                    self.buf.consume(n);
                }
                Step::End => {
                    self.finished = true;
                    return;
                }
                Step::Damaged(reason) => {
                    self.damage = Some(Damage {
                        path: self.path.clone(),
                        offset,
                        reason,
                    });
                    self.finished = true;
                    return;
                }
            }
        }
    }

    /// Whether the file is open (holds a descriptor and a read buffer).
    pub(crate) fn is_open(&self) -> bool {
        self.buf_reader().is_open()
    }

    /// Reads the rest of the file ahead on a thread of its own (see [`crate::read_ahead`]):
    /// for replaying a few large files, where the kernel's copy of the file would otherwise
    /// be half the time. If the thread cannot be started the file is read as before.
    pub(crate) fn read_ahead(&mut self) {
        let reader = self.buf.reader_mut();
        match std::mem::replace(reader, Reader::Closed).read_ahead() {
            Some(ahead) => *reader = ahead,
            // The decompressor went with the thread that failed to start: reopen where it was.
            None => self.reopen(),
        }
    }

    fn buf_reader(&self) -> &Reader {
        self.buf.reader()
    }

    /// Closes the file, freeing its descriptor and read buffer, keeping where it was: the
    /// frame waiting as [`Self::head`] is read again by [`Self::reopen`]. Used by
    /// [`crate::MergedSource`] to keep a bounded number of files open.
    pub(crate) fn close(&mut self) {
        let offset = self.buf.offset();
        self.buf = ReadBuffer::new(Reader::Closed, 0, MAX_BLOCK).at_offset(offset);
    }

    /// Reopens a closed file at its saved offset and reads the waiting frame again. If the
    /// file cannot be reopened, is no longer the same file, or no longer holds that frame
    /// there, reading it stops with a [`Damage`] saying so.
    pub(crate) fn reopen(&mut self) {
        if self.is_open() || self.finished {
            return;
        }
        let offset = self.buf.offset();
        let reopened = (|| -> Result<(), String> {
            let file = File::open(&self.path).map_err(|e| format!("cannot reopen: {e}"))?;
            let meta = file.metadata().map_err(|e| format!("cannot reopen: {e}"))?;
            if (meta.dev(), meta.ino()) != self.identity {
                return Err("the file was replaced while pacstap had it closed".to_owned());
            }
            let reader = Reader::reopen(file, self.compressed.as_ref(), offset)?;
            self.buf = ReadBuffer::new(reader, initial_buffer(self.file_len), MAX_BLOCK).at_offset(offset);
            let Some(before) = self.head else {
                return Ok(());
            };
            match self.read_step() {
                Step::Frame(h)
                    if (h.ts, h.len, h.block_len, h.linktype)
                        == (before.ts, before.len, before.block_len, before.linktype) =>
                {
                    self.head = Some(h);
                    Ok(())
                }
                _ => Err("the file changed while pacstap had it closed".to_owned()),
            }
        })();
        if let Err(reason) = reopened {
            self.damage = Some(Damage {
                path: self.path.clone(),
                offset,
                reason,
            });
            self.finished = true;
            self.head = None;
            self.close();
        }
    }

    /// The frame read by the last [`Self::advance`], if any.
    #[inline]
    pub(crate) fn head(&self) -> Option<RawFrame<'_>> {
        let h = self.head.as_ref()?;
        let data = self.buf.available().get(h.start..h.start.checked_add(h.len)?)?;
        Some(RawFrame {
            ts: h.ts,
            source: self.source,
            linktype: h.linktype,
            data,
            orig_len: h.orig_len,
        })
    }

    #[inline]
    pub(crate) fn head_ts(&self) -> Option<Timestamp> {
        self.head.map(|h| h.ts)
    }

    fn read_step(&mut self) -> Step {
        match &mut self.format {
            Format::Legacy(l) => legacy_record(&mut self.buf, *l),
            Format::Ng(ng) => ng_block(&mut self.buf, ng, self.last_ts),
        }
    }
}

impl PacketSource for PcapFileSource {
    #[inline]
    fn next_frame(&mut self) -> Option<RawFrame<'_>> {
        self.advance();
        self.head()
    }
}

impl std::fmt::Debug for PcapFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapFileSource")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .field("bytes_consumed", &self.bytes_consumed())
            .field("damage", &self.damage)
            .finish_non_exhaustive()
    }
}

/// Read-buffer size for a file of `file_len` bytes: small files get a small buffer (merging
/// many short rotated files stays cheap); a file of unknown length (a pipe) gets the full size.
fn initial_buffer(file_len: u64) -> usize {
    match usize::try_from(file_len) {
        Ok(0) | Err(_) => BUFFER_SIZE,
        Ok(n) => n.clamp(64 << 10, BUFFER_SIZE),
    }
}

/// Byte order, timestamp precision and record-header length for a legacy pcap magic number,
/// as the four bytes appear in the file (draft-ietf-opsawg-pcap §4; `0xa1b2cd34` is the
/// "modified" format of Kuznetsov's patched libpcap, whose records carry 8 more bytes).
fn legacy_magic(m: [u8; 4]) -> Option<(bool, bool, usize)> {
    match m {
        [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false, 16)),
        [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false, 16)),
        [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true, 16)),
        [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true, 16)),
        [0x34, 0xcd, 0xb2, 0xa1] => Some((false, false, 24)),
        [0xa1, 0xb2, 0xcd, 0x34] => Some((true, false, 24)),
        _ => None,
    }
}

/// Bounds-checked reads of numbers in a given byte order.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    #[inline]
    fn u32(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.be {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    #[inline]
    fn u16(&self, at: usize) -> Option<u16> {
        let bytes: [u8; 2] = self.b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.be {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    }
}

fn read_error(e: std::io::Error) -> Step {
    Step::Damaged(format!("read error: {e}"))
}

/// One legacy pcap record (draft-ietf-opsawg-pcap §5): timestamp seconds, timestamp fraction,
/// captured length, original length, then the captured bytes.
#[inline]
fn legacy_record(buf: &mut ReadBuffer<Reader>, l: Legacy) -> Step {
    let hl = l.record_header;
    match buf.ensure(hl) {
        Ok(true) => {}
        Ok(false) if buf.available().is_empty() => return Step::End,
        Ok(false) => {
            return Step::Damaged(format!(
                "truncated record header: {} of {hl} bytes at the end of the file",
                buf.available().len()
            ))
        }
        Err(e) => return read_error(e),
    }
    let h = Fields {
        b: buf.available(),
        be: l.big_endian,
    };
    let (Some(ts_sec), Some(ts_frac), Some(caplen), Some(orig_len)) = (h.u32(0), h.u32(4), h.u32(8), h.u32(12)) else {
        return Step::Damaged("unreadable record header".to_owned());
    };
    if caplen > l.max_caplen {
        return Step::Damaged(format!(
            "record claims {caplen} captured bytes, more than the {} a record can hold: not a record boundary",
            l.max_caplen
        ));
    }
    let len = caplen as usize;
    let total = hl + len;
    match buf.ensure(total) {
        Ok(true) => {}
        Ok(false) => {
            return Step::Damaged(format!(
                "truncated record: {caplen} captured bytes declared, {} present at the end of the file",
                buf.available().len().saturating_sub(hl)
            ))
        }
        Err(e) => return read_error(e),
    }
    let nanos = if l.nanos {
        u64::from(ts_frac)
    } else {
        u64::from(ts_frac) * 1000
    };
    Step::Frame(Head {
        ts: Timestamp::from_secs_nanos(u64::from(ts_sec), nanos),
        linktype: l.linktype,
        start: hl,
        len,
        orig_len,
        block_len: total,
    })
}

/// One pcapng block (draft-ietf-opsawg-pcapng §3.1): type, total length, body, total length again.
#[inline]
fn ng_block(buf: &mut ReadBuffer<Reader>, ng: &mut Ng, last_ts: Timestamp) -> Step {
    match buf.ensure(8) {
        Ok(true) => {}
        Ok(false) if buf.available().is_empty() => return Step::End,
        Ok(false) => {
            return Step::Damaged(format!(
                "truncated block header: {} of 8 bytes at the end of the file",
                buf.available().len()
            ))
        }
        Err(e) => return read_error(e),
    }
    // A Section Header Block's type is a palindrome; its byte order comes from the Byte-Order
    // Magic that follows the length (§4.1), and applies to the rest of the section.
    let is_shb = buf.available().get(..4) == Some(&SHB.to_le_bytes()[..]);
    let be = if is_shb {
        match buf.ensure(12) {
            Ok(true) => {}
            Ok(false) => return Step::Damaged("truncated section header block".to_owned()),
            Err(e) => return read_error(e),
        }
        match buf.available().get(8..12) {
            Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
            Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
            _ => return Step::Damaged("section header has no valid byte-order magic".to_owned()),
        }
    } else {
        ng.big_endian
    };
    let h = Fields { b: buf.available(), be };
    let (Some(block_type), Some(declared)) = (h.u32(0), h.u32(4)) else {
        return Step::Damaged("unreadable block header".to_owned());
    };
    let block_len = declared as usize;
    // §3.1: the Block Total Length is a multiple of 4 and covers at least the 12 framing bytes.
    if block_len < MIN_BLOCK || block_len & 3 != 0 {
        return Step::Damaged(format!(
            "block type 0x{block_type:08x} has an invalid length {declared} (must be a multiple of 4, at least 12)"
        ));
    }
    if block_len > MAX_BLOCK {
        return Step::Damaged(format!(
            "block type 0x{block_type:08x} claims {declared} bytes, more than the {MAX_BLOCK}-byte cap"
        ));
    }
    match buf.ensure(block_len) {
        Ok(true) => {}
        Ok(false) => {
            return Step::Damaged(format!(
            "truncated block: type 0x{block_type:08x}, {declared} bytes declared, {} present at the end of the file",
            buf.available().len()
        ))
        }
        Err(e) => return read_error(e),
    }
    let Some(block) = buf.available().get(..block_len) else {
        return Step::Damaged("block not buffered".to_owned());
    };
    let f = Fields { b: block, be };
    let trailer = f.u32(block_len - 4);
    if trailer != Some(declared) {
        return Step::Damaged(format!(
            "block type 0x{block_type:08x}: trailing length {} does not match leading length {declared}",
            trailer.unwrap_or(0)
        ));
    }

    match block_type {
        SHB => match pcap_parser::parse_sectionheaderblock(block) {
            Ok((_, shb)) if shb.major_version == 1 => {
                ng.big_endian = be;
                ng.interfaces.clear();
                Step::Skip(block_len)
            }
            // §4.1: a reader must not try to read a section of another major version.
            Ok((_, shb)) => Step::Damaged(format!("unsupported pcapng major version {}", shb.major_version)),
            Err(_) => Step::Damaged("malformed section header block".to_owned()),
        },
        IDB => {
            if ng.interfaces.len() < MAX_INTERFACES {
                ng.interfaces.push(Interface::from_block(block, be));
            }
            Step::Skip(block_len)
        }
        EPB | PB => {
            if block_len < MIN_EPB {
                return Step::SkipFrame(block_len);
            }
            // EPB: Interface ID is 32 bits; PB: 16-bit Interface ID then 16-bit Drops Count.
            let if_id = if block_type == EPB {
                f.u32(8)
            } else {
                f.u16(8).map(u32::from)
            };
            let (Some(if_id), Some(ts_high), Some(ts_low), Some(caplen), Some(orig_len)) =
                (if_id, f.u32(12), f.u32(16), f.u32(20), f.u32(24))
            else {
                return Step::SkipFrame(block_len);
            };
            let len = caplen as usize;
            if len > block_len - MIN_EPB {
                return Step::SkipFrame(block_len);
            }
            let Some(iface) = ng.interfaces.get(if_id as usize).filter(|i| i.usable) else {
                return Step::SkipFrame(block_len);
            };
            Step::Frame(Head {
                ts: iface.timestamp((u64::from(ts_high) << 32) | u64::from(ts_low)),
                linktype: iface.linktype,
                start: EPB_DATA,
                len,
                orig_len,
                block_len,
            })
        }
        SPB => {
            // §4.4: captured on interface 0; captured length is the smaller of the original length
            // and that interface's snaplen; there is no timestamp (we reuse the previous frame's).
            let Some(orig_len) = f.u32(8).filter(|_| block_len >= MIN_SPB) else {
                return Step::SkipFrame(block_len);
            };
            let Some(iface) = ng.interfaces.first().filter(|i| i.usable) else {
                return Step::SkipFrame(block_len);
            };
            let mut len = (orig_len as usize).min(block_len - MIN_SPB);
            if iface.snaplen != 0 {
                len = len.min(iface.snaplen as usize);
            }
            Step::Frame(Head {
                ts: last_ts,
                linktype: iface.linktype,
                start: SPB_DATA,
                len,
                orig_len,
                block_len,
            })
        }
        _ => Step::Skip(block_len),
    }
}

impl Interface {
    const UNUSABLE: Interface = Interface {
        linktype: 0,
        snaplen: 0,
        units_per_sec: 1_000_000,
        ns_per_unit: Some(1000),
        offset_ns: 0,
        usable: false,
    };

    /// From a whole Interface Description Block (§4.2): LinkType (16 bits), reserved, SnapLen,
    /// options. Options are read in the section's byte order (pcap-parser reads `if_tsoffset`
    /// as little-endian whatever the section, and rejects binary `if_tsresol`, so we read both).
    fn from_block(block: &[u8], be: bool) -> Interface {
        let parsed = if be {
            pcap_parser::parse_interfacedescriptionblock_be(block)
        } else {
            pcap_parser::parse_interfacedescriptionblock_le(block)
        };
        let Ok((_, idb)) = parsed else {
            return Interface::UNUSABLE;
        };
        let mut tsresol = 6u8;
        let mut tsoffset = 0i64;
        for opt in &idb.options {
            let Ok(value) = opt.as_bytes() else { continue };
            match opt.code.0 {
                OPT_ENDOFOPT => break,
                IF_TSRESOL => tsresol = value.first().copied().unwrap_or(6),
                IF_TSOFFSET => {
                    if let Ok(v) = <[u8; 8]>::try_from(value) {
                        tsoffset = if be {
                            i64::from_be_bytes(v)
                        } else {
                            i64::from_le_bytes(v)
                        };
                    }
                }
                _ => {}
            }
        }
        Interface::new((idb.linktype.0 as u32) & 0xFFFF, idb.snaplen, tsresol, tsoffset)
    }

    /// `if_tsresol` (§4.2): most significant bit clear, the resolution is 10^-v seconds; set,
    /// 2^-(v & 0x7f). A resolution too fine for 128 bits (nonsense) makes timestamps count from
    /// `if_tsoffset` alone rather than overflow.
    fn new(linktype: u32, snaplen: u32, tsresol: u8, tsoffset: i64) -> Interface {
        let exp = u32::from(tsresol & 0x7f);
        let units = if tsresol & 0x80 == 0 {
            10u128.checked_pow(exp)
        } else {
            1u128.checked_shl(exp)
        };
        let units_per_sec = units.unwrap_or(u128::MAX);
        let ns_per_unit = if units_per_sec <= 1_000_000_000 && 1_000_000_000 % units_per_sec == 0 {
            u64::try_from(1_000_000_000 / units_per_sec).ok()
        } else {
            None
        };
        Interface {
            linktype,
            snaplen,
            units_per_sec,
            ns_per_unit,
            offset_ns: i128::from(tsoffset) * 1_000_000_000,
            usable: true,
        }
    }

    /// A 64-bit pcapng timestamp in this interface's units, as nanoseconds since the epoch,
    /// saturating at the ends of `Timestamp`'s range.
    #[inline]
    fn timestamp(&self, raw: u64) -> Timestamp {
        // raw < 2^64 and the multipliers < 2^30: the products fit in 128 bits.
        let ns = match self.ns_per_unit {
            Some(m) => u128::from(raw) * u128::from(m),
            None => u128::from(raw) * 1_000_000_000 / self.units_per_sec,
        };
        let ns = i128::try_from(ns).unwrap_or(i128::MAX).saturating_add(self.offset_ns);
        Timestamp(i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfiles::{legacy, NgWriter, TempFile};

    fn collect(src: &mut PcapFileSource) -> Vec<(Timestamp, u32, Vec<u8>, u32)> {
        let mut out = Vec::new();
        while let Some(f) = src.next_frame() {
            out.push((f.ts, f.linktype, f.data.to_vec(), f.orig_len));
        }
        out
    }

    fn open(bytes: &[u8]) -> (TempFile, PcapFileSource) {
        let t = TempFile::new(bytes);
        let s = PcapFileSource::open(t.path()).expect("opens");
        (t, s)
    }

    #[test]
    fn legacy_all_magics() {
        for (be, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
            let frac = if nanos { 123_456_789 } else { 123_456 };
            let bytes = legacy(
                be,
                nanos,
                1,
                65535,
                &[(1_700_000_000, frac, &[1, 2, 3], 60), (1_700_000_001, 0, &[], 0)],
            );
            let (_t, mut s) = open(&bytes);
            let frames = collect(&mut s);
            let want_ns = if nanos { 123_456_789 } else { 123_456_000 };
            assert_eq!(
                frames,
                vec![
                    (Timestamp::from_secs_nanos(1_700_000_000, want_ns), 1, vec![1, 2, 3], 60),
                    (Timestamp::from_secs_nanos(1_700_000_001, 0), 1, vec![], 0),
                ],
                "be={be} nanos={nanos}"
            );
            assert!(s.damage().is_none());
            assert_eq!(s.frames(), 2);
            assert_eq!(s.bytes_consumed(), bytes.len() as u64);
            assert_eq!(s.file_len(), bytes.len() as u64);
        }
    }

    #[test]
    fn legacy_modified_format_and_fcs_bits() {
        // 24-byte record headers; linktype word with FCS bits set above the 16-bit LinkType.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_cd34u32.to_le_bytes());
        bytes.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&(0x1400_0000u32 | 113).to_le_bytes());
        for word in [5u32, 7, 2, 2, 0, 0] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(&[9, 9]);
        let (_t, mut s) = open(&bytes);
        assert_eq!(
            collect(&mut s),
            vec![(Timestamp::from_secs_nanos(5, 7000), 113, vec![9, 9], 2)]
        );
        assert!(s.damage().is_none());
    }

    #[test]
    fn header_only_pcap_has_no_frames() {
        let (_t, mut s) = open(&legacy(false, false, 1, 65535, &[]));
        assert!(s.next_frame().is_none());
        assert!(s.next_frame().is_none());
        assert!(s.damage().is_none());
    }

    #[test]
    fn truncated_legacy_keeps_earlier_frames() {
        let full = legacy(
            false,
            false,
            1,
            65535,
            &[(1, 0, &[1; 100], 100), (2, 0, &[2; 100], 100), (3, 0, &[3; 100], 100)],
        );
        // Cut inside the third record's data, and inside its header.
        for (cut, what) in [
            (full.len() - 10, "truncated record:"),
            (24 + 2 * 116 + 5, "truncated record header"),
        ] {
            let (_t, mut s) = open(&full[..cut]);
            let frames = collect(&mut s);
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[1].2, vec![2; 100]);
            let d = s.damage().expect("damage recorded");
            assert_eq!(d.offset, 24 + 2 * 116);
            assert!(d.reason.starts_with(what), "{}", d.reason);
            assert!(s.next_frame().is_none(), "stays finished");
        }
    }

    #[test]
    fn absurd_legacy_caplen_is_damage_not_allocation() {
        let mut bytes = legacy(true, false, 1, 65535, &[(1, 0, &[7; 8], 8)]);
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0; 64]);
        let (_t, mut s) = open(&bytes);
        assert_eq!(collect(&mut s).len(), 1);
        let d = s.damage().unwrap();
        assert_eq!(d.offset, 24 + 16 + 8);
        assert!(d.reason.contains("not a record boundary"), "{}", d.reason);
    }

    #[test]
    fn caplen_above_snaplen_is_read() {
        // Snaplen 64 but a 100-byte record: some writers do this; it is within the sanity cap.
        let bytes = legacy(false, false, 1, 64, &[(1, 0, &[5; 100], 100)]);
        let (_t, mut s) = open(&bytes);
        assert_eq!(collect(&mut s)[0].2.len(), 100);
        assert!(s.damage().is_none());
    }

    #[test]
    fn not_pcap_is_an_error_naming_the_file() {
        for (bytes, why) in [
            (&b""[..], "empty"),
            (&b"GE"[..], "2 bytes"),
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "magic"),
            (&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0][..], "truncated pcap file header"),
            (&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0, 0, 0, 0][..], "byte-order"),
        ] {
            let t = TempFile::new(bytes);
            let err = PcapFileSource::open(t.path()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, CaptureError::NotPcap { .. }), "{msg}");
            assert!(msg.contains(&t.path().display().to_string()), "{msg}");
            assert!(msg.contains(why), "{msg}");
        }
        let err = PcapFileSource::open(Path::new("/nonexistent/x.pcap")).unwrap_err();
        assert!(matches!(err, CaptureError::Open { .. }));
        assert!(err.to_string().contains("/nonexistent/x.pcap"));
    }

    #[test]
    fn pcapng_two_interfaces_linktypes_and_resolutions() {
        for be in [false, true] {
            let mut w = NgWriter::new(be);
            w.shb();
            w.idb(1, 65535, None, None); // Ethernet, microseconds
            w.idb(113, 262144, Some(9), Some(-10)); // Linux SLL, nanoseconds, offset -10 s
            w.idb(101, 0, Some(0x80 | 20), None); // raw IP, 2^-20 s
            w.nrb();
            w.epb(0, 1_700_000_000_123_456, &[1, 2, 3, 4, 5], 1514);
            w.epb(1, 1_700_000_010_000_000_001, &[6], 1);
            w.epb(2, 3 << 20 | 1 << 19, &[7, 7], 2);
            w.isb();
            w.spb(&[8, 8, 8], 3);
            let (_t, mut s) = open(&w.bytes);
            let frames = collect(&mut s);
            assert_eq!(
                frames,
                vec![
                    (
                        Timestamp::from_secs_nanos(1_700_000_000, 123_456_000),
                        1,
                        vec![1, 2, 3, 4, 5],
                        1514
                    ),
                    (Timestamp::from_secs_nanos(1_700_000_000, 1), 113, vec![6], 1),
                    (Timestamp::from_secs_nanos(3, 500_000_000), 101, vec![7, 7], 2),
                    // SPB: interface 0, previous frame's timestamp.
                    (Timestamp::from_secs_nanos(3, 500_000_000), 1, vec![8, 8, 8], 3),
                ],
                "be={be}"
            );
            assert!(s.damage().is_none());
            assert_eq!(s.skipped(), 0);
            assert_eq!(s.bytes_consumed(), w.bytes.len() as u64);
        }
    }

    #[test]
    fn pcapng_section_change_switches_byte_order_and_interfaces() {
        let mut w = NgWriter::new(false);
        w.shb();
        w.idb(1, 0, None, None);
        w.epb(0, 1_000_000, &[1], 1);
        w.set_big_endian(true);
        w.shb();
        w.idb(276, 0, Some(3), None);
        w.epb(0, 2_000, &[2], 1);
        w.epb(1, 0, &[3], 1); // interface 1 belonged to no section: skipped
        let (_t, mut s) = open(&w.bytes);
        let frames = collect(&mut s);
        assert_eq!(
            frames,
            vec![
                (Timestamp::from_secs_nanos(1, 0), 1, vec![1], 1),
                (Timestamp::from_secs_nanos(2, 0), 276, vec![2], 1)
            ]
        );
        assert_eq!(s.skipped(), 1);
        assert!(s.damage().is_none());
    }

    #[test]
    fn pcapng_inconsistent_blocks_are_skipped_or_damage() {
        let mut w = NgWriter::new(false);
        w.shb();
        w.idb(1, 0, None, None);
        w.epb(0, 1, &[1], 1);
        // EPB whose captured length exceeds its block: framing intact, so skipped and counted.
        let mut bad = NgWriter::new(false);
        bad.epb(0, 2, &[2; 8], 8);
        bad.bytes[20..24].copy_from_slice(&1000u32.to_le_bytes());
        w.bytes.extend_from_slice(&bad.bytes);
        w.epb(0, 3, &[3], 1);
        let good_len = w.bytes.len() as u64;
        // Then a block whose trailer disagrees with its header: framing broken, damage.
        let mut broken = NgWriter::new(false);
        broken.epb(0, 4, &[4], 1);
        let n = broken.bytes.len();
        broken.bytes[n - 4..].copy_from_slice(&4u32.to_le_bytes());
        w.bytes.extend_from_slice(&broken.bytes);
        w.epb(0, 5, &[5], 1);
        let (_t, mut s) = open(&w.bytes);
        let frames = collect(&mut s);
        assert_eq!(
            frames.iter().map(|f| f.2.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![3]]
        );
        assert_eq!(s.skipped(), 1);
        let d = s.damage().unwrap();
        assert_eq!(d.offset, good_len);
        assert!(d.reason.contains("trailing length"), "{}", d.reason);
    }

    #[test]
    fn pcapng_truncated_and_oversized_blocks_are_damage() {
        let mut w = NgWriter::new(true);
        w.shb();
        w.idb(1, 0, None, None);
        w.epb(0, 1, &[1; 40], 40);
        let second = w.bytes.len();
        w.epb(0, 2, &[2; 40], 40);
        let (_t, mut s) = open(&w.bytes[..w.bytes.len() - 3]);
        assert_eq!(collect(&mut s).len(), 1);
        let d = s.damage().unwrap();
        assert_eq!(d.offset, second as u64);
        assert!(d.reason.starts_with("truncated block"), "{}", d.reason);

        let mut huge = w.bytes[..second].to_vec();
        huge.extend_from_slice(&EPB.to_be_bytes());
        huge.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
        huge.extend_from_slice(&[0; 100]);
        let (_t, mut s) = open(&huge);
        assert_eq!(collect(&mut s).len(), 1);
        assert!(s.damage().unwrap().reason.contains("cap"), "{:?}", s.damage());
    }

    #[test]
    fn large_frames_grow_the_buffer_within_the_cap() {
        // A 3 MiB frame in a file larger than the initial 1 MiB buffer.
        let big = vec![0xabu8; 3 << 20];
        let mut w = NgWriter::new(false);
        w.shb();
        w.idb(1, 0, None, None);
        w.epb(0, 1, &[1; 10], 10);
        w.epb(0, 2, &big, big.len() as u32);
        w.epb(0, 3, &[3; 10], 10);
        let (_t, mut s) = open(&w.bytes);
        let lens: Vec<usize> = collect(&mut s).iter().map(|f| f.2.len()).collect();
        assert_eq!(lens, vec![10, big.len(), 10]);
        assert!(s.damage().is_none());
    }

    #[test]
    fn many_frames_across_buffer_refills() {
        // Frames of varying size spanning several buffer fills; every byte must come out intact.
        let records: Vec<(u32, u32, Vec<u8>, u32)> = (0..5000u32)
            .map(|i| (i, 0, vec![(i % 251) as u8; (i as usize * 37) % 1600], 0))
            .collect();
        let refs: Vec<(u32, u32, &[u8], u32)> = records.iter().map(|r| (r.0, r.1, &r.2[..], r.3)).collect();
        let bytes = legacy(false, false, 1, 65535, &refs);
        assert!(bytes.len() > 2 * BUFFER_SIZE);
        let (_t, mut s) = open(&bytes);
        let mut n = 0u32;
        while let Some(f) = s.next_frame() {
            assert_eq!(f.data, &records[n as usize].2[..]);
            assert_eq!(f.ts, Timestamp::from_secs_nanos(u64::from(n), 0));
            n += 1;
        }
        assert_eq!(n, 5000);
        assert!(s.damage().is_none());
    }

    #[test]
    fn interface_timestamp_arithmetic() {
        let us = Interface::new(1, 0, 6, 0);
        assert_eq!(us.timestamp(1_500_000), Timestamp(1_500_000_000));
        let ps = Interface::new(1, 0, 12, 0);
        assert_eq!(ps.timestamp(1_000_000_000_007), Timestamp(1_000_000_000));
        let bin = Interface::new(1, 0, 0x80 | 10, 1);
        assert_eq!(bin.timestamp(512), Timestamp(1_500_000_000));
        let absurd = Interface::new(1, 0, 0x7f, 0);
        assert_eq!(absurd.timestamp(u64::MAX), Timestamp(0));
        let far = Interface::new(1, 0, 0, i64::MAX);
        assert_eq!(far.timestamp(u64::MAX), Timestamp(i64::MAX));
        let neg = Interface::new(1, 0, 0, i64::MIN);
        assert_eq!(neg.timestamp(0), Timestamp(i64::MIN));
    }

    #[test]
    fn mutated_files_never_panic_and_always_end() {
        let mut w = NgWriter::new(false);
        w.shb();
        w.idb(1, 0, None, None);
        w.idb(113, 128, Some(0x80 | 30), Some(5));
        w.epb(0, 1, &[1; 30], 30);
        w.nrb();
        w.epb(1, 2, &[2; 7], 100);
        w.spb(&[3; 9], 9);
        w.set_big_endian(true);
        w.shb();
        w.idb(101, 0, Some(3), None);
        w.epb(0, 3, &[4; 12], 12);
        let originals = [
            w.bytes,
            legacy(true, true, 1, 96, &[(1, 2, &[5; 40], 40), (3, 4, &[6; 3], 3)]),
        ];
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for original in &originals {
            for round in 0..400 {
                let mut bytes = original.clone();
                let flips = 1 + next() % 4;
                for _ in 0..flips {
                    let i = (next() as usize) % bytes.len();
                    // Mostly small changes to lengths and ids; sometimes a whole random byte.
                    bytes[i] = if round % 3 == 0 {
                        next() as u8
                    } else {
                        bytes[i] ^ (1 << (next() % 8))
                    };
                }
                if round % 5 == 0 {
                    bytes.truncate((next() as usize) % bytes.len());
                }
                let t = TempFile::new(&bytes);
                let Ok(mut s) = PcapFileSource::open(t.path()) else {
                    continue;
                };
                let mut n = 0;
                while let Some(f) = s.next_frame() {
                    assert!(f.data.len() <= bytes.len());
                    n += 1;
                    assert!(n <= bytes.len(), "must terminate");
                }
                assert!(s.bytes_consumed() <= bytes.len() as u64);
            }
        }
    }

    #[test]
    fn samples_open_and_have_frames() {
        // Real captures, when another stage has generated them; nothing to check otherwise.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcap-samples");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if !matches!(path.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")) {
                continue;
            }
            let mut s = PcapFileSource::open(&path).unwrap_or_else(|e| panic!("{e}"));
            while s.next_frame().is_some() {}
            // A sample may be damaged on purpose; it must still yield the frames before the damage.
            assert!(
                s.frames() > 0,
                "{} has no frames (damage: {:?})",
                path.display(),
                s.damage()
            );
        }
    }
}
