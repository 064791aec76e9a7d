//! Client and server fingerprints: JA3 / JA3S (salesforce/ja3) and JA4 (FoxIO JA4, TLS client).
//!
//! GREASE values (RFC 8701) are removed everywhere, as all three definitions require.

use super::parser::{ext, hex, is_grease, version, ClientHello, ServerHello};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Decimal values joined by `-`, GREASE removed.
fn dash_joined<T: Copy + Into<u16>>(values: &[T]) -> String {
    let mut s = String::new();
    for v in values.iter().map(|&v| v.into()).filter(|&v| !is_grease(v)) {
        if !s.is_empty() {
            s.push('-');
        }
        let _ = write!(s, "{v}");
    }
    s
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// The JA3 string: `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`,
/// decimal values dash-joined, GREASE removed; empty fields stay empty (`771,4865,,,`).
pub fn ja3_string(ch: &ClientHello) -> String {
    format!(
        "{},{},{},{},{}",
        ch.version,
        dash_joined(&ch.ciphers),
        dash_joined(&ch.extensions),
        dash_joined(&ch.groups),
        dash_joined(&ch.ec_point_formats)
    )
}

/// JA3: `(md5 hex of the string, string)`.
pub fn ja3(ch: &ClientHello) -> (String, String) {
    let s = ja3_string(ch);
    (md5_hex(&s), s)
}

/// JA3S: `(md5 hex, "SSLVersion,Cipher,Extensions")` of a ServerHello (legacy version).
pub fn ja3s(sh: &ServerHello) -> (String, String) {
    let s = format!("{},{},{}", sh.version, sh.cipher, dash_joined(&sh.extensions));
    (md5_hex(&s), s)
}

/// JA4's two-character version: the highest non-GREASE `supported_versions` value, else the
/// legacy version (JA4 spec "TLS Version"); `00` when unknown.
fn ja4_version(ch: &ClientHello) -> &'static str {
    let v = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(ch.version);
    match v {
        version::TLS_1_3 => "13",
        version::TLS_1_2 => "12",
        version::TLS_1_1 => "11",
        version::TLS_1_0 => "10",
        version::SSL_3_0 => "s3",
        0x0200 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// JA4's ALPN part: first and last character of the first ALPN value; `00` when there is none
/// or it is empty; when either end byte is not ASCII alphanumeric, the first and last
/// characters of the value's hex representation instead.
fn ja4_alpn(ch: &ClientHello) -> String {
    let Some(first) = ch.alpn.first() else {
        return "00".into();
    };
    let (Some(&a), Some(&b)) = (first.first(), first.last()) else {
        return "00".into();
    };
    if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() {
        let mut s = String::with_capacity(2);
        s.push(char::from(a));
        s.push(char::from(b));
        s
    } else {
        let h = hex(&[a, b]);
        let mut s = String::with_capacity(2);
        s.push(h.chars().next().unwrap_or('0'));
        s.push(h.chars().last().unwrap_or('0'));
        s
    }
}

/// 4-digit lowercase hex values, comma-joined.
fn hex_list(values: impl Iterator<Item = u16>) -> String {
    let mut s = String::new();
    for v in values {
        if !s.is_empty() {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// First 12 hex characters of SHA-256, or `000000000000` for an empty list.
fn truncated_sha256(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let mut h = hex(&Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

/// The JA4 raw parts `(a, b, c)`: `b` is the sorted cipher list, `c` the sorted extension list
/// (without SNI and ALPN) then `_` and the signature algorithms in wire order (the `_` part
/// only when there are any). Both lists drop GREASE.
pub fn ja4_parts(ch: &ClientHello, transport: char) -> (String, String, String) {
    let mut ciphers: Vec<u16> = ch.ciphers.iter().copied().filter(|&c| !is_grease(c)).collect();
    let exts: Vec<u16> = ch.extensions.iter().copied().filter(|&e| !is_grease(e)).collect();
    let sni = if exts.contains(&ext::SERVER_NAME) { 'd' } else { 'i' };
    let a = format!(
        "{transport}{}{sni}{:02}{:02}{}",
        ja4_version(ch),
        ciphers.len().min(99),
        exts.len().min(99),
        ja4_alpn(ch)
    );
    ciphers.sort_unstable();
    let b = hex_list(ciphers.into_iter());
    let mut sorted: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != ext::SERVER_NAME && e != ext::ALPN)
        .collect();
    sorted.sort_unstable();
    let mut c = hex_list(sorted.into_iter());
    let sigs: Vec<u16> = ch.sig_algs.iter().copied().filter(|&s| !is_grease(s)).collect();
    if !c.is_empty() && !sigs.is_empty() {
        c.push('_');
        c.push_str(&hex_list(sigs.into_iter()));
    }
    (a, b, c)
}

/// JA4 (TLS client, over TCP): `a_b_c` with `b` and `c` hashed (first 12 hex of SHA-256).
pub fn ja4(ch: &ClientHello) -> String {
    let (a, b, c) = ja4_parts(ch, 't');
    format!("{a}_{}_{}", truncated_sha256(&b), truncated_sha256(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tls::*;
    use crate::tls::parser::{parse_client_hello, parse_server_hello};

    fn client_hello(pcap: &[u8]) -> ClientHello {
        let msgs = handshake_messages(&capture(pcap).toserver);
        parse_client_hello(&msgs[0].1).unwrap()
    }

    fn server_hello(pcap: &[u8]) -> ServerHello {
        let msgs = handshake_messages(&capture(pcap).toclient);
        parse_server_hello(&msgs[0].1).unwrap()
    }

    /// JA3 / JA3S strings and hashes as tshark 4.0.17 prints them for the same captures
    /// (`-e tls.handshake.ja3 -e tls.handshake.ja3_full`, `… ja3s …`; testdata/tls/README.md).
    #[test]
    fn ja3_matches_tshark() {
        let cases: [(&[u8], &str, &str); 3] = [
            (
                CURL_TLS12,
                "87b9bfc7da97115ed2276737b09f8d74",
                "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-16-22-23-13,29-23-30-25-24,0-1-2",
            ),
            (
                CURL_TLS13,
                "0149f47eabf9a20d0893e2a44e5a6323",
                "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-16-22-23-49-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2",
            ),
            (
                SCLIENT_ALPN,
                "5a1edc7f170af1014fc65c994878e63c",
                "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-16-22-23-13-43-45-51,29-23-30-25-24-256-257-258-259-260,0-1-2",
            ),
        ];
        for (pcap, hash, full) in cases {
            let (h, s) = ja3(&client_hello(pcap));
            assert_eq!(s, full);
            assert_eq!(h, hash);
        }
        let (h, s) = ja3s(&server_hello(CURL_TLS12));
        assert_eq!(
            (h.as_str(), s.as_str()),
            ("405adaa88faa24941b8a00ebff13546a", "771,49196,65281-11-16-23")
        );
        let (h, s) = ja3s(&server_hello(CURL_TLS13));
        assert_eq!(
            (h.as_str(), s.as_str()),
            ("15af977ce25de452b96affa2addb1036", "771,4866,43-51")
        );
    }

    /// The JA4 specification's worked example (FoxIO JA4 technical details: a Chrome hello
    /// with GREASE), rebuilt from its cipher, extension and signature algorithm lists.
    #[test]
    fn ja4_spec_example() {
        let ch = parse_client_hello(&chrome_pq_client_hello("example.com")).unwrap();
        assert_eq!(ch.malformed, 0);
        let (a, b, c) = ja4_parts(&ch, 't');
        assert_eq!(a, "t13d1516h2");
        assert_eq!(
            b,
            "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
        );
        assert_eq!(
            c,
            "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
        assert_eq!(ja4(&ch), "t13d1516h2_8daaf6152771_e5627efa2ab1");

        // Without signature algorithms the `_` part is left out (the spec's QUIC variant of
        // the same example hashes to 6d807ffa2a79).
        let mut no_sigs = ch.clone();
        no_sigs.sig_algs.clear();
        assert_eq!(ja4(&no_sigs), "t13d1516h2_8daaf6152771_6d807ffa2a79");
        // No SNI → `i`; no ALPN → `00`.
        let mut bare = ch.clone();
        bare.extensions.retain(|&e| e != 0 && e != 16);
        bare.alpn.clear();
        assert!(ja4(&bare).starts_with("t13i151400_8daaf6152771_"));
    }

    #[test]
    fn ja4_edge_cases() {
        // Nothing at all: the spec's all-zero form.
        let empty = ClientHello {
            version: 0x0301,
            ..ClientHello::default()
        };
        assert_eq!(ja4(&empty), "t10i000000_000000000000_000000000000");
        assert_eq!(ja3_string(&empty), "769,,,,");

        let mut ch = empty.clone();
        ch.version = 0x0300;
        ch.alpn = vec![vec![0xab, 0x01, 0xcd]];
        assert!(ja4(&ch).starts_with("ts3i0000ad_"), "{}", ja4(&ch));
        ch.alpn = vec![b"h".to_vec()];
        assert!(ja4(&ch).starts_with("ts3i0000hh_"));
        ch.alpn = vec![vec![]];
        assert!(ja4(&ch).starts_with("ts3i000000_"));
        ch.alpn = vec![b"x-9".to_vec()];
        assert!(ja4(&ch).starts_with("ts3i0000x9_"));
        ch.alpn = vec![b"h2!".to_vec()];
        assert!(ja4(&ch).starts_with("ts3i000061_"), "{}", ja4(&ch)); // 0x68 .. 0x21

        // Counts cap at 99; supported_versions wins over the legacy version, GREASE ignored.
        ch.ciphers = (1..=150).collect();
        ch.extensions = (100..250).collect();
        ch.supported_versions = vec![0x7a7a, 0x0303, 0x0302];
        assert!(ja4(&ch).starts_with("t12i9999"), "{}", ja4(&ch));
        ch.supported_versions = vec![0x7f1c];
        assert!(ja4(&ch).starts_with("t00i9999"));
    }

    /// JA4 of the real captures, computed independently from tshark's decoded fields with the
    /// script in testdata/tls/README.md (tshark 4.0 has no JA4 field).
    #[test]
    fn ja4_of_captures() {
        assert_eq!(ja4(&client_hello(CURL_TLS12)), "t12d2807h2_d943125447b4_a44c6288192a");
        assert_eq!(ja4(&client_hello(CURL_TLS13)), "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6");
        assert_eq!(ja4(&client_hello(SCLIENT_ALPN)), "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4");
    }
}
