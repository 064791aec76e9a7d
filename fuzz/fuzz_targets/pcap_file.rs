//! Arbitrary bytes as a pcap / pcapng file: opening and iterating never panics or loops.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_capture::{PacketSource, PcapFileSource};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile();
    f.1.write_all(data).unwrap();
    f.1.flush().unwrap();
    if let Ok(mut src) = PcapFileSource::open(&f.0) {
        let mut n = 0u64;
        while let Some(frame) = src.next_frame() {
            assert!(frame.data.len() <= data.len());
            n += 1;
        }
        assert!(n <= data.len() as u64);
    }
    let _ = std::fs::remove_file(&f.0);
});

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("pacstap-fuzz-{}.pcap", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    (path, f)
}
