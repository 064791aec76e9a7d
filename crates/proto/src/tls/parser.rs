//! Pure TLS parsing: record headers (RFC 8446 §5.1, RFC 5246 §6.2), the content probe, and
//! the handshake messages a tap can read — ClientHello, ServerHello, and (TLS ≤ 1.2, where it
//! is sent in the clear) Certificate — summarised with tls-parser.
//!
//! Everything here takes complete byte slices and keeps no state; reassembly across records
//! and TCP segments is `stream`'s job.

use crate::Probe;
use sha2::{Digest, Sha256};
use tls_parser::{
    parse_tls_client_hello_extension, parse_tls_handshake_client_hello, parse_tls_handshake_msg_certificate,
    parse_tls_handshake_server_hello, parse_tls_server_hello_extension, SNIType, TlsCipherSuite, TlsExtension,
    TlsMessageHandshake,
};

/// Record content type (RFC 8446 §5.1; heartbeat: RFC 6520). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType(pub u8);

impl ContentType {
    pub const CHANGE_CIPHER_SPEC: ContentType = ContentType(20);
    pub const ALERT: ContentType = ContentType(21);
    pub const HANDSHAKE: ContentType = ContentType(22);
    pub const APPLICATION_DATA: ContentType = ContentType(23);
    pub const HEARTBEAT: ContentType = ContentType(24);
}

/// Handshake message type (RFC 8446 §4, RFC 5246 §7.4). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    pub const CLIENT_HELLO: HandshakeType = HandshakeType(1);
    pub const SERVER_HELLO: HandshakeType = HandshakeType(2);
    pub const NEW_SESSION_TICKET: HandshakeType = HandshakeType(4);
    pub const CERTIFICATE: HandshakeType = HandshakeType(11);
    pub const SERVER_KEY_EXCHANGE: HandshakeType = HandshakeType(12);
    pub const SERVER_HELLO_DONE: HandshakeType = HandshakeType(14);
    pub const CLIENT_KEY_EXCHANGE: HandshakeType = HandshakeType(16);
    pub const FINISHED: HandshakeType = HandshakeType(20);
}

/// Protocol versions on the wire (RFC 8446 §4.2.1, RFC 5246 Appendix E).
pub mod version {
    pub const SSL_3_0: u16 = 0x0300;
    pub const TLS_1_0: u16 = 0x0301;
    pub const TLS_1_1: u16 = 0x0302;
    pub const TLS_1_2: u16 = 0x0303;
    pub const TLS_1_3: u16 = 0x0304;
}

/// Bytes of a record header: type (1), legacy version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;

/// Largest record a peer may send: TLSCiphertext.length ≤ 2^14 + 2048 (RFC 5246 §6.2.3; TLS
/// 1.3 lowers it to 2^14 + 256, RFC 8446 §5.2). Anything longer is not a record header.
pub const MAX_RECORD_LEN: u16 = (1 << 14) + 2048;

/// Largest plaintext fragment, TLSPlaintext.length ≤ 2^14 (RFC 8446 §5.1): the bound for the
/// record carrying a ClientHello.
pub const MAX_PLAINTEXT_LEN: u16 = 1 << 14;

/// Bytes of a handshake message header: type (1), length (3).
pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// The smallest ClientHello body: legacy_version (2), random (32), session id length (1),
/// cipher suites length (2), compression methods length (1), with empty lists (RFC 8446
/// §4.1.2). Used by the probe only, to refuse impossible lengths.
const MIN_CLIENT_HELLO_BODY: u32 = 38;

/// The ServerHello random that marks a HelloRetryRequest: SHA-256("HelloRetryRequest")
/// (RFC 8446 §4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11,
    0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Cap on the ALPN protocol names kept from a ClientHello for the event. Browsers offer 2-3;
/// the extension allows ~32k one-byte names.
pub const MAX_ALPN_NAMES: usize = 16;

/// Cap on the SNI host name kept: a DNS name is at most 253 characters (RFC 1035 §2.3.4); the
/// extension allows 2^16 - 1 bytes.
pub const MAX_SNI_BYTES: usize = 255;

/// Extension type codes used here (IANA TLS ExtensionType Values).
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// A plausible record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: ContentType,
    pub version: u16,
    pub length: u16,
}

