//! Pure HTTP/1.x pieces (RFC 9112): probe, start-line recognition for resynchronisation, the
//! end of a header block, heads via httparse, message body framing, chunk-size lines, and the
//! user named by an `Authorization` header. No state, no I/O; fuzz and bench entry points.

use super::HttpAnomaly;
use crate::Probe;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Request methods recognised by the probe and by resynchronisation: RFC 9110 §9.3 plus
/// PATCH (RFC 5789). WebDAV and other extension methods still parse once in step; they are
/// just not used to find a flow or a message boundary.
pub const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4); 14 bytes, so the 16 bytes the
/// probe stage holds decide it.
pub const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// Compare `data` with `pat`: `Yes` when `data` starts with it, `NeedMore` when `data` is a
/// shorter prefix of it, `No` otherwise.
fn prefix(data: &[u8], pat: &[u8]) -> Probe {
    let n = data.len().min(pat.len());
    match (data.get(..n), pat.get(..n)) {
        (Some(d), Some(p)) if d == p => {
            if n == pat.len() {
                Probe::Yes
            } else {
                Probe::NeedMore
            }
        }
        _ => Probe::No,
    }
}

fn any_of(results: impl IntoIterator<Item = Probe>) -> Probe {
    let mut out = Probe::No;
    for r in results {
        match r {
            Probe::Yes => return Probe::Yes,
            Probe::NeedMore => out = Probe::NeedMore,
            Probe::No => {}
        }
    }
    out
}

/// Content probe on a flow's first bytes: a known method token and a space (RFC 9112 §3), or
/// the HTTP/2 prior-knowledge preface. A status line from the server is not a probe `Yes`:
/// the client speaks first in HTTP.
pub fn probe(data: &[u8]) -> Probe {
    let mut pat = [0u8; 8];
    let methods = METHODS.iter().map(|m| {
        let n = m.len().min(7);
        pat[..n].copy_from_slice(&m.as_bytes()[..n]);
        pat[n] = b' ';
        prefix(data, &pat[..=n])
    });
    any_of(methods.chain([prefix(data, H2_PREFACE_START)]))
}

/// Which side of the conversation a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Request,
    Response,
}

/// Whether `data` (at the start of a line) begins a start line, for resynchronisation:
/// requests `METHOD SP ( "/" | "http" )` (origin- or absolute-form, RFC 9112 §3.2),
/// responses `HTTP/1.d SP ddd` (§4). At most 12 bytes decide.
pub fn start_line(data: &[u8], role: Role) -> Probe {
    match role {
        Role::Request => any_of(METHODS.iter().map(|m| {
            let mb = m.as_bytes();
            match prefix(data, mb) {
                Probe::Yes => {}
                other => return other,
            }
            let rest = data.get(mb.len()..).unwrap_or_default();
            match rest {
                [] => Probe::NeedMore,
                [b' ', b'/', ..] => Probe::Yes,
                [b' ', tail @ ..] => {
                    let n = tail.len().min(4);
                    let t = tail.get(..n).unwrap_or_default();
                    if t.eq_ignore_ascii_case(b"http".get(..n).unwrap_or_default()) {
                        if n == 4 {
                            Probe::Yes
                        } else {
                            Probe::NeedMore
                        }
                    } else {
                        Probe::No
                    }
                }
                _ => Probe::No,
            }
        })),
        Role::Response => {
            // "HTTP/1." DIGIT SP 3DIGIT
            const SHAPE: &[u8; 12] = b"HTTP/1.d ddd";
            for (i, &s) in SHAPE.iter().enumerate() {
                let Some(&b) = data.get(i) else {
                    return Probe::NeedMore;
                };
                let ok = if s == b'd' { b.is_ascii_digit() } else { b == s };
                if !ok {
                    return Probe::No;
                }
            }
            Probe::Yes
        }
    }
}

/// Find the end of a header block (the empty line, CRLF or bare LF, RFC 9112 §2.2) in `data`,
/// continuing from `state` (0: inside a line; 1: just after a LF; 2: after LF CR). Returns the
/// index just past the final LF. Linear, and it never looks at a byte twice across calls.
pub fn find_head_end(state: &mut u8, data: &[u8]) -> Option<usize> {
    let mut i = 0usize;
    while i < data.len() {
        if *state == 0 {
            let p = data.get(i..)?.iter().position(|&b| b == b'\n')?;
            i += p + 1;
            *state = 1;
            continue;
        }
        let b = *data.get(i)?;
        i += 1;
        *state = match (*state, b) {
            (_, b'\n') => {
                *state = 0;
                return Some(i);
            }
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    None
}

/// `Content-Length` as read from all its fields (RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentLength {
    #[default]
    Absent,
    Valid(u64),
    /// Not a number, or several different values.
    Invalid,
}

/// `Transfer-Encoding` as read from all its fields (RFC 9112 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferEncoding {
    #[default]
    Absent,
    /// `chunked` is the final coding.
    Chunked,
    /// Present, but `chunked` is not the final coding.
    Other,
}

