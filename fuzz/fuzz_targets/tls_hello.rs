//! ClientHello / ServerHello / Certificate bodies, record headers and the probe on any bytes:
//! never panic; the fingerprints of whatever parses are well-formed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::tls::{
    ja3, ja3s, ja4, parse_certificate, parse_client_hello, parse_record_header, parse_server_hello, probe,
};

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_record_header(data);
    if let Some(ch) = parse_client_hello(data) {
        let (hash, _) = ja3(&ch);
        assert_eq!(hash.len(), 32);
        let fp = ja4(&ch);
        assert_eq!(fp.len(), 36, "{fp}");
    }
    if let Some(sh) = parse_server_hello(data) {
        let _ = ja3s(&sh);
    }
    let _ = parse_certificate(data);
});
