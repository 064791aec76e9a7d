//! Test vectors: real loopback captures (see `crates/proto/testdata/tls/README.md` for how each was made
//! and what tshark says of it), their connections taken apart into records and handshake
//! messages, and hand-built messages that follow the RFCs.

use pacstap_core::Direction::{self, ToClient, ToServer};

/// curl 7.88 / OpenSSL 3.0, `--tlsv1.2 --tls-max 1.2`, against `openssl s_server -www`.
pub const CURL_TLS12: &[u8] = include_bytes!("../../testdata/tls/curl-tls12.pcap");
/// curl 7.88 / OpenSSL 3.0, default (TLS 1.3).
pub const CURL_TLS13: &[u8] = include_bytes!("../../testdata/tls/curl-tls13.pcap");
/// `openssl s_client -servername pacs.example.test -alpn h2,http/1.1` (TLS 1.3).
pub const SCLIENT_ALPN: &[u8] = include_bytes!("../../testdata/tls/s_client-alpn.pcap");
/// Two `openssl s_client -tls1_2` connections: a full handshake, then a resumed session.
pub const SCLIENT_RESUME: &[u8] = include_bytes!("../../testdata/tls/s_client-tls12-resume.pcap");
/// `openssl s_client -groups P-256:X25519` against a server that accepts X25519 only:
/// HelloRetryRequest, second ClientHello, TLS 1.3.
pub const SCLIENT_HRR: &[u8] = include_bytes!("../../testdata/tls/s_client-hrr.pcap");

/// SHA-256 of `testdata/tls/server-cert.pem` in DER (`openssl x509 -outform DER | sha256sum`).
pub const SERVER_CERT_SHA256: &str = "bdce21b03eb75dd70315ab437c2c45679281a4cd410359619f433d1fd5f48173";

/// An SSLv2-compatible ClientHello (RFC 5246 Appendix E.2): 2-byte length with the high bit
/// set, msg_type 1, version 3.1, 7 three-byte cipher specs, no session id, 16-byte challenge.
pub const SSLV2_HELLO: [u8; 48] = [
    0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, // header
    0x00, 0x00, 0x39, 0x00, 0x00, 0x38, 0x00, 0x00, 0x35, 0x00, 0x00, 0x16, 0x00, 0x00, 0x13, 0x00, 0x00, 0x0a, 0x07,
    0x00, 0xc0, // cipher specs
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, // challenge
];

/// One TCP connection of a capture: its payload-carrying segments in capture order.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub segments: Vec<(Direction, Vec<u8>)>,
    pub toserver: Vec<Vec<u8>>,
    pub toclient: Vec<Vec<u8>>,
}

impl Capture {
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.segments
            .iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, b)| b.len() as u64)
            .sum()
    }
}

/// The connections of a capture, in order of their first segment; the server is port 8443.
pub fn captures(pcap: &[u8]) -> Vec<Capture> {
    crate::testutil::pcap_connections(pcap, 8443)
        .into_iter()
        .map(|segments| {
            let mut c = Capture::default();
            for s in segments {
                match s.dir {
                    ToServer => c.toserver.push(s.bytes.clone()),
                    ToClient => c.toclient.push(s.bytes.clone()),
                }
                c.segments.push((s.dir, s.bytes));
            }
            c
        })
        .collect()
}

/// The first connection of a capture.
pub fn capture(pcap: &[u8]) -> Capture {
    captures(pcap).remove(0)
}

/// The records of one direction's byte stream: `(content type, fragment)`.
pub fn records(payloads: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    let stream: Vec<u8> = payloads.concat();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[at + 3], stream[at + 4]]));
        out.push((stream[at], stream[at + 5..at + 5 + len].to_vec()));
        at += 5 + len;
    }
    out
}

