//! C-MOVE sub-operations tied to the C-MOVE that caused them (issue 12 item 2).
//!
//! A C-MOVE's images travel on other associations: the SCP opens one to the Move Destination
//! and sends each instance as a C-STORE that names its cause, Move Originator AE Title
//! (0000,1030) and Move Originator Message ID (0000,1031) (PS3.7 §9.1.1.1, §9.1.4). The
//! decoder emits a command with its final response, so these C-STOREs arrive before their
//! C-MOVE (whose final response follows the last sub-operation, PS3.7 §9.1.4.1.2): they are
//! gathered here per (originator AE, message id) and taken by the C-MOVE when it arrives.
//! Message ids repeat across associations, so a C-MOVE takes only sub-operations that began
//! at or after its request (less a mirror's skew, [`MIRROR_SKEW_NS`]), before its final
//! response (plus that skew) when it had one, and that went to its Move Destination.
//!
//! Sub-operations are kept in groups, one per association that carried them (an SCP opens
//! one per C-MOVE as a rule), and a C-MOVE takes whole groups. When the flow stage emits the
//! events of several associations at once (at the end of the input, or ending together), two
//! C-MOVEs with the same id may both come after all their C-STOREs: one sum per id then gave
//! everything to one of them, or nothing to the later one, whose request followed the first
//! C-STORE.

use crate::name::Name;
use crate::scope::StudyItem;
use pacstap_core::{FlowId, FlowMeta};
use std::collections::{HashMap, VecDeque};

/// C-MOVEs in progress tracked at once. A PACS serves at most a few hundred concurrent
/// retrieves (DICOM has no limit; Orthanc's default is 4 concurrent jobs, dcm4chee's
/// association pool some 100s), so 4,096 leaves room; past it the oldest is forgotten
/// (its C-MOVE then counts its studies without volume).
const MAX_MOVES: usize = 4096;
/// Sub-operation flows named per C-MOVE: one association per C-MOVE is usual, one per
/// instance the worst a sender does; the evidence lists are capped further down anyway.
const MAX_FLOWS: usize = 64;
/// Groups (sub-operation associations) kept per (originator AE, message id): past it, a new
/// association's sub-operations join the latest group (their C-MOVEs then share one sum).
const MAX_GROUPS: usize = 8;
/// Studies remembered per group, to count a C-MOVE known only by its sub-operations: one
/// association usually carries one C-MOVE's studies (one for a study-level move, a patient's
/// few for a patient-level one); past it the group still counts its volume.
const MAX_GROUP_STUDIES: usize = 256;
/// Studies remembered over all groups (the memory of C-MOVEs not yet seen is bounded in total,
/// not only per C-MOVE).
const MAX_STUDY_KEYS: usize = 65_536;
/// Study UIDs kept per group for an alert's evidence (the count uses the keys).
const MAX_GROUP_UIDS: usize = 8;
/// How long after the association that carried it ended, in nanoseconds of packet time, a
/// group waits for its C-MOVE before it is counted on its own. The final response follows the
/// last sub-operation at once (PS3.7 §9.1.4.1.2): a minute is long past any C-MOVE still to
/// come, and short against the 30-minute bulk-export window. Counted from the association's
/// end, not from its last C-STORE: one instance of 2 GB over a slow link takes minutes, and
/// its C-MOVE is still running meanwhile.
pub(crate) const ORPHAN_AFTER_NS: i64 = 60 * 1_000_000_000;
/// How long a group whose association's end was never seen waits after its last
/// sub-operation (its association event came first, or was lost with an evicted flow): the
/// bulk-export window, longer than one slow instance takes.
const ORPHAN_IDLE_NS: i64 = 30 * 60 * 1_000_000_000;
/// How much earlier than its C-MOVE's request a sub-operation may seem to begin, in
/// nanoseconds of packet time. The two come from different hosts (the C-MOVE from the
/// requester, the C-STORE from the SCP), and a SPAN port delivers one host's copies later than
/// the other's: 10 ms of skew put every sub-operation before its request and the C-MOVE lost
/// its volume and data flows. Half a second is the flow stage's bound on a late direction
/// (`FlowConfig::ack_wait`); an earlier C-MOVE that reused the message id has taken its own
/// sub-operations long before.
pub(crate) const MIRROR_SKEW_NS: i64 = 500_000_000;

