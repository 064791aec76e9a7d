//! The study ledger: per Study Instance UID, every access and transfer the events show (the
//! HIPAA accounting of disclosures: date, recipient, what, by whom).
//!
//! Rows merge the events of one connection that did the same thing to the same study (the
//! C-STOREs of one association are one row with their instance count and bytes), so a study's
//! rows grow with the connections that touched it, not with its instances.

use crate::ev::{node, Ev, Networks};
use crate::model::{LedgerRow, MoveCause, StudySummary};
use crate::shared::{Interner, Shared, Ts};
use crate::time::Micros;
use ahash::AHashMap;
use std::collections::HashMap;

/// Studies tracked with their rows (200 000: a large PACS archives ~1 000 studies a day, so
/// this is months of traffic); later studies are counted in `studies_untracked` only.
pub const MAX_STUDIES: usize = 200_000;
/// Rows kept per study (a study fetched by 1 000 different connections is already a finding;
/// the rest are counted in `rows_dropped`).
pub const MAX_ROWS_PER_STUDY: usize = 1_000;
/// Rows kept in all studies (1 000 000: ~200 bytes each, so ~200 MB at most; 10^6 events of the
/// bundled scenarios make ~350 000); past it rows are counted in their study's `rows_dropped`.
pub const MAX_LEDGER_ROWS: usize = 1_000_000;
/// Destinations and actors listed per study summary.
pub const MAX_NAMES_PER_STUDY: usize = 16;
/// C-MOVEs remembered to name the cause of their C-STORE sub-operations (50 000: weeks of a
/// busy PACS's retrieves; ~200 B each); past it new C-MOVEs are not remembered and their
/// sub-operations name the originator AE only.
pub const MAX_MOVES: usize = 50_000;
/// C-MOVEs kept per (originator AE, message id): message ids restart with each association
/// (PS3.7 §9.1.1.1 only asks them unique among its open requests), so one key recurs; the
/// newest 64 are kept.
pub const MAX_MOVES_PER_KEY: usize = 64;

/// One study-touching action extracted from an event.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    pub how: &'a str,
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub by: String,
    pub instances: Option<u64>,
    pub bytes: Option<u64>,
    pub status: Option<String>,
    pub studies: Vec<&'a str>,
    /// A C-STORE sub-operation's Move Originator AE and Message ID (PS3.7 §9.1.1.1).
    pub cause: Option<(&'a str, u16)>,
}

