//! EVE-style JSON lines.

use pacstap_core::{EventBody, ProtocolEvent};
use serde::Serialize;
use std::io::{self, Write};

/// The common EVE fields of every event, followed by the protocol object named after
/// `event_type` (CONTRACT §2). Borrowed from the event: serializing costs no copies.
#[derive(Serialize)]
pub struct EveRecord<'a> {
    pub timestamp: pacstap_core::Timestamp,
    pub flow_id: pacstap_core::FlowId,
    pub event_type: &'static str,
    pub src_ip: std::net::IpAddr,
    pub src_port: u16,
    pub dest_ip: std::net::IpAddr,
    pub dest_port: u16,
    pub proto: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicom: Option<&'a pacstap_core::DicomEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<&'a pacstap_core::HttpEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a pacstap_core::TlsEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hl7: Option<&'a pacstap_core::Hl7Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<&'a pacstap_core::Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<&'a pacstap_core::Anomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posture: Option<&'a pacstap_core::PostureEvent>,
}

impl<'a> EveRecord<'a> {
    pub fn new(ev: &'a ProtocolEvent) -> Self {
        let mut rec = EveRecord {
            timestamp: ev.ts,
            flow_id: ev.flow.id,
            event_type: ev.body.event_type(),
            src_ip: ev.flow.client.ip,
            src_port: ev.flow.client.port,
            dest_ip: ev.flow.server.ip,
            dest_port: ev.flow.server.port,
            proto: "TCP",
            dicom: None,
            http: None,
            tls: None,
            hl7: None,
            alert: None,
            anomaly: None,
            posture: None,
        };
        match &ev.body {
            EventBody::Dicom(d) => rec.dicom = Some(d),
            EventBody::Http(h) => rec.http = Some(h),
            EventBody::Tls(t) => rec.tls = Some(t),
            EventBody::Hl7(h) => rec.hl7 = Some(h),
            EventBody::Alert(a) => rec.alert = Some(a),
            EventBody::Anomaly(a) => rec.anomaly = Some(a),
            EventBody::Posture(p) => rec.posture = Some(p),
        }
        rec
    }
}

/// Writes events as JSON lines to any writer (a file, stdout).
///
/// Buffered: call [`JsonLinesSink::flush`] at the end of a run (and periodically when live).
pub struct JsonLinesSink<W: Write> {
    out: io::BufWriter<W>,
    alerts_only: bool,
    written: u64,
}

impl<W: Write> JsonLinesSink<W> {
    /// `alerts_only`: write only `event_type = "alert"` lines (`--alerts-only`).
    pub fn new(out: W, alerts_only: bool) -> Self {
        JsonLinesSink {
            out: io::BufWriter::with_capacity(256 * 1024, out),
            alerts_only,
            written: 0,
        }
    }