/// Read a record header from the first 5 bytes of `b`, if they are plausible: content type
/// 20-24, version 3.0-3.4 (SSL 3.0 to TLS 1.3's 0x0303/0x0301 legacy values), length at most
/// [`MAX_RECORD_LEN`], and not empty for the types that may not be (RFC 8446 §5.1: handshake
/// and alert fragments are never zero-length; a change_cipher_spec is one byte).
pub fn parse_record_header(b: &[u8]) -> Option<RecordHeader> {
    let h: [u8; RECORD_HEADER_LEN] = b.get(..RECORD_HEADER_LEN)?.try_into().ok()?;
    let [t, major, minor, l0, l1] = h;
    let length = u16::from_be_bytes([l0, l1]);
    let content_type = ContentType(t);
    let plausible_type = (20..=24).contains(&t);
    let non_empty = length > 0
        || !matches!(
            content_type,
            ContentType::CHANGE_CIPHER_SPEC | ContentType::ALERT | ContentType::HANDSHAKE
        );
    if !plausible_type || major != 3 || minor > 4 || length > MAX_RECORD_LEN || !non_empty {
        return None;
    }
    Some(RecordHeader {
        content_type,
        version: u16::from_be_bytes([major, minor]),
        length,
    })
}

/// Content probe on a flow's first bytes: a handshake record (`16 03 00..04`) of plausible
/// length whose first message is a ClientHello (type 1) → `Yes`; a consistent shorter prefix →
/// `NeedMore`; anything else (including an SSLv2-compatible hello, `80 xx 01`) → `No`.
///
/// With more than 6 bytes the ClientHello length and legacy version are checked too.
pub fn probe(data: &[u8]) -> Probe {
    let at = |i: usize| data.get(i).copied();
    if at(0).is_some_and(|b| b != ContentType::HANDSHAKE.0)
        || at(1).is_some_and(|b| b != 3)
        || at(2).is_some_and(|b| b > 4)
    {
        return Probe::No;
    }
    if let (Some(l0), Some(l1)) = (at(3), at(4)) {
        let len = u16::from_be_bytes([l0, l1]);
        if len == 0 || len > MAX_PLAINTEXT_LEN {
            return Probe::No;
        }
    }
    if at(5).is_some_and(|b| b != HandshakeType::CLIENT_HELLO.0) {
        return Probe::No;
    }
    if let (Some(a), Some(b), Some(c)) = (at(6), at(7), at(8)) {
        let len = u32::from_be_bytes([0, a, b, c]);
        if len < MIN_CLIENT_HELLO_BODY {
            return Probe::No;
        }
    }
    // legacy_version of the ClientHello: 3.0 .. 3.4.
    if at(9).is_some_and(|b| b != 3) || at(10).is_some_and(|b| b > 4) {
        return Probe::No;
    }
    if data.len() < 6 {
        Probe::NeedMore
    } else {
        Probe::Yes
    }
}

/// The length (after its 2-byte header) of an SSLv2-compatible ClientHello at the start of
/// `b` (RFC 5246 Appendix E.2; SSL 2.0 CLIENT-HELLO): a 2-byte length with the high bit set,
/// msg_type 1, version 0x0002 or 3.x, cipher-spec length a non-zero multiple of 3, session id
/// length 0 or 16, challenge length 16-32, and the lengths adding up. Needs 11 bytes.
pub fn sslv2_client_hello_len(b: &[u8]) -> Option<u16> {
    let h: [u8; 11] = b.get(..11)?.try_into().ok()?;
    #[expect(
        clippy::indexing_slicing,
        reason = "called with constant offsets 0-9 into the 11-byte array"
    )]
    let u16_at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let len = u16_at(0) & 0x7fff;
    let version_ok = matches!(u16_at(3), 0x0002 | 0x0300..=0x0304);
    let (specs, session, challenge) = (u16_at(5), u16_at(7), u16_at(9));
    let plausible = h[0] & 0x80 != 0
        && h[2] == 1
        && version_ok
        && specs > 0
        && specs.is_multiple_of(3)
        && (session == 0 || session == 16)
        && (16..=32).contains(&challenge)
        && u32::from(len) == 9 + u32::from(specs) + u32::from(session) + u32::from(challenge);
    plausible.then_some(len)
}

/// Whether `v` is a GREASE value (RFC 8701 §2: `0x?A?A` with both bytes equal: 0x0A0A,
/// 0x1A1A, … 0xFAFA). JA3 and JA4 remove these everywhere; Wireshark uses the same test.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// "SSL 3.0", "TLS 1.0" … "TLS 1.3", or `None` for any other value.
pub fn version_name(v: u16) -> Option<&'static str> {
    Some(match v {
        version::SSL_3_0 => "SSL 3.0",
        version::TLS_1_0 => "TLS 1.0",
        version::TLS_1_1 => "TLS 1.1",
        version::TLS_1_2 => "TLS 1.2",
        version::TLS_1_3 => "TLS 1.3",
        _ => return None,
    })
}

