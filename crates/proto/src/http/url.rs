//! Request targets (RFC 9112 §3.2): split into authority, path and query; normalise the path
//! into segments for matching; render the URL for the event without credentials.
//!
//! Pure functions over `&str` (httparse has already checked the target is visible ASCII or
//! UTF-8); nothing here panics or allocates more than a bounded copy of its input.

use std::borrow::Cow;

/// A request target split in its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// `host[:port]` of an absolute-form target (`http://host/p`) or of authority-form (CONNECT).
    pub authority: Option<&'a str>,
    /// The path as sent (`/` for an absolute-form target without one; `*` for asterisk-form).
    pub path: &'a str,
    /// The query without its `?`, if any.
    pub query: Option<&'a str>,
    /// Byte offset in the target where the path starts (after scheme and authority).
    pub path_start: usize,
    /// absolute-form (`scheme://authority/path`).
    pub absolute: bool,
}

/// Split a request target. Origin-form `/p?q`, absolute-form `http://u@h:1/p?q`, authority-form
/// `h:443` (CONNECT), asterisk-form `*` (RFC 9112 §3.2.1-3.2.4). A fragment is not sent on the
/// wire, but a `#` is cut off if present.
pub fn split_target(target: &str) -> Target<'_> {
    let target = target.split('#').next().unwrap_or("");
    let lower_starts = |p: &str| target.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    let (authority, path_start) = if lower_starts("http://") || lower_starts("https://") {
        let after = target.find("://").map_or(0, |i| i + 3);
        let rest = target.get(after..).unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let auth = rest.get(..end).unwrap_or("");
        // Drop `userinfo@` (RFC 3986 §3.2.1: deprecated `user:password@`).
        let auth = auth.rsplit('@').next().unwrap_or("");
        (Some(auth), after + end)
    } else if !target.starts_with('/') && target != "*" {
        // authority-form (CONNECT host:port) or something unusual: no path.
        return Target {
            authority: Some(target),
            path: "",
            query: None,
            path_start: target.len(),
            absolute: false,
        };
    } else {
        (None, 0)
    };
    let rest = target.get(path_start..).unwrap_or("");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() && authority.is_some() {
        "/"
    } else {
        path
    };
    Target {
        authority,
        path,
        query,
        path_start,
        absolute: authority.is_some(),
    }
}

/// Decode `%XX` escapes (and nothing else); invalid escapes stay as they are. Bytes that do
/// not form UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `application/x-www-form-urlencoded` value decoding: `+` is a space, then `%XX`.
pub fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode(&plus).into_owned()
}

