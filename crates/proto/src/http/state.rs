//! Transactions of one HTTP connection: requests waiting for their responses (pipelining and
//! keep-alive), pairing, byte counts; each pair is emitted as its `http` event.

use super::dicomweb;
use super::event::request_event;
use super::parser::{
    form_field, json_top_level_string_list, parse_request_head, parse_response_head, request_framing, response_framing,
    Framing, Role, H2_PREFACE_START,
};
use super::stream::{HeadOutcome, MessageSink};
use super::url::header_text;
use super::HttpAnomaly;
use crate::dicom::study_in_file;
use crate::Ctx;
use pacstap_core::{DicomWeb, EventBody, HttpEvent};
use std::collections::VecDeque;

/// Small login forms are read for their `username` field: an OAuth 2.0 password grant
/// (RFC 6749 §4.3.2, Keycloak's `…/protocol/openid-connect/token`) or a web login form is well
/// under 1 KiB; 4 KiB bounds the copy per flow. The password in it is never kept. The same
/// prefix of a share request's JSON body is read for its recipients.
pub const MAX_SNIFF: u64 = 4 << 10;

/// The prefix of a WADO-RS response body read for its study when the request was not seen: the
/// multipart headers, the 128-byte preamble, the file meta group (a few hundred bytes) and the
/// data set's elements up to (0020,000D) (identification, patient and acquisition groups: a few
/// KiB even for MR) fit well inside 16 KiB. Held only for responses without their request.
const MAX_FILE_SNIFF: usize = 16 << 10;
/// Bounds the inflation of a deflated data set in that prefix (as the DICOM decoder's sniff).
const MAX_FILE_INFLATED: usize = 64 << 10;

/// JSON keys naming the recipients of a share (portal and viewer APIs use these spellings).
const RECIPIENT_KEYS: &[&str] = &[
    "recipients",
    "recipient",
    "emails",
    "email",
    "to",
    "shareWith",
    "share_with",
    "invitees",
];

/// Which request bodies are read, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SniffKind {
    /// `application/x-www-form-urlencoded` login: the `username` field.
    Form,
    /// JSON body of a share request: its recipients.
    ShareJson,
    /// The DICOM file in a WADO-RS response whose request was not seen, or in the response to
    /// a REST API's file download: its study.
    DicomFile,
    /// JSON body of a REST API's archive request (`/tools/create-archive`): the resources.
    ResourceList,
}

/// Header values kept in events are cut at these many characters (see also
/// `event::MAX_USER_AGENT`).
const MAX_CONTENT_TYPE: usize = 256;

/// A request and what is known of its response.
#[derive(Debug)]
struct Tx {
    id: u64,
    ev: HttpEvent,
    req_done: bool,
    /// The final (non-1xx) response head was seen.
    final_seen: bool,
    resp_done: bool,
    /// Body prefix read for a login user or share recipients.
    sniff: Option<(SniffKind, Vec<u8>)>,
    /// Built from a response that came first on a connection whose handshake was captured:
    /// reported at the flow's end only if no request byte ever came (its request was lost with
    /// everything after it); a request that comes after all was mirrored late, and the
    /// response answered it (`Session::request_seen`).
    provisional: bool,
}

/// Per-connection transaction state.
#[derive(Debug, Default)]
pub(crate) struct Session {
    txs: VecDeque<Tx>,
    next_id: u64,
    /// The transaction whose request bytes are arriving.
    cur_req: Option<u64>,
    /// The transaction whose response bytes are arriving (`None`: an orphan response).
    cur_resp: Option<u64>,
    /// The response being read is interim (1xx).
    cur_resp_interim: bool,
    /// Response boundaries were lost: the next response answers the newest request, not the
    /// oldest (without pipelining, the requests whose responses fell into the hole are older).
    prefer_newest: bool,
    /// Requests may have been missed (midstream start, request-side resync): a response without
    /// a request is then expected, not an anomaly.
    requests_lossy: bool,
    /// Request bytes were lost (a gap, a resync, or a capture that began midstream) since the
    /// last request head was read: a response without a request answers one of the lost
    /// requests, and is reported from what it says (`request_missing`). Cleared by the next
    /// request, so a response only mirrored ahead of its request (which then arrives whole)
    /// is not taken for one.
    pub(crate) requests_missed: bool,
    /// The connection's handshake was captured and its first bytes were not a request: a
    /// response before any request byte answers one the capture lost, or one mirrored late.
    pub(crate) first_answer_unsure: bool,
    /// A request byte came on this connection.
    pub(crate) request_seen: bool,
    pub(crate) anomalies_emitted: u32,
    /// The connection stopped being HTTP/1.x (tunnel, HTTP/2): give the flow up.
    pub(crate) stop: bool,
}

