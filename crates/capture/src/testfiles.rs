//! Hand-built pcap and pcapng files for the tests, byte by byte from the drafts, so the tests do
//! not trust the writer they would be checking against.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A file in the temp directory, removed on drop.
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    pub(crate) fn new(bytes: &[u8]) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pacstap-capture-{}-{n}.pcap", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        TempFile(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn put32(out: &mut Vec<u8>, v: u32, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn put16(out: &mut Vec<u8>, v: u16, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

/// A legacy pcap file (draft-ietf-opsawg-pcap §4–5). Records: (seconds, fraction, data, orig_len).
pub(crate) fn legacy(
    be: bool,
    nanos: bool,
    linktype: u32,
    snaplen: u32,
    records: &[(u32, u32, &[u8], u32)],
) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }, be);
    put16(&mut out, 2, be);
    put16(&mut out, 4, be);
    put32(&mut out, 0, be);
    put32(&mut out, 0, be);
    put32(&mut out, snaplen, be);
    put32(&mut out, linktype, be);
    for (sec, frac, data, orig) in records {
        put32(&mut out, *sec, be);
        put32(&mut out, *frac, be);
        put32(&mut out, data.len() as u32, be);
        put32(&mut out, *orig, be);
        out.extend_from_slice(data);
    }
    out
}

/// A pcapng writer (draft-ietf-opsawg-pcapng §3–4), in either byte order.
pub(crate) struct NgWriter {
    pub(crate) bytes: Vec<u8>,
    be: bool,
}

impl NgWriter {
    pub(crate) fn new(be: bool) -> NgWriter {
        NgWriter { bytes: Vec::new(), be }
    }

    pub(crate) fn set_big_endian(&mut self, be: bool) {
        self.be = be;
    }

    /// One block: type, total length, body padded to 32 bits, total length.
    fn block(&mut self, block_type: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        let be = self.be;
        put32(&mut self.bytes, block_type, be);
        put32(&mut self.bytes, total, be);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        put32(&mut self.bytes, total, be);
    }

    fn option(&self, out: &mut Vec<u8>, code: u16, value: &[u8]) {
        put16(out, code, self.be);
        put16(out, value.len() as u16, self.be);
        out.extend_from_slice(value);
        out.resize(out.len() + value.len().div_ceil(4) * 4 - value.len(), 0);
    }

    pub(crate) fn shb(&mut self) {
        let mut body = Vec::new();
        put32(&mut body, 0x1A2B_3C4D, self.be);
        put16(&mut body, 1, self.be);
        put16(&mut body, 0, self.be);
        body.extend_from_slice(&(-1i64).to_le_bytes());
        self.option(&mut body, 4, b"pacstap test"); // shb_userappl
        self.option(&mut body, 0, &[]);
        self.block(0x0A0D_0D0A, &body);
    }

    pub(crate) fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut body = Vec::new();
        put16(&mut body, linktype, self.be);
        put16(&mut body, 0, self.be);
        put32(&mut body, snaplen, self.be);
        self.option(&mut body, 2, b"eth0"); // if_name
        if let Some(r) = tsresol {
            self.option(&mut body, 9, &[r]);
        }
        if let Some(o) = tsoffset {
            let v = if self.be { o.to_be_bytes() } else { o.to_le_bytes() };
            self.option(&mut body, 14, &v);
        }
        self.option(&mut body, 0, &[]);
        self.block(1, &body);
    }

    pub(crate) fn epb(&mut self, if_id: u32, ts: u64, data: &[u8], orig_len: u32) {
        let mut body = Vec::new();
        put32(&mut body, if_id, self.be);
        put32(&mut body, (ts >> 32) as u32, self.be);
        put32(&mut body, ts as u32, self.be);
        put32(&mut body, data.len() as u32, self.be);
        put32(&mut body, orig_len, self.be);
        body.extend_from_slice(data);
        body.resize(body.len().div_ceil(4) * 4, 0);
        self.option(&mut body, 2, &0x1u32.to_le_bytes()); // epb_flags: inbound
        self.option(&mut body, 0, &[]);
        self.block(6, &body);
    }

    pub(crate) fn spb(&mut self, data: &[u8], orig_len: u32) {
        let mut body = Vec::new();
        put32(&mut body, orig_len, self.be);
        body.extend_from_slice(data);
        self.block(3, &body);
    }

    /// A Name Resolution Block with one IPv4 record (§4.5): must be skipped.
    pub(crate) fn nrb(&mut self) {
        let mut body = Vec::new();
        put16(&mut body, 1, self.be);
        put16(&mut body, 9, self.be);
        body.extend_from_slice(&[10, 0, 0, 1, b'p', b'a', b'c', b's', 0, 0, 0, 0]);
        put32(&mut body, 0, self.be);
        self.block(4, &body);
    }

    /// An Interface Statistics Block (§4.6): must be skipped.
    pub(crate) fn isb(&mut self) {
        let mut body = Vec::new();
        put32(&mut body, 0, self.be);
        put32(&mut body, 0, self.be);
        put32(&mut body, 0, self.be);
        self.block(5, &body);
    }
}