fn hex(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Most path segments kept by [`segments`]. Real DICOMweb paths have at most ~12 (a prefix of
/// 4-6, then studies/uid/series/uid/instances/uid/frames/list); admin APIs fewer. A path with
/// more is matched on its first 64 segments, which is already far past any pattern.
pub const MAX_SEGMENTS: usize = 64;

/// The path as a server would resolve it: percent-decoded segments, empty and `.` segments
/// dropped, `..` popping its parent (RFC 3986 §5.2.4), at most [`MAX_SEGMENTS`] kept.
/// Matching on this rather than on the raw path keeps `//tools/./reset` and `%74ools/reset`
/// from slipping past the admin table.
pub fn segments(path: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    for raw in path.split('/') {
        let seg = percent_decode(raw);
        match &*seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => {
                if out.len() < MAX_SEGMENTS {
                    out.push(seg);
                }
            }
        }
    }
    out
}

/// `key=value` pairs of a query (`&` or `;` separated), keys and values raw.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split(['&', ';'])
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Query parameters whose values are credentials (OAuth 2.0 RFC 6750 §2.3 `access_token`,
/// OpenID `id_token`, authorization `code`, share-link and API tokens, passwords in GET forms).
/// Compared case-insensitively.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "code",
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "key",
    "auth",
    "authorization",
    "jwt",
    "session",
    "sessionid",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// QIDO-RS matching keys that carry patient identity (PS3.18 §10.6.1.2, by keyword or tag;
/// PS3.6 Patient and Study modules): the event must not repeat patient data, so their values
/// are redacted like secrets. UIDs, dates of study, modality and the like stay.
const PATIENT_PARAMS: &[&str] = &[
    "PatientName",
    "00100010",
    "PatientID",
    "00100020",
    "IssuerOfPatientID",
    "00100021",
    "PatientBirthDate",
    "00100030",
    "PatientBirthTime",
    "00100032",
    "OtherPatientIDs",
    "00101000",
    "OtherPatientNames",
    "00101001",
    "PatientBirthName",
    "00101005",
    "PatientAddress",
    "00101040",
    "PatientTelephoneNumbers",
    "00102154",
    "PatientMotherBirthName",
    "00101060",
    "AccessionNumber",
    "00080050",
];

/// What replaces a secret or patient-identifying query value in the URL.
pub const REDACTED: &str = "REDACTED";

/// Key names (lower case, without `_` `-` `.` `,` `(` `)` or spaces) that name a patient
/// identifier in local APIs and viewers: medical record number, patient id, date of birth,
/// national numbers.
const PATIENT_KEY_NAMES: &[&str] = &[
    "mrn",
    "pid",
    "dob",
    "birthdate",
    "dateofbirth",
    "ssn",
    "nhsnumber",
    "medicalrecordnumber",
];

/// A key reduced for matching: percent-decoded, lower case, separators dropped
/// (`Patient_ID`, `patient-id`, `(0010,0020)` → `patientid`, `00100020`).
fn squash(key: &str) -> String {
    percent_decode(key)
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ',' | '(' | ')' | ' ' | '[' | ']'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether one (squashed) key component names patient data: any `patient…` keyword
/// (PatientName, PatientID, PatientBirthDate, patient_id… PS3.6 Patient module keywords all
/// begin so), a tag of group 0010 (the Patient module, PS3.6 §6: 00100010 name, 00100020 id,
/// 00100030 birth date…), or a [`PATIENT_KEY_NAMES`] name.
fn is_patient_key(k: &str) -> bool {
    let tag = k.len() >= 8 && k.starts_with("0010") && k.bytes().take(8).all(|b| b.is_ascii_hexdigit());
    k.starts_with("patient") || tag || PATIENT_KEY_NAMES.contains(&k)
}

/// Whether the value of this query parameter must not appear in events: a credential, a
/// `PATIENT_PARAMS` key, or any key naming patient data (see `is_patient_key`), also as a
/// component of a dotted path (`ReferencedPatientSequence.PatientID`).
pub fn is_redacted_param(key: &str) -> bool {
    let k = percent_decode(key);
    if SECRET_PARAMS
        .iter()
        .chain(PATIENT_PARAMS)
        .any(|s| s.eq_ignore_ascii_case(&k))
    {
        return true;
    }
    let whole = squash(&k);
    is_patient_key(&whole) || k.split(['.', ':', '[']).any(|part| is_patient_key(&squash(part)))
}

/// Whether `s` holds a JWT anywhere (as a whole, after `Bearer `, inside a nested query…):
/// every run of base64url and `.` characters is tried.
pub fn contains_jwt(s: &str) -> bool {
    s.len() >= 10
        && s.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .any(crate::http::parser::is_jwt)
}

/// Whether a query value must not appear: a JWT, or structured text (JSON, a nested query)
/// that names patient keys (`Query={"PatientName":"DOE^J"}`, `filter=PatientID%3D123`).
fn is_redacted_value(value: &str) -> bool {
    let v = form_decode(value);
    if contains_jwt(&v) {
        return true;
    }
    if !v.contains(['{', '[', '=', ':', '/']) {
        return false;
    }
    // Every run of key-like characters is a candidate key.
    v.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| !w.is_empty())
        .any(|w| {
            let k = squash(w);
            is_patient_key(&k) && (k.starts_with("patient") || k.len() == 8 || PATIENT_KEY_NAMES.contains(&k.as_str()))
        })
}

/// Path segments after which the next segment is a patient identifier: REST collections
/// (`/patients/PID1234`, Orthanc `/patients/{id}`) and FHIR `/Patient/123` (FHIR R4 §3.1.0
/// RESTful API: `[base]/[type]/[id]`).
fn is_patient_collection(seg: &str) -> bool {
    let s = squash(seg);
    matches!(s.as_str(), "patient" | "patients" | "mrn" | "mrns")
}

/// The path for the event: a segment naming a patient (after a patient collection, except
/// FHIR operations and searches `_search`, `$everything`) or holding a JWT becomes
/// [`REDACTED`]. Everything else, DICOM UIDs included, stays as sent.
fn push_path(out: &mut String, path: &str, max_bytes: usize) {
    let mut after_patient = false;
    for (i, raw) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let seg = percent_decode(raw);
        let op = seg.starts_with('_') || seg.starts_with('$');
        if (after_patient && !seg.is_empty() && !op) || contains_jwt(&seg) {
            out.push_str(REDACTED);
        } else {
            out.push_str(raw);
        }
        if !seg.is_empty() {
            after_patient = is_patient_collection(&seg);
        }
        if out.len() > max_bytes {
            break;
        }
    }
}

/// The URL for the event: the target as sent from its path on (an absolute-form target keeps
/// `scheme://host` but loses its user info), secret and patient-identifying query values
/// replaced by [`REDACTED`], cut to at most `max_chars` characters. Returns the URL and
/// whether it was cut.
pub fn display_url(target: &str, max_chars: usize) -> (String, bool) {
    let t = split_target(target);
    let mut out = String::with_capacity(target.len().min(max_chars.saturating_mul(4)).min(4096));
    if let Some(auth) = t.authority.filter(|_| t.absolute) {
        // Absolute form: scheme, then the authority without user info.
        let scheme = target.split("://").next().unwrap_or("http");
        out.push_str(scheme);
        out.push_str("://");
        out.push_str(auth);
    } else if t.authority.is_some() {
        // authority-form (CONNECT): the target is the host.
        out.push_str(t.authority.unwrap_or(""));
    }
    push_path(&mut out, t.path, max_chars.saturating_mul(4));
    if let Some(q) = t.query {
        out.push('?');
        let mut first = true;
        for part in q.split('&') {
            if !first {
                out.push('&');
            }
            first = false;
            match part.split_once('=') {
                // A JWT in a key, or a bare JWT as a query part.
                _ if contains_jwt(&form_decode(part.split('=').next().unwrap_or(""))) => out.push_str(REDACTED),
                Some((k, v)) if is_redacted_param(k) || is_redacted_value(v) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(part),
            }
            if out.len() > max_chars.saturating_mul(4) {
                break;
            }
        }
    }
    truncate_chars(out, max_chars)
}

/// Cut a string to at most `max` characters (on a character boundary).
pub fn truncate_chars(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        // At most `max` bytes, so at most `max` characters.
        return (s, false);
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            s.truncate(i);
            (s, true)
        }
        None => (s, false),
    }
}