/// The header fields the tap uses, borrowed from the head.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    pub host: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub x_forwarded_for: Option<&'a [u8]>,
    pub content_length: ContentLength,
    pub transfer_encoding: TransferEncoding,
    /// Header fields in the head.
    pub count: usize,
}

impl<'a> Fields<'a> {
    fn add(&mut self, name: &str, value: &'a [u8]) {
        self.count += 1;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("host") {
            self.host.get_or_insert(value);
        } else if is("user-agent") {
            self.user_agent.get_or_insert(value);
        } else if is("authorization") {
            self.authorization.get_or_insert(value);
        } else if is("content-type") {
            self.content_type.get_or_insert(value);
        } else if is("x-forwarded-for") {
            self.x_forwarded_for.get_or_insert(value);
        } else if is("content-length") {
            self.content_length = merge_length(self.content_length, value);
        } else if is("transfer-encoding") {
            // Codings of several fields concatenate in order (RFC 9110 §5.3).
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            let last = trim(last.split(|&b| b == b';').next().unwrap_or_default());
            if !trim(value).is_empty() {
                self.transfer_encoding = if last.eq_ignore_ascii_case(b"chunked") {
                    TransferEncoding::Chunked
                } else {
                    TransferEncoding::Other
                };
            }
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

/// A `Content-Length` field may repeat one value as a list (`42, 42`, RFC 9110 §8.6); anything
/// else that is not one decimal number is invalid.
fn merge_length(prev: ContentLength, value: &[u8]) -> ContentLength {
    let mut out = prev;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        let n = if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            None
        } else {
            part.iter()
                .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        };
        out = match (out, n) {
            (ContentLength::Invalid, _) | (_, None) => ContentLength::Invalid,
            (ContentLength::Absent, Some(n)) => ContentLength::Valid(n),
            (ContentLength::Valid(a), Some(n)) if a == n => ContentLength::Valid(a),
            (ContentLength::Valid(_), Some(_)) => ContentLength::Invalid,
        };
    }
    out
}

/// A parsed request head.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// Minor version: `HTTP/1.<minor>`.
    pub minor: u8,
    pub fields: Fields<'a>,
    /// More than [`MAX_HEADERS`] fields: read by the lenient line scanner instead of httparse.
    pub too_many_headers: bool,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub minor: u8,
    pub status: u16,
    pub fields: Fields<'a>,
    pub too_many_headers: bool,
}

/// Header fields httparse reads into its slots. Apache's `LimitRequestFields` defaults to 100
/// and real requests carry 5-30; a head with more is read by the lenient scanner (still within
/// the byte cap) and counted as `http.too_many_headers`.
pub const MAX_HEADERS: usize = 100;

/// A tap observes, it does not enforce: accept what real servers accept.
fn parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

/// Parse a complete request head (start line to the empty line). `None`: not a request head.
pub fn parse_request_head(head: &[u8]) -> Option<RequestHead<'_>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match parser_config().parse_request(&mut req, head) {
        Ok(httparse::Status::Complete(_)) => {
            let mut fields = Fields::default();
            for h in req.headers.iter() {
                fields.add(h.name, h.value);
            }
            Some(RequestHead {
                method: req.method?,
                target: req.path?,
                minor: req.version?,
                fields,
                too_many_headers: false,
            })
        }
        Err(httparse::Error::TooManyHeaders) => lenient_request(head),
        _ => None,
    }
}

/// Parse a complete response head. `None`: not a response head.
pub fn parse_response_head(head: &[u8]) -> Option<ResponseHead<'_>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut rsp = httparse::Response::new(&mut slots);
    match parser_config().parse_response(&mut rsp, head) {
        Ok(httparse::Status::Complete(_)) => {
            let mut fields = Fields::default();
            for h in rsp.headers.iter() {
                fields.add(h.name, h.value);
            }
            Some(ResponseHead {
                minor: rsp.version?,
                status: rsp.code?,
                fields,
                too_many_headers: false,
            })
        }
        Err(httparse::Error::TooManyHeaders) => lenient_response(head),
        _ => None,
    }
}

/// Lines of a head without their CR LF.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Field lines after the start line (`name: value`; obsolete folds and junk skipped).
fn lenient_fields(head: &[u8]) -> Fields<'_> {
    let mut fields = Fields::default();
    for line in lines(head).skip(1) {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        fields.add(name.trim(), trim(value.get(1..).unwrap_or_default()));
    }
    fields
}

