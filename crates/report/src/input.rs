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

/// Calls `each` with every line of `path` (gzip-compressed or plain), without its line end.
pub fn for_each_line(path: &Path, mut each: impl FnMut(&str)) -> Result<LineStats, ReportError> {
    let io_err = |source| ReportError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let raw = head.chain(file);
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut stats = LineStats::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        // At most MAX_LINE + 1 bytes per read: a longer line is drained without being kept.
        let got = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io_err)?;
        if got == 0 {
            break;
        }
        stats.lines += 1;
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            stats.skipped_lines += 1;
            drain_line(&mut reader).map_err(io_err)?;
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        match std::str::from_utf8(&buf) {
            Ok(line) if line.trim().is_empty() => stats.lines -= 1,
            Ok(line) => each(line),
            Err(_) => stats.skipped_lines += 1,
        }
    }
    Ok(stats)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
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
        let dir = std::env::temp_dir().join(format!("pacstap-report-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{}", bytes.len()));
        std::fs::write(&p, bytes).unwrap();
        let mut out = Vec::new();
        let st = for_each_line(&p, |l| out.push(l.to_string())).unwrap();
        let _ = std::fs::remove_file(&p);
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