/// The access or transfer an event shows, if it names studies (or, for the image flow map,
/// moves images without naming them: `studies` empty).
pub fn action<'a>(ev: &Ev<'a>) -> Option<Action<'a>> {
    match ev.ty {
        "dicom" if ev.s("type") == Some("command") => {
            let cmd = ev.s("command")?;
            let calling = ev.s("calling_ae");
            let called = ev.s("called_ae");
            let requester = node(calling, ev.src);
            let acceptor = node(called, ev.dst);
            let cause = match (cmd, ev.s("move_originator_ae"), ev.u("move_originator_message_id")) {
                ("C-STORE", Some(ae), Some(id)) if !ae.is_empty() => u16::try_from(id).ok().map(|id| (ae, id)),
                _ => None,
            };
            // A C-MOVE's sub-operation was asked for by the originator, not by the PACS that
            // stores; its user and address are filled in from the C-MOVE at the end.
            let by = match cause {
                Some((ae, _)) => ae.to_string(),
                None => ev.user().map(str::to_string).unwrap_or_else(|| requester.clone()),
            };
            let studies =
                ev.b.study_instance_uids
                    .items
                    .iter()
                    .map(|s| &**s)
                    .filter(|s| !s.is_empty())
                    .collect();
            let status = ev.s("status").map(str::to_string);
            let completed = ev.completed();
            let toclient = ev.s("direction") == Some("toclient");
            let (how, kind, from, to, instances, bytes) = match cmd {
                "C-STORE" if toclient => (
                    "C-STORE",
                    "transfer",
                    acceptor,
                    requester,
                    Some(1),
                    ev.u("dataset_bytes"),
                ),
                "C-STORE" => (
                    "C-STORE",
                    "transfer",
                    requester,
                    acceptor,
                    Some(1),
                    ev.u("dataset_bytes"),
                ),
                "C-MOVE" => {
                    let dest = ev.s("move_destination").unwrap_or("?").to_string();
                    ("C-MOVE", "transfer", acceptor, dest, completed, None)
                }
                "C-GET" => ("C-GET", "transfer", acceptor, requester, completed, None),
                "C-FIND" => ("C-FIND", "access", requester, acceptor, None, None),
                _ => return None,
            };
            Some(Action {
                how,
                kind,
                from,
                to,
                by,
                instances,
                bytes,
                status,
                studies,
                cause,
            })
        }
        "http" if !ev.b.dicomweb.present && ev.b.download.present => {
            // A PACS's own REST API: Orthanc's study ZIPs and DICOM files.
            let d = &ev.b.download.v;
            let server = node(ev.s("hostname").filter(|h| *h != ev.dst), ev.dst);
            let client = ev.src.to_string();
            let ok = ev.u("status").is_some_and(|s| (200..300).contains(&s));
            let file = d.format.get() == Some("file");
            // A push the PACS was told to make goes to the node or peer it names.
            let pushed = d.destination.get().map(str::to_string);
            Some(Action {
                how: match (file, pushed.is_some()) {
                    (_, true) => "REST store",
                    (true, false) => "REST file",
                    (false, false) => "REST archive",
                },
                kind: "transfer",
                from: server,
                to: pushed.unwrap_or_else(|| client.clone()),
                by: ev.user().map(str::to_string).unwrap_or(client),
                instances: (ok && file).then_some(1),
                bytes: ev.u("response_bytes"),
                status: ev.u("status").map(|s| s.to_string()),
                studies: d
                    .study_instance_uids
                    .items
                    .iter()
                    .map(|s| &**s)
                    .filter(|s| !s.is_empty())
                    .collect(),
                cause: None,
            })
        }
        "http" => {
            let dw = &ev.b.dicomweb.v;
            let service = dw.service.0.as_deref()?;
            let server = node(ev.s("hostname").filter(|h| *h != ev.dst), ev.dst);
            let client = ev.src.to_string();
            let by = ev.user().map(str::to_string).unwrap_or_else(|| client.clone());
            let status = ev.u("status").map(|s| s.to_string());
            let ok = ev.u("status").is_some_and(|s| (200..300).contains(&s));
            let study = dw.study_instance_uid.get();
            let (how, kind, from, to, instances, bytes) = match service {
                "WADO-RS" | "WADO-URI" => {
                    let single = dw.sop_instance_uid.0 && service == "WADO-URI";
                    (
                        service,
                        "transfer",
                        server,
                        client,
                        (ok && single).then_some(1),
                        ev.u("response_bytes"),
                    )
                }
                "STOW-RS" => ("STOW-RS", "transfer", client, server, None, ev.u("request_bytes")),
                "QIDO-RS" => ("QIDO-RS", "access", client, server, None, None),
                _ => return None,
            };
            Some(Action {
                how,
                kind,
                from,
                to,
                by,
                instances,
                bytes,
                status,
                studies: study.into_iter().collect(),
                cause: None,
            })
        }
        _ => None,
    }
}

struct Study {
    first: Micros,
    first_ts: Ts,
    last_ts: Ts,
    last: Micros,
    rows: Vec<LedgerRow>,
    first_time: Vec<Micros>,
    accesses: u64,
    transfers: u64,
    instances: u64,
    bytes: u64,
    /// Sorted (as the summary lists them), at most [`MAX_NAMES_PER_STUDY`].
    destinations: Vec<Shared>,
    by: Vec<Shared>,
    rows_dropped: u64,
}

/// A C-MOVE, remembered to name the cause of its sub-operations.
struct SeenMove {
    /// Its request time: its sub-operations start after it.
    request: Micros,
    request_ts: String,
    destination: String,
    requester: String,
    user: Option<String>,
    flow: u64,
}

#[derive(Default)]
pub struct Ledger {
    studies: AHashMap<Shared, Study>,
    /// Rows kept in all studies, at most [`MAX_LEDGER_ROWS`].
    rows_kept: usize,
    /// One copy of each study UID, system, user, status (they repeat in every row).
    names: Interner,
    /// C-MOVEs by (calling AE, message id), at most [`MAX_MOVES`] in all.
    moves: HashMap<(String, u16), Vec<SeenMove>>,
    moves_kept: usize,
    pub moves_not_kept: u64,
    pub studies_untracked: u64,
    /// Only this study (for `--study`).
    pub only: Option<String>,
}

