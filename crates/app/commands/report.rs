//! `pacstap report`: event files to the HTML / JSON / CSV report, or one study's trail.

use super::load_config;
use crate::cli::ReportArgs;
use anyhow::{Context, Result};
use pacstap_output::term::{error, for_terminal, say};
use pacstap_safefile::{Existing, Kind};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

/// `pacstap report`: bad arguments are exit 2 before any input is read.
pub fn run_report(args: ReportArgs) -> Result<ExitCode> {
    let usage = |msg: String| {
        error("", &msg);
        Ok(ExitCode::from(2))
    };
    let mut opts = pacstap_report::Options {
        inputs: args.events.clone(),
        ..Default::default()
    };
    for (arg, text, slot) in [("--from", &args.from, &mut opts.from), ("--to", &args.to, &mut opts.to)] {
        if let Some(t) = text {
            match pacstap_report::time::parse(t) {
                Some(v) => *slot = Some(v),
                None => {
                    return usage(format!(
                        "{arg} {t:?}: expected a UTC time such as 2026-11-28 or 2026-11-28T07:00:00Z"
                    ))
                }
            }
        }
    }
    opts.from_text = args.from.clone();
    opts.to_text = args.to.clone();
    if let Some(e) = &args.entity {
        match e.parse() {
            Ok(f) => opts.entity = Some(f),
            Err(msg) => return usage(format!("--entity: {msg}")),
        }
    }
    if let Some(path) = &args.config {
        let cfg = match load_config(Some(path)) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        opts.networks.0.extend(cfg.networks.internal.iter().map(|n| n.0));
        opts.admins = Some(cfg.users.admins.clone());
    }
    opts.only_study = args.study.clone();
    let report = pacstap_report::build(&opts)?;
    if let Some(uid) = &args.study {
        let mut out = io::stdout().lock();
        out.write_all(for_terminal(&pacstap_report::study_trail(&report, uid)).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    // Reports carry user names and AE titles: written like the events file (mode 0600, never
    // through a symbolic link).
    let write = |path: &Path, fill: &dyn Fn(&mut io::BufWriter<std::fs::File>) -> io::Result<()>| -> Result<()> {
        let f = pacstap_safefile::open_private(path, Existing::Truncate, Kind::Regular)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = io::BufWriter::new(f);
        fill(&mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    let html = args.output.clone();
    let stem = html
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pacstap-report".into());
    let json = html.with_extension("json");
    let csv_dir = args
        .csv
        .clone()
        .unwrap_or_else(|| html.parent().map(Path::to_path_buf).unwrap_or_default());
    if let Some(dir) = &args.csv {
        pacstap_safefile::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let ledger_csv = csv_dir.join(format!("{stem}-ledger.csv"));
    let incidents_csv = csv_dir.join(format!("{stem}-incidents.csv"));
    write(&html, &|w| {
        w.write_all(pacstap_report::html::render(&report).as_bytes())
    })?;
    write(&json, &|w| pacstap_report::to_json(&report, w))?;
    write(&ledger_csv, &|w| pacstap_report::csv::ledger(&report, w))?;
    write(&incidents_csv, &|w| pacstap_report::csv::incidents(&report, w))?;
    say(&format!(
        "report: {} events, {} incidents, {} studies -> {} ({}; {}, {})",
        report.input.events,
        report.incidents.len(),
        report.studies_total,
        html.display(),
        json.display(),
        ledger_csv.display(),
        incidents_csv.display()
    ));
    Ok(ExitCode::SUCCESS)
}
