//! The serde side of [`crate::eve_in`]: one `Deserialize` mirror per EVE object, and its
//! conversion into the core type.
//!
//! Each conversion builds the core struct with every field named, so a field added to a core
//! type fails to compile here until it is read back too (and the round-trip tests check the
//! names match what the writer writes). Body fields missing from a line take their empty value
//! (`#[serde(default)]`): older pacstap versions wrote fewer extension fields, and a missing
//! optional field is what the writer leaves out anyway. The envelope (time, flow, event_type)
//! is required.

use crate::eve_in::{intern, EveInError, EveKind, EveLine};
use pacstap_core::{
    Alert, AlertEntity, AlertEvidence, AlertVolume, Anomaly, AssociationAbort, AssociationOutcome, AssociationReject,
    DicomAssociation, DicomCommand, DicomEvent, DicomWeb, Direction, Endpoint, EventBody, FlowId, FlowMeta,
    Hl7AdminEvent, Hl7Event, Hl7MasterFileRecord, HttpEvent, PostureEvent, PostureFinding, ProtocolEvent, RestDownload,
    Severity, StatusClass, SubOperations, Timestamp, TlsAlert, TlsCertificate, TlsEvent, UserIdentity,
};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;

/// RFC 3339 UTC (`2026-11-27T10:00:01.123456Z`, what [`Timestamp`] writes) to packet time,
/// saturating like every other [`Timestamp`] constructor.
pub(crate) fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let t = humantime::parse_rfc3339(s).ok()?;
    let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    // humantime reads no year before 1970; the writer clamps to 1970 anyway.
    t.duration_since(UNIX_EPOCH).ok().map(|d| Timestamp(ns(d)))
}

/// A nested timestamp: a bad one fails the whole line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ts(Timestamp);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_timestamp(&s)
            .map(Ts)
            .ok_or_else(|| serde::de::Error::custom(format_args!("bad timestamp {s:?}")))
    }
}

/// The envelope of every line (CONTRACT §2), plus `host` / `event_id` of published events.
#[derive(Deserialize)]
pub(crate) struct LineIn {
    timestamp: String,
    event_type: String,
    flow_id: Option<u64>,
    src_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dest_ip: Option<IpAddr>,
    dest_port: Option<u16>,
    host: Option<String>,
    event_id: Option<String>,
    dicom: Option<DicomIn>,
    http: Option<HttpIn>,
    tls: Option<TlsIn>,
    hl7: Option<Hl7In>,
    alert: Option<AlertIn>,
    anomaly: Option<AnomalyIn>,
    posture: Option<PostureIn>,
}