/// What the sub-operations of one C-MOVE moved.
#[derive(Debug, Clone)]
pub(crate) struct SubOps {
    pub(crate) instances: u64,
    pub(crate) bytes: u64,
    /// The associations that carried them (at most [`MAX_FLOWS`]).
    pub(crate) flows: Vec<FlowId>,
    /// Request time of the first sub-operation seen.
    pub(crate) first: i64,
    /// The AE they went to (the C-STOREs' called AE).
    dest_ae: Name,
}

/// The sub-operations one association carried for one C-MOVE, waiting for it.
#[derive(Debug)]
struct Group {
    ops: SubOps,
    /// Request time of the latest sub-operation seen.
    last: i64,
    /// When the association that carried the first ended (the wait for the C-MOVE starts).
    ended: Option<i64>,
    /// The studies they stored (at most [`MAX_GROUP_STUDIES`], UIDs for the first
    /// [`MAX_GROUP_UIDS`]).
    studies: Vec<StudyItem>,
    /// The association that carried the first: where an alert counted from them points.
    flow: FlowMeta,
    /// The calling AE of that association, when known.
    sender: Option<Name>,
}

/// Sub-operations no C-MOVE took: their C-MOVE was never seen (request and final response lost
/// to capture gaps, or its association not on the mirror), so they are all that says a C-MOVE
/// by `originator` happened, and what it moved where.
#[derive(Debug)]
pub(crate) struct Orphan {
    pub(crate) originator: Name,
    pub(crate) message_id: u16,
    pub(crate) ops: SubOps,
    pub(crate) studies: Vec<StudyItem>,
    pub(crate) flow: FlowMeta,
    /// Who sent them (the calling AE of `flow`), when known.
    pub(crate) sender: Option<Name>,
}

#[derive(Debug, Default)]
pub(crate) struct MoveLinks {
    /// Per (originator AE, message id): one group per association that carried them.
    open: HashMap<(Name, u16), Vec<Group>, ahash::RandomState>,
    order: VecDeque<(Name, u16)>,
    /// Groups given up on (waited [`ORPHAN_AFTER_NS`], replaced, or forgotten past
    /// [`MAX_MOVES`]), for the detector to count ([`MoveLinks::take_orphans`]).
    orphans: Vec<Orphan>,
    /// Study keys held by all groups (at most [`MAX_STUDY_KEYS`]).
    study_keys: usize,
    /// The (originator, message id) of the group each association's first sub-operation
    /// opened, to mark it when the association ends (as many as the groups).
    by_flow: HashMap<FlowId, (Name, u16), ahash::RandomState>,
}

/// One C-STORE sub-operation as [`MoveLinks::note`] records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored<'a> {
    pub(crate) ts: i64,
    pub(crate) bytes: u64,
    pub(crate) flow: &'a FlowMeta,
    /// The study it stored, when the decoder read it from the data set.
    pub(crate) study: Option<&'a StudyItem>,
    /// Its calling AE (the C-MOVE's SCP), when known.
    pub(crate) sender: Option<&'a str>,
}

impl SubOps {
    /// The first sub-operation seen of a C-MOVE to `dest_ae`.
    pub(crate) fn first(ts: i64, bytes: u64, flow: FlowId, dest_ae: &str) -> SubOps {
        SubOps {
            instances: 1,
            bytes,
            flows: vec![flow],
            first: ts,
            dest_ae: Name::new(dest_ae),
        }
    }