/// [`version_name`], or `0x….` for values outside the registry (e.g. TLS 1.3 drafts 0x7fXX).
pub fn version_string(v: u16) -> String {
    version_name(v).map_or_else(|| format!("0x{v:04x}"), str::to_string)
}

/// The IANA name of a cipher suite (`TLS_AES_128_GCM_SHA256`), if tls-parser knows it.
pub fn cipher_suite_name(id: u16) -> Option<&'static str> {
    TlsCipherSuite::from_id(id).map(|c| c.name)
}

/// Alert description names (RFC 8446 §6, RFC 5246 §7.2, RFC 7301 §3.2).
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

/// What a ClientHello says, in wire order, GREASE values included (the fingerprints drop them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// legacy_version (0x0303 for TLS 1.2 and 1.3 clients).
    pub version: u16,
    /// legacy_session_id, at most 32 bytes.
    pub session_id: Vec<u8>,
    pub ciphers: Vec<u16>,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    /// supported_groups (named curves), in order.
    pub groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub sig_algs: Vec<u16>,
    pub supported_versions: Vec<u16>,
    /// ALPN protocol names offered (the first [`MAX_ALPN_NAMES`]; each at most 255 bytes).
    pub alpn: Vec<Vec<u8>>,
    /// host_name from server_name, at most [`MAX_SNI_BYTES`].
    pub sni: Option<Vec<u8>>,
    /// Extensions whose contents did not parse, or bytes that did not fit the structure; the
    /// extension types still count for the fingerprints.
    pub malformed: u32,
}

/// What a ServerHello (or HelloRetryRequest) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    /// The random is the HelloRetryRequest marker (RFC 8446 §4.1.3).
    pub hello_retry: bool,
    pub session_id: Vec<u8>,
    pub cipher: u16,
    pub extensions: Vec<u16>,
    /// supported_versions selected_version (TLS 1.3).
    pub selected_version: Option<u16>,
    /// The protocol the server selected (TLS ≤ 1.2 ServerHello ALPN extension).
    pub alpn: Option<Vec<u8>>,
    /// pre_shared_key present: a TLS 1.3 resumption (RFC 8446 §4.2.11).
    pub psk: bool,
    pub malformed: u32,
}

impl ServerHello {
    /// The negotiated version: supported_versions (TLS 1.3), else the legacy version.
    pub fn negotiated_version(&self) -> u16 {
        self.selected_version.unwrap_or(self.version)
    }
}

/// The first certificate of a Certificate message (TLS ≤ 1.2 layout, RFC 5246 §7.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub sha256: [u8; 32],
    pub der_bytes: usize,
    pub chain_length: usize,
    /// From the X.509 body (RFC 5280 §4.1) when it parses; a tap still reports the fingerprint
    /// of a certificate it cannot read.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Validity bounds, seconds since the Unix epoch.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// subjectAltName dNSName entries (at most [`MAX_SAN_NAMES`]).
    pub dns_names: Vec<String>,
}

/// SAN names kept per certificate: enough to see what a portal claims to be, bounded against
/// certificates listing thousands of names.
pub const MAX_SAN_NAMES: usize = 16;
/// Characters kept of a subject or issuer DN (RFC 4514 text); real ones are under 200.
const MAX_DN_CHARS: usize = 256;

fn capped(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The extension blocks of a hello: `(type, whole extension including its 4-byte header)` in
/// order. Stops at a truncated extension and reports it.
fn extensions(block: &[u8]) -> (Vec<(u16, &[u8])>, bool) {
    let mut out = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let Some(&[t0, t1, l0, l1]) = rest.get(..4) else {
            return (out, true);
        };
        let total = 4 + usize::from(u16::from_be_bytes([l0, l1]));
        let Some(whole) = rest.get(..total) else {
            return (out, true);
        };
        out.push((u16::from_be_bytes([t0, t1]), whole));
        rest = rest.get(total..).unwrap_or_default();
    }
    (out, false)
}

