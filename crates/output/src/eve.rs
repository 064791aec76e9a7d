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
        };
        match &ev.body {
            EventBody::Dicom(d) => rec.dicom = Some(d),
            EventBody::Http(h) => rec.http = Some(h),
            EventBody::Tls(t) => rec.tls = Some(t),
            EventBody::Hl7(h) => rec.hl7 = Some(h),
            EventBody::Alert(a) => rec.alert = Some(a),
            EventBody::Anomaly(a) => rec.anomaly = Some(a),
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
        if self.alerts_only && ev.body.event_type() != "alert" {
            return Ok(());
        }
        serde_json::to_writer(&mut self.out, &EveRecord::new(ev)).map_err(io::Error::from)?;
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
}