    /// One more sub-operation, requested at `ts`, of `bytes`, on `flow`.
    pub(crate) fn add(&mut self, ts: i64, bytes: u64, flow: FlowId) {
        // Sub-operations on parallel associations report in any order: keep the earliest
        // request.
        self.first = self.first.min(ts);
        self.instances = self.instances.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
        self.name_flow(flow);
    }

    /// `flow` among those that carried them (at most [`MAX_FLOWS`]).
    fn name_flow(&mut self, flow: FlowId) {
        if !self.flows.contains(&flow) && self.flows.len() < MAX_FLOWS {
            self.flows.push(flow);
        }
    }

    /// Adds another group's sub-operations to these.
    pub(crate) fn merge(&mut self, other: SubOps) {
        self.first = self.first.min(other.first);
        self.instances = self.instances.saturating_add(other.instances);
        self.bytes = self.bytes.saturating_add(other.bytes);
        for f in other.flows {
            self.name_flow(f);
        }
    }

    /// The AE they went to.
    pub(crate) fn dest_ae(&self) -> &str {
        self.dest_ae.as_str()
    }

    /// A download's volume: bytes on one flow, no instances counted (WADO).
    pub(crate) fn bytes_only(bytes: u64, flow: FlowId, ts: i64) -> SubOps {
        SubOps {
            instances: 0,
            bytes,
            flows: vec![flow],
            first: ts,
            dest_ae: Name::new(""),
        }
    }
}

/// Adds `study` to a group's studies unless known or past the bounds; how many keys it added.
fn add_study(studies: &mut Vec<StudyItem>, study: Option<&StudyItem>, held: usize) -> usize {
    let Some(st) = study else { return 0 };
    if studies.len() >= MAX_GROUP_STUDIES || held >= MAX_STUDY_KEYS || studies.iter().any(|s| s.key == st.key) {
        return 0;
    }
    studies.push(StudyItem {
        key: st.key,
        uid: st.uid.clone().filter(|_| studies.len() < MAX_GROUP_UIDS),
    });
    1
}

/// The latest start of a C-MOVE's sub-operations: its final response (they all come before it,
/// PS3.7 §9.1.4.1.2) plus a mirror's skew; without a response, any time.
pub(crate) fn until_response(response_time: Option<i64>) -> i64 {
    response_time.map_or(i64::MAX, |t| t.saturating_add(MIRROR_SKEW_NS))
}

impl Group {
    fn new(s: Stored<'_>, dest_ae: &str) -> Group {
        Group {
            ops: SubOps::first(s.ts, s.bytes, s.flow.id, dest_ae),
            last: s.ts,
            ended: None,
            studies: Vec::new(),
            flow: *s.flow,
            sender: s.sender.map(Name::new),
        }
    }
}

impl MoveLinks {
    /// One C-STORE sub-operation of the C-MOVE (`originator`, `message_id`) sent to `dest_ae`.
    pub(crate) fn note(&mut self, originator: &str, message_id: u16, dest_ae: &str, s: Stored<'_>) {
        let key = (Name::new(originator), message_id);
        let mut dropped = Vec::new();
        let mut joined = false;
        if let Some(groups) = self.open.get_mut(&key) {
            // The same id reused towards another destination (a C-MOVE that was never seen,
            // then a new one): start afresh; the old groups are counted on their own.
            dropped.extend(groups.extract_if(.., |g| *g.ops.dest_ae != *dest_ae));
            let same_flow = groups.iter().position(|g| g.ops.flows.first() == Some(&s.flow.id));
            let at = match same_flow {
                Some(i) => Some(i),
                None if groups.len() >= MAX_GROUPS => groups.len().checked_sub(1),
                None => None,
            };
            if let Some(g) = at.and_then(|i| groups.get_mut(i)) {
                g.ops.add(s.ts, s.bytes, s.flow.id);
                g.last = g.last.max(s.ts);
                self.study_keys += add_study(&mut g.studies, s.study, self.study_keys);
                joined = true;
            } else if !groups.is_empty() {
                let mut g = Group::new(s, dest_ae);
                self.study_keys += add_study(&mut g.studies, s.study, self.study_keys);
                groups.push(g);
                self.by_flow.insert(s.flow.id, key.clone());
                joined = true;
            } else {
                self.open.remove(&key);
            }
        }
        for g in dropped {
            self.give_up(&key, g);
        }
        if joined {
            return;
        }
        while self.open.len() >= MAX_MOVES {
            let Some(old) = self.order.pop_front() else { break };
            for g in self.open.remove(&old).unwrap_or_default() {
                self.give_up(&old, g);
            }
        }
        if self.order.len() >= MAX_MOVES.saturating_mul(2) {
            // Keys re-noted leave stale entries in `order`; drop those no longer open.
            let open = &self.open;
            self.order.retain(|k| open.contains_key(k));
        }
        let mut g = Group::new(s, dest_ae);
        self.study_keys += add_study(&mut g.studies, s.study, self.study_keys);
        self.by_flow.insert(s.flow.id, key.clone());
        self.order.push_back(key.clone());
        self.open.insert(key, vec![g]);
    }

