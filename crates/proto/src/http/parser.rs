//! Pure HTTP/1.x pieces (RFC 9112): probe, start-line recognition for resynchronisation, the
//! end of a header block, heads via httparse, message body framing and chunk-size lines. No
//! state, no I/O; fuzz and bench entry points. The user named by an `Authorization` header
//! lives in [`super::auth`] and is re-exported here (its first home; fuzz targets use it).

pub use super::auth::{
    credentials, form_field, is_jwt, json_top_level_string_list, json_top_level_strings, jwt_user, Credentials,
    MAX_JSON_LIST, MAX_USER_CHARS,
};
use super::HttpAnomaly;
use crate::Probe;

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
        if let (Some(dst), Some(src)) = (pat.get_mut(..n), m.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
        }
        if let Some(space) = pat.get_mut(n) {
            *space = b' ';
        }
        prefix(data, pat.get(..=n).unwrap_or_default())
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

pub(super) fn trim(b: &[u8]) -> &[u8] {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
