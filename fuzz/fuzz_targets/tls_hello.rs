//! ClientHello / ServerHello / Certificate bodies, record headers and the probe on any bytes:
//! never panic; the fingerprints of whatever parses are well-formed; a whole ClientHello read
//! as a cut one names the same server.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_proto::tls::{
    ja3, ja3s, ja4, parse_certificate, parse_client_hello, parse_client_hello_prefix, parse_record_header,
    parse_server_hello, probe,
};

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_record_header(data);
    if let Some(ch) = parse_client_hello(data) {
        let (hash, _) = ja3(&ch);
        assert_eq!(hash.len(), 32);
        let fp = ja4(&ch);
        assert_eq!(fp.len(), 36, "{fp}");
        if ch.malformed == 0 && !ch.extensions.is_empty() {
            let cut = parse_client_hello_prefix(data).expect("a whole ClientHello is its own prefix");
            assert_eq!(cut.sni, ch.sni);
        }
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        let _ = parse_client_hello_prefix(data.get(..cut).unwrap_or_default());
    }
    if let Some(sh) = parse_server_hello(data) {
        let _ = ja3s(&sh);
    }
    let _ = parse_certificate(data);
});
