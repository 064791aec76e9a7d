//! Reading event files: plain or gzip (by the magic bytes, not the name), line by line.
//!
//! The report streams: one line in memory at a time. A line longer than [`MAX_LINE`] cannot be
//! an event pacstap wrote (its largest, an alert with capped evidence lists, stays well under
//! 64 KiB) and is skipped and counted, as is one that is not JSON.

use crate::ReportError;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest line read as an event (1 MiB); see the module docs.
pub const MAX_LINE: usize = 1 << 20;

/// What reading found besides events.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineStats {
    pub lines: u64,
    /// Over [`MAX_LINE`], or not valid UTF-8.
    pub skipped_lines: u64,
}

/// Blocks of whole lines handed from the reading thread to the caller.
const BLOCK: usize = 1 << 20;

enum Msg {
    Lines(Vec<u8>),
    /// An over-long line was passed over.
    Skipped,
    Failed(std::io::Error),
}

/// Calls `each` with every line of `path` (gzip-compressed or plain), without its line end.
///
/// A second thread reads (and inflates) blocks of whole lines while the caller parses the
/// previous ones: inflating a 10^6-event file costs about as much as a fifth of parsing it.
pub fn for_each_line(path: &Path, mut each: impl FnMut(&str)) -> Result<LineStats, ReportError> {
    let io_err = |source| ReportError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    let head = std::io::Cursor::new(magic.get(..n).unwrap_or_default().to_vec());
    let raw = head.chain(file);
    let reader: Box<dyn Read + Send> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4);
    let reading = std::thread::spawn(move || read_blocks(reader, &tx));
    let mut stats = LineStats::default();
    let mut failed = None;
    for msg in rx {
        match msg {
            Msg::Skipped => {
                stats.lines += 1;
                stats.skipped_lines += 1;
            }
            Msg::Failed(e) => failed = Some(e),
            Msg::Lines(block) => {
                for mut line in block.split(|&c| c == b'\n') {
                    while let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    match std::str::from_utf8(line) {
                        Ok(l) if l.trim().is_empty() => {}
                        Ok(l) => {
                            stats.lines += 1;
                            each(l);
                        }
                        Err(_) => {
                            stats.lines += 1;
                            stats.skipped_lines += 1;
                        }
                    }
                }
            }
        }
    }
    let _ = reading.join();
    match failed {
        Some(e) => Err(io_err(e)),
        None => Ok(stats),
    }
}

/// The reading thread: blocks of about [`BLOCK`] bytes cut after a line end (the last block
/// may end without one); a line longer than [`MAX_LINE`] is passed over and reported.
fn read_blocks(reader: Box<dyn Read + Send>, tx: &std::sync::mpsc::SyncSender<Msg>) {
    let mut r = BufReader::with_capacity(1 << 16, reader);
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK + 4096);
    loop {
        // One line at a time into the block, at most MAX_LINE + 1 bytes of it.
        let start = block.len();
        let got = match (&mut r).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut block) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        };
        if got == 0 {
            break;
        }
        if block.last() != Some(&b'\n') && block.len() - start > MAX_LINE {
            block.truncate(start);
            if let Err(e) = drain_line(&mut r) {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
            if tx.send(Msg::Skipped).is_err() {
                return;
            }
            continue;
        }
        if block.len() >= BLOCK {
            if block.last() == Some(&b'\n') {
                block.pop();
            }
            let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK + 4096));
            if tx.send(Msg::Lines(full)).is_err() {
                return;
            }
        }
    }
    if block.last() == Some(&b'\n') {
        block.pop();
    }
    if !block.is_empty() {
        let _ = tx.send(Msg::Lines(block));
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..).filter(|rest| !rest.is_empty()) {
        match r.read(rest)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Skips the rest of an over-long line.
fn drain_line(r: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let (done, used) = {
            let avail = r.fill_buf()?;
            if avail.is_empty() {
                return Ok(());
            }
            match avail.iter().position(|&c| c == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, avail.len()),
            }
        };
        r.consume(used);
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(bytes: &[u8]) -> (Vec<String>, LineStats) {
        // A directory per call: tests run in parallel, and one removing a shared directory
        // while another was writing into it failed the other (NotFound) on a CI run.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pacstap-report-input-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{}", bytes.len()));
        std::fs::write(&p, bytes).unwrap();
        let mut out = Vec::new();
        let st = for_each_line(&p, |l| out.push(l.to_string())).unwrap();
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir(&dir);
        (out, st)
    }

    #[test]
    fn plain_and_gzip_give_the_same_lines() {
        let text = b"{\"a\":1}\r\n\n{\"b\":2}";
        let (plain, st) = lines_of(text);
        assert_eq!(plain, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(st.lines, 2);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        let (unzipped, _) = lines_of(&gz.finish().unwrap());
        assert_eq!(unzipped, plain);
    }

    #[test]
    fn over_long_and_non_utf8_lines_are_skipped_and_counted() {
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\n\xff\xfe\n{\"ok\":1}\n");
        let (lines, st) = lines_of(&text);
        assert_eq!(lines, ["{\"ok\":1}"]);
        assert_eq!(st.skipped_lines, 2);
    }
}
