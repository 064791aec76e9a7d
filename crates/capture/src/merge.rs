//! Several capture files merged into one stream in timestamp order.
//!
//! A k-way merge over the files' head frames (like `mergecap`): each file is read in its own
//! order, and of the files' next frames the earliest goes first (ties: the file listed first).
//! A file whose own timestamps go backwards is not re-sorted — that would need unbounded
//! buffering — so the output is ordered exactly when every input is.

use crate::file::PcapFileSource;
use crate::{CaptureError, Damage, PacketSource, RawFrame};
use pacstap_core::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;

/// Frames of several files, merged by timestamp. With one file it is a thin wrapper with no
/// per-frame merge cost.
pub struct MergedSource {
    files: Vec<PcapFileSource>,
    /// Files with a head frame waiting, keyed by (timestamp, file index) — min-heap.
    heap: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// The file whose head frame was returned last: advanced at the next call.
    current: Option<usize>,
    started: bool,
    damages: Vec<Damage>,
}

impl MergedSource {
    /// Opens every file. The first that cannot be opened, or is not a capture, is the error
    /// (naming it); damage found later while reading is reported by [`MergedSource::damages`].
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let mut files = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let mut f = PcapFileSource::open(p)?;
            f.set_source(i);
            files.push(f);
        }
        Ok(MergedSource {
            heap: BinaryHeap::with_capacity(files.len()),
            files,
            current: None,
            started: false,
            damages: Vec::new(),
        })
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

    /// Per-file statistics: path, frames, bytes, damage of each input, in the order given.
    pub fn files(&self) -> &[PcapFileSource] {
        &self.files
    }

    /// Advances file `i` and records its damage if reading it stopped there.
    fn advance(&mut self, i: usize) -> Option<Timestamp> {
        let f = self.files.get_mut(i)?;
        f.advance();
        let ts = f.head_ts();
        if ts.is_none() {
            if let Some(d) = f.damage() {
                if !self.damages.contains(d) {
                    self.damages.push(d.clone());
                }
            }
        }
        ts
    }
}

impl PacketSource for MergedSource {
    fn next_frame(&mut self) -> Option<RawFrame<'_>> {
        if self.files.len() == 1 {
            self.advance(0);
            return self.files.first()?.head();
        }
        if !self.started {
            self.started = true;
            for i in 0..self.files.len() {
                if let Some(ts) = self.advance(i) {
                    self.heap.push(Reverse((ts, i)));
                }
            }
        } else if let Some(i) = self.current.take() {
            if let Some(ts) = self.advance(i) {
                self.heap.push(Reverse((ts, i)));
            }
        }
        let Reverse((_, i)) = self.heap.pop()?;
        self.current = Some(i);
        self.files.get(i)?.head()
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
    fn first_bad_file_is_the_error() {
        let good = TempFile::new(&legacy(false, false, 1, 65535, &[]));
        let bad = TempFile::new(b"not a capture at all");
        let err = MergedSource::open(&[good.path().to_owned(), bad.path().to_owned()]).unwrap_err();
        assert!(
            matches!(err, CaptureError::NotPcap { ref path, .. } if path == bad.path()),
            "{err}"
        );
    }

    #[test]
    fn no_files_no_frames() {
        let mut m = MergedSource::open(&[]).unwrap();
        assert!(m.next_frame().is_none());
    }
}
