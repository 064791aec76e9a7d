//! Several capture files merged into one stream in timestamp order.
//!
//! A k-way merge over the files' head frames (like `mergecap`): each file is read in its own
//! order, and of the files' next frames the earliest goes first (ties: the file listed first).
//! A file whose own timestamps go backwards is not re-sorted — that would need unbounded
//! buffering — so the output is ordered exactly when every input is.
//!
//! # Bounded open files
//!
//! A replay of a day of rotated captures names thousands of files; opening them all at once
//! runs out of descriptors (`EMFILE` under the usual `ulimit -n 1024`) and holds a read buffer
//! for each. So [`MergedSource::open`] reads each file's header and first frame and closes it
//! again (beyond the first [`MAX_OPEN_FILES`]); a file is reopened at its saved offset when its
//! frame is next, and at most [`MAX_OPEN_FILES`] are open at once: when another must open, the
//! least recently read one is closed. A file closes as soon as it is read to its end. Files
//! whose time ranges follow each other (rotation) are thus open one or two at a time; more than
//! [`MAX_OPEN_FILES`] files overlapping in time are still merged correctly, at the cost of
//! reopening files (counted in [`MergedSource::reopens`]).
//!
//! A file that cannot be read at all (missing, unreadable, not a capture) is left out and
//! listed by [`MergedSource::unreadable`]; the others are read. Only when no file can be read
//! is [`MergedSource::open`] an error.

use crate::file::PcapFileSource;
use crate::{CaptureError, Damage, PacketSource, RawFrame};
use pacstap_core::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

/// Capture files open at once, at most. Each holds a descriptor and a read buffer of up to
/// [`crate::BUFFER_SIZE`] (256 KiB), so this bounds the merge at 64 descriptors (a sixteenth of
/// the common 1024 limit, leaving room for outputs, sockets and evidence files) and 16 MiB of
/// buffers however many files are named.
pub const MAX_OPEN_FILES: usize = 64;

/// Up to this many files are each read ahead on a thread of their own ([`crate::read_ahead`]):
/// a replay of one or a few large captures, where reading is half the time. Beyond it (a
/// directory of rotated files) a thread per file would cost more than it saves. Nor is any file
/// read ahead when the process may run on one CPU only (`taskset`, a cgroup cpuset): the thread
/// would take turns with the decoder on that CPU, adding two context switches per chunk to the
/// same copy.
pub const READ_AHEAD_FILES: usize = 4;

/// Whether a thread reading ahead can run beside the decoder: more than one CPU is available to
/// the process (its affinity mask, which `available_parallelism` honours).
fn cpus_to_read_ahead() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// Frames of several files, merged by timestamp. With one file it is a thin wrapper with no
/// per-frame merge cost.
pub struct MergedSource {
    files: Vec<PcapFileSource>,
    /// Files with a head frame waiting, keyed by (timestamp, position in `files`) — min-heap.
    heap: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// The file whose head frame was returned last: advanced at the next call.
    current: Option<usize>,
    started: bool,
    damages: Vec<Damage>,
    unreadable: Vec<CaptureError>,
    /// Positions of the open files with when each was last read, at most [`MAX_OPEN_FILES`].
    open: Vec<(usize, u64)>,
    clock: u64,
    reopens: u64,
}

