//! CSV files of the ledger tables (RFC 4180: quoted fields, CRLF not required; LF used).
//!
//! A cell that a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or
//! CR: OWASP "CSV injection") gets a leading `'`: AE titles and user names come from the wire.

use crate::model::Report;
use std::io::{self, Write};

pub fn cell(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) || guarded != s {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// Every ledger row (the accounting of disclosures and accesses).
pub fn ledger(report: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "study_instance_uid,first,last,how,kind,from,to,external,by,instances,bytes,status,events,flow_id,move_originator_ae,move_message_id,move_requester,move_flow_id"
    )?;
    for r in &report.ledger {
        let c = r.caused_by.as_ref();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            cell(&r.study_instance_uid),
            r.first,
            r.last,
            cell(&r.how),
            r.kind,
            cell(&r.from),
            cell(&r.to),
            r.external,
            cell(&r.by),
            opt(r.instances),
            opt(r.bytes),
            cell(r.status.as_deref().unwrap_or("")),
            r.events,
            r.flow_id,
            cell(c.map_or("", |c| c.originator_ae.as_str())),
            opt(c.map(|c| u64::from(c.message_id))),
            cell(c.and_then(|c| c.requester.as_deref()).unwrap_or("")),
            opt(c.and_then(|c| c.flow_id))
        )?;
    }
    Ok(())
}

/// One row per incident.
pub fn incidents(report: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "incident_id,rule,severity,entity_kind,entity_id,first_seen,last_seen,alerts,count,studies_total,destinations,instances,bytes,evidence_pcap,evidence_sha256,summary")?;
    for i in &report.incidents {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            cell(&i.incident_id),
            cell(&i.rule),
            cell(&i.severity_name),
            cell(&i.entity_kind),
            cell(&i.entity_id),
            i.first_seen,
            i.last_seen,
            i.alerts,
            i.count,
            i.studies_total,
            cell(&i.destinations.join("; ")),
            i.volume.instances,
            i.volume.bytes,
            cell(i.evidence_pcap.as_deref().unwrap_or("")),
            i.evidence_sha256.as_deref().unwrap_or(""),
            cell(&i.summary)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("ORTHANC"), "ORTHANC");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
    }
}
