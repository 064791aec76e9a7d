//! `http` events (CONTRACT §2): one per request/response pair.

use crate::time::Timestamp;
use serde::Serialize;

/// DICOMweb classification of a URL (PS3.18).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DicomWeb {
    /// `QIDO-RS`, `WADO-RS`, `STOW-RS`, `WADO-URI` (extension: `UPS-RS` for `/workitems`).
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_instance_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
    /// Extension, QIDO-RS: the level searched, `study`, `series` or `instance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Extension, WADO-RS: the resource retrieved past the UIDs (`metadata`, `rendered`,
    /// `thumbnail`, `frames`, `bulkdata`, `pixeldata`); absent for the instances themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A retrieval through a PACS's own REST API rather than DICOMweb (extension): Orthanc's
/// `GET /studies/{id}/archive` is how its Explorer downloads a study, and how a script with
/// stolen credentials empties it. Counted by the export rules as WADO retrievals are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestDownload {
    /// Whose API: `orthanc`, `dcm4chee` (its exports), `unknown` (a response without its
    /// request).
    pub api: String,
    /// What `ids` name: `patients`, `studies`, `series`, `instances`, or `resources` (a list
    /// posted to `/tools/create-archive` or `/tools/create-media`, of levels the ids do not say).
    pub level: String,
    /// `archive` (a ZIP of DICOM files), `media` (a ZIP with a DICOMDIR), `file` (one DICOM
    /// file), or `store`: the PACS was told to send the resources to `destination` (Orthanc's
    /// `POST /modalities/{name}/store`, `/peers/{name}/store`), so they leave by another
    /// connection, not to this client.
    pub format: String,
    /// The resources' ids as the URL or the request body named them (Orthanc's are hashes of
    /// the DICOM identifiers), at most 64.
    pub ids: Vec<String>,
    /// The studies of the DICOM files the response's first 16 KiB carried (the `file`, or the
    /// ZIP's first entries, inflated), read from their data sets, each once, in order, at most
    /// 8; empty when the prefix did not reach one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub study_instance_uids: Vec<String>,
    /// `store`: where the PACS was told to send them, as the URL names it (`modality
    /// storescp`, `peer remote`: Orthanc's names; `exporter STORESCP`, `exporter dicom:WS2`:
    /// dcm4chee-arc's exporter ids; not AE titles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// One study a [`RestDownload`] counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedStudy<'a> {
    /// Named by the Study Instance UID of a file the response carried.
    Named(&'a str),
    /// A resource of the request whose study (or studies) the response did not name.
    Resource(&'a str),
}

impl RestDownload {
    /// What this retrieval exported, study by study, as the export rules and the summary count
    /// it. A single DICOM file counts the study its data set named, and nothing when that was
    /// not read (the response cut or lost): counting each file as a study would make a
    /// viewer's hundred instances a bulk export. A study's or a series' archive counts the
    /// study its first file named, so that it is the same study however it was retrieved (and
    /// a study downloaded series by series counts once), else its resource. A patient's archive
    /// and each resource of a `create-archive` list (whose levels the ids do not say) count one
    /// each. A response whose request was lost (level `unknown`) counts the studies it named, as
    /// does a push whose URL names its study (dcm4chee-arc's exports).
    pub fn counted_studies(&self) -> Vec<CountedStudy<'_>> {
        let mut named = self
            .study_instance_uids
            .iter()
            .map(String::as_str)
            .filter(|u| !u.is_empty());
        match (self.format.as_str(), self.level.as_str()) {
            // The response's files, or (dcm4chee-arc's exports) the URL, named them.
            (_, "unknown") | ("store", _) if !self.study_instance_uids.is_empty() => {
                named.map(CountedStudy::Named).collect()
            }
            ("file", _) => named.next().map(CountedStudy::Named).into_iter().collect(),
            (_, "studies" | "series") if self.ids.len() == 1 => match named.next() {
                Some(uid) => vec![CountedStudy::Named(uid)],
                None => self.ids.iter().map(|id| CountedStudy::Resource(id)).collect(),
            },
            _ => self.ids.iter().map(|id| CountedStudy::Resource(id)).collect(),
        }
    }
}