impl MergedSource {
    /// Reads the header and first frame of every file, keeping at most [`MAX_OPEN_FILES`]
    /// open. A file that cannot be opened, or is not a capture, is left out (see
    /// [`MergedSource::unreadable`]); when no file could be opened, the first such error is the
    /// result. Damage found later while reading is reported by [`MergedSource::damages`].
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let mut m = MergedSource {
            files: Vec::new(),
            heap: BinaryHeap::new(),
            current: None,
            started: false,
            damages: Vec::new(),
            unreadable: Vec::new(),
            open: Vec::new(),
            clock: 0,
            reopens: 0,
        };
        for (i, p) in paths.iter().enumerate() {
            match PcapFileSource::open(p) {
                Ok(mut f) => {
                    f.set_source(i);
                    f.advance();
                    m.files.push(f);
                    let pos = m.files.len() - 1;
                    m.note_end(pos);
                    if m.files.get(pos).is_some_and(PcapFileSource::is_open) {
                        if m.open.len() < MAX_OPEN_FILES {
                            m.open.push((pos, 0));
                        } else if let Some(f) = m.files.get_mut(pos) {
                            f.close();
                        }
                    }
                }
                Err(e) => m.unreadable.push(e),
            }
        }
        if m.files.is_empty() && !m.unreadable.is_empty() {
            return Err(m.unreadable.remove(0));
        }
        if m.files.len() <= READ_AHEAD_FILES && cpus_to_read_ahead() {
            for f in &mut m.files {
                f.read_ahead();
            }
        }
        Ok(m)
    }

    /// Sum of the files' sizes at open.
    pub fn file_len(&self) -> u64 {
        self.files.iter().map(PcapFileSource::file_len).sum()
    }

    /// Sum of the bytes read so far from every file.
    pub fn bytes_consumed(&self) -> u64 {
        self.files.iter().map(PcapFileSource::bytes_consumed).sum()
    }

    /// Frames read so far: those returned, plus the one frame per file waiting in the merge.
    pub fn frames(&self) -> u64 {
        self.files.iter().map(PcapFileSource::frames).sum()
    }

    /// Packet blocks skipped as unusable, over all files (see [`PcapFileSource::skipped`]).
    pub fn skipped(&self) -> u64 {
        self.files.iter().map(PcapFileSource::skipped).sum()
    }

    /// Damage found so far, in the order it was found (at most one per file).
    pub fn damages(&self) -> &[Damage] {
        &self.damages
    }

    /// The files that could not be read at all, each with why, in the order given.
    pub fn unreadable(&self) -> &[CaptureError] {
        &self.unreadable
    }

    /// Per-file statistics: path, frames, bytes, damage of each readable input, in the order
    /// given.
    pub fn files(&self) -> &[PcapFileSource] {
        &self.files
    }

    /// Files open right now (at most [`MAX_OPEN_FILES`]).
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Times a file closed to respect [`MAX_OPEN_FILES`] was opened again: zero unless more
    /// than that many files overlap in time.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    /// After file `pos` was read: when it has no frame left, record its damage and close it.
    fn note_end(&mut self, pos: usize) {
        let Some(f) = self.files.get_mut(pos) else {
            return;
        };
        if f.head_ts().is_some() {
            return;
        }
        if let Some(d) = f.damage() {
            if !self.damages.contains(d) {
                self.damages.push(d.clone());
            }
        }
        if f.is_open() {
            f.close();
        }
        self.open.retain(|&(p, _)| p != pos);
    }

    /// Advances file `pos` (open: it returned the last frame) and returns its next timestamp.
    fn advance(&mut self, pos: usize) -> Option<Timestamp> {
        self.files.get_mut(pos)?.advance();
        self.note_end(pos);
        self.files.get(pos)?.head_ts()
    }

    /// Makes sure file `pos` is open, closing the least recently read one if the limit is
    /// reached. False when it could not be reopened (its damage is then recorded).
    fn ensure_open(&mut self, pos: usize) -> bool {
        self.clock += 1;
        if let Some(e) = self.open.iter_mut().find(|e| e.0 == pos) {
            e.1 = self.clock;
            return true;
        }
        if self.open.len() >= MAX_OPEN_FILES {
            if let Some(k) = self.open.iter().enumerate().min_by_key(|(_, e)| e.1).map(|(k, _)| k) {
                let (victim, _) = self.open.swap_remove(k);
                if let Some(f) = self.files.get_mut(victim) {
                    f.close();
                }
            }
        }
        let Some(f) = self.files.get_mut(pos) else {
            return false;
        };
        f.reopen();
        self.reopens += 1;
        if f.is_open() {
            self.open.push((pos, self.clock));
            true
        } else {
            self.note_end(pos);
            false
        }
    }
}