fn version_minor(v: &[u8]) -> Option<u8> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some(d - b'0'),
        _ => None,
    }
}

fn lenient_request(head: &[u8]) -> Option<RequestHead<'_>> {
    let first = lines(head).next()?;
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = std::str::from_utf8(parts.next()?).ok()?;
    let target = std::str::from_utf8(parts.next()?).ok()?;
    let minor = version_minor(parts.next()?)?;
    Some(RequestHead {
        method,
        target,
        minor,
        fields: lenient_fields(head),
        too_many_headers: true,
    })
}

fn lenient_response(head: &[u8]) -> Option<ResponseHead<'_>> {
    let first = lines(head).next()?;
    let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let minor = version_minor(parts.next()?)?;
    let code = parts.next()?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    Some(ResponseHead {
        minor,
        status,
        fields: lenient_fields(head),
        too_many_headers: true,
    })
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// Response read until the connection closes.
    UntilClose,
    /// The connection stops being HTTP after this message (101 Switching Protocols, a 2xx to
    /// CONNECT).
    Tunnel,
}

/// Bad framing seen while deciding it (an anomaly, see [`HttpAnomaly`]).
pub type FramingIssue = Option<HttpAnomaly>;

/// Request body framing (RFC 9112 §6.3 rules 3-6). `Err`: the server cannot know where the
/// body ends either (§6.3 rules 4 and 5 say respond 400 and close); the tap resynchronises.
pub fn request_framing(f: &Fields<'_>) -> (Result<Framing, &'static str>, FramingIssue) {
    let conflict = (f.transfer_encoding != TransferEncoding::Absent && f.content_length != ContentLength::Absent)
        .then_some(HttpAnomaly::ConflictingLength);
    let framing = match (f.transfer_encoding, f.content_length) {
        (TransferEncoding::Chunked, _) => Ok(Framing::Chunked),
        (TransferEncoding::Other, _) => Err("transfer coding of a request does not end in chunked"),
        (TransferEncoding::Absent, ContentLength::Invalid) => Err("invalid Content-Length"),
        (TransferEncoding::Absent, ContentLength::Valid(0) | ContentLength::Absent) => Ok(Framing::Empty),
        (TransferEncoding::Absent, ContentLength::Valid(n)) => Ok(Framing::Length(n)),
    };
    (framing, conflict)
}

/// Response body framing (RFC 9112 §6.3 rules 1-7), given the request method it answers.
pub fn response_framing(status: u16, request_method: &str, f: &Fields<'_>) -> (Framing, FramingIssue) {
    if status == 101 || (request_method == "CONNECT" && (200..300).contains(&status)) {
        return (Framing::Tunnel, None);
    }
    if request_method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return (Framing::Empty, None);
    }
    let conflict = (f.transfer_encoding != TransferEncoding::Absent && f.content_length != ContentLength::Absent)
        .then_some(HttpAnomaly::ConflictingLength);
    match (f.transfer_encoding, f.content_length) {
        (TransferEncoding::Chunked, _) => (Framing::Chunked, conflict),
        (TransferEncoding::Other, _) => (Framing::UntilClose, conflict),
        (TransferEncoding::Absent, ContentLength::Invalid) => {
            (Framing::UntilClose, Some(HttpAnomaly::MalformedResponse))
        }
        (TransferEncoding::Absent, ContentLength::Valid(0)) => (Framing::Empty, None),
        (TransferEncoding::Absent, ContentLength::Valid(n)) => (Framing::Length(n), None),
        (TransferEncoding::Absent, ContentLength::Absent) => (Framing::UntilClose, None),
    }
}

/// Size of a chunk from its chunk-size line (RFC 9112 §7.1: `chunk-size [ chunk-ext ] CRLF`),
/// `line` being the line without its CR LF. Extensions are ignored, the size is read by
/// httparse (at most 16 hex digits). `None`: not a chunk-size line.
pub fn parse_chunk_line(line: &[u8]) -> Option<u64> {
    // httparse wants the terminator; the size and the white space before `;` are all it needs.
    let size = line.split(|&b| b == b';').next().unwrap_or_default();
    // httparse reads an empty line as size 0; a chunk-size is at least one HEXDIG.
    if !size.first().is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut buf = [0u8; 34];
    let n = size.len();
    if n > 32 {
        return None;
    }
    buf.get_mut(..n)?.copy_from_slice(size);
    buf.get_mut(n..n + 2)?.copy_from_slice(b"\r\n");
    match httparse::parse_chunk_size(buf.get(..n + 2)?) {
        Ok(httparse::Status::Complete((_, size))) => Some(size),
        _ => None,
    }
}

