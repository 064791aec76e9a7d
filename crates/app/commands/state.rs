//! `pacstap state show | forget`: look into a learned-state file and take part of it back
//! (issue 14). The rendering and editing are `pacstap_detect::learned_view`'s; here the file is
//! read (show: read only, nothing set aside or removed) or rewritten atomically (forget).

use crate::cli::StateCommand;
use anyhow::{Context, Result};
use pacstap_detect::learned_view::{forget, render, Forget};
use pacstap_detect::{LearnedState, StateStore, STATE_VERSION};
use pacstap_output::term::{for_terminal, say, warn};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Read a state file without touching it (show must not set a corrupt file aside).
fn read(path: &Path) -> Result<LearnedState> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read learned state {}", path.display()))?;
    let st: LearnedState = serde_json::from_slice(&bytes)
        .with_context(|| format!("learned state {} is not a state file", path.display()))?;
    if st.version > STATE_VERSION {
        anyhow::bail!(
            "learned state {} has format version {}, this pacstap reads up to {STATE_VERSION}",
            path.display(),
            st.version
        );
    }
    Ok(st)
}

pub fn run_state(cmd: StateCommand) -> Result<ExitCode> {
    match cmd {
        StateCommand::Show { state, entity } => {
            let st = read(&state)?;
            // State holds names from the wire: escaped for a terminal like every other output.
            let text = render(&st, entity.as_ref());
            std::io::stdout().lock().write_all(for_terminal(&text).as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Forget {
            state,
            entity,
            older_than,
        } => {
            let what = match (entity, older_than) {
                (Some(e), _) => Forget::Entity(e),
                (None, Some(d)) => Forget::OlderThan(d),
                // clap's group requires one of them.
                (None, None) => return Ok(ExitCode::from(2)),
            };
            // Read first: a missing or unreadable file is an error here, not a fresh state.
            read(&state)?;
            let (store, loaded, warning) = StateStore::open(&state)?;
            if let Some(w) = warning {
                warn("learned state", &w);
            }
            let mut st = loaded.unwrap_or_default();
            let (e, d) = forget(&mut st, &what);
            store.save(&st)?;
            say(&format!(
                "{}: forgot {e} entit{} and {d} destination{}",
                state.display(),
                if e == 1 { "y" } else { "ies" },
                if d == 1 { "" } else { "s" }
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}
