//! The HTML report: one self-contained file (inline CSS, inline SVG charts, no script, no
//! external resource; a Content-Security-Policy forbids any), readable offline.
//!
//! Every string from the events is escaped ([`esc`]): AE titles, user names, URLs and
//! summaries come from the wire. Long tables are cut to top-N ([`MAX_STUDIES`] and friends);
//! the CSV and JSON files have the rest.

use crate::model::{FlowEdge, Incident, Report, TimeBin};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Studies shown in the HTML ledger (by first time), rows shown per study, story lines per
/// incident, incident cards, inventory rows, flow-map edges, timeline bars: chosen so that
/// a report over 10^6 events stays far under 5 MB.
pub const MAX_STUDIES: usize = 300;
pub const MAX_ROWS_PER_STUDY: usize = 12;
pub const MAX_STORY: usize = 40;
pub const MAX_CARDS: usize = 200;
pub const MAX_TABLE_ROWS: usize = 200;
pub const MAX_EDGES: usize = 40;
pub const MAX_BARS: usize = 1_000;

/// HTML text and attribute escaping.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U.get(i).copied().unwrap_or_default())
    }
}

fn list(v: &[String], total: u64, max: usize) -> String {
    if v.is_empty() {
        return "—".to_string();
    }
    let mut s: Vec<String> = v.iter().take(max).map(|x| esc(x)).collect();
    let shown = s.len() as u64;
    if total > shown {
        s.push(format!("… ({} in all)", total));
    }
    s.join(", ")
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1240px;padding:16px;color:#1b1b1b;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{border-bottom:2px solid #0b4f8a;padding-bottom:4px;margin-top:32px;color:#0b4f8a}
h3{margin:0 0 6px;font-size:16px}nav a{margin-right:14px}table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border:1px solid #ccd;padding:3px 6px;text-align:left;vertical-align:top;font-size:13px}th{background:#eef2f7}
.card{border:1px solid #ccd;border-left:6px solid #888;border-radius:4px;padding:10px 14px;margin:12px 0;background:#fafbfd}
.sev-critical,.sev-high{border-left-color:#b00020}.sev-warning{border-left-color:#d98c00}.sev-info{border-left-color:#2a7ab0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;margin-right:6px;background:#888}
.b-critical,.b-high,.b-finding{background:#b00020}.b-warning{background:#d98c00}.b-info{background:#2a7ab0}.b-ok{background:#2e7d32}.b-not_knowable{background:#666}
.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}.muted{color:#666}.ext{color:#b00020;font-weight:bold}
.study{background:#f3f6fa;font-weight:bold}svg{max-width:100%;height:auto;border:1px solid #dde}";

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let title = match &r.input.entity {
        Some(e) => format!("pacstap report: {e}"),
        None => "pacstap report".to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{CSS}</style></head><body>\n",
        esc(&title)
    );
    let i = &r.input;
    let _ = write!(
        h,
        "<header><h1>{}</h1><p class=\"muted\">{} event(s) from {} file(s), {} to {}{}{}. {} line(s) skipped as not events; {} event(s) outside the time range; {} of other entities. \
No patient names, IDs or birth dates: pacstap's events never carry them.</p>\
<nav><a href=\"#incidents\">Incidents ({})</a><a href=\"#ledger\">Study ledger ({})</a><a href=\"#timeline\">Timeline</a><a href=\"#inventory\">Inventory and flow map</a><a href=\"#checklist\">Checklist</a></nav></header>",
        esc(&title),
        i.events,
        i.files.len(),
        esc(i.first_event.as_deref().unwrap_or("—")),
        esc(i.last_event.as_deref().unwrap_or("—")),
        i.from.as_ref().map(|f| format!(", range from {}", esc(f))).unwrap_or_default(),
        i.to.as_ref().map(|f| format!(" until {}", esc(f))).unwrap_or_default(),
        i.skipped_lines,
        i.events_outside_range,
        i.events_other_entity,
        r.incidents.len(),
        r.studies_total
    );
    h.push('\n');
    incidents(&mut h, r);
    ledger(&mut h, r);
    timeline(&mut h, r);
    inventory(&mut h, r);
    checklist(&mut h, r);
    h.push_str("<footer class=\"muted\"><p>Generated by pacstap report from passive captures; facts are what the network showed. JSON and CSV files beside this one hold the same facts in full.</p></footer></body></html>\n");
    h
}

fn sev_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "high" => 1,
        "warning" => 2,
        _ => 3,
    }
}

fn incidents(h: &mut String, r: &Report) {
    let _ = write!(h, "<section id=\"incidents\"><h2>1. Incidents</h2>");
    if r.incidents.is_empty() {
        h.push_str("<p>No alert in the events: no incident.</p>");
    }
    let mut order: Vec<&Incident> = r.incidents.iter().collect();
    order.sort_by(|a, b| {
        sev_rank(&a.severity_name)
            .cmp(&sev_rank(&b.severity_name))
            .then_with(|| a.first_seen.cmp(&b.first_seen))
    });
    for inc in order.iter().take(MAX_CARDS) {
        let sev = esc(&inc.severity_name);
        let _ = write!(
            h,
            "<div class=\"card sev-{sev}\" id=\"incident-{}\"><h3><span class=\"badge b-{sev}\">{sev}</span>{} — {} {}</h3><p>{}</p><table>\
<tr><th>Incident</th><td class=\"mono\">{}</td><th>When</th><td>{} → {} ({} alert line(s))</td></tr>\
<tr><th>Entity</th><td>{} <b>{}</b></td><th>Count</th><td>{}{}</td></tr>\
<tr><th>Studies</th><td colspan=\"3\" class=\"mono\">{}</td></tr>\
<tr><th>Destinations</th><td colspan=\"3\">{}</td></tr>\
<tr><th>Volume</th><td colspan=\"3\">{} instance(s), {} (C-STORE instances and dataset bytes, C-MOVE / C-GET completed sub-operations, WADO and HTTPS response bytes, on the incident's flows)</td></tr>\
<tr><th>Evidence</th><td colspan=\"3\" class=\"mono\">{}<br>SHA-256: {}</td></tr></table>",
            esc(&inc.incident_id),
            esc(&inc.rule),
            esc(&inc.entity_kind),
            esc(&inc.entity_id),
            esc(&inc.summary),
            esc(&inc.incident_id),
            esc(&inc.first_seen),
            esc(&inc.last_seen),
            inc.alerts,
            esc(&inc.entity_kind),
            esc(&inc.entity_id),
            inc.count,
            inc.threshold.map(|t| format!(" (threshold {t})")).unwrap_or_default(),
            list(&inc.studies, inc.studies_total, 10),
            list(&inc.destinations, inc.destinations_total, 10),
            inc.volume.instances,
            bytes(inc.volume.bytes),
            esc(inc.evidence_pcap.as_deref().unwrap_or("no evidence file named")),
            match &inc.evidence_sha256 {
                Some(s) => esc(s),
                None => esc(&inc.evidence_status),
            }
        );
        if !inc.response.is_empty() {
            h.push_str("<b>Response steps</b><ol>");
            for s in &inc.response {
                let _ = write!(h, "<li>{}</li>", esc(s));
            }
            h.push_str("</ol>");
        }
        let _ = write!(
            h,
            "<b>Story</b> <span class=\"muted\">({} event(s) on the incident's flows",
            inc.story_total
        );
        if inc.story_total as usize > MAX_STORY.min(inc.story.len()) {
            let _ = write!(
                h,
                "; the first {} shown, the JSON has up to {}",
                MAX_STORY.min(inc.story.len()),
                crate::incidents::MAX_STORY
            );
        }
        h.push_str(")</span><table><tr><th>Time</th><th>Flow</th><th>What</th></tr>");
        for s in inc.story.iter().take(MAX_STORY) {
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
                esc(&s.time),
                s.flow_id,
                esc(&s.what)
            );
        }
        h.push_str("</table></div>\n");
    }
    if r.incidents.len() > MAX_CARDS {
        let _ = write!(
            h,
            "<p>{} more incident(s) in the JSON and CSV.</p>",
            r.incidents.len() - MAX_CARDS
        );
    }
    h.push_str("</section>\n");
}

fn ledger(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<section id=\"ledger\"><h2>2. Study ledger</h2><p>Every access and transfer of a study the traffic shows (accounting of disclosures): {} studies, {} rows. \
The first {} studies by first time are shown here, with up to {} rows each; the CSV file has every row.{}</p>\
<table><tr><th>When</th><th>How</th><th>From</th><th>To</th><th>By</th><th>Instances</th><th>Bytes</th><th>Status</th></tr>",
        r.studies_total,
        r.ledger_rows_total,
        MAX_STUDIES,
        MAX_ROWS_PER_STUDY,
        if r.studies_untracked > 0 { format!(" {} studies past the tracking cap are counted only.", r.studies_untracked) } else { String::new() }
    );
    let shown: BTreeMap<&str, usize> = r
        .studies
        .iter()
        .take(MAX_STUDIES)
        .enumerate()
        .map(|(i, s)| (s.study_instance_uid.as_str(), i))
        .collect();
    let mut rows: Vec<Vec<&crate::model::LedgerRow>> = vec![Vec::new(); shown.len()];
    for row in &r.ledger {
        if let Some(&i) = shown.get(row.study_instance_uid.as_str()) {
            if let Some(v) = rows.get_mut(i) {
                if v.len() < MAX_ROWS_PER_STUDY {
                    v.push(row);
                }
            }
        }
    }
    for (st, rs) in r.studies.iter().zip(rows) {
        let _ = write!(
            h,
            "<tr class=\"study\"><td colspan=\"8\">Study <span class=\"mono\">{}</span> — {} transfer(s), {} access(es), {} instance(s), {}; first {}, last {}</td></tr>",
            esc(&st.study_instance_uid),
            st.transfers,
            st.accesses,
            st.instances,
            bytes(st.bytes),
            esc(&st.first),
            esc(&st.last)
        );
        for row in rs {
            let _ = write!(
                h,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td{}>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&row.first),
                how_cell(row),
                esc(&row.from),
                if row.external { " class=\"ext\"" } else { "" },
                esc(&row.to),
                if row.external { " (external)" } else { "" },
                esc(&row.by),
                row.instances.map_or("—".to_string(), |n| n.to_string()),
                row.bytes.map_or("—".to_string(), bytes),
                esc(row.status.as_deref().unwrap_or("—"))
            );
        }
    }
    h.push_str("</table></section>\n");
}