/// Adds `name` to a sorted list of at most [`MAX_NAMES_PER_STUDY`] (the order a `BTreeSet`
/// would give, without its node per study).
fn add_name(list: &mut Vec<Shared>, name: &str, names: &mut Interner) {
    if list.len() >= MAX_NAMES_PER_STUDY {
        return;
    }
    if let Err(i) = list.binary_search_by(|x| x.as_str().cmp(name)) {
        // Exact growth: most studies have one or two names, and `push` would reserve four.
        list.reserve_exact(1);
        list.insert(i, names.get(name));
    }
}

/// Room for one more element, growing by half (not `Vec`'s doubling from four): most studies
/// have one or two rows, and 300 000 studies with room for four ~300-byte rows each were a
/// quarter of the report's memory.
fn room_for_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 2 + 1);
    }
}

impl Ledger {
    pub fn add(&mut self, ev: &Ev<'_>, a: &Action<'_>, nets: &Networks) {
        if a.how == "C-MOVE" {
            self.remember_move(ev);
        }
        for uid in &a.studies {
            if self.only.as_deref().is_some_and(|o| o != *uid) {
                continue;
            }
            if !self.studies.contains_key(*uid) {
                if self.studies.len() >= MAX_STUDIES {
                    self.studies_untracked += 1;
                    continue;
                }
                self.studies.insert(
                    self.names.get(uid),
                    Study {
                        first: ev.t,
                        first_ts: Ts::new(ev.ts),
                        last: ev.t,
                        last_ts: Ts::new(ev.ts),
                        rows: Vec::new(),
                        first_time: Vec::new(),
                        accesses: 0,
                        transfers: 0,
                        instances: 0,
                        bytes: 0,
                        destinations: Vec::new(),
                        by: Vec::new(),
                        rows_dropped: 0,
                    },
                );
            }
            let Some(st) = self.studies.get_mut(*uid) else { continue };
            if ev.t < st.first {
                st.first = ev.t;
                st.first_ts = Ts::new(ev.ts);
            }
            if ev.t > st.last {
                st.last = ev.t;
                st.last_ts = Ts::new(ev.ts);
            }
            if a.kind == "transfer" {
                st.transfers += 1;
                add_name(&mut st.destinations, &a.to, &mut self.names);
            } else {
                st.accesses += 1;
            }
            add_name(&mut st.by, &a.by, &mut self.names);
            st.instances += a.instances.unwrap_or(0);
            st.bytes += a.bytes.unwrap_or(0);
            // A linear scan (rows per study are capped, and the flow id is compared first):
            // no per-row key strings to keep.
            let same = |r: &LedgerRow| {
                r.flow_id == ev.flow
                    && r.how == a.how
                    && r.from == *a.from
                    && r.to == *a.to
                    && r.caused_by.as_ref().map(|c| (c.originator_ae.as_str(), c.message_id)) == a.cause
            };
            let n = st.rows.len();
            match st.rows.iter_mut().find(|r| same(r)) {
                Some(r) => merge(r, ev, a, &mut self.names),
                None if n >= MAX_ROWS_PER_STUDY || self.rows_kept >= MAX_LEDGER_ROWS => st.rows_dropped += 1,
                None => {
                    self.rows_kept += 1;
                    room_for_one(&mut st.first_time);
                    room_for_one(&mut st.rows);
                    st.first_time.push(ev.t);
                    let names = &mut self.names;
                    st.rows.push(LedgerRow {
                        study_instance_uid: names.get(uid),
                        first: Ts::new(ev.ts),
                        last: Ts::new(ev.ts),
                        how: names.get(a.how),
                        kind: a.kind,
                        from: names.get(&a.from),
                        to: names.get(&a.to),
                        by: names.get(&a.by),
                        instances: a.instances,
                        bytes: a.bytes,
                        status: a.status.as_deref().map(|s| names.get(s)),
                        events: 1,
                        flow_id: ev.flow,
                        external: !nets.internal(&a.to),
                        caused_by: a.cause.map(|(ae, id)| {
                            Box::new(MoveCause {
                                originator_ae: ae.to_string(),
                                message_id: id,
                                requester: None,
                                user: None,
                                request_time: None,
                                flow_id: None,
                            })
                        }),
                    });
                }
            }
        }
    }