/// The clear-text handshake messages of one direction (up to its ChangeCipherSpec or first
/// application data record): `(type, body)`.
pub fn handshake_messages(payloads: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    let mut hs = Vec::new();
    for (t, frag) in records(payloads) {
        if t != 22 {
            break;
        }
        hs.extend_from_slice(&frag);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= hs.len() {
        let len = u32::from_be_bytes([0, hs[at + 1], hs[at + 2], hs[at + 3]]) as usize;
        out.push((hs[at], hs[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    out
}

/// Wrap `body` in a handshake header of type `t`.
pub fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![t];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// Cut `data` into records of content type `t` carrying at most `max` bytes each.
pub fn records_of(t: u8, data: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for frag in data.chunks(max) {
        out.extend_from_slice(&[t, 3, 3]);
        out.extend_from_slice(&(frag.len() as u16).to_be_bytes());
        out.extend_from_slice(frag);
    }
    out
}

fn push_ext(out: &mut Vec<u8>, t: u16, data: &[u8]) {
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn u16_list(values: &[u16], len_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let n = values.len() * 2;
    if len_bytes == 1 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// A Chrome-like TLS 1.3 ClientHello body with GREASE and a post-quantum key share: the
/// cipher, extension and signature algorithm lists of the JA4 specification's example
/// (FoxIO JA4 technical details), with an X25519MLKEM768 (0x11ec) share of 1216 bytes
/// (draft-kwiatkowski-tls-ecdhe-mlkem: 1184-byte ML-KEM-768 key + 32-byte X25519 key), so the
/// message is ~1.8 KB like today's browsers'.
pub fn chrome_pq_client_hello(sni: &str) -> Vec<u8> {
    let ciphers: [u16; 16] = [
        0x5a5a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
        0x002f, 0x0035,
    ];
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]);
    body.push(32);
    body.extend_from_slice(&[0x22; 32]);
    body.extend_from_slice(&u16_list(&ciphers, 2));
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    for t in [
        0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01,
        0x000b, 0x000a, 0x0015, 0xfafa,
    ] {
        let data: Vec<u8> = match t {
            0x0000 => {
                let mut d = ((sni.len() + 3) as u16).to_be_bytes().to_vec();
                d.push(0);
                d.extend_from_slice(&(sni.len() as u16).to_be_bytes());
                d.extend_from_slice(sni.as_bytes());
                d
            }
            0x0033 => {
                let mut shares = Vec::new();
                shares.extend_from_slice(&[0x3a, 0x3a, 0, 1, 0]);
                shares.extend_from_slice(&[0x11, 0xec, 0x04, 0xc0]);
                shares.extend_from_slice(&[0x33; 1216]);
                shares.extend_from_slice(&[0x00, 0x1d, 0, 32]);
                shares.extend_from_slice(&[0x44; 32]);
                let mut d = (shares.len() as u16).to_be_bytes().to_vec();
                d.extend_from_slice(&shares);
                d
            }
            0x0010 => vec![0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'],
            0x000d => u16_list(&[0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601], 2),
            0x002b => u16_list(&[0x6a6a, 0x0304, 0x0303], 1),
            0x000a => u16_list(&[0x4a4a, 0x11ec, 0x001d, 0x0017, 0x0018], 2),
            0x000b => vec![1, 0],
            0x002d => vec![1, 1],
            0x0005 => vec![1, 0, 0, 0, 0],
            0x0017 | 0x0012 | 0x0023 | 0x2a2a => vec![],
            0xfafa => vec![0],
            0xff01 => vec![0],
            0x001b => vec![2, 0, 2],
            0x4469 => vec![0, 3, 2, b'h', b'2'],
            0x0015 => vec![0; 300],
            _ => unreachable!(),
        };
        push_ext(&mut exts, t, &data);
    }
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    body
}

/// A minimal TLS 1.2 ServerHello body.
pub fn server_hello_body(version: u16, session_id: &[u8], cipher: u16, exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x55; 32]);
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    let mut e = Vec::new();
    for (t, d) in exts {
        push_ext(&mut e, *t, d);
    }
    body.extend_from_slice(&(e.len() as u16).to_be_bytes());
    body.extend_from_slice(&e);
    body
}