/// Parse a ClientHello message body (after the 4-byte handshake header). `None` when the
/// fixed part does not parse; extension trouble is counted in [`ClientHello::malformed`].
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let (rest, ch) = parse_tls_handshake_client_hello(body).ok()?;
    let mut out = ClientHello {
        version: ch.version.0,
        session_id: ch.session_id.unwrap_or_default().to_vec(),
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        malformed: u32::from(!rest.is_empty()),
        ..ClientHello::default()
    };
    let (exts, truncated) = extensions(ch.ext.unwrap_or_default());
    out.malformed += u32::from(truncated);
    out.extensions = exts.iter().map(|(t, _)| *t).collect();
    for (t, whole) in exts {
        if !matches!(
            t,
            ext::SERVER_NAME
                | ext::SUPPORTED_GROUPS
                | ext::EC_POINT_FORMATS
                | ext::SIGNATURE_ALGORITHMS
                | ext::ALPN
                | ext::SUPPORTED_VERSIONS
        ) {
            continue;
        }
        match parse_tls_client_hello_extension(whole) {
            Ok((_, TlsExtension::SNI(names))) => {
                if let Some((_, name)) = names.iter().find(|(k, _)| *k == SNIType::HostName) {
                    out.sni = Some(name.get(..MAX_SNI_BYTES).unwrap_or(name).to_vec());
                }
            }
            Ok((_, TlsExtension::EllipticCurves(groups))) => out.groups = groups.iter().map(|g| g.0).collect(),
            Ok((_, TlsExtension::EcPointFormats(f))) => out.ec_point_formats = f.to_vec(),
            Ok((_, TlsExtension::SignatureAlgorithms(s))) => out.sig_algs = s,
            Ok((_, TlsExtension::ALPN(names))) => {
                out.alpn = names.iter().take(MAX_ALPN_NAMES).map(|n| n.to_vec()).collect();
            }
            Ok((_, TlsExtension::SupportedVersions(v))) => out.supported_versions = v.iter().map(|v| v.0).collect(),
            _ => out.malformed += 1,
        }
    }
    Some(out)
}

/// What the first bytes of a ClientHello body cut by a capture gap (a short snaplen, a lost
/// segment) still say: its version, session id and ciphers, and the extensions that were
/// captured whole (the server name is usually the first). `None` when the fixed part up to the
/// extensions' length was not all captured.
///
/// Why rebuild rather than parse in place: tls-parser reads only a whole message; the prefix
/// trimmed to its whole extensions, with the extensions' length set to theirs, is one.
pub fn parse_client_hello_prefix(prefix: &[u8]) -> Option<ClientHello> {
    // legacy_version (2), random (32), then session id, ciphers and compression methods, each
    // behind its length (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
    let mut at = 34usize;
    at += 1 + usize::from(*prefix.get(at)?);
    at += 2 + usize::from(u16::from_be_bytes([*prefix.get(at)?, *prefix.get(at + 1)?]));
    at += 1 + usize::from(*prefix.get(at)?);
    let ext_len = usize::from(u16::from_be_bytes([*prefix.get(at)?, *prefix.get(at + 1)?]));
    let captured = prefix.get(at + 2..)?;
    let block = captured.get(..ext_len).unwrap_or(captured);
    let (whole, _) = extensions(block);
    let kept: usize = whole.iter().map(|(_, e)| e.len()).sum();
    let mut rebuilt = Vec::with_capacity(at + 2 + kept);
    rebuilt.extend_from_slice(prefix.get(..at)?);
    rebuilt.extend_from_slice(&u16::try_from(kept).ok()?.to_be_bytes());
    rebuilt.extend_from_slice(block.get(..kept)?);
    parse_client_hello(&rebuilt)
}

/// Parse a ServerHello (or HelloRetryRequest) message body.
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let (rest, sh) = parse_tls_handshake_server_hello(body).ok()?;
    let mut out = ServerHello {
        version: sh.version.0,
        hello_retry: sh.random == HELLO_RETRY_REQUEST_RANDOM,
        session_id: sh.session_id.unwrap_or_default().to_vec(),
        cipher: sh.cipher.0,
        malformed: u32::from(!rest.is_empty()),
        ..ServerHello::default()
    };
    let (exts, truncated) = extensions(sh.ext.unwrap_or_default());
    out.malformed += u32::from(truncated);
    out.extensions = exts.iter().map(|(t, _)| *t).collect();
    for (t, whole) in exts {
        match t {
            ext::PRE_SHARED_KEY => out.psk = true,
            ext::SUPPORTED_VERSIONS | ext::ALPN => match parse_tls_server_hello_extension(whole) {
                Ok((_, TlsExtension::SupportedVersions(v))) if v.len() == 1 => {
                    out.selected_version = v.first().map(|v| v.0);
                }
                Ok((_, TlsExtension::ALPN(names))) if names.len() == 1 => {
                    out.alpn = names.first().map(|n| n.to_vec());
                }
                _ => out.malformed += 1,
            },
            _ => {}
        }
    }
    Some(out)
}