    /// The sub-operations of the C-MOVE (`calling`, `message_id`) to `dest_ae` requested at
    /// `request_time`, if any were seen: the associations that began from its request (less a
    /// mirror's skew) up to `until` (see [`until_response`]). They are taken (a C-MOVE is
    /// counted once).
    pub(crate) fn take(
        &mut self,
        (calling, message_id, dest_ae): (&str, u16, &str),
        request_time: i64,
        until: i64,
    ) -> Option<SubOps> {
        let key = (Name::new(calling), message_id);
        let groups = self.open.get_mut(&key)?;
        let from = request_time.saturating_sub(MIRROR_SKEW_NS);
        let mut released = 0;
        let mut taken_flows = Vec::new();
        let taken = groups
            .extract_if(.., |g| {
                *g.ops.dest_ae == *dest_ae && g.ops.first >= from && g.ops.first <= until
            })
            .map(|g| {
                released += g.studies.len();
                taken_flows.push(g.flow.id);
                g.ops
            })
            .reduce(|mut t, g| {
                t.merge(g);
                t
            });
        if groups.is_empty() {
            self.open.remove(&key);
        }
        self.study_keys = self.study_keys.saturating_sub(released);
        for f in taken_flows {
            self.forget_flow(f, &key);
        }
        taken
    }

    /// The association `flow` ended at `ts`: the group its first sub-operation opened starts
    /// waiting [`ORPHAN_AFTER_NS`] for its C-MOVE.
    pub(crate) fn association_ended(&mut self, flow: FlowId, ts: i64) {
        let Some(key) = self.by_flow.get(&flow) else { return };
        if let Some(g) = self
            .open
            .get_mut(key)
            .and_then(|groups| groups.iter_mut().find(|g| g.flow.id == flow))
        {
            g.ended = Some(g.ended.map_or(ts, |e| e.min(ts)));
        }
    }

    /// Who asked for the C-MOVE `message_id` to `dest_ae` that the SCP at `scp` was asked at
    /// `request_time` (answered by `until`), when its association's A-ASSOCIATE-RQ was lost:
    /// the Move Originator AE its sub-operations name (the SCP copies the requester's calling
    /// AE, PS3.7 §9.1.4). Only groups that SCP sent count (anyone else can name any
    /// originator), and only when they all name one. A scan of the groups waiting: the caller
    /// asks once per association (`Detector::originator_of_unnamed`).
    pub(crate) fn originator_of(
        &self,
        (message_id, dest_ae): (u16, &str),
        scp: std::net::IpAddr,
        request_time: i64,
        until: i64,
    ) -> Option<Name> {
        let from = request_time.saturating_sub(MIRROR_SKEW_NS);
        let mut found: Option<&Name> = None;
        for ((originator, id), groups) in &self.open {
            if *id != message_id {
                continue;
            }
            let sent = groups.iter().any(|g| {
                *g.ops.dest_ae == *dest_ae && g.flow.client.ip == scp && g.ops.first >= from && g.ops.first <= until
            });
            if !sent {
                continue;
            }
            match found {
                Some(f) if f != originator => return None,
                _ => found = Some(originator),
            }
        }
        found.cloned()
    }