/// The how cell: a C-MOVE sub-operation says which C-MOVE caused it (and by whom: the `by`
/// cell already names the C-MOVE's requester).
fn how_cell(row: &crate::model::LedgerRow) -> String {
    match &row.caused_by {
        None => esc(&row.how),
        Some(c) => format!(
            "{} <span class=\"muted\">for C-MOVE #{} of {}{}</span>",
            esc(&row.how),
            c.message_id,
            esc(c.requester.as_deref().unwrap_or(&c.originator_ae)),
            c.flow_id
                .map_or(" (request not seen)".to_string(), |f| format!(", flow {f}"))
        ),
    }
}

fn bars(h: &mut String, bins: &[TimeBin], unit: &str) {
    let bins = bins.get(..MAX_BARS).unwrap_or(bins);
    let n = bins.len().max(1);
    let (w, ht, top, left) = (1000.0f64, 200.0f64, 20.0f64, 50.0f64);
    let max = bins
        .iter()
        .map(|b| b.dicom + b.http + b.tls + b.hl7)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bw = (w - left) / n as f64;
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"events per {unit} by protocol\">",
        ht + top + 40.0
    );
    let _ = write!(
        h,
        "<text x=\"4\" y=\"14\" font-size=\"11\">{} events/{unit}</text>",
        max as u64
    );
    let colors = [
        ("#0b4f8a", "DICOM"),
        ("#2e7d32", "HTTP"),
        ("#7b1fa2", "TLS"),
        ("#d98c00", "HL7"),
    ];
    for (k, b) in bins.iter().enumerate() {
        let x = left + k as f64 * bw;
        let mut y = top + ht;
        for (v, (color, label)) in [b.dicom, b.http, b.tls, b.hl7].iter().zip(colors) {
            if *v == 0 {
                continue;
            }
            let hh = *v as f64 / max * ht;
            y -= hh;
            let _ = write!(
                h,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{hh:.1}\" fill=\"{}\"><title>{} {}: {v}</title></rect>",
                (bw - 1.0).max(0.5),
                color,
                esc(&b.start),
                label
            );
        }
        if b.alerts > 0 {
            let _ = write!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{}\" r=\"4\" fill=\"#b00020\"><title>{}: {} alert(s)</title></circle>",
                x + bw / 2.0,
                top - 8.0,
                esc(&b.start),
                b.alerts
            );
        }
    }
    let step = (n / 8).max(1);
    for (k, b) in bins.iter().enumerate().step_by(step) {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{}</text>",
            left + k as f64 * bw,
            top + ht + 14.0,
            esc(&b.start)
        );
    }
    for (c, (col, name)) in colors.iter().enumerate() {
        let x = left + c as f64 * 90.0;
        let _ = write!(h, "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{col}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{name}</text>", top + ht + 24.0, x + 14.0, top + ht + 33.0);
    }
    let _ = write!(h, "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#b00020\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">alerts</text></svg>", left + 365.0, top + ht + 29.0, left + 373.0, top + ht + 33.0);
}

