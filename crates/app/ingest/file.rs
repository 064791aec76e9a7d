//! Archived event files as an [`EventSource`]: JSON lines, plain or gzip (found by its magic
//! bytes, as the capture reader finds a gzip pcap), several files merged in packet-time order.
//!
//! Each file is read line by line, never whole: at most one pending line per file is held, and
//! a line longer than [`MAX_LINE_BYTES`] is skipped as it streams past (counted), so memory is
//! bounded by the number of files, not their size. A line that is not an event is counted and
//! skipped; a file that stops being readable (a truncated gzip) ends there, with a warning.

use super::{EventSource, SourceNext, SourceStats};
use anyhow::Result;
use flate2::read::MultiGzDecoder;
use pacstap_core::Timestamp;
use pacstap_output::eve_in::MAX_LINE_BYTES;
use pacstap_output::{parse_line, EveLine};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One line of input, as [`read_bounded_line`] found it.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line (without its newline) is in the buffer.
    Whole,
    /// The line was longer than the cap: skipped up to its newline.
    TooLong,
    End,
}

/// Read one line into `buf` (cleared first), keeping at most `max` bytes of it: a longer line
/// is consumed to its end and reported as [`Line::TooLong`], never held.
fn read_bounded_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Line::End,
                (true, true) => Line::TooLong,
                (true, false) => Line::Whole,
            });
        }
        any = true;
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (chunk.get(..i).unwrap_or_default(), Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long && buf.len() + part.len() <= max {
            buf.extend_from_slice(part);
        } else {
            too_long = true;
            buf.clear();
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Whole });
        }
    }
}

/// One input file.
struct Input {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    /// Lines read so far (for messages).
    line_no: u64,
    done: bool,
}

impl Input {
    fn open(path: &Path) -> io::Result<Input> {
        let mut f = BufReader::new(File::open(path)?);
        let gz = f.fill_buf()?.starts_with(&GZIP_MAGIC);
        let reader: Box<dyn BufRead> = if gz {
            Box::new(BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(f)))
        } else {
            Box::new(f)
        };
        Ok(Input {
            path: path.to_path_buf(),
            reader,
            line_no: 0,
            done: false,
        })
    }
}

/// See the module docs.
pub struct FileSource {
    inputs: Vec<Input>,
    /// The next event of each file not yet handed out, by file index.
    pending: Vec<Option<EveLine>>,
    /// `(time of the pending line, file index)`: the earliest first, ties to the first file.
    order: BinaryHeap<Reverse<(Timestamp, usize)>>,
    buf: Vec<u8>,
    stats: SourceStats,
    started: bool,
}

impl FileSource {
    /// Opens every file now: one that cannot be opened is an error naming it (before any
    /// event is applied).
    pub fn open(paths: &[PathBuf]) -> Result<FileSource> {
        let mut inputs = Vec::with_capacity(paths.len());
        for p in paths {
            let input = Input::open(p).map_err(|e| anyhow::anyhow!("cannot read events file {}: {e}", p.display()))?;
            inputs.push(input);
        }
        let n = inputs.len();
        Ok(FileSource {
            inputs,
            pending: (0..n).map(|_| None).collect(),
            order: BinaryHeap::new(),
            buf: Vec::new(),
            stats: SourceStats::default(),
            started: false,
        })
    }