    /// Gives up on the groups whose association ended more than [`ORPHAN_AFTER_NS`] before
    /// `now` (all of them at the end of the input: `i64::MAX`).
    pub(crate) fn expire(&mut self, now: i64) {
        if self.open.is_empty() {
            return;
        }
        let cutoff = now.saturating_sub(ORPHAN_AFTER_NS);
        let idle = now.saturating_sub(ORPHAN_IDLE_NS);
        let mut expired = Vec::new();
        self.open.retain(|key, groups| {
            let over = |g: &Group| now == i64::MAX || g.ended.is_some_and(|e| e < cutoff) || g.last < idle;
            for g in groups.extract_if(.., |g| over(g)) {
                expired.push((key.clone(), g));
            }
            !groups.is_empty()
        });
        // The map's order is not the input's: give up on them oldest first, so the counts
        // (and any alert) come in packet-time order and the same in every run.
        expired.sort_by_key(|(key, g)| (g.ops.first, g.last, key.1, g.ops.flows.first().map(|f| f.0)));
        for (key, g) in expired {
            self.give_up(&key, g);
        }
    }

    /// The groups given up on since the last call, oldest first.
    pub(crate) fn take_orphans(&mut self) -> Vec<Orphan> {
        std::mem::take(&mut self.orphans)
    }

    /// `flow` no longer opens a waiting group of `key` (a flow that carried sub-operations of
    /// two C-MOVEs points at the later one).
    fn forget_flow(&mut self, flow: FlowId, key: &(Name, u16)) {
        if self.by_flow.get(&flow) == Some(key) {
            self.by_flow.remove(&flow);
        }
    }