/// What an `Authorization` header says, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// Scheme, lower case (`basic`, `bearer`, `digest`, …), at most 32 characters.
    pub scheme: String,
    /// The user it names, when it names one without exposing a secret.
    pub user: Option<String>,
}

/// User names are cut at 256 characters: longer ones are not names.
pub const MAX_USER_CHARS: usize = 256;

/// An `Authorization` header value (RFC 9110 §11.6.2) read for who it names: Basic (RFC 7617)
/// the user-id before the first `:`, never the password (no `:`: nothing); Bearer a JWT's
/// (RFC 7519) `preferred_username` or else `sub`, read from the payload without verifying and
/// without keeping the token; Digest (RFC 7616 §3.4) its `username` parameter.
pub fn credentials(value: &[u8]) -> Option<Credentials> {
    let value = trim(value);
    let sp = value
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(sp);
    if scheme.is_empty() {
        return None;
    }
    let rest = trim(rest);
    let token_char = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let scheme_name: String = if scheme.iter().all(token_char) {
        let s = String::from_utf8_lossy(scheme.get(..scheme.len().min(32)).unwrap_or_default());
        s.to_ascii_lowercase()
    } else {
        "other".into()
    };
    let user = match scheme_name.as_str() {
        "basic" => basic_user(rest),
        "bearer" => jwt_user(rest),
        "digest" => digest_user(rest),
        _ => None,
    };
    Some(Credentials {
        scheme: scheme_name,
        user,
    })
}

const B64_INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, B64_INDIFFERENT);
const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, B64_INDIFFERENT);

/// Longest encoded credential decoded: Basic `user:password` is far below 1 KiB; a JWT payload
/// with a few dozen claims (Keycloak's realm and client roles) is 1-4 KiB, 16 KiB covers large
/// group lists.
const MAX_ENCODED: usize = 16 << 10;

fn user_text(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b);
    let (s, _) = super::url::truncate_chars(s.into_owned(), MAX_USER_CHARS);
    (!s.trim().is_empty()).then_some(s)
}

fn basic_user(token: &[u8]) -> Option<String> {
    if token.len() > MAX_ENCODED {
        return None;
    }
    let decoded = B64_STANDARD.decode(token).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    user_text(decoded.get(..colon)?)
}

/// Whether `s` is a JWT (RFC 7519 §7.2, compact JWS RFC 7515 §7.1): three base64url parts
/// (the signature may be empty for `alg: none`), the first decoding to a JSON object with an
/// `alg` member. DICOM UIDs never match: a header starts `ey` (base64 of `{"`).
pub fn is_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !header.starts_with("ey") || payload.is_empty() || header.len() > MAX_ENCODED {
        return false;
    }
    if !(b64url(header) && b64url(payload) && b64url(sig)) {
        return false;
    }
    let Ok(json) = B64_URL.decode(header) else {
        return false;
    };
    let [alg] = json_top_level_strings(&json, ["alg"]);
    alg.is_some()
}

/// `preferred_username` (OpenID Connect Core §5.1, what Keycloak users log in with), else `sub`.
pub fn jwt_user(token: &[u8]) -> Option<String> {
    let mut parts = token.split(|&b| b == b'.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > MAX_ENCODED {
        return None;
    }
    let json = B64_URL.decode(payload).ok()?;
    let [preferred, sub] = json_top_level_strings(&json, ["preferred_username", "sub"]);
    preferred.or(sub).and_then(|s| user_text(s.as_bytes()))
}

fn digest_user(params: &[u8]) -> Option<String> {
    let mut i = 0usize;
    while i < params.len() {
        while params.get(i).is_some_and(|b| *b == b',' || b.is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while params.get(i).is_some_and(|b| *b != b'=' && *b != b',') {
            i += 1;
        }
        let key = trim(params.get(key_start..i).unwrap_or_default());
        if params.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while params.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
            i += 1;
        }
        let mut value = Vec::new();
        if params.get(i) == Some(&b'"') {
            i += 1;
            while let Some(&b) = params.get(i) {
                i += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        if let Some(&e) = params.get(i) {
                            value.push(e);
                            i += 1;
                        }
                    }
                    _ => value.push(b),
                }
            }
        } else {
            let start = i;
            while params.get(i).is_some_and(|b| *b != b',') {
                i += 1;
            }
            value.extend_from_slice(trim(params.get(start..i).unwrap_or_default()));
        }
        if key.eq_ignore_ascii_case(b"username") {
            return user_text(&value);
        }
    }
    None
}

/// Deepest nesting skipped inside a JWT payload; deeper is not a real token.
const MAX_JSON_DEPTH: usize = 64;