    fn remember_move(&mut self, ev: &Ev<'_>) {
        let (Some(ae), Some(id)) = (
            ev.s("calling_ae"),
            ev.u("message_id").and_then(|i| u16::try_from(i).ok()),
        ) else {
            return;
        };
        let key = (ae.to_string(), id);
        let list = match self.moves.get_mut(&key) {
            Some(l) => l,
            None if self.moves_kept >= MAX_MOVES => {
                self.moves_not_kept += 1;
                return;
            }
            None => self.moves.entry(key).or_default(),
        };
        if list.len() >= MAX_MOVES_PER_KEY {
            list.remove(0);
        } else if self.moves_kept >= MAX_MOVES {
            self.moves_not_kept += 1;
            return;
        } else {
            self.moves_kept += 1;
        }
        let request_ts = ev.s("request_time").unwrap_or(ev.ts);
        list.push(SeenMove {
            request: crate::time::parse(request_ts).unwrap_or(ev.t),
            request_ts: request_ts.to_string(),
            destination: ev.s("move_destination").unwrap_or("").to_string(),
            requester: node(Some(ae), ev.src),
            user: ev.user().map(str::to_string),
            flow: ev.flow,
        });
    }

    /// The C-MOVE behind a sub-operation that began at `first`: same originator AE, message
    /// id and destination (the C-STORE's called AE), requested at or before it; the latest such
    /// (message ids recur across associations).
    fn cause_of(&self, c: &MoveCause, dest_ae: &str, first: Micros) -> Option<&SeenMove> {
        self.moves
            .get(&(c.originator_ae.clone(), c.message_id))?
            .iter()
            .filter(|m| m.destination == dest_ae && m.request <= first)
            .max_by_key(|m| m.request)
    }

    /// Studies sorted by first time, and all their rows sorted by first time.
    pub fn finish(mut self) -> (Vec<StudySummary>, Vec<LedgerRow>, u64) {
        let studies_map = std::mem::take(&mut self.studies);
        let mut studies: Vec<(Micros, Study, Shared)> = studies_map.into_iter().map(|(k, s)| (s.first, s, k)).collect();
        studies.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
        let mut summaries = Vec::with_capacity(studies.len());
        let mut rows: Vec<(Micros, LedgerRow)> = Vec::with_capacity(self.rows_kept);
        for (_, st, uid) in studies {
            summaries.push(StudySummary {
                study_instance_uid: uid,
                first: st.first_ts,
                last: st.last_ts,
                accesses: st.accesses,
                transfers: st.transfers,
                instances: st.instances,
                bytes: st.bytes,
                destinations: st.destinations,
                by: st.by,
                rows_dropped: st.rows_dropped,
            });
            rows.extend(st.first_time.into_iter().zip(st.rows));
        }
        for (first, r) in rows.iter_mut() {
            let dest_ae = r.to.split('@').next().unwrap_or("").to_string();
            let Some(c) = r.caused_by.as_mut() else { continue };
            let Some(m) = self.cause_of(c, &dest_ae, *first) else {
                continue;
            };
            c.requester = Some(m.requester.clone());
            c.user = m.user.clone();
            c.request_time = Some(m.request_ts.clone());
            c.flow_id = Some(m.flow);
            let by = m.user.as_deref().unwrap_or(&m.requester).to_string();
            r.by = self.names.get(&by);
        }
        rows.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.study_instance_uid.cmp(&b.1.study_instance_uid))
        });
        (
            summaries,
            rows.into_iter().map(|r| r.1).collect(),
            self.studies_untracked,
        )
    }
}