fn timeline(h: &mut String, r: &Report) {
    let t = &r.timeline;
    let _ = write!(
        h,
        "<section id=\"timeline\"><h2>3. Timeline</h2><p>Events per {} by protocol; red dots: alerts.</p>",
        t.bin
    );
    bars(h, &t.bins, t.bin);
    h.push_str("<h3>Exports per entity</h3><table><tr><th>Entity (user, or requesting AE / address)</th><th>Transfers</th><th>Studies</th><th>Instances</th><th>Bytes</th></tr>");
    for e in t.exports_by_entity.iter().take(20) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.entity),
            e.transfers,
            e.studies,
            e.instances,
            bytes(e.bytes)
        );
    }
    let _ = write!(h, "</table><h3>Alerts over time</h3><p class=\"muted\">{} alert line(s)</p><table><tr><th>Time</th><th>Rule</th><th>Severity</th><th>Entity</th><th>Incident</th></tr>", t.alerts_total);
    for a in t.alerts.iter().take(MAX_TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"mono\"><a href=\"#incident-{}\">{}</a></td></tr>",
            esc(&a.time),
            esc(&a.rule),
            if a.update { " (update)" } else { "" },
            esc(&a.severity_name),
            esc(&a.entity),
            esc(&a.incident_id),
            esc(&a.incident_id)
        );
    }
    h.push_str("</table></section>\n");
}