/// The string values of the given top-level keys of a JSON object (RFC 8259), read by a small
/// non-recursive scanner: nested values are skipped by counting brackets outside strings.
/// Malformed input ends the scan with what was found so far. Values are cut at
/// [`MAX_USER_CHARS`] characters.
pub fn json_top_level_strings<const N: usize>(json: &[u8], keys: [&str; N]) -> [Option<String>; N] {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    let _ = scan_object(json, &keys, &mut |slot, v| {
        if let Some(s) = out.get_mut(slot) {
            if s.is_none() {
                *s = Some(v);
            }
        }
    });
    out
}

/// Most values [`json_top_level_string_list`] collects.
pub const MAX_JSON_LIST: usize = 16;

/// The strings under the given top-level keys of a JSON object, a key's value being a string
/// or an array of strings (other values are skipped), in order, at most [`MAX_JSON_LIST`].
/// Same scanner and limits as [`json_top_level_strings`]; a truncated document (a body
/// prefix) yields what came before the cut.
pub fn json_top_level_string_list(json: &[u8], keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let _ = scan_object(json, keys, &mut |_, v| {
        if out.len() < MAX_JSON_LIST {
            out.push(v);
        }
    });
    out
}

fn skip_ws(j: &[u8], i: &mut usize) {
    while j.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
        *i += 1;
    }
}