fn merge(r: &mut LedgerRow, ev: &Ev<'_>, a: &Action<'_>, names: &mut Interner) {
    r.events += 1;
    if ev.ts > r.last.as_str() {
        r.last = Ts::new(ev.ts);
    }
    if ev.ts < r.first.as_str() {
        r.first = Ts::new(ev.ts);
    }
    r.instances = add_opt(r.instances, a.instances);
    r.bytes = add_opt(r.bytes, a.bytes);
    if let Some(s) = a.status.as_deref() {
        if r.status.as_deref() != Some(s) {
            r.status = Some(names.get(s));
        }
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ev::Line;

    fn ledger_of(lines: &[&str]) -> (Vec<StudySummary>, Vec<LedgerRow>) {
        let mut l = Ledger::default();
        let nets = Networks::default();
        for line in lines {
            let v: Line = serde_json::from_str(line).unwrap();
            let ev = Ev::from_line(&v).unwrap();
            if let Some(a) = action(&ev) {
                l.add(&ev, &a, &nets);
            }
        }
        let (s, r, _) = l.finish();
        (s, r)
    }

    const STORE1: &str = r#"{"timestamp":"2026-11-28T06:35:45.000001Z","flow_id":7,"event_type":"dicom","src_ip":"10.20.0.10","src_port":5000,"dest_ip":"198.51.100.7","dest_port":104,"dicom":{"type":"command","calling_ae":"ORTHANC","called_ae":"EXTPACS","command":"C-STORE","study_instance_uids":["1.2.3"],"status":"0x0000","dataset_bytes":1000,"direction":"toserver"}}"#;
    const STORE2: &str = r#"{"timestamp":"2026-11-28T06:35:46.000001Z","flow_id":7,"event_type":"dicom","src_ip":"10.20.0.10","src_port":5000,"dest_ip":"198.51.100.7","dest_port":104,"dicom":{"type":"command","calling_ae":"ORTHANC","called_ae":"EXTPACS","command":"C-STORE","study_instance_uids":["1.2.3"],"status":"0x0000","dataset_bytes":500,"direction":"toserver"}}"#;
    const MOVE: &str = r#"{"timestamp":"2026-11-28T06:35:44.000001Z","flow_id":9,"event_type":"dicom","src_ip":"10.20.0.30","src_port":5001,"dest_ip":"10.20.0.10","dest_port":4242,"dicom":{"type":"command","calling_ae":"WORKSTATION1","called_ae":"ORTHANC","user":"rad1","command":"C-MOVE","move_destination":"EXTPACS","study_instance_uids":["1.2.3"],"sub_operations":{"completed":2},"status":"0x0000","dataset_bytes":54,"direction":"toserver"}}"#;
    const WADO: &str = r#"{"timestamp":"2026-11-28T07:00:00.000001Z","flow_id":11,"event_type":"http","src_ip":"10.20.0.31","src_port":5002,"dest_ip":"10.20.0.10","dest_port":8042,"http":{"method":"GET","url":"/dicom-web/studies/1.2.4","status":200,"user":"rad2","request_bytes":100,"response_bytes":9000,"dicomweb":{"service":"WADO-RS","study_instance_uid":"1.2.4"}}}"#;

    #[test]
    fn c_stores_of_one_association_merge_into_one_row_with_instances_and_bytes() {
        let (studies, rows) = ledger_of(&[STORE1, STORE2, MOVE, WADO]);
        assert_eq!(studies.len(), 2);
        assert_eq!(studies[0].study_instance_uid, "1.2.3");
        assert_eq!(rows.len(), 3);
        // Sorted by first time: the C-MOVE came first.
        assert_eq!(rows[0].how, "C-MOVE");
        assert_eq!(rows[0].by, "rad1");
        assert_eq!(rows[0].from, "ORTHANC@10.20.0.10");
        assert_eq!(rows[0].to, "EXTPACS");
        assert_eq!(rows[0].instances, Some(2));
        let store = &rows[1];
        assert_eq!(
            (store.how.as_str(), store.instances, store.bytes, store.events),
            ("C-STORE", Some(2), Some(1500), 2)
        );
        assert_eq!(store.to, "EXTPACS@198.51.100.7");
        assert!(store.external);
        assert_eq!(store.first, "2026-11-28T06:35:45.000001Z");
        assert_eq!(store.last, "2026-11-28T06:35:46.000001Z");
        let wado = &rows[2];
        assert_eq!(
            (wado.how.as_str(), wado.by.as_str(), wado.to.as_str(), wado.bytes),
            ("WADO-RS", "rad2", "10.20.0.31", Some(9000))
        );
        assert!(!wado.external);
        assert_eq!(studies[0].transfers, 3);
        assert_eq!(studies[0].destinations, ["EXTPACS", "EXTPACS@198.51.100.7"]);
    }

    #[test]
    fn rows_per_study_are_capped_and_counted() {
        let mut l = Ledger::default();
        let nets = Networks::default();
        for i in 0..(MAX_ROWS_PER_STUDY as u64 + 5) {
            let line = STORE1.replace("\"flow_id\":7", &format!("\"flow_id\":{}", i + 100));
            let v: Line = serde_json::from_str(&line).unwrap();
            let ev = Ev::from_line(&v).unwrap();
            l.add(&ev, &action(&ev).unwrap(), &nets);
        }
        let (s, r, _) = l.finish();
        assert_eq!(r.len(), MAX_ROWS_PER_STUDY);
        assert_eq!(s[0].rows_dropped, 5);
        assert_eq!(s[0].transfers, MAX_ROWS_PER_STUDY as u64 + 5);
    }

    #[test]
    fn a_c_move_sub_operation_names_its_c_move_and_its_requester() {
        // The C-MOVE's event comes after its sub-operations (it ends with the last of them).
        let sub = |t: &str, flow: u64, id: u16| {
            STORE1
                .replace("2026-11-28T06:35:45.000001Z", t)
                .replace("\"flow_id\":7", &format!("\"flow_id\":{flow}"))
                .replace(
                    "\"command\":\"C-STORE\"",
                    &format!("\"command\":\"C-STORE\",\"move_originator_ae\":\"WORKSTATION1\",\"move_originator_message_id\":{id}"),
                )
        };
        let mv = |end: &str, req: &str, flow: u64| {
            MOVE.replace("2026-11-28T06:35:44.000001Z", end)
                .replace("\"flow_id\":9", &format!("\"flow_id\":{flow}"))
                .replace(
                    "\"command\":\"C-MOVE\"",
                    &format!("\"command\":\"C-MOVE\",\"message_id\":3,\"request_time\":\"{req}\""),
                )
        };
        let lines = [
            // An earlier C-MOVE with the same message id, on another association.
            mv("2026-11-28T06:00:05.000001Z", "2026-11-28T06:00:00.000001Z", 20),
            sub("2026-11-28T06:35:45.000001Z", 7, 3),
            mv("2026-11-28T06:35:47.000001Z", "2026-11-28T06:35:44.500001Z", 9),
            // A sub-operation whose C-MOVE is not in the input.
            sub("2026-11-28T06:40:00.000001Z", 8, 77),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (studies, rows) = ledger_of(&refs);
        let stores: Vec<&LedgerRow> = rows.iter().filter(|r| r.how == "C-STORE").collect();
        assert_eq!(stores.len(), 2, "{rows:?}");
        let c = stores[0].caused_by.as_ref().unwrap();
        assert_eq!(stores[0].by, "rad1", "by whom: the C-MOVE's user, not the storing PACS");
        assert_eq!(c.originator_ae, "WORKSTATION1");
        assert_eq!(c.message_id, 3);
        assert_eq!(c.requester.as_deref(), Some("WORKSTATION1@10.20.0.30"));
        assert_eq!(
            c.flow_id,
            Some(9),
            "the latest C-MOVE requested before it, not the morning's"
        );
        assert_eq!(c.request_time.as_deref(), Some("2026-11-28T06:35:44.500001Z"));
        let orphan = stores[1].caused_by.as_ref().unwrap();
        assert_eq!((orphan.message_id, orphan.requester.as_deref()), (77, None));
        assert_eq!(stores[1].by, "WORKSTATION1", "unseen C-MOVE: the originator AE");
        assert!(
            !studies[0].by.iter().any(|b| b.starts_with("ORTHANC")),
            "{:?}",
            studies[0].by
        );
    }

    #[test]
    fn remembered_c_moves_are_capped() {
        let mut l = Ledger::default();
        let nets = Networks::default();
        for i in 0..(MAX_MOVES as u64 + 10) {
            let line = MOVE.replace(
                "\"command\":\"C-MOVE\"",
                &format!("\"command\":\"C-MOVE\",\"message_id\":{}", i % 65_536),
            );
            let line = line.replace("WORKSTATION1", &format!("WS{}", i / 65_536 + i % 7));
            let v: Line = serde_json::from_str(&line).unwrap();
            let ev = Ev::from_line(&v).unwrap();
            l.add(&ev, &action(&ev).unwrap(), &nets);
        }
        assert!(l.moves_kept <= MAX_MOVES);
        assert!(l.moves.values().all(|v| v.len() <= MAX_MOVES_PER_KEY));
        assert!(l.moves_not_kept >= 10);
    }
}