fn flow_map(h: &mut String, edges: &[FlowEdge]) {
    let edges = edges.get(..MAX_EDGES).unwrap_or(edges);
    if edges.is_empty() {
        h.push_str("<p>No image transfer seen.</p>");
        return;
    }
    // Layers: systems that only send (left), send and receive (middle), only receive (right).
    let mut nodes: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::new();
    for e in edges {
        let n = nodes.entry(&e.from).or_insert((false, false, e.from_internal));
        n.0 = true;
        let n = nodes.entry(&e.to).or_insert((false, false, e.to_internal));
        n.1 = true;
    }
    let mut cols: [Vec<&str>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (name, (s, r, _)) in &nodes {
        let c = match (s, r) {
            (true, false) => 0,
            (true, true) => 1,
            _ => 2,
        };
        if let Some(col) = cols.get_mut(c) {
            col.push(name);
        }
    }
    let rows = cols.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let (w, bw, bh, gap) = (1000.0f64, 230.0f64, 26.0f64, 40.0f64);
    let height = rows as f64 * gap + 30.0;
    let xs = [10.0, (w - bw) / 2.0, w - bw - 10.0];
    let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (col, x) in cols.iter().zip(xs) {
        for (k, name) in col.iter().enumerate() {
            pos.insert(name, (x, 20.0 + k as f64 * gap));
        }
    }
    let maxb = edges.iter().map(|e| e.bytes).max().unwrap_or(1).max(1) as f64;
    let _ = write!(h, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"image flow map\"><defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>");
    for e in edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) else {
            continue;
        };
        let (sx, sy, tx, ty) = (x1 + bw, y1 + bh / 2.0, x2, y2 + bh / 2.0);
        let width = 1.0 + 5.0 * (e.bytes as f64 / maxb);
        let color = if e.to_internal { "#555" } else { "#b00020" };
        let (c1, c2) = if tx > sx {
            ((sx + tx) / 2.0, (sx + tx) / 2.0)
        } else {
            (sx + 120.0, tx - 120.0)
        };
        let _ = write!(
            h,
            "<path d=\"M{sx:.1},{sy:.1} C{c1:.1},{sy:.1} {c2:.1},{ty:.1} {tx:.1},{ty:.1}\" stroke=\"{color}\" stroke-width=\"{width:.1}\" fill=\"none\" marker-end=\"url(#arr)\" opacity=\"0.7\"><title>{} → {}: {} ({} instance(s), {}, {} study/ies)</title></path>",
            esc(&e.from),
            esc(&e.to),
            esc(&e.how.join(", ")),
            e.instances,
            bytes(e.bytes),
            e.studies
        );
    }
    for (name, (x, y)) in &pos {
        let internal = nodes.get(name).is_none_or(|n| n.2);
        let label: String = name.chars().take(34).collect();
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{bh}\" rx=\"5\" fill=\"{}\" stroke=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}{}</text>",
            if internal { "#e8f0fa" } else { "#fde7ea" },
            if internal { "#0b4f8a" } else { "#b00020" },
            x + 6.0,
            y + 17.0,
            esc(&label),
            if internal { "" } else { " (external)" }
        );
    }
    h.push_str("</svg><p class=\"muted\">Left: systems that only send images; middle: send and receive; right: only receive. Red: outside the internal networks. Line width: bytes.</p>");
}