impl LineIn {
    pub(crate) fn into_line(self) -> Result<EveLine, EveInError> {
        let ts = parse_timestamp(&self.timestamp).ok_or_else(|| EveInError::Timestamp(self.timestamp.clone()))?;
        let (host, event_id) = (self.host, self.event_id);
        if self.event_type == "stats" {
            return Ok(EveLine {
                host,
                event_id,
                kind: EveKind::Stats,
            });
        }
        let missing = EveInError::MissingField;
        let flow = FlowMeta {
            id: FlowId(self.flow_id.ok_or(missing("flow_id"))?),
            client: Endpoint::new(
                self.src_ip.ok_or(missing("src_ip"))?,
                self.src_port.ok_or(missing("src_port"))?,
            ),
            server: Endpoint::new(
                self.dest_ip.ok_or(missing("dest_ip"))?,
                self.dest_port.ok_or(missing("dest_port"))?,
            ),
            // Not in EVE (see the module docs of eve_in).
            start: ts,
            handshake_seen: true,
        };
        let body = match self.event_type.as_str() {
            "dicom" => EventBody::Dicom(match self.dicom.ok_or(EveInError::MissingBody("dicom"))? {
                DicomIn::Association(a) => DicomEvent::Association(a.into()),
                DicomIn::Command(c) => DicomEvent::Command(c.into()),
            }),
            "http" => EventBody::Http(self.http.ok_or(EveInError::MissingBody("http"))?.into()),
            "tls" => EventBody::Tls(self.tls.ok_or(EveInError::MissingBody("tls"))?.into()),
            "hl7" => EventBody::Hl7(self.hl7.ok_or(EveInError::MissingBody("hl7"))?.into()),
            "alert" => EventBody::Alert(self.alert.ok_or(EveInError::MissingBody("alert"))?.try_into()?),
            "anomaly" => EventBody::Anomaly(self.anomaly.ok_or(EveInError::MissingBody("anomaly"))?.into()),
            "posture" => EventBody::Posture(self.posture.ok_or(EveInError::MissingBody("posture"))?.try_into()?),
            other => return Err(EveInError::UnknownEventType(other.to_owned())),
        };
        Ok(EveLine {
            host,
            event_id,
            kind: EveKind::Event(ProtocolEvent { ts, flow, body }),
        })
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
enum DirectionIn {
    #[default]
    #[serde(rename = "toserver")]
    ToServer,
    #[serde(rename = "toclient")]
    ToClient,
}

impl From<DirectionIn> for Direction {
    fn from(d: DirectionIn) -> Direction {
        match d {
            DirectionIn::ToServer => Direction::ToServer,
            DirectionIn::ToClient => Direction::ToClient,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DicomIn {
    Association(AssociationIn),
    Command(CommandIn),
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum OutcomeIn {
    Released,
    Rejected,
    Aborted,
    Reset,
    Closed,
    #[default]
    Incomplete,
}

#[derive(Deserialize, Default)]
struct RejectIn {
    result: u8,
    source: u8,
    reason: u8,
}

#[derive(Deserialize, Default)]
struct AbortIn {
    source: u8,
    reason: u8,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserIdentityIn {
    #[serde(rename = "type")]
    kind: String,
    username: Option<String>,
    server_response: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AssociationIn {
    calling_ae: String,
    called_ae: String,
    accepted: bool,
    outcome: OutcomeIn,
    reject: Option<RejectIn>,
    abort: Option<AbortIn>,
    user_identity: Option<UserIdentityIn>,
    abstract_syntaxes: Vec<String>,
    implementation_class_uid: Option<String>,
    implementation_version_name: Option<String>,
    max_pdu_length: Option<u32>,
    bytes_toserver: u64,
    bytes_toclient: u64,
    commands: u64,
    start: Ts,
    end: Ts,
    request_seen: bool,
    gap_bytes: u64,
    gaps: u32,
    reject_inferred: bool,
}

impl From<AssociationIn> for DicomAssociation {
    fn from(a: AssociationIn) -> DicomAssociation {
        DicomAssociation {
            calling_ae: a.calling_ae,
            called_ae: a.called_ae,
            accepted: a.accepted,
            outcome: match a.outcome {
                OutcomeIn::Released => AssociationOutcome::Released,
                OutcomeIn::Rejected => AssociationOutcome::Rejected,
                OutcomeIn::Aborted => AssociationOutcome::Aborted,
                OutcomeIn::Reset => AssociationOutcome::Reset,
                OutcomeIn::Closed => AssociationOutcome::Closed,
                OutcomeIn::Incomplete => AssociationOutcome::Incomplete,
            },
            reject: a.reject.map(|r| AssociationReject {
                result: r.result,
                source: r.source,
                reason: r.reason,
            }),
            abort: a.abort.map(|r| AssociationAbort {
                source: r.source,
                reason: r.reason,
            }),
            user_identity: a.user_identity.map(|u| UserIdentity {
                kind: u.kind,
                username: u.username,
                server_response: u.server_response,
            }),
            abstract_syntaxes: a.abstract_syntaxes,
            implementation_class_uid: a.implementation_class_uid,
            implementation_version_name: a.implementation_version_name,
            max_pdu_length: a.max_pdu_length,
            bytes_toserver: a.bytes_toserver,
            bytes_toclient: a.bytes_toclient,
            commands: a.commands,
            start: a.start.0,
            end: a.end.0,
            request_seen: a.request_seen,
            gap_bytes: a.gap_bytes,
            gaps: a.gaps,
            reject_inferred: a.reject_inferred,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum StatusClassIn {
    Success,
    Warning,
    Failure,
    Cancel,
    Pending,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubOperationsIn {
    completed: u16,
    failed: u16,
    warning: u16,
    remaining: u16,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CommandIn {
    calling_ae: String,
    called_ae: String,
    user: Option<String>,
    command: String,
    message_id: u16,
    sop_class_uid: Option<String>,
    sop_instance_uid: Option<String>,
    move_destination: Option<String>,
    move_originator_ae: Option<String>,
    move_originator_message_id: Option<u16>,
    query_level: Option<String>,
    study_instance_uids: Vec<String>,
    modality: Option<String>,
    status: Option<String>,
    status_class: Option<StatusClassIn>,
    sub_operations: Option<SubOperationsIn>,
    dataset_bytes: u64,
    lost_bytes: u64,
    incomplete: bool,
    direction: DirectionIn,
    responses: u32,
    request_time: Ts,
    response_time: Option<Ts>,
}

impl From<CommandIn> for DicomCommand {
    fn from(c: CommandIn) -> DicomCommand {
        DicomCommand {
            calling_ae: c.calling_ae,
            called_ae: c.called_ae,
            user: c.user,
            command: c.command,
            message_id: c.message_id,
            sop_class_uid: c.sop_class_uid,
            sop_instance_uid: c.sop_instance_uid,
            move_destination: c.move_destination,
            move_originator_ae: c.move_originator_ae,
            move_originator_message_id: c.move_originator_message_id,
            query_level: c.query_level,
            study_instance_uids: c.study_instance_uids,
            modality: c.modality,
            status: c.status,
            status_class: c.status_class.map(|s| match s {
                StatusClassIn::Success => StatusClass::Success,
                StatusClassIn::Warning => StatusClass::Warning,
                StatusClassIn::Failure => StatusClass::Failure,
                StatusClassIn::Cancel => StatusClass::Cancel,
                StatusClassIn::Pending => StatusClass::Pending,
            }),
            sub_operations: c.sub_operations.map(|s| SubOperations {
                completed: s.completed,
                failed: s.failed,
                warning: s.warning,
                remaining: s.remaining,
            }),
            dataset_bytes: c.dataset_bytes,
            lost_bytes: c.lost_bytes,
            incomplete: c.incomplete,
            direction: c.direction.into(),
            responses: c.responses,
            request_time: c.request_time.0,
            response_time: c.response_time.map(|t| t.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DicomWebIn {
    service: String,
    study_instance_uid: Option<String>,
    series_instance_uid: Option<String>,
    sop_instance_uid: Option<String>,
    level: Option<String>,
    resource: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RestDownloadIn {
    api: String,
    level: String,
    format: String,
    ids: Vec<String>,
    study_instance_uids: Vec<String>,
    destination: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HttpIn {
    method: String,
    hostname: Option<String>,
    url: String,
    status: Option<u16>,
    user: Option<String>,
    user_agent: Option<String>,
    request_bytes: u64,
    response_bytes: u64,
    dicomweb: Option<DicomWebIn>,
    download: Option<RestDownloadIn>,
    protocol: Option<String>,
    auth: Option<String>,
    content_type: Option<String>,
    admin_action: Option<String>,
    share_action: Option<String>,
    share_recipients: Vec<String>,
    x_forwarded_for: Option<String>,
    url_truncated: bool,
    request_time: Ts,
    response_time: Option<Ts>,
    interim_responses: u32,
    gap_bytes: u64,
    incomplete: bool,
    request_missing: bool,
}

impl From<HttpIn> for HttpEvent {
    fn from(h: HttpIn) -> HttpEvent {
        HttpEvent {
            method: h.method,
            hostname: h.hostname,
            url: h.url,
            status: h.status,
            user: h.user,
            user_agent: h.user_agent,
            request_bytes: h.request_bytes,
            response_bytes: h.response_bytes,
            dicomweb: h.dicomweb.map(|d| DicomWeb {
                service: d.service,
                study_instance_uid: d.study_instance_uid,
                series_instance_uid: d.series_instance_uid,
                sop_instance_uid: d.sop_instance_uid,
                level: d.level,
                resource: d.resource,
            }),
            download: h.download.map(|d| RestDownload {
                api: d.api,
                level: d.level,
                format: d.format,
                ids: d.ids,
                study_instance_uids: d.study_instance_uids,
                destination: d.destination,
            }),
            protocol: h.protocol,
            auth: h.auth,
            content_type: h.content_type,
            admin_action: h.admin_action,
            share_action: h.share_action,
            share_recipients: h.share_recipients,
            x_forwarded_for: h.x_forwarded_for,
            url_truncated: h.url_truncated,
            request_time: h.request_time.0,
            response_time: h.response_time.map(|t| t.0),
            interim_responses: h.interim_responses,
            gap_bytes: h.gap_bytes,
            incomplete: h.incomplete,
            request_missing: h.request_missing,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CertificateIn {
    sha256: String,
    der_bytes: u64,
    chain_length: u64,
    subject: Option<String>,
    issuer: Option<String>,
    not_before: Option<Ts>,
    not_after: Option<Ts>,
    dns_names: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TlsAlertIn {
    direction: DirectionIn,
    level: u8,
    code: u8,
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TlsIn {
    sni: Option<String>,
    version: Option<String>,
    alpn: Vec<String>,
    ja3: Option<String>,
    ja4: Option<String>,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: Ts,
    end: Ts,
    ja3_string: Option<String>,
    ja3s: Option<String>,
    ja3s_string: Option<String>,
    cipher_suite: Option<String>,
    cipher_suite_id: Option<String>,
    alpn_selected: Option<String>,
    client_version: Option<String>,
    certificate: Option<CertificateIn>,
    session_resumed: Option<bool>,
    hello_retry: bool,
    handshake_complete: bool,
    alert: Option<TlsAlertIn>,
    midstream: bool,
    gap_bytes: u64,
    gap_bytes_toclient: u64,
}

impl From<TlsIn> for TlsEvent {
    fn from(t: TlsIn) -> TlsEvent {
        TlsEvent {
            sni: t.sni,
            version: t.version,
            alpn: t.alpn,
            ja3: t.ja3,
            ja4: t.ja4,
            bytes_toserver: t.bytes_toserver,
            bytes_toclient: t.bytes_toclient,
            start: t.start.0,
            end: t.end.0,
            ja3_string: t.ja3_string,
            ja3s: t.ja3s,
            ja3s_string: t.ja3s_string,
            cipher_suite: t.cipher_suite,
            cipher_suite_id: t.cipher_suite_id,
            alpn_selected: t.alpn_selected,
            client_version: t.client_version,
            certificate: t.certificate.map(|c| TlsCertificate {
                sha256: c.sha256,
                der_bytes: c.der_bytes,
                chain_length: c.chain_length,
                subject: c.subject,
                issuer: c.issuer,
                not_before: c.not_before.map(|t| t.0),
                not_after: c.not_after.map(|t| t.0),
                dns_names: c.dns_names,
            }),
            session_resumed: t.session_resumed,
            hello_retry: t.hello_retry,
            handshake_complete: t.handshake_complete,
            alert: t.alert.map(|a| TlsAlert {
                direction: a.direction.into(),
                level: a.level,
                code: a.code,
                description: a.description,
            }),
            midstream: t.midstream,
            gap_bytes: t.gap_bytes,
            gap_bytes_toclient: t.gap_bytes_toclient,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MasterFileRecordIn {
    event_code: String,
    action: Option<String>,
    primary_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Hl7AdminIn {
    #[serde(rename = "type")]
    kind: String,
    master_file_id: Option<String>,
    file_event_code: Option<String>,
    records: Vec<MasterFileRecordIn>,
    records_total: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Hl7In {
    message_type: String,
    message_structure: Option<String>,
    control_id: String,
    version: Option<String>,
    sending_application: Option<String>,
    sending_facility: Option<String>,
    receiving_application: Option<String>,
    receiving_facility: Option<String>,
    ack_code: Option<String>,
    message_time: Option<String>,
    acked_control_id: Option<String>,
    ack_latency_seconds: Option<f64>,
    direction: Option<DirectionIn>,
    segments: u32,
    segment_counts: BTreeMap<String, u32>,
    message_bytes: u64,
    truncated: bool,
    admin_event: Option<Hl7AdminIn>,
}

impl From<Hl7In> for Hl7Event {
    fn from(h: Hl7In) -> Hl7Event {
        Hl7Event {
            message_type: h.message_type,
            message_structure: h.message_structure,
            control_id: h.control_id,
            version: h.version,
            sending_application: h.sending_application,
            sending_facility: h.sending_facility,
            receiving_application: h.receiving_application,
            receiving_facility: h.receiving_facility,
            ack_code: h.ack_code,
            message_time: h.message_time,
            acked_control_id: h.acked_control_id,
            ack_latency_seconds: h.ack_latency_seconds,
            direction: h.direction.map(Direction::from),
            segments: h.segments,
            segment_counts: h.segment_counts,
            message_bytes: h.message_bytes,
            truncated: h.truncated,
            admin_event: h.admin_event.map(|a| Hl7AdminEvent {
                kind: a.kind,
                master_file_id: a.master_file_id,
                file_event_code: a.file_event_code,
                records: a
                    .records
                    .into_iter()
                    .map(|r| Hl7MasterFileRecord {
                        event_code: r.event_code,
                        action: r.action,
                        primary_key: r.primary_key,
                    })
                    .collect(),
                records_total: a.records_total,
            }),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AnomalyIn {
    proto: String,
    name: String,
    detail: Option<String>,
}

impl From<AnomalyIn> for Anomaly {
    fn from(a: AnomalyIn) -> Anomaly {
        Anomaly {
            proto: intern(&a.proto),
            name: intern(&a.name),
            detail: a.detail,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EntityIn {
    kind: String,
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EvidenceIn {
    flow_ids: Vec<u64>,
    flow_ids_total: u64,
    study_instance_uids: Vec<String>,
    study_instance_uids_total: u64,
    destinations: Vec<String>,
    destinations_total: u64,
    pcap: Option<String>,
    pcap_sha256: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VolumeIn {
    studies: u64,
    instances: u64,
    bytes: u64,
}

/// An `alert` object. `action`, `gid`, `signature_id`, `rev`, `signature`, `category` and the
/// numeric `severity` are derived from `rule`, `severity_name` and `entity` when written, so
/// they are not read; `volume` and `related` are the evidence's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AlertIn {
    severity_name: String,
    rule: String,
    entity: EntityIn,
    count: u64,
    threshold: Option<u64>,
    window_seconds: Option<u64>,
    first_seen: Ts,
    last_seen: Ts,
    summary: String,
    evidence: EvidenceIn,
    response: Vec<String>,
    update: bool,
    incident_id: String,
    volume: Option<VolumeIn>,
    related: Vec<String>,
}

impl TryFrom<AlertIn> for Alert {
    type Error = EveInError;
    fn try_from(a: AlertIn) -> Result<Alert, EveInError> {
        let severity = match a.severity_name.as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return Err(EveInError::UnknownSeverity(a.severity_name)),
        };
        let e = a.evidence;
        Ok(Alert {
            rule: a.rule,
            severity,
            entity: AlertEntity {
                kind: a.entity.kind,
                id: a.entity.id,
            },
            count: a.count,
            threshold: a.threshold,
            window_seconds: a.window_seconds,
            first_seen: a.first_seen.0,
            last_seen: a.last_seen.0,
            summary: a.summary,
            evidence: AlertEvidence {
                flow_ids: e.flow_ids.into_iter().map(FlowId).collect(),
                flow_ids_total: e.flow_ids_total,
                study_instance_uids: e.study_instance_uids,
                study_instance_uids_total: e.study_instance_uids_total,
                destinations: e.destinations,
                destinations_total: e.destinations_total,
                pcap: e.pcap,
                pcap_sha256: e.pcap_sha256,
                volume: a.volume.map(|v| AlertVolume {
                    studies: v.studies,
                    instances: v.instances,
                    bytes: v.bytes,
                }),
                related: a.related,
            },
            response: a.response,
            update: a.update,
            incident_id: a.incident_id,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PostureIn {
    finding: String,
    system: String,
    protocol: String,
    detail: String,
    flow_ids: Vec<u64>,
    count: u64,
}

impl TryFrom<PostureIn> for PostureEvent {
    type Error = EveInError;
    fn try_from(p: PostureIn) -> Result<PostureEvent, EveInError> {
        Ok(PostureEvent {
            finding: PostureFinding::from_id(&p.finding).ok_or(EveInError::UnknownFinding(p.finding))?,
            system: p.system,
            protocol: intern(&p.protocol),
            detail: p.detail,
            flow_ids: p.flow_ids.into_iter().map(FlowId).collect(),
            count: p.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_what_they_print() {
        let t = parse_timestamp("2026-11-27T10:00:01.123456Z").unwrap();
        assert_eq!(t, Timestamp::from_secs_nanos(1_795_773_601, 123_456_000));
        assert_eq!(t.rfc3339(), "2026-11-27T10:00:01.123456Z");
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        // The writer never writes before 1970 (it clamps), and humantime reads no such year.
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp("2026-11-27 10:00:01"), None);
        assert_eq!(parse_timestamp(""), None);
        let far = parse_timestamp("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(far, Timestamp(i64::MAX));
    }
}
