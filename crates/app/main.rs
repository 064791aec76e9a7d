//! `pacstap`: passive network-tap analyzer for hospital imaging networks.

//!
//! `cli.rs` defines the command line; `commands/` runs each subcommand on top of the `pacstap`
//! library (`lib.rs` describes its layout).

mod cli;
mod commands;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand, EvidenceCommand};
use commands::{is_broken_pipe, run_capture, run_detect, run_replay, run_report, run_selftest, run_state};
use pacstap_output::term::{error, error_chain, for_terminal, warn};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => match pacstap::config::Config::check_file(&file) {
            Ok((cfg, findings)) => {
                // Goes to a terminal too: a config file's strings are escaped like the wire's.
                print!("{}", for_terminal(&cfg.render_effective()));
                // The verdict last, on stdout after the effective config: `OK`, or every
                // finding with its line and a count. Errors make the exit status 2.
                use pacstap::config::Level;
                let errors = findings.iter().filter(|f| f.level == Level::Error).count();
                let warnings = findings.len() - errors;
                println!();
                for f in &findings {
                    println!("# {}: {}", file.display(), for_terminal(&f.to_string()));
                }
                if findings.is_empty() {
                    println!("# OK");
                } else if errors == 0 {
                    println!("# OK with {warnings} warning(s)");
                } else {
                    println!("# {errors} error(s), {warnings} warning(s)");
                    error(
                        &file.display().to_string(),
                        &format!("{errors} error(s), {warnings} warning(s)"),
                    );
                    return ExitCode::from(2);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                error(&file.display().to_string(), &error_chain(&e));
                ExitCode::from(2)
            }
        },
        Command::Capture(args) => match run_capture(args) {
            Ok(code) => code,
            Err(e) => {
                error("", &error_chain(e.as_ref()));
                ExitCode::from(1)
            }
        },
        Command::State(cmd) => exit_code(run_state(cmd)),
        Command::Report(args) => exit_code(run_report(args)),
        Command::Evidence(EvidenceCommand::Verify { dir }) => verify_evidence(&dir),
        Command::Replay(args) => exit_code(run_replay(args)),
        Command::Detect(args) => exit_code(run_detect(args)),
        Command::Selftest(args) => exit_code(run_selftest(args)),
    }
}

/// The exit code of a command that writes to stdout: a reader that went away (`| head`) is
/// success, any other error is said once and is exit 1.
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            error("", &error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// `pacstap evidence verify DIR`: one line per file (`ok`, `CHANGED`, `UNREADABLE`,
/// `NOT LOGGED`), exit 1 unless every file is intact.
fn verify_evidence(dir: &std::path::Path) -> ExitCode {
    use pacstap_output::Verdict;
    let (files, bad) = match pacstap_output::verify_custody(dir) {
        Ok(v) => v,
        Err(e) => {
            error(
                &dir.join(pacstap_output::CUSTODY_LOG).display().to_string(),
                &e.to_string(),
            );
            return ExitCode::from(1);
        }
    };
    let mut failed = bad > 0;
    for (file, verdict) in &files {
        let line = match verdict {
            Verdict::Intact => format!("ok          {file}"),
            Verdict::Changed { logged, now } => format!("CHANGED     {file}: logged {logged}, now {now}"),
            Verdict::Unreadable(why) => format!("UNREADABLE  {file}: {why}"),
            Verdict::NotLogged => format!("NOT LOGGED  {file}"),
        };
        failed |= *verdict != Verdict::Intact;
        println!("{}", for_terminal(&line));
    }
    if bad > 0 {
        warn(
            &dir.join(pacstap_output::CUSTODY_LOG).display().to_string(),
            &format!("{bad} lines are not custody entries"),
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