/// Parse a TLS ≤ 1.2 Certificate message body: fingerprint the first (the server's own)
/// certificate. `None` when it does not parse or the chain is empty.
pub fn parse_certificate(body: &[u8]) -> Option<CertificateSummary> {
    let (_, msg) = parse_tls_handshake_msg_certificate(body).ok()?;
    let TlsMessageHandshake::Certificate(c) = msg else {
        return None;
    };
    let first = c.cert_chain.first()?;
    let mut summary = CertificateSummary {
        sha256: Sha256::digest(first.data).into(),
        der_bytes: first.data.len(),
        chain_length: c.cert_chain.len(),
        subject: None,
        issuer: None,
        not_before: None,
        not_after: None,
        dns_names: Vec::new(),
    };
    if let Ok((_, x509)) = x509_parser::parse_x509_certificate(first.data) {
        summary.subject = Some(capped(x509.subject().to_string(), MAX_DN_CHARS));
        summary.issuer = Some(capped(x509.issuer().to_string(), MAX_DN_CHARS));
        summary.not_before = Some(x509.validity().not_before.timestamp());
        summary.not_after = Some(x509.validity().not_after.timestamp());
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            summary.dns_names = san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(capped((*d).to_owned(), MAX_DN_CHARS)),
                    _ => None,
                })
                .take(MAX_SAN_NAMES)
                .collect();
        }
    }
    Some(summary)
}