impl Session {
    /// Capacity of the body prefixes held (for the memory budget).
    pub(crate) fn held_bytes(&self) -> usize {
        self.txs
            .iter()
            .filter_map(|t| t.sniff.as_ref())
            .map(|(_, b)| b.capacity())
            .sum()
    }

    /// `midstream`: the flow did not start with a request; `handshake_seen`: its TCP handshake
    /// was captured, so no request was sent before the capture began (without it, requests may
    /// have been).
    pub(crate) fn new(midstream: bool, handshake_seen: bool) -> Self {
        Session {
            requests_lossy: midstream,
            requests_missed: midstream && !handshake_seen,
            first_answer_unsure: midstream && handshake_seen,
            ..Session::default()
        }
    }

    fn find(&mut self, id: Option<u64>) -> Option<&mut Tx> {
        let id = id?;
        self.txs.iter_mut().find(|t| t.id == id)
    }

    /// Emit every transaction still open (flow end, or giving the flow up).
    pub(crate) fn flush(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(mut tx) = self.txs.pop_front() {
            if tx.provisional && self.request_seen {
                continue;
            }
            if tx.provisional {
                ctx.stats.http.responses_without_request_reported += 1;
            }
            if !(tx.req_done && tx.resp_done) {
                tx.ev.incomplete = true;
            }
            emit(ctx, tx);
        }
        self.cur_req = None;
        self.cur_resp = None;
    }

    /// Emit the transaction `id` if both of its messages are complete.
    fn try_emit(&mut self, ctx: &mut Ctx<'_>, id: u64) {
        if let Some(pos) = self
            .txs
            .iter()
            .position(|t| t.id == id && t.req_done && t.resp_done && !t.provisional)
        {
            if let Some(tx) = self.txs.remove(pos) {
                emit(ctx, tx);
            }
        }
    }
}

/// Count and emit one transaction.
fn emit(ctx: &mut Ctx<'_>, mut tx: Tx) {
    finish_form(&mut tx);
    let st = &mut ctx.stats.http;
    st.transactions += 1;
    st.request_bytes += tx.ev.request_bytes;
    st.response_bytes += tx.ev.response_bytes;
    if tx.ev.status.is_none() {
        st.transactions_without_response += 1;
    }
    if let Some(dw) = &tx.ev.dicomweb {
        match dw.service.as_str() {
            dicomweb::service::QIDO_RS => st.dicomweb_qido_rs += 1,
            dicomweb::service::WADO_RS => st.dicomweb_wado_rs += 1,
            dicomweb::service::STOW_RS => st.dicomweb_stow_rs += 1,
            dicomweb::service::WADO_URI => st.dicomweb_wado_uri += 1,
            _ => st.dicomweb_other += 1,
        }
    }
    if tx.ev.admin_action.is_some() {
        st.admin_actions += 1;
    }
    if tx.ev.share_action.is_some() {
        st.share_actions += 1;
    }
    if matches!(tx.ev.status, Some(401 | 403)) {
        if tx.ev.auth.is_some() {
            st.auth_failures += 1;
        } else {
            st.auth_challenges += 1;
        }
    }
    ctx.emit(EventBody::Http(tx.ev));
}

