//! Plain iteration speed of `PcapFileSource` against pcap-parser's own streaming reader, on a
//! 256 MiB file of 1514-byte frames (page-cached after the first pass). Was `pacstap-capture`'s
//! ignored test `file::tests::throughput`.

use crate::Size;
use pacstap_capture::{PacketSource, PcapFileSource, BUFFER_SIZE};
use pcap_parser::traits::PcapReaderIterator;
use std::fs::File;
use std::path::PathBuf;

/// A legacy pcap (microseconds, little-endian, Ethernet, snaplen 65535) of `n` copies of `frame`.
fn pcap_file(frame: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + n * (16 + frame.len()));
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// Removed again when the measurement ends (or panics).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

pub fn run(size: Size) {
    let frame = vec![0x42u8; 1514];
    let n = size.pick(256 << 20, 1 << 16) / (1514 + 16);
    let bytes = pcap_file(&frame, n);
    let t = TempFile(std::env::temp_dir().join(format!("pacstap-bench-capture-{}.pcap", std::process::id())));
    std::fs::write(&t.0, &bytes).expect("write the bench pcap");
    let len = bytes.len() as f64;
    drop(bytes);
    for round in 0..size.pick(3, 1) {
        let start = std::time::Instant::now();
        let mut s = PcapFileSource::open(&t.0).expect("open");
        let mut sum = 0u64;
        while let Some(f) = s.next_frame() {
            sum += u64::from(std::hint::black_box(f.data).first().copied().unwrap_or(0));
        }
        let ours = start.elapsed().as_secs_f64();
        assert_eq!(s.frames(), n as u64);

        let start = std::time::Instant::now();
        let mut r = pcap_parser::LegacyPcapReader::new(BUFFER_SIZE, File::open(&t.0).expect("open")).expect("reader");
        let mut theirs_sum = 0u64;
        loop {
            match r.next() {
                Ok((used, block)) => {
                    if let pcap_parser::PcapBlockOwned::Legacy(b) = block {
                        theirs_sum += u64::from(std::hint::black_box(b.data).first().copied().unwrap_or(0));
                    }
                    r.consume(used);
                }
                Err(pcap_parser::PcapError::Eof) => break,
                Err(pcap_parser::PcapError::Incomplete(_)) => r.refill().expect("refill"),
                Err(e) => panic!("{e:?}"),
            }
        }
        let theirs = start.elapsed().as_secs_f64();
        assert_eq!(sum, theirs_sum);
        println!(
            "round {round}: PcapFileSource {:.2} GB/s ({:.1} ns/frame), pcap-parser LegacyPcapReader {:.2} GB/s",
            len / ours / 1e9,
            ours * 1e9 / n as f64,
            len / theirs / 1e9
        );
    }
}
