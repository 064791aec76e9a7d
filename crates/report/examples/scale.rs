//! Measures what `pacstap report` does on a large events file, without building the whole
//! application in release mode: build the report, write the HTML, JSON and CSV files.
//!
//! `scripts/report-scale-events /tmp/x.jsonl 1000000 /tmp/1m.jsonl.gz`, then
//! `cargo run --release -p pacstap-report --example scale -- /tmp/1m.jsonl.gz /tmp/out`.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: scale EVENTS OUTDIR".into());
    };
    if std::env::var_os("SCALE_PARTS").is_some() {
        parts(std::path::Path::new(&input));
    }
    let out = std::path::PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let t0 = Instant::now();
    let opts = pacstap_report::Options {
        inputs: vec![input.into()],
        ..Default::default()
    };
    let report = pacstap_report::build(&opts)?;
    let t1 = Instant::now();
    let html = pacstap_report::html::render(&report);
    std::fs::write(out.join("r.html"), &html)?;
    let mut j = std::io::BufWriter::new(std::fs::File::create(out.join("r.json"))?);
    pacstap_report::to_json(&report, &mut j)?;
    j.flush()?;
    let mut c = std::io::BufWriter::new(std::fs::File::create(out.join("r-ledger.csv"))?);
    pacstap_report::csv::ledger(&report, &mut c)?;
    c.flush()?;
    let t2 = Instant::now();
    println!(
        "{} lines, {} events, {} incidents, {} studies, {} ledger rows; aggregate {:.2} s, write {:.2} s, total {:.2} s; HTML {} bytes",
        report.input.lines,
        report.input.events,
        report.incidents.len(),
        report.studies_total,
        report.ledger_rows_total,
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t2 - t0).as_secs_f64(),
        html.len()
    );
    Ok(())
}

/// `SCALE_PARTS=1`: time reading alone and reading + JSON parsing (where the time goes).
#[allow(dead_code)]
fn parts(path: &std::path::Path) {
    let t = Instant::now();
    let mut n = 0u64;
    pacstap_report::input::for_each_line(path, |l| n += l.len() as u64).unwrap();
    println!("read: {:.2} s ({n} bytes)", t.elapsed().as_secs_f64());
    let t = Instant::now();
    pacstap_report::input::for_each_line(path, |l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        n += v.as_object().map_or(0, |o| o.len()) as u64;
    })
    .unwrap();
    println!("read + parse: {:.2} s", t.elapsed().as_secs_f64());
}