    pub fn write(&mut self, ev: &ProtocolEvent) -> io::Result<()> {
        // Internal signals (decoder → detection) are no line of the contract.
        if ev.body.is_internal() || (self.alerts_only && ev.body.event_type() != "alert") {
            return Ok(());
        }
        let mut ser = serde_json::Serializer::with_formatter(&mut self.out, TerminalSafeFormatter);
        EveRecord::new(ev).serialize(&mut ser).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Writes `ev` as `json`, its line already serialized by [`eve_json`] (for the publisher),
    /// so that an event published and written is serialized once.
    pub fn write_serialized(&mut self, ev: &ProtocolEvent, json: &[u8]) -> io::Result<()> {
        if ev.body.is_internal() || (self.alerts_only && ev.body.event_type() != "alert") {
            return Ok(());
        }
        self.out.write_all(json)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One event's EVE JSON object (no newline) appended to `out`, exactly as the events file
/// holds it (same escaping): what a publisher sends (issue 15).
pub fn eve_json(ev: &ProtocolEvent, out: &mut Vec<u8>) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, TerminalSafeFormatter);
    EveRecord::new(ev).serialize(&mut ser).map_err(io::Error::from)
}

/// serde_json's compact formatter, except that DEL and the C1 controls (U+0080–U+009F), which
/// JSON allows raw, are written as `\u00XX` escapes too: event lines are often read in a
/// terminal (`pacstap replay x.pcap` prints them), where a raw U+009B is a CSI that an attacker
/// who chose an AE title or user name could use. C0 controls are escaped by JSON already. The
/// parsed value is unchanged, so every JSON reader sees the same strings.
struct TerminalSafeFormatter;

impl serde_json::ser::Formatter for TerminalSafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        // DEL is the byte 0x7F; a C1 control in UTF-8 is 0xC2 followed by 0x80..=0x9F.
        if !fragment.bytes().any(|b| b == 0x7f || b == 0xc2) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) {
                writer.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacstap_core::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn meta() -> FlowMeta {
        FlowMeta {
            id: FlowId(7),
            client: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50000),
            server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 104),
            start: Timestamp(0),
            handshake_seen: true,
        }
    }

    #[test]
    fn del_and_c1_controls_are_escaped_and_parse_back_unchanged() {
        let detail = "a\u{9b}2J\u{7f}b\u{1b}]52;c;x\u{7}é".to_owned();
        let ev = ProtocolEvent {
            ts: Timestamp(0),
            flow: meta(),
            body: EventBody::Anomaly(Anomaly {
                proto: "http",
                name: "http.test",
                detail: Some(detail.clone()),
            }),
        };
        let mut buf = Vec::new();
        {
            let mut sink = JsonLinesSink::new(&mut buf, false);
            sink.write(&ev).unwrap();
            sink.flush().unwrap();
        }
        let line = String::from_utf8(buf).unwrap();
        assert!(line.contains(r"a\u009b2J\u007fb\u001b]52;c;x\u0007é"), "{line}");
        assert!(!line.chars().any(|c| c.is_control() && c != '\n'), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["anomaly"]["detail"], detail.as_str());
    }

    #[test]
    fn writes_eve_layout() {
        let ev = ProtocolEvent {
            ts: Timestamp::from_secs_nanos(1_795_773_601, 123_456_000),
            flow: meta(),
            body: EventBody::Anomaly(Anomaly {
                proto: "dicom",
                name: "dicom.pdu_too_large",
                detail: None,
            }),
        };
        let mut buf = Vec::new();
        {
            let mut sink = JsonLinesSink::new(&mut buf, false);
            sink.write(&ev).unwrap();
            sink.flush().unwrap();
        }
        let line = String::from_utf8(buf).unwrap();
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["timestamp"], "2026-11-27T10:00:01.123456Z");
        assert_eq!(v["flow_id"], 7);
        assert_eq!(v["event_type"], "anomaly");
        assert_eq!(v["src_ip"], "10.0.0.1");
        assert_eq!(v["dest_port"], 104);
        assert_eq!(v["anomaly"]["name"], "dicom.pdu_too_large");
        assert!(v.get("dicom").is_none());
    }

    #[test]
    fn alerts_only_drops_protocol_events() {
        let ev = ProtocolEvent {
            ts: Timestamp(0),
            flow: meta(),
            body: EventBody::Anomaly(Anomaly {
                proto: "dicom",
                name: "x",
                detail: None,
            }),
        };
        let mut buf = Vec::new();
        {
            let mut sink = JsonLinesSink::new(&mut buf, true);
            sink.write(&ev).unwrap();
            assert_eq!(sink.written(), 0);
            sink.flush().unwrap();
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_line_serialized_for_the_publisher_is_written_byte_for_byte_and_filtered_alike() {
        let ev = ProtocolEvent {
            ts: Timestamp::from_secs_nanos(1_795_773_601, 5),
            flow: meta(),
            body: EventBody::Anomaly(Anomaly {
                proto: "http",
                name: "http.test",
                detail: Some("\u{9b}x".to_owned()),
            }),
        };
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        {
            let mut sink = JsonLinesSink::new(&mut direct, false);
            sink.write(&ev).unwrap();
            sink.flush().unwrap();
        }
        let mut json = Vec::new();
        eve_json(&ev, &mut json).unwrap();
        {
            let mut sink = JsonLinesSink::new(&mut via, false);
            sink.write_serialized(&ev, &json).unwrap();
            assert_eq!(sink.written(), 1);
            sink.flush().unwrap();
        }
        assert_eq!(String::from_utf8(via).unwrap(), String::from_utf8(direct).unwrap());
        let mut alerts = Vec::new();
        let mut sink = JsonLinesSink::new(&mut alerts, true);
        sink.write_serialized(&ev, &json).unwrap();
        assert_eq!(sink.written(), 0);
    }
}