fn inventory(h: &mut String, r: &Report) {
    let inv = &r.inventory;
    h.push_str("<section id=\"inventory\"><h2>4. Inventory and flow map</h2><h3>Who sends images to whom</h3>");
    flow_map(h, &r.flow_map);
    h.push_str("<h3>DICOM nodes</h3><table><tr><th>AE title</th><th>Address</th><th>Roles</th><th>Software (implementation class UID / version name)</th><th>SOP classes</th><th>Associations</th><th>First seen</th><th>Last seen</th></tr>");
    for n in inv.dicom_nodes.iter().take(MAX_TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td{}>{}</td><td>{}</td><td class=\"mono\">{} {}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&n.ae),
            if n.internal { "" } else { " class=\"ext\"" },
            esc(&n.address),
            esc(&n.roles.join(", ")),
            list(&n.implementation_class_uids, 0, 4),
            list(&n.implementation_version_names, 0, 4),
            list(&n.sop_classes, n.sop_classes.len() as u64, 6),
            n.associations,
            esc(&n.first_seen),
            esc(&n.last_seen)
        );
    }
    h.push_str("</table><h3>HL7 applications</h3><table><tr><th>Application</th><th>Facility</th><th>Address</th><th>Message types</th><th>Messages</th><th>First seen</th><th>Last seen</th></tr>");
    for a in inv.hl7_applications.iter().take(MAX_TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&a.application),
            esc(&a.facility),
            esc(&a.address),
            list(&a.message_types, 0, 10),
            a.messages,
            esc(&a.first_seen),
            esc(&a.last_seen)
        );
    }
    h.push_str("</table><h3>HTTP servers (in clear)</h3><table><tr><th>Server</th><th>Host names</th><th>Requests</th><th>DICOMweb</th><th>Users</th><th>Auth schemes</th><th>First seen</th><th>Last seen</th></tr>");
    for w in inv.http_servers.iter().take(MAX_TABLE_ROWS) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&w.address),
            list(&w.hostnames, 0, 5),
            w.requests,
            w.dicomweb,
            list(&w.users, w.users.len() as u64, 10),
            list(&w.auth_schemes, 0, 5),
            esc(&w.first_seen),
            esc(&w.last_seen)
        );
    }
    h.push_str("</table><h3>TLS servers</h3><table><tr><th>Server</th><th>SNI</th><th>Version chosen</th><th>Client offered</th><th>Cipher suites</th><th>Certificate</th><th>Connections</th><th>First seen</th><th>Last seen</th></tr>");
    for t in inv.tls_servers.iter().take(MAX_TABLE_ROWS) {
        let cert = match &t.certificate_subject {
            Some(s) => format!(
                "{}; expires {}{}{}",
                esc(s),
                esc(t.certificate_not_after.as_deref().unwrap_or("?")),
                if t.expired { " <b class=\"ext\">EXPIRED</b>" } else { "" },
                if t.self_signed {
                    " <b class=\"ext\">self-signed</b>"
                } else {
                    ""
                }
            ),
            None => "not visible (TLS 1.3 encrypts it, or not captured)".to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{cert}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&t.address),
            list(&t.sni, 0, 5),
            list(&t.versions_chosen, 0, 5),
            list(&t.versions_offered, 0, 5),
            list(&t.cipher_suites, 0, 5),
            t.connections,
            esc(&t.first_seen),
            esc(&t.last_seen)
        );
    }
    h.push_str("</table></section>\n");
}

fn checklist(h: &mut String, r: &Report) {
    h.push_str("<section id=\"checklist\"><h2>5. The checklist from the wire</h2><table><tr><th>Item</th><th>Verdict</th><th>What the traffic shows</th><th>Systems involved</th><th>Proof (flow ids)</th></tr>");
    for f in &r.checklist {
        let details: Vec<String> = f.details.iter().map(|d| esc(d)).collect();
        let flows: Vec<String> = f.flow_ids.iter().map(u64::to_string).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"badge b-{}\">{}</span></td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            esc(f.item),
            f.status,
            f.status.replace('_', " "),
            esc(&f.summary),
            details.join("<br>"),
            flows.join(" ")
        );
    }
    h.push_str("</table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(esc("a\u{1b}[31m"), "a\\x1b[31m");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
    }
}