    fn give_up(&mut self, (originator, message_id): &(Name, u16), g: Group) {
        self.study_keys = self.study_keys.saturating_sub(g.studies.len());
        self.forget_flow(g.flow.id, &(originator.clone(), *message_id));
        self.orphans.push(Orphan {
            originator: originator.clone(),
            message_id: *message_id,
            ops: g.ops,
            studies: g.studies,
            flow: g.flow,
            sender: g.sender,
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}

/// Volume records kept per entity: a window of exports is merged two-into-one past this, so
/// totals stay exact and only their times coarsen (the bulk window is 30 min by default).
const MAX_MARKS: usize = 64;

/// One export's volume, at its time.
#[derive(Debug, Clone)]
pub(crate) struct VolumeMark {
    pub(crate) ts: i64,
    pub(crate) instances: u64,
    pub(crate) bytes: u64,
    pub(crate) flows: Vec<FlowId>,
}

/// The recent exports' volumes of one entity (bounded: [`MAX_MARKS`], flows [`MAX_FLOWS`] each).
#[derive(Debug, Default)]
pub(crate) struct VolumeMarks {
    marks: VecDeque<VolumeMark>,
}

impl VolumeMarks {
    pub(crate) fn add(&mut self, ts: i64, s: &SubOps) {
        if self.marks.len() >= MAX_MARKS {
            if let (Some(old), Some(next)) = (self.marks.pop_front(), self.marks.front_mut()) {
                next.instances = next.instances.saturating_add(old.instances);
                next.bytes = next.bytes.saturating_add(old.bytes);
                for f in old.flows {
                    if next.flows.len() < MAX_FLOWS && !next.flows.contains(&f) {
                        next.flows.push(f);
                    }
                }
            }
        }
        self.marks.push_back(VolumeMark {
            ts,
            instances: s.instances,
            bytes: s.bytes,
            flows: s.flows.clone(),
        });
    }

    /// The marks after `cutoff` (each rule has its own window; older marks leave by the cap).
    pub(crate) fn since(&self, cutoff: i64) -> impl Iterator<Item = &VolumeMark> {
        self.marks.iter().filter(move |m| m.ts > cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    /// A sub-operation on association `flow` (of no study the decoder read).
    fn note(l: &mut MoveLinks, originator: &str, message_id: u16, dest_ae: &str, ts: i64, bytes: u64, flow: FlowId) {
        let meta = crate::testkit::flow(flow.0, "10.0.0.5:40000", "10.0.0.7:104");
        let s = Stored {
            ts,
            bytes,
            flow: &meta,
            study: None,
            sender: Some("PACS"),
        };
        l.note(originator, message_id, dest_ae, s);
    }

    #[test]
    fn sub_operations_are_summed_and_taken_once_by_their_c_move() {
        let mut l = MoveLinks::default();
        note(&mut l, "WS1", 7, "ARCHIVE", 10, 100, FlowId(2));
        note(&mut l, "WS1", 7, "ARCHIVE", 12, 25, FlowId(3));
        note(&mut l, "WS1", 7, "ARCHIVE", 11, 50, FlowId(3)); // reported out of order
        assert!(
            l.take(("WS1", 7, "OTHER"), 5, i64::MAX).is_none(),
            "another destination"
        );
        assert!(l.take(("WS1", 8, "ARCHIVE"), 5, i64::MAX).is_none(), "another message");
        let skew = MIRROR_SKEW_NS;
        assert!(
            l.take(("WS1", 7, "ARCHIVE"), 12 + skew, i64::MAX).is_none(),
            "began before this request, by more than a mirror's skew"
        );
        // The requester's copies delivered later than the SCP's (a SPAN port): within the skew.
        assert!(l
            .take(("WS1", 7, "ARCHIVE"), 10 + skew, i64::MAX)
            .is_some_and(|s| s.instances == 3));
        note(&mut l, "WS1", 7, "ARCHIVE", 10, 100, FlowId(2));
        note(&mut l, "WS1", 7, "ARCHIVE", 11, 50, FlowId(3));
        note(&mut l, "WS1", 7, "ARCHIVE", 12, 25, FlowId(3));
        let s = l.take(("WS1", 7, "ARCHIVE"), 9, until_response(Some(20))).unwrap();
        assert_eq!(
            (s.instances, s.bytes, s.first, s.flows.clone()),
            (3, 175, 10, vec![FlowId(2), FlowId(3)])
        );
        assert!(l.take(("WS1", 7, "ARCHIVE"), 9, i64::MAX).is_none(), "taken once");
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn c_moves_reusing_a_message_id_take_the_associations_that_began_in_their_own_time() {
        // Four C-MOVEs with message id 1 (four associations of WS1), a second apart, whose
        // sub-operations (one association each) are all reported before any of them: the
        // order the flow stage gives associations that end together.
        let mut l = MoveLinks::default();
        for k in 0..4i64 {
            for j in 0..3 {
                note(
                    &mut l,
                    "WS1",
                    1,
                    "ARCHIVE",
                    k * SEC + 10 + j,
                    100,
                    FlowId(k as u64 + 10),
                );
            }
        }
        // Answered ones are bounded by their response too; the last without a response first.
        let s = l.take(("WS1", 1, "ARCHIVE"), 3 * SEC, i64::MAX).unwrap();
        assert_eq!((s.instances, s.flows.clone()), (3, vec![FlowId(13)]));
        let s = l
            .take(("WS1", 1, "ARCHIVE"), 0, until_response(Some(SEC / 10)))
            .unwrap();
        assert_eq!((s.instances, s.flows.clone()), (3, vec![FlowId(10)]));
        let s = l.take(("WS1", 1, "ARCHIVE"), 2 * SEC, i64::MAX).unwrap();
        assert_eq!((s.instances, s.flows.clone()), (3, vec![FlowId(12)]));
        let s = l.take(("WS1", 1, "ARCHIVE"), SEC, i64::MAX).unwrap();
        assert_eq!((s.instances, s.flows.clone()), (3, vec![FlowId(11)]));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn groups_per_message_id_are_bounded() {
        let mut l = MoveLinks::default();
        for f in 0..(MAX_GROUPS as u64 + 5) {
            note(&mut l, "WS1", 1, "ARCHIVE", 10, 1, FlowId(f));
        }
        let s = l.take(("WS1", 1, "ARCHIVE"), 10, i64::MAX).unwrap();
        assert_eq!(s.instances, MAX_GROUPS as u64 + 5, "nothing lost past the bound");
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn tracking_is_bounded() {
        let mut l = MoveLinks::default();
        for i in 0..(MAX_MOVES as u32 + 100) {
            note(&mut l, &format!("AE{i}"), 1, "X", 0, 1, FlowId(1));
        }
        assert_eq!(l.len(), MAX_MOVES);
        assert!(
            l.take(("AE0", 1, "X"), 0, i64::MAX).is_none(),
            "the oldest was forgotten"
        );
        assert!(l
            .take((&format!("AE{}", MAX_MOVES as u32 + 99), 1, "X"), 0, i64::MAX)
            .is_some());
    }

    #[test]
    fn sub_operations_no_c_move_took_are_given_up_on_a_minute_after_their_association_ended() {
        let mut l = MoveLinks::default();
        let meta = crate::testkit::flow(2, "10.0.0.5:40000", "10.6.6.6:104");
        let study = |n: u64| StudyItem {
            key: n,
            uid: Some(format!("1.2.{n}")),
        };
        for (ts, n) in [(10, 1), (11, 2), (12, 1)] {
            let st = study(n);
            let s = Stored {
                ts,
                bytes: 100,
                flow: &meta,
                study: Some(&st),
                sender: Some("PACS"),
            };
            l.note("WS1", 7, "THIEF", s);
        }
        l.expire(100 + ORPHAN_AFTER_NS);
        assert!(
            l.take_orphans().is_empty(),
            "its association has not ended: a slow instance"
        );
        l.association_ended(FlowId(2), 20);
        l.expire(20 + ORPHAN_AFTER_NS);
        assert!(l.take_orphans().is_empty(), "still within the minute");
        l.expire(21 + ORPHAN_AFTER_NS);
        let o = l.take_orphans();
        assert_eq!(o.len(), 1);
        let o = &o[0];
        assert_eq!(
            (o.originator.as_str(), o.message_id, o.ops.dest_ae()),
            ("WS1", 7, "THIEF")
        );
        assert_eq!((o.ops.instances, o.ops.bytes, o.flow.id), (3, 300, FlowId(2)));
        let uids: Vec<_> = o.studies.iter().map(|s| s.uid.clone().unwrap_or_default()).collect();
        assert_eq!(uids, ["1.2.1", "1.2.2"], "each study once");
        assert_eq!((l.len(), l.study_keys), (0, 0));
        assert!(l.take(("WS1", 7, "THIEF"), 0, i64::MAX).is_none(), "given up on once");
    }

    #[test]
    fn a_message_id_reused_towards_another_destination_gives_up_on_the_old_groups() {
        let mut l = MoveLinks::default();
        note(&mut l, "WS1", 7, "ARCHIVE", 10, 100, FlowId(2));
        assert!(l.take_orphans().is_empty());
        note(&mut l, "WS1", 7, "THIEF", 20, 50, FlowId(3));
        let o = l.take_orphans();
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].ops.dest_ae(), o[0].ops.instances), ("ARCHIVE", 1));
        assert!(l
            .take(("WS1", 7, "THIEF"), 20, i64::MAX)
            .is_some_and(|s| s.instances == 1));
    }

    #[test]
    fn studies_held_for_c_moves_not_yet_seen_are_bounded_in_total() {
        let mut l = MoveLinks::default();
        let meta = crate::testkit::flow(2, "10.0.0.5:40000", "10.0.0.7:104");
        for n in 0..(MAX_STUDY_KEYS as u64 + 1000) {
            let st = StudyItem { key: n, uid: None };
            let s = Stored {
                ts: 10,
                bytes: 1,
                flow: &meta,
                study: Some(&st),
                sender: Some("PACS"),
            };
            // One group per (AE, id), one study each: the 4,096 moves bound forgets the
            // oldest, and the keys stay under their own bound in between.
            l.note(&format!("AE{}", n % 8), (n / 8) as u16, "X", s);
            assert!(l.study_keys <= MAX_STUDY_KEYS, "{}", l.study_keys);
        }
        let held: usize = l.open.values().flatten().map(|g| g.studies.len()).sum();
        assert_eq!(held, l.study_keys, "the count is exact");
        l.expire(i64::MAX);
        assert_eq!(l.study_keys, 0);
    }

    #[test]
    fn forgetting_past_the_bound_gives_up_on_the_oldest() {
        let mut l = MoveLinks::default();
        for i in 0..(MAX_MOVES as u32 + 1) {
            note(&mut l, &format!("AE{i}"), 1, "X", 0, 1, FlowId(1));
        }
        let o = l.take_orphans();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].originator.as_str(), "AE0");
    }

    #[test]
    fn an_unnamed_c_move_s_originator_is_what_its_scp_s_sub_operations_name() {
        let mut l = MoveLinks::default();
        let scp: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let from = |ip: &str, id: u64| crate::testkit::flow(id, &format!("{ip}:50000"), "10.0.0.7:104");
        let put = |l: &mut MoveLinks, originator: &str, message_id: u16, meta: &FlowMeta, ts: i64| {
            let s = Stored {
                ts,
                bytes: 1,
                flow: meta,
                study: None,
                sender: Some("PACS"),
            };
            l.note(originator, message_id, "ARCHIVE", s);
        };
        put(&mut l, "ROUTER1", 3, &from("10.0.0.5", 1), 10 * SEC);
        put(&mut l, "ROUTER1", 4, &from("10.0.0.5", 2), 11 * SEC);
        let ask = |l: &MoveLinks, id: u16, dest: &str, at: i64| {
            l.originator_of((id, dest), scp, at, until_response(Some(at + SEC)))
                .map(|n| n.as_str().to_owned())
        };
        assert_eq!(ask(&l, 3, "ARCHIVE", 10 * SEC).as_deref(), Some("ROUTER1"));
        assert_eq!(ask(&l, 3, "OTHER", 10 * SEC), None, "another destination");
        assert_eq!(ask(&l, 5, "ARCHIVE", 10 * SEC), None, "another message");
        assert_eq!(ask(&l, 3, "ARCHIVE", 30 * SEC), None, "began long before the request");
        // Another sender naming another originator with the same id: not the SCP asked.
        put(&mut l, "FRAMED", 3, &from("10.0.0.66", 3), 10 * SEC);
        assert_eq!(ask(&l, 3, "ARCHIVE", 10 * SEC).as_deref(), Some("ROUTER1"));
        // The SCP itself naming two originators for that id and time: ambiguous.
        put(&mut l, "WS2", 3, &from("10.0.0.5", 4), 10 * SEC);
        assert_eq!(ask(&l, 3, "ARCHIVE", 10 * SEC), None);
    }

    #[test]
    fn a_group_whose_association_end_was_not_seen_is_given_up_when_idle_for_the_window() {
        let mut l = MoveLinks::default();
        note(&mut l, "WS1", 7, "ARCHIVE", 10, 100, FlowId(2));
        l.expire(10 + ORPHAN_IDLE_NS);
        assert!(l.take_orphans().is_empty());
        l.expire(11 + ORPHAN_IDLE_NS);
        assert_eq!(l.take_orphans().len(), 1);
        assert!(l.by_flow.is_empty(), "nothing left pointing at it");
    }
}