/// Text of a header value for an event: invalid UTF-8 replaced, surrounding whitespace trimmed,
/// at most `max` characters.
pub fn header_text(value: &[u8], max: usize) -> String {
    let end = value.len().min(max.saturating_mul(4));
    let s = String::from_utf8_lossy(value.get(..end).unwrap_or_default());
    truncate_chars(s.trim().to_string(), max).0
}

/// RFC 1035 §2.3.4: a host name is at most 255 octets.
const MAX_HOSTNAME: usize = 255;

/// The host of a `Host` header (or of an absolute target's authority) without port or
/// brackets, lower case. `None` when empty.
pub fn hostname(host: &[u8]) -> Option<String> {
    let text = header_text(host, MAX_HOSTNAME + 8);
    let text = text.rsplit('@').next().unwrap_or("");
    let host = if let Some(rest) = text.strip_prefix('[') {
        // IPv6 literal (RFC 3986 §3.2.2).
        rest.split(']').next().unwrap_or("")
    } else {
        text.split(':').next().unwrap_or("")
    };
    let (host, _) = truncate_chars(host.to_ascii_lowercase(), MAX_HOSTNAME);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_forms() {
        let t = split_target("/dicom-web/studies?PatientID=1#frag");
        assert_eq!(
            (t.authority, t.path, t.query),
            (None, "/dicom-web/studies", Some("PatientID=1"))
        );
        let t = split_target("http://user:pw@pacs:8042/studies/1.2?x=1");
        assert_eq!(
            (t.authority, t.path, t.query),
            (Some("pacs:8042"), "/studies/1.2", Some("x=1"))
        );
        let t = split_target("HTTP://pacs");
        assert_eq!((t.authority, t.path, t.query), (Some("pacs"), "/", None));
        let t = split_target("pacs.example:443");
        assert_eq!((t.authority, t.path), (Some("pacs.example:443"), ""));
        let t = split_target("*");
        assert_eq!((t.authority, t.path), (None, "*"));
    }

    #[test]
    fn segments_are_normalised() {
        let s = segments("//tools/./x/../%72eset/");
        assert_eq!(s, vec!["tools", "reset"]);
        assert!(segments("/").is_empty());
        assert_eq!(segments(&"/a".repeat(1000)).len(), MAX_SEGMENTS);
        assert_eq!(segments("/../../a"), vec!["a"]);
    }

    #[test]
    fn percent_decoding_is_safe() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(form_decode("dr+who%21"), "dr who!");
    }

    #[test]
    fn urls_lose_secrets() {
        let (u, cut) = display_url("/viewer?study=1.2.3&access_token=eyJabc.def.ghi&Token=x", 2048);
        assert_eq!(u, "/viewer?study=1.2.3&access_token=REDACTED&Token=REDACTED");
        assert!(!cut);
        let (u, _) = display_url(
            "/dicom-web/studies?PatientID=12345&patientname=DOE%5EJOHN&00100030=19700101&ModalitiesInStudy=CT&limit=5",
            2048,
        );
        assert_eq!(
            u,
            "/dicom-web/studies?PatientID=REDACTED&patientname=REDACTED&00100030=REDACTED&ModalitiesInStudy=CT&limit=5"
        );
        let (u, _) = display_url("http://admin:secret@pacs:8042/app?x", 2048);
        assert_eq!(u, "http://pacs:8042/app?x");
        assert!(!u.contains("secret"));
        let (u, cut) = display_url(&format!("/{}", "é".repeat(3000)), 2048);
        assert!(cut);
        assert_eq!(u.chars().count(), 2048);
        let (u, _) = display_url("pacs:443", 2048);
        assert_eq!(u, "pacs:443");
    }

    fn jwt() -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"dr.who","exp":1}"#),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }

    #[test]
    fn patient_keys_in_every_form_are_redacted() {
        let (u, _) = display_url(
            "/api/find?patient_id=P1&MRN=M2&PatientNameFamily=DOE&patient-birth-date=1970&(0010,0020)=X&00100030=19700101&Modality=CT&study=1.2.3",
            2048,
        );
        assert_eq!(
            u,
            "/api/find?patient_id=REDACTED&MRN=REDACTED&PatientNameFamily=REDACTED&patient-birth-date=REDACTED&(0010,0020)=REDACTED&00100030=REDACTED&Modality=CT&study=1.2.3"
        );
        let (u, _) = display_url("/q?ReferencedPatientSequence.PatientID=9&pid=7&dob=1", 2048);
        assert_eq!(
            u,
            "/q?ReferencedPatientSequence.PatientID=REDACTED&pid=REDACTED&dob=REDACTED"
        );
        // Keys that are not patient data stay.
        let (u, _) = display_url("/q?StudyInstanceUID=1.2.3&limit=5&includefield=00080020", 2048);
        assert_eq!(u, "/q?StudyInstanceUID=1.2.3&limit=5&includefield=00080020");
    }

    #[test]
    fn structured_values_naming_patients_are_redacted() {
        let (u, _) = display_url(
            "/viewer?Query=%7B%22PatientName%22%3A%22DOE%5EJANE%22%7D&filter=PatientID%3D123&q=%7B%22Modality%22%3A%22CT%22%7D",
            2048,
        );
        assert_eq!(
            u,
            "/viewer?Query=REDACTED&filter=REDACTED&q=%7B%22Modality%22%3A%22CT%22%7D"
        );
        let (u, _) = display_url(r#"/v?Query={"00100010":"DOE"}"#, 2048);
        assert_eq!(u, "/v?Query=REDACTED");
    }

    #[test]
    fn patient_ids_and_jwts_in_paths_are_redacted() {
        let (u, _) = display_url("/api/patients/PID1234/studies?x=1", 2048);
        assert_eq!(u, "/api/patients/REDACTED/studies?x=1");
        let (u, _) = display_url("/fhir/Patient/123/_history/2", 2048);
        assert_eq!(u, "/fhir/Patient/REDACTED/_history/2");
        let (u, _) = display_url("/fhir/Patient/_search?name=x", 2048);
        assert_eq!(u, "/fhir/Patient/_search?name=x");
        let (u, _) = display_url("/patients//abc/", 2048);
        assert_eq!(u, "/patients//REDACTED/");
        let t = jwt();
        let (u, _) = display_url(
            &format!("/share/{t}/view?token2={t}&{t}&next=%2Fa%3Fx%3D{t}&{t}=1"),
            2048,
        );
        assert_eq!(
            u,
            "/share/REDACTED/view?token2=REDACTED&REDACTED&next=REDACTED&REDACTED"
        );
        assert!(!u.contains("ey"));
        // DICOMweb UIDs stay, however many dotted parts they have.
        let p = "/dicom-web/studies/1.2.840.113619.2.55/series/1.2.3/instances/12.34.56";
        assert_eq!(display_url(p, 2048).0, p);
    }

    #[test]
    fn redaction_is_bounded_and_never_panics() {
        for s in [
            "/patients",
            "/patients/",
            "?",
            "/?=&=",
            "/%ZZ/patients/%",
            "/a?b=%7B",
            "/x?ey.ey.",
            "/ey.ey.ey",
        ] {
            let (u, _) = display_url(s, 16);
            assert!(u.chars().count() <= 16, "{s} -> {u}");
        }
        let long = format!("/patients/{}", "x/".repeat(100_000));
        let (u, cut) = display_url(&long, 2048);
        assert!(cut && u.chars().count() == 2048);
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname(b"PACS.example.org:8042").as_deref(), Some("pacs.example.org"));
        assert_eq!(hostname(b"[fe80::1]:80").as_deref(), Some("fe80::1"));
        assert_eq!(hostname(b" orthanc ").as_deref(), Some("orthanc"));
        assert_eq!(hostname(b":80"), None);
        assert_eq!(hostname(&[0xff, b'a']).as_deref(), Some("\u{fffd}a"));
        assert!(hostname(&[b'a'; 10_000]).unwrap().len() <= MAX_HOSTNAME);
    }

    #[test]
    fn query_pairs_split() {
        let v: Vec<_> = query_pairs("a=1&b&&c=2=3;d=4").collect();
        assert_eq!(v, vec![("a", "1"), ("b", ""), ("c", "2=3"), ("d", "4")]);
    }
}
