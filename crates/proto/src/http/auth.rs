//! Who a request names, without its secret: the `Authorization` header (Basic, Bearer JWT,
//! Digest), the JWT claims read for it, and the user field of a login form. Pure, no state;
//! fuzz entry points (re-exported from [`super::parser`], their original home).

use super::parser::trim;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
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
            // An array of strings (recipient lists); nested values are skipped.
            (Some(slot), Some(b'[')) => scan_array(j, &mut i, &mut |v| found(slot, v))?,
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
/// The strings of the array starting at `j[*i]` (`[`), nested values skipped; `*i` ends past
/// its `]`.
fn scan_array(j: &[u8], i: &mut usize, found: &mut impl FnMut(String)) -> Option<()> {
    *i += 1;
    loop {
        skip_ws(j, i);
        match j.get(*i)? {
            b']' => {
                *i += 1;
                return Some(());
            }
            b'"' => found(json_string(j, i)?),
            _ => skip_value(j, i)?,
        }
        skip_ws(j, i);
        match j.get(*i)? {
            b',' => *i += 1,
            b']' => {
                *i += 1;
                return Some(());
            }
            _ => return None,
        }
    }
}

/// The strings of a JSON document that is an array of strings, or an object whose top-level
/// `key` holds one (Orthanc's `/tools/create-archive` takes either), at most `max`, in
/// order; a truncated document (a body prefix) yields what came before the cut.
pub fn json_string_array_or_key(json: &[u8], key: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut keep = |v: String| {
        if out.len() < max {
            out.push(v);
        }
    };
    let mut i = 0usize;
    skip_ws(json, &mut i);
    if json.get(i) == Some(&b'[') {
        let _ = scan_array(json, &mut i, &mut keep);
    } else {
        let _ = scan_object(json, &[key], &mut |_, v| keep(v));
    }
    out
}

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