/// One HTTP transaction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpEvent {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path and query as sent, except: values of credential-like query parameters (such as
    /// `access_token`) and of patient-identifying QIDO keys (`PatientName`, `PatientID`, …)
    /// are replaced by `REDACTED`, and the user info of an absolute URL is dropped.
    pub url: String,
    /// Response status; absent when no response was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Basic-auth user name or a JWT's `sub`/`preferred_username`; never a password or token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Request head and body bytes on the wire (chunk framing included).
    pub request_bytes: u64,
    /// Response head and body bytes on the wire, interim (1xx) responses included.
    pub response_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicomweb: Option<DicomWeb>,
    /// Extension: a retrieval through a PACS's own REST API (not DICOMweb).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<RestDownload>,
    /// Extension: `HTTP/1.1` or `HTTP/1.0` (of the request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Extension: the authentication scheme the request carried, lower case (`basic`,
    /// `bearer`, `digest`, `negotiate`, `ntlm`, … or `form` for a login form); never the credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Extension: `Content-Type` of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Extension: the admin action this request is (from `HttpConfig.admin_patterns`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_action: Option<String>,
    /// Extension: the sharing action this request is (from `HttpConfig.share_patterns`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_action: Option<String>,
    /// Extension: recipients named in a share request's JSON body (`recipients`, `email`,
    /// `to`, … read from its first 4 KiB), at most 16; for the `sharing_spike` rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub share_recipients: Vec<String>,
    /// Extension: `X-Forwarded-For` as sent (the client behind a reverse proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<String>,
    /// Extension: `url` was cut at `HttpConfig.max_url_chars`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub url_truncated: bool,
    /// Extension: when the request head was complete.
    pub request_time: Timestamp,
    /// Extension: when the final response head was complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<Timestamp>,
    /// Extension: interim (1xx) responses before the final one, e.g. `100 Continue`.
    #[serde(skip_serializing_if = "super::is_zero_u32")]
    pub interim_responses: u32,
    /// Extension: bytes of this transaction lost to capture gaps (counted in the byte totals).
    #[serde(skip_serializing_if = "super::is_zero_u64")]
    pub gap_bytes: u64,
    /// Extension: the request or the response did not end where its framing said (flow ended,
    /// gap, or cap hit); the byte counts are what was seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// Extension: the request was never seen (lost to a capture gap, or sent before the capture
    /// began): the event is built from the response alone, so `method` and `url` are empty,
    /// `request_time` is the response's, and a WADO-RS response names its study from the DICOM
    /// file it carries. Always with `incomplete`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub request_missing: bool,
}

#[cfg(test)]
mod tests {
    use super::{CountedStudy, RestDownload};

    fn d(api: &str, level: &str, format: &str, ids: &[&str], uids: &[&str]) -> RestDownload {
        RestDownload {
            api: api.into(),
            level: level.into(),
            format: format.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            study_instance_uids: uids.iter().map(|s| s.to_string()).collect(),
            destination: None,
        }
    }

    #[test]
    fn what_each_kind_of_retrieval_counts() {
        use CountedStudy::{Named, Resource};
        fn c(x: &RestDownload) -> Vec<CountedStudy<'_>> {
            x.counted_studies()
        }
        // A study's ZIP: the study its first file named, else its id.
        assert_eq!(
            c(&d("orthanc", "studies", "archive", &["s"], &["1.2", "1.3"])),
            [Named("1.2")]
        );
        assert_eq!(c(&d("orthanc", "series", "archive", &["s"], &[])), [Resource("s")]);
        // A file: its study or nothing.
        assert_eq!(c(&d("orthanc", "instances", "file", &["i"], &["1.2"])), [Named("1.2")]);
        assert!(c(&d("orthanc", "instances", "file", &["i"], &[])).is_empty());
        // A list, a patient, an Orthanc push: each id.
        assert_eq!(
            c(&d("orthanc", "resources", "archive", &["a", "b"], &["1.2"])),
            [Resource("a"), Resource("b")]
        );
        assert_eq!(c(&d("orthanc", "resources", "store", &["a"], &[])), [Resource("a")]);
        // A response without its request, a dcm4chee-arc export: the studies named.
        assert_eq!(
            c(&d("unknown", "unknown", "archive", &[], &["1.2", "1.3"])),
            [Named("1.2"), Named("1.3")]
        );
        assert!(c(&d("unknown", "unknown", "archive", &[], &[])).is_empty());
        assert_eq!(
            c(&d("dcm4chee", "instances", "store", &["1.2"], &["1.2"])),
            [Named("1.2")]
        );
    }
}