    /// Read file `i` up to its next event line (skipping and counting what is not one), and
    /// queue it by time.
    fn refill(&mut self, i: usize) {
        let Some(input) = self.inputs.get_mut(i) else { return };
        while !input.done {
            let line = match read_bounded_line(&mut input.reader, &mut self.buf, MAX_LINE_BYTES) {
                Ok(l) => l,
                Err(e) => {
                    self.stats.warnings.push(format!(
                        "{}: read error after line {}: {e}",
                        input.path.display(),
                        input.line_no
                    ));
                    input.done = true;
                    break;
                }
            };
            match line {
                Line::End => input.done = true,
                Line::TooLong => {
                    input.line_no += 1;
                    self.stats.lines += 1;
                    self.stats.note_unreadable(
                        &input.path,
                        input.line_no,
                        &format!("longer than {MAX_LINE_BYTES} bytes"),
                    );
                }
                Line::Whole => {
                    input.line_no += 1;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.stats.lines += 1;
                    match parse_line(&self.buf) {
                        Ok(line) => {
                            let ts = line.event().map_or(Timestamp(i64::MIN), |e| e.ts);
                            if let Some(slot) = self.pending.get_mut(i) {
                                *slot = Some(line);
                            }
                            self.order.push(Reverse((ts, i)));
                            return;
                        }
                        Err(e) => self.stats.note_unreadable(&input.path, input.line_no, &e.to_string()),
                    }
                }
            }
        }
    }
}

impl EventSource for FileSource {
    fn next_line(&mut self) -> Result<SourceNext> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                self.refill(i);
            }
        }
        let Some(Reverse((_, i))) = self.order.pop() else {
            return Ok(SourceNext::End);
        };
        let line = self.pending.get_mut(i).and_then(Option::take);
        self.refill(i);
        Ok(line.map_or(SourceNext::Idle, SourceNext::Line))
    }

    fn stats(&self) -> SourceStats {
        self.stats.clone()
    }
}

/// Read everything of `r` as one stream of lines (tests, and a reader that is not a file).
#[cfg(test)]
fn lines_of(mut r: impl BufRead, max: usize) -> Vec<(Line, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let l = read_bounded_line(&mut r, &mut buf, max).unwrap();
        if l == Line::End {
            return out;
        }
        out.push((l, buf.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn long_lines_are_skipped_without_being_held() {
        let text = b"short\nxxxxxxxxxxxxxxxxxxxx\n\nlast-no-newline";
        // A tiny buffer so lines span several fill_buf calls.
        let r = BufReader::with_capacity(4, &text[..]);
        let got = lines_of(r, 8);
        assert_eq!(
            got,
            [
                (Line::Whole, b"short".to_vec()),
                (Line::TooLong, vec![]),
                (Line::Whole, vec![]),
                (Line::TooLong, vec![]),
            ]
        );
        let got = lines_of(BufReader::with_capacity(4, &b"ab\ncd"[..]), 8);
        assert_eq!(got, [(Line::Whole, b"ab".to_vec()), (Line::Whole, b"cd".to_vec())]);
    }

    fn event(ts: &str, flow: u64) -> String {
        format!(
            r#"{{"timestamp":"{ts}","flow_id":{flow},"event_type":"anomaly","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP","anomaly":{{"proto":"tcp","name":"tcp.test"}}}}"#
        )
    }

    #[test]
    fn files_merge_by_time_gzip_or_not_and_bad_lines_are_counted() {
        let dir = std::env::temp_dir().join(format!("pacstap-ingest-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl.gz");
        std::fs::write(
            &a,
            format!(
                "{}\nnot json\n{}\n",
                event("2026-11-27T10:00:01Z", 1),
                event("2026-11-27T10:00:03Z", 3)
            ),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        writeln!(gz, "{}", event("2026-11-27T10:00:02Z", 2)).unwrap();
        writeln!(gz, "{}", event("2026-11-27T10:00:04Z", 4)).unwrap();
        std::fs::write(&b, gz.finish().unwrap()).unwrap();
        let mut src = FileSource::open(&[a, b]).unwrap();
        let mut flows = Vec::new();
        loop {
            match src.next_line().unwrap() {
                SourceNext::Line(l) => flows.push(l.event().unwrap().flow.id.0),
                SourceNext::Idle => {}
                SourceNext::End => break,
            }
        }
        assert_eq!(flows, [1, 2, 3, 4]);
        let stats = src.stats();
        assert_eq!((stats.lines, stats.unreadable), (5, 1));
        assert!(stats.first_unreadable.unwrap().contains("a.jsonl:2"));
        assert!(FileSource::open(&[dir.join("missing.jsonl")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