/// Lowercase hex.
#[expect(clippy::indexing_slicing, reason = "a nibble (0-15) indexes the 16 digits")]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions this decoder names are exactly core's list, in order, which metrics label by.
    #[test]
    fn version_names_are_the_vocabulary_metrics_use() {
        let named: Vec<&str> = (0..=u16::MAX).filter_map(version_name).collect();
        assert_eq!(named, pacstap_core::vocab::TLS_VERSIONS);
    }
    use crate::testutil::tls::*;

    #[test]
    fn record_headers() {
        let h = parse_record_header(&[22, 3, 1, 0x02, 0x00]).unwrap();
        assert_eq!(h.content_type, ContentType::HANDSHAKE);
        assert_eq!((h.version, h.length), (0x0301, 512));
        assert!(parse_record_header(&[23, 3, 3, 0x48, 0x00]).is_some()); // 2^14 + 2048
        assert!(parse_record_header(&[23, 3, 3, 0x48, 0x01]).is_none());
        assert!(parse_record_header(&[23, 3, 3, 0, 0]).is_some()); // empty application data
        assert!(parse_record_header(&[22, 3, 3, 0, 0]).is_none());
        assert!(parse_record_header(&[25, 3, 3, 0, 1]).is_none());
        assert!(parse_record_header(&[19, 3, 3, 0, 1]).is_none());
        assert!(parse_record_header(&[23, 3, 5, 0, 1]).is_none());
        assert!(parse_record_header(&[23, 2, 0, 0, 1]).is_none());
        assert!(parse_record_header(&[23, 3, 3, 0]).is_none());
    }

    #[test]
    fn probe_decides() {
        let ch = &capture(CURL_TLS13).toserver[0];
        assert_eq!(probe(ch), Probe::Yes);
        for n in 0..6 {
            assert_eq!(probe(&ch[..n]), Probe::NeedMore, "{n}");
        }
        for n in 6..16 {
            assert_eq!(probe(&ch[..n]), Probe::Yes, "{n}");
        }
        // A ServerHello, an application data record, HTTP, DICOM, SSLv2 hello: not a ClientHello.
        assert_eq!(probe(&[22, 3, 3, 0, 90, 2, 0, 0, 86]), Probe::No);
        assert_eq!(probe(&[23, 3, 3, 0, 90]), Probe::No);
        assert_eq!(probe(b"GET / HTTP/1.1\r\n"), Probe::No);
        assert_eq!(probe(&[1, 0, 0, 0, 0, 0xcd]), Probe::No);
        assert_eq!(probe(&SSLV2_HELLO[..16]), Probe::No);
        // Length 0, too long, an impossible ClientHello length, a bad client version.
        assert_eq!(probe(&[22, 3, 1, 0, 0, 1]), Probe::No);
        assert_eq!(probe(&[22, 3, 1, 0x40, 0x01, 1]), Probe::No);
        assert_eq!(probe(&[22, 3, 1, 2, 0, 1, 0, 0, 10]), Probe::No);
        assert_eq!(probe(&[22, 3, 1, 2, 0, 1, 0, 1, 0xfc, 2, 0]), Probe::No);
        assert_eq!(probe(&[22, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3]), Probe::Yes);
    }

    #[test]
    fn sslv2_hello() {
        assert_eq!(sslv2_client_hello_len(&SSLV2_HELLO), Some(46));
        assert_eq!(sslv2_client_hello_len(&SSLV2_HELLO[..10]), None);
        let mut bad = SSLV2_HELLO;
        bad[10] = 8; // challenge too short
        assert_eq!(sslv2_client_hello_len(&bad), None);
        let mut bad = SSLV2_HELLO;
        bad[1] = 0x2f; // lengths do not add up
        assert_eq!(sslv2_client_hello_len(&bad), None);
        assert_eq!(
            sslv2_client_hello_len(&[0x80, 0x2e, 0x01, 0x99, 0x99, 0, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn grease() {
        for hi in 0..16u16 {
            assert!(is_grease((hi << 12) | 0x0a00 | (hi << 4) | 0x0a));
        }
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
        assert!(!is_grease(0x000a));
    }

    #[test]
    fn names() {
        assert_eq!(version_string(0x0304), "TLS 1.3");
        assert_eq!(version_string(0x0300), "SSL 3.0");
        assert_eq!(version_string(0x7f1c), "0x7f1c");
        assert_eq!(cipher_suite_name(0x1302), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(
            cipher_suite_name(0xc02c),
            Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
        );
        assert_eq!(cipher_suite_name(0x0a0a), None);
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(255), "unknown");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn curl_client_hello() {
        let msgs = handshake_messages(&capture(CURL_TLS13).toserver);
        assert_eq!(msgs[0].0, 1);
        let body = &msgs[0].1[..];
        let ch = parse_client_hello(body).unwrap();
        assert_eq!(ch.version, 0x0303);
        assert_eq!(ch.session_id.len(), 32);
        assert_eq!(ch.ciphers.len(), 31);
        assert_eq!(ch.extensions, vec![0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21]);
        assert_eq!(ch.sni.as_deref(), Some(&b"pacs.example.test"[..]));
        assert_eq!(ch.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(ch.supported_versions, vec![0x0304, 0x0303, 0x0302, 0x0301]);
        assert_eq!(ch.groups, vec![29, 23, 30, 25, 24, 256, 257, 258, 259, 260]);
        assert_eq!(ch.ec_point_formats, vec![0, 1, 2]);
        assert_eq!(ch.malformed, 0);
        // Every truncation fails or parses without panicking.
        for n in 0..body.len() {
            let _ = parse_client_hello(&body[..n]);
        }
    }

    #[test]
    fn server_hellos() {
        let msgs = handshake_messages(&capture(CURL_TLS13).toclient);
        let sh = parse_server_hello(&msgs[0].1).unwrap();
        assert_eq!(sh.negotiated_version(), 0x0304);
        assert_eq!(sh.cipher, 0x1302);
        assert_eq!(sh.extensions, vec![43, 51]);
        assert!(!sh.hello_retry && !sh.psk);

        let msgs = handshake_messages(&capture(CURL_TLS12).toclient);
        let sh = parse_server_hello(&msgs[0].1).unwrap();
        assert_eq!(sh.negotiated_version(), 0x0303);
        assert_eq!(sh.cipher, 0xc02c);
        assert_eq!(sh.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(sh.session_id.len(), 32);
    }

    #[test]
    fn certificate_fingerprint() {
        // The TLS 1.2 server flight: ServerHello, Certificate, ServerKeyExchange, Done.
        let msgs = handshake_messages(&capture(CURL_TLS12).toclient);
        let types: Vec<u8> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(types, vec![2, 11, 12, 14]);
        let s = parse_certificate(&msgs[1].1).unwrap();
        assert_eq!(hex(&s.sha256), SERVER_CERT_SHA256);
        assert_eq!((s.der_bytes, s.chain_length), (447, 1));
        assert!(parse_certificate(&[0, 0, 0]).is_none());
        assert!(parse_certificate(&[]).is_none());
    }
}