/// Read what a sniffed body prefix says, then drop it (a login form holds the password).
fn finish_form(tx: &mut Tx) {
    match tx.sniff.take() {
        Some((SniffKind::Form, body)) if tx.ev.user.is_none() => {
            if let Some(user) = form_field(&body, "username") {
                tx.ev.user = Some(user);
                tx.ev.auth.get_or_insert_with(|| "form".into());
            }
        }
        Some((SniffKind::ShareJson, body)) => {
            tx.ev.share_recipients = json_top_level_string_list(&body, RECIPIENT_KEYS);
        }
        Some((SniffKind::ResourceList, body)) => {
            if let Some(d) = tx.ev.download.as_mut() {
                d.ids = super::orthanc::ids_from_body(&body);
            }
        }
        Some((SniffKind::DicomFile, body)) if tx.ev.download.is_some() => {
            if let Some(d) = tx.ev.download.as_mut() {
                d.study_instance_uids = if d.format == "file" {
                    study_in_file(&body, MAX_FILE_INFLATED).into_iter().collect()
                } else {
                    super::zip_prefix::studies_in_zip(&body, MAX_FILE_INFLATED)
                };
            }
        }
        Some((SniffKind::DicomFile, body)) => {
            if body.is_empty() && tx.ev.gap_bytes == 0 {
                // No body at all: the response to a HEAD, which retrieves nothing.
                tx.ev.dicomweb = None;
            } else if let Some(dw) = tx.ev.dicomweb.as_mut() {
                dw.study_instance_uid = study_in_file(&body, MAX_FILE_INFLATED);
            }
        }
        _ => {}
    }
}

/// The first `max` bytes of a `Content-Type` value, lower case (media types and parameter
/// names are case-insensitive, RFC 9110 §8.3.1), split at `;`: the media type first, then its
/// parameters, each trimmed.
fn content_type_parts(ct: &[u8], max: usize) -> Vec<String> {
    let ct = String::from_utf8_lossy(ct.get(..ct.len().min(max)).unwrap_or_default()).to_ascii_lowercase();
    ct.split(';').map(|p| p.trim().to_owned()).collect()
}

/// Whether a `Content-Type` is `multipart/related` with `type=application/dicom` (quoted or
/// not): DICOM files, one per part (PS3.18 §8.7.3.3.2).
fn is_multipart_dicom(ct: &[u8]) -> bool {
    let parts = content_type_parts(ct, 512);
    parts.first().is_some_and(|m| m == "multipart/related")
        && parts.iter().skip(1).any(|p| {
            p.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "type" && v.trim().trim_matches('"') == "application/dicom")
        })
}

/// Whether a media type (a `Content-Type` value) is `type/subtype`, parameters ignored.
fn media_type_is(ct: &[u8], pred: impl Fn(&str) -> bool) -> bool {
    content_type_parts(ct, 256).first().is_some_and(|m| pred(m))
}

/// The analyzer side of the message walkers: a session and the call's context.
pub(crate) struct SessionSink<'s, 'c, 'a> {
    pub(crate) session: &'s mut Session,
    pub(crate) ctx: &'c mut Ctx<'a>,
}