fn scan_object(j: &[u8], keys: &[&str], found: &mut impl FnMut(usize, String)) -> Option<()> {
    let mut i = 0usize;
    skip_ws(j, &mut i);
    (j.get(i) == Some(&b'{')).then_some(())?;
    i += 1;
    loop {
        skip_ws(j, &mut i);
        match j.get(i)? {
            b'}' => return Some(()),
            b'"' => {}
            _ => return None,
        }
        let key = json_string(j, &mut i)?;
        skip_ws(j, &mut i);
        (j.get(i) == Some(&b':')).then_some(())?;
        i += 1;
        skip_ws(j, &mut i);
        let slot = keys.iter().position(|k| *k == key);
        match (slot, j.get(i)) {
            (Some(slot), Some(b'"')) => found(slot, json_string(j, &mut i)?),
            (Some(slot), Some(b'[')) => {
                // An array of strings (recipient lists); nested values are skipped.
                i += 1;
                loop {
                    skip_ws(j, &mut i);
                    match j.get(i)? {
                        b']' => {
                            i += 1;
                            break;
                        }
                        b'"' => found(slot, json_string(j, &mut i)?),
                        _ => skip_value(j, &mut i)?,
                    }
                    skip_ws(j, &mut i);
                    match j.get(i)? {
                        b',' => i += 1,
                        b']' => {
                            i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            _ => skip_value(j, &mut i)?,
        }
        skip_ws(j, &mut i);
        match j.get(i)? {
            b',' => i += 1,
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

/// Read a JSON string starting at its opening quote; `i` ends past the closing quote.
fn json_string(j: &[u8], i: &mut usize) -> Option<String> {
    *i += 1;
    let mut out: Vec<u8> = Vec::new();
    let mut chars = 0usize;
    let push = |out: &mut Vec<u8>, chars: &mut usize, c: char| {
        if *chars < MAX_USER_CHARS {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            *chars += 1;
        }
    };
    loop {
        let b = *j.get(*i)?;
        *i += 1;
        match b {
            b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
            b'\\' => {
                let e = *j.get(*i)?;
                *i += 1;
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = hex4(j, i)?;
                        if (0xD800..0xDC00).contains(&hi) && j.get(*i..*i + 2) == Some(b"\\u") {
                            let save = *i;
                            *i += 2;
                            let lo = hex4(j, i)?;
                            if (0xDC00..0xE000).contains(&lo) {
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).unwrap_or('\u{fffd}')
                            } else {
                                *i = save;
                                '\u{fffd}'
                            }
                        } else {
                            char::from_u32(hi).unwrap_or('\u{fffd}')
                        }
                    }
                    _ => return None,
                };
                push(&mut out, &mut chars, c);
            }
            _ => {
                // Raw bytes (UTF-8 sequences pass through byte by byte; count lead bytes only).
                if chars < MAX_USER_CHARS || (b & 0xC0) == 0x80 {
                    out.push(b);
                    if (b & 0xC0) != 0x80 {
                        chars += 1;
                    }
                }
            }
        }
    }
}

fn hex4(j: &[u8], i: &mut usize) -> Option<u32> {
    let h = j.get(*i..*i + 4)?;
    *i += 4;
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Skip one JSON value of any kind.
fn skip_value(j: &[u8], i: &mut usize) -> Option<()> {
    match j.get(*i)? {
        b'"' => json_string(j, i).map(|_| ()),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match j.get(*i)? {
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_JSON_DEPTH {
                            return None;
                        }
                        *i += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        *i += 1;
                        if depth == 0 {
                            return Some(());
                        }
                    }
                    b'"' => {
                        json_string(j, i)?;
                    }
                    _ => *i += 1,
                }
            }
        }
        _ => {
            while j
                .get(*i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                *i += 1;
            }
            Some(())
        }
    }
}

/// A field of an `application/x-www-form-urlencoded` body (WHATWG URL §5.1), decoded, cut at
/// [`MAX_USER_CHARS`]. Only ever asked for non-secret names (`username`); the body itself is
/// never kept.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if super::url::form_decode(k) == name {
            return user_text(super::url::form_decode(v).as_bytes());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    #[test]
    fn probes() {
        assert_eq!(probe(b"GET / HTTP/1.1\r\n"), Probe::Yes);
        assert_eq!(probe(b"OPTIONS "), Probe::Yes);
        assert_eq!(probe(b"DELETE /x"), Probe::Yes);
        assert_eq!(probe(b"OPTIONS"), Probe::NeedMore);
        assert_eq!(probe(b"P"), Probe::NeedMore);
        assert_eq!(probe(b""), Probe::NeedMore);
        assert_eq!(probe(b"PRI * HTTP/2"), Probe::NeedMore);
        assert_eq!(probe(b"PRI * HTTP/2.0\r\n\r\nSM"), Probe::Yes);
        assert_eq!(probe(b"GETX / HTTP/1.1"), Probe::No);
        assert_eq!(probe(b"get / HTTP/1.1"), Probe::No);
        assert_eq!(probe(b"HTTP/1.1 200 OK\r\n"), Probe::No);
        assert_eq!(probe(&[0x16, 3, 1, 0, 0xc8, 1]), Probe::No);
        assert_eq!(probe(b"\x0bMSH|^~\\&|"), Probe::No);
        assert_eq!(probe(&[1, 0, 0, 0, 0, 0xcd]), Probe::No);
        // Every prefix of a request line is consistent.
        let line = b"CONNECT pacs:443 HTTP/1.1\r\n";
        for n in 0..8 {
            assert_eq!(probe(&line[..n]), Probe::NeedMore, "{n}");
        }
        assert_eq!(probe(&line[..8]), Probe::Yes);
    }

    #[test]
    fn start_lines() {
        use Role::*;
        assert_eq!(start_line(b"GET /x", Request), Probe::Yes);
        assert_eq!(start_line(b"GET http://h/", Request), Probe::Yes);
        assert_eq!(start_line(b"GET htt", Request), Probe::NeedMore);
        assert_eq!(start_line(b"GET ", Request), Probe::NeedMore);
        assert_eq!(start_line(b"GE", Request), Probe::NeedMore);
        assert_eq!(start_line(b"GET x", Request), Probe::No);
        assert_eq!(start_line(b"GETS /", Request), Probe::No);
        assert_eq!(start_line(b"target /", Request), Probe::No);
        assert_eq!(start_line(b"HTTP/1.1 200", Response), Probe::Yes);
        assert_eq!(start_line(b"HTTP/1.0 404 Not Found", Response), Probe::Yes);
        assert_eq!(start_line(b"HTTP/1.1 20", Response), Probe::NeedMore);
        assert_eq!(start_line(b"HTTP/2 200", Response), Probe::No);
        assert_eq!(start_line(b"HTTP/1.1 2x0", Response), Probe::No);
        assert_eq!(start_line(b"GET /", Response), Probe::No);
    }

    #[test]
    fn head_end_at_every_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        let want = head.len() - 4;
        for cut in 0..head.len() {
            let mut st = 0u8;
            let got = match find_head_end(&mut st, &head[..cut]) {
                Some(e) => Some(e),
                None => find_head_end(&mut st, &head[cut..]).map(|e| e + cut),
            };
            assert_eq!(got, Some(want), "cut {cut}");
        }
        let mut st = 0;
        assert_eq!(find_head_end(&mut st, b"GET / HTTP/1.0\n\nx"), Some(16));
        let mut st = 0;
        assert_eq!(find_head_end(&mut st, b"GET / HTTP/1.1\r\nA: b\r\r\n"), None);
        // Trailers: start just after a LF; an empty trailer section is one CRLF.
        let mut st = 1;
        assert_eq!(find_head_end(&mut st, b"\r\n"), Some(2));
        let mut st = 1;
        assert_eq!(find_head_end(&mut st, b"X-Sum: 1\r\n\r\n"), Some(12));
    }

    #[test]
    fn request_heads() {
        let h = b"POST /dicom-web/studies HTTP/1.1\r\nHost: pacs:8042\r\nUser-Agent: curl/8.5.0\r\n\
                  Content-Type: multipart/related; type=\"application/dicom\"\r\nContent-Length: 42, 42\r\n\r\n";
        let r = parse_request_head(h).unwrap();
        assert_eq!((r.method, r.target, r.minor), ("POST", "/dicom-web/studies", 1));
        assert_eq!(r.fields.host, Some(&b"pacs:8042"[..]));
        assert_eq!(r.fields.content_length, ContentLength::Valid(42));
        assert_eq!(r.fields.count, 4);
        assert!(!r.too_many_headers);
        assert_eq!(request_framing(&r.fields).0, Ok(Framing::Length(42)));

        let h =
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
        let r = parse_request_head(h).unwrap();
        assert_eq!(r.fields.transfer_encoding, TransferEncoding::Chunked);
        assert_eq!(
            request_framing(&r.fields),
            (Ok(Framing::Chunked), Some(HttpAnomaly::ConflictingLength))
        );

        let h = b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(request_framing(&parse_request_head(h).unwrap().fields).0.is_err());
        let h = b"PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert!(request_framing(&parse_request_head(h).unwrap().fields).0.is_err());
        let h = b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert!(request_framing(&parse_request_head(h).unwrap().fields).0.is_err());

        assert!(parse_request_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").is_some());
        assert!(parse_request_head(b"GET / HTTP/3.0\r\n\r\n").is_none());
        assert!(parse_request_head(b"\x00\x01 / HTTP/1.1\r\n\r\n").is_none());
        assert!(parse_request_head(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }

    #[test]
    fn too_many_headers_fall_back() {
        let mut h = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..150 {
            h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"Host: far.away:80\r\nContent-Length: 7\r\n\r\n");
        let r = parse_request_head(&h).unwrap();
        assert!(r.too_many_headers);
        assert_eq!((r.method, r.target, r.minor), ("GET", "/a", 1));
        assert_eq!(r.fields.host, Some(&b"far.away:80"[..]));
        assert_eq!(r.fields.content_length, ContentLength::Valid(7));
        assert_eq!(r.fields.count, 152);
        let mut h = b"HTTP/1.0 204 No Content\r\n".to_vec();
        for i in 0..150 {
            h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        let r = parse_response_head(&h).unwrap();
        assert_eq!((r.status, r.minor, r.too_many_headers), (204, 0, true));
    }

    #[test]
    fn response_heads_and_framing() {
        let h = b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let r = parse_response_head(h).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(response_framing(200, "GET", &r.fields), (Framing::Chunked, None));
        assert_eq!(response_framing(200, "HEAD", &r.fields).0, Framing::Empty);
        let f = Fields::default();
        assert_eq!(response_framing(304, "GET", &f).0, Framing::Empty);
        assert_eq!(response_framing(204, "GET", &f).0, Framing::Empty);
        assert_eq!(response_framing(100, "GET", &f).0, Framing::Empty);
        assert_eq!(response_framing(101, "GET", &f).0, Framing::Tunnel);
        assert_eq!(response_framing(200, "CONNECT", &f).0, Framing::Tunnel);
        assert_eq!(response_framing(407, "CONNECT", &f).0, Framing::UntilClose);
        assert_eq!(response_framing(200, "GET", &f).0, Framing::UntilClose);
        let h = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        let r = parse_response_head(h).unwrap();
        assert_eq!(
            response_framing(200, "GET", &r.fields),
            (Framing::UntilClose, Some(HttpAnomaly::MalformedResponse))
        );
        // Obsolete folding is accepted in responses.
        let h = b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 3\r\n\r\n";
        let r = parse_response_head(h).unwrap();
        assert_eq!(r.fields.content_length, ContentLength::Valid(3));
        assert!(parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_none());
    }

    #[test]
    fn chunk_lines() {
        assert_eq!(parse_chunk_line(b"1a2B"), Some(0x1a2b));
        assert_eq!(parse_chunk_line(b"0"), Some(0));
        assert_eq!(parse_chunk_line(b"10;name=\"va;lue\";x"), Some(16));
        assert_eq!(parse_chunk_line(b"10 ;ext"), Some(16));
        assert_eq!(parse_chunk_line(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_chunk_line(b"10000000000000000"), None);
        assert_eq!(parse_chunk_line(b""), None);
        assert_eq!(parse_chunk_line(b"xyz"), None);
        assert_eq!(parse_chunk_line(b"-1"), None);
    }

    #[test]
    fn basic_auth_user_not_password() {
        let v = format!("Basic {}", STANDARD.encode("rad1:s3cr3t:with:colons"));
        let c = credentials(v.as_bytes()).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.user.as_deref(), Some("rad1"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        // No colon: the whole thing could be a secret; say nothing.
        let v = format!("Basic {}", STANDARD.encode("justatoken"));
        assert_eq!(credentials(v.as_bytes()).unwrap().user, None);
        let v = format!("BASIC {}", STANDARD.encode("dr.müller:x").trim_end_matches('='));
        assert_eq!(credentials(v.as_bytes()).unwrap().user.as_deref(), Some("dr.müller"));
        assert_eq!(credentials(b"Basic !!!!").unwrap().user, None);
        assert_eq!(credentials(b"").map(|c| c.scheme), None);
        assert_eq!(credentials(b"Negotiate YIIx").unwrap().scheme, "negotiate");
        assert_eq!(credentials(b"Wei(rd) x").unwrap().scheme, "other");
    }

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode("signature")
        )
    }

    #[test]
    fn bearer_jwt_user() {
        let t = jwt(
            r#"{"exp":1795773600,"realm_access":{"roles":["rad","sub"],"sub":"nested"},"sub":"4c1f-uuid",
                "preferred_username":"rad1","email":"rad1@example.org"}"#,
        );
        let c = credentials(format!("Bearer {t}").as_bytes()).unwrap();
        assert_eq!((c.scheme.as_str(), c.user.as_deref()), ("bearer", Some("rad1")));
        let t = jwt(r#"{"sub":"svc-router","aud":["a","b"],"n":-1.5e3,"t":true,"z":null}"#);
        assert_eq!(jwt_user(t.as_bytes()).as_deref(), Some("svc-router"));
        let t = jwt(r#"{"preferred_username":"dr. \"q\" \u00e9\ud83d\ude00\ud800x"}"#);
        assert_eq!(jwt_user(t.as_bytes()).as_deref(), Some("dr. \"q\" é😀\u{fffd}x"));
        // Opaque tokens, JWE, garbage: no user, no panic.
        assert_eq!(jwt_user(b"2YotnFZFEjr1zCsicMWpAA"), None);
        assert_eq!(jwt_user(b"a.b.c.d.e"), None);
        assert_eq!(jwt_user(jwt("[1,2]").as_bytes()), None);
        assert_eq!(jwt_user(jwt(r#"{"sub":"#).as_bytes()), None);
        assert_eq!(jwt_user(jwt(&"[".repeat(10_000)).as_bytes()), None);
        let deep = format!(r#"{{"a":{}1{},"sub":"x"}}"#, "[".repeat(100), "]".repeat(100));
        assert_eq!(jwt_user(jwt(&deep).as_bytes()), None);
        let long = format!(r#"{{"sub":"{}"}}"#, "u".repeat(1000));
        assert_eq!(jwt_user(jwt(&long).as_bytes()).unwrap().len(), MAX_USER_CHARS);
    }

    #[test]
    fn json_string_lists() {
        let j = br#"{"studyId":"1.2","recipients":["a@x.org", {"n":1}, "b@y.org"],"email":"c@z.org","to":[]}"#;
        assert_eq!(
            json_top_level_string_list(j, &["recipients", "email", "to"]),
            ["a@x.org", "b@y.org", "c@z.org"]
        );
        // A prefix cut mid-way keeps what came before the cut.
        assert_eq!(json_top_level_string_list(&j[..40], &["recipients"]), ["a@x.org"]);
        let many = format!(r#"{{"to":[{}]}}"#, vec![r#""r@x""#; 100].join(","));
        assert_eq!(
            json_top_level_string_list(many.as_bytes(), &["to"]).len(),
            MAX_JSON_LIST
        );
        assert!(json_top_level_string_list(b"[1]", &["to"]).is_empty());
    }

    #[test]
    fn digest_user_param() {
        let v =
            br#"Digest realm="pacs", username="rad\"2", nonce="abc,def", response="6629fae49393a05397450978507c4ef1""#;
        assert_eq!(credentials(v).unwrap().user.as_deref(), Some("rad\"2"));
        let v = br#"Digest nonce="a, username=evil", username=plain"#;
        assert_eq!(credentials(v).unwrap().user.as_deref(), Some("plain"));
        assert_eq!(credentials(b"Digest ,,=,").unwrap().user, None);
    }

    #[test]
    fn form_fields() {
        let body = b"grant_type=password&client_id=viewer&username=dr%2Ewho+x&password=hunter2";
        assert_eq!(form_field(body, "username").as_deref(), Some("dr.who x"));
        assert_eq!(form_field(body, "missing"), None);
        assert_eq!(form_field(b"username=", "username"), None);
    }
}