impl PacketSource for MergedSource {
    fn next_frame(&mut self) -> Option<RawFrame<'_>> {
        if self.files.len() == 1 {
            // The first frame was read by `open`; later calls move on.
            if self.started {
                self.advance(0);
            }
            self.started = true;
            return self.files.first()?.head();
        }
        if !self.started {
            self.started = true;
            for pos in 0..self.files.len() {
                if let Some(ts) = self.files.get(pos).and_then(PcapFileSource::head_ts) {
                    self.heap.push(Reverse((ts, pos)));
                }
            }
        } else if let Some(pos) = self.current.take() {
            if let Some(ts) = self.advance(pos) {
                self.heap.push(Reverse((ts, pos)));
            }
        }
        loop {
            let Reverse((_, pos)) = self.heap.pop()?;
            if self.ensure_open(pos) {
                self.current = Some(pos);
                return self.files.get(pos)?.head();
            }
        }
    }
}

impl std::fmt::Debug for MergedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedSource")
            .field("files", &self.files)
            .field("damages", &self.damages)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfiles::{legacy, NgWriter, TempFile};

    fn drain(m: &mut MergedSource) -> Vec<(i64, usize, u8)> {
        let mut out = Vec::new();
        while let Some(f) = m.next_frame() {
            out.push((f.ts.as_nanos(), f.source, f.data[0]));
        }
        out
    }

    #[test]
    fn merges_interleaved_files_in_timestamp_order() {
        let a = TempFile::new(&legacy(
            false,
            false,
            1,
            65535,
            &[(1, 0, &[10], 1), (3, 0, &[30], 1), (5, 0, &[50], 1)],
        ));
        let mut w = NgWriter::new(true);
        w.shb();
        w.idb(1, 0, Some(9), None);
        for (s, b) in [(2u64, 20u8), (3, 31), (4, 40), (6, 60), (7, 70)] {
            w.epb(0, s * 1_000_000_000, &[b], 1);
        }
        let b = TempFile::new(&w.bytes);
        let mut m = MergedSource::open(&[a.path().to_owned(), b.path().to_owned()]).unwrap();
        let got = drain(&mut m);
        let s = 1_000_000_000;
        assert_eq!(
            got,
            vec![
                (s, 0, 10),
                (2 * s, 1, 20),
                (3 * s, 0, 30), // tie: the file listed first
                (3 * s, 1, 31),
                (4 * s, 1, 40),
                (5 * s, 0, 50),
                (6 * s, 1, 60),
                (7 * s, 1, 70)
            ]
        );
        assert_eq!(m.frames(), 8);
        assert_eq!(m.file_len(), m.bytes_consumed());
        assert!(m.damages().is_empty());
        assert_eq!(m.files()[0].frames(), 3);
        assert!(m.next_frame().is_none());
    }

    #[test]
    fn damage_of_one_file_is_listed_and_the_others_go_on() {
        let full = legacy(false, false, 1, 65535, &[(1, 0, &[1; 20], 20), (4, 0, &[4; 20], 20)]);
        let a = TempFile::new(&full[..full.len() - 1]);
        let b = TempFile::new(&legacy(false, true, 1, 65535, &[(2, 0, &[2], 1), (5, 0, &[5], 1)]));
        let mut m = MergedSource::open(&[a.path().to_owned(), b.path().to_owned()]).unwrap();
        let got: Vec<u8> = drain(&mut m).iter().map(|f| f.2).collect();
        assert_eq!(got, vec![1, 2, 5]);
        assert_eq!(m.damages().len(), 1);
        assert_eq!(m.damages()[0].path, a.path());
        assert_eq!(m.damages()[0].offset, 24 + 36);
    }

    #[test]
    fn single_file_damage_is_reported_too() {
        let full = legacy(false, false, 1, 65535, &[(1, 0, &[1; 20], 20), (4, 0, &[4; 20], 20)]);
        let a = TempFile::new(&full[..full.len() - 1]);
        let mut m = MergedSource::open(&[a.path().to_owned()]).unwrap();
        assert_eq!(drain(&mut m).len(), 1);
        assert_eq!(m.damages().len(), 1);
        assert!(m.next_frame().is_none());
        assert_eq!(m.damages().len(), 1, "recorded once");
    }

    #[test]
    fn unreadable_files_are_listed_and_the_others_read() {
        let good = TempFile::new(&legacy(false, false, 1, 65535, &[(1, 0, &[7], 1)]));
        let bad = TempFile::new(b"not a capture at all");
        let missing = PathBuf::from("/nonexistent/pacstap.pcap");
        let mut m = MergedSource::open(&[bad.path().to_owned(), good.path().to_owned(), missing.clone()]).unwrap();
        assert_eq!(drain(&mut m), vec![(1_000_000_000, 1, 7)], "source index as given");
        let un = m.unreadable();
        assert_eq!(un.len(), 2);
        assert!(
            matches!(un[0], CaptureError::NotPcap { ref path, .. } if path == bad.path()),
            "{}",
            un[0]
        );
        assert!(
            matches!(un[1], CaptureError::Open { ref path, .. } if *path == missing),
            "{}",
            un[1]
        );
        // None readable: the first error.
        let err = MergedSource::open(&[bad.path().to_owned(), missing]).unwrap_err();
        assert!(
            matches!(err, CaptureError::NotPcap { ref path, .. } if path == bad.path()),
            "{err}"
        );
    }

    fn one_frame_file(sec: u32, tag: u8) -> TempFile {
        TempFile::new(&legacy(
            false,
            false,
            1,
            65535,
            &[(sec, 0, &[tag], 1), (sec, 1, &[tag], 1)],
        ))
    }

    /// Rotated files (time ranges one after the other): never more than two open, no reopen.
    #[test]
    fn many_consecutive_files_are_opened_a_few_at_a_time() {
        let n = MAX_OPEN_FILES * 3;
        let files: Vec<TempFile> = (0..n).map(|i| one_frame_file(i as u32 + 1, i as u8)).collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_owned()).collect();
        let mut m = MergedSource::open(&paths).unwrap();
        assert!(m.open_files() <= MAX_OPEN_FILES);
        let mut got = Vec::new();
        let mut most_open = 0;
        while let Some(f) = m.next_frame() {
            got.push((f.source, f.data[0]));
            most_open = most_open.max(m.open_files());
        }
        assert_eq!(got.len(), 2 * n);
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "file order is time order");
        assert!(got.iter().all(|&(s, tag)| s as u8 == tag));
        assert!(most_open <= MAX_OPEN_FILES);
        assert_eq!(m.open_files(), 0, "every file closed at its end");
        assert_eq!(
            m.reopens(),
            (n - MAX_OPEN_FILES) as u64,
            "each file past the first K opened once more"
        );
    }

    /// More files overlapping in time than may be open: still merged exactly, by reopening.
    #[test]
    fn more_overlapping_files_than_may_be_open_still_merge_in_order() {
        let n = MAX_OPEN_FILES + 6;
        let files: Vec<TempFile> = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    let recs: Vec<(u32, u32, &[u8], u32)> =
                        (0..4u32).map(|k| (k * 10 + 1, i as u32, &[][..], 0)).collect();
                    TempFile::new(&legacy(false, false, 1, 65535, &recs))
                } else {
                    // pcapng: reopening must find the frame again with the section's interfaces.
                    let mut w = NgWriter::new(false);
                    w.shb();
                    w.idb(1, 0, None, None);
                    for k in 0..4u64 {
                        w.epb(0, (k * 10 + 1) * 1_000_000 + i as u64, &[], 0);
                    }
                    TempFile::new(&w.bytes)
                }
            })
            .collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_owned()).collect();
        let mut m = MergedSource::open(&paths).unwrap();
        let mut got = Vec::new();
        while let Some(f) = m.next_frame() {
            got.push((f.ts.as_nanos(), f.source));
            assert!(m.open_files() <= MAX_OPEN_FILES);
        }
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.len(), 4 * n);
        assert!(m.reopens() > 0);
        assert!(m.damages().is_empty());
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn frames_of(paths: &[PathBuf]) -> (Vec<(i64, usize, Vec<u8>)>, MergedSource) {
        let mut m = MergedSource::open(paths).unwrap();
        let mut got = Vec::new();
        while let Some(f) = m.next_frame() {
            got.push((f.ts.as_nanos(), f.source, f.data.to_vec()));
        }
        (got, m)
    }

    /// `.pcap.gz` and `.pcapng.gz` read as their plain forms, multi-member files whole, and
    /// progress counts compressed bytes up to the file's size.
    #[test]
    fn gzip_compressed_captures_read_like_their_plain_forms() {
        let payloads: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; 60 + (i as usize % 1400)])
            .collect();
        let recs: Vec<(u32, u32, &[u8], u32)> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    1 + i as u32 / 100,
                    (i as u32 % 100) * 1000,
                    p.as_slice(),
                    p.len() as u32,
                )
            })
            .collect();
        let pcap = legacy(false, false, 1, 65535, &recs);
        let mut ng = NgWriter::new(true);
        ng.shb();
        ng.idb(1, 0, None, None);
        for (i, p) in payloads.iter().enumerate().take(500) {
            ng.epb(0, 500_000 + i as u64 * 7, p, p.len() as u32);
        }
        // Two gzip members, as `cat a.gz b.gz` makes: the split falls inside a record.
        let (a, b) = pcap.split_at(pcap.len() / 2 + 3);
        let two_members = [gzip(a), gzip(b)].concat();

        let plain = [TempFile::new(&pcap), TempFile::new(&ng.bytes)];
        let zipped = [TempFile::new(&two_members), TempFile::new(&gzip(&ng.bytes))];
        let paths = |f: &[TempFile]| f.iter().map(|t| t.path().to_owned()).collect::<Vec<_>>();
        let (want, _) = frames_of(&paths(&plain));
        let (got, m) = frames_of(&paths(&zipped));
        assert_eq!(want.len(), 3500);
        assert_eq!(got, want);
        assert!(m.damages().is_empty());
        assert_eq!(m.bytes_consumed(), m.file_len(), "progress ends at the compressed size");
        assert_eq!(m.file_len(), (two_members.len() + gzip(&ng.bytes).len()) as u64);
    }

    /// More compressed files than may be open: a reopened one is decompressed again up to where
    /// it was, and the merge stays exact.
    #[test]
    fn more_compressed_files_than_may_be_open_still_merge_in_order() {
        let n = MAX_OPEN_FILES + 3;
        let files: Vec<TempFile> = (0..n)
            .map(|i| {
                let recs: Vec<(u32, u32, &[u8], u32)> =
                    (0..4u32).map(|k| (k * 10 + 1, i as u32, &b"frame"[..], 5)).collect();
                TempFile::new(&gzip(&legacy(false, false, 1, 65535, &recs)))
            })
            .collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_owned()).collect();
        let (got, m) = frames_of(&paths);
        let mut want = got.clone();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(got.len(), 4 * n);
        assert!(m.reopens() > 0);
        assert!(m.damages().is_empty());
    }

    /// A closed file replaced before its turn: reported as damage, the others go on.
    #[test]
    fn a_file_replaced_while_closed_is_damage() {
        let n = MAX_OPEN_FILES + 1;
        let files: Vec<TempFile> = (0..n).map(|i| one_frame_file(i as u32 + 1, i as u8)).collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_owned()).collect();
        let mut m = MergedSource::open(&paths).unwrap();
        let last = paths.last().unwrap();
        // The old inode stays alive (a second name), so the new file cannot reuse its number.
        let keep = last.with_extension("keep");
        std::fs::hard_link(last, &keep).unwrap();
        std::fs::remove_file(last).unwrap();
        std::fs::write(last, legacy(false, false, 1, 65535, &[(99, 0, &[1], 1)])).unwrap();
        let got = drain(&mut m);
        assert_eq!(got.len(), 2 * (n - 1));
        assert_eq!(m.damages().len(), 1);
        assert_eq!(m.damages()[0].path, *last);
        assert!(m.damages()[0].reason.contains("replaced"), "{}", m.damages()[0].reason);
        std::fs::remove_file(keep).ok();
    }

    #[test]
    fn no_files_no_frames() {
        let mut m = MergedSource::open(&[]).unwrap();
        assert!(m.next_frame().is_none());
    }
}