impl SessionSink<'_, '_, '_> {
    fn anomaly_detail(&mut self, name: HttpAnomaly, detail: String) {
        self.ctx
            .flow_anomaly(&mut self.session.anomalies_emitted, name, Some(detail));
    }

    fn push_request(&mut self, ev: HttpEvent, req_done: bool) -> u64 {
        self.session.requests_missed = false;
        self.ctx.stats.http.requests += 1;
        self.push_tx(ev, req_done)
    }

    /// The transaction of a final response that answers no request seen, when requests were
    /// lost since the last one: built from the response alone (its status and type set by the
    /// caller). A `multipart/related` DICOM body is a WADO-RS retrieval (PS3.18 §8.7.3.3; a
    /// QIDO-RS, STOW-RS or metadata response carries JSON or XML), whose first file names the
    /// study: read from the body's prefix; a DICOM file or a ZIP is a retrieval too. On a
    /// connection whose first bytes were this response, it is provisional (`Tx::provisional`).
    /// `None`: no request was lost, nothing to answer; else the transaction and whether its
    /// body is read.
    fn answer_a_missing_request(&mut self, content_type: Option<&[u8]>) -> Option<(u64, bool)> {
        let provisional = !self.session.requests_missed;
        if provisional && (!self.session.first_answer_unsure || self.session.request_seen) {
            return None;
        }
        let wado = content_type.is_some_and(is_multipart_dicom);
        // A DICOM file, or a ZIP (a REST API's archive), is a retrieval whatever API served it:
        // the file (or the ZIP's first entry) names its study.
        let ct = content_type.unwrap_or_default();
        let format = if wado {
            None
        } else if media_type_is(ct, |m| m == "application/zip") {
            Some("archive")
        } else if media_type_is(ct, |m| m == "application/dicom") {
            Some("file")
        } else {
            None
        };
        let ev = HttpEvent {
            request_time: self.ctx.ts,
            incomplete: true,
            request_missing: true,
            dicomweb: wado.then(|| DicomWeb {
                service: dicomweb::service::WADO_RS.into(),
                ..DicomWeb::default()
            }),
            download: format.map(super::orthanc::unknown_request),
            ..HttpEvent::default()
        };
        // Its DICOM files name its studies: read from the body's prefix.
        let sniff = wado || format.is_some();
        let id = self.push_tx(ev, true);
        if !provisional {
            self.ctx.stats.http.responses_without_request_reported += 1;
        }
        if let Some(tx) = self.session.find(Some(id)) {
            tx.provisional = provisional;
            if sniff {
                tx.sniff = Some((SniffKind::DicomFile, Vec::new()));
            }
        }
        Some((id, sniff))
    }

    fn push_tx(&mut self, ev: HttpEvent, req_done: bool) -> u64 {
        let s = &mut *self.session;
        let max = self.ctx.cfg.http.max_pending_requests.max(1);
        while s.txs.len() >= max {
            // Pipelining beyond any real client's depth: emit the oldest as it stands.
            let Some(mut old) = s.txs.pop_front() else {
                break;
            };
            old.ev.incomplete = true;
            if s.cur_req == Some(old.id) {
                s.cur_req = None;
            }
            if s.cur_resp == Some(old.id) {
                s.cur_resp = None;
            }
            let detail = format!("more than {max} requests awaiting responses");
            self.ctx
                .flow_anomaly(&mut s.anomalies_emitted, HttpAnomaly::TooManyPending, Some(detail));
            emit(self.ctx, old);
        }
        let id = s.next_id;
        s.next_id += 1;
        s.txs.push_back(Tx {
            id,
            ev,
            req_done,
            final_seen: false,
            resp_done: false,
            sniff: None,
            provisional: false,
        });
        id
    }

    /// A head event from the start line (and the [`SALVAGED_FIELDS`]) of a head that could not
    /// be read whole, marked incomplete.
    fn salvage(&mut self, role: Role, partial: &[u8]) {
        let Some(first) = salvage_head(partial) else {
            return;
        };
        match role {
            Role::Request => {
                if let Some(h) = parse_request_head(&first) {
                    let mut ev = request_event(self.ctx, &h);
                    ev.incomplete = true;
                    let id = self.push_request(ev, false);
                    self.session.cur_req = Some(id);
                }
            }
            Role::Response => {
                if let Some(h) = parse_response_head(&first) {
                    if !(100..200).contains(&h.status) {
                        let oldest = self.session.txs.iter().find(|t| !t.final_seen).map(|t| t.id);
                        let pick = oldest.or_else(|| self.answer_a_missing_request(None).map(|(id, _)| id));
                        let s = &mut *self.session;
                        s.cur_resp = pick;
                        s.cur_resp_interim = false;
                        if let Some(tx) = s.find(pick) {
                            tx.final_seen = true;
                            tx.ev.status = Some(h.status);
                            tx.ev.response_time = Some(self.ctx.ts);
                            tx.ev.incomplete = true;
                        }
                        self.ctx.stats.http.responses += 1;
                    }
                }
            }
        }
    }

    fn request_head(&mut self, head: &[u8], tentative: bool) -> HeadOutcome {
        if head.starts_with(H2_PREFACE_START) {
            self.ctx.stats.http.http2_flows += 1;
            self.anomaly_detail(HttpAnomaly::Http2Unsupported, "HTTP/2 prior-knowledge preface".into());
            self.session.stop = true;
            return HeadOutcome::Stop;
        }
        let Some(h) = parse_request_head(head) else {
            if !tentative {
                self.anomaly_detail(HttpAnomaly::MalformedRequest, "unparseable request head".into());
            }
            return HeadOutcome::Resync;
        };
        if h.too_many_headers {
            let detail = format!("{} header fields", h.fields.count);
            self.anomaly_detail(HttpAnomaly::TooManyHeaders, detail);
        }
        let (framing, issue) = request_framing(&h.fields);
        if let Some(name) = issue {
            self.anomaly_detail(name, "both Transfer-Encoding and Content-Length".into());
        }
        let ev = request_event(self.ctx, &h);
        let share = ev.share_action.is_some();
        let resource_list = ev.download.as_ref().is_some_and(|d| d.ids.is_empty());
        let id = self.push_request(ev, false);
        self.session.cur_req = Some(id);
        match framing {
            Ok(framing) => {
                let ct = h.fields.content_type.unwrap_or_default();
                let sniff = match framing {
                    // Whatever its Content-Type: Orthanc reads the body as JSON regardless, and
                    // `curl -d` labels it a form.
                    Framing::Length(_) if resource_list => Some(SniffKind::ResourceList),
                    Framing::Length(n)
                        if n <= MAX_SNIFF
                            && h.method == "POST"
                            && h.fields.authorization.is_none()
                            && media_type_is(ct, |m| m == "application/x-www-form-urlencoded") =>
                    {
                        Some(SniffKind::Form)
                    }
                    // A prefix of a larger JSON body still shows the recipients listed first.
                    Framing::Length(_)
                        if share && media_type_is(ct, |m| m == "application/json" || m.ends_with("+json")) =>
                    {
                        Some(SniffKind::ShareJson)
                    }
                    _ => None,
                };
                if let Some(kind) = sniff {
                    if let Some(tx) = self.session.find(Some(id)) {
                        tx.sniff = Some((kind, Vec::new()));
                    }
                }
                HeadOutcome::Body {
                    framing,
                    sniff: sniff.is_some(),
                    unsure: false,
                }
            }
            Err(why) => {
                self.anomaly_detail(HttpAnomaly::MalformedRequest, why.into());
                HeadOutcome::Resync
            }
        }
    }

    fn response_head(&mut self, head: &[u8], tentative: bool) -> HeadOutcome {
        let Some(h) = parse_response_head(head) else {
            if !tentative {
                self.anomaly_detail(HttpAnomaly::MalformedResponse, "unparseable response head".into());
            }
            return HeadOutcome::Resync;
        };
        if h.too_many_headers {
            let detail = format!("{} header fields", h.fields.count);
            self.anomaly_detail(HttpAnomaly::TooManyHeaders, detail);
        }
        let interim = (100..200).contains(&h.status) && h.status != 101;
        let s = &mut *self.session;
        // The request this answers: the oldest without a final response, or after lost
        // response boundaries the newest (older ones lost theirs in the hole).
        let pick = if s.prefer_newest && !interim {
            s.txs.iter().rev().find(|t| !t.final_seen).map(|t| t.id)
        } else {
            s.txs.iter().find(|t| !t.final_seen).map(|t| t.id)
        };
        if s.prefer_newest && !interim {
            s.prefer_newest = false;
            if let Some(id) = pick {
                // Older unanswered requests will get no response: close them now.
                let mut lost = Vec::new();
                for t in s.txs.iter_mut().filter(|t| t.id < id && !t.final_seen) {
                    t.final_seen = true;
                    t.resp_done = true;
                    t.ev.incomplete = true;
                    lost.push(t.id);
                }
                for l in lost {
                    s.try_emit(self.ctx, l);
                }
            }
        }
        let orphan = pick.is_none();
        let answered = match pick {
            None if !interim => self.answer_a_missing_request(h.fields.content_type),
            _ => None,
        };
        let pick = pick.or(answered.map(|(id, _)| id));
        let s = &mut *self.session;
        s.cur_resp = pick;
        s.cur_resp_interim = interim;
        let mut file_sniff = false;
        let method = match s.find(pick) {
            Some(tx) => {
                if interim {
                    tx.ev.interim_responses = tx.ev.interim_responses.saturating_add(1);
                } else {
                    tx.final_seen = true;
                    tx.ev.status = Some(h.status);
                    tx.ev.response_time = Some(self.ctx.ts);
                    tx.ev.content_type = h.fields.content_type.map(|v| header_text(v, MAX_CONTENT_TYPE));
                    // A REST API's DICOM file, or the first file of its ZIP, names its study in
                    // its data set: read it from the body's prefix (dropped once read, as every
                    // sniffed body is).
                    let ct = h.fields.content_type.unwrap_or_default();
                    file_sniff = (200..300).contains(&h.status)
                        && tx.ev.download.as_ref().is_some_and(|d| match d.format.as_str() {
                            "file" => media_type_is(ct, |m| m == "application/dicom"),
                            _ => media_type_is(ct, |m| m == "application/zip"),
                        });
                    if file_sniff {
                        tx.sniff = Some((SniffKind::DicomFile, Vec::new()));
                    }
                }
                tx.ev.method.clone()
            }
            None => String::new(),
        };
        if interim {
            self.ctx.stats.http.interim_responses += 1;
        } else {
            self.ctx.stats.http.responses += 1;
        }
        if orphan {
            self.ctx.stats.http.orphan_responses += 1;
            if !self.session.requests_lossy && !tentative {
                let detail = format!("status {}", h.status);
                self.anomaly_detail(HttpAnomaly::ResponseWithoutRequest, detail);
            }
        }
        let (framing, issue) = response_framing(h.status, if method.is_empty() { "GET" } else { &method }, &h.fields);
        if let Some(name) = issue {
            let detail = if name == HttpAnomaly::ConflictingLength {
                "both Transfer-Encoding and Content-Length"
            } else {
                "invalid Content-Length, read until close"
            };
            self.anomaly_detail(name, detail.into());
        }
        if framing == Framing::Tunnel {
            self.ctx.stats.http.tunnels += 1;
            // Every give-up says why: what follows is not HTTP (WebSocket, CONNECT tunnel).
            let detail = format!(
                "status {} switched the connection to a tunnel; not decoded further",
                h.status
            );
            self.anomaly_detail(HttpAnomaly::GiveUp, detail);
            self.session.stop = true;
            return HeadOutcome::Stop;
        }
        HeadOutcome::Body {
            framing,
            sniff: file_sniff || answered.is_some_and(|(_, sniff)| sniff),
            unsure: orphan,
        }
    }
}

/// Header fields read from the first part of a head that went over the cap (or the memory
/// budget): those an event is built from. A field cut by the cap is not used.
const SALVAGED_FIELDS: &[&str] = &["host", "authorization", "user-agent", "x-forwarded-for", "forwarded"];

/// A head made of the start line and the [`SALVAGED_FIELDS`] lines found complete in
/// `partial`, so the ordinary head parser reads them; `None` when the start line is cut. A
/// last line cut between its CR and LF is complete: the CR ended its value (a cut there
/// would otherwise lose, say, the Authorization line that names an admin).
fn salvage_head(partial: &[u8]) -> Option<Vec<u8>> {
    let whole = |l: &&[u8]| l.ends_with(b"\n") || l.ends_with(b"\r");
    let mut lines = partial.split_inclusive(|&b| b == b'\n');
    let mut out = Vec::with_capacity(partial.len() + 3);
    let take = |line: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    };
    take(lines.next().filter(whole)?, &mut out);
    for line in lines {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        if !SALVAGED_FIELDS.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(name)) {
            continue;
        }
        if whole(&line) {
            take(line, &mut out);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            if let Some(cut) = line.get(name.len() + 1..).and_then(cut_basic_authorization) {
                take(&cut, &mut out);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// The value of an `Authorization` line cut inside its Basic credentials, as a whole line whose
/// credentials end at the last whole base64 quantum: its user is named exactly when the
/// captured part reaches past the user-id's `:` (RFC 7617: a user-id has no colon), else
/// nothing is. Another scheme, or a cut inside a Bearer token, gives `None`: a part of a token
/// names no one for sure.
fn cut_basic_authorization(value: &[u8]) -> Option<Vec<u8>> {
    let value = value.trim_ascii_start();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let token = value.get(6..)?.trim_ascii();
    let token = token.get(..token.len() / 4 * 4)?;
    let mut out = b"Authorization: Basic ".to_vec();
    out.extend_from_slice(token);
    out.extend_from_slice(b"\r\n");
    Some(out)
}

impl MessageSink for SessionSink<'_, '_, '_> {
    fn reserve(&mut self, buf: &mut Vec<u8>, more: usize) -> bool {
        self.ctx.reserve(buf, more)
    }

    fn head(&mut self, role: Role, head: &[u8], tentative: bool) -> HeadOutcome {
        match role {
            Role::Request => self.request_head(head, tentative),
            Role::Response => self.response_head(head, tentative),
        }
    }

    fn head_too_large(&mut self, role: Role, partial: &[u8], tentative: bool, budget: bool) {
        if tentative {
            return;
        }
        if budget {
            let n = partial.len();
            let detail = self.ctx.budget_detail(format_args!("{role:?} head after {n} bytes"));
            self.anomaly_detail(HttpAnomaly::MemoryBudget, detail);
        } else {
            let detail = format!("header block over {} bytes", partial.len());
            self.anomaly_detail(HttpAnomaly::HeaderTooLarge, detail);
        }
        // Keep what the part that was read says: the request still gets its event (method,
        // URL, Host, user), the response still answers one.
        self.salvage(role, partial);
    }

    /// Why also right after a resynchronisation lock (unlike a head over the cap): in a capture
    /// with a short snaplen every head is cut and follows a lock, and a salvaged head needs a
    /// whole start line that parses, which bytes that only look like one rarely give.
    fn head_cut(&mut self, role: Role, partial: &[u8]) {
        self.salvage(role, partial);
    }

    fn body_data(&mut self, role: Role, data: &[u8]) {
        let (id, cap) = match role {
            Role::Request => (self.session.cur_req, MAX_SNIFF as usize),
            Role::Response => (self.session.cur_resp, MAX_FILE_SNIFF),
        };
        let Some(tx) = self.session.find(id) else { return };
        let Some((_, buf)) = tx.sniff.as_mut() else { return };
        let take = cap.saturating_sub(buf.len()).min(data.len());
        if take == 0 {
            return;
        }
        // The response prefix is larger and held under the decoder memory budget; refused, the
        // study stays unnamed.
        if role == Role::Response && !self.ctx.reserve(buf, take) {
            tx.sniff = None;
            return;
        }
        buf.extend_from_slice(data.get(..take).unwrap_or_default());
    }

    fn message_end(&mut self, role: Role, bytes: u64, complete: bool) {
        let s = &mut *self.session;
        match role {
            Role::Request => {
                let id = s.cur_req.take();
                if let Some(tx) = s.find(id) {
                    tx.ev.request_bytes = tx.ev.request_bytes.saturating_add(bytes);
                    tx.ev.incomplete |= !complete;
                    tx.req_done = true;
                    finish_form(tx);
                }
                if let Some(id) = id {
                    s.try_emit(self.ctx, id);
                }
            }
            Role::Response => {
                let id = s.cur_resp.take();
                let interim = std::mem::take(&mut s.cur_resp_interim);
                if let Some(tx) = s.find(id) {
                    tx.ev.response_bytes = tx.ev.response_bytes.saturating_add(bytes);
                    if !interim && tx.final_seen {
                        tx.ev.incomplete |= !complete;
                        tx.resp_done = true;
                    }
                }
                if let Some(id) = id {
                    s.try_emit(self.ctx, id);
                }
            }
        }
    }

    fn gap_in_message(&mut self, role: Role, len: u64) {
        let s = &mut *self.session;
        let id = match role {
            Role::Request => s.cur_req,
            Role::Response => s.cur_resp,
        };
        if let Some(tx) = s.find(id) {
            tx.ev.gap_bytes = tx.ev.gap_bytes.saturating_add(len);
        }
    }

    fn lost_sync(&mut self, role: Role, _why: &'static str) {
        match role {
            Role::Request => {
                self.session.requests_lossy = true;
                self.session.requests_missed = true;
                self.session.cur_req = None;
            }
            Role::Response => {
                self.session.prefer_newest = true;
                self.session.cur_resp = None;
            }
        }
    }

    fn resynced(&mut self, role: Role, skipped: u64) {
        let side = match role {
            Role::Request => "request",
            Role::Response => "response",
        };
        self.anomaly_detail(
            HttpAnomaly::Resync,
            format!("{side} side: skipped {skipped} bytes to the next start line"),
        );
        if role == Role::Response {
            self.session.prefer_newest = true;
        } else {
            // Bytes that were not a request were passed over: a response may answer them.
            self.session.requests_lossy = true;
            self.session.requests_missed = true;
        }
    }

    fn anomaly(&mut self, name: HttpAnomaly, detail: String) {
        self.anomaly_detail(name, detail);
    }
}
